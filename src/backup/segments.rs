//! The encrypted file format: AES-256-GCM in the STREAM construction (BE32 flavour, from
//! `aead-stream`).
//!
//! Layout: `DBAGENT1` (8 bytes), a random 7-byte nonce prefix, then 64 KiB plaintext segments,
//! each sealed under nonce = prefix ‖ 32-bit counter ‖ last-flag and followed by its 16-byte
//! tag. The last segment (possibly empty) carries the last-flag, so a file cut at a segment
//! boundary fails too; a reordered, dropped or altered segment fails its tag. Every segment's
//! associated data binds the file to its backup id and name, so files cannot be swapped
//! between backups unnoticed. A data key is per backup (see `key.rs`), so random 56-bit nonce
//! prefixes only need to differ among one backup's files.

use std::io::{self, Read, Write};

use aead_stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::Aes256Gcm;

use super::key::{DataKey, fill_random};

/// Plaintext bytes per segment.
pub(crate) const SEGMENT: usize = 64 * 1024;
pub(crate) const TAG: usize = 16;
pub(crate) const MAGIC: &[u8; 8] = b"DBAGENT1";
pub(crate) const NONCE_PREFIX: usize = 7;

/// Why a sealed file could not be opened, carried inside an `io::Error` through the
/// decompressor above.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SegmentFault {
    #[error("a segment failed authentication")]
    Decrypt,
    #[error("the file does not start like a dbagent encrypted file")]
    Header,
}

fn fault(fault: SegmentFault) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, fault)
}

/// Buffers one segment and seals it when the next byte arrives (so the last segment, sealed
/// by [`EncryptWriter::finish`], may be full or empty).
pub(crate) struct EncryptWriter<W> {
    inner: W,
    encryptor: EncryptorBE32<Aes256Gcm>,
    aad: Vec<u8>,
    segment: Vec<u8>,
}

impl<W: Write> EncryptWriter<W> {
    /// Writes the header to `inner`; every segment's associated data is `aad`.
    pub(crate) fn new(mut inner: W, key: &DataKey, aad: Vec<u8>) -> io::Result<EncryptWriter<W>> {
        let mut prefix = [0u8; NONCE_PREFIX];
        fill_random(&mut prefix).map_err(io::Error::other)?;
        inner.write_all(MAGIC)?;
        inner.write_all(&prefix)?;
        let encryptor = EncryptorBE32::from_aead(key.cipher(), &prefix.into());
        Ok(EncryptWriter {
            inner,
            encryptor,
            aad,
            segment: Vec::with_capacity(SEGMENT + TAG),
        })
    }

    /// Seals the last segment and returns the writer below.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.encryptor
            .encrypt_last_in_place(&self.aad, &mut self.segment)
            .map_err(|_| io::Error::other("AES-GCM refused the last segment"))?;
        self.inner.write_all(&self.segment)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.segment.len() == SEGMENT {
            self.encryptor
                .encrypt_next_in_place(&self.aad, &mut self.segment)
                .map_err(|_| io::Error::other("AES-GCM refused a segment (file too large for STREAM)"))?;
            self.inner.write_all(&self.segment)?;
            self.segment.clear();
        }
        let take = buf.len().min(SEGMENT - self.segment.len());
        self.segment.extend_from_slice(&buf[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        // A partial segment cannot be written before it is complete; what is sealed is.
        self.inner.flush()
    }
}

/// Reads sealed segments, one ahead, so the last one is known to be last.
pub(crate) struct DecryptReader<R> {
    inner: R,
    key: Aes256Gcm,
    decryptor: Option<DecryptorBE32<Aes256Gcm>>,
    aad: Vec<u8>,
    /// The decrypted segment being handed out, and how much of it was.
    segment: Vec<u8>,
    pos: usize,
    /// A byte read to learn that the previous segment was not the last.
    carry: Option<u8>,
    started: bool,
    done: bool,
}

impl<R: Read> DecryptReader<R> {
    pub(crate) fn new(inner: R, key: &DataKey, aad: Vec<u8>) -> DecryptReader<R> {
        DecryptReader {
            inner,
            key: key.cipher(),
            decryptor: None,
            aad,
            segment: Vec::with_capacity(SEGMENT + TAG),
            pos: 0,
            carry: None,
            started: false,
            done: false,
        }
    }

    /// The reader below (after the last segment, or wherever reading stopped).
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    fn start(&mut self) -> io::Result<()> {
        let mut header = [0u8; MAGIC.len() + NONCE_PREFIX];
        let n = read_full(&mut self.inner, &mut header)?;
        if n < header.len() || &header[..MAGIC.len()] != MAGIC {
            return Err(fault(SegmentFault::Header));
        }
        let prefix: [u8; NONCE_PREFIX] = header[MAGIC.len()..].try_into().expect("sized above");
        self.decryptor = Some(DecryptorBE32::from_aead(self.key.clone(), &prefix.into()));
        self.started = true;
        Ok(())
    }

    /// Reads and opens the next segment into `self.segment`.
    fn next_segment(&mut self) -> io::Result<()> {
        self.segment.clear();
        self.segment.resize(SEGMENT + TAG, 0);
        let mut filled = 0;
        if let Some(byte) = self.carry.take() {
            self.segment[0] = byte;
            filled = 1;
        }
        filled += read_full(&mut self.inner, &mut self.segment[filled..])?;
        self.segment.truncate(filled);
        let last = if filled < SEGMENT + TAG {
            true
        } else {
            let mut one = [0u8; 1];
            match read_full(&mut self.inner, &mut one)? {
                0 => true,
                _ => {
                    self.carry = Some(one[0]);
                    false
                }
            }
        };
        let opened = if last {
            self.done = true;
            let decryptor = self.decryptor.take().expect("not done, so present");
            decryptor.decrypt_last_in_place(&self.aad, &mut self.segment)
        } else {
            let decryptor = self.decryptor.as_mut().expect("not done, so present");
            decryptor.decrypt_next_in_place(&self.aad, &mut self.segment)
        };
        opened.map_err(|_| fault(SegmentFault::Decrypt))?;
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.start()?;
        }
        while self.pos == self.segment.len() {
            if self.done {
                return Ok(0);
            }
            self.next_segment()?;
        }
        let n = buf.len().min(self.segment.len() - self.pos);
        buf[..n].copy_from_slice(&self.segment[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}
