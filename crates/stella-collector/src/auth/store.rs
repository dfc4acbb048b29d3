use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use stella_store::tables::{RecordRepository, RedbRecords, StateDb, StateError};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Scope;

/// A stored token: everything but the secret, whose SHA-256 is kept instead.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenRecord {
    /// The public id (the `<id>` of `stl_<id>_<secret>`).
    pub id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Expiry, unix seconds; `None` never expires.
    pub expires: Option<u64>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token id (for audit lines; never the token).
    pub token_id: String,
    /// The tenant.
    pub tenant: String,
    /// Its scopes.
    pub scopes: BTreeSet<Scope>,
}

/// Why a request is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential was presented (401).
    #[error("no bearer token; send `Authorization: Bearer <token>`")]
    Missing,
    /// The credential is not a valid, current token (401).
    #[error("the token is not valid (unknown, revoked or expired)")]
    Invalid,
    /// The token lacks the scope the action needs (403).
    #[error("the token lacks the `{needed}` scope this action needs")]
    Forbidden {
        /// The scope needed.
        needed: Scope,
    },
    /// The token store could not be read or written.
    #[error("token store {path}: {message}")]
    Store {
        /// The file.
        path: PathBuf,
        /// What happened.
        message: String,
    },
}

impl AuthError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "auth.missing",
            AuthError::Invalid => "auth.invalid",
            AuthError::Forbidden { .. } => "auth.forbidden",
            AuthError::Store { .. } => "auth.store",
        }
    }

    /// The HTTP status: 401 for missing or invalid credentials, 403 for a missing scope, 500 for the store.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Invalid => 401,
            AuthError::Forbidden { .. } => 403,
            AuthError::Store { .. } => 500,
        }
    }
}

/// The tokens of one data directory, in the state database (`<data-dir>/state.redb`, table
/// `records/auth.tokens`). Every change is one durable redb transaction committed before the call
/// returns, and every check reads the database: a revocation is in force for every request that starts
/// after `revoke` returned, in this process; another process cannot change the tokens while a server has
/// the database open (it is locked), so offline changes need the server stopped (or `--server`).
pub struct TokenStore {
    records: RedbRecords,
    path: PathBuf,
}

/// The record kind of tokens in the state database.
const TOKENS: &str = "auth.tokens";
/// Tokens are not per tenant in the table: one key space, the token id.
const ALL: &str = "*";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl TokenStore {
    /// The token store of `data_dir`, opening its state database (shared with the rest of this process).
    /// Fails at once while another process (a running server) has the database open.
    pub fn open(data_dir: &Path) -> Result<Self, AuthError> {
        let state = StateDb::open(data_dir).map_err(|error| AuthError::Store {
            path: data_dir.join(stella_store::tables::STATE_FILE),
            message: match error {
                StateError::AlreadyOpen { .. } => "the data directory is in use by a running server; manage tokens there with --server URL --token OPERATOR_TOKEN, or stop it first".to_string(),
                other => other.to_string(),
            },
        })?;
        TokenStore::with_state(&state, data_dir)
    }

    /// The token store in `state`, the state database of `data_dir`. On first use it imports
    /// `<data-dir>/auth/tokens.json` (where tokens were kept before) and renames it to `tokens.json.migrated`.
    pub fn with_state(state: &StateDb, data_dir: &Path) -> Result<Self, AuthError> {
        let store = TokenStore { records: state.records(TOKENS), path: state.path().to_path_buf() };
        store.import_json(&data_dir.join("auth").join("tokens.json"))?;
        Ok(store)
    }

    fn store_error(&self, message: impl std::fmt::Display) -> AuthError {
        AuthError::Store { path: self.path.clone(), message: message.to_string() }
    }

    fn import_json(&self, file: &Path) -> Result<(), AuthError> {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(self.store_error(format!("cannot read {}: {error}", file.display()))),
        };
        let records: Vec<TokenRecord> = serde_json::from_slice(&bytes)
            .map_err(|error| self.store_error(format!("{} is not a token list: {error}", file.display())))?;
        if self.list()?.is_empty() {
            for record in &records {
                self.put(record)?;
            }
        } else {
            tracing::warn!(event = "state.migration_skipped", file = %file.display(), "the state database already holds tokens; the file is ignored: remove it");
            return Ok(());
        }
        let mut renamed = file.as_os_str().to_owned();
        renamed.push(".migrated");
        std::fs::rename(file, &renamed)
            .map_err(|error| self.store_error(format!("cannot rename {}: {error}", file.display())))?;
        tracing::info!(event = "state.migrated", file = %file.display(), entries = records.len(), "tokens imported into the state database");
        Ok(())
    }

    fn put(&self, record: &TokenRecord) -> Result<(), AuthError> {
        let bytes = serde_json::to_vec(record).map_err(|error| self.store_error(error))?;
        let at = jiff::Timestamp::from_second(i64::try_from(record.created).unwrap_or(0)).unwrap_or_default();
        self.records.put(ALL, &record.id, at, &bytes).map_err(|error| self.store_error(error))?;
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<TokenRecord>, AuthError> {
        let Some(stored) = self.records.get(ALL, id).map_err(|error| self.store_error(error))? else {
            return Ok(None);
        };
        serde_json::from_slice(&stored.value)
            .map(Some)
            .map_err(|error| self.store_error(format!("token {id} is damaged: {error}")))
    }

    /// Every token record, oldest first.
    pub fn list(&self) -> Result<Vec<TokenRecord>, AuthError> {
        let stored = self.records.list(ALL).map_err(|error| self.store_error(error))?;
        let mut records = stored
            .iter()
            .map(|stored| {
                serde_json::from_slice::<TokenRecord>(&stored.value)
                    .map_err(|error| self.store_error(format!("token {} is damaged: {error}", stored.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(records)
    }

    /// Creates a token; returns its record and the token text, which is shown this once and never stored.
    /// Durable (and usable) when this returns.
    pub fn create(
        &self,
        tenant: &str,
        scopes: BTreeSet<Scope>,
        expires_in: Option<std::time::Duration>,
    ) -> Result<(TokenRecord, String), AuthError> {
        let mut id_bytes = [0u8; 6];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id_bytes)
            .and_then(|()| getrandom::fill(&mut secret))
            .map_err(|error| self.store_error(format!("no randomness: {error}")))?;
        let id = hex::encode(id_bytes);
        let secret_hex = hex::encode(secret);
        let created = now();
        let record = TokenRecord {
            id: id.clone(),
            tenant: tenant.to_string(),
            scopes,
            secret_sha256: sha256_hex(secret_hex.as_bytes()),
            created,
            expires: expires_in.map(|duration| created + duration.as_secs()),
            revoked: false,
        };
        self.put(&record)?;
        Ok((record, format!("stl_{id}_{secret_hex}")))
    }

    /// Revokes token `id`; false when there is no such token. In force (durably) when this returns.
    pub fn revoke(&self, id: &str) -> Result<bool, AuthError> {
        let Some(mut record) = self.get(id)? else { return Ok(false) };
        record.revoked = true;
        self.put(&record)?;
        Ok(true)
    }

    /// Checks an `Authorization` header value and that the token has `needed`.
    pub fn authorize(&self, authorization: Option<&str>, needed: Scope) -> Result<Principal, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let token =
            header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).ok_or(AuthError::Missing)?.trim();
        let (id, secret) =
            token.strip_prefix("stl_").and_then(|rest| rest.split_once('_')).ok_or(AuthError::Invalid)?;
        let record = self.get(id)?.ok_or(AuthError::Invalid)?;
        let presented = sha256_hex(secret.as_bytes());
        let matches: bool = presented.as_bytes().ct_eq(record.secret_sha256.as_bytes()).into();
        if !matches || record.revoked || record.expires.is_some_and(|expires| expires <= now()) {
            return Err(AuthError::Invalid);
        }
        if !record.scopes.contains(&needed) && !record.scopes.contains(&Scope::Operator) {
            return Err(AuthError::Forbidden { needed });
        }
        Ok(Principal { token_id: record.id.clone(), tenant: record.tenant.clone(), scopes: record.scopes.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[Scope]) -> BTreeSet<Scope> {
        list.iter().copied().collect()
    }

    #[test]
    fn a_created_token_authorizes_its_scopes_only_and_is_stored_as_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let (record, token) = store.create("acme", scopes(&[Scope::Read]), None).unwrap();
        let header = format!("Bearer {token}");
        let principal = store.authorize(Some(&header), Scope::Read).unwrap();
        assert_eq!((principal.tenant.as_str(), principal.token_id.as_str()), ("acme", record.id.as_str()));
        assert_eq!(store.authorize(Some(&header), Scope::Export), Err(AuthError::Forbidden { needed: Scope::Export }));
        assert_eq!(store.authorize(None, Scope::Read), Err(AuthError::Missing));
        let forged = format!("Bearer stl_{}_{}", record.id, "0".repeat(64));
        assert_eq!(store.authorize(Some(&forged), Scope::Read), Err(AuthError::Invalid));
        let stored = std::fs::read(dir.path().join("state.redb")).unwrap();
        let secret = token.rsplit('_').next().unwrap().as_bytes();
        assert!(!stored.windows(secret.len()).any(|window| window == secret), "the secret is never stored");
    }

    #[test]
    fn revoked_and_expired_tokens_fail_and_operators_have_every_scope() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let (record, token) = store.create("acme", scopes(&[Scope::Read]), None).unwrap();
        assert!(store.revoke(&record.id).unwrap());
        assert_eq!(store.authorize(Some(&format!("Bearer {token}")), Scope::Read), Err(AuthError::Invalid));
        let (_, expired) = store.create("acme", scopes(&[Scope::Read]), Some(std::time::Duration::ZERO)).unwrap();
        assert_eq!(store.authorize(Some(&format!("Bearer {expired}")), Scope::Read), Err(AuthError::Invalid));
        let (_, operator) = store.create("ops", scopes(&[Scope::Operator]), None).unwrap();
        assert!(store.authorize(Some(&format!("Bearer {operator}")), Scope::Export).is_ok());
        assert!(!store.revoke("nope").unwrap());
    }

    #[test]
    fn tokens_json_is_imported_once_and_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let record = TokenRecord {
            id: "0123456789ab".into(),
            tenant: "acme".into(),
            scopes: scopes(&[Scope::Ingest]),
            secret_sha256: sha256_hex(b"secret"),
            created: 1_700_000_000,
            expires: None,
            revoked: false,
        };
        std::fs::create_dir_all(dir.path().join("auth")).unwrap();
        std::fs::write(dir.path().join("auth/tokens.json"), serde_json::to_vec(&[&record]).unwrap()).unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        assert_eq!(store.list().unwrap(), vec![record]);
        assert!(store.authorize(Some("Bearer stl_0123456789ab_secret"), Scope::Ingest).is_ok());
        assert!(dir.path().join("auth/tokens.json.migrated").exists());
        assert!(!dir.path().join("auth/tokens.json").exists());
    }

    #[test]
    fn concurrent_creates_and_revokes_each_take_effect_when_they_return() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(TokenStore::open(dir.path()).unwrap());
        let doomed: Vec<(String, String)> = (0..25)
            .map(|_| {
                let (record, token) = store.create("acme", scopes(&[Scope::Read]), None).unwrap();
                (record.id, token)
            })
            .collect();
        let mut workers = Vec::new();
        for (id, token) in doomed {
            let revoker = std::sync::Arc::clone(&store);
            workers.push(std::thread::spawn(move || {
                let store = revoker;
                assert!(store.revoke(&id).unwrap());
                let header = format!("Bearer {token}");
                assert_eq!(
                    store.authorize(Some(&header), Scope::Read),
                    Err(AuthError::Invalid),
                    "revoked means refused"
                );
            }));
            let creator = std::sync::Arc::clone(&store);
            workers.push(std::thread::spawn(move || {
                let store = creator;
                let (_, token) = store.create("acme", scopes(&[Scope::Read]), None).unwrap();
                assert!(store.authorize(Some(&format!("Bearer {token}")), Scope::Read).is_ok(), "created means usable");
            }));
        }
        for worker in workers {
            worker.join().unwrap();
        }
        let records = store.list().unwrap();
        assert_eq!(records.len(), 50);
        assert_eq!(records.iter().filter(|record| record.revoked).count(), 25);
    }
}
