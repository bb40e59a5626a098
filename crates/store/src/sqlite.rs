//! The SQLite backend: every record a row in one database file, durable at each sync.
//!
//! # Layout
//!
//! One table per kind of record (`jobs`, `archive`, `locks`, `workers`) plus `meta` for the
//! id sequences. Each row keeps the whole record as JSON text (`record`) next to the columns
//! the [`Txn`] queries use (`ready_action`, `cookie`, `wake_at`, ...); those columns are
//! derived from the record on every write, so they cannot disagree with it, and carry
//! partial indexes. The file is identified by `PRAGMA application_id` and its schema by
//! `PRAGMA user_version` (see [`SCHEMA_VERSION`]).
//!
//! # Transactions and group commit
//!
//! The store keeps one write transaction (a *batch*) open. [`Store::transact`] runs the
//! engine's closure inside a `SAVEPOINT`: `Ok` releases it into the batch, `Err` (or a
//! failed read) rolls back to it. [`Store::sync`] commits the batch; with the default
//! [`SyncMode::Full`] SQLite syncs the write-ahead log before `COMMIT` returns, so every
//! transaction of the batch survives `kill -9` and a power cut from then on. If anything in
//! the batch machinery fails (disk full, I/O error), the whole batch is rolled back and the
//! next `sync` reports the error, so a caller never answers for a transaction that is not
//! on disk.
//!
//! The file is opened in exclusive locking mode: a second server on the same file fails at
//! start instead of corrupting the first one's view.
//!
//! # Checkpoints
//!
//! SQLite's automatic checkpoint would copy the write-ahead log into the database file (and
//! fsync it) inside the `COMMIT` of whichever batch takes the log past 1,000 pages, on the
//! path of that batch's answers. It is switched off: [`Store::idle`] (called by the store
//! thread when no work is queued) runs a `PASSIVE` checkpoint once the log holds
//! [`WAL_IDLE_PAGES`], and [`Store::sync`] runs one after its `COMMIT` only when the log
//! reached [`WAL_CAP_PAGES`] because the store never got idle. A checkpoint only copies
//! committed (synced) frames, so it never changes what is durable.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Params};

use crate::model::{
    ArchivedJob, JobId, JobRecord, JobState, LockRecord, Millis, WorkerId, WorkerRecord,
};
use crate::sql::{decode, encode, ms, JobRow, Paged, TxnState};
use crate::{Store, StoreError, Txn};

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// `PRAGMA application_id` of a JobCenter store: "JCst".
pub const APPLICATION_ID: i64 = 0x4A43_7374;

/// [`Store::idle`] checkpoints the write-ahead log once it holds this many pages (SQLite's
/// own automatic checkpoint threshold).
pub const WAL_IDLE_PAGES: u32 = 1_000;

/// [`Store::sync`] checkpoints the write-ahead log after its commit once it holds this many
/// pages (32 MiB of 4 KiB pages), even when the store never gets idle: bounds the log file.
pub const WAL_CAP_PAGES: u32 = 8_192;

thread_local! {
    /// Pages in the write-ahead log after the last commit on this thread (`-1`: none since
    /// it was read). Set by [`on_wal_commit`]; a store reads it right after its `COMMIT`
    /// on the same thread, under its mutex.
    static WAL_PAGES: std::cell::Cell<i32> = const { std::cell::Cell::new(-1) };
}

/// SQLite's write-ahead log hook: remembers the log's size. Registering a hook also turns
/// SQLite's automatic checkpoint off (the store checkpoints itself, see the module docs).
fn on_wal_commit(_wal: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|c| c.set(pages));
    Ok(())
}

/// The schema of version 1.
const SCHEMA_V1: &str = "
CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta (k, v) VALUES ('last_job_id', 0), ('last_worker_id', 0), ('last_event_id', 0);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    ready_action TEXT,
    cookie TEXT,
    claim_worker INTEGER,
    wake_at INTEGER,
    subscribed INTEGER NOT NULL,
    lock_type TEXT,
    lock_value TEXT,
    record TEXT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (ready_action, id) WHERE ready_action IS NOT NULL;
CREATE INDEX jobs_cookie ON jobs (cookie) WHERE cookie IS NOT NULL;
CREATE INDEX jobs_claim ON jobs (claim_worker, id) WHERE claim_worker IS NOT NULL;
CREATE INDEX jobs_wake ON jobs (wake_at, id) WHERE wake_at IS NOT NULL;
CREATE INDEX jobs_subscribed ON jobs (subscribed, id) WHERE subscribed = 1;
CREATE INDEX jobs_lockwait ON jobs (lock_type, lock_value, id) WHERE lock_type IS NOT NULL;
CREATE TABLE archive (
    id INTEGER PRIMARY KEY,
    workflow TEXT NOT NULL,
    version INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    out_args TEXT NOT NULL
);
CREATE INDEX archive_time ON archive (finished_at, id);
CREATE TABLE locks (
    locktype TEXT NOT NULL,
    lockvalue TEXT NOT NULL,
    holder INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (locktype, lockvalue)
) WITHOUT ROWID;
CREATE INDEX locks_holder ON locks (holder);
CREATE TABLE workers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX workers_name ON workers (name, id);
";

/// From version 1 to 2: the actions an administrator disabled (`disable`); the job's state
/// and parent as indexed columns (exact counts per state, children by index).
const MIGRATE_V2: &str = "
CREATE TABLE disabled_actions (action TEXT PRIMARY KEY) WITHOUT ROWID;
ALTER TABLE jobs ADD COLUMN state TEXT;
ALTER TABLE jobs ADD COLUMN parent INTEGER;
UPDATE jobs SET state = json_extract(record, '$.state'),
    parent = json_extract(record, '$.parent.job_id');
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_parent ON jobs (parent, id) WHERE parent IS NOT NULL;
";

/// How hard `COMMIT` works to make a batch durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// The write-ahead log is synced at every commit: survives `kill -9` and power loss.
    #[default]
    Full,
    /// The log is written at every commit and synced only at checkpoints: survives
    /// `kill -9` of the server, but a power cut can lose the last commits.
    Normal,
    /// Never synced: for tests and benchmarks only.
    Off,
}

impl SyncMode {
    fn pragma(self) -> &'static str {
        match self {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
            SyncMode::Off => "OFF",
        }
    }
}

impl std::str::FromStr for SyncMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(SyncMode::Full),
            "normal" => Ok(SyncMode::Normal),
            "off" => Ok(SyncMode::Off),
            other => Err(format!(
                "unknown sync mode {other:?} (expected full, normal or off)"
            )),
        }
    }
}

/// Why a store file could not be opened: names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct OpenError {
    /// The database file.
    pub path: PathBuf,
    /// What is wrong (not a database, corrupt, newer schema, locked, I/O error).
    pub problem: String,
}

/// The connection and the state of the open batch.
struct Inner {
    conn: Connection,
    /// A write transaction is open.
    in_batch: bool,
    /// Job ids reserved in the database and not handed out yet, highest first
    /// ([`JOB_ID_BLOCK`]).
    job_ids: Vec<JobId>,
    /// The open batch was rolled back behind the callers' backs: the next `sync` fails.
    lost: Option<StoreError>,
    /// Pages in the write-ahead log not yet copied into the database file.
    wal_pages: u32,
    /// Checkpoints run so far (idle and capped).
    checkpoints: u64,
    /// When the last checkpoint failed: idle ones wait [`CHECKPOINT_RETRY`] before the next
    /// try (a full disk would otherwise log a failure at every idle moment).
    failed_at: Option<std::time::Instant>,
}

/// How long idle checkpoints pause after one failed.
const CHECKPOINT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a checkpoint runs (for the logs).
#[derive(Debug, Clone, Copy)]
enum Why {
    Idle,
    Cap,
}

impl Inner {
    /// A checkpoint failed less than [`CHECKPOINT_RETRY`] ago.
    fn paused(&self) -> bool {
        self.failed_at
            .is_some_and(|t| t.elapsed() < CHECKPOINT_RETRY)
    }

    /// Copy the write-ahead log into the database file (`PRAGMA wal_checkpoint(PASSIVE)`).
    /// Only outside a batch. A failure (disk full) is logged and leaves the log as it is:
    /// every frame in it is committed and stays durable; the next idle moment tries again.
    fn checkpoint(&mut self, why: Why) {
        if self.in_batch || !self.conn.is_autocommit() {
            return;
        }
        let started = std::time::Instant::now();
        let r = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
        match r {
            Ok((busy, log, done)) => {
                self.checkpoints += 1;
                let left = if busy != 0 { log } else { (log - done).max(0) };
                tracing::debug!(
                    ?why,
                    pages = log,
                    copied = done,
                    took_us = started.elapsed().as_micros() as u64,
                    "checkpoint"
                );
                self.wal_pages = u32::try_from(left).unwrap_or(u32::MAX);
                self.failed_at = None;
            }
            Err(e) => {
                self.failed_at = Some(std::time::Instant::now());
                tracing::warn!(?why, error = %e, pages = self.wal_pages,
                    "checkpoint failed; the write-ahead log keeps its committed frames");
            }
        }
    }
}

/// The durable SQLite store (see the module documentation).
pub struct SqliteStore {
    inner: Mutex<Inner>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Open (or create) the store in `path` with the default [`SyncMode::Full`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, SyncMode::Full)
    }

    /// Open (or create) the store in `path`. Fails with a message naming the file if it is
    /// not a SQLite database, not a JobCenter store, of a newer schema, corrupt, truncated,
    /// or already opened by another server.
    pub fn open_with(path: impl AsRef<Path>, sync: SyncMode) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let err = |problem: String| OpenError {
            path: path.clone(),
            problem,
        };
        check_header(&path).map_err(err)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| err(e.to_string()))?;
        prepare(&conn, sync).map_err(err)?;
        conn.wal_hook(Some(on_wal_commit));
        Ok(SqliteStore {
            inner: Mutex::new(Inner {
                conn,
                in_batch: false,
                job_ids: Vec::new(),
                lost: None,
                wal_pages: 0,
                checkpoints: 0,
                failed_at: None,
            }),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn count(&self, sql: &str) -> usize {
        let g = self.inner.lock();
        g.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .unwrap_or(0)
    }

    /// Number of live jobs (for tests and metrics; sees the open batch).
    pub fn live_jobs(&self) -> usize {
        self.count("SELECT count(*) FROM jobs")
    }

    /// Number of archived jobs (for tests and metrics; sees the open batch).
    pub fn archived_jobs(&self) -> usize {
        self.count("SELECT count(*) FROM archive")
    }

    /// Roll the open batch back, as a `COMMIT` that fails does: every transaction since the
    /// last successful [`Store::sync`] is lost. For fault injection only (a test's store
    /// wrapper whose `sync` fails on demand must lose the batch like a real failure); the
    /// engine never calls it. `true` if there was an open batch.
    pub fn rollback_batch(&self) -> bool {
        let mut g = self.inner.lock();
        let open = g.in_batch;
        if !g.conn.is_autocommit() {
            let _ = g.conn.execute_batch("ROLLBACK");
        }
        g.in_batch = false;
        // The batch may have reserved them.
        g.job_ids.clear();
        open
    }

    /// Pages in the write-ahead log not yet checkpointed into the database file, as of the
    /// last commit or checkpoint.
    pub fn wal_pages(&self) -> u32 {
        self.inner.lock().wal_pages
    }

    /// How many checkpoints the store has run since it was opened.
    pub fn checkpoints(&self) -> u64 {
        self.inner.lock().checkpoints
    }

    /// Size of the database file and its write-ahead log, in bytes.
    pub fn disk_bytes(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        [&self.path, &wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// A non-empty file must start with SQLite's magic string.
fn check_header(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read the file: {e}")),
    };
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("cannot read the file: {e}")),
        }
    }
    if n == 0 {
        return Ok(());
    }
    if n < head.len() || &head != b"SQLite format 3\0" {
        return Err("not a SQLite database (bad header); refusing to use it as a store".into());
    }
    Ok(())
}

/// Settings, identity and schema checks, creation of a new schema, integrity check.
fn prepare(conn: &Connection, sync: SyncMode) -> Result<(), String> {
    let sql = |e: rusqlite::Error| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            "the database is locked: is another jobcenter server using this file?".to_string()
        }
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            format!("the database is corrupt ({e}); restore it from a backup")
        }
        e => e.to_string(),
    };
    conn.busy_timeout(std::time::Duration::from_millis(200))
        .map_err(sql)?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(sql)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "cannot switch to WAL mode (journal_mode is {mode})"
        ));
    }
    conn.pragma_update(None, "synchronous", sync.pragma())
        .map_err(sql)?;
    // 64 MiB page cache; the WAL file is truncated back to 64 MiB after checkpoints.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(sql)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(sql)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sql)?;

    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
    let r = (|| {
        let app: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(sql)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(sql)?;
        if app == 0 && version == 0 && tables == 0 {
            conn.execute_batch(SCHEMA_V1).map_err(sql)?;
            conn.execute_batch(MIGRATE_V2).map_err(sql)?;
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(sql)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(sql)?;
            return Ok(());
        }
        if app != APPLICATION_ID {
            return Err(format!(
                "not a JobCenter store (a SQLite database with application_id {app:#x} and \
                 {tables} schema objects); refusing to use it"
            ));
        }
        if version > SCHEMA_VERSION {
            return Err(format!(
                "store schema version {version} is newer than this jobcenter supports \
                 ({SCHEMA_VERSION}); use the jobcenter version that wrote it, or a newer one"
            ));
        }
        if version < 1 {
            return Err(format!("unknown store schema version {version}"));
        }
        if version < 2 {
            conn.execute_batch(MIGRATE_V2).map_err(sql)?;
            conn.pragma_update(None, "user_version", 2).map_err(sql)?;
            tracing::info!(from = version, to = 2, "migrated the store schema");
        }
        Ok(())
    })();
    match r {
        Ok(()) => conn.execute_batch("COMMIT").map_err(sql)?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    let problems: Vec<String> = {
        let mut st = conn.prepare("PRAGMA quick_check(5)").map_err(sql)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)?
    };
    if problems != ["ok"] {
        return Err(format!(
            "the database is corrupt (integrity check: {}); restore it from a backup",
            problems.join("; ")
        ));
    }
    Ok(())
}

impl Store for SqliteStore {
    fn transact<R, E, F>(&self, f: F) -> Result<R, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut dyn Txn) -> Result<R, E>,
    {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        // The first transaction of a batch needs no savepoint: when it fails, rolling the
        // whole batch back undoes it alone. A savepoint makes SQLite copy every page the
        // transaction touches into its sub-journal first (≈ 10 % of a sequential job's
        // instructions), and most batches of a sequential load hold one transaction.
        let first = !inner.in_batch;
        if first {
            // Cached statements: `execute_batch` would parse the SQL again every batch.
            exec(&inner.conn, "BEGIN IMMEDIATE")?;
            inner.in_batch = true;
        } else if let Err(e) = exec(&inner.conn, "SAVEPOINT t") {
            return Err(lose_batch(inner, e).into());
        }
        let mut txn = SqlTxn {
            conn: &inner.conn,
            st: TxnState::default(),
            job_ids: std::mem::take(&mut inner.job_ids),
        };
        let result = f(&mut txn);
        let failed = txn.st.into_failure();
        let job_ids = txn.job_ids;
        let result = match (result, failed) {
            (Ok(v), None) => Ok(v),
            (Ok(_), Some(e)) => Err(E::from(e)),
            (Err(e), _) => Err(e),
        };
        if inner.conn.is_autocommit() {
            // SQLite rolled the whole batch back itself (disk full, I/O error).
            let e = StoreError::Backend("the store rolled the batch back (I/O error)".into());
            return Err(lose_batch(inner, e).into());
        }
        if result.is_ok() {
            // Ids reserved by a rolled-back transaction may be reserved again: only a
            // transaction that stays keeps what is left of its block.
            inner.job_ids = job_ids;
        }
        let end = match (result.is_ok(), first) {
            (true, true) => Ok(()),
            (true, false) => exec(&inner.conn, "RELEASE t"),
            (false, true) => {
                // The batch holds this transaction alone: nothing else is lost.
                inner.in_batch = false;
                exec(&inner.conn, "ROLLBACK")
            }
            (false, false) => {
                exec(&inner.conn, "ROLLBACK TO t").and_then(|_| exec(&inner.conn, "RELEASE t"))
            }
        };
        if let Err(e) = end {
            return Err(lose_batch(inner, e).into());
        }
        result
    }

    fn durable(&self) -> bool {
        true
    }

    fn sync(&self) -> Result<(), StoreError> {
        let mut g = self.inner.lock();
        if let Some(e) = g.lost.take() {
            // The calls since then are answered with this failure too ("nothing was
            // changed"), so what they wrote in the batch opened after the loss goes as well
            // (as on PostgreSQL); else the next sync would commit it behind their backs.
            if g.in_batch {
                lose_batch(&mut g, e.clone());
                g.lost = None;
            }
            return Err(e);
        }
        if !g.in_batch {
            return Ok(());
        }
        g.in_batch = false;
        WAL_PAGES.with(|c| c.set(-1));
        match exec(&g.conn, "COMMIT") {
            Ok(()) => {
                if let Ok(pages) = u32::try_from(WAL_PAGES.with(|c| c.replace(-1))) {
                    g.wal_pages = pages;
                }
                if g.wal_pages >= WAL_CAP_PAGES && !g.paused() {
                    // Never idle for that long: bound the log on the commit path after all.
                    g.checkpoint(Why::Cap);
                }
                Ok(())
            }
            Err(e) => {
                if !g.conn.is_autocommit() {
                    let _ = g.conn.execute_batch("ROLLBACK");
                }
                // The batch may have reserved them.
                g.job_ids.clear();
                Err(e)
            }
        }
    }

    fn idle(&self) {
        let mut g = self.inner.lock();
        if g.wal_pages >= WAL_IDLE_PAGES && g.lost.is_none() && !g.paused() {
            g.checkpoint(Why::Idle);
        }
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(|_| ())
        .map_err(backend)
}

/// Roll the open batch back and remember that it was lost; returns the error to report.
fn lose_batch(inner: &mut Inner, e: StoreError) -> StoreError {
    if !inner.conn.is_autocommit() {
        let _ = inner.conn.execute_batch("ROLLBACK");
    }
    if inner.in_batch {
        inner.lost = Some(e.clone());
    }
    inner.in_batch = false;
    // The batch may have reserved them.
    inner.job_ids.clear();
    e
}

/// One transaction (the open batch's first one, or a savepoint of it).
struct SqlTxn<'c> {
    conn: &'c Connection,
    st: TxnState,
    /// The store's reserved job ids, lent for the transaction ([`Inner::job_ids`]).
    job_ids: Vec<JobId>,
}

impl SqlTxn<'_> {
    /// Run a statement; the number of rows changed.
    fn run<P: Params>(&self, sql: &str, p: P) -> usize {
        let r = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(p))
            .map_err(backend);
        self.st.ok(r)
    }

    /// The first column of the first row, if any.
    fn one<T: rusqlite::types::FromSql, P: Params>(&self, sql: &str, p: P) -> Option<T> {
        let r = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut st| st.query_row(p, |r| r.get::<_, T>(0)).optional())
            .map_err(backend);
        self.st.ok(r)
    }

    /// The first column of every row.
    fn all<T: rusqlite::types::FromSql, P: Params>(&self, sql: &str, p: P) -> Vec<T> {
        let r = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut st| {
                let rows = st.query_map(p, |r| r.get::<_, T>(0))?;
                rows.collect::<Result<Vec<T>, _>>()
            })
            .map_err(backend);
        self.st.ok(r)
    }

    /// Advance the counter `key` by `by`; its new value.
    fn counter(&self, key: &str, by: i64) -> i64 {
        self.one(
            "UPDATE meta SET v = v + ?2 WHERE k = ?1 RETURNING v",
            params![key, by],
        )
        .unwrap_or_else(|| {
            self.st
                .fail(StoreError::Corrupt(format!("meta row {key} is missing")));
            0
        })
    }
}

/// Ready ids fetched per page.
const READY_PAGE: i64 = 64;

/// Job ids reserved in one `UPDATE` of the counter, instead of one per job. Safe against a
/// crash: the reservation is part of the batch that hands out its first id, so no id of
/// it is used unless the reservation is committed with it; a transaction that is rolled
/// back drops what is left of the block, because the reservation may be undone with it
/// (and so does a lost batch). A server that stops leaves at most this many ids unused
/// (a gap, never a second job with one id).
const JOB_ID_BLOCK: i64 = 64;

impl Txn for SqlTxn<'_> {
    fn next_job_id(&mut self) -> JobId {
        let id = match self.job_ids.pop() {
            Some(id) => id,
            None => {
                // After a failed `counter` the transaction fails, and with it this block.
                let last = self.counter("last_job_id", JOB_ID_BLOCK);
                self.job_ids = (last - JOB_ID_BLOCK + 2..=last).rev().collect();
                last - JOB_ID_BLOCK + 1
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
        let text = self.one("SELECT record FROM jobs WHERE id = ?1", params![id]);
        let job: Option<JobRecord> = self.st.record(text);
        self.st.remember(id, job.clone());
        job
    }

    fn wake_hint(&self) -> Option<Millis> {
        self.st.wake_hint()
    }

    fn put_job(&mut self, job: JobRecord) {
        let row = match JobRow::of(&job) {
            Ok(r) => r,
            Err(e) => return self.st.fail(e),
        };
        self.run(
            "INSERT INTO jobs (id, ready_action, cookie, claim_worker, wake_at, subscribed, \
                lock_type, lock_value, state, parent, record) \
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (id) DO UPDATE SET ready_action = excluded.ready_action, \
                cookie = excluded.cookie, claim_worker = excluded.claim_worker, \
                wake_at = excluded.wake_at, subscribed = excluded.subscribed, \
                lock_type = excluded.lock_type, lock_value = excluded.lock_value, \
                state = excluded.state, parent = excluded.parent, record = excluded.record",
            params![
                row.id,
                row.ready_action,
                row.cookie,
                row.claim_worker,
                row.wake_at,
                row.subscribed,
                row.lock_type,
                row.lock_value,
                row.state,
                row.parent,
                row.record,
            ],
        );
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
        self.run("DELETE FROM jobs WHERE id = ?1", params![id]);
        self.st.remember(id, None);
        self.run(
            "INSERT OR REPLACE INTO archive (id, workflow, version, finished_at, out_args) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id,
                job.workflow,
                job.version,
                ms(job.finished_at.unwrap_or(job.updated_at)),
                out
            ],
        );
        true
    }

    fn archived(&self, id: JobId) -> Option<ArchivedJob> {
        let r = self
            .conn
            .prepare_cached(
                "SELECT workflow, version, finished_at, out_args FROM archive WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.query_row(params![id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .optional()
            })
            .map_err(backend);
        let (workflow, version, finished_at, out) = self.st.ok(r)?;
        self.st
            .archived_job(id, workflow, i64::from(version), finished_at, out)
    }

    fn purge_archived(&mut self, before: Millis, limit: usize) -> usize {
        self.run(
            "DELETE FROM archive WHERE id IN (SELECT id FROM archive WHERE finished_at < ?1 \
             ORDER BY finished_at, id LIMIT ?2)",
            params![ms(before), limit as i64],
        )
    }

    fn job_with_cookie(&self, cookie: &str) -> Option<JobRecord> {
        let r = self
            .conn
            .prepare_cached("SELECT id, record FROM jobs WHERE cookie = ?1")
            .and_then(|mut st| {
                st.query_row(params![cookie], |r| {
                    Ok((r.get::<_, JobId>(0)?, r.get::<_, String>(1)?))
                })
                .optional()
            })
            .map_err(backend);
        let (id, text) = self.st.ok(r)?;
        if let Some(cached) = self.st.cached(id) {
            return cached;
        }
        let job: Option<JobRecord> = self.st.record(Some(text));
        self.st.remember(id, job.clone());
        job
    }

    fn job_by_cookie(&self, cookie: &str) -> Option<JobId> {
        self.one("SELECT id FROM jobs WHERE cookie = ?1", params![cookie])
    }

    fn ready_jobs<'a>(&'a self, action: &str) -> Box<dyn Iterator<Item = JobId> + 'a> {
        let action = action.to_string();
        Box::new(Paged::new(READY_PAGE as usize, move |after| {
            self.all(
                "SELECT id FROM jobs WHERE ready_action = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                params![action, after, READY_PAGE],
            )
        }))
    }

    fn jobs_claimed_by(&self, worker: WorkerId) -> Vec<JobId> {
        self.all(
            "SELECT id FROM jobs WHERE claim_worker = ?1 ORDER BY id",
            params![worker],
        )
    }

    fn due_jobs(&self, now: Millis, limit: usize) -> Vec<JobId> {
        self.all(
            "SELECT id FROM jobs WHERE wake_at IS NOT NULL AND wake_at <= ?1 \
             ORDER BY wake_at, id LIMIT ?2",
            params![ms(now), limit as i64],
        )
    }

    fn next_wake(&self) -> Option<Millis> {
        self.one::<Option<i64>, _>(
            "SELECT min(wake_at) FROM jobs WHERE wake_at IS NOT NULL",
            [],
        )
        .flatten()
        .map(|t| t.max(0) as Millis)
    }

    fn scan_jobs(&self, f: &mut dyn FnMut(&JobRecord)) {
        let r = self
            .conn
            .prepare_cached("SELECT record FROM jobs")
            .and_then(|mut st| {
                let mut rows = st.query([])?;
                while let Some(row) = rows.next()? {
                    let text = row.get_ref(0)?.as_str()?;
                    match decode::<JobRecord>(text) {
                        Ok(j) => f(&j),
                        Err(e) => self.st.fail(e),
                    }
                }
                Ok(())
            })
            .map_err(backend);
        self.st.ok(r)
    }

    fn count_by_state(&self) -> Vec<(String, u64)> {
        let r = self
            .conn
            .prepare_cached("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")
            .and_then(|mut st| {
                let rows = st.query_map([], |r| {
                    Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .map_err(backend);
        self.st
            .ok(r)
            .into_iter()
            .map(|(s, n)| (s.unwrap_or_default(), n.max(0) as u64))
            .collect()
    }

    fn jobs_in_state_below(&self, state: JobState, below: JobId, limit: usize) -> Vec<JobRecord> {
        let texts = self.all(
            "SELECT record FROM jobs WHERE state = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
            params![state.as_str(), below, limit as i64],
        );
        self.st.records(texts)
    }

    fn children_of(&self, parent: JobId) -> Vec<JobId> {
        self.all(
            "SELECT id FROM jobs WHERE parent = ?1 ORDER BY id",
            params![parent],
        )
    }

    fn disabled_actions(&self) -> Vec<String> {
        self.all("SELECT action FROM disabled_actions ORDER BY action", [])
    }

    fn set_action_disabled(&mut self, action: &str, disabled: bool) -> bool {
        if disabled {
            self.run(
                "INSERT INTO disabled_actions (action) VALUES (?1) ON CONFLICT DO NOTHING",
                params![action],
            ) > 0
        } else {
            self.run(
                "DELETE FROM disabled_actions WHERE action = ?1",
                params![action],
            ) > 0
        }
    }

    fn lock(&self, locktype: &str, lockvalue: &str) -> Option<LockRecord> {
        let text = self.one(
            "SELECT record FROM locks WHERE locktype = ?1 AND lockvalue = ?2",
            params![locktype, lockvalue],
        );
        self.st.record(text)
    }

    fn put_lock(&mut self, lock: LockRecord) {
        let record = match encode(&lock) {
            Ok(r) => r,
            Err(e) => return self.st.fail(e),
        };
        self.run(
            "INSERT INTO locks (locktype, lockvalue, holder, record) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (locktype, lockvalue) DO UPDATE SET holder = excluded.holder, \
                record = excluded.record",
            params![lock.locktype, lock.lockvalue, lock.holder, record],
        );
    }

    fn delete_lock(&mut self, locktype: &str, lockvalue: &str) -> bool {
        self.run(
            "DELETE FROM locks WHERE locktype = ?1 AND lockvalue = ?2",
            params![locktype, lockvalue],
        ) > 0
    }

    fn jobs_below(&self, below: JobId, limit: usize) -> Vec<JobRecord> {
        let texts = self.all(
            "SELECT record FROM jobs WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            params![below, limit as i64],
        );
        self.st.records(texts)
    }

    fn archived_below(&self, below: JobId, limit: usize) -> Vec<ArchivedJob> {
        let r = self
            .conn
            .prepare_cached(
                "SELECT id, workflow, version, finished_at, out_args FROM archive \
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )
            .and_then(|mut st| {
                let rows = st.query_map(params![below, limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .map_err(backend);
        self.st
            .ok(r)
            .into_iter()
            .filter_map(|(id, workflow, version, finished_at, out)| {
                self.st
                    .archived_job(id, workflow, i64::from(version), finished_at, out)
            })
            .collect()
    }

    fn all_locks(&self, locktype: Option<&str>, limit: usize) -> Vec<LockRecord> {
        let texts = self.all(
            "SELECT record FROM locks WHERE ?1 IS NULL OR locktype = ?1 \
             ORDER BY locktype, lockvalue LIMIT ?2",
            params![locktype, limit as i64],
        );
        self.st.records(texts)
    }

    fn locks_held_by(&self, job: JobId) -> Vec<LockRecord> {
        let texts = self.all(
            "SELECT record FROM locks WHERE holder = ?1 ORDER BY locktype, lockvalue",
            params![job],
        );
        self.st.records(texts)
    }

    fn lock_waiters(&self, locktype: &str, lockvalue: &str) -> Vec<JobId> {
        self.all(
            "SELECT id FROM jobs WHERE lock_type = ?1 AND lock_value = ?2 ORDER BY id",
            params![locktype, lockvalue],
        )
    }

    fn next_event_id(&mut self) -> i64 {
        self.counter("last_event_id", 1)
    }

    fn subscribed_jobs(&self) -> Vec<JobId> {
        self.all("SELECT id FROM jobs WHERE subscribed = 1 ORDER BY id", [])
    }

    fn next_worker_id(&mut self) -> WorkerId {
        self.counter("last_worker_id", 1)
    }

    fn worker(&self, id: WorkerId) -> Option<WorkerRecord> {
        let text = self.one("SELECT record FROM workers WHERE id = ?1", params![id]);
        self.st.record(text)
    }

    fn active_worker(&self, name: &str) -> Option<WorkerRecord> {
        let text = self.one(
            "SELECT record FROM workers WHERE name = ?1 ORDER BY id DESC LIMIT 1",
            params![name],
        );
        self.st.record(text)
    }

    fn active_workers(&self) -> Vec<WorkerRecord> {
        let texts = self.all("SELECT record FROM workers ORDER BY id", []);
        self.st.records(texts)
    }

    fn put_worker(&mut self, worker: WorkerRecord) {
        if !worker.active {
            self.run("DELETE FROM workers WHERE id = ?1", params![worker.id]);
            return;
        }
        let record = match encode(&worker) {
            Ok(r) => r,
            Err(e) => return self.st.fail(e),
        };
        self.run(
            "INSERT INTO workers (id, name, record) VALUES (?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, record = excluded.record",
            params![worker.id, worker.name, record],
        );
    }
}
