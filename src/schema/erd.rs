//! Entity-relationship diagrams of the catalog: Mermaid `erDiagram` (renders on GitHub) or
//! Graphviz dot. Pure functions of [`TableDoc`]s, in the catalog's stable order (schema, name;
//! columns by position; relationships by table and constraint name), so that a diagram
//! committed next to the migrations changes only where the schema did.
//!
//! Mermaid's grammar is narrow: entity names, attribute types and attribute names are words of
//! letters, digits, `_` and `-` (no spaces, no parentheses, no dots), and the only free text
//! is a double-quoted comment or alias that cannot hold a double quote. So every name is made
//! into such a word (and kept unique), the real name is shown as the entity's alias
//! (`id["schema.table"]`) or the attribute's comment when it had to change, and types lose
//! their modifiers (`varchar`, with `varchar(45)` in the comment).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use super::catalog::TableDoc;
use super::{ColumnDetail, ForeignKey};

/// Which diagram language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Mermaid,
    Dot,
}

/// Which columns each entity lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Columns {
    /// Primary-key, unique and foreign-key columns: the shape of the schema.
    #[default]
    Keys,
    /// Every column.
    All,
}

/// The diagram of `tables` (relations other than tables are left out: they have no keys).
pub fn render(tables: &[TableDoc], format: Format, columns: Columns) -> String {
    let tables: Vec<&TableDoc> = tables.iter().filter(|t| t.table.kind.ends_with("table")).collect();
    match format {
        Format::Mermaid => mermaid(&tables, columns),
        Format::Dot => dot(&tables, columns),
    }
}

/// The columns an entity shows, with their key markers (`PK`, `FK`, `UK`).
fn shown(table: &TableDoc, columns: Columns) -> Vec<(&ColumnDetail, Vec<&'static str>)> {
    let pk = table.primary_key();
    table
        .columns
        .iter()
        .map(|c| {
            let name = &c.column_name;
            let mut keys = Vec::new();
            if pk.contains(name) {
                keys.push("PK");
            }
            if table.is_foreign_key(name) {
                keys.push("FK");
            }
            if !pk.contains(name) && (table.is_unique_alone(name) || table.is_in_unique(name)) {
                keys.push("UK");
            }
            (c, keys)
        })
        .filter(|(_, keys)| columns == Columns::All || !keys.is_empty())
        .collect()
}

fn target(fk: &ForeignKey) -> String {
    format!("{}.{}", fk.referenced_schema, fk.referenced_table)
}

/// Relationships of the diagram: (child, foreign key), by child then constraint name.
fn relationships<'a>(tables: &[&'a TableDoc]) -> Vec<(&'a TableDoc, &'a ForeignKey)> {
    tables.iter().flat_map(|t| t.foreign_keys.iter().map(move |fk| (*t, fk))).collect()
}

/// Mermaid identifiers for every table named in the diagram (including referenced tables
/// outside it), unique, stable in the tables' order.
struct Ids {
    ids: BTreeMap<String, String>,
    one_schema: bool,
}

impl Ids {
    fn new(tables: &[&TableDoc]) -> Ids {
        let mut names: Vec<(String, String)> = Vec::new();
        for t in tables {
            names.push((t.table.schema.clone(), t.table.name.clone()));
        }
        for (_, fk) in relationships(tables) {
            let pair = (fk.referenced_schema.clone(), fk.referenced_table.clone());
            if !names.contains(&pair) {
                names.push(pair);
            }
        }
        let one_schema = names.iter().all(|(s, _)| Some(s) == names.first().map(|(s, _)| s));
        let mut taken = HashSet::new();
        let mut ids = BTreeMap::new();
        for (schema, name) in &names {
            let base = if one_schema { word(name) } else { word(&format!("{schema}_{name}")) };
            let mut id = base.clone();
            let mut n = 2;
            while !taken.insert(id.clone()) {
                id = format!("{base}_{n}");
                n += 1;
            }
            ids.insert(format!("{schema}.{name}"), id);
        }
        Ids { ids, one_schema }
    }

    fn id(&self, qualified: &str) -> &str {
        self.ids.get(qualified).map_or("unknown", String::as_str)
    }

    /// What a reader should see for the table.
    fn label(&self, schema: &str, name: &str) -> String {
        if self.one_schema { name.to_owned() } else { format!("{schema}.{name}") }
    }
}

/// Words Mermaid's ER lexer takes for keywords (diagram statements, key markers, cardinality
/// aliases): a name that is one of them gets a `_` so it stays a name.
const MERMAID_KEYWORDS: &[&str] = &[
    "erdiagram", "title", "acctitle", "accdescr", "direction", "style", "classdef", "class", "pk", "fk", "uk", "to", "optionally", "one", "zero", "many",
    "only", "or", "more", "end",
];

/// `text` as a Mermaid word: letters, digits and `_`, starting with a letter, no keyword.
fn word(text: &str) -> String {
    let mut out: String = text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'x');
    }
    if MERMAID_KEYWORDS.contains(&out.to_ascii_lowercase().as_str()) {
        out.push('_');
    }
    out
}

/// A type as a Mermaid word: the common short name, without modifiers; arrays as `_array`.
fn type_word(formatted: &str) -> String {
    let (base, array) = match formatted.strip_suffix("[]") {
        Some(base) => (base, true),
        None => (formatted, false),
    };
    let bare = base.split('(').next().unwrap_or(base).trim();
    let short = match bare {
        "character varying" => "varchar",
        "character" => "char",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        "double precision" => "float8",
        "bit varying" => "varbit",
        other => other,
    };
    // A schema-qualified type (`public.mpaa_rating`) keeps its last part.
    let short = short.rsplit('.').next().unwrap_or(short).trim_matches('"');
    let word = word(short);
    if array { format!("{word}_array") } else { word }
}

/// Free text inside a Mermaid double-quoted string: no double quotes, one line.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "'").replace(['\n', '\r'], " "))
}

fn mermaid(tables: &[&TableDoc], columns: Columns) -> String {
    let ids = Ids::new(tables);
    let mut out = String::from("erDiagram\n");
    for t in tables {
        let id = ids.id(&t.qualified());
        let label = ids.label(&t.table.schema, &t.table.name);
        let alias = if label == id { String::new() } else { format!("[{}]", quoted(&label)) };
        let attributes = shown(t, columns);
        if attributes.is_empty() {
            let _ = writeln!(out, "    {id}{alias}");
            continue;
        }
        let _ = writeln!(out, "    {id}{alias} {{");
        for (c, keys) in attributes {
            let ty = type_word(&c.formatted_type);
            let name = word(&c.column_name);
            let mut notes = Vec::new();
            if name != c.column_name {
                notes.push(c.column_name.clone());
            }
            if ty != c.formatted_type {
                notes.push(c.formatted_type.clone());
            }
            if c.is_nullable == "NO" && !keys.contains(&"PK") {
                notes.push("not null".into());
            }
            let keys = if keys.is_empty() { String::new() } else { format!(" {}", keys.join(", ")) };
            let comment = if notes.is_empty() { String::new() } else { format!(" {}", quoted(&notes.join(", "))) };
            let _ = writeln!(out, "        {ty} {name}{keys}{comment}");
        }
        out.push_str("    }\n");
    }
    for (child, fk) in relationships(tables) {
        let nullable = fk.columns.iter().any(|col| child.columns.iter().any(|c| &c.column_name == col && c.is_nullable == "YES"));
        let one_to_one = fk.columns.len() == 1 && child.is_unique_alone(&fk.columns[0]);
        let child_end = if one_to_one { "|o" } else { "}o" };
        let parent_end = if nullable { "o|" } else { "||" };
        // Identifying (solid line) when the key is part of the child's own primary key.
        let line = if fk.columns.iter().all(|c| child.primary_key().contains(c)) { "--" } else { ".." };
        let _ = writeln!(
            out,
            "    {} {child_end}{line}{parent_end} {} : {}",
            ids.id(&child.qualified()),
            ids.id(&target(fk)),
            quoted(&fk.columns.join(", "))
        );
    }
    out
}

/// `text` as a double-quoted dot ID.
fn dot_id(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `text` inside a dot HTML-like label.
fn html(text: &str) -> String {
    super::dictionary::escape_html(text)
}

fn dot(tables: &[&TableDoc], columns: Columns) -> String {
    let mut out = String::from("digraph erd {\n    graph [rankdir=LR];\n    node [shape=plain, fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\", fontsize=10];\n");
    for t in tables {
        let mut label = format!(
            "<table border=\"0\" cellborder=\"1\" cellspacing=\"0\" cellpadding=\"4\"><tr><td bgcolor=\"lightgrey\" colspan=\"2\"><b>{}</b></td></tr>",
            html(&t.qualified())
        );
        for (c, keys) in shown(t, columns) {
            let keys = if keys.is_empty() { String::new() } else { format!(" ({})", keys.join(", ")) };
            let _ = write!(label, "<tr><td align=\"left\">{}{}</td><td align=\"left\">{}</td></tr>", html(&c.column_name), html(&keys), html(&c.formatted_type));
        }
        label.push_str("</table>");
        let _ = writeln!(out, "    {} [label=<{label}>];", dot_id(&t.qualified()));
    }
    for (child, fk) in relationships(tables) {
        let _ = writeln!(
            out,
            "    {} -> {} [label={}, tooltip={}];",
            dot_id(&child.qualified()),
            dot_id(&target(fk)),
            dot_id(&fk.columns.join(", ")),
            dot_id(&fk.name)
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ConstraintDetail, TableSummary};

    fn column(name: &str, ty: &str, nullable: bool) -> ColumnDetail {
        ColumnDetail {
            column_name: name.into(),
            data_type: ty.into(),
            is_nullable: if nullable { "YES" } else { "NO" }.into(),
            column_default: None,
            ordinal_position: 1,
            formatted_type: ty.into(),
            character_maximum_length: None,
            is_identity: false,
            is_generated: false,
            comment: None,
        }
    }

    fn table(schema: &str, name: &str, columns: Vec<ColumnDetail>, pk: &[&str], fks: Vec<ForeignKey>) -> TableDoc {
        TableDoc {
            table: TableSummary {
                oid: 0,
                schema: schema.into(),
                name: name.into(),
                kind: "table".into(),
                row_estimate: None,
                total_bytes: 0,
                table_bytes: 0,
                index_bytes: 0,
                is_partition: false,
                comment: None,
            },
            columns,
            indexes: Vec::new(),
            constraints: vec![ConstraintDetail {
                name: format!("{name}_pkey"),
                kind: "primary key".into(),
                definition: String::new(),
                deferrable: false,
                validated: true,
                columns: pk.iter().map(|s| s.to_string()).collect(),
            }],
            foreign_keys: fks,
        }
    }

    fn fk(name: &str, columns: &[&str], to: &str) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            columns: columns.iter().map(|s| s.to_string()).collect(),
            referenced_schema: "public".into(),
            referenced_table: to.into(),
            referenced_columns: vec!["id".into()],
            on_update: "NO ACTION".into(),
            on_delete: "NO ACTION".into(),
        }
    }

    #[test]
    fn types_become_mermaid_words() {
        for (ty, word) in [
            ("character varying(45)", "varchar"),
            ("numeric(5,2)", "numeric"),
            ("timestamp with time zone", "timestamptz"),
            ("text[]", "text_array"),
            ("public.\"Weird Type\"", "Weird_Type"),
            ("double precision", "float8"),
            ("integer", "integer"),
        ] {
            assert_eq!(type_word(ty), word, "{ty}");
        }
        assert_eq!(word("Order Items"), "Order_Items");
        assert_eq!(word("1st"), "x1st");
        assert_eq!(word("class"), "class_");
        assert_eq!(word("PK"), "PK_");
    }

    #[test]
    fn mermaid_shows_keys_relationships_and_odd_names_safely() {
        let users = table("public", "users", vec![column("id", "integer", false), column("email", "text", false)], &["id"], vec![]);
        let orders = table(
            "public",
            "Order Items",
            vec![column("id", "integer", false), column("user id", "integer", true), column("note", "character varying(20)", true)],
            &["id"],
            vec![fk("items_user_fkey", &["user id"], "users")],
        );
        let text = render(&[orders.clone(), users.clone()], Format::Mermaid, Columns::Keys);
        assert!(text.starts_with("erDiagram\n"), "{text}");
        assert!(text.contains("    Order_Items[\"Order Items\"] {\n"), "{text}");
        assert!(text.contains("        integer user_id FK \"user id\"\n"), "{text}");
        assert!(!text.contains("note"), "keys only: {text}");
        assert!(text.contains("    Order_Items }o..o| users : \"user id\"\n"), "{text}");
        let all = render(&[orders, users], Format::Mermaid, Columns::All);
        assert!(all.contains("        varchar note \"character varying(20)\"\n"), "{all}");
        assert!(all.contains("        text email \"not null\"\n"), "{all}");
    }

    #[test]
    fn dot_escapes_names_and_draws_one_edge_per_foreign_key() {
        let users = table("public", "us\"ers", vec![column("id", "integer", false)], &["id"], vec![]);
        let orders = table("public", "orders", vec![column("id", "integer", false), column("user_id", "integer", false)], &["id"], vec![fk("o_fkey", &["user_id"], "us\"ers")]);
        let text = render(&[orders, users], Format::Dot, Columns::Keys);
        assert!(text.contains("\"public.us\\\"ers\" [label=<"), "{text}");
        assert!(text.contains("<b>public.us&quot;ers</b>"), "{text}");
        assert!(text.contains("\"public.orders\" -> \"public.us\\\"ers\" [label=\"user_id\""), "{text}");
    }
}
