//! `stella telemetry offline-kit build | verify`: everything an air-gapped site needs, signed.
use std::fs::File;
use std::io::BufReader;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use stella_collector::config::Profile;
use stella_evidence::offline_kit::{self, KitFile, KitSource};
use stella_evidence::{KeyKind, Limits, SigningKey, TrustStore, config_bundle};

use super::evidence::{compression, new_output, signer_text};
use crate::cli::OfflineKitCommand;

/// The kit's read-me (installation and verification steps).
const INSTRUCTIONS: &str = include_str!("../../../../packaging/INSTRUCTIONS.md");
/// The installer.
const INSTALL_SH: &str = include_str!("../../../../packaging/install.sh");
/// The systemd unit template the installer fills in.
const SERVICE_TEMPLATE: &str = include_str!("../../../../packaging/stella.service.in");

/// Runs an offline-kit command.
pub fn execute(command: OfflineKitCommand) -> anyhow::Result<()> {
    match command {
        OfflineKitCommand::Build { out, compression: chosen, data_dir, signing_key, binary, json } => {
            let key = match &signing_key {
                Some(path) => SigningKey::load(path)?,
                None => SigningKey::load_or_generate(&data_dir.join("keys"))?,
            };
            if key.kind() != KeyKind::Ed25519 {
                anyhow::bail!(
                    "offline kits are signed with Ed25519 (an HMAC key proves nothing to the site that receives the kit); pass an Ed25519 --signing-key"
                );
            }
            let binary = match binary {
                Some(binary) => binary,
                None => std::env::current_exe().context("cannot find the running stella binary; pass --binary")?,
            };
            let files = contents(&key, binary)?;
            let (_, mut output) = new_output(&out)?;
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.set_message(format!("writing {} files", files.len()));
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let summary = offline_kit::build(files, &key, compression(chosen), output.as_file_mut())?;
            spinner.finish_and_clear();
            output.as_file().sync_all().context("cannot sync the kit")?;
            output.persist(&out).with_context(|| format!("cannot write {}", out.display()))?;
            if json {
                let answer = json!({
                    "path": out.display().to_string(),
                    "sha256": summary.archive_sha256,
                    "bytes": summary.archive_bytes,
                    "signer": {"keyid": summary.signer.keyid, "integrity_only": summary.signer.integrity_only},
                    "files": summary.manifest.files,
                });
                println!("{answer}");
                return Ok(());
            }
            println!("wrote {} ({} bytes, sha256 {})", out.display(), summary.archive_bytes, summary.archive_sha256);
            for file in &summary.manifest.files {
                println!("  {:<40} {:>12} bytes  sha256 {}", file.path, file.size, file.sha256);
            }
            println!("  signed by {}", signer_text(&summary.signer.keyid, summary.signer.integrity_only));
            Ok(())
        }
        OfflineKitCommand::Verify { kit, trusted_keys, extract, json } => {
            let trust = TrustStore::from_files(&trusted_keys)?;
            let reader = File::open(&kit)
                .map(BufReader::new)
                .map_err(|source| stella_evidence::BundleError::Read { file: kit.clone(), source });
            let result = reader.and_then(|reader| match &extract {
                Some(dir) => offline_kit::extract_kit(reader, &trust, &Limits::default(), dir),
                None => offline_kit::verify_kit(reader, &trust, &Limits::default()),
            });
            match result {
                Ok(verified) => {
                    if json {
                        let answer = json!({
                            "verified": true,
                            "path": kit.display().to_string(),
                            "extracted": extract.as_ref().map(|dir| dir.display().to_string()),
                            "signer": {"keyid": verified.signer.keyid, "integrity_only": verified.signer.integrity_only},
                            "files": verified.manifest.files,
                        });
                        println!("{answer}");
                    } else {
                        println!("verified {} ({} files)", kit.display(), verified.manifest.files.len());
                        println!("  signed by {}", signer_text(&verified.signer.keyid, verified.signer.integrity_only));
                        if let Some(dir) = &extract {
                            println!(
                                "  extracted into {}; install with: sudo {}/bootstrap/install.sh",
                                dir.display(),
                                dir.display()
                            );
                        }
                    }
                    Ok(())
                }
                Err(error) => {
                    if json {
                        println!("{}", json!({"verified": false, "code": error.code(), "message": error.to_string()}));
                    }
                    Err(error.into())
                }
            }
        }
    }
}

/// Every file of the kit: the binary, each profile's signed config, the signer's public key, the built-in
/// redaction profiles, the bootstrap scripts, the instructions, the alerting rules and the dashboards.
fn contents(key: &SigningKey, binary: std::path::PathBuf) -> anyhow::Result<Vec<KitFile>> {
    let bytes = |path: &str, content: &[u8], executable: bool| KitFile {
        path: path.to_string(),
        source: KitSource::Bytes(content.to_vec()),
        executable,
    };
    let public_key = key.public_key_pem().context("the kit's key has no public key")?;
    let mut files = vec![
        KitFile { path: "bin/stella".into(), source: KitSource::File(binary), executable: true },
        bytes("INSTRUCTIONS.md", INSTRUCTIONS.as_bytes(), false),
        bytes("bootstrap/install.sh", INSTALL_SH.as_bytes(), true),
        bytes("bootstrap/stella.service.in", SERVICE_TEMPLATE.as_bytes(), false),
        bytes("keys/signing-key.pub.pem", public_key.as_bytes(), false),
    ];
    for profile in Profile::ALL {
        let yaml = profile.yaml().as_bytes();
        files.push(bytes(&format!("config/{profile}.yaml"), yaml, false));
        files.push(bytes(&format!("config/{profile}.yaml.dsse.json"), &config_bundle::sign(yaml, key), false));
    }
    for (name, yaml) in stella_pipeline::redaction::BUILT_IN_PROFILES {
        files.push(bytes(&format!("redaction-profiles/{name}.yaml"), yaml.as_bytes(), false));
    }
    let monitoring =
        [("rules", stella_export::monitoring::RULES), ("dashboards", stella_export::monitoring::DASHBOARDS)];
    for (dir, assets) in monitoring {
        for asset in assets {
            files.push(bytes(&format!("{dir}/{}", asset.path), asset.content.as_bytes(), false));
        }
    }
    Ok(files)
}
