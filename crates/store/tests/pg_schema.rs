//! The PostgreSQL store's schema: created in an empty database, accepted again at the next
//! start (by any node), and refused — naming the database, changing nothing — when it is of
//! a newer version or when the database holds JobCenter tables of an unknown layout.

use jobcenter_store::{PgStore, Store, StoreError, PG_SCHEMA_VERSION};

#[path = "common/mod.rs"]
mod common;
use common::{check_migrated_from_v1, db, put_parent_and_child, sql};

#[test]
fn the_schema_is_created_once_and_reused_by_every_node() {
    let db = db();
    let a = PgStore::open(db.url()).expect("first node creates the schema");
    let id = a
        .transact(|t| Ok::<_, StoreError>(t.next_job_id()))
        .expect("id");
    a.sync().expect("sync");
    let b = PgStore::open(db.url()).expect("second node reuses it");
    let next = b
        .transact(|t| Ok::<_, StoreError>(t.next_job_id()))
        .expect("id");
    assert!(next > id, "ids are shared by the nodes: {id} then {next}");
    assert_ne!(a.node(), b.node());
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let db = db();
    drop(PgStore::open(db.url()).expect("create"));
    sql(
        db.url(),
        &format!("UPDATE jc_schema SET version = {}", PG_SCHEMA_VERSION + 1),
    );
    let e = PgStore::open(db.url()).expect_err("newer schema");
    let text = e.to_string();
    assert!(
        text.contains("jc_test_") && text.contains("is newer"),
        "{text}"
    );
}

#[test]
fn unknown_jobcenter_tables_are_refused() {
    let db = db();
    sql(db.url(), "CREATE TABLE jc_jobs (x INTEGER)");
    let e = PgStore::open(db.url()).expect_err("foreign layout");
    assert!(e.to_string().contains("refusing"), "{e}");
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let e = PgStore::open("postgres://nobody@127.0.0.1:1/nothing").expect_err("no server");
    assert!(
        e.to_string()
            .starts_with("postgres://nobody@127.0.0.1:1/nothing"),
        "{e}"
    );
}

#[test]
fn a_version_1_schema_is_migrated_to_keep_disabled_actions() {
    let db = db();
    let s = PgStore::open(db.url()).expect("create");
    put_parent_and_child(&s);
    drop(s);
    // What version 1 looked like: no table of disabled actions, no state and parent
    // columns (their indexes go with them).
    sql(
        db.url(),
        "DROP TABLE jc_disabled_actions; \
         ALTER TABLE jc_jobs DROP COLUMN state, DROP COLUMN parent; \
         UPDATE jc_schema SET version = 1",
    );
    check_migrated_from_v1(PgStore::open(db.url()).expect("migrates"), || {
        PgStore::open(db.url()).expect("reopen")
    });
    let version = std::thread::spawn({
        let url = db.url().to_string();
        move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            let row = c
                .query_one("SELECT max(version) FROM jc_schema", &[])
                .expect("version");
            row.get::<_, i32>(0)
        }
    })
    .join()
    .expect("thread");
    assert_eq!(version, PG_SCHEMA_VERSION);
    assert_eq!(PG_SCHEMA_VERSION, 2);
}

/// `last_value` of the job id sequence.
fn job_id_sequence(url: &str) -> i64 {
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.query_one("SELECT last_value FROM jc_job_ids", &[])
            .expect("sequence")
            .get(0)
    })
    .join()
    .expect("sql thread")
}

#[test]
fn job_ids_come_in_blocks_and_a_failed_batch_drops_the_rest_of_its_block() {
    let db = db();
    let a = PgStore::open(db.url()).expect("open");
    let new_id = |s: &PgStore| {
        s.transact(|t| Ok::<_, StoreError>(t.next_job_id()))
            .expect("id")
    };
    let first = new_id(&a);
    assert_eq!(new_id(&a), first + 1);
    a.sync().expect("sync");
    let block = job_id_sequence(db.url()) - first + 1;
    assert!(block > 2, "one nextval per block, not per job: {block}");
    // Another node's ids come after the whole block.
    let b = PgStore::open(db.url()).expect("second node");
    let other = new_id(&b);
    assert!(other >= first + block, "{other} inside {first}+{block}");
    b.sync().expect("sync");
    // A batch that is lost (here: a NOTIFY payload PostgreSQL refuses) may have taken its
    // sequence advance with it, so the rest of the block is not used any more.
    let third = new_id(&a);
    assert_eq!(third, first + 2);
    a.publish("x".repeat(10_000));
    assert!(
        a.sync().is_err(),
        "a payload over 8000 bytes fails the batch"
    );
    let after = new_id(&a);
    assert!(
        after > other,
        "after a failed batch the node fetches a new block: {after}"
    );
    a.sync().expect("sync");
}
