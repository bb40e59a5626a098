//! The `jobcenter` command: run a server, call workflows, inspect jobs and run workers.

mod args;
mod cmd;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc: thread-caching allocator, measurably cheaper than glibc malloc for the
/// server's many small short-lived allocations (BENCHMARKS.md, "Optimisation").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    init_tracing(cli.debug_level());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jobcenter: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(cmd::run(cli));
    ExitCode::from(code)
}

/// Logs go to stderr; `RUST_LOG` overrides the level chosen by `--debug`.
fn init_tracing(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if debug { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
