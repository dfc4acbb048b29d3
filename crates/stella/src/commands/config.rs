//! `stella telemetry config validate | show | reload`.
use std::path::Path;

use anyhow::Context;
use stella_collector::config::{self, Profile};

use super::client::call;
use crate::cli::ClientArgs;

/// Validates `file` overlaid on `profile` exactly as `serve` would (relative paths against the file's
/// directory, key and TLS files read, listeners beyond loopback need TLS or auth unless `insecure`); prints
/// every problem (or JSON) and fails with exit code 3.
pub fn validate(file: &Path, profile: Profile, insecure: bool, json: bool) -> anyhow::Result<()> {
    let outcome = config::load(profile, Some(file), &config::EnvVars::of_this_process()).and_then(|config| {
        match stella_collector::refuse_insecure_listeners(&config, insecure) {
            Ok(()) => Ok(config),
            Err(stella_collector::StartError::Insecure { key, address }) => Err(config::ConfigErrors::one(
                key,
                format!("{address} is not loopback and has no TLS while auth is off; add `tls:`, enable auth, bind 127.0.0.1, or serve with --insecure (and validate with --insecure)"),
            )),
            Err(other) => Err(config::ConfigErrors::one("(listeners)".into(), other.to_string())),
        }
    });
    if json {
        let errors: Vec<serde_json::Value> = match &outcome {
            Ok(_) => Vec::new(),
            Err(errors) => {
                errors.0.iter().map(|error| serde_json::json!({"path": error.path, "message": error.message})).collect()
            }
        };
        println!("{}", serde_json::json!({"valid": outcome.is_ok(), "errors": errors}));
    }
    match outcome {
        Ok(config) => {
            if !json {
                println!(
                    "{}: valid ({} pipelines: {})",
                    file.display(),
                    config.pipelines.len(),
                    config.pipelines.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            Ok(())
        }
        Err(errors) => Err(anyhow::Error::new(errors).context(format!("{} is not a valid config", file.display()))),
    }
}

/// Prints the effective config of `profile` overlaid with `overlay` as YAML.
pub fn show(profile: Profile, overlay: Option<&Path>) -> anyhow::Result<()> {
    let value = config::effective_value(profile, overlay)?;
    let yaml = serde_saphyr::to_string(&value).context("cannot render the config as YAML")?;
    print!("{yaml}");
    Ok(())
}

/// Asks the server at `client.server` to reload its config.
pub async fn reload(client: &ClientArgs, json: bool) -> anyhow::Result<()> {
    let answer =
        call(reqwest::Method::POST, &client.server, "/telemetry/config/reload", client.token.as_deref(), None).await?;
    if json {
        println!("{answer}");
    }
    if !json {
        let restart: Vec<&str> = answer["restart_required"]
            .as_array()
            .map(|keys| keys.iter().filter_map(|key| key.as_str()).collect())
            .unwrap_or_default();
        println!("config reloaded; pipelines: {}", answer["pipelines"]);
        if !restart.is_empty() {
            println!("restart needed for: {}", restart.join(", "));
        }
    }
    Ok(())
}
