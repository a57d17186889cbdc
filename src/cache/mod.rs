//! The query result cache: `/query` with `use_cache: true` serves a read from the cache when a
//! valid entry exists, else runs it and stores the result.
//!
//! Correctness first (pgpool-II's cache is known for stale results because it only sees its own
//! writes):
//! - only a statement that ran READ ONLY, calls nothing but immutable functions and reads only
//!   watchable tables is cached; everything else is run, with the reason reported;
//! - a write through dbagent invalidates the tables it wrote before its answer is sent;
//! - other clients' writes are reported by watch triggers over NOTIFY ([`watch`]), and a lost
//!   LISTEN connection invalidates everything when it comes back;
//! - invalidation is by generation counters taken before the query runs ([`store`]), so a
//!   write that commits while a result is being computed can never be hidden by it;
//! - an entry remembers a WAL position its data is at least as new as, and is served to a
//!   read with `min_lsn` only when that covers it.
//!
//! Keys are the SHA-256 of the caller's identity, the exact SQL text and the parameters (the
//! pg_query fingerprint ignores literals, so it alone would mix `id = 1` with `id = 2`).

mod analyze;
mod stats;
mod store;
pub mod watch;

pub use analyze::{Analysis, analyze};
pub use stats::{Bypass, CacheStats, CacheStatsSnapshot};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config;
use crate::db::listen::{Notice, listen};
use crate::db::{Lsn, Pools};
use crate::query::{Classification, ColumnInfo, Rows};
use store::{Entry, Snapshot, Store, Tag};
use watch::Watcher;

/// Cached result plus what is needed to store it after a miss.
pub struct Plan {
    key: [u8; 32],
    tags: Vec<Tag>,
}

impl Plan {
    /// The same tables under another caller identity.
    pub fn rekeyed(&self, identity: &str, sql: &str, params: &[Value]) -> Plan {
        Plan { key: key(identity, sql, params), tags: self.tags.clone() }
    }
}

/// How often the list of immutable functions may be reloaded when an unknown name shows up.
const FUNCTIONS_RELOAD: Duration = Duration::from_secs(30);

pub struct Cache {
    store: Store,
    watcher: Watcher,
    pools: Arc<Pools>,
    stats: Arc<CacheStats>,
    max_entry_bytes: usize,
    /// Names of functions all of whose overloads are IMMUTABLE, and when they were loaded.
    immutable: RwLock<(HashSet<String>, Option<Instant>)>,
    /// False from the moment the LISTEN connection is lost until it listens again: other
    /// clients' writes go unreported, so nothing is served from the cache or stored in it.
    listening: AtomicBool,
}

impl Cache {
    /// The cache `config` describes, or `None` when caching is off.
    pub fn new(config: &config::Config, pools: Arc<Pools>) -> Result<Option<Arc<Cache>>, config::Error> {
        let caching = &config.caching;
        if !caching.enable || !config.optimization.enable_query_cache {
            return Ok(None);
        }
        let stats = Arc::new(CacheStats::default());
        let ttl = Duration::from_secs(caching.query_cache_ttl);
        let store = match &caching.redis_url {
            Some(url) => {
                // Agents share entries only when they serve the same database.
                let scope = hex(&Sha256::digest(pools.primary().location().as_bytes()))[..16].to_owned();
                Store::redis(url.expose(), format!("dbagent:{scope}:"), ttl, stats.clone()).map_err(|e| config::Error::Invalid {
                    key: "caching.redis_url".into(),
                    message: e.to_string(),
                })?
            }
            None => Store::local(caching.max_entries, caching.max_bytes, ttl, stats.clone()),
        };
        Ok(Some(Arc::new(Cache {
            store,
            watcher: Watcher::new(pools.clone()),
            pools,
            stats,
            max_entry_bytes: caching.max_entry_bytes as usize,
            immutable: RwLock::new((HashSet::new(), None)),
            // Entries stored before the first `Listening` are dropped by it.
            listening: AtomicBool::new(true),
        })))
    }

    /// Starts listening for other clients' writes. Runs until the pools are dropped.
    pub fn spawn_listener(self: &Arc<Self>) {
        let mut notices = listen(Arc::downgrade(&self.pools), watch::CHANNEL, crate::db::Purpose::Cache);
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(notice) = notices.recv().await {
                let Some(cache) = weak.upgrade() else { return };
                match notice {
                    Notice::Listening => {
                        // Writes made while not listening went unreported.
                        cache.stats.listener_reconnects.fetch_add(1, Ordering::Relaxed);
                        cache.invalidate_everything().await;
                        cache.listening.store(true, Ordering::SeqCst);
                    }
                    Notice::Lost => {
                        // Other clients' writes go unreported from now on: nothing cached so
                        // far may be served, nor anything computed until the listener is back
                        // (`Listening` drops that again).
                        cache.listening.store(false, Ordering::SeqCst);
                        cache.invalidate_everything().await;
                    }
                    Notice::Payload(payload) => {
                        let tags: Vec<Tag> = payload.split(',').filter_map(|t| t.parse().ok()).collect();
                        cache.stats.notifications.fetch_add(1, Ordering::Relaxed);
                        cache.invalidate(&tags).await;
                    }
                }
            }
        });
    }

    /// Decides whether `class` may be cached: `Err(reason)` when not.
    pub async fn plan(&self, class: &Classification, identity: &str, sql: &str, params: &[Value]) -> Result<Plan, String> {
        let refused = self.refusal(class).await;
        if let Some((why, reason)) = refused {
            self.stats.bypass(why);
            return Err(reason);
        }
        match self.watcher.tags(&class.tables).await {
            Ok(tags) => Ok(Plan { key: key(identity, sql, params), tags }),
            Err(reason) => {
                self.stats.bypass(Bypass::Unwatchable);
                Err(reason)
            }
        }
    }

    async fn refusal(&self, class: &Classification) -> Option<(Bypass, String)> {
        if let Some(reason) = class.cache.never {
            return Some((Bypass::Construct, reason.into()));
        }
        if !class.is_read_only() || class.query_type != "select" {
            return Some((Bypass::NotARead, "only read-only SELECT statements are cached".into()));
        }
        for function in &class.cache.functions {
            if !self.is_immutable(function).await {
                return Some((Bypass::Function, format!("it calls {function}(), which is not IMMUTABLE")));
            }
        }
        None
    }

    async fn is_immutable(&self, function: &str) -> bool {
        let name = function.rsplit('.').next().unwrap_or(function);
        let (known, loaded) = {
            let guard = self.immutable.read().unwrap_or_else(|p| p.into_inner());
            (guard.0.contains(name), guard.1)
        };
        if known || loaded.is_some_and(|at| at.elapsed() < FUNCTIONS_RELOAD) {
            return known;
        }
        // Any overload, in any schema, that is not IMMUTABLE makes the name suspect.
        const SQL: &str = "SELECT proname FROM pg_proc GROUP BY proname HAVING bool_and(provolatile = 'i')";
        match self.pools.primary().rows(SQL).await {
            Ok(rows) => {
                let names: HashSet<String> = rows.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect();
                let known = names.contains(name);
                *self.immutable.write().unwrap_or_else(|p| p.into_inner()) = (names, Some(Instant::now()));
                known
            }
            Err(_) => false,
        }
    }

    /// A valid entry for `plan`, if its data is at least as new as `min_lsn`.
    pub async fn get(&self, plan: &Plan, min_lsn: Option<Lsn>) -> Option<Rows> {
        if !self.listening.load(Ordering::SeqCst) {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let found = self.store.get(&plan.key, &plan.tags).await.filter(|e| min_lsn.is_none_or(|m| Lsn(e.lsn) >= m));
        let rows = found.and_then(|entry| decode_rows(&entry.payload));
        let counter = if rows.is_some() { &self.stats.hits } else { &self.stats.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        rows
    }

    /// The counters to store a result under; take it before running the query.
    pub async fn snapshot(&self, plan: &Plan) -> Option<Snapshot> {
        self.store.snapshot(&plan.tags).await
    }

    /// Stores a result computed after `snapshot`, whose data is at least as new as `lsn`.
    pub async fn put(&self, plan: &Plan, snapshot: Snapshot, rows: &Rows, lsn: Lsn) {
        if rows.json.len() > self.max_entry_bytes || !self.listening.load(Ordering::SeqCst) {
            return;
        }
        let payload = encode_rows(rows);
        self.store.put(plan.key, Entry::encode(&snapshot, lsn.0, &payload)).await;
        self.stats.stored.fetch_add(1, Ordering::Relaxed);
    }

    /// A statement dbagent ran wrote `tables` (or changed the schema): drop what read them.
    pub async fn wrote(&self, class: &Classification) {
        let exact = if class.query_type == "ddl" || class.written_tables.is_empty() {
            None // DDL, or a write we cannot attribute (a function that writes, say)
        } else {
            self.watcher.written(&class.written_tables).await
        };
        match exact {
            Some(tags) => self.invalidate(&tags).await,
            None => {
                self.watcher.forget();
                self.invalidate_everything().await;
            }
        }
    }

    async fn invalidate(&self, tags: &[Tag]) {
        if tags.is_empty() {
            return;
        }
        self.stats.invalidations.fetch_add(tags.len() as u64, Ordering::Relaxed);
        self.store.bump(Some(tags)).await;
    }

    async fn invalidate_everything(&self) {
        self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
        self.store.bump(None).await;
    }

    /// Removes the watch triggers from every table (`dbagent cache unwatch`).
    pub async fn unwatch(&self) -> Result<u64, crate::db::Error> {
        let removed = self.watcher.unwatch_all().await?;
        self.invalidate_everything().await;
        Ok(removed)
    }

    pub fn stats(&self) -> CacheStatsSnapshot {
        let (entries, bytes) = self.store.size();
        self.stats.snapshot(self.store.backend(), entries, bytes)
    }
}

fn key(identity: &str, sql: &str, params: &[Value]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [identity.as_bytes(), sql.as_bytes()] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.update(serde_json::to_vec(params).unwrap_or_default());
    hash.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Serialize, Deserialize)]
struct Meta {
    returned: usize,
    row_count: u64,
    truncated: bool,
    columns: Vec<ColumnInfo>,
}

fn encode_rows(rows: &Rows) -> Vec<u8> {
    let meta = Meta { returned: rows.returned, row_count: rows.row_count, truncated: rows.truncated, columns: rows.columns.clone() };
    let meta = serde_json::to_vec(&meta).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + meta.len() + rows.json.len());
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&rows.json);
    out
}

fn decode_rows(payload: &[u8]) -> Option<Rows> {
    let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let meta: Meta = serde_json::from_slice(payload.get(4..4 + len)?).ok()?;
    Some(Rows {
        json: payload.get(4 + len..)?.to_vec(),
        returned: meta.returned,
        row_count: meta.row_count,
        truncated: meta.truncated,
        columns: meta.columns,
        largest_row: 0,
        mask_generation: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_callers_statements_and_parameters() {
        let k = |who: &str, sql: &str, p: Value| key(who, sql, p.as_array().unwrap());
        let base = k("alice", "SELECT $1", serde_json::json!([1]));
        assert_eq!(base, k("alice", "SELECT $1", serde_json::json!([1])));
        assert_ne!(base, k("bob", "SELECT $1", serde_json::json!([1])));
        assert_ne!(base, k("alice", "SELECT $1 ", serde_json::json!([1])));
        assert_ne!(base, k("alice", "SELECT $1", serde_json::json!(["1"])));
        assert_ne!(k("ab", "c", serde_json::json!([])), k("a", "bc", serde_json::json!([])));
    }

    #[test]
    fn rows_round_trip() {
        let rows = Rows {
            json: b"[{\"a\":1}]".to_vec(),
            returned: 1,
            row_count: 1,
            truncated: false,
            columns: vec![ColumnInfo { name: "a".into(), type_name: "int4".into() }],
            largest_row: 0,
            mask_generation: None,
        };
        let back = decode_rows(&encode_rows(&rows)).unwrap();
        assert_eq!((back.json, back.row_count, back.columns[0].name.as_str()), (rows.json, 1, "a"));
    }
}
