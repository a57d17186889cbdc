//! Which tables a cached result depends on, and the triggers that report other clients' writes
//! to them.
//!
//! A table name from the parser is resolved to the relations whose data the result depends on:
//! the table itself, a view's base tables (recursively, through `pg_rewrite` / `pg_depend`),
//! and every partitioned ancestor. Each is identified by its oid (a rename does not change
//! it). Tables get a statement-level trigger, `dbagent_cache_watch`, that calls
//! `pg_notify('dbagent_cache', '<oid>,<ancestor oid>,...')`; partitioned tables also get a
//! row-level one, which PostgreSQL clones onto every present and future partition, so a write
//! straight into a partition is reported too (NOTIFY sends one message per distinct payload
//! per transaction, whatever the number of rows).
//!
//! A relation that cannot be watched makes the result uncacheable: materialized views
//! (REFRESH fires no trigger), foreign tables, sequences, system catalogs, and tables dbagent
//! may not put a trigger on.

use std::sync::Arc;
use std::time::Duration;

use super::store::Tag;
use crate::db::{self, Pools, sql};

/// NOTIFY channel of the watch triggers.
pub const CHANNEL: &str = "dbagent_cache";
const TRIGGER: &str = "dbagent_cache_watch";
const ROW_TRIGGER: &str = "dbagent_cache_watch_rows";
/// How long a table's resolution (and a refusal) is remembered.
const RESOLUTION_TTL: Duration = Duration::from_secs(30);

const NOTIFY_FUNCTION: &str = "CREATE OR REPLACE FUNCTION dbagent.cache_notify() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  -- The table and, for a partition, every partitioned table above it (pg_partition_ancestors
  -- lists nothing for a table outside any partition tree).
  PERFORM pg_notify('dbagent_cache', COALESCE(
    (SELECT string_agg(a.relid::oid::text, ',') FROM pg_partition_ancestors(TG_RELID) a),
    TG_RELID::oid::text));
  RETURN NULL;
END
$f$";

/// The relation a name resolves to (`$1`, [`sql::regclass`] text) and, for a view, every
/// relation it reads, recursively; `$2` is the watch trigger's name.
const LOOKUP_SQL: &str = "WITH RECURSIVE deps(oid) AS (
  SELECT to_regclass($1)::oid WHERE to_regclass($1) IS NOT NULL
  UNION
  SELECT d.refobjid FROM deps JOIN pg_rewrite r ON r.ev_class = deps.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
   AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> deps.oid)
SELECT c.oid, c.relkind::text AS kind, n.nspname::text AS schema, c.relname::text AS name,
  ARRAY(SELECT a.relid::oid FROM pg_partition_ancestors(c.oid) a WHERE a.relid <> c.oid) AS ancestors,
  EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = $2) AS watched
FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace";

/// The relations a result depends on, or why it cannot be watched.
pub type Resolution = Result<Vec<Tag>, String>;

pub struct Watcher {
    pools: Arc<Pools>,
    resolved: moka::future::Cache<String, Arc<Resolution>>,
    /// Tags of written tables (no triggers needed): `None` for a name that is not found.
    written: moka::future::Cache<String, Option<Arc<Vec<Tag>>>>,
}

/// One relation a name resolved to.
struct Relation {
    oid: Tag,
    kind: char,
    schema: String,
    name: String,
    ancestors: Vec<Tag>,
    watched: bool,
}

impl Watcher {
    pub fn new(pools: Arc<Pools>) -> Watcher {
        Watcher {
            pools,
            resolved: moka::future::Cache::builder().max_capacity(10_000).time_to_live(RESOLUTION_TTL).build(),
            written: moka::future::Cache::builder().max_capacity(10_000).time_to_live(RESOLUTION_TTL).build(),
        }
    }

    /// Tags of everything `tables` depend on, installing watch triggers where missing.
    pub async fn tags(&self, tables: &[String]) -> Resolution {
        let mut tags = Vec::new();
        for table in tables {
            let resolved = self
                .resolved
                .get_with(table.clone(), async { Arc::new(self.resolve(table).await) })
                .await;
            tags.extend(resolved.as_ref().as_ref().map_err(Clone::clone)?.iter().copied());
        }
        tags.sort_unstable();
        tags.dedup();
        Ok(tags)
    }

    /// Tags of tables a statement wrote, without installing anything; `None` when one of them
    /// is not known (then everything must be invalidated).
    pub async fn written(&self, tables: &[String]) -> Option<Vec<Tag>> {
        let mut tags = Vec::new();
        for table in tables {
            let found = self
                .written
                .try_get_with(table.clone(), async {
                    let relations = self.lookup(table).await?;
                    let tags: Vec<Tag> = relations.iter().flat_map(|r| std::iter::once(r.oid).chain(r.ancestors.iter().copied())).collect();
                    Ok::<_, db::Error>((!tags.is_empty()).then(|| Arc::new(tags)))
                })
                .await
                .ok()??;
            tags.extend(found.iter().copied());
        }
        Some(tags)
    }

    /// Forgets resolutions (after DDL, say).
    pub fn forget(&self) {
        self.resolved.invalidate_all();
        self.written.invalidate_all();
    }

    async fn resolve(&self, table: &str) -> Resolution {
        let relations = self.lookup(table).await.map_err(|e| format!("cannot look up {table}: {e}"))?;
        if relations.is_empty() {
            return Err(format!("{table} is not a table dbagent can find"));
        }
        let mut tags = Vec::new();
        for r in &relations {
            if matches!(r.schema.as_str(), "pg_catalog" | "information_schema") || r.schema.starts_with("pg_toast") {
                return Err(format!("{}.{} is a system catalog, which dbagent cannot watch", r.schema, r.name));
            }
            match r.kind {
                'r' | 'p' => {
                    if !r.watched {
                        self.install(r).await.map_err(|e| format!("cannot watch {}.{} for changes: {e}", r.schema, r.name))?;
                    }
                    tags.push(r.oid);
                    tags.extend(r.ancestors.iter().copied());
                }
                'v' | 'c' => {} // a view's base tables are listed too
                'm' => return Err(format!("{}.{} is a materialized view; its REFRESH cannot be watched", r.schema, r.name)),
                'f' => return Err(format!("{}.{} is a foreign table; its changes cannot be watched", r.schema, r.name)),
                'S' => return Err(format!("{}.{} is a sequence", r.schema, r.name)),
                other => return Err(format!("{}.{} (relkind {other}) cannot be watched", r.schema, r.name)),
            }
        }
        Ok(tags)
    }

    /// The relation `table` names, and for a view every relation it reads, recursively.
    async fn lookup(&self, table: &str) -> Result<Vec<Relation>, db::Error> {
        let rows = self.pools.primary().query(LOOKUP_SQL, &[&sql::regclass(table), &TRIGGER]).await?;
        rows.iter()
            .map(|row| {
                let kind: String = db::get(row, "kind")?;
                Ok(Relation {
                    oid: db::get(row, "oid")?,
                    kind: kind.chars().next().unwrap_or('?'),
                    schema: db::get(row, "schema")?,
                    name: db::get(row, "name")?,
                    ancestors: db::get(row, "ancestors")?,
                    watched: db::get(row, "watched")?,
                })
            })
            .collect()
    }

    /// Creates the notify function and the relation's triggers, in one short transaction that
    /// gives up rather than queue behind a long lock.
    async fn install(&self, r: &Relation) -> Result<(), db::Error> {
        let target = sql::qualified(&r.schema, &r.name);
        let mut statements = vec![
            "BEGIN".to_owned(),
            "SET LOCAL lock_timeout = '2s'".to_owned(),
            "CREATE SCHEMA IF NOT EXISTS dbagent".to_owned(),
            NOTIFY_FUNCTION.to_owned(),
            format!(
                "CREATE OR REPLACE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {target} \
                 FOR EACH STATEMENT EXECUTE FUNCTION dbagent.cache_notify()"
            ),
        ];
        if r.kind == 'p' {
            statements.push(format!(
                "CREATE OR REPLACE TRIGGER {ROW_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {target} \
                 FOR EACH ROW EXECUTE FUNCTION dbagent.cache_notify()"
            ));
        }
        statements.push("COMMIT".to_owned());
        let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
        let config = self.pools.primary().current_config();
        // Two agents creating the function at once can collide ("tuple concurrently updated").
        match db::admin::execute(&config, db::Purpose::Cache, &refs).await {
            Ok(_) => {}
            Err(db::Error::Server(pg)) if pg.is("XX000") || pg.is("23505") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                db::admin::execute(&config, db::Purpose::Cache, &refs).await?;
            }
            Err(err) => return Err(err),
        }
        tracing::info!(table = %target, "watching a table for the query cache");
        Ok(())
    }

    /// Drops every watch trigger and the notify function (`dbagent cache unwatch`).
    pub async fn unwatch_all(&self) -> Result<u64, db::Error> {
        let count = "SELECT count(*) AS watched FROM pg_trigger WHERE tgname IN ($1, $2) AND NOT tgisinternal AND tgparentid = 0";
        let rows = self.pools.primary().query(count, &[&TRIGGER, &ROW_TRIGGER]).await?;
        let count: i64 = rows.first().map(|row| db::get(row, "watched")).transpose()?.unwrap_or(0);
        let drop_all = format!(
            "DO $d$ DECLARE t record; BEGIN \
               FOR t IN SELECT tgname, tgrelid::regclass AS rel FROM pg_trigger \
                 WHERE tgname IN ({}, {}) AND tgparentid = 0 LOOP \
                 EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel); \
               END LOOP; END $d$",
            sql::literal(TRIGGER),
            sql::literal(ROW_TRIGGER)
        );
        let config = self.pools.primary().current_config();
        db::admin::execute(&config, db::Purpose::Cache, &[&drop_all, "DROP FUNCTION IF EXISTS dbagent.cache_notify()"]).await?;
        self.forget();
        Ok(count.try_into().unwrap_or(0))
    }
}
