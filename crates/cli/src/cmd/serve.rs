//! `jobcenter serve`: the API server with the JCL engine, on a SQLite file (default) or in memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jobcenter_engine::backend::Backend;
use jobcenter_engine::compile::TargetKind;
use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_server::auth::{load_cn_file, load_password_file};
use jobcenter_server::{
    AuthConfig, AuthFilesLoaded, AuthMethod, HttpConfig, Limits, ListenerConfig, ReqAuth,
    ReqAuthFile, Server, ServerConfig, TlsConfig,
};
use jobcenter_store::{MemoryStore, PgStore, SqliteStore, StoreSpec, SyncMode};

use crate::args::{JclArgs, LimitArgs, ListenAuth, ServeArgs};
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
    let auth_of = listen_auth(a)?;
    let methods_for = |text: &str| {
        auth_of
            .iter()
            .find(|l| l.listen == text)
            .map(|l| l.methods.clone())
    };
    let mut listeners: Vec<ListenerConfig> = Vec::new();
    for l in &a.listen {
        for addr in &l.addrs {
            listeners.push(ListenerConfig {
                auth: methods_for(&l.text),
                ..ListenerConfig::tcp(*addr)
            });
        }
    }
    if !a.listen_tls.is_empty() {
        let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) else {
            return Err(Failure::usage(
                "--listen-tls needs --tls-cert and --tls-key",
            ));
        };
        for l in &a.listen_tls {
            for addr in &l.addrs {
                listeners.push(ListenerConfig {
                    addr: *addr,
                    tls: Some(TlsConfig {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: a.tls_ca.clone(),
                    }),
                    auth: methods_for(&l.text),
                });
            }
        }
    }
    if listeners.is_empty() {
        let addr: SocketAddr = DEFAULT_LISTEN
            .parse()
            .map_err(|_| Failure::usage("bad default listen address"))?;
        listeners.push(ListenerConfig {
            auth: methods_for(DEFAULT_LISTEN),
            ..ListenerConfig::tcp(addr)
        });
    }
    let request_auth = match &a.reqauth_file {
        None => None,
        Some(p) => {
            let f = ReqAuthFile::open(p).map_err(|e| Failure::usage(e.to_string()))?;
            Some(Arc::new(f) as Arc<dyn ReqAuth>)
        }
    };
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
            request_auth,
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

/// The `--listen-auth` values, checked: each names a listener given by `--listen` or
/// `--listen-tls` (or the default one) once, and `clientcert` only a TLS listener.
fn listen_auth(a: &ServeArgs) -> Result<Vec<ListenAuth>, Failure> {
    let plain: Vec<&str> = if a.listen.is_empty() && a.listen_tls.is_empty() {
        vec![DEFAULT_LISTEN]
    } else {
        a.listen.iter().map(|l| l.text.as_str()).collect()
    };
    let tls: Vec<&str> = a.listen_tls.iter().map(|l| l.text.as_str()).collect();
    for (i, l) in a.listen_auth.iter().enumerate() {
        let is_tls = tls.contains(&l.listen.as_str());
        if !is_tls && !plain.contains(&l.listen.as_str()) {
            return Err(Failure::usage(format!(
                "--listen-auth {}: no --listen or --listen-tls {} (write the address as there)",
                l.listen, l.listen
            )));
        }
        if a.listen_auth[..i].iter().any(|o| o.listen == l.listen) {
            return Err(Failure::usage(format!(
                "--listen-auth {} is given twice",
                l.listen
            )));
        }
        if !is_tls && l.methods.contains(&AuthMethod::Clientcert) {
            return Err(Failure::usage(format!(
                "--listen-auth {}: clientcert needs a TLS listener (--listen-tls with --tls-ca)",
                l.listen
            )));
        }
    }
    Ok(a.listen_auth.clone())
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
    let store = store_name(&a.store);
    eprintln!("jobcenter serve: jobs are kept in {store}");
    let mut auth = auth_mode(a.insecure_dev_auth, auth_loaded);
    if let Some(r) = &config.auth.request_auth {
        auth.push_str(&format!(", reqauth {}", r.describe()));
    }
    let summary = Summary {
        store,
        promise: store_promise(&a.store),
        defs,
        workflows,
        auth,
        insecure: a.insecure_dev_auth,
    };
    serve(config, summary, backend).await
}

/// What the start-up summary tells besides the listen addresses.
struct Summary {
    store: String,
    promise: &'static str,
    defs: usize,
    workflows: usize,
    auth: String,
    insecure: bool,
}

/// The store as it may be logged: a PostgreSQL URL without its password or options.
fn store_name(spec: &StoreSpec) -> String {
    match spec {
        StoreSpec::Postgres(url) => {
            let url = url.split('?').next().unwrap_or_default();
            match (url.find("://"), url.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let user = url[s + 3..at].split(':').next().unwrap_or_default();
                    format!("{}{}{}", &url[..s + 3], user, &url[at..])
                }
                _ => url.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// What the store promises about an answered request (for the start-up summary).
fn store_promise(spec: &StoreSpec) -> &'static str {
    match spec {
        StoreSpec::Memory => "nothing survives a restart",
        StoreSpec::Sqlite { sync, .. } => match sync {
            SyncMode::Full => "answered requests survive a crash and a power cut",
            SyncMode::Normal => {
                "answered requests survive a crash; a power cut can lose the last ones"
            }
            SyncMode::Off => "never synced: a crash can lose anything (tests only)",
        },
        StoreSpec::Postgres(_) => {
            "answered requests are committed to PostgreSQL (shared by every node)"
        }
    }
}

/// One listener for the start-up summary: address, TLS, the hello methods it accepts.
fn describe_listener(l: &ListenerConfig, bound: SocketAddr) -> String {
    let kind = match &l.tls {
        None => "tcp",
        Some(t) if t.client_ca.is_some() => "tls, client certificate required",
        Some(_) => "tls",
    };
    let auth = match &l.auth {
        None => "any method".to_string(),
        Some(m) => m.iter().map(|m| m.name()).collect::<Vec<_>>().join(","),
    };
    format!("{bound} ({kind}; hello: {auth})")
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
    let listener_configs = config.listeners.clone();
    let http_auth = config.http.as_ref().map(|h| {
        if h.metrics_no_auth {
            format!("admin {}; /metrics without authentication", config.admin)
        } else {
            format!("admin {}", config.admin)
        }
    });
    let handle = Server::start(config, backend)
        .await
        .map_err(|e| Failure::with_code(2, e.to_string()))?;
    let mut signals = ShutdownSignal::install();
    let mut hangup = Hangup::install();
    let addrs: Vec<String> = handle.local_addrs().iter().map(|a| a.to_string()).collect();
    let listen = addrs.join(", ");
    let listeners = listener_configs
        .iter()
        .zip(handle.local_addrs())
        .map(|(l, a)| describe_listener(l, *a))
        .collect::<Vec<_>>()
        .join("; ");
    let http = match (handle.http_addr(), http_auth) {
        (Some(a), Some(auth)) => format!("http://{a}/ ({auth})"),
        _ => "off".to_string(),
    };
    tracing::info!(
        %listen,
        %listeners,
        store = %summary.store,
        promise = summary.promise,
        definitions = summary.defs,
        workflows = summary.workflows,
        auth = %summary.auth,
        %http,
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
