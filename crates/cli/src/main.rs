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
    let default_level = if cli.debug_level() {
        "debug"
    } else if cli.is_serve() {
        // serve: start-up summary, connections and failed logins (not other crates' info)
        "warn,jobcenter=info,jobcenter_server=info,jobcenter_engine=info,jobcenter_store=info"
    } else {
        "warn"
    };
    init_tracing(default_level, cli.log_format());
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

/// Logs go to stderr, as text (ANSI colours only when stderr is a terminal) or as JSON
/// lines; `RUST_LOG` overrides the default level.
fn init_tracing(default: &str, format: args::LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        args::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        args::LogFormat::Json => builder.json().try_init(),
    };
}
