//! The data dictionary: every relation and column with its type, nullability, default,
//! constraints, indexes, comments, row estimate and size, as Markdown (to commit next to the
//! migrations), HTML (everything from the catalog escaped) or JSON. Pure functions of
//! [`TableDoc`]s in the catalog's stable order.

use std::fmt::Write as _;

use super::catalog::TableDoc;
use super::ColumnDetail;

/// Which document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Markdown,
    Html,
    Json,
}

/// The dictionary of `tables` as Markdown or HTML (JSON is the `TableDoc`s serialized).
pub fn render(tables: &[TableDoc], format: Format) -> String {
    match format {
        Format::Markdown => markdown(tables),
        Format::Html => html(tables),
        Format::Json => serde_json::to_string_pretty(&serde_json::json!({ "tables": tables })).unwrap_or_default(),
    }
}

/// `text` safe anywhere in HTML, attributes included.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Free text (a name, a comment) in a Markdown table cell: every character Markdown or HTML
/// could read as markup is backslash-escaped, and the text is kept on one line.
fn md_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '#' | '!' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// SQL (a type, a default, a definition) as a Markdown code span in a table cell: nothing in
/// it is markup; a pipe still ends a cell in a GitHub table unless escaped.
fn md_code(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let one_line = text.replace(['\n', '\r'], " ").replace('|', "\\|");
    let fence = if one_line.contains('`') { "`` " } else { "`" };
    let close = if one_line.contains('`') { " ``" } else { "`" };
    format!("{fence}{one_line}{close}")
}

/// Bytes in human units (powers of 1024, as pg_size_pretty prints them).
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// The constraints a column takes part in, short: `PK`, `FK → public.language`, `UNIQUE`,
/// `CHECK`.
fn column_constraints(table: &TableDoc, column: &ColumnDetail) -> Vec<String> {
    let name = &column.column_name;
    let mut out = Vec::new();
    if table.primary_key().contains(name) {
        out.push("PK".to_owned());
    }
    for fk in table.foreign_keys.iter().filter(|fk| fk.columns.contains(name)) {
        out.push(format!("FK → {}.{}", fk.referenced_schema, fk.referenced_table));
    }
    if table.is_in_unique(name) {
        out.push("UNIQUE".to_owned());
    }
    if table.constraints.iter().any(|c| c.kind == "check" && c.columns.contains(name)) {
        out.push("CHECK".to_owned());
    }
    if column.is_identity {
        out.push("IDENTITY".to_owned());
    }
    if column.is_generated {
        out.push("GENERATED".to_owned());
    }
    out
}

/// One line about the relation: kind, rows and sizes.
fn summary_line(t: &TableDoc) -> String {
    let rows = t.table.row_estimate.map_or_else(|| "not analyzed".to_owned(), |r| format!("~{r} rows"));
    format!(
        "{}, {rows}, {} total ({} data, {} indexes)",
        t.table.kind,
        human_bytes(t.table.total_bytes),
        human_bytes(t.table.table_bytes),
        human_bytes(t.table.index_bytes)
    )
}

fn markdown(tables: &[TableDoc]) -> String {
    let mut out = String::from("# Data dictionary\n\n");
    for t in tables {
        let _ = writeln!(out, "- [{}](#{})", md_text(&t.qualified()), anchor(&t.qualified()));
    }
    for t in tables {
        let _ = write!(out, "\n## {}\n\n{}\n\n", md_text(&t.qualified()), md_text(&summary_line(t)));
        if let Some(comment) = &t.table.comment {
            let _ = writeln!(out, "{}\n", md_text(comment));
        }
        out.push_str("| # | column | type | nullable | default | constraints | comment |\n|--:|---|---|---|---|---|---|\n");
        for c in &t.columns {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                c.ordinal_position,
                md_text(&c.column_name),
                md_code(&c.formatted_type),
                if c.is_nullable == "YES" { "yes" } else { "no" },
                md_code(c.column_default.as_deref().unwrap_or_default()),
                md_text(&column_constraints(t, c).join(", ")),
                md_text(c.comment.as_deref().unwrap_or_default()),
            );
        }
        if !t.indexes.is_empty() {
            out.push_str("\n| index | definition | size |\n|---|---|--:|\n");
            for i in &t.indexes {
                let _ = writeln!(out, "| {} | {} | {} |", md_text(&i.name), md_code(&i.definition), human_bytes(i.size_bytes));
            }
        }
        if !t.constraints.is_empty() {
            out.push_str("\n| constraint | type | definition |\n|---|---|---|\n");
            for c in &t.constraints {
                let _ = writeln!(out, "| {} | {} | {} |", md_text(&c.name), c.kind, md_code(&c.definition));
            }
        }
    }
    out
}

/// GitHub's heading anchor for `text`: lower case, punctuation dropped, spaces as `-`.
fn anchor(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}\
td.n{text-align:right}code{font-size:90%}p.meta{color:#555}";

fn html(tables: &[TableDoc]) -> String {
    let mut out = format!("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Data dictionary</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>Data dictionary</h1>\n<ul>\n");
    for (n, t) in tables.iter().enumerate() {
        let _ = writeln!(out, "<li><a href=\"#t{n}\">{}</a></li>", escape_html(&t.qualified()));
    }
    out.push_str("</ul>\n");
    for (n, t) in tables.iter().enumerate() {
        let _ = writeln!(out, "<h2 id=\"t{n}\">{}</h2>\n<p class=\"meta\">{}</p>", escape_html(&t.qualified()), escape_html(&summary_line(t)));
        if let Some(comment) = &t.table.comment {
            let _ = writeln!(out, "<p>{}</p>", escape_html(comment));
        }
        out.push_str("<table>\n<tr><th>#</th><th>column</th><th>type</th><th>nullable</th><th>default</th><th>constraints</th><th>comment</th></tr>\n");
        for c in &t.columns {
            let _ = writeln!(
                out,
                "<tr><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                c.ordinal_position,
                escape_html(&c.column_name),
                escape_html(&c.formatted_type),
                if c.is_nullable == "YES" { "yes" } else { "no" },
                escape_html(c.column_default.as_deref().unwrap_or_default()),
                escape_html(&column_constraints(t, c).join(", ")),
                escape_html(c.comment.as_deref().unwrap_or_default()),
            );
        }
        out.push_str("</table>\n");
        if !t.indexes.is_empty() {
            out.push_str("<table>\n<tr><th>index</th><th>definition</th><th>size</th></tr>\n");
            for i in &t.indexes {
                let _ = writeln!(out, "<tr><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td></tr>", escape_html(&i.name), escape_html(&i.definition), human_bytes(i.size_bytes));
            }
            out.push_str("</table>\n");
        }
        if !t.constraints.is_empty() {
            out.push_str("<table>\n<tr><th>constraint</th><th>type</th><th>definition</th></tr>\n");
            for c in &t.constraints {
                let _ = writeln!(out, "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>", escape_html(&c.name), escape_html(&c.kind), escape_html(&c.definition));
            }
            out.push_str("</table>\n");
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_markup_and_attributes() {
        assert_eq!(escape_html("<script>alert('x') & \"y\"</script>"), "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;");
    }

    #[test]
    fn markdown_cells_cannot_break_the_table_or_inject_markup() {
        assert_eq!(md_text("a|b <b>x</b>\nnext"), "a\\|b \\<b\\>x\\</b\\> next");
        assert_eq!(md_code("'a|b'::text"), "`'a\\|b'::text`");
        assert_eq!(md_code("x`y"), "`` x`y ``");
        assert_eq!(md_code(""), "");
    }

    #[test]
    fn anchors_follow_github() {
        assert_eq!(anchor("public.Order Items"), "publicorder-items");
        assert_eq!(human_bytes(8192), "8.0 kB");
        assert_eq!(human_bytes(10), "10 B");
    }
}
