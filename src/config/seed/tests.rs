//! The seeds' configuration files and environments, as they wrote them.

use std::path::{Path, PathBuf};

use crate::config::{Compression, Config, Environment, Error, load};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("dbagent-seed-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_with(yaml: &str, env: Environment) -> Result<Config, Error> {
    let dir = TempDir::new();
    let path = dir.write("config.yaml", yaml);
    load(Some(&path), &env)
}

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().copied())
}

/// Seed 000's configuration reference, every section but `monitoring:` (which belongs to
/// `config/monitoring.rs`), copied as written.
const SEED_000_CONFIG: &str = r#"
postgresql:
  host: "localhost"
  port: 5432
  database: "learn_your_way"
  user: "postgres"
  password: "${POSTGRES_PASSWORD}"

  connection_pool:
    min_size: 10      # Minimum connections
    max_size: 50      # Maximum connections
    timeout: 30       # Connection timeout (seconds)

  query_timeout: 30   # Query timeout (seconds)

  read_replicas:
    - host: "replica1.example.com"
      port: 5432
      database: "learn_your_way"
      user: "postgres"
      password: "${POSTGRES_PASSWORD}"

migrations:
  directory: "./migrations"
  auto_migrate: true              # Run migrations on startup
  backup_before_migrate: true     # Backup before migration

transactions:
  isolation_level: "read_committed"  # Isolation level
  max_retries: 3                     # Retry attempts
  retry_delay: 1                     # Delay between retries

optimization:
  enable_query_cache: true
  prepared_statements: true
  slow_query_log: true
  slow_query_threshold_ms: 1000  # Log queries > 1 second

backup:
  enable: true
  schedule: "0 2 * * *"      # 2 AM daily (cron format)
  retention_days: 30         # Keep backups for 30 days
  location: "./backups"      # Backup directory

caching:
  enable: true
  redis_url: "redis://localhost:6379/0"
  query_cache_ttl: 300  # Cache for 5 minutes
"#;

#[test]
fn seed_000_config_yaml_loads_as_written() {
    let cfg = load_with(SEED_000_CONFIG, env(&[("POSTGRES_PASSWORD", "your_password")])).unwrap();
    assert_eq!(cfg.postgresql.database.as_deref(), Some("learn_your_way"));
    assert_eq!(cfg.postgresql.password.as_ref().unwrap().expose(), "your_password");
    assert_eq!(cfg.postgresql.read_replicas.len(), 1);
    assert!(cfg.migrations.auto_migrate);
    assert_eq!(cfg.backup.location, Path::new("./backups"));
    assert!(cfg.provenance.warnings.is_empty(), "{:?}", cfg.provenance.warnings);
}

#[test]
fn config_yaml_is_the_default_file_when_dbagent_yaml_is_absent() {
    let dir = TempDir::new();
    let mut notes = super::Notes::default();
    assert_eq!(super::super::load::default_file(&dir.0, &mut notes), None);
    let seeds = dir.write("config.yaml", "server: {port: 9001}\n");
    assert_eq!(super::super::load::default_file(&dir.0, &mut notes), Some(seeds));
    assert!(notes.warnings.is_empty());
    let ours = dir.write("dbagent.yaml", "server: {port: 9002}\n");
    assert_eq!(super::super::load::default_file(&dir.0, &mut notes), Some(ours));
    assert!(notes.warnings[0].contains("ignoring config.yaml"), "{:?}", notes.warnings);
}

#[test]
fn sqlalchemy_names_in_the_file_are_aliases_with_a_deprecation_note() {
    // Seed 001's engine arguments, written into the file under `postgresql:`.
    let yaml = "postgresql:\n  pool_size: 5\n  max_overflow: 10\n  pool_timeout: 30\n  pool_recycle: 3600\n  pool_pre_ping: true\n  echo_sql: false\n";
    let cfg = load_with(yaml, env(&[])).unwrap();
    let pool = &cfg.postgresql.connection_pool;
    assert_eq!((pool.min_size, pool.max_size, pool.timeout, pool.recycle, pool.pre_ping), (5, 15, 30.0, 3600, true));
    assert!(!cfg.postgresql.echo_sql);
    let warnings = cfg.provenance.warnings.join("\n");
    for alias in ["postgresql.pool_size", "postgresql.max_overflow", "postgresql.pool_timeout", "postgresql.pool_recycle", "postgresql.pool_pre_ping"] {
        assert!(warnings.contains(alias), "no note for {alias}: {warnings}");
    }
    assert!(warnings.contains("deprecated"), "{warnings}");

    // The same names under `connection_pool:`, where a reader of seed 000 would put them.
    let yaml = "postgresql:\n  connection_pool:\n    pool_size: 20\n    max_overflow: 30\n    echo_sql: true\n";
    let cfg = load_with(yaml, env(&[])).unwrap();
    assert_eq!((cfg.postgresql.connection_pool.min_size, cfg.postgresql.connection_pool.max_size), (20, 50));
    assert!(cfg.postgresql.echo_sql);
}

#[test]
fn an_alias_beside_its_dbagent_key_and_unknown_keys_are_errors() {
    let err = load_with("postgresql:\n  pool_size: 5\n  connection_pool: {min_size: 4}\n", env(&[])).unwrap_err().to_string();
    assert!(err.contains("postgresql.pool_size") && err.contains("min_size"), "{err}");
    let err = load_with("postgresql:\n  max_overflow: 5\n  connection_pool: {max_size: 40}\n", env(&[])).unwrap_err().to_string();
    assert!(err.contains("max_overflow"), "{err}");
    let err = load_with("postgresql:\n  pool_sise: 5\n", env(&[])).unwrap_err().to_string();
    assert!(err.contains("pool_sise"), "{err}");
    let err = load_with("postgresql:\n  max_overflow: lots\n", env(&[])).unwrap_err().to_string();
    assert!(err.contains("postgresql.max_overflow"), "{err}");
}

#[test]
fn sqlalchemy_database_urls_connect_to_the_same_server() {
    // Seeds 001 and 004: DATABASE_URL=postgresql+asyncpg://user:password@localhost:5432/dbname
    for (url, db) in [
        ("postgresql+asyncpg://user:password@localhost:5432/dbname", "dbname"),
        ("postgresql+psycopg2://user:password@db.example:5433/pixel_ai_db", "pixel_ai_db"),
        ("postgres://user:password@localhost/learn_your_way", "learn_your_way"),
    ] {
        let cfg = load_with("", env(&[("DATABASE_URL", url)])).unwrap();
        let conn = crate::db::conninfo::primary(&cfg.postgresql).unwrap();
        assert_eq!(conn.get_dbname(), Some(db), "{url}");
        assert_eq!(conn.get_user(), Some("user"), "{url}");
        assert_eq!(conn.get_password(), Some(&b"password"[..]), "{url}");
    }
    let cfg = load_with("postgresql:\n  url: postgresql+asyncpg://u:p@h/db\n", env(&[])).unwrap();
    assert_eq!(cfg.postgresql.url.unwrap().expose(), "postgresql://u:p@h/db");
    assert!(cfg.provenance.info.iter().any(|n| n.contains("+asyncpg")), "{:?}", cfg.provenance.info);
    assert_eq!(super::strip_driver("mysql+pymysql://h/db"), None);
    assert_eq!(super::strip_driver("postgresql://h/db"), None);
}

/// Seed 004's `.env`, the variables that are this module's (the pool ones are `load.rs`'s;
/// `DB_METRICS_RETENTION_HOURS` and `DB_HEALTH_CHECK_INTERVAL` set `monitoring:` keys and
/// `DB_AUDIT_*` / `SECRET_KEY` the security section's).
const SEED_004_ENV: &str = "\
# Database Configuration
DATABASE_URL=postgresql+asyncpg://user:password@localhost:5432/pixel_ai_db
DB_POOL_SIZE=10
DB_MAX_OVERFLOW=20
DB_POOL_TIMEOUT=30
DB_POOL_RECYCLE=3600

# Monitoring Settings
DB_SLOW_QUERY_THRESHOLD=1.0

# Backup Configuration
BACKUP_DIRECTORY=/app/backups
BACKUP_ENCRYPTION_KEY=your-32-character-encryption-key-here
BACKUP_RETENTION_DAYS=30
BACKUP_COMPRESSION_LEVEL=6

# Redis Configuration
REDIS_URL=redis://localhost:6379/0
";

#[test]
fn seed_004_dotenv_file_is_read_and_mapped_with_units_converted() {
    let dir = TempDir::new();
    let path = dir.write(".env", SEED_004_ENV);
    // The real environment wins over the file.
    let env = env(&[("BACKUP_RETENTION_DAYS", "90")]).with_dotenv(&path);
    let cfg = load(None, &env).unwrap();
    assert_eq!(cfg.postgresql.url.as_ref().unwrap().expose(), "postgresql://user:password@localhost:5432/pixel_ai_db");
    let pool = &cfg.postgresql.connection_pool;
    assert_eq!((pool.min_size, pool.max_size), (10, 30));
    assert_eq!(cfg.optimization.slow_query_threshold_ms, 1000.0);
    assert_eq!(cfg.backup.location, Path::new("/app/backups"));
    assert_eq!(cfg.backup.retention_days, Some(90));
    assert_eq!(cfg.backup.compression, Compression::Zstd);
    // gzip's 6 is zstd's 3: about the same ratio, several times faster.
    assert_eq!(cfg.backup.compression_level, Some(3));
    assert_eq!(cfg.backup.encryption_key.as_ref().unwrap().expose(), "your-32-character-encryption-key-here");
    assert_eq!(cfg.caching.redis_url.as_ref().unwrap().expose(), "redis://localhost:6379/0");
    let info = cfg.provenance.info.join("\n");
    assert!(info.contains(".env") && info.contains("1 already set"), "{info}");
    assert!(info.contains("DB_SLOW_QUERY_THRESHOLD=1.0") && info.contains("slow_query_threshold_ms"), "{info}");
    // And the key is one the backup settings accept (as a passphrase).
    crate::backup::Settings::from_config(&cfg).unwrap();
}

#[test]
fn logging_variables_of_seed_004() {
    // Seed 004: "LOG_LEVEL=DEBUG / DB_ENABLE_QUERY_LOGGING=true".
    let cfg = load_with("", env(&[("LOG_LEVEL", "DEBUG"), ("DB_ENABLE_QUERY_LOGGING", "true")])).unwrap();
    assert_eq!(cfg.logging.level, "debug");
    assert!(cfg.postgresql.echo_sql);
    for (python, tracing) in [("WARNING", "warn"), ("CRITICAL", "error"), ("info", "info")] {
        assert_eq!(load_with("", env(&[("LOG_LEVEL", python)])).unwrap().logging.level, tracing);
    }
    let err = load_with("", env(&[("LOG_LEVEL", "LOUD")])).unwrap_err().to_string();
    assert!(err.contains("LOG_LEVEL"), "{err}");
    let err = load_with("", env(&[("DB_SLOW_QUERY_THRESHOLD", "soon")])).unwrap_err().to_string();
    assert!(err.contains("DB_SLOW_QUERY_THRESHOLD"), "{err}");
    let cfg = load_with("", env(&[("DB_SLOW_QUERY_THRESHOLD", "0.25")])).unwrap();
    assert_eq!(cfg.optimization.slow_query_threshold_ms, 250.0);
    let cfg = load_with("", env(&[("BACKUP_COMPRESSION_LEVEL", "0")])).unwrap();
    assert_eq!(cfg.backup.compression, Compression::None);
    assert!(load_with("", env(&[("BACKUP_COMPRESSION_LEVEL", "12")])).is_err());
    let cfg = load_with("", env(&[("BACKUP_COMPRESSION_LEVEL", "9")])).unwrap();
    assert_eq!((cfg.backup.compression, cfg.backup.compression_level), (Compression::Zstd, Some(12)));
    let cfg = load_with("backup:\n  compression: gzip\n", env(&[("BACKUP_COMPRESSION_LEVEL", "9")])).unwrap();
    assert_eq!((cfg.backup.compression, cfg.backup.compression_level), (Compression::Gzip, Some(9)));
    let err = load_with("backup:\n  compression: gzip\n  compression_level: 12\n", env(&[])).unwrap_err().to_string();
    assert!(err.contains("backup.compression_level") && err.contains("1 to 9"), "{err}");
    let err = load_with("backup:\n  compression: none\n  compression_level: 3\n", env(&[])).unwrap_err().to_string();
    assert!(err.contains("backup.compression_level"), "{err}");
}

#[test]
fn a_broken_dotenv_file_stops_start_up_naming_it() {
    let dir = TempDir::new();
    let path = dir.write(".env", "GOOD=1\nBAD LINE WITHOUT EQUALS\n");
    let err = load(None, &env(&[]).with_dotenv(&path)).unwrap_err().to_string();
    assert!(err.contains(".env"), "{err}");
    // No file is no error.
    load(None, &env(&[]).with_dotenv(&dir.0.join("missing.env"))).unwrap();
}

/// Seed 004's alert thresholds (ratios) become percent; its SMTP settings fill `alerts.smtp`
/// and the comma list of recipients `alerts.email_to`; the password is never in the notes.
#[test]
fn seed_004_alert_variables_set_the_alerts_section() {
    let cfg = load_with(
        "",
        env(&[
            ("ALERT_CONNECTION_THRESHOLD", "0.8"),
            ("ALERT_RESPONSE_TIME_THRESHOLD", "2000"),
            ("ALERT_ERROR_RATE_THRESHOLD", "0.05"),
            ("SMTP_SERVER", "smtp.example.org"),
            ("SMTP_PORT", "587"),
            ("SMTP_USERNAME", "me@example.org"),
            ("SMTP_PASSWORD", "hunter2"),
            ("ALERT_EMAIL_TO", "admin@example.org,dba@example.org"),
        ]),
    )
    .unwrap();
    let alerts = &cfg.alerts;
    assert_eq!(alerts.rules["connections"].warning, Some(80.0));
    assert_eq!(alerts.rules["response_time"].warning, Some(2000.0));
    assert_eq!(alerts.rules["error_rate"].warning, Some(5.0));
    assert_eq!(alerts.smtp.server.as_deref(), Some("smtp.example.org"));
    assert_eq!(alerts.smtp.password.as_ref().map(|p| p.expose()), Some("hunter2"));
    assert_eq!(alerts.email_to, ["admin@example.org", "dba@example.org"]);
    assert!(cfg.provenance.info.iter().all(|n| !n.contains("hunter2")), "{:?}", cfg.provenance.info);
    assert!(load_with("", env(&[("ALERT_CONNECTION_THRESHOLD", "80")])).is_err(), "a ratio, not a percent");
}
