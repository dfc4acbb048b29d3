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
mod serve;
mod tokens;

use std::path::Path;

use stella_collector::config::Profile;
use stella_store::chunks::Store;

use crate::cli::{AuditCommand, Command, ConfigCommand, RenderCommand, StoreCommand, TelemetryCommand};

/// Runs a parsed command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Telemetry { command } = command;
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
        TelemetryCommand::Rules { command: RenderCommand::Render { out, json } } => {
            render(stella_export::monitoring::RULES, &out, json)
        }
        TelemetryCommand::Dashboards { command: RenderCommand::Render { out, json } } => {
            render(stella_export::monitoring::DASHBOARDS, &out, json)
        }
        TelemetryCommand::Audit { command: AuditCommand::Verify { data_dir } } => {
            let lines = stella_api::audit::AuditLog::new(&data_dir).verify()?;
            println!("audit trail intact: {lines} lines");
            Ok(())
        }
        TelemetryCommand::Keys { command } => evidence::keys(command),
        TelemetryCommand::Capture(args) => evidence::capture(args).await,
        TelemetryCommand::Verify(args) => evidence::verify(args),
        TelemetryCommand::Replay(args) => evidence::replay(args).await,
        TelemetryCommand::Deploy(args) => evidence::deploy(args).await,
        TelemetryCommand::OfflineKit { command } => offline_kit::execute(command),
        TelemetryCommand::Config { command } => match command {
            ConfigCommand::Validate { file, profile, json } => config::validate(&file, profile, json),
            ConfigCommand::Show { profile, config } => config::show(profile, config.as_deref()),
            ConfigCommand::Reload { client, json } => config::reload(&client, json).await,
        },
    }
}

/// The store under `<data_dir>/store` for an offline reader; with `config` (the server's config file,
/// over `profile`), the object storage of its `storage.backend` is attached read-only. Call it on a
/// blocking thread of the runtime.
pub(crate) fn offline_store(data_dir: &Path, config: Option<&Path>, profile: Profile) -> anyhow::Result<Store> {
    let backend = match config {
        Some(path) => {
            let config = stella_collector::config::load(profile, Some(path))
                .map_err(|errors| anyhow::anyhow!("{}: {errors}", path.display()))?;
            config.storage.backend
        }
        None => None,
    };
    Ok(stella_collector::reader_store(data_dir, backend.as_ref())?)
}

/// `stella telemetry rules|dashboards render`: writes `assets` under `out` and lists them.
fn render(assets: &[stella_export::monitoring::Asset], out: &Path, json: bool) -> anyhow::Result<()> {
    let written = stella_export::monitoring::render(assets, out)
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

/// `stella telemetry store check`: the report, and exit 1 if anything is damaged or (without `--repair`)
/// stale.
fn store_check(data_dir: &Path, config: Option<&Path>, repair: bool, json: bool) -> anyhow::Result<()> {
    let store = offline_store(data_dir, config, Profile::Default)?;
    let report = store.check(repair)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
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
        for stale in &report.stale_indexes {
            let done = if report.repaired_indexes.contains(stale) { "rebuilt" } else { "run with --repair to rebuild" };
            println!("STALE INDEX {stale} ({done})");
        }
    }
    let unrepaired = report.stale_indexes.iter().any(|stale| !report.repaired_indexes.contains(stale));
    if !report.damaged.is_empty() || unrepaired {
        anyhow::bail!("the store is not intact");
    }
    Ok(())
}
