//! What a statement may do beyond its own transaction, read off its parse tree: changes that
//! would outlive the request in a pooled session (refused, with the alternative), effects that
//! no ROLLBACK undoes (what the advisor's `EXPLAIN ANALYZE` must not run unasked), and the code
//! it calls that dbagent cannot vouch for (functions, operators, casts, `DO`, `CALL`), which
//! [`super::guard`] weighs against the catalog to decide whether the session must be checked
//! after it.
//!
//! The walk goes over the whole tree as serialized by pg_query's protobuf types, like
//! `cache::analyze`, so no node kind is missed. What a parser cannot see (a view, a trigger or
//! a user-defined function that changes the session) is the guard's part.

use serde_json::Value;

/// What a parse tree shows of a statement's reach beyond itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Why the statement would leave state behind in a pooled session, and what to use instead.
    pub refused: Option<String>,
    /// Functions called, lower-case, as `(schema, name)`; schema only when written.
    pub calls: Vec<(Option<String>, String)>,
    /// Operator names used (`=`, `@>`, `+++` ...), schema-qualified ones as `schema.op`.
    pub operators: Vec<String>,
    /// Type names cast to (`x::mytype`).
    pub casts: Vec<String>,
    /// `DO` or `CALL`: runs procedural code whatever the catalog says.
    pub runs_code: bool,
}

impl Effects {
    /// Analyses one statement's tree, serialized (`None`: it could not be).
    pub fn of(tree: Option<&Value>) -> Effects {
        let mut walk = Walk::default();
        match tree {
            Some(value) => walk.visit(value),
            // Never seen; refusing is the safe answer for a tree we cannot read.
            None => walk.refused = Some("the statement could not be analysed".into()),
        }
        if walk.temp_created && !walk.on_commit_drop {
            walk.refused.get_or_insert_with(|| {
                "temporary tables, sequences and views outlive the request in a pooled connection; \
                 create a temporary table with ON COMMIT DROP inside /transaction, or use a CTE"
                    .into()
            });
        }
        let mut effects = Effects {
            refused: walk.refused,
            calls: walk.calls,
            operators: walk.operators,
            casts: walk.casts,
            runs_code: walk.runs_code,
        };
        for list in [&mut effects.operators, &mut effects.casts] {
            list.sort();
            list.dedup();
        }
        effects.calls.sort();
        effects.calls.dedup();
        effects
    }

    /// The first function called that acts outside the transaction (a ROLLBACK does not undo
    /// it), for the advisor: `EXPLAIN ANALYZE` really runs the statement.
    pub fn outside_transaction(&self) -> Option<&str> {
        self.calls.iter().map(|(_, name)| name.as_str()).find(|name| OUTSIDE_TRANSACTION.binary_search(name).is_ok())
    }

    /// Calls of built-ins that dbagent knows to leave the session alone (a name in
    /// `pg_catalog`, or one not shadowed by the catalog, is the guard's decision).
    pub fn is_known_safe(schema: Option<&str>, name: &str) -> bool {
        schema.is_none_or(|s| s == "pg_catalog") && SAFE_BUILTINS.binary_search(&name).is_ok()
    }
}

#[derive(Default)]
struct Walk {
    refused: Option<String>,
    calls: Vec<(Option<String>, String)>,
    operators: Vec<String>,
    casts: Vec<String>,
    runs_code: bool,
    temp_created: bool,
    on_commit_drop: bool,
}

impl Walk {
    fn visit(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    // A function's body (SQL-standard `BEGIN ATOMIC ... END`) is defined
                    // here, not run.
                    if key == "CreateFunctionStmt" {
                        continue;
                    }
                    // A RangeVar (a typed field, so not always under a "RangeVar" key).
                    if key == "relpersistence" && child.as_str() == Some("t") {
                        self.temp_created = true;
                    }
                    self.node(key, child);
                    self.visit(child);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| self.visit(item)),
            _ => {}
        }
    }

    fn node(&mut self, key: &str, node: &Value) {
        match key {
            "FuncCall" => self.call(node),
            "AExpr" => {
                if let Some(name) = names(node.get("name")) {
                    self.operators.push(name.join("."));
                }
            }
            "TypeCast" => {
                if let Some(name) = node.get("type_name").and_then(|t| names(t.get("names"))) {
                    self.casts.push(name.last().cloned().unwrap_or_default());
                }
            }
            "DoStmt" | "CallStmt" => self.runs_code = true,
            "LoadStmt" => self.refuse("LOAD loads a library into the pooled session for every later caller".into()),
            // OnCommitAction::OncommitDrop, serialized as its number.
            "oncommit" | "on_commit" if node.as_i64() == Some(pg_query::protobuf::OnCommitAction::OncommitDrop as i64) => {
                self.on_commit_drop = true;
            }
            _ => {}
        }
    }

    fn call(&mut self, node: &Value) {
        let Some(mut parts) = names(node.get("funcname")) else { return };
        let name = parts.pop().unwrap_or_default();
        let schema = parts.pop();
        let builtin = schema.as_deref().is_none_or(|s| s == "pg_catalog");
        if builtin && let Some(reason) = session_call_refusal(&name, node.get("args")) {
            self.refuse(reason);
        }
        self.calls.push((schema, name));
    }

    fn refuse(&mut self, reason: String) {
        self.refused.get_or_insert(reason);
    }
}

/// Built-ins that change the session for whoever gets the connection next.
fn session_call_refusal(name: &str, args: Option<&Value>) -> Option<String> {
    match name {
        "set_config" => {
            let is_local = args.and_then(Value::as_array).and_then(|a| a.get(2));
            (!is_local.is_some_and(is_constant_true)).then(|| {
                "set_config(..., false) (or with a third argument that is not the constant true) changes the \
                 pooled session for later callers; use set_config(name, value, true) inside /transaction, which \
                 lasts until its COMMIT"
                    .into()
            })
        }
        "pg_advisory_lock" | "pg_advisory_lock_shared" | "pg_try_advisory_lock" | "pg_try_advisory_lock_shared"
        | "pg_advisory_unlock" | "pg_advisory_unlock_shared" | "pg_advisory_unlock_all" => Some(format!(
            "{name}() works on session-level advisory locks, which a pooled connection would keep for later \
             callers; use pg_advisory_xact_lock() or pg_try_advisory_xact_lock() inside /transaction (released at COMMIT)"
        )),
        "dblink_connect" | "dblink_connect_u" => Some(format!(
            "{name}() opens a named dblink connection that outlives the request; pass the connection string to dblink() instead"
        )),
        "setseed" => Some(
            "setseed() seeds random() for the pooled session's later callers; derive repeatable values from the data \
             instead (e.g. ORDER BY md5(id::text || 'seed'))"
                .into(),
        ),
        _ => None,
    }
}

/// `true`, `'true'`, `'on'` ... as a constant (what makes `set_config` transaction-local).
fn is_constant_true(arg: &Value) -> bool {
    let Some(value) = arg.get("node").and_then(|n| n.get("AConst")).and_then(|c| c.get("val")) else { return false };
    if let Some(b) = value.get("Boolval") {
        return b.get("boolval").and_then(Value::as_bool) == Some(true);
    }
    value
        .get("Sval")
        .and_then(|s| s.get("sval"))
        .and_then(Value::as_str)
        .is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "t" | "true" | "on" | "y" | "yes" | "1"))
}

/// A list of `String` nodes (`["pg_catalog", "now"]`), lower-cased as the parser leaves
/// unquoted names.
fn names(list: Option<&Value>) -> Option<Vec<String>> {
    let parts: Vec<String> =
        list?.as_array()?.iter().filter_map(|n| n.get("node")?.get("String")?.get("sval")?.as_str()).map(str::to_owned).collect();
    (!parts.is_empty()).then_some(parts)
}

/// Built-ins whose effects no ROLLBACK undoes: the advisor refuses to `EXPLAIN ANALYZE` a
/// statement calling them unless asked explicitly. Sorted (binary search; a test checks).
const OUTSIDE_TRANSACTION: &[&str] = &[
    "dblink", "dblink_connect", "dblink_connect_u", "dblink_exec", "dblink_send_query", "lo_export",
    "lo_import", "nextval", "pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_unlock",
    "pg_advisory_unlock_all", "pg_advisory_unlock_shared", "pg_backup_start", "pg_backup_stop",
    "pg_cancel_backend", "pg_copy_logical_replication_slot", "pg_copy_physical_replication_slot",
    "pg_create_logical_replication_slot", "pg_create_physical_replication_slot", "pg_create_restore_point",
    "pg_drop_replication_slot", "pg_file_rename", "pg_file_unlink", "pg_file_write",
    "pg_log_backend_memory_contexts", "pg_logical_emit_message", "pg_promote", "pg_reload_conf",
    "pg_replication_origin_create", "pg_replication_origin_drop", "pg_rotate_logfile", "pg_stat_reset",
    "pg_stat_reset_shared", "pg_stat_reset_single_function_counters", "pg_stat_reset_single_table_counters",
    "pg_stat_reset_slru", "pg_stat_statements_reset", "pg_switch_wal", "pg_terminate_backend",
    "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_wal_replay_pause", "pg_wal_replay_resume",
    "setseed", "setval",
];

/// Built-ins known to leave the session as they found it: calling them needs no session
/// check. (`nextval` leaves `currval`/`lastval` behind, which no check could undo anyway; see
/// README.) Anything else (user-defined functions,
/// extensions the guard does not vouch for, built-ins not listed) is checked. Sorted.
const SAFE_BUILTINS: &[&str] = &[
    "abs", "acos", "age", "array_agg", "array_append", "array_cat", "array_dims", "array_fill",
    "array_length", "array_lower", "array_ndims", "array_position", "array_positions", "array_prepend",
    "array_remove", "array_replace", "array_to_json", "array_to_string", "array_upper", "ascii", "asin",
    "atan", "atan2", "avg", "bit_and", "bit_length", "bit_or", "bool_and", "bool_or", "btrim", "cardinality",
    "cbrt", "ceil", "ceiling", "char_length", "character_length", "chr", "clock_timestamp", "concat",
    "concat_ws", "corr", "cos", "count", "covar_pop", "covar_samp", "cume_dist", "current_database",
    "current_schema", "current_schemas", "current_setting", "currval", "date_bin", "date_part", "date_trunc",
    "decode", "degrees", "dense_rank", "div", "encode", "every", "exp", "extract", "factorial", "first_value",
    "floor", "format", "gcd", "gen_random_uuid", "generate_series", "generate_subscripts",
    "has_column_privilege", "has_schema_privilege", "has_table_privilege", "initcap", "isfinite", "json_agg",
    "json_array_elements", "json_array_elements_text", "json_array_length", "json_build_array",
    "json_build_object", "json_each", "json_each_text", "json_extract_path", "json_extract_path_text",
    "json_object", "json_object_agg", "json_object_keys", "json_populate_record", "json_populate_recordset",
    "json_strip_nulls", "json_to_record", "json_to_recordset", "json_typeof", "jsonb_agg",
    "jsonb_array_elements", "jsonb_array_elements_text", "jsonb_array_length", "jsonb_build_array",
    "jsonb_build_object", "jsonb_each", "jsonb_each_text", "jsonb_extract_path", "jsonb_extract_path_text",
    "jsonb_insert", "jsonb_object", "jsonb_object_agg", "jsonb_object_keys", "jsonb_path_exists",
    "jsonb_path_match", "jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first",
    "jsonb_populate_record", "jsonb_populate_recordset", "jsonb_pretty", "jsonb_set", "jsonb_set_lax",
    "jsonb_strip_nulls", "jsonb_to_record", "jsonb_to_recordset", "jsonb_typeof", "justify_days",
    "justify_hours", "justify_interval", "lag", "last_value", "lastval", "lcm", "lead", "left", "length",
    "ln", "log", "log10", "lower", "lpad", "ltrim", "make_date", "make_interval", "make_time",
    "make_timestamp", "make_timestamptz", "max", "md5", "min", "min_scale", "mod", "mode", "nextval",
    "normalize", "now", "nth_value", "ntile", "num_nonnulls", "num_nulls", "octet_length", "overlay",
    "percent_rank", "percentile_cont", "percentile_disc", "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared", "pg_backend_pid", "pg_column_size", "pg_current_wal_insert_lsn",
    "pg_current_wal_lsn", "pg_database_size", "pg_get_constraintdef", "pg_get_expr", "pg_get_functiondef",
    "pg_get_indexdef", "pg_get_viewdef", "pg_indexes_size", "pg_is_in_recovery", "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp", "pg_notify", "pg_postmaster_start_time",
    "pg_relation_size", "pg_size_pretty", "pg_sleep", "pg_table_size", "pg_total_relation_size",
    "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared", "pg_typeof", "pg_wal_lsn_diff",
    "phraseto_tsquery", "pi", "plainto_tsquery", "position", "pow", "power", "quote_ident", "quote_literal",
    "quote_nullable", "radians", "random", "rank", "regexp_count", "regexp_instr", "regexp_like",
    "regexp_match", "regexp_matches", "regexp_replace", "regexp_split_to_array", "regexp_split_to_table",
    "regexp_substr", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope",
    "repeat", "replace", "reverse", "right", "round", "row_number", "row_to_json", "rpad", "rtrim", "scale",
    "set_config", "setval", "setweight", "sha224", "sha256", "sha384", "sha512", "sign", "sin", "split_part",
    "sqrt", "starts_with", "statement_timestamp", "stddev", "stddev_pop", "stddev_samp", "string_agg",
    "string_to_array", "strpos", "substr", "substring", "sum", "tan", "timeofday", "timezone", "to_char",
    "to_date", "to_hex", "to_json", "to_jsonb", "to_number", "to_timestamp", "to_tsquery", "to_tsvector",
    "transaction_timestamp", "translate", "trim_scale", "trunc", "ts_headline", "ts_rank", "ts_rank_cd",
    "unistr", "unnest", "upper", "var_pop", "var_samp", "variance", "version", "websearch_to_tsquery",
    "width_bucket",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn of(sql: &str) -> Effects {
        let tree = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).unwrap().protobuf;
        Effects::of(serde_json::to_value(&tree).ok().as_ref())
    }

    #[test]
    fn the_lists_are_sorted_for_binary_search() {
        for list in [SAFE_BUILTINS, OUTSIDE_TRANSACTION] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{:?}", list.windows(2).find(|w| w[0] >= w[1]));
        }
    }

    #[test]
    fn session_changes_a_parser_can_see_are_refused_with_the_alternative() {
        let cases: &[(&str, &str)] = &[
            ("SELECT set_config('role', 'x', false)", "set_config(name, value, true)"),
            ("SELECT pg_catalog.set_config('search_path', 'evil', false)", "inside /transaction"),
            ("SELECT set_config('search_path', 'evil', $1)", "set_config(name, value, true)"),
            ("SELECT set_config('a.b', 'c', 1 = 1)", "set_config"),
            ("SELECT set_config('a.b', 'c')", "set_config"),
            ("SELECT pg_advisory_lock(1)", "pg_advisory_xact_lock"),
            ("SELECT pg_try_advisory_lock_shared(1, 2)", "pg_advisory_xact_lock"),
            ("SELECT x FROM t WHERE pg_try_advisory_lock(id)", "pg_advisory_xact_lock"),
            ("SELECT dblink_connect('c', 'dbname=x')", "dblink()"),
            ("SELECT setseed(0.5)", "setseed"),
            ("CREATE TEMP TABLE tt (x int)", "ON COMMIT DROP"),
            ("CREATE TEMPORARY SEQUENCE s", "temporary"),
            ("CREATE TEMP VIEW v AS SELECT 1", "temporary"),
            ("CREATE TEMP TABLE tt AS SELECT 1", "temporary"),
            ("SELECT 1 AS x INTO TEMP tt", "temporary"),
            ("LOAD 'auto_explain'", "LOAD"),
            ("WITH x AS (SELECT set_config('a.b', 'c', false)) SELECT * FROM x", "set_config"),
        ];
        for (sql, says) in cases {
            let reason = of(sql).refused.unwrap_or_else(|| panic!("not refused: {sql}"));
            assert!(reason.contains(says), "{sql}: {reason}");
        }
    }

    #[test]
    fn transaction_local_forms_pass() {
        for sql in [
            "SELECT set_config('search_path', 'x', true)",
            "SELECT set_config('app.tenant', $1, 'on')",
            "SELECT pg_advisory_xact_lock(1)",
            "SELECT pg_try_advisory_xact_lock(1)",
            "CREATE TEMP TABLE tt (x int) ON COMMIT DROP",
            "CREATE TEMP TABLE tt ON COMMIT DROP AS SELECT 1",
            "CREATE TABLE t (x int)",
            "SELECT public.set_config('a', 'b', false)",
            "CREATE FUNCTION f() RETURNS text BEGIN ATOMIC SELECT set_config('role', 'x', false); END",
        ] {
            assert_eq!(of(sql).refused, None, "{sql}");
        }
    }

    #[test]
    fn calls_operators_and_casts_are_collected_and_known_builtins_are_safe() {
        let e = of("SELECT lower(a), public.f(b), c::my_type FROM t WHERE d @#@ 1 AND e = 2 AND g OPERATOR(s.@@) h");
        assert_eq!(e.calls, vec![(None, "lower".into()), (Some("public".into()), "f".into())]);
        assert_eq!(e.operators, vec!["=", "@#@", "s.@@"]);
        assert_eq!(e.casts, vec!["my_type"]);
        assert!(!e.runs_code);
        assert!(Effects::is_known_safe(None, "lower") && Effects::is_known_safe(Some("pg_catalog"), "count"));
        assert!(!Effects::is_known_safe(Some("public"), "lower") && !Effects::is_known_safe(None, "f"));
        assert!(of("DO $$ BEGIN PERFORM 1; END $$").runs_code);
        assert!(of("CALL p()").runs_code);
        assert!(of("SELECT abalance FROM pgbench_accounts WHERE aid = $1").calls.is_empty());
    }

    #[test]
    fn effects_outside_the_transaction_are_named() {
        let e = of("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'x'");
        assert_eq!(e.outside_transaction(), Some("pg_terminate_backend"));
        assert_eq!(of("SELECT nextval('s')").outside_transaction(), Some("nextval"));
        assert_eq!(of("SELECT count(*) FROM t").outside_transaction(), None);
    }
}
