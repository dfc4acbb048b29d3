use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// The tokens of one data directory (`<data-dir>/auth/tokens.json`), re-read when the file changes so
/// that tokens made or revoked offline take effect on a running server.
pub struct TokenStore {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<TokenRecord>)>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl TokenStore {
    /// The store of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        TokenStore { path: data_dir.join("auth").join("tokens.json"), cache: Mutex::new((None, Vec::new())) }
    }

    fn store_error(&self, message: impl std::fmt::Display) -> AuthError {
        AuthError::Store { path: self.path.clone(), message: message.to_string() }
    }

    /// Every token record.
    pub fn list(&self) -> Result<Vec<TokenRecord>, AuthError> {
        let modified = std::fs::metadata(&self.path).and_then(|meta| meta.modified()).ok();
        let mut cache = self.cache.lock().unwrap_or_else(|poison| poison.into_inner());
        if modified.is_some() && cache.0 == modified {
            return Ok(cache.1.clone());
        }
        let records = match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| self.store_error(format!("not a token list: {error}")))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(self.store_error(error)),
        };
        *cache = (modified, records);
        Ok(cache.1.clone())
    }

    fn save(&self, records: &[TokenRecord]) -> Result<(), AuthError> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| self.store_error(error))?;
        }
        let temporary = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(records).map_err(|error| self.store_error(error))?;
        std::fs::write(&temporary, bytes)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|error| self.store_error(error))?;
        self.cache.lock().unwrap_or_else(|poison| poison.into_inner()).0 = None;
        Ok(())
    }

    /// Creates a token; returns its record and the token text, which is shown this once and never stored.
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
        let mut records = self.list()?;
        records.push(record.clone());
        self.save(&records)?;
        Ok((record, format!("stl_{id}_{secret_hex}")))
    }

    /// Revokes token `id`; false when there is no such token.
    pub fn revoke(&self, id: &str) -> Result<bool, AuthError> {
        let mut records = self.list()?;
        let Some(record) = records.iter_mut().find(|record| record.id == id) else { return Ok(false) };
        record.revoked = true;
        self.save(&records)?;
        Ok(true)
    }

    /// Checks an `Authorization` header value and that the token has `needed`.
    pub fn authorize(&self, authorization: Option<&str>, needed: Scope) -> Result<Principal, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let token =
            header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).ok_or(AuthError::Missing)?.trim();
        let (id, secret) =
            token.strip_prefix("stl_").and_then(|rest| rest.split_once('_')).ok_or(AuthError::Invalid)?;
        let records = self.list()?;
        let record = records.iter().find(|record| record.id == id).ok_or(AuthError::Invalid)?;
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
        let store = TokenStore::new(dir.path());
        let (record, token) = store.create("acme", scopes(&[Scope::Read]), None).unwrap();
        let header = format!("Bearer {token}");
        let principal = store.authorize(Some(&header), Scope::Read).unwrap();
        assert_eq!((principal.tenant.as_str(), principal.token_id.as_str()), ("acme", record.id.as_str()));
        assert_eq!(store.authorize(Some(&header), Scope::Export), Err(AuthError::Forbidden { needed: Scope::Export }));
        assert_eq!(store.authorize(None, Scope::Read), Err(AuthError::Missing));
        let forged = format!("Bearer stl_{}_{}", record.id, "0".repeat(64));
        assert_eq!(store.authorize(Some(&forged), Scope::Read), Err(AuthError::Invalid));
        let stored = std::fs::read_to_string(dir.path().join("auth/tokens.json")).unwrap();
        assert!(!stored.contains(token.rsplit('_').next().unwrap()), "the secret is never stored");
    }

    #[test]
    fn revoked_and_expired_tokens_fail_and_operators_have_every_scope() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let (record, token) = store.create("acme", scopes(&[Scope::Read]), None).unwrap();
        assert!(store.revoke(&record.id).unwrap());
        assert_eq!(store.authorize(Some(&format!("Bearer {token}")), Scope::Read), Err(AuthError::Invalid));
        let (_, expired) = store.create("acme", scopes(&[Scope::Read]), Some(std::time::Duration::ZERO)).unwrap();
        assert_eq!(store.authorize(Some(&format!("Bearer {expired}")), Scope::Read), Err(AuthError::Invalid));
        let (_, operator) = store.create("ops", scopes(&[Scope::Operator]), None).unwrap();
        assert!(store.authorize(Some(&format!("Bearer {operator}")), Scope::Export).is_ok());
        assert!(!store.revoke("nope").unwrap());
    }
}
