//! The JobCenter API server (jcapi compatible): listeners, sessions, auth and dispatcher.
//!
//! Start it with [`Server::start`] and a [`ServerConfig`]; it serves docs/PROTOCOL.md over TCP or
//! TLS, authenticates `hello`, dispatches tasks to workers (§8) and tracks jobs for
//! `job_done` (§9). Everything about jobs lives behind the
//! [`jobcenter_backend::Backend`] trait.
//!
//! Modules: [`config`] (listeners, auth sources, timers), [`auth`] (`password` and
//! `clientcert`), [`reqauth`] (the per-request authentication plug-in), [`tls`] (rustls acceptor, client CN), [`dispatch`] (the §8 state machine,
//! plain data), [`jobs`] (the §9 registry), [`params`] (Perl-style param helpers); the
//! private `session` module holds the method handlers and `server` the connection lifecycle;
//! the private `http` and `metrics` modules serve Prometheus metrics at `GET /metrics` on
//! the optional HTTP listener ([`HttpConfig`]), and the private `web` module the admin's
//! status pages there (`/`, `/job/ID`, `/jobs`), with `throughput` keeping their job counts.
//!
//! Behaviour choices where the reference is defective or the spec leaves room:
//! - REF-BUGs fixed as required: an offer handed off after 10 s is stored again for the next
//!   worker (§8.4); a `get_task` that fails in the backend releases its slot (§8.7);
//!   `check_if_lock_exists` backend errors answer -32001; framing errors always close.
//! - `find_jobs` also accepts an object filter (lenient extension) and returns job ids as
//!   JSON integers.
//! - The `create_job` timeout removes only the creator's registration; `get_job_status`
//!   notify registrations of other connections survive it (§14 Q31). A `get_job_status`
//!   that returns final outargs (or fails) removes only the asking connection's notify
//!   registration.
//! - Right after a successful `announce` the server polls for that worker only (§7.11
//!   allows it), so jobs that were ready before are offered at once (C68). The
//!   registration is recorded after the `[true,"success"]` result is queued, so no
//!   `task_ready` overtakes it.
//! - Poll-offer ids are `please_<action>_<n>`; poll offers have no hand-off timer (as the
//!   reference).
//! - A `get_task` that claims nothing keeps its action in the pending list when a ready
//!   notification marked it while the claim was in flight (the reference drops it, and the
//!   new job then waits up to 60 s for the periodic poll).
//! - Slot counts are validated as in the reference (`> 0`, fractions allowed, §14 Q34).
//! - A listener may allow only some `hello` methods ([`ListenerConfig::auth`]); the
//!   reference parses such lists but does not enforce them (§14 Q18).
//! - `reqauth` (§11.5): an optional [`ReqAuth`] plug-in ([`AuthConfig::request_auth`],
//!   e.g. [`ReqAuthFile`]) checks every `create_job`; without one `reqauth` is ignored.
//! - [`AuthConfig::dev_allow_any`] accepts every `hello`: development only, insecure.
//! - Nothing but `hello` is answered before login: `ping` needs state `auth` too (-32002),
//!   where the reference answers it (§6.1).
//! - Hardening of `hello` (the reference has none of it): password hashes are compared in
//!   constant time; at most [`AuthConfig::max_concurrent_checks`] password checks run at
//!   once, on the blocking pool; a failed `hello` is answered only after
//!   [`AuthConfig::failure_delay`]; no token is ever logged by this crate.

#![warn(missing_docs)]

mod admin;
pub mod auth;
pub mod config;
pub mod crypt;
pub mod dispatch;
mod http;
pub mod jobs;
mod metrics;
pub mod params;
pub mod reqauth;
mod server;
mod session;
mod state;
mod status;
mod throughput;
pub mod tls;
mod web;

pub use auth::{AuthFileError, AuthFilesLoaded, AuthStats, Authenticator};
pub use config::{
    AuthConfig, AuthMethod, HttpConfig, Limits, ListenerConfig, ServerConfig, Timers, TlsConfig,
};
pub use reqauth::{ReqAuth, ReqAuthFile, ReqAuthRequest};
pub use server::{Server, ServerHandle, GREETING_FRAME};

use std::net::SocketAddr;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS files of a listener are unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// Another I/O error.
    #[error("i/o error: {0}")]
    Io(std::io::Error),
    /// The password or CN file is unreadable or has a bad line.
    #[error("{0}")]
    Auth(#[from] AuthFileError),
}
