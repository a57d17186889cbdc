//! Arrays, ranges, multiranges, composites, anonymous records and hstore.

use tokio_postgres::types::{Field, Kind, Type};

use super::reader::{Bad, Reader};
use super::{DecodeError, write_by_oid, write_json_str, write_value};

/// PostgreSQL's MAXDIM.
const MAX_DIMS: usize = 6;

/// Writes an optional element: `null` or the decoded value.
fn write_elem(out: &mut Vec<u8>, ty: &Type, value: Option<&[u8]>) -> Result<(), DecodeError> {
    match value {
        Some(buf) => write_value(out, ty, buf),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// Arrays → nested JSON arrays (one level per dimension; lower bounds are
/// ignored; empty arrays → `[]`).
///
/// Binary layout: ndim, has-null flag, element OID, (length, lower bound)
/// per dimension, then the elements in row-major order, each length-prefixed
/// (length -1 = NULL).
pub(super) fn array(out: &mut Vec<u8>, elem: &Type, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    let ndim = r.count()?;
    let (_has_null, _elem_oid) = (r.i32()?, r.u32()?);
    if ndim > MAX_DIMS {
        return Err(Bad("too many array dimensions").into());
    }
    let mut dims = [0usize; MAX_DIMS];
    let mut total = 1usize;
    for dim in dims.iter_mut().take(ndim) {
        *dim = r.count()?;
        let _lower_bound = r.i32()?;
        total = total.saturating_mul(*dim);
    }
    if ndim == 0 || total == 0 {
        out.extend_from_slice(b"[]");
        return r.finish().map_err(Into::into);
    }
    // Every element takes at least its 4-byte length.
    if total > r.remaining() / 4 {
        return Err(Bad::TRUNCATED.into());
    }
    write_dims(out, elem, &dims[..ndim], &mut r)?;
    Ok(r.finish()?)
}

fn write_dims(
    out: &mut Vec<u8>,
    elem: &Type,
    dims: &[usize],
    r: &mut Reader<'_>,
) -> Result<(), DecodeError> {
    let Some((&len, inner)) = dims.split_first() else {
        return write_elem(out, elem, r.value()?);
    };
    out.push(b'[');
    for i in 0..len {
        if i > 0 {
            out.push(b',');
        }
        write_dims(out, elem, inner, r)?;
    }
    out.push(b']');
    Ok(())
}

/// `anyarray` columns (e.g. `pg_stats.most_common_vals`): the element type
/// is taken from the OID in the array header. Elements of a type unknown
/// by OID fall back to string / hex.
pub(super) fn any_array(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), DecodeError> {
    let elem_oid = buf
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes);
    let elem = elem_oid
        .and_then(Type::from_oid)
        .unwrap_or_else(|| Type::new("unknown element".into(), 0, Kind::Simple, String::new()));
    array(out, &elem, buf)
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;

/// Ranges → `{"lower":..,"upper":..,"lower_inc":..,"upper_inc":..}`
/// (`null` for an unbounded side); the empty range → `"empty"`.
pub(super) fn range(out: &mut Vec<u8>, elem: &Type, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    let flags = r.u8()?;
    if flags & RANGE_EMPTY != 0 {
        out.extend_from_slice(b"\"empty\"");
        return Ok(r.finish()?);
    }
    let lower = if flags & RANGE_LB_INF == 0 {
        Some(bound(&mut r)?)
    } else {
        None
    };
    let upper = if flags & RANGE_UB_INF == 0 {
        Some(bound(&mut r)?)
    } else {
        None
    };
    r.finish()?;
    out.extend_from_slice(b"{\"lower\":");
    write_elem(out, elem, lower)?;
    out.extend_from_slice(b",\"upper\":");
    write_elem(out, elem, upper)?;
    out.extend_from_slice(b",\"lower_inc\":");
    out.extend_from_slice(if flags & RANGE_LB_INC != 0 {
        b"true"
    } else {
        b"false"
    });
    out.extend_from_slice(b",\"upper_inc\":");
    out.extend_from_slice(if flags & RANGE_UB_INC != 0 {
        b"true"
    } else {
        b"false"
    });
    out.push(b'}');
    Ok(())
}

fn bound<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], Bad> {
    r.value()?.ok_or(Bad("NULL range bound"))
}

/// Multiranges → JSON array of ranges.
pub(super) fn multirange(out: &mut Vec<u8>, elem: &Type, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    let count = r.count()?;
    out.push(b'[');
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        let part = r.value()?.ok_or(Bad("NULL range in multirange"))?;
        range(out, elem, part)?;
    }
    out.push(b']');
    Ok(r.finish()?)
}

/// Composite types → `{"field": value, ...}` using the declared field
/// types. Binary layout: field count, then (type OID, length-prefixed
/// value) per field.
pub(super) fn composite(
    out: &mut Vec<u8>,
    fields: &[Field],
    buf: &[u8],
) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    if r.count()? != fields.len() {
        return Err(Bad("field count does not match the type").into());
    }
    out.push(b'{');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _oid = r.u32()?;
        write_json_str(out, field.name());
        out.push(b':');
        write_elem(out, field.type_(), r.value()?)?;
    }
    out.push(b'}');
    Ok(r.finish()?)
}

/// Anonymous records (`ROW(...)`, type `record`) → `{"f1": .., "f2": ..}`
/// like `row_to_json`; each field is decoded by the OID it carries.
pub(super) fn record(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    let count = r.count()?;
    out.push(b'{');
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        let oid = r.u32()?;
        out.extend_from_slice(b"\"f");
        super::fmt::push_u64(out, i as u64 + 1);
        out.extend_from_slice(b"\":");
        match r.value()? {
            Some(value) => write_by_oid(out, oid, value)?,
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    Ok(r.finish()?)
}

/// `hstore` (extension type, matched by name) → `{"key": "value"|null}`.
pub(super) fn hstore(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    let count = r.count()?;
    out.push(b'{');
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        let key = r.value()?.ok_or(Bad("NULL hstore key"))?;
        write_json_str(out, std::str::from_utf8(key).map_err(|_| Bad::UTF8)?);
        out.push(b':');
        match r.value()? {
            Some(v) => write_json_str(out, std::str::from_utf8(v).map_err(|_| Bad::UTF8)?),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    Ok(r.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(
        res: impl FnOnce(&mut Vec<u8>) -> Result<(), DecodeError>,
    ) -> Result<String, DecodeError> {
        let mut out = Vec::new();
        res(&mut out)?;
        Ok(String::from_utf8(out).expect("utf8"))
    }

    fn int4_array(dims: &[i32], elems: &[Option<i32>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(dims.len() as i32).to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&23u32.to_be_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
            b.extend_from_slice(&1i32.to_be_bytes());
        }
        for e in elems {
            match e {
                Some(v) => {
                    b.extend_from_slice(&4i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b
    }

    #[test]
    fn arrays() {
        let int4 = Type::INT4;
        type Case<'a> = (&'a [i32], &'a [Option<i32>], &'a str);
        let cases: &[Case] = &[
            (&[], &[], "[]"),
            (&[3], &[Some(1), None, Some(-3)], "[1,null,-3]"),
            (
                &[2, 2],
                &[Some(1), Some(2), Some(3), Some(4)],
                "[[1,2],[3,4]]",
            ),
            (&[1, 2, 1], &[Some(1), Some(2)], "[[[1],[2]]]"),
        ];
        for (dims, elems, want) in cases {
            let buf = int4_array(dims, elems);
            assert_eq!(show(|o| array(o, &int4, &buf)).expect("decodes"), *want);
        }
        assert!(show(|o| array(o, &int4, &int4_array(&[3], &[Some(1)]))).is_err());
        assert!(
            show(|o| array(o, &int4, &int4_array(&[1_000_000_000, 1_000_000_000], &[]))).is_err()
        );
        assert!(show(|o| array(o, &int4, &int4_array(&[1; 7], &[Some(1)]))).is_err());
    }

    #[test]
    fn ranges() {
        let int4 = Type::INT4;
        let mut b = vec![RANGE_LB_INC];
        for v in [1i32, 5] {
            b.extend_from_slice(&4i32.to_be_bytes());
            b.extend_from_slice(&v.to_be_bytes());
        }
        let full = r#"{"lower":1,"upper":5,"lower_inc":true,"upper_inc":false}"#;
        assert_eq!(show(|o| range(o, &int4, &b)).expect("decodes"), full);
        let unbounded = [RANGE_LB_INF | RANGE_UB_INF];
        let want = r#"{"lower":null,"upper":null,"lower_inc":false,"upper_inc":false}"#;
        assert_eq!(
            show(|o| range(o, &int4, &unbounded)).expect("decodes"),
            want
        );
        assert_eq!(
            show(|o| range(o, &int4, &[RANGE_EMPTY])).expect("decodes"),
            "\"empty\""
        );
        let mut multi = 2i32.to_be_bytes().to_vec();
        for part in [&b[..], &[RANGE_EMPTY][..]] {
            multi.extend_from_slice(&(part.len() as i32).to_be_bytes());
            multi.extend_from_slice(part);
        }
        assert_eq!(
            show(|o| multirange(o, &int4, &multi)).expect("decodes"),
            format!("[{full},\"empty\"]")
        );
        assert!(show(|o| range(o, &int4, &b[..b.len() - 1])).is_err());
    }

    #[test]
    fn records() {
        let mut b = 2i32.to_be_bytes().to_vec();
        b.extend_from_slice(&23u32.to_be_bytes());
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&25u32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            show(|o| record(o, &b)).expect("decodes"),
            r#"{"f1":7,"f2":null}"#
        );
        let fields = [
            Field::new("a\"".into(), Type::INT4),
            Field::new("b".into(), Type::TEXT),
        ];
        assert_eq!(
            show(|o| composite(o, &fields, &b)).expect("decodes"),
            r#"{"a\"":7,"b":null}"#
        );
        assert!(show(|o| composite(o, &fields[..1], &b)).is_err());
        // Field values are checked by their declared type.
        let wrong = [
            Field::new("a".into(), Type::INT8),
            Field::new("b".into(), Type::TEXT),
        ];
        let err = show(|o| composite(o, &wrong, &b)).expect_err("int8 from 4 bytes");
        assert!(err.to_string().contains("int8"), "{err}");
    }

    #[test]
    fn hstores() {
        let mut b = 2i32.to_be_bytes().to_vec();
        for (k, v) in [("a", Some("1")), ("b", None)] {
            b.extend_from_slice(&(k.len() as i32).to_be_bytes());
            b.extend_from_slice(k.as_bytes());
            match v {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v.as_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        assert_eq!(
            show(|o| hstore(o, &b)).expect("decodes"),
            r#"{"a":"1","b":null}"#
        );
    }
}
