//! `GET /advisor/config` and `POST /advisor/config/apply`: reads what [`super::tune`] decides
//! from (pg_settings, the host, the workload, this agent's pool), and applies chosen settings
//! with `ALTER SYSTEM` and a reload on a `dbagent maintenance` session (`ALTER SYSTEM` refuses a
//! transaction block). Settings that only a restart applies are reported, not written, unless
//! the request says `include_restart_only` (then written, and reported as pending a restart).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::Error;
use super::tune::{self, Advice, Current, Host, PoolAdvice, PoolUse, Storage, Workload};
use crate::db::{self, Pools, sql};

/// `GET /advisor/config?memory=&cpus=&storage=`: the host, when dbagent does not run it.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdviceRequest {
    /// The database host's memory: `16GB`, `512MB` or bytes.
    pub memory: Option<String>,
    pub cpus: Option<u32>,
    /// `ssd` (default) or `hdd`.
    pub storage: Option<Storage>,
}

/// The advice.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ConfigAdvice {
    pub host: Host,
    pub workload: Workload,
    pub settings: Vec<Advice>,
    pub pool: PoolAdvice,
}

/// `16GB`, `512MB`, `64kB` or a number of bytes.
pub fn parse_memory(text: &str) -> Result<u64, Error> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| Error::Invalid(format!("memory: {text:?} is not a size such as 16GB")))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" | "k" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        "TB" | "T" => 1 << 40,
        _ => return Err(Error::Invalid(format!("memory: unknown unit {unit:?}; use kB, MB, GB or TB"))),
    };
    n.checked_mul(scale).filter(|b| *b > 0).ok_or_else(|| Error::Invalid("memory: give a size above zero".into()))
}

/// The host: as given, else the local one when dbagent runs the database here.
async fn host(request: &AdviceRequest, managed: bool) -> Result<Host, Error> {
    let storage = request.storage.unwrap_or_default();
    let given = request.memory.as_deref().map(parse_memory).transpose()?;
    if given.is_some() || request.cpus.is_some() || !managed {
        let source = if given.is_some() || request.cpus.is_some() { "given" } else { "unknown" };
        return Ok(Host { memory_bytes: given, cpus: request.cpus, storage, source: source.into() });
    }
    let local = crate::monitor::system::report(None).await;
    Ok(Host {
        memory_bytes: local.memory.map(|m| m.total_bytes),
        cpus: u32::try_from(local.cpus).ok(),
        storage,
        source: "managed instance host".into(),
    })
}

async fn current_settings(pools: &Pools, names: &[&str]) -> Result<Vec<Current>, Error> {
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let rows = pools.primary().query(include_str!("sql/settings.sql"), &[&names]).await?;
    let current = |r: &tokio_postgres::Row| -> Result<Current, db::Error> {
        Ok(Current {
            name: db::get(r, "name")?,
            setting: db::get(r, "setting")?,
            unit: db::get(r, "unit")?,
            context: db::get(r, "context")?,
            pending_restart: db::get(r, "pending_restart")?,
        })
    };
    Ok(rows.iter().map(current).collect::<Result<_, _>>()?)
}

async fn workload(pools: &Pools) -> Result<Workload, Error> {
    let primary = pools.primary();
    let rows = primary.query(include_str!("sql/workload.sql"), &[]).await?;
    let w = rows.first().ok_or_else(|| db::Error::UnexpectedAnswer { reason: "no workload row".into() })?;
    let version = primary.query("SELECT current_setting('server_version_num')::int4 AS v", &[]).await?;
    let version: i32 = version.first().map(|r| db::get(r, "v")).transpose()?.unwrap_or(0);
    let checkpoints_sql = if version >= 170_000 { include_str!("sql/checkpoints_17.sql") } else { include_str!("sql/checkpoints_16.sql") };
    let rows = primary.query(checkpoints_sql, &[]).await?;
    let c = rows.first().ok_or_else(|| db::Error::UnexpectedAnswer { reason: "no checkpoint row".into() })?;
    let stats = pools.stats();
    Ok(Workload {
        active_sessions: db::get(w, "active_sessions")?,
        client_sessions: db::get(w, "client_sessions")?,
        temp_files: db::get(w, "temp_files")?,
        temp_bytes: db::get(w, "temp_bytes")?,
        cache_hit_ratio: db::get(w, "cache_hit_ratio")?,
        checkpoints_timed: db::get(c, "timed")?,
        checkpoints_requested: db::get(c, "requested")?,
        buffers_backend: db::get(c, "buffers_backend")?,
        buffers_checkpoint: db::get(c, "buffers_checkpoint")?,
        buffers_clean: db::get(c, "buffers_clean")?,
        wal_bytes: db::get(c, "wal_bytes")?,
        wal_seconds: db::get(c, "wal_seconds")?,
        pool_max_total: stats.primary.max,
        agents: u32::try_from(db::get::<i64>(w, "agents")?).unwrap_or(1).max(1),
        superuser_reserved: db::get(w, "superuser_reserved")?,
    })
}

/// The advice for this server; `managed`: dbagent runs it on this host.
pub async fn advise(pools: &Pools, request: &AdviceRequest, managed: bool) -> Result<ConfigAdvice, Error> {
    let host = host(request, managed).await?;
    let settings = current_settings(pools, tune::SETTINGS).await?;
    let workload = workload(pools).await?;
    let advice = tune::advise(&settings, &host, &workload);
    let primary = pools.stats().primary;
    let pool = PoolUse { min: primary.min, max: primary.max, acquired: primary.acquired, acquired_after_wait: primary.acquired_after_wait, acquire_timeouts: primary.acquire_timeouts };
    let max_connections = settings.iter().find(|s| s.name == "max_connections").and_then(|s| s.setting.parse().ok()).unwrap_or(100);
    let pool = tune::pool_advice(&pool, host.cpus, max_connections, workload.agents);
    Ok(ConfigAdvice { host, workload, settings: advice, pool })
}

/// `POST /advisor/config/apply`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    pub settings: Vec<Change>,
    /// Also write settings that only a restart applies (they stay pending until then).
    #[serde(default)]
    pub include_restart_only: bool,
}

/// One setting to change (`value` as `ALTER SYSTEM` takes it: `4GB`, `1.1`, `on`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub name: String,
    pub value: String,
}

/// What became of one change.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Applied {
    pub name: String,
    pub value: String,
    /// Written with ALTER SYSTEM (and reloaded).
    pub applied: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// `pg_settings` after the reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    pub pending_restart: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Longest wait for the reload to reach the session reading the settings back.
const RELOAD_WAIT: Duration = Duration::from_secs(3);

pub async fn apply(pools: &Pools, request: &ApplyRequest) -> Result<Vec<Applied>, Error> {
    if request.settings.is_empty() {
        return Err(Error::Invalid("settings: give at least one {name, value}".into()));
    }
    let names: Vec<&str> = request.settings.iter().map(|c| c.name.as_str()).collect();
    let known = current_settings(pools, &names).await?;
    if let Some(unknown) = names.iter().find(|n| !known.iter().any(|k| k.name == **n)) {
        return Err(Error::Invalid(format!("no setting named {unknown}")));
    }
    let client = db::admin::connect(&pools.admin_config(), db::Purpose::Maintenance)
        .await
        .map_err(|e| db::Error::Unavailable { reason: db::error_chain(&e) })?;
    let mut out = Vec::new();
    for change in &request.settings {
        let Some(current) = known.iter().find(|k| k.name == change.name) else { continue };
        out.push(write(&client, change, current, request.include_restart_only).await);
    }
    if out.iter().any(|a| a.applied) {
        client.batch_execute("SELECT pg_reload_conf()").await.map_err(Error::driver)?;
        read_back(&client, &known, &mut out).await?;
    }
    Ok(out)
}

async fn write(client: &Client, change: &Change, current: &Current, include_restart_only: bool) -> Applied {
    let mut applied = Applied { name: change.name.clone(), value: change.value.clone(), applied: false, statement: None, now: None, pending_restart: false, reason: None };
    let refusal = match current.context.as_str() {
        "internal" => Some("fixed when the server was built or initialised".to_string()),
        "postmaster" if !include_restart_only => Some("takes effect only after a server restart; pass include_restart_only: true to write it for the next one".into()),
        _ => None,
    };
    if let Some(reason) = refusal {
        applied.reason = Some(reason);
        applied.pending_restart = current.context == "postmaster";
        return applied;
    }
    let statement = format!("ALTER SYSTEM SET {} = {}", sql::ident(&change.name), sql::literal(&change.value));
    match client.batch_execute(&statement).await {
        Ok(()) => {
            applied.applied = true;
            applied.statement = Some(format!("{statement};"));
        }
        Err(err) => applied.reason = Some(err.as_db_error().map_or_else(|| db::error_chain(&err), |e| e.message().to_owned())),
    }
    applied
}

/// Reads the applied settings back once the reload reached this session (or the wait ran out).
async fn read_back(client: &Client, before: &[Current], out: &mut [Applied]) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let mut settled = true;
        for a in out.iter_mut().filter(|a| a.applied) {
            let row = client
                .query_one("SELECT setting, pending_restart FROM pg_settings WHERE name = $1", &[&a.name])
                .await
                .map_err(Error::driver)?;
            let (now, pending): (String, bool) = (row.get(0), row.get(1));
            let was = before.iter().find(|b| b.name == a.name).map(|b| b.setting.as_str());
            settled &= pending || Some(now.as_str()) != was;
            a.now = Some(now);
            a.pending_restart = pending;
        }
        if settled || started.elapsed() > RELOAD_WAIT {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_read_as_bytes() {
        assert_eq!(parse_memory("16GB").unwrap(), 16 << 30);
        assert_eq!(parse_memory("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1048576").unwrap(), 1 << 20);
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("3PB").is_err());
        assert!(parse_memory("0").is_err());
    }
}
