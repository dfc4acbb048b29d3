//! One module per subcommand, each with an `execute` function.
mod client;
mod config;
mod incident;
mod loadgen;
mod query;
mod serve;
mod tokens;

use crate::cli::{AuditCommand, Command, ConfigCommand, TelemetryCommand};

/// Runs a parsed command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Telemetry { command } = command;
    match command {
        TelemetryCommand::Serve(args) => serve::execute(args).await,
        TelemetryCommand::Loadgen(args) => loadgen::execute(args).await,
        TelemetryCommand::Tokens { command } => tokens::execute(command).await,
        TelemetryCommand::Incident { command } => incident::execute(command).await,
        TelemetryCommand::Query { command } => query::execute(command).await,
        TelemetryCommand::Audit { command: AuditCommand::Verify { data_dir } } => {
            let lines = stella_api::audit::AuditLog::new(&data_dir).verify()?;
            println!("audit trail intact: {lines} lines");
            Ok(())
        }
        TelemetryCommand::Config { command } => match command {
            ConfigCommand::Validate { file, profile, json } => config::validate(&file, profile, json),
            ConfigCommand::Show { profile, config } => config::show(profile, config.as_deref()),
            ConfigCommand::Reload { client, json } => config::reload(&client, json).await,
        },
    }
}
