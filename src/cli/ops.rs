//! `dbagent connections list|stats|cancel|kill|close-idle`, `dbagent locks` and `dbagent
//! maintenance ...`: the same library calls as `/connections`, `/locks` and `/maintenance/*`.

use clap::Subcommand;
use serde_json::Value;

use super::commands::failure;
use super::{Failure, output};
use crate::app::Agent;
use crate::ops::jobs;
use crate::ops::locks::{self, LockNode};
use crate::ops::maintenance::{self, AnalyzeRequest, Maintained, VacuumRequest};
use crate::ops::report;
use crate::ops::settings::{self, AdviceRequest, ApplyRequest, Change};
use crate::ops::tune::Storage;
use crate::ops::sessions::{self, ConnectionFilter};
use crate::ops::signal::{self, Age, CloseIdle, IdleState, Signal, SignalReport};

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Every session of the server: state, waits, ages, blockers, the query (cut).
    List {
        /// active, idle, "idle in transaction" ...
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        database: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        application: Option<String>,
        /// In the current state at least this long (30s, 5m, or seconds).
        #[arg(long)]
        min_age: Option<String>,
    },
    /// Sessions by state against max_connections, and dbagent's pools.
    Stats,
    /// Cancel the running statement of session PID (the session stays).
    Cancel {
        pid: i32,
        /// Also dbagent's own or a superuser's session.
        #[arg(long)]
        force: bool,
    },
    /// Terminate session PID (its open transaction rolls back).
    Kill {
        pid: i32,
        #[arg(long)]
        force: bool,
    },
    /// Terminate client sessions idle for at least --idle-for.
    CloseIdle {
        /// 10m by default.
        #[arg(long, default_value = "10m")]
        idle_for: String,
        /// idle, "idle in transaction", "idle in transaction (aborted)" (repeatable; default
        /// idle and idle in transaction).
        #[arg(long = "state", value_parser = parse_idle_state)]
        states: Vec<IdleState>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        application: Option<String>,
        #[arg(long)]
        database: Option<String>,
        /// List what would be closed, close nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        force: bool,
    },
}

fn parse_idle_state(text: &str) -> Result<IdleState, String> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| "expected idle, \"idle in transaction\" or \"idle in transaction (aborted)\"".to_string())
}

pub async fn connections(agent: &Agent, cmd: ConnectionsCommand, as_json: bool) -> Result<(), Failure> {
    let pools = &agent.executor.pools;
    match cmd {
        ConnectionsCommand::List { state, database, user, application, min_age } => {
            let filter = ConnectionFilter { state, database, user, application, min_age, query_chars: None };
            let sessions = sessions::list(pools, &filter).await.map_err(failure)?;
            let keys = ["pid", "database", "user", "application", "state", "wait_event", "state_seconds", "blocked_by", "query"];
            super::stats::list(&sessions, &keys, as_json)
        }
        ConnectionsCommand::Stats => {
            let stats = sessions::stats(pools).await.map_err(failure)?;
            if as_json {
                return output::key_values(&serde_json::to_value(&stats)?, true);
            }
            let mut shown = serde_json::to_value(&stats)?;
            if let Some(map) = shown.as_object_mut() {
                // The pools in a line each: size, in use, waiting, maximum.
                map.remove("pools");
                for pool in std::iter::once(&stats.pools.primary).chain(&stats.pools.replicas) {
                    let line = format!("{} open, {} in use, {} waiting, max {}", pool.total, pool.active, pool.waiting, pool.max);
                    map.insert(format!("pool {}", pool.name), Value::String(line));
                }
            }
            output::key_values(&shown, false)
        }
        ConnectionsCommand::Cancel { pid, force } => signalled(&signal::signal(pools, pid, Signal::Cancel, force).await.map_err(failure)?, as_json),
        ConnectionsCommand::Kill { pid, force } => signalled(&signal::signal(pools, pid, Signal::Terminate, force).await.map_err(failure)?, as_json),
        ConnectionsCommand::CloseIdle { idle_for, states, user, application, database, dry_run, force } => {
            let mut request = CloseIdle { idle_for: Age::Text(idle_for), user, application, database, dry_run, force, ..CloseIdle::default() };
            if !states.is_empty() {
                request.states = states;
            }
            signalled(&signal::close_idle(pools, &request).await.map_err(failure)?, as_json)
        }
    }
}

/// Which pids got the signal and which were skipped (and why).
fn signalled(report: &SignalReport, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return output::key_values(&serde_json::to_value(report)?, true);
    }
    let verb = match (report.signal, report.dry_run) {
        (_, true) => "would terminate",
        (Signal::Cancel, false) => "cancelled",
        (Signal::Terminate, false) => "terminated",
    };
    println!("{verb}: {} session(s)", report.signalled.len());
    super::stats::list(&report.signalled, &["pid", "user", "application", "state", "state_seconds"], false)?;
    if !report.skipped.is_empty() {
        println!("skipped: {} session(s)", report.skipped.len());
        super::stats::list(&report.skipped, &["pid", "user", "application", "reason"], false)?;
    }
    Ok(())
}

/// `dbagent locks`: the blocking tree, indented.
pub async fn locks(agent: &Agent, as_json: bool) -> Result<(), Failure> {
    let report = locks::report(&agent.executor.pools).await.map_err(failure)?;
    if as_json {
        return output::key_values(&serde_json::to_value(&report)?, true);
    }
    if report.head_blockers.is_empty() {
        println!("no session waits for a lock");
        return Ok(());
    }
    println!("{} session(s) waiting; head blockers first:", report.waiting_sessions);
    for head in &report.head_blockers {
        print_node(head, 0);
    }
    Ok(())
}

fn print_node(node: &LockNode, depth: usize) {
    let indent = "  ".repeat(depth);
    let waits = node.waiting_for.as_ref().map_or(String::new(), |w| {
        format!(" waits {:.1}s for {} on {}", w.seconds.unwrap_or(0.0), w.mode.as_deref().unwrap_or("?"), w.relation.as_deref().or(w.locktype.as_deref()).unwrap_or("?"))
    });
    let query: String = node.query.as_deref().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ").chars().take(80).collect();
    println!(
        "{indent}{} pid {} {}@{} [{}]{waits}: {query}",
        if depth == 0 { "■" } else { "└" },
        node.pid,
        node.user.as_deref().unwrap_or("?"),
        node.database.as_deref().unwrap_or("?"),
        node.state.as_deref().unwrap_or("?"),
    );
    for child in &node.blocking {
        print_node(child, depth + 1);
    }
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// VACUUM a table (or the whole database), showing its progress as it goes.
    Vacuum {
        #[arg(long)]
        table: Option<String>,
        #[arg(long)]
        analyze: bool,
        #[arg(long)]
        freeze: bool,
        /// Rewrite the table (ACCESS EXCLUSIVE lock while it runs): needs --force.
        #[arg(long)]
        full: bool,
        #[arg(long)]
        verbose: bool,
        #[arg(long)]
        force: bool,
    },
    /// ANALYZE a table (or the whole database).
    Analyze {
        #[arg(long)]
        table: Option<String>,
        #[arg(long)]
        verbose: bool,
    },
    /// Maintenance running on the server now (VACUUM, ANALYZE, CREATE INDEX, REINDEX ...).
    Progress,
    /// What needs upkeep: dead rows, bloat, stale statistics, wraparound, sequences, invalid
    /// indexes — each finding with the SQL that fixes it.
    Report,
    /// The scheduled jobs' runs, newest first (`dbagent.maintenance_runs`).
    History {
        #[arg(long)]
        job: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub async fn maintenance(agent: &Agent, cmd: MaintenanceCommand, as_json: bool) -> Result<(), Failure> {
    let pools = &agent.executor.pools;
    match cmd {
        MaintenanceCommand::Vacuum { table, analyze, freeze, full, verbose, force } => {
            let request = VacuumRequest { table, analyze, freeze, full, verbose, force };
            let done = with_progress(pools, maintenance::vacuum(pools, &request), as_json).await.map_err(failure)?;
            maintained(&done, as_json)
        }
        MaintenanceCommand::Analyze { table, verbose } => {
            let request = AnalyzeRequest { table, verbose };
            let done = with_progress(pools, maintenance::analyze(pools, &request), as_json).await.map_err(failure)?;
            maintained(&done, as_json)
        }
        MaintenanceCommand::Progress => {
            let running = maintenance::progress(pools).await.map_err(failure)?;
            super::stats::list(&running, &["pid", "command", "database", "relation", "phase", "pct", "seconds"], as_json)
        }
        MaintenanceCommand::Report => {
            let report = report::report(pools).await.map_err(failure)?;
            if as_json {
                return output::key_values(&serde_json::to_value(&report)?, true);
            }
            println!("{} tables checked in {:.2} s; {} finding(s)", report.tables_checked, report.seconds, report.findings.len());
            super::stats::list(&report.findings, &["severity", "check", "object", "message", "fix"], false)
        }
        MaintenanceCommand::History { job, limit } => {
            let runs = jobs::history(pools, job.as_deref(), limit).await.map_err(failure)?;
            super::stats::list(&runs, &["job", "scheduled_for", "agent", "outcome", "seconds", "statements", "error"], as_json)
        }
    }
}

/// Runs `work`, drawing a progress line on stderr from the progress views every half second
/// (not with --json, whose output is for scripts).
async fn with_progress<T>(pools: &crate::db::Pools, work: impl std::future::Future<Output = T>, as_json: bool) -> T {
    use std::io::Write;
    if as_json {
        return work.await;
    }
    tokio::pin!(work);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    let mut drawn = false;
    loop {
        tokio::select! {
            out = &mut work => {
                if drawn {
                    eprintln!();
                }
                return out;
            }
            _ = tick.tick() => {
                let Ok(running) = maintenance::progress(pools).await else { continue };
                // Ours runs on a `dbagent maintenance` session (another agent's may too).
                let ours = running.iter().find(|p| p.application.as_deref() == Some(crate::db::Purpose::Maintenance.application_name()));
                if let Some(p) = ours {
                    let pct = p.pct.unwrap_or(0.0);
                    let filled = (pct / 5.0).round() as usize;
                    eprint!("\r[{}{}] {pct:5.1}% {} {} ({})   ", "#".repeat(filled), " ".repeat(20 - filled.min(20)), p.command, p.relation.as_deref().unwrap_or(""), p.phase.as_deref().unwrap_or(""));
                    let _ = std::io::stderr().flush();
                    drawn = true;
                }
            }
        }
    }
}

fn maintained(done: &Maintained, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return output::key_values(&serde_json::to_value(done)?, true);
    }
    for line in &done.messages {
        println!("{line}");
    }
    let dead = match (done.dead_tuples_before, done.dead_tuples_after) {
        (Some(before), Some(after)) => format!("; dead rows {before} → {after}"),
        _ => String::new(),
    };
    println!("{} ({:.2} s; {} → {} bytes{dead})", done.done, done.seconds, done.bytes_before, done.bytes_after);
    Ok(())
}

/// `dbagent tune`: advice for postgresql.conf and the pool; `--set NAME=VALUE` applies.
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// The database host's memory (16GB, 512MB); default: this host's, for the managed instance.
    #[arg(long)]
    pub memory: Option<String>,
    /// The database host's cores; default: this host's, for the managed instance.
    #[arg(long)]
    pub cpus: Option<u32>,
    /// ssd (default) or hdd.
    #[arg(long, value_parser = parse_storage)]
    pub storage: Option<Storage>,
    /// Apply a setting with ALTER SYSTEM and reload (repeatable): --set random_page_cost=1.1.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// With --set: also write settings that need a restart (pending until then).
    #[arg(long)]
    pub include_restart_only: bool,
}

fn parse_storage(text: &str) -> Result<Storage, String> {
    serde_json::from_value(Value::String(text.to_lowercase())).map_err(|_| "expected ssd or hdd".to_string())
}

pub async fn tune(agent: &Agent, args: TuneArgs, as_json: bool) -> Result<(), Failure> {
    let pools = &agent.executor.pools;
    if !args.set.is_empty() {
        let settings = args
            .set
            .iter()
            .map(|pair| {
                let (name, value) = pair.split_once('=').ok_or_else(|| anyhow::anyhow!("--set takes NAME=VALUE, not {pair:?}"))?;
                Ok(Change { name: name.trim().to_owned(), value: value.trim().to_owned() })
            })
            .collect::<Result<Vec<_>, anyhow::Error>>()
            .map_err(|error| Failure { code: super::exit::USAGE, error })?;
        let request = ApplyRequest { settings, include_restart_only: args.include_restart_only };
        let applied = settings::apply(pools, &request).await.map_err(failure)?;
        return super::stats::list(&applied, &["name", "value", "applied", "now", "pending_restart", "reason"], as_json);
    }
    let request = AdviceRequest { memory: args.memory, cpus: args.cpus, storage: args.storage };
    let advice = settings::advise(pools, &request, agent.monitor.managed).await.map_err(failure)?;
    if as_json {
        return output::key_values(&serde_json::to_value(&advice)?, true);
    }
    let memory = advice.host.memory_bytes.map_or("?".into(), crate::ops::tune::memory);
    println!("host: {memory} memory, {} cores, {:?} ({})", advice.host.cpus.map_or("?".into(), |c| c.to_string()), advice.host.storage, advice.host.source);
    super::stats::list(&advice.settings, &["name", "current", "suggested", "restart_required", "why"], false)?;
    let pool = &advice.pool;
    let min = pool.current_min.map_or("-".into(), |m| m.to_string());
    println!("pool: min {min} max {} → suggested min {} max {} ({})", pool.current_max, pool.suggested_min, pool.suggested_max, pool.why);
    for statement in advice.settings.iter().filter_map(|a| a.statement.as_deref()) {
        println!("{statement}");
    }
    Ok(())
}
