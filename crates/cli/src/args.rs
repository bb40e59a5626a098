//! Command-line arguments of every subcommand (clap derive).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// A secret from the command line or the environment (a `hello` token). Its `Debug` shows
/// `"<redacted>"`, so printing the arguments never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// JobCenter: an orchestration workflow engine. Run a server, call workflows, inspect jobs,
/// and run workers whose actions are external programs.
#[derive(Debug, Parser)]
#[command(name = "jobcenter", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether `--debug` was given to a subcommand that takes it.
    pub fn debug_level(&self) -> bool {
        match &self.command {
            Command::Serve(a) => a.debug,
            Command::Call(a) => a.conn.debug,
            Command::Status(a) => a.conn.debug,
            Command::Find(a) => a.conn.debug,
            Command::Lock(a) => a.conn.debug,
            Command::ApiStatus(a) => a.conn.debug,
            Command::Ping(a) => a.conn.debug,
            Command::Work(a) => a.conn.debug,
            Command::Jobs(a) => a.admin.conn.debug,
            Command::Job(a) | Command::Tree(a) | Command::Retry(a) => a.admin.conn.debug,
            Command::Workers(a) => a.conn.debug,
            Command::Locks(a) => a.admin.conn.debug,
            Command::Errors(a) => a.admin.conn.debug,
            Command::Cancel(a) => a.admin.conn.debug,
            Command::Disable(a) | Command::Enable(a) => a.admin.conn.debug,
            Command::Check(_)
            | Command::Demo(_)
            | Command::Bench(_)
            | Command::Db(_)
            | Command::Completions(_) => false,
        }
    }

    /// The log format: `--log-format` of `serve`, text for everything else.
    pub fn log_format(&self) -> LogFormat {
        match &self.command {
            Command::Serve(a) => a.log_format,
            _ => LogFormat::Text,
        }
    }

    /// Whether the command is `serve` (which logs at info by default).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colours only on a terminal).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A listen address: `HOST:PORT`, where HOST is an IP address or a name that is resolved
/// (every address it resolves to is listened on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// As given on the command line.
    pub text: String,
    /// What it resolved to (at least one, no duplicates).
    pub addrs: Vec<SocketAddr>,
}

/// Parse and resolve a `--listen`/`--listen-tls` value.
pub fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    let resolved = s
        .to_socket_addrs()
        .map_err(|e| format!("want HOST:PORT (an address or a host name): {e}"))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in resolved {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(format!("{s} resolves to no address"));
    }
    Ok(ListenAddr {
        text: s.to_string(),
        addrs,
    })
}

/// A `--listen-auth` value: the `hello` methods one listener accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAuth {
    /// The listener, exactly as given to `--listen` or `--listen-tls`.
    pub listen: String,
    /// The methods it accepts (at least one, no duplicates).
    pub methods: Vec<jobcenter_server::AuthMethod>,
}

/// Parse a `--listen-auth HOST:PORT=METHOD[,METHOD]` value.
pub fn parse_listen_auth(s: &str) -> Result<ListenAuth, String> {
    let (listen, list) = s
        .split_once('=')
        .ok_or_else(|| "want HOST:PORT=METHODS, e.g. 0.0.0.0:6523=clientcert".to_string())?;
    if listen.is_empty() {
        return Err("no listener before the =".into());
    }
    let mut methods = Vec::new();
    for m in list.split(',') {
        let m: jobcenter_server::AuthMethod = m.trim().parse()?;
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    Ok(ListenAuth {
        listen: listen.to_string(),
        methods,
    })
}

/// The topics of `api-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiTopic {
    /// Counts of clients, workers and dead jobs (one JSON object).
    Stats,
    /// The connected clients and workers with their actions.
    Clients,
    /// The same as `clients`, unformatted.
    Clientsraw,
    /// The jobs clients wait for.
    Jobs,
    /// The task offers waiting for workers.
    Tasks,
}

impl ApiTopic {
    /// The name the server knows it by.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiTopic::Stats => "stats",
            ApiTopic::Clients => "clients",
            ApiTopic::Clientsraw => "clientsraw",
            ApiTopic::Jobs => "jobs",
            ApiTopic::Tasks => "tasks",
        }
    }
}

/// The shells `completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server with the JCL engine (jcapi + engine in one process).
    Serve(ServeArgs),
    /// Create a job and wait for its result (one job, or many with --batch).
    Call(CallArgs),
    /// Show the status of a job; with --wait, wait until it has finished.
    Status(StatusArgs),
    /// Find live jobs whose input arguments contain FILTER_JSON.
    Find(FindArgs),
    /// Tell whether a lock is held: true, false, or null for an unknown lock type.
    Lock(LockArgs),
    /// Ask the server for its status (needs the `apimeister` identity).
    ApiStatus(ApiStatusArgs),
    /// Check that the server answers.
    Ping(PingArgs),
    /// Run a worker whose actions are external programs (JSON on stdin, JSON on stdout).
    Work(WorkArgs),
    /// Compile JCL sources and report every error as file:line: message.
    Check(CheckArgs),
    /// Run the whole system in one process: server, worker and client, with example workflows.
    Demo(DemoArgs),
    /// Measure a JobCenter server (ours or the Perl jcapi) against the raw loopback limit.
    Bench(BenchArgs),
    /// Manage a store: `db migrate` creates or upgrades its schema and exits.
    #[command(subcommand)]
    Db(DbCommand),
    /// Print a shell completion script (e.g. `jobcenter completions bash > /etc/bash_completion.d/jobcenter`).
    Completions(CompletionsArgs),
    /// Admin: list jobs, newest first (needs the admin identity, like all admin commands).
    Jobs(JobsArgs),
    /// Admin: one job: state, current task, inargs, outargs, error, locks, children.
    Job(JobIdArgs),
    /// Admin: a job's family of parent and child jobs.
    Tree(JobIdArgs),
    /// Admin: the workers, their actions, slots and last ping.
    Workers(AdminArgs),
    /// Admin: held locks (of one type, or all) and the jobs waiting for them.
    Locks(LocksArgs),
    /// Admin: failed jobs and tasks waiting for a retry after an error, newest first.
    Errors(ErrorsArgs),
    /// Admin: retry a job's task now (a task waiting for its retry, or a failed job).
    Retry(JobIdArgs),
    /// Admin: abort a job; its client gets `job_done` with the error `job cancelled: ...`.
    Cancel(CancelArgs),
    /// Admin: stop handing the action's tasks to workers (tasks in hand finish normally).
    Disable(ActionArgs),
    /// Admin: hand a disabled action's tasks to workers again.
    Enable(ActionArgs),
}

/// Options of every admin command: the connection (as the admin identity) and `--json`.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print the server's answer as one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `jobcenter jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Only jobs in this state (ready, working, childwait, lockwait, retrywait, sleeping,
    /// eventwait, finished, error, ...).
    #[arg(long)]
    pub state: Option<String>,
    /// Only jobs of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only jobs created since T: an age (`90s`, `10m`, `2h`, `1d`), a UTC time
    /// (`2026-12-03T14:00:00Z`) or milliseconds since the epoch.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only jobs with an id below this one (the next page).
    #[arg(long, value_name = "JOB_ID")]
    pub before: Option<i64>,
    /// At most this many jobs (the server caps it at 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// An admin command about one job.
#[derive(Debug, Args)]
pub struct JobIdArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The job id.
    pub job_id: String,
}

/// `jobcenter locks`.
#[derive(Debug, Args)]
pub struct LocksArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Only locks of this type.
    pub locktype: Option<String>,
    /// At most this many locks.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// `jobcenter errors`.
#[derive(Debug, Args)]
pub struct ErrorsArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Only errors since T (as `jobs --since`).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// At most this many jobs.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// `jobcenter cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The job id.
    pub job_id: String,
    /// The reason, in the job's error `job cancelled: REASON` (default: `by <admin>`).
    #[arg(long)]
    pub reason: Option<String>,
}

/// `jobcenter disable` and `jobcenter enable`.
#[derive(Debug, Args)]
pub struct ActionArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The action name.
    pub action: String,
}

/// `jobcenter completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// How JCL is compiled: the same options and defaults for `serve` and `check`.
#[derive(Debug, Clone, Args)]
pub struct JclArgs {
    /// How much of JCL to accept: A (sequential workflows), B (+ split, locks, sleep),
    /// C (+ events, goto/label, version tags, map, detachflow).
    #[arg(long, default_value = "C", value_parser = ["A", "B", "C"])]
    pub stage: String,
    /// Register a lock type that workflows may use (repeatable).
    #[arg(long = "locktype", value_name = "NAME")]
    pub locktypes: Vec<String>,
}

/// `jobcenter db ...`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the store's schema, or check that it is the version this binary uses, and
    /// exit (`serve` does the same at start; a newer schema is refused, never changed).
    Migrate(DbArgs),
}

/// Options of `jobcenter db`.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// The store: `sqlite:PATH` or `postgres://user@host:port/db`.
    #[arg(long, value_name = "STORE", default_value = jobcenter_store::DEFAULT_STORE,
          env = "JOBCENTER_STORE")]
    pub store: jobcenter_store::StoreSpec,
}

/// Connection options shared by the client subcommands.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Server: an IP address or a host name, optionally with `:PORT` (which wins over --port).
    #[arg(
        long,
        value_name = "HOST[:PORT]",
        default_value = "127.0.0.1",
        env = "JOBCENTER_ADDRESS"
    )]
    pub address: String,
    /// Server port.
    #[arg(long, default_value_t = 6522, env = "JOBCENTER_PORT")]
    pub port: u16,
    /// Who to authenticate as.
    #[arg(long, env = "JOBCENTER_WHO")]
    pub who: Option<String>,
    /// The secret for `hello` (prefer the JOBCENTER_TOKEN environment variable: arguments show in `ps`).
    #[arg(long, env = "JOBCENTER_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// Authentication method.
    #[arg(long, default_value = "password")]
    pub method: String,
    /// Connect with TLS.
    #[arg(long)]
    pub tls: bool,
    /// CA certificate (PEM) to verify the server with; --tls needs it (or --tls-insecure).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// With --tls and no --tls-ca: do not verify the server's certificate (INSECURE: anyone
    /// in the middle can read the token).
    #[arg(long, requires = "tls", conflicts_with = "tls_ca")]
    pub tls_insecure: bool,
    /// Client certificate (PEM), for the `clientcert` method.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Seconds for the handshake and for queries.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Log the protocol to stderr.
    #[arg(long)]
    pub debug: bool,
}

/// `jobcenter serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, `HOST:PORT` with an IP address or a host name (repeatable).
    /// Default 127.0.0.1:6522.
    #[arg(long = "listen", value_name = "HOST:PORT", value_parser = parse_listen)]
    pub listen: Vec<ListenAddr>,
    /// TLS listener address (repeatable); needs --tls-cert and --tls-key.
    #[arg(long = "listen-tls", value_name = "HOST:PORT", value_parser = parse_listen)]
    pub listen_tls: Vec<ListenAddr>,
    /// Allow only these hello methods on one listener (repeatable, one per listener):
    /// `HOST:PORT=password`, `HOST:PORT=clientcert` or `HOST:PORT=password,clientcert`,
    /// HOST:PORT written as in its --listen or --listen-tls. Other listeners accept every
    /// configured method.
    #[arg(long = "listen-auth", value_name = "HOST:PORT=METHODS", value_parser = parse_listen_auth)]
    pub listen_auth: Vec<ListenAuth>,
    /// Per-request tokens for `create_job` (PROTOCOL.md §11.5): `who:crypt-hash[:scope]`
    /// lines; every create_job must then carry `reqauth: {"token": ...}` matching a line of
    /// its connection's identity. Checked at start, reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub reqauth_file: Option<PathBuf>,
    /// Workflow (.wf) and action (.ac) files or folders to load (repeatable).
    #[arg(long = "load", value_name = "PATH")]
    pub load: Vec<PathBuf>,
    /// Password file of `user:crypt-hash` lines ($1$, $5$ or $6$ hashes; `#` comments).
    /// Checked at start (a bad line stops the server, exit 2) and reloaded on SIGHUP.
    #[arg(long)]
    pub passwd: Option<PathBuf>,
    /// CN file of `cn:user1,user2` lines for the `clientcert` method (checked and reloaded
    /// like --passwd).
    #[arg(long)]
    pub cnfile: Option<PathBuf>,
    /// Server certificate (PEM) for the TLS listeners.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for the TLS listeners.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) to verify client certificates; TLS clients must then present one.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Open an HTTP listener serving Prometheus metrics at `/metrics` and the status page at
    /// `/` (off by default). Access needs HTTP Basic auth as --admin with its password-file
    /// password.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_listen)]
    pub http: Option<ListenAddr>,
    /// The admin identity: the one allowed `get_api_status`, the admin methods (the
    /// `jobs`, `job`, `cancel`, ... commands) and the --http listener.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "apimeister",
        alias = "http-admin"
    )]
    pub admin: String,
    /// Serve /metrics without authentication (for a scraper; keep --http on loopback).
    #[arg(long, requires = "http")]
    pub metrics_no_auth: bool,
    #[command(flatten)]
    pub jcl: JclArgs,
    /// Where jobs are kept: `sqlite:PATH` (durable; `?sync=normal` trades power-loss
    /// safety for speed), `memory` (nothing survives a restart) or `postgres://...`.
    #[arg(long, value_name = "STORE", default_value = jobcenter_store::DEFAULT_STORE,
          env = "JOBCENTER_STORE")]
    pub store: jobcenter_store::StoreSpec,
    /// With a PostgreSQL store: this server's node name (unique among the live servers on
    /// the database; default a random id). A node restarting under its name releases the
    /// tasks its previous run's workers held at once, not after the 10 s node lease.
    #[arg(long, value_name = "NAME", env = "JOBCENTER_NODE")]
    pub node: Option<String>,
    /// Forget archived (finished) job results after this many seconds; 0 keeps them forever.
    #[arg(long, default_value_t = 86_400)]
    pub archive_retention: u64,
    /// DEVELOPMENT ONLY: accept any who/token without a password file.
    #[arg(long)]
    pub insecure_dev_auth: bool,
    /// Seconds a failed hello waits before it is answered (and the connection closed).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.5)]
    pub auth_failure_delay: f64,
    /// Most password checks (crypt hashing) at once; default: the number of CPUs.
    #[arg(long, value_name = "N")]
    pub auth_max_checks: Option<usize>,
    /// Log debug output to stderr (the default level is info; RUST_LOG overrides both).
    #[arg(long)]
    pub debug: bool,
    /// How log lines look: text (colours only on a terminal) or json (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `jobcenter serve`'s resource limits (defaults in `jobcenter_server::Limits`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Seconds from accepting a connection (TLS handshake included) to a successful hello;
    /// later, the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub handshake_timeout: f64,
    /// Open connections in total; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Open connections from one IP address.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub max_connections_per_ip: usize,
    /// Largest frame payload a client may send, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 999_999)]
    pub max_frame: usize,
    /// Requests of one connection handled at once; more wait unread.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub max_in_flight: usize,
    /// Bytes queued for a connection that does not read: above this its requests are not
    /// read; at four times this it is closed.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_output: usize,
    /// Seconds queued output may make no progress before the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub output_stall_timeout: f64,
}

/// `jobcenter call`.
#[derive(Debug, Args)]
#[command(after_help = CALL_EXIT_CODES)]
pub struct CallArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Workflow name (not with --batch).
    #[arg(required_unless_present = "batch", conflicts_with = "batch")]
    pub wfname: Option<String>,
    /// Input arguments as a JSON object.
    #[arg(default_value = "{}", conflicts_with = "batch")]
    pub inargs: String,
    /// Version tag(s), colon separated.
    #[arg(long)]
    pub vtag: Option<String>,
    /// Seconds the server waits for the job before answering {"error":"timeout"} (default 5 x --timeout).
    #[arg(long)]
    pub job_timeout: Option<f64>,
    /// Client environment as a JSON object.
    #[arg(long)]
    pub clenv: Option<String>,
    /// Per-request authentication as a JSON object, e.g. {"token":"..."} for a server with
    /// --reqauth-file (better given in the environment: command lines are visible to all).
    #[arg(
        long,
        value_name = "JSON",
        env = "JOBCENTER_REQAUTH",
        hide_env_values = true
    )]
    pub reqauth: Option<String>,
    /// JSON lines of {"wfname":..,"inargs":..} (or bare inargs objects with --wfname), `-` for
    /// stdin (read and sent line by line).
    #[arg(long, value_name = "FILE")]
    pub batch: Option<PathBuf>,
    /// With --batch: the workflow for lines that are bare inargs objects.
    #[arg(long = "wfname", requires = "batch")]
    pub batch_wfname: Option<String>,
    /// With --batch: how many jobs may be in flight at once.
    #[arg(long, default_value_t = 100)]
    pub in_flight: usize,
}

/// The exit statuses of `call`, shown by `jobcenter call --help` (see `cmd::call::exit_code`).
pub const CALL_EXIT_CODES: &str = "\
Exit status:
  0  the job finished successfully
  1  the job finished with an error (outargs {\"error\":...})
  2  usage error, or cannot connect / no greeting / login failed (no job created)
  3  the job was not created (e.g. unknown workflow, bad inargs)
  4  timed out (--job-timeout): the job is still running; `jobcenter status ID --wait` waits on
  5  the connection was lost after the job was created: its outcome is unknown
With --batch: 0 when every job succeeded, 1 otherwise (2 for a bad line, before or while
sending).";

/// `jobcenter status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The job id.
    pub job_id: String,
    /// Wait until the job has finished.
    #[arg(long)]
    pub wait: bool,
}

/// `jobcenter find`.
#[derive(Debug, Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// A JSON object the jobs' input arguments must contain.
    pub filter: String,
}

/// `jobcenter lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Lock type.
    pub locktype: String,
    /// Lock value.
    pub lockvalue: String,
}

/// `jobcenter api-status`.
#[derive(Debug, Args)]
pub struct ApiStatusArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// What to show.
    #[arg(value_enum, default_value_t = ApiTopic::Stats)]
    pub what: ApiTopic,
}

/// `jobcenter ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `jobcenter work`.
#[derive(Debug, Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// NAME=COMMAND: serve action NAME by running COMMAND (with `sh -c`) per task (repeatable).
    #[arg(long = "action", value_name = "NAME=COMMAND", required = true)]
    pub actions: Vec<String>,
    /// Concurrent tasks per action.
    #[arg(long, default_value_t = 1, conflicts_with = "slotgroup")]
    pub slots: u32,
    /// NAME:SLOTS: one pool of slots shared by all the actions.
    #[arg(long, value_name = "NAME:SLOTS")]
    pub slotgroup: Option<String>,
    /// Only take tasks whose input arguments contain this JSON object.
    #[arg(long)]
    pub filter: Option<String>,
    /// Pass the task environment too: stdin gets {"inargs":..,"env":..}.
    #[arg(long)]
    pub addenv: bool,
    /// Worker name (default "<who> <hostname> jobcenter <pid>").
    #[arg(long)]
    pub workername: Option<String>,
    /// Seconds without a server ping before giving up (exit 92); 0 disables.
    #[arg(long, default_value_t = 300.0)]
    pub ping_timeout: f64,
    /// Seconds to let in-flight tasks finish on SIGTERM/SIGINT.
    #[arg(long, default_value_t = 30.0)]
    pub drain: f64,
}

/// `jobcenter check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// JCL files or folders. A file is compiled with the definitions it calls that lie
    /// beside it (NAME.wf / NAME.ac in the same folder).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub jcl: JclArgs,
}

/// `jobcenter demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print less.
    #[arg(long)]
    pub quiet: bool,
    /// Where the demo keeps its jobs (default: the default store of `serve`, SQLite, in a
    /// file of a temporary directory that is removed at the end).
    #[arg(long, value_name = "STORE")]
    pub store: Option<jobcenter_store::StoreSpec>,
}

/// What the submitters do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// End-to-end jobs: create_job, a worker runs the action, job_done.
    Call,
    /// Bare `ping` round trips.
    Ping,
    /// `get_job_status` of one finished job.
    Status,
    /// Open `--clients` idle authenticated connections and report the server's memory
    /// per connection (needs `--embedded`, which then runs the server as a child process,
    /// or `--server-pid`).
    Idle,
}

/// Options of `jobcenter bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Server to measure (ignored with --embedded).
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Identity of the worker connections (default: the same as --who).
    #[arg(long, env = "JOBCENTER_WORKER_WHO")]
    pub worker_who: Option<String>,
    /// Secret of the worker connections (default: the same as --token).
    #[arg(long, env = "JOBCENTER_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<Secret>,
    /// Start our server in this process on a free loopback port (any who/token accepted).
    #[arg(long)]
    pub embedded: bool,
    /// Backend of the embedded server.
    #[arg(long, value_enum, default_value = "engine")]
    pub backend: BackendKind,
    /// Store of the embedded engine: `memory`, or `sqlite:PATH[?sync=full|normal|off]`
    /// (give a fresh file: an existing one is reused with its jobs).
    #[arg(long, value_name = "STORE", default_value = "memory")]
    pub store: jobcenter_store::StoreSpec,
    /// What to measure.
    #[arg(long, value_enum, default_value = "call")]
    pub mode: Mode,
    /// Worker connections.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Slots per worker connection.
    #[arg(long, default_value_t = 100)]
    pub slots: u32,
    /// The action the workers announce; its handler returns {"counter": counter + step}
    /// (step default 1) plus the "pad" it got. Default `add` (`addpad` with --payload).
    #[arg(long)]
    pub action: Option<String>,
    /// Workflow to call. Default `calladd` (`callpad` with --payload), with the stub backend
    /// the action itself.
    #[arg(long)]
    pub wfname: Option<String>,
    /// Inargs template; "$n" is the job number, "$n+K" adds K, "$pad" the --payload text.
    /// Default {"input":"$n"} (plus "pad":"$pad" with --payload), with the stub backend
    /// {"counter":"$n","step":3}.
    #[arg(long)]
    pub inargs: Option<String>,
    /// Expected outargs template (same placeholders). Default {"output":"$n+3"} (plus the
    /// pad with --payload), with the stub backend {"counter":"$n+3"}.
    #[arg(long)]
    pub expect: Option<String>,
    /// Add a "pad" string of this many bytes to the inargs (unless the template has "$pad").
    #[arg(long, default_value_t = 0)]
    pub payload: usize,
    /// Client (submitter) connections.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Operations in total (jobs, pings or status queries).
    #[arg(long, default_value_t = 10_000)]
    pub jobs: u64,
    /// Operations in flight in total, spread over the client connections.
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// Unmeasured operations first (default: a tenth of --jobs, at most 1000).
    #[arg(long)]
    pub warmup: Option<u64>,
    /// With --embedded: run the server in a child process, so its CPU time (and with
    /// --mode idle its memory) is measured apart from the load generator.
    #[arg(long)]
    pub server_process: bool,
    /// An external server's process id on this machine, to report its CPU time per
    /// operation and (with --mode idle) its memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Chaos soak instead of a measurement: --jobs jobs through clients that drop and
    /// workers that disconnect at random, then check that no job was lost, no result came
    /// twice, no answered task ran twice, and (with --server-pid or --server-process) how
    /// the server's memory behaved. --in-flight is spread over --clients as usual.
    #[arg(long)]
    pub soak: bool,
    /// With --soak: mean seconds a worker connection lives before it disconnects (half of
    /// the time with tasks in hand) and reconnects; 0: never.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub worker_churn: f64,
    /// With --soak: mean seconds a client connection lives before it drops with jobs
    /// outstanding (their results are then read by id); 0: never.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub client_churn: f64,
    /// With --soak: seconds between samples of the server's memory.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub sample: f64,
    /// Internal: run only the embedded server, print its port, stop at stdin EOF.
    #[arg(long, hide = true)]
    pub serve_only: bool,
}

/// Which backend the embedded server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The JCL engine (in memory) with the bench workflows `calladd` and `callpad`.
    Engine,
    /// Pass-through: every workflow is one task of the bench action (no JCL engine).
    Stub,
}

impl BackendKind {
    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Engine => "engine",
            BackendKind::Stub => "stub",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_the_arguments_never_shows_a_token() {
        let cli = Cli::try_parse_from([
            "jobcenter",
            "bench",
            "--who",
            "u",
            "--token",
            "s3cret-client-token",
            "--worker-token",
            "s3cret-worker-token",
        ]);
        let text = format!("{cli:?}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        let ping = Cli::try_parse_from(["jobcenter", "ping", "--token", "s3cret-ping-token"]);
        let text = format!("{ping:?}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
