//! The store contract: every backend answers the engine's questions the same way, keeps
//! its indexes in step with the records and rolls a failed transaction back completely.
//! Each check runs against [`MemoryStore`] and [`SqliteStore`] (synced after every step).

use jobcenter_store::testdb::TestDatabase;
use jobcenter_store::{
    JobId, JobState, LockRecord, MemoryStore, Millis, PgStore, SqliteStore, Store, StoreError,
    TaskClaim, WorkerRecord,
};

/// Record counts, which both backends offer as inherent methods.
trait Counts {
    fn live(&self) -> usize;
    fn archived(&self) -> usize;
    /// Ids come from a sequence that a rollback does not rewind (PostgreSQL) or from
    /// blocks reserved ahead (SQLite).
    fn ids_may_skip(&self) -> bool {
        false
    }
}

impl Counts for MemoryStore {
    fn live(&self) -> usize {
        self.live_jobs()
    }
    fn archived(&self) -> usize {
        self.archived_jobs()
    }
}

impl Counts for SqliteStore {
    fn live(&self) -> usize {
        self.live_jobs()
    }
    fn archived(&self) -> usize {
        self.archived_jobs()
    }
    /// Ids are reserved in blocks; a rolled-back transaction drops its block.
    fn ids_may_skip(&self) -> bool {
        true
    }
}

impl Counts for PgStore {
    fn live(&self) -> usize {
        self.live_jobs()
    }
    fn archived(&self) -> usize {
        self.archived_jobs()
    }
    fn ids_may_skip(&self) -> bool {
        true
    }
}

/// A PostgreSQL store on a fresh database (dropped with the handle).
fn postgres() -> (TestDatabase, PgStore) {
    let db = TestDatabase::create().unwrap_or_else(|e| panic!("{e}"));
    let store = PgStore::open(db.url()).unwrap_or_else(|e| panic!("{e}"));
    (db, store)
}

#[path = "common/mod.rs"]
mod common;
use common::job;

/// A fresh SQLite store in a temporary directory (kept alive with it).
fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("contract.db")).expect("open");
    (dir, store)
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test]
            fn $name() {
                super::$name(jobcenter_store::MemoryStore::new());
            })*
        }
        mod sqlite {
            $(#[test]
            fn $name() {
                let (_dir, store) = super::sqlite();
                super::$name(store);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                let (_db, store) = super::postgres();
                super::$name(store);
            })*
        }
    };
}

contract!(
    ready_index_follows_records_and_err_rolls_back,
    replacing_a_job_reindexes_only_changes_and_rolls_back,
    lock_indexes_follow_records_and_roll_back,
    archive_moves_the_result_and_workers_index_by_name,
    admin_queries_page_jobs_archive_locks_and_children,
    cookies_and_reads_follow_the_newest_version_within_a_batch,
    disabled_actions_are_kept_sorted_and_roll_back,
    counts_by_state_follow_the_records_and_roll_back
);

/// The live jobs per state: exact, following replaced and archived jobs within the batch
/// and after a sync, and unchanged by a failed transaction.
fn counts_by_state_follow_the_records_and_roll_back<S: Store + Counts>(store: S) {
    let counts = |store: &S| {
        store
            .transact(|t| Ok::<_, StoreError>(t.count_by_state()))
            .unwrap_or_default()
    };
    let pairs = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    };
    assert!(counts(&store).is_empty());
    let ids = store
        .transact(|t| {
            let mut ids = Vec::new();
            for state in [JobState::Ready, JobState::Ready, JobState::Sleeping] {
                let id = t.next_job_id();
                t.put_job(job(id, state, (state == JobState::Ready).then_some("a")));
                ids.push(id);
            }
            // Seen by the same batch before any sync.
            assert_eq!(t.count_by_state(), pairs(&[("ready", 2), ("sleeping", 1)]));
            Ok::<_, StoreError>(ids)
        })
        .expect("put");
    store.sync().expect("sync");
    let r: Result<(), StoreError> = store.transact(|t| {
        t.put_job(job(ids[0], JobState::Working, None));
        Err(StoreError::Backend("undo".into()))
    });
    assert!(r.is_err());
    assert_eq!(counts(&store), pairs(&[("ready", 2), ("sleeping", 1)]));
    store
        .transact(|t| {
            t.put_job(job(ids[0], JobState::Working, None));
            assert!(t.archive_job(ids[2]));
            Ok::<_, StoreError>(())
        })
        .expect("change");
    store.sync().expect("sync");
    assert_eq!(counts(&store), pairs(&[("ready", 1), ("working", 1)]));
}

/// The disabled actions: set and cleared (reporting whether anything changed), listed
/// sorted, kept across a sync, and a failed transaction's change is undone.
fn disabled_actions_are_kept_sorted_and_roll_back<S: Store + Counts>(store: S) {
    let r = store.transact(|t| {
        assert!(t.disabled_actions().is_empty());
        assert!(t.set_action_disabled("zeta", true));
        assert!(t.set_action_disabled("alpha", true));
        assert!(!t.set_action_disabled("alpha", true), "already disabled");
        assert!(!t.set_action_disabled("other", false), "never disabled");
        Ok::<_, StoreError>(t.disabled_actions())
    });
    assert_eq!(r, Ok(vec!["alpha".to_string(), "zeta".to_string()]));
    store.sync().expect("sync");
    let r: Result<(), StoreError> = store.transact(|t| {
        assert!(t.set_action_disabled("alpha", false));
        assert!(t.set_action_disabled("beta", true));
        assert_eq!(t.disabled_actions(), vec!["beta", "zeta"]);
        Err(StoreError::Backend("undo".into()))
    });
    assert!(r.is_err());
    let r = store.transact(|t| Ok::<_, StoreError>(t.disabled_actions()));
    assert_eq!(r, Ok(vec!["alpha".to_string(), "zeta".to_string()]));
    let r = store.transact(|t| {
        assert!(t.set_action_disabled("zeta", false));
        Ok::<_, StoreError>(t.disabled_actions())
    });
    assert_eq!(r, Ok(vec!["alpha".to_string()]));
    store.sync().expect("sync");
}

/// Later transactions of one batch see what earlier ones wrote, by id and by cookie, before
/// any sync (PostgreSQL keeps the job rows of the open batch in memory until then), a stale
/// cookie is not found although the table still has it, a failed transaction's writes are
/// gone, and everything is there after the sync.
fn cookies_and_reads_follow_the_newest_version_within_a_batch<S: Store + Counts>(store: S) {
    let claimed = |id: JobId, cookie: &str| {
        let mut j = job(id, JobState::Working, Some("x"));
        j.task_state.claim = Some(TaskClaim {
            cookie: cookie.into(),
            worker_id: 1,
            claimed_at: 0,
            deadline: None,
        });
        j
    };
    let ok = |r: Result<(), StoreError>| assert!(r.is_ok(), "{r:?}");
    ok(store.transact(|t| {
        t.put_job(claimed(1, "old"));
        Ok(())
    }));
    ok(store.sync());
    // Batch 2: a new claim of job 1 and a new job 2, in two transactions, not synced.
    ok(store.transact(|t| {
        t.put_job(claimed(1, "new"));
        Ok(())
    }));
    ok(store.transact(|t| {
        t.put_job(claimed(2, "two"));
        Ok(())
    }));
    let seen = store
        .transact(|t| {
            Ok::<_, StoreError>((
                t.job_by_cookie("old"),
                t.job_with_cookie("old").map(|j| j.id),
                t.job_with_cookie("new").map(|j| j.id),
                t.job_by_cookie("two"),
                t.job(2).and_then(|j| j.cookie().map(str::to_string)),
                t.peek_job(1).and_then(|j| j.cookie().map(str::to_string)),
            ))
        })
        .ok();
    assert_eq!(
        seen,
        Some((
            None,
            None,
            Some(1),
            Some(2),
            Some("two".to_string()),
            Some("new".to_string())
        ))
    );
    // A failed transaction's writes are dropped; the batch's earlier ones stay.
    let r: Result<(), StoreError> = store.transact(|t| {
        t.put_job(claimed(3, "three"));
        t.put_job(claimed(2, "changed"));
        Err(StoreError::Backend("undo".into()))
    });
    assert!(r.is_err());
    ok(store.sync());
    let seen = store
        .transact(|t| {
            Ok::<_, StoreError>((
                t.job(3).is_none(),
                t.job_by_cookie("three"),
                t.job_by_cookie("changed"),
                t.job_by_cookie("two"),
                t.job_by_cookie("new"),
                t.jobs_claimed_by(1),
            ))
        })
        .ok();
    assert_eq!(seen, Some((true, None, None, Some(2), Some(1), vec![1, 2])));
    assert_eq!(store.live(), 2);
}

fn ready_index_follows_records_and_err_rolls_back<S: Store + Counts>(store: S) {
    let r: Result<(), StoreError> = store.transact(|t| {
        let a = t.next_job_id();
        let b = t.next_job_id();
        t.put_job(job(b, JobState::Ready, Some("x")));
        t.put_job(job(a, JobState::Ready, Some("x")));
        Ok(())
    });
    assert!(r.is_ok());
    let ids: Vec<JobId> = store
        .transact(|t| Ok::<_, StoreError>(t.ready_jobs("x").collect()))
        .unwrap_or_default();
    assert_eq!(ids, vec![1, 2]);

    // A failing transaction leaves nothing behind: not the claim, not the id.
    let r: Result<(), StoreError> = store.transact(|t| {
        let mut j = t.job(1).ok_or(StoreError::Corrupt("gone".into()))?;
        j.state = JobState::Working;
        j.task_state.claim = Some(TaskClaim {
            cookie: "c1".into(),
            worker_id: 1,
            claimed_at: 0,
            deadline: Some(5),
        });
        j.wake_at = Some(5);
        t.put_job(j);
        t.next_job_id();
        assert_eq!(t.job_by_cookie("c1"), Some(1));
        assert_eq!(
            t.job_with_cookie("c1").map(|j| (j.id, j.state)),
            Some((1, JobState::Working))
        );
        assert!(t.job_with_cookie("nope").is_none());
        Err(StoreError::Backend("boom".into()))
    });
    assert!(r.is_err());
    let (ids, cookie, due, next) = store
        .transact(|t| {
            Ok::<_, StoreError>((
                t.ready_jobs("x").collect::<Vec<_>>(),
                t.job_by_cookie("c1"),
                t.due_jobs(10, 10),
                t.next_job_id(),
            ))
        })
        .unwrap_or_default();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(cookie, None);
    assert!(due.is_empty());
    if store.ids_may_skip() {
        assert!(next > 2, "ids never repeat: {next}");
    } else {
        assert_eq!(next, 3, "the rolled-back id is handed out again");
    }
}

/// Replacing a record in place updates exactly the index entries that changed, and a
/// rollback of several replacements of one job restores every index.
fn replacing_a_job_reindexes_only_changes_and_rolls_back<S: Store + Counts>(store: S) {
    use jobcenter_store::{Subscription, TaskClaim};

    let working = |id: JobId, cookie: &str, wake: Option<Millis>| {
        let mut j = job(id, JobState::Working, Some("x"));
        j.task_state.claim = Some(TaskClaim {
            cookie: cookie.into(),
            worker_id: 1,
            claimed_at: 0,
            deadline: wake,
        });
        j.wake_at = wake;
        j
    };
    let r: Result<(), StoreError> = store.transact(|t| {
        t.put_job(job(1, JobState::Ready, Some("x")));
        t.put_job(working(2, "c2", Some(7)));
        Ok(())
    });
    assert!(r.is_ok());
    // Same index keys (only a counter changes), then a new cookie and wake time.
    let r: Result<(), StoreError> = store.transact(|t| {
        let mut j = working(2, "c2", Some(7));
        j.steps = 5;
        t.put_job(j);
        t.put_job(working(2, "c2b", Some(9)));
        Ok(())
    });
    assert!(r.is_ok());
    let snapshot = |store: &S| {
        store
            .transact(|t| {
                Ok::<_, StoreError>((
                    t.ready_jobs("x").collect::<Vec<_>>(),
                    t.job_by_cookie("c2"),
                    t.job_by_cookie("c2b"),
                    t.due_jobs(100, 10),
                    t.subscribed_jobs(),
                ))
            })
            .unwrap_or_default()
    };
    assert_eq!(snapshot(&store), (vec![1], None, Some(2), vec![2], vec![]));

    // Several replacements of both jobs in one failing transaction: all undone.
    let r: Result<(), StoreError> = store.transact(|t| {
        let mut a = working(1, "c1", Some(3));
        a.subscriptions.push(Subscription {
            name: "s".into(),
            mask: serde_json::json!({}),
            queue: vec![],
        });
        t.put_job(a);
        t.put_job(job(2, JobState::Ready, Some("x")));
        let mut b = job(2, JobState::Ready, Some("y"));
        b.wake_at = Some(1);
        t.put_job(b);
        assert_eq!(t.ready_jobs("y").collect::<Vec<_>>(), vec![2]);
        assert_eq!(t.subscribed_jobs(), vec![1]);
        assert_eq!(t.due_jobs(100, 10), vec![2, 1]);
        Err(StoreError::Backend("undo".into()))
    });
    assert!(r.is_err());
    assert_eq!(snapshot(&store), (vec![1], None, Some(2), vec![2], vec![]));
    let y = store
        .transact(|t| Ok::<_, StoreError>(t.ready_jobs("y").count()))
        .unwrap_or(1);
    assert_eq!(y, 0);
}

fn lock_indexes_follow_records_and_roll_back<S: Store + Counts>(store: S) {
    use jobcenter_store::LockWait;

    let lock = LockRecord {
        locktype: "slot".into(),
        lockvalue: "a".into(),
        holder: 1,
        inheritable: false,
        lenders: vec![],
    };
    let r: Result<(), StoreError> = store.transact(|t| {
        t.put_lock(lock.clone());
        let mut w = job(2, JobState::LockWait, None);
        w.task_state.lock = Some(LockWait {
            locktype: "slot".into(),
            lockvalue: "a".into(),
            inherit: false,
        });
        t.put_job(w);
        Ok(())
    });
    assert!(r.is_ok());
    let r: Result<(), StoreError> = store.transact(|t| {
        assert_eq!(t.locks_held_by(1), vec![lock.clone()]);
        assert_eq!(t.lock_waiters("slot", "a"), vec![2]);
        assert!(t.delete_lock("slot", "a"));
        assert!(t.locks_held_by(1).is_empty());
        Err(StoreError::Backend("undo".into()))
    });
    assert!(r.is_err());
    let held = store
        .transact(|t| Ok::<_, StoreError>(t.lock("slot", "a").map(|l| l.holder)))
        .unwrap_or_default();
    assert_eq!(held, Some(1));
}

fn archive_moves_the_result_and_workers_index_by_name<S: Store + Counts>(store: S) {
    let r: Result<(), StoreError> = store.transact(|t| {
        let mut j = job(1, JobState::Finished, None);
        j.out_args = Some(serde_json::json!({"r": 1}));
        t.put_job(j);
        assert!(t.archive_job(1));
        assert!(t.job(1).is_none());
        let id = t.next_worker_id();
        t.put_worker(WorkerRecord {
            id,
            name: "w1".into(),
            active: true,
            started_at: 0,
            last_ping: 0,
            registrations: vec![],
        });
        Ok(())
    });
    assert!(r.is_ok());
    assert_eq!(store.archived(), 1);
    assert_eq!(store.live(), 0);
    let found = store
        .transact(|t| {
            Ok::<_, StoreError>((
                t.archived(1).map(|a| a.out_args),
                t.active_worker("w1").map(|w| w.id),
            ))
        })
        .unwrap_or_default();
    assert_eq!(found, (Some(serde_json::json!({"r": 1})), Some(1)));
}

fn admin_queries_page_jobs_archive_locks_and_children<S: Store + Counts>(store: S) {
    use jobcenter_store::{JobRecord, ParentLink, Step};

    let r: Result<(), StoreError> = store.transact(|t| {
        for id in 1..=6 {
            let mut j = job(id, JobState::Finished, None);
            j.out_args = Some(serde_json::json!({"n": id}));
            if id % 2 == 0 {
                j.parent = Some(ParentLink {
                    job_id: 1,
                    task: 1,
                    wait: true,
                });
            }
            j.history = vec![Step {
                task: 1,
                at: 5,
                action: Some("a".into()),
                ..Step::default()
            }];
            t.put_job(j);
        }
        // 1 and 3 archived; 2, 4, 5, 6 live.
        assert!(t.archive_job(1));
        assert!(t.archive_job(3));
        for (t_, v) in [("slot", "b"), ("abc", "x"), ("slot", "a")] {
            t.put_lock(LockRecord {
                locktype: t_.into(),
                lockvalue: v.into(),
                holder: 2,
                inheritable: false,
                lenders: vec![],
            });
        }
        Ok(())
    });
    assert!(r.is_ok());
    let got = store
        .transact(|t| {
            let ids = |v: Vec<JobRecord>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
            Ok::<_, StoreError>((
                ids(t.jobs_below(i64::MAX, 3)),
                ids(t.jobs_below(5, 10)),
                t.archived_below(i64::MAX, 10)
                    .into_iter()
                    .map(|a| (a.id, a.out_args))
                    .collect::<Vec<_>>(),
                t.archived_below(3, 10).len(),
                t.all_locks(None, 10)
                    .into_iter()
                    .map(|l| format!("{}/{}", l.locktype, l.lockvalue))
                    .collect::<Vec<_>>(),
                t.all_locks(Some("slot"), 1).len(),
                t.children_of(1),
                t.job(6).map(|j| j.history),
            ))
        })
        .expect("read");
    assert_eq!(got.0, vec![6, 5, 4]);
    assert_eq!(got.1, vec![4, 2]);
    assert_eq!(
        got.2,
        vec![
            (3, serde_json::json!({"n": 3})),
            (1, serde_json::json!({"n": 1}))
        ]
    );
    assert_eq!(got.3, 1);
    assert_eq!(got.4, vec!["abc/x", "slot/a", "slot/b"]);
    assert_eq!(got.5, 1);
    assert_eq!(got.6, vec![2, 4, 6]);
    assert_eq!(got.7.map(|h| h.len()), Some(1));
}
