//! Configuration advice: from the server's settings, the host's memory and cores and the
//! observed workload to a suggested value per setting, with the evidence and the `ALTER SYSTEM`
//! statement. Pure functions; [`super::settings`] reads the inputs and applies the choices.
//!
//! The rules and where they come from:
//! * PGTune (github.com/le0pard/pgtune, `src/features/configuration/`), "mixed" / "web"
//!   profile: `shared_buffers` = RAM/4; `effective_cache_size` = RAM·3/4;
//!   `maintenance_work_mem` = RAM/16 capped at 2 GB; `work_mem` = (RAM − shared_buffers) /
//!   (max_connections · 3) / parallel workers per gather, at least 64 kB; `wal_buffers` = 3 % of
//!   shared_buffers, capped at 16 MB; `checkpoint_completion_target` 0.9; `random_page_cost`
//!   1.1 on SSD (4 on spinning disks); `effective_io_concurrency` 200 on SSD (2 on disks);
//!   `max_wal_size` 4 GB.
//! * The documentation, "WAL Configuration": checkpoints should be triggered by time, not by
//!   WAL volume; a large share of requested checkpoints means `max_wal_size` is too small.
//! * "Resource Consumption": temporary files mean sorts and hashes spilled past `work_mem`.
//! * Autovacuum ("Routine Vacuuming"): the default cost limit (200 shared by all workers) was
//!   sized for spinning disks; on SSD 1000–2000 lets workers keep up. Workers: 3 at least, up
//!   to a quarter of the cores.
//! * `max_connections` must hold every agent's pool maxima plus other clients and the
//!   superuser reserve; pool sizing starts from the PostgreSQL wiki's "Number Of Database
//!   Connections": about cores × 2 (+ spindles) active connections keep a server busy.

use serde::{Deserialize, Serialize};

use crate::db::sql;

/// The storage under the data directory (sets `random_page_cost` and I/O concurrency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    #[default]
    Ssd,
    Hdd,
}

/// The database host as the advice sees it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Host {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<u32>,
    pub storage: Storage,
    /// Where the figures came from: `managed instance host`, `given`, or `unknown`.
    pub source: String,
}

/// A setting as `pg_settings` has it.
#[derive(Debug, Clone, Serialize)]
pub struct Current {
    pub name: String,
    pub setting: String,
    pub unit: Option<String>,
    /// `postmaster` settings need a restart; `sighup`, `superuser`, `user` a reload.
    pub context: String,
    pub pending_restart: bool,
}

impl Current {
    /// The value in bytes, for memory settings.
    pub fn bytes(&self) -> Option<u64> {
        let n: f64 = self.setting.parse().ok()?;
        let unit = match self.unit.as_deref()? {
            "B" => 1.0,
            "kB" => 1024.0,
            "8kB" => 8192.0,
            "MB" => 1024.0 * 1024.0,
            "16MB" => 16.0 * 1024.0 * 1024.0,
            "GB" => 1024.0 * 1024.0 * 1024.0,
            _ => return None,
        };
        (n >= 0.0).then_some((n * unit) as u64)
    }

    /// As a person writes it (`128MB`, `0.9`, `200`).
    pub fn shown(&self) -> String {
        match self.bytes() {
            Some(b) if self.unit.is_some() => memory(b),
            _ => format!("{}{}", self.setting, self.unit.as_deref().unwrap_or("")),
        }
    }

    fn number(&self) -> Option<f64> {
        self.setting.parse().ok()
    }
}

/// What the server has been doing (since its statistics were reset).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Workload {
    pub active_sessions: i64,
    pub client_sessions: i64,
    pub temp_files: i64,
    pub temp_bytes: i64,
    pub cache_hit_ratio: Option<f64>,
    pub checkpoints_timed: i64,
    pub checkpoints_requested: i64,
    /// Buffers written by backends themselves (PostgreSQL 16 and before): the background
    /// writer and checkpointer did not keep up.
    pub buffers_backend: Option<i64>,
    pub buffers_checkpoint: i64,
    pub buffers_clean: i64,
    pub wal_bytes: Option<f64>,
    /// Seconds the WAL statistics cover.
    pub wal_seconds: Option<f64>,
    /// Every dbagent agent's pool maxima this agent knows of (its own), and how many agents'
    /// sessions the server shows.
    pub pool_max_total: u32,
    pub agents: u32,
    pub superuser_reserved: i64,
}

/// The advice for one setting.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Advice {
    pub name: String,
    pub current: String,
    /// `None` when there is nothing to suggest (the inputs are missing, or it is fine).
    pub suggested: Option<String>,
    /// The evidence and the rule.
    pub why: String,
    /// `ALTER SYSTEM SET ...` when a change is suggested.
    pub statement: Option<String>,
    pub restart_required: bool,
}

/// Pool sizing for this agent.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PoolAdvice {
    pub current_min: Option<u32>,
    pub current_max: u32,
    pub suggested_min: u32,
    pub suggested_max: u32,
    pub why: String,
}

/// This agent's pool as the sizing rule sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolUse {
    pub min: Option<u32>,
    pub max: u32,
    pub acquired: u64,
    pub acquired_after_wait: u64,
    pub acquire_timeouts: u64,
}

/// Every setting [`advise`] covers.
pub const SETTINGS: &[&str] = &[
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "checkpoint_completion_target",
    "random_page_cost",
    "effective_io_concurrency",
    "wal_buffers",
    "autovacuum",
    "autovacuum_max_workers",
    "autovacuum_vacuum_cost_limit",
    "max_connections",
    "max_parallel_workers_per_gather",
];

const KB: u64 = 1024;
const MB: u64 = 1024 * KB;
const GB: u64 = 1024 * MB;

/// `bytes` in the largest unit PostgreSQL takes that keeps it whole-ish: `4GB`, `512MB`, `64kB`.
pub fn memory(bytes: u64) -> String {
    if bytes >= GB && bytes % GB == 0 {
        format!("{}GB", bytes / GB)
    } else if bytes >= MB {
        format!("{}MB", bytes / MB)
    } else {
        format!("{}kB", (bytes / KB).max(1))
    }
}

/// The advice for every setting of [`SETTINGS`] that `settings` has.
pub fn advise(settings: &[Current], host: &Host, workload: &Workload) -> Vec<Advice> {
    let get = |name: &str| settings.iter().find(|s| s.name == name);
    let mut out = Vec::new();
    for name in SETTINGS {
        let Some(current) = get(name) else { continue };
        let (suggested, why) = rule(name, current, &get, host, workload);
        out.push(advice(current, suggested, why));
    }
    out
}

/// A suggestion equal to the current value is no suggestion.
fn advice(current: &Current, suggested: Option<String>, why: String) -> Advice {
    let shown = current.shown();
    let suggested = suggested.filter(|s| !same(s, &shown, current));
    let statement = suggested.as_ref().map(|value| format!("ALTER SYSTEM SET {} = {};", sql::ident(&current.name), sql::literal(value)));
    Advice { name: current.name.clone(), current: shown, suggested, why, statement, restart_required: current.context == "postmaster" }
}

fn same(suggested: &str, shown: &str, current: &Current) -> bool {
    suggested == shown || suggested.parse::<f64>().ok().zip(current.number()).is_some_and(|(a, b)| (a - b).abs() < 1e-9)
}

type Lookup<'a> = dyn Fn(&str) -> Option<&'a Current> + 'a;

fn rule<'a>(name: &str, current: &Current, get: &Lookup<'a>, host: &Host, w: &Workload) -> (Option<String>, String) {
    let ram = host.memory_bytes;
    let no_ram = || (None, "give the host's memory (--memory / ?memory=) to size this".to_string());
    let ssd = host.storage == Storage::Ssd;
    match name {
        "shared_buffers" => match ram {
            Some(ram) => (Some(memory(ram / 4)), format!("a quarter of the host's {} (PGTune)", memory(ram))),
            None => no_ram(),
        },
        "effective_cache_size" => match ram {
            Some(ram) => (Some(memory(ram / 4 * 3)), format!("three quarters of the host's {}: what the OS cache and shared buffers hold (PGTune)", memory(ram))),
            None => no_ram(),
        },
        "maintenance_work_mem" => match ram {
            Some(ram) => (Some(memory((ram / 16).min(2 * GB))), "a sixteenth of memory, at most 2GB (PGTune): faster VACUUM and index builds".into()),
            None => no_ram(),
        },
        "work_mem" => work_mem(ram, get, w),
        "wal_buffers" => {
            let shared = ram.map(|r| r / 4).or_else(|| get("shared_buffers").and_then(Current::bytes));
            match shared {
                Some(s) => (Some(memory((s * 3 / 100).clamp(64 * KB, 16 * MB))), "3 % of shared_buffers, at most 16MB (PGTune)".into()),
                None => (None, "shared_buffers unknown".into()),
            }
        }
        "max_wal_size" => max_wal_size(current, w),
        "checkpoint_completion_target" => (Some("0.9".into()), "spread checkpoint writes over 90 % of the interval (PGTune; the default since PostgreSQL 14)".into()),
        "random_page_cost" => {
            if ssd {
                (Some("1.1".into()), "SSD storage: a random read costs about as much as a sequential one (PGTune)".into())
            } else {
                (Some("4".into()), "spinning disks: the default of 4 fits".into())
            }
        }
        "effective_io_concurrency" => {
            if ssd {
                (Some("200".into()), "SSD storage handles many concurrent reads (PGTune)".into())
            } else {
                (Some("2".into()), "spinning disks (PGTune)".into())
            }
        }
        "autovacuum" => (Some("on".into()), "without autovacuum, dead rows and freeze ages grow until wraparound stops writes".into()),
        "autovacuum_max_workers" => match host.cpus {
            Some(cpus) => (Some((cpus / 4).clamp(3, 8).to_string()), format!("3 at least, a quarter of the {cpus} cores up to 8")),
            None => (None, "give the host's cores (--cpus / ?cpus=) to size this".into()),
        },
        "autovacuum_vacuum_cost_limit" => {
            if ssd {
                (Some("2000".into()), "the default 200 (shared by all workers) was sized for spinning disks; SSDs let workers go ten times faster".into())
            } else {
                (None, "the default fits spinning disks".into())
            }
        }
        "max_connections" => max_connections(current, w),
        "max_parallel_workers_per_gather" => match host.cpus {
            Some(cpus) => (Some((cpus / 2).clamp(1, 4).to_string()), format!("half of the {cpus} cores, at most 4 (PGTune)")),
            None => (None, "give the host's cores (--cpus / ?cpus=) to size this".into()),
        },
        _ => (None, String::new()),
    }
}

fn work_mem<'a>(ram: Option<u64>, get: &Lookup<'a>, w: &Workload) -> (Option<String>, String) {
    let Some(ram) = ram else { return (None, "give the host's memory (--memory / ?memory=) to size this".into()) };
    let connections = get("max_connections").and_then(Current::number).unwrap_or(100.0).max(1.0) as u64;
    let workers = get("max_parallel_workers_per_gather").and_then(Current::number).unwrap_or(2.0).max(1.0) as u64;
    let base = ((ram - ram / 4) / (connections * 3) / workers).max(64 * KB);
    let spills = if w.temp_files > 0 {
        format!("; {} temporary files ({}) since the statistics reset show sorts and hashes spilling to disk", w.temp_files, memory(w.temp_bytes.max(0) as u64))
    } else {
        "; no temporary files so far".into()
    };
    (Some(memory(base)), format!("(RAM − shared_buffers) / (max_connections {connections} × 3) / {workers} parallel workers (PGTune){spills}"))
}

fn max_wal_size(current: &Current, w: &Workload) -> (Option<String>, String) {
    let total = w.checkpoints_timed + w.checkpoints_requested;
    let share = if total > 0 { w.checkpoints_requested as f64 / total as f64 } else { 0.0 };
    let rate = match (w.wal_bytes, w.wal_seconds) {
        (Some(bytes), Some(secs)) if secs > 0.0 => format!("; WAL written at {}/min", memory((bytes / secs * 60.0) as u64)),
        _ => String::new(),
    };
    let evidence = format!("{} of {total} checkpoints were requested by WAL volume rather than timed{rate}", w.checkpoints_requested);
    let now = current.bytes().unwrap_or(GB);
    if total >= 5 && share > 0.1 {
        return (Some(memory((now * 2).max(4 * GB))), format!("{evidence}: more room between checkpoints (the documentation's WAL configuration)"));
    }
    if now < 4 * GB { (Some("4GB".into()), format!("{evidence}; PGTune's 4GB leaves checkpoints to the timer")) } else { (None, evidence) }
}

fn max_connections(current: &Current, w: &Workload) -> (Option<String>, String) {
    let now = current.number().unwrap_or(100.0) as i64;
    let agents = i64::from(w.agents.max(1));
    let others = (w.client_sessions - i64::from(w.pool_max_total) * agents).max(0);
    let needed = i64::from(w.pool_max_total) * agents + others + w.superuser_reserved + 10;
    let evidence = format!(
        "{agents} agent(s) × pool maximum {} + {others} other client sessions + {} reserved for superusers + 10 spare = {needed}",
        w.pool_max_total, w.superuser_reserved
    );
    if needed > now {
        let rounded = (needed + 9) / 10 * 10;
        (Some(rounded.to_string()), format!("{evidence}: more than the {now} allowed"))
    } else {
        (None, format!("{evidence}: fits in {now}"))
    }
}

/// Acquisitions before their waits count as evidence.
const MIN_ACQUISITIONS: u64 = 100;

/// Pool sizing: about cores × 2 connections keep the server busy (PostgreSQL wiki); waits for a
/// connection raise the maximum by half, never past the share of `max_connections` one agent
/// may take.
pub fn pool_advice(pool: &PoolUse, cpus: Option<u32>, max_connections: i64, agents: u32) -> PoolAdvice {
    let waits = pool.acquired_after_wait as f64 / pool.acquired.max(1) as f64;
    // A handful of acquisitions says nothing about waits; timeouts always do.
    let busy = pool.acquire_timeouts > 0 || (pool.acquired >= MIN_ACQUISITIONS && waits > 0.05);
    let baseline = cpus.map_or(pool.max, |c| c * 2 + 1);
    let share = ((max_connections - 10).max(1) / i64::from(agents.max(1))) as u32;
    let (max, why) = if busy {
        let raised = (pool.max + pool.max / 2).max(baseline);
        (raised, format!("{:.0} % of acquisitions waited and {} timed out: raise the maximum", waits * 100.0, pool.acquire_timeouts))
    } else {
        (baseline, format!("no acquisition waits to speak of ({:.1} %): cores × 2 + 1 keeps the server busy", waits * 100.0))
    };
    let max = max.clamp(2, share.max(2));
    PoolAdvice { current_min: pool.min, current_max: pool.max, suggested_min: (max / 4).max(1), suggested_max: max, why }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(name: &str, setting: &str, unit: Option<&str>, context: &str) -> Current {
        Current { name: name.into(), setting: setting.into(), unit: unit.map(Into::into), context: context.into(), pending_restart: false }
    }

    fn defaults() -> Vec<Current> {
        vec![
            setting("shared_buffers", "16384", Some("8kB"), "postmaster"),
            setting("effective_cache_size", "524288", Some("8kB"), "user"),
            setting("work_mem", "4096", Some("kB"), "user"),
            setting("maintenance_work_mem", "65536", Some("kB"), "user"),
            setting("max_wal_size", "1024", Some("MB"), "sighup"),
            setting("checkpoint_completion_target", "0.9", None, "sighup"),
            setting("random_page_cost", "4", None, "user"),
            setting("max_connections", "100", None, "postmaster"),
            setting("max_parallel_workers_per_gather", "2", None, "user"),
        ]
    }

    fn host(gb: u64) -> Host {
        Host { memory_bytes: Some(gb * GB), cpus: Some(8), storage: Storage::Ssd, source: "given".into() }
    }

    #[test]
    fn memory_settings_follow_pgtune_ratios() {
        let advice = advise(&defaults(), &host(16), &Workload { agents: 1, pool_max_total: 20, superuser_reserved: 3, ..Workload::default() });
        let of = |name: &str| advice.iter().find(|a| a.name == name).unwrap();
        assert_eq!(of("shared_buffers").current, "128MB");
        assert_eq!(of("shared_buffers").suggested.as_deref(), Some("4GB"));
        assert!(of("shared_buffers").restart_required);
        assert_eq!(of("shared_buffers").statement.as_deref(), Some("ALTER SYSTEM SET \"shared_buffers\" = '4GB';"));
        assert_eq!(of("effective_cache_size").suggested.as_deref(), Some("12GB"));
        assert_eq!(of("maintenance_work_mem").suggested.as_deref(), Some("1GB"));
        // (16GB − 4GB) / (100 × 3) / 2 = 20.48MB
        assert_eq!(of("work_mem").suggested.as_deref(), Some("20MB"));
        assert_eq!(of("random_page_cost").suggested.as_deref(), Some("1.1"));
        assert!(!of("random_page_cost").restart_required);
        // Already 0.9: nothing to change.
        assert_eq!(of("checkpoint_completion_target").suggested, None);
        assert_eq!(of("max_connections").suggested, None, "{}", of("max_connections").why);
    }

    #[test]
    fn without_the_hosts_memory_memory_settings_say_what_they_need() {
        let unknown = Host { memory_bytes: None, cpus: None, storage: Storage::Ssd, source: "unknown".into() };
        let advice = advise(&defaults(), &unknown, &Workload::default());
        let shared = advice.iter().find(|a| a.name == "shared_buffers").unwrap();
        assert_eq!(shared.suggested, None);
        assert!(shared.why.contains("--memory"));
    }

    #[test]
    fn requested_checkpoints_and_full_pools_raise_their_limits() {
        let w = Workload { checkpoints_timed: 10, checkpoints_requested: 30, agents: 3, pool_max_total: 40, client_sessions: 130, superuser_reserved: 3, ..Workload::default() };
        let mut settings = defaults();
        settings[4] = setting("max_wal_size", "4096", Some("MB"), "sighup");
        let advice = advise(&settings, &host(16), &w);
        let of = |name: &str| advice.iter().find(|a| a.name == name).unwrap();
        assert_eq!(of("max_wal_size").suggested.as_deref(), Some("8GB"), "{}", of("max_wal_size").why);
        // 3 × 40 + 10 others + 3 + 10 = 143 → 150
        assert_eq!(of("max_connections").suggested.as_deref(), Some("150"), "{}", of("max_connections").why);
    }

    #[test]
    fn pools_grow_when_callers_wait_and_stay_within_their_share() {
        let calm = PoolUse { min: Some(5), max: 20, acquired: 1000, acquired_after_wait: 1, acquire_timeouts: 0 };
        assert_eq!(pool_advice(&calm, Some(4), 100, 1).suggested_max, 9);
        let busy = PoolUse { min: Some(5), max: 20, acquired: 1000, acquired_after_wait: 200, acquire_timeouts: 3 };
        assert_eq!(pool_advice(&busy, Some(4), 100, 1).suggested_max, 30);
        assert_eq!(pool_advice(&busy, Some(4), 100, 4).suggested_max, 22, "(100 − 10) / 4 agents");
    }
}
