//! Reading the configuration: file, `${VAR}` expansion, environment overrides, typed decoding.
//!
//! The file is decoded into a YAML tree first so that expansion and overrides work on values
//! (never on raw text, where a `$` in a password could break the syntax), then the tree is
//! decoded into [`Config`] with the failing key's path kept for the error message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::{Config, Error, seed};

/// The environment variables dbagent reads, captured once so that loading is a pure function
/// of its inputs (tests pass their own).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    /// What a `.env` file contributed, for the start-up log; or why it could not be read.
    dotenv: Option<Result<DotEnv, String>>,
}

/// A `.env` file that was read: its path and the variables taken from it.
#[derive(Debug, Clone)]
struct DotEnv {
    path: PathBuf,
    taken: usize,
    shadowed: usize,
}

impl Environment {
    /// The process's environment, completed by `./.env` when there is one (seeds 001 and 004
    /// keep their settings there). The only place dbagent reads environment variables.
    pub fn from_process() -> Self {
        Environment { vars: std::env::vars().collect(), dotenv: None }.with_dotenv(Path::new(".env"))
    }

    pub fn from_pairs<I: IntoIterator<Item = (K, V)>, K: Into<String>, V: Into<String>>(pairs: I) -> Self {
        Environment { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(), dotenv: None }
    }

    /// Adds the variables of the dotenv file at `path` (if it exists) that the environment
    /// does not set: a real environment variable always wins, as with every dotenv loader.
    /// The file is parsed by `dotenvy` (quotes, `export`, comments, `${VAR}` substitution),
    /// never written into the process's environment, so child processes do not inherit it.
    pub fn with_dotenv(mut self, path: &Path) -> Self {
        let iter = match dotenvy::from_path_iter(path) {
            Ok(iter) => iter,
            Err(err) if err.not_found() => return self,
            Err(err) => {
                self.dotenv = Some(Err(format!("{}: {err}", path.display())));
                return self;
            }
        };
        let (mut taken, mut shadowed) = (0, 0);
        for item in iter {
            match item {
                Ok((name, _)) if self.vars.contains_key(&name) => shadowed += 1,
                Ok((name, value)) => {
                    self.vars.insert(name, value);
                    taken += 1;
                }
                Err(err) => {
                    self.dotenv = Some(Err(format!("{}: {err}", path.display())));
                    return self;
                }
            }
        }
        self.dotenv = Some(Ok(DotEnv { path: path.to_path_buf(), taken, shadowed }));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// Prefix of generic overrides: `DBAGENT_POSTGRESQL__QUERY_TIMEOUT=5` sets `postgresql.query_timeout`.
const PREFIX: &str = "DBAGENT_";

/// Variables with the prefix that are not `SECTION__KEY` overrides.
const DEDICATED: [&str; 1] = ["DBAGENT_ADMIN_KEY"];

/// Loads, expands, overrides, decodes and validates the configuration.
///
/// `path` is `--config`; without it `CONFIG_PATH`, then `./dbagent.yaml`, then seed 000's
/// `./config.yaml`, whichever exists first.
pub fn load(path: Option<&Path>, env: &Environment) -> Result<Config, Error> {
    let mut notes = seed::Notes::default();
    match &env.dotenv {
        Some(Err(message)) => return Err(Error::Invalid { key: ".env".into(), message: message.clone() }),
        Some(Ok(d)) => notes.info(format!(
            "read {}: {} variable(s) taken, {} already set in the environment (the environment wins)",
            d.path.display(),
            d.taken,
            d.shadowed
        )),
        None => {}
    }
    let file = config_path(path, env, &mut notes);
    let mut tree = match &file {
        Some(path) => read_file(path)?,
        None => Value::Mapping(Mapping::new()),
    };
    expand_tree(&mut tree, "", env)?;
    seed::rewrite_aliases(&mut tree, &mut notes)?;
    apply_prefixed_overrides(&mut tree, env)?;
    apply_seed_variables(&mut tree, env)?;
    seed::apply_variables(&mut tree, env, &mut notes)?;
    seed::normalize_urls(&mut tree, &mut notes);
    let mut config: Config = decode(tree)?;
    config.validate()?;
    config.provenance = super::Provenance { file, info: notes.info, warnings: notes.warnings };
    Ok(config)
}

/// The file to read, noting a choice the user may not expect.
fn config_path(explicit: Option<&Path>, env: &Environment, notes: &mut seed::Notes) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env.get("CONFIG_PATH") {
        return Some(PathBuf::from(path));
    }
    default_file(Path::new("."), notes)
}

/// `dbagent.yaml` in `dir`, else seed 000's `config.yaml`; both present, ours wins (warned).
pub(super) fn default_file(dir: &Path, notes: &mut seed::Notes) -> Option<PathBuf> {
    let (ours, seeds) = (dir.join("dbagent.yaml"), dir.join("config.yaml"));
    match (ours.exists(), seeds.exists()) {
        (true, true) => {
            notes.warn("both ./dbagent.yaml and ./config.yaml exist: reading dbagent.yaml, ignoring config.yaml");
            Some(ours)
        }
        (true, false) => Some(ours),
        (false, true) => Some(seeds),
        (false, false) => None,
    }
}

fn read_file(path: &Path) -> Result<Value, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let value: Value =
        serde_norway::from_str(&text).map_err(|source| Error::Syntax { path: path.to_path_buf(), source })?;
    match value {
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        Value::Mapping(_) => Ok(value),
        _ => Err(Error::Invalid { key: "(top level)".into(), message: "the file must be a mapping of sections".into() }),
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string value; `$${` escapes a literal `${`.
fn expand_tree(value: &mut Value, key: &str, env: &Environment) -> Result<(), Error> {
    match value {
        Value::String(s) if s.contains("${") => {
            *s = expand(s, env).map_err(|message| Error::Invalid { key: key.into(), message })?;
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let name = k.as_str().unwrap_or("?");
                expand_tree(v, &join(key, name), env)?;
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                expand_tree(v, &format!("{key}[{i}]"), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands one string. Written by hand: the grammar is three rules and no crate matches it
/// exactly (shell crates also expand `$VAR` and `~`, which would corrupt passwords).
pub(crate) fn expand(input: &str, env: &Environment) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body.find('}').ok_or_else(|| format!("unclosed `${{` in {input:?}"))?;
            let (name, default) = match body[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&body[..end], None),
            };
            match (env.get(name), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("environment variable {name} is not set (write ${{{name}:-default}} for a default)")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn apply_prefixed_overrides(tree: &mut Value, env: &Environment) -> Result<(), Error> {
    for (name, value) in &env.vars {
        let Some(path) = name.strip_prefix(PREFIX) else { continue };
        if DEDICATED.contains(&name.as_str()) {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            continue;
        }
        set_path(tree, &keys, scalar(value))?;
    }
    Ok(())
}

/// The seeds' variables, applied last so that they win as they did there.
fn apply_seed_variables(tree: &mut Value, env: &Environment) -> Result<(), Error> {
    let pool = ["postgresql", "connection_pool"];
    let mut set = |keys: &[&str], value: Value| {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        set_path(tree, &keys, value)
    };
    if let Some(url) = env.get("DATABASE_URL") {
        set(&["postgresql", "url"], Value::String(url.into()))?;
    }
    let pool_size = env.get("DB_POOL_SIZE").map(scalar);
    if let Some(size) = &pool_size {
        set(&[pool[0], pool[1], "min_size"], size.clone())?;
    }
    // SQLAlchemy's meaning: the pool keeps `pool_size` and may open `max_overflow` more.
    if let Some(overflow) = env.get("DB_MAX_OVERFLOW") {
        let base = pool_size.as_ref().and_then(Value::as_u64).unwrap_or(super::ConnectionPool::default().min_size as u64);
        let overflow = overflow.parse::<u64>().map_err(|_| Error::Invalid {
            key: "DB_MAX_OVERFLOW".into(),
            message: format!("{overflow:?} is not a whole number"),
        })?;
        set(&[pool[0], pool[1], "max_size"], Value::Number((base + overflow).into()))?;
    } else if let Some(size) = pool_size.as_ref().and_then(Value::as_u64) {
        // A pool size above the default maximum raises the maximum with it.
        if size > super::ConnectionPool::default().max_size as u64 {
            set(&[pool[0], pool[1], "max_size"], Value::Number(size.into()))?;
        }
    }
    for (var, key) in [("DB_POOL_TIMEOUT", "timeout"), ("DB_POOL_RECYCLE", "recycle")] {
        if let Some(v) = env.get(var) {
            set(&[pool[0], pool[1], key], scalar(v))?;
        }
    }
    if let Some(v) = env.get("DB_ECHO_SQL") {
        set(&["postgresql", "echo_sql"], scalar(&v.to_ascii_lowercase()))?;
    }
    if let Some(v) = env.get("REDIS_URL") {
        set(&["caching", "redis_url"], Value::String(v.into()))?;
    }
    if let Some(v) = env.get("BACKUP_ENCRYPTION_KEY") {
        set(&["backup", "encryption_key"], Value::String(v.into()))?;
    }
    if let Some(v) = env.get("DBAGENT_ADMIN_KEY") {
        set(&["security", "admin_key"], Value::String(v.into()))?;
    }
    if let Some(v) = env.get("DB_METRICS_RETENTION_HOURS") {
        set(&["monitoring", "retention_hours"], scalar(v))?;
    }
    if let Some(v) = env.get("PG_BIN") {
        set(&["instance", "bin_dir"], Value::String(v.into()))?;
    }
    Ok(())
}

/// An environment value read as a YAML scalar, so `10` is a number and `true` a boolean.
pub(super) fn scalar(text: &str) -> Value {
    match serde_norway::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => v,
        _ => Value::String(text.to_string()),
    }
}

pub(super) fn set_path(tree: &mut Value, keys: &[String], value: Value) -> Result<(), Error> {
    let mut node = tree;
    for (i, key) in keys.iter().enumerate() {
        let map = match node {
            Value::Mapping(map) => map,
            _ => {
                return Err(Error::Invalid { key: keys[..i].join("."), message: "is not a section".into() });
            }
        };
        let key = Value::String(key.clone());
        if i + 1 == keys.len() {
            map.insert(key, value);
            return Ok(());
        }
        node = map.entry(key).or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    Ok(())
}

fn decode(tree: Value) -> Result<Config, Error> {
    serde_path_to_error::deserialize(tree).map_err(|err| {
        let key = err.path().to_string();
        let message = err.inner().to_string();
        Error::Invalid { key: if key == "." { "(top level)".into() } else { key }, message }
    })
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn expansion_rules() {
        let e = env(&[("A", "x"), ("EMPTY", "")]);
        let cases = [
            ("plain", Ok("plain")),
            ("${A}", Ok("x")),
            ("a${A}b${A}", Ok("axbx")),
            ("${B:-dflt}", Ok("dflt")),
            ("${EMPTY:-d}", Ok("d")),
            ("$${A}", Ok("${A}")),
            ("p@$$word", Ok("p@$$word")),
            ("${B}", Err(())),
            ("${A", Err(())),
        ];
        for (input, want) in cases {
            let got = expand(input, &e).map_err(|_| ());
            assert_eq!(got.as_deref(), want.as_deref().map_err(|_| &()), "{input}");
        }
    }

    fn load_yaml(yaml: &str, pairs: &[(&str, &str)]) -> Result<Config, Error> {
        let dir = std::env::temp_dir().join(format!("dbagent-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dbagent.yaml");
        std::fs::write(&path, yaml).unwrap();
        let result = load(Some(&path), &env(pairs));
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    #[test]
    fn unknown_key_is_reported_with_its_path() {
        let err = load_yaml("postgresql:\n  connection_pool:\n    max_sise: 3\n", &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("postgresql.connection_pool"), "{text}");
        assert!(text.contains("max_sise"), "{text}");
    }

    #[test]
    fn bad_value_is_reported_with_its_path() {
        let err = load_yaml("postgresql:\n  query_timeout: soon\n", &[]).unwrap_err();
        assert!(err.to_string().contains("postgresql.query_timeout"), "{err}");
        let err = load_yaml("postgresql:\n  connection_pool: {min_size: 9, max_size: 2}\n", &[]).unwrap_err();
        assert!(err.to_string().contains("postgresql.connection_pool.min_size"), "{err}");
        let err = load_yaml("postgresql:\n  connection_pool: {multiplex_depth: 0}\n", &[]).unwrap_err();
        assert!(err.to_string().contains("postgresql.connection_pool.multiplex_depth"), "{err}");
        let err = load_yaml("postgresql:\n  connection_pool: {multiplex_max_ms: -1}\n", &[]).unwrap_err();
        assert!(err.to_string().contains("postgresql.connection_pool.multiplex_max_ms"), "{err}");
    }

    #[test]
    fn an_unknown_compression_stops_start_up_naming_the_key() {
        let err = load_yaml("backup:\n  compression: lz4\n", &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("backup.compression"), "{text}");
        assert!(text.contains("lz4"), "{text}");
        let err = load_yaml("", &[("DBAGENT_BACKUP__COMPRESSION", "zst")]).unwrap_err();
        assert!(err.to_string().contains("backup.compression"), "{err}");
        for (name, expected) in [("zstd", Compression::Zstd), ("gzip", Compression::Gzip), ("none", Compression::None)] {
            let cfg = load_yaml(&format!("backup:\n  compression: {name}\n"), &[]).unwrap();
            assert_eq!(cfg.backup.compression, expected, "{name}");
        }
    }

    #[test]
    fn environment_overrides_file_and_seed_variables_apply() {
        let yaml = "postgresql:\n  url: postgresql://u:${PW}@h/db\n  query_timeout: 30\n";
        let cfg = load_yaml(
            yaml,
            &[
                ("PW", "s3cr$t"),
                ("DBAGENT_POSTGRESQL__QUERY_TIMEOUT", "5"),
                ("DB_POOL_SIZE", "4"),
                ("DB_MAX_OVERFLOW", "6"),
                ("DB_POOL_TIMEOUT", "2.5"),
                ("DB_ECHO_SQL", "True"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.postgresql.url.as_ref().unwrap().expose(), "postgresql://u:s3cr$t@h/db");
        assert_eq!(cfg.postgresql.query_timeout, 5.0);
        assert_eq!(cfg.postgresql.connection_pool.min_size, 4);
        assert_eq!(cfg.postgresql.connection_pool.max_size, 10);
        assert_eq!(cfg.postgresql.connection_pool.timeout, 2.5);
        assert!(cfg.postgresql.echo_sql);
    }

    #[test]
    fn seed_004s_metrics_retention_sets_the_history_retention() {
        let cfg = load_yaml("", &[("DB_METRICS_RETENTION_HOURS", "72")]).unwrap();
        assert_eq!(cfg.monitoring.retention_hours, 72);
    }

    #[test]
    fn database_url_wins_over_the_file() {
        let cfg = load_yaml("postgresql:\n  url: postgresql://file/db\n", &[("DATABASE_URL", "postgresql://env/db")]).unwrap();
        assert_eq!(cfg.postgresql.url.unwrap().expose(), "postgresql://env/db");
    }

    #[test]
    fn unset_variable_names_the_key() {
        let err = load_yaml("postgresql:\n  password: ${NOPE}\n", &[]).unwrap_err();
        assert!(err.to_string().contains("postgresql.password"), "{err}");
        assert!(err.to_string().contains("NOPE"), "{err}");
    }

    #[test]
    fn the_example_file_documents_valid_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dbagent.example.yaml");
        let cfg = load(Some(&path), &env(&[])).unwrap();
        assert_eq!(cfg.postgresql.connection_pool.max_size, 50);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let cfg = load_yaml("", &[]).unwrap();
        assert_eq!(cfg.server.port, 8016);
        assert!(!cfg.postgresql.is_configured());
    }
}
