//! `dbagent keys ...` and `dbagent audit ...`: the same library calls as `/keys` and `/audit`.

use std::io::Write;

use clap::Subcommand;
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use super::Failure;
use crate::app::Agent;
use crate::db::{self, Purpose};
use crate::security::{self, Scope, audit, keys};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown this once; only its digest is stored).
    Create {
        #[arg(long)]
        name: String,
        /// read, write, admin (comma-separated; each includes the ones before it), and unmask
        /// beside one of them: results are not masked (`security.masking`).
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime, e.g. 90d, 12h (default: none).
        #[arg(long)]
        expires: Option<String>,
        /// Requests allowed, e.g. 50/s, 3000/m (default: security.default_rate).
        #[arg(long)]
        rate: Option<String>,
        /// Requests allowed at once above the rate (default: twice the rate per second).
        #[arg(long)]
        burst: Option<u32>,
        /// Requests in flight at once (default: security.max_concurrent, else half the pool).
        #[arg(long)]
        max_concurrent: Option<u32>,
        /// Networks or addresses it may be used from (comma-separated; default: anywhere).
        #[arg(long, value_delimiter = ',')]
        allow_from: Vec<String>,
    },
    /// Every key: status, scopes, last use (never the secrets).
    List,
    /// Revoke a key (by id, prefix or name) on every agent within a second.
    Revoke { key: String },
    /// A new secret for a key; the old one keeps working for security.rotate_grace.
    Rotate { key: String },
    /// The SQL a superuser runs once to create the roles read and write keys run as (for a
    /// server where dbagent may not create roles itself).
    RolesSql,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit rows, newest first.
    List(AuditFilterArgs),
    /// Audit rows as JSON lines or CSV, oldest first, on stdout.
    Export {
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct AuditFilterArgs {
    /// RFC 3339 time.
    #[arg(long)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long)]
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// A key id or name.
    #[arg(long)]
    key: Option<String>,
    /// An action, or a prefix such as `query.*`.
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    table: Option<String>,
    /// ok, error or denied.
    #[arg(long)]
    outcome: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

impl From<AuditFilterArgs> for audit::Filter {
    fn from(a: AuditFilterArgs) -> Self {
        audit::Filter { since: a.since, until: a.until, key: a.key, action: a.action, table: a.table, outcome: a.outcome, limit: Some(a.limit) }
    }
}

fn failed(err: security::Error) -> Failure {
    super::commands::failure(err)
}

async fn client(agent: &Agent) -> Result<tokio_postgres::Client, Failure> {
    db::admin::connect(agent.security.db(), Purpose::Security).await.map_err(|e| failed(e.into()))
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn keys_cmd(agent: &Agent, cmd: KeysCommand, as_json: bool) -> Result<(), Failure> {
    match cmd {
        KeysCommand::Create { name, scopes, expires, rate, burst, max_concurrent, allow_from } => {
            let scopes = scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>().map_err(failed)?;
            let new = keys::NewKey { name, scopes, expires, rate, burst, max_concurrent, allow_from };
            let mut client = client(agent).await?;
            security::roles::ensure(&client, &agent.config.security).await.map_err(failed)?;
            let created = keys::create(&mut client, &new).await.map_err(failed)?;
            if as_json {
                return print_json(&created);
            }
            println!("{}", created.secret);
            eprintln!(
                "created key {} ({}, scopes {}); the secret above is shown only now: store it",
                created.key.id,
                created.key.name,
                scope_list(&created.key.scopes)
            );
            Ok(())
        }
        KeysCommand::List => {
            let client = client(agent).await?;
            let all = keys::list(&client).await.map_err(failed)?;
            if as_json {
                return print_json(&all);
            }
            let mut table = Table::new();
            table.load_style(UTF8_FULL_CONDENSED).set_header(["id", "name", "scopes", "status", "created", "expires", "last used", "limits"]);
            let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into());
            for k in &all {
                let limits = match (k.rate_per_second, k.max_concurrent, k.allow_from.is_empty()) {
                    (None, None, true) => "-".to_string(),
                    (rate, conc, _) => {
                        let mut parts = Vec::new();
                        if let Some(r) = rate {
                            parts.push(format!("{r}/s"));
                        }
                        if let Some(c) = conc {
                            parts.push(format!("{c} at once"));
                        }
                        if !k.allow_from.is_empty() {
                            parts.push(format!("from {}", k.allow_from.join(" ")));
                        }
                        parts.join(", ")
                    }
                };
                table.add_row([
                    k.id.clone(),
                    k.name.clone(),
                    scope_list(&k.scopes),
                    k.status.to_string(),
                    when(Some(k.created_at)),
                    when(k.expires_at),
                    when(k.last_used_at),
                    limits,
                ]);
            }
            println!("{table}");
            Ok(())
        }
        KeysCommand::Revoke { key } => {
            let mut client = client(agent).await?;
            let revoked = keys::revoke(&mut client, &key).await.map_err(failed)?;
            if as_json {
                return print_json(&revoked);
            }
            println!("revoked key {} ({})", revoked.id, revoked.name);
            Ok(())
        }
        KeysCommand::Rotate { key } => {
            let mut client = client(agent).await?;
            let created = keys::rotate(&mut client, &key, agent.config.security.rotate_grace()).await.map_err(failed)?;
            if as_json {
                return print_json(&created);
            }
            println!("{}", created.secret);
            eprintln!(
                "key {} replaces {key}, which keeps working for {}; the secret above is shown only now",
                created.key.id, agent.config.security.rotate_grace
            );
            Ok(())
        }
        KeysCommand::RolesSql => {
            print!("{}", security::roles::grant_script(&agent.config.security).map_err(failed)?);
            Ok(())
        }
    }
}

fn scope_list(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

pub async fn audit_cmd(agent: &Agent, cmd: AuditCommand, as_json: bool) -> Result<(), Failure> {
    let client = client(agent).await?;
    match cmd {
        AuditCommand::List(filter) => {
            let rows = audit::list(&client, &filter.into()).await.map_err(failed)?;
            if as_json {
                return print_json(&rows);
            }
            let mut table = Table::new();
            table.load_style(UTF8_FULL_CONDENSED).set_header(["time", "key", "from", "action", "outcome", "status", "ms", "statement / related"]);
            for r in &rows {
                let e = &r.entry;
                let what = e.statement.clone().or_else(|| e.related.clone()).unwrap_or_default();
                let what: String = if what.chars().count() > 60 { what.chars().take(59).chain(['…']).collect() } else { what };
                table.add_row(vec![
                    Cell::new(e.at.format("%Y-%m-%d %H:%M:%S")),
                    Cell::new(e.key_name.clone().or_else(|| e.key_id.clone()).unwrap_or_else(|| "-".into())),
                    Cell::new(e.remote_addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into())),
                    Cell::new(&e.action),
                    Cell::new(&e.outcome),
                    Cell::new(e.status).set_alignment(CellAlignment::Right),
                    Cell::new(format!("{:.1}", e.duration_ms)).set_alignment(CellAlignment::Right),
                    Cell::new(what),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        AuditCommand::Export { filter, format } => {
            let mut rows = audit::list(&client, &filter.into()).await.map_err(failed)?;
            rows.reverse();
            let mut out = std::io::stdout().lock();
            match format.as_str() {
                "jsonl" => {
                    for r in &rows {
                        writeln!(out, "{}", serde_json::to_string(r)?)?;
                    }
                }
                "csv" => write_csv(&mut out, &rows)?,
                other => return Err(failed(security::Error::Invalid(format!("--format {other:?}: use jsonl or csv")))),
            }
            Ok(())
        }
    }
}

/// RFC 4180 CSV, written by hand: a dozen lines for one flat record type is less than a
/// dependency.
fn write_csv(out: &mut impl Write, rows: &[audit::Row]) -> std::io::Result<()> {
    const HEADER: [&str; 20] = [
        "id", "at", "agent", "request_id", "key_id", "key_name", "remote_addr", "user_agent", "method", "route", "action", "fingerprint",
        "statement", "tables_read", "tables_written", "outcome", "status", "error_code", "sqlstate", "duration_ms",
    ];
    fn field(text: &str) -> String {
        if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
    }
    writeln!(out, "{}", HEADER.join(","))?;
    for r in rows {
        let e = &r.entry;
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let cells = [
            r.id.to_string(),
            e.at.to_rfc3339(),
            r.agent.clone(),
            opt(&e.request_id),
            opt(&e.key_id),
            opt(&e.key_name),
            e.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
            opt(&e.user_agent),
            e.method.clone(),
            e.route.clone(),
            e.action.clone(),
            opt(&e.fingerprint),
            opt(&e.statement),
            e.tables_read.join(" "),
            e.tables_written.join(" "),
            e.outcome.clone(),
            e.status.to_string(),
            opt(&e.error_code),
            opt(&e.sqlstate),
            format!("{:.3}", e.duration_ms),
        ];
        writeln!(out, "{}", cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(","))?;
    }
    Ok(())
}
