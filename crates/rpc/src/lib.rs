//! The two-way JSON-RPC peer: over one connection, either side calls, notifies and answers.
//!
//! Both the client library and the API server use [`Peer`]: it frames JSON-RPC 2.0 messages as
//! netstrings over any `AsyncRead + AsyncWrite` stream (TCP or TLS), dispatches incoming
//! requests and notifications to a [`Methods`] table exactly as PROTOCOL.md §5.4 prescribes,
//! and matches incoming responses to outstanding [`Peer::call`]s by id.

#![warn(missing_docs)]

mod methods;
mod output;
mod peer;

pub use jobcenter_wire as wire;
pub use methods::{AfterHook, HandlerError, HandlerFn, HandlerFuture, Methods, Reply};
pub use peer::{CallError, CloseReason, Peer, PeerConfig, CLOSE_GRACE};
