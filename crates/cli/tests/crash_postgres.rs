//! Crash test of the PostgreSQL store (issue 9): 1,000 `calladd` jobs in flight against
//! `jobcenter serve --store postgres://…` on a throw-away database, at least 30 `kill -9`s at
//! random moments, each followed by a restart on the same database; then every answered job
//! must exist with its expected result, no reported result may have changed, and no task may
//! have run after its job's result was reported. The test itself is `crash_support/mod.rs`.
//!
//! Every start uses the same node name: a node restarting under its name releases the tasks
//! its previous run's workers held at once (there is no surviving node to do it after the
//! node lease). PostgreSQL must be reachable (`JOBCENTER_TEST_PG`, see
//! `jobcenter_store::testdb`); the test fails, never skips, when it is not.

#[path = "cli_support/mod.rs"]
mod cli_support;
#[path = "crash_support/mod.rs"]
mod crash_support;

use crash_support::{crash_test, Setup};
use jobcenter_store::testdb::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_never_loses_changes_or_reruns_answered_jobs() {
    // Dropped (the database with it) only after the last server stopped.
    let db = TestDatabase::create().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir for the password file");
    let setup = Setup {
        serve_args: vec!["--node".into(), "crashnode".into()],
        // Longer runs than SQLite's 100-600 ms: a debug build on PostgreSQL completes about a
        // tenth as many jobs per second (a round trip per statement), and with 1,000 in
        // flight the first results of a run arrive only after about a second; shorter runs
        // would kill the server before any job flows. Still one kill in five is early.
        load_ms: 1_000..=3_000,
        ..Setup::new("crash_postgres", db.url().to_string())
    };
    crash_test(setup, dir.path()).await;
    drop(db);
}
