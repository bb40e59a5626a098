//! The PostgreSQL node's cache of its own worker records: `get_task`'s worker look-up by
//! name costs no query when this node wrote the record, yet the cache never answers with
//! what a failed transaction or a lost batch wrote, with a worker this node stopped, with a
//! row another node owns, or (after the next heartbeat) with rows another node changed.
//!
//! To see whether an answer came from memory or from the table, the tests change the table
//! behind the node's back (with a connection of their own, or through a second node).

#[path = "common/mod.rs"]
mod common;
use common::{db, record, sql};
use jobcenter_store::{PgStore, Registration, Store, StoreError, WorkerId, WorkerRecord};

/// Register worker `name` for `actions` on `s` and commit; its id.
fn announce(s: &PgStore, name: &str, actions: &[&str]) -> WorkerId {
    let id = s
        .transact(|t| {
            let id = t.next_worker_id();
            t.put_worker(record(id, name, actions));
            Ok::<_, StoreError>(id)
        })
        .expect("announce");
    s.sync().expect("sync");
    id
}

fn by_name(s: &PgStore, name: &str) -> Option<WorkerRecord> {
    let name = name.to_string();
    s.transact(|t| Ok::<_, StoreError>(t.active_worker(&name)))
        .expect("active_worker")
}

fn by_id(s: &PgStore, id: WorkerId) -> Option<WorkerRecord> {
    s.transact(|t| Ok::<_, StoreError>(t.worker(id)))
        .expect("worker")
}

fn heartbeat(s: &PgStore) {
    s.transact(|t| {
        t.check_own_workers();
        Ok::<_, StoreError>(())
    })
    .expect("heartbeat");
    s.sync().expect("sync");
}

#[test]
fn a_worker_this_node_wrote_is_answered_from_memory() {
    let db = db();
    let a = PgStore::open(db.url()).expect("open");
    // With a filter: the heartbeat compares the table's records with the cached ones.
    let filter = serde_json::json!({"x": 1, "y": [1.5, -2, "s"], "z": {"a": null, "b": true}});
    let mut w = record(0, "w", &["add"]);
    w.registrations[0].filter = filter.as_object().cloned();
    let id = a
        .transact(|t| {
            w.id = t.next_worker_id();
            t.put_worker(w.clone());
            Ok::<_, StoreError>(w.id)
        })
        .expect("announce");
    a.sync().expect("sync");
    // A heartbeat that finds the node's rows as it wrote them keeps the cache.
    heartbeat(&a);
    // Gone from the table behind the node's back: still known (no query was made).
    sql(db.url(), "DELETE FROM jc_workers");
    assert_eq!(by_name(&a, "w"), Some(w.clone()));
    assert_eq!(by_id(&a, id), Some(w));
    // A name it did not write is asked of the table.
    assert_eq!(by_name(&a, "other"), None);
}

/// Rule 1: a transaction that fails leaves nothing in the cache; what an earlier
/// transaction of the open batch wrote is served; a lost batch empties the cache.
#[test]
fn a_failed_transaction_or_a_lost_batch_leaves_no_worker_in_the_cache() {
    let db = db();
    let a = PgStore::open(db.url()).expect("open");
    // A transaction that fails after writing a worker: rolled back, and not remembered.
    let r = a.transact(|t| {
        let id = t.next_worker_id();
        t.put_worker(record(id, "failed", &["add"]));
        assert_eq!(t.active_worker("failed").map(|w| w.id), Some(id));
        Err::<(), _>(StoreError::Backend("the transaction fails".into()))
    });
    assert!(r.is_err());
    assert_eq!(by_name(&a, "failed"), None);
    a.sync().expect("sync");
    assert_eq!(by_name(&a, "failed"), None);

    // A worker written by an earlier transaction of the open batch is known to the next.
    let kept = announce(&a, "kept", &["add"]);
    let id = a
        .transact(|t| {
            let id = t.next_worker_id();
            t.put_worker(record(id, "lost", &["add"]));
            Ok::<_, StoreError>(id)
        })
        .expect("put");
    assert_eq!(by_name(&a, "lost").map(|w| w.id), Some(id));
    // The batch is lost (a NOTIFY payload PostgreSQL refuses): its worker was never
    // committed and must not be answered from memory.
    a.publish("x".repeat(10_000));
    assert!(
        a.sync().is_err(),
        "a payload over 8000 bytes fails the batch"
    );
    assert_eq!(by_name(&a, "lost"), None);
    assert_eq!(by_id(&a, id), None);
    // The cache was emptied: a committed worker is read from the table again.
    sql(db.url(), "DELETE FROM jc_workers");
    assert_eq!(by_name(&a, "kept"), None);
    assert_eq!(by_id(&a, kept), None);
    a.sync().expect("sync");
}

/// Rule 2: another node that took this node for dead deleted its workers: the next
/// heartbeat notices and empties the cache.
#[test]
fn workers_deleted_by_another_node_are_forgotten_at_the_next_heartbeat() {
    let db = db();
    let a = PgStore::open(db.url()).expect("node a");
    let b = PgStore::open(db.url()).expect("node b");
    heartbeat(&a);
    let w1 = announce(&a, "w1", &["add"]);
    let w2 = announce(&a, "w2", &["add"]);
    // Node b thinks a is dead (every heartbeat older than its `before`) and releases its
    // workers as the engine's node round does.
    let released = b
        .transact(|t| {
            let orphans = t.orphaned_workers(u64::MAX / 2);
            for (id, _) in &orphans {
                if let Some(mut w) = t.worker(*id) {
                    w.active = false;
                    t.put_worker(w);
                }
            }
            Ok::<_, StoreError>(orphans)
        })
        .expect("release");
    b.sync().expect("sync");
    assert_eq!(
        released,
        vec![(w1, "w1".to_string()), (w2, "w2".to_string())]
    );
    // Until a's next heartbeat its cache still answers (one node round at most).
    assert_eq!(by_name(&a, "w1").map(|w| w.id), Some(w1));
    heartbeat(&a);
    assert_eq!(by_name(&a, "w1"), None);
    assert_eq!(by_name(&a, "w2"), None);
    assert_eq!(by_id(&a, w1), None);
    assert_eq!(by_id(&a, w2), None);
}

/// Rule 2, the other half: a row of another node is never cached, and a change another
/// node made to one of this node's rows empties this node's cache at its next heartbeat.
#[test]
fn a_worker_row_of_another_node_is_never_cached() {
    let db = db();
    let a = PgStore::open(db.url()).expect("node a");
    let b = PgStore::open(db.url()).expect("node b");
    let id = announce(&a, "w", &["add"]);
    // The worker announces another action through node b: b updates a's row (which keeps
    // its node).
    b.transact(|t| {
        let mut w = t.active_worker("w").expect("a's worker");
        w.registrations.push(Registration {
            action: "mul".into(),
            filter: None,
        });
        t.put_worker(w);
        Ok::<_, StoreError>(())
    })
    .expect("b writes a's worker");
    b.sync().expect("sync");
    // b asks the table every time: a row changed behind its back is seen at once.
    sql(
        db.url(),
        &format!("UPDATE jc_workers SET name = 'renamed' WHERE id = {id}"),
    );
    assert_eq!(by_id(&b, id).map(|w| w.registrations.len()), Some(2));
    assert_eq!(
        by_name(&b, "w").map(|w| w.id),
        None,
        "b must read a's row from the table"
    );
    sql(
        db.url(),
        &format!("UPDATE jc_workers SET name = 'w' WHERE id = {id}"),
    );
    // a still has its own version in memory until its heartbeat compares it with the table.
    assert_eq!(by_name(&a, "w").map(|w| w.registrations.len()), Some(1));
    heartbeat(&a);
    assert_eq!(by_name(&a, "w").map(|w| w.registrations.len()), Some(2));
}

/// Rule 3: a worker this node stops (its row deleted) leaves the cache.
#[test]
fn a_stopped_worker_leaves_the_cache() {
    let db = db();
    let a = PgStore::open(db.url()).expect("open");
    let id = announce(&a, "w", &["add"]);
    a.transact(|t| {
        let mut w = t.worker(id).expect("known");
        w.active = false;
        w.registrations.clear();
        t.put_worker(w);
        assert_eq!(t.worker(id), None, "stopped within the transaction");
        assert_eq!(t.active_worker("w"), None, "stopped within the transaction");
        Ok::<_, StoreError>(())
    })
    .expect("stop");
    assert_eq!(by_id(&a, id), None);
    assert_eq!(by_name(&a, "w"), None);
    a.sync().expect("sync");
    // The same name registered again is a new worker.
    let again = announce(&a, "w", &["add"]);
    assert_ne!(again, id);
    assert_eq!(by_name(&a, "w").map(|w| w.id), Some(again));
    assert_eq!(by_id(&a, id), None);
}

/// After a lost batch the cache fills again one `put_worker` (say a `ping`) at a time; a
/// heartbeat meanwhile finds rows of this node the cache does not know, and must keep what
/// it does know (else the cache would never fill again while workers ping less often than
/// once a heartbeat).
#[test]
fn a_heartbeat_keeps_a_cache_that_knows_only_some_of_the_nodes_rows() {
    let db = db();
    let a = PgStore::open(db.url()).expect("open");
    let w1 = announce(&a, "w1", &["add"]);
    let w2 = announce(&a, "w2", &["add"]);
    // A batch (opened by a look-up) is lost: the cache is emptied.
    assert_eq!(by_id(&a, w2).map(|w| w.id), Some(w2));
    a.publish("x".repeat(10_000));
    assert!(
        a.sync().is_err(),
        "a payload over 8000 bytes fails the batch"
    );
    // w1 pings: known again; w2 is only in the table.
    a.transact(|t| {
        let mut w = t.worker(w1).expect("w1");
        w.last_ping = 2;
        t.put_worker(w);
        Ok::<_, StoreError>(())
    })
    .expect("ping");
    a.sync().expect("sync");
    heartbeat(&a);
    sql(db.url(), "DELETE FROM jc_workers");
    assert_eq!(by_id(&a, w1).map(|w| w.last_ping), Some(2), "still cached");
    assert_eq!(by_id(&a, w2), None, "read from the table");
}

/// The liveness row is written outside the batch: a node whose batch is open (waiting for
/// another node's row locks, say) is alive to the other nodes, and its workers are not
/// released. Inside the batch, the row would stay invisible until the batch commits.
#[test]
fn a_node_whose_batch_is_open_is_alive_to_the_other_nodes() {
    let db = db();
    let a = PgStore::open(db.url()).expect("node a");
    let b = PgStore::open(db.url()).expect("node b");
    a.beat(1_000).expect("beat");
    let w = announce(&a, "w", &["add"]);
    let orphans = |before: u64| {
        b.transact(|t| Ok::<_, StoreError>(t.orphaned_workers(before)))
            .expect("orphans")
    };
    // By the lease of `before`, a's beat at 1,000 is too old: its worker is an orphan.
    assert_eq!(orphans(2_000), vec![(w, "w".to_string())]);
    // a's batch is open and stays so; a beats meanwhile.
    a.transact(|t| {
        let id = t.next_worker_id();
        t.put_worker(record(id, "pending", &["add"]));
        Ok::<_, StoreError>(())
    })
    .expect("write");
    a.beat(5_000).expect("beat while the batch is open");
    assert_eq!(orphans(2_000), vec![], "a's beat waited for its batch");
    // A late beat does not make the node older.
    a.beat(3_000).expect("late beat");
    assert_eq!(orphans(4_000), vec![]);
    a.sync().expect("sync");
}
