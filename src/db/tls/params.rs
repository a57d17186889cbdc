//! libpq's TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) taken out of a
//! connection string, in either form (`postgresql://...?sslmode=verify-full` or
//! `host=... sslmode=verify-full`). tokio-postgres' parser knows only three `sslmode` values
//! and none of the files, so they are removed before it sees the rest.

use std::path::PathBuf;

use super::{SslMode, TlsSettings};

/// What a connection string says about TLS.
pub type SslParams = TlsSettings;

const NAMES: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// The connection string without its TLS parameters, and those parameters.
pub fn split(conninfo: &str) -> Result<(String, SslParams), String> {
    let mut params = SslParams::default();
    let rest = if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        split_url(conninfo, &mut params)?
    } else {
        split_keywords(conninfo, &mut params)?
    };
    Ok((rest, params))
}

fn take(params: &mut SslParams, key: &str, value: String) -> Result<(), String> {
    match key {
        "sslmode" => {
            params.mode = Some(SslMode::parse(&value).ok_or_else(|| {
                format!("sslmode \"{value}\" is not one of disable, prefer, require, verify-ca, verify-full")
            })?)
        }
        "sslrootcert" => params.rootcert = Some(value),
        "sslcert" => params.cert = Some(PathBuf::from(value)),
        _ => params.key = Some(PathBuf::from(value)),
    }
    Ok(())
}

/// The URL form: the query's pairs are percent-encoded, the others are kept byte for byte.
fn split_url(url: &str, params: &mut SslParams) -> Result<String, String> {
    let Some((base, query)) = url.split_once('?') else { return Ok(url.to_owned()) };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(pair.as_bytes()).next().unwrap_or_default();
        if NAMES.contains(&key.as_ref()) {
            take(params, &key, value.into_owned())?;
        } else {
            kept.push(pair);
        }
    }
    Ok(if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) })
}

/// The `key=value` form: values may be single-quoted, with `\'` and `\\` escapes; the pairs
/// kept are written back quoted.
fn split_keywords(conninfo: &str, params: &mut SslParams) -> Result<String, String> {
    let mut kept = Vec::new();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("\"{key}\" has no value (expected key=value)"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(format!("the value of \"{key}\" has no closing quote")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if NAMES.contains(&key.as_str()) {
            take(params, &key, value)?;
        } else {
            kept.push(format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'")));
        }
    }
    Ok(kept.join(" "))
}
