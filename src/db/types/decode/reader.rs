//! A bounds-checked cursor over a binary wire value.
//!
//! Every read returns [`Bad`] instead of panicking when the buffer is too
//! short, so malformed input can never crash the decoder.

/// Why a binary value could not be decoded (turned into a
/// [`DecodeError`](super::DecodeError) by the dispatcher, which adds the
/// type name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bad(pub &'static str);

impl Bad {
    pub(crate) const TRUNCATED: Bad = Bad("value is truncated");
    pub(crate) const TRAILING: Bad = Bad("unexpected trailing bytes");
    pub(crate) const UTF8: Bad = Bad("invalid UTF-8");
}

/// Cursor over the bytes of one value, reading big-endian integers.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        if n > self.buf.len() {
            return Err(Bad::TRUNCATED);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Bad> {
        let (head, rest) = self.buf.split_first_chunk::<N>().ok_or(Bad::TRUNCATED)?;
        self.buf = rest;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Bad> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, Bad> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Bad> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, Bad> {
        self.array().map(i32::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Bad> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, Bad> {
        self.array().map(i64::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Bad> {
        self.array().map(u64::from_be_bytes)
    }

    pub(crate) fn f64(&mut self) -> Result<f64, Bad> {
        self.array().map(f64::from_be_bytes)
    }

    /// Reads an `int4` length followed by that many bytes; length -1 is NULL.
    pub(crate) fn value(&mut self) -> Result<Option<&'a [u8]>, Bad> {
        match self.i32()? {
            -1 => Ok(None),
            len => {
                let len = usize::try_from(len).map_err(|_| Bad("negative length"))?;
                self.take(len).map(Some)
            }
        }
    }

    /// Reads an `int4` count that must not be negative.
    pub(crate) fn count(&mut self) -> Result<usize, Bad> {
        usize::try_from(self.i32()?).map_err(|_| Bad("negative count"))
    }

    /// Reads a NUL-terminated string.
    pub(crate) fn cstr(&mut self) -> Result<&'a str, Bad> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(Bad::TRUNCATED)?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| Bad::UTF8)?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// The bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Consumes the reader, returning what was not read yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.buf
    }

    /// Fails unless every byte has been read.
    pub(crate) fn finish(self) -> Result<(), Bad> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Bad::TRAILING)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_bounds() {
        let mut r = Reader::new(&[0, 1, 0, 0, 0, 2, 9]);
        assert_eq!(r.i16(), Ok(1));
        assert_eq!(r.i32(), Ok(2));
        assert_eq!(r.i16(), Err(Bad::TRUNCATED));
        assert_eq!(r.u8(), Ok(9));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn length_prefixed_values() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 7, 0, 0, 0, 5, 1]);
        assert_eq!(r.value(), Ok(None));
        assert_eq!(r.value(), Ok(Some(&[7u8][..])));
        assert_eq!(r.value(), Err(Bad::TRUNCATED));
        let mut neg = Reader::new(&[0xff, 0xff, 0xff, 0xfe]);
        assert!(neg.value().is_err());
    }

    #[test]
    fn cstr_requires_terminator() {
        let mut r = Reader::new(b"ab\0c");
        assert_eq!(r.cstr(), Ok("ab"));
        assert_eq!(r.cstr(), Err(Bad::TRUNCATED));
    }
}
