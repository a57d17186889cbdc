//! What a masked value becomes: pure functions of the value's text and the strategy.
//!
//! A value is masked from its JSON as dbagent would have sent it (numbers as digits, strings
//! unquoted), so `partial` and `hash` see the same text for a `text` and a `varchar` column
//! and equal values hash alike across tables: joins on hashed keys still match.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio_postgres::types::Type;

use crate::config::MaskStrategy as Strategy;
use crate::db::types::{DecodeError, write_json, write_json_str};

/// What `redact` shows.
pub const REDACTED: &str = "***";
/// Bytes of the HMAC kept (hex: twice as many digits).
const HASH_BYTES: usize = 16;
/// `partial` shows the last 4 characters only of values at least this long; shorter ones are
/// starred whole (the last 4 of a 6-character value would be most of it).
const PARTIAL_MIN_LEN: usize = 8;

/// Writes `raw` (PostgreSQL's binary form of a `ty` value, `None` for NULL) masked by
/// `strategy` as JSON. NULL stays `null` whatever the strategy: it says nothing.
pub fn write_masked(out: &mut Vec<u8>, strategy: Strategy, ty: &Type, raw: Option<&[u8]>, key: &[u8]) -> Result<(), DecodeError> {
    if raw.is_none() || strategy == Strategy::Null {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    let text = match strategy {
        Strategy::Redact => {
            write_json_str(out, REDACTED);
            return Ok(());
        }
        _ => {
            let mut scratch = Vec::with_capacity(64);
            write_json(&mut scratch, ty, raw)?;
            text_of(&scratch)
        }
    };
    let masked = match strategy {
        Strategy::Partial => partial(&text),
        _ => hash(&text, key),
    };
    write_json_str(out, &masked);
    Ok(())
}

/// A JSON value's text: a string unquoted, anything else as written.
fn text_of(json: &[u8]) -> String {
    match json.first() {
        Some(b'"') => serde_json::from_slice::<String>(json).unwrap_or_default(),
        _ => String::from_utf8_lossy(json).into_owned(),
    }
}

/// `j***@example.com` for an email, `************1234` for other values of 8 characters or
/// more, all stars below that.
pub fn partial(text: &str) -> String {
    if let Some((local, domain)) = text.split_once('@')
        && let Some(first) = local.chars().next()
        && !domain.is_empty()
    {
        return format!("{first}***@{domain}");
    }
    let count = text.chars().count();
    if count < PARTIAL_MIN_LEN {
        return "*".repeat(count.max(1));
    }
    let tail: String = text.chars().skip(count - 4).collect();
    format!("{}{tail}", "*".repeat(count - 4))
}

/// `h:` and the first 16 bytes of HMAC-SHA256(key, text) in hex.
pub fn hash(text: &str, key: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(text.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(2 + 2 * HASH_BYTES);
    out.push_str("h:");
    for byte in &digest[..HASH_BYTES] {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(strategy: Strategy, ty: &Type, raw: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        write_masked(&mut out, strategy, ty, raw, b"0123456789abcdef").unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn partial_keeps_the_domain_or_the_last_four() {
        for (value, expected) in [
            ("jane.doe@example.com", "j***@example.com"),
            ("4111111111111111", "************1111"),
            ("+1 555 0100", "*******0100"),
            ("12345", "*****"),
            ("@example.com", "********.com"),
            ("", "*"),
        ] {
            assert_eq!(partial(value), expected, "{value}");
        }
    }

    #[test]
    fn hashes_are_keyed_and_stable() {
        let a = hash("jane@example.com", b"key one key one!");
        assert_eq!(a, hash("jane@example.com", b"key one key one!"));
        assert_ne!(a, hash("jane@example.com", b"key two key two!"));
        assert_ne!(a, hash("john@example.com", b"key one key one!"));
        assert!(a.starts_with("h:") && a.len() == 2 + 32);
    }

    #[test]
    fn every_strategy_writes_json() {
        let text = Some(&b"jane@example.com"[..]);
        assert_eq!(masked(Strategy::Redact, &Type::TEXT, text), r#""***""#);
        assert_eq!(masked(Strategy::Null, &Type::TEXT, text), "null");
        assert_eq!(masked(Strategy::Partial, &Type::TEXT, text), r#""j***@example.com""#);
        assert!(masked(Strategy::Hash, &Type::TEXT, text).starts_with(r#""h:"#));
        // Numbers are masked from their digits, and become strings.
        let card = 4111111111111111i64.to_be_bytes();
        assert_eq!(masked(Strategy::Partial, &Type::INT8, Some(&card)), r#""************1111""#);
        assert_eq!(masked(Strategy::Redact, &Type::INT8, Some(&card)), r#""***""#);
        for strategy in [Strategy::Redact, Strategy::Partial, Strategy::Hash, Strategy::Null] {
            assert_eq!(masked(strategy, &Type::TEXT, None), "null");
        }
        // Text that needs escaping stays valid JSON.
        let quoted = masked(Strategy::Partial, &Type::TEXT, Some(&b"a\"b\\c\"@x.org"[..]));
        assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), "a***@x.org");
    }
}
