//! Keeping user code from changing the session that later requests run in.
//!
//! A parser sees `set_config(..., false)`; it cannot see a user-defined function, a view, a
//! trigger, a policy or a column default that calls one. The guard knows, from the catalog,
//! which names and relations run code dbagent cannot vouch for; a statement that may run such
//! code is followed, in the same round trip, by [`CHECK_SQL`] and `RESET ALL`: what can be
//! reset is, and a connection whose session changed otherwise is discarded before anyone else
//! gets it. Statements that run no such code (the point
//! reads and updates of a typical workload) pay one hash lookup per table and operator.
//!
//! The catalog is read at start-up, after DDL that dbagent runs, and every
//! [`REFRESH_EVERY`]; between a change made by another client and the next refresh, a new
//! trigger or function is not yet known (the window is documented in README).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::Classification;
use super::effects::Effects;

/// How often the catalog is read again for changes made by other clients.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// Extensions whose functions dbagent vouches for: they compute values and leave the session
/// alone. (Not `dblink`, `hypopg` or `pg_hint_plan`, which keep session state.)
const TRUSTED_EXTENSIONS: &[&str] = &[
    "btree_gin", "btree_gist", "citext", "cube", "earthdistance", "fuzzystrmatch", "hstore", "intarray", "isn",
    "ltree", "pg_trgm", "pgcrypto", "seg", "tablefunc", "unaccent", "uuid-ossp", "vector",
];

/// Run after a statement that may run user code, in autocommit (its own implicit transaction,
/// so transaction-local changes are gone), followed by `RESET ALL` in the same round trip.
/// What can be reset is reset: every setting by `RESET ALL` (custom ones such as `app.tenant`
/// included, which `pg_settings` does not even list), and session-level advisory locks by
/// `pg_advisory_unlock_all()` here. What cannot is reported, as text (empty when none): a
/// changed role or session user, temporary objects, SQL-level prepared statements, held
/// cursors, LISTEN registrations; the connection is then discarded. `$1`: the login role.
/// Every function and operator is schema-qualified: the session being checked may have a
/// hostile `search_path`. (Reading `pg_settings` and `pg_locks` instead cost ~6× as much.)
pub const CHECK_SQL: &str = "SELECT pg_catalog.concat_ws(', ', \
    CASE WHEN session_user OPERATOR(pg_catalog.<>) $1::name OR current_user OPERATOR(pg_catalog.<>) $1::name \
       THEN 'role' END, \
    CASE WHEN pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0 THEN CASE WHEN EXISTS (SELECT FROM \
       pg_catalog.pg_class WHERE relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()) \
       THEN 'temporary objects' END END, \
    CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_prepared_statements WHERE from_sql) THEN 'prepared statements' END, \
    CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_cursors WHERE is_holdable) THEN 'cursors' END, \
    CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_listening_channels()) THEN 'LISTEN' END), \
    pg_catalog.pg_advisory_unlock_all()";

/// What runs user code, by kind: `function`, `vouched` (a trusted extension's function),
/// `operator`, `type` (a cast to it calls a user function), `relation` (a view, or a table
/// whose triggers, policies, defaults, constraints, indexes, partitions or cascading foreign
/// keys run user code; as `name` and `schema.name`), `event_trigger`. `$1`: trusted extensions.
const CATALOG_SQL: &str = "\
WITH RECURSIVE ext_fn AS (
  SELECT d.objid AS oid, e.extname = ANY($1) AS trusted FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
  WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
), user_fn AS (
  SELECT p.oid, p.proname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbagent')
    AND NOT EXISTS (SELECT FROM ext_fn WHERE ext_fn.oid = p.oid AND ext_fn.trusted)
), depends_on_user_fn AS (
  SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
  WHERE d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM user_fn)
), direct(rel) AS (
  SELECT t.tgrelid FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal AND t.tgfoid IN (SELECT oid FROM user_fn)
  UNION SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE (c.relkind IN ('v', 'm') OR c.relrowsecurity) AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION SELECT ad.adrelid FROM pg_catalog.pg_attrdef ad JOIN depends_on_user_fn d
    ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
  UNION SELECT co.conrelid FROM pg_catalog.pg_constraint co JOIN depends_on_user_fn d
    ON d.classid = 'pg_catalog.pg_constraint'::regclass AND d.objid = co.oid WHERE co.conrelid <> 0
  UNION SELECT a.attrelid FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_constraint co ON co.contypid = a.atttypid
    JOIN depends_on_user_fn d ON d.classid = 'pg_catalog.pg_constraint'::regclass AND d.objid = co.oid
    WHERE co.contypid <> 0 AND NOT a.attisdropped
  UNION SELECT i.indrelid FROM pg_catalog.pg_index i JOIN depends_on_user_fn d
    ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
), edges(child, parent) AS (
  SELECT conrelid, confrelid FROM pg_catalog.pg_constraint WHERE contype = 'f'
  UNION ALL SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits
), risky(rel) AS (
  SELECT rel FROM direct
  UNION SELECT e.parent FROM edges e JOIN risky r ON e.child = r.rel
)
SELECT 'function', proname::text FROM user_fn
UNION SELECT 'vouched', p.proname::text FROM pg_catalog.pg_proc p JOIN ext_fn ON ext_fn.oid = p.oid AND ext_fn.trusted
UNION SELECT 'operator', o.oprname::text FROM pg_catalog.pg_operator o WHERE o.oprcode IN (SELECT oid FROM user_fn)
UNION SELECT 'type', t.typname::text FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_type t ON t.oid = c.casttarget
  WHERE c.castfunc IN (SELECT oid FROM user_fn)
UNION SELECT 'relation', c.relname::text FROM risky JOIN pg_catalog.pg_class c ON c.oid = risky.rel
UNION SELECT 'relation', n.nspname || '.' || c.relname FROM risky JOIN pg_catalog.pg_class c ON c.oid = risky.rel
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
UNION SELECT 'event_trigger', evtname::text FROM pg_catalog.pg_event_trigger
  WHERE evtenabled <> 'D' AND evtfoid IN (SELECT oid FROM user_fn)";

/// What the catalog says runs user code.
#[derive(Debug, Default)]
struct Known {
    /// False until the catalog was read once: then every statement that calls a function or
    /// names a relation is checked.
    loaded: bool,
    functions: HashSet<String>,
    vouched: HashSet<String>,
    operators: HashSet<String>,
    types: HashSet<String>,
    relations: HashSet<String>,
    event_triggers: bool,
}

/// The catalog's view of user code, shared by every request.
#[derive(Default)]
pub struct Guard {
    known: RwLock<Arc<Known>>,
}

impl Guard {
    /// Reads the catalog again on `client` (one query).
    pub async fn refresh(&self, client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
        let rows = client.query(CATALOG_SQL, &[&TRUSTED_EXTENSIONS]).await?;
        let mut known = Known { loaded: true, ..Known::default() };
        for row in rows {
            let (kind, name): (&str, String) = (row.try_get(0)?, row.try_get(1)?);
            let set = match kind {
                "function" => &mut known.functions,
                "vouched" => &mut known.vouched,
                "operator" => &mut known.operators,
                "type" => &mut known.types,
                "relation" => &mut known.relations,
                _ => {
                    known.event_triggers = true;
                    continue;
                }
            };
            set.insert(name);
        }
        if let Ok(mut current) = self.known.write() {
            *current = Arc::new(known);
        }
        Ok(())
    }

    fn known(&self) -> Arc<Known> {
        self.known.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// Whether `class` may run code that could change the session: then the session is
    /// checked after it, and it never runs on a shared connection.
    pub fn may_run_user_code(&self, class: &Classification) -> bool {
        let effects = &class.effects;
        if effects.runs_code {
            return true;
        }
        let known = self.known();
        if !known.loaded {
            return !effects.calls.is_empty() || !class.tables.is_empty() || !effects.casts.is_empty();
        }
        let call_is_user_code = |(schema, name): &(Option<String>, String)| match schema.as_deref() {
            Some("pg_catalog") => !Effects::is_known_safe(schema.as_deref(), name),
            _ => {
                known.functions.contains(name)
                    || !(Effects::is_known_safe(None, name) || known.vouched.contains(name))
                    || schema.is_some() && !known.vouched.contains(name)
            }
        };
        effects.calls.iter().any(call_is_user_code)
            || effects.operators.iter().any(|op| known.operators.contains(op.rsplit('.').next().unwrap_or(op)))
            || effects.casts.iter().any(|t| known.types.contains(t))
            || class.tables.iter().any(|t| known.relations.contains(t))
            || (known.event_triggers && !matches!(class.query_type, "select" | "insert" | "update" | "delete" | "merge" | "show"))
    }
}

/// Whether a statement of this type may have changed what the guard knows (a new function,
/// trigger, view or policy).
pub fn changes_catalog(query_type: &str) -> bool {
    !matches!(query_type, "select" | "insert" | "update" | "delete" | "merge" | "explain" | "show" | "copy" | "vacuum" | "lock")
}
