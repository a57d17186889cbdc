//! Lint against a real database: sizes and volatile functions come from it.

use dbagent::migrate::lint;

use super::helpers::TestDb;

#[tokio::test]
async fn warnings_carry_the_current_size_of_existing_tables() {
    let db = TestDb::with(
        "CREATE TABLE orders (id bigint, note text);
         INSERT INTO orders SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g;",
    )
    .await;
    let sql = "CREATE INDEX ON orders (id);
               ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();
               CREATE INDEX ON missing_table (id);";

    let warnings = lint::lint_with_sizes(&db.client().await, sql).await.expect("lint");

    let summary: Vec<(usize, &str)> = warnings.iter().map(|w| (w.statement, w.rule)).collect();
    assert_eq!(
        summary,
        [
            (0, "create-index-without-concurrently"),
            (1, "add-column-volatile-default"),
            (2, "create-index-without-concurrently")
        ]
    );
    let size = warnings[0].table_bytes.expect("orders has a size");
    assert!(size > 200_000, "{size}");
    assert!(warnings[0].message.contains("orders ("), "{}", warnings[0].message);
    assert_eq!(warnings[2].table_bytes, None, "a table that does not exist has no size");
}

#[tokio::test]
async fn volatile_functions_are_read_from_the_database() {
    let db = TestDb::with(
        "CREATE FUNCTION next_ticket() RETURNS int VOLATILE LANGUAGE sql AS 'SELECT 1'; CREATE TABLE t (id int);",
    )
    .await;

    let warnings = lint::lint_with_sizes(
        &db.client().await,
        "ALTER TABLE t ADD COLUMN n int DEFAULT next_ticket()",
    )
    .await
    .expect("lint");

    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].rule, "add-column-volatile-default");
}
