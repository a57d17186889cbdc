//! JSON request parameters → PostgreSQL text-format parameters.
//!
//! [`encode_param`] turns one JSON value into the text PostgreSQL's input
//! function for the parameter's (inferred) type parses; [`TextParam`] sends
//! it with `Format::Text`, so bad text is rejected by the server with its
//! own SQLSTATE (e.g. `22P02`). The JSON rules are listed in the
//! [parent module](super) docs.

mod literal;

use std::error::Error;
use std::fmt::Write as _;

use bytes::BytesMut;
use serde_json::Value;
use tokio_postgres::types::{Field, Format, IsNull, Kind, ToSql, Type, to_sql_checked};

use super::oid;

/// One parameter already converted to PostgreSQL text form (`None` = SQL
/// NULL). Binds to a parameter of any type and is sent in text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextParam(pub Option<String>);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match &self.0 {
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// A JSON parameter that cannot be converted for its PostgreSQL type.
/// Messages name the parameter as `$1`, `$2`, ...
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The JSON kind cannot represent a value of the type.
    #[error("parameter ${}: expected {expected}, got {got}", .index + 1)]
    TypeMismatch {
        /// 0-based parameter index.
        index: usize,
        /// PostgreSQL type name (`int4`, `int4[]`, ...).
        expected: String,
        /// JSON kind: `null`, `bool`, `number`, `string`, `array`, `object`.
        got: &'static str,
    },
    /// A number with a fraction or exponent for an integer type.
    #[error("parameter ${}: expected {expected}, got non-integer number {value}", .index + 1)]
    NotAnInteger {
        /// 0-based parameter index.
        index: usize,
        /// PostgreSQL type name.
        expected: String,
        /// The number as given.
        value: String,
    },
    /// A string that is not one of the enum's labels.
    #[error("parameter ${}: invalid value {value:?} for enum {type_name} (expected one of: {allowed})", .index + 1)]
    InvalidEnumValue {
        /// 0-based parameter index.
        index: usize,
        /// The enum type's name.
        type_name: String,
        /// The string given.
        value: String,
        /// The labels, comma-separated.
        allowed: String,
    },
    /// An object key that is not a field of the composite (or range/point)
    /// type.
    #[error("parameter ${}: type {type_name} has no field {field:?}", .index + 1)]
    UnknownField {
        /// 0-based parameter index.
        index: usize,
        /// The type's name.
        type_name: String,
        /// The unknown key.
        field: String,
    },
}

/// Converts JSON parameter number `index` (0-based) for a parameter of
/// type `ty` into its PostgreSQL text form.
pub fn encode_param(index: usize, value: &Value, ty: &Type) -> Result<TextParam, ParamError> {
    if value.is_null() {
        return Ok(TextParam(None));
    }
    let mut out = String::new();
    Encoder { index }.write(&mut out, value, ty)?;
    Ok(TextParam(Some(out)))
}

/// How a type accepts JSON values (domains resolved to their base type).
#[derive(Clone, Copy)]
enum Class<'t> {
    Bool,
    Integer,
    Number,
    Text,
    Json,
    Point,
    Array(&'t Type),
    Composite(&'t [Field]),
    Enum(&'t [String]),
    Range(&'t Type),
    Multirange(&'t Type),
    Other,
}

fn classify(ty: &Type) -> Class<'_> {
    use oid::*;
    match ty.kind() {
        Kind::Domain(base) => return classify(base),
        Kind::Array(elem) => return Class::Array(elem),
        Kind::Composite(fields) => return Class::Composite(fields),
        Kind::Enum(labels) => return Class::Enum(labels),
        Kind::Range(elem) => return Class::Range(elem),
        Kind::Multirange(elem) => return Class::Multirange(elem),
        _ => {}
    }
    match ty.oid() {
        BOOL => Class::Bool,
        INT2 | INT4 | INT8 | OID | XID | CID | XID8 | REGPROC | REGPROCEDURE | REGOPER
        | REGOPERATOR | REGCLASS | REGTYPE | REGCONFIG | REGDICTIONARY | REGNAMESPACE | REGROLE
        | REGCOLLATION => Class::Integer,
        FLOAT4 | FLOAT8 | NUMERIC | MONEY => Class::Number,
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | CHAR => Class::Text,
        JSON | JSONB => Class::Json,
        POINT => Class::Point,
        _ if ty.name() == "citext" => Class::Text,
        _ => Class::Other,
    }
}

/// `int4`, or `int4[]` for array types.
fn type_label(ty: &Type) -> String {
    match ty.kind() {
        Kind::Array(elem) => format!("{}[]", elem.name()),
        _ => ty.name().to_string(),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Converts values of one parameter (carries its index for errors).
#[derive(Clone, Copy)]
struct Encoder {
    index: usize,
}

impl Encoder {
    /// Appends the text form of non-null `value` for type `ty`.
    fn write(self, out: &mut String, value: &Value, ty: &Type) -> Result<(), ParamError> {
        match (value, classify(ty)) {
            (Value::Null, _) => {}
            (_, Class::Json) => {
                let _ = write!(out, "{value}");
            }
            (Value::String(s), Class::Enum(labels)) => {
                self.check_label(s, labels, ty)?;
                out.push_str(s);
            }
            (Value::String(s), _) => out.push_str(s),
            (Value::Number(n), Class::Integer) => {
                let text = n.as_str();
                if !is_integer_literal(text) {
                    return Err(ParamError::NotAnInteger {
                        index: self.index,
                        expected: type_label(ty),
                        value: text.to_string(),
                    });
                }
                out.push_str(text);
            }
            (Value::Number(n), Class::Number | Class::Text) => out.push_str(n.as_str()),
            (Value::Bool(b), Class::Bool | Class::Text) => {
                out.push_str(if *b { "true" } else { "false" })
            }
            (Value::Array(items), Class::Array(elem)) => literal::array(self, out, items, elem)?,
            (Value::Array(items), Class::Multirange(elem)) => {
                literal::multirange(self, out, items, elem, ty)?
            }
            (Value::Object(map), Class::Composite(fields)) => {
                literal::row(self, out, map, fields, ty)?
            }
            (Value::Object(map), Class::Range(elem)) => literal::range(self, out, map, elem, ty)?,
            (Value::Object(map), Class::Point) => literal::point(self, out, map, ty)?,
            _ => return Err(self.mismatch(ty, value)),
        }
        Ok(())
    }

    fn check_label(self, s: &str, labels: &[String], ty: &Type) -> Result<(), ParamError> {
        if labels.iter().any(|l| l == s) {
            return Ok(());
        }
        Err(ParamError::InvalidEnumValue {
            index: self.index,
            type_name: ty.name().to_string(),
            value: s.to_string(),
            allowed: labels.join(", "),
        })
    }

    fn mismatch(self, ty: &Type, value: &Value) -> ParamError {
        ParamError::TypeMismatch {
            index: self.index,
            expected: type_label(ty),
            got: json_kind(value),
        }
    }

    fn unknown_field(self, ty: &Type, field: &str) -> ParamError {
        ParamError::UnknownField {
            index: self.index,
            type_name: ty.name().to_string(),
            field: field.to_string(),
        }
    }
}

/// `-?[0-9]+`: what an integer type accepts from a JSON number.
fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests;
