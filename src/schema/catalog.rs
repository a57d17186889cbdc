//! The whole catalog at once, for documents about many tables (the ERD and the data
//! dictionary): every relation with its columns, indexes, constraints and foreign keys, in a
//! stable order (schema, then name), read with five catalog queries whatever the number of
//! tables.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{ColumnDetail, ConstraintDetail, Error, ForeignKey, IndexDetail, TableSummary};
use crate::db::Pools;

/// Which relations a document covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these schemas (all but dbagent's own when empty; name `dbagent` to see it).
    pub schemas: Vec<String>,
    /// One relation, as a user writes its name (`film`, `public.film`).
    pub table: Option<String>,
    /// With `table`: also the tables it references and the tables referencing it (the ERD's
    /// neighbourhood of one table).
    pub neighbours: bool,
}

/// dbagent's own bookkeeping schema: left out unless asked for by name.
const OWN_SCHEMA: &str = "dbagent";

/// One relation and everything about it.
#[derive(Debug, Clone, Serialize)]
pub struct TableDoc {
    #[serde(flatten)]
    pub table: TableSummary,
    pub columns: Vec<ColumnDetail>,
    pub indexes: Vec<IndexDetail>,
    pub constraints: Vec<ConstraintDetail>,
    pub foreign_keys: Vec<ForeignKey>,
}

impl TableDoc {
    /// `schema.name`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.table.schema, self.table.name)
    }

    /// The primary key's columns (empty without one).
    pub fn primary_key(&self) -> &[String] {
        self.constraints.iter().find(|c| c.kind == "primary key").map_or(&[], |c| c.columns.as_slice())
    }

    /// Whether `column` is one of the columns of a unique constraint or unique index of its
    /// own (alone, so that its values are unique by themselves).
    pub fn is_unique_alone(&self, column: &str) -> bool {
        let alone = |cols: &[String]| cols.len() == 1 && cols[0] == column;
        self.constraints.iter().any(|c| (c.kind == "unique" || c.kind == "primary key") && alone(&c.columns))
            || self.indexes.iter().any(|i| i.is_unique && i.is_valid && alone(&i.columns))
    }

    /// Whether `column` belongs to an outgoing foreign key.
    pub fn is_foreign_key(&self, column: &str) -> bool {
        self.foreign_keys.iter().any(|fk| fk.columns.iter().any(|c| c == column))
    }

    /// Whether `column` belongs to a unique constraint (possibly with other columns).
    pub fn is_in_unique(&self, column: &str) -> bool {
        self.constraints.iter().any(|c| c.kind == "unique" && c.columns.iter().any(|c| c == column))
    }
}

/// The relations `filter` selects, partitions left out (their parent stands for them), ordered
/// by schema and name. A `table` that does not exist is `NotFound`.
pub async fn load(pools: &Pools, filter: &Filter) -> Result<Vec<TableDoc>, Error> {
    let wanted = match &filter.table {
        Some(name) => Some(super::resolve(pools, name).await?),
        None => None,
    };
    let mut tables: Vec<TableSummary> = super::tables(pools)
        .await?
        .into_iter()
        .filter(|t| !t.is_partition)
        .filter(|t| in_schemas(&filter.schemas, &t.schema) || wanted.as_ref().is_some_and(|w| w.oid == t.oid))
        .collect();
    if let Some(table) = &wanted {
        // The partitions of nothing: a partition named directly is shown too.
        if !tables.iter().any(|t| t.oid == table.oid) {
            tables.push(table.clone());
        }
    }
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let mut parts = super::details(pools, &oids).await?;
    let mut docs: Vec<TableDoc> = tables
        .into_iter()
        .map(|table| {
            let p = parts.remove(&table.oid).unwrap_or_default();
            TableDoc { table, columns: p.columns, indexes: p.indexes, constraints: p.constraints, foreign_keys: p.foreign_keys }
        })
        .collect();
    if let Some(table) = &wanted {
        let keep = selection(&docs, &format!("{}.{}", table.schema, table.name), filter.neighbours);
        docs.retain(|d| keep.contains(&d.qualified()));
    }
    docs.sort_by(|a, b| (&a.table.schema, &a.table.name).cmp(&(&b.table.schema, &b.table.name)));
    Ok(docs)
}

fn in_schemas(schemas: &[String], schema: &str) -> bool {
    if schemas.is_empty() { schema != OWN_SCHEMA } else { schemas.iter().any(|s| s == schema) }
}

/// `center` and, with `neighbours`, every table one foreign key away from it, either way.
fn selection(docs: &[TableDoc], center: &str, neighbours: bool) -> BTreeSet<String> {
    let mut keep = BTreeSet::from([center.to_owned()]);
    if neighbours {
        for doc in docs {
            let name = doc.qualified();
            for fk in &doc.foreign_keys {
                let target = format!("{}.{}", fk.referenced_schema, fk.referenced_table);
                if name == center {
                    keep.insert(target);
                } else if target == center {
                    keep.insert(name.clone());
                }
            }
        }
    }
    keep
}
