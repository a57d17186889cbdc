//! The rules: PostgreSQL's parser (pg_query) reads the file, and the statements are walked in
//! order, remembering what the file itself did so far.

use std::collections::HashSet;

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableCmd, AlterTableType, ColumnDef, ConstrType, Constraint, Node, ObjectType};

use super::finding::{Finding, Kind, TableRef};

/// The statements of `sql` as parse trees (`Err` with the parser's message for one that does
/// not parse). The whole file is parsed at once; only if that fails is it split and each piece
/// parsed alone, so one bad statement does not hide warnings about the others.
fn statements(sql: &str) -> Vec<Result<NodeEnum, String>> {
    let parse = |text: &str| pg_query::parse(text, 0).map(|r| r.protobuf.stmts);
    let tree = |raw: pg_query::protobuf::RawStmt| {
        raw.stmt
            .and_then(|s| s.node)
            .ok_or_else(|| "empty statement".to_string())
    };
    match parse(sql) {
        Ok(stmts) => stmts.into_iter().map(tree).collect(),
        Err(_) => {
            let pieces = pg_query::split_with_scanner(sql).unwrap_or_else(|_| vec![sql]);
            pieces
                .into_iter()
                .filter(|p| !p.trim().is_empty())
                .map(|piece| match parse(piece) {
                    Ok(mut stmts) if stmts.len() == 1 => tree(stmts.remove(0)),
                    Ok(_) => Err("not exactly one statement".to_string()),
                    Err(err) => Err(err.to_string()),
                })
                .collect()
        }
    }
}

/// Walks the statements in order, remembering what the file did so far.
struct Linter<'a> {
    volatile: &'a HashSet<String>,
    statement: usize,
    created: Vec<TableRef>,
    /// `CHECK (column IS NOT NULL) NOT VALID` constraints: (table, constraint) → column.
    unvalidated: Vec<(TableRef, String, String)>,
    /// (table, column) with a validated `IS NOT NULL` check.
    validated: Vec<(TableRef, String)>,
    findings: Vec<Finding>,
}

/// The findings for `sql`, in statement order.
pub(super) fn findings(sql: &str, volatile: &HashSet<String>) -> Vec<Finding> {
    let mut linter = Linter {
        volatile,
        statement: 0,
        created: Vec::new(),
        unvalidated: Vec::new(),
        validated: Vec::new(),
        findings: Vec::new(),
    };
    for (index, statement) in statements(sql).into_iter().enumerate() {
        linter.statement = index;
        match statement {
            Ok(node) => linter.statement_node(&node),
            Err(reason) => linter.find(None, Kind::Unparsable { reason }),
        }
    }
    linter.findings
}

impl Linter<'_> {
    fn find(&mut self, table: Option<TableRef>, kind: Kind) {
        self.findings.push(Finding {
            statement: self.statement,
            table,
            kind,
        });
    }

    fn is_new(&self, table: &TableRef) -> bool {
        self.created.iter().any(|t| t.matches(table))
    }

    fn statement_node(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::CreateStmt(create) => {
                if let Some(rv) = &create.relation {
                    self.created.push(TableRef::from_range_var(rv));
                }
            }
            NodeEnum::IndexStmt(index) if !index.concurrent => {
                if let Some(table) = index.relation.as_ref().map(TableRef::from_range_var)
                    && !self.is_new(&table)
                {
                    self.find(Some(table), Kind::CreateIndex);
                }
            }
            NodeEnum::AlterTableStmt(alter) if alter.objtype == ObjectType::ObjectTable as i32 => {
                let Some(table) = alter.relation.as_ref().map(TableRef::from_range_var) else {
                    return;
                };
                if self.is_new(&table) {
                    return;
                }
                for cmd in &alter.cmds {
                    if let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node {
                        self.alter_table_cmd(&table, cmd);
                    }
                }
            }
            NodeEnum::DropStmt(drop) if drop.remove_type == ObjectType::ObjectTable as i32 => {
                for table in drop.objects.iter().filter_map(qualified_name) {
                    if !self.is_new(&table) {
                        self.find(Some(table), Kind::DropTable);
                    }
                }
            }
            NodeEnum::TruncateStmt(truncate) => {
                for rv in truncate.relations.iter().filter_map(|n| match &n.node {
                    Some(NodeEnum::RangeVar(rv)) => Some(rv),
                    _ => None,
                }) {
                    let table = TableRef::from_range_var(rv);
                    if !self.is_new(&table) {
                        self.find(Some(table), Kind::Truncate);
                    }
                }
            }
            NodeEnum::DeleteStmt(delete) if delete.where_clause.is_none() => {
                if let Some(table) = delete.relation.as_ref().map(TableRef::from_range_var)
                    && !self.is_new(&table)
                {
                    self.find(Some(table), Kind::DeleteAll);
                }
            }
            NodeEnum::VacuumStmt(vacuum) if vacuum.is_vacuumcmd && has_option(&vacuum.options, "full") => {
                self.vacuum_full(&vacuum.rels);
            }
            NodeEnum::ClusterStmt(cluster) => {
                let table = cluster.relation.as_ref().map(TableRef::from_range_var);
                self.find(table, Kind::Cluster);
            }
            NodeEnum::LockStmt(lock) => {
                if let Some(mode) = blocking_lock_mode(lock.mode) {
                    for rv in lock.relations.iter().filter_map(|n| match &n.node {
                        Some(NodeEnum::RangeVar(rv)) => Some(rv),
                        _ => None,
                    }) {
                        self.find(Some(TableRef::from_range_var(rv)), Kind::LockTable { mode });
                    }
                }
            }
            _ => {}
        }
    }

    /// `VACUUM FULL` of the tables named, or of every table (one finding without a table).
    fn vacuum_full(&mut self, relations: &[Node]) {
        let tables: Vec<TableRef> = relations
            .iter()
            .filter_map(|r| match &r.node {
                Some(NodeEnum::VacuumRelation(v)) => v.relation.as_ref().map(TableRef::from_range_var),
                _ => None,
            })
            .collect();
        if tables.is_empty() {
            self.find(None, Kind::VacuumFull);
        }
        tables.into_iter().for_each(|t| self.find(Some(t), Kind::VacuumFull));
    }

    fn alter_table_cmd(&mut self, table: &TableRef, cmd: &AlterTableCmd) {
        let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
        let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
        let column = cmd.name.clone();
        match (subtype, def) {
            (AlterTableType::AtAddColumn, Some(NodeEnum::ColumnDef(def))) => {
                if let Some(cause) = self.rewriting_column(def) {
                    let column = def.colname.clone();
                    self.find(Some(table.clone()), Kind::AddColumnRewrite { column, cause });
                }
            }
            (AlterTableType::AtAlterColumnType, _) => self.find(Some(table.clone()), Kind::AlterColumnType { column }),
            (AlterTableType::AtSetNotNull, _) => {
                let checked = self.validated.iter().any(|(t, c)| t.matches(table) && *c == column);
                if !checked {
                    self.find(Some(table.clone()), Kind::SetNotNull { column });
                }
            }
            (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(constraint))) => {
                self.add_constraint(table, constraint)
            }
            (AlterTableType::AtValidateConstraint, _) => {
                let found = self
                    .unvalidated
                    .iter()
                    .position(|(t, name, _)| t.matches(table) && *name == cmd.name);
                if let Some(position) = found {
                    let (table, _, column) = self.unvalidated.remove(position);
                    self.validated.push((table, column));
                }
            }
            (AlterTableType::AtDropColumn, _) => self.find(Some(table.clone()), Kind::DropColumn { column }),
            _ => {}
        }
    }

    fn add_constraint(&mut self, table: &TableRef, constraint: &Constraint) {
        let name = if constraint.conname.is_empty() {
            "(unnamed)".to_string()
        } else {
            constraint.conname.clone()
        };
        let contype = ConstrType::try_from(constraint.contype).unwrap_or(ConstrType::Undefined);
        match contype {
            ConstrType::ConstrForeign if !constraint.skip_validation => {
                let referenced = constraint
                    .pktable
                    .as_ref()
                    .map(|rv| TableRef::from_range_var(rv).to_string())
                    .unwrap_or_default();
                self.find(
                    Some(table.clone()),
                    Kind::AddForeignKey {
                        constraint: name,
                        referenced,
                    },
                );
            }
            ConstrType::ConstrCheck => {
                let not_null_column = constraint.raw_expr.as_deref().and_then(is_not_null_test);
                match (constraint.skip_validation, not_null_column) {
                    (true, Some(column)) => self.unvalidated.push((table.clone(), name, column)),
                    (true, None) => {}
                    (false, column) => {
                        if let Some(column) = column {
                            self.validated.push((table.clone(), column));
                        }
                        self.find(Some(table.clone()), Kind::AddCheck { constraint: name });
                    }
                }
            }
            ConstrType::ConstrPrimary | ConstrType::ConstrUnique if constraint.indexname.is_empty() => {
                let key = if contype == ConstrType::ConstrPrimary {
                    "PRIMARY KEY"
                } else {
                    "UNIQUE"
                };
                self.find(Some(table.clone()), Kind::AddKeyWithoutIndex { key });
            }
            _ => {}
        }
    }

    /// Why adding `def` rewrites the table, if it does: a volatile default, a serial type, an
    /// identity, or a stored generated expression all compute a value per existing row.
    fn rewriting_column(&self, def: &ColumnDef) -> Option<String> {
        let type_name = def
            .type_name
            .as_ref()
            .and_then(|t| t.names.last())
            .and_then(string_value)
            .unwrap_or_default();
        if matches!(
            type_name.as_str(),
            "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
        ) {
            return Some(format!("type {type_name} (its default, nextval(), is volatile)"));
        }
        for constraint in def.constraints.iter().filter_map(|c| match &c.node {
            Some(NodeEnum::Constraint(c)) => Some(c),
            _ => None,
        }) {
            match ConstrType::try_from(constraint.contype).unwrap_or(ConstrType::Undefined) {
                ConstrType::ConstrDefault => {
                    let volatile = constraint.raw_expr.as_deref().and_then(|e| self.volatile_call(e));
                    if let Some(function) = volatile {
                        return Some(format!("a volatile default ({function}())"));
                    }
                }
                ConstrType::ConstrIdentity => return Some("an identity (each row gets its own value)".into()),
                ConstrType::ConstrGenerated => return Some("a stored generated expression".into()),
                _ => {}
            }
        }
        None
    }

    /// The first volatile function `expr` calls.
    fn volatile_call(&self, expr: &Node) -> Option<String> {
        let node = expr.node.as_ref()?;
        let calls = node.nodes().into_iter().filter_map(|(n, ..)| match n {
            pg_query::NodeRef::FuncCall(call) => call.funcname.last().and_then(string_value),
            _ => None,
        });
        calls
            .into_iter()
            .find(|name| self.volatile.contains(&name.to_lowercase()))
    }
}

fn string_value(node: &Node) -> Option<String> {
    match &node.node {
        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
        _ => None,
    }
}

/// `[schema.]table` from a `DROP TABLE` object (a list of names).
fn qualified_name(object: &Node) -> Option<TableRef> {
    let Some(NodeEnum::List(list)) = &object.node else {
        return None;
    };
    let parts: Vec<String> = list.items.iter().filter_map(string_value).collect();
    match parts.as_slice() {
        [name] => Some(TableRef {
            schema: None,
            name: name.clone(),
        }),
        [.., schema, name] => Some(TableRef {
            schema: Some(schema.clone()),
            name: name.clone(),
        }),
        [] => None,
    }
}

fn has_option(options: &[Node], name: &str) -> bool {
    options.iter().any(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) => d.defname == name && !is_false(d.arg.as_deref()),
        _ => false,
    })
}

/// An option argument that turns the option off: `false`, `off`, `0`.
fn is_false(arg: Option<&Node>) -> bool {
    match arg.and_then(|a| a.node.as_ref()) {
        Some(NodeEnum::Boolean(b)) => !b.boolval,
        Some(NodeEnum::String(s)) => matches!(s.sval.to_lowercase().as_str(), "false" | "off" | "no" | "0"),
        Some(NodeEnum::Integer(i)) => i.ival == 0,
        _ => false,
    }
}

/// The name of a `LOCK TABLE` mode that blocks writes (`SHARE` and stronger), else `None`.
fn blocking_lock_mode(mode: i32) -> Option<&'static str> {
    match mode {
        5 => Some("SHARE"),
        6 => Some("SHARE ROW EXCLUSIVE"),
        7 => Some("EXCLUSIVE"),
        8 => Some("ACCESS EXCLUSIVE"),
        _ => None,
    }
}

/// The column of a `column IS NOT NULL` check.
fn is_not_null_test(expr: &Node) -> Option<String> {
    let Some(NodeEnum::NullTest(test)) = &expr.node else {
        return None;
    };
    if test.nulltesttype != pg_query::protobuf::NullTestType::IsNotNull as i32 {
        return None;
    }
    match test.arg.as_deref().and_then(|a| a.node.as_ref()) {
        Some(NodeEnum::ColumnRef(column)) => column.fields.last().and_then(string_value),
        _ => None,
    }
}
