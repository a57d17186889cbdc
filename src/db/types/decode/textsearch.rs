//! `tsvector` and `tsquery`, as strings in PostgreSQL's text form.

use super::fmt::push_u64;
use super::reader::{Bad, Reader};
use super::write_escaped;

/// `tsvector` → `"'a':1A 'fat':2B,4C"`.
///
/// Binary layout: lexeme count, then per lexeme a NUL-terminated string,
/// a `u16` position count and the positions (weight in the top two bits).
pub(super) fn tsvector(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let count = r.count()?;
    out.push(b'"');
    for i in 0..count {
        if i > 0 {
            out.push(b' ');
        }
        push_quoted_lexeme(out, r.cstr()?);
        let npos = r.u16()?;
        for p in 0..npos {
            out.push(if p == 0 { b':' } else { b',' });
            let pos = r.u16()?;
            push_u64(out, u64::from(pos & 0x3fff));
            match pos >> 14 {
                3 => out.push(b'A'),
                2 => out.push(b'B'),
                1 => out.push(b'C'),
                _ => {}
            }
        }
    }
    r.finish()?;
    out.push(b'"');
    Ok(())
}

/// Appends `'lexeme'` (JSON-escaped) with `'` and `\` doubled as
/// PostgreSQL does.
fn push_quoted_lexeme(out: &mut Vec<u8>, lexeme: &str) {
    out.push(b'\'');
    for piece in lexeme.split_inclusive(['\'', '\\']) {
        write_escaped(out, piece);
        match piece.as_bytes().last() {
            Some(b'\'') => out.push(b'\''),
            Some(b'\\') => out.extend_from_slice(b"\\\\"),
            _ => {}
        }
    }
    out.push(b'\'');
}

const QI_VAL: u8 = 1;
const QI_OPR: u8 = 2;
const OP_NOT: u8 = 1;
const OP_AND: u8 = 2;
const OP_OR: u8 = 3;
const OP_PHRASE: u8 = 4;
/// Deeper queries are rejected rather than risking the stack.
const MAX_DEPTH: usize = 1000;

enum Item<'a> {
    Val {
        weight: u8,
        prefix: bool,
        text: &'a str,
    },
    Op {
        oper: u8,
        distance: i16,
    },
}

/// `tsquery` → `"'fat' & ( 'rat' | !'cat' )"`.
///
/// The binary form is the operator tree in prefix order (an operator is
/// followed by its right operand, then its left operand).
pub(super) fn tsquery(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let items = read_items(buf)?;
    let ends = subtree_ends(&items)?;
    out.push(b'"');
    if !items.is_empty() {
        Infix {
            items: &items,
            ends: &ends,
        }
        .write(out, 0, -1, false, 0)?;
    }
    out.push(b'"');
    Ok(())
}

fn read_items(buf: &[u8]) -> Result<Vec<Item<'_>>, Bad> {
    let mut r = Reader::new(buf);
    let count = r.count()?;
    let mut items = Vec::with_capacity(count.min(buf.len()));
    for _ in 0..count {
        let item = match r.u8()? {
            QI_VAL => {
                let (weight, prefix) = (r.u8()?, r.u8()? != 0);
                Item::Val {
                    weight,
                    prefix,
                    text: r.cstr()?,
                }
            }
            QI_OPR => {
                let oper = r.u8()?;
                let distance = if oper == OP_PHRASE { r.i16()? } else { 0 };
                if !(OP_NOT..=OP_PHRASE).contains(&oper) {
                    return Err(Bad("unknown tsquery operator"));
                }
                Item::Op { oper, distance }
            }
            _ => return Err(Bad("unknown tsquery item type")),
        };
        items.push(item);
    }
    r.finish()?;
    Ok(items)
}

/// For each item, the index one past the end of its subtree; also checks
/// that the items form exactly one well-formed tree.
fn subtree_ends(items: &[Item<'_>]) -> Result<Vec<usize>, Bad> {
    let bad = Bad("malformed tsquery tree");
    let mut ends = vec![0; items.len()];
    let mut stack = Vec::new();
    for (i, item) in items.iter().enumerate().rev() {
        let end = match item {
            Item::Val { .. } => i + 1,
            Item::Op { oper: OP_NOT, .. } => stack.pop().ok_or(bad)?,
            Item::Op { .. } => {
                stack.pop().ok_or(bad)?;
                stack.pop().ok_or(bad)?
            }
        };
        ends[i] = end;
        stack.push(end);
    }
    match stack.as_slice() {
        [] => Ok(ends),
        [end] if *end == items.len() => Ok(ends),
        _ => Err(bad),
    }
}

struct Infix<'i, 'a> {
    items: &'i [Item<'a>],
    ends: &'i [usize],
}

fn priority(oper: u8) -> i32 {
    match oper {
        OP_NOT => 4,
        OP_PHRASE => 3,
        OP_AND => 2,
        _ => 1,
    }
}

impl Infix<'_, '_> {
    /// Mirrors PostgreSQL's `infix()` in tsquery.c, parentheses included.
    fn write(
        &self,
        out: &mut Vec<u8>,
        i: usize,
        parent: i32,
        right_phrase: bool,
        depth: usize,
    ) -> Result<(), Bad> {
        if depth > MAX_DEPTH {
            return Err(Bad("tsquery nested too deeply"));
        }
        let (oper, distance) = match self.items.get(i) {
            Some(Item::Val {
                weight,
                prefix,
                text,
            }) => {
                push_operand(out, text, *weight, *prefix);
                return Ok(());
            }
            Some(Item::Op { oper, distance }) => (*oper, *distance),
            None => return Err(Bad("malformed tsquery tree")),
        };
        let prio = priority(oper);
        let parens = prio < parent || (oper == OP_PHRASE && right_phrase);
        if parens {
            out.extend_from_slice(b"( ");
        }
        if oper == OP_NOT {
            out.push(b'!');
            self.write(out, i + 1, prio, false, depth + 1)?;
        } else {
            let right = i + 1;
            let left = *self.ends.get(right).ok_or(Bad("malformed tsquery tree"))?;
            self.write(out, left, prio, false, depth + 1)?;
            match oper {
                OP_AND => out.extend_from_slice(b" & "),
                OP_OR => out.extend_from_slice(b" | "),
                _ if distance == 1 => out.extend_from_slice(b" <-> "),
                _ => {
                    out.extend_from_slice(b" <");
                    push_u64(out, distance.unsigned_abs().into());
                    out.extend_from_slice(b"> ");
                }
            }
            self.write(out, right, prio, oper == OP_PHRASE, depth + 1)?;
        }
        if parens {
            out.extend_from_slice(b" )");
        }
        Ok(())
    }
}

fn push_operand(out: &mut Vec<u8>, text: &str, weight: u8, prefix: bool) {
    push_quoted_lexeme(out, text);
    if weight == 0 && !prefix {
        return;
    }
    out.push(b':');
    if prefix {
        out.push(b'*');
    }
    for (bit, letter) in [(8, b'A'), (4, b'B'), (2, b'C'), (1, b'D')] {
        if weight & bit != 0 {
            out.push(letter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(f: fn(&mut Vec<u8>, &[u8]) -> Result<(), Bad>, buf: &[u8]) -> Result<String, Bad> {
        let mut out = Vec::new();
        f(&mut out, buf)?;
        Ok(String::from_utf8(out).expect("utf8"))
    }

    #[test]
    fn tsvector_text_form() {
        let mut buf = vec![0, 0, 0, 2];
        buf.extend_from_slice(b"a\0\0\x01");
        buf.extend_from_slice(&(1u16 | 3 << 14).to_be_bytes());
        buf.extend_from_slice(b"it's\\\0\0\x02");
        buf.extend_from_slice(&(2u16 | 2 << 14).to_be_bytes());
        buf.extend_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            show(tsvector, &buf),
            Ok(r#""'a':1A 'it''s\\\\':2B,4""#.to_string())
        );
        assert_eq!(show(tsvector, &[0, 0, 0, 0]), Ok("\"\"".to_string()));
        assert!(show(tsvector, &[0, 0, 0, 1, b'a']).is_err());
    }

    fn val(buf: &mut Vec<u8>, text: &str, weight: u8, prefix: bool) {
        buf.extend_from_slice(&[QI_VAL, weight, u8::from(prefix)]);
        buf.extend_from_slice(text.as_bytes());
        buf.push(0);
    }

    #[test]
    fn tsquery_text_form() {
        // 'fat' & ( 'rat' | !'cat' ) in prefix order: & , | , ! , cat , rat , fat
        let mut buf = vec![0, 0, 0, 6, QI_OPR, OP_AND, QI_OPR, OP_OR, QI_OPR, OP_NOT];
        val(&mut buf, "cat", 0, false);
        val(&mut buf, "rat", 0, false);
        val(&mut buf, "fat", 8 | 4, true);
        assert_eq!(
            show(tsquery, &buf),
            Ok(r#""'fat':*AB & ( 'rat' | !'cat' )""#.to_string())
        );

        let mut phrase = vec![0, 0, 0, 3, QI_OPR, OP_PHRASE, 0, 2];
        val(&mut phrase, "b", 0, false);
        val(&mut phrase, "a", 0, false);
        assert_eq!(show(tsquery, &phrase), Ok(r#""'a' <2> 'b'""#.to_string()));
        assert_eq!(show(tsquery, &[0, 0, 0, 0]), Ok("\"\"".to_string()));
    }

    #[test]
    fn tsquery_rejects_malformed() {
        assert!(show(tsquery, &[0, 0, 0, 1, QI_OPR, OP_AND]).is_err());
        let mut two_roots = vec![0, 0, 0, 2];
        val(&mut two_roots, "a", 0, false);
        val(&mut two_roots, "b", 0, false);
        assert!(show(tsquery, &two_roots).is_err());
        assert!(show(tsquery, &[0, 0, 0, 1, 9]).is_err());
    }
}
