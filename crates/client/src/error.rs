//! The typed errors of the client and worker library.

use jobcenter_rpc::CallError;

/// Everything that can go wrong in the client library.
///
/// Texts mirror the Perl client (`JobCenter::Client::Mojo`) where it has one, e.g.
/// [`ClientError::MissingToken`] displays as `no token?`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration has no token (checked before `who`, like the Perl client).
    #[error("no token?")]
    MissingToken,
    /// The configuration has no `who`.
    #[error("no who?")]
    MissingWho,
    /// A local argument check failed before anything was sent (e.g. `no workflowname?`).
    #[error("{0}")]
    Invalid(String),
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port` we tried.
        addr: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// TLS set-up or handshake failed (bad PEM files, certificate rejected, ...).
    #[error("tls: {0}")]
    Tls(String),
    /// The handshake (greetings + hello) did not finish within the configured `timeout`.
    #[error("timeout waiting for greeting")]
    HandshakeTimeout,
    /// The server greeted with another protocol version than `1.1`.
    #[error("wrong api version {0} (expected 1.1)")]
    WrongVersion(String),
    /// `hello` was answered `[false, msg]`: authentication failed.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// `hello` was answered with a JSON-RPC error.
    #[error("hello returned error {message} ({code})")]
    HelloError {
        /// JSON-RPC error code.
        code: i64,
        /// JSON-RPC error message.
        message: String,
    },
    /// The server answered a call with a JSON-RPC error object.
    #[error("{message} ({code})")]
    Rpc {
        /// JSON-RPC error code, e.g. -32001.
        code: i64,
        /// JSON-RPC error message, e.g. `Method threw error: permission denied`.
        message: String,
    },
    /// The server reported a backend failure inside a result (e.g. `[null,"ERROR:  ..."]`).
    #[error("{0}")]
    Server(String),
    /// `announce` was refused by the server (`[false, msg]`); the message is the server's.
    #[error("{0}")]
    Announce(String),
    /// The action was already announced on this client (`already have action <a>`).
    #[error("already have action {0}")]
    AlreadyAnnounced(String),
    /// The server answered with a shape we do not understand.
    #[error("unexpected response: {0}")]
    Protocol(String),
    /// The connection is closed (or closed while we waited).
    #[error("connection closed")]
    Closed,
    /// No answer within the allowed time.
    #[error("timeout")]
    Timeout,
    /// A value could not be encoded or decoded as JSON.
    #[error("json: {0}")]
    Json(String),
}

impl From<CallError> for ClientError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Rpc { code, message } => ClientError::Rpc { code, message },
            CallError::Closed => ClientError::Closed,
            CallError::Timeout => ClientError::Timeout,
            CallError::Encode(m) => ClientError::Json(m),
        }
    }
}

impl From<serde_json::Error> for ClientError {
    fn from(e: serde_json::Error) -> Self {
        ClientError::Json(e.to_string())
    }
}
