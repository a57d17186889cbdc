//! Passwords for new and altered roles: the SCRAM-SHA-256 verifier is computed here (with a
//! random salt, by `postgres-protocol`, the driver's own implementation of PostgreSQL's
//! format), and only the verifier is sent (`PASSWORD 'SCRAM-SHA-256$4096:...'`), so the
//! password itself never reaches the server: not its logs (`log_statement`), not
//! `pg_stat_activity`, not `pg_stat_statements`. PostgreSQL stores a verifier as given,
//! whatever `password_encryption` says.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// Fewer characters than this are refused: a password an attacker guesses online.
pub const MIN_CHARS: usize = 8;

/// A password from a request: `Debug` prints nothing, and it has no `Serialize`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks the length (and that there is something besides blanks).
    pub fn new(text: String) -> Result<Password, String> {
        if text.trim().is_empty() || text.chars().count() < MIN_CHARS {
            return Err(format!("`password`: at least {MIN_CHARS} characters"));
        }
        if text.len() > 1024 {
            return Err("`password`: at most 1024 bytes".into());
        }
        Ok(Password(text))
    }

    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn verifier(&self) -> String {
        postgres_protocol::password::scram_sha_256(self.0.as_bytes())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Password::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Password {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Password".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": MIN_CHARS,
            "writeOnly": true,
            "description": "Sent to PostgreSQL only as a SCRAM-SHA-256 verifier computed by dbagent; never stored, logged or answered."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_is_scram_and_never_holds_the_password() {
        let password = Password::new("correct horse battery".into()).unwrap();
        let verifier = password.verifier();
        assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
        assert!(!verifier.contains("correct horse"));
        assert_ne!(verifier, password.verifier(), "a fresh salt each time");
        assert_eq!(format!("{password:?}"), "Password(***)");
    }

    #[test]
    fn short_or_blank_passwords_are_refused() {
        assert!(Password::new("short".into()).is_err());
        assert!(Password::new("          ".into()).is_err());
        assert!(Password::new("long enough".into()).is_ok());
    }
}
