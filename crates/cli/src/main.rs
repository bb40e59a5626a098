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
    no_huge_pages();
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

/// Turn transparent huge pages off for this process (and the processes it starts).
///
/// mimalloc asks for huge pages on its arenas; the kernel then zeroes a whole 2 MiB page at
/// the first touch of any part of it, again after mimalloc returned part of it to the
/// system. With a growing heap (the memory store keeps every job until it is archived) that
/// was 22–27 % of the server's CPU samples at 1,000 jobs in flight, in `clear_page_erms`;
/// without: 3 %, and 10–19 % less server CPU per job (BENCHMARKS.md, "Huge pages off").
/// Best effort: a kernel without the setting leaves things as they were.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
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
