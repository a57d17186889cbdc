//! Rendering DDL from the model: quoting, column definitions, and the statements the diff
//! emits. Every statement is returned without its terminating semicolon.

use super::model::{Column, Constraint, ConstraintKind, Enum, Identity, Index, Name, Table, View};
use crate::db::sql::{ident_as_needed, literal};

/// The type as written in a column definition: `serial` columns get their pseudo-type back,
/// since `CREATE TABLE` cannot name a sequence that does not exist yet.
fn column_type(column: &Column) -> &str {
    match (column.serial, column.type_sql.as_str()) {
        (true, "integer") => "serial",
        (true, "bigint") => "bigserial",
        (true, "smallint") => "smallserial",
        (_, other) => other,
    }
}

/// `name type [COLLATE c] [DEFAULT e | GENERATED ...] [NOT NULL]`, as in `CREATE TABLE` and
/// `ADD COLUMN`.
pub fn column_definition(column: &Column) -> String {
    let mut sql = format!("{} {}", ident_as_needed(&column.name), column_type(column));
    if let Some(collation) = &column.collation {
        sql.push_str(&format!(" COLLATE {collation}"));
    }
    if let Some(generated) = &column.generated {
        let kind = if generated.stored { "STORED" } else { "VIRTUAL" };
        sql.push_str(&format!(" GENERATED ALWAYS AS ({}) {kind}", generated.expression));
    } else if let Some(identity) = column.identity {
        sql.push_str(&format!(" GENERATED {} AS IDENTITY", identity_kind(identity)));
    } else if let (Some(default), false) = (&column.default, column.serial) {
        sql.push_str(&format!(" DEFAULT {default}"));
    }
    if column.not_null {
        sql.push_str(" NOT NULL");
    }
    sql
}

pub fn identity_kind(identity: Identity) -> &'static str {
    match identity {
        Identity::Always => "ALWAYS",
        Identity::ByDefault => "BY DEFAULT",
    }
}

/// `CREATE TABLE` with the columns and every constraint but foreign keys (those are added once
/// all tables exist).
pub fn create_table(table: &Table) -> String {
    let mut lines: Vec<String> = table.columns.iter().map(column_definition).collect();
    for constraint in table
        .constraints
        .iter()
        .filter(|c| c.kind != ConstraintKind::ForeignKey)
    {
        lines.push(format!(
            "CONSTRAINT {} {}",
            ident_as_needed(&constraint.name),
            constraint.definition
        ));
    }
    if lines.is_empty() {
        return format!("CREATE TABLE {} ()", table.name);
    }
    format!("CREATE TABLE {} (\n    {}\n)", table.name, lines.join(",\n    "))
}

pub fn drop_table(name: &Name) -> String {
    format!("DROP TABLE {name}")
}

pub fn add_column(table: &Name, column: &Column) -> String {
    format!("ALTER TABLE {table} ADD COLUMN {}", column_definition(column))
}

pub fn drop_column(table: &Name, column: &str) -> String {
    format!("ALTER TABLE {table} DROP COLUMN {}", ident_as_needed(column))
}

pub fn alter_column(table: &Name, column: &str, action: &str) -> String {
    format!("ALTER TABLE {table} ALTER COLUMN {} {action}", ident_as_needed(column))
}

/// `TYPE t [COLLATE c] USING col::t`: the cast makes conversions without an assignment cast
/// (text to integer, text to an enum) work, and is a no-op for the others.
pub fn set_type(column: &Column) -> String {
    let collate = column
        .collation
        .as_ref()
        .map(|c| format!(" COLLATE {c}"))
        .unwrap_or_default();
    format!(
        "TYPE {ty}{collate} USING {name}::{ty}",
        ty = column.type_sql,
        name = ident_as_needed(&column.name)
    )
}

/// Moves the identity sequence of `column` past the largest value in it.
pub fn restart_identity_past_max(table: &Name, column: &str) -> String {
    format!(
        "SELECT setval(pg_get_serial_sequence({}, {}), coalesce(max({col}), 0) + 1, false) FROM {table}",
        literal(&table.to_string()),
        literal(column),
        col = ident_as_needed(column)
    )
}

/// `ALTER SEQUENCE s AS type` for a serial column's sequence (named in its `nextval` default),
/// when the column's new type is one a sequence can have.
pub fn retype_serial_sequence(column: &Column) -> Option<String> {
    let sequence = column
        .default
        .as_deref()?
        .strip_prefix("nextval('")?
        .strip_suffix("'::regclass)")?;
    matches!(column.type_sql.as_str(), "smallint" | "integer" | "bigint")
        .then(|| format!("ALTER SEQUENCE {} AS {}", sequence.replace("''", "'"), column.type_sql))
}

pub fn add_constraint(table: &Name, constraint: &Constraint) -> String {
    format!(
        "ALTER TABLE {table} ADD CONSTRAINT {} {}",
        ident_as_needed(&constraint.name),
        constraint.definition
    )
}

pub fn drop_constraint(table: &Name, constraint: &Constraint) -> String {
    format!("ALTER TABLE {table} DROP CONSTRAINT {}", ident_as_needed(&constraint.name))
}

pub fn create_index(index: &Index) -> String {
    index.definition.clone()
}

pub fn drop_index(schema: &str, index: &Index) -> String {
    format!("DROP INDEX {}", Name::new(schema, &index.name))
}

pub fn create_enum(item: &Enum) -> String {
    let labels: Vec<String> = item.labels.iter().map(|l| literal(l)).collect();
    format!("CREATE TYPE {} AS ENUM ({})", item.name, labels.join(", "))
}

pub fn drop_type(name: &Name) -> String {
    format!("DROP TYPE {name}")
}

/// `ALTER TYPE ... ADD VALUE 'label' BEFORE|AFTER 'neighbour'`.
pub fn add_enum_value(name: &Name, label: &str, position: &str, neighbour: &str) -> String {
    format!(
        "ALTER TYPE {name} ADD VALUE {} {position} {}",
        literal(label),
        literal(neighbour)
    )
}

/// `CREATE [OR REPLACE] VIEW name [WITH (options)] AS definition`.
pub fn create_view(view: &View, or_replace: bool) -> String {
    let replace = if or_replace { "OR REPLACE " } else { "" };
    let options = if view.options.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", view.options.join(", "))
    };
    format!("CREATE {replace}VIEW {}{options} AS\n{}", view.name, view.definition)
}

pub fn drop_view(name: &Name) -> String {
    format!("DROP VIEW {name}")
}

pub fn create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA {}", ident_as_needed(schema))
}

pub fn drop_schema(schema: &str) -> String {
    format!("DROP SCHEMA {}", ident_as_needed(schema))
}

pub fn create_extension(name: &str, schema: &str) -> String {
    format!(
        "CREATE EXTENSION {} WITH SCHEMA {}",
        ident_as_needed(name),
        ident_as_needed(schema)
    )
}

pub fn drop_extension(name: &str) -> String {
    format!("DROP EXTENSION {}", ident_as_needed(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_definitions_cover_defaults_identity_generated_and_serial() {
        let base = Column {
            name: "id".into(),
            type_sql: "integer".into(),
            collation: None,
            not_null: true,
            default: None,
            identity: None,
            generated: None,
            serial: false,
        };
        let cases = [
            (base.clone(), "id integer NOT NULL"),
            (
                Column {
                    default: Some("nextval('public.t_id_seq'::regclass)".into()),
                    serial: true,
                    ..base.clone()
                },
                "id serial NOT NULL",
            ),
            (
                Column {
                    identity: Some(Identity::ByDefault),
                    ..base.clone()
                },
                "id integer GENERATED BY DEFAULT AS IDENTITY NOT NULL",
            ),
            (
                Column {
                    name: "Total".into(),
                    not_null: false,
                    generated: Some(super::super::model::Generation {
                        expression: "(a * 2)".into(),
                        stored: true,
                    }),
                    ..base.clone()
                },
                "\"Total\" integer GENERATED ALWAYS AS ((a * 2)) STORED",
            ),
            (
                Column {
                    type_sql: "text".into(),
                    collation: Some("\"C\"".into()),
                    default: Some("'x'::text".into()),
                    not_null: false,
                    ..base.clone()
                },
                "id text COLLATE \"C\" DEFAULT 'x'::text",
            ),
        ];
        for (column, sql) in cases {
            assert_eq!(column_definition(&column), sql);
        }
    }
}
