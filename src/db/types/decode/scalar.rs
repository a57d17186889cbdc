//! Simple fixed-layout and text-like types.

use super::fmt::{push_hex, push_hex_upper, push_i64, push_json_f32, push_json_f64, push_u64};
use super::reader::{Bad, Reader};
use super::{write_escaped, write_json_str};

/// Reads exactly `N` bytes (the whole value).
fn exact<const N: usize>(buf: &[u8]) -> Result<[u8; N], Bad> {
    buf.try_into().map_err(|_| Bad("wrong length"))
}

pub(super) fn bool(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let [b] = exact::<1>(buf)?;
    out.extend_from_slice(if b != 0 { b"true" } else { b"false" });
    Ok(())
}

pub(super) fn int2(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    push_i64(out, i16::from_be_bytes(exact(buf)?).into());
    Ok(())
}

pub(super) fn int4(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    push_i64(out, i32::from_be_bytes(exact(buf)?).into());
    Ok(())
}

pub(super) fn int8(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    push_i64(out, i64::from_be_bytes(exact(buf)?));
    Ok(())
}

/// `oid`, `xid`, `cid` and the `reg*` types: an unsigned 4-byte id.
pub(super) fn uint4(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    push_u64(out, u32::from_be_bytes(exact(buf)?).into());
    Ok(())
}

pub(super) fn uint8(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    push_u64(out, u64::from_be_bytes(exact(buf)?));
    Ok(())
}

pub(super) fn float4(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    push_json_f32(out, f32::from_be_bytes(exact(buf)?));
    Ok(())
}

pub(super) fn float8(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    push_json_f64(out, f64::from_be_bytes(exact(buf)?));
    Ok(())
}

/// Text-like types: the bytes are the UTF-8 text.
pub(super) fn text(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    write_json_str(out, std::str::from_utf8(buf).map_err(|_| Bad::UTF8)?);
    Ok(())
}

/// `"char"`: one byte; 0 prints as empty, high-bit bytes as `\ooo` octal
/// (as PostgreSQL 15+ prints them).
pub(super) fn char(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let c = match buf {
        [] | [0] => {
            out.extend_from_slice(b"\"\"");
            return Ok(());
        }
        [c] => *c,
        _ => return Err(Bad("wrong length")),
    };
    out.push(b'"');
    if c >= 0x80 {
        out.extend_from_slice(&[
            b'\\',
            b'\\',
            b'0' + (c >> 6),
            b'0' + ((c >> 3) & 7),
            b'0' + (c & 7),
        ]);
    } else {
        write_escaped(out, std::str::from_utf8(&[c]).map_err(|_| Bad::UTF8)?);
    }
    out.push(b'"');
    Ok(())
}

/// `json`: already JSON text; embedded as is.
pub(super) fn json(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let text = std::str::from_utf8(buf).map_err(|_| Bad::UTF8)?;
    if text.trim().is_empty() {
        return Err(Bad("empty json"));
    }
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// `jsonb`: a version byte (1) followed by JSON text.
pub(super) fn jsonb(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    match buf.split_first() {
        Some((1, rest)) => json(out, rest),
        _ => Err(Bad("unsupported jsonb version")),
    }
}

/// `jsonpath`: a version byte (1) followed by the path text → string.
pub(super) fn jsonpath(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    match buf.split_first() {
        Some((1, rest)) => text(out, rest),
        _ => Err(Bad("unsupported jsonpath version")),
    }
}

/// `bytea` → `"\\x<hex>"`, PostgreSQL's hex output form.
pub(super) fn bytea(out: &mut Vec<u8>, buf: &[u8]) {
    out.extend_from_slice(b"\"\\\\x");
    push_hex(out, buf);
    out.push(b'"');
}

pub(super) fn uuid(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let b = exact::<16>(buf)?;
    out.push(b'"');
    for (i, chunk) in [&b[0..4], &b[4..6], &b[6..8], &b[8..10], &b[10..16]]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(b'-');
        }
        push_hex(out, chunk);
    }
    out.push(b'"');
    Ok(())
}

/// `tid` → `"(block,offset)"`.
pub(super) fn tid(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let (block, offset) = (r.u32()?, r.u16()?);
    r.finish()?;
    out.extend_from_slice(b"\"(");
    push_u64(out, block.into());
    out.push(b',');
    push_u64(out, offset.into());
    out.extend_from_slice(b")\"");
    Ok(())
}

/// `pg_lsn` → `"16/B374D848"`.
pub(super) fn pg_lsn(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let v = u64::from_be_bytes(exact(buf)?);
    out.push(b'"');
    push_hex_upper(out, (v >> 32) as u32);
    out.push(b'/');
    push_hex_upper(out, v as u32);
    out.push(b'"');
    Ok(())
}

/// `bit` / `varbit` → `"0101"`.
pub(super) fn bits(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let nbits = r.count()?;
    let data = r.rest();
    if data.len() != nbits.div_ceil(8) {
        return Err(Bad("bit length does not match data"));
    }
    out.reserve(nbits + 2);
    out.push(b'"');
    for i in 0..nbits {
        let set = data[i / 8] & (0x80 >> (i % 8)) != 0;
        out.push(if set { b'1' } else { b'0' });
    }
    out.push(b'"');
    Ok(())
}

/// `txid_snapshot` / `pg_snapshot` → `"xmin:xmax:xip,xip"`.
pub(super) fn snapshot(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let nxip = r.count()?;
    let (xmin, xmax) = (r.u64()?, r.u64()?);
    if r.remaining() != nxip.saturating_mul(8) {
        return Err(Bad("snapshot length does not match xip count"));
    }
    out.push(b'"');
    push_u64(out, xmin);
    out.push(b':');
    push_u64(out, xmax);
    out.push(b':');
    for i in 0..nxip {
        if i > 0 {
            out.push(b',');
        }
        push_u64(out, r.u64()?);
    }
    out.push(b'"');
    Ok(())
}

/// Types without a dedicated decoder: UTF-8 text as a string, anything
/// else as `"\\x<hex>"`.
pub(super) fn fallback(out: &mut Vec<u8>, buf: &[u8]) {
    match std::str::from_utf8(buf) {
        Ok(s) => write_json_str(out, s),
        Err(_) => bytea(out, buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(f: fn(&mut Vec<u8>, &[u8]) -> Result<(), Bad>, buf: &[u8]) -> String {
        let mut out = Vec::new();
        f(&mut out, buf).expect("decodes");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn table() {
        type F = fn(&mut Vec<u8>, &[u8]) -> Result<(), Bad>;
        let cases: &[(F, &[u8], &str)] = &[
            (bool, &[1], "true"),
            (bool, &[0], "false"),
            (int2, &[0xff, 0xfe], "-2"),
            (int4, &[0, 0, 1, 0], "256"),
            (
                int8,
                &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                "9223372036854775807",
            ),
            (uint4, &[0xff, 0xff, 0xff, 0xff], "4294967295"),
            (text, "a\"b\\c\n\u{1}é".as_bytes(), r#""a\"b\\c\n\u0001é""#),
            (char, b"x", "\"x\""),
            (char, &[0], "\"\""),
            (char, &[0xe9], r#""\\351""#),
            (json, br#"{"a": [1, 2.50]}"#, r#"{"a": [1, 2.50]}"#),
            (jsonb, b"\x01{\"a\":1}", r#"{"a":1}"#),
            (jsonpath, b"\x01$.\"a\"", r#""$.\"a\"""#),
            (
                uuid,
                &[
                    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd,
                    0x38, 0x0a, 0x11,
                ],
                "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
            ),
            (tid, &[0, 0, 0, 3, 0, 7], "\"(3,7)\""),
            (
                pg_lsn,
                &[0, 0, 0, 0x16, 0xb3, 0x74, 0xd8, 0x48],
                "\"16/B374D848\"",
            ),
            (bits, &[0, 0, 0, 4, 0b0101_0000], "\"0101\""),
            (bits, &[0, 0, 0, 0], "\"\""),
            (
                snapshot,
                &[
                    0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0,
                    0, 15,
                ],
                "\"10:20:15\"",
            ),
        ];
        for (f, buf, want) in cases {
            assert_eq!(ok(*f, buf), *want, "{buf:?}");
        }
    }

    #[test]
    fn bytea_and_fallback() {
        let mut out = Vec::new();
        bytea(&mut out, &[0xde, 0xad]);
        fallback(&mut out, b"ok");
        fallback(&mut out, &[0xff]);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#""\\xdead""ok""\\xff""#
        );
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut out = Vec::new();
        assert!(int4(&mut out, &[0, 0, 1]).is_err());
        assert!(int8(&mut out, &[0; 9]).is_err());
        assert!(uuid(&mut out, &[0; 15]).is_err());
        assert!(bits(&mut out, &[0, 0, 0, 9, 0]).is_err());
        assert!(jsonb(&mut out, b"\x02{}").is_err());
        assert!(text(&mut out, &[0xc3]).is_err());
        assert!(snapshot(&mut out, &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
    }
}
