//! Shared set-up for the end-to-end conformance tests: a real server with the JCL engine on a
//! loopback port, connected clients and workers of our library, the reference workers of
//! docs/JCL.md Part 4, result matching with placeholders, and a raw netstring connection.
//!
//! Everything here runs the real components: [`jobcenter_server::Server`] over
//! [`jobcenter_engine::Engine`] on a store of the test's choice ([`StoreKind`]: in memory, or
//! a SQLite file in the server's temporary directory, or a fresh PostgreSQL database), reached over TCP on 127.0.0.1 by
//! [`jobcenter::Client`] / [`jobcenter::Worker`] or by [`RawConn`]. The suites in `tests/suite/`
//! run once per store: `tests/<suite>_memory.rs`, `_sqlite.rs`, `_postgres.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jobcenter::{Action, Client, ClientConfig, ClientError, Task, Worker};
use jobcenter_engine::backend::Backend;
use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_server::{
    AuthConfig, Limits, ListenerConfig, Server, ServerConfig, ServerHandle, Timers,
};
use jobcenter_store::testdb::TestDatabase;
use jobcenter_store::{MemoryStore, PgStore, SqliteStore};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The docs/JCL.md Part 4 client identity (appears as `e.client` in jobs).
pub const JC_ADMIN: &str = "jc_admin";
/// Password of [`JC_ADMIN`] in the test password file.
pub const JC_ADMIN_TOKEN: &str = "jcAdminSecret";
/// The user every worker of the harness logs in as.
pub const EMPLOYEE: &str = "theEmployee";
/// The docs/PROTOCOL.md §11.2 test-vector password of [`EMPLOYEE`].
pub const EMPLOYEE_TOKEN: &str = "doesThings";
/// The docs/PROTOCOL.md §11.2 test-vector customer.
pub const CUSTOMER: &str = "theCustomer";
/// Password of [`CUSTOMER`].
pub const CUSTOMER_TOKEN: &str = "wantsThings";
/// The only user allowed to call `get_api_status`.
pub const APIMEISTER: &str = "apimeister";
/// Password of [`APIMEISTER`].
pub const APIMEISTER_TOKEN: &str = "meisterpass";

/// The users of the test password file: `(who, token)`.
pub const USERS: [(&str, &str); 4] = [
    (JC_ADMIN, JC_ADMIN_TOKEN),
    (CUSTOMER, CUSTOMER_TOKEN),
    (EMPLOYEE, EMPLOYEE_TOKEN),
    (APIMEISTER, APIMEISTER_TOKEN),
];

/// The reference actions of docs/JCL.md Part 4.
pub const REFERENCE_ACTIONS: [&str; 5] = ["c_add", "c_fail", "c_echo", "c_soft", "c_slow"];

/// How long a test waits for something that should happen soon.
pub const WAIT: Duration = Duration::from_secs(10);

/// Why the harness could not set something up.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The JCL sources did not load.
    #[error("JCL sources in {dir} failed to load: {errors}")]
    Jcl {
        /// The folder.
        dir: String,
        /// The loader's errors, joined.
        errors: String,
    },
    /// A password hash could not be made.
    #[error("password hash: {0}")]
    Hash(String),
    /// Temporary files could not be written.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not start.
    #[error("server: {0}")]
    Server(#[from] jobcenter_server::ServerError),
    /// A client could not connect or a call failed.
    #[error("client: {0}")]
    Client(#[from] ClientError),
    /// A fixture file is not what it should be.
    #[error("fixture: {0}")]
    Fixture(String),
}

/// The docs/JCL.md Part 4 fixtures of the engine crate (loaded at test time from the repository).
pub fn part4_fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/tests/fixtures/jcl"
    ))
}

/// The expected outputs shared with the engine's own Part 4 tests
/// (`engine/tests/fixtures/jcl_error_cases.json`): the `[mode, outargs]` pairs of workflow
/// `wf` (`k40`: C28, `k42`: C29).
pub fn jcl_error_cases(wf: &str) -> Result<Vec<(String, Value)>, HarnessError> {
    let all: Value = serde_json::from_str(include_str!(
        "../../engine/tests/fixtures/jcl_error_cases.json"
    ))
    .map_err(|e| HarnessError::Fixture(e.to_string()))?;
    let cases: Vec<(String, Value)> = serde_json::from_value(all[wf].clone())
        .map_err(|e| HarnessError::Fixture(format!("{wf}: {e}")))?;
    if cases.is_empty() {
        return Err(HarnessError::Fixture(format!("no cases for {wf}")));
    }
    Ok(cases)
}

/// The expected runs of case `c` (`C05`...) shared with the engine's own Part 4 tests
/// (`engine/tests/fixtures/jcl_cases.json`).
pub fn jcl_cases(c: &str) -> Result<Vec<jobcenter_testkit::Case>, HarnessError> {
    jobcenter_testkit::cases(
        include_str!("../../engine/tests/fixtures/jcl_cases.json"),
        c,
    )
    .map_err(HarnessError::Fixture)
}

/// C42 (the engine's `fixtures/jcl_cases.json`): the `c42` files with their version tags,
/// and the `[vtag, version that runs]` pairs.
#[allow(clippy::type_complexity)]
pub fn c42_vtags(
) -> Result<(Vec<(String, Option<String>)>, Vec<(Option<String>, String)>), HarnessError> {
    let text = include_str!("../../engine/tests/fixtures/jcl_cases.json");
    let files = jobcenter_testkit::entry(text, "C42_files").map_err(HarnessError::Fixture)?;
    let runs = jobcenter_testkit::entry(text, "C42_runs").map_err(HarnessError::Fixture)?;
    Ok((files, runs))
}

/// Fixtures of this crate (`tests/fixtures`).
pub fn own_fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// Password file contents: one `who:$5$...` line per user, hashed with SHA-256 crypt.
pub fn password_file(users: &[(&str, &str)]) -> Result<String, HarnessError> {
    let mut out = String::new();
    for (who, token) in users {
        // `$5$` is what the reference deployments use (docs/PROTOCOL.md §11.2); test data only.
        let hash = jobcenter_server::crypt::hash_sha256(token);
        out.push_str(&format!("{who}:{hash}\n"));
    }
    Ok(out)
}

/// [`password_file`] of [`USERS`], hashed once per process (hashing is slow in debug builds).
pub fn users_password_file() -> Result<&'static str, HarnessError> {
    static FILE: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    match FILE.get_or_init(|| password_file(&USERS).map_err(|e| e.to_string())) {
        Ok(s) => Ok(s.as_str()),
        Err(e) => Err(HarnessError::Hash(e.clone())),
    }
}

/// Server timers short enough for tests: ping every 200 ms (timeout 2 s), hand-off after
/// 300 ms, poll every 500 ms.
pub fn fast_timers() -> Timers {
    Timers {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_secs(2),
        handoff: Duration::from_millis(300),
        poll: Duration::from_millis(500),
    }
}

/// Timers that never interfere: no pings, polls or hand-offs within a test.
pub fn quiet_timers() -> Timers {
    Timers {
        ping_interval: Duration::from_secs(600),
        ping_timeout: Duration::from_secs(300),
        handoff: Duration::from_secs(600),
        poll: Duration::from_secs(600),
    }
}

/// A catalog of every `*.wf`/`*.ac` in `dir` (Stage C, lock types `slot` and `abc`).
pub fn catalog(dir: &Path) -> Result<Catalog, HarnessError> {
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_locktype("slot");
    cat.register_locktype("abc");
    let report = cat.load_dir(dir);
    if !report.is_ok() {
        return Err(HarnessError::Jcl {
            dir: dir.display().to_string(),
            errors: format!("{:?}", report.errors),
        });
    }
    Ok(cat)
}

/// The Part 4 engine configuration: global environment `{"version": "0.1"}`.
pub fn part4_engine_config() -> EngineConfig {
    let mut global_env = Map::new();
    global_env.insert("version".into(), json!("0.1"));
    EngineConfig {
        global_env,
        ..EngineConfig::default()
    }
}

/// Which store the engine of a [`TestServer`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// [`MemoryStore`].
    Memory,
    /// [`SqliteStore`] in a file of the server's temporary directory.
    Sqlite,
    /// [`PgStore`] on a fresh database of the test PostgreSQL server (dropped afterwards).
    Postgres,
}

/// A real server over the real engine on `127.0.0.1:<free port>`.
pub struct TestServer {
    handle: Option<ServerHandle>,
    addr: SocketAddr,
    engine: Arc<dyn Backend>,
    _dir: tempfile::TempDir,
    _db: Option<TestDatabase>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl TestServer {
    /// Load the JCL sources of `jcl_dir`, start the engine (Part 4 config) and the server
    /// with `timers` and the test password file ([`USERS`]).
    pub async fn start(
        jcl_dir: impl AsRef<Path>,
        timers: Timers,
    ) -> Result<TestServer, HarnessError> {
        Self::start_on(StoreKind::Memory, jcl_dir, timers).await
    }

    /// Like [`TestServer::start`] on the given store.
    pub async fn start_on(
        store: StoreKind,
        jcl_dir: impl AsRef<Path>,
        timers: Timers,
    ) -> Result<TestServer, HarnessError> {
        let cat = catalog(jcl_dir.as_ref())?;
        Self::with_catalog_on(store, cat, part4_engine_config(), timers).await
    }

    /// Like [`TestServer::start`] with an explicit catalog and engine configuration.
    pub async fn with_catalog(
        cat: Catalog,
        config: EngineConfig,
        timers: Timers,
    ) -> Result<TestServer, HarnessError> {
        Self::with_catalog_on(StoreKind::Memory, cat, config, timers).await
    }

    /// Like [`TestServer::with_catalog`] on the given store.
    pub async fn with_catalog_on(
        store: StoreKind,
        cat: Catalog,
        config: EngineConfig,
        timers: Timers,
    ) -> Result<TestServer, HarnessError> {
        Self::with_limits(store, cat, config, timers, Limits::default()).await
    }

    /// Like [`TestServer::with_catalog_on`] with the server's resource limits.
    pub async fn with_limits(
        store: StoreKind,
        cat: Catalog,
        config: EngineConfig,
        timers: Timers,
        limits: Limits,
    ) -> Result<TestServer, HarnessError> {
        let dir = tempfile::tempdir()?;
        let mut db = None;
        let engine: Arc<dyn Backend> = match store {
            StoreKind::Memory => Engine::new(cat, MemoryStore::new(), config).start(),
            StoreKind::Sqlite => {
                let store = SqliteStore::open(dir.path().join("jobcenter.db"))
                    .map_err(|e| HarnessError::Io(std::io::Error::other(e.to_string())))?;
                Engine::new(cat, store, config).start()
            }
            StoreKind::Postgres => {
                let other = |e: String| HarnessError::Io(std::io::Error::other(e));
                let created = TestDatabase::create().map_err(other)?;
                let store = PgStore::open(created.url()).map_err(|e| other(e.to_string()))?;
                db = Some(created);
                Engine::new(cat, store, config).start()
            }
        };
        Self::serve(engine, timers, limits, dir, db).await
    }

    /// A server over an engine the caller started (e.g. on a store wrapper that injects
    /// faults), with the test password file ([`USERS`]).
    pub async fn with_backend(
        engine: Arc<dyn Backend>,
        timers: Timers,
        limits: Limits,
    ) -> Result<TestServer, HarnessError> {
        Self::serve(engine, timers, limits, tempfile::tempdir()?, None).await
    }

    /// Like [`TestServer::start`] (memory store) with the server's [`AuthConfig`], which
    /// holds the test password file, adjusted by `auth` (e.g. a `reqauth` plug-in).
    pub async fn with_auth(
        jcl_dir: impl AsRef<Path>,
        timers: Timers,
        auth: impl FnOnce(&mut AuthConfig),
    ) -> Result<TestServer, HarnessError> {
        let cat = catalog(jcl_dir.as_ref())?;
        let engine = Engine::new(cat, MemoryStore::new(), part4_engine_config()).start();
        let dir = tempfile::tempdir()?;
        Self::serve_with(engine, timers, Limits::default(), dir, None, auth).await
    }

    async fn serve(
        engine: Arc<dyn Backend>,
        timers: Timers,
        limits: Limits,
        dir: tempfile::TempDir,
        db: Option<TestDatabase>,
    ) -> Result<TestServer, HarnessError> {
        Self::serve_with(engine, timers, limits, dir, db, |_| {}).await
    }

    async fn serve_with(
        engine: Arc<dyn Backend>,
        timers: Timers,
        limits: Limits,
        dir: tempfile::TempDir,
        db: Option<TestDatabase>,
        adjust: impl FnOnce(&mut AuthConfig),
    ) -> Result<TestServer, HarnessError> {
        let pw = dir.path().join("passwd");
        std::fs::write(&pw, users_password_file()?)?;
        let mut auth = AuthConfig {
            password_file: Some(pw),
            clientcert_file: None,
            dev_allow_any: false,
            ..AuthConfig::default()
        };
        adjust(&mut auth);
        let config = ServerConfig {
            listeners: vec![ListenerConfig::tcp(SocketAddr::from(([127, 0, 0, 1], 0)))],
            auth,
            timers,
            limits,
            http: None,
            admin: ServerConfig::DEFAULT_ADMIN.into(),
        };
        let handle = Server::start(config, engine.clone()).await?;
        let addr = handle
            .local_addrs()
            .first()
            .copied()
            .ok_or_else(|| HarnessError::Io(std::io::Error::other("no listener")))?;
        tracing::debug!(%addr, "test server up");
        Ok(TestServer {
            handle: Some(handle),
            addr,
            engine,
            _dir: dir,
            _db: db,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The engine behind the server.
    pub fn engine(&self) -> &Arc<dyn Backend> {
        &self.engine
    }

    /// The server handle (None after [`TestServer::shutdown`]).
    pub fn handle(&self) -> Option<&ServerHandle> {
        self.handle.as_ref()
    }

    /// A client configuration for this server as `who`/`token`; the worker watchdog is off.
    pub fn config(&self, who: &str, token: &str) -> ClientConfig {
        ClientConfig::new(who, token)
            .address(self.addr.ip().to_string())
            .port(self.addr.port())
            .timeout(Duration::from_secs(10))
            .ping_timeout(Duration::ZERO)
    }

    /// A client logged in as [`JC_ADMIN`] (the Part 4 identity).
    pub async fn client(&self) -> Result<Client, HarnessError> {
        self.client_as(JC_ADMIN).await
    }

    /// A client logged in as one of the [`USERS`].
    pub async fn client_as(&self, who: &str) -> Result<Client, HarnessError> {
        let token = USERS
            .iter()
            .find(|(w, _)| *w == who)
            .map(|(_, t)| *t)
            .unwrap_or("unknown user");
        Ok(Client::connect(self.config(who, token)).await?)
    }

    /// A worker connection logged in as [`EMPLOYEE`] (nothing announced yet).
    pub async fn worker(&self) -> Result<Worker, HarnessError> {
        Ok(Worker::connect(self.config(EMPLOYEE, EMPLOYEE_TOKEN)).await?)
    }

    /// A worker serving all [`REFERENCE_ACTIONS`], recording into `rec`.
    pub async fn reference_worker(&self, rec: &Recorder) -> Result<Worker, HarnessError> {
        let w = self.worker().await?;
        for a in reference_actions(rec, None) {
            w.announce(a).await?;
        }
        Ok(w)
    }

    /// Stop the server (connections are closed).
    pub async fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

/// What a reference worker received for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The action.
    pub action: String,
    /// The job id from `get_task`.
    pub job_id: i64,
    /// The task's input arguments.
    pub inargs: Value,
    /// The task's environment (`{}` when none came).
    pub env: Value,
}

/// Shared record of everything the reference workers received, plus `c_soft` attempt
/// counters per job.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<Mutex<HashMap<i64, i64>>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Everything received for `job_id`, in order.
    pub fn for_job(&self, job_id: i64) -> Vec<Received> {
        self.received
            .lock()
            .iter()
            .filter(|r| r.job_id == job_id)
            .cloned()
            .collect()
    }

    /// Number of tasks received in total.
    pub fn len(&self) -> usize {
        self.received.lock().len()
    }

    /// True when nothing was received.
    pub fn is_empty(&self) -> bool {
        self.received.lock().is_empty()
    }

    fn record(&self, t: &Task) -> Received {
        let r = Received {
            action: t.action.clone(),
            job_id: t.job_id,
            inargs: t.inargs.clone(),
            env: t.env.clone().unwrap_or_else(|| json!({})),
        };
        self.received.lock().push(r.clone());
        r
    }

    fn next_attempt(&self, job_id: i64) -> i64 {
        let mut a = self.attempts.lock();
        let n = a.entry(job_id).or_insert(0);
        *n += 1;
        *n
    }
}

pub use jobcenter_testkit::reference::{c_add, c_echo, c_fail, c_soft, number};

/// The Part 4 reference workers as [`Action`]s of our worker library: `c_add`, `c_fail`
/// and `c_echo` synchronous, `c_soft` and `c_slow` asynchronous (`c_slow` never answers).
/// All are announced with `addenv` so the recorder sees the task environment; `slots`
/// applies to each action (None: the server default of one).
pub fn reference_actions(rec: &Recorder, slots: Option<u32>) -> Vec<Action> {
    let with_slots = |a: Action| match slots {
        Some(n) => a.slots(n),
        None => a,
    };
    let r1 = rec.clone();
    let add = Action::new("c_add").addenv(true).sync(move |t: Task| {
        r1.record(&t);
        Ok::<_, String>(c_add(&t.inargs))
    });
    let r2 = rec.clone();
    let fail = Action::new("c_fail").addenv(true).sync(move |t: Task| {
        r2.record(&t);
        Ok::<_, String>(c_fail(&t.inargs))
    });
    let r3 = rec.clone();
    let echo = Action::new("c_echo").addenv(true).sync(move |t: Task| {
        let r = r3.record(&t);
        Ok::<_, String>(c_echo(&r.inargs, &r.env))
    });
    let r4 = rec.clone();
    let soft = Action::new("c_soft")
        .addenv(true)
        .run_async(move |t: Task| {
            let r4 = r4.clone();
            async move {
                r4.record(&t);
                let n = r4.next_attempt(t.job_id);
                Ok::<_, String>(c_soft(&t.inargs, n))
            }
        });
    let r5 = rec.clone();
    let slow = Action::new("c_slow")
        .addenv(true)
        .run_async(move |t: Task| {
            r5.record(&t);
            std::future::pending::<Result<Value, String>>()
        });
    vec![add, fail, echo, soft, slow]
        .into_iter()
        .map(with_slots)
        .collect()
}

pub use jobcenter_testkit::{matches, text_matches, Expect};

/// Why a raw connection operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Nothing arrived in time.
    #[error("timeout waiting for a frame")]
    Timeout,
    /// The peer closed the connection.
    #[error("connection closed")]
    Closed,
    /// The bytes received are not a valid netstring or JSON.
    #[error("bad frame: {0}")]
    BadFrame(String),
}

/// A raw TCP connection speaking netstrings with JSON payloads, written independently of
/// our wire crate (for replaying what other clients send).
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connect to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<RawConn, RawError> {
        Ok(Self::from_stream(TcpStream::connect(addr).await?))
    }

    /// Use a connected stream (e.g. one with its own socket options).
    pub fn from_stream(stream: TcpStream) -> RawConn {
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Read the `greetings` frame, send `hello` (password method) and require `[true, ...]`.
    pub async fn hello(&mut self, who: &str, token: &str) -> Result<(), RawError> {
        let greet = self.recv().await?;
        if greet["method"] != "greetings" {
            return Err(RawError::BadFrame(format!(
                "expected greetings, got {greet}"
            )));
        }
        self.send(
            &json!({"jsonrpc": "2.0", "id": "hello-1", "method": "hello",
            "params": {"who": who, "method": "password", "token": token}}),
        )
        .await?;
        let r = self.recv().await?;
        if r["id"] != "hello-1" || r["result"][0] != json!(true) {
            return Err(RawError::BadFrame(format!("hello failed: {r}")));
        }
        Ok(())
    }

    /// Connect, read the `greetings` frame, send `hello` (password method) and require
    /// `[true, ...]`.
    pub async fn login(addr: SocketAddr, who: &str, token: &str) -> Result<RawConn, RawError> {
        let mut c = RawConn::connect(addr).await?;
        c.hello(who, token).await?;
        Ok(c)
    }

    /// Send a request with `id` and return the next frame that is the response to it;
    /// frames received before it are appended to `other`.
    pub async fn request(
        &mut self,
        id: &str,
        method: &str,
        params: Value,
        other: &mut Vec<Value>,
    ) -> Result<Value, RawError> {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        loop {
            let f = self.recv().await?;
            if f.get("method").is_none() && f["id"] == id {
                return Ok(f);
            }
            other.push(f);
        }
    }

    /// Send `payload` (exact text) as one netstring.
    pub async fn send_text(&mut self, payload: &str) -> Result<(), RawError> {
        let frame = format!("{}:{},", payload.len(), payload);
        self.stream.write_all(frame.as_bytes()).await?;
        Ok(())
    }

    /// Send a JSON value as one netstring.
    pub async fn send(&mut self, v: &Value) -> Result<(), RawError> {
        self.send_text(&v.to_string()).await
    }

    /// The next frame as JSON, waiting at most `wait`.
    pub async fn recv_timeout(&mut self, wait: Duration) -> Result<Value, RawError> {
        match tokio::time::timeout(wait, self.recv_inner()).await {
            Ok(r) => r,
            Err(_) => Err(RawError::Timeout),
        }
    }

    /// The next frame as JSON, waiting at most [`WAIT`].
    pub async fn recv(&mut self) -> Result<Value, RawError> {
        self.recv_timeout(WAIT).await
    }

    async fn recv_inner(&mut self) -> Result<Value, RawError> {
        loop {
            if let Some(payload) = self.take_frame()? {
                return serde_json::from_slice(&payload)
                    .map_err(|e| RawError::BadFrame(e.to_string()));
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(RawError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn take_frame(&mut self) -> Result<Option<Vec<u8>>, RawError> {
        let Some(colon) = self.buf.iter().position(|b| *b == b':') else {
            if self.buf.len() > 10 {
                return Err(RawError::BadFrame("no ':' within 10 bytes".into()));
            }
            return Ok(None);
        };
        let head = &self.buf[..colon];
        if head.is_empty()
            || !head.iter().all(u8::is_ascii_digit)
            || (head.len() > 1 && head[0] == b'0')
        {
            return Err(RawError::BadFrame(format!(
                "bad length {:?}",
                String::from_utf8_lossy(head)
            )));
        }
        let len: usize = String::from_utf8_lossy(head)
            .parse()
            .map_err(|_| RawError::BadFrame("length".into()))?;
        let end = colon + 1 + len;
        if self.buf.len() <= end {
            return Ok(None);
        }
        if self.buf[end] != b',' {
            return Err(RawError::BadFrame("missing ','".into()));
        }
        let payload = self.buf[colon + 1..end].to_vec();
        self.buf.drain(..=end);
        Ok(Some(payload))
    }

    /// Announce `action` as worker `workername` with `slots` slots; requires
    /// `[true, "success"]`.
    pub async fn announce(
        &mut self,
        workername: &str,
        action: &str,
        slots: u32,
    ) -> Result<(), RawError> {
        let mut other = Vec::new();
        let params = json!({"workername": workername, "actionname": action, "slots": slots});
        let r = self
            .request("announce-1", "announce", params, &mut other)
            .await?;
        if r["result"] != json!([true, "success"]) {
            return Err(RawError::BadFrame(format!("announce failed: {r}")));
        }
        Ok(())
    }

    /// Wait for the next `task_ready` of `action` (other frames are discarded) and return
    /// its `job_id` as sent.
    pub async fn next_offer(&mut self, action: &str) -> Result<Value, RawError> {
        loop {
            let f = self.recv().await?;
            if f["method"] == "task_ready" && f["params"]["actionname"] == action {
                return Ok(f["params"]["job_id"].clone());
            }
        }
    }

    /// Claim the offered task with `get_task`: its job id and cookie, or `None` when the
    /// offer is no longer valid (taken or withdrawn meanwhile: `get_task` gives `[]`).
    pub async fn claim(
        &mut self,
        action: &str,
        offer: Value,
    ) -> Result<Option<(i64, String)>, RawError> {
        let mut other = Vec::new();
        let params = json!({"actionname": action, "job_id": offer});
        let r = self
            .request("get_task-1", "get_task", params, &mut other)
            .await?;
        let task = &r["result"];
        match (task[0].as_i64(), task[1].as_str()) {
            (Some(job_id), Some(cookie)) if !cookie.is_empty() => {
                Ok(Some((job_id, cookie.to_string())))
            }
            _ if task.as_array().is_some_and(Vec::is_empty) => Ok(None),
            _ => Err(RawError::BadFrame(format!("get_task answered {r}"))),
        }
    }

    /// Take the next task of `action`: [`RawConn::next_offer`] and [`RawConn::claim`] until
    /// a claim succeeds.
    pub async fn take_task(&mut self, action: &str) -> Result<(i64, String), RawError> {
        loop {
            let offer = self.next_offer(action).await?;
            if let Some(task) = self.claim(action, offer).await? {
                return Ok(task);
            }
        }
    }

    /// Send raw bytes (e.g. the first part of a frame).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), RawError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Close the connection with a reset (`SO_LINGER` 0: RST instead of FIN), as a peer
    /// that crashes or a middlebox that drops the connection does.
    pub fn reset(self) {
        let _ = self.stream.set_zero_linger();
        drop(self.stream);
    }

    /// Close our sending side (what a client's close looks like to the server); frames
    /// can still be received.
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Wait until the server closes the connection (frames before are discarded).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        loop {
            match self.recv_timeout(wait).await {
                Ok(_) => continue,
                Err(RawError::Timeout) => return false,
                Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_lines_verify() {
        let pw = password_file(&[("u", "secret")]).unwrap_or_default();
        let hash = pw.trim().strip_prefix("u:").unwrap_or_default().to_string();
        assert!(hash.starts_with("$5$"));
        assert_eq!(
            jobcenter_server::auth::crypt_matches(&hash, "secret"),
            Ok(true)
        );
        assert_eq!(
            jobcenter_server::auth::crypt_matches(&hash, "Secret"),
            Ok(false)
        );
    }
}
