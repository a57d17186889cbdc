//! Tables, columns, constraints and indexes.

use std::collections::{BTreeMap, BTreeSet};

use super::{Phase, Plan, sql};
use crate::migrate::autogen::model::{Catalog, Column, Constraint, ConstraintKind, Index, Name, Table};

/// Compares the tables and returns those whose change forces the views reading them to be
/// dropped and re-created (dropped tables, dropped columns, changed column types).
pub(super) fn diff(plan: &mut Plan, live: &Catalog, desired: &Catalog) -> BTreeSet<Name> {
    let old: BTreeMap<&Name, &Table> = live.tables.iter().map(|t| (&t.name, t)).collect();
    let new: BTreeMap<&Name, &Table> = desired.tables.iter().map(|t| (&t.name, t)).collect();
    let mut affected = BTreeSet::new();
    let created: Vec<&Table> = new
        .iter()
        .filter(|(n, _)| !old.contains_key(*n))
        .map(|(_, t)| *t)
        .collect();
    let dropped: Vec<&Table> = old
        .iter()
        .filter(|(n, _)| !new.contains_key(*n))
        .map(|(_, t)| *t)
        .collect();
    for table in &created {
        create(plan, table);
    }
    for table in &dropped {
        drop(plan, table);
        affected.insert(table.name.clone());
    }
    if !created.is_empty() && !dropped.is_empty() {
        plan.note(format!(
            "renames are not guessed: dropped table(s) {}, created {}; if that is a rename, replace the \
             DROP and CREATE with ALTER TABLE ... RENAME TO",
            names(dropped.iter().map(|t| t.name.to_string())),
            names(created.iter().map(|t| t.name.to_string())),
        ));
    }
    let released = released_keys(&old, &new);
    for (name, before) in &old {
        if let Some(after) = new.get(name)
            && alter(plan, before, after, &released)
        {
            affected.insert((*name).clone());
        }
    }
    affected
}

fn names(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// A new table: columns and keys in `CREATE TABLE`; foreign keys and indexes in their phases,
/// once every table they may need exists.
fn create(plan: &mut Plan, table: &Table) {
    plan.add(
        Phase::CreateTables,
        vec![sql::create_table(table)],
        vec![sql::drop_table(&table.name)],
    );
    for fk in foreign_keys(table) {
        plan.add(
            Phase::AddForeignKeys,
            vec![sql::add_constraint(&table.name, fk)],
            vec![sql::drop_constraint(&table.name, fk)],
        );
    }
    for index in &table.indexes {
        plan.add(
            Phase::CreateIndexes,
            vec![sql::create_index(index)],
            vec![sql::drop_index(&table.name.schema, index)],
        );
    }
}

/// A dropped table: its foreign keys go first (another dropped table may reference it), and
/// down re-creates it whole.
fn drop(plan: &mut Plan, table: &Table) {
    for fk in foreign_keys(table) {
        plan.add(
            Phase::DropForeignKeys,
            vec![sql::drop_constraint(&table.name, fk)],
            vec![sql::add_constraint(&table.name, fk)],
        );
    }
    let mut down = vec![sql::create_table(table)];
    down.extend(table.indexes.iter().map(sql::create_index));
    plan.add(Phase::DropTables, vec![sql::drop_table(&table.name)], down);
}

fn foreign_keys(table: &Table) -> impl Iterator<Item = &Constraint> {
    table
        .constraints
        .iter()
        .filter(|c| c.kind == ConstraintKind::ForeignKey)
}

/// Unique indexes (own or behind a key constraint) of kept tables that up drops: a foreign key
/// relying on one must be dropped before it and added again after its replacement exists.
fn released_keys(old: &BTreeMap<&Name, &Table>, new: &BTreeMap<&Name, &Table>) -> BTreeSet<(Name, String)> {
    let mut released = BTreeSet::new();
    for (name, before) in old {
        let Some(after) = new.get(name) else { continue };
        for key in before
            .constraints
            .iter()
            .filter(|c| c.kind != ConstraintKind::ForeignKey)
        {
            if !after.constraints.iter().any(|c| same_constraint(c, key)) {
                released.insert(((*name).clone(), key.name.clone()));
            }
        }
        for index in before.indexes.iter().filter(|i| !after.indexes.contains(i)) {
            released.insert(((*name).clone(), index.name.clone()));
        }
    }
    released
}

/// Same name, kind and definition (which index a foreign key picked is PostgreSQL's choice).
fn same_constraint(a: &Constraint, b: &Constraint) -> bool {
    a.name == b.name && a.kind == b.kind && a.definition == b.definition
}

/// Changes to a kept table; returns whether views reading it must be re-created.
fn alter(plan: &mut Plan, before: &Table, after: &Table, released: &BTreeSet<(Name, String)>) -> bool {
    let affected = columns(plan, before, after);
    constraints(plan, before, after, released);
    indexes(plan, &before.name, &before.indexes, &after.indexes);
    affected
}

fn columns(plan: &mut Plan, before: &Table, after: &Table) -> bool {
    let table = &before.name;
    let find = |columns: &[Column], name: &str| columns.iter().position(|c| c.name == name);
    let mut affected = false;
    let mut dropped = Vec::new();
    for column in before
        .columns
        .iter()
        .filter(|c| find(&after.columns, &c.name).is_none())
    {
        plan.add(
            Phase::DropColumns,
            vec![sql::drop_column(table, &column.name)],
            vec![sql::add_column(table, column)],
        );
        dropped.push(crate::db::sql::ident_as_needed(&column.name));
        if requires_value(column) {
            plan.note(format!(
                "column {} of {table} is dropped; down adds it back NOT NULL without a default, which fails \
                 if the table has rows (its data is gone either way)",
                crate::db::sql::ident_as_needed(&column.name)
            ));
        }
        affected = true;
    }
    let mut added = Vec::new();
    for column in after
        .columns
        .iter()
        .filter(|c| find(&before.columns, &c.name).is_none())
    {
        plan.add(
            Phase::AddColumns,
            vec![sql::add_column(table, column)],
            vec![sql::drop_column(table, &column.name)],
        );
        added.push(crate::db::sql::ident_as_needed(&column.name));
        if requires_value(column) {
            plan.note(format!(
                "column {} of {table} is added NOT NULL without a default: the migration fails if the \
                 table has rows",
                crate::db::sql::ident_as_needed(&column.name)
            ));
        }
    }
    if !dropped.is_empty() && !added.is_empty() {
        plan.note(format!(
            "renames are not guessed: {table} drops column(s) {} and adds {}; if that is a rename, \
             replace them with ALTER TABLE ... RENAME COLUMN",
            dropped.join(", "),
            added.join(", ")
        ));
    }
    for old in &before.columns {
        let Some(new) = after.columns.iter().find(|c| c.name == old.name) else {
            continue;
        };
        if old == new {
            continue;
        }
        let (up, notes) = alter_column(table, old, new);
        let (down, _) = alter_column(table, new, old);
        notes.into_iter().for_each(|n| plan.note(n));
        if !up.is_empty() {
            plan.add(Phase::AlterColumns, up, down);
        }
        affected |= old.type_sql != new.type_sql || old.collation != new.collation;
    }
    affected
}

/// NOT NULL with nothing to fill existing rows: adding the column fails on a table with rows.
fn requires_value(column: &Column) -> bool {
    column.not_null && column.default.is_none() && column.identity.is_none() && column.generated.is_none()
}

/// The `ALTER COLUMN` statements taking `from` to `to`, in an order PostgreSQL accepts (the
/// default is dropped around a type change, since the old default may not cast; identity needs
/// NOT NULL first), and notes on what cannot be done.
fn alter_column(table: &Name, from: &Column, to: &Column) -> (Vec<String>, Vec<String>) {
    let column = crate::db::sql::ident_as_needed(&to.name);
    if from.generated != to.generated {
        let note = format!(
            "column {column} of {table}: changing a generated column's expression (or making a column \
             generated or not) is not supported; drop and re-add the column by hand"
        );
        return (Vec::new(), vec![note]);
    }
    if from.serial != to.serial {
        let note = format!(
            "column {column} of {table}: changing to or from serial (a sequence owned by the column) is \
             not supported; write it by hand"
        );
        return (Vec::new(), vec![note]);
    }
    let mut notes = Vec::new();
    let mut actions: Vec<String> = Vec::new();
    let retyped = from.type_sql != to.type_sql || from.collation != to.collation;
    let mut redefault = from.default != to.default;
    if redefault && from.serial {
        notes.push(format!(
            "column {column} of {table}: the sequence behind the serial column has another name; \
             write the change by hand"
        ));
        redefault = false;
    }
    if from.identity.is_some() && to.identity.is_none() {
        actions.push("DROP IDENTITY".into());
    }
    let retype_default = retyped && !from.serial;
    if from.default.is_some() && ((redefault && to.default.is_none()) || retype_default) {
        actions.push("DROP DEFAULT".into());
    }
    if retyped {
        actions.push(sql::set_type(to));
    }
    if let Some(default) = &to.default
        && (redefault || retype_default)
    {
        actions.push(format!("SET DEFAULT {default}"));
    }
    if from.not_null != to.not_null {
        actions.push(if to.not_null { "SET NOT NULL" } else { "DROP NOT NULL" }.into());
    }
    match (from.identity, to.identity) {
        (None, Some(identity)) => actions.push(format!("ADD GENERATED {} AS IDENTITY", sql::identity_kind(identity))),
        (Some(a), Some(b)) if a != b => actions.push(format!("SET GENERATED {}", sql::identity_kind(b))),
        _ => {}
    }
    let mut statements: Vec<String> = actions.iter().map(|a| sql::alter_column(table, &to.name, a)).collect();
    if from.identity.is_none() && to.identity.is_some() {
        // A new identity sequence starts at 1, below the values already in the column.
        statements.push(sql::restart_identity_past_max(table, &to.name));
    }
    if retyped && from.serial && to.serial {
        // A serial's sequence keeps its own type (an identity's follows the column's).
        statements.extend(sql::retype_serial_sequence(to));
    }
    (statements, notes)
}

/// Primary key, unique, check and exclusion constraints, and foreign keys (also re-created when
/// the unique index they rely on is dropped).
fn constraints(plan: &mut Plan, before: &Table, after: &Table, released: &BTreeSet<(Name, String)>) {
    let table = &before.name;
    let kept = |c: &Constraint, others: &[Constraint]| others.iter().any(|o| same_constraint(o, c));
    let rebuilt = |fk: &Constraint| {
        fk.references
            .as_ref()
            .is_some_and(|r| released.contains(&(r.table.clone(), r.index.clone())))
    };
    for old in &before.constraints {
        let is_fk = old.kind == ConstraintKind::ForeignKey;
        if !kept(old, &after.constraints) || (is_fk && rebuilt(old)) {
            let phase = if is_fk {
                Phase::DropForeignKeys
            } else {
                Phase::DropConstraints
            };
            plan.add(
                phase,
                vec![sql::drop_constraint(table, old)],
                vec![sql::add_constraint(table, old)],
            );
        }
    }
    for new in &after.constraints {
        let is_fk = new.kind == ConstraintKind::ForeignKey;
        let rebuilt_fk = is_fk
            && before
                .constraints
                .iter()
                .any(|old| same_constraint(old, new) && rebuilt(old));
        if !kept(new, &before.constraints) || rebuilt_fk {
            let phase = if is_fk {
                Phase::AddForeignKeys
            } else {
                Phase::AddConstraints
            };
            plan.add(
                phase,
                vec![sql::add_constraint(table, new)],
                vec![sql::drop_constraint(table, new)],
            );
        }
    }
}

fn indexes(plan: &mut Plan, table: &Name, before: &[Index], after: &[Index]) {
    for old in before.iter().filter(|i| !after.contains(i)) {
        plan.add(
            Phase::DropIndexes,
            vec![sql::drop_index(&table.schema, old)],
            vec![sql::create_index(old)],
        );
    }
    for new in after.iter().filter(|i| !before.contains(i)) {
        plan.add(
            Phase::CreateIndexes,
            vec![sql::create_index(new)],
            vec![sql::drop_index(&table.schema, new)],
        );
    }
}
