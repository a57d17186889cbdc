//! PostgreSQL roles and their privileges, managed through the API and the CLI (`/roles`,
//! `/grants`, `dbagent roles ...`). Not `security::roles`: those are the two roles dbagent's own
//! read and write keys run as; this module manages the server's roles for their owners.
//!
//! * [`roles`]: list (attributes, memberships, privileges), create, alter, drop;
//! * [`grants`]: GRANT and REVOKE on schemas, tables and sequences, and default privileges;
//! * [`password`]: the SCRAM-SHA-256 verifier, computed here so a password never reaches the
//!   server, its logs, `pg_stat_activity` or `pg_stat_statements` — only the verifier does;
//! * [`list`]: the catalog reads behind `GET /roles` (`sql/*.sql`).
//!
//! Invariants:
//! * Every name reaches SQL text through `db::sql` (identifiers quoted, literals escaped);
//!   catalog lookups take names as bind parameters. A name for something new is refused when
//!   PostgreSQL would cut it (past 63 bytes), when it is blank or holds control characters, or
//!   starts with `pg_` (reserved).
//! * Each change runs in one transaction on a session of its own (`db::admin`, `dbagent
//!   access`), so a failed step leaves nothing half done (a role without its memberships, a
//!   drop after a reassign).
//! * dbagent never creates or grants `SUPERUSER`, `REPLICATION` or `BYPASSRLS`: an API key
//!   that could mint a superuser would outlive its own revocation. Those stay a DBA's act.
//! * The roles dbagent depends on are never altered or dropped: its own login, the key roles
//!   (`security.read_role` / `write_role`) and the bootstrap superuser.
//! * A password is held in [`password::Password`], whose `Debug` prints nothing, and is not
//!   copied into audit rows, logs or answers.

mod error;
pub mod grants;
pub mod list;
pub mod password;
pub mod roles;

pub use error::Error;

use crate::db::{self, Purpose};

/// A session of its own for role and grant changes, on the current primary.
pub async fn connect(pools: &db::Pools) -> Result<tokio_postgres::Client, Error> {
    db::admin::connect(&pools.admin_config(), Purpose::Access).await.map_err(Error::driver)
}

/// `text` when it can name a new role (or be renamed to): what [`db::sql::name`] allows, not
/// blank, no control characters, not `pg_`-prefixed.
pub fn new_role_name(text: &str) -> Result<&str, Error> {
    let name = db::sql::name(text).map_err(|e| Error::Invalid(format!("`name`: {e}")))?;
    if name.trim().is_empty() {
        return Err(Error::Invalid("`name`: a role name cannot be blank".into()));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!("`name`: {name:?} holds a control character (tab, newline ...), which logs and pg_hba.conf cannot show safely")));
    }
    if name.starts_with("pg_") {
        return Err(Error::Invalid(format!("`name`: {name:?} starts with pg_, which PostgreSQL reserves for its own roles")));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_role_names_keep_hostile_text_but_not_what_postgresql_would_cut_or_reserve() {
        for ok in ["app", "Order Team", "a\"b", "x\"; DROP ROLE postgres; --", "tëst_ü", "表", "it's"] {
            assert_eq!(new_role_name(ok).unwrap(), ok);
        }
        for bad in ["", " \t", "a\nb", "a\u{0}b", "pg_monitor", &"x".repeat(64)] {
            assert!(new_role_name(bad).is_err(), "{bad:?}");
        }
    }
}
