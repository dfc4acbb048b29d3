//! One module per subcommand, each with an `execute` function.
mod client;
mod config;
mod evidence;
mod hold;
mod incident;
mod loadgen;
mod offline_kit;
mod query;
mod serve;
mod tokens;

use crate::cli::{AuditCommand, Command, ConfigCommand, StoreCommand, TelemetryCommand};

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
        TelemetryCommand::Store { command: StoreCommand::Check { data_dir, repair, json } } => {
            store_check(&data_dir, repair, json)
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

/// `stella telemetry store check`: the report, and exit 1 if anything is damaged or (without `--repair`)
/// stale.
fn store_check(data_dir: &std::path::Path, repair: bool, json: bool) -> anyhow::Result<()> {
    let store = stella_store::chunks::Store::new(data_dir.join("store"));
    let report = store.check(repair)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{} chunks intact", report.chunks_ok);
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
