//! Records and checks shared by the store tests.
#![allow(dead_code)]

use jobcenter_store::{
    JobId, JobRecord, JobState, ParentLink, Registration, Store, StoreError, TaskState, WorkerId,
    WorkerRecord,
};

/// A minimal live job in `state`, queued for `action` when it is ready.
pub fn job(id: JobId, state: JobState, action: Option<&str>) -> JobRecord {
    JobRecord {
        id,
        workflow: "w".into(),
        version: 0,
        workflow_def: 0,
        state,
        task: 1,
        steps: 0,
        max_steps: 99,
        depth: 1,
        parent: None,
        children: Vec::new(),
        subscriptions: Vec::new(),
        args: Default::default(),
        env: Default::default(),
        vars: Default::default(),
        out_args: None,
        task_state: TaskState {
            action: action.map(str::to_string),
            ..TaskState::default()
        },
        aborted: false,
        created_at: 0,
        updated_at: 0,
        finished_at: None,
        wake_at: None,
        history: Vec::new(),
    }
}

/// Put what a schema migration must keep: a parent waiting for its child (job 1) and the
/// ready child (job 2); synced.
pub fn put_parent_and_child(s: &impl Store) {
    s.transact(|t| {
        let parent = t.next_job_id();
        let mut j = job(parent, JobState::ChildWait, None);
        t.put_job(j.clone());
        j.id = t.next_job_id();
        j.state = JobState::Ready;
        j.parent = Some(ParentLink {
            job_id: parent,
            task: 1,
            wait: true,
        });
        t.put_job(j);
        Ok::<_, StoreError>(())
    })
    .expect("jobs");
    s.sync().expect("sync");
}

/// After a migration from schema version 1 (`migrated`, opened again by `reopen`): the
/// states and the parent link of [`put_parent_and_child`] came through (the indexed columns
/// were rebuilt), and disabling an action works and persists.
pub fn check_migrated_from_v1<S: Store>(migrated: S, reopen: impl FnOnce() -> S) {
    let r = migrated.transact(|t| Ok::<_, StoreError>((t.count_by_state(), t.children_of(1))));
    assert_eq!(
        r,
        Ok((
            vec![("childwait".to_string(), 1), ("ready".to_string(), 1)],
            vec![2]
        ))
    );
    let r = migrated.transact(|t| {
        assert!(t.set_action_disabled("add", true));
        Ok::<_, StoreError>(t.disabled_actions())
    });
    assert_eq!(r, Ok(vec!["add".to_string()]));
    migrated.sync().expect("sync");
    drop(migrated);
    let s = reopen();
    let r = s.transact(|t| Ok::<_, StoreError>(t.disabled_actions()));
    assert_eq!(r, Ok(vec!["add".to_string()]));
}

/// A fresh PostgreSQL database of its own, dropped with the value.
pub fn db() -> jobcenter_store::testdb::TestDatabase {
    jobcenter_store::testdb::TestDatabase::create().unwrap_or_else(|e| panic!("{e}"))
}

/// Run SQL on the test database directly (on a thread: the client runs its own runtime).
pub fn sql(url: &str, text: &str) {
    try_sql(url, text).expect("sql");
}

/// [`sql`] that may fail: PostgreSQL's error text if it does.
pub fn try_sql(url: &str, text: &str) -> Result<(), String> {
    let (url, text) = (url.to_string(), text.to_string());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.batch_execute(&text).map_err(|e| e.to_string())
    })
    .join()
    .expect("sql thread")
}

/// An active worker record registered for `actions` (no filters).
pub fn record(id: WorkerId, name: &str, actions: &[&str]) -> WorkerRecord {
    WorkerRecord {
        id,
        name: name.into(),
        active: true,
        started_at: 1,
        last_ping: 1,
        registrations: actions
            .iter()
            .map(|a| Registration {
                action: (*a).into(),
                filter: None,
            })
            .collect(),
    }
}
