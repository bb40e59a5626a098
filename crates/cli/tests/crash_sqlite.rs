//! Crash test of the SQLite store (issue 9): 1,000 `calladd` jobs in flight against
//! `jobcenter serve --store sqlite:PATH`, at least 30 `kill -9`s at random moments, each
//! followed by a restart on the same file; then every answered job must exist with its
//! expected result, no reported result may have changed, and no task may have run after its
//! job's result was reported. The test itself is `crash_support/mod.rs`.

#[path = "cli_support/mod.rs"]
mod cli_support;
#[path = "crash_support/mod.rs"]
mod crash_support;

use crash_support::{crash_test, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_never_loses_changes_or_reruns_answered_jobs() {
    let dir = tempfile::tempdir().expect("tempdir for the store");
    let store = format!("sqlite:{}", dir.path().join("jc.db").display());
    let setup = Setup::new("crash_sqlite", store);
    crash_test(setup, dir.path()).await;
}
