//! Views: dropped, created, replaced in place, or dropped and re-created.
//!
//! A view is replaced in place (`CREATE OR REPLACE`) when only its query or options change and
//! its output columns stay the same, which PostgreSQL allows whichever way the migration runs.
//! It is dropped and re-created when its columns change, or when something it reads is dropped
//! or re-typed (PostgreSQL refuses those while the view exists), and then so is every view
//! reading it in turn.

use std::collections::{BTreeMap, BTreeSet};

use super::{Phase, Plan, sql};
use crate::migrate::autogen::model::{Catalog, Name, View};

pub(super) fn diff(plan: &mut Plan, live: &Catalog, desired: &Catalog, affected_tables: &BTreeSet<Name>) {
    let old: BTreeMap<&Name, &View> = live.views.iter().map(|v| (&v.name, v)).collect();
    let new: BTreeMap<&Name, &View> = desired.views.iter().map(|v| (&v.name, v)).collect();
    let dropped = to_drop(&old, &new, affected_tables);
    for name in dependency_order(&old, &dropped).into_iter().rev() {
        let view = old[name];
        plan.add(
            Phase::DropViews,
            vec![sql::drop_view(name)],
            vec![sql::create_view(view, false)],
        );
    }
    let all: BTreeSet<&Name> = new.keys().copied().collect();
    for name in dependency_order(&new, &all) {
        let view = new[name];
        match old.get(name) {
            Some(_) if !dropped.contains(name) => {
                let before = old[name];
                if before.definition != view.definition || before.options != view.options {
                    plan.add(
                        Phase::CreateViews,
                        vec![sql::create_view(view, true)],
                        vec![sql::create_view(before, true)],
                    );
                }
            }
            _ => plan.add(
                Phase::CreateViews,
                vec![sql::create_view(view, false)],
                vec![sql::drop_view(name)],
            ),
        }
    }
}

/// Live views that up must drop: gone, changed columns, or reading something dropped or
/// re-typed (a table, or a view dropped here).
fn to_drop<'a>(
    old: &BTreeMap<&'a Name, &'a View>,
    new: &BTreeMap<&'a Name, &'a View>,
    affected_tables: &BTreeSet<Name>,
) -> BTreeSet<&'a Name> {
    let mut dropped: BTreeSet<&Name> = BTreeSet::new();
    loop {
        let before = dropped.len();
        for (name, view) in old {
            let must = match new.get(name) {
                None => true,
                Some(after) => after.columns != view.columns,
            } || view
                .depends_on
                .iter()
                .any(|d| affected_tables.contains(d) || dropped.contains(d));
            if must {
                dropped.insert(name);
            }
        }
        if dropped.len() == before {
            return dropped;
        }
    }
}

/// `wanted` views ordered so each comes after the views (of `views`) it reads.
fn dependency_order<'a>(views: &BTreeMap<&'a Name, &'a View>, wanted: &BTreeSet<&'a Name>) -> Vec<&'a Name> {
    fn visit<'a>(
        name: &'a Name,
        views: &BTreeMap<&'a Name, &'a View>,
        wanted: &BTreeSet<&'a Name>,
        seen: &mut BTreeSet<&'a Name>,
        order: &mut Vec<&'a Name>,
    ) {
        if !seen.insert(name) {
            return;
        }
        if let Some(view) = views.get(name) {
            for dependency in &view.depends_on {
                if let Some((key, _)) = views.get_key_value(dependency) {
                    visit(key, views, wanted, seen, order);
                }
            }
        }
        if wanted.contains(name) {
            order.push(name);
        }
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for name in views.keys() {
        visit(name, views, wanted, &mut seen, &mut order);
    }
    order
}
