//! A tiny in-memory [`Backend`] for dispatcher-level tests: each workflow is one action task.
//!
//! Workflows: `calladd` → action `add` (required input `counter`, a number; output
//! `counter + 1`), `<x>` → action `<x>` for every other action registered with
//! [`MiniBackend::action`], `forever` → action `nobody` (nobody announces it), `instant` →
//! finishes at once with `{"done":true}`.

use jobcenter_engine::backend::{
    Backend, BackendError, BackendFuture, CreateJob, Event, JobId, JobStatus, PollRow, TaskClaim,
    WorkerId,
};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

#[derive(Debug, Clone, Default)]
pub struct ActionDef {
    /// Allowed filter keys; `None`: filtering not allowed.
    pub filter_keys: Option<Vec<String>>,
    pub retryable: bool,
    /// retry tries for soft errors (simplified: retried while tries < N).
    pub retry_tries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Ready,
    Working { worker: WorkerId, cookie: String },
    Done(Value),
}

#[derive(Debug, Clone)]
pub struct Job {
    pub action: String,
    pub inargs: Map<String, Value>,
    pub state: JobState,
    pub tries: u32,
    pub env: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
struct Worker {
    id: WorkerId,
    name: String,
    active: bool,
    actions: BTreeMap<String, Option<Value>>,
}

#[derive(Default)]
struct State {
    next_job: JobId,
    next_worker: WorkerId,
    next_cookie: u64,
    actions: HashMap<String, ActionDef>,
    jobs: BTreeMap<JobId, Job>,
    workers: Vec<Worker>,
    locks: HashMap<String, Vec<String>>,
    pings: HashMap<WorkerId, u32>,
    disconnects: Vec<String>,
    cookies: HashMap<String, JobId>,
    /// Ids of jobs that are (or were, lazily cleaned) ready.
    ready: std::collections::BTreeSet<JobId>,
}

#[derive(Default)]
pub struct MiniBackend {
    state: Mutex<State>,
    subs: Mutex<Vec<UnboundedSender<Event>>>,
    /// `get_job_status` calls so far.
    status_reads: std::sync::atomic::AtomicUsize,
}

fn err<T>(msg: impl Into<String>) -> Result<T, BackendError> {
    Err(BackendError::new(msg))
}

/// jsonb-style containment for the simple cases the tests use.
fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Object(h), Value::Object(n)) => n
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| contains(hv, v))),
        (a, b) => a == b,
    }
}

impl MiniBackend {
    pub fn new() -> Arc<MiniBackend> {
        let b = MiniBackend::default();
        {
            let mut s = b.state.lock();
            s.next_job = 100;
            s.next_worker = 1;
            s.actions.insert("add".into(), ActionDef::default());
            s.actions.insert("nobody".into(), ActionDef::default());
            s.locks.insert("slot".into(), vec!["sleutel".into()]);
        }
        Arc::new(b)
    }

    /// Define (or redefine) an action; a workflow of the same name runs it.
    pub fn action(&self, name: &str, def: ActionDef) {
        self.state.lock().actions.insert(name.into(), def);
    }

    fn emit(&self, ev: Event) {
        self.subs.lock().retain(|tx| tx.send(ev.clone()).is_ok());
    }

    pub fn job(&self, id: JobId) -> Option<Job> {
        self.state.lock().jobs.get(&id).cloned()
    }

    pub fn ping_count(&self, worker: WorkerId) -> u32 {
        self.state.lock().pings.get(&worker).copied().unwrap_or(0)
    }

    pub fn disconnects(&self) -> Vec<String> {
        self.state.lock().disconnects.clone()
    }

    pub fn worker_id(&self, name: &str) -> Option<WorkerId> {
        self.state
            .lock()
            .workers
            .iter()
            .find(|w| w.name == name && w.active)
            .map(|w| w.id)
    }

    /// Finish a job from outside (as an engine would), emitting job:finished.
    pub fn finish(&self, id: JobId, outargs: Value) {
        if let Some(j) = self.state.lock().jobs.get_mut(&id) {
            j.state = JobState::Done(outargs.clone());
        }
        self.emit(Event::JobFinished {
            job_id: id,
            outargs: Some(outargs),
        });
    }

    /// Finish a job from outside with a `job:finished` that leaves the result out (as one
    /// from another node whose result was too large for NOTIFY).
    pub fn finish_unread(&self, id: JobId, outargs: Value) {
        if let Some(j) = self.state.lock().jobs.get_mut(&id) {
            j.state = JobState::Done(outargs);
        }
        self.emit(Event::JobFinished {
            job_id: id,
            outargs: None,
        });
    }

    /// How many `get_job_status` calls the server made so far.
    pub fn status_reads(&self) -> usize {
        self.status_reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Create a ready job of `action` without emitting a ready event (a job that was ready
    /// before anybody listened).
    pub fn quiet_job(&self, action: &str, inargs: Value) -> JobId {
        let mut s = self.state.lock();
        s.next_job += 1;
        let id = s.next_job;
        s.ready.insert(id);
        s.jobs.insert(
            id,
            Job {
                action: action.into(),
                inargs: inargs.as_object().cloned().unwrap_or_default(),
                state: JobState::Ready,
                tries: 0,
                env: None,
            },
        );
        id
    }

    /// Candidate list of a ready job (only for filtering actions), `None` otherwise.
    fn candidates(s: &State, action: &str, inargs: &Map<String, Value>) -> Option<Vec<WorkerId>> {
        let def = s.actions.get(action)?;
        def.filter_keys.as_ref()?;
        let inargs = Value::Object(inargs.clone());
        Some(
            s.workers
                .iter()
                .filter(|w| w.active)
                .filter_map(|w| match w.actions.get(action) {
                    Some(None) => Some(w.id),
                    Some(Some(f)) if contains(&inargs, f) => Some(w.id),
                    _ => None,
                })
                .collect(),
        )
    }

    fn make_ready(&self, id: JobId) {
        let ev = {
            let s = self.state.lock();
            let Some(j) = s.jobs.get(&id) else { return };
            let workers = Self::candidates(&s, &j.action, &j.inargs);
            if workers.as_ref().is_some_and(|w| w.is_empty()) {
                return;
            }
            Event::ActionReady {
                action: j.action.clone(),
                job_id: id,
                workers,
            }
        };
        self.emit(ev);
    }

    /// The task error path: retry soft errors while allowed, else fail the job.
    fn task_error(&self, id: JobId, error: Value) {
        let retry = {
            let mut s = self.state.lock();
            let def = s
                .jobs
                .get(&id)
                .and_then(|j| s.actions.get(&j.action).cloned())
                .unwrap_or_default();
            let Some(j) = s.jobs.get_mut(&id) else { return };
            let soft = error.get("class").and_then(Value::as_str) == Some("soft");
            match def.retry_tries {
                Some(n) if soft && j.tries < n => {
                    j.tries += 1;
                    j.state = JobState::Ready;
                    s.ready.insert(id);
                    true
                }
                _ => {
                    j.state = JobState::Done(json!({ "error": error }));
                    false
                }
            }
        };
        if retry {
            self.make_ready(id);
        } else {
            self.emit(Event::JobFinished {
                job_id: id,
                outargs: Some(json!({ "error": error })),
            });
        }
    }
}

impl Backend for MiniBackend {
    fn create_job(&self, req: CreateJob) -> BackendFuture<'_, JobId> {
        Box::pin(async move {
            let id = {
                let mut s = self.state.lock();
                let (action, done) = match req.wfname.as_str() {
                    "calladd" => ("add".to_string(), None),
                    "forever" => ("nobody".to_string(), None),
                    "instant" => (String::new(), Some(json!({"done": true}))),
                    other if s.actions.contains_key(other) => (other.to_string(), None),
                    other => return err(format!("no workflow named {other}")),
                };
                if action == "add" {
                    match req.inargs.get("counter") {
                        None => return err("required input argument \"counter\" not found"),
                        Some(Value::Number(_)) | Some(Value::Null) => {}
                        Some(Value::String(_)) => return err(
                            "input argument \"counter\" has wrong type string (should be number)",
                        ),
                        Some(_) => return err("input argument \"counter\" has wrong type"),
                    }
                }
                s.next_job += 1;
                let id = s.next_job;
                if done.is_none() {
                    s.ready.insert(id);
                }
                s.jobs.insert(
                    id,
                    Job {
                        action,
                        inargs: req.inargs,
                        state: match &done {
                            Some(o) => JobState::Done(o.clone()),
                            None => JobState::Ready,
                        },
                        tries: 0,
                        env: req.env,
                    },
                );
                if let Some(out) = done {
                    drop(s);
                    self.emit(Event::JobFinished {
                        job_id: id,
                        outargs: Some(out),
                    });
                    return Ok(id);
                }
                id
            };
            self.make_ready(id);
            Ok(id)
        })
    }

    fn get_job_status(&self, job_id: JobId) -> BackendFuture<'_, JobStatus> {
        self.status_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            let s = self.state.lock();
            Ok(match s.jobs.get(&job_id) {
                None => JobStatus::Unknown,
                Some(Job {
                    state: JobState::Done(o),
                    ..
                }) => JobStatus::Finished(o.clone()),
                Some(_) => JobStatus::Running,
            })
        })
    }

    fn find_jobs(&self, filter: Value) -> BackendFuture<'_, Vec<JobId>> {
        Box::pin(async move {
            if filter.as_object().is_some_and(|o| o.is_empty()) {
                return err("using an empty filter is not allowed");
            }
            let s = self.state.lock();
            Ok(s.jobs
                .iter()
                .filter(|(_, j)| contains(&Value::Object(j.inargs.clone()), &filter))
                .map(|(id, _)| *id)
                .collect())
        })
    }

    fn check_if_lock_exists(
        &self,
        locktype: String,
        lockvalue: String,
    ) -> BackendFuture<'_, Option<bool>> {
        Box::pin(async move {
            let s = self.state.lock();
            Ok(s.locks.get(&locktype).map(|v| v.contains(&lockvalue)))
        })
    }

    fn announce(
        &self,
        workername: String,
        actionname: String,
        _who: String,
        filter: Option<Value>,
    ) -> BackendFuture<'_, WorkerId> {
        Box::pin(async move {
            let mut s = self.state.lock();
            let Some(def) = s.actions.get(&actionname).cloned() else {
                return err(format!("no action named {actionname}."));
            };
            match (&filter, &def.filter_keys) {
                (Some(_), None) => {
                    return err(format!("filtering is not allowed for action {actionname}"))
                }
                (Some(f), Some(keys)) => {
                    if let Some(k) = f
                        .as_object()
                        .and_then(|o| o.keys().find(|k| !keys.contains(k)))
                    {
                        return err(format!("filtering is not allowed for key {k}"));
                    }
                }
                (None, Some(keys)) if !keys.iter().any(|k| k == "_*_") => {
                    return err(format!("filtering is required for action {actionname}"))
                }
                _ => {}
            }
            let pos = match s
                .workers
                .iter()
                .position(|w| w.active && w.name == workername)
            {
                Some(p) => p,
                None => {
                    let id = s.next_worker;
                    s.next_worker += 1;
                    s.workers.push(Worker {
                        id,
                        name: workername.clone(),
                        active: true,
                        actions: BTreeMap::new(),
                    });
                    s.workers.len() - 1
                }
            };
            let w = &mut s.workers[pos];
            if w.actions.contains_key(&actionname) {
                return err(format!(
                    "worker {workername} already can do action {actionname}"
                ));
            }
            w.actions.insert(actionname, filter);
            Ok(w.id)
        })
    }

    fn withdraw(&self, workername: String, actionname: String) -> BackendFuture<'_, bool> {
        Box::pin(async move {
            let mut s = self.state.lock();
            let Some(w) = s
                .workers
                .iter_mut()
                .find(|w| w.active && w.name == workername)
            else {
                return Ok(false);
            };
            let removed = w.actions.remove(&actionname).is_some();
            if w.actions.is_empty() {
                w.active = false;
            }
            Ok(removed)
        })
    }

    fn get_task(
        &self,
        workername: String,
        actionname: String,
        job_id: Option<JobId>,
    ) -> BackendFuture<'_, Option<TaskClaim>> {
        Box::pin(async move {
            let mut s = self.state.lock();
            let Some((wid, filter)) = s
                .workers
                .iter()
                .find(|w| w.active && w.name == workername)
                .and_then(|w| w.actions.get(&actionname).map(|f| (w.id, f.clone())))
            else {
                return err(format!(
                    "no workeraction for worker {workername} action {actionname}."
                ));
            };
            let fits = |j: &Job| {
                j.state == JobState::Ready
                    && j.action == actionname
                    && filter
                        .as_ref()
                        .is_none_or(|f| contains(&Value::Object(j.inargs.clone()), f))
            };
            let id = match job_id {
                Some(id) => s.jobs.get(&id).filter(|j| fits(j)).map(|_| id),
                None => s
                    .ready
                    .iter()
                    .find(|id| s.jobs.get(id).is_some_and(&fits))
                    .copied(),
            };
            let Some(id) = id else { return Ok(None) };
            s.next_cookie += 1;
            let cookie = format!("00000000-0000-4000-8000-{:012}", s.next_cookie);
            s.cookies.insert(cookie.clone(), id);
            s.ready.remove(&id);
            let j = s.jobs.get_mut(&id).expect("job exists");
            j.state = JobState::Working {
                worker: wid,
                cookie: cookie.clone(),
            };
            let env = if j.tries > 0 {
                json!({"tries": j.tries})
            } else {
                json!({})
            };
            Ok(Some(TaskClaim {
                job_id: id,
                cookie,
                inargs: Value::Object(j.inargs.clone()),
                env,
            }))
        })
    }

    fn task_done(&self, cookie: String, outargs: Value) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let found = {
                let mut s = self.state.lock();
                let id = s.cookies.remove(&cookie);
                id.and_then(|id| s.jobs.get(&id).map(|j| (id, j)))
                    .filter(|(_, j)| {
                        matches!(&j.state, JobState::Working { cookie: c, .. } if *c == cookie)
                    })
                    .map(|(id, j)| (id, j.action.clone()))
            };
            let Some((id, action)) = found else {
                return Ok(());
            };
            if let Some(e) = outargs.get("error") {
                self.task_error(id, e.clone());
                return Ok(());
            }
            let out = if action == "add" {
                match outargs.get("counter") {
                    Some(c) => json!({"counter": c}),
                    None => {
                        json!({"error": {"msg": "caught exception in do_outargsmap sqlstate P0001 sqlerrm required output parameter counter not found", "class": "normal"}})
                    }
                }
            } else {
                outargs
            };
            self.state.lock().jobs.get_mut(&id).expect("job").state = JobState::Done(out.clone());
            self.emit(Event::JobFinished {
                job_id: id,
                outargs: Some(out),
            });
            Ok(())
        })
    }

    fn ping(&self, worker_id: WorkerId) -> BackendFuture<'_, bool> {
        Box::pin(async move {
            let mut s = self.state.lock();
            *s.pings.entry(worker_id).or_default() += 1;
            Ok(s.workers.iter().any(|w| w.id == worker_id && w.active))
        })
    }

    fn poll_tasks(&self, worker_ids: Vec<WorkerId>) -> BackendFuture<'_, Vec<PollRow>> {
        Box::pin(async move {
            let s = self.state.lock();
            // group (action, filter) → worker ids
            let mut groups: Vec<(String, Option<Value>, Vec<WorkerId>)> = Vec::new();
            for w in s
                .workers
                .iter()
                .filter(|w| w.active && worker_ids.contains(&w.id))
            {
                for (a, f) in &w.actions {
                    match groups.iter_mut().find(|(ga, gf, _)| ga == a && gf == f) {
                        Some(g) => g.2.push(w.id),
                        None => groups.push((a.clone(), f.clone(), vec![w.id])),
                    }
                }
            }
            Ok(groups
                .into_iter()
                .filter_map(|(action, filter, ids)| {
                    let count = s
                        .ready
                        .iter()
                        .filter_map(|id| s.jobs.get(id))
                        .filter(|j| {
                            j.state == JobState::Ready
                                && j.action == action
                                && filter
                                    .as_ref()
                                    .is_none_or(|f| contains(&Value::Object(j.inargs.clone()), f))
                        })
                        .count();
                    (count > 0).then(|| PollRow {
                        action,
                        workers: filter.map(|_| ids),
                        count,
                    })
                })
                .collect())
        })
    }

    fn disconnect(&self, worker_id: WorkerId) -> BackendFuture<'_, bool> {
        Box::pin(async move {
            let (found, held) = {
                let mut s = self.state.lock();
                let mut ids = Vec::new();
                let mut found = false;
                for w in s.workers.iter_mut().filter(|w| w.id == worker_id) {
                    found = w.active;
                    w.active = false;
                    w.actions.clear();
                    ids.push(w.id);
                }
                if let Some(w) = s.workers.iter().find(|w| w.id == worker_id) {
                    let name = w.name.clone();
                    s.disconnects.push(name);
                }
                let held: Vec<(JobId, bool)> = s
                    .jobs
                    .iter()
                    .filter(|(_, j)| {
                        matches!(&j.state, JobState::Working { worker, .. } if ids.contains(worker))
                    })
                    .map(|(id, j)| {
                        let retryable = s.actions.get(&j.action).is_some_and(|d| d.retryable);
                        (*id, retryable)
                    })
                    .collect();
                (found, held)
            };
            for (id, retryable) in held {
                if retryable {
                    self.task_error(id, json!({"class": "soft", "msg": "worker disconnected"}));
                } else {
                    // non-retryable: re-queue as ready so another worker gets it
                    let mut s = self.state.lock();
                    s.ready.insert(id);
                    if let Some(j) = s.jobs.get_mut(&id) {
                        j.state = JobState::Ready;
                    }
                    drop(s);
                    self.make_ready(id);
                }
            }
            Ok(found)
        })
    }

    fn subscribe(&self) -> UnboundedReceiver<Event> {
        let (tx, rx) = unbounded_channel();
        self.subs.lock().push(tx);
        rx
    }
}
