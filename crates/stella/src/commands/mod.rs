//! One module per subcommand, each with an `execute` function.
mod client;
mod config;
mod dora;
mod evidence;
mod federation;
mod hold;
mod incident;
mod loadgen;
mod offline_kit;
mod query;
mod release;
mod serve;
mod tokens;
mod version;

use std::path::Path;

use stella_collector::config::{EnvVars, Profile};
use stella_store::chunks::StoreView;

use crate::cli::{AuditCommand, Command, ConfigCommand, RenderCommand, RulesCommand, StoreCommand, TelemetryCommand};

/// Runs a parsed command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let command = match command {
        Command::Telemetry { command } => *command,
        Command::Version { json } => return version::execute(json),
        Command::Completions { shell } => return release::completions(shell),
        Command::Manpages { out } => return release::manpages(&out),
    };
    match command {
        TelemetryCommand::Serve(args) => serve::execute(args).await,
        TelemetryCommand::Loadgen(args) => loadgen::execute(args).await,
        TelemetryCommand::Tokens { command } => tokens::execute(command).await,
        TelemetryCommand::Incident { command } => incident::execute(command).await,
        TelemetryCommand::Query { command } => query::execute(command).await,
        TelemetryCommand::Hold { command } => hold::execute(command).await,
        TelemetryCommand::Dora { command } => dora::execute(command).await,
        TelemetryCommand::Federation { command } => federation::execute(command).await,
        TelemetryCommand::Store { command: StoreCommand::Check { data_dir, repair, config, json } } => {
            tokio::task::spawn_blocking(move || store_check(&data_dir, config.as_deref(), repair, json)).await?
        }
        TelemetryCommand::Rules { command: RulesCommand::Render { out, runbook_base_url, json } } => {
            render(stella_export::monitoring::RULES, &out, Some(&runbook_base_url), json)
        }
        TelemetryCommand::Rules { command: RulesCommand::Test { files, json } } => rules_test(&files, json),
        TelemetryCommand::Dashboards { command: RenderCommand::Render { out, json } } => {
            render(stella_export::monitoring::DASHBOARDS, &out, None, json)
        }
        TelemetryCommand::Audit { command: AuditCommand::Verify { data_dir, trusted_keys, json } } => {
            audit_verify(&data_dir, &trusted_keys, json)
        }
        TelemetryCommand::Keys { command } => evidence::keys(command),
        TelemetryCommand::Capture(args) => evidence::capture(args).await,
        TelemetryCommand::Verify(args) => evidence::verify(args),
        TelemetryCommand::Replay(args) => evidence::replay(args).await,
        TelemetryCommand::Deploy(args) => evidence::deploy(args).await,
        TelemetryCommand::OfflineKit { command } => offline_kit::execute(command),
        TelemetryCommand::Release { command } => release::execute(command),
        TelemetryCommand::Config { command } => match command {
            ConfigCommand::Validate { file, profile, insecure, json } => {
                config::validate(&file, profile, insecure, json)
            }
            ConfigCommand::Show { profile, config } => config::show(profile, config.as_deref()),
            ConfigCommand::Reload { client, json } => config::reload(&client, json).await,
        },
    }
}

/// The store under `<data_dir>/store` for an offline reader, as the server of `config` (over `profile`)
/// sees it: with its `storage.backend`, chunks in object storage are read back (read-only), and the
/// records its sealing consumers hold open are read from the ingest logs. Call it on a blocking thread
/// of the runtime.
pub(crate) fn offline_store(
    data_dir: &Path,
    config: Option<&Path>,
    profile: Profile,
) -> anyhow::Result<stella_collector::OfflineStore> {
    let config =
        stella_collector::config::load(profile, config, &EnvVars::of_this_process()).map_err(
            |errors| match config {
                Some(path) => anyhow::anyhow!("{}: {errors}", path.display()),
                None => anyhow::anyhow!("the {profile} profile: {errors}"),
            },
        )?;
    let store = stella_collector::reader_store(data_dir, config.storage.backend.as_ref())?;
    Ok(stella_collector::OfflineStore::new(store, data_dir, &config))
}

/// `stella telemetry rules|dashboards render`: writes `assets` under `out` and lists them.
fn render(
    assets: &[stella_export::monitoring::Asset],
    out: &Path,
    runbook_base_url: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let written = stella_export::monitoring::render(assets, out, runbook_base_url)
        .map_err(|error| anyhow::anyhow!("cannot write into {}: {error}", out.display()))?;
    if json {
        let paths: Vec<String> = written.iter().map(|path| path.display().to_string()).collect();
        println!("{}", serde_json::json!({ "files": paths }));
    } else {
        for path in &written {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// `audit verify`: the chain, the head in the state database (unless a running server holds it), and the
/// checkpoints' signatures against `trusted_keys`.
/// `rules test`: every file's unit tests with Stella's rule evaluator; an error (exit 1) if any failed.
fn rules_test(files: &[std::path::PathBuf], json: bool) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        let report = stella_query::rules::unit::run(file).map_err(anyhow::Error::msg)?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!("Unit Testing:  {}", report.file);
            if report.failures.is_empty() {
                println!("  SUCCESS\n");
            } else {
                println!("  FAILED:");
                for failure in &report.failures {
                    println!("    {failure}");
                }
                println!();
            }
        }
        failed += usize::from(!report.failures.is_empty());
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} rule test files failed", files.len());
    }
    Ok(())
}

fn audit_verify(data_dir: &Path, trusted_keys: &[std::path::PathBuf], json: bool) -> anyhow::Result<()> {
    let live = reading(data_dir)?;
    let state = match stella_store::tables::StateDb::open(data_dir) {
        Ok(state) => Some(state),
        Err(stella_store::tables::StateError::AlreadyOpen { .. }) if live => None,
        Err(error) => return Err(error.into()),
    };
    let trust =
        (!trusted_keys.is_empty()).then(|| stella_evidence::TrustStore::from_files(trusted_keys)).transpose()?;
    let verified = stella_api::audit::AuditLog::new(data_dir, state.as_ref()).verify(trust.as_ref())?;
    let checkpoint = verified.last_checkpoint.as_ref();
    if json {
        let answer = serde_json::json!({
            "intact": true,
            "lines": verified.lines,
            "anchored": verified.anchored,
            "checkpoints": verified.checkpoints,
            "last_verified_checkpoint": checkpoint.map(|(line, keyid)| serde_json::json!({"line": line, "keyid": keyid})),
            "lines_after_checkpoint": verified.after_checkpoint,
        });
        println!("{answer}");
        return Ok(());
    }
    println!("audit trail intact: {} lines, {} checkpoints", verified.lines, verified.checkpoints);
    match checkpoint {
        Some((line, keyid)) => println!(
            "last verified checkpoint: line {line}, signed by {keyid}; {} lines after it",
            verified.after_checkpoint
        ),
        None if trust.is_none() => {
            println!("checkpoint signatures not checked: pass the server's key with --trusted-key")
        }
        None => println!("no checkpoint verified"),
    }
    if !verified.anchored {
        println!(
            "the end of the file was not checked against the state database (a running server holds it, or it records no head)"
        );
    }
    Ok(())
}

/// Takes `data_dir` for reading: an error when it does not exist; true (and said on stderr) when a running
/// server holds it, so what is read may change meanwhile.
pub(crate) fn reading(data_dir: &Path) -> anyhow::Result<bool> {
    match stella_store::lock::DataDirLock::for_reader(data_dir)? {
        stella_store::lock::ReadAccess::Quiet(_) => Ok(false),
        stella_store::lock::ReadAccess::Live(pid) => {
            let holder = pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default();
            eprintln!("note: a running server{holder} uses {}: reading it live", data_dir.display());
            Ok(true)
        }
    }
}

/// `stella telemetry store check`: the report of the chunks and the ingest logs, and exit 1 if anything is
/// damaged or (without `--repair`) stale.
fn store_check(data_dir: &Path, config: Option<&Path>, repair: bool, json: bool) -> anyhow::Result<()> {
    // Repairs rewrite index files a running server also writes: only with the directory to itself.
    let _writer = if repair {
        Some(stella_store::lock::DataDirLock::for_writer(data_dir)?)
    } else {
        reading(data_dir)?;
        None
    };
    let store = offline_store(data_dir, config, Profile::Default)?;
    let report = store.store().check(repair)?;
    let logs = check_logs(&data_dir.join("log"))?;
    let damaged_logs = logs.iter().filter(|log| !log.intact()).count();
    if json {
        let mut answer = serde_json::to_value(&report)?;
        answer["logs"] = serde_json::to_value(&logs)?;
        println!("{answer}");
    } else {
        for log in logs.iter().filter(|log| !log.intact()) {
            for damage in &log.damage {
                println!(
                    "DAMAGED LOG {} bytes {}..{} ({}; {} records lost)",
                    damage.segment.display(),
                    damage.bytes.start,
                    damage.bytes.end,
                    damage.reason,
                    damage.records()
                );
            }
            for file in &log.quarantined {
                println!("QUARANTINED {}", file.display());
            }
        }
        println!("{} ingest logs checked, {damaged_logs} with damage", logs.len());
        println!("{} chunks intact ({} read back from object storage)", report.chunks_ok, report.remote_ok);
        if !report.remote_unchecked.is_empty() {
            println!(
                "{} chunks are in object storage only and were not checked: pass the server's config with --config",
                report.remote_unchecked.len()
            );
        }
        for damaged in &report.damaged {
            println!("DAMAGED {damaged}");
        }
        for leftover in &report.leftovers {
            println!(
                "LEFTOVER {leftover} (of runs already merged: harmless; the next server's first seal of its day or --repair deletes it)"
            );
        }
        for stale in &report.stale_indexes {
            let done = if report.repaired_indexes.contains(stale) { "rebuilt" } else { "run with --repair to rebuild" };
            println!("STALE INDEX {stale} ({done})");
        }
    }
    let unrepaired = report.stale_indexes.iter().any(|stale| !report.repaired_indexes.contains(stale));
    if !report.damaged.is_empty() || unrepaired || damaged_logs > 0 {
        anyhow::bail!("the store is not intact");
    }
    Ok(())
}

/// Checks every ingest log under `root` (`<data-dir>/log/<pipeline>/<tenant>`).
fn check_logs(root: &Path) -> anyhow::Result<Vec<stella_store::log::LogCheck>> {
    let mut checks = Vec::new();
    let Ok(pipelines) = std::fs::read_dir(root) else { return Ok(checks) };
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for pipeline in pipelines.filter_map(Result::ok).filter(|entry| entry.path().is_dir()) {
        let tenants = std::fs::read_dir(pipeline.path())?;
        dirs.extend(tenants.filter_map(Result::ok).map(|entry| entry.path()).filter(|path| path.is_dir()));
    }
    dirs.sort();
    for dir in dirs {
        checks.push(stella_store::log::check_log(&stella_store::log::RealFs, &dir)?);
    }
    Ok(checks)
}
