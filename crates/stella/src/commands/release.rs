//! `stella telemetry release sign | verify` (the publisher's signature over a release directory), and what
//! packaging generates from the command line itself: `stella completions <shell>` and `stella manpages`.
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use serde_json::json;
use stella_evidence::{KeyKind, SigningKey, TrustStore, release};

use super::evidence::signer_text;
use crate::cli::{Cli, ReleaseCommand};

/// Runs a release command.
pub fn execute(command: ReleaseCommand) -> anyhow::Result<()> {
    match command {
        ReleaseCommand::Sign { dir, signing_key, json } => {
            let key = SigningKey::load(&signing_key)?;
            if key.kind() != KeyKind::Ed25519 {
                anyhow::bail!(
                    "releases are signed with Ed25519 (an HMAC key proves nothing to whoever installs the release); pass an Ed25519 --signing-key"
                );
            }
            let signed = release::sign_dir(&dir, &key)?;
            if json {
                println!("{}", json!({"dir": dir.display().to_string(), "signer": {"keyid": signed.signer.keyid}}));
            } else {
                println!("signed {} (manifest.json, manifest.dsse.json)", dir.display());
                println!("  signed by {}", signer_text(&signed.signer.keyid, signed.signer.integrity_only));
            }
            Ok(())
        }
        ReleaseCommand::Verify { dir, trusted_keys, json } => {
            let trust = TrustStore::from_files(&trusted_keys)?;
            match release::verify_dir(&dir, &trust) {
                Ok((manifest, signer)) => {
                    if json {
                        let answer = json!({
                            "verified": true,
                            "dir": dir.display().to_string(),
                            "signer": {"keyid": signer.keyid, "integrity_only": signer.integrity_only},
                            "files": manifest.files,
                        });
                        println!("{answer}");
                    } else {
                        println!("verified {} ({} files)", dir.display(), manifest.files.len());
                        for file in &manifest.files {
                            println!("  {:<40} {:>12} bytes  sha256 {}", file.path, file.size, file.sha256);
                        }
                        println!("  signed by {}", signer_text(&signer.keyid, signer.integrity_only));
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

/// Prints the completion script of `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "stella", &mut std::io::stdout());
    Ok(())
}

/// Writes the man page of `stella` and of every subcommand into `out`.
pub fn manpages(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let command = Cli::command();
    clap_mangen::generate_to(command, out)
        .with_context(|| format!("cannot write the man pages into {}", out.display()))?;
    Ok(())
}
