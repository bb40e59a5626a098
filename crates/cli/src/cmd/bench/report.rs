//! Latency samples (hdrhistogram), error counts and the printed / JSON report of a run.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// How many error messages are kept as examples.
const KEPT_ERRORS: usize = 5;

/// Latencies in nanoseconds plus the errors of one or more submitters.
#[derive(Debug, Clone)]
pub struct Samples {
    hist: Option<Histogram<u64>>,
    /// Operations that failed or returned a wrong result.
    pub errors: u64,
    /// The first few error messages.
    pub examples: Vec<String>,
}

impl Default for Samples {
    fn default() -> Self {
        Samples::new()
    }
}

impl Samples {
    /// No samples yet.
    pub fn new() -> Self {
        // 1 ns .. 10 min with 3 significant figures; creation cannot fail for these bounds,
        // but a failure just disables latency recording instead of panicking.
        Samples {
            hist: Histogram::new_with_bounds(1, 600_000_000_000, 3).ok(),
            errors: 0,
            examples: Vec::new(),
        }
    }

    /// Record one successful operation.
    pub fn record(&mut self, d: Duration) {
        if let Some(h) = &mut self.hist {
            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
            h.saturating_record(ns);
        }
    }

    /// Record one failed operation.
    pub fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.examples.len() < KEPT_ERRORS {
            self.examples.push(msg);
        }
    }

    /// Add another set of samples to this one.
    pub fn merge(&mut self, other: Samples) {
        if let (Some(h), Some(o)) = (&mut self.hist, &other.hist) {
            if h.add(o).is_err() {
                tracing::warn!("histogram merge failed");
            }
        }
        self.errors += other.errors;
        for e in other.examples {
            if self.examples.len() < KEPT_ERRORS {
                self.examples.push(e);
            }
        }
    }

    /// Successful operations recorded.
    pub fn ok(&self) -> u64 {
        self.hist.as_ref().map_or(0, Histogram::len)
    }

    fn micros(&self, q: Option<f64>) -> f64 {
        let Some(h) = &self.hist else { return 0.0 };
        if h.is_empty() {
            return 0.0;
        }
        let ns = match q {
            None => h.min(),
            Some(q) if q >= 1.0 => h.max(),
            Some(q) => h.value_at_quantile(q),
        };
        ns as f64 / 1000.0
    }

    /// min, p50, p90, p99, max in microseconds.
    pub fn latency(&self) -> Latency {
        Latency {
            min: self.micros(None),
            p50: self.micros(Some(0.5)),
            p90: self.micros(Some(0.9)),
            p99: self.micros(Some(0.99)),
            max: self.micros(Some(1.0)),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Fastest operation.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest operation.
    pub max: f64,
}

/// One measured figure: what, how many, how long.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Name of the measurement (`raw`, `call`, `ping`, `status`).
    pub name: String,
    /// The samples.
    pub samples: Samples,
    /// Wall-clock seconds of the measured phase.
    pub secs: f64,
    /// CPU seconds (user + system, all threads) this process used in the phase, if known.
    pub cpu_secs: Option<f64>,
    /// CPU seconds the server process used in the phase, when it is another process.
    pub server_cpu_secs: Option<f64>,
}

/// CPU seconds (user + system, all threads) used so far by process `pid` (default: this
/// one), from `/proc/<pid>/stat` (clock ticks of 1/100 s, Linux's fixed USER_HZ).
pub fn process_cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

impl Figure {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.samples.ok() as f64 / self.secs
        } else {
            0.0
        }
    }

    /// CPU microseconds this process spent per successful operation, if known.
    pub fn cpu_us_per_op(&self) -> Option<f64> {
        let ok = self.samples.ok();
        self.cpu_secs
            .filter(|_| ok > 0)
            .map(|c| c * 1e6 / ok as f64)
    }

    /// CPU microseconds the (separate) server process spent per successful operation.
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        let ok = self.samples.ok();
        self.server_cpu_secs
            .filter(|_| ok > 0)
            .map(|c| c * 1e6 / ok as f64)
    }

    /// Human-readable lines; with a baseline, every figure also shows its ratio to it.
    pub fn text(&self, baseline: Option<&Figure>) -> String {
        let l = self.samples.latency();
        let mut s = format!(
            "{:<7} {:>9} ok {:>6} errors in {:>7.3} s: {:>10.0} /s",
            self.name,
            self.samples.ok(),
            self.samples.errors,
            self.secs,
            self.rate()
        );
        if let Some(b) = baseline {
            let r = ratio(self.rate(), b.rate());
            s.push_str(&format!(
                " ({r:.3}x raw rate, raw/this {:.2})",
                ratio(1.0, r)
            ));
        }
        s.push_str(&format!(
            "\n        latency us: min {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            l.min, l.p50, l.p90, l.p99, l.max
        ));
        if let Some(b) = baseline {
            let bl = b.samples.latency();
            s.push_str(&format!(" (p50 {:.2}x raw)", ratio(l.p50, bl.p50)));
        }
        if let Some(c) = self.cpu_us_per_op() {
            s.push_str(&format!("\n        cpu of this process: {c:.1} us per op"));
        }
        if let Some(c) = self.server_cpu_us_per_op() {
            s.push_str(&format!(", of the server process: {c:.1} us per op"));
        }
        for e in &self.samples.examples {
            s.push_str(&format!("\n        error: {e}"));
        }
        s
    }

    /// The figure as a JSON object.
    pub fn json(&self, baseline: Option<&Figure>) -> Value {
        let l = self.samples.latency();
        let mut v = json!({
            "name": self.name,
            "ok": self.samples.ok(),
            "errors": self.samples.errors,
            "error_examples": self.samples.examples,
            "secs": self.secs,
            "per_sec": self.rate(),
            "latency_us": {"min": l.min, "p50": l.p50, "p90": l.p90, "p99": l.p99, "max": l.max},
            "cpu_us_per_op": self.cpu_us_per_op(),
            "server_cpu_us_per_op": self.server_cpu_us_per_op(),
        });
        if let (Some(b), Value::Object(m)) = (baseline, &mut v) {
            m.insert("ratio_to_raw".into(), json!(ratio(self.rate(), b.rate())));
            m.insert(
                "p50_ratio_to_raw".into(),
                json!(ratio(l.p50, b.samples.latency().p50)),
            );
        }
        v
    }
}

/// `a / b`, or 0 when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}
