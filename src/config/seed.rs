//! What the seed documents' users bring with them: SQLAlchemy's names in the file, driver
//! suffixes in `DATABASE_URL`, and their environment variables with units converted.
//!
//! Everything here is an explicit table: a key or variable not listed is not accepted (the
//! file's unknown keys stay errors, catching typos). Each alias used leaves a note that the
//! start-up log shows, naming the dbagent key to write instead.

use serde_norway::{Mapping, Value};

use super::Error;
use super::load::Environment;

/// SQLAlchemy's engine arguments (seed 001's `connect(pool_size=..., ...)`), accepted under
/// `postgresql:` and under `postgresql.connection_pool:`, and the dbagent key each stands for
/// (relative to `postgresql:`). `max_overflow` is not here: it is a sum (see
/// [`rewrite_aliases`]).
const FILE_ALIASES: &[(&str, &[&str])] = &[
    ("pool_size", &["connection_pool", "min_size"]),
    ("pool_timeout", &["connection_pool", "timeout"]),
    ("pool_recycle", &["connection_pool", "recycle"]),
    ("pool_pre_ping", &["connection_pool", "pre_ping"]),
    ("echo_sql", &["echo_sql"]),
];

/// How a seed variable's text becomes a dbagent value.
#[derive(Debug, Clone, Copy)]
enum Convert {
    /// Taken as it is (a number, a boolean or a string, as YAML reads it).
    Same,
    /// Always a string (a path named `2024` stays a path).
    Text,
    /// Seconds (possibly fractional) to milliseconds.
    SecondsToMs,
    /// Python's logging level names to a tracing filter.
    LogLevel,
    /// A boolean in any case (`True`, `false`).
    Bool,
    /// A whole number of days, or empty for none.
    Whole,
    /// A ratio (`0.8`) to percent (`80`).
    RatioToPercent,
    /// A string never shown in the start-up log.
    Secret,
}

/// The seeds' environment variables and the dbagent keys they set, applied after the file and
/// the `DBAGENT_*` overrides (so they win, as they did for the seeds' users). The seed-000/001
/// pool variables (`DB_POOL_SIZE`, ...) and `DATABASE_URL` are applied in `load.rs`.
const VARIABLES: &[(&str, &[&str], Convert)] = &[
    ("BACKUP_DIRECTORY", &["backup", "location"], Convert::Text),
    ("BACKUP_RETENTION_DAYS", &["backup", "retention_days"], Convert::Whole),
    ("DB_SLOW_QUERY_THRESHOLD", &["optimization", "slow_query_threshold_ms"], Convert::SecondsToMs),
    // `monitoring:` is `config/monitoring.rs`'s section (seconds there too).
    ("DB_HEALTH_CHECK_INTERVAL", &["monitoring", "collect_interval"], Convert::Same),
    ("LOG_LEVEL", &["logging", "level"], Convert::LogLevel),
    ("DB_ENABLE_QUERY_LOGGING", &["postgresql", "echo_sql"], Convert::Bool),
    ("DB_AUDIT_ENABLED", &["security", "audit", "enabled"], Convert::Bool),
    ("DB_AUDIT_RETENTION_DAYS", &["security", "audit", "retention_days"], Convert::Whole),
    // Seed 004's alert thresholds (ratios there, percent in dbagent) and email settings.
    ("ALERT_CONNECTION_THRESHOLD", &["alerts", "rules", "connections", "warning"], Convert::RatioToPercent),
    ("ALERT_RESPONSE_TIME_THRESHOLD", &["alerts", "rules", "response_time", "warning"], Convert::Same),
    ("ALERT_ERROR_RATE_THRESHOLD", &["alerts", "rules", "error_rate", "warning"], Convert::RatioToPercent),
    ("SMTP_SERVER", &["alerts", "smtp", "server"], Convert::Text),
    ("SMTP_PORT", &["alerts", "smtp", "port"], Convert::Whole),
    ("SMTP_USERNAME", &["alerts", "smtp", "username"], Convert::Text),
    ("SMTP_PASSWORD", &["alerts", "smtp", "password"], Convert::Secret),
    ("ALERT_EMAIL_TO", &["alerts", "email_to"], Convert::Text),
];

/// Notes for the start-up log: which file was read and every alias or seed variable used.
#[derive(Debug, Default)]
pub(super) struct Notes {
    pub info: Vec<String>,
    /// Deprecated names and surprising choices.
    pub warnings: Vec<String>,
}

impl Notes {
    pub fn info(&mut self, text: impl Into<String>) {
        self.info.push(text.into());
    }

    pub fn warn(&mut self, text: impl Into<String>) {
        self.warnings.push(text.into());
    }
}

/// Rewrites SQLAlchemy's names in the file into dbagent's keys, noting each. A name given
/// together with the dbagent key it stands for is an error (which one was meant?).
pub(super) fn rewrite_aliases(tree: &mut Value, notes: &mut Notes) -> Result<(), Error> {
    let Some(pg) = section(tree, "postgresql") else { return Ok(()) };
    let mut found: Vec<(String, &'static [&'static str], Value)> = Vec::new();
    let mut overflow: Option<(String, Value)> = None;
    for (place, path) in [("postgresql", &[][..]), ("postgresql.connection_pool", &["connection_pool"][..])] {
        let Some(map) = mapping_at(pg, path) else { continue };
        for (alias, target) in FILE_ALIASES {
            // `echo_sql` is dbagent's own name under `postgresql:`.
            if place == "postgresql" && *alias == "echo_sql" {
                continue;
            }
            if let Some(value) = map.remove(*alias) {
                found.push((format!("{place}.{alias}"), target, value));
            }
        }
        if let Some(value) = map.remove("max_overflow") {
            if let Some((first, _)) = &overflow {
                return conflict(first, &format!("{place}.max_overflow"));
            }
            overflow = Some((format!("{place}.max_overflow"), value));
        }
    }
    for (alias, target, value) in found {
        let canonical = format!("postgresql.{}", target.join("."));
        if get(pg, target).is_some() {
            return conflict(&alias, &canonical);
        }
        notes.warn(format!("{alias} is SQLAlchemy's name for {canonical}; read as such (deprecated: write {canonical})"));
        put(pg, target, value)?;
    }
    if let Some((alias, value)) = overflow {
        let max = ["connection_pool", "max_size"];
        if get(pg, &max).is_some() {
            return conflict(&alias, "postgresql.connection_pool.max_size");
        }
        let extra = value.as_u64().ok_or_else(|| invalid(&alias, "must be a whole number"))?;
        let base = match get(pg, &["connection_pool", "min_size"]) {
            Some(v) => v.as_u64().ok_or_else(|| invalid("postgresql.connection_pool.min_size", "must be a whole number"))?,
            None => u64::from(super::ConnectionPool::default().min_size),
        };
        notes.warn(format!(
            "{alias}: {extra} is SQLAlchemy's overflow above the pool size; read as postgresql.connection_pool.max_size = {} (deprecated: write max_size)",
            base + extra
        ));
        put(pg, &max, Value::Number((base + extra).into()))?;
    }
    Ok(())
}

/// Applies the seed variables of [`VARIABLES`], converted, noting each.
pub(super) fn apply_variables(tree: &mut Value, env: &Environment, notes: &mut Notes) -> Result<(), Error> {
    for (name, path, convert) in VARIABLES {
        let Some(text) = env.get(name) else { continue };
        let value = convert_value(name, text, *convert)?;
        let key = path.join(".");
        if matches!(convert, Convert::Secret) {
            notes.info(format!("{name} (seed variable) sets {key}"));
        } else {
            notes.info(format!("{name}={text} (seed variable) sets {key} = {}", shown(&value)));
        }
        put(tree, path, value)?;
    }
    if let Some(level) = env.get("BACKUP_COMPRESSION_LEVEL") {
        compression_level(tree, level, notes)?;
    }
    if env.get("SECRET_KEY").is_some() {
        notes.info(
            "SECRET_KEY (seed variable) is not used: dbagent signs no sessions (API keys are random tokens stored as digests, see security:), and it is never a backup key",
        );
    }
    Ok(())
}

/// `BACKUP_COMPRESSION_LEVEL` (seed 004, a gzip-style 0–9): 0 stores backups uncompressed;
/// 1–9 set `backup.compression_level`: as given with gzip, and with zstd (the default) the zstd
/// level closest in intent ([`ZSTD_FOR_GZIP_LEVEL`]).
fn compression_level(tree: &mut Value, text: &str, notes: &mut Notes) -> Result<(), Error> {
    let level = match text.trim().parse::<u8>() {
        Ok(level @ 0..=9) => level,
        _ => return Err(invalid("BACKUP_COMPRESSION_LEVEL", &format!("{text:?} is not a level from 0 to 9"))),
    };
    if level == 0 {
        notes.info("BACKUP_COMPRESSION_LEVEL=0 (seed variable) sets backup.compression = none");
        return put(tree, &["backup", "compression"], Value::String("none".into()));
    }
    let gzip = tree.get("backup").and_then(|b| b.get("compression")).and_then(Value::as_str) == Some("gzip");
    let (compressor, chosen) = if gzip { ("gzip", level) } else { ("zstd", ZSTD_FOR_GZIP_LEVEL[usize::from(level)]) };
    notes.info(format!("BACKUP_COMPRESSION_LEVEL={text} (seed variable) sets backup.compression_level = {chosen} ({compressor})"));
    put(tree, &["backup", "compression_level"], Value::Number(chosen.into()))
}

/// A gzip level's intent as a zstd level (index: the gzip level). zstd 1–3 compress about as
/// well as gzip 6 at several times its speed, so gzip's fast half maps to them; gzip 9 (small
/// and slow) maps to zstd 12, about as slow and clearly smaller. 19 is left to explicit config.
const ZSTD_FOR_GZIP_LEVEL: [u8; 10] = [0, 1, 1, 2, 2, 3, 3, 5, 8, 12];

fn convert_value(name: &str, text: &str, convert: Convert) -> Result<Value, Error> {
    let text = text.trim();
    match convert {
        Convert::Same => Ok(super::load::scalar(text)),
        Convert::Text | Convert::Secret => Ok(Value::String(text.to_owned())),
        Convert::SecondsToMs => match text.parse::<f64>() {
            Ok(secs) if secs >= 0.0 && secs.is_finite() => Ok(Value::Number((secs * 1000.0).into())),
            _ => Err(invalid(name, &format!("{text:?} is not a number of seconds"))),
        },
        Convert::RatioToPercent => match text.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(Value::Number(((ratio * 1e4).round() / 100.0).into())),
            _ => Err(invalid(name, &format!("{text:?} is not a ratio between 0 and 1"))),
        },
        Convert::Whole => match text.parse::<u64>() {
            Ok(n) => Ok(Value::Number(n.into())),
            Err(_) => Err(invalid(name, &format!("{text:?} is not a whole number"))),
        },
        Convert::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(invalid(name, &format!("{text:?} is not true or false"))),
        },
        Convert::LogLevel => {
            // Python's names; tracing has no CRITICAL, and its WARN is spelt shorter.
            let level = match text.to_ascii_lowercase().as_str() {
                "critical" | "fatal" | "error" => "error",
                "warning" | "warn" => "warn",
                "info" => "info",
                "debug" => "debug",
                "trace" | "notset" => "trace",
                _ => return Err(invalid(name, &format!("{text:?} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"))),
            };
            Ok(Value::String(level.into()))
        }
    }
}

/// `postgresql+asyncpg://`, `postgresql+psycopg2://`, `postgres+psycopg://` ... (SQLAlchemy
/// URLs name the Python driver after a `+`): the same server for dbagent, which has its own
/// driver. Returns the URL without the suffix, or `None` when there was none.
pub(super) fn strip_driver(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (base, driver) = scheme.split_once('+')?;
    let known = matches!(base.to_ascii_lowercase().as_str(), "postgresql" | "postgres");
    (known && !driver.is_empty()).then(|| format!("{base}://{rest}"))
}

/// Strips a driver suffix from `postgresql.url` and each replica's `url`, noting it.
pub(super) fn normalize_urls(tree: &mut Value, notes: &mut Notes) {
    let Some(pg) = section(tree, "postgresql") else { return };
    let Value::Mapping(pg) = pg else { return };
    let mut fix = |key: &str, value: &mut Value| {
        if let Value::String(url) = value
            && let Some(plain) = strip_driver(url)
        {
            let driver = url.split_once("://").and_then(|(s, _)| s.split_once('+')).map(|(_, d)| d.to_owned()).unwrap_or_default();
            notes.info(format!("{key}: the SQLAlchemy driver suffix `+{driver}` is ignored (dbagent uses its own driver)"));
            *url = plain;
        }
    };
    if let Some(url) = pg.get_mut("url") {
        fix("postgresql.url", url);
    }
    if let Some(Value::Sequence(replicas)) = pg.get_mut("read_replicas") {
        for (i, replica) in replicas.iter_mut().enumerate() {
            if let Value::Mapping(r) = replica
                && let Some(url) = r.get_mut("url")
            {
                fix(&format!("postgresql.read_replicas[{i}].url"), url);
            }
        }
    }
}

fn section<'a>(tree: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    match tree {
        Value::Mapping(map) => map.get_mut(name).filter(|v| v.is_mapping()),
        _ => None,
    }
}

fn mapping_at<'a>(node: &'a mut Value, path: &[&str]) -> Option<&'a mut Mapping> {
    let mut node = node;
    for key in path {
        node = node.as_mapping_mut()?.get_mut(*key)?;
    }
    node.as_mapping_mut()
}

fn get<'a>(node: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut node = node;
    for key in path {
        node = node.as_mapping()?.get(*key)?;
    }
    Some(node)
}

fn put(node: &mut Value, path: &[&str], value: Value) -> Result<(), Error> {
    let keys: Vec<String> = path.iter().map(|k| k.to_string()).collect();
    super::load::set_path(node, &keys, value)
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_norway::to_string(other).map(|s| s.trim().to_owned()).unwrap_or_default(),
    }
}

fn invalid(key: &str, message: &str) -> Error {
    Error::Invalid { key: key.into(), message: message.into() }
}

fn conflict<T>(alias: &str, canonical: &str) -> Result<T, Error> {
    Err(invalid(alias, &format!("given together with {canonical}, which it is an alias of; keep only {canonical}")))
}

#[cfg(test)]
mod tests;
