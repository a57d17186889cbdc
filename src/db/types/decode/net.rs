//! `inet`, `cidr`, `macaddr` and `macaddr8`, in PostgreSQL's text forms.

use super::fmt::{push_hex, push_u64};
use super::reader::{Bad, Reader};

const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

/// `inet` / `cidr` → string as PostgreSQL prints it: `inet` omits the
/// netmask when it covers the whole address, `cidr` always shows it.
///
/// Binary layout: family, bits, is_cidr flag, address length, address.
pub(super) fn inet(out: &mut Vec<u8>, buf: &[u8], is_cidr: bool) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let (family, bits, _flag, len) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
    let addr = r.take(len.into())?;
    r.finish()?;
    let max_bits = match (family, addr.len()) {
        (PGSQL_AF_INET, 4) => 32,
        (PGSQL_AF_INET6, 16) => 128,
        _ => return Err(Bad("invalid address family or length")),
    };
    if bits > max_bits {
        return Err(Bad("netmask longer than address"));
    }
    out.push(b'"');
    match <[u8; 16]>::try_from(addr) {
        Ok(v6) => push_ipv6(out, &v6),
        Err(_) => push_dotted(out, addr),
    }
    if is_cidr || bits != max_bits {
        out.push(b'/');
        push_u64(out, bits.into());
    }
    out.push(b'"');
    Ok(())
}

fn push_dotted(out: &mut Vec<u8>, octets: &[u8]) {
    for (i, &o) in octets.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        push_u64(out, o.into());
    }
}

/// IPv6 text as PostgreSQL's `inet_net_ntop` writes it: the longest run
/// (of at least two) zero words becomes `::` (the first one on ties), and
/// IPv4-compatible / IPv4-mapped addresses end in dotted-quad form.
fn push_ipv6(out: &mut Vec<u8>, addr: &[u8; 16]) {
    let words: [u16; 8] =
        std::array::from_fn(|i| u16::from_be_bytes([addr[2 * i], addr[2 * i + 1]]));
    let (base, len) = longest_zero_run(&words);
    let mut i = 0;
    while i < 8 {
        if len > 0 && i == base {
            out.push(b':');
            i += len;
            continue;
        }
        if i != 0 {
            out.push(b':');
        }
        let embeds_v4 = base == 0
            && (len == 6 || (len == 7 && words[7] != 1) || (len == 5 && words[5] == 0xffff));
        if i == 6 && embeds_v4 {
            push_dotted(out, &addr[12..]);
            return;
        }
        push_hex_word(out, words[i]);
        i += 1;
    }
    if len > 0 && base + len == 8 {
        out.push(b':');
    }
}

/// (start, length) of the longest run of zero words, length 0 if no run of
/// at least two.
fn longest_zero_run(words: &[u16; 8]) -> (usize, usize) {
    let (mut best, mut cur) = ((0, 0), (0, 0));
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            if cur.1 == 0 {
                cur.0 = i;
            }
            cur.1 += 1;
            if cur.1 > best.1 {
                best = cur;
            }
        } else {
            cur.1 = 0;
        }
    }
    if best.1 < 2 { (0, 0) } else { best }
}

fn push_hex_word(out: &mut Vec<u8>, w: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12, 8, 4, 0] {
        let nibble = usize::from((w >> shift) & 0xf);
        if nibble != 0 || started || shift == 0 {
            out.push(HEX[nibble]);
            started = true;
        }
    }
}

/// `macaddr` / `macaddr8` → `"08:00:2b:01:02:03"`.
pub(super) fn macaddr(out: &mut Vec<u8>, buf: &[u8], len: usize) -> Result<(), Bad> {
    if buf.len() != len {
        return Err(Bad("wrong length"));
    }
    out.push(b'"');
    for (i, b) in buf.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        push_hex(out, std::slice::from_ref(b));
    }
    out.push(b'"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(addr: &[u8], bits: u8, cidr: bool) -> String {
        let family = if addr.len() == 4 {
            PGSQL_AF_INET
        } else {
            PGSQL_AF_INET6
        };
        let buf = [&[family, bits, u8::from(cidr), addr.len() as u8][..], addr].concat();
        let mut out = Vec::new();
        inet(&mut out, &buf, cidr).expect("decodes");
        String::from_utf8(out).expect("utf8")
    }

    fn v6(words: [u16; 8]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn inet_table() {
        let cases: &[(Vec<u8>, u8, bool, &str)] = &[
            (vec![192, 168, 0, 1], 32, false, "192.168.0.1"),
            (vec![192, 168, 0, 1], 24, false, "192.168.0.1/24"),
            (vec![10, 0, 0, 0], 8, true, "10.0.0.0/8"),
            (vec![10, 0, 0, 1], 32, true, "10.0.0.1/32"),
            (v6([0, 0, 0, 0, 0, 0, 0, 1]), 128, false, "::1"),
            (v6([0; 8]), 0, true, "::/0"),
            (
                v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]),
                32,
                true,
                "2001:db8::/32",
            ),
            (
                v6([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1]),
                128,
                false,
                "2001:db8:0:1::1",
            ),
            (v6([1, 0, 0, 1, 0, 0, 0, 1]), 128, false, "1:0:0:1::1"),
            (v6([1, 0, 0, 1, 0, 0, 1, 1]), 128, false, "1::1:0:0:1:1"),
            (
                v6([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]),
                128,
                false,
                "::ffff:1.2.3.4",
            ),
            (
                v6([0, 0, 0, 0, 0, 0, 0x0102, 0x0304]),
                128,
                true,
                "::1.2.3.4/128",
            ),
            (
                v6([0xfe80, 0, 0, 0, 0xabcd, 0, 0, 0]),
                64,
                false,
                "fe80::abcd:0:0:0/64",
            ),
        ];
        for (addr, bits, cidr, want) in cases {
            assert_eq!(show(addr, *bits, *cidr), format!("\"{want}\""));
        }
    }

    #[test]
    fn rejects_malformed() {
        let mut out = Vec::new();
        assert!(inet(&mut out, &[2, 33, 0, 4, 1, 2, 3, 4], false).is_err());
        assert!(inet(&mut out, &[2, 32, 0, 4, 1, 2, 3], false).is_err());
        assert!(inet(&mut out, &[3, 32, 0, 4, 1, 2, 3, 4], false).is_err());
        assert!(macaddr(&mut out, &[1, 2, 3], 6).is_err());
    }

    #[test]
    fn macaddrs() {
        let mut out = Vec::new();
        macaddr(&mut out, &[8, 0, 0x2b, 1, 2, 3], 6).expect("decodes");
        assert_eq!(out, b"\"08:00:2b:01:02:03\"");
    }
}
