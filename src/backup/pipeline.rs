//! The stream every stored file goes through: plaintext → SHA-256 → zstd/gzip → AES-256-GCM
//! STREAM → SHA-256 → file ([`Sealer`]), and back ([`Opener`]). Each stage holds at most a
//! segment or a compression window, so memory stays bounded whatever the size of the backup.
//!
//! The encrypted format is `segments.rs`. Unencrypted files are plain zstd/gzip streams,
//! readable with the usual tools.
//!
//! These types are synchronous: callers run them on blocking threads and feed them from async
//! code through small bounded channels.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::key::{DataKey, encode_hex};
use super::segments::{DecryptReader, EncryptWriter, SegmentFault};
use super::manifest::FileEntry;
use super::{Compression, Error};

/// How stored files are written: the compressor and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    pub compression: Compression,
    /// Within `compression.levels()` (checked with the config).
    pub level: i32,
}

impl From<Compression> for Packing {
    /// The compressor at its default level.
    fn from(compression: Compression) -> Packing {
        Packing { compression, level: compression.default_level() }
    }
}
/// Buffer of the copy loops and of the file writer.
pub(crate) const CHUNK: usize = 256 * 1024;

/// What a sealed file turned out to be; becomes a [`FileEntry`].
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub sha256_raw: String,
    pub sha256_stored: String,
}

impl Sealed {
    pub(crate) fn entry(self, name: &str, stored: &str) -> FileEntry {
        FileEntry {
            name: name.to_owned(),
            stored: stored.to_owned(),
            raw_bytes: self.raw_bytes,
            stored_bytes: self.stored_bytes,
            sha256_raw: self.sha256_raw,
            sha256_stored: self.sha256_stored,
        }
    }
}

/// Associated data of every segment of a file: the backup id and the file's name.
pub(crate) fn associated_data(backup_id: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(backup_id.len() + name.len() + 1);
    aad.extend_from_slice(backup_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Writes one stored file. Call [`Sealer::write`] with the plaintext, then [`Sealer::finish`];
/// dropping it unfinished leaves a partial file that the caller's directory guard removes.
pub(crate) struct Sealer {
    inner: Hashing<Packer>,
    path: PathBuf,
}

impl Sealer {
    pub(crate) fn create(
        path: &Path,
        packing: Packing,
        key: Option<(&DataKey, Vec<u8>)>,
    ) -> Result<Sealer, Error> {
        // Owner-only: an unencrypted backup is the whole database in clear.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(Error::io("create", path))?;
        let disk = Hashing::new(BufWriter::with_capacity(CHUNK, file));
        let cipher = match key {
            None => Cipher::Plain(disk),
            Some((key, aad)) => {
                Cipher::Sealed(Box::new(EncryptWriter::new(disk, key, aad).map_err(Error::io("write", path))?))
            }
        };
        let packer = match packing.compression {
            Compression::None => Packer::Plain(cipher),
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(cipher, packing.level)
                    .map_err(Error::io("start compressing", path))?;
                encoder
                    .include_checksum(true)
                    .map_err(Error::io("start compressing", path))?;
                Packer::Zstd(encoder)
            }
            Compression::Gzip => Packer::Gzip(flate2::write::GzEncoder::new(
                cipher,
                flate2::Compression::new(packing.level.clamp(1, 9).unsigned_abs()),
            )),
        };
        Ok(Sealer {
            inner: Hashing::new(packer),
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner
            .write_all(bytes)
            .map_err(Error::io("write", &self.path))
    }

    /// Flushes every stage, fsyncs the file and returns its sizes and checksums.
    pub(crate) fn finish(self) -> Result<Sealed, Error> {
        let path = self.path;
        let fail = |err| Error::io("write", &path)(err);
        let (packer, raw_bytes, sha_raw) = self.inner.into_parts();
        let cipher = match packer {
            Packer::Plain(cipher) => cipher,
            Packer::Zstd(encoder) => encoder.finish().map_err(fail)?,
            Packer::Gzip(encoder) => encoder.finish().map_err(fail)?,
        };
        let disk = match cipher {
            Cipher::Plain(disk) => disk,
            Cipher::Sealed(encrypt) => (*encrypt).finish().map_err(fail)?,
        };
        let (writer, stored_bytes, sha_stored) = disk.into_parts();
        let file = writer.into_inner().map_err(|err| fail(err.into_error()))?;
        file.sync_all().map_err(fail)?;
        Ok(Sealed {
            raw_bytes,
            stored_bytes,
            sha256_raw: sha_raw.unwrap_or_default(),
            sha256_stored: sha_stored.unwrap_or_default(),
        })
    }
}

/// Seals everything `source` yields into `path`.
pub(crate) fn seal_file(
    source: &Path,
    path: &Path,
    packing: Packing,
    key: Option<(&DataKey, Vec<u8>)>,
    mut progress: impl FnMut(u64),
) -> Result<Sealed, Error> {
    let mut input = File::open(source).map_err(Error::io("read", source))?;
    let mut sealer = Sealer::create(path, packing, key)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io("read", source)(err)),
        };
        sealer.write(&buf[..n])?;
        progress(n as u64);
    }
    sealer.finish()
}

/// Reads one stored file back to its plaintext, checking as it goes (AEAD per segment,
/// decompression) and at the end (sizes and both SHA-256 against the manifest).
pub(crate) struct Opener {
    inner: Hashing<Unpacker>,
    entry: FileEntry,
    path: PathBuf,
}

/// Why reading a stored file stopped.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// The backup (or our key, or the disk) is at fault.
    Backup(Error),
    /// Whoever consumed the plaintext stopped taking it (a `pg_restore` that exited).
    Sink(io::Error),
}

impl From<Error> for OpenFailure {
    fn from(err: Error) -> OpenFailure {
        OpenFailure::Backup(err)
    }
}

impl Opener {
    /// Opens a stored file for reading, checking both SHA-256 sums at the end.
    pub(crate) fn open(
        dir: &Path,
        entry: &FileEntry,
        compression: Compression,
        key: Option<(&DataKey, Vec<u8>)>,
    ) -> Result<Opener, Error> {
        Opener::open_checked(dir, entry, compression, key, true)
    }

    /// [`Opener::open`] for a restore: the stored bytes' SHA-256 is checked, the plaintext's
    /// is not recomputed. Nothing is lost: the stored bytes equal to the ones written decode
    /// to the same plaintext, and the decoding itself is checked on the way (AES-GCM tags,
    /// zstd's frame checksum, gzip's CRC). Hashing hundreds of megabytes of plaintext was
    /// the largest single cost of a restore; verification still recomputes it.
    pub(crate) fn open_for_restore(
        dir: &Path,
        entry: &FileEntry,
        compression: Compression,
        key: Option<(&DataKey, Vec<u8>)>,
    ) -> Result<Opener, Error> {
        Opener::open_checked(dir, entry, compression, key, false)
    }

    fn open_checked(
        dir: &Path,
        entry: &FileEntry,
        compression: Compression,
        key: Option<(&DataKey, Vec<u8>)>,
        hash_plaintext: bool,
    ) -> Result<Opener, Error> {
        let path = super::manifest::Manifest::stored_path(dir, entry)?;
        let file = File::open(&path).map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => failed(entry, "the file is missing".to_owned()),
            _ => Error::io("open", &path)(err),
        })?;
        let size = file.metadata().map_err(Error::io("read", &path))?.len();
        if size != entry.stored_bytes {
            let reason = if size < entry.stored_bytes {
                format!("truncated: {size} of {} bytes", entry.stored_bytes)
            } else {
                format!("{size} bytes where the manifest says {}", entry.stored_bytes)
            };
            return Err(failed(entry, reason));
        }
        let disk = Hashing::new(DiskReader(BufReader::with_capacity(CHUNK, file)));
        let cipher = match key {
            None => CipherReader::Plain(disk),
            Some((key, aad)) => CipherReader::Sealed(Box::new(DecryptReader::new(disk, key, aad))),
        };
        let unpacker = match compression {
            Compression::None => Unpacker::Plain(cipher),
            Compression::Zstd => Unpacker::Zstd(
                zstd::stream::read::Decoder::new(cipher)
                    .map_err(Error::io("start decompressing", &path))?,
            ),
            Compression::Gzip => Unpacker::Gzip(flate2::read::GzDecoder::new(cipher)),
        };
        Ok(Opener {
            inner: if hash_plaintext { Hashing::new(unpacker) } else { Hashing::counting(unpacker) },
            entry: entry.clone(),
            path,
        })
    }

    /// Next plaintext bytes; 0 at the end.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => return Ok(n),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.classify(err)),
            }
        }
    }

    /// After the last byte: drains what the decompressor left (so the stored checksum covers
    /// the whole file) and compares sizes and checksums with the manifest.
    pub(crate) fn finish(self) -> Result<(), Error> {
        let (unpacker, raw_bytes, sha_raw) = self.inner.into_parts();
        let mut cipher = match unpacker {
            Unpacker::Plain(cipher) => cipher,
            Unpacker::Zstd(decoder) => decoder.finish().into_inner(),
            Unpacker::Gzip(decoder) => decoder.into_inner(),
        };
        let entry = &self.entry;
        let leftover = io::copy(&mut cipher, &mut io::sink())
            .map_err(|err| classify(entry, &self.path, err))?;
        if leftover > 0 {
            return Err(failed(entry, format!("{leftover} bytes after the end of the compressed stream")));
        }
        let disk = match cipher {
            CipherReader::Plain(disk) => disk,
            CipherReader::Sealed(decrypt) => decrypt.into_inner(),
        };
        let (_, stored_bytes, sha_stored) = disk.into_parts();
        if stored_bytes != entry.stored_bytes || sha_stored.as_ref() != Some(&entry.sha256_stored) {
            return Err(failed(entry, "SHA-256 of the stored bytes differs from the manifest".to_owned()));
        }
        if raw_bytes != entry.raw_bytes || sha_raw.is_some_and(|sha| sha != entry.sha256_raw) {
            return Err(failed(entry, "SHA-256 of the decoded bytes differs from the manifest".to_owned()));
        }
        Ok(())
    }

    /// Reads the whole file into `sink`, then [`Opener::finish`]es it. `progress` gets the
    /// plaintext byte counts.
    pub(crate) fn copy_to(
        mut self,
        sink: &mut dyn Write,
        mut progress: impl FnMut(u64),
    ) -> Result<(), OpenFailure> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sink.write_all(&buf[..n]).map_err(OpenFailure::Sink)?;
            progress(n as u64);
        }
        sink.flush().map_err(OpenFailure::Sink)?;
        self.finish()?;
        Ok(())
    }

    fn classify(&self, err: io::Error) -> Error {
        classify(&self.entry, &self.path, err)
    }
}

fn failed(entry: &FileEntry, reason: String) -> Error {
    Error::VerificationFailed {
        file: entry.stored.clone(),
        reason,
    }
}

/// Turns an error out of the read chain into what it means for the backup.
fn classify(entry: &FileEntry, path: &Path, err: io::Error) -> Error {
    let inner = err.get_ref();
    if let Some(DiskFault(kind)) = inner.and_then(|e| e.downcast_ref::<DiskFault>()) {
        return Error::io("read", path)(io::Error::new(*kind, err.to_string()));
    }
    match inner.and_then(|e| e.downcast_ref::<SegmentFault>()) {
        Some(SegmentFault::Decrypt) => Error::Decrypt { file: entry.stored.clone() },
        Some(fault @ SegmentFault::Header) => failed(entry, fault.to_string()),
        None => failed(entry, format!("it does not decode: {err}")),
    }
}

/// A failure of the disk below the read chain, marked so it is not taken for corruption.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DiskFault(io::ErrorKind);

/// Counts and hashes the bytes passing through, in either direction.
struct Hashing<T> {
    inner: T,
    /// `None`: count only.
    hasher: Option<Sha256>,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Hashing<T> {
        Hashing {
            inner,
            hasher: Some(Sha256::new()),
            bytes: 0,
        }
    }

    fn counting(inner: T) -> Hashing<T> {
        Hashing { inner, hasher: None, bytes: 0 }
    }

    /// The inner stage, the byte count and the hex SHA-256 (`None` when only counting).
    fn into_parts(self) -> (T, u64, Option<String>) {
        (self.inner, self.bytes, self.hasher.map(|h| encode_hex(&h.finalize())))
    }

    fn update(&mut self, bytes: &[u8]) {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(bytes);
        }
        self.bytes += bytes.len() as u64;
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.update(&buf[..n]);
        Ok(n)
    }
}

/// The file, with its own errors marked so they are not mistaken for corruption.
struct DiskReader(BufReader<File>);

impl Read for DiskReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|err| match err.kind() {
                io::ErrorKind::Interrupted => err,
                kind => io::Error::new(kind, DiskFault(kind)),
            })
    }
}

enum Packer {
    Plain(Cipher),
    Zstd(zstd::stream::write::Encoder<'static, Cipher>),
    Gzip(flate2::write::GzEncoder<Cipher>),
}

impl Write for Packer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Packer::Plain(w) => w.write(buf),
            Packer::Zstd(w) => w.write(buf),
            Packer::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Packer::Plain(w) => w.flush(),
            Packer::Zstd(w) => w.flush(),
            Packer::Gzip(w) => w.flush(),
        }
    }
}

type Disk = Hashing<BufWriter<File>>;

enum Cipher {
    Plain(Disk),
    Sealed(Box<EncryptWriter<Disk>>),
}

impl Write for Cipher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Cipher::Plain(w) => w.write(buf),
            Cipher::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Cipher::Plain(w) => w.flush(),
            Cipher::Sealed(w) => w.flush(),
        }
    }
}

enum Unpacker {
    Plain(CipherReader),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<CipherReader>>),
    Gzip(flate2::read::GzDecoder<CipherReader>),
}

impl Read for Unpacker {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Unpacker::Plain(r) => r.read(buf),
            Unpacker::Zstd(r) => r.read(buf),
            Unpacker::Gzip(r) => r.read(buf),
        }
    }
}

enum CipherReader {
    Plain(Hashing<DiskReader>),
    Sealed(Box<DecryptReader<Hashing<DiskReader>>>),
}

impl Read for CipherReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            CipherReader::Plain(r) => r.read(buf),
            CipherReader::Sealed(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::Key;
    use crate::backup::segments::{MAGIC, NONCE_PREFIX, SEGMENT, TAG};

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dbagent-pipeline-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 7 + i / 1000) % 251) as u8).collect()
    }

    fn seal_bytes(dir: &Path, bytes: &[u8], compression: Compression, key: Option<&DataKey>) -> FileEntry {
        let path = dir.join("f");
        let _ = std::fs::remove_file(&path);
        let mut sealer = Sealer::create(&path, compression.into(), key.map(|k| (k, associated_data("id", "f")))).unwrap();
        for chunk in bytes.chunks(10_000) {
            sealer.write(chunk).unwrap();
        }
        sealer.finish().unwrap().entry("f", "f")
    }

    #[test]
    fn the_configured_level_is_the_one_used() {
        let dir = temp_dir();
        // Text-like bytes: what a dump is, and what levels differ on.
        let bytes: Vec<u8> = (0..400_000u32).flat_map(|i| format!("{}\t{}\tname {}\n", i, i % 97, i * 31 % 1000).into_bytes()).collect();
        let mut sizes = Vec::new();
        for (compression, level) in [(Compression::Zstd, 1), (Compression::Zstd, 19), (Compression::Gzip, 1), (Compression::Gzip, 9)] {
            let path = dir.join(format!("{compression:?}-{level}"));
            let mut sealer = Sealer::create(&path, Packing { compression, level }, None).unwrap();
            sealer.write(&bytes).unwrap();
            let entry = sealer.finish().unwrap().entry("f", &path.file_name().unwrap().to_string_lossy());
            let back = open_bytes(&dir, &entry, compression, None).unwrap();
            assert!(back == bytes);
            sizes.push(entry.stored_bytes);
        }
        assert!(sizes[1] < sizes[0] && sizes[3] < sizes[2], "{sizes:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn open_bytes(dir: &Path, entry: &FileEntry, compression: Compression, key: Option<&DataKey>) -> Result<Vec<u8>, Error> {
        let opener = Opener::open(dir, entry, compression, key.map(|k| (k, associated_data("id", "f"))))?;
        let mut out = Vec::new();
        match opener.copy_to(&mut out, |_| {}) {
            Ok(()) => Ok(out),
            Err(OpenFailure::Backup(err)) => Err(err),
            Err(OpenFailure::Sink(err)) => panic!("sink: {err}"),
        }
    }

    #[test]
    fn every_combination_round_trips_at_segment_edges() {
        let dir = temp_dir();
        let (key, _) = Key::Raw([9; 32]).for_new_backup().unwrap();
        let sizes = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT, 300_001];
        for compression in [Compression::None, Compression::Zstd, Compression::Gzip] {
            for key in [None, Some(&key)] {
                for size in sizes {
                    let bytes = data(size);
                    let entry = seal_bytes(&dir, &bytes, compression, key);
                    assert_eq!(entry.raw_bytes, size as u64);
                    let back = open_bytes(&dir, &entry, compression, key).unwrap();
                    assert!(back == bytes, "{compression:?} {} {size}", key.is_some());
                }
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_caught() {
        let dir = temp_dir();
        let (key, _) = Key::Raw([3; 32]).for_new_backup().unwrap();
        for compression in [Compression::None, Compression::Zstd, Compression::Gzip] {
            for key in [None, Some(&key)] {
                let bytes = data(3 * SEGMENT + 5);
                let entry = seal_bytes(&dir, &bytes, compression, key);
                let path = dir.join("f");
                let original = std::fs::read(&path).unwrap();
                for at in [0, original.len() / 2, original.len() - 1] {
                    let mut tampered = original.clone();
                    tampered[at] ^= 0x01;
                    std::fs::write(&path, &tampered).unwrap();
                    let err = open_bytes(&dir, &entry, compression, key).unwrap_err();
                    assert!(err.is_backup_damaged(), "{compression:?} at {at}: {err}");
                }
                std::fs::write(&path, &original[..original.len() - 1]).unwrap();
                let err = open_bytes(&dir, &entry, compression, key).unwrap_err();
                assert!(err.to_string().contains("truncated"), "{err}");
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_segment_boundary_truncation_is_caught_by_the_last_flag() {
        let dir = temp_dir();
        let (key, _) = Key::Raw([4; 32]).for_new_backup().unwrap();
        let bytes = data(2 * SEGMENT + 10);
        let mut entry = seal_bytes(&dir, &bytes, Compression::None, Some(&key));
        let path = dir.join("f");
        let cut = MAGIC.len() + NONCE_PREFIX + SEGMENT + TAG;
        let original = std::fs::read(&path).unwrap();
        std::fs::write(&path, &original[..cut]).unwrap();
        // Pretend the manifest agreed, to reach the decryptor.
        entry.stored_bytes = cut as u64;
        let err = open_bytes(&dir, &entry, Compression::None, Some(&key)).unwrap_err();
        assert!(matches!(err, Error::Decrypt { .. }), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
