//! One module per subcommand; `run` dispatches and returns the process exit status.

use crate::args::{Cli, Command};

/// Run the chosen subcommand and return the exit status.
pub async fn run(cli: Cli) -> u8 {
    let name = match &cli.command {
        Command::Serve(_) => "serve",
        Command::Call(_) => "call",
        Command::Status(_) => "status",
        Command::Find(_) => "find",
        Command::Lock(_) => "lock",
        Command::ApiStatus(_) => "api-status",
        Command::Ping(_) => "ping",
        Command::Work(_) => "work",
        Command::Check(_) => "check",
        Command::Demo(_) => "demo",
    };
    eprintln!("jobcenter {name}: not implemented yet");
    2
}
