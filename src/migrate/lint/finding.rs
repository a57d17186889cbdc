//! What a rule found, and how it is told: the rule's identifier and a message in plain words
//! with the table's size when known and the safer way to do it.

use std::fmt;

use pg_query::protobuf::RangeVar;

use super::Warning;

/// A table as a statement names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TableRef {
    pub(super) schema: Option<String>,
    pub(super) name: String,
}

impl TableRef {
    pub(super) fn from_range_var(rv: &RangeVar) -> TableRef {
        let schema = (!rv.schemaname.is_empty()).then(|| rv.schemaname.clone());
        TableRef {
            schema,
            name: rv.relname.clone(),
        }
    }

    /// Whether the two may be the same table (an unqualified name matches any schema).
    pub(super) fn matches(&self, other: &TableRef) -> bool {
        self.name == other.name && (self.schema.is_none() || other.schema.is_none() || self.schema == other.schema)
    }

    /// The name quoted for `to_regclass`.
    pub(super) fn regclass(&self) -> String {
        match &self.schema {
            Some(schema) => crate::db::sql::qualified(schema, &self.name),
            None => crate::db::sql::ident(&self.name),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// What a rule found; the message is written once the table size is known.
#[derive(Debug)]
pub(super) struct Finding {
    pub(super) statement: usize,
    pub(super) table: Option<TableRef>,
    pub(super) kind: Kind,
}

#[derive(Debug)]
pub(super) enum Kind {
    CreateIndex,
    AddColumnRewrite { column: String, cause: String },
    AlterColumnType { column: String },
    SetNotNull { column: String },
    AddForeignKey { constraint: String, referenced: String },
    AddCheck { constraint: String },
    AddKeyWithoutIndex { key: &'static str },
    DropColumn { column: String },
    DropTable,
    Truncate,
    DeleteAll,
    VacuumFull,
    Cluster,
    LockTable { mode: &'static str },
    Unparsable { reason: String },
}

impl Finding {
    pub(super) fn warning(&self, bytes: Option<i64>) -> Warning {
        let table = match &self.table {
            Some(t) => format!(
                "{t}{}",
                bytes.map(|b| format!(" ({})", pretty_size(b))).unwrap_or_default()
            ),
            None => "the table".to_string(),
        };
        let (rule, message) = describe(&self.kind, &table);
        Warning {
            statement: self.statement,
            rule,
            table: self.table.as_ref().map(ToString::to_string),
            table_bytes: bytes,
            message,
        }
    }
}

/// The rule's identifier and message; `table` is the table's name with its size when known.
fn describe(kind: &Kind, table: &str) -> (&'static str, String) {
    match kind {
        Kind::CreateIndex => (
            "create-index-without-concurrently",
            format!(
                "CREATE INDEX on {table} blocks every write to the table until the index is built. Use \
                 CREATE INDEX CONCURRENTLY, in a migration of its own marked `-- dbagent:no-transaction`."
            ),
        ),
        Kind::AddColumnRewrite { column, cause } => (
            "add-column-volatile-default",
            format!(
                "Adding column {column} to {table} with {cause} rewrites the whole table under an ACCESS \
                 EXCLUSIVE lock: no reads or writes until it finishes. Add the column without it, set the \
                 default in a second statement (it then applies to new rows only), and fill existing rows \
                 in batches."
            ),
        ),
        Kind::AlterColumnType { column } => (
            "alter-column-type",
            format!(
                "Changing the type of {column} on {table} rewrites the table and its indexes under an ACCESS \
                 EXCLUSIVE lock, unless the new type is binary-compatible with the old (varchar(n) to text \
                 or to a longer varchar, for example). For a big table, add a new column, fill it in \
                 batches, and switch over."
            ),
        ),
        Kind::SetNotNull { column } => (
            "set-not-null",
            format!(
                "SET NOT NULL on {column} of {table} scans the whole table under an ACCESS EXCLUSIVE lock. \
                 First add CHECK ({column} IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT it in a separate \
                 migration (that does not block writes); SET NOT NULL then skips the scan."
            ),
        ),
        Kind::AddForeignKey { constraint, referenced } => (
            "add-foreign-key-without-not-valid",
            format!(
                "Adding foreign key {constraint} to {table} checks every row while blocking writes to both \
                 {table} and {referenced}. Add it NOT VALID (only new rows are checked), then VALIDATE \
                 CONSTRAINT it in a separate migration, which does not block writes."
            ),
        ),
        Kind::AddCheck { constraint } => (
            "add-check-without-not-valid",
            format!(
                "Adding check constraint {constraint} to {table} scans every row under an ACCESS EXCLUSIVE \
                 lock. Add it NOT VALID, then VALIDATE CONSTRAINT it in a separate migration, which does not \
                 block writes."
            ),
        ),
        Kind::AddKeyWithoutIndex { key } => (
            "add-key-without-index",
            format!(
                "Adding a {key} constraint to {table} builds its index while blocking writes. Build the index \
                 first with CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... {key} USING INDEX."
            ),
        ),
        Kind::DropColumn { column } => (
            "drop-column",
            format!(
                "Dropping column {column} of {table} loses its data for good, and application code still \
                 deployed may still read or write it. Deploy code that no longer uses it first, then drop \
                 it in a later migration."
            ),
        ),
        Kind::DropTable => (
            "drop-table",
            format!(
                "Dropping table {table} loses its data for good, and application code still deployed may \
                 still use it. Deploy code that no longer uses it (and take a backup) first, then drop it \
                 in a later migration."
            ),
        ),
        Kind::Truncate => (
            "truncate",
            format!(
                "TRUNCATE {table} deletes every row for good (and takes an ACCESS EXCLUSIVE lock). Take a \
                 backup first, or copy the rows aside if they may be needed again."
            ),
        ),
        Kind::DeleteAll => (
            "delete-without-where",
            format!(
                "DELETE without WHERE removes every row of {table}. Take a backup first, or say which rows \
                 with a WHERE clause."
            ),
        ),
        Kind::VacuumFull => (
            "vacuum-full",
            format!(
                "VACUUM FULL rewrites {table} under an ACCESS EXCLUSIVE lock: no reads or writes until it \
                 finishes. Plain VACUUM does not block; to compact a table online, use pg_repack."
            ),
        ),
        Kind::Cluster => (
            "cluster",
            format!(
                "CLUSTER rewrites {table} under an ACCESS EXCLUSIVE lock: no reads or writes until it \
                 finishes. To reorder a table online, use pg_repack."
            ),
        ),
        Kind::LockTable { mode } => (
            "lock-table",
            format!(
                "LOCK TABLE {table} IN {mode} MODE blocks writes (and, in ACCESS EXCLUSIVE mode, reads) \
                 until the migration's transaction ends. Keep that transaction short, and keep the \
                 migration's lock_timeout so a wait fails instead of stalling every query behind it."
            ),
        ),
        Kind::Unparsable { reason } => (
            "syntax-error",
            format!("This statement does not parse ({reason}), so it was not checked; PostgreSQL will refuse it too."),
        ),
    }
}

/// `bytes` the way `pg_size_pretty` would: `8192 bytes`, `24 kB`, `1.2 GB`.
pub(super) fn pretty_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}
