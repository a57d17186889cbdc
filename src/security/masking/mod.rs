//! Column masking: what callers without the `unmask` scope see of sensitive columns.
//!
//! - [`rules`]: which columns the configured rules select (patterns, comment tags, security
//!   labels, name heuristics), pure;
//! - [`catalog`]: the rules resolved against the catalog into `(relation oid, column number)
//!   → strategy`, views traced to the columns they show;
//! - [`statement`]: what a statement's parse tree names, for result columns with no origin;
//! - [`strategy`]: what a masked value becomes (`redact`, `partial`, `hash`, `null`);
//! - this file: [`Masking`], the resolution held in memory and refreshed, and [`MaskPlan`],
//!   one result's per-column strategies.
//!
//! Invariants:
//! * A result column is masked by where PostgreSQL says it comes from (the table oid and column
//!   number of its RowDescription), never by its name, so an alias does not unmask it; a view
//!   column by the column it is traced to, or whole when it cannot be traced.
//! * A result column from a relation, or a column number, the resolution does not know (made
//!   since) makes the resolution be read again at once; if it is still unknown, the column
//!   is redacted (and its relation remembered, so a temporary table or a catalog does not
//!   cost a read on every statement). Failing to read the catalog never unmasks.
//! * A column with no origin (an expression, a whole row, an aggregate) is redacted when the
//!   statement names a relation with masked columns and refers to a masked column's name or
//!   to whole rows (see [`statement::References::may_read_masked`]).
//! * Unmasked callers, and every caller when no rule is configured, get no plan: the row
//!   path's only cost is one `Option` per statement.

pub mod catalog;
pub mod rules;
pub mod statement;
pub mod strategy;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio_postgres::Column;
use tokio_postgres::types::Type;

pub use catalog::Resolved;
pub use statement::References;

use crate::config::{self, MaskStrategy as Strategy};
use crate::db::{self, Pools, Purpose};

/// Relations remembered as unknown to the catalog read (temporary tables, the catalogs) before
/// the memory is cleared; the periodic refresh clears it too.
const UNRESOLVED_AT_MOST: usize = 10_000;
/// A relation the catalog read did not know is looked for again after this long (one made in a
/// transaction that had not committed when it was read).
const UNRESOLVED_RETRY: Duration = Duration::from_secs(1);

/// The masking of one agent: the rules and their resolution against the catalog.
pub struct Masking {
    settings: config::Masking,
    key: Arc<[u8]>,
    pools: Weak<Pools>,
    resolved: RwLock<Arc<Resolved>>,
    /// Bumped whenever a read changes the resolution: part of masked callers' cache keys, so
    /// a result masked under other rules is never served.
    generation: AtomicU64,
    /// One catalog read at a time; when the last one ended.
    reading: tokio::sync::Mutex<Option<Instant>>,
    /// Relations a read made after they were first seen still did not know (a temporary
    /// table, a catalog), and when: their columns are redacted without reading the catalog
    /// again on every statement, at most once per [`UNRESOLVED_RETRY`].
    unresolved: std::sync::Mutex<std::collections::HashMap<u32, Instant>>,
}

impl Masking {
    /// Masking for `settings` (`None` when it has no rules), not yet resolved: until the
    /// first [`Masking::refresh`], every column with an origin is unknown, so redacted.
    pub fn new(settings: &config::Masking, pools: &Arc<Pools>) -> Option<Masking> {
        settings.enabled().then(|| Masking {
            key: settings.hash_key.as_ref().map(|k| k.expose().as_bytes().to_vec()).unwrap_or_default().into(),
            settings: settings.clone(),
            pools: Arc::downgrade(pools),
            resolved: RwLock::default(),
            generation: AtomicU64::new(0),
            reading: tokio::sync::Mutex::new(None),
            unresolved: std::sync::Mutex::default(),
        })
    }

    pub fn settings(&self) -> &config::Masking {
        &self.settings
    }

    pub fn refresh_every(&self) -> Duration {
        Duration::from_secs(self.settings.refresh_seconds)
    }

    /// What masked callers' cached results are keyed by besides the statement: the current
    /// generation's profile.
    pub fn profile(&self) -> String {
        Self::profile_of(self.generation.load(Ordering::SeqCst))
    }

    /// The profile of results masked under generation `generation`.
    pub fn profile_of(generation: u64) -> String {
        format!("masked:{generation}")
    }

    fn current(&self) -> Arc<Resolved> {
        self.resolved.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the catalog and resolves the rules again.
    pub async fn refresh(&self) -> Result<(), db::Error> {
        let mut last = self.reading.lock().await;
        self.unresolved.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.read(&mut last).await
    }

    async fn read(&self, last: &mut Option<Instant>) -> Result<(), db::Error> {
        let pools = self.pools.upgrade().ok_or(db::Error::Unavailable { reason: "the agent is stopping".into() })?;
        let client = db::admin::connect(&pools.admin_config(), Purpose::Security).await.map_err(|e| db::Error::from_driver(e, false))?;
        let resolved = catalog::resolve(&client, &self.settings.rules).await;
        *last = Some(Instant::now());
        let resolved = resolved?;
        let mut held = self.resolved.write().unwrap_or_else(|p| p.into_inner());
        if **held != resolved {
            *held = Arc::new(resolved);
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reads the catalog again unless a read that was going on when this was asked for ends
    /// meanwhile (a burst of statements over new relations waits for one read).
    async fn reread(&self, asked: Instant) {
        let mut last = self.reading.lock().await;
        if last.is_some_and(|at| at > asked) {
            return;
        }
        if let Err(err) = self.read(&mut last).await {
            tracing::warn!(error = %db::error_chain(&err), "could not read the catalog for masking; unknown columns are redacted");
        }
    }

    /// The masking of a result with `columns`, from a statement that refers to `refs` (`None`
    /// when no column is masked), and the generation of the resolution it was made with.
    pub async fn plan(&self, columns: &[Column], refs: &References) -> (Option<MaskPlan>, u64) {
        // The generation is read before the resolution it names: a read that ends in between
        // makes it older than the resolution (a cached copy keyed by it is never asked for
        // again), never newer.
        let mut generation = self.generation.load(Ordering::SeqCst);
        let mut resolved = self.current();
        let unknown_relations = |resolved: &Resolved| -> Vec<u32> {
            columns.iter().filter(|c| unknown(resolved, c)).filter_map(|c| origin(c).map(|(oid, _)| oid)).collect()
        };
        let new = unknown_relations(&resolved);
        let seen_before = {
            let unresolved = self.unresolved.lock().unwrap_or_else(|p| p.into_inner());
            new.iter().all(|oid| unresolved.get(oid).is_some_and(|at| at.elapsed() < UNRESOLVED_RETRY))
        };
        if !seen_before {
            self.reread(Instant::now()).await;
            generation = self.generation.load(Ordering::SeqCst);
            resolved = self.current();
            let still = unknown_relations(&resolved);
            let mut unresolved = self.unresolved.lock().unwrap_or_else(|p| p.into_inner());
            if unresolved.len() + still.len() > UNRESOLVED_AT_MOST {
                unresolved.clear();
            }
            let now = Instant::now();
            unresolved.extend(still.into_iter().map(|oid| (oid, now)));
        }
        let mut no_origin = None;
        let strategies: Vec<Option<Strategy>> = columns
            .iter()
            .map(|column| match origin(column) {
                Some(id) if unknown(&resolved, column) => {
                    tracing::debug!(relation = id.0, column = id.1, "a result column's origin is unknown to masking; redacted");
                    Some(Strategy::Redact)
                }
                Some(id) => resolved.columns.get(&id).copied(),
                None => *no_origin.get_or_insert_with(|| {
                    let reads = !resolved.columns.is_empty()
                        && refs.may_read_masked(|r| resolved.masked_relations.contains(r), |c| resolved.masked_names.contains(c));
                    reads.then_some(Strategy::Redact)
                }),
            })
            .collect();
        (strategies.iter().any(Option::is_some).then(|| MaskPlan { strategies, key: self.key.clone() }), generation)
    }
}

/// Where PostgreSQL says a result column comes from (`None`: computed).
fn origin(column: &Column) -> Option<catalog::ColumnId> {
    match (column.table_oid(), column.column_id()) {
        (Some(oid), Some(attnum)) if oid != 0 && attnum > 0 => Some((oid, attnum)),
        _ => None,
    }
}

fn unknown(resolved: &Resolved, column: &Column) -> bool {
    origin(column).is_some_and(|(oid, attnum)| resolved.relations.get(&oid).is_none_or(|most| attnum > *most))
}

/// One result's masking: a strategy per column, or none.
#[derive(Debug, Clone)]
pub struct MaskPlan {
    strategies: Vec<Option<Strategy>>,
    key: Arc<[u8]>,
}

impl MaskPlan {
    /// The strategy of the column at `index`, if it is masked.
    #[inline]
    pub fn column(&self, index: usize) -> Option<Strategy> {
        self.strategies.get(index).copied().flatten()
    }

    /// Writes a value of the column at `index`, masked by `strategy`, as JSON.
    pub fn write(&self, out: &mut Vec<u8>, strategy: Strategy, ty: &Type, raw: Option<&[u8]>) -> Result<(), crate::db::types::DecodeError> {
        strategy::write_masked(out, strategy, ty, raw, &self.key)
    }
}

/// Re-reads the catalog every `refresh_seconds` (comments, labels and renames are seen this
/// way; new relations and columns at once, see [`Masking::plan`]).
pub fn spawn_refresh(masking: Weak<Masking>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(masking) = masking.upgrade() else { return };
            if let Err(err) = masking.refresh().await {
                tracing::warn!(error = %db::error_chain(&err), "could not read the catalog for masking");
            }
        }
    })
}
