//! Binary result values → JSON text.
//!
//! [`write_json`] appends the JSON form of one value, read from
//! PostgreSQL's binary wire format, straight into a byte buffer (no
//! intermediate `serde_json::Value`). The JSON rules per type are listed in
//! the [parent module](super) docs. Decoding never panics: malformed or
//! truncated input yields [`DecodeError`].

mod container;
mod datetime;
mod fmt;
mod geo;
mod net;
mod numeric;
mod reader;
mod scalar;
mod textsearch;

use std::error::Error;

use tokio_postgres::types::{FromSql, Kind, Type};

use super::oid;
use reader::Bad;

/// Borrows the raw binary bytes of a column of any type (`None` for SQL
/// NULL). Use it as `row.try_get::<_, Raw>(i)` and pass the bytes to
/// [`write_json`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// A binary value that could not be converted to JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a valid binary encoding of the type.
    #[error("malformed binary value of type {type_name}: {reason}")]
    Malformed {
        /// Name of the (innermost) type whose value was malformed.
        type_name: String,
        /// What was wrong.
        reason: &'static str,
    },
}

impl From<Bad> for DecodeError {
    /// The type name is filled in by the dispatcher on the way out.
    fn from(bad: Bad) -> Self {
        DecodeError::Malformed {
            type_name: String::new(),
            reason: bad.0,
        }
    }
}

impl DecodeError {
    fn with_type(mut self, ty: &Type) -> Self {
        let DecodeError::Malformed { type_name, .. } = &mut self;
        if type_name.is_empty() {
            type_name.push_str(ty.name());
        }
        self
    }
}

/// Appends the JSON form of one value of type `ty` (`raw` in binary wire
/// format, `None` for SQL NULL) to `out`.
///
/// On error `out` is left exactly as it was.
pub fn write_json(out: &mut Vec<u8>, ty: &Type, raw: Option<&[u8]>) -> Result<(), DecodeError> {
    let Some(buf) = raw else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    let start = out.len();
    let result = write_value(out, ty, buf);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends `s` as a JSON string literal (quoted and escaped).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_escaped(out, s);
    out.push(b'"');
}

/// Appends the JSON-escaped content of `s`, without the surrounding quotes.
pub(crate) fn write_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                out.extend_from_slice(b"\\u00");
                fmt::push_hex(out, &[b]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Dispatches on the type: built-in OIDs first, then the type's kind.
pub(crate) fn write_value(out: &mut Vec<u8>, ty: &Type, buf: &[u8]) -> Result<(), DecodeError> {
    write_typed(out, ty, buf).map_err(|e| e.with_type(ty))
}

fn write_typed(out: &mut Vec<u8>, ty: &Type, buf: &[u8]) -> Result<(), DecodeError> {
    use oid::*;
    match ty.oid() {
        BOOL => scalar::bool(out, buf)?,
        INT2 => scalar::int2(out, buf)?,
        INT4 => scalar::int4(out, buf)?,
        INT8 => scalar::int8(out, buf)?,
        OID | XID | CID | REGPROC | REGPROCEDURE | REGOPER | REGOPERATOR | REGCLASS | REGTYPE
        | REGCONFIG | REGDICTIONARY | REGNAMESPACE | REGROLE | REGCOLLATION => {
            scalar::uint4(out, buf)?
        }
        XID8 => scalar::uint8(out, buf)?,
        FLOAT4 => scalar::float4(out, buf)?,
        FLOAT8 => scalar::float8(out, buf)?,
        NUMERIC => numeric::numeric(out, buf)?,
        MONEY => numeric::money(out, buf)?,
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | XML | REFCURSOR | CSTRING | PG_NODE_TREE => {
            scalar::text(out, buf)?
        }
        CHAR => scalar::char(out, buf)?,
        JSON => scalar::json(out, buf)?,
        JSONB => scalar::jsonb(out, buf)?,
        JSONPATH => scalar::jsonpath(out, buf)?,
        BYTEA => scalar::bytea(out, buf),
        UUID => scalar::uuid(out, buf)?,
        TID => scalar::tid(out, buf)?,
        PG_LSN => scalar::pg_lsn(out, buf)?,
        BIT | VARBIT => scalar::bits(out, buf)?,
        TXID_SNAPSHOT | PG_SNAPSHOT => scalar::snapshot(out, buf)?,
        VOID => out.extend_from_slice(b"null"),
        DATE => datetime::date(out, buf)?,
        TIME => datetime::time(out, buf)?,
        TIMETZ => datetime::timetz(out, buf)?,
        TIMESTAMP => datetime::timestamp(out, buf, false)?,
        TIMESTAMPTZ => datetime::timestamp(out, buf, true)?,
        INTERVAL => datetime::interval(out, buf)?,
        INET => net::inet(out, buf, false)?,
        CIDR => net::inet(out, buf, true)?,
        MACADDR => net::macaddr(out, buf, 6)?,
        MACADDR8 => net::macaddr(out, buf, 8)?,
        POINT => geo::point(out, buf)?,
        LINE => geo::line(out, buf)?,
        LSEG => geo::lseg(out, buf)?,
        BOX => geo::boxed(out, buf)?,
        PATH => geo::path(out, buf)?,
        POLYGON => geo::polygon(out, buf)?,
        CIRCLE => geo::circle(out, buf)?,
        TSVECTOR => textsearch::tsvector(out, buf)?,
        TSQUERY => textsearch::tsquery(out, buf)?,
        RECORD => container::record(out, buf)?,
        ANYARRAY => container::any_array(out, buf)?,
        _ => write_by_kind(out, ty, buf)?,
    }
    Ok(())
}

fn write_by_kind(out: &mut Vec<u8>, ty: &Type, buf: &[u8]) -> Result<(), DecodeError> {
    match ty.kind() {
        Kind::Array(elem) => container::array(out, elem, buf),
        Kind::Range(elem) => container::range(out, elem, buf),
        Kind::Multirange(elem) => container::multirange(out, elem, buf),
        Kind::Composite(fields) => container::composite(out, fields, buf),
        Kind::Domain(base) => write_value(out, base, buf),
        Kind::Enum(_) => Ok(scalar::text(out, buf)?),
        _ if ty.name() == "hstore" => container::hstore(out, buf),
        _ => {
            scalar::fallback(out, buf);
            Ok(())
        }
    }
}

/// Decodes a value known only by OID (fields of anonymous records).
pub(crate) fn write_by_oid(
    out: &mut Vec<u8>,
    type_oid: u32,
    buf: &[u8],
) -> Result<(), DecodeError> {
    match Type::from_oid(type_oid) {
        Some(ty) => write_value(out, &ty, buf),
        None => {
            scalar::fallback(out, buf);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
