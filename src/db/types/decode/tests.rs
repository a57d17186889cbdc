//! Dispatcher-level tests: kinds, error handling, and fuzz-style checks
//! that no input makes the decoder panic or emit invalid JSON.

use tokio_postgres::types::{Field, FromSql, Kind, Type};

use super::*;

fn json(ty: &Type, raw: Option<&[u8]>) -> Result<String, DecodeError> {
    let mut out = b"prefix".to_vec();
    let res = write_json(&mut out, ty, raw);
    if res.is_err() {
        assert_eq!(out, b"prefix", "output must be rolled back on error");
    }
    res.map(|()| String::from_utf8(out[6..].to_vec()).expect("utf8"))
}

#[test]
fn raw_accepts_everything() {
    assert!(<Raw as FromSql>::accepts(&Type::POLYGON));
    assert_eq!(
        Raw::from_sql_nullable(&Type::INT4, None).ok(),
        Some(Raw(None))
    );
    assert_eq!(
        Raw::from_sql_nullable(&Type::INT4, Some(&[1])).ok(),
        Some(Raw(Some(&[1][..])))
    );
}

#[test]
fn json_strings_are_escaped() {
    let mut out = Vec::new();
    write_json_str(&mut out, "a\"\\\u{0}\u{1f}\u{7f}\u{2028}é\t");
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "\"a\\\"\\\\\\u0000\\u001f\u{7f}\u{2028}é\\t\""
    );
}

#[test]
fn kinds_dispatch() {
    let mood = Type::new(
        "mood".into(),
        90_001,
        Kind::Enum(vec!["ok".into()]),
        "public".into(),
    );
    let posint = Type::new(
        "posint".into(),
        90_002,
        Kind::Domain(Type::INT4),
        "public".into(),
    );
    let citext = Type::new("citext".into(), 90_003, Kind::Simple, "public".into());
    let blob = Type::new("blob".into(), 90_004, Kind::Simple, "public".into());
    let pair = Type::new(
        "pair".into(),
        90_005,
        Kind::Composite(vec![Field::new("n".into(), posint.clone())]),
        "public".into(),
    );
    assert_eq!(json(&mood, Some(b"ok")).expect("enum"), "\"ok\"");
    assert_eq!(json(&posint, Some(&[0, 0, 0, 5])).expect("domain"), "5");
    assert_eq!(json(&citext, Some(b"Hi")).expect("citext"), "\"Hi\"");
    assert_eq!(
        json(&blob, Some(&[0xff, 0])).expect("unknown"),
        "\"\\\\xff00\""
    );
    let rec = [
        &[0u8, 0, 0, 1, 0, 1, 0x5f, 0x92, 0, 0, 0, 4][..],
        &[0, 0, 0, 9],
    ]
    .concat();
    assert_eq!(json(&pair, Some(&rec)).expect("composite"), r#"{"n":9}"#);
    assert_eq!(json(&Type::VOID, Some(&[])).expect("void"), "null");
    assert_eq!(json(&Type::INT4, None).expect("null"), "null");
}

#[test]
fn errors_name_the_type() {
    let err = json(
        &Type::INT4_ARRAY,
        Some(&[
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0,
        ]),
    )
    .expect_err("int4 of 2 bytes");
    assert_eq!(
        err.to_string(),
        "malformed binary value of type int4: wrong length"
    );
    let err = json(&Type::INT4_ARRAY, Some(&[0, 0, 0, 1])).expect_err("truncated header");
    assert_eq!(
        err.to_string(),
        "malformed binary value of type _int4: value is truncated"
    );
}

/// A sample value per type, used as a seed for truncation and mutation.
fn samples() -> Vec<(Type, Vec<u8>)> {
    let int_array = [
        &[
            0u8, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 23, 0, 0, 0, 2, 0, 0, 0, 1,
        ][..],
        &[0, 0, 0, 4, 0, 0, 0, 1, 255, 255, 255, 255],
    ]
    .concat();
    let range = [&[2u8, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9][..]].concat();
    let multi = [&[0u8, 0, 0, 1, 0, 0, 0, 17][..], &range].concat();
    let tsv = b"\0\0\0\x01ab\0\0\x01\xc0\x01".to_vec();
    let tsq = b"\0\0\0\x03\x02\x02\x01\0\0b\0\x01\x08\x01a\0".to_vec();
    vec![
        (Type::BOOL, vec![1]),
        (Type::INT8, vec![0, 0, 0, 0, 0, 0, 1, 0]),
        (Type::FLOAT8, 1.5f64.to_be_bytes().to_vec()),
        (Type::FLOAT4, 0.1f32.to_be_bytes().to_vec()),
        (
            Type::NUMERIC,
            vec![0, 2, 0, 0, 0x40, 0, 0, 6, 0, 1, 0x13, 0x88],
        ),
        (Type::MONEY, vec![0, 0, 0, 0, 0, 0, 4, 0]),
        (Type::TEXT, b"hello".to_vec()),
        (Type::JSONB, b"\x01{\"a\":1}".to_vec()),
        (Type::UUID, vec![7; 16]),
        (Type::DATE, vec![0, 0, 1, 0]),
        (Type::TIMETZ, vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 60]),
        (Type::TIMESTAMPTZ, vec![0, 0, 0, 1, 0, 0, 0, 0]),
        (
            Type::INTERVAL,
            vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        ),
        (
            Type::INET,
            vec![
                3, 64, 0, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ],
        ),
        (Type::MACADDR8, vec![1; 8]),
        (Type::VARBIT, vec![0, 0, 0, 9, 0xff, 0x80]),
        (Type::PG_LSN, vec![0, 0, 0, 1, 0, 0, 0, 2]),
        (
            Type::PATH,
            [
                &[1u8, 0, 0, 0, 1][..],
                &1f64.to_be_bytes(),
                &2f64.to_be_bytes(),
            ]
            .concat(),
        ),
        (
            Type::CIRCLE,
            [1f64, 2., 3.]
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect(),
        ),
        (Type::TS_VECTOR, tsv),
        (Type::TSQUERY, tsq),
        (Type::INT4_ARRAY, int_array),
        (Type::INT4_RANGE, range),
        (Type::INT4MULTI_RANGE, multi),
        (
            Type::RECORD,
            vec![0, 0, 0, 1, 0, 0, 0, 25, 0, 0, 0, 1, b'x'],
        ),
        (
            Type::PG_SNAPSHOT,
            vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2],
        ),
    ]
}

/// `json`/`jsonb` text is embedded without re-parsing (the server only
/// stores valid JSON), so for those only "no panic" is checked.
fn assert_valid_json(ty: &Type, buf: &[u8]) {
    let embeds_raw = *ty == Type::JSON || *ty == Type::JSONB;
    if let Some(text) = json(ty, Some(buf)).ok().filter(|_| !embeds_raw) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&text);
        assert!(
            parsed.is_ok(),
            "{} produced invalid JSON {text:?} from {buf:?}",
            ty.name()
        );
    }
}

#[test]
fn samples_decode_and_truncations_never_panic() {
    for (ty, buf) in samples() {
        assert!(
            json(&ty, Some(&buf)).is_ok(),
            "sample for {} must decode",
            ty.name()
        );
        for len in 0..buf.len() {
            assert_valid_json(&ty, &buf[..len]);
        }
    }
}

#[test]
fn mutations_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (ty, buf) in samples() {
        for _ in 0..300 {
            let mut m = buf.clone();
            for _ in 0..1 + next() % 3 {
                let i = (next() as usize) % m.len().max(1);
                if let Some(b) = m.get_mut(i) {
                    *b = next() as u8;
                }
            }
            assert_valid_json(&ty, &m);
        }
    }
}
