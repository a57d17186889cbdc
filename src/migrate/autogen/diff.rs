//! The pure comparison: live catalog × desired catalog → an ordered list of changes, each with
//! its up and down statements, and notes on what was left alone.
//!
//! Up runs the changes in [`Phase`] order, which keeps dependencies satisfied: everything that
//! depends on an object is dropped before it and created after it. Down runs the same changes
//! backwards, each undone, so it is valid for the same reason. Renames are never guessed: a
//! name that disappears is a drop, a name that appears is a create.

mod tables;
mod views;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use super::Generated;
use super::model::{Catalog, Enum, Name, Unmanaged};
use super::sql;

/// When a change runs in the up file. The order is the dependency order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    CreateSchemas,
    CreateExtensions,
    DropViews,
    DropForeignKeys,
    DropIndexes,
    DropConstraints,
    DropColumns,
    DropTables,
    /// New enums and new values of existing ones.
    CreateEnums,
    CreateTables,
    AddColumns,
    AlterColumns,
    /// After columns stopped using them (and before nothing needs them).
    DropEnums,
    /// Primary key, unique, check and exclusion constraints on existing tables.
    AddConstraints,
    AddForeignKeys,
    CreateIndexes,
    CreateViews,
}

/// One change: the statements that make it and the statements that undo it.
#[derive(Debug)]
struct Change {
    phase: Phase,
    up: Vec<String>,
    down: Vec<String>,
}

/// The changes and notes collected so far.
#[derive(Debug, Default)]
struct Plan {
    changes: Vec<Change>,
    notes: Vec<String>,
}

impl Plan {
    fn add(&mut self, phase: Phase, up: Vec<String>, down: Vec<String>) {
        self.changes.push(Change { phase, up, down });
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn finish(mut self) -> Generated {
        // Stable: within a phase, changes keep the (sorted, dependency-aware) order they were
        // added in.
        self.changes.sort_by_key(|c| c.phase);
        let up: Vec<&[String]> = self.changes.iter().map(|c| c.up.as_slice()).collect();
        let down: Vec<&[String]> = self.changes.iter().rev().map(|c| c.down.as_slice()).collect();
        Generated {
            up: script(&up),
            down: script(&down),
            notes: self.notes,
            changes: self.changes.len(),
        }
    }
}

/// The statements as a file: `;` after each (not after comments), a blank line between changes.
fn script(changes: &[&[String]]) -> String {
    let blocks: Vec<String> = changes
        .iter()
        .map(|statements| {
            statements
                .iter()
                .map(|s| {
                    if s.starts_with("--") {
                        format!("{s}\n")
                    } else {
                        format!("{s};\n")
                    }
                })
                .collect()
        })
        .collect();
    blocks.join("\n")
}

/// What it takes to bring `live` to `desired`, and back.
pub fn diff(live: &Catalog, desired: &Catalog) -> Generated {
    let mut plan = Plan::default();
    schemas(&mut plan, live, desired);
    extensions(&mut plan, live, desired);
    enums(&mut plan, live, desired);
    let affected = tables::diff(&mut plan, live, desired);
    views::diff(&mut plan, live, desired, &affected);
    unmanaged(&mut plan, &live.unmanaged, &desired.unmanaged);
    plan.finish()
}

fn schemas(plan: &mut Plan, live: &Catalog, desired: &Catalog) {
    for schema in desired.schemas.iter().filter(|s| !live.schemas.contains(s)) {
        plan.add(
            Phase::CreateSchemas,
            vec![sql::create_schema(schema)],
            vec![sql::drop_schema(schema)],
        );
    }
    for schema in live.schemas.iter().filter(|s| !desired.schemas.contains(s)) {
        plan.note(format!(
            "schema {} exists in the live database but the desired schema does not create it; \
             its tables, views and types are dropped, the schema itself is kept",
            crate::db::sql::ident_as_needed(schema)
        ));
    }
}

/// Extensions are created when missing, never dropped: a live database often has extensions
/// (monitoring, say) that no schema file mentions.
fn extensions(plan: &mut Plan, live: &Catalog, desired: &Catalog) {
    for extension in &desired.extensions {
        if !live.extensions.iter().any(|e| e.name == extension.name) {
            plan.add(
                Phase::CreateExtensions,
                vec![sql::create_extension(&extension.name, &extension.schema)],
                vec![sql::drop_extension(&extension.name)],
            );
        }
    }
    for extension in &live.extensions {
        if !desired.extensions.iter().any(|e| e.name == extension.name) {
            plan.note(format!(
                "extension {} is installed in the live database but not created by the desired schema; \
                 extensions are never dropped by autogenerate",
                crate::db::sql::ident_as_needed(&extension.name)
            ));
        }
    }
}

fn enums(plan: &mut Plan, live: &Catalog, desired: &Catalog) {
    let old: BTreeMap<&Name, &Enum> = live.enums.iter().map(|e| (&e.name, e)).collect();
    let new: BTreeMap<&Name, &Enum> = desired.enums.iter().map(|e| (&e.name, e)).collect();
    for (name, after) in &new {
        match old.get(name) {
            None => plan.add(
                Phase::CreateEnums,
                vec![sql::create_enum(after)],
                vec![sql::drop_type(name)],
            ),
            Some(before) if before.labels != after.labels => enum_values(plan, before, after),
            Some(_) => {}
        }
    }
    for (name, before) in &old {
        if !new.contains_key(name) {
            plan.add(
                Phase::DropEnums,
                vec![sql::drop_type(name)],
                vec![sql::create_enum(before)],
            );
        }
    }
}

/// Adds the new values of an enum in place (`ADD VALUE ... BEFORE|AFTER`); removing or
/// reordering values has no such statement and becomes a note.
fn enum_values(plan: &mut Plan, before: &Enum, after: &Enum) {
    let name = &before.name;
    let removed: Vec<String> = before
        .labels
        .iter()
        .filter(|l| !after.labels.contains(l))
        .map(|l| crate::db::sql::literal(l))
        .collect();
    if !removed.is_empty() {
        plan.note(format!(
            "enum {name}: removing values ({}) is not supported; write it by hand (create a new type, \
             convert the columns, drop the old type)",
            removed.join(", ")
        ));
    }
    let kept_before: Vec<&String> = before.labels.iter().filter(|l| after.labels.contains(l)).collect();
    let kept_after: Vec<&String> = after.labels.iter().filter(|l| before.labels.contains(l)).collect();
    if kept_before != kept_after {
        plan.note(format!(
            "enum {name}: reordering values is not supported; write it by hand"
        ));
        return;
    }
    let mut up = Vec::new();
    let mut added = Vec::new();
    for (i, label) in after.labels.iter().enumerate() {
        if before.labels.contains(label) {
            continue;
        }
        added.push(crate::db::sql::literal(label));
        let statement = match (
            i.checked_sub(1).map(|p| &after.labels[p]),
            kept_after.first(),
            before.labels.last(),
        ) {
            (Some(previous), _, _) => sql::add_enum_value(name, label, "AFTER", previous),
            (None, Some(first_kept), _) => sql::add_enum_value(name, label, "BEFORE", first_kept),
            (None, None, Some(last)) => sql::add_enum_value(name, label, "AFTER", last),
            (None, None, None) => format!("ALTER TYPE {name} ADD VALUE {}", crate::db::sql::literal(label)),
        };
        up.push(statement);
    }
    if up.is_empty() {
        return;
    }
    let added = added.join(", ");
    plan.note(format!(
        "enum {name}: the down file cannot remove the added values ({added}); and PostgreSQL refuses to \
         use a value in the transaction that added it, so if this migration also uses them, move the \
         ALTER TYPE statements to a migration of their own"
    ));
    let down = vec![format!(
        "-- enum {name} keeps the values {added}: PostgreSQL cannot remove enum values"
    )];
    plan.add(Phase::CreateEnums, up, down);
}

/// Notes on objects autogenerate does not manage but sees differ.
fn unmanaged(plan: &mut Plan, live: &[Unmanaged], desired: &[Unmanaged]) {
    let key = |u: &Unmanaged| (u.kind.clone(), u.name.clone());
    let old: BTreeMap<_, &Unmanaged> = live.iter().map(|u| (key(u), u)).collect();
    let new: BTreeMap<_, &Unmanaged> = desired.iter().map(|u| (key(u), u)).collect();
    for ((kind, name), after) in &new {
        match old.get(&(kind.clone(), name.clone())) {
            None => plan.note(format!(
                "{kind} {name} is in the desired schema but not in the live database; autogenerate does \
                 not manage {kind}s: add it to the migration by hand"
            )),
            Some(before) if before.definition != after.definition => plan.note(format!(
                "{kind} {name} differs between the live database and the desired schema; autogenerate \
                 does not manage {kind}s: change it by hand"
            )),
            Some(_) => {}
        }
    }
    for (kind, name) in old.keys().filter(|k| !new.contains_key(*k)) {
        plan.note(format!(
            "{kind} {name} is in the live database but not in the desired schema; autogenerate does not \
             drop {kind}s"
        ));
    }
}
