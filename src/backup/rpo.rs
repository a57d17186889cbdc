//! The recovery point objective as measured: how far back in time the newest WAL that is safe
//! in the archive reaches. A pure tracker fed once a second with the server's WAL position
//! and the archive's safe position (`stream.rs` reads both).
//!
//! "Safe" is what a recovery could replay if the server were lost now: for `pg_receivewal`
//! streaming, what it has written (flushed, with `synchronous`); for `archive_command`, the end
//! of the last archived segment. The RPO is the time since the server's WAL position was last
//! at or below the safe position: a server that writes nothing has an RPO of zero however old
//! its last segment is, and one whose stream stalls sees its RPO grow second by second. The
//! resolution is the sampling interval.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

/// Samples older than this are dropped (the RPO is then reported as at least this old).
const HORIZON_SECONDS: i64 = 24 * 3600;
/// At most this many samples are kept (a day at one a second would be 86,400: thinned).
const MAX_SAMPLES: usize = 4096;

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct RpoTracker {
    /// `(when, server's WAL position)`, oldest first, positions not decreasing.
    samples: VecDeque<(DateTime<Utc>, u64)>,
    /// The highest safe position seen.
    safe: Option<u64>,
    /// The newest time at which everything the server had written was safe.
    caught_up_at: Option<DateTime<Utc>>,
    /// When the first sample was taken (the RPO is unknown but at least this old before any
    /// position was safe).
    since: Option<DateTime<Utc>>,
}

impl RpoTracker {
    /// Records that at `at` the server's WAL reached `server` and the archive holds up to `safe`
    /// (`None` when unknown just now: the last known safe position stands).
    pub fn observe(&mut self, at: DateTime<Utc>, server: u64, safe: Option<u64>) {
        self.since.get_or_insert(at);
        // A position lower than the last (a server restored or replaced under the same name)
        // starts the history again.
        if self.samples.back().is_some_and(|(_, lsn)| *lsn > server) {
            self.samples.clear();
            self.safe = None;
        }
        if let Some(safe) = safe {
            self.safe = Some(self.safe.map_or(safe, |s| s.max(safe)));
        }
        self.samples.push_back((at, server));
        let Some(safe) = self.safe else { return };
        // Every sample at or below the safe position is covered; the newest of them is the
        // moment the archive caught up with.
        while let Some(&(when, lsn)) = self.samples.front() {
            if lsn > safe {
                break;
            }
            self.caught_up_at = Some(self.caught_up_at.map_or(when, |c| c.max(when)));
            self.samples.pop_front();
        }
        let horizon = at - chrono::Duration::seconds(HORIZON_SECONDS);
        while self.samples.len() > 1 && self.samples.front().is_some_and(|(when, _)| *when < horizon) {
            self.samples.pop_front();
        }
        if self.samples.len() > MAX_SAMPLES {
            // Keep every other sample of the older half: the resolution of an old RPO matters less.
            let half = self.samples.len() / 2;
            let older: Vec<_> = self.samples.drain(..half).enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, s)| s).collect();
            for sample in older.into_iter().rev() {
                self.samples.push_front(sample);
            }
        }
    }

    /// The RPO at `now` in seconds: `None` before the first sample.
    pub fn seconds(&self, now: DateTime<Utc>) -> Option<f64> {
        let since = self.since?;
        // Nothing unsafe is pending when every sample was covered.
        if self.samples.is_empty() {
            return Some(0.0);
        }
        let from = self.caught_up_at.unwrap_or(since);
        Some(((now - from).num_milliseconds().max(0)) as f64 / 1000.0)
    }

    /// The highest safe position seen.
    pub fn safe(&self) -> Option<u64> {
        self.safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn an_idle_server_has_no_rpo_however_old_its_wal() {
        let mut rpo = RpoTracker::default();
        assert_eq!(rpo.seconds(t(0)), None);
        for s in 0..100 {
            rpo.observe(t(s), 1000, Some(1000));
        }
        assert_eq!(rpo.seconds(t(100)), Some(0.0));
    }

    #[test]
    fn a_stalled_stream_grows_from_the_moment_it_was_last_caught_up() {
        let mut rpo = RpoTracker::default();
        rpo.observe(t(0), 100, Some(100));
        rpo.observe(t(1), 200, Some(200));
        // From here the server writes and nothing more is safe.
        for s in 2..10 {
            rpo.observe(t(s), 200 + s as u64 * 100, None);
        }
        assert_eq!(rpo.seconds(t(10)), Some(9.0));
        // The stream catches up to what the server had at t(5): safe up to then.
        rpo.observe(t(10), 2000, Some(700));
        assert_eq!(rpo.seconds(t(10)), Some(5.0));
        rpo.observe(t(11), 2000, Some(2000));
        assert_eq!(rpo.seconds(t(11)), Some(0.0));
    }

    #[test]
    fn never_safe_counts_from_the_first_sample_and_a_reset_server_starts_again() {
        let mut rpo = RpoTracker::default();
        rpo.observe(t(0), 100, None);
        rpo.observe(t(30), 200, None);
        assert_eq!(rpo.seconds(t(30)), Some(30.0));
        rpo.observe(t(31), 50, Some(50));
        assert_eq!(rpo.seconds(t(31)), Some(0.0));
    }

    #[test]
    fn memory_stays_bounded_under_a_long_stall() {
        let mut rpo = RpoTracker::default();
        rpo.observe(t(0), 0, Some(0));
        for s in 1..20_000 {
            rpo.observe(t(s), s as u64, None);
        }
        assert!(rpo.samples.len() <= MAX_SAMPLES + 1);
        assert_eq!(rpo.seconds(t(20_000)), Some(20_000.0));
    }
}
