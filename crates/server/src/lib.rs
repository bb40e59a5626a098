//! The JobCenter API server (jcapi compatible): listeners, sessions, auth and dispatcher.
//!
//! Start it with [`Server::start`] and a [`ServerConfig`]; it serves PROTOCOL.md over TCP or
//! TLS, authenticates `hello`, dispatches tasks to workers (§8) and tracks jobs for
//! `job_done` (§9). Everything about jobs lives behind the
//! [`jobcenter_engine::backend::Backend`] trait.

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod dispatch;
pub mod jobs;
pub mod params;
mod server;
mod session;
mod status;
pub mod tls;

pub use config::{AuthConfig, ListenerConfig, ServerConfig, Timers, TlsConfig};
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
}
