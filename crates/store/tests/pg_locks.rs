//! Row locks between PostgreSQL nodes and failed statements inside a batch: a claim that
//! lost the race to another node holds nothing (two nodes' batches waiting on each other's
//! rows deadlock, and PostgreSQL then kills one after a second), and a batch that a failed
//! statement aborted is reported as failed, never as durable.

#[path = "common/mod.rs"]
mod common;
use common::{db, job, record, sql, try_sql};
use jobcenter_store::{JobId, JobState, PgStore, Store, StoreError, TaskClaim};
use std::sync::mpsc;

/// Whether another session can lock job `id`'s row right now (`NOWAIT`).
fn row_is_free(url: &str, id: JobId) -> bool {
    try_sql(
        url,
        &format!("BEGIN; SELECT id FROM jc_jobs WHERE id = {id} FOR UPDATE NOWAIT; ROLLBACK"),
    )
    .is_ok()
}

/// A job ready for `add`, committed; its id.
fn ready_job(s: &PgStore) -> JobId {
    let id = s
        .transact(|t| {
            let id = t.next_job_id();
            t.put_job(job(id, JobState::Ready, Some("add")));
            Ok::<_, StoreError>(id)
        })
        .expect("create");
    s.sync().expect("sync");
    id
}

/// Claim job `id` for `add` in the open batch of `s` (as `get_task` does); whether it was
/// free to claim.
fn claim(s: &PgStore, id: JobId, cookie: &str) -> bool {
    s.transact(|t| {
        let Some(mut j) = t.try_ready_job(id, "add") else {
            return Ok::<_, StoreError>(false);
        };
        j.state = JobState::Working;
        j.task_state.claim = Some(TaskClaim {
            cookie: cookie.into(),
            worker_id: 1,
            claimed_at: 1,
            deadline: None,
        });
        t.put_job(j);
        Ok(true)
    })
    .expect("claim")
}

#[test]
fn a_claim_that_lost_the_race_does_not_lock_the_winners_job() {
    let db = db();
    let a = PgStore::open(db.url()).expect("node a");
    let b = PgStore::open(db.url()).expect("node b");
    let id = ready_job(&a);
    assert!(claim(&a, id, "c1"));
    a.sync().expect("sync");
    // Node b's worker was offered the same task and asks for it after a's claim committed:
    // not ready any more, so not claimed, and (its batch still open) not locked either.
    assert!(!claim(&b, id, "c2"));
    assert!(
        row_is_free(db.url(), id),
        "b's failed claim holds the row a's task_done needs"
    );
    // So a's task_done reads its job by cookie at once.
    let found = a
        .transact(|t| Ok::<_, StoreError>(t.job_with_cookie("c1").map(|j| j.id)))
        .expect("task_done's read");
    assert_eq!(found, Some(id));
    a.sync().expect("sync");
    b.sync().expect("sync");
}

#[test]
fn a_claim_skips_a_task_another_node_is_claiming_and_locks_the_one_it_takes() {
    let db = db();
    let a = PgStore::open(db.url()).expect("node a");
    let b = PgStore::open(db.url()).expect("node b");
    let first = ready_job(&a);
    let second = ready_job(&a);
    // a claims the first task; its batch is still open.
    assert!(claim(&a, first, "c1"));
    // b skips it (no wait, no double claim) and takes the second.
    assert!(!claim(&b, first, "c2"));
    assert!(claim(&b, second, "c3"));
    // Both rows are held until their batches commit.
    assert!(!row_is_free(db.url(), first));
    assert!(!row_is_free(db.url(), second));
    a.sync().expect("sync");
    b.sync().expect("sync");
    assert!(row_is_free(db.url(), first));
    assert!(row_is_free(db.url(), second));
}

fn announce(s: &PgStore, name: &str) -> Result<(), StoreError> {
    s.transact(|t| {
        let id = t.next_worker_id();
        t.put_worker(record(id, name, &["add"]));
        Ok::<_, StoreError>(())
    })
}

fn workers_named(url: &str, name: &str) -> i64 {
    let (url, name) = (url.to_string(), name.to_string());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.query_one("SELECT count(*) FROM jc_workers WHERE name = $1", &[&name])
            .expect("count")
            .get::<_, i64>(0)
    })
    .join()
    .expect("count thread")
}

#[test]
fn a_batch_aborted_by_a_failed_read_is_reported_failed_not_committed() {
    let db = db();
    // Lock waits of the node's sessions give up after 200 ms (a deadlock or a statement
    // timeout aborts the transaction the same way).
    sql(
        db.url(),
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET lock_timeout = %L', \
         current_database(), '200ms'); END $$",
    );
    let a = PgStore::open(db.url()).expect("node a");
    let id = ready_job(&a);
    // Another session holds the job's row.
    let (held_tx, held) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let url = db.url().to_string();
    let holder = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.batch_execute(&format!(
            "BEGIN; SELECT id FROM jc_jobs WHERE id = {id} FOR UPDATE"
        ))
        .expect("lock");
        held_tx.send(()).expect("held");
        let _ = release_rx.recv();
        c.batch_execute("ROLLBACK").expect("rollback");
    });
    held.recv().expect("the row is held");

    // A transaction of the batch writes (sent to PostgreSQL at once) and succeeds.
    announce(&a, "written").expect("announce");
    // The next one fails on its first statement, a read: PostgreSQL aborts the batch.
    let r = a.transact(|t| Ok::<_, StoreError>(t.job(id).is_some()));
    assert!(r.is_err(), "the read waited past lock_timeout: {r:?}");
    // A call after the loss opens a batch of its own; the sync reports the loss for both.
    announce(&a, "after").expect("announce");
    let synced = a.sync();
    release.send(()).expect("release");
    holder.join().expect("holder");
    assert!(
        synced.is_err(),
        "a batch PostgreSQL rolled back was reported durable"
    );
    assert_eq!(workers_named(db.url(), "written"), 0);
    // The call after the loss was answered with the failure: its write is gone too, not
    // committed by the next sync behind its caller's back.
    a.sync().expect("sync");
    assert_eq!(workers_named(db.url(), "after"), 0);
    // And the node works again.
    announce(&a, "later").expect("announce");
    a.sync().expect("sync");
    assert_eq!(workers_named(db.url(), "later"), 1);
}
