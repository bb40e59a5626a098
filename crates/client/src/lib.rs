//! JobCenter client and worker library: create jobs, wait for results, serve actions.
//!
//! A Rust counterpart of the Perl `JobCenter::Client::Mojo` (docs/PROTOCOL.md §12), speaking
//! JSON-RPC 2.0 over netstrings (TCP or TLS) through [`jobcenter_rpc::Peer`].
//!
//! * [`Client`]: connect + authenticate ([`Client::connect`], [`ClientConfig::builder`]), run
//!   jobs ([`Client::call_typed`] with serde types, [`Client::call`] with JSON values,
//!   [`Client::job`] → [`JobRequest::submit`] / [`JobRequest::call`]), query
//!   ([`Client::get_job_status`], [`Client::get_job_status_notify`], [`Client::find_jobs`],
//!   [`Client::check_if_lock_exists`], [`Client::get_api_status`], [`Client::ping`]).
//! * [`Worker`]: announce [`Action`]s with a sync, async or subprocess handler, typed
//!   ([`Action::typed`], [`Action::typed_sync`], [`Action::typed_subprocess`]) or on JSON
//!   values, and serve their tasks; [`Worker::work`] returns a [`WorkOutcome`] whose
//!   [`WorkOutcome::exit_code`] is the Perl client's 0 / 91 / 92. The connection is a
//!   [`Client`] ([`Worker::client`]).
//! * [`blocking`]: the same operations for code without an async runtime.
//!
//! ```no_run
//! # async fn demo() -> Result<(), jobcenter::ClientError> {
//! use jobcenter::{Client, ClientConfig};
//! use serde_json::json;
//! let client = Client::connect(ClientConfig::new("theCustomer", "wantsThings")).await?;
//! let res = client.call("calladd", json!({"input": 12})).await?;
//! assert_eq!(res.outargs, json!({"output": 15}));
//! # Ok(()) }
//! ```
//!
//! Every async method is cancel safe: its future can be dropped at any await point (in
//! `tokio::select!`, `tokio::time::timeout`) without leaving a job waiter, a half-done
//! announce or a slotgroup behind; what was sent completes or is undone.
//!
//! # Differences from the Perl client
//!
//! * Data is always structured ([`serde_json::Value`]): the Perl `json` flag (JSON text
//!   in and out) is not offered; serialise yourself if you need text.
//! * Typed errors instead of `undef`/croaks; [`Client::call`] still returns a refused job
//!   as `Ok` with `job_id: None` and `{"error": ...}` outargs, like Perl's `call`;
//!   [`JobResult::into_result`] and [`Client::call_typed`] turn these into
//!   [`ClientError::NotCreated`], [`ClientError::JobFailed`] and [`ClientError::JobTimeout`].
//! * Fixed reference bugs (docs/PROTOCOL.md §12.16): pending calls and job waits fail with
//!   [`ClientError::Closed`] when the connection closes; the `get_job_status` notify
//!   completion is registered before the request (§7.6); the socket is closed on a version
//!   mismatch; incoming frames are limited (16 MiB default) and framing errors are fatal;
//!   `check_if_lock_exists` and `ping` time out; an empty handler result becomes
//!   `{"error":"no result"}`, a non-object `{"error":"callback returned no object"}`.
//! * Handlers run as soon as an action is announced ([`Worker::work`] only waits for the
//!   end), so there is no `work(prepare)`; a `stop` before `work()` is kept.
//! * Handler modes are methods ([`Action::sync`], [`Action::run_async`],
//!   [`Action::subprocess`]), so there is no "unknown callback mode". `undo` works in
//!   every mode (Perl: `subproc` only).
//! * Extras: [`Worker::withdraw`], [`Worker::shutdown`] (drain), auto-reconnect
//!   ([`Worker::set_reconnect`]), TLS via rustls with an explicit `tls_insecure` switch.

#![warn(missing_docs)]

mod action;
pub mod blocking;
mod client;
mod config;
mod error;
mod jobs;
pub mod json;
mod session;
mod subprocess;
mod transport;
mod worker;

pub use action::{Action, Task};
pub use client::{Client, JobRequest};
pub use config::{default_workername, ClientConfig, ClientConfigBuilder};
pub use error::ClientError;
pub use jobs::{Filter, JobCompletion, JobHandle, JobResult, JobStatus};
pub use session::API_VERSION;
pub use subprocess::Subprocess;
pub use worker::{
    Reconnect, StopHandle, WorkOutcome, Worker, WORK_CONNECTION_CLOSED, WORK_OK, WORK_PING_TIMEOUT,
};
