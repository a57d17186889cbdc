//! API keys: made here, stored as digests in `dbagent.api_keys`, held in memory.
//!
//! A key is `dbk_<id>_<secret>`: `dbk_` makes it recognisable (to secret scanners, in a leaked
//! log line), `<id>` (12 hex digits) names its row, `<secret>` is 256 random bits. Only the
//! SHA-256 digest of the whole key is stored: keys are random, so a slow password hash would add
//! nothing but CPU on every request. A presented key is found by its id and compared by digest
//! in constant time.
//!
//! A change (create, revoke, rotate) sends `NOTIFY dbagent_keys` in its transaction; every agent
//! holds all keys in memory (`super::ring`) and reloads at once.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::{Error, Scope};
use crate::config;
use crate::db;

/// What every key starts with.
pub const PREFIX: &str = "dbk_";
/// The channel key changes are announced on.
pub const CHANNEL: &str = "dbagent_keys";
/// The bootstrap key's id.
pub const BOOTSTRAP_ID: &str = "bootstrap";

const CREATE_TABLE: &str = "
CREATE SCHEMA IF NOT EXISTS dbagent;
CREATE TABLE IF NOT EXISTS dbagent.api_keys (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    digest          bytea NOT NULL,
    scopes          text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write', 'admin', 'unmask']),
    rate_per_second double precision,
    burst           integer,
    max_concurrent  integer,
    allow_from      text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    replaced_by     text
);
COMMENT ON TABLE dbagent.api_keys IS
    'dbagent API keys: SHA-256 digests only. Row-level security hides it from every role but its owner.';
-- No policy: every role that neither owns the table nor bypasses RLS sees no row, including
-- pg_read_all_data members such as a read key's role.
ALTER TABLE dbagent.api_keys ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON dbagent.api_keys FROM PUBLIC;
";

pub(super) const COLUMNS: &str = "id, name, digest, scopes, rate_per_second, burst, max_concurrent, allow_from, created_at, expires_at, last_used_at, revoked_at, replaced_by";

/// A table made before the `unmask` scope: its CHECK (named by PostgreSQL's default) refuses
/// it. Widened once, `NOT VALID` under a short lock timeout (a wider check cannot fail on the
/// rows there), so an agent never waits long behind a busy table; it tries again next start.
const WIDEN_SCOPES: &str = "
SET LOCAL lock_timeout = '2s';
ALTER TABLE dbagent.api_keys DROP CONSTRAINT api_keys_scopes_check,
    ADD CONSTRAINT api_keys_scopes_check CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write', 'admin', 'unmask']) NOT VALID;
";

/// Whether the table's scope CHECK predates `unmask`.
const SCOPES_NARROW: &str = "SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'dbagent.api_keys'::regclass
    AND conname = 'api_keys_scopes_check' AND pg_get_constraintdef(oid) NOT LIKE '%unmask%')";

/// Makes sure `dbagent.api_keys` exists. When it does, nothing is locked: the script (its
/// `ALTER TABLE` takes an exclusive lock) runs only for a table that is missing, and the
/// constraint is widened only on a table made before `unmask`.
pub async fn ensure_table(client: &Client) -> Result<(), Error> {
    if client.query_one("SELECT to_regclass('dbagent.api_keys') IS NOT NULL", &[]).await?.get::<_, bool>(0) {
        if client.query_one(SCOPES_NARROW, &[]).await?.get::<_, bool>(0) {
            let widened = client.batch_execute(&format!("BEGIN; {WIDEN_SCOPES} COMMIT;")).await;
            if let Err(err) = widened {
                let _ = client.batch_execute("ROLLBACK").await;
                tracing::warn!(error = %err, "could not let dbagent.api_keys accept the unmask scope yet; keys with it cannot be created until it does");
            }
        }
        return Ok(());
    }
    // Two agents starting at once may race on CREATE ... IF NOT EXISTS; the loser retries.
    for attempt in 0..3 {
        match client.batch_execute(CREATE_TABLE).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 2 && err.code().is_some_and(|c| c.code() == "23505" || c.code() == "42P07") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// A request rate: `50/s`, `3000/m`, `10000/h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
}

impl Rate {
    pub fn parse(text: &str) -> Result<Rate, Error> {
        let bad = || Error::Invalid(format!("{text:?} is not a rate such as 50/s, 3000/m or 10000/h"));
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: f64 = count.trim().parse().map_err(|_| bad())?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            _ => return Err(bad()),
        };
        let per_second = count / seconds;
        if !(per_second.is_finite() && per_second > 0.0 && per_second <= 1e6) {
            return Err(bad());
        }
        Ok(Rate { per_second })
    }
}

/// A key to create.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// `90d`, `12h` ...; none: it does not expire.
    #[serde(default)]
    pub expires: Option<String>,
    /// `50/s`; none: `security.default_rate`.
    #[serde(default)]
    pub rate: Option<String>,
    #[serde(default)]
    pub burst: Option<u32>,
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    /// CIDRs (`10.0.0.0/8`) or addresses it may be used from; empty: anywhere.
    #[serde(default)]
    pub allow_from: Vec<String>,
}

impl NewKey {
    fn validate(&self) -> Result<Validated, Error> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(Error::Invalid("a key's name must be 1 to 100 printable characters".into()));
        }
        if !self.scopes.iter().any(|s| *s != Scope::Unmask) {
            return Err(Error::Invalid("a key needs at least one scope of read, write or admin (unmask goes beside one)".into()));
        }
        let expires = match &self.expires {
            None => None,
            Some(text) => Some(
                config::parse_duration(text)
                    .ok_or_else(|| Error::Invalid(format!("expires {text:?} is not a duration such as 90d or 12h")))?,
            ),
        };
        let rate = self.rate.as_deref().map(Rate::parse).transpose()?;
        if self.burst == Some(0) || self.max_concurrent == Some(0) {
            return Err(Error::Invalid("burst and max_concurrent must be at least 1".into()));
        }
        let allow_from = self.allow_from.iter().map(|t| parse_net(t)).collect::<Result<Vec<_>, _>>()?;
        Ok(Validated { name: name.to_owned(), expires, rate, allow_from })
    }
}

struct Validated {
    name: String,
    expires: Option<Duration>,
    rate: Option<Rate>,
    allow_from: Vec<IpNet>,
}

/// `10.0.0.0/8`, or one address.
pub fn parse_net(text: &str) -> Result<IpNet, Error> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| Error::Invalid(format!("{text:?} is neither an address nor a network such as 10.0.0.0/8")))
}

/// A key as listed: everything but its secret (which nobody can see again).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// What the key starts with, to recognise it.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rate_per_second: Option<f64>,
    pub burst: Option<u32>,
    pub max_concurrent: Option<u32>,
    pub allow_from: Vec<String>,
    /// Rotated: the key that replaced it (this one works until `expires_at`).
    pub replaced_by: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
}

/// A key just made: its only appearance with the secret.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Created {
    #[serde(flatten)]
    pub key: KeyInfo,
    /// The key itself. Shown once; only its digest is stored.
    pub secret: String,
}

pub(super) fn info(row: &tokio_postgres::Row) -> Result<(KeyInfo, Vec<u8>), Error> {
    let scopes: Vec<String> = db::get(row, "scopes")?;
    let scopes = scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>().map_err(|e| {
        Error::Db(db::Error::UnexpectedAnswer { reason: format!("dbagent.api_keys.scopes: {e}") })
    })?;
    let id: String = db::get(row, "id")?;
    let expires_at: Option<DateTime<Utc>> = db::get(row, "expires_at")?;
    let revoked_at: Option<DateTime<Utc>> = db::get(row, "revoked_at")?;
    let status = match (revoked_at, expires_at) {
        (Some(_), _) => "revoked",
        (None, Some(at)) if at <= Utc::now() => "expired",
        _ => "active",
    };
    let key = KeyInfo {
        prefix: format!("{PREFIX}{id}_"),
        id,
        name: db::get(row, "name")?,
        scopes,
        created_at: db::get(row, "created_at")?,
        expires_at,
        last_used_at: db::get(row, "last_used_at")?,
        revoked_at,
        rate_per_second: db::get(row, "rate_per_second")?,
        burst: db::get::<Option<i32>>(row, "burst")?.map(|b| b.max(1) as u32),
        max_concurrent: db::get::<Option<i32>>(row, "max_concurrent")?.map(|b| b.max(1) as u32),
        allow_from: db::get(row, "allow_from")?,
        replaced_by: db::get(row, "replaced_by")?,
        status,
    };
    Ok((key, db::get(row, "digest")?))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::Invalid(format!("no randomness available: {e}")))?;
    Ok(bytes)
}

pub(super) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new id and secret.
fn mint() -> Result<(String, String), Error> {
    let id: String = random_bytes::<6>()?.iter().map(|b| format!("{b:02x}")).collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let key = format!("{PREFIX}{id}_{secret}");
    Ok((id, key))
}

/// Creates a key; the answer carries its secret, the only time it is shown.
pub async fn create(client: &mut Client, new: &NewKey) -> Result<Created, Error> {
    let v = new.validate()?;
    let tx = client.transaction().await?;
    let created = insert(&tx, &v.name, &new.scopes, v.expires, v.rate, new.burst, new.max_concurrent, &v.allow_from).await?;
    tx.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
    tx.commit().await?;
    Ok(created)
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    scopes: &[Scope],
    expires: Option<Duration>,
    rate: Option<Rate>,
    burst: Option<u32>,
    max_concurrent: Option<u32>,
    allow_from: &[IpNet],
) -> Result<Created, Error> {
    let (id, secret) = mint()?;
    let mut scopes: Vec<Scope> = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let nets: Vec<String> = allow_from.iter().map(ToString::to_string).collect();
    let expires_secs = expires.map(|d| d.as_secs_f64());
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO dbagent.api_keys (id, name, digest, scopes, rate_per_second, burst, max_concurrent, allow_from, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
                 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &name,
                &digest(&secret).as_slice(),
                &scope_names,
                &rate.map(|r| r.per_second),
                &burst.map(|b| b.min(i32::MAX as u32) as i32),
                &max_concurrent.map(|b| b.min(i32::MAX as u32) as i32),
                &nets,
                &expires_secs,
            ],
        )
        .await?;
    Ok(Created { key: info(&row)?.0, secret })
}

/// Every key, newest first.
pub async fn list(client: &Client) -> Result<Vec<KeyInfo>, Error> {
    let rows = client.query(&format!("SELECT {COLUMNS} FROM dbagent.api_keys ORDER BY created_at DESC, id"), &[]).await?;
    Ok(rows.iter().filter_map(|row| readable(info(row)).map(|(k, _)| k)).collect())
}

/// A row written behind dbagent's back that it cannot read (a made-up scope, say) is left
/// out with a warning: it must not take every other key down with it.
pub(super) fn readable(row: Result<(KeyInfo, Vec<u8>), Error>) -> Option<(KeyInfo, Vec<u8>)> {
    match row {
        Ok(row) => Some(row),
        Err(err) => {
            tracing::warn!(error = %err, "a row of dbagent.api_keys cannot be read; that key is ignored");
            None
        }
    }
}

/// The one key `which` names: its id, its prefix, or its name when one active key has it.
async fn find_row(tx: &tokio_postgres::Transaction<'_>, which: &str) -> Result<KeyInfo, Error> {
    let id = which.strip_prefix(PREFIX).map(|rest| rest.split('_').next().unwrap_or_default()).unwrap_or(which);
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM dbagent.api_keys WHERE id = $1 OR (name = $2 AND revoked_at IS NULL AND replaced_by IS NULL)
                 ORDER BY (id = $1) DESC, created_at DESC FOR UPDATE"
            ),
            &[&id, &which],
        )
        .await?;
    let found: Vec<KeyInfo> = rows.iter().map(|r| info(r).map(|(k, _)| k)).collect::<Result<_, _>>()?;
    match found.as_slice() {
        [] => Err(Error::NotFound(which.to_owned())),
        [one] => Ok(one.clone()),
        [first, ..] if first.id == id => Ok(first.clone()),
        _ => Err(Error::Invalid(format!("{which:?} names several active keys; name the key by its id"))),
    }
}

/// Revokes a key (at once, on every agent).
pub async fn revoke(client: &mut Client, which: &str) -> Result<KeyInfo, Error> {
    let tx = client.transaction().await?;
    let key = find_row(&tx, which).await?;
    let row = tx
        .query_one(
            &format!("UPDATE dbagent.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {COLUMNS}"),
            &[&key.id],
        )
        .await?;
    tx.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
    tx.commit().await?;
    Ok(info(&row)?.0)
}

/// A new secret for a key: a new key with the same name, scopes and limits; the old one keeps
/// working for `grace` (or until it expired anyway).
pub async fn rotate(client: &mut Client, which: &str, grace: Duration) -> Result<Created, Error> {
    let tx = client.transaction().await?;
    let old = find_row(&tx, which).await?;
    if old.status != "active" {
        return Err(Error::Invalid(format!("key {} is {}; only an active key can be rotated", old.id, old.status)));
    }
    let expires = old.expires_at.map(|at| (at - Utc::now()).to_std().unwrap_or_default());
    let allow_from = old.allow_from.iter().map(|t| parse_net(t)).collect::<Result<Vec<_>, _>>()?;
    let rate = old.rate_per_second.map(|per_second| Rate { per_second });
    let created = insert(&tx, &old.name, &old.scopes, expires, rate, old.burst, old.max_concurrent, &allow_from).await?;
    tx.execute(
        "UPDATE dbagent.api_keys SET replaced_by = $2,
             expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => $3))
         WHERE id = $1",
        &[&old.id, &created.key.id, &grace.as_secs_f64()],
    )
    .await?;
    tx.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
    tx.commit().await?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_recognisable_and_long() {
        let (id, key) = mint().unwrap();
        assert!(key.starts_with(&format!("{PREFIX}{id}_")));
        // base64url has `_` in its alphabet: the secret is everything after the id.
        let secret = key.strip_prefix(&format!("{PREFIX}{id}_")).unwrap();
        // 43 base64url characters: 256 bits.
        assert_eq!(secret.len(), 43);
        assert_ne!(mint().unwrap().1, key);
    }

    #[test]
    fn rates() {
        assert_eq!(Rate::parse("50/s").unwrap().per_second, 50.0);
        assert_eq!(Rate::parse("3000/m").unwrap().per_second, 50.0);
        for bad in ["50", "0/s", "-1/s", "x/s", "5/d"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn networks() {
        assert!(parse_net("10.0.0.0/8").unwrap().contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
        assert!(parse_net("::1").unwrap().contains(&"::1".parse::<IpAddr>().unwrap()));
        assert!(parse_net("10.0.0.0/33").is_err());
    }
}
