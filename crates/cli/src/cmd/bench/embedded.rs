//! Our server in the bench process (`--embedded`) or in a child process (`--serve-only`,
//! used to measure the server's memory apart from the client connections).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;

use jobcenter_engine::backend::Backend;
use jobcenter_engine::runtime::EngineConfig;
use jobcenter_engine::Catalog;
use jobcenter_server::{AuthConfig, ListenerConfig, Server, ServerConfig, ServerHandle};
use jobcenter_store::StoreSpec;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::args::BackendKind;
use jobcenter_backend::stub::StubBackend;

/// The JCL sources the embedded engine loads (embedded so the binary runs anywhere).
pub const SOURCES: [(&str, &str); 4] = [
    ("add.ac", include_str!("jcl/add.ac")),
    ("addpad.ac", include_str!("jcl/addpad.ac")),
    ("calladd.wf", include_str!("jcl/calladd.wf")),
    ("callpad.wf", include_str!("jcl/callpad.wf")),
];

/// Compile the bench workflows (actions first, they are called by the workflows).
pub fn catalog() -> Result<Catalog, String> {
    let mut cat = Catalog::new();
    for (file, src) in SOURCES {
        cat.compile(file, src).map_err(|errs| {
            let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
            format!("{file}: {}", msgs.join("; "))
        })?;
    }
    Ok(cat)
}

/// Build the backend (the engine's timer task is spawned on the current runtime).
pub fn backend(
    kind: BackendKind,
    store: &StoreSpec,
    action: &str,
) -> Result<Arc<dyn Backend>, String> {
    match kind {
        BackendKind::Engine => {
            crate::cmd::serve::start_engine(catalog()?, store, None, EngineConfig::default())
        }
        BackendKind::Stub => Ok(Arc::new(StubBackend::pass_through(action))),
    }
}

/// Start our server on a free loopback port, accepting any who/token (development auth:
/// the listener is loopback only and lives as long as the bench).
pub async fn start(
    kind: BackendKind,
    store: &StoreSpec,
    action: &str,
) -> Result<ServerHandle, String> {
    let backend = backend(kind, store, action)?;
    let auth = AuthConfig {
        dev_allow_any: true,
        ..AuthConfig::default()
    };
    let cfg = ServerConfig::new(
        ListenerConfig::tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        auth,
    );
    Server::start(cfg, backend)
        .await
        .map_err(|e| format!("cannot start the embedded server: {e}"))
}

/// `--serve-only`: run the embedded server, print its port on stdout, stop at stdin EOF.
pub async fn serve_only(kind: BackendKind, store: &StoreSpec, action: &str) -> Result<(), String> {
    let server = start(kind, store, action).await?;
    let port = server
        .local_addrs()
        .first()
        .map(SocketAddr::port)
        .ok_or("the server has no listener")?;
    println!("{port}");
    use std::io::Write;
    std::io::stdout()
        .flush()
        .map_err(|e| format!("stdout: {e}"))?;
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    while stdin
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?
        > 0
    {
        line.clear();
    }
    server.shutdown().await;
    Ok(())
}

/// The embedded server as a child process (`jobcenter bench --serve-only`).
pub struct ChildServer {
    /// The child; it exits when its stdin closes (on drop of `child`, kill_on_drop).
    pub child: Child,
    /// Its OS process id.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// Spawn this binary as `bench --serve-only` and wait for its port.
pub async fn spawn_child(
    kind: BackendKind,
    store: &StoreSpec,
    action: &str,
) -> Result<ChildServer, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find our binary: {e}"))?;
    let mut child = Command::new(exe)
        .args([
            "bench",
            "--serve-only",
            "--backend",
            kind.name(),
            "--action",
            action,
            "--store",
            &store.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the server process: {e}"))?;
    let pid = child.id().ok_or("the server process is gone")?;
    let out = child
        .stdout
        .take()
        .ok_or("no stdout of the server process")?;
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .await
        .map_err(|e| format!("server process: {e}"))?;
    let port: u16 = line
        .trim()
        .parse()
        .map_err(|_| format!("server process printed {line:?} instead of its port"))?;
    Ok(ChildServer { child, pid, port })
}

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path}: no VmRSS line"))
}
