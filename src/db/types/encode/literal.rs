//! PostgreSQL array, row, range, multirange and point literals built from
//! JSON arrays and objects.

use serde_json::{Map, Value};
use tokio_postgres::types::{Field, Kind, Type};

use super::{Class, Encoder, ParamError, classify, oid};

/// Array literal `{"a","b",NULL,{...}}`: every element double-quoted,
/// NULL unquoted, nested JSON arrays become nested dimensions (except for
/// `json`/`jsonb`/multirange elements, where an array is one element).
pub(super) fn array(
    enc: Encoder,
    out: &mut String,
    items: &[Value],
    elem: &Type,
) -> Result<(), ParamError> {
    let delim = if base(elem).oid() == oid::BOX {
        ';'
    } else {
        ','
    };
    let nested_dims = !matches!(classify(elem), Class::Json | Class::Multirange(_));
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(delim);
        }
        match item {
            Value::Null => out.push_str("NULL"),
            Value::Array(inner) if nested_dims => array(enc, out, inner, elem)?,
            _ => write_quoted(enc, out, item, elem)?,
        }
    }
    out.push('}');
    Ok(())
}

/// Row literal `("a",,"c")` for a composite type, taking fields by name;
/// missing or null fields are NULL (nothing between the commas).
pub(super) fn row(
    enc: Encoder,
    out: &mut String,
    map: &Map<String, Value>,
    fields: &[Field],
    ty: &Type,
) -> Result<(), ParamError> {
    if let Some(key) = map
        .keys()
        .find(|k| !fields.iter().any(|f| f.name() == k.as_str()))
    {
        return Err(enc.unknown_field(ty, key));
    }
    out.push('(');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match map.get(field.name()) {
            None | Some(Value::Null) => {}
            Some(value) => write_quoted(enc, out, value, field.type_())?,
        }
    }
    out.push(')');
    Ok(())
}

/// Range literal from `{"lower", "upper", "lower_inc", "upper_inc"}` (the
/// shape ranges are decoded to). Missing/null bounds are unbounded;
/// `lower_inc` defaults to true and `upper_inc` to false, like `[)`.
pub(super) fn range(
    enc: Encoder,
    out: &mut String,
    map: &Map<String, Value>,
    elem: &Type,
    ty: &Type,
) -> Result<(), ParamError> {
    const KEYS: [&str; 4] = ["lower", "upper", "lower_inc", "upper_inc"];
    if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(enc.unknown_field(ty, key));
    }
    let flag = |key: &str, default: bool| match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(enc.mismatch(&Type::BOOL, other)),
    };
    let (lower_inc, upper_inc) = (flag("lower_inc", true)?, flag("upper_inc", false)?);
    out.push(if lower_inc { '[' } else { '(' });
    if let Some(lower) = map.get("lower").filter(|v| !v.is_null()) {
        write_quoted(enc, out, lower, elem)?;
    }
    out.push(',');
    if let Some(upper) = map.get("upper").filter(|v| !v.is_null()) {
        write_quoted(enc, out, upper, elem)?;
    }
    out.push(if upper_inc { ']' } else { ')' });
    Ok(())
}

/// Multirange literal `{[1,2),[5,7)}` from an array of range objects or
/// range strings.
pub(super) fn multirange(
    enc: Encoder,
    out: &mut String,
    items: &[Value],
    elem: &Type,
    ty: &Type,
) -> Result<(), ParamError> {
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Object(map) => range(enc, out, map, elem, ty)?,
            Value::String(s) => out.push_str(s),
            other => return Err(enc.mismatch(ty, other)),
        }
    }
    out.push('}');
    Ok(())
}

/// Point literal `(x,y)` from `{"x": number, "y": number}`.
pub(super) fn point(
    enc: Encoder,
    out: &mut String,
    map: &Map<String, Value>,
    ty: &Type,
) -> Result<(), ParamError> {
    if let Some(key) = map.keys().find(|k| !matches!(k.as_str(), "x" | "y")) {
        return Err(enc.unknown_field(ty, key));
    }
    out.push('(');
    for (i, key) in ["x", "y"].into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match map.get(key).unwrap_or(&Value::Null) {
            Value::Number(n) => out.push_str(n.as_str()),
            other => return Err(enc.mismatch(&Type::FLOAT8, other)),
        }
    }
    out.push(')');
    Ok(())
}

/// Appends the text of `value` for `ty` as a double-quoted element, with
/// `"` and `\` backslash-escaped. Only allocates when escaping is needed.
fn write_quoted(
    enc: Encoder,
    out: &mut String,
    value: &Value,
    ty: &Type,
) -> Result<(), ParamError> {
    let start = out.len();
    enc.write(out, value, ty)?;
    if out[start..].contains(['"', '\\']) {
        let text = out.split_off(start);
        out.reserve(text.len() + 8);
        out.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    } else {
        out.insert(start, '"');
    }
    out.push('"');
    Ok(())
}

/// The type with domains stripped.
fn base(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(inner) => base(inner),
        _ => ty,
    }
}
