//! `--backend stub`: a pass-through in-memory backend, to measure the API server and the
//! client library without the JCL engine.
//!
//! Every workflow is one task of a single action: the job's inargs become the task's inargs
//! and the task's outargs become the job's outargs. Nothing else (no types, no locks, no
//! retries); it exists only to tell the server+protocol cost apart from the engine cost.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use jobcenter_engine::backend::{
    Backend, BackendError, BackendFuture, CreateJob, Event, JobId, JobStatus, PollRow, TaskClaim,
    WorkerId,
};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

#[derive(Debug)]
enum State {
    Ready,
    Working(String),
    Done(Arc<Value>),
}

#[derive(Debug)]
struct Job {
    inargs: Value,
    state: State,
}

#[derive(Default)]
struct Inner {
    next_job: JobId,
    next_worker: WorkerId,
    next_cookie: u64,
    jobs: HashMap<JobId, Job>,
    ready: BTreeSet<JobId>,
    cookies: HashMap<String, JobId>,
    /// workername -> (id, announced actions)
    workers: HashMap<String, (WorkerId, BTreeSet<String>)>,
}

/// The pass-through backend: every workflow runs one task of `action`.
pub struct StubBackend {
    action: String,
    inner: Mutex<Inner>,
    subs: Mutex<Vec<UnboundedSender<Event>>>,
}

impl StubBackend {
    /// A backend whose every workflow is one task of `action`.
    pub fn new(action: &str) -> Self {
        StubBackend {
            action: action.to_string(),
            inner: Mutex::new(Inner::default()),
            subs: Mutex::new(Vec::new()),
        }
    }

    fn emit(&self, e: Event) {
        self.subs.lock().retain(|s| s.send(e.clone()).is_ok());
    }
}

fn ready<'a, T: Send + 'a>(v: Result<T, BackendError>) -> BackendFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl Backend for StubBackend {
    fn create_job(&self, req: CreateJob) -> BackendFuture<'_, JobId> {
        let id = {
            let mut s = self.inner.lock();
            s.next_job += 1;
            let id = s.next_job;
            s.jobs.insert(
                id,
                Job {
                    inargs: Value::Object(req.inargs),
                    state: State::Ready,
                },
            );
            s.ready.insert(id);
            id
        };
        self.emit(Event::ActionReady {
            action: self.action.clone(),
            job_id: id,
            workers: None,
        });
        ready(Ok(id))
    }

    fn get_job_status(&self, job_id: JobId) -> BackendFuture<'_, JobStatus> {
        let s = self.inner.lock();
        let st = match s.jobs.get(&job_id) {
            None => JobStatus::Unknown,
            Some(Job {
                state: State::Done(v),
                ..
            }) => JobStatus::Finished(Value::clone(v)),
            Some(_) => JobStatus::Running,
        };
        ready(Ok(st))
    }

    fn find_jobs(&self, filter: Value) -> BackendFuture<'_, Vec<JobId>> {
        let Value::Object(f) = filter else {
            return ready(Err(BackendError::new("filter must be an object")));
        };
        let s = self.inner.lock();
        let mut ids: Vec<JobId> = s
            .jobs
            .iter()
            .filter(|(_, j)| !matches!(j.state, State::Done(_)))
            .filter(|(_, j)| f.iter().all(|(k, v)| j.inargs.get(k) == Some(v)))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ready(Ok(ids))
    }

    fn check_if_lock_exists(
        &self,
        _locktype: String,
        _lockvalue: String,
    ) -> BackendFuture<'_, Option<bool>> {
        ready(Ok(None))
    }

    fn announce(
        &self,
        workername: String,
        actionname: String,
        _who: String,
        _filter: Option<Value>,
    ) -> BackendFuture<'_, WorkerId> {
        if actionname != self.action {
            return ready(Err(BackendError::new(format!(
                "no action named {actionname}"
            ))));
        }
        let mut s = self.inner.lock();
        let next = s.next_worker + 1;
        let entry = s
            .workers
            .entry(workername)
            .or_insert_with(|| (next, BTreeSet::new()));
        entry.1.insert(actionname);
        let id = entry.0;
        if id == next {
            s.next_worker = next;
        }
        ready(Ok(id))
    }

    fn withdraw(&self, workername: String, actionname: String) -> BackendFuture<'_, bool> {
        let mut s = self.inner.lock();
        let found = s
            .workers
            .get_mut(&workername)
            .is_some_and(|w| w.1.remove(&actionname));
        ready(Ok(found))
    }

    fn get_task(
        &self,
        _workername: String,
        actionname: String,
        job_id: Option<JobId>,
    ) -> BackendFuture<'_, Option<TaskClaim>> {
        if actionname != self.action {
            return ready(Ok(None));
        }
        let mut s = self.inner.lock();
        let id = match job_id {
            Some(id) if s.ready.contains(&id) => Some(id),
            Some(_) => None,
            None => s.ready.iter().next().copied(),
        };
        let Some(id) = id else {
            return ready(Ok(None));
        };
        s.ready.remove(&id);
        s.next_cookie += 1;
        let cookie = format!("stub-{id}-{}", s.next_cookie);
        s.cookies.insert(cookie.clone(), id);
        let claim = s.jobs.get_mut(&id).map(|j| {
            j.state = State::Working(cookie.clone());
            TaskClaim {
                job_id: id,
                cookie,
                inargs: j.inargs.clone(),
                env: json!({}),
            }
        });
        ready(Ok(claim))
    }

    fn task_done(&self, cookie: String, outargs: Value) -> BackendFuture<'_, ()> {
        let finished = {
            let mut s = self.inner.lock();
            match s.cookies.remove(&cookie) {
                Some(id) => match s.jobs.get_mut(&id) {
                    Some(j) if matches!(&j.state, State::Working(c) if *c == cookie) => {
                        j.state = State::Done(Arc::new(outargs.clone()));
                        j.inargs = Value::Null;
                        Some((id, outargs))
                    }
                    _ => None,
                },
                None => None,
            }
        };
        if let Some((job_id, outargs)) = finished {
            self.emit(Event::JobFinished {
                job_id,
                outargs: Some(outargs),
            });
        }
        ready(Ok(()))
    }

    fn ping(&self, worker_id: WorkerId) -> BackendFuture<'_, bool> {
        let s = self.inner.lock();
        ready(Ok(s.workers.values().any(|w| w.0 == worker_id)))
    }

    fn poll_tasks(&self, worker_ids: Vec<WorkerId>) -> BackendFuture<'_, Vec<PollRow>> {
        let s = self.inner.lock();
        let serves = s
            .workers
            .values()
            .any(|w| worker_ids.contains(&w.0) && w.1.contains(&self.action));
        let rows = if serves && !s.ready.is_empty() {
            vec![PollRow {
                action: self.action.clone(),
                workers: None,
                count: s.ready.len(),
            }]
        } else {
            Vec::new()
        };
        ready(Ok(rows))
    }

    fn disconnect(&self, worker_id: WorkerId) -> BackendFuture<'_, bool> {
        let mut s = self.inner.lock();
        // Tasks it held stay claimed: the bench never disconnects a busy worker.
        let before = s.workers.len();
        s.workers.retain(|_, w| w.0 != worker_id);
        ready(Ok(s.workers.len() < before))
    }

    fn subscribe(&self) -> UnboundedReceiver<Event> {
        let (tx, rx) = unbounded_channel();
        self.subs.lock().push(tx);
        rx
    }
}
