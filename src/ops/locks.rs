//! `GET /locks`: the blocking tree. Each head blocker (a session others wait for that waits
//! for nobody) is the root of the sessions waiting behind it, the heads blocking the most first:
//! ending a head releases everything under it, which is what an operator wants to see first.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use tokio_postgres::Row;

use super::Error;
use super::sessions::DEFAULT_QUERY_CHARS;
use crate::db::{self, Pools};

/// The lock a session waits for.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Waiting {
    pub mode: Option<String>,
    pub locktype: Option<String>,
    pub relation: Option<String>,
    pub seconds: Option<f64>,
}

/// A session in the tree, with the sessions waiting for it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LockNode {
    pub pid: i32,
    pub database: Option<String>,
    pub user: Option<String>,
    pub application: Option<String>,
    pub state: Option<String>,
    pub wait_event: Option<String>,
    pub transaction_seconds: Option<f64>,
    pub query_seconds: Option<f64>,
    pub query: Option<String>,
    /// Every session it waits for (`pg_blocking_pids`).
    pub blocked_by: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<Waiting>,
    /// Sessions behind this one, directly or further down.
    pub blocking_total: usize,
    pub blocking: Vec<LockNode>,
}

/// The blocking tree.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LockReport {
    /// Sessions waiting for a lock.
    pub waiting_sessions: usize,
    pub head_blockers: Vec<LockNode>,
}

fn node_from_row(row: &Row) -> Result<LockNode, db::Error> {
    let mode: Option<String> = db::get(row, "waiting_for_mode")?;
    let waiting_for = match mode {
        Some(mode) => Some(Waiting {
            mode: Some(mode),
            locktype: db::get(row, "waiting_for_locktype")?,
            relation: db::get(row, "waiting_for_relation")?,
            seconds: db::get(row, "waiting_seconds")?,
        }),
        None => None,
    };
    Ok(LockNode {
        pid: db::get(row, "pid")?,
        database: db::get(row, "database")?,
        user: db::get(row, "user")?,
        application: db::get(row, "application")?,
        state: db::get(row, "state")?,
        wait_event: db::get(row, "wait_event")?,
        transaction_seconds: db::get(row, "transaction_seconds")?,
        query_seconds: db::get(row, "query_seconds")?,
        query: db::get(row, "query")?,
        blocked_by: db::get(row, "blocked_by")?,
        waiting_for,
        blocking_total: 0,
        blocking: Vec::new(),
    })
}

pub async fn report(pools: &Pools) -> Result<LockReport, Error> {
    let rows = pools.primary().query(include_str!("sql/locks.sql"), &[&DEFAULT_QUERY_CHARS]).await?;
    let sessions = rows.iter().map(node_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(tree(sessions))
}

/// The tree of `sessions` (each with its `blocked_by`): heads first by how many sessions wait
/// behind them, then by transaction age. A session blocked by two others appears under both.
/// Sessions in a wait cycle with no head (a deadlock before the detector breaks it) become
/// heads themselves, so nobody waiting is left out.
pub fn tree(sessions: Vec<LockNode>) -> LockReport {
    let waiting_sessions = sessions.iter().filter(|s| !s.blocked_by.is_empty()).count();
    let by_pid: BTreeMap<i32, LockNode> = sessions.into_iter().map(|s| (s.pid, s)).collect();
    let mut heads: Vec<LockNode> = by_pid
        .values()
        .filter(|s| s.blocked_by.is_empty())
        .map(|s| grow(s, &by_pid, &mut HashSet::new()))
        .filter(|head| !head.blocking.is_empty())
        .collect();
    let mut reached = HashSet::new();
    heads.iter().for_each(|h| collect_pids(h, &mut reached));
    for s in by_pid.values() {
        if !reached.contains(&s.pid) && !s.blocked_by.is_empty() {
            let head = grow(s, &by_pid, &mut HashSet::new());
            collect_pids(&head, &mut reached);
            heads.push(head);
        }
    }
    heads.sort_by(|a, b| {
        b.blocking_total
            .cmp(&a.blocking_total)
            .then(b.transaction_seconds.unwrap_or(0.0).total_cmp(&a.transaction_seconds.unwrap_or(0.0)))
    });
    LockReport { waiting_sessions, head_blockers: heads }
}

/// `session` with the sessions waiting for it beneath, stopping at any pid already on the path.
fn grow(session: &LockNode, by_pid: &BTreeMap<i32, LockNode>, path: &mut HashSet<i32>) -> LockNode {
    path.insert(session.pid);
    let mut node = session.clone();
    let waiters: Vec<&LockNode> = by_pid.values().filter(|w| w.blocked_by.contains(&session.pid) && !path.contains(&w.pid)).collect();
    node.blocking = waiters.into_iter().map(|w| grow(w, by_pid, path)).collect();
    node.blocking_total = node.blocking.iter().map(|c| 1 + c.blocking_total).sum();
    path.remove(&session.pid);
    node
}

fn collect_pids(node: &LockNode, into: &mut HashSet<i32>) {
    into.insert(node.pid);
    node.blocking.iter().for_each(|c| collect_pids(c, into));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pid: i32, blocked_by: &[i32]) -> LockNode {
        LockNode {
            pid,
            database: None,
            user: None,
            application: None,
            state: None,
            wait_event: None,
            transaction_seconds: Some(f64::from(pid)),
            query_seconds: None,
            query: None,
            blocked_by: blocked_by.to_vec(),
            waiting_for: None,
            blocking_total: 0,
            blocking: Vec::new(),
        }
    }

    fn shape(node: &LockNode) -> String {
        if node.blocking.is_empty() {
            return node.pid.to_string();
        }
        let children: Vec<String> = node.blocking.iter().map(shape).collect();
        format!("{}[{}]", node.pid, children.join(" "))
    }

    #[test]
    fn heads_come_first_with_their_waiters_beneath() {
        // 1 blocks 2 and 3; 3 blocks 4; 5 blocks 6; 7 waits for nobody and blocks nobody.
        let report = tree(vec![session(1, &[]), session(2, &[1]), session(3, &[1]), session(4, &[3]), session(5, &[]), session(6, &[5]), session(7, &[])]);
        let shapes: Vec<String> = report.head_blockers.iter().map(shape).collect();
        assert_eq!(shapes, ["1[2 3[4]]", "5[6]"]);
        assert_eq!(report.head_blockers[0].blocking_total, 3);
        assert_eq!(report.waiting_sessions, 4);
    }

    #[test]
    fn a_wait_cycle_is_shown_once_without_looping() {
        let report = tree(vec![session(1, &[2]), session(2, &[1])]);
        let shapes: Vec<String> = report.head_blockers.iter().map(shape).collect();
        assert_eq!(shapes, ["1[2]"]);
    }
}
