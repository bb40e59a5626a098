//! The SQLite store's promises about its file: what was synced is there after a reopen,
//! what was not synced is not, ids are never handed out twice, and a bad file (not SQLite,
//! another application's database, truncated, corrupt, a newer schema, in use by another
//! server) is refused at open with a message naming the file, never silently emptied.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use jobcenter_store::{
    JobId, JobRecord, JobState, SqliteStore, Store, StoreError, APPLICATION_ID, SCHEMA_VERSION,
};

#[path = "common/mod.rs"]
mod common;

fn job(id: JobId) -> JobRecord {
    common::job(id, JobState::Ready, Some("a"))
}

fn create(store: &SqliteStore) -> JobId {
    store
        .transact(|t| {
            let id = t.next_job_id();
            t.put_job(job(id));
            Ok::<_, StoreError>(id)
        })
        .expect("create")
}

fn open_err(path: &Path) -> String {
    match SqliteStore::open(path) {
        Ok(_) => panic!("{} opened although it is bad", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn synced_jobs_survive_reopen_unsynced_do_not_and_ids_never_repeat() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    {
        let s = SqliteStore::open(&path).expect("open");
        assert_eq!(create(&s), 1);
        assert_eq!(create(&s), 2);
        s.sync().expect("sync");
        assert_eq!(create(&s), 3); // never synced: lost, like in a crash
    }
    let s = SqliteStore::open(&path).expect("reopen");
    assert_eq!(s.live_jobs(), 2);
    // Id 3 was never answered (not synced), so handing it out again would be fine; ids
    // that were synced are never reused. Ids are reserved in blocks, so the ones left
    // in the block at the crash are skipped.
    let third = create(&s);
    assert!(third > 2, "a synced id is handed out again: {third}");
    s.sync().expect("sync");
    drop(s);
    let s = SqliteStore::open(&path).expect("reopen");
    let fourth = create(&s);
    assert!(
        fourth > third,
        "a synced id is handed out again: {fourth} after {third}"
    );
}

/// Job ids are reserved in blocks; a transaction that is rolled back (alone in its batch,
/// or a savepoint inside one) or a batch that is lost must not leave a reservation behind
/// that the database no longer has, or the next reservation hands the same ids out again.
#[test]
fn ids_stay_unique_across_rolled_back_reservations_and_reopens() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("ids.db");
    let mut kept: Vec<JobId> = Vec::new();
    let fail = |s: &SqliteStore, n: usize| {
        let r: Result<(), StoreError> = s.transact(|t| {
            for _ in 0..n {
                let id = t.next_job_id();
                t.put_job(job(id));
            }
            Err(StoreError::Backend("rolled back on purpose".into()))
        });
        assert!(r.is_err());
    };
    for round in 0..3 {
        let s = SqliteStore::open(&path).expect("open");
        // The first transaction of a batch reserves a block and is rolled back (no
        // savepoint: the whole batch goes).
        fail(&s, 1);
        kept.push(create(&s));
        // A savepoint inside a batch that reserves and is rolled back.
        fail(&s, 200);
        for _ in 0..150 {
            kept.push(create(&s));
        }
        s.sync().expect("sync");
        assert_eq!(s.live_jobs(), kept.len(), "round {round}");
    }
    let mut sorted = kept.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        kept.len(),
        "an id was handed out twice: {kept:?}"
    );
    let s = SqliteStore::open(&path).expect("reopen");
    assert_eq!(s.live_jobs(), kept.len());
}

/// A batch rolled back as a failed `COMMIT` does ([`SqliteStore::rollback_batch`], the fault
/// injection of the engine's tests) takes its id reservation with it: the ids left of the
/// block must not be handed out.
#[test]
fn a_rolled_back_batch_drops_its_id_block() {
    let dir = tempfile::tempdir().expect("dir");
    let s = SqliteStore::open(dir.path().join("r.db")).expect("open");
    create(&s);
    assert!(s.rollback_batch(), "the batch was open");
    let ids: Vec<JobId> = (0..100).map(|_| create(&s)).collect();
    s.sync().expect("sync");
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "an id was handed out twice: {ids:?}"
    );
    assert_eq!(s.live_jobs(), 100);
}

#[test]
fn a_failed_transaction_inside_a_batch_leaves_the_others() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("b.db");
    let created = {
        let s = SqliteStore::open(&path).expect("open");
        let first = create(&s);
        let r: Result<(), StoreError> = s.transact(|t| {
            let id = t.next_job_id();
            t.put_job(job(id));
            Err(StoreError::Backend("no".into()))
        });
        assert!(r.is_err());
        let second = create(&s);
        s.sync().expect("sync");
        vec![first, second]
    };
    let s = SqliteStore::open(&path).expect("reopen");
    let ids: Vec<JobId> = s
        .transact(|t| Ok::<_, StoreError>(t.ready_jobs("a").collect()))
        .expect("read");
    assert_eq!(ids, created);
}

#[test]
fn a_text_file_is_not_a_store() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database\n").expect("write");
    let e = open_err(&path);
    assert!(
        e.contains("notes.txt") && e.contains("not a SQLite database"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "these are my notes, not a database\n",
        "the file is left alone"
    );
}

#[test]
fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("create");
    }
    let e = open_err(&path);
    assert!(
        e.contains("other.db") && e.contains("not a JobCenter store"),
        "{e}"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("newer.db");
    drop(SqliteStore::open(&path).expect("create"));
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.pragma_update(None, "user_version", 99).expect("bump");
        let app: i64 = c
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .expect("app id");
        assert_eq!(app, APPLICATION_ID);
    }
    let e = open_err(&path);
    assert!(
        e.contains("newer.db") && e.contains("schema version 99 is newer"),
        "{e}"
    );
}

#[test]
fn a_version_1_store_is_migrated_to_keep_disabled_actions() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("v1.db");
    let s = SqliteStore::open(&path).expect("create");
    common::put_parent_and_child(&s);
    drop(s);
    {
        // What version 1 looked like: no table of disabled actions, no state and parent
        // columns.
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute_batch(
            "DROP TABLE disabled_actions; DROP INDEX jobs_state; DROP INDEX jobs_parent; \
             ALTER TABLE jobs DROP COLUMN state; ALTER TABLE jobs DROP COLUMN parent;",
        )
        .expect("back to v1");
        c.pragma_update(None, "user_version", 1).expect("v1");
    }
    common::check_migrated_from_v1(SqliteStore::open(&path).expect("migrates"), || {
        SqliteStore::open(&path).expect("reopen")
    });
    let c = rusqlite::Connection::open(&path).expect("open");
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!((v, SCHEMA_VERSION), (2, 2));
}

/// Fill a store with enough jobs to span many pages, synced and checkpointed into the file.
fn filled(path: &Path) {
    let s = SqliteStore::open(path).expect("open");
    for _ in 0..400 {
        s.transact(|t| {
            let id = t.next_job_id();
            let mut j = job(id);
            j.args = std::sync::Arc::new(
                serde_json::json!({"pad": "x".repeat(500)})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            t.put_job(j);
            Ok::<_, StoreError>(())
        })
        .expect("put");
    }
    s.sync().expect("sync");
    // Closing the last connection checkpoints the WAL into the main file.
}

#[test]
fn a_truncated_file_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("cut.db");
    filled(&path);
    let len = std::fs::metadata(&path).expect("meta").len();
    assert!(len > 100_000, "the store spans many pages ({len} bytes)");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(len / 2).expect("truncate");
    drop(f);
    let e = open_err(&path);
    assert!(e.contains("cut.db") && e.contains("corrupt"), "{e}");
}

#[test]
fn overwritten_bytes_in_the_middle_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.db");
    filled(&path);
    let len = std::fs::metadata(&path).expect("meta").len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    // Page headers of a few pages in the middle of the file.
    for page in [len / 4096 / 2, len / 4096 / 2 + 1, len / 4096 / 2 + 3] {
        f.seek(SeekFrom::Start(page * 4096)).expect("seek");
        f.write_all(&[0xFF, 0xFF, 0xFF, 0xFF]).expect("write");
    }
    drop(f);
    let e = open_err(&path);
    assert!(e.contains("bad.db") && e.contains("corrupt"), "{e}");
}

#[test]
fn a_second_server_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("busy.db");
    let first = SqliteStore::open(&path).expect("open");
    create(&first);
    first.sync().expect("sync");
    let e = open_err(&path);
    assert!(
        e.contains("busy.db") && e.contains("another jobcenter"),
        "{e}"
    );
    drop(first);
    assert!(SqliteStore::open(&path).is_ok(), "free again once closed");
}

/// Commit `n` batches of one new job each; the ids.
fn commit_batches(s: &SqliteStore, n: usize) -> Vec<JobId> {
    (0..n)
        .map(|_| {
            let id = create(s);
            s.sync().expect("sync");
            id
        })
        .collect()
}

#[test]
fn commits_do_not_checkpoint_idle_does_and_keeps_every_synced_job() {
    use jobcenter_store::{SyncMode, WAL_IDLE_PAGES};
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    let s = SqliteStore::open_with(&path, SyncMode::Off).expect("open");
    let mut ids = Vec::new();
    // Work keeps coming (no idle moment): the log grows past SQLite's own checkpoint
    // threshold without a checkpoint inside any commit.
    while s.wal_pages() <= WAL_IDLE_PAGES + 200 {
        ids.extend(commit_batches(&s, 20));
        assert!(
            ids.len() < 20_000,
            "the log does not grow: {} pages",
            s.wal_pages()
        );
    }
    assert_eq!(s.checkpoints(), 0, "a commit checkpointed");
    // Idle inside an open batch: nothing to do (a checkpoint needs the batch committed).
    let unsynced = create(&s);
    s.idle();
    assert_eq!(s.checkpoints(), 0, "checkpointed inside a batch");
    s.sync().expect("sync");
    ids.push(unsynced);
    // Idle with a full log: one checkpoint copies all of it.
    s.idle();
    assert_eq!(s.checkpoints(), 1);
    assert_eq!(s.wal_pages(), 0);
    // Idle with a short log: nothing to do.
    ids.extend(commit_batches(&s, 3));
    s.idle();
    assert_eq!(s.checkpoints(), 1, "checkpointed a short log");
    drop(s);
    let s = SqliteStore::open(&path).expect("reopen");
    assert_eq!(s.live_jobs(), ids.len());
}

#[test]
fn without_idle_moments_the_log_stays_under_the_cap() {
    use jobcenter_store::{SyncMode, WAL_CAP_PAGES};
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    let wal = dir.path().join("s.db-wal");
    let s = SqliteStore::open_with(&path, SyncMode::Off).expect("open");
    let mut most = 0;
    let mut batches = 0;
    while s.checkpoints() < 2 {
        commit_batches(&s, 50);
        batches += 50;
        most = most.max(s.wal_pages());
        assert!(batches < 20_000, "no checkpoint at the cap");
    }
    assert!(most < WAL_CAP_PAGES, "{most} pages left in the log");
    // The file: the cap plus one batch, not more (4 KiB pages, 24-byte frame headers).
    let bytes = std::fs::metadata(&wal).expect("wal").len();
    assert!(
        bytes < (u64::from(WAL_CAP_PAGES) + 100) * 4_120,
        "write-ahead log of {bytes} bytes"
    );
}
