//! Prometheus metrics of one server (`GET /metrics`), kept with `prometheus-client`.
//!
//! Counters are bumped where things happen (a few atomic increments per job: the
//! label's counters are looked up in a small map without allocating); gauges (connections,
//! workers, slots, queue depth) are read from the server's tables at scrape time. Labels
//! are bounded: a workflow or action label is made only after the backend accepted the
//! name (a created job, a claimed task, a finished job), so only loaded definitions appear.

use crate::throughput::{JobEvent, Throughput};
use foldhash::{HashMap, HashMapExt};
use jobcenter_backend::Observer;
use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The `workflow` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkflowLabel {
    workflow: String,
}

/// The `action` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Job latency buckets: 1 ms to about 1 h (×4 steps).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 12))
}

/// The counters of one workflow, shared with the families (clones share the atomics).
struct WorkflowCounters {
    created: Counter,
    finished: Counter,
    failed: Counter,
    latency: Histogram,
}

/// Running totals over all labels, for `get_api_status stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) jobs_created: u64,
    pub(crate) jobs_finished: u64,
    pub(crate) jobs_failed: u64,
    pub(crate) tasks_dispatched: u64,
}

/// Every metric of one server.
pub(crate) struct Metrics {
    registry: Registry,
    jobs_created: Family<WorkflowLabel, Counter>,
    jobs_finished: Family<WorkflowLabel, Counter>,
    jobs_failed: Family<WorkflowLabel, Counter>,
    job_latency: HistogramFamily<WorkflowLabel>,
    tasks_dispatched: Family<ActionLabel, Counter>,
    queue_depth: Family<ActionLabel, Gauge>,
    connections: Gauge,
    workers: Gauge,
    slots_total: Gauge<f64, AtomicU64>,
    slots_used: Gauge,
    store_commit_seconds: Histogram,
    store_commit_batch: Histogram,
    /// Per-workflow counters, found by `&str` without allocating.
    workflows: RwLock<HashMap<String, Arc<WorkflowCounters>>>,
    /// Per-action dispatch counters, likewise.
    actions: RwLock<HashMap<String, Counter>>,
    totals: [AtomicU64; 4],
    /// Per-interval job counts of the last minutes (the status page's throughput).
    pub(crate) throughput: Throughput,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// All metrics, registered under the `jobcenter_` prefix.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("jobcenter");
        let jobs_created = Family::<WorkflowLabel, Counter>::default();
        let jobs_finished = Family::<WorkflowLabel, Counter>::default();
        let jobs_failed = Family::<WorkflowLabel, Counter>::default();
        let job_latency: HistogramFamily<WorkflowLabel> =
            Family::new_with_constructor(latency_histogram);
        let tasks_dispatched = Family::<ActionLabel, Counter>::default();
        let queue_depth = Family::<ActionLabel, Gauge>::default();
        let connections = Gauge::default();
        let workers = Gauge::default();
        let slots_total = Gauge::<f64, AtomicU64>::default();
        let slots_used = Gauge::default();
        // 50 µs to about 3 s.
        let store_commit_seconds = Histogram::new(exponential_buckets(0.00005, 3.0, 11));
        // 1 to 512 (the store thread's largest batch).
        let store_commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "jobs_created",
            "Jobs created through this server, per workflow",
            jobs_created.clone(),
        );
        registry.register(
            "jobs_finished",
            "Jobs that ended (successfully or with an error), per workflow",
            jobs_finished.clone(),
        );
        registry.register(
            "jobs_failed",
            "Jobs that ended with an error, per workflow (also counted in jobs_finished)",
            jobs_failed.clone(),
        );
        registry.register(
            "job_latency_seconds",
            "Time from a job's creation to its end, per workflow",
            job_latency.clone(),
        );
        registry.register(
            "tasks_dispatched",
            "Tasks claimed by workers of this server (get_task), per action",
            tasks_dispatched.clone(),
        );
        registry.register(
            "queue_depth",
            "Ready tasks waiting for a worker, per action (read at scrape time)",
            queue_depth.clone(),
        );
        registry.register("connections", "Open API connections", connections.clone());
        registry.register(
            "workers",
            "Connections with at least one announced action",
            workers.clone(),
        );
        registry.register(
            "slots_total",
            "Slots of all connected workers' slot groups",
            slots_total.clone(),
        );
        registry.register(
            "slots_used",
            "Slots in use (tasks offered to or claimed by workers)",
            slots_used.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Duration of one store sync (group commit) of a durable store",
            store_commit_seconds.clone(),
        );
        registry.register(
            "store_commit_batch",
            "Transactions made durable by one store sync",
            store_commit_batch.clone(),
        );
        Metrics {
            registry,
            jobs_created,
            jobs_finished,
            jobs_failed,
            job_latency,
            tasks_dispatched,
            queue_depth,
            connections,
            workers,
            slots_total,
            slots_used,
            store_commit_seconds,
            store_commit_batch,
            workflows: RwLock::new(HashMap::new()),
            actions: RwLock::new(HashMap::new()),
            totals: Default::default(),
            throughput: Throughput::new(),
        }
    }

    fn workflow(&self, name: &str) -> Arc<WorkflowCounters> {
        if let Some(c) = self.workflows.read().get(name) {
            return c.clone();
        }
        let label = WorkflowLabel {
            workflow: name.to_string(),
        };
        let c = Arc::new(WorkflowCounters {
            created: self.jobs_created.get_or_create(&label).clone(),
            finished: self.jobs_finished.get_or_create(&label).clone(),
            failed: self.jobs_failed.get_or_create(&label).clone(),
            latency: self.job_latency.get_or_create(&label).clone(),
        });
        self.workflows
            .write()
            .entry(label.workflow)
            .or_insert(c)
            .clone()
    }

    /// A job of `workflow` was created.
    pub(crate) fn job_created(&self, workflow: &str) {
        self.workflow(workflow).created.inc();
        self.totals[0].fetch_add(1, Ordering::Relaxed);
        self.throughput.record(JobEvent::Created);
    }

    /// A worker claimed a task of `action`.
    pub(crate) fn task_dispatched(&self, action: &str) {
        let found = self.actions.read().get(action).map(|c| {
            c.inc();
        });
        if found.is_none() {
            let label = ActionLabel {
                action: action.to_string(),
            };
            let c = self.tasks_dispatched.get_or_create(&label).clone();
            c.inc();
            self.actions.write().entry(label.action).or_insert(c);
        }
        self.totals[3].fetch_add(1, Ordering::Relaxed);
    }

    /// The running totals.
    pub(crate) fn totals(&self) -> Totals {
        let t = |i: usize| self.totals[i].load(Ordering::Relaxed);
        Totals {
            jobs_created: t(0),
            jobs_finished: t(1),
            jobs_failed: t(2),
            tasks_dispatched: t(3),
        }
    }

    /// Set the gauges from `live` (read from the server's tables and the backend by the
    /// caller), and encode everything in the Prometheus (OpenMetrics) text format.
    pub(crate) fn render(&self, live: Live) -> String {
        self.connections.set(gauge(live.connections as u64));
        self.workers.set(gauge(live.workers as u64));
        self.slots_total.set(live.slots_total);
        self.slots_used.set(gauge(live.slots_used));
        match live.ready_counts {
            Ok(counts) => {
                self.queue_depth.clear();
                for (action, n) in counts {
                    self.queue_depth
                        .get_or_create(&ActionLabel { action })
                        .set(gauge(n as u64));
                }
            }
            Err(e) => tracing::warn!(error = %e, "queue depth for /metrics failed"),
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding /metrics failed");
        }
        out
    }
}

/// The gauges read at scrape time: from the server's tables and the backend.
pub(crate) struct Live {
    /// Open connections.
    pub(crate) connections: usize,
    /// Connections with announced actions.
    pub(crate) workers: usize,
    /// Slots of all announced actions (infinite slots count as +Inf).
    pub(crate) slots_total: f64,
    /// Slots in use.
    pub(crate) slots_used: u64,
    /// Ready tasks per action, or why they could not be counted.
    pub(crate) ready_counts: Result<Vec<(String, usize)>, jobcenter_backend::BackendError>,
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Observer for Metrics {
    fn job_finished(&self, workflow: &str, failed: bool, latency: Duration) {
        let c = self.workflow(workflow);
        c.finished.inc();
        c.latency.observe(latency.as_secs_f64());
        self.totals[1].fetch_add(1, Ordering::Relaxed);
        if failed {
            c.failed.inc();
            self.totals[2].fetch_add(1, Ordering::Relaxed);
        }
        self.throughput.record(JobEvent::Finished { failed });
    }

    fn store_synced(&self, took: Duration, batch: usize) {
        self.store_commit_seconds.observe(took.as_secs_f64());
        self.store_commit_batch.observe(batch as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_with_the_families() {
        let m = Metrics::new();
        m.job_created("calladd");
        m.job_created("calladd");
        m.job_finished("calladd", false, Duration::from_millis(3));
        m.job_finished("calladd", true, Duration::from_millis(3));
        m.task_dispatched("add");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        assert!(
            out.contains("jobcenter_jobs_created_total{workflow=\"calladd\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("jobcenter_jobs_finished_total{workflow=\"calladd\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("jobcenter_jobs_failed_total{workflow=\"calladd\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("jobcenter_tasks_dispatched_total{action=\"add\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("jobcenter_job_latency_seconds_count{workflow=\"calladd\"} 2"),
            "{out}"
        );
        assert_eq!(
            m.totals(),
            Totals {
                jobs_created: 2,
                jobs_finished: 2,
                jobs_failed: 1,
                tasks_dispatched: 1
            }
        );
    }
}
