//! Who may call the API, as what, how often, and what they did.
//!
//! - [`keys`]: API keys (random secrets stored only as SHA-256 digests in `dbagent.api_keys`);
//! - [`ring`]: the keys held in memory, refreshed by LISTEN/NOTIFY when any agent changes one;
//! - [`roles`]: the PostgreSQL roles a read or write key's statements run as, so the database
//!   itself enforces the scope;
//! - [`audit`]: `dbagent.audit_log`, written in batches by a background writer;
//! - this file: scopes, the caller of a request, and [`Security`], the running whole.
//!
//! `api` only takes the key and address out of a request and asks [`Security::authenticate`].

pub mod audit;
pub mod keys;
pub mod masking;
pub mod ring;
pub mod roles;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{self, Config};
use crate::db::{self, Login, Pools, Purpose};
use crate::error::{Classify, ErrorKind};
use crate::query::Classification;
pub use keys::{KeyInfo, NewKey, Rate};
pub use ring::{KeyEntry, KeyRing};

/// What a key may do; each of `read`, `write` and `admin` includes the ones before it.
/// `unmask` is not a level but a grant beside one: the key sees masked columns as they are
/// (`masking`). A key needs a level; `admin` does not imply `unmask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Reads through `/query`, `/transaction` (read-only), `/schema`, `/stats`, `/health`,
    /// `/optimize` without running writes, backup listings.
    Read,
    /// Reads, and row changes through `/query` and `/transaction`.
    Write,
    /// Everything: DDL, migrations, backups and restores, index changes, keys, the audit log.
    Admin,
    /// Results unmasked (`security.masking`); given beside a level, never alone.
    Unmask,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Unmask => "unmask",
        }
    }

    /// `read`, `write`, `admin` or `unmask`.
    pub fn parse(text: &str) -> Result<Scope, Error> {
        match text.trim() {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            "unmask" => Ok(Scope::Unmask),
            other => Err(Error::Invalid(format!("{other:?} is not a scope (read, write, admin or unmask)"))),
        }
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who reaches the port (liveness and readiness only).
    Open,
    /// A key with at least this scope (when keys are in use).
    Needs(Scope),
}

/// Who is calling: a key, or (where keys are not required and none was given) anyone.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None`: anonymous, with full access (keys are not required here).
    pub key: Option<Arc<KeyEntry>>,
    /// The address the request came from (after trusted proxies).
    pub remote: IpAddr,
}

impl Caller {
    pub fn anonymous(remote: IpAddr) -> Caller {
        Caller { key: None, remote }
    }

    pub fn scope(&self) -> Scope {
        self.key.as_ref().map_or(Scope::Admin, |k| k.scope)
    }

    /// Whom the caller's statements run as: an admin key and anonymous callers as the
    /// configured user, read and write keys as their roles.
    pub fn login(&self) -> Login {
        match (&self.key, self.scope()) {
            (None, _) | (_, Scope::Admin) => Login::Service,
            (_, Scope::Write) => Login::Write,
            // `scope()` is a level, never `Unmask` (see `KeyEntry::scope`); were it, the least.
            (_, Scope::Read | Scope::Unmask) => Login::Read,
        }
    }

    pub fn key_id(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.id.as_str())
    }

    pub fn key_name(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.name.as_str())
    }

    /// Whether this caller's results are masked (`security.masking`): a key without the
    /// `unmask` scope; no key at all, or the bootstrap key, only with `mask_unauthenticated`.
    pub fn masked(&self, settings: &config::Masking) -> bool {
        settings.enabled()
            && match &self.key {
                Some(key) if key.id == keys::BOOTSTRAP_ID => settings.mask_unauthenticated,
                Some(key) => !key.unmask,
                None => settings.mask_unauthenticated,
            }
    }

    /// What separates this caller's cached results from others'.
    pub fn cache_identity(&self) -> String {
        match &self.key {
            Some(key) => format!("key:{}", key.id),
            None => "anonymous".into(),
        }
    }
}

/// Whether a login may run a statement: PostgreSQL refuses anyway (the roles have no such
/// privilege); this says so first, with the reason, before anything runs.
pub fn allows(login: Login, class: &Classification) -> Result<(), String> {
    match login {
        Login::Service => Ok(()),
        Login::Read if !class.is_read_only() => Err(format!("this API key may only read, and the statement is a {}", class.query_type)),
        Login::Write if matches!(class.query_type, "ddl" | "grant" | "truncate" | "vacuum" | "utility") => {
            Err(format!("a {} statement needs an admin key; this key may read and change rows", class.query_type))
        }
        _ => Ok(()),
    }
}

/// Why a request was refused, or a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No key, or a key that is unknown, expired or revoked: the answer never says which (the
    /// reason is for metrics and the audit log only).
    #[error("a valid API key is required (Authorization: Bearer <key> or X-API-Key)")]
    Unauthenticated(Refusal),
    #[error("{0}")]
    Forbidden(String),
    #[error("requests from {0} are not allowed")]
    AddressForbidden(IpAddr),
    #[error("too many requests for this API key; retry after {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("{0}")]
    Invalid(String),
    #[error("no API key {0:?}")]
    NotFound(String),
    /// A configured role cannot enforce a scope (a superuser, missing, too privileged).
    #[error("{0}")]
    Roles(String),
    #[error(transparent)]
    Db(#[from] db::Error),
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        Error::Db(db::Error::from_driver(err, false))
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::Forbidden(_) | Error::AddressForbidden(_) => ErrorKind::PermissionDenied,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Invalid(_) => ErrorKind::BadRequest,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Roles(_) => ErrorKind::Unavailable,
            Error::Db(err) => err.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "scope_forbids",
            Error::AddressForbidden(_) => "address_forbidden",
            Error::RateLimited { .. } => "rate_limited",
            Error::Invalid(_) => "invalid_request",
            Error::NotFound(_) => "key_not_found",
            Error::Roles(_) => "roles_unavailable",
            Error::Db(err) => err.code(),
        }
    }

    fn server(&self) -> Option<&db::PgError> {
        match self {
            Error::Db(err) => err.server(),
            _ => None,
        }
    }
}

/// Why a key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    /// Unknown, or the secret does not match.
    Invalid,
    Expired,
    Revoked,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Invalid => "invalid",
            Refusal::Expired => "expired",
            Refusal::Revoked => "revoked",
        }
    }
}

/// Counters for `/health` (and `/metrics`).
#[derive(Debug, Default)]
pub struct Counters {
    pub auth_failures: AtomicU64,
    pub forbidden: AtomicU64,
    pub rate_limited: AtomicU64,
}

/// The security part of `/health`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SecurityReport {
    pub api_keys_required: bool,
    /// Set when keys are off on an address beyond loopback (`allow_unauthenticated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    pub active_keys: usize,
    pub auth_failures: u64,
    pub forbidden: u64,
    pub rate_limited: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditReport>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AuditReport {
    pub written: u64,
    /// Waiting to be written.
    pub pending: u64,
    /// Dropped on a full queue (`on_overflow: drop` only).
    pub dropped: u64,
    pub write_failures: u64,
}

/// Access control and audit of one agent.
pub struct Security {
    pub settings: config::Security,
    /// Keys are required on every route but liveness and readiness.
    pub required: bool,
    pub keys: Arc<KeyRing>,
    /// `None` when `security.audit` is off.
    pub audit: Option<audit::Audit>,
    pub counters: Counters,
    warning: Option<String>,
    /// The primary, for key and audit queries (dbagent's own sessions).
    db: crate::db::PgConfig,
    /// Failed authentications become audit rows at most this often.
    failure_rows: governor::DefaultDirectRateLimiter,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Security {
    /// Reads the keys, makes sure the roles can enforce scopes (when keys are in use), starts
    /// the key listener and the audit writer.
    pub async fn start(config: &Config, pools: &Arc<Pools>) -> Result<Security, Error> {
        let settings = config.security.clone();
        let required = settings.keys_required(&config.server.bind);
        let db = pools.admin_config();
        let mut keys = KeyRing::new(&settings, required);
        if settings.max_concurrent.is_none() {
            // Half the pool: one caller can never hold every connection.
            keys.set_default_concurrency(config.postgresql.connection_pool.max_size / 2);
        }
        let keys = Arc::new(keys);
        // A database that is down now does not stop the agent (the pools wait for it too):
        // keys load, and the roles are checked, as soon as it answers.
        match db::admin::connect(&db, Purpose::Security).await {
            Ok(client) => {
                keys::ensure_table(&client).await?;
                keys.reload(&client).await?;
                if required || keys.has_stored_keys() {
                    roles::ensure(&client, &settings).await?;
                    keys.set_roles_ready();
                }
            }
            Err(err) => tracing::warn!(error = %db::error_chain(&err), "cannot read the API keys yet; they load when the database answers"),
        }
        let warning = (!required && !is_loopback_only(config)).then(|| {
            format!(
                "API keys are off on {}, beyond this machine (security.allow_unauthenticated): anyone who reaches the port can run any SQL",
                config.server.bind
            )
        });
        if let Some(warning) = &warning {
            tracing::warn!("{}", warning.to_uppercase());
        }
        let mut tasks = vec![ring::spawn_refresh(Arc::downgrade(pools), keys.clone(), db.clone(), settings.clone())];
        let audit = match settings.audit.enabled {
            true => {
                let (audit, writer) = audit::Audit::start(pools, &settings.audit).await?;
                tasks.push(writer);
                Some(audit)
            }
            false => None,
        };
        let quota = governor::Quota::per_second(std::num::NonZeroU32::new(10).expect("10 is not zero"));
        Ok(Security {
            settings,
            required,
            keys,
            audit,
            counters: Counters::default(),
            warning,
            db,
            failure_rows: governor::RateLimiter::direct(quota),
            tasks,
        })
    }

    /// The caller of a request that presented `presented` (a key, or nothing) from `remote`.
    pub fn authenticate(&self, presented: Option<&str>, remote: IpAddr) -> Result<Caller, Error> {
        if !self.settings.allowed_ips.is_empty() && !self.settings.allowed_ips.iter().any(|net| net.contains(&remote)) {
            self.counters.forbidden.fetch_add(1, Ordering::Relaxed);
            return Err(Error::AddressForbidden(remote));
        }
        let Some(presented) = presented else {
            return match self.required {
                true => Err(self.failed(Refusal::Missing)),
                false => Ok(Caller::anonymous(remote)),
            };
        };
        let key = self.keys.find(presented).map_err(|refusal| self.failed(refusal))?;
        if !key.allow_from.is_empty() && !key.allow_from.iter().any(|net| net.contains(&remote)) {
            self.counters.forbidden.fetch_add(1, Ordering::Relaxed);
            return Err(Error::AddressForbidden(remote));
        }
        if key.scope < Scope::Admin && !self.keys.roles_ready() {
            return Err(Error::Roles(
                "the roles that enforce this key's scope are not ready (see the log); only admin keys work until they are".into(),
            ));
        }
        Ok(Caller { key: Some(key), remote })
    }

    fn failed(&self, refusal: Refusal) -> Error {
        self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        Error::Unauthenticated(refusal)
    }

    /// A failed authentication is audited, at most 10 rows a second across all callers.
    pub fn audit_failure_allowed(&self) -> bool {
        self.failure_rows.check().is_ok()
    }

    pub fn report(&self) -> SecurityReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SecurityReport {
            api_keys_required: self.required,
            warning: self.warning.clone(),
            active_keys: self.keys.active(),
            auth_failures: get(&self.counters.auth_failures),
            forbidden: get(&self.counters.forbidden),
            rate_limited: get(&self.counters.rate_limited),
            audit: self.audit.as_ref().map(|a| {
                let (written, queued, dropped) = (get(&a.stats.written), get(&a.stats.queued), get(&a.stats.dropped));
                AuditReport { written, pending: queued.saturating_sub(written + dropped), dropped, write_failures: get(&a.stats.write_failures) }
            }),
        }
    }

    /// Settings for dbagent's own sessions on the primary (key and audit queries).
    pub fn db(&self) -> &crate::db::PgConfig {
        &self.db
    }

    /// Stops the key listener and flushes the audit queue (bounded).
    pub async fn stop(self) {
        let Security { audit, tasks, .. } = self;
        if let Some(audit) = audit {
            audit.stop(Duration::from_secs(5)).await;
        }
        for task in tasks {
            task.abort();
        }
    }
}

fn is_loopback_only(config: &Config) -> bool {
    config::is_loopback(&config.server.bind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_ones_before() {
        assert!(Scope::Admin > Scope::Write && Scope::Write > Scope::Read);
        assert_eq!(Scope::parse("write").unwrap(), Scope::Write);
        assert!(Scope::parse("root").is_err());
    }

    #[test]
    fn logins_follow_the_scope() {
        let remote: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(Caller::anonymous(remote).login(), Login::Service);
        let key = |scope| Caller { key: Some(Arc::new(KeyEntry::for_tests("k", scope))), remote };
        assert_eq!(key(Scope::Read).login(), Login::Read);
        assert_eq!(key(Scope::Write).login(), Login::Write);
        assert_eq!(key(Scope::Admin).login(), Login::Service);
    }
}
