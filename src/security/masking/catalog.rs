//! The rules resolved against the catalog: which `(relation oid, column number)` is masked and
//! how, views included.
//!
//! PostgreSQL names a view's own oid as the origin of its result columns, so each column of a
//! view (or materialized view) over a masked column is traced to where it comes from: the
//! view's definition (`pg_get_viewdef`, which qualifies every column reference) is parsed, and
//! a target that is a plain column of one of the relations it reads takes that column's
//! strategy, through views of views too. A target that cannot be traced (an expression, a
//! whole row, a UNION) is redacted whenever the view reads a relation with masked columns.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use tokio_postgres::Client;

use super::rules::{ColumnFacts, strategy_for};
use crate::config::{MaskRule, MaskStrategy as Strategy};
use crate::db;

const RELATIONS_SQL: &str = include_str!("sql/relations.sql");
const COLUMNS_SQL: &str = include_str!("sql/columns.sql");
const VIEW_SOURCES_SQL: &str = include_str!("sql/view_sources.sql");
const VIEW_DEFINITIONS_SQL: &str = include_str!("sql/view_definitions.sql");

/// A column: its relation's oid and its number.
pub type ColumnId = (u32, i16);

/// The rules, resolved.
#[derive(Debug, Default, PartialEq)]
pub struct Resolved {
    /// Masked columns and their strategy.
    pub columns: HashMap<ColumnId, Strategy>,
    /// Every relation a result column can name, with its highest column number: a column
    /// beyond these is newer than this resolution.
    pub relations: HashMap<u32, i16>,
    /// Names of relations with a masked column, and the masked columns' names (for results
    /// with no origin, see `statement`).
    pub masked_relations: HashSet<String>,
    pub masked_names: HashSet<String>,
}

/// A user relation's columns, as the rules and the view tracing need them.
#[derive(Debug, Default)]
struct Relation {
    schema: String,
    name: String,
    is_view: bool,
    /// Column name → number.
    columns: HashMap<String, i16>,
}

/// Reads the catalog on `client` and resolves `rules` against it.
pub async fn resolve(client: &Client, rules: &[MaskRule]) -> Result<Resolved, db::Error> {
    let driver = |e| db::Error::from_driver(e, false);
    let mut resolved = Resolved::default();
    for row in client.query(RELATIONS_SQL, &[]).await.map_err(driver)? {
        resolved.relations.insert(db::get::<i64>(&row, "relid")? as u32, db::get::<i32>(&row, "columns")? as i16);
    }
    let mut relations: BTreeMap<u32, Relation> = BTreeMap::new();
    for row in client.query(COLUMNS_SQL, &[]).await.map_err(driver)? {
        let relid = db::get::<i64>(&row, "relid")? as u32;
        let attnum = db::get::<i32>(&row, "attnum")? as i16;
        let providers: Vec<String> = db::get(&row, "label_providers")?;
        let labels: Vec<String> = db::get(&row, "labels")?;
        let facts = ColumnFacts {
            schema: db::get(&row, "schema")?,
            relation: db::get(&row, "relation")?,
            column: db::get(&row, "column_name")?,
            type_name: db::get(&row, "type_name")?,
            comment: db::get(&row, "comment")?,
            labels: providers.into_iter().zip(labels).collect(),
        };
        if let Some(strategy) = strategy_for(rules, &facts) {
            resolved.columns.insert((relid, attnum), strategy);
        }
        let relation = relations.entry(relid).or_insert_with(|| Relation {
            schema: facts.schema.clone(),
            name: facts.relation.clone(),
            is_view: matches!(db::get::<String>(&row, "relkind").as_deref(), Ok("v" | "m")),
            columns: HashMap::new(),
        });
        relation.columns.insert(facts.column, attnum);
    }
    let mut sources: HashMap<u32, Vec<u32>> = HashMap::new();
    for row in client.query(VIEW_SOURCES_SQL, &[]).await.map_err(driver)? {
        sources.entry(db::get::<i64>(&row, "view")? as u32).or_default().push(db::get::<i64>(&row, "relid")? as u32);
    }
    trace_views(client, &mut resolved, &relations, &sources).await?;
    for (relid, attnum) in resolved.columns.keys() {
        if let Some(relation) = relations.get(relid) {
            resolved.masked_relations.insert(relation.name.clone());
            if let Some((name, _)) = relation.columns.iter().find(|(_, n)| *n == attnum) {
                resolved.masked_names.insert(name.clone());
            }
        }
    }
    Ok(resolved)
}

/// Gives view columns the strategies of the columns they show, until no view over a masked
/// column is left untraced (views of views take a pass per level).
async fn trace_views(
    client: &Client,
    resolved: &mut Resolved,
    relations: &BTreeMap<u32, Relation>,
    sources: &HashMap<u32, Vec<u32>>,
) -> Result<(), db::Error> {
    let mut traced: HashMap<u32, Vec<Option<ColumnId>>> = HashMap::new();
    loop {
        let masked: HashSet<u32> = resolved.columns.keys().map(|(relid, _)| *relid).collect();
        let reading_masked: Vec<u32> = sources
            .iter()
            .filter(|(view, from)| relations.get(view).is_some_and(|r| r.is_view) && from.iter().any(|r| masked.contains(r)))
            .map(|(view, _)| *view)
            .collect();
        let untraced: Vec<i64> = reading_masked.iter().filter(|v| !traced.contains_key(v)).map(|v| i64::from(*v)).collect();
        if !untraced.is_empty() {
            let rows = client.query(VIEW_DEFINITIONS_SQL, &[&untraced]).await.map_err(|e| db::Error::from_driver(e, false))?;
            for row in rows {
                let view = db::get::<i64>(&row, "view")? as u32;
                let definition: Option<String> = db::get(&row, "definition")?;
                let from = sources.get(&view).map(Vec::as_slice).unwrap_or_default();
                traced.insert(view, trace(definition.as_deref().unwrap_or_default(), from, relations));
            }
        }
        let mut changed = false;
        for view in &reading_masked {
            let Some(relation) = relations.get(view) else { continue };
            let targets = traced.get(view).map(Vec::as_slice).unwrap_or_default();
            for attnum in relation.columns.values() {
                let strategy = match targets.get(*attnum as usize - 1) {
                    Some(Some(source)) => resolved.columns.get(source).copied(),
                    _ => Some(Strategy::Redact),
                };
                if let Some(strategy) = strategy
                    && !resolved.columns.contains_key(&(*view, *attnum))
                {
                    resolved.columns.insert((*view, *attnum), strategy);
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(());
        }
    }
}

/// For each target of a view's definition, the column it shows when it is a plain column of a
/// relation in `from` (the relations the view reads); `None` when it cannot be told.
fn trace(definition: &str, from: &[u32], relations: &BTreeMap<u32, Relation>) -> Vec<Option<ColumnId>> {
    let Ok(parsed) = pg_query::parse(definition, pg_query::ParserOptions::DEFAULT) else { return Vec::new() };
    let Ok(tree) = serde_json::to_value(&parsed.protobuf) else { return Vec::new() };
    let Some(select) = tree.pointer("/stmts/0/stmt/node/SelectStmt") else { return Vec::new() };
    // A set operation's columns come from several branches.
    if select.get("larg").is_some_and(|l| !l.is_null()) {
        return Vec::new();
    }
    let mut ranges = Vec::new();
    for item in select.get("from_clause").and_then(Value::as_array).into_iter().flatten() {
        range_vars(item, &mut ranges);
    }
    let resolve = |(schema, name): &(String, String)| {
        from.iter().copied().find(|relid| relations.get(relid).is_some_and(|r| r.name == *name && (schema.is_empty() || r.schema == *schema)))
    };
    let targets = select.get("target_list").and_then(Value::as_array).cloned().unwrap_or_default();
    targets
        .iter()
        .map(|target| {
            let fields = target.pointer("/node/ResTarget/val/node/ColumnRef/fields")?.as_array()?;
            let names: Vec<&str> = fields.iter().map(|f| f.pointer("/node/String/sval").and_then(Value::as_str)).collect::<Option<_>>()?;
            let (qualifier, column) = match names.as_slice() {
                [column] => (None, *column),
                [qualifier, column] => (Some(*qualifier), *column),
                _ => return None,
            };
            let range = match qualifier {
                None if ranges.len() == 1 => &ranges[0].1,
                None => return None,
                Some(q) => &ranges.iter().find(|(alias, _)| alias == q)?.1,
            };
            let relid = resolve(range)?;
            Some((relid, *relations.get(&relid)?.columns.get(column)?))
        })
        .collect()
}

/// The relations of a FROM item (through joins): `(alias or name, (schema, name))`.
fn range_vars(item: &Value, out: &mut Vec<(String, (String, String))>) {
    let node = item.get("node").unwrap_or(item);
    if let Some(range) = node.get("RangeVar") {
        let text = |key: &str| range.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let alias = range.pointer("/alias/aliasname").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| text("relname"));
        out.push((alias, (text("schemaname"), text("relname"))));
    } else if let Some(join) = node.get("JoinExpr") {
        for side in ["larg", "rarg"] {
            if let Some(side) = join.get(side) {
                range_vars(side, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relations() -> BTreeMap<u32, Relation> {
        let table = |schema: &str, name: &str, columns: &[&str]| Relation {
            schema: schema.into(),
            name: name.into(),
            is_view: false,
            columns: columns.iter().enumerate().map(|(i, c)| (c.to_string(), i as i16 + 1)).collect(),
        };
        BTreeMap::from([(10, table("public", "customer", &["id", "email", "name"])), (20, table("public", "orders", &["id", "customer_id"]))])
    }

    #[test]
    fn view_targets_are_traced_to_their_columns() {
        let rels = relations();
        let def = " SELECT c.id,\n    c.email AS contact,\n    lower(c.name) AS lname,\n    o.id AS order_id\n   FROM (customer c\n     JOIN orders o ON ((o.customer_id = c.id)));";
        assert_eq!(trace(def, &[10, 20], &rels), vec![Some((10, 1)), Some((10, 2)), None, Some((20, 1))]);
        let single = " SELECT customer.email,\n    customer.name\n   FROM public.customer;";
        assert_eq!(trace(single, &[10], &rels), vec![Some((10, 2)), Some((10, 3))]);
        let union = " SELECT customer.email FROM customer UNION SELECT customer.name FROM customer;";
        assert!(trace(union, &[10], &rels).is_empty());
        let whole = " SELECT row_to_json(c.*) AS j FROM customer c;";
        assert_eq!(trace(whole, &[10], &rels), vec![None]);
    }
}
