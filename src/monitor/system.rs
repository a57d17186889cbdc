//! The host's load, CPU, memory and disk (`/stats/system`), read from Linux's `/proc` and
//! `statvfs`; and this process's own CPU and memory (the `process_*` series). Only meaningful
//! for the database when dbagent runs beside its managed instance; the answer says so.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// What the host looks like now.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SystemStats {
    /// Whether these figures describe the database's host (dbagent runs its managed instance).
    pub database_host: bool,
    pub load_average: Option<[f64; 3]>,
    pub cpus: usize,
    /// Share of CPU time not idle over a 200 ms window, in percent.
    pub cpu_busy_pct: Option<f64>,
    pub memory: Option<Memory>,
    /// The filesystem of the managed instance's data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Disk>,
    pub process: Option<Process>,
}

#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub used_pct: f64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Disk {
    pub path: String,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub used_pct: f64,
}

/// dbagent's own process.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct Process {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
}

/// Reads everything; `data_dir` is the managed instance's data directory, when there is one.
pub async fn report(data_dir: Option<&Path>) -> SystemStats {
    SystemStats {
        database_host: data_dir.is_some(),
        load_average: load_average(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_busy_pct: cpu_busy(Duration::from_millis(200)).await,
        memory: memory(),
        disk: data_dir.and_then(|d| disk(d).ok()),
        process: process(),
    }
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<f64>().ok());
    Some([parts.next()??, parts.next()??, parts.next()??])
}

/// `(busy, total)` jiffies of all CPUs since boot.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    // idle + iowait
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

async fn cpu_busy(window: Duration) -> Option<f64> {
    let (b0, t0) = cpu_times()?;
    tokio::time::sleep(window).await;
    let (b1, t1) = cpu_times()?;
    let total = t1.checked_sub(t0)?;
    (total > 0).then(|| ((b1.saturating_sub(b0)) as f64 * 1000.0 / total as f64).round() / 10.0)
}

fn memory() -> Option<Memory> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    Some(Memory { total_bytes: total, available_bytes: available, used_pct: pct(total - available.min(total), total) })
}

/// Size and free space of the filesystem holding `path`.
pub fn disk(path: &Path) -> Result<Disk, nix::Error> {
    let stat = nix::sys::statvfs::statvfs(path)?;
    let block = stat.fragment_size() as u64;
    let total = stat.blocks() as u64 * block;
    let free = stat.blocks_available() as u64 * block;
    Ok(Disk { path: path.display().to_string(), total_bytes: total, free_bytes: free, used_pct: pct(total - free.min(total), total) })
}

/// This process's CPU time and resident memory, from `/proc/self/stat` (utime and stime in
/// clock ticks: 100 per second on every Linux platform dbagent builds for).
pub fn process() -> Option<Process> {
    const TICKS_PER_SECOND: f64 = 100.0;
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; the fields after it are fixed.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    Some(Process { cpu_seconds: (utime + stime) / TICKS_PER_SECOND, resident_bytes: rss_pages * 4096 })
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { (part as f64 * 1000.0 / whole as f64).round() / 10.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_host_is_described() {
        let report = report(Some(Path::new("/"))).await;
        assert!(report.cpus >= 1);
        assert!(report.memory.is_some_and(|m| m.total_bytes > 0));
        assert!(report.disk.is_some_and(|d| d.total_bytes > 0));
        assert!(report.process.is_some_and(|p| p.resident_bytes > 0));
    }
}
