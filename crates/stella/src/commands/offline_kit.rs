//! `stella telemetry offline-kit build | verify`: everything an air-gapped site needs, signed.
use std::fs::File;
use std::io::BufReader;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use stella_collector::config::Profile;
use stella_evidence::file_set::{ENVELOPE_FILE, MANIFEST_FILE};
use stella_evidence::offline_kit::{self, KitFile, KitSource, KitTrust};
use stella_evidence::release::{self, KIT_DIR};
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
        OfflineKitCommand::Build { out, compression: chosen, data_dir, signing_key, binary, release, json } => {
            let key = match &signing_key {
                Some(path) => SigningKey::load(path)?,
                None => SigningKey::load_or_generate(&data_dir.join("keys"))?,
            };
            if key.kind() != KeyKind::Ed25519 {
                anyhow::bail!(
                    "offline kits are signed with Ed25519 (an HMAC key proves nothing to the site that receives the kit); pass an Ed25519 --signing-key"
                );
            }
            let binary = match (binary, &release) {
                (Some(binary), _) => binary,
                (None, Some(dir)) => dir.join(release::BINARY),
                (None, None) => {
                    std::env::current_exe().context("cannot find the running stella binary; pass --binary")?
                }
            };
            let mut files = contents(&key, binary)?;
            if let Some(dir) = &release {
                files.extend(release_files(dir, &key)?);
            }
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
        OfflineKitCommand::Verify { kit, trusted_keys, release_keys, extract, json } => {
            let kit_trust = TrustStore::from_files(&trusted_keys)?;
            let release_trust =
                if release_keys.is_empty() { None } else { Some(TrustStore::from_files(&release_keys)?) };
            let trust = KitTrust { kit: &kit_trust, release: release_trust.as_ref() };
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
                            "release_signer": verified.release.as_ref().map(|signer| json!({"keyid": signer.keyid})),
                            "files": verified.manifest.files,
                        });
                        println!("{answer}");
                    } else {
                        println!("verified {} ({} files)", kit.display(), verified.manifest.files.len());
                        println!("  signed by {}", signer_text(&verified.signer.keyid, verified.signer.integrity_only));
                        if let Some(signer) = &verified.release {
                            println!(
                                "  carries a release (the .deb, SBOM, SHA256SUMS, bin/stella) signed by the release key {}",
                                signer_text(&signer.keyid, signer.integrity_only)
                            );
                        }
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

/// The files of the signed release in `dir`, under `release/`, after checking the release is whole and
/// signed by a key other than the kit's (the publisher's signature says which build it is; the site's key
/// only that the site ships it).
fn release_files(dir: &std::path::Path, kit_key: &SigningKey) -> anyhow::Result<Vec<KitFile>> {
    let envelope = std::fs::read(dir.join(ENVELOPE_FILE)).with_context(|| {
        format!(
            "{} is not a signed release (no manifest.dsse.json); sign it with `stella telemetry release sign`",
            dir.display()
        )
    })?;
    let envelope = stella_evidence::Envelope::from_json(&envelope)
        .with_context(|| format!("{}/manifest.dsse.json is not a DSSE envelope", dir.display()))?;
    if let Some(signer) =
        envelope.signatures().iter().map(|signature| &signature.keyid).find(|keyid| *keyid == kit_key.keyid())
    {
        anyhow::bail!(
            "the release in {} is signed with the kit's own key {signer}; releases carry the publisher's release key, kits the site's",
            dir.display()
        );
    }
    let mut names = release::files(dir).with_context(|| format!("cannot list the release in {}", dir.display()))?;
    names.extend([MANIFEST_FILE.to_string(), ENVELOPE_FILE.to_string()]);
    let files = names.into_iter().map(|name| KitFile {
        path: format!("{KIT_DIR}/{name}"),
        source: KitSource::File(dir.join(&name)),
        executable: name == release::BINARY,
    });
    Ok(files.collect())
}
