//! `jobcenter serve`: the API server with the JCL engine, on a SQLite file (default) or in memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jobcenter_engine::backend::Backend;
use jobcenter_engine::compile::TargetKind;
use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_server::auth::{load_cn_file, load_password_file};
use jobcenter_server::{
    AuthConfig, AuthFilesLoaded, HttpConfig, Limits, ListenerConfig, Server, ServerConfig,
    TlsConfig,
};
use jobcenter_store::{MemoryStore, PgStore, SqliteStore, StoreSpec};

use crate::args::{JclArgs, LimitArgs, ServeArgs};
use crate::cmd::{Failure, ShutdownSignal};

/// The default listener: loopback only, the protocol's port.
const DEFAULT_LISTEN: &str = "127.0.0.1:6522";

/// Build the server configuration from the options, refusing an open door.
fn server_config(a: &ServeArgs) -> Result<ServerConfig, Failure> {
    if a.passwd.is_none() && a.cnfile.is_none() && !a.insecure_dev_auth {
        return Err(Failure::usage(
            "refusing to start without authentication: give --passwd FILE (user:crypt-hash lines) \
             and/or --cnfile FILE, or --insecure-dev-auth for a development server that lets \
             anyone in",
        ));
    }
    let mut listeners: Vec<ListenerConfig> = a
        .listen
        .iter()
        .flat_map(|l| l.addrs.iter().copied())
        .map(ListenerConfig::tcp)
        .collect();
    if !a.listen_tls.is_empty() {
        let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) else {
            return Err(Failure::usage(
                "--listen-tls needs --tls-cert and --tls-key",
            ));
        };
        for addr in a.listen_tls.iter().flat_map(|l| l.addrs.iter()) {
            listeners.push(ListenerConfig {
                addr: *addr,
                tls: Some(TlsConfig {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: a.tls_ca.clone(),
                }),
            });
        }
    }
    if listeners.is_empty() {
        let addr: SocketAddr = DEFAULT_LISTEN
            .parse()
            .map_err(|_| Failure::usage("bad default listen address"))?;
        listeners.push(ListenerConfig::tcp(addr));
    }
    if a.insecure_dev_auth {
        eprintln!("jobcenter serve: WARNING: --insecure-dev-auth lets anyone in");
    }
    let failure_delay = Duration::try_from_secs_f64(a.auth_failure_delay)
        .map_err(|_| Failure::usage("--auth-failure-delay wants seconds, 0 or more"))?;
    Ok(ServerConfig {
        listeners,
        auth: AuthConfig {
            password_file: a.passwd.clone(),
            clientcert_file: a.cnfile.clone(),
            dev_allow_any: a.insecure_dev_auth,
            max_concurrent_checks: a
                .auth_max_checks
                .unwrap_or_else(AuthConfig::default_max_concurrent_checks),
            failure_delay,
        },
        timers: Default::default(),
        limits: limits(&a.limits)?,
        admin: a.admin.clone(),
        http: match &a.http {
            None => None,
            Some(l) => {
                let addr = l
                    .addrs
                    .first()
                    .copied()
                    .ok_or_else(|| Failure::usage("--http: no address"))?;
                Some(HttpConfig {
                    addr,
                    metrics_no_auth: a.metrics_no_auth,
                })
            }
        },
    })
}

/// The server's limits from the options.
fn limits(a: &LimitArgs) -> Result<Limits, Failure> {
    let secs = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 && v < 1e9 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(Failure::usage(format!(
                "--{name} must be a positive number of seconds, not {v}"
            )))
        }
    };
    let positive = |name: &str, v: usize| {
        if v == 0 {
            Err(Failure::usage(format!("--{name} must be at least 1")))
        } else {
            Ok(v)
        }
    };
    Ok(Limits {
        handshake_timeout: secs("handshake-timeout", a.handshake_timeout)?,
        max_connections: positive("max-connections", a.max_connections)?,
        max_connections_per_ip: positive("max-connections-per-ip", a.max_connections_per_ip)?,
        max_frame: positive("max-frame", a.max_frame)?,
        max_in_flight: positive("max-in-flight", a.max_in_flight)?,
        max_output: positive("max-output", a.max_output)?,
        output_stall_timeout: secs("output-stall-timeout", a.output_stall_timeout)?,
    })
}

/// Read and validate the password and CN files now, so that a bad one stops the start
/// with its file and line (exit status 2) instead of refusing every login later.
fn check_auth_files(a: &ServeArgs) -> Result<AuthFilesLoaded, Failure> {
    let mut loaded = AuthFilesLoaded::default();
    if let Some(p) = &a.passwd {
        let (_, n) = load_password_file(p).map_err(|e| Failure::usage(e.to_string()))?;
        loaded.users = Some(n);
    }
    if let Some(p) = &a.cnfile {
        let (_, n) = load_cn_file(p).map_err(|e| Failure::usage(e.to_string()))?;
        loaded.cns = Some(n);
    }
    Ok(loaded)
}

/// How logins are checked, for the start-up summary and the reload messages.
fn auth_mode(insecure: bool, loaded: AuthFilesLoaded) -> String {
    let mut parts = Vec::new();
    if insecure {
        parts.push("insecure-dev-auth (anyone)".to_string());
    }
    if let Some(n) = loaded.users {
        parts.push(format!("password ({n} users)"));
    }
    if let Some(n) = loaded.cns {
        parts.push(format!("clientcert ({n} cns)"));
    }
    parts.join(", ")
}

/// An empty catalog with the stage and lock types of the options (`serve` and `check`).
pub fn catalog(jcl: &JclArgs) -> Catalog {
    let stage = match jcl.stage.as_str() {
        "A" => Stage::A,
        "B" => Stage::B,
        _ => Stage::C,
    };
    let mut catalog = Catalog::with_stage(stage);
    for t in &jcl.locktypes {
        catalog.register_locktype(t);
    }
    catalog
}

/// Compile the definitions, or print every error and fail.
pub fn load_catalog(a: &ServeArgs) -> Result<Catalog, Failure> {
    let mut catalog = catalog(&a.jcl);
    let paths = &a.load;
    if paths.is_empty() {
        return Ok(catalog);
    }
    let report = catalog.load_paths(paths);
    if !report.is_ok() {
        for e in &report.errors {
            eprintln!("{e}");
        }
        return Err(Failure::with_code(
            1,
            format!(
                "{} error(s) in the definitions; not starting",
                report.errors.len()
            ),
        ));
    }
    for d in &report.loaded {
        tracing::info!(name = %d.name, version = d.version, kind = ?d.kind, "loaded");
    }
    Ok(catalog)
}

/// Run the server until SIGINT/SIGTERM; SIGHUP reloads the password and CN files.
pub async fn run(a: ServeArgs) -> Result<u8, Failure> {
    let config = server_config(&a)?;
    let auth_loaded = check_auth_files(&a)?;
    let catalog = load_catalog(&a)?;
    let engine_config = EngineConfig {
        archive_retention: (a.archive_retention > 0)
            .then(|| std::time::Duration::from_secs(a.archive_retention)),
        ..EngineConfig::default()
    };
    if a.store == StoreSpec::Memory {
        eprintln!(
            "jobcenter serve: WARNING: --store memory: jobs are kept in memory only, nothing \
             survives a restart"
        );
    }
    let defs = catalog.definitions().len();
    let workflows = catalog
        .definitions()
        .iter()
        .filter(|d| d.target_kind() == TargetKind::Workflow)
        .count();
    let backend = start_engine(catalog, &a.store, a.node.as_deref(), engine_config)
        .map_err(|e| Failure::with_code(2, e))?;
    eprintln!("jobcenter serve: jobs are kept in {}", a.store);
    let summary = Summary {
        store: a.store.to_string(),
        defs,
        workflows,
        auth: auth_mode(a.insecure_dev_auth, auth_loaded),
        insecure: a.insecure_dev_auth,
    };
    serve(config, summary, backend).await
}

/// What the start-up summary tells besides the listen addresses.
struct Summary {
    store: String,
    defs: usize,
    workflows: usize,
    auth: String,
    insecure: bool,
}

/// `jobcenter db migrate`: open the store (which creates or checks its schema) and exit.
pub fn migrate(a: &crate::args::DbArgs) -> Result<u8, Failure> {
    let fail = |e: String| Failure::with_code(1, e);
    match &a.store {
        StoreSpec::Memory => Err(Failure::usage("a memory store has no schema to migrate")),
        StoreSpec::Sqlite { path, sync } => {
            SqliteStore::open_with(path, *sync).map_err(|e| fail(e.to_string()))?;
            println!(
                "{}: schema version {}",
                a.store,
                jobcenter_store::SCHEMA_VERSION
            );
            Ok(0)
        }
        StoreSpec::Postgres(url) => {
            let store = PgStore::open(url).map_err(|e| fail(e.to_string()))?;
            println!(
                "{}: schema version {}",
                store.describe_url(),
                jobcenter_store::PG_SCHEMA_VERSION
            );
            Ok(0)
        }
    }
}

/// Open the store of `spec` and start the engine on it (on the current tokio runtime).
pub fn start_engine(
    catalog: Catalog,
    spec: &StoreSpec,
    node: Option<&str>,
    config: EngineConfig,
) -> Result<Arc<dyn Backend>, String> {
    match spec {
        StoreSpec::Memory => Ok(Engine::new(catalog, MemoryStore::new(), config).start()),
        StoreSpec::Sqlite { path, sync } => {
            let store = SqliteStore::open_with(path, *sync)
                .map_err(|e| format!("cannot open the store {e}"))?;
            Ok(Engine::new(catalog, store, config).start())
        }
        StoreSpec::Postgres(url) => {
            let store =
                PgStore::open_as(url, node).map_err(|e| format!("cannot open the store {e}"))?;
            tracing::info!(node = store.node(), "joined the shared PostgreSQL store");
            Ok(Engine::new(catalog, store, config).start())
        }
    }
}

/// Serve with the given engine until SIGINT/SIGTERM, then shut down cleanly. SIGHUP
/// reloads the password and CN files (a bad file keeps the ones in use).
async fn serve(
    config: ServerConfig,
    summary: Summary,
    backend: Arc<dyn Backend>,
) -> Result<u8, Failure> {
    let handle = Server::start(config, backend)
        .await
        .map_err(|e| Failure::with_code(2, e.to_string()))?;
    let mut signals = ShutdownSignal::install();
    let mut hangup = Hangup::install();
    let addrs: Vec<String> = handle.local_addrs().iter().map(|a| a.to_string()).collect();
    let listen = addrs.join(", ");
    tracing::info!(
        %listen,
        store = %summary.store,
        definitions = summary.defs,
        workflows = summary.workflows,
        auth = %summary.auth,
        "jobcenter serve started"
    );
    if summary.insecure {
        tracing::warn!("--insecure-dev-auth: every hello is accepted");
    }
    eprintln!(
        "jobcenter serve: {} definition(s) loaded, listening on {listen}",
        summary.defs
    );
    if let Some(http) = handle.http_addr() {
        eprintln!("jobcenter serve: metrics at http://{http}/metrics");
    }
    loop {
        tokio::select! {
            _ = signals.recv() => break,
            _ = hangup.recv() => match handle.reload_auth() {
                Ok(loaded) => tracing::info!(
                    users = loaded.users,
                    cns = loaded.cns,
                    "SIGHUP: reloaded the authentication files: {}",
                    auth_mode(summary.insecure, loaded)
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: cannot reload the authentication files; keeping the ones in use"
                ),
            },
        }
    }
    eprintln!("jobcenter serve: shutting down");
    handle.shutdown().await;
    Ok(0)
}

/// SIGHUP, installed before `serve` says it listens. Where it cannot be installed (or on
/// other systems) it never fires.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = signal(SignalKind::hangup())
                .map_err(|e| tracing::warn!(error = %e, "cannot install the SIGHUP handler"))
                .ok();
            Hangup { signal }
        }
        #[cfg(not(unix))]
        {
            Hangup {}
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut() {
            if s.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}
