//! What the SQL backends share: record encoding, the derived index columns of a job row,
//! per-transaction state (first failure, job cache, earliest wake-up) and paged id scans.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use serde::de::DeserializeOwned;

use crate::model::{ArchivedJob, JobId, JobRecord, Millis, WorkerId};
use crate::StoreError;

/// Decode a stored JSON record. No recursion limit: whatever the server accepted (the wire
/// parser has its own limit) must be readable again, even inside the record's own nesting.
pub(crate) fn decode<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let v = T::deserialize(&mut de).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    de.end().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(v)
}

/// Encode a record as JSON text.
pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Milliseconds as a SQL integer.
pub(crate) fn ms(v: Millis) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A job as a row: the record and the index columns derived from it.
pub(crate) struct JobRow<'j> {
    pub(crate) id: JobId,
    pub(crate) ready_action: Option<&'j str>,
    pub(crate) cookie: Option<&'j str>,
    pub(crate) claim_worker: Option<WorkerId>,
    pub(crate) wake_at: Option<i64>,
    pub(crate) subscribed: bool,
    pub(crate) lock_type: Option<&'j str>,
    pub(crate) lock_value: Option<&'j str>,
    /// The state's name (schema version 2): counted per state by an index.
    pub(crate) state: &'static str,
    /// The parent job (schema version 2): children found by an index.
    pub(crate) parent: Option<JobId>,
    pub(crate) record: String,
}

impl<'j> JobRow<'j> {
    /// The row of `job`.
    pub(crate) fn of(job: &'j JobRecord) -> Result<Self, StoreError> {
        let lock = job.waiting_lock();
        Ok(JobRow {
            id: job.id,
            ready_action: job.ready_action(),
            cookie: job.cookie(),
            claim_worker: job
                .cookie()
                .and(job.task_state.claim.as_ref())
                .map(|c| c.worker_id),
            wake_at: job.wake_at.map(ms),
            subscribed: !job.subscriptions.is_empty(),
            lock_type: lock.map(|l| l.locktype.as_str()),
            lock_value: lock.map(|l| l.lockvalue.as_str()),
            state: job.state.as_str(),
            parent: job.parent.as_ref().map(|p| p.job_id),
            record: encode(job)?,
        })
    }
}

/// The state of one SQL transaction besides its connection.
#[derive(Default)]
pub(crate) struct TxnState {
    /// The first backend failure; set, the transaction is rolled back.
    failed: RefCell<Option<StoreError>>,
    /// Jobs read (with their row lock, where the backend locks) or written in this
    /// transaction (`None`: known absent): reading one again costs no query and no JSON
    /// decoding. Only this transaction can change them meanwhile.
    jobs: RefCell<HashMap<JobId, Option<JobRecord>>>,
    /// The earliest `wake_at` written (`Txn::wake_hint`).
    wake: Cell<Option<Millis>>,
}

impl TxnState {
    /// Remember the first failure.
    pub(crate) fn fail(&self, e: StoreError) {
        let mut f = self.failed.borrow_mut();
        if f.is_none() {
            *f = Some(e);
        }
    }

    /// The value, or (after remembering the failure) the type's default.
    pub(crate) fn ok<T: Default>(&self, r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| {
            self.fail(e);
            T::default()
        })
    }

    /// An archive row (`id, workflow, version, finished_at, out_args`) as an [`ArchivedJob`];
    /// `None` (the transaction poisoned) when its result does not decode.
    pub(crate) fn archived_job(
        &self,
        id: JobId,
        workflow: String,
        version: i64,
        finished_at: i64,
        out: String,
    ) -> Option<ArchivedJob> {
        Some(ArchivedJob {
            id,
            workflow,
            version: u32::try_from(version.max(0)).unwrap_or(u32::MAX),
            out_args: self.record(Some(out))?,
            finished_at: finished_at.max(0) as Millis,
        })
    }

    /// Decode a record read from a row (a failure poisons the transaction).
    pub(crate) fn record<T: DeserializeOwned>(&self, text: Option<String>) -> Option<T> {
        let text = text?;
        match decode(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// Decode many records.
    pub(crate) fn records<T: DeserializeOwned>(&self, texts: Vec<String>) -> Vec<T> {
        texts
            .into_iter()
            .filter_map(|t| self.record(Some(t)))
            .collect()
    }

    /// The cached job, if this transaction read or wrote it.
    pub(crate) fn cached(&self, id: JobId) -> Option<Option<JobRecord>> {
        self.jobs.borrow().get(&id).cloned()
    }

    /// A job this transaction read or wrote whose newest version satisfies `f`.
    pub(crate) fn find_cached(&self, f: impl Fn(&JobRecord) -> bool) -> Option<JobRecord> {
        self.jobs
            .borrow()
            .values()
            .flatten()
            .find(|j| f(j))
            .cloned()
    }

    /// Remember what this transaction now knows of a job.
    pub(crate) fn remember(&self, id: JobId, job: Option<JobRecord>) {
        self.jobs.borrow_mut().insert(id, job);
    }

    /// A job was written: cache it and note its wake-up.
    pub(crate) fn written(&self, job: JobRecord) {
        if let Some(t) = job.wake_at {
            self.wake.set(Some(self.wake.get().map_or(t, |w| w.min(t))));
        }
        self.remember(job.id, Some(job));
    }

    /// The earliest `wake_at` written.
    pub(crate) fn wake_hint(&self) -> Option<Millis> {
        self.wake.get()
    }

    /// The first failure, ending the transaction's state.
    pub(crate) fn into_failure(self) -> Option<StoreError> {
        self.failed.into_inner()
    }
}

/// Ids in ascending order, fetched a page at a time (`fetch(after)` returns the next page),
/// so that a `find` over them stops early.
pub(crate) struct Paged<F> {
    fetch: F,
    page_size: usize,
    after: JobId,
    page: VecDeque<JobId>,
    done: bool,
}

impl<F: FnMut(JobId) -> Vec<JobId>> Paged<F> {
    /// Pages of `page_size` ids from `fetch`.
    pub(crate) fn new(page_size: usize, fetch: F) -> Self {
        Paged {
            fetch,
            page_size,
            after: 0,
            page: VecDeque::new(),
            done: false,
        }
    }
}

impl<F: FnMut(JobId) -> Vec<JobId>> Iterator for Paged<F> {
    type Item = JobId;

    fn next(&mut self) -> Option<JobId> {
        if self.page.is_empty() && !self.done {
            let ids = (self.fetch)(self.after);
            self.done = ids.len() < self.page_size;
            self.page.extend(ids);
        }
        let id = self.page.pop_front()?;
        self.after = id;
        Some(id)
    }
}
