//! `stella`: the Stella Telemetry binary. This file only parses arguments, sets up logging and maps
//! outcomes to exit codes; each subcommand lives in `commands/`.
mod cli;
mod commands;
mod exit;
mod logging;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: decoding OTLP allocates many small strings and vectors, and
/// glibc malloc/free took ~40% of the receive path's CPU in profiles (see the collector-core notes).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads for blocking work (large decodes, log reads, file writes). Few: every thread keeps its own
/// allocator caches, and more threads than cores buy nothing here.
const BLOCKING_THREADS: usize = 16;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    stella_export::install_crypto_provider();
    logging::init(cli.log_format, &cli.log_level);
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(BLOCKING_THREADS).build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("error: cannot start the async runtime: {error}");
                return ExitCode::from(exit::FAILURE);
            }
        };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => exit::report(&error),
    }
}
