//! `/schema/erd` and `/schema/dictionary` on the pagila sample schema: every foreign key in
//! the diagram, every column in the dictionary, catalog text escaped, stable output.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};

async fn text(app: &TestApp, path: &str) -> (StatusCode, String, String) {
    let response = app.http.get(format!("{}{path}", app.address)).send().await.expect("request");
    let status = response.status();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, content_type, response.text().await.expect("body"))
}

/// (child, parent, child columns) of every foreign key outside dbagent's schema and
/// partitions, from the catalog itself.
async fn foreign_keys(app: &TestApp) -> Vec<(String, String, String)> {
    let rows = app
        .rows(
            "SELECT c.relname AS child, p.relname AS parent,
                    (SELECT string_agg(a.attname, ', ' ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY k(n, ord)
                       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n) AS columns
               FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_class p ON p.oid = con.confrelid
              WHERE con.contype = 'f' AND NOT c.relispartition AND c.relnamespace = 'public'::regnamespace",
            serde_json::json!([]),
        )
        .await;
    rows.iter().map(|r| (r["child"].as_str().unwrap().to_owned(), r["parent"].as_str().unwrap().to_owned(), r["columns"].as_str().unwrap().to_owned())).collect()
}

#[tokio::test]
async fn the_mermaid_erd_has_every_foreign_key_and_renders_as_written() {
    let app = spawn_app().await;
    app.db.load_pagila().await;
    let (status, content_type, erd) = text(&app, "/schema/erd").await;
    assert_eq!(status, StatusCode::OK, "{erd}");
    assert!(content_type.starts_with("text/vnd.mermaid"), "{content_type}");
    assert!(erd.starts_with("erDiagram\n"), "{erd}");
    let fks = foreign_keys(&app).await;
    assert!(fks.len() >= 15, "pagila has its foreign keys: {fks:?}");
    for (child, parent, columns) in &fks {
        let line = format!(" {parent} : \"{columns}\"");
        assert!(erd.lines().any(|l| l.trim_start().starts_with(&format!("{child} ")) && l.ends_with(&line)), "no relationship {child} -> {parent} ({columns}) in\n{erd}");
    }
    // Key columns with their markers; Mermaid words only (no spaces or parentheses in types).
    assert!(erd.contains("        integer film_id PK\n"), "{erd}");
    assert!(erd.contains("        integer language_id FK \"not null\"\n"), "{erd}");
    for line in erd.lines().filter(|l| l.starts_with("        ")) {
        let ty = line.split_whitespace().next().unwrap();
        assert!(ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "attribute type {ty:?} in {line:?}");
    }
    // Partitions are left out (their parent stands for them); the same schema gives the same text.
    assert!(!erd.contains("payment_p2022"), "{erd}");
    assert_eq!(text(&app, "/schema/erd").await.2, erd, "the diagram is stable");
}

#[tokio::test]
async fn the_erd_filters_by_table_and_schema_and_speaks_dot() {
    let app = spawn_app().await;
    app.db.load_pagila().await;
    app.setup(r#"CREATE SCHEMA "odd schema"; CREATE TABLE "odd schema"."Order Items" (id int PRIMARY KEY, "film id" int REFERENCES public.film);"#).await;

    let (status, _, film) = text(&app, "/schema/erd?table=film&columns=all").await;
    assert_eq!(status, StatusCode::OK, "{film}");
    // film, its parents (language) and its children (film_actor, film_category, inventory).
    for table in ["film", "language", "film_actor", "film_category", "inventory", "odd_schema_Order_Items"] {
        assert!(film.contains(table), "{table} missing from\n{film}");
    }
    assert!(!film.contains("customer {") && !film.contains("public_customer"), "{film}");
    assert!(film.contains("odd_schema_Order_Items[\"odd schema.Order Items\"]"), "names with spaces are aliased: {film}");
    assert!(film.contains("integer film_id FK \"film id\""), "{film}");
    assert!(film.contains("text_array special_features \"text[]\""), "{film}");

    let (status, _, odd) = text(&app, "/schema/erd?schema=odd%20schema").await;
    assert_eq!(status, StatusCode::OK, "{odd}");
    assert!(odd.contains("odd_schema_Order_Items[\"odd schema.Order Items\"]") && !odd.contains("actor"), "{odd}");

    let (status, content_type, dot) = text(&app, "/schema/erd?format=dot&table=film_actor").await;
    assert_eq!(status, StatusCode::OK, "{dot}");
    assert!(content_type.starts_with("text/vnd.graphviz"), "{content_type}");
    assert!(dot.starts_with("digraph erd {"), "{dot}");
    assert!(dot.contains("\"public.film_actor\" -> \"public.actor\" [label=\"actor_id\""), "{dot}");
    assert!(dot.contains("\"public.film_actor\" -> \"public.film\" [label=\"film_id\""), "{dot}");

    let (status, body) = app.get("/schema/erd?format=png").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");
    let (status, body) = app.get("/schema/erd?table=no_such_table").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn the_dictionary_lists_every_column_and_escapes_the_catalog() {
    let app = spawn_app().await;
    app.db.load_pagila().await;
    app.setup(
        r#"COMMENT ON TABLE film IS 'Films <script>alert(1)</script> & "friends"';
           COMMENT ON COLUMN film.title IS 'The title | shown <b>bold</b>';
           ANALYZE;"#,
    )
    .await;

    let (status, content_type, json) = text(&app, "/schema/dictionary?format=json").await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(content_type.starts_with("application/json"));
    let json: Value = serde_json::from_str(&json).unwrap();
    let columns = app
        .rows(
            "SELECT c.relname AS t, a.attname AS c FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
                AND a.attnum > 0 AND NOT a.attisdropped",
            serde_json::json!([]),
        )
        .await;
    let tables = json["tables"].as_array().unwrap();
    for row in &columns {
        let table = tables.iter().find(|t| t["name"] == row["t"]).unwrap_or_else(|| panic!("{} missing", row["t"]));
        assert!(table["columns"].as_array().unwrap().iter().any(|c| c["column_name"] == row["c"]), "{}.{} missing", row["t"], row["c"]);
    }
    let film = tables.iter().find(|t| t["name"] == "film").unwrap();
    assert!(film["row_estimate"].is_number() && film["total_bytes"].as_i64().unwrap() > 0, "{film}");
    assert!(film["indexes"].as_array().unwrap().iter().any(|i| i["name"] == "film_fulltext_idx"));

    let (status, content_type, html) = text(&app, "/schema/dictionary?format=html").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    assert!(!html.contains("<script>") && !html.contains("<b>bold"), "catalog text must be escaped");
    assert!(html.contains("Films &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;friends&quot;"), "{html}");
    assert!(html.contains("<code>character varying(45)</code>") || html.contains("<code>text</code>"));

    let (status, content_type, markdown) = text(&app, "/schema/dictionary?table=film").await;
    assert_eq!(status, StatusCode::OK, "{markdown}");
    assert!(content_type.starts_with("text/markdown"));
    assert!(markdown.contains("## public.film\n"), "{markdown}");
    assert!(!markdown.contains("## public.actor"), "one table only: {markdown}");
    assert!(markdown.contains("The title \\| shown \\<b\\>bold\\</b\\>"), "{markdown}");
    assert!(markdown.contains("| film\\_pkey | primary key | `PRIMARY KEY (film_id)` |"), "{markdown}");
    assert!(markdown.lines().any(|l| l.starts_with("| 1 | film\\_id | `integer` | no | `nextval(") && l.contains("| PK |")), "{markdown}");
}
