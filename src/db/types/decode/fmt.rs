//! Small allocation-free formatting helpers shared by the decoders.

use std::fmt::Write as _;

/// Appends the decimal form of `v`.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends the decimal form of `v`.
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends `v` zero-padded to at least `width` digits.
pub(crate) fn push_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let start = out.len();
    push_u64(out, v);
    let len = out.len() - start;
    if len < width {
        let pad = width - len;
        out.splice(start..start, std::iter::repeat_n(b'0', pad));
    }
}

/// Appends `bytes` as lowercase hexadecimal.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

/// Appends the upper-case hexadecimal form of `v` (no leading zeros).
pub(crate) fn push_hex_upper(out: &mut Vec<u8>, v: u32) {
    let mut s = StackStr::new();
    let _ = write!(s, "{v:X}");
    out.extend_from_slice(s.as_bytes());
}

/// Appends a finite float as a JSON number (non-finite values become the
/// strings `"NaN"`, `"Infinity"`, `"-Infinity"`). Shortest round-trip
/// digits; exponent notation only for very large or very small magnitudes.
pub(crate) fn push_json_f64(out: &mut Vec<u8>, v: f64) {
    if let Some(s) = non_finite(v) {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    let mut s = StackStr::new();
    let a = v.abs();
    let _ = if a != 0.0 && !(1e-6..1e21).contains(&a) {
        write!(s, "{v:e}")
    } else {
        write!(s, "{v}")
    };
    out.extend_from_slice(s.as_bytes());
}

/// Like [`push_json_f64`] for `float4`, using `f32`'s own shortest digits
/// (so `0.1::float4` prints `0.1`).
pub(crate) fn push_json_f32(out: &mut Vec<u8>, v: f32) {
    if let Some(s) = non_finite(f64::from(v)) {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    let mut s = StackStr::new();
    let a = v.abs();
    let _ = if a != 0.0 && !(1e-6..1e21).contains(&a) {
        write!(s, "{v:e}")
    } else {
        write!(s, "{v}")
    };
    out.extend_from_slice(s.as_bytes());
}

fn non_finite(v: f64) -> Option<&'static [u8]> {
    if v.is_nan() {
        Some(b"NaN")
    } else if v.is_infinite() {
        Some(if v > 0.0 { b"Infinity" } else { b"-Infinity" })
    } else {
        None
    }
}

/// Appends `v` the way PostgreSQL's `float8out` prints it (shortest exact
/// digits; `%g`-like layout: exponent form when the decimal exponent is
/// below -4 or at least 15, with a signed two-digit minimum exponent).
pub(crate) fn push_pg_f64(out: &mut Vec<u8>, v: f64) {
    if let Some(s) = non_finite(v) {
        out.extend_from_slice(s);
        return;
    }
    let mut s = StackStr::new();
    let _ = write!(s, "{v:e}");
    let text = s.as_bytes();
    let (neg, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let e_at = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let (mantissa, exp_text) = text.split_at(e_at);
    let exp: i32 = std::str::from_utf8(exp_text.get(1..).unwrap_or(b"0"))
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut digits = [0u8; 24];
    let mut n = 0;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    if neg {
        out.push(b'-');
    }
    lay_out_digits(out, &digits[..n], exp);
}

/// Places significant `digits` (first digit has decimal exponent `exp`).
fn lay_out_digits(out: &mut Vec<u8>, digits: &[u8], exp: i32) {
    if !(-4..15).contains(&exp) {
        out.extend_from_slice(&digits[..1.min(digits.len())]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        push_padded(out, u64::from(exp.unsigned_abs()), 2);
    } else if exp < 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
        out.extend_from_slice(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
        } else {
            out.extend_from_slice(&digits[..int_len]);
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        }
    }
}

/// A fixed-size stack buffer implementing `fmt::Write` (for number text).
pub(crate) struct StackStr {
    buf: [u8; 64],
    len: usize,
}

impl StackStr {
    pub(crate) fn new() -> Self {
        StackStr {
            buf: [0; 64],
            len: 0,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn integers() {
        for (v, s) in [
            (0i64, "0"),
            (-1, "-1"),
            (i64::MAX, "9223372036854775807"),
            (i64::MIN, "-9223372036854775808"),
        ] {
            assert_eq!(run(|o| push_i64(o, v)), s);
        }
        assert_eq!(run(|o| push_padded(o, 7, 4)), "0007");
        assert_eq!(run(|o| push_padded(o, 12345, 4)), "12345");
        assert_eq!(run(|o| push_hex_upper(o, 0xB374D848)), "B374D848");
    }

    #[test]
    fn json_floats() {
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (-0.0, "-0"),
            (2.0, "2"),
            (1e300, "1e300"),
            (1.5e-7, "1.5e-7"),
            (123456.789, "123456.789"),
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"Infinity\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
        ];
        for &(v, s) in cases {
            assert_eq!(run(|o| push_json_f64(o, v)), s);
        }
        assert_eq!(run(|o| push_json_f32(o, 0.1)), "0.1");
        assert_eq!(run(|o| push_json_f32(o, 3.4028235e38)), "3.4028235e38");
    }

    #[test]
    fn pg_floats() {
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (2.0, "2"),
            (-0.0, "-0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e300, "1e+300"),
            (-2.5e-100, "-2.5e-100"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(v, s) in cases {
            assert_eq!(run(|o| push_pg_f64(o, v)), s, "{v}");
        }
    }
}
