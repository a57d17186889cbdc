//! Every built-in type comes back as faithful JSON, and parameters are bound as the types
//! PostgreSQL inferred.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// (SQL expression, expected JSON text of its value).
const RESULT_CASES: &[(&str, &str)] = &[
    ("NULL::int", "null"),
    ("true", "true"),
    ("32767::int2", "32767"),
    ("(-2147483648)::int4", "-2147483648"),
    ("9223372036854775807::int8", "9223372036854775807"),
    ("(-9223372036854775808)::int8", "-9223372036854775808"),
    ("1.50::numeric", "1.50"),
    ("123456789012345678901234567890.123456789::numeric", "123456789012345678901234567890.123456789"),
    ("0.000001::numeric", "0.000001"),
    ("-42.0::numeric(10,3)", "-42.000"),
    ("'NaN'::numeric", "\"NaN\""),
    ("0.1::float4", "0.1"),
    ("0.1::float8", "0.1"),
    ("'Infinity'::float8", "\"Infinity\""),
    ("'hello \"world\"\n'::text", "\"hello \\\"world\\\"\\n\""),
    ("'ab'::varchar(5)", "\"ab\""),
    ("'ab'::char(3)", "\"ab \""),
    ("'\\xdeadbeef'::bytea", "\"\\\\xdeadbeef\""),
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""),
    ("'{\"a\": [1, 2.50, null]}'::json", "{\"a\": [1, 2.50, null]}"),
    ("'{\"b\": 1, \"a\": {\"c\": true}}'::jsonb", "{\"a\": {\"c\": true}, \"b\": 1}"),
    ("'2024-02-29'::date", "\"2024-02-29\""),
    ("'infinity'::date", "\"infinity\""),
    ("'13:45:06.5'::time", "\"13:45:06.5\""),
    ("'2024-02-29 13:45:06.123456'::timestamp", "\"2024-02-29T13:45:06.123456\""),
    ("'2024-02-29 13:45:06+02'::timestamptz", "\"2024-02-29T11:45:06Z\""),
    ("'1 year 2 months 3 days 04:05:06.5'::interval", "\"P1Y2M3DT4H5M6.5S\""),
    ("'192.168.0.1'::inet", "\"192.168.0.1\""),
    ("'10.0.0.0/8'::cidr", "\"10.0.0.0/8\""),
    ("'2001:db8::1/64'::inet", "\"2001:db8::1/64\""),
    ("'08:00:2b:01:02:03'::macaddr", "\"08:00:2b:01:02:03\""),
    ("ARRAY[1, NULL, 3]", "[1,null,3]"),
    ("ARRAY[ARRAY[1,2],ARRAY[3,4]]", "[[1,2],[3,4]]"),
    ("ARRAY['a','b c']::text[]", "[\"a\",\"b c\"]"),
    ("'{}'::int[]", "[]"),
    ("'[1,10)'::int4range", "{\"lower\":1,\"upper\":10,\"lower_inc\":true,\"upper_inc\":false}"),
    ("'101'::bit(3)", "\"101\""),
    ("'16/B374D848'::pg_lsn", "\"16/B374D848\""),
];

#[tokio::test]
async fn every_built_in_type_comes_back_as_faithful_json() {
    let app = spawn_app().await;
    for (expr, expected) in RESULT_CASES {
        let rows = app.rows(&format!("SELECT {expr} AS v"), json!([])).await;
        let expected: Value = serde_json::from_str(expected).unwrap_or_else(|e| panic!("bad expectation {expected}: {e}"));
        assert_eq!(rows[0]["v"], expected, "SELECT {expr}");
    }
}

#[tokio::test]
async fn enums_domains_and_composites_come_back_as_json() {
    let app = spawn_app().await;
    app.setup(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE DOMAIN positive AS int CHECK (VALUE > 0);
         CREATE TYPE pair AS (a int, b text);
         CREATE TABLE t (m mood, p positive, c pair, ms mood[]);
         INSERT INTO t VALUES ('happy', 7, ROW(1, 'x'), '{sad,happy}');",
    )
    .await;
    let rows = app.rows("SELECT m, p, c, ms FROM t", json!([])).await;
    assert_eq!(rows[0], json!({"m": "happy", "p": 7, "c": {"a": 1, "b": "x"}, "ms": ["sad", "happy"]}));
}

#[tokio::test]
async fn parameters_round_trip_as_the_types_postgres_infers() {
    let app = spawn_app().await;
    app.setup(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE DOMAIN positive AS int CHECK (VALUE > 0);
         CREATE TABLE p (i int8, n numeric, b bool, t timestamptz, d date, u uuid, j jsonb, a int[], m mood, dp positive,
                         ip inet, iv interval, by bytea, tx text);",
    )
    .await;
    let params = json!([
        9223372036854775807i64,
        "123456789012345678901234567890.000000001",
        true,
        "2024-02-29T11:45:06Z",
        "2024-02-29",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        {"k": [1, "two", null]},
        [1, 2, null],
        "sad",
        5,
        "10.1.2.3/16",
        "P1DT2H",
        "\\x00ff",
        "plain"
    ]);
    app.rows("INSERT INTO p VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)", params.clone()).await;
    let rows = app.rows("SELECT * FROM p", json!([])).await;
    let row = &rows[0];
    assert_eq!(row["i"], json!(9223372036854775807i64));
    assert_eq!(row["n"].to_string(), "123456789012345678901234567890.000000001");
    assert_eq!(row["b"], json!(true));
    assert_eq!(row["t"], json!("2024-02-29T11:45:06Z"));
    assert_eq!(row["d"], json!("2024-02-29"));
    assert_eq!(row["u"], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(row["j"], json!({"k": [1, "two", null]}));
    assert_eq!(row["a"], json!([1, 2, null]));
    assert_eq!(row["m"], json!("sad"));
    assert_eq!(row["dp"], json!(5));
    assert_eq!(row["ip"], json!("10.1.2.3/16"));
    assert_eq!(row["iv"], json!("P1DT2H"));
    assert_eq!(row["by"], json!("\\x00ff"));
    assert_eq!(row["tx"], json!("plain"));
    // Numbers keep every digit on the way in, too.
    let rows = app.rows("SELECT $1::numeric = 123456789012345678901234567890.000000001 AS same", json!([params[1].clone()])).await;
    assert_eq!(rows[0]["same"], json!(true));
}
