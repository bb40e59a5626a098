//! A blocking facade over the async client and worker, with its own internal runtime.
//!
//! For programs without an async runtime. Do not call these from inside a tokio runtime
//! (tokio refuses to block a runtime thread; that would panic), and do not move these
//! handles into action handlers (they run on the internal runtime): use a
//! [`StopHandle`] or the async [`crate::Client`] (via `as_async()`) there instead.
//!
//! ```no_run
//! use jobcenter::blocking::Client;
//! use jobcenter::ClientConfig;
//! use serde_json::json;
//! let client = Client::connect(ClientConfig::new("theCustomer", "wantsThings"))?;
//! let res = client.call("calladd", json!({"input": 12}))?;
//! println!("{:?} {}", res.job_id, res.outargs);
//! # Ok::<(), jobcenter::ClientError>(())
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::runtime::Runtime;

use crate::{
    Action, ClientConfig, ClientError, Filter, JobResult, JobStatus, Reconnect, StopHandle,
    WorkOutcome,
};

fn runtime() -> Result<Arc<Runtime>, ClientError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("jobcenter-client")
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(ClientError::Runtime)
}

/// The blocking client: every method of [`crate::Client`], waiting for the answer.
#[derive(Debug, Clone)]
pub struct Client {
    rt: Arc<Runtime>,
    inner: crate::Client,
}

/// A submitted job (blocking); see [`crate::JobHandle`].
#[derive(Debug)]
pub struct JobHandle {
    rt: Arc<Runtime>,
    inner: crate::JobHandle,
}

impl JobHandle {
    /// The job id, or `None` when the server refused the job.
    pub fn job_id(&self) -> Option<i64> {
        self.inner.job_id()
    }

    /// Wait for the job's result.
    pub fn outcome(self) -> Result<JobResult, ClientError> {
        self.rt.block_on(self.inner.outcome())
    }
}

/// A completion of a running job (blocking); see [`crate::JobCompletion`].
#[derive(Debug)]
pub struct JobCompletion {
    rt: Arc<Runtime>,
    inner: crate::JobCompletion,
}

impl JobCompletion {
    /// Wait for the job's final outargs.
    pub fn wait(self) -> Result<Value, ClientError> {
        self.rt.block_on(self.inner.wait())
    }
}

impl Client {
    /// Connect and authenticate (see [`crate::Client::connect`]).
    pub fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ClientError::Invalid(
                "the blocking client cannot run inside an async runtime; use jobcenter::Client"
                    .to_string(),
            ));
        }
        let rt = runtime()?;
        let inner = rt.block_on(crate::Client::connect(cfg))?;
        Ok(Client { rt, inner })
    }

    fn run<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The async client behind this one.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// Create a job and wait for its result.
    pub fn call(&self, wfname: &str, inargs: Value) -> Result<JobResult, ClientError> {
        self.run(self.inner.call(wfname, inargs))
    }

    /// Typed variant of [`Client::call`].
    pub fn call_typed<I: Serialize, O: DeserializeOwned>(
        &self,
        wfname: &str,
        inargs: &I,
    ) -> Result<O, ClientError> {
        self.run(self.inner.call_typed(wfname, inargs))
    }

    /// Create a job with all options and return once the server accepted (or refused) it.
    pub fn submit(&self, req: JobOptions) -> Result<JobHandle, ClientError> {
        let mut r = self.inner.job(&req.wfname).inargs(req.inargs);
        if let Some(v) = req.vtag {
            r = r.vtag(v);
        }
        if let Some(t) = req.timeout {
            r = r.timeout(t);
        }
        if let Some(c) = req.clenv {
            r = r.clenv(c);
        }
        if let Some(a) = req.reqauth {
            r = r.reqauth(a);
        }
        let inner = self.run(r.submit())?;
        Ok(JobHandle {
            rt: self.rt.clone(),
            inner,
        })
    }

    /// See [`crate::Client::get_job_status`].
    pub fn get_job_status(&self, job_id: i64) -> Result<JobStatus, ClientError> {
        self.run(self.inner.get_job_status(job_id))
    }

    /// See [`crate::Client::get_job_status_notify`].
    pub fn get_job_status_notify(
        &self,
        job_id: i64,
    ) -> Result<(JobStatus, Option<JobCompletion>), ClientError> {
        let (s, c) = self.run(self.inner.get_job_status_notify(job_id))?;
        Ok((
            s,
            c.map(|inner| JobCompletion {
                rt: self.rt.clone(),
                inner,
            }),
        ))
    }

    /// See [`crate::Client::find_jobs`].
    pub fn find_jobs(&self, filter: impl Into<Filter>) -> Result<Vec<i64>, ClientError> {
        self.run(self.inner.find_jobs(filter))
    }

    /// See [`crate::Client::check_if_lock_exists`].
    pub fn check_if_lock_exists(
        &self,
        locktype: &str,
        lockvalue: &str,
    ) -> Result<Option<bool>, ClientError> {
        self.run(self.inner.check_if_lock_exists(locktype, lockvalue))
    }

    /// See [`crate::Client::get_api_status`].
    pub fn get_api_status(&self, what: &str) -> Result<Value, ClientError> {
        self.run(self.inner.get_api_status(what))
    }

    /// See [`crate::Client::ping`].
    pub fn ping(&self) -> bool {
        self.run(self.inner.ping())
    }

    /// See [`crate::Client::create_slotgroup`].
    pub fn create_slotgroup(&self, name: &str, slots: Option<u32>) -> Result<(), ClientError> {
        self.run(self.inner.create_slotgroup(name, slots))
    }

    /// See [`crate::Client::is_connected`].
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Close the connection.
    pub fn close(&self) {
        self.inner.close();
    }

    /// This client as a blocking [`Worker`] (same connection).
    pub fn worker(&self) -> Worker {
        Worker {
            rt: self.rt.clone(),
            inner: self.inner.worker(),
        }
    }
}

/// All `create_job` options for [`Client::submit`].
///
/// ```no_run
/// use jobcenter::blocking::{Client, JobOptions};
/// use jobcenter::ClientConfig;
/// use serde_json::json;
/// use std::time::Duration;
/// let client = Client::connect(ClientConfig::new("theCustomer", "wantsThings"))?;
/// let mut opts = JobOptions::new("calladd", json!({"input": 12}));
/// opts.vtag = Some("beta".into());
/// opts.timeout = Some(Duration::from_secs(60));
/// let job = client.submit(opts)?;
/// let id = job.job_id();
/// println!("job {id:?} gave {}", job.outcome()?.outargs);
/// # Ok::<(), jobcenter::ClientError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Workflow name.
    pub wfname: String,
    /// Input arguments (an object).
    pub inargs: Value,
    /// Version tag(s).
    pub vtag: Option<String>,
    /// Server-side wait timeout (default 5 × client timeout).
    pub timeout: Option<Duration>,
    /// Client environment object.
    pub clenv: Option<Value>,
    /// Per-request authentication data.
    pub reqauth: Option<Value>,
}

impl JobOptions {
    /// Options for `wfname` with `inargs`, everything else default.
    pub fn new(wfname: impl Into<String>, inargs: Value) -> Self {
        JobOptions {
            wfname: wfname.into(),
            inargs,
            ..JobOptions::default()
        }
    }
}

/// The blocking worker; see [`crate::Worker`]. Handlers run on the internal runtime.
///
/// ```no_run
/// use jobcenter::blocking::Worker;
/// use jobcenter::{Action, ClientConfig, Task};
/// use serde_json::json;
/// let worker = Worker::connect(ClientConfig::new("theWorker", "doesThings"))?;
/// worker.announce(Action::new("add").sync(|t: Task| {
///     let n = t.inargs["counter"].as_i64().ok_or("no counter")?;
///     Ok::<_, String>(json!({"counter": n + 1}))
/// }))?;
/// std::process::exit(worker.work().exit_code());
/// # #[allow(unreachable_code)] Ok::<(), jobcenter::ClientError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Worker {
    rt: Arc<Runtime>,
    inner: crate::Worker,
}

impl Worker {
    /// Connect and authenticate.
    pub fn connect(cfg: ClientConfig) -> Result<Worker, ClientError> {
        Ok(Client::connect(cfg)?.worker())
    }

    /// The async worker behind this one.
    pub fn as_async(&self) -> &crate::Worker {
        &self.inner
    }

    /// See [`crate::Worker::announce`].
    pub fn announce(&self, action: Action) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.announce(action))
    }

    /// See [`crate::Worker::withdraw`].
    pub fn withdraw(&self, name: &str) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.withdraw(name))
    }

    /// See [`crate::Client::create_slotgroup`].
    pub fn create_slotgroup(&self, name: &str, slots: Option<u32>) -> Result<(), ClientError> {
        self.rt
            .block_on(self.inner.client().create_slotgroup(name, slots))
    }

    /// See [`crate::Worker::set_reconnect`].
    pub fn set_reconnect(&self, r: Option<Reconnect>) {
        self.inner.set_reconnect(r);
    }

    /// See [`crate::Worker::work`]: blocks until stopped; [`WorkOutcome::exit_code`] gives
    /// the Perl client's 0 / 91 / 92 / stop code.
    pub fn work(&self) -> WorkOutcome {
        self.rt.block_on(self.inner.work())
    }

    /// See [`crate::Worker::stop`].
    pub fn stop(&self, code: i32) {
        self.inner.stop(code);
    }

    /// See [`crate::Worker::stop_handle`].
    pub fn stop_handle(&self) -> StopHandle {
        self.inner.stop_handle()
    }

    /// See [`crate::Worker::shutdown`].
    pub fn shutdown(&self, deadline: Duration) -> usize {
        self.rt.block_on(self.inner.shutdown(deadline))
    }

    /// See [`crate::Worker::in_flight`].
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    /// Close the connection.
    pub fn close(&self) {
        self.inner.client().close();
    }
}
