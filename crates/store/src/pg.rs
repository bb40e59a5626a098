//! The PostgreSQL backend: several server processes ("nodes") share one database.
//!
//! Same model as [`crate::SqliteStore`]: one row per record with derived index columns, a
//! batch transaction per [`Store::sync`], a `SAVEPOINT` per [`Store::transact`]. What differs
//! because other nodes work on the same rows at the same time:
//!
//! * Every read of a job by id locks its row (`FOR UPDATE`) until the batch commits, so two
//!   nodes never both act on the same state of a job: the second waits and then reads what the
//!   first committed (a claimed task is no longer `ready`, a used cookie is gone).
//! * Reading a lock takes a transaction-level advisory lock on its (type, value), so two nodes
//!   cannot both see a lock as free and both take it.
//! * Ids come from sequences (never handed out twice, even across nodes).
//! * Each node has a random id and a heartbeat row in `jc_nodes`, written every second on a
//!   connection of its own outside the batch ([`Store::beat`]); its workers' rows carry the
//!   node id. A node whose heartbeat is older than the lease is dead: any other node treats its
//!   workers as disconnected ([`Txn::orphaned_workers`]).
//! * The records of the workers this node registered are kept in memory (`Workers`), so
//!   the worker look-up of every `get_task` costs no query; a change made by another node
//!   is noticed at the next heartbeat.
//! * Events for other nodes are published with `NOTIFY` inside the batch transaction (so they
//!   are delivered at commit, never for a batch that failed); [`PgStore::listen`] receives the
//!   other nodes' events.
//!
//! The schema is versioned in `jc_schema` and created or migrated at open (under an advisory
//! lock, so nodes starting together do not race); a database with a newer schema is refused.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use parking_lot::Mutex;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSqlOwned, ToSql};
use postgres::{Client, NoTls, Statement};

use crate::model::{
    ArchivedJob, JobId, JobRecord, JobState, LockRecord, Millis, WorkerId, WorkerRecord,
};
use crate::sql::{encode, ms, JobRow, Paged, TxnState};
use crate::{Store, StoreError, Txn};

/// The schema version this build writes and reads (`jc_schema.version`).
pub const PG_SCHEMA_VERSION: i32 = 2;

/// The `LISTEN`/`NOTIFY` channel of the nodes.
pub const CHANNEL: &str = "jobcenter";

/// Advisory lock key held while the schema is created or migrated ("JCsm").
const MIGRATION_LOCK: i64 = 0x4A43_736D;

const SCHEMA_V1: &str = "
CREATE SEQUENCE jc_job_ids;
CREATE SEQUENCE jc_worker_ids;
CREATE SEQUENCE jc_event_ids;
CREATE TABLE jc_jobs (
    id BIGINT PRIMARY KEY,
    ready_action TEXT,
    cookie TEXT,
    claim_worker BIGINT,
    wake_at BIGINT,
    subscribed BOOLEAN NOT NULL,
    lock_type TEXT,
    lock_value TEXT,
    record TEXT NOT NULL
);
CREATE INDEX jc_jobs_ready ON jc_jobs (ready_action, id) WHERE ready_action IS NOT NULL;
CREATE INDEX jc_jobs_cookie ON jc_jobs (cookie) WHERE cookie IS NOT NULL;
CREATE INDEX jc_jobs_claim ON jc_jobs (claim_worker, id) WHERE claim_worker IS NOT NULL;
CREATE INDEX jc_jobs_wake ON jc_jobs (wake_at, id) WHERE wake_at IS NOT NULL;
CREATE INDEX jc_jobs_subscribed ON jc_jobs (id) WHERE subscribed;
CREATE INDEX jc_jobs_lockwait ON jc_jobs (lock_type, lock_value, id) WHERE lock_type IS NOT NULL;
CREATE TABLE jc_archive (
    id BIGINT PRIMARY KEY,
    workflow TEXT NOT NULL,
    version INTEGER NOT NULL,
    finished_at BIGINT NOT NULL,
    out_args TEXT NOT NULL
);
CREATE INDEX jc_archive_time ON jc_archive (finished_at, id);
CREATE TABLE jc_locks (
    locktype TEXT NOT NULL,
    lockvalue TEXT NOT NULL,
    holder BIGINT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (locktype, lockvalue)
);
CREATE INDEX jc_locks_holder ON jc_locks (holder);
CREATE TABLE jc_workers (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    node TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX jc_workers_name ON jc_workers (name, id);
CREATE TABLE jc_nodes (node TEXT PRIMARY KEY, heartbeat BIGINT NOT NULL);
";

/// From version 1 to 2: the actions an administrator disabled (`disable`); the job's state
/// and parent as indexed columns (exact counts per state, children by index).
const MIGRATE_V2: &str = "
CREATE TABLE jc_disabled_actions (action TEXT PRIMARY KEY);
ALTER TABLE jc_jobs ADD COLUMN state TEXT;
ALTER TABLE jc_jobs ADD COLUMN parent BIGINT;
UPDATE jc_jobs SET state = record::jsonb ->> 'state',
    parent = (record::jsonb -> 'parent' ->> 'job_id')::bigint;
CREATE INDEX jc_jobs_state ON jc_jobs (state, id);
CREATE INDEX jc_jobs_parent ON jc_jobs (parent, id) WHERE parent IS NOT NULL;
";

fn pg_err(e: postgres::Error) -> StoreError {
    StoreError::Backend(match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    })
}

/// Why a PostgreSQL store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {problem}")]
pub struct PgOpenError {
    /// The connection URL, without its password.
    pub url: String,
    /// What is wrong.
    pub problem: String,
}

/// The URL without a password (`postgres://user:secret@host` → `postgres://user@host`).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    stmts: HashMap<&'static str, Statement>,
}

impl Conn {
    fn stmt(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(pg_err)?;
        self.stmts.insert(sql, s.clone());
        Ok(s)
    }
}

struct Inner {
    conn: Conn,
    in_batch: bool,
    /// The last transaction succeeded and its savepoint is still open: it is released
    /// together with the next `SAVEPOINT` (one round trip instead of two), or by `COMMIT`.
    release_pending: bool,
    lost: Option<StoreError>,
    /// Payloads to `NOTIFY` in the open batch.
    outbox: Vec<String>,
    /// Job ids fetched from `jc_job_ids` and not used yet, the next one last (see
    /// [`JOB_ID_BLOCK`]).
    job_ids: Vec<JobId>,
    /// Jobs written by the open batch's finished transactions and not yet sent (see
    /// [`Dirty`]).
    dirty: Dirty,
    /// This node's own worker records (see [`Workers`]).
    workers: Workers,
}

/// Write-behind of job rows: `put_job` keeps the newest version of each job of the open batch
/// here, and all of them go to PostgreSQL in one multi-row upsert ([`write_jobs`]) at
/// `sync`, or earlier when a query over the job table's indexes must see them. Reads of a job
/// by id are answered from here first (the batch holds the row lock of every job it read or
/// created, so no other node changes them meanwhile); cookie look-ups check here first too.
/// A job that changes several times in one batch (created, claimed, done) is sent once, and
/// a transaction that only writes jobs needs no savepoint: its writes are dropped, not rolled
/// back, when it fails.
type Dirty = BTreeMap<JobId, JobRecord>;

/// The records of this node's own workers, as its `put_worker`s wrote them, so that
/// `active_worker(name)` and `worker(id)` (once per `get_task`, `ping`, `disconnect`) cost no
/// query when the worker is known. What may be in here:
///
/// * Only what committed, or what the open batch's earlier transactions wrote (their rows
///   are in the batch's SQL transaction, so this batch's reads would see them too): a
///   transaction's writes are staged ([`WorkerChanges`]) and join the cache only when it
///   succeeds; a lost batch, or a `COMMIT` that fails, empties the cache.
/// * Only rows whose `node` is this node: `put_worker` reads the row's node back from its
///   upsert (`RETURNING node`); a worker another node registered (and this node updates, say
///   because a worker of that name announced here too) is always read from the table.
/// * A worker this node stops (its row is deleted) leaves the cache.
/// * Other nodes change this node's rows only when they think it is dead (they delete its
///   workers, `orphaned_workers`), or when a worker of the same name announces through them.
///   Each heartbeat reads this node's rows and empties the cache when a worker it holds is
///   missing there or differs (see docs/design/storage.md, "PostgreSQL, several nodes").
#[derive(Debug, Default)]
struct Workers {
    by_id: HashMap<WorkerId, WorkerRecord>,
    /// The ids of each name (normally one).
    by_name: HashMap<String, BTreeSet<WorkerId>>,
}

impl Workers {
    fn insert(&mut self, worker: WorkerRecord) {
        self.remove(worker.id);
        self.by_name
            .entry(worker.name.clone())
            .or_default()
            .insert(worker.id);
        self.by_id.insert(worker.id, worker);
    }

    fn remove(&mut self, id: WorkerId) {
        if let Some(old) = self.by_id.remove(&id) {
            if let Some(ids) = self.by_name.get_mut(&old.name) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_name.remove(&old.name);
                }
            }
        }
    }

    fn clear(&mut self) {
        self.by_id.clear();
        self.by_name.clear();
    }

    /// Apply a successful transaction's changes.
    fn apply(&mut self, changes: WorkerChanges) {
        for (id, _, record) in changes {
            match record {
                Some(w) => self.insert(w),
                None => self.remove(id),
            }
        }
    }
}

/// One transaction's writes of worker rows, in order: `(id, name, Some(record))` for a row
/// of this node it wrote, `(id, name, None)` for a row it deleted or that belongs to another
/// node (not to be answered from memory).
type WorkerChanges = Vec<(WorkerId, String, Option<WorkerRecord>)>;

/// The one statement that writes many job rows (the columns as arrays, one element per job).
const UPSERT_JOBS: &str = "INSERT INTO jc_jobs (id, ready_action, cookie, claim_worker, wake_at, \
        subscribed, lock_type, lock_value, state, parent, record) \
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], \
        $6::boolean[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[]) \
     ON CONFLICT (id) DO UPDATE SET ready_action = excluded.ready_action, \
        cookie = excluded.cookie, claim_worker = excluded.claim_worker, \
        wake_at = excluded.wake_at, subscribed = excluded.subscribed, \
        lock_type = excluded.lock_type, lock_value = excluded.lock_value, \
        state = excluded.state, parent = excluded.parent, record = excluded.record";

/// Send the jobs of `rows` (one statement, one round trip).
fn write_jobs(conn: &mut Conn, rows: &Dirty) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut id = Vec::with_capacity(n);
    let mut ready_action = Vec::with_capacity(n);
    let mut cookie = Vec::with_capacity(n);
    let mut claim_worker = Vec::with_capacity(n);
    let mut wake_at = Vec::with_capacity(n);
    let mut subscribed = Vec::with_capacity(n);
    let mut lock_type = Vec::with_capacity(n);
    let mut lock_value = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    let mut parent = Vec::with_capacity(n);
    let mut record = Vec::with_capacity(n);
    for job in rows.values() {
        let row = JobRow::of(job)?;
        id.push(row.id);
        ready_action.push(row.ready_action);
        cookie.push(row.cookie);
        claim_worker.push(row.claim_worker);
        wake_at.push(row.wake_at);
        subscribed.push(row.subscribed);
        lock_type.push(row.lock_type);
        lock_value.push(row.lock_value);
        state.push(row.state);
        parent.push(row.parent);
        record.push(row.record);
    }
    let st = conn.stmt(UPSERT_JOBS)?;
    conn.client
        .execute(
            &st,
            &[
                &id,
                &ready_action,
                &cookie,
                &claim_worker,
                &wake_at,
                &subscribed,
                &lock_type,
                &lock_value,
                &state,
                &parent,
                &record,
            ],
        )
        .map(|_| ())
        .map_err(pg_err)
}

impl Inner {
    /// Send the batch's buffered job rows. A failure loses the batch (its transactions
    /// have finished; their rows cannot be taken back one by one).
    fn flush_dirty(&mut self) -> Result<(), StoreError> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.dirty);
        match write_jobs(&mut self.conn, &rows) {
            Ok(()) => Ok(()),
            Err(e) => Err(lose_batch(self, e)),
        }
    }
}

/// The shared PostgreSQL store of one node (see the module documentation).
pub struct PgStore {
    /// `None` only while dropping (the connection is closed on a thread of its own: the
    /// `postgres` client runs a runtime of its own, which must not be dropped inside tokio).
    inner: Mutex<Option<Inner>>,
    /// The connection [`Store::beat`] writes this node's `jc_nodes` row with (autocommit,
    /// outside the batch); connected when first needed and again after an error.
    beat: Mutex<Option<Client>>,
    url: String,
    node: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &redact(&self.url))
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connect, create or check the schema, and join as a new node with a random id.
    pub fn open(url: &str) -> Result<Self, PgOpenError> {
        Self::open_as(url, None)
    }

    /// Like [`PgStore::open`], as the node `node` (a random id if `None`). A node that
    /// restarts under its name releases its previous run's workers at once instead of after
    /// the lease; two live nodes must never share a name.
    ///
    /// Blocks; callable from async code too (the connection is made on a thread of its own,
    /// since the `postgres` client must not start its runtime inside tokio's).
    pub fn open_as(url: &str, node: Option<&str>) -> Result<Self, PgOpenError> {
        let err = |problem: String| PgOpenError {
            url: redact(url),
            problem,
        };
        let owned = url.to_string();
        let client = std::thread::spawn(move || -> Result<Client, String> {
            let mut client = Client::connect(&owned, NoTls).map_err(|e| e.to_string())?;
            migrate(&mut client)?;
            Ok(client)
        })
        .join()
        .map_err(|_| err("the connecting thread panicked".into()))?
        .map_err(err)?;
        let node = node.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
        Ok(PgStore {
            inner: Mutex::new(Some(Inner {
                conn: Conn {
                    client,
                    stmts: HashMap::new(),
                },
                in_batch: false,
                release_pending: false,
                lost: None,
                outbox: Vec::new(),
                job_ids: Vec::new(),
                dirty: Dirty::new(),
                workers: Workers::default(),
            })),
            beat: Mutex::new(None),
            url: url.to_string(),
            node,
        })
    }

    /// The connection URL without its password.
    pub fn describe_url(&self) -> String {
        redact(&self.url)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Start a thread with a connection of its own that listens for what the other nodes
    /// publish and hands each payload to `on` (this node's own payloads are filtered out).
    /// The thread ends when `on` returns `false` or the connection is lost.
    fn listen_thread(&self, on: Box<dyn FnMut(&str) -> bool + Send>) -> Result<(), StoreError> {
        let url = self.url.clone();
        let own = format!("{}\n", self.node);
        let mut on = on;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("jobcenter-listen".into())
            .spawn(move || {
                // Connected on this thread: the client's runtime must not start inside tokio.
                let connected = Client::connect(&url, NoTls).and_then(|mut c| {
                    c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
                    Ok(c)
                });
                let mut client = match connected {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(pg_err(e)));
                        return;
                    }
                };
                let mut n = client.notifications();
                let mut it = n.blocking_iter();
                loop {
                    match it.next() {
                        Ok(Some(note)) => {
                            if note.payload().starts_with(&own) {
                                continue;
                            }
                            let body = note.payload().split_once('\n').map_or("", |(_, b)| b);
                            if !on(body) {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            tracing::error!(error = %e, "lost the LISTEN connection");
                            return;
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        ready_rx
            .recv()
            .map_err(|_| StoreError::Backend("the LISTEN thread died".into()))?
    }

    /// Number of live jobs (tests and metrics; sees the open batch).
    pub fn live_jobs(&self) -> usize {
        self.count("SELECT count(*) FROM jc_jobs")
    }

    /// Number of archived jobs (tests and metrics; sees the open batch).
    pub fn archived_jobs(&self) -> usize {
        self.count("SELECT count(*) FROM jc_archive")
    }

    fn count(&self, sql: &'static str) -> usize {
        let mut g = self.inner.lock();
        g.as_mut()
            .and_then(|i| i.flush_dirty().ok().map(|()| i))
            .and_then(|i| i.conn.client.query_one(sql, &[]).ok())
            .map(|r| r.get::<_, i64>(0) as usize)
            .unwrap_or(0)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().take();
        let beat = self.beat.get_mut().take();
        if inner.is_some() || beat.is_some() {
            let _ = std::thread::spawn(move || drop((inner, beat))).join();
        }
    }
}

fn closed() -> StoreError {
    StoreError::Backend("the store is closed".into())
}

/// Create the schema in an empty database, or check its version.
fn migrate(client: &mut Client) -> Result<(), String> {
    let e = |e: postgres::Error| pg_err(e).to_string();
    let mut tx = client.transaction().map_err(e)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(e)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('jc_schema') IS NOT NULL", &[])
        .map_err(e)?
        .get(0);
    if !exists {
        let other: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() \
                 AND tablename LIKE 'jc\\_%'",
                &[],
            )
            .map_err(e)?
            .get(0);
        if other > 0 {
            return Err(format!(
                "the database has {other} jc_* tables but no jc_schema table: not a JobCenter \
                 store this version knows; refusing to use it"
            ));
        }
        tx.batch_execute(SCHEMA_V1).map_err(e)?;
        tx.batch_execute(MIGRATE_V2).map_err(e)?;
        tx.batch_execute("CREATE TABLE jc_schema (version INTEGER NOT NULL)")
            .map_err(e)?;
        tx.execute(
            "INSERT INTO jc_schema (version) VALUES ($1)",
            &[&PG_SCHEMA_VERSION],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        tracing::info!(version = PG_SCHEMA_VERSION, "created the PostgreSQL schema");
        return Ok(());
    }
    let version: Option<i32> = tx
        .query_opt("SELECT max(version) FROM jc_schema", &[])
        .map_err(e)?
        .and_then(|r| r.get(0));
    match version {
        Some(v) if v == PG_SCHEMA_VERSION => tx.commit().map_err(e),
        Some(1) => {
            tx.batch_execute(MIGRATE_V2).map_err(e)?;
            tx.execute("UPDATE jc_schema SET version = 2", &[])
                .map_err(e)?;
            tx.commit().map_err(e)?;
            tracing::info!(from = 1, to = 2, "migrated the PostgreSQL schema");
            Ok(())
        }
        Some(v) if v > PG_SCHEMA_VERSION => Err(format!(
            "store schema version {v} is newer than this jobcenter supports \
             ({PG_SCHEMA_VERSION}); use the jobcenter version that wrote it, or a newer one"
        )),
        Some(v) => Err(format!("unknown store schema version {v}")),
        None => Err("jc_schema has no version row; refusing to use the database".into()),
    }
}

fn lose_batch(inner: &mut Inner, e: StoreError) -> StoreError {
    let _ = inner.conn.client.batch_execute("ROLLBACK");
    if inner.in_batch {
        inner.lost = Some(e.clone());
    }
    inner.in_batch = false;
    inner.release_pending = false;
    inner.outbox.clear();
    inner.dirty.clear();
    // Its worker writes are undone; what the cache had before is not worth sorting out.
    inner.workers.clear();
    // The block's `nextval` may be undone with the batch (see JOB_ID_BLOCK).
    inner.job_ids.clear();
    e
}

impl Store for PgStore {
    fn transact<R, E, F>(&self, f: F) -> Result<R, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut dyn Txn) -> Result<R, E>,
    {
        let mut g = self.inner.lock();
        let Some(inner) = g.as_mut() else {
            return Err(closed().into());
        };
        if !inner.in_batch {
            if let Err(e) = inner.conn.client.batch_execute("BEGIN") {
                return Err(lose_batch(inner, pg_err(e)).into());
            }
            inner.in_batch = true;
        }
        // The savepoint is opened just before the first write (reads need no rollback):
        // a transaction that only reads costs no savepoint round trip.
        let savepoint = if inner.release_pending {
            "RELEASE t; SAVEPOINT t"
        } else {
            "SAVEPOINT t"
        };
        let mut txn = PgTxn {
            conn: RefCell::new(&mut inner.conn),
            dirty: RefCell::new(&mut inner.dirty),
            job_ids: RefCell::new(&mut inner.job_ids),
            pending: RefCell::new(Dirty::new()),
            workers: &inner.workers,
            worker_changes: RefCell::new(WorkerChanges::new()),
            forget_workers: Cell::new(false),
            broken: Cell::new(false),
            node: &self.node,
            st: TxnState::default(),
            savepoint: Cell::new(Some(savepoint)),
        };
        let result = f(&mut txn);
        let opened = txn.savepoint.get().is_none();
        let broken = txn.broken.get();
        let pending = txn.pending.into_inner();
        let worker_changes = txn.worker_changes.into_inner();
        let forget_workers = txn.forget_workers.get();
        let failed = txn.st.into_failure();
        // A statement that failed outside this transaction's savepoint (a read before its
        // first write: a deadlock, a lock or statement timeout) may have aborted the whole
        // batch transaction, earlier transactions included.
        let unguarded_failure = if opened { None } else { failed.clone() };
        if forget_workers {
            inner.workers.clear();
        }
        if broken {
            // Rows of earlier transactions of the batch could not be sent: the batch is lost.
            let e = failed.unwrap_or_else(|| StoreError::Backend("writing jobs failed".into()));
            return Err(lose_batch(inner, e).into());
        }
        let result = match (result, failed) {
            (Ok(v), None) => Ok(v),
            (Ok(_), Some(e)) => Err(E::from(e)),
            (Err(e), _) => Err(e),
        };
        if result.is_ok() {
            // This transaction's job writes join the batch's; a failed one's are dropped.
            inner.dirty.extend(pending);
            // Likewise its worker writes join the cache.
            inner.workers.apply(worker_changes);
        }
        if opened {
            inner.release_pending = result.is_ok();
            if result.is_err() {
                if let Err(e) = inner.conn.client.batch_execute("ROLLBACK TO t; RELEASE t") {
                    return Err(lose_batch(inner, pg_err(e)).into());
                }
            }
        } else if let Some(cause) = unguarded_failure {
            // Whether it did: a savepoint can only be set in a transaction that still works.
            // If not, the batch is lost now rather than failing call by call until its
            // COMMIT (which PostgreSQL would turn into a silent ROLLBACK).
            if inner
                .conn
                .client
                .batch_execute("SAVEPOINT p; RELEASE p")
                .is_err()
            {
                return Err(lose_batch(inner, cause).into());
            }
        }
        result
    }

    fn durable(&self) -> bool {
        true
    }

    fn shared(&self) -> bool {
        true
    }

    fn max_batch(&self) -> usize {
        // A transaction that writes more than jobs is a subtransaction (savepoint); past 64
        // of those in one batch PostgreSQL's snapshots of *other* sessions get slower (subxid
        // cache overflow). Job writes need none (write-behind, see `Dirty`); what still opens
        // one (worker, lock and archive rows, heartbeats) is a few per batch. 256 calls per
        // commit: the commit's WAL flush, during which the store thread waits, is shared by
        // four times as many calls as with the former bound of 64.
        256
    }

    fn publish(&self, payload: String) {
        if let Some(inner) = self.inner.lock().as_mut() {
            inner.outbox.push(payload);
        }
    }

    fn listen(&self, on: Box<dyn FnMut(&str) -> bool + Send>) -> Result<bool, StoreError> {
        self.listen_thread(on).map(|()| true)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let mut g = self.inner.lock();
        let inner = g.as_mut().ok_or_else(closed)?;
        if let Some(e) = inner.lost.take() {
            // The calls since then are answered with this failure too ("nothing was
            // changed"), so what they wrote in the batch opened after the loss goes as well.
            if inner.in_batch {
                lose_batch(inner, e.clone());
                inner.lost = None;
            }
            return Err(e);
        }
        if !inner.in_batch {
            inner.outbox.clear();
            return Ok(());
        }
        // A failure here is this batch's, reported now: it must not be reported again by
        // the next batch's sync (which would refuse work that the one after commits).
        if let Err(e) = inner.flush_dirty() {
            inner.lost = None;
            return Err(e);
        }
        let outbox = std::mem::take(&mut inner.outbox);
        if !outbox.is_empty() {
            // Every payload of the batch in one round trip.
            let payloads: Vec<String> = outbox
                .iter()
                .map(|body| format!("{}\n{}", self.node, body))
                .collect();
            let r = inner
                .conn
                .stmt("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n")
                .and_then(|s| {
                    inner
                        .conn
                        .client
                        .execute(&s, &[&CHANNEL, &payloads])
                        .map_err(pg_err)
                });
            if let Err(e) = r {
                let e = lose_batch(inner, e);
                inner.lost = None;
                return Err(e);
            }
        }
        inner.in_batch = false;
        // COMMIT also releases a pending savepoint. PostgreSQL answers COMMIT of an aborted
        // transaction with a ROLLBACK, not an error: the savepoint before it fails in that
        // case (and the COMMIT is not run), so a batch that a failed statement aborted is
        // never reported durable. Same round trip.
        inner.release_pending = false;
        match inner
            .conn
            .client
            .batch_execute("SAVEPOINT c; RELEASE c; COMMIT")
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = inner.conn.client.batch_execute("ROLLBACK");
                inner.job_ids.clear();
                inner.workers.clear();
                Err(pg_err(e))
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} (node {})", redact(&self.url), self.node)
    }

    fn beat(&self, now: Millis) -> Result<(), StoreError> {
        let mut g = self.beat.lock();
        let client = match g.as_mut() {
            Some(c) => c,
            None => g.insert(Client::connect(&self.url, NoTls).map_err(pg_err)?),
        };
        // Never backwards: a late beat must not make the node look older than it is.
        let r = client.execute(
            "INSERT INTO jc_nodes (node, heartbeat) VALUES ($1, $2) ON CONFLICT (node) \
             DO UPDATE SET heartbeat = GREATEST(jc_nodes.heartbeat, excluded.heartbeat)",
            &[&self.node, &ms(now)],
        );
        if let Err(e) = r {
            // Connect again next time (the old client is dropped on this thread, which is
            // not one of tokio's: `beat` blocks).
            *g = None;
            return Err(pg_err(e));
        }
        Ok(())
    }
}

/// One transaction (a savepoint of the open batch).
struct PgTxn<'a> {
    conn: RefCell<&'a mut Conn>,
    /// The batch's unsent job rows (earlier transactions).
    dirty: RefCell<&'a mut Dirty>,
    /// The node's unused job ids (`Inner::job_ids`).
    job_ids: RefCell<&'a mut Vec<JobId>>,
    /// This transaction's unsent job rows: join `dirty` if it succeeds.
    pending: RefCell<Dirty>,
    /// The node's worker cache as of the batch's earlier transactions (`Inner::workers`).
    workers: &'a Workers,
    /// This transaction's worker writes: join `workers` if it succeeds.
    worker_changes: RefCell<WorkerChanges>,
    /// The heartbeat found this node's worker rows changed by another node: empty the
    /// cache (whatever becomes of the transaction).
    forget_workers: Cell<bool>,
    /// Sending `dirty` failed: the batch is lost.
    broken: Cell<bool>,
    node: &'a str,
    /// Failure, job cache (rows read with their row lock, or written; rows read without a
    /// lock are not kept) and earliest wake-up.
    st: TxnState,
    /// The statement that opens this transaction's savepoint, until the first write sent it.
    savepoint: Cell<Option<&'static str>>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl PgTxn<'_> {
    /// Send the batch's buffered job rows (earlier transactions: outside this transaction's
    /// savepoint, which must not roll them back).
    fn flush_batch(&self) {
        let rows = std::mem::take(&mut **self.dirty.borrow_mut());
        if rows.is_empty() {
            return;
        }
        if let Err(e) = write_jobs(&mut self.conn.borrow_mut(), &rows) {
            self.broken.set(true);
            self.st.fail(e);
        }
    }

    /// Before a statement over the job table's indexes (or that changes it): send every
    /// buffered job row, the batch's and this transaction's (after its savepoint).
    fn see_jobs(&self) {
        self.flush_batch();
        if self.pending.borrow().is_empty() {
            return;
        }
        self.before_write();
        let rows = std::mem::take(&mut *self.pending.borrow_mut());
        let r = write_jobs(&mut self.conn.borrow_mut(), &rows);
        self.st.ok(r);
    }

    /// A job row this batch wrote and has not sent: its newest version (the batch holds the
    /// row's lock, or the row is new).
    fn buffered(&self, id: JobId) -> Option<JobRecord> {
        self.dirty.borrow().get(&id).cloned()
    }

    /// The job whose claim carries `cookie` among the versions this transaction or batch
    /// holds (newer than the table's rows); `None`: ask the table (and check its answer with
    /// [`PgTxn::stale`]).
    fn cookie_known(&self, cookie: &str) -> Option<JobRecord> {
        let hit = |j: &JobRecord| j.cookie() == Some(cookie);
        if let Some(j) = self.st.find_cached(hit) {
            return Some(j);
        }
        let found = self.dirty.borrow().values().find(|j| hit(j)).cloned();
        found
    }

    /// Whether the table's row of `id` is older than what this transaction or batch knows.
    fn stale(&self, id: JobId) -> bool {
        self.st.cached(id).is_some() || self.dirty.borrow().contains_key(&id)
    }

    /// What this transaction or the node's cache knows of worker `id` (this node's own
    /// workers only); `None`: ask the table.
    fn known_worker(&self, id: WorkerId) -> Option<WorkerRecord> {
        let changes = self.worker_changes.borrow();
        match changes.iter().rev().find(|(i, _, _)| *i == id) {
            Some((_, _, record)) => record.clone(),
            None => self.workers.by_id.get(&id).cloned(),
        }
    }

    /// The newest of this node's workers named `name` as this transaction or the node's
    /// cache knows them; `None`: ask the table (also when this transaction deleted a worker
    /// of that name or wrote one of another node's).
    fn known_active_worker(&self, name: &str) -> Option<WorkerRecord> {
        let changes = self.worker_changes.borrow();
        let mut newest: Option<&WorkerRecord> = None;
        let mut changed = BTreeSet::new();
        for (id, n, record) in changes.iter().rev() {
            if !changed.insert(*id) {
                continue;
            }
            match record {
                Some(w) if w.name == name && newest.is_none_or(|b| w.id > b.id) => {
                    newest = Some(w);
                }
                None if n == name => return None,
                _ => {}
            }
        }
        let cached = self.workers.by_name.get(name).into_iter().flatten();
        for id in cached.filter(|id| !changed.contains(id)) {
            if let Some(w) = self.workers.by_id.get(id) {
                if newest.is_none_or(|b| w.id > b.id) {
                    newest = Some(w);
                }
            }
        }
        newest.cloned()
    }

    /// Whether every worker this transaction or the node's cache knows is in `rows` (this
    /// node's worker rows in the table) as it knows it. Rows it does not know do not matter:
    /// they are read from the table (after a lost batch the cache fills again one `put_worker`
    /// at a time, and must not be emptied again meanwhile).
    fn workers_match(&self, rows: &HashMap<WorkerId, WorkerRecord>) -> bool {
        let changes = self.worker_changes.borrow();
        let changed: BTreeSet<WorkerId> = changes.iter().map(|(id, _, _)| *id).collect();
        let cached = self.workers.by_id.keys().filter(|id| !changed.contains(id));
        cached
            .chain(changed.iter())
            .all(|id| match self.known_worker(*id) {
                Some(w) => rows.get(id) == Some(&w),
                None => true,
            })
    }

    /// Open the savepoint before the first write.
    fn before_write(&self) {
        if let Some(sql) = self.savepoint.take() {
            // Earlier transactions' rows first: a rollback to this savepoint must keep them.
            self.flush_batch();
            let r = self
                .conn
                .borrow_mut()
                .client
                .batch_execute(sql)
                .map_err(pg_err);
            self.st.ok(r);
        }
    }

    /// Run a writing statement; the number of rows changed.
    fn run(&self, sql: &'static str, p: Params<'_>) -> u64 {
        self.before_write();
        let r = {
            let mut c = self.conn.borrow_mut();
            c.stmt(sql)
                .and_then(|s| c.client.execute(&s, p).map_err(pg_err))
        };
        self.st.ok(r)
    }

    fn one<T: FromSqlOwned>(&self, sql: &'static str, p: Params<'_>) -> Option<T> {
        let r = {
            let mut c = self.conn.borrow_mut();
            c.stmt(sql).and_then(|s| {
                c.client
                    .query_opt(&s, p)
                    .map_err(pg_err)?
                    .map(|row| row.try_get::<_, T>(0).map_err(pg_err))
                    .transpose()
            })
        };
        self.st.ok(r)
    }

    /// Every row of `sql`, each turned into a value by `read`.
    fn rows<T>(
        &self,
        sql: &'static str,
        p: Params<'_>,
        read: impl Fn(&postgres::Row) -> Result<T, postgres::Error>,
    ) -> Vec<T> {
        let r = {
            let mut c = self.conn.borrow_mut();
            c.stmt(sql).and_then(|s| {
                c.client
                    .query(&s, p)
                    .map_err(pg_err)?
                    .iter()
                    .map(|row| read(row).map_err(pg_err))
                    .collect::<Result<Vec<T>, _>>()
            })
        };
        self.st.ok(r)
    }

    /// The first column of every row.
    fn all<T: FromSqlOwned>(&self, sql: &'static str, p: Params<'_>) -> Vec<T> {
        self.rows(sql, p, |row| row.try_get(0))
    }

    /// The first two columns of every row.
    fn all_pairs<A: FromSqlOwned, B: FromSqlOwned>(
        &self,
        sql: &'static str,
        p: Params<'_>,
    ) -> Vec<(A, B)> {
        self.rows(sql, p, |row| Ok((row.try_get(0)?, row.try_get(1)?)))
    }

    fn next(&self, sql: &'static str) -> i64 {
        self.one(sql, &[]).unwrap_or_else(|| {
            self.st
                .fail(StoreError::Corrupt("a sequence returned nothing".into()));
            0
        })
    }
}

/// Ready ids fetched per page.
const READY_PAGE: i64 = 16;

/// Job ids fetched from `jc_job_ids` in one round trip, instead of one `nextval` per job.
/// Safe against a PostgreSQL crash: a sequence's advance is in the WAL before the batch's
/// `COMMIT`, so once a batch that fetched a block commits, no restart of PostgreSQL hands
/// those ids out again; a batch that fails (lost, `COMMIT` refused, connection gone) drops
/// what is left of the node's block, because its advance may be undone with it. A server
/// that stops leaves at most this many ids unused (a gap, never a second job with one id).
const JOB_ID_BLOCK: i64 = 64;

impl Txn for PgTxn<'_> {
    fn next_job_id(&mut self) -> JobId {
        let cached = self.job_ids.borrow_mut().pop();
        let id = match cached {
            Some(id) => id,
            None => {
                let mut block: Vec<JobId> = self.all(
                    "SELECT nextval('jc_job_ids') FROM generate_series(1, $1::bigint)",
                    &[&JOB_ID_BLOCK],
                );
                block.sort_unstable_by(|a, b| b.cmp(a));
                match block.pop() {
                    Some(id) => {
                        **self.job_ids.borrow_mut() = block;
                        id
                    }
                    None => {
                        self.st
                            .fail(StoreError::Corrupt("a sequence returned nothing".into()));
                        0
                    }
                }
            }
        };
        // A fresh id has no row: the engine's first read of the new job costs no query.
        self.st.remember(id, None);
        id
    }

    fn job(&self, id: JobId) -> Option<JobRecord> {
        if let Some(cached) = self.st.cached(id) {
            return cached;
        }
        if let Some(job) = self.buffered(id) {
            self.st.remember(id, Some(job.clone()));
            return Some(job);
        }
        let text = self.one(
            "SELECT record FROM jc_jobs WHERE id = $1 FOR UPDATE",
            &[&id],
        );
        let job: Option<JobRecord> = self.st.record(text);
        self.st.remember(id, job.clone());
        job
    }

    fn peek_job(&self, id: JobId) -> Option<JobRecord> {
        if let Some(cached) = self.st.cached(id) {
            return cached;
        }
        if let Some(job) = self.buffered(id) {
            return Some(job);
        }
        let text = self.one("SELECT record FROM jc_jobs WHERE id = $1", &[&id]);
        self.st.record(text)
    }

    fn try_ready_job(&self, id: JobId, action: &str) -> Option<JobRecord> {
        let ready = |j: &JobRecord| j.ready_action() == Some(action);
        if let Some(cached) = self.st.cached(id) {
            return cached.filter(ready);
        }
        if let Some(job) = self.buffered(id) {
            self.st.remember(id, Some(job.clone()));
            return Some(job).filter(ready);
        }
        // The condition is checked before the row is locked: a row that is not (or no
        // longer) ready is neither returned nor locked, one that another node holds is
        // skipped.
        let text = self.one(
            "SELECT record FROM jc_jobs WHERE id = $1 AND ready_action = $2 \
             FOR UPDATE SKIP LOCKED",
            &[&id, &action],
        );
        // Locked only if found: a row skipped stays unknown to this transaction.
        let job: Option<JobRecord> = self.st.record(text);
        if job.is_some() {
            self.st.remember(id, job.clone());
        }
        job.filter(ready)
    }

    fn wake_hint(&self) -> Option<Millis> {
        self.st.wake_hint()
    }

    fn put_job(&mut self, job: JobRecord) {
        // Sent with the batch's other job rows (write-behind, see `Dirty`).
        self.pending.borrow_mut().insert(job.id, job.clone());
        self.st.written(job);
    }

    fn archive_job(&mut self, id: JobId) -> bool {
        let Some(job) = self.job(id) else {
            return false;
        };
        let out = job.out_args.clone().unwrap_or(serde_json::Value::Null);
        let out = match encode(&out) {
            Ok(o) => o,
            Err(e) => {
                self.st.fail(e);
                return false;
            }
        };
        self.see_jobs();
        self.run("DELETE FROM jc_jobs WHERE id = $1", &[&id]);
        self.st.remember(id, None);
        let version = job.version as i32;
        let finished = ms(job.finished_at.unwrap_or(job.updated_at));
        self.run(
            "INSERT INTO jc_archive (id, workflow, version, finished_at, out_args) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
             workflow = excluded.workflow, version = excluded.version, \
             finished_at = excluded.finished_at, out_args = excluded.out_args",
            &[&id, &job.workflow, &version, &finished, &out],
        );
        true
    }

    fn archived(&self, id: JobId) -> Option<ArchivedJob> {
        let r = {
            let mut c = self.conn.borrow_mut();
            c.stmt("SELECT workflow, version, finished_at, out_args FROM jc_archive WHERE id = $1")
                .and_then(|s| {
                    let row = c.client.query_opt(&s, &[&id]).map_err(pg_err)?;
                    Ok(row.map(|r| {
                        (
                            r.get::<_, String>(0),
                            r.get::<_, i32>(1),
                            r.get::<_, i64>(2),
                            r.get::<_, String>(3),
                        )
                    }))
                })
        };
        let (workflow, version, finished_at, out) = self.st.ok(r)?;
        self.st
            .archived_job(id, workflow, i64::from(version), finished_at, out)
    }

    fn purge_archived(&mut self, before: Millis, limit: usize) -> usize {
        self.run(
            "DELETE FROM jc_archive WHERE id IN (SELECT id FROM jc_archive \
             WHERE finished_at < $1 ORDER BY finished_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&ms(before), &(limit as i64)],
        ) as usize
    }

    fn job_with_cookie(&self, cookie: &str) -> Option<JobRecord> {
        if let Some(job) = self.cookie_known(cookie) {
            self.st.remember(job.id, Some(job.clone()));
            return Some(job);
        }
        let r = {
            let mut c = self.conn.borrow_mut();
            c.stmt("SELECT id, record FROM jc_jobs WHERE cookie = $1 FOR UPDATE")
                .and_then(|s| {
                    let row = c.client.query_opt(&s, &[&cookie]).map_err(pg_err)?;
                    Ok(row.map(|r| (r.get::<_, JobId>(0), r.get::<_, String>(1))))
                })
        };
        let (id, text) = self.st.ok(r)?;
        if self.stale(id) {
            // This batch changed the job since: its claim no longer carries the cookie.
            return None;
        }
        let job: Option<JobRecord> = self.st.record(Some(text));
        self.st.remember(id, job.clone());
        job
    }

    fn job_by_cookie(&self, cookie: &str) -> Option<JobId> {
        if let Some(job) = self.cookie_known(cookie) {
            return Some(job.id);
        }
        let id: JobId = self.one("SELECT id FROM jc_jobs WHERE cookie = $1", &[&cookie])?;
        (!self.stale(id)).then_some(id)
    }

    fn ready_jobs<'a>(&'a self, action: &str) -> Box<dyn Iterator<Item = JobId> + 'a> {
        let action = action.to_string();
        Box::new(Paged::new(READY_PAGE as usize, move |after| {
            self.see_jobs();
            self.all(
                "SELECT id FROM jc_jobs WHERE ready_action = $1 AND id > $2 ORDER BY id \
                 LIMIT $3",
                &[&action, &after, &READY_PAGE],
            )
        }))
    }

    fn jobs_claimed_by(&self, worker: WorkerId) -> Vec<JobId> {
        self.see_jobs();
        self.all(
            "SELECT id FROM jc_jobs WHERE claim_worker = $1 ORDER BY id",
            &[&worker],
        )
    }

    fn due_jobs(&self, now: Millis, limit: usize) -> Vec<JobId> {
        self.see_jobs();
        self.all(
            "SELECT id FROM jc_jobs WHERE wake_at IS NOT NULL AND wake_at <= $1 \
             ORDER BY wake_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&ms(now), &(limit as i64)],
        )
    }

    fn next_wake(&self) -> Option<Millis> {
        self.see_jobs();
        self.one::<Option<i64>>(
            "SELECT min(wake_at) FROM jc_jobs WHERE wake_at IS NOT NULL",
            &[],
        )
        .flatten()
        .map(|t| t.max(0) as Millis)
    }

    fn scan_jobs(&self, f: &mut dyn FnMut(&JobRecord)) {
        self.see_jobs();
        let texts: Vec<String> = self.all("SELECT record FROM jc_jobs", &[]);
        for t in texts {
            if let Some(j) = self.st.record::<JobRecord>(Some(t)) {
                f(&j);
            }
        }
    }

    fn count_by_state(&self) -> Vec<(String, u64)> {
        self.see_jobs();
        let rows: Vec<(Option<String>, i64)> = self.all_pairs(
            "SELECT state, count(*) FROM jc_jobs GROUP BY state ORDER BY state",
            &[],
        );
        rows.into_iter()
            .map(|(s, n)| (s.unwrap_or_default(), n.max(0) as u64))
            .collect()
    }

    fn jobs_in_state_below(&self, state: JobState, below: JobId, limit: usize) -> Vec<JobRecord> {
        self.see_jobs();
        let (state, limit) = (state.as_str(), limit as i64);
        let texts = self.all(
            "SELECT record FROM jc_jobs WHERE state = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            &[&state, &below, &limit],
        );
        self.st.records(texts)
    }

    fn children_of(&self, parent: JobId) -> Vec<JobId> {
        self.see_jobs();
        self.all(
            "SELECT id FROM jc_jobs WHERE parent = $1 ORDER BY id",
            &[&parent],
        )
    }

    fn disabled_actions(&self) -> Vec<String> {
        self.all(
            "SELECT action FROM jc_disabled_actions ORDER BY action",
            &[],
        )
    }

    fn set_action_disabled(&mut self, action: &str, disabled: bool) -> bool {
        if disabled {
            self.run(
                "INSERT INTO jc_disabled_actions (action) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&action],
            ) > 0
        } else {
            self.run(
                "DELETE FROM jc_disabled_actions WHERE action = $1",
                &[&action],
            ) > 0
        }
    }

    fn lock(&self, locktype: &str, lockvalue: &str) -> Option<LockRecord> {
        // Serialise every node's look at this lock until the batch commits. A read: it
        // opens no savepoint (an advisory lock outlives a rolled-back savepoint anyway).
        self.one::<bool>(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(1) || $2, 0)) IS NULL",
            &[&locktype, &lockvalue],
        );
        let text = self.one(
            "SELECT record FROM jc_locks WHERE locktype = $1 AND lockvalue = $2 FOR UPDATE",
            &[&locktype, &lockvalue],
        );
        self.st.record(text)
    }

    fn put_lock(&mut self, lock: LockRecord) {
        let record = match encode(&lock) {
            Ok(r) => r,
            Err(e) => return self.st.fail(e),
        };
        self.run(
            "INSERT INTO jc_locks (locktype, lockvalue, holder, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (locktype, lockvalue) DO UPDATE SET holder = excluded.holder, \
                record = excluded.record",
            &[&lock.locktype, &lock.lockvalue, &lock.holder, &record],
        );
    }

    fn delete_lock(&mut self, locktype: &str, lockvalue: &str) -> bool {
        self.run(
            "DELETE FROM jc_locks WHERE locktype = $1 AND lockvalue = $2",
            &[&locktype, &lockvalue],
        ) > 0
    }

    fn jobs_below(&self, below: JobId, limit: usize) -> Vec<JobRecord> {
        let limit = limit as i64;
        let texts = self.all(
            "SELECT record FROM jc_jobs WHERE id < $1 ORDER BY id DESC LIMIT $2",
            &[&below, &limit],
        );
        self.st.records(texts)
    }

    fn archived_below(&self, below: JobId, limit: usize) -> Vec<ArchivedJob> {
        let limit = limit as i64;
        let rows = self.rows(
            "SELECT id, workflow, version, finished_at, out_args FROM jc_archive \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
            &[&below, &limit],
            |r| {
                Ok((
                    r.try_get::<_, i64>(0)?,
                    r.try_get::<_, String>(1)?,
                    r.try_get::<_, i32>(2)?,
                    r.try_get::<_, i64>(3)?,
                    r.try_get::<_, String>(4)?,
                ))
            },
        );
        rows.into_iter()
            .filter_map(|(id, workflow, version, finished_at, out)| {
                self.st
                    .archived_job(id, workflow, i64::from(version), finished_at, out)
            })
            .collect()
    }

    fn all_locks(&self, locktype: Option<&str>, limit: usize) -> Vec<LockRecord> {
        let limit = limit as i64;
        let texts = self.all(
            "SELECT record FROM jc_locks WHERE $1::text IS NULL OR locktype = $1 \
             ORDER BY locktype, lockvalue LIMIT $2",
            &[&locktype, &limit],
        );
        self.st.records(texts)
    }

    fn locks_held_by(&self, job: JobId) -> Vec<LockRecord> {
        let texts = self.all(
            "SELECT record FROM jc_locks WHERE holder = $1 ORDER BY locktype, lockvalue",
            &[&job],
        );
        self.st.records(texts)
    }

    fn lock_waiters(&self, locktype: &str, lockvalue: &str) -> Vec<JobId> {
        self.see_jobs();
        self.all(
            "SELECT id FROM jc_jobs WHERE lock_type = $1 AND lock_value = $2 ORDER BY id",
            &[&locktype, &lockvalue],
        )
    }

    fn next_event_id(&mut self) -> i64 {
        self.next("SELECT nextval('jc_event_ids')")
    }

    fn subscribed_jobs(&self) -> Vec<JobId> {
        self.see_jobs();
        self.all("SELECT id FROM jc_jobs WHERE subscribed ORDER BY id", &[])
    }

    fn next_worker_id(&mut self) -> WorkerId {
        self.next("SELECT nextval('jc_worker_ids')")
    }

    fn worker(&self, id: WorkerId) -> Option<WorkerRecord> {
        if let Some(known) = self.known_worker(id) {
            return Some(known);
        }
        let text = self.one("SELECT record FROM jc_workers WHERE id = $1", &[&id]);
        self.st.record(text)
    }

    fn active_worker(&self, name: &str) -> Option<WorkerRecord> {
        if let Some(known) = self.known_active_worker(name) {
            return Some(known);
        }
        let text = self.one(
            "SELECT record FROM jc_workers WHERE name = $1 ORDER BY id DESC LIMIT 1",
            &[&name],
        );
        self.st.record(text)
    }

    fn active_workers(&self) -> Vec<WorkerRecord> {
        let texts = self.all("SELECT record FROM jc_workers ORDER BY id", &[]);
        self.st.records(texts)
    }

    fn put_worker(&mut self, worker: WorkerRecord) {
        if !worker.active {
            self.run("DELETE FROM jc_workers WHERE id = $1", &[&worker.id]);
            self.worker_changes
                .borrow_mut()
                .push((worker.id, worker.name, None));
            return;
        }
        let record = match encode(&worker) {
            Ok(r) => r,
            Err(e) => return self.st.fail(e),
        };
        let node = self.node.to_string();
        self.before_write();
        // The row keeps the node that inserted it: only this node's own rows are cached.
        let owner: Option<String> = self.one(
            "INSERT INTO jc_workers (id, name, node, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, record = excluded.record \
             RETURNING node",
            &[&worker.id, &worker.name, &node, &record],
        );
        let mine = owner.as_deref() == Some(self.node);
        let (id, name) = (worker.id, worker.name.clone());
        self.worker_changes
            .borrow_mut()
            .push((id, name, mine.then_some(worker)));
    }

    fn check_own_workers(&mut self) {
        let node = self.node.to_string();
        // Another node that took this node for dead may have deleted its workers (or a
        // worker of the same name may have announced through another node and changed a
        // row of this node): then the cache no longer says what the table says.
        let read = {
            let mut c = self.conn.borrow_mut();
            c.stmt("SELECT id, record FROM jc_workers WHERE node = $1")
                .and_then(|s| {
                    c.client
                        .query(&s, &[&node])
                        .map_err(pg_err)?
                        .iter()
                        .map(|r| Ok((r.try_get::<_, WorkerId>(0)?, r.try_get::<_, String>(1)?)))
                        .collect::<Result<Vec<_>, postgres::Error>>()
                        .map_err(pg_err)
                })
        };
        let rows = match read {
            Ok(rows) => rows,
            Err(e) => {
                // Nothing to compare with: forget rather than trust.
                self.st.fail(e);
                self.forget_workers.set(true);
                return;
            }
        };
        let rows: HashMap<WorkerId, WorkerRecord> = rows
            .into_iter()
            .filter_map(|(id, text)| Some((id, self.st.record(Some(text))?)))
            .collect();
        if !self.workers_match(&rows) {
            tracing::info!(
                node = %self.node,
                "this node's workers were changed by another node: worker cache emptied"
            );
            self.forget_workers.set(true);
        }
    }

    fn node_workers(&self) -> Vec<(WorkerId, String)> {
        let node = self.node.to_string();
        self.all_pairs(
            "SELECT id, name FROM jc_workers WHERE node = $1 ORDER BY id",
            &[&node],
        )
    }

    fn orphaned_workers(&self, before: Millis) -> Vec<(WorkerId, String)> {
        self.all_pairs(
            "SELECT w.id, w.name FROM jc_workers w LEFT JOIN jc_nodes n ON n.node = w.node \
             WHERE n.node IS NULL OR n.heartbeat < $1 ORDER BY w.id",
            &[&ms(before)],
        )
    }

    fn forget_dead_nodes(&mut self, before: Millis) {
        self.run("DELETE FROM jc_nodes WHERE heartbeat < $1", &[&ms(before)]);
    }
}
