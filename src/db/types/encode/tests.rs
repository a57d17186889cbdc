//! Table-driven tests of the JSON → text parameter rules.

use serde_json::Value;
use tokio_postgres::types::{Field, Kind, ToSql, Type};

use super::*;

fn enc(json: &str, ty: &Type) -> Result<Option<String>, String> {
    let value: Value = serde_json::from_str(json).expect("test JSON");
    encode_param(1, &value, ty)
        .map(|p| p.0)
        .map_err(|e| e.to_string())
}

fn mood() -> Type {
    Type::new(
        "mood".into(),
        90_001,
        Kind::Enum(vec!["sad".into(), "ok".into()]),
        "public".into(),
    )
}

fn pair() -> Type {
    let fields = vec![
        Field::new("a".into(), Type::INT4),
        Field::new("b".into(), Type::TEXT_ARRAY),
    ];
    Type::new(
        "pair".into(),
        90_002,
        Kind::Composite(fields),
        "public".into(),
    )
}

#[test]
fn accepted() {
    let posint = Type::new(
        "posint".into(),
        90_003,
        Kind::Domain(Type::INT4),
        "public".into(),
    );
    let mood_array = Type::new("_mood".into(), 90_004, Kind::Array(mood()), "public".into());
    let cases: Vec<(&str, Type, &str)> = vec![
        ("\"42\"", Type::INT4, "42"),
        ("42", Type::INT4, "42"),
        ("-9223372036854775808", Type::INT8, "-9223372036854775808"),
        (
            "12345678901234567890.123456789",
            Type::NUMERIC,
            "12345678901234567890.123456789",
        ),
        ("1e-3", Type::FLOAT8, "1e-3"),
        ("1.50", Type::MONEY, "1.50"),
        ("7", Type::TEXT, "7"),
        ("true", Type::TEXT, "true"),
        ("false", Type::BOOL, "false"),
        ("\"yes\"", Type::BOOL, "yes"),
        ("\"\\\\xdead\"", Type::BYTEA, "\\xdead"),
        ("\"2024-02-29\"", Type::DATE, "2024-02-29"),
        ("\"abc\"", Type::JSONB, "\"abc\""),
        ("{\"a\":[1,2.50]}", Type::JSON, "{\"a\":[1,2.50]}"),
        ("[1,{\"b\":null}]", Type::JSONB, "[1,{\"b\":null}]"),
        ("12", posint.clone(), "12"),
        ("\"ok\"", mood(), "ok"),
        ("[1,null,3]", Type::INT4_ARRAY, "{\"1\",NULL,\"3\"}"),
        (
            "[[1,2],[3,4]]",
            Type::INT4_ARRAY,
            "{{\"1\",\"2\"},{\"3\",\"4\"}}",
        ),
        ("[]", Type::TEXT_ARRAY, "{}"),
        (
            "[\"a\\\"b\", \"c\\\\d\", \"NULL\", \"\"]",
            Type::TEXT_ARRAY,
            r#"{"a\"b","c\\d","NULL",""}"#,
        ),
        (
            "[{\"k\":\"v\"}, [1], \"s\", null]",
            Type::JSONB_ARRAY,
            r#"{"{\"k\":\"v\"}","[1]","\"s\"",NULL}"#,
        ),
        ("[\"sad\"]", mood_array, "{\"sad\"}"),
        ("\"{1,2}\"", Type::INT4_ARRAY, "{1,2}"),
        (
            "[\"(1,1),(0,0)\", \"(2,2),(1,1)\"]",
            Type::BOX_ARRAY,
            "{\"(1,1),(0,0)\";\"(2,2),(1,1)\"}",
        ),
        (
            "{\"a\":1,\"b\":[\"x\",null]}",
            pair(),
            r#"("1","{\"x\",NULL}")"#,
        ),
        ("{\"b\":[]}", pair(), r#"(,"{}")"#),
        ("{}", pair(), "(,)"),
        (
            "{\"lower\":1,\"upper\":5}",
            Type::INT4_RANGE,
            r#"["1","5")"#,
        ),
        (
            "{\"lower\":null,\"upper\":\"2024-01-01\",\"upper_inc\":true,\"lower_inc\":false}",
            Type::DATE_RANGE,
            r#"(,"2024-01-01"]"#,
        ),
        ("\"empty\"", Type::INT4_RANGE, "empty"),
        (
            "[{\"lower\":1,\"upper\":2}, \"[5,7)\"]",
            Type::INT4MULTI_RANGE,
            r#"{["1","2"),[5,7)}"#,
        ),
        ("{\"x\":1.5,\"y\":-2}", Type::POINT, "(1.5,-2)"),
        (
            "[{\"a\":1}]",
            Type::new("_pair".into(), 90_005, Kind::Array(pair()), "public".into()),
            r#"{"(\"1\",)"}"#,
        ),
    ];
    for (json, ty, want) in cases {
        assert_eq!(
            enc(json, &ty),
            Ok(Some(want.to_string())),
            "{json} as {}",
            ty.name()
        );
    }
}

#[test]
fn null_is_sql_null_for_every_type() {
    for ty in [Type::INT4, Type::JSONB, Type::TEXT_ARRAY, pair(), mood()] {
        assert_eq!(enc("null", &ty), Ok(None));
    }
}

#[test]
fn rejected() {
    let cases: Vec<(&str, Type, &str)> = vec![
        ("{}", Type::INT4, "parameter $2: expected int4, got object"),
        (
            "1.5",
            Type::INT4,
            "parameter $2: expected int4, got non-integer number 1.5",
        ),
        (
            "1e3",
            Type::INT8,
            "parameter $2: expected int8, got non-integer number 1e+3",
        ),
        ("1", Type::BOOL, "parameter $2: expected bool, got number"),
        ("1", Type::UUID, "parameter $2: expected uuid, got number"),
        ("true", Type::DATE, "parameter $2: expected date, got bool"),
        ("[1]", Type::INT4, "parameter $2: expected int4, got array"),
        (
            "5",
            Type::INT4_ARRAY,
            "parameter $2: expected int4[], got number",
        ),
        (
            "[1, {}]",
            Type::INT4_ARRAY,
            "parameter $2: expected int4, got object",
        ),
        (
            "[1.5]",
            Type::INT2_ARRAY,
            "parameter $2: expected int2, got non-integer number 1.5",
        ),
        (
            "\"meh\"",
            mood(),
            "parameter $2: invalid value \"meh\" for enum mood (expected one of: sad, ok)",
        ),
        (
            "{\"z\":1}",
            pair(),
            "parameter $2: type pair has no field \"z\"",
        ),
        (
            "{\"a\":\"x\",\"b\":5}",
            pair(),
            "parameter $2: expected text[], got number",
        ),
        (
            "{\"lower\":1,\"lower_inc\":1}",
            Type::INT4_RANGE,
            "parameter $2: expected bool, got number",
        ),
        (
            "{\"low\":1}",
            Type::INT4_RANGE,
            "parameter $2: type int4range has no field \"low\"",
        ),
        (
            "{\"x\":1}",
            Type::POINT,
            "parameter $2: expected float8, got null",
        ),
        (
            "[1]",
            Type::INT4MULTI_RANGE,
            "parameter $2: expected int4multirange, got number",
        ),
    ];
    for (json, ty, want) in cases {
        assert_eq!(
            enc(json, &ty),
            Err(want.to_string()),
            "{json} as {}",
            ty.name()
        );
    }
}

#[test]
fn text_param_binds_as_text() {
    use bytes::BytesMut;
    let param = TextParam(Some("12".into()));
    assert!(<TextParam as ToSql>::accepts(&Type::POLYGON));
    assert!(matches!(param.encode_format(&Type::INT4), Format::Text));
    let mut buf = BytesMut::new();
    assert!(matches!(
        param.to_sql_checked(&Type::INT4, &mut buf),
        Ok(IsNull::No)
    ));
    assert_eq!(&buf[..], b"12");
    assert!(matches!(
        TextParam(None).to_sql_checked(&Type::INT4, &mut buf),
        Ok(IsNull::Yes)
    ));
}
