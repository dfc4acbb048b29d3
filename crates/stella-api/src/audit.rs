//! The audit trail: one JSON line per admin or operator action (config reloads, token changes, ...),
//! each holding the SHA-256 of the line before it, so that removing, reordering or editing a line breaks
//! the chain at that line. It lives in `<data-dir>/audit/audit.jsonl`.
//!
//! ```text
//! {"action":"config.reload","actor":"token:3f2a…","parameters":{…},"prev":"<sha256 of the previous line>",
//!  "result":"ok","seq":7,"tenant":"*","time":"2026-11-29T10:15:30Z"}
//! ```
//! The first line's `prev` is 64 zeros. The actor is a token id (never a token) or `local` for commands
//! run on the data directory.
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// One action to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who: `token:<id>` or `local`.
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

/// Why the trail could not be written or read.
#[derive(Debug, thiserror::Error)]
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
}

impl AuditError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::Io { .. } => "audit.io",
            AuditError::Broken { .. } => "audit.broken",
        }
    }
}

/// The audit trail of one data directory.
pub struct AuditLog {
    path: PathBuf,
    append_lock: Mutex<()>,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn sha256_hex(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

impl AuditLog {
    /// The trail of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        AuditLog { path: data_dir.join("audit").join("audit.jsonl"), append_lock: Mutex::new(()) }
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

    /// Appends `entry`, chained to the last line; returns the line written.
    pub fn append(&self, entry: &AuditEntry) -> Result<String, AuditError> {
        let _one_writer = self.append_lock.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(self.io())?;
        }
        // One writer across processes too (a running server and `stella telemetry tokens` on the same data
        // directory): an exclusive lock on a sibling file, held from reading the last line to the append,
        // released when the file closes.
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
        Ok(line)
    }

    /// Checks the whole chain; the number of lines when it holds, else the first broken line.
    pub fn verify(&self) -> Result<usize, AuditError> {
        let lines = self.lines()?;
        let mut expected_prev = GENESIS.to_string();
        for (index, line) in lines.iter().enumerate() {
            let broken = |reason: String| AuditError::Broken { path: self.path.clone(), line: index + 1, reason };
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|error| broken(format!("not JSON: {error}")))?;
            if value["prev"].as_str() != Some(expected_prev.as_str()) {
                return Err(broken(
                    "its `prev` is not the SHA-256 of the line before: a line was changed, removed or inserted".into(),
                ));
            }
            if value["seq"].as_u64() != Some(index as u64 + 1) {
                return Err(broken(format!("its `seq` is not {}", index + 1)));
            }
            expected_prev = sha256_hex(line);
        }
        Ok(lines.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            actor: "local".into(),
            tenant: "*".into(),
            action: action.into(),
            parameters: serde_json::json!({"n": action.len()}),
            result: "ok".into(),
        }
    }

    #[test]
    fn the_chain_holds_and_a_tampered_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditLog::new(dir.path());
        for action in ["token.create", "config.reload", "token.revoke"] {
            audit.append(&entry(action)).unwrap();
        }
        assert_eq!(audit.verify().unwrap(), 3);
        let path = dir.path().join("audit/audit.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("config.reload", "config.rel0ad", 1)).unwrap();
        match audit.verify() {
            Err(AuditError::Broken { line, .. }) => {
                assert_eq!(line, 3, "the line after the edited one no longer chains")
            }
            other => panic!("tampering not found: {other:?}"),
        }
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(matches!(audit.verify(), Err(AuditError::Broken { line: 2, .. })), "a removed line is found");
    }

    #[test]
    fn writers_that_share_no_memory_still_keep_one_chain() {
        // Separate AuditLog values share no in-process lock, like two processes on one data directory.
        let dir = tempfile::tempdir().unwrap();
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let path = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let audit = AuditLog::new(&path);
                    for _ in 0..25 {
                        audit.append(&entry(&format!("writer{writer}"))).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(AuditLog::new(dir.path()).verify().unwrap(), 100);
    }
}
