//! `security:` — API keys, the PostgreSQL roles that enforce their scopes, limits, and the audit
//! log.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Error, Secret, invalid};

/// Who may call the API and what is recorded of it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// `auto` (default): keys are required whenever `server.bind` is not a loopback address.
    pub api_keys_required: KeysRequired,
    /// Bound beyond loopback with keys off, dbagent refuses to start unless this is true (and
    /// then warns at start and in `/health`). Default false.
    pub allow_unauthenticated: bool,
    /// The bootstrap key (`DBAGENT_ADMIN_KEY`): an admin key kept, hashed, in memory only, for
    /// a first start with no keys yet. At least 32 characters.
    pub admin_key: Option<Secret>,
    /// Only these networks may call at all (besides each key's own `allow_from`). Empty: any.
    pub allowed_ips: Vec<IpNet>,
    /// Proxies whose `X-Forwarded-For` is believed. Empty: the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// A key's requests per second when it names none. Default 100.
    pub default_rate: f64,
    /// A key's burst when it names none. Default: twice the rate, at least 1.
    pub default_burst: Option<u32>,
    /// A key's requests in flight at once when it names none. Default: half the pool.
    pub max_concurrent: Option<u32>,
    /// The login a read-scoped key's statements run as (no write privilege, not superuser).
    pub read_role: RoleLogin,
    /// The login a write-scoped key's statements run as (DML, no DDL, not superuser).
    pub write_role: RoleLogin,
    /// Connections per server for each of the two roles' pools. Default 10.
    pub role_pool_size: u32,
    /// Lets a configured role be a superuser (then PostgreSQL no longer enforces the scope).
    /// Default false: start refuses.
    pub allow_superuser_roles: bool,
    /// How long a rotated key's old secret keeps working, e.g. `24h`. Default `24h`.
    pub rotate_grace: String,
    /// Reads too (every `/query` read, every GET) become audit rows. Default false.
    pub audit_reads: bool,
    /// The audit log; `audit: false` turns it off.
    pub audit: Audit,
    /// Column masking for callers without the `unmask` scope (README, "Masking").
    pub masking: super::Masking,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            api_keys_required: KeysRequired::Auto,
            allow_unauthenticated: false,
            admin_key: None,
            allowed_ips: Vec::new(),
            trusted_proxies: Vec::new(),
            default_rate: 100.0,
            default_burst: None,
            max_concurrent: None,
            read_role: RoleLogin { user: "dbagent_read".into(), password: None },
            write_role: RoleLogin { user: "dbagent_write".into(), password: None },
            role_pool_size: 10,
            allow_superuser_roles: false,
            rotate_grace: "24h".into(),
            audit_reads: false,
            audit: Audit::default(),
            masking: super::Masking::default(),
        }
    }
}

/// `auto`, `true` or `false` (a YAML boolean or the word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeysRequired {
    Auto,
    #[serde(rename = "true")]
    Yes,
    #[serde(rename = "false")]
    No,
}

impl<'de> Deserialize<'de> for KeysRequired {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Switch(bool),
            Word(String),
        }
        match Either::deserialize(deserializer)? {
            Either::Switch(true) => Ok(KeysRequired::Yes),
            Either::Switch(false) => Ok(KeysRequired::No),
            Either::Word(w) => match w.as_str() {
                "auto" => Ok(KeysRequired::Auto),
                "true" => Ok(KeysRequired::Yes),
                "false" => Ok(KeysRequired::No),
                other => Err(serde::de::Error::custom(format!("{other:?} is not auto, true or false"))),
            },
        }
    }
}

/// A PostgreSQL login. With no password, the server's own rules decide (trust or peer on the
/// managed instance).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleLogin {
    pub user: String,
    #[serde(default)]
    pub password: Option<Secret>,
}

/// `security.audit`: `true`/`false`, or the settings.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// Default true.
    pub enabled: bool,
    /// Days rows are kept; older ones are deleted by the leader. Default 90.
    pub retention_days: u32,
    /// What a request does when the queue is full: `wait` (default: audit is never lost) or
    /// `drop` (counted in `/health`).
    pub on_overflow: Overflow,
    /// Entries waiting to be written at most. Default 10000.
    pub queue_size: usize,
    /// How often the writer flushes, in ms: also what an agent crash can lose. Default 1000.
    pub flush_interval_ms: u64,
}

impl Default for Audit {
    fn default() -> Self {
        Audit { enabled: true, retention_days: 90, on_overflow: Overflow::Wait, queue_size: 10_000, flush_interval_ms: 1000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    Wait,
    Drop,
}

/// SPEC.md writes `audit: true`; the settings are a map. Both are accepted.
impl<'de> Deserialize<'de> for Audit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, default)]
        struct Settings {
            enabled: bool,
            retention_days: u32,
            on_overflow: Overflow,
            queue_size: usize,
            flush_interval_ms: u64,
        }
        impl Default for Settings {
            fn default() -> Self {
                let d = Audit::default();
                Settings {
                    enabled: d.enabled,
                    retention_days: d.retention_days,
                    on_overflow: d.on_overflow,
                    queue_size: d.queue_size,
                    flush_interval_ms: d.flush_interval_ms,
                }
            }
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Switch(bool),
            Settings(Settings),
        }
        Ok(match Either::deserialize(deserializer)? {
            Either::Switch(enabled) => Audit { enabled, ..Audit::default() },
            Either::Settings(s) => Audit {
                enabled: s.enabled,
                retention_days: s.retention_days,
                on_overflow: s.on_overflow,
                queue_size: s.queue_size,
                flush_interval_ms: s.flush_interval_ms,
            },
        })
    }
}

impl Security {
    /// Whether keys are required for an API bound to `bind`.
    pub fn keys_required(&self, bind: &str) -> bool {
        match self.api_keys_required {
            KeysRequired::Yes => true,
            KeysRequired::No => false,
            KeysRequired::Auto => !is_loopback(bind),
        }
    }

    /// The rotation grace period.
    pub fn rotate_grace(&self) -> std::time::Duration {
        parse_duration(&self.rotate_grace).unwrap_or(std::time::Duration::from_secs(86_400))
    }

    pub(super) fn validate(&self, bind: &str) -> Result<(), Error> {
        if self.api_keys_required == KeysRequired::No && !is_loopback(bind) && !self.allow_unauthenticated {
            return invalid(
                "security.api_keys_required",
                format!(
                    "the API is bound to {bind}, beyond this machine, with API keys off: anyone who reaches the port could run any SQL. \
                     Use api_keys_required: auto (or true), or set security.allow_unauthenticated: true to accept that"
                ),
            );
        }
        if let Some(key) = &self.admin_key
            && key.expose().chars().count() < 32 {
                return invalid("security.admin_key", "the bootstrap admin key (DBAGENT_ADMIN_KEY) must be at least 32 characters");
            }
        if !(self.default_rate.is_finite() && self.default_rate > 0.0) {
            return invalid("security.default_rate", "must be a positive number of requests per second");
        }
        if self.default_burst == Some(0) || self.max_concurrent == Some(0) {
            return invalid("security.default_burst", "default_burst and max_concurrent must be at least 1");
        }
        self.masking.validate()?;
        if self.role_pool_size == 0 {
            return invalid("security.role_pool_size", "must be at least 1");
        }
        for (key, role) in [("security.read_role.user", &self.read_role), ("security.write_role.user", &self.write_role)] {
            if role.user.is_empty() || role.user.len() > 63 {
                return invalid(key, "must be a role name of 1 to 63 bytes");
            }
        }
        if self.read_role.user == self.write_role.user {
            return invalid("security.write_role.user", "the read and write roles must be different roles");
        }
        if parse_duration(&self.rotate_grace).is_none() {
            return invalid("security.rotate_grace", "must be a duration such as 30m, 24h or 7d");
        }
        if self.audit.queue_size == 0 || self.audit.flush_interval_ms == 0 || self.audit.retention_days == 0 {
            return invalid("security.audit", "queue_size, flush_interval_ms and retention_days must be at least 1");
        }
        Ok(())
    }
}

/// `127.0.0.1`, `::1`, `localhost`.
pub fn is_loopback(bind: &str) -> bool {
    bind.eq_ignore_ascii_case("localhost") || bind.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `90s`, `30m`, `24h`, `7d`, `2w` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    if n == 0 {
        return None;
    }
    Some(std::time::Duration::from_secs(n.checked_mul(seconds)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Some(std::time::Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("30m"), Some(std::time::Duration::from_secs(1800)));
        for bad in ["", "d", "0h", "5", "5y", "-1d", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn audit_takes_a_switch_or_settings() {
        let off: Security = serde_norway::from_str("audit: false").unwrap();
        assert!(!off.audit.enabled);
        let tuned: Security = serde_norway::from_str("audit: {on_overflow: drop, retention_days: 7}").unwrap();
        assert!(tuned.audit.enabled);
        assert_eq!(tuned.audit.on_overflow, Overflow::Drop);
        assert_eq!(tuned.audit.retention_days, 7);
        assert!(serde_norway::from_str::<Security>("audit: {retention: 7}").is_err());
    }

    #[test]
    fn beyond_loopback_without_keys_needs_consent() {
        let mut s = Security { api_keys_required: KeysRequired::No, ..Security::default() };
        assert!(s.validate("127.0.0.1").is_ok());
        assert!(s.validate("0.0.0.0").is_err());
        s.allow_unauthenticated = true;
        assert!(s.validate("0.0.0.0").is_ok());
        assert!(Security::default().keys_required("0.0.0.0"));
        assert!(!Security::default().keys_required("::1"));
    }
}
