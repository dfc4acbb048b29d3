//! Exit codes scripts can rely on (also listed in `stella --help`):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failure at run time (a port in use, an unwritable data directory, ...) |
//! | 2 | wrong command-line usage (from clap) |
//! | 3 | the config is invalid (or binds beyond loopback without TLS or auth, or a listener's address is taken) |
//! | 4 | the server could not be reached or refused the request |
//! | 10-15 | `verify`, `deploy`: digest mismatch, bad signature, untrusted key, wrong payload type, malformed, unreadable |
use std::process::ExitCode;

use stella_collector::config::ConfigErrors;
use stella_collector::{ReloadError, StartError};

/// A run-time failure.
pub const FAILURE: u8 = 1;
/// An invalid config.
pub const INVALID_CONFIG: u8 = 3;
/// The server could not be reached or refused.
pub const SERVER: u8 = 4;

/// An error the CLI reports with a specific exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ServerError {
    /// What happened, with the server's code where it sent one.
    pub message: String,
}

/// Prints `error` (with its causes) and picks the exit code from the first typed error in the chain.
pub fn report(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }
    match error.chain().find_map(evidence_class) {
        Some(class) => eprintln!("error: {}: {error}", class.code()),
        None => eprintln!("error: {error}"),
    }
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::from(code_of(error))
}

fn code_of(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(class) = evidence_class(cause) {
            return class.exit_code();
        }
        if cause.is::<ConfigErrors>() {
            return INVALID_CONFIG;
        }
        if let Some(StartError::Config(_) | StartError::Insecure { .. } | StartError::Bind { .. }) =
            cause.downcast_ref::<StartError>()
        {
            return INVALID_CONFIG;
        }
        if let Some(ReloadError::Config(_)) = cause.downcast_ref::<ReloadError>() {
            return INVALID_CONFIG;
        }
        if cause.is::<ServerError>() || cause.is::<reqwest::Error>() {
            return SERVER;
        }
    }
    FAILURE
}

/// The failure class of a refused bundle or signed config.
fn evidence_class(cause: &(dyn std::error::Error + 'static)) -> Option<stella_evidence::ErrorClass> {
    if let Some(bundle) = cause.downcast_ref::<stella_evidence::BundleError>() {
        return Some(bundle.class());
    }
    if let Some(federation) = cause.downcast_ref::<stella_federation::FederationError>() {
        return federation.class();
    }
    cause.downcast_ref::<stella_evidence::config_bundle::ConfigBundleError>().map(|error| error.class())
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
