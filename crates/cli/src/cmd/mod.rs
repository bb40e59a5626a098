//! One module per subcommand; `run` dispatches and returns the process exit status.

mod admin;
pub mod bench;
mod call;
mod check;
mod conn;
mod demo;
mod query;
mod serve;
mod work;

use crate::args::{Cli, Command};

/// Why a subcommand stopped early: a one-line message and the exit status.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub code: u8,
    /// What to tell the user (one line).
    pub message: String,
}

impl Failure {
    /// Bad arguments or input (exit status 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// Connection or authentication trouble (exit status 2).
    pub fn connection(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// Any other failure with its own exit status.
    pub fn with_code(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// Run the chosen subcommand and return the exit status.
pub async fn run(cli: Cli) -> u8 {
    let (name, result) = match cli.command {
        Command::Serve(a) => ("serve", serve::run(a).await),
        Command::Call(a) => ("call", call::run(a).await),
        Command::Status(a) => ("status", query::status(a).await),
        Command::Find(a) => ("find", query::find(a).await),
        Command::Lock(a) => ("lock", query::lock(a).await),
        Command::ApiStatus(a) => ("api-status", query::api_status(a).await),
        Command::Ping(a) => ("ping", query::ping(a).await),
        Command::Work(a) => ("work", work::run(a).await),
        Command::Check(a) => ("check", check::run(a)),
        Command::Demo(a) => ("demo", demo::run(a).await),
        Command::Bench(a) => ("bench", bench::run(a).await),
        Command::Db(crate::args::DbCommand::Migrate(a)) => ("db migrate", serve::migrate(&a)),
        Command::Completions(a) => ("completions", completions(a.shell)),
        Command::Jobs(a) => ("jobs", admin::jobs(a).await),
        Command::Job(a) => ("job", admin::job(a).await),
        Command::Tree(a) => ("tree", admin::tree(a).await),
        Command::Workers(a) => ("workers", admin::workers(a).await),
        Command::Locks(a) => ("locks", admin::locks(a).await),
        Command::Errors(a) => ("errors", admin::errors(a).await),
        Command::Retry(a) => ("retry", admin::retry(a).await),
        Command::Cancel(a) => ("cancel", admin::cancel(a).await),
        Command::Disable(a) => ("disable", admin::set_enabled(a, false).await),
        Command::Enable(a) => ("enable", admin::set_enabled(a, true).await),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("jobcenter {name}: {}", f.message);
            f.code
        }
    }
}

/// `jobcenter completions SHELL`: write the completion script for SHELL to stdout.
fn completions(shell: crate::args::Shell) -> Result<u8, Failure> {
    use clap::CommandFactory;
    use clap_complete::{generate, shells};
    use std::io::Write;
    let mut cmd = Cli::command();
    // Into a buffer first: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    match shell {
        crate::args::Shell::Bash => generate(shells::Bash, &mut cmd, "jobcenter", &mut script),
        crate::args::Shell::Zsh => generate(shells::Zsh, &mut cmd, "jobcenter", &mut script),
        crate::args::Shell::Fish => generate(shells::Fish, &mut cmd, "jobcenter", &mut script),
    }
    let _ = std::io::stdout().lock().write_all(&script);
    Ok(0)
}

/// Print one line on stdout. A reader that went away (`| head`) is not an error: the
/// line is dropped and the command keeps its exit status.
pub fn emit(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// SIGINT/SIGTERM, installed before a long-running command says it is ready, so a signal
/// that arrives right after that message is not lost.
pub struct ShutdownSignal {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    /// Install the handlers now.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                _ => {
                    tracing::warn!("cannot install signal handlers; falling back to ctrl-c");
                    None
                }
            };
            ShutdownSignal { streams }
        }
        #[cfg(not(unix))]
        {
            ShutdownSignal {}
        }
    }

    /// Resolves on the first SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = self.streams.as_mut() {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Parse a JSON object given on the command line.
pub fn parse_object(what: &str, text: &str) -> Result<serde_json::Value, Failure> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Failure::usage(format!("{what} is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(Failure::usage(format!("{what} must be a JSON object")));
    }
    Ok(v)
}
