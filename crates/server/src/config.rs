//! Server configuration: listeners, TLS files, authentication sources (and the errors of their files), the `reqauth` plug-in interface, protocol timers.

use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything [`crate::Server::start`] needs besides the backend.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The listeners to open; each may be plain TCP or TLS.
    pub listeners: Vec<ListenerConfig>,
    /// Where `hello` credentials are checked.
    pub auth: AuthConfig,
    /// Protocol timers (defaults are those of the reference server).
    pub timers: Timers,
    /// Resource limits per connection and per server.
    pub limits: Limits,
    /// The HTTP listener for `/metrics`; `None` (the default): no HTTP listener.
    pub http: Option<HttpConfig>,
    /// The admin identity: the one allowed `get_api_status`, the `admin_*` methods
    /// (docs/PROTOCOL.md §16) and the HTTP listener. Default [`ServerConfig::DEFAULT_ADMIN`].
    pub admin: String,
}

impl ServerConfig {
    /// The default admin identity, as the reference's `get_api_status`.
    pub const DEFAULT_ADMIN: &'static str = "apimeister";

    /// A configuration with one listener and default timers.
    pub fn new(listener: ListenerConfig, auth: AuthConfig) -> Self {
        ServerConfig {
            listeners: vec![listener],
            auth,
            timers: Timers::default(),
            limits: Limits::default(),
            http: None,
            admin: Self::DEFAULT_ADMIN.to_string(),
        }
    }
}

/// The HTTP listener (`serve --http`): Prometheus metrics at `GET /metrics`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Bind address; port 0 picks a free port (see [`crate::ServerHandle::http_addr`]).
    /// The identity allowed in is [`ServerConfig::admin`] (HTTP Basic auth, checked against
    /// the password file like a `hello` with method `password`).
    pub addr: SocketAddr,
    /// Serve `/metrics` without authentication (for a scraper on a trusted network).
    pub metrics_no_auth: bool,
}

impl HttpConfig {
    /// A listener on `addr`, with authentication.
    pub fn new(addr: SocketAddr) -> Self {
        HttpConfig {
            addr,
            metrics_no_auth: false,
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Bind address; port 0 picks a free port (see [`crate::ServerHandle::local_addrs`]).
    pub addr: SocketAddr,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<TlsConfig>,
    /// The `hello` methods this listener accepts (the reference's per-listener `auth`
    /// list, which it does not enforce; we do: docs/PROTOCOL.md §2.1, §14 Q18). A `hello`
    /// with another method is refused like a wrong password. `None`: every configured
    /// method.
    pub auth: Option<Vec<AuthMethod>>,
}

impl ListenerConfig {
    /// A plain TCP listener.
    pub fn tcp(addr: SocketAddr) -> Self {
        ListenerConfig {
            addr,
            tls: None,
            auth: None,
        }
    }

    /// Whether a `hello` with `method` may log in on this listener.
    pub fn allows(&self, method: &str) -> bool {
        self.auth
            .as_ref()
            .is_none_or(|list| list.iter().any(|m| m.name() == method))
    }
}

/// A `hello` authentication method (docs/PROTOCOL.md §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `password`: the token is checked against the password file (§11.2).
    Password,
    /// `clientcert`: the TLS client certificate's CN is checked against the CN file (§11.3).
    Clientcert,
}

impl AuthMethod {
    /// The name a `hello` gives in its `method` param.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Clientcert => "clientcert",
        }
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "password" => Ok(AuthMethod::Password),
            "clientcert" => Ok(AuthMethod::Clientcert),
            _ => Err(format!(
                "unknown authentication method {s:?} (want password or clientcert)"
            )),
        }
    }
}

/// TLS settings of a listener (PEM files).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM; PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle (PEM). When set, clients MUST present a certificate this CA verifies
    /// (docs/PROTOCOL.md §2.2), which is what the `clientcert` method needs.
    pub client_ca: Option<PathBuf>,
}

/// Authentication sources for `hello` (docs/PROTOCOL.md §11), and the limits on checking them.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Password file of `user:hash` lines (method `password`), read and validated at start
    /// and again by [`crate::ServerHandle::reload_auth`].
    pub password_file: Option<PathBuf>,
    /// CN file of `cn:user1,user2` lines (method `clientcert`), loaded like the password file.
    pub clientcert_file: Option<PathBuf>,
    /// **Insecure, development only**: every `hello` with the required params succeeds,
    /// whatever the method and token. Never enable this on a reachable network.
    pub dev_allow_any: bool,
    /// Most password checks (crypt hashing, on the blocking pool) that run at once; further
    /// `hello`s wait for a turn. Default: the number of CPUs. 0 counts as 1.
    pub max_concurrent_checks: usize,
    /// How long a failed `hello` waits before `[false,"you're not welcome!"]` is sent and
    /// the connection closed, so that guesses cannot be tried at speed. The wait holds no
    /// check slot. Default [`AuthConfig::DEFAULT_FAILURE_DELAY`]; zero answers at once.
    pub failure_delay: Duration,
    /// The per-request authenticator of `create_job` (`reqauth`, docs/PROTOCOL.md §11.5),
    /// asked on every connection. `None` (the default): `reqauth` is ignored.
    pub request_auth: Option<Arc<dyn ReqAuth>>,
}

impl AuthConfig {
    /// The default [`AuthConfig::failure_delay`]: 500 ms.
    pub const DEFAULT_FAILURE_DELAY: Duration = Duration::from_millis(500);

    /// The default [`AuthConfig::max_concurrent_checks`]: the number of CPUs (1 if unknown).
    pub fn default_max_concurrent_checks() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            password_file: None,
            clientcert_file: None,
            dev_allow_any: false,
            max_concurrent_checks: Self::default_max_concurrent_checks(),
            failure_delay: Self::DEFAULT_FAILURE_DELAY,
            request_auth: None,
        }
    }
}

/// The protocol's timers; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Interval between server→worker pings (reference 60 s, §7.3).
    pub ping_interval: Duration,
    /// How long a worker may take to answer a ping before it is disconnected (30 s).
    pub ping_timeout: Duration,
    /// How long an offered worker has to claim a specific job before it moves on (10 s, §8.4).
    pub handoff: Duration,
    /// Interval of the server-wide poll for ready tasks (60 s, §8.5).
    pub poll: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            ping_interval: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(30),
            handoff: Duration::from_secs(10),
            poll: Duration::from_secs(60),
        }
    }
}

/// Resource limits: what one peer, or all of them together, may make the server hold.
///
/// Every limit has a default meant for production; `serve` has a flag for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time from accepting a connection (TLS handshake included) to a successful `hello`;
    /// a connection that has not logged in by then is closed. Default 10 s.
    pub handshake_timeout: Duration,
    /// Open connections in total; more are accepted and closed at once. Default 10,000.
    pub max_connections: usize,
    /// Open connections from one IP address. Default 1,000.
    pub max_connections_per_ip: usize,
    /// Largest incoming frame payload in bytes (the reference's 999,999 by default).
    pub max_frame: usize,
    /// Requests of one connection being handled at once; further requests are not read
    /// until one finishes. Default 1,000.
    pub max_in_flight: usize,
    /// Bytes queued for a connection that does not read them: above this the server stops
    /// reading its requests; at four times this the connection is closed. Default 16 MiB.
    pub max_output: usize,
    /// How long queued output may make no progress before the connection is closed.
    /// Default 30 s.
    pub output_stall_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            max_frame: jobcenter_wire::SERVER_MAX_FRAME,
            max_in_flight: 1_000,
            max_output: 16 * 1024 * 1024,
            output_stall_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a password or CN file could not be loaded (at start or on a reload).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFileError {
    /// The file could not be read.
    #[error("cannot read {file}: {reason}")]
    Unreadable {
        /// The file.
        file: String,
        /// The operating system's reason.
        reason: String,
    },
    /// A line is not what the file must hold. The line itself is not shown: it may hold
    /// a password hash.
    #[error("{file}:{line}: {reason}")]
    BadLine {
        /// The file.
        file: String,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a per-request authenticator is asked about: the connection's identity and the
/// request's `reqauth` param.
#[derive(Debug, Clone)]
pub struct ReqAuthRequest {
    /// The identity the connection logged in as (`hello`'s `who`).
    pub who: String,
    /// The `hello` method it logged in with (`password`, `clientcert`).
    pub method: String,
    /// The subject CN of its verified TLS client certificate, if any.
    pub peer_cn: Option<String>,
    /// Where the connection comes from.
    pub from: SocketAddr,
    /// The workflow `create_job` asks for.
    pub wfname: String,
    /// `params.reqauth` as sent (`None` when absent); it may hold secrets: never log it.
    pub reqauth: Option<Value>,
}

/// A per-request authenticator (§11.5), called for every `create_job` before anything else
/// is checked but the workflow name.
///
/// `Ok(scope)` lets the job be created; its environment gets
/// `authscope: {"authscope": scope}`. `Err(message)` refuses it: `create_job` answers
/// `[null, message]` and creates no job. The message goes to the client, so it should not
/// tell more than needed; [`ReqAuth::check`] may log the real reason (never the secret).
///
/// `check` may block (hashing, a file): the server calls it on tokio's blocking pool.
pub trait ReqAuth: Send + Sync + std::fmt::Debug {
    /// Decide on one `create_job`.
    fn check(&self, req: &ReqAuthRequest) -> Result<Value, String>;

    /// A short description for the start-up summary, e.g. `token file /etc/jc/reqauth`.
    fn describe(&self) -> String;

    /// Read its configuration again (`serve` does it on SIGHUP, with the password file).
    /// On an error the configuration in use stays. The default does nothing.
    fn reload(&self) -> Result<(), AuthFileError> {
        Ok(())
    }
}
