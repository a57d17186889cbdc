//! Geometric types. `point` becomes `{"x":..,"y":..}`; the others become
//! strings in PostgreSQL's own text form, with coordinates printed like
//! `float8out` does.

use super::fmt::{push_json_f64, push_pg_f64};
use super::reader::{Bad, Reader};

/// `point` → `{"x":1.5,"y":2}`.
pub(super) fn point(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let (x, y) = (r.f64()?, r.f64()?);
    r.finish()?;
    out.extend_from_slice(b"{\"x\":");
    push_json_f64(out, x);
    out.extend_from_slice(b",\"y\":");
    push_json_f64(out, y);
    out.push(b'}');
    Ok(())
}

/// `line` → `"{A,B,C}"`.
pub(super) fn line(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let coef = [r.f64()?, r.f64()?, r.f64()?];
    r.finish()?;
    out.extend_from_slice(b"\"{");
    for (i, c) in coef.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_pg_f64(out, c);
    }
    out.extend_from_slice(b"}\"");
    Ok(())
}

/// `lseg` → `"[(x1,y1),(x2,y2)]"`.
pub(super) fn lseg(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    points_exact(out, buf, 2, b"\"[", b"]\"")
}

/// `box` → `"(x1,y1),(x2,y2)"` (upper-right corner first).
pub(super) fn boxed(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    points_exact(out, buf, 2, b"\"", b"\"")
}

/// `path` → `"((..),(..))"` when closed, `"[(..),(..)]"` when open.
pub(super) fn path(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let closed = r.u8()? != 0;
    let n = r.count()?;
    let (open, close): (&[u8], &[u8]) = if closed {
        (b"\"(", b")\"")
    } else {
        (b"\"[", b"]\"")
    };
    points_exact(out, r.rest(), n, open, close)
}

/// `polygon` → `"((x1,y1),...)"`.
pub(super) fn polygon(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let n = r.count()?;
    points_exact(out, r.rest(), n, b"\"(", b")\"")
}

/// `circle` → `"<(x,y),r>"`.
pub(super) fn circle(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let (x, y, radius) = (r.f64()?, r.f64()?, r.f64()?);
    r.finish()?;
    out.extend_from_slice(b"\"<");
    push_point(out, x, y);
    out.push(b',');
    push_pg_f64(out, radius);
    out.extend_from_slice(b">\"");
    Ok(())
}

/// Writes exactly `n` points from `buf` between `open` and `close`.
fn points_exact(
    out: &mut Vec<u8>,
    buf: &[u8],
    n: usize,
    open: &[u8],
    close: &[u8],
) -> Result<(), Bad> {
    if buf.len() != n.saturating_mul(16) {
        return Err(Bad("point count does not match data"));
    }
    let mut r = Reader::new(buf);
    out.extend_from_slice(open);
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        push_point(out, r.f64()?, r.f64()?);
    }
    out.extend_from_slice(close);
    Ok(())
}

fn push_point(out: &mut Vec<u8>, x: f64, y: f64) {
    out.push(b'(');
    push_pg_f64(out, x);
    out.push(b',');
    push_pg_f64(out, y);
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(vals: &[f64]) -> Vec<u8> {
        vals.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    fn show(func: fn(&mut Vec<u8>, &[u8]) -> Result<(), Bad>, buf: &[u8]) -> String {
        let mut out = Vec::new();
        func(&mut out, buf).expect("decodes");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn table() {
        let path_closed = [&[1u8, 0, 0, 0, 2][..], &f(&[0.0, 0.0, 1.0, 1.0])].concat();
        let path_open = [&[0u8, 0, 0, 0, 1][..], &f(&[1.0, 2.0])].concat();
        let poly = [&[0u8, 0, 0, 3][..], &f(&[0.0, 0.0, 1.0, 0.0, 0.0, 1.0])].concat();
        type Decoder = fn(&mut Vec<u8>, &[u8]) -> Result<(), Bad>;
        let cases: Vec<(Decoder, Vec<u8>, &str)> = vec![
            (point, f(&[1.5, 2.0]), r#"{"x":1.5,"y":2}"#),
            (point, f(&[f64::NAN, -0.5]), r#"{"x":"NaN","y":-0.5}"#),
            (line, f(&[1.0, -1.0, 0.0]), r#""{1,-1,0}""#),
            (lseg, f(&[0.0, 0.0, 1.5, 2.0]), r#""[(0,0),(1.5,2)]""#),
            (boxed, f(&[2.0, 2.0, 0.0, 0.0]), r#""(2,2),(0,0)""#),
            (path, path_closed, r#""((0,0),(1,1))""#),
            (path, path_open, r#""[(1,2)]""#),
            (polygon, poly, r#""((0,0),(1,0),(0,1))""#),
            (circle, f(&[1.0, 2.0, 1e20]), r#""<(1,2),1e+20>""#),
        ];
        for (func, buf, want) in cases {
            assert_eq!(show(func, &buf), want);
        }
    }

    #[test]
    fn rejects_malformed() {
        let mut out = Vec::new();
        assert!(point(&mut out, &f(&[1.0])).is_err());
        assert!(path(&mut out, &[0, 0, 0, 0, 2, 0]).is_err());
        assert!(polygon(&mut out, &[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(polygon(&mut out, &[0x7f, 0xff, 0xff, 0xff]).is_err());
    }
}
