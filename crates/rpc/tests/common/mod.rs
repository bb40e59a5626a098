//! Shared pieces of the peer tests: the hang guard for every wait and boxing of handlers.
#![allow(dead_code)]

use jobcenter_rpc::{HandlerError, HandlerFuture, Reply};
use std::time::Duration;

/// Upper bound for any single wait in these tests (a hang guard, not synchronisation).
pub const GUARD: Duration = Duration::from_secs(10);

/// `f`, or a panic if it takes longer than [`GUARD`].
pub async fn guard<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(GUARD, f)
        .await
        .expect("test step timed out")
}

/// A handler's future, boxed as [`jobcenter_rpc::Methods`] wants it.
pub fn boxed<F>(f: F) -> HandlerFuture
where
    F: std::future::Future<Output = Result<Reply, HandlerError>> + Send + 'static,
{
    Box::pin(f)
}
