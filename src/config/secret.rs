//! A string that must never reach a log: passwords and URLs that may carry one.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value. `Debug`, `Display` and `Serialize` print a redacted form.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value, for the one place that needs it (opening a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A loggable form: URLs keep everything but the password, other values are hidden.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.has_host() => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            _ => "***".into(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn passwords_never_print() {
        let url = Secret::new("postgresql://app:hunter2@db:5432/app");
        assert_eq!(format!("{url}"), "postgresql://app:***@db:5432/app");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(Secret::new("hunter2").to_string(), "***");
    }
}
