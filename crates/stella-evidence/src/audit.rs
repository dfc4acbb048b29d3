//! The audit trail: one JSON line per admin or operator action (config reloads, token changes, ...) in
//! `<data-dir>/audit/audit.jsonl`, each holding the SHA-256 of the line before it, so that removing,
//! reordering or editing a line breaks the chain at that line.
//!
//! ```text
//! {"action":"config.reload","actor":"token:3f2a…","parameters":{…},"prev":"<sha256 of the previous line>",
//!  "result":"ok","seq":7,"tenant":"*","time":"2026-11-29T10:15:30Z"}
//! ```
//! The first line's `prev` is 64 zeros. The actor is a token id (never a token), `local` for commands run
//! on the data directory, or `server` for checkpoints.
//!
//! A chain alone proves nothing about its end: cutting the last lines off, or appending a forged line
//! chained to the real last one, leaves a valid chain. Two anchors close that gap:
//! - the **head** (line count and hash of the last line) is written to the state database
//!   (`state.redb`, `records/audit.head`) with every append; [`AuditLog::verify`] compares the file
//!   with it, so truncation, lines appended outside stella and a replaced file are found;
//! - a **checkpoint** line (`action: audit.checkpoint`) is appended periodically and at shutdown,
//!   carrying a DSSE envelope signed with the server's key over `{"head","lines"}` of the line before
//!   it; with `--trusted-key`, verification checks every checkpoint's signature and names the last one
//!   that verified, so even a replaced file together with a replaced state database is found.
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stella_store::tables::{RecordRepository, RedbRecords, StateDb, StateError};

use crate::dsse::Envelope;
use crate::keys::{SigningKey, TrustStore};

/// The DSSE payload type of an audit checkpoint: `{"head": <hex sha256 of the line>, "lines": N}`.
pub const CHECKPOINT_PAYLOAD_TYPE: &str = "application/vnd.stellaops.telemetry.audit.checkpoint+json";
/// The action of a checkpoint line.
pub const CHECKPOINT_ACTION: &str = "audit.checkpoint";

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HEAD_KIND: &str = "audit.head";

/// One action to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who: `token:<id>`, `local` or `server`.
    pub actor: String,
    /// For which tenant (`*` for server-wide actions).
    pub tenant: String,
    /// What, e.g. `config.reload`, `token.create`.
    pub action: String,
    /// The parameters that matter (never secrets).
    pub parameters: serde_json::Value,
    /// `ok` or `error: <message>`.
    pub result: String,
}

/// Why the trail could not be written, read or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file operation failed.
    #[error("audit trail {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The chain is broken at a line.
    #[error("audit trail {path}: line {line} is broken: {reason}")]
    Broken {
        /// The file.
        path: PathBuf,
        /// The first broken line, counted from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file does not end where the state database says it does.
    #[error("audit trail {path}: {reason}")]
    Unanchored {
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The head could not be read or written.
    #[error("audit trail head: {0}")]
    State(#[from] StateError),
}

impl AuditError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::Io { .. } => "audit.io",
            AuditError::Broken { .. } => "audit.broken",
            AuditError::Unanchored { .. } => "audit.unanchored",
            AuditError::State(error) => error.code(),
        }
    }
}

/// The last line as the state database records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Lines in the file.
    pub lines: usize,
    /// Hex SHA-256 of the last line (64 zeros when empty).
    pub hash: String,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Lines checked.
    pub lines: usize,
    /// Whether the file's end was compared with the head in the state database.
    pub anchored: bool,
    /// The last checkpoint whose signature verified (its line and keyid); `None` without trusted keys.
    pub last_checkpoint: Option<(usize, String)>,
    /// Checkpoint lines found.
    pub checkpoints: usize,
    /// Lines after the last verified checkpoint (covered only by the head, if anchored).
    pub after_checkpoint: usize,
}

/// The audit trail of one data directory.
pub struct AuditLog {
    path: PathBuf,
    head: Option<RedbRecords>,
    append_lock: Mutex<()>,
}

fn sha256_hex(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

impl AuditLog {
    /// The trail of `data_dir`, anchored in `state` (the data directory's state database) when given.
    pub fn new(data_dir: &Path, state: Option<&StateDb>) -> Self {
        AuditLog {
            path: data_dir.join("audit").join("audit.jsonl"),
            head: state.map(|state| state.records(HEAD_KIND)),
            append_lock: Mutex::new(()),
        }
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
        |source| AuditError::Io { path: self.path.clone(), source }
    }

    /// Every line, in order.
    pub fn lines(&self) -> Result<Vec<String>, AuditError> {
        match std::fs::File::open(&self.path) {
            Ok(file) => std::io::BufReader::new(file).lines().collect::<Result<_, _>>().map_err(self.io()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(self.io()(error)),
        }
    }

    /// The head recorded in the state database, if anchored and recorded.
    pub fn recorded_head(&self) -> Result<Option<Head>, AuditError> {
        let Some(records) = &self.head else { return Ok(None) };
        let Some(record) = records.get("*", "head")? else { return Ok(None) };
        Ok(serde_json::from_slice(&record.value).ok())
    }

    fn record_head(&self, head: &Head) -> Result<(), AuditError> {
        let Some(records) = &self.head else { return Ok(()) };
        let bytes = serde_json::to_vec(head).unwrap_or_default();
        records.put("*", "head", jiff::Timestamp::now(), &bytes)?;
        Ok(())
    }

    /// Appends `entry`, chained to the last line, and records the new head; returns the line written.
    pub fn append(&self, entry: &AuditEntry) -> Result<String, AuditError> {
        let _one_writer = self.append_lock.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(self.io())?;
        }
        // One writer across processes too (a running server and a command on the same data directory):
        // an exclusive lock on a sibling file, held from reading the last line to the append.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("lock"))
            .map_err(self.io())?;
        lock.lock().map_err(self.io())?;
        let lines = self.lines()?;
        let prev = lines.last().map_or_else(|| GENESIS.to_string(), |line| sha256_hex(line));
        let line = serde_json::json!({
            "seq": lines.len() + 1,
            "time": jiff::Timestamp::now().to_string(),
            "actor": entry.actor,
            "tenant": entry.tenant,
            "action": entry.action,
            "parameters": entry.parameters,
            "result": entry.result,
            "prev": prev,
        })
        .to_string();
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(self.io())?;
        file.write_all(format!("{line}\n").as_bytes()).and_then(|()| file.sync_data()).map_err(self.io())?;
        self.record_head(&Head { lines: lines.len() + 1, hash: sha256_hex(&line) })?;
        Ok(line)
    }

    /// Appends a checkpoint signed with `key` over the current last line, unless the last line is a
    /// checkpoint already (nothing new to vouch for). Returns the line written, if any.
    pub fn checkpoint(&self, key: &SigningKey) -> Result<Option<String>, AuditError> {
        let lines = self.lines()?;
        let Some(last) = lines.last() else { return Ok(None) };
        if action_of(last).as_deref() == Some(CHECKPOINT_ACTION) {
            return Ok(None);
        }
        let head = Head { lines: lines.len(), hash: sha256_hex(last) };
        let payload = crate::canonical::to_vec(&head).unwrap_or_default();
        let envelope = Envelope::sign(CHECKPOINT_PAYLOAD_TYPE, &payload, key);
        let envelope: serde_json::Value = serde_json::from_slice(&envelope.to_json()).unwrap_or_default();
        let entry = AuditEntry {
            actor: "server".into(),
            tenant: "*".into(),
            action: CHECKPOINT_ACTION.into(),
            parameters: serde_json::json!({"lines": head.lines, "head": head.hash, "envelope": envelope}),
            result: "ok".into(),
        };
        self.append(&entry).map(Some)
    }

    /// Checks the whole chain, every checkpoint (their signatures against `trust`, when given) and, when
    /// the trail is anchored, the file's end against the recorded head.
    pub fn verify(&self, trust: Option<&TrustStore>) -> Result<Verification, AuditError> {
        let lines = self.lines()?;
        let mut expected_prev = GENESIS.to_string();
        let mut verification = Verification {
            lines: lines.len(),
            anchored: false,
            last_checkpoint: None,
            checkpoints: 0,
            after_checkpoint: 0,
        };
        let mut verified_up_to = 0;
        for (index, line) in lines.iter().enumerate() {
            let number = index + 1;
            let broken = |reason: String| AuditError::Broken { path: self.path.clone(), line: number, reason };
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|error| broken(format!("not JSON: {error}")))?;
            if value["prev"].as_str() != Some(expected_prev.as_str()) {
                return Err(broken(
                    "its `prev` is not the SHA-256 of the line before: a line was changed, removed or inserted".into(),
                ));
            }
            if value["seq"].as_u64() != Some(number as u64) {
                return Err(broken(format!("its `seq` is not {number}")));
            }
            if value["action"].as_str() == Some(CHECKPOINT_ACTION) {
                verification.checkpoints += 1;
                let keyid = check_checkpoint(&value, number, &expected_prev, trust).map_err(broken)?;
                if let Some(keyid) = keyid {
                    verification.last_checkpoint = Some((number, keyid));
                    verified_up_to = number;
                }
            }
            expected_prev = sha256_hex(line);
        }
        verification.after_checkpoint = lines.len() - verified_up_to;
        if let Some(head) = self.recorded_head()? {
            verification.anchored = true;
            let unanchored = |reason: String| AuditError::Unanchored { path: self.path.clone(), reason };
            if lines.len() < head.lines {
                return Err(unanchored(format!(
                    "the state database records {} lines but the file has {}: lines were cut off the end",
                    head.lines,
                    lines.len()
                )));
            }
            if lines.len() > head.lines {
                return Err(unanchored(format!(
                    "lines {}..{} were not written by stella (the state database records {} lines): appended outside it",
                    head.lines + 1,
                    lines.len(),
                    head.lines
                )));
            }
            let last = lines.last().map_or_else(|| GENESIS.to_string(), |line| sha256_hex(line));
            if last != head.hash {
                return Err(unanchored(format!(
                    "line {} is not the line the state database recorded: the file was replaced or edited",
                    head.lines
                )));
            }
        }
        Ok(verification)
    }
}

/// The `action` of a line, if it is a JSON object with one.
fn action_of(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value["action"].as_str().map(str::to_string)
}

/// Checks checkpoint line `number` (whose `prev` is `prev`): it must vouch for the line before it, and
/// with `trust` its envelope must verify and say the same. Returns the signer's keyid when verified.
fn check_checkpoint(
    value: &serde_json::Value,
    number: usize,
    prev: &str,
    trust: Option<&TrustStore>,
) -> Result<Option<String>, String> {
    let parameters = &value["parameters"];
    let claimed = Head {
        lines: parameters["lines"].as_u64().map_or(usize::MAX, |lines| lines as usize),
        hash: parameters["head"].as_str().unwrap_or_default().to_string(),
    };
    if claimed.lines + 1 != number || claimed.hash != prev {
        return Err("the checkpoint does not vouch for the line before it".into());
    }
    let Some(trust) = trust else { return Ok(None) };
    let envelope_json = serde_json::to_vec(&parameters["envelope"]).unwrap_or_default();
    let envelope = Envelope::from_json(&envelope_json)
        .map_err(|error| format!("the checkpoint's envelope is unreadable: {error}"))?;
    let verified = envelope
        .verify(trust, CHECKPOINT_PAYLOAD_TYPE)
        .map_err(|error| format!("the checkpoint's signature does not verify: {error}"))?;
    let signed: Head = serde_json::from_slice(&verified.payload)
        .map_err(|error| format!("the checkpoint's signed payload is unreadable: {error}"))?;
    if signed != claimed {
        return Err("the checkpoint's signed head differs from the one it states".into());
    }
    Ok(Some(verified.signer.keyid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            actor: "local".into(),
            tenant: "*".into(),
            action: action.into(),
            parameters: serde_json::json!({"n": action.len()}),
            result: "ok".into(),
        }
    }

    fn trail(dir: &Path) -> (AuditLog, StateDb) {
        let state = StateDb::open(dir).unwrap();
        (AuditLog::new(dir, Some(&state)), state)
    }

    #[test]
    fn the_chain_holds_and_a_tampered_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditLog::new(dir.path(), None);
        for action in ["token.create", "config.reload", "token.revoke"] {
            audit.append(&entry(action)).unwrap();
        }
        assert_eq!(audit.verify(None).unwrap().lines, 3);
        let path = dir.path().join("audit/audit.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("config.reload", "config.rel0ad", 1)).unwrap();
        match audit.verify(None) {
            Err(AuditError::Broken { line, .. }) => {
                assert_eq!(line, 3, "the line after the edited one no longer chains")
            }
            other => panic!("tampering not found: {other:?}"),
        }
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(matches!(audit.verify(None), Err(AuditError::Broken { line: 2, .. })), "a removed line is found");
    }

    #[test]
    fn writers_that_share_no_memory_still_keep_one_chain() {
        // Separate AuditLog values share no in-process lock, like two processes on one data directory.
        let dir = tempfile::tempdir().unwrap();
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let path = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let audit = AuditLog::new(&path, None);
                    for _ in 0..25 {
                        audit.append(&entry(&format!("writer{writer}"))).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(AuditLog::new(dir.path(), None).verify(None).unwrap().lines, 100);
    }

    #[test]
    fn a_cut_end_a_forged_append_and_a_replaced_file_are_found_by_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let (audit, _state) = trail(dir.path());
        for action in ["token.create", "config.reload", "token.revoke"] {
            audit.append(&entry(action)).unwrap();
        }
        assert!(audit.verify(None).unwrap().anchored);
        let path = dir.path().join("audit/audit.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
        assert!(matches!(audit.verify(None), Err(AuditError::Unanchored { .. })), "the last line cut off is found");

        let unanchored = AuditLog::new(dir.path(), None);
        std::fs::write(&path, &text).unwrap();
        unanchored.append(&entry("forged.append")).unwrap();
        assert!(unanchored.verify(None).is_ok(), "the chain alone cannot tell");
        assert!(matches!(audit.verify(None), Err(AuditError::Unanchored { .. })), "a forged append is found");

        let other = tempfile::tempdir().unwrap();
        let replacement = AuditLog::new(other.path(), None);
        for action in ["token.create", "config.reload", "token.revoke"] {
            replacement.append(&entry(&format!("{action}.forged"))).unwrap();
        }
        std::fs::copy(other.path().join("audit/audit.jsonl"), &path).unwrap();
        assert!(matches!(audit.verify(None), Err(AuditError::Unanchored { .. })), "a replaced file is found");
    }

    #[test]
    fn checkpoints_are_signed_and_verified_and_the_last_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (audit, _state) = trail(dir.path());
        let key = SigningKey::generate(KeyKind::Ed25519).unwrap();
        let trust = TrustStore::from_iter([key.trusted_key()]);
        audit.append(&entry("token.create")).unwrap();
        audit.checkpoint(&key).unwrap();
        assert!(audit.checkpoint(&key).unwrap().is_none(), "nothing new to vouch for");
        audit.append(&entry("token.revoke")).unwrap();
        audit.checkpoint(&key).unwrap();
        audit.append(&entry("config.reload")).unwrap();
        let verified = audit.verify(Some(&trust)).unwrap();
        assert_eq!(verified.last_checkpoint, Some((4, key.keyid().to_string())));
        assert_eq!((verified.checkpoints, verified.after_checkpoint), (2, 1));

        let stranger = SigningKey::generate(KeyKind::Ed25519).unwrap();
        let untrusted = TrustStore::from_iter([stranger.trusted_key()]);
        assert!(
            matches!(audit.verify(Some(&untrusted)), Err(AuditError::Broken { line: 2, .. })),
            "a checkpoint by another key is refused"
        );

        // A whole forged trail (file and state database replaced) still fails on the signatures.
        let forged_dir = tempfile::tempdir().unwrap();
        let (forged, _forged_state) = trail(forged_dir.path());
        forged.append(&entry("token.create")).unwrap();
        forged.checkpoint(&stranger).unwrap();
        assert!(matches!(forged.verify(Some(&trust)), Err(AuditError::Broken { line: 2, .. })));
    }
}
