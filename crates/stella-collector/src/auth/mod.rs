//! Bearer tokens: who may do what, for which tenant.
//!
//! A token reads `stl_<id>_<secret>`: the id is public (listed, revoked, named in audit lines), the secret
//! is 256 random bits shown once at creation. Only the SHA-256 of the secret is stored (in
//! `<data-dir>/auth/tokens.json`), and presented secrets are compared with it in constant time.
//! Each token is bound to one tenant and a set of [`Scope`]s; `operator` tokens may act for any tenant.
mod scope;
mod store;

pub use scope::{Scope, UnknownScope};
pub use store::{AuthError, Principal, TokenRecord, TokenStore};
