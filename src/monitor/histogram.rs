//! A latency histogram of atomics: fixed buckets, one `fetch_add` per bucket hit plus sum and
//! count, so recording takes no lock and allocates nothing. Quantiles for the history are
//! estimated from bucket counts the way Prometheus' `histogram_quantile` does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds: from 100 µs (a cached read) to 10 s (a long report), about three
/// per decade, so p50/p95/p99 are estimated within a bucket's width.
pub const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Counts per bucket (not cumulative; the last slot is `+Inf`), the sum in nanoseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A copy of a [`Histogram`] at one moment; subtract two to get an interval's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub counts: [u64; BUCKETS.len() + 1],
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0; BUCKETS.len() + 1];
        for (out, c) in counts.iter_mut().zip(&self.counts) {
            *out = c.load(Ordering::Relaxed);
        }
        HistogramSnapshot { counts, sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9 }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Cumulative counts per upper bound, as the text format wants them (`le`).
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<f64>, u64)> + '_ {
        let mut total = 0;
        self.counts.iter().enumerate().map(move |(i, c)| {
            total += c;
            (BUCKETS.get(i).copied(), total)
        })
    }

    pub fn add(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_seconds += other.sum_seconds;
    }

    /// What happened between `earlier` and `self` (a counter reset reads as nothing).
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        let mut counts = [0; BUCKETS.len() + 1];
        for (i, out) in counts.iter_mut().enumerate() {
            *out = self.counts[i].saturating_sub(earlier.counts[i]);
        }
        HistogramSnapshot { counts, sum_seconds: (self.sum_seconds - earlier.sum_seconds).max(0.0) }
    }

    /// The `q` quantile (0..1) in seconds, interpolated linearly inside its bucket like
    /// Prometheus' `histogram_quantile`; `None` without observations. Observations past the
    /// last bound are reported as the last bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let Some(&upper) = BUCKETS.get(i) else { return Some(BUCKETS[BUCKETS.len() - 1]) };
                let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
                let within = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
            below += c;
        }
        Some(BUCKETS[BUCKETS.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.record(Duration::from_micros(800)); // (0.5 ms, 1 ms]
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(40)); // (25 ms, 50 ms]
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        let p50 = s.quantile(0.5).unwrap();
        assert!((0.0005..=0.001).contains(&p50), "{p50}");
        let p99 = s.quantile(0.99).unwrap();
        assert!((0.025..=0.05).contains(&p99), "{p99}");
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
        h.record(Duration::from_secs(60));
        assert_eq!(h.snapshot().quantile(1.0), Some(10.0));
        let later = h.snapshot();
        assert_eq!(later.since(&s).count(), 1);
        assert_eq!(later.cumulative().last(), Some((None, 101)));
    }
}
