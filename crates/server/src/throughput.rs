//! A small ring buffer of per-interval job counts (created, finished, failed) for the status page.
//!
//! Fed by [`crate::metrics::Metrics`] (job creation in the session, job ends through the
//! backend's `Observer` hook): one short mutex section per event, no allocation. It keeps
//! [`Throughput::BUCKETS`] intervals of [`Throughput::INTERVAL`]; older counts are overwritten.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// The counts of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// Jobs created through this server.
    pub(crate) created: u64,
    /// Jobs that ended (with or without an error).
    pub(crate) finished: u64,
    /// Of those, jobs that ended with an error.
    pub(crate) failed: u64,
}

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobEvent {
    Created,
    Finished { failed: bool },
}

#[derive(Debug)]
struct Ring {
    /// `(interval number, counts)`; slot `n % BUCKETS` holds interval `n` if it is recent.
    slots: Vec<(u64, Bucket)>,
}

/// Per-interval job counts over the last [`Throughput::window`].
#[derive(Debug)]
pub(crate) struct Throughput {
    start: Instant,
    ring: Mutex<Ring>,
}

impl Throughput {
    /// The length of one interval.
    pub(crate) const INTERVAL: Duration = Duration::from_secs(10);
    /// How many intervals are kept (ten minutes).
    pub(crate) const BUCKETS: usize = 60;

    /// An empty buffer whose interval 0 starts now.
    pub(crate) fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    fn starting_at(start: Instant) -> Self {
        Throughput {
            start,
            ring: Mutex::new(Ring {
                // Interval u64::MAX is never current: every slot starts out stale.
                slots: vec![(u64::MAX, Bucket::default()); Self::BUCKETS],
            }),
        }
    }

    /// The time covered by [`Throughput::snapshot`].
    pub(crate) fn window() -> Duration {
        Self::INTERVAL * Self::BUCKETS as u32
    }

    fn interval_at(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start);
        (since.as_millis() / Self::INTERVAL.as_millis()) as u64
    }

    /// Count one event now.
    pub(crate) fn record(&self, event: JobEvent) {
        self.record_at(event, Instant::now());
    }

    fn record_at(&self, event: JobEvent, now: Instant) {
        let n = self.interval_at(now);
        let mut ring = self.ring.lock();
        let slot = &mut ring.slots[(n % Self::BUCKETS as u64) as usize];
        if slot.0 != n {
            *slot = (n, Bucket::default());
        }
        match event {
            JobEvent::Created => slot.1.created += 1,
            JobEvent::Finished { failed } => {
                slot.1.finished += 1;
                if failed {
                    slot.1.failed += 1;
                }
            }
        }
    }

    /// The counts of the last [`Throughput::BUCKETS`] intervals, oldest first; the last one is
    /// the current (incomplete) interval. Intervals before the server started are zero.
    pub(crate) fn snapshot(&self) -> Vec<Bucket> {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> Vec<Bucket> {
        let current = self.interval_at(now);
        let ring = self.ring.lock();
        (0..Self::BUCKETS as u64)
            .rev()
            .map(|back| {
                let Some(n) = current.checked_sub(back) else {
                    return Bucket::default();
                };
                let (at, counts) = ring.slots[(n % Self::BUCKETS as u64) as usize];
                if at == n {
                    counts
                } else {
                    Bucket::default()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_interval_and_age_out() {
        let t0 = Instant::now();
        let t = Throughput::starting_at(t0);
        let i = Throughput::INTERVAL;
        t.record_at(JobEvent::Created, t0);
        t.record_at(JobEvent::Created, t0 + i / 2);
        t.record_at(JobEvent::Finished { failed: true }, t0 + i);
        t.record_at(JobEvent::Finished { failed: false }, t0 + i * 3);

        let s = t.snapshot_at(t0 + i * 3);
        assert_eq!(s.len(), Throughput::BUCKETS);
        let n = s.len();
        assert_eq!(
            s[n - 4],
            Bucket {
                created: 2,
                finished: 0,
                failed: 0
            }
        );
        assert_eq!(
            s[n - 3],
            Bucket {
                created: 0,
                finished: 1,
                failed: 1
            }
        );
        assert_eq!(s[n - 2], Bucket::default());
        assert_eq!(s[n - 1].finished, 1);
        assert_eq!(s[..n - 4], vec![Bucket::default(); n - 4][..]);

        // A full window later the first interval has left the window, and its slot is
        // reused for a new interval without its old counts.
        let later = t0 + i * Throughput::BUCKETS as u32;
        let s = t.snapshot_at(later);
        assert_eq!(s.iter().map(|b| b.created).sum::<u64>(), 0);
        assert_eq!(s.iter().map(|b| b.finished).sum::<u64>(), 2);
        t.record_at(JobEvent::Created, later);
        let s = t.snapshot_at(later);
        assert_eq!(s[Throughput::BUCKETS - 1].created, 1);
        assert_eq!(s.iter().map(|b| b.created).sum::<u64>(), 1);
    }

    #[test]
    fn a_quiet_server_shows_zeros() {
        let t0 = Instant::now();
        let t = Throughput::starting_at(t0);
        t.record_at(JobEvent::Created, t0);
        let s = t.snapshot_at(t0 + Throughput::window() * 5);
        assert!(s.iter().all(|b| *b == Bucket::default()));
    }
}
