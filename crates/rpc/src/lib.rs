//! The two-way JSON-RPC peer: over one connection, either side calls, notifies and answers.
//!
//! Both the client library and the API server use [`Peer`]: it frames JSON-RPC 2.0 messages as
//! netstrings over any `AsyncRead + AsyncWrite` stream (TCP or TLS), dispatches incoming
//! requests and notifications to a [`Methods`] table exactly as docs/PROTOCOL.md §5.4 prescribes,
//! and matches incoming responses to outstanding [`Peer::call`]s by id.
//!
//! ```no_run
//! use jobcenter_rpc::{HandlerError, HandlerFuture, Methods, Peer, PeerConfig, Reply};
//! use jobcenter_rpc::wire::SERVER_MAX_FRAME;
//! use serde_json::json;
//! use std::sync::Arc;
//!
//! # async fn demo(sock: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//! let mut methods = Methods::new();
//! // `ping` works in any state; `create_job` needs the connection state "auth".
//! methods.request("ping", None, |_peer, _params| -> HandlerFuture {
//!     Box::pin(async { Ok(json!("pong?").into()) })
//! });
//! methods.request("create_job", Some("auth"), |peer, params| -> HandlerFuture {
//!     Box::pin(async move {
//!         let wf = params.get("wfname").ok_or(HandlerError::new("no workflowname?"))?;
//!         let _ = wf;
//!         // The after-hook runs once the result frame is queued, so job_done follows it.
//!         Ok(Reply::values(vec![json!(4711), json!(null)]).after(move || {
//!             let _ = peer.notify("job_done", json!({"job_id": 4711, "outargs": {}}));
//!         }))
//!     })
//! });
//! let peer = Peer::spawn(sock, Arc::new(methods), PeerConfig::new(SERVER_MAX_FRAME, "client 1"));
//! peer.notify("greetings", json!({"who": "jcapi", "version": "1.1"}))?;
//! let reason = peer.closed().await;
//! println!("connection closed: {reason}");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod methods;
mod output;
mod peer;
pub mod pem;

pub use jobcenter_wire as wire;
pub use methods::{AfterHook, HandlerError, HandlerFn, HandlerFuture, Methods, Reply};
pub use peer::{CallError, CloseReason, Peer, PeerConfig, CLOSE_GRACE, DEFAULT_CONGEST_AT};
