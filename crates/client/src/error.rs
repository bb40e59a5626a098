//! The typed errors of the client and worker library.

use jobcenter_rpc::CallError;
use serde_json::Value;

/// Everything that can go wrong in the client library.
///
/// Each variant keeps what happened (the job id and error object of a failed job, the
/// JSON-RPC code, the underlying I/O or JSON error as [`std::error::Error::source`]), so
/// callers can react to the case rather than parse a message. Texts mirror the Perl client
/// (`JobCenter::Client::Mojo`) where it has one, e.g. [`ClientError::MissingToken`]
/// displays as `no token?`.
///
/// The three outcomes of a job that did not give a result are distinct:
/// [`ClientError::NotCreated`] (the server refused `create_job`), [`ClientError::JobFailed`]
/// (the job ran and ended with an error object) and [`ClientError::JobTimeout`] (the
/// server-side wait expired; the job may still be running). A failure of the server's
/// backend (e.g. the database) is [`ClientError::Backend`].
///
/// ```
/// use jobcenter::{ClientError, JobResult};
/// use serde_json::json;
/// let failed = JobResult { job_id: Some(7), outargs: json!({"error": "boom"}) };
/// match failed.into_result() {
///     Err(ClientError::JobFailed { job_id, error }) => {
///         assert_eq!(job_id, 7);
///         assert_eq!(error, json!("boom"));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    Connection {
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
    /// The server reported a failure of its backend inside a result (e.g.
    /// `[null,"ERROR:  ..."]` from `get_job_status` or `find_jobs`).
    #[error("{0}")]
    Backend(String),
    /// The server refused to create the job (unknown workflow, bad inargs, no permission,
    /// or a JSON-RPC error answering `create_job`). Nothing runs.
    #[error("job not created: {message}")]
    NotCreated {
        /// The server's reason (the `error` text of the Perl client's result).
        message: String,
    },
    /// The job ran and finished with an error object.
    #[error("job {job_id} failed: {}", error_text(.error))]
    JobFailed {
        /// The job id.
        job_id: i64,
        /// The `error` member of the job's final outargs (a text or an object).
        error: Value,
    },
    /// The server-side wait for the job's result expired (outargs `{"error":"timeout"}`);
    /// the job itself may still be running: ask with [`crate::Client::get_job_status`].
    #[error("timed out waiting for job {job_id} (it may still be running)")]
    JobTimeout {
        /// The job id.
        job_id: i64,
    },
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
    /// A value could not be decoded from or encoded to JSON (e.g. typed outargs that do
    /// not match the expected type).
    #[error("json: {0}")]
    Json(#[source] serde_json::Error),
    /// A request could not be encoded for sending.
    #[error("json: {0}")]
    Encode(String),
    /// The blocking facade could not start its runtime.
    #[error("cannot start runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A job's `error` member for display: a text as it is, anything else as JSON.
pub(crate) fn error_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl From<CallError> for ClientError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Rpc { code, message } => ClientError::Rpc { code, message },
            CallError::Closed => ClientError::Closed,
            CallError::Timeout => ClientError::Timeout,
            CallError::Encode(m) => ClientError::Encode(m),
        }
    }
}

impl From<serde_json::Error> for ClientError {
    fn from(e: serde_json::Error) -> Self {
        ClientError::Json(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::error::Error as _;

    #[test]
    fn sources_are_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = ClientError::Connection {
            addr: "127.0.0.1:1".into(),
            source: io,
        };
        let src = e.source().map(ToString::to_string);
        assert_eq!(src.as_deref(), Some("refused"));
        let json_err = serde_json::from_str::<Value>("{").unwrap_err();
        let e = ClientError::from(json_err);
        assert!(e.source().is_some(), "{e}");
    }

    #[test]
    fn job_error_texts() {
        let e = ClientError::JobFailed {
            job_id: 3,
            error: json!("boom"),
        };
        assert_eq!(e.to_string(), "job 3 failed: boom");
        let e = ClientError::JobFailed {
            job_id: 3,
            error: json!({"msg": "x"}),
        };
        assert_eq!(e.to_string(), r#"job 3 failed: {"msg":"x"}"#);
        let e = ClientError::NotCreated {
            message: "no such workflow".into(),
        };
        assert_eq!(e.to_string(), "job not created: no such workflow");
    }
}
