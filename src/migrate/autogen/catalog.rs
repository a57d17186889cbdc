//! Reading a database's catalog into the [`Catalog`] model.
//!
//! All queries run in one `REPEATABLE READ READ ONLY` transaction (one consistent picture)
//! with an empty `search_path`, so PostgreSQL prints every name in types, defaults,
//! constraints, indexes and views schema-qualified: the text means the same thing in any
//! database, whatever search path the generated migration later runs with. Objects owned by
//! extensions and the `dbagent` schema are never read.

use std::collections::BTreeMap;

use tokio_postgres::{Client, Row};

use super::Error;
use super::model::{
    Catalog, Column, Constraint, ConstraintKind, Enum, Extension, Generation, Identity, Index, Name, Reference, Table,
    Unmanaged, View,
};

/// dbagent's own schema, managed by dbagent itself.
const OWN_SCHEMA: &str = "dbagent";

/// Ordinary tables: not partitioned, not partitions, not inheriting, not an extension's.
const MANAGED_TABLES: &str = "WITH managed AS (
    SELECT c.oid, n.nspname::text AS nspname, c.relname::text AS relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY($1) AND c.relkind = 'r' AND NOT c.relispartition
      AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e'))";

const TABLES: &str = "SELECT nspname, relname FROM managed ORDER BY 1, 2";

const COLUMNS: &str = "
SELECT m.nspname, m.relname, a.attname::text, format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
            THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END,
       a.attnotnull, a.attidentity::text, a.attgenerated::text, pg_get_expr(ad.adbin, ad.adrelid),
       EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
               WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                 AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.deptype = 'a')
FROM managed m
JOIN pg_attribute a ON a.attrelid = m.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
ORDER BY 1, 2, a.attnum";

const CONSTRAINTS: &str = "
SELECT m.nspname, m.relname, con.conname::text, con.contype::text, pg_get_constraintdef(con.oid),
       rn.nspname::text, rc.relname::text, ri.relname::text
FROM managed m
JOIN pg_constraint con ON con.conrelid = m.oid AND con.contype IN ('p', 'u', 'c', 'x', 'f')
LEFT JOIN pg_class rc ON rc.oid = con.confrelid AND con.contype = 'f'
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_class ri ON ri.oid = con.conindid AND con.contype = 'f'
ORDER BY 1, 2, 3";

const INDEXES: &str = "
SELECT m.nspname, m.relname, i.relname::text, pg_get_indexdef(x.indexrelid)
FROM managed m
JOIN pg_index x ON x.indrelid = m.oid
JOIN pg_class i ON i.oid = x.indexrelid
WHERE NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = x.indexrelid
                  AND con.conrelid = m.oid AND con.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2, 3";

const ENUMS: &str = "
SELECT n.nspname::text, t.typname::text,
       coalesce(array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FILTER (WHERE e.oid IS NOT NULL), '{}')
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_enum e ON e.enumtypid = t.oid
WHERE t.typtype = 'e' AND n.nspname = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
GROUP BY 1, 2
ORDER BY 1, 2";

const VIEWS: &str = "
SELECT n.nspname::text, c.relname::text, pg_get_viewdef(c.oid, true), coalesce(c.reloptions, '{}'),
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v' AND n.nspname = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2";

/// (view schema, view, schema, table or view it reads).
const VIEW_DEPENDENCIES: &str = "
SELECT DISTINCT vn.nspname::text, v.relname::text, dn.nspname::text, dc.relname::text
FROM pg_class v
JOIN pg_namespace vn ON vn.oid = v.relnamespace
JOIN pg_rewrite r ON r.ev_class = v.oid
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
JOIN pg_class dc ON dc.oid = d.refobjid
JOIN pg_namespace dn ON dn.oid = dc.relnamespace
WHERE v.relkind = 'v' AND vn.nspname = ANY($1)
ORDER BY 1, 2, 3, 4";

const SCHEMAS: &str = "SELECT nspname::text FROM pg_namespace WHERE nspname = ANY($1) ORDER BY 1";

/// Every extension: they are database-wide (`$1` is unused but keeps one calling convention).
const EXTENSIONS: &str = "
SELECT e.extname::text, n.nspname::text
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE $1::text[] IS NOT NULL
ORDER BY 1";

/// Objects seen but not managed: functions, procedures, triggers, policies, standalone
/// sequences, materialized views, foreign, partitioned, partition and inheriting tables,
/// domains and composite types.
const UNMANAGED: &str = "
WITH rel AS (
    SELECT c.oid, c.relkind, c.relispartition, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY($1)
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e'))
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
       quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($1) AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'trigger', quote_ident(t.tgname) || ' on ' || rel.qualified, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN rel ON rel.oid = t.tgrelid
WHERE NOT t.tgisinternal
UNION ALL
SELECT 'policy', quote_ident(pol.polname) || ' on ' || rel.qualified,
       concat_ws(' ', pol.polcmd, pol.polpermissive, pg_get_expr(pol.polqual, pol.polrelid),
                 pg_get_expr(pol.polwithcheck, pol.polrelid))
FROM pg_policy pol JOIN rel ON rel.oid = pol.polrelid
UNION ALL
SELECT CASE WHEN rel.relkind = 'S' THEN 'sequence'
            WHEN rel.relkind = 'm' THEN 'materialized view'
            WHEN rel.relkind = 'f' THEN 'foreign table'
            WHEN rel.relkind = 'p' THEN 'partitioned table'
            WHEN rel.relispartition THEN 'partition'
            ELSE 'inheriting table' END,
       rel.qualified,
       CASE WHEN rel.relkind = 'm' THEN pg_get_viewdef(rel.oid)
            WHEN rel.relkind = 'S' THEN (SELECT concat_ws(' ', format_type(s.seqtypid, NULL), s.seqstart,
                                                          s.seqincrement, s.seqmin, s.seqmax, s.seqcycle)
                                         FROM pg_sequence s WHERE s.seqrelid = rel.oid) END
FROM rel
WHERE rel.relkind IN ('m', 'f', 'p')
   OR (rel.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                         AND d.objid = rel.oid AND d.deptype IN ('a', 'i')))
   OR (rel.relkind = 'r' AND (rel.relispartition OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = rel.oid)))
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'composite type' END,
       quote_ident(n.nspname) || '.' || quote_ident(t.typname),
       CASE t.typtype WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) END
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY($1)
  AND (t.typtype = 'd' OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
ORDER BY 1, 2";

/// Reads the managed part of `schemas` (the `dbagent` schema is always left out) through
/// `client`, which must not be inside a transaction: the snapshot runs in one of its own, rolled
/// back at the end.
pub async fn snapshot(client: &Client, schemas: &[String]) -> Result<Catalog, Error> {
    let schemas: Vec<String> = schemas.iter().filter(|s| *s != OWN_SCHEMA).cloned().collect();
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
             SELECT pg_catalog.set_config('search_path', '', true);",
        )
        .await
        .map_err(Error::catalog("start the snapshot transaction"))?;
    let catalog = read(client, &schemas).await;
    let ended = client.batch_execute("ROLLBACK").await;
    let catalog = catalog?;
    ended.map_err(Error::catalog("end the snapshot transaction"))?;
    Ok(catalog)
}

async fn read(client: &Client, schemas: &[String]) -> Result<Catalog, Error> {
    let query = |action: &'static str, sql: String| async move {
        client
            .query(sql.as_str(), &[&schemas])
            .await
            .map_err(Error::catalog(action))
    };
    let mut tables: BTreeMap<Name, Table> = BTreeMap::new();
    for row in query("read tables", format!("{MANAGED_TABLES}{TABLES}")).await? {
        let name = Name::new(row.get::<_, String>(0), row.get::<_, String>(1));
        tables.insert(name.clone(), empty_table(name));
    }
    for row in query("read columns", format!("{MANAGED_TABLES}{COLUMNS}")).await? {
        let name = Name::new(row.get::<_, String>(0), row.get::<_, String>(1));
        tables
            .entry(name.clone())
            .or_insert_with(|| empty_table(name))
            .columns
            .push(column(&row));
    }
    for row in query("read constraints", format!("{MANAGED_TABLES}{CONSTRAINTS}")).await? {
        let (name, constraint) = constraint(&row);
        tables
            .entry(name.clone())
            .or_insert_with(|| empty_table(name))
            .constraints
            .push(constraint);
    }
    for row in query("read indexes", format!("{MANAGED_TABLES}{INDEXES}")).await? {
        let name = Name::new(row.get::<_, String>(0), row.get::<_, String>(1));
        let index = Index {
            name: row.get(2),
            definition: row.get(3),
        };
        tables
            .entry(name.clone())
            .or_insert_with(|| empty_table(name))
            .indexes
            .push(index);
    }
    let dependencies = query("read view dependencies", VIEW_DEPENDENCIES.into()).await?;
    Ok(Catalog {
        schemas: query("read schemas", SCHEMAS.into())
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        extensions: extensions(&query("read extensions", EXTENSIONS.into()).await?),
        enums: query("read enums", ENUMS.into()).await?.iter().map(enum_type).collect(),
        tables: tables.into_values().collect(),
        views: views(&query("read views", VIEWS.into()).await?, &dependencies),
        unmanaged: query("read other objects", UNMANAGED.into())
            .await?
            .iter()
            .map(|r| Unmanaged {
                kind: r.get(0),
                name: r.get(1),
                definition: r.get(2),
            })
            .collect(),
    })
}

fn empty_table(name: Name) -> Table {
    Table {
        name,
        columns: Vec::new(),
        constraints: Vec::new(),
        indexes: Vec::new(),
    }
}

fn column(row: &Row) -> Column {
    let identity: String = row.get(6);
    let generated: String = row.get(7);
    let expression: Option<String> = row.get(8);
    let owns_sequence: bool = row.get(9);
    let generation = match generated.as_str() {
        "s" | "v" => Some(Generation {
            expression: expression.clone().unwrap_or_default(),
            stored: generated == "s",
        }),
        _ => None,
    };
    let default = if generation.is_some() { None } else { expression };
    Column {
        name: row.get(2),
        type_sql: row.get(3),
        collation: row.get(4),
        not_null: row.get(5),
        serial: owns_sequence && default.as_deref().is_some_and(|d| d.starts_with("nextval(")),
        default,
        identity: match identity.as_str() {
            "a" => Some(Identity::Always),
            "d" => Some(Identity::ByDefault),
            _ => None,
        },
        generated: generation,
    }
}

fn constraint(row: &Row) -> (Name, Constraint) {
    let table = Name::new(row.get::<_, String>(0), row.get::<_, String>(1));
    let contype: String = row.get(3);
    let kind = match contype.as_str() {
        "p" => ConstraintKind::PrimaryKey,
        "u" => ConstraintKind::Unique,
        "c" => ConstraintKind::Check,
        "x" => ConstraintKind::Exclusion,
        _ => ConstraintKind::ForeignKey,
    };
    let references = match (row.get::<_, Option<String>>(5), row.get::<_, Option<String>>(6)) {
        (Some(schema), Some(name)) => Some(Reference {
            table: Name::new(schema, name),
            index: row.get::<_, Option<String>>(7).unwrap_or_default(),
        }),
        _ => None,
    };
    let constraint = Constraint {
        name: row.get(2),
        kind,
        definition: row.get(4),
        references,
    };
    (table, constraint)
}

fn extensions(rows: &[Row]) -> Vec<Extension> {
    rows.iter()
        .map(|r| Extension {
            name: r.get(0),
            schema: r.get(1),
        })
        .collect()
}

fn enum_type(row: &Row) -> Enum {
    Enum {
        name: Name::new(row.get::<_, String>(0), row.get::<_, String>(1)),
        labels: row.get(2),
    }
}

fn views(rows: &[Row], dependencies: &[Row]) -> Vec<View> {
    let mut depends: BTreeMap<Name, Vec<Name>> = BTreeMap::new();
    for row in dependencies {
        let view = Name::new(row.get::<_, String>(0), row.get::<_, String>(1));
        depends
            .entry(view)
            .or_default()
            .push(Name::new(row.get::<_, String>(2), row.get::<_, String>(3)));
    }
    rows.iter()
        .map(|row| {
            let name = Name::new(row.get::<_, String>(0), row.get::<_, String>(1));
            let definition: String = row.get(2);
            let names: Vec<String> = row.get(4);
            let types: Vec<String> = row.get(5);
            View {
                depends_on: depends.remove(&name).unwrap_or_default(),
                name,
                definition: definition.trim_end().trim_end_matches(';').to_string(),
                options: row.get(3),
                columns: names.into_iter().zip(types).collect(),
            }
        })
        .collect()
}
