//! Encryption keys: the configured [`Key`] (32 raw bytes, or a passphrase) and the data key
//! each backup is encrypted with, derived from it with a per-backup random salt.
//!
//! - a raw key (already uniformly random) is turned into the backup's data key by
//!   SHA-256(domain ‖ key ‖ salt), so no two backups share a data key and per-file random
//!   nonces never meet across backups;
//! - a passphrase goes through Argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) with the
//!   salt.
//!
//! The manifest records the KDF, its parameters, the salt and a *key check* (an AES-GCM tag
//! over nothing, under the data key), so a wrong key is told apart from a corrupted file
//! before any data is read. Neither the key nor the data key is ever written or logged.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::Error;
use super::manifest::{EncryptionInfo, Kdf};

/// What the key check authenticates; never changes, or old backups stop opening.
const KEY_CHECK_AAD: &[u8] = b"dbagent backup key check v1";
/// Domain separation for the raw-key derivation.
const SUBKEY_DOMAIN: &[u8] = b"dbagent backup data key v1\0";
const SALT_LEN: usize = 16;
const ARGON2_M_COST_KIB: u32 = 19 * 1024;
const ARGON2_T_COST: u32 = 2;
const ARGON2_P_COST: u32 = 1;
/// A passphrase shorter than this is refused: Argon2id slows guessing, it cannot make
/// `hunter2` safe.
const MIN_PASSPHRASE_CHARS: usize = 12;

/// The configured encryption secret. Its `Debug` never shows it.
#[derive(Clone)]
pub enum Key {
    /// 32 random bytes.
    Raw([u8; 32]),
    /// A passphrase, stretched with Argon2id and each backup's salt.
    Passphrase(String),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Raw(_) => f.write_str("Key::Raw(<redacted>)"),
            Key::Passphrase(_) => f.write_str("Key::Passphrase(<redacted>)"),
        }
    }
}

impl Key {
    /// A 32-byte key written as 64 hex digits or as base64 (standard or URL-safe, padded or
    /// not). Surrounding whitespace (a trailing newline in a key file) is ignored.
    pub fn parse(text: &str) -> Result<Key, Error> {
        let text = text.trim();
        if let Some(bytes) = decode_hex(text) {
            return <[u8; 32]>::try_from(bytes.as_slice())
                .map(Key::Raw)
                .map_err(|_| Error::InvalidKey {
                    reason: "a hex key must be exactly 64 hex digits (32 bytes)",
                });
        }
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            if let Ok(bytes) = engine.decode(text) {
                return <[u8; 32]>::try_from(bytes.as_slice())
                    .map(Key::Raw)
                    .map_err(|_| Error::InvalidKey {
                        reason: "a base64 key must decode to exactly 32 bytes",
                    });
            }
        }
        Err(Error::InvalidKey {
            reason: "expected 32 bytes as 64 hex digits or base64; use Key::passphrase for a passphrase",
        })
    }

    /// The text of `backup.encryption_key` / `BACKUP_ENCRYPTION_KEY`: a 32-byte key (64 hex
    /// digits or base64, see [`Key::parse`]) is used as it is; any other text of at least 12
    /// characters, such as seed 004's "32-character encryption key", is taken as a passphrase
    /// and stretched with Argon2id and each backup's salt. Its bytes are never used as the AES
    /// key directly: 32 typed characters carry far less than 256 bits of entropy (often a
    /// guessable phrase), and Argon2id is what makes guessing them expensive. The second value
    /// is true when the text was taken as a passphrase.
    pub fn parse_or_passphrase(text: &str) -> Result<(Key, bool), Error> {
        match Key::parse(text) {
            Ok(key) => Ok((key, false)),
            Err(_) => Key::passphrase(text.trim()).map(|key| (key, true)).map_err(|_| Error::InvalidKey {
                reason: "expected 32 bytes as 64 hex digits or base64, or a passphrase of at least 12 characters",
            }),
        }
    }

    /// A passphrase (at least 12 characters), stretched with Argon2id per backup.
    pub fn passphrase(text: impl Into<String>) -> Result<Key, Error> {
        let text = text.into();
        if text.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(Error::InvalidKey {
                reason: "a passphrase must be at least 12 characters long",
            });
        }
        Ok(Key::Passphrase(text))
    }

    /// A fresh data key for a new backup, and what the manifest records about it.
    pub(crate) fn for_new_backup(&self) -> Result<(DataKey, EncryptionInfo), Error> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let kdf = match self {
            Key::Raw(_) => Kdf::Sha256Subkey,
            Key::Passphrase(_) => Kdf::Argon2id {
                m_cost_kib: ARGON2_M_COST_KIB,
                t_cost: ARGON2_T_COST,
                p_cost: ARGON2_P_COST,
            },
        };
        let data = self.derive(&kdf, &salt)?;
        let key_check = data.key_check()?;
        let info = EncryptionInfo {
            algorithm: "AES-256-GCM STREAM (BE32), 64 KiB segments".to_owned(),
            kdf,
            salt: encode_hex(&salt),
            key_check,
        };
        Ok((data, info))
    }

    /// The data key of an existing backup; fails with [`Error::WrongKey`] when the manifest's
    /// key check does not match.
    pub(crate) fn for_backup(&self, id: &str, info: &EncryptionInfo) -> Result<DataKey, Error> {
        let bad_manifest = || Error::VerificationFailed {
            file: "manifest.json".to_owned(),
            reason: "its encryption salt or key check is not valid hex".to_owned(),
        };
        let salt = decode_hex(&info.salt).ok_or_else(bad_manifest)?;
        let data = self.derive(&info.kdf, &salt)?;
        if !data.opens(&info.key_check).ok_or_else(bad_manifest)? {
            return Err(Error::WrongKey { id: id.to_owned() });
        }
        Ok(data)
    }

    fn derive(&self, kdf: &Kdf, salt: &[u8]) -> Result<DataKey, Error> {
        let mut out = [0u8; 32];
        match (self, kdf) {
            (Key::Raw(raw), Kdf::Sha256Subkey) => {
                let digest = Sha256::new()
                    .chain_update(SUBKEY_DOMAIN)
                    .chain_update(raw)
                    .chain_update(salt)
                    .finalize();
                out.copy_from_slice(&digest);
            }
            (
                Key::Passphrase(phrase),
                Kdf::Argon2id {
                    m_cost_kib,
                    t_cost,
                    p_cost,
                },
            ) => {
                let params = argon2::Params::new(*m_cost_kib, *t_cost, *p_cost, Some(32))
                    .map_err(|_| Error::InvalidKey {
                        reason: "the backup's Argon2id parameters are out of range",
                    })?;
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(phrase.as_bytes(), salt, &mut out)
                    .map_err(|_| Error::InvalidKey {
                        reason: "Argon2id refused the passphrase or salt",
                    })?;
            }
            (Key::Raw(_), Kdf::Argon2id { .. }) => {
                return Err(Error::InvalidKey {
                    reason: "this backup was encrypted with a passphrase, but a raw key is configured",
                });
            }
            (Key::Passphrase(_), Kdf::Sha256Subkey) => {
                return Err(Error::InvalidKey {
                    reason: "this backup was encrypted with a raw key, but a passphrase is configured",
                });
            }
        }
        Ok(DataKey(out))
    }
}

/// The key one backup's files are encrypted with. Never leaves the process.
#[derive(Clone)]
pub(crate) struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }

    /// `hex(nonce ‖ tag)` of an empty message: proves a key right without decrypting data.
    fn key_check(&self) -> Result<String, Error> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce)?;
        let mut tag: Vec<u8> = Vec::with_capacity(16);
        self.cipher()
            .encrypt_in_place(&Nonce::from(nonce), KEY_CHECK_AAD, &mut tag)
            .map_err(|_| Error::InvalidKey {
                reason: "AES-GCM refused to compute the key check",
            })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&tag);
        Ok(encode_hex(&out))
    }

    /// `Some(true)` when `check` was made with this key; `None` when `check` is malformed.
    fn opens(&self, check: &str) -> Option<bool> {
        let bytes = decode_hex(check)?;
        if bytes.len() != 12 + 16 {
            return None;
        }
        let nonce: [u8; 12] = bytes[..12].try_into().ok()?;
        let mut tag = bytes[12..].to_vec();
        let opened = self
            .cipher()
            .decrypt_in_place(&Nonce::from(nonce), KEY_CHECK_AAD, &mut tag)
            .is_ok();
        Some(opened)
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|err| Error::Io {
        action: "read random bytes from",
        path: "the operating system".into(),
        source: std::io::Error::other(err.to_string()),
    })
}

pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

/// Hex digits (either case) to bytes; `None` unless the whole text is an even number of them.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_from_hex_and_base64_and_nothing_else() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let base64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let url_no_pad = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert!(matches!(Key::parse(hex), Ok(Key::Raw(k)) if k[1] == 0x11));
        assert!(matches!(Key::parse(&format!("{hex}\n")), Ok(Key::Raw(_))));
        assert!(matches!(Key::parse(&base64), Ok(Key::Raw(k)) if k == [7u8; 32]));
        assert!(matches!(Key::parse(&url_no_pad), Ok(Key::Raw(k)) if k == [0xfbu8; 32]));
        for bad in ["", "abcd", &hex[..62], "not a key at all!", &base64[..20]] {
            assert!(Key::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Key::passphrase("short").is_err());
    }

    #[test]
    fn a_seed_style_text_key_is_a_passphrase_and_a_real_key_stays_raw() {
        // Seed 004's `.env`: BACKUP_ENCRYPTION_KEY=your-32-character-encryption-key-here
        let (key, passphrase) = Key::parse_or_passphrase("your-32-character-encryption-key-here").unwrap();
        assert!(passphrase && matches!(key, Key::Passphrase(_)));
        // Exactly 32 characters, valid base64 of 24 bytes: still a passphrase, not refused.
        let (key, passphrase) = Key::parse_or_passphrase("abcdefghijklmnopqrstuvwxyz012345").unwrap();
        assert!(passphrase && matches!(key, Key::Passphrase(_)));
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        assert!(matches!(Key::parse_or_passphrase(hex), Ok((Key::Raw(_), false))));
        assert!(matches!(Key::parse_or_passphrase("too short"), Err(Error::InvalidKey { .. })));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = Key::passphrase("correct horse battery staple").unwrap();
        assert!(!format!("{key:?}").contains("horse"));
        let raw = Key::Raw([0xab; 32]);
        assert!(!format!("{raw:?}").contains("ab"));
    }

    #[test]
    fn a_backup_opens_with_its_key_and_not_with_another() {
        let key = Key::Raw([1; 32]);
        let (data, info) = key.for_new_backup().unwrap();
        assert_eq!(key.for_backup("b1", &info).unwrap().0, data.0);
        let other = Key::Raw([2; 32]);
        assert!(matches!(other.for_backup("b1", &info), Err(Error::WrongKey { .. })));
        let phrase = Key::passphrase("a long enough passphrase").unwrap();
        assert!(matches!(phrase.for_backup("b1", &info), Err(Error::InvalidKey { .. })));
    }

    #[test]
    fn passphrases_derive_per_backup_keys() {
        let key = Key::passphrase("a long enough passphrase").unwrap();
        let (first, info) = key.for_new_backup().unwrap();
        let (second, _) = key.for_new_backup().unwrap();
        assert_ne!(first.0, second.0, "salts must differ");
        assert_eq!(key.for_backup("b", &info).unwrap().0, first.0);
        let wrong = Key::passphrase("another long passphrase").unwrap();
        assert!(matches!(wrong.for_backup("b", &info), Err(Error::WrongKey { .. })));
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(decode_hex(&encode_hex(&bytes)).unwrap(), bytes);
        assert_eq!(decode_hex("ABcd").unwrap(), vec![0xab, 0xcd]);
        assert!(decode_hex("abc").is_none());
        assert!(decode_hex("zz").is_none());
    }
}
