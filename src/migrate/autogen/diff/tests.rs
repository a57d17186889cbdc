use super::*;
use crate::migrate::autogen::model::{
    Column, Constraint, ConstraintKind, Enum, Extension, Generation, Identity, Index, Reference, Table, View,
};

fn name(table: &str) -> Name {
    Name::new("public", table)
}

fn col(name: &str, type_sql: &str) -> Column {
    Column {
        name: name.into(),
        type_sql: type_sql.into(),
        collation: None,
        not_null: false,
        default: None,
        identity: None,
        generated: None,
        serial: false,
    }
}

fn not_null(column: Column) -> Column {
    Column {
        not_null: true,
        ..column
    }
}

fn with_default(column: Column, default: &str) -> Column {
    Column {
        default: Some(default.into()),
        ..column
    }
}

fn table(table: &str, columns: Vec<Column>) -> Table {
    Table {
        name: name(table),
        columns,
        constraints: Vec::new(),
        indexes: Vec::new(),
    }
}

fn key(name: &str, kind: ConstraintKind, definition: &str) -> Constraint {
    Constraint {
        name: name.into(),
        kind,
        definition: definition.into(),
        references: None,
    }
}

fn fk(name: &str, definition: &str, table: &str, index: &str) -> Constraint {
    Constraint {
        name: name.into(),
        kind: ConstraintKind::ForeignKey,
        definition: definition.into(),
        references: Some(Reference {
            table: self::name(table),
            index: index.into(),
        }),
    }
}

fn index(table: &str, name: &str, columns: &str) -> Index {
    Index {
        name: name.into(),
        definition: format!("CREATE INDEX {name} ON public.{table} USING btree ({columns})"),
    }
}

fn view(view: &str, definition: &str, columns: &[(&str, &str)], depends_on: &[&str]) -> View {
    View {
        name: name(view),
        definition: definition.into(),
        options: Vec::new(),
        columns: columns.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect(),
        depends_on: depends_on.iter().map(|d| name(d)).collect(),
    }
}

fn catalog(tables: Vec<Table>) -> Catalog {
    Catalog {
        schemas: vec!["public".into()],
        tables,
        ..Catalog::default()
    }
}

/// The changes of a generated script (a blank line separates them), without the last `;`.
fn statements(script: &str) -> Vec<String> {
    script
        .split("\n\n")
        .map(|s| s.trim().trim_end_matches(';').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

struct Case {
    what: &'static str,
    live: Catalog,
    desired: Catalog,
    up: &'static [&'static str],
    down: &'static [&'static str],
}

fn users() -> Table {
    let mut users = table("users", vec![not_null(col("id", "bigint")), col("email", "text")]);
    users
        .constraints
        .push(key("users_pkey", ConstraintKind::PrimaryKey, "PRIMARY KEY (id)"));
    users
}

fn orders() -> Table {
    let mut orders = table("orders", vec![not_null(col("id", "bigint")), col("user_id", "bigint")]);
    orders.constraints.push(fk(
        "orders_user_id_fkey",
        "FOREIGN KEY (user_id) REFERENCES public.users(id)",
        "users",
        "users_pkey",
    ));
    orders
}

fn cases() -> Vec<Case> {
    let mut orders_indexed = orders();
    orders_indexed
        .indexes
        .push(index("orders", "orders_user_idx", "user_id"));
    let mut users_new_key = users();
    users_new_key.constraints[0] = key(
        "users_pkey",
        ConstraintKind::PrimaryKey,
        "PRIMARY KEY (id) INCLUDE (email)",
    );
    let mut users_typed = users();
    users_typed.columns[1] = not_null(with_default(
        col("email", "character varying(200)"),
        "''::character varying",
    ));
    let mut users_default = users();
    users_default.columns[1] = with_default(col("email", "text"), "'x'::text");
    let mut users_identity = users();
    users_identity.columns[0].identity = Some(Identity::Always);
    let mut users_generated = users();
    users_generated.columns[1].generated = Some(Generation {
        expression: "(id * 2)".into(),
        stored: true,
    });
    let email_view = view(
        "emails",
        " SELECT users.email FROM public.users",
        &[("email", "text")],
        &["users"],
    );
    let email_view_lower = view(
        "emails",
        " SELECT lower(users.email) AS email FROM public.users",
        &[("email", "text")],
        &["users"],
    );
    let email_view_typed = view(
        "emails",
        " SELECT users.email FROM public.users",
        &[("email", "character varying(200)")],
        &["users"],
    );
    let count_view = view(
        "email_count",
        " SELECT count(*) AS n FROM public.emails",
        &[("n", "bigint")],
        &["emails"],
    );
    let mood = |labels: &[&str]| Enum {
        name: name("mood"),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    };
    let with_enum = |labels: &[&str]| Catalog {
        enums: vec![mood(labels)],
        ..catalog(vec![])
    };
    vec![
        Case {
            what: "a new table gets its keys inline, its foreign keys and indexes after every table exists",
            live: catalog(vec![]),
            desired: catalog(vec![orders_indexed.clone(), users()]),
            up: &[
                "CREATE TABLE public.orders (\n    id bigint NOT NULL,\n    user_id bigint\n)",
                "CREATE TABLE public.users (\n    id bigint NOT NULL,\n    email text,\n    CONSTRAINT users_pkey PRIMARY KEY (id)\n)",
                "ALTER TABLE public.orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id)",
                "CREATE INDEX orders_user_idx ON public.orders USING btree (user_id)",
            ],
            down: &[
                "DROP INDEX public.orders_user_idx",
                "ALTER TABLE public.orders DROP CONSTRAINT orders_user_id_fkey",
                "DROP TABLE public.users",
                "DROP TABLE public.orders",
            ],
        },
        Case {
            what: "a dropped table loses its foreign keys first and comes back whole",
            live: catalog(vec![orders_indexed.clone(), users()]),
            desired: catalog(vec![users()]),
            up: &[
                "ALTER TABLE public.orders DROP CONSTRAINT orders_user_id_fkey",
                "DROP TABLE public.orders",
            ],
            down: &[
                "CREATE TABLE public.orders (\n    id bigint NOT NULL,\n    user_id bigint\n);\nCREATE INDEX orders_user_idx ON public.orders USING btree (user_id)",
                "ALTER TABLE public.orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id)",
            ],
        },
        Case {
            what: "a type change drops the old default around it, and NOT NULL follows",
            live: catalog(vec![users_default.clone()]),
            desired: catalog(vec![users_typed.clone()]),
            up: &[
                "ALTER TABLE public.users ALTER COLUMN email DROP DEFAULT;\nALTER TABLE public.users ALTER COLUMN email TYPE character varying(200) USING email::character varying(200);\nALTER TABLE public.users ALTER COLUMN email SET DEFAULT ''::character varying;\nALTER TABLE public.users ALTER COLUMN email SET NOT NULL",
            ],
            down: &[
                "ALTER TABLE public.users ALTER COLUMN email DROP DEFAULT;\nALTER TABLE public.users ALTER COLUMN email TYPE text USING email::text;\nALTER TABLE public.users ALTER COLUMN email SET DEFAULT 'x'::text;\nALTER TABLE public.users ALTER COLUMN email DROP NOT NULL",
            ],
        },
        Case {
            what: "a new default is set in place",
            live: catalog(vec![users()]),
            desired: catalog(vec![users_default.clone()]),
            up: &["ALTER TABLE public.users ALTER COLUMN email SET DEFAULT 'x'::text"],
            down: &["ALTER TABLE public.users ALTER COLUMN email DROP DEFAULT"],
        },
        Case {
            what: "a column becoming identity continues after the values it holds",
            live: catalog(vec![users()]),
            desired: catalog(vec![users_identity]),
            up: &[
                "ALTER TABLE public.users ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;\nSELECT setval(pg_get_serial_sequence('public.users', 'id'), coalesce(max(id), 0) + 1, false) FROM public.users",
            ],
            down: &["ALTER TABLE public.users ALTER COLUMN id DROP IDENTITY"],
        },
        Case {
            what: "a changed key re-creates the foreign keys relying on it",
            live: catalog(vec![orders(), users()]),
            desired: catalog(vec![orders(), users_new_key]),
            up: &[
                "ALTER TABLE public.orders DROP CONSTRAINT orders_user_id_fkey",
                "ALTER TABLE public.users DROP CONSTRAINT users_pkey",
                "ALTER TABLE public.users ADD CONSTRAINT users_pkey PRIMARY KEY (id) INCLUDE (email)",
                "ALTER TABLE public.orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id)",
            ],
            down: &[
                "ALTER TABLE public.orders DROP CONSTRAINT orders_user_id_fkey",
                "ALTER TABLE public.users DROP CONSTRAINT users_pkey",
                "ALTER TABLE public.users ADD CONSTRAINT users_pkey PRIMARY KEY (id)",
                "ALTER TABLE public.orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id)",
            ],
        },
        Case {
            what: "a view whose query changes is replaced in place",
            live: Catalog {
                views: vec![email_view.clone()],
                ..catalog(vec![users()])
            },
            desired: Catalog {
                views: vec![email_view_lower.clone()],
                ..catalog(vec![users()])
            },
            up: &["CREATE OR REPLACE VIEW public.emails AS\n SELECT lower(users.email) AS email FROM public.users"],
            down: &["CREATE OR REPLACE VIEW public.emails AS\n SELECT users.email FROM public.users"],
        },
        Case {
            what: "re-typing a column re-creates the views reading it, and the views reading those",
            live: Catalog {
                views: vec![count_view.clone(), email_view],
                ..catalog(vec![users()])
            },
            desired: Catalog {
                views: vec![count_view, email_view_typed],
                ..catalog(vec![users_typed])
            },
            up: &[
                "DROP VIEW public.email_count",
                "DROP VIEW public.emails",
                "ALTER TABLE public.users ALTER COLUMN email TYPE character varying(200) USING email::character varying(200);\nALTER TABLE public.users ALTER COLUMN email SET DEFAULT ''::character varying;\nALTER TABLE public.users ALTER COLUMN email SET NOT NULL",
                "CREATE VIEW public.emails AS\n SELECT users.email FROM public.users",
                "CREATE VIEW public.email_count AS\n SELECT count(*) AS n FROM public.emails",
            ],
            down: &[
                "DROP VIEW public.email_count",
                "DROP VIEW public.emails",
                "ALTER TABLE public.users ALTER COLUMN email DROP DEFAULT;\nALTER TABLE public.users ALTER COLUMN email TYPE text USING email::text;\nALTER TABLE public.users ALTER COLUMN email DROP NOT NULL",
                "CREATE VIEW public.emails AS\n SELECT users.email FROM public.users",
                "CREATE VIEW public.email_count AS\n SELECT count(*) AS n FROM public.emails",
            ],
        },
        Case {
            what: "enum values are added next to their neighbours",
            live: with_enum(&["b", "d"]),
            desired: with_enum(&["a", "b", "c", "d", "e"]),
            up: &[
                "ALTER TYPE public.mood ADD VALUE 'a' BEFORE 'b';\nALTER TYPE public.mood ADD VALUE 'c' AFTER 'b';\nALTER TYPE public.mood ADD VALUE 'e' AFTER 'd'",
            ],
            down: &["-- enum public.mood keeps the values 'a', 'c', 'e': PostgreSQL cannot remove enum values"],
        },
        Case {
            what: "enums are created before tables and dropped after columns stop using them",
            live: Catalog {
                enums: vec![mood(&["x"])],
                ..catalog(vec![table("t", vec![col("m", "public.mood")])])
            },
            desired: Catalog {
                enums: vec![Enum {
                    name: name("Feel"),
                    labels: vec!["it's".into()],
                }],
                ..catalog(vec![table("t", vec![col("m", "public.\"Feel\"")])])
            },
            up: &[
                "CREATE TYPE public.\"Feel\" AS ENUM ('it''s')",
                "ALTER TABLE public.t ALTER COLUMN m TYPE public.\"Feel\" USING m::public.\"Feel\"",
                "DROP TYPE public.mood",
            ],
            down: &[
                "CREATE TYPE public.mood AS ENUM ('x')",
                "ALTER TABLE public.t ALTER COLUMN m TYPE public.mood USING m::public.mood",
                "DROP TYPE public.\"Feel\"",
            ],
        },
        Case {
            what: "a generated expression change is only noted",
            live: catalog(vec![users()]),
            desired: catalog(vec![users_generated]),
            up: &[],
            down: &[],
        },
    ]
}

#[test]
fn changes_come_out_in_dependency_order_and_down_undoes_them() {
    for case in cases() {
        let generated = diff(&case.live, &case.desired);
        assert_eq!(statements(&generated.up), case.up, "{}: up", case.what);
        assert_eq!(statements(&generated.down), case.down, "{}: down", case.what);
    }
}

#[test]
fn equal_catalogs_produce_nothing() {
    for case in cases() {
        for catalog in [&case.live, &case.desired] {
            let generated = diff(catalog, catalog);
            assert_eq!(generated, Generated::default(), "{}", case.what);
        }
    }
}

/// (what, live, desired, a phrase the notes must contain).
fn note_cases() -> Vec<(&'static str, Catalog, Catalog, &'static str)> {
    let mut renamed = users();
    renamed.columns[1].name = "mail".into();
    let mut serial = users();
    serial.columns[0] = with_default(serial.columns[0].clone(), "nextval('public.users_id_seq'::regclass)");
    serial.columns[0].serial = true;
    let mut added_not_null = users();
    added_not_null.columns.push(not_null(col("age", "integer")));
    let function = |definition: &str| Unmanaged {
        kind: "function".into(),
        name: "public.f()".into(),
        definition: Some(definition.into()),
    };
    let with_function = |definition: &str| Catalog {
        unmanaged: vec![function(definition)],
        ..catalog(vec![])
    };
    let mood = |labels: &[&str]| Catalog {
        enums: vec![Enum {
            name: name("mood"),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }],
        ..catalog(vec![])
    };
    vec![
        (
            "column rename",
            catalog(vec![users()]),
            catalog(vec![renamed]),
            "renames are not guessed: public.users drops column(s) email and adds mail",
        ),
        (
            "table rename",
            catalog(vec![users()]),
            catalog(vec![table("people", vec![])]),
            "renames are not guessed: dropped table(s) public.users, created public.people",
        ),
        (
            "serial",
            catalog(vec![users()]),
            catalog(vec![serial]),
            "changing to or from serial",
        ),
        (
            "NOT NULL without default",
            catalog(vec![users()]),
            catalog(vec![added_not_null.clone()]),
            "is added NOT NULL without a default",
        ),
        (
            "dropped NOT NULL column",
            catalog(vec![added_not_null]),
            catalog(vec![users()]),
            "down adds it back NOT NULL without a default",
        ),
        (
            "enum value removed",
            mood(&["a", "b"]),
            mood(&["a"]),
            "removing values ('b') is not supported",
        ),
        (
            "enum reordered",
            mood(&["a", "b"]),
            mood(&["b", "a"]),
            "reordering values is not supported",
        ),
        (
            "function added",
            catalog(vec![]),
            with_function("x"),
            "function public.f() is in the desired schema but not in the live database",
        ),
        (
            "function changed",
            with_function("x"),
            with_function("y"),
            "function public.f() differs",
        ),
        (
            "function dropped",
            with_function("x"),
            catalog(vec![]),
            "autogenerate does not drop functions",
        ),
        (
            "extension kept",
            Catalog {
                extensions: vec![Extension {
                    name: "pg_stat_statements".into(),
                    schema: "public".into(),
                }],
                ..catalog(vec![])
            },
            catalog(vec![]),
            "extensions are never dropped",
        ),
    ]
}

#[test]
fn what_is_not_handled_becomes_a_note() {
    for (what, live, desired, phrase) in note_cases() {
        let generated = diff(&live, &desired);
        assert!(
            generated.notes.iter().any(|n| n.contains(phrase)),
            "{what}: {:#?}",
            generated.notes
        );
    }
}

#[test]
fn new_schemas_and_extensions_come_first_and_go_last() {
    let live = catalog(vec![]);
    let desired = Catalog {
        schemas: vec!["billing".into(), "public".into()],
        extensions: vec![Extension {
            name: "citext".into(),
            schema: "public".into(),
        }],
        tables: vec![Table {
            name: Name::new("billing", "rates"),
            ..table("x", vec![col("c", "public.citext")])
        }],
        ..Catalog::default()
    };

    let generated = diff(&live, &desired);

    assert_eq!(
        statements(&generated.up),
        [
            "CREATE SCHEMA billing",
            "CREATE EXTENSION citext WITH SCHEMA public",
            "CREATE TABLE billing.rates (\n    c public.citext\n)"
        ]
    );
    assert_eq!(
        statements(&generated.down),
        [
            "DROP TABLE billing.rates",
            "DROP EXTENSION citext",
            "DROP SCHEMA billing"
        ]
    );
    assert_eq!(generated.changes, 3);
}
