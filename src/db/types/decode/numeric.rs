//! `numeric` and `money`.

use super::fmt::{push_padded, push_u64};
use super::reader::{Bad, Reader};

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
const MAX_DSCALE: u16 = 0x3FFF;

/// `numeric` → JSON number with exactly the digits PostgreSQL prints.
///
/// Binary layout: `ndigits i16, weight i16, sign u16, dscale u16`, then
/// `ndigits` base-10000 digits; the first digit is worth
/// `10000^weight`.
pub(super) fn numeric(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let ndigits = usize::try_from(r.i16()?).map_err(|_| Bad("negative digit count"))?;
    let weight = i32::from(r.i16()?);
    let sign = r.u16()?;
    let dscale = r.u16()?;
    let digits = r.take(ndigits * 2)?;
    r.finish()?;
    let special: Option<&[u8]> = match sign {
        NUMERIC_POS | NUMERIC_NEG => None,
        NUMERIC_NAN => Some(b"\"NaN\""),
        NUMERIC_PINF => Some(b"\"Infinity\""),
        NUMERIC_NINF => Some(b"\"-Infinity\""),
        _ => return Err(Bad("invalid sign")),
    };
    if let Some(s) = special {
        out.extend_from_slice(s);
        return Ok(());
    }
    if dscale > MAX_DSCALE {
        return Err(Bad("invalid scale"));
    }
    let digit = |i: i32| -> Result<u16, Bad> {
        let Ok(i) = usize::try_from(i) else {
            return Ok(0);
        };
        match digits.get(i * 2..i * 2 + 2) {
            Some(&[hi, lo]) => match u16::from_be_bytes([hi, lo]) {
                d @ 0..=9999 => Ok(d),
                _ => Err(Bad("digit out of range")),
            },
            _ => Ok(0),
        }
    };
    if sign == NUMERIC_NEG {
        out.push(b'-');
    }
    if weight < 0 {
        out.push(b'0');
    }
    for d in 0..=weight {
        let dig = digit(d)?;
        if d == 0 {
            push_u64(out, dig.into());
        } else {
            push_padded(out, dig.into(), 4);
        }
    }
    if dscale > 0 {
        out.push(b'.');
        let end = out.len() + usize::from(dscale);
        // Fraction groups follow the integer ones; groups before the first
        // stored digit (negative index) or after the last are zero.
        let mut d = weight + 1;
        while out.len() < end {
            push_padded(out, digit(d)?.into(), 4);
            d += 1;
        }
        out.truncate(end);
    }
    Ok(())
}

/// `money` → JSON number with two decimals (the `int8` count of cents).
pub(super) fn money(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let cents = i64::from_be_bytes(buf.try_into().map_err(|_| Bad("wrong length"))?);
    if cents < 0 {
        out.push(b'-');
    }
    let abs = cents.unsigned_abs();
    push_u64(out, abs / 100);
    out.push(b'.');
    push_padded(out, abs % 100, 2);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(ndigits_weight_sign_dscale: [i32; 4], digits: &[u16]) -> Vec<u8> {
        let [n, w, s, d] = ndigits_weight_sign_dscale;
        let mut b = Vec::new();
        b.extend_from_slice(&(n as i16).to_be_bytes());
        b.extend_from_slice(&(w as i16).to_be_bytes());
        b.extend_from_slice(&(s as u16).to_be_bytes());
        b.extend_from_slice(&(d as u16).to_be_bytes());
        for dig in digits {
            b.extend_from_slice(&dig.to_be_bytes());
        }
        b
    }

    fn show(buf: &[u8]) -> String {
        let mut out = Vec::new();
        numeric(&mut out, buf).expect("decodes");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn numeric_table() {
        let cases: &[([i32; 4], &[u16], &str)] = &[
            ([0, 0, 0, 0], &[], "0"),
            ([0, 0, 0, 2], &[], "0.00"),
            ([2, 0, 0, 2], &[1, 5000], "1.50"),
            ([1, -2, 0, 6], &[100], "0.000001"),
            ([1, -1, 0x4000, 4], &[1234], "-0.1234"),
            ([3, 1, 0, 0], &[12, 3456, 7800], "123456"),
            ([2, 2, 0, 0], &[1, 2], "100020000"),
            ([1, 0, 0xC000, 0], &[], "\"NaN\""),
            ([0, 0, 0xD000, 0], &[], "\"Infinity\""),
            ([0, 0, 0xF000, 0], &[], "\"-Infinity\""),
            (
                [10, 7, 0, 9],
                &[12, 3456, 7890, 1234, 5678, 9012, 3456, 7890, 1234, 5678],
                "123456789012345678901234567890.123456780",
            ),
        ];
        for (head, digits, want) in cases {
            let mut buf = num(*head, digits);
            if head[2] >= 0xC000 {
                buf.truncate(8);
                buf[0..2].copy_from_slice(&0i16.to_be_bytes());
            }
            assert_eq!(show(&buf), *want, "{head:?}");
        }
    }

    #[test]
    fn numeric_rejects_malformed() {
        let mut out = Vec::new();
        assert!(numeric(&mut out, &num([2, 0, 0, 0], &[1])).is_err());
        assert!(numeric(&mut out, &num([1, 0, 0, 0], &[10000])).is_err());
        assert!(numeric(&mut out, &num([0, 0, 0x1234, 0], &[])).is_err());
        assert!(numeric(&mut out, &[0, 0, 0]).is_err());
    }

    #[test]
    fn money_table() {
        for (cents, want) in [
            (-1234i64, "-12.34"),
            (5, "0.05"),
            (100, "1.00"),
            (i64::MIN, "-92233720368547758.08"),
        ] {
            let mut out = Vec::new();
            money(&mut out, &cents.to_be_bytes()).expect("decodes");
            assert_eq!(String::from_utf8(out).expect("utf8"), want);
        }
    }
}
