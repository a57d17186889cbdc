//! `dbagent roles ...` and `dbagent security check`: the same library calls as `/roles`,
//! `/grants` and `/security/compliance`. A password is read from stdin (`--password-stdin`),
//! never from an argument, which any user of the host could read in the process list.

use clap::{Args, Subcommand, ValueEnum};

use super::Failure;
use crate::access::grants::{self, GrantRequest, On, Privilege};
use crate::access::list::{self, RoleFilter};
use crate::access::password::Password;
use crate::access::roles::{self, DropOptions, NewRole, RoleChange, ValidUntil};
use crate::app::Agent;
use crate::compliance::{self, Status};

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Roles with their attributes, memberships and privileges in this database.
    List {
        /// One role.
        #[arg(long)]
        role: Option<String>,
        /// PostgreSQL's pg_* roles too.
        #[arg(long)]
        include_system: bool,
    },
    /// Create a role (never SUPERUSER, REPLICATION or BYPASSRLS).
    Create {
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// A role that cannot log in (a group).
        #[arg(long)]
        no_login: bool,
        /// RFC 3339 time, or `infinity`.
        #[arg(long, value_parser = valid_until)]
        valid_until: Option<ValidUntil>,
        #[arg(long)]
        connection_limit: Option<u32>,
        #[arg(long)]
        createdb: bool,
        #[arg(long)]
        createrole: bool,
        /// Roles it joins (comma-separated).
        #[arg(long, value_delimiter = ',')]
        in_role: Vec<String>,
    },
    /// Change a role: password, expiry, login, connection limit, CREATEDB/CREATEROLE, name.
    Alter {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        login: Option<bool>,
        #[arg(long, value_parser = valid_until)]
        valid_until: Option<ValidUntil>,
        /// -1 removes the limit.
        #[arg(long, allow_hyphen_values = true)]
        connection_limit: Option<i32>,
        #[arg(long)]
        createdb: Option<bool>,
        #[arg(long)]
        createrole: Option<bool>,
        #[arg(long)]
        rename_to: Option<String>,
    },
    /// Drop a role (refused while it owns objects or holds privileges, which are listed).
    Drop {
        name: String,
        /// REASSIGN OWNED to this role, DROP OWNED, then drop.
        #[arg(long)]
        reassign_to: Option<String>,
        /// DROP OWNED (drops what it owns in this database), then drop.
        #[arg(long)]
        drop_owned: bool,
    },
    /// GRANT privileges.
    Grant(GrantArgs),
    /// REVOKE privileges.
    Revoke(GrantArgs),
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The grantee (PUBLIC for everyone).
    #[arg(long)]
    role: String,
    /// SELECT, INSERT, UPDATE, DELETE, USAGE, CREATE (comma-separated).
    #[arg(long, value_delimiter = ',', required = true, value_parser = privilege)]
    privileges: Vec<Privilege>,
    /// table, schema, sequence, all-tables-in-schema, all-sequences-in-schema.
    #[arg(long, value_enum)]
    on: OnArg,
    /// The table or sequence, or the schema for the schema kinds.
    name: String,
    /// The table's or sequence's schema (default public).
    #[arg(long)]
    schema: Option<String>,
    #[arg(long)]
    default_privileges: bool,
    #[arg(long)]
    with_grant_option: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnArg {
    Table,
    Schema,
    Sequence,
    AllTablesInSchema,
    AllSequencesInSchema,
}

impl From<OnArg> for On {
    fn from(on: OnArg) -> On {
        match on {
            OnArg::Table => On::Table,
            OnArg::Schema => On::Schema,
            OnArg::Sequence => On::Sequence,
            OnArg::AllTablesInSchema => On::AllTablesInSchema,
            OnArg::AllSequencesInSchema => On::AllSequencesInSchema,
        }
    }
}

fn valid_until(text: &str) -> Result<ValidUntil, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|e| e.to_string())
}

fn privilege(text: &str) -> Result<Privilege, String> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_ascii_uppercase())).map_err(|_| format!("{text:?}: one of SELECT, INSERT, UPDATE, DELETE, USAGE, CREATE"))
}

#[derive(Debug, Subcommand)]
pub enum SecurityCommand {
    /// The compliance report (exit code 1 when a check reaches --fail-on).
    Check {
        /// table, json or markdown.
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// The status that makes the command fail: fail, warn or never.
        #[arg(long, value_enum, default_value = "fail")]
        fail_on: FailOn,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Fail,
    Warn,
    Never,
}

fn failed(err: crate::access::Error) -> Failure {
    super::commands::failure(err)
}

fn read_password(wanted: bool) -> Result<Option<Password>, Failure> {
    if !wanted {
        return Ok(None);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let text = line.trim_end_matches(['\r', '\n']).to_owned();
    Password::new(text).map(Some).map_err(|e| failed(crate::access::Error::Invalid(e)))
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn roles_cmd(agent: &Agent, cmd: RolesCommand, as_json: bool) -> Result<(), Failure> {
    let mut client = crate::access::connect(&agent.executor.pools).await.map_err(failed)?;
    let security = &agent.config.security;
    match cmd {
        RolesCommand::List { role, include_system } => {
            let all = list::roles(&client, &RoleFilter { role, include_system }).await.map_err(failed)?;
            if as_json {
                return print_json(&all);
            }
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED).set_header(["role", "attributes", "valid until", "member of", "privileges"]);
            for r in &all.roles {
                let attributes: Vec<&str> = [(r.superuser, "superuser"), (r.login, "login"), (r.createdb, "createdb"), (r.createrole, "createrole"), (r.replication, "replication"), (r.bypassrls, "bypassrls")]
                    .into_iter()
                    .filter_map(|(on, w)| on.then_some(w))
                    .collect();
                let mut attributes = attributes.join(" ");
                if let Some(limit) = r.connection_limit {
                    attributes.push_str(&format!(" limit {limit}"));
                }
                let privileges: Vec<String> = r.privileges.iter().map(|p| format!("{} {}{}: {}", p.kind, p.schema, p.name.as_ref().map(|n| format!(".{n}")).unwrap_or_default(), p.privileges.join(","))).collect();
                table.add_row([r.name.clone(), attributes, r.valid_until.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()), r.member_of.join(", "), privileges.join("\n")]);
            }
            println!("{table}");
            Ok(())
        }
        RolesCommand::Create { name, password_stdin, no_login, valid_until, connection_limit, createdb, createrole, in_role } => {
            let new = NewRole { name, password: read_password(password_stdin)?, login: !no_login, valid_until, connection_limit, createdb, createrole, in_roles: in_role };
            let role = roles::create(&mut client, &new).await.map_err(failed)?;
            if as_json {
                return print_json(&role);
            }
            println!("created role {}", role.name);
            Ok(())
        }
        RolesCommand::Alter { name, password_stdin, login, valid_until, connection_limit, createdb, createrole, rename_to } => {
            let change = RoleChange { password: read_password(password_stdin)?, login, valid_until, connection_limit, createdb, createrole, rename_to };
            let role = roles::alter(&mut client, security, &name, &change).await.map_err(failed)?;
            if as_json {
                return print_json(&role);
            }
            println!("altered role {}", role.name);
            Ok(())
        }
        RolesCommand::Drop { name, reassign_to, drop_owned } => {
            let dropped = roles::drop(&mut client, security, &name, &DropOptions { reassign_to, drop_owned }).await.map_err(failed)?;
            if as_json {
                return print_json(&dropped);
            }
            println!("{}", dropped.statements.join(";\n"));
            Ok(())
        }
        RolesCommand::Grant(args) => grant(&mut client, args, false, as_json).await,
        RolesCommand::Revoke(args) => grant(&mut client, args, true, as_json).await,
    }
}

async fn grant(client: &mut tokio_postgres::Client, args: GrantArgs, revoke: bool, as_json: bool) -> Result<(), Failure> {
    let request = GrantRequest {
        role: args.role,
        privileges: args.privileges,
        on: args.on.into(),
        name: args.name,
        schema: args.schema,
        default_privileges: args.default_privileges,
        with_grant_option: args.with_grant_option,
    };
    let granted = grants::apply(client, &request, revoke).await.map_err(failed)?;
    if as_json {
        return print_json(&granted);
    }
    println!("{}", granted.statements.join(";\n"));
    for p in &granted.privileges {
        println!("{} now holds on {} {}{}: {}", granted.role, p.kind, p.schema, p.name.as_ref().map(|n| format!(".{n}")).unwrap_or_default(), p.privileges.join(", "));
    }
    Ok(())
}

pub async fn security_cmd(agent: &Agent, cmd: SecurityCommand, as_json: bool) -> Result<(), Failure> {
    let SecurityCommand::Check { format, fail_on } = cmd;
    let report = compliance::report(&agent.executor.pools, &agent.config, &agent.backup, agent.security.required)
        .await
        .map_err(super::commands::failure)?;
    match (as_json, format) {
        (true, _) | (_, ReportFormat::Json) => print_json(&report)?,
        (_, ReportFormat::Markdown) => print!("{}", compliance::markdown::render(&report)),
        (_, ReportFormat::Table) => {
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED).set_header(["status", "check", "evidence"]);
            for c in &report.checks {
                table.add_row([c.status.as_str().to_owned(), format!("{}\n{}", c.id, c.title), c.evidence.clone()]);
            }
            println!("{table}");
            let n = &report.counts;
            println!("{} pass, {} fail, {} warn, {} not applicable. {}", n.pass, n.fail, n.warn, n.not_applicable, compliance::DISCLAIMER);
        }
    }
    let threshold = match fail_on {
        FailOn::Fail => Some(Status::Fail),
        FailOn::Warn => Some(Status::Warn),
        FailOn::Never => None,
    };
    if let Some(threshold) = threshold {
        let reached: Vec<&str> = report.checks.iter().filter(|c| c.status >= threshold && c.status != Status::NotApplicable).map(|c| c.id).collect();
        if !reached.is_empty() {
            return Err(Failure { code: super::exit::FAILED, error: anyhow::anyhow!("{} check(s) at or above {}: {}", reached.len(), threshold.as_str(), reached.join(", ")) });
        }
    }
    Ok(())
}
