//! The PostgreSQL roles that enforce a key's scope: a read key's statements run logged in as
//! `security.read_role` (member of `pg_read_all_data`, nothing else), a write key's as
//! `security.write_role` (`pg_read_all_data` and `pg_write_all_data`: rows, not the schema).
//! Neither is a superuser nor a member of the roles that reach the server's files, programs or
//! other sessions, so a crafted statement (a write hidden in a function, `COPY ... TO PROGRAM`,
//! `SET ROLE`, `ALTER SYSTEM` ...) fails in PostgreSQL whatever dbagent's parser made of it.
//!
//! dbagent creates the roles when they are missing and its own user may (the managed instance;
//! a server where it has `CREATEROLE`, and is a superuser for the predefined roles), and checks
//! them every start; a role that exists is only checked, never altered. Elsewhere
//! [`grant_script`] is what a DBA runs once.

use tokio_postgres::Client;

use super::Error;
use crate::config;
use crate::db::sql;

/// Roles whose members reach beyond the database: files, programs, other sessions.
const DANGEROUS: [&str; 4] = ["pg_execute_server_program", "pg_read_server_files", "pg_write_server_files", "pg_signal_backend"];

/// The SQL that creates and grants both roles (for a DBA to run on a server where dbagent may
/// not; passwords are left for the DBA to set).
pub fn grant_script(settings: &config::Security) -> Result<String, Error> {
    let read = ident(&settings.read_role.user)?;
    let write = ident(&settings.write_role.user)?;
    Ok(format!(
        "-- dbagent: the roles that make PostgreSQL enforce API key scopes (run once, as a superuser).\n\
         CREATE ROLE {read} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;\n\
         CREATE ROLE {write} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;\n\
         -- Set passwords, and put them in security.read_role.password / security.write_role.password:\n\
         -- ALTER ROLE {read} PASSWORD '...';  ALTER ROLE {write} PASSWORD '...';\n\
         GRANT pg_read_all_data TO {read};\n\
         GRANT pg_read_all_data, pg_write_all_data TO {write};\n\
         ALTER ROLE {read} SET default_transaction_read_only = on;\n"
    ))
}

fn ident(name: &str) -> Result<String, Error> {
    sql::name(name).map(sql::ident).map_err(|e| Error::Invalid(e.to_string()))
}

/// Creates the roles when they are missing and dbagent may, grants what they need, then checks
/// that each can enforce its scope: refuses a superuser (unless
/// `security.allow_superuser_roles`), a read role that can write, and either role reaching the
/// server's files, programs or other sessions.
pub async fn ensure(client: &Client, settings: &config::Security) -> Result<(), Error> {
    let me = client
        .query_one("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user", &[])
        .await?;
    let (superuser, createrole): (bool, bool) = (me.get(0), me.get(1));
    if superuser || createrole {
        // Roles are shared by every database of the server: agents of other databases may be
        // doing the same right now, so "already exists" and concurrent updates are retried.
        for attempt in 0..5 {
            match create(client, settings, superuser).await {
                Ok(()) => break,
                Err(err) if attempt < 4 && err.code().is_some_and(|c| matches!(c.code(), "42710" | "23505" | "XX000" | "40001")) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 * (attempt + 1))).await;
                }
                Err(err) => {
                    return Err(Error::Roles(format!(
                        "cannot create the roles that enforce API key scopes ({}); run `dbagent keys roles-sql` and have a superuser run its output",
                        crate::db::error_chain(&err)
                    )));
                }
            }
        }
    }
    check(client, settings).await
}

/// Creates whichever of the two roles is missing, each with its grants in one transaction (so
/// no other agent ever sees it half made). A role that exists is never altered: it may be a
/// DBA's, and dbagent only checks it.
async fn create(client: &Client, settings: &config::Security, superuser: bool) -> Result<(), tokio_postgres::Error> {
    for (login, grants) in [(&settings.read_role, "pg_read_all_data"), (&settings.write_role, "pg_read_all_data, pg_write_all_data")] {
        if client.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&login.user]).await?.is_some() {
            continue;
        }
        let role = sql::ident(&login.user);
        let password = match &login.password {
            Some(p) => format!(" PASSWORD {}", sql::literal(p.expose())),
            None => String::new(),
        };
        let mut script = format!("BEGIN; CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS{password};");
        // Granting predefined roles takes a superuser on PostgreSQL 15.
        if superuser {
            script.push_str(&format!(" GRANT {grants} TO {role};"));
        }
        if std::ptr::eq(login, &settings.read_role) {
            script.push_str(&format!(" ALTER ROLE {role} SET default_transaction_read_only = on;"));
        }
        script.push_str(" COMMIT;");
        if let Err(err) = client.batch_execute(&script).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(err);
        }
    }
    Ok(())
}

async fn check(client: &Client, settings: &config::Security) -> Result<(), Error> {
    for (what, login) in [("read", &settings.read_role), ("write", &settings.write_role)] {
        let row = client
            .query_opt(
                "SELECT r.rolsuper, r.rolbypassrls, r.rolcanlogin,
                        pg_has_role(r.oid, 'pg_write_all_data', 'MEMBER') AS writes_all,
                        array(SELECT d FROM unnest($2::text[]) AS d WHERE pg_has_role(r.oid, d, 'MEMBER')) AS dangerous
                   FROM pg_roles r WHERE r.rolname = $1",
                &[&login.user, &DANGEROUS.as_slice()],
            )
            .await?;
        let Some(row) = row else {
            return Err(Error::Roles(format!(
                "the {what} role {:?} (security.{what}_role) does not exist and dbagent may not create it; run `dbagent keys roles-sql` and have a superuser run its output",
                login.user
            )));
        };
        let (superuser, bypassrls, can_login, writes_all, dangerous): (bool, bool, bool, bool, Vec<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if superuser {
            if settings.allow_superuser_roles {
                tracing::warn!(role = %login.user, "THE {what} ROLE IS A SUPERUSER (security.allow_superuser_roles): PostgreSQL does not enforce API key scopes");
                continue;
            }
            return Err(Error::Roles(format!(
                "the {what} role {:?} is a superuser, so PostgreSQL would not enforce the scope; use a role without SUPERUSER (or set security.allow_superuser_roles: true to accept that)",
                login.user
            )));
        }
        if !can_login {
            return Err(Error::Roles(format!("the {what} role {:?} cannot log in (ALTER ROLE ... LOGIN)", login.user)));
        }
        if what == "read" && writes_all {
            return Err(Error::Roles(format!("the read role {:?} is a member of pg_write_all_data: it could write", login.user)));
        }
        if !dangerous.is_empty() {
            return Err(Error::Roles(format!(
                "the {what} role {:?} is a member of {}: it reaches beyond the database",
                login.user,
                dangerous.join(", ")
            )));
        }
        if bypassrls {
            tracing::warn!(role = %login.user, "the {what} role bypasses row-level security");
        }
    }
    Ok(())
}
