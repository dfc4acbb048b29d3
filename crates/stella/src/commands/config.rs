//! `stella telemetry config validate | show | reload`.
use std::path::Path;

use anyhow::Context;
use stella_collector::config::{self, Config, Profile};

use super::client::call;
use crate::cli::ClientArgs;

/// Validates `file` overlaid on `profile`; prints every problem (or JSON) and fails with exit code 3.
pub fn validate(file: &Path, profile: Profile, json: bool) -> anyhow::Result<()> {
    let outcome = config::effective_value(profile, Some(file)).and_then(|value| Config::from_value(&value));
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
    let answer = call(reqwest::Method::POST, &client.server, "/telemetry/config/reload", client.token.as_deref(), None)
        .await
        .context("the server refused the reload")?;
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
