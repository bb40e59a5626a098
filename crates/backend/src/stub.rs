//! [`StubBackend`]: a small in-memory [`Backend`] without JCL (feature `stub`).
//!
//! Every workflow is one task of one action: the job's inargs become the task's inargs and
//! the task's outargs become the job's outargs. It serves two users, so that there is one
//! such fake and not two drifting copies:
//!
//! - `jobcenter bench --backend stub`, which measures the API server and the client library
//!   without the engine ([`StubBackend::pass_through`]: every workflow name runs one action);
//! - the API server's tests, which script workflows, actions with filters and soft-error
//!   retries, locks, jobs finished from outside, and look at what the server asked for.
//!
//! What a workflow does is given by [`Workflow`]: run an action (optionally checking typed
//! inputs and keeping declared outputs, with the engine's error messages), or finish at once.
//! A workflow named like a defined action runs that action. Finished jobs keep their
//! outargs but drop their inargs (a long bench keeps a flat footprint); `find_jobs` looks at
//! live jobs only, as the engine does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::{
    Backend, BackendError, BackendFuture, CreateJob, Event, JobId, JobStatus, PollRow, TaskClaim,
    WorkerId,
};

/// How an action is served.
#[derive(Debug, Clone, Default)]
pub struct ActionDef {
    /// Allowed filter keys (`_*_`: filtering allowed but not required); `None`: filtering
    /// not allowed.
    pub filter_keys: Option<Vec<String>>,
    /// Whether a task held by a disconnecting worker fails with a soft error (else it goes
    /// back to ready).
    pub retryable: bool,
    /// Soft errors are retried while the job has been tried fewer than this many times.
    pub retry_tries: Option<u32>,
}

/// What a workflow does.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// `Some(action)`: one task of that action; `None`: the job finishes at once.
    action: Option<String>,
    /// Required inputs and their JSON type names (`number`, `string`, ...).
    inputs: Vec<(String, String)>,
    /// Declared outputs: `Some`: the job's outargs are these keys of the task's outargs, a
    /// missing one fails the job; `None`: the task's outargs as they are.
    outputs: Option<Vec<String>>,
    /// The outargs of a workflow that finishes at once.
    instant: Value,
}

impl Workflow {
    /// A workflow of one task of `action`.
    pub fn task(action: &str) -> Self {
        Workflow {
            action: Some(action.to_string()),
            inputs: Vec::new(),
            outputs: None,
            instant: Value::Null,
        }
    }

    /// A workflow that finishes as soon as it is created, with `outargs`.
    pub fn instant(outargs: Value) -> Self {
        Workflow {
            action: None,
            inputs: Vec::new(),
            outputs: None,
            instant: outargs,
        }
    }

    /// Require input `name` of JSON type `ty` (`null` passes for any type).
    pub fn input(mut self, name: &str, ty: &str) -> Self {
        self.inputs.push((name.to_string(), ty.to_string()));
        self
    }

    /// Declare output `name` (see [`Workflow`]'s outputs).
    pub fn output(mut self, name: &str) -> Self {
        self.outputs
            .get_or_insert_with(Vec::new)
            .push(name.to_string());
        self
    }
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Waiting for a worker.
    Ready,
    /// Claimed by `worker` under `cookie`.
    Working {
        /// The worker holding the task.
        worker: WorkerId,
        /// The task's cookie.
        cookie: String,
    },
    /// Finished with these outargs.
    Done(Value),
}

/// A job, as [`StubBackend::job`] shows it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The workflow's name.
    pub workflow: String,
    /// The action its task runs (empty for an instant workflow).
    pub action: String,
    /// Its inargs (emptied when it finishes).
    pub inargs: Map<String, Value>,
    /// Where it is.
    pub state: JobState,
    /// How often it was retried.
    pub tries: u32,
    /// The environment the server passed to `create_job`.
    pub env: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
struct Worker {
    name: String,
    active: bool,
    /// action → filter
    actions: BTreeMap<String, Option<Value>>,
}

#[derive(Default)]
struct State {
    next_job: JobId,
    next_worker: WorkerId,
    next_cookie: u64,
    actions: HashMap<String, ActionDef>,
    workflows: HashMap<String, Workflow>,
    /// The action of every workflow that is neither defined nor named like an action.
    fallback: Option<String>,
    jobs: HashMap<JobId, Job>,
    /// Ready job ids (lazily cleaned: a job finished from outside may stay here).
    ready: BTreeSet<JobId>,
    cookies: HashMap<String, JobId>,
    workers: BTreeMap<WorkerId, Worker>,
    /// Active worker names → ids.
    by_name: HashMap<String, WorkerId>,
    locks: HashMap<String, Vec<String>>,
    pings: HashMap<WorkerId, u32>,
    disconnects: Vec<String>,
}

/// The in-memory backend (see the module docs).
#[derive(Default)]
pub struct StubBackend {
    state: Mutex<State>,
    subs: Mutex<Vec<UnboundedSender<Event>>>,
    /// `get_job_status` calls so far.
    status_reads: std::sync::atomic::AtomicUsize,
}

fn err<T>(msg: impl Into<String>) -> Result<T, BackendError> {
    Err(BackendError::new(msg))
}

fn done<'a, T: Send + 'a>(v: Result<T, BackendError>) -> BackendFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

/// jsonb-style containment (`@>`) for objects and plain values.
fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Object(h), Value::Object(n)) => n
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| contains(hv, v))),
        (a, b) => a == b,
    }
}

/// Whether the object `inargs` contains `filter` (`None`: no filter, always).
fn fits_filter(inargs: &Map<String, Value>, filter: Option<&Value>) -> bool {
    match filter {
        None => true,
        Some(Value::Object(f)) => f
            .iter()
            .all(|(k, v)| inargs.get(k).is_some_and(|hv| contains(hv, v))),
        Some(_) => false,
    }
}

use crate::json_type_name as type_name;

impl StubBackend {
    /// An empty backend: no actions, no workflows, no locks.
    pub fn new() -> Self {
        let b = StubBackend::default();
        {
            let mut s = b.state.lock();
            s.next_job = 100;
            s.next_worker = 1;
        }
        b
    }

    /// The bench's backend: every workflow is one task of `action`.
    pub fn pass_through(action: &str) -> Self {
        let b = StubBackend::new();
        b.action(action, ActionDef::default());
        b.state.lock().fallback = Some(action.to_string());
        b
    }

    /// Define (or redefine) an action; a workflow of the same name runs it.
    pub fn action(&self, name: &str, def: ActionDef) {
        self.state.lock().actions.insert(name.into(), def);
    }

    /// Define (or redefine) a workflow.
    pub fn workflow(&self, name: &str, wf: Workflow) {
        self.state.lock().workflows.insert(name.into(), wf);
    }

    /// Make `check_if_lock_exists(locktype, lockvalue)` answer true (and other values of
    /// `locktype` false).
    pub fn lock(&self, locktype: &str, lockvalue: &str) {
        self.state
            .lock()
            .locks
            .entry(locktype.into())
            .or_default()
            .push(lockvalue.into());
    }

    /// A job, if it exists.
    pub fn job(&self, id: JobId) -> Option<Job> {
        self.state.lock().jobs.get(&id).cloned()
    }

    /// How often `worker` was pinged.
    pub fn ping_count(&self, worker: WorkerId) -> u32 {
        self.state.lock().pings.get(&worker).copied().unwrap_or(0)
    }

    /// The names of the workers disconnected so far, in order.
    pub fn disconnects(&self) -> Vec<String> {
        self.state.lock().disconnects.clone()
    }

    /// The id of the active worker `name`.
    pub fn worker_id(&self, name: &str) -> Option<WorkerId> {
        self.state.lock().by_name.get(name).copied()
    }

    /// Finish a job from outside (as an engine would), emitting `JobFinished` with the result.
    pub fn finish(&self, id: JobId, outargs: Value) {
        self.finish_with(id, outargs, true);
    }

    /// Finish a job from outside with a `JobFinished` that leaves the result out (as one from
    /// another node whose result was too large for NOTIFY): the server must read it.
    pub fn finish_unread(&self, id: JobId, outargs: Value) {
        self.finish_with(id, outargs, false);
    }

    fn finish_with(&self, id: JobId, outargs: Value, in_event: bool) {
        if let Some(j) = self.state.lock().jobs.get_mut(&id) {
            j.state = JobState::Done(outargs.clone());
            j.inargs = Map::new();
        }
        self.emit(Event::JobFinished {
            job_id: id,
            outargs: in_event.then_some(outargs),
        });
    }

    /// How many `get_job_status` calls were made so far.
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
                workflow: action.into(),
                action: action.into(),
                inargs: inargs.as_object().cloned().unwrap_or_default(),
                state: JobState::Ready,
                tries: 0,
                env: None,
            },
        );
        id
    }

    fn emit(&self, ev: Event) {
        self.subs.lock().retain(|tx| tx.send(ev.clone()).is_ok());
    }

    /// The ready event of job `id` (`None`: no such job, or a filtering action nobody can
    /// take it from).
    fn ready_event(s: &State, id: JobId) -> Option<Event> {
        let j = s.jobs.get(&id)?;
        let workers = match s.actions.get(&j.action) {
            Some(ActionDef {
                filter_keys: Some(_),
                ..
            }) => {
                let ids: Vec<WorkerId> = s
                    .workers
                    .iter()
                    .filter(|(_, w)| w.active)
                    .filter_map(|(id, w)| match w.actions.get(&j.action) {
                        Some(f) if fits_filter(&j.inargs, f.as_ref()) => Some(*id),
                        _ => None,
                    })
                    .collect();
                if ids.is_empty() {
                    return None;
                }
                Some(ids)
            }
            _ => None,
        };
        Some(Event::ActionReady {
            action: j.action.clone(),
            job_id: id,
            workers,
        })
    }

    fn make_ready(&self, id: JobId) {
        let ev = Self::ready_event(&self.state.lock(), id);
        if let Some(ev) = ev {
            self.emit(ev);
        }
    }

    /// The task error path: retry soft errors while allowed, else fail the job.
    fn task_error(&self, id: JobId, error: Value) {
        let retry = {
            let mut s = self.state.lock();
            let s = &mut *s;
            let Some(j) = s.jobs.get_mut(&id) else { return };
            let tries = s.actions.get(&j.action).and_then(|d| d.retry_tries);
            let soft = error.get("class").and_then(Value::as_str) == Some("soft");
            match tries {
                Some(n) if soft && j.tries < n => {
                    j.tries += 1;
                    j.state = JobState::Ready;
                    s.ready.insert(id);
                    true
                }
                _ => {
                    j.state = JobState::Done(json!({ "error": error.clone() }));
                    j.inargs = Map::new();
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

    fn create(&self, req: CreateJob) -> Result<JobId, BackendError> {
        let mut s = self.state.lock();
        let (action, instant) = match s.workflows.get(&req.wfname) {
            Some(wf) => {
                for (name, ty) in &wf.inputs {
                    match req.inargs.get(name) {
                        None => {
                            return err(format!("required input argument \"{name}\" not found"))
                        }
                        Some(v) if v.is_null() || type_name(v) == ty => {}
                        Some(v) => {
                            return err(format!(
                                "input argument \"{name}\" has wrong type {} (should be {ty})",
                                type_name(v)
                            ))
                        }
                    }
                }
                match &wf.action {
                    Some(a) => (a.clone(), None),
                    None => (String::new(), Some(wf.instant.clone())),
                }
            }
            None if s.actions.contains_key(&req.wfname) => (req.wfname.clone(), None),
            None => match &s.fallback {
                Some(a) => (a.clone(), None),
                None => return err(format!("no workflow named {}", req.wfname)),
            },
        };
        s.next_job += 1;
        let id = s.next_job;
        let finished = instant.is_some();
        let finished_with = instant.clone();
        s.jobs.insert(
            id,
            Job {
                workflow: req.wfname,
                action,
                inargs: if finished { Map::new() } else { req.inargs },
                state: match instant {
                    Some(o) => JobState::Done(o),
                    None => JobState::Ready,
                },
                tries: 0,
                env: req.env,
            },
        );
        let ev = if let Some(out) = finished_with {
            Some(Event::JobFinished {
                job_id: id,
                outargs: Some(out),
            })
        } else {
            s.ready.insert(id);
            Self::ready_event(&s, id)
        };
        drop(s);
        if let Some(ev) = ev {
            self.emit(ev);
        }
        Ok(id)
    }

    fn announce_worker(
        &self,
        workername: String,
        actionname: String,
        filter: Option<Value>,
    ) -> Result<WorkerId, BackendError> {
        let mut s = self.state.lock();
        let Some(def) = s.actions.get(&actionname) else {
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
        let id = match s.by_name.get(&workername) {
            Some(id) => *id,
            None => {
                let id = s.next_worker;
                s.next_worker += 1;
                s.by_name.insert(workername.clone(), id);
                s.workers.insert(
                    id,
                    Worker {
                        name: workername.clone(),
                        active: true,
                        actions: BTreeMap::new(),
                    },
                );
                id
            }
        };
        let Some(w) = s.workers.get_mut(&id) else {
            return err(format!("no worker {workername}"));
        };
        if w.actions.contains_key(&actionname) {
            return err(format!(
                "worker {workername} already can do action {actionname}"
            ));
        }
        w.actions.insert(actionname, filter);
        Ok(id)
    }

    fn claim(
        &self,
        workername: &str,
        actionname: &str,
        job_id: Option<JobId>,
    ) -> Result<Option<TaskClaim>, BackendError> {
        let mut s = self.state.lock();
        let s = &mut *s;
        let Some((wid, filter)) = s
            .by_name
            .get(workername)
            .and_then(|id| s.workers.get(id).map(|w| (*id, w)))
            .and_then(|(id, w)| w.actions.get(actionname).map(|f| (id, f)))
        else {
            return err(format!(
                "no workeraction for worker {workername} action {actionname}."
            ));
        };
        let fits = |j: &Job| {
            j.state == JobState::Ready
                && j.action == actionname
                && fits_filter(&j.inargs, filter.as_ref())
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
        let Some(j) = s.jobs.get_mut(&id) else {
            return Ok(None);
        };
        s.next_cookie += 1;
        let cookie = format!("00000000-0000-4000-8000-{:012}", s.next_cookie);
        s.cookies.insert(cookie.clone(), id);
        s.ready.remove(&id);
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
    }

    fn finish_task(&self, cookie: String, outargs: Value) {
        let outcome = {
            let mut s = self.state.lock();
            let s = &mut *s;
            let Some(id) = s.cookies.remove(&cookie) else {
                return;
            };
            let Some(j) = s.jobs.get_mut(&id) else { return };
            if !matches!(&j.state, JobState::Working { cookie: c, .. } if *c == cookie) {
                return;
            }
            match outargs.get("error") {
                Some(e) => Err((id, e.clone())),
                None => {
                    let outputs = s
                        .workflows
                        .get(&j.workflow)
                        .and_then(|wf| wf.outputs.as_ref());
                    let out = match outputs {
                        None => outargs,
                        Some(keys) => keep_outputs(keys, &outargs),
                    };
                    j.state = JobState::Done(out.clone());
                    j.inargs = Map::new();
                    Ok((id, out))
                }
            }
        };
        match outcome {
            Ok((job_id, out)) => self.emit(Event::JobFinished {
                job_id,
                outargs: Some(out),
            }),
            Err((id, e)) => self.task_error(id, e),
        }
    }
}

/// The declared outputs of a task's outargs, or the engine's error for a missing one.
fn keep_outputs(keys: &[String], outargs: &Value) -> Value {
    let mut out = Map::new();
    for k in keys {
        match outargs.get(k) {
            Some(v) => {
                out.insert(k.clone(), v.clone());
            }
            None => {
                return json!({"error": {
                    "msg": format!("caught exception in do_outargsmap sqlstate P0001 sqlerrm required output parameter {k} not found"),
                    "class": "normal",
                }})
            }
        }
    }
    Value::Object(out)
}

impl Backend for StubBackend {
    fn create_job(&self, req: CreateJob) -> BackendFuture<'_, JobId> {
        done(self.create(req))
    }

    fn get_job_status(&self, job_id: JobId) -> BackendFuture<'_, JobStatus> {
        self.status_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let s = self.state.lock();
        done(Ok(match s.jobs.get(&job_id) {
            None => JobStatus::Unknown,
            Some(Job {
                state: JobState::Done(o),
                ..
            }) => JobStatus::Finished(o.clone()),
            Some(_) => JobStatus::Running,
        }))
    }

    fn find_jobs(&self, filter: Value) -> BackendFuture<'_, Vec<JobId>> {
        if filter.as_object().is_none_or(Map::is_empty) {
            return done(err("using an empty filter is not allowed"));
        }
        let s = self.state.lock();
        let mut ids: Vec<JobId> = s
            .jobs
            .iter()
            .filter(|(_, j)| !matches!(j.state, JobState::Done(_)))
            .filter(|(_, j)| fits_filter(&j.inargs, Some(&filter)))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        done(Ok(ids))
    }

    fn check_if_lock_exists(
        &self,
        locktype: String,
        lockvalue: String,
    ) -> BackendFuture<'_, Option<bool>> {
        let s = self.state.lock();
        done(Ok(s.locks.get(&locktype).map(|v| v.contains(&lockvalue))))
    }

    fn announce(
        &self,
        workername: String,
        actionname: String,
        _who: String,
        filter: Option<Value>,
    ) -> BackendFuture<'_, WorkerId> {
        done(self.announce_worker(workername, actionname, filter))
    }

    fn withdraw(&self, workername: String, actionname: String) -> BackendFuture<'_, bool> {
        let mut s = self.state.lock();
        let s = &mut *s;
        let Some(id) = s.by_name.get(&workername).copied() else {
            return done(Ok(false));
        };
        let Some(w) = s.workers.get_mut(&id) else {
            return done(Ok(false));
        };
        let removed = w.actions.remove(&actionname).is_some();
        if w.actions.is_empty() {
            w.active = false;
            s.by_name.remove(&workername);
        }
        done(Ok(removed))
    }

    fn get_task(
        &self,
        workername: String,
        actionname: String,
        job_id: Option<JobId>,
    ) -> BackendFuture<'_, Option<TaskClaim>> {
        done(self.claim(&workername, &actionname, job_id))
    }

    fn task_done(&self, cookie: String, outargs: Value) -> BackendFuture<'_, ()> {
        self.finish_task(cookie, outargs);
        done(Ok(()))
    }

    fn ping(&self, worker_id: WorkerId) -> BackendFuture<'_, bool> {
        let mut s = self.state.lock();
        *s.pings.entry(worker_id).or_default() += 1;
        done(Ok(s.workers.get(&worker_id).is_some_and(|w| w.active)))
    }

    fn poll_tasks(&self, worker_ids: Vec<WorkerId>) -> BackendFuture<'_, Vec<PollRow>> {
        let s = self.state.lock();
        // (action, filter) → the worker ids announcing it
        let mut groups: Vec<(&String, &Option<Value>, Vec<WorkerId>)> = Vec::new();
        for id in &worker_ids {
            let Some(w) = s.workers.get(id).filter(|w| w.active) else {
                continue;
            };
            for (a, f) in &w.actions {
                match groups.iter_mut().find(|(ga, gf, _)| *ga == a && *gf == f) {
                    Some(g) => g.2.push(*id),
                    None => groups.push((a, f, vec![*id])),
                }
            }
        }
        let rows = groups
            .into_iter()
            .filter_map(|(action, filter, ids)| {
                let count = s
                    .ready
                    .iter()
                    .filter_map(|id| s.jobs.get(id))
                    .filter(|j| {
                        j.state == JobState::Ready
                            && j.action == *action
                            && fits_filter(&j.inargs, filter.as_ref())
                    })
                    .count();
                (count > 0).then(|| PollRow {
                    action: action.clone(),
                    workers: filter.as_ref().map(|_| ids),
                    count,
                })
            })
            .collect();
        done(Ok(rows))
    }

    fn disconnect(&self, worker_id: WorkerId) -> BackendFuture<'_, bool> {
        let (found, held) = {
            let mut s = self.state.lock();
            let s = &mut *s;
            let Some(w) = s.workers.get_mut(&worker_id) else {
                return done(Ok(false));
            };
            let found = w.active;
            w.active = false;
            w.actions.clear();
            if s.by_name.get(&w.name) == Some(&worker_id) {
                s.by_name.remove(&w.name);
            }
            s.disconnects.push(w.name.clone());
            let held: Vec<(JobId, bool)> = s
                .jobs
                .iter()
                .filter(|(_, j)| {
                    matches!(&j.state, JobState::Working { worker, .. } if *worker == worker_id)
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
                // not retryable: back to ready, for another worker
                {
                    let mut s = self.state.lock();
                    s.ready.insert(id);
                    if let Some(j) = s.jobs.get_mut(&id) {
                        j.state = JobState::Ready;
                    }
                }
                self.make_ready(id);
            }
        }
        done(Ok(found))
    }

    fn subscribe(&self) -> UnboundedReceiver<Event> {
        let (tx, rx) = unbounded_channel();
        self.subs.lock().push(tx);
        rx
    }
}
