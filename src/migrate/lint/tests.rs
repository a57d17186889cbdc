use super::finding::{Finding, Kind, TableRef, pretty_size};
use super::*;

/// (statement, rule, table) of a warning.
type Found = (usize, &'static str, Option<String>);

fn found(sql: &str) -> Vec<Found> {
    lint(sql, &default_volatile_functions())
        .into_iter()
        .map(|w| (w.statement, w.rule, w.table))
        .collect()
}

fn one(statement: usize, rule: &'static str, table: &str) -> Vec<Found> {
    vec![(statement, rule, Some(table.to_string()))]
}

#[test]
fn each_rule_fires_on_its_statement_and_not_on_the_safe_form() {
    let cases: &[(&str, Vec<Found>)] = &[
        // Indexes.
        (
            "CREATE INDEX orders_user_idx ON orders (user_id)",
            one(0, "create-index-without-concurrently", "orders"),
        ),
        (
            "CREATE UNIQUE INDEX ON app.orders (id)",
            one(0, "create-index-without-concurrently", "app.orders"),
        ),
        ("CREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id)", vec![]),
        // Adding columns.
        (
            "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()",
            one(0, "add-column-volatile-default", "users"),
        ),
        (
            "ALTER TABLE users ADD COLUMN r float8 DEFAULT (random() * 10)::int",
            one(0, "add-column-volatile-default", "users"),
        ),
        (
            "ALTER TABLE users ADD COLUMN n bigserial",
            one(0, "add-column-volatile-default", "users"),
        ),
        (
            "ALTER TABLE users ADD COLUMN n int GENERATED ALWAYS AS IDENTITY",
            one(0, "add-column-volatile-default", "users"),
        ),
        (
            "ALTER TABLE users ADD COLUMN d int GENERATED ALWAYS AS (id * 2) STORED",
            one(0, "add-column-volatile-default", "users"),
        ),
        ("ALTER TABLE users ADD COLUMN created timestamptz DEFAULT now()", vec![]),
        (
            "ALTER TABLE users ADD COLUMN flag boolean NOT NULL DEFAULT false",
            vec![],
        ),
        ("ALTER TABLE users ADD COLUMN note text", vec![]),
        // Column changes.
        (
            "ALTER TABLE users ALTER COLUMN name TYPE text",
            one(0, "alter-column-type", "users"),
        ),
        (
            "ALTER TABLE users ALTER COLUMN name SET NOT NULL",
            one(0, "set-not-null", "users"),
        ),
        ("ALTER TABLE users ALTER COLUMN name DROP NOT NULL", vec![]),
        ("ALTER TABLE users ALTER COLUMN name SET DEFAULT 'x'", vec![]),
        // Constraints.
        (
            "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id)",
            one(0, "add-foreign-key-without-not-valid", "orders"),
        ),
        (
            "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
            vec![],
        ),
        (
            "ALTER TABLE orders ADD CONSTRAINT positive CHECK (total > 0)",
            one(0, "add-check-without-not-valid", "orders"),
        ),
        (
            "ALTER TABLE orders ADD CONSTRAINT positive CHECK (total > 0) NOT VALID",
            vec![],
        ),
        ("ALTER TABLE orders VALIDATE CONSTRAINT positive", vec![]),
        (
            "ALTER TABLE orders ADD PRIMARY KEY (id)",
            one(0, "add-key-without-index", "orders"),
        ),
        (
            "ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_id_idx",
            vec![],
        ),
        // Data loss.
        ("ALTER TABLE users DROP COLUMN legacy", one(0, "drop-column", "users")),
        ("DROP TABLE audit_log", one(0, "drop-table", "audit_log")),
        ("TRUNCATE audit_log", one(0, "truncate", "audit_log")),
        ("DELETE FROM audit_log", one(0, "delete-without-where", "audit_log")),
        ("DELETE FROM audit_log WHERE at < now() - interval '1 year'", vec![]),
        (
            "DROP TABLE IF EXISTS a, app.b",
            vec![
                (0, "drop-table", Some("a".into())),
                (0, "drop-table", Some("app.b".into())),
            ],
        ),
        ("DROP VIEW audit_view", vec![]),
        // Rewrites and explicit locks.
        ("VACUUM FULL orders", one(0, "vacuum-full", "orders")),
        ("VACUUM (FULL, ANALYZE) orders", one(0, "vacuum-full", "orders")),
        ("VACUUM (FULL false) orders", vec![]),
        ("VACUUM orders", vec![]),
        ("CLUSTER orders USING orders_pkey", one(0, "cluster", "orders")),
        ("LOCK TABLE orders", one(0, "lock-table", "orders")),
        ("LOCK TABLE orders IN ROW EXCLUSIVE MODE", vec![]),
        // Plain statements.
        ("UPDATE users SET name = 'x' WHERE id = 1; SELECT 1", vec![]),
    ];
    for (sql, expected) in cases {
        assert_eq!(&found(sql), expected, "{sql}");
    }
}

#[test]
fn statements_on_a_table_created_in_the_same_file_are_not_warned_about() {
    let sql = "CREATE TABLE events (id bigint, kind text);
               CREATE INDEX ON events (kind);
               ALTER TABLE events ADD COLUMN token uuid DEFAULT gen_random_uuid();
               ALTER TABLE events ALTER COLUMN kind SET NOT NULL;
               ALTER TABLE public.events ADD CONSTRAINT kind_check CHECK (kind <> '');
               CREATE INDEX ON orders (id);";

    assert_eq!(found(sql), one(5, "create-index-without-concurrently", "orders"));
}

#[test]
fn set_not_null_after_a_validated_not_null_check_is_not_warned_about() {
    let cases: &[(&str, Vec<Found>)] = &[
        (
            "ALTER TABLE users ADD CONSTRAINT name_nn CHECK (name IS NOT NULL) NOT VALID;
             ALTER TABLE users VALIDATE CONSTRAINT name_nn;
             ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
            vec![],
        ),
        (
            "ALTER TABLE users ADD CONSTRAINT name_nn CHECK (name IS NOT NULL) NOT VALID;
             ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
            one(1, "set-not-null", "users"),
        ),
        (
            "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;
             ALTER TABLE users VALIDATE CONSTRAINT email_nn;
             ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
            one(2, "set-not-null", "users"),
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(&found(sql), expected, "{sql}");
    }
}

#[test]
fn statement_indexes_count_from_zero_across_the_file() {
    let sql = "SELECT 1;\n-- a comment\nALTER TABLE a DROP COLUMN b;\nSELECT 2;\nDROP TABLE c;";

    let statements: Vec<usize> = found(sql).iter().map(|(s, ..)| *s).collect();

    assert_eq!(statements, [1, 3]);
}

#[test]
fn a_statement_that_does_not_parse_is_reported_and_the_others_still_checked() {
    let sql = "CREATE INDEX ON a (x);\nALTER TABLE oops oops;\nDROP TABLE b;";

    let rules: Vec<(usize, &str)> = found(sql).iter().map(|(s, r, _)| (*s, *r)).collect();

    assert_eq!(
        rules,
        [
            (0, "create-index-without-concurrently"),
            (1, "syntax-error"),
            (2, "drop-table")
        ]
    );
}

#[test]
fn messages_name_the_table_its_size_and_the_safer_way() {
    let finding = Finding {
        statement: 0,
        table: Some(TableRef {
            schema: Some("public".into()),
            name: "orders".into(),
        }),
        kind: Kind::CreateIndex,
    };

    let warning = finding.warning(Some(3 * 1024 * 1024 * 1024 / 2));

    assert_eq!(warning.table_bytes, Some(1_610_612_736));
    assert!(
        warning.message.contains("public.orders (1.5 GB)"),
        "{}",
        warning.message
    );
    assert!(warning.message.contains("CONCURRENTLY"), "{}", warning.message);
    assert!(!finding.warning(None).message.contains('('), "no size, no parentheses");
}

#[test]
fn sizes_read_like_pg_size_pretty() {
    let cases = [
        (0, "0 bytes"),
        (8192, "8192 bytes"),
        (16384, "16 kB"),
        (5 * 1024 * 1024, "5.0 MB"),
        (123 << 30, "123 GB"),
    ];
    for (bytes, text) in cases {
        assert_eq!(pretty_size(bytes), text);
    }
}

#[test]
fn volatile_functions_come_from_the_set_given() {
    let sql = "ALTER TABLE t ADD COLUMN c int DEFAULT my_counter()";

    let without = lint(sql, &HashSet::new());
    let with = lint(sql, &HashSet::from(["my_counter".to_string()]));

    assert!(without.is_empty());
    assert_eq!(with[0].rule, "add-column-volatile-default");
    assert!(with[0].message.contains("my_counter()"), "{}", with[0].message);
}

#[test]
fn names_are_quoted_for_to_regclass() {
    let cases = [
        (
            TableRef {
                schema: None,
                name: "orders".into(),
            },
            "\"orders\"",
        ),
        (
            TableRef {
                schema: Some("App".into()),
                name: "Order\"s".into(),
            },
            "\"App\".\"Order\"\"s\"",
        ),
    ];
    for (table, regclass) in cases {
        assert_eq!(table.regclass(), regclass);
    }
}
