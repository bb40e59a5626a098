//! Records for the store tests.

use jobcenter_store::{JobId, JobRecord, JobState, TaskState};

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
