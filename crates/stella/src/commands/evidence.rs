//! `stella telemetry keys generate | capture | verify | replay | deploy`: signed evidence on the command line.
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use stella_evidence::config_bundle;
use stella_evidence::file_set::FileSetVerifier;
use stella_evidence::forensic::{self, CaptureProgress};
use stella_evidence::payload_types;
use stella_evidence::{
    BundleHeader, BundleManifest, BundleReader, Compression, Limits, SigningKey, TrustStore, VerifiedBundle,
    verify_bundle,
};

use super::client::{encode_query, refused};
use crate::cli::{CaptureArgs, CompressionArg, DeployArgs, KeysCommand, ReplayArgs, VerifyArgs};
use crate::exit::ServerError;

/// `stella telemetry keys generate`.
pub fn keys(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Generate { out, kind, json } = command;
    let key = SigningKey::generate(kind)?;
    let files = key.write_files(&out)?;
    let public = files.public_key.as_ref().map(|path| path.display().to_string());
    if json {
        let answer = json!({
            "kind": kind.as_str(),
            "keyid": key.keyid(),
            "integrity_only": key.integrity_only(),
            "private_key": files.private_key.display().to_string(),
            "public_key": public,
        });
        println!("{answer}");
        return Ok(());
    }
    println!("{} key {}", kind.as_str(), key.keyid());
    println!("  private key {} (mode 0600; keep it secret)", files.private_key.display());
    match public {
        Some(public) => println!("  public key  {public} (give it to verifiers: --trusted-key, evidence.trusted_keys)"),
        None => println!("  integrity-only: an HMAC secret proves nothing changed, not who signed; share it securely"),
    }
    Ok(())
}

/// `stella telemetry capture`: from the local store, or from a server with `--server`.
pub async fn capture(args: CaptureArgs) -> anyhow::Result<()> {
    match args.remote.server.clone() {
        Some(server) => capture_remote(&args, &server).await,
        None => tokio::task::spawn_blocking(move || capture_local(&args)).await?,
    }
}

fn capture_local(args: &CaptureArgs) -> anyhow::Result<()> {
    let window = forensic::parse_window(&args.window, jiff::Timestamp::now())?;
    if !args.data_dir.is_dir() {
        anyhow::bail!(
            "no data directory at {}: pass the server's --data-dir (or use --server URL to ask a running server)",
            args.data_dir.display()
        );
    }
    super::reading(&args.data_dir)?;
    let store = super::offline_store(&args.data_dir, args.config.as_deref(), args.profile)?;
    // The key the server signs with: --signing-key, else the config's evidence.signing_key, else the
    // data directory's own.
    let key = match args.signing_key.as_ref().or(store.signing_key()) {
        Some(path) => SigningKey::load(path)?,
        None => SigningKey::load_or_generate(&args.data_dir.join("keys"))?,
    };
    let tenant = args.tenant.clone().unwrap_or_else(|| "default".to_string());
    let header = BundleHeader {
        tenant: tenant.clone(),
        window,
        profile: args.profile.to_string(),
        redaction_profiles: Vec::new(),
        generator: forensic::generator(),
    };
    let (dir, mut output) = new_output(&args.out)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} chunks {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = |state: CaptureProgress| {
        bar.set_length(state.chunks_total);
        bar.set_position(state.chunks_done);
        bar.set_message(format!("{} records", state.records));
    };
    let source = forensic::CaptureSource { view: &store, spool_dir: &dir };
    let summary =
        forensic::capture(&source, header, &key, compression(args.compression), output.as_file_mut(), &mut progress)?;
    bar.finish_and_clear();
    output.as_file().sync_all().context("cannot sync the bundle")?;
    output.persist(&args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    let manifest = &summary.manifest;
    if args.json {
        let answer = json!({
            "path": args.out.display().to_string(),
            "sha256": summary.archive_sha256,
            "bytes": summary.archive_bytes,
            "manifest_sha256": summary.manifest_sha256,
            "signer": {"keyid": summary.signer.keyid, "integrity_only": summary.signer.integrity_only},
            "manifest": manifest,
        });
        println!("{answer}");
        return Ok(());
    }
    println!("wrote {} ({} bytes, sha256 {})", args.out.display(), summary.archive_bytes, summary.archive_sha256);
    print_contents(manifest);
    println!("  signed by {}", signer_text(&summary.signer.keyid, summary.signer.integrity_only));
    Ok(())
}

async fn capture_remote(args: &CaptureArgs, server: &str) -> anyhow::Result<()> {
    let mut path = format!(
        "/telemetry/exports/forensic/{}?compression={}",
        encode_query(&args.window),
        compression(args.compression).as_str()
    );
    if let Some(tenant) = &args.tenant {
        path.push_str(&format!("&tenant={}", encode_query(tenant)));
    }
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut request = super::client::http()?.get(&url);
    if let Some(token) = &args.remote.token {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send()
        .await
        .with_context(|| format!("{url} is unreachable; is `stella telemetry serve` running there?"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(refused(&url, status, &response.bytes().await.unwrap_or_default()));
    }
    let header =
        |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_string();
    let (sha256, signer) = (header("x-stella-bundle-sha256"), header("x-stella-bundle-signer"));
    let (_, mut output) = new_output(&args.out)?;
    let bar = ProgressBar::new(response.content_length().unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await.with_context(|| format!("the download from {url} broke off"))? {
        output.write_all(&chunk).context("cannot write the bundle")?;
        written += chunk.len() as u64;
        bar.set_position(written);
    }
    bar.finish_and_clear();
    output.as_file().sync_all().context("cannot sync the bundle")?;
    output.persist(&args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    if args.json {
        let answer =
            json!({"path": args.out.display().to_string(), "bytes": written, "sha256": sha256, "signer": signer});
        println!("{answer}");
    } else {
        println!("wrote {} ({written} bytes, sha256 {sha256}), signed by {signer}", args.out.display());
        println!("  check it: stella telemetry verify {} --trusted-key <server public key>", args.out.display());
    }
    Ok(())
}

/// A temporary file next to `out` (renamed into place when complete, so a failed capture leaves nothing).
pub(super) fn new_output(out: &Path) -> anyhow::Result<(PathBuf, tempfile::NamedTempFile)> {
    let dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file = tempfile::Builder::new()
        .prefix(".stella-bundle")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    Ok((dir, file))
}

pub(super) fn compression(arg: CompressionArg) -> Compression {
    match arg {
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Zstd => Compression::Zstd,
    }
}

/// `stella telemetry verify`: prints what was verified, or fails with the failure's class and exit code.
pub fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let trust = TrustStore::from_files(&args.trusted_keys)?;
    if args.bundle.to_string_lossy().ends_with(".dsse.json") {
        return verify_rotation(&args, &trust);
    }
    let result = File::open(&args.bundle)
        .map_err(|source| stella_evidence::BundleError::Read { file: args.bundle.clone(), source })
        .and_then(|file| verify_bundle(BufReader::new(file), &trust, &Limits::default()));
    match result {
        Ok(verified) if args.json => {
            println!("{}", verified_json(&args.bundle, &verified));
            Ok(())
        }
        Ok(verified) => {
            println!("verified {}", args.bundle.display());
            print_contents(&verified.manifest);
            println!("  signed by {}", signer_text(&verified.signer.keyid, verified.signer.integrity_only));
            Ok(())
        }
        Err(error) => {
            if args.json {
                let answer = json!({"verified": false, "code": error.code(), "message": error.to_string()});
                println!("{answer}");
            }
            Err(error.into())
        }
    }
}

/// A rotated file's signed manifest (`<file>.dsse.json`): the signature, then every file it names in its
/// directory.
fn verify_rotation(args: &VerifyArgs, trust: &TrustStore) -> anyhow::Result<()> {
    let envelope = &args.bundle;
    let dir = envelope.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let result = std::fs::read(envelope)
        .map_err(|source| stella_evidence::BundleError::Read { file: envelope.clone(), source })
        .and_then(|json| FileSetVerifier::open(&json, None, trust, payload_types::ROTATION_MANIFEST))
        .and_then(|verifier| verifier.check_dir(&dir));
    match result {
        Ok(verified) if args.json => {
            let answer = json!({
                "verified": true,
                "path": envelope.display().to_string(),
                "files": verified.manifest.files,
                "signer": {"keyid": verified.signer.keyid, "integrity_only": verified.signer.integrity_only},
            });
            println!("{answer}");
            Ok(())
        }
        Ok(verified) => {
            println!("verified {}", envelope.display());
            for file in &verified.manifest.files {
                println!("  {} {} bytes, sha256 {}", file.path, file.size, file.sha256);
            }
            println!("  signed by {}", signer_text(&verified.signer.keyid, verified.signer.integrity_only));
            Ok(())
        }
        Err(error) => {
            if args.json {
                println!("{}", json!({"verified": false, "code": error.code(), "message": error.to_string()}));
            }
            Err(error.into())
        }
    }
}

fn verified_json(path: &Path, verified: &VerifiedBundle) -> serde_json::Value {
    json!({
        "verified": true,
        "path": path.display().to_string(),
        "manifest_sha256": verified.manifest_sha256,
        "signer": {"keyid": verified.signer.keyid, "integrity_only": verified.signer.integrity_only},
        "manifest": verified.manifest,
    })
}

fn print_contents(manifest: &BundleManifest) {
    println!("  tenant  {}", manifest.tenant);
    println!("  window  {} .. {} (end exclusive)", manifest.window.start, manifest.window.end);
    println!("  profile {}", manifest.profile);
    if manifest.files.is_empty() {
        println!("  no records in the window");
    }
    for file in &manifest.files {
        println!(
            "  {:<7} {} records, {} {}, {} bytes, sha256 {}",
            file.signal.as_str(),
            file.records,
            file.items,
            file.signal.item_name(),
            file.size,
            file.sha256
        );
    }
    for profile in &manifest.redaction_profiles {
        println!("  redaction profile {} sha256:{}", profile.name, profile.sha256);
    }
}

pub(super) fn signer_text(keyid: &str, integrity_only: bool) -> String {
    if integrity_only {
        format!("{keyid} (HMAC-SHA256: integrity-only, does not prove who signed)")
    } else {
        format!("{keyid} (Ed25519)")
    }
}

/// `stella telemetry replay`: verifies the whole bundle, then posts its records in order.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let trust = TrustStore::from_files(&args.trusted_keys)?;
    let bundle = args.bundle.clone();
    let mut reader = tokio::task::spawn_blocking(move || {
        let file = File::open(&bundle)
            .map_err(|source| stella_evidence::BundleError::Read { file: bundle.clone(), source })?;
        BundleReader::open(BufReader::new(file), &trust, &Limits::default(), &std::env::temp_dir())
    })
    .await??;
    let manifest = reader.verified().manifest.clone();
    let bar = ProgressBar::new(manifest.totals.records);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} records {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let client = super::client::http()?;
    let mut pace = args.rate.filter(|rate| *rate > 0).map(|rate| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let base = args.endpoint.trim_end_matches('/');
    let mut sent = (0u64, 0u64);
    for signal in manifest.signals.clone() {
        let url = format!("{base}/v1/{}", signal.as_str());
        for record in reader.records(signal)? {
            let record = record?;
            if let Some(pace) = pace.as_mut() {
                pace.tick().await;
            }
            post(&client, &url, args.token.as_deref(), record).await?;
            sent.0 += 1;
            bar.inc(1);
        }
        sent.1 += manifest.file(signal).map_or(0, |file| file.items);
    }
    bar.finish_and_clear();
    println!("replayed {} records ({} items) of {} to {base}", sent.0, sent.1, args.bundle.display());
    Ok(())
}

/// Posts one record, retrying what an OTLP receiver asks to retry (429, 502, 503, 504) with capped backoff.
async fn post(client: &reqwest::Client, url: &str, token: Option<&str>, record: Vec<u8>) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=10 {
        let mut request =
            client.post(url).header(reqwest::header::CONTENT_TYPE, "application/x-protobuf").body(record.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("{url} is unreachable"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
        if !retryable || attempt == 10 {
            let body = response.text().await.unwrap_or_default();
            return Err(ServerError { message: format!("{url} refused a record ({status}): {body}") }.into());
        }
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
            .map_or(backoff, Duration::from_secs);
        tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    Ok(())
}

/// `stella telemetry deploy`: fetch (or sign locally), verify, write atomically, ask for a reload.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let profile = args.profile.to_string();
    let mut trust = TrustStore::from_files(&args.trusted_keys)?;
    let (envelope_json, source) = if args.local {
        let key = SigningKey::load_or_generate(&args.data_dir.join("keys"))?;
        trust.insert(key.trusted_key());
        (config_bundle::sign(args.profile.yaml().as_bytes(), &key), format!("{profile} (signed here)"))
    } else {
        if trust.is_empty() {
            anyhow::bail!(
                "give --trusted-key with the server's public key (<data-dir>/keys/signing-key.pub.pem on the server): a config is deployed only after its signature verifies"
            );
        }
        let path = format!("/telemetry/config/profile/{profile}");
        let url = format!("{}{path}", args.client.server.trim_end_matches('/'));
        let mut request = super::client::http()?.get(&url);
        if let Some(token) = &args.client.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{url} is unreachable; is `stella telemetry serve` running there?"))?;
        let status = response.status();
        let bytes = response.bytes().await.with_context(|| format!("cannot read the answer of {url}"))?;
        if !status.is_success() {
            return Err(refused(&url, status, &bytes));
        }
        (bytes.to_vec(), url)
    };
    let (yaml, signer) = config_bundle::open(&envelope_json, Path::new(&source), &trust)?;
    std::fs::create_dir_all(&args.config_dir)
        .with_context(|| format!("cannot create the config directory {}", args.config_dir.display()))?;
    // The envelope first: between the two renames the pair does not verify, so a crash there leaves a
    // config that serve refuses rather than an unsigned one it runs.
    write_atomically(&args.config_dir.join(config_bundle::CONFIG_ENVELOPE_FILE), &envelope_json)?;
    write_atomically(&args.config_dir.join(config_bundle::CONFIG_FILE), &yaml)?;
    config_bundle::verify_dir(&args.config_dir, &trust)?;
    let reload = if args.no_reload {
        None
    } else {
        let answer = super::client::call(
            reqwest::Method::POST,
            &args.client.server,
            "/telemetry/config/reload",
            args.client.token.as_deref(),
            None,
        )
        .await
        .with_context(|| format!("deployed into {}, but the server did not reload", args.config_dir.display()))?;
        Some(answer)
    };
    if args.json {
        let answer = json!({
            "profile": profile,
            "config_dir": args.config_dir.display().to_string(),
            "signer": {"keyid": signer.keyid, "integrity_only": signer.integrity_only},
            "reload": reload,
        });
        println!("{answer}");
        return Ok(());
    }
    println!("deployed profile {profile} into {}", args.config_dir.display());
    println!("  signed by {}", signer_text(&signer.keyid, signer.integrity_only));
    match reload {
        Some(_) => println!("  the server at {} reloaded", args.client.server),
        None => println!(
            "  run it: stella telemetry serve --profile {profile} --config-dir {} --trusted-key <public key>",
            args.config_dir.display()
        ),
    }
    Ok(())
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let (_, mut file) = new_output(path)?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.as_file().sync_all().with_context(|| format!("cannot sync {}", path.display()))?;
    file.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
