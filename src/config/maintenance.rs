//! `maintenance:` — scheduled maintenance jobs and the window they may run in.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Error, invalid};

/// Scheduled maintenance (`ops::jobs`). Each job runs on exactly one agent per tick.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Maintenance {
    /// Run the jobs when serving. Default true (there are no jobs by default).
    pub enable: bool,
    /// Jobs run only inside this daily window (UTC); a tick outside it is skipped. Default
    /// none: any time.
    pub window: Option<Window>,
    /// The jobs. Default none.
    pub jobs: Vec<Job>,
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance { enable: true, window: None, jobs: Vec::new() }
    }
}

/// A daily window, `HH:MM` to `HH:MM` in UTC; `start` after `end` spans midnight.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: String,
    pub end: String,
}

impl Window {
    /// Minutes after midnight of `start` and `end` (validated at load).
    pub fn minutes(&self) -> Option<(u32, u32)> {
        Some((minutes(&self.start)?, minutes(&self.end)?))
    }
}

/// `HH:MM` → minutes after midnight.
fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// `VACUUM (ANALYZE)` each table whose dead rows pass `dead_tuple_ratio` and
    /// `min_dead_tuples`.
    VacuumAnalyze,
    /// `ANALYZE` each table changed by more than `changed_ratio` of its rows since its last
    /// analyze (or never analysed).
    Analyze,
    /// `REINDEX INDEX CONCURRENTLY` each B-tree index whose estimated bloat passes `bloat_pct`.
    ReindexBloated,
    /// Terminate client sessions idle for `idle_for` (never dbagent's own nor a superuser's).
    CloseIdleSessions,
}

/// One scheduled job. The thresholds apply to the action named; setting one that belongs to
/// another action is an error.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Unique among the jobs; names the job in the history and `/health`.
    pub name: String,
    /// Cron (5 or 6 fields, UTC).
    pub schedule: String,
    pub action: JobAction,
    /// vacuum_analyze: dead rows as a share of all rows. Default 0.2.
    pub dead_tuple_ratio: Option<f64>,
    /// vacuum_analyze: and at least this many dead rows. Default 1000.
    pub min_dead_tuples: Option<i64>,
    /// analyze: rows changed since the last analyze as a share of all rows. Default 0.1.
    pub changed_ratio: Option<f64>,
    /// reindex_bloated: estimated bloat in percent. Default 30.
    pub bloat_pct: Option<f64>,
    /// close_idle_sessions: idle at least this long (`30m`, `2h`). Default `30m`.
    pub idle_for: Option<String>,
}

impl Job {
    pub fn dead_tuple_ratio(&self) -> f64 {
        self.dead_tuple_ratio.unwrap_or(0.2)
    }

    pub fn min_dead_tuples(&self) -> i64 {
        self.min_dead_tuples.unwrap_or(1000)
    }

    pub fn changed_ratio(&self) -> f64 {
        self.changed_ratio.unwrap_or(0.1)
    }

    pub fn bloat_pct(&self) -> f64 {
        self.bloat_pct.unwrap_or(30.0)
    }

    pub fn idle_for(&self) -> &str {
        self.idle_for.as_deref().unwrap_or("30m")
    }

    /// The threshold fields set that `action` does not read, by name.
    fn foreign_fields(&self) -> Vec<&'static str> {
        let set = [
            ("dead_tuple_ratio", self.dead_tuple_ratio.is_some(), JobAction::VacuumAnalyze),
            ("min_dead_tuples", self.min_dead_tuples.is_some(), JobAction::VacuumAnalyze),
            ("changed_ratio", self.changed_ratio.is_some(), JobAction::Analyze),
            ("bloat_pct", self.bloat_pct.is_some(), JobAction::ReindexBloated),
            ("idle_for", self.idle_for.is_some(), JobAction::CloseIdleSessions),
        ];
        set.into_iter().filter(|(_, is_set, owner)| *is_set && *owner != self.action).map(|(name, ..)| name).collect()
    }
}

impl Maintenance {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if let Some(window) = &self.window
            && window.minutes().is_none()
        {
            return invalid("maintenance.window", "start and end must be HH:MM (UTC), e.g. start: \"01:00\", end: \"05:00\"");
        }
        for (i, job) in self.jobs.iter().enumerate() {
            let key = |field: &str| format!("maintenance.jobs[{i}].{field}");
            if job.name.trim().is_empty() || self.jobs[..i].iter().any(|other| other.name == job.name) {
                return invalid(&key("name"), "give each job a name of its own");
            }
            if let Err(err) = croner::Cron::from_str(&job.schedule) {
                return invalid(&key("schedule"), format!("not a cron expression: {err}"));
            }
            if let Some(field) = job.foreign_fields().first() {
                return invalid(&key(field), format!("does not apply to action {:?}", job.action));
            }
            let ratio_ok = |r: Option<f64>| r.is_none_or(|r| (0.0..=1.0).contains(&r));
            if !ratio_ok(job.dead_tuple_ratio) || !ratio_ok(job.changed_ratio) {
                return invalid(&key("action"), "ratios are between 0 and 1");
            }
            if job.bloat_pct.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
                return invalid(&key("bloat_pct"), "a percentage, between 0 and 100");
            }
            if job.idle_for.as_deref().is_some_and(|t| super::parse_duration(t).is_none()) {
                return invalid(&key("idle_for"), "a duration such as 30m or 2h");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<(), String> {
        let m: Maintenance = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        m.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn jobs_are_checked_with_their_key() {
        let ok = "window: {start: \"22:00\", end: \"04:00\"}\njobs:\n  - {name: v, schedule: \"0 3 * * *\", action: vacuum_analyze, dead_tuple_ratio: 0.1}\n  - {name: i, schedule: \"*/5 * * * *\", action: close_idle_sessions, idle_for: 1h}";
        assert_eq!(parse(ok), Ok(()));
        let cases = [
            ("jobs: [{name: v, schedule: \"nope\", action: analyze}]", "maintenance.jobs[0].schedule"),
            ("jobs: [{name: v, schedule: \"0 3 * * *\", action: analyze, bloat_pct: 3}]", "maintenance.jobs[0].bloat_pct"),
            ("jobs: [{name: v, schedule: \"0 3 * * *\", action: analyze}, {name: v, schedule: \"0 3 * * *\", action: analyze}]", "maintenance.jobs[1].name"),
            ("window: {start: \"25:00\", end: \"04:00\"}", "maintenance.window"),
        ];
        for (yaml, key) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(key), "{yaml}: {err}");
        }
        assert!(parse("jobs: [{name: v, schedule: \"0 3 * * *\", action: defrag}]").is_err());
        assert!(parse("jobs: [{name: v, schedule: \"0 3 * * *\", action: analyze, extra: 1}]").is_err());
    }
}
