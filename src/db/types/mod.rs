//! Conversion between PostgreSQL values and JSON.
//!
//! This module owns both directions of the query API's value mapping:
//!
//! * [`decode`]: result columns arrive in PostgreSQL's **binary** wire
//!   format; [`write_json`] appends their JSON form straight into a
//!   `Vec<u8>` (no `serde_json::Value` trees; allocation-free for scalars).
//!   Use [`Raw`] with `row.try_get::<_, Raw>(i)` to borrow the bytes.
//! * [`encode`]: JSON request parameters become PostgreSQL **text** for the
//!   type the server inferred ([`encode_param`]), bound as [`TextParam`]
//!   with `Format::Text`, so the server's own input functions parse them
//!   and report bad input with their own SQLSTATE (e.g. `22P02`).
//!
//! # Results: PostgreSQL → JSON
//!
//! | type | JSON |
//! |---|---|
//! | NULL, `void` | `null` |
//! | `bool` | `true` / `false` |
//! | `int2`, `int4`, `int8`, `oid`, `xid`, `xid8`, `cid`, `reg*` | number, exact |
//! | `float4`, `float8` | number, shortest round-trip digits (`0.1::float4` → `0.1`; exponent form below 1e-6 / from 1e21); NaN/±Infinity → `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `numeric` | number with exactly PostgreSQL's digits and scale (`1.50`, `0.00`); NaN/±Infinity → strings as above |
//! | `money` | number with two decimals (`-12.34`) |
//! | `text`, `varchar`, `bpchar`, `name`, `"char"`, `xml`, `unknown`, `refcursor`, `citext`, enums, `jsonpath` | string |
//! | `json` | embedded as is; `jsonb` → version byte stripped, embedded |
//! | `bytea` | `"\\xdeadbeef"` (PostgreSQL hex form) |
//! | `uuid` | lowercase hyphenated string |
//! | `date` | `"YYYY-MM-DD"`, `"0044-03-15 BC"`, `"infinity"`, `"-infinity"` |
//! | `time` / `timetz` | `"HH:MM:SS[.ffffff]"` (fraction trimmed) / plus `"+HH:MM"` (`:SS` if needed) |
//! | `timestamp` / `timestamptz` | `"YYYY-MM-DDTHH:MM:SS[.ffffff]"` / same in UTC with `Z`; BC years end in `" BC"`; `"infinity"`, `"-infinity"` |
//! | `interval` | ISO 8601 as `intervalstyle = iso_8601` prints it: `"P1Y2M3DT4H5M6.5S"`, `"PT0S"`, `"PT-1H-30M"` |
//! | `inet`, `cidr` | PostgreSQL text (`"10.0.0.1"`, `"10.0.0.0/8"`, `"::1"`, `"2001:db8::/32"`) |
//! | `macaddr`, `macaddr8` | `"08:00:2b:01:02:03"` |
//! | `bit`, `varbit` | `"0101"` |
//! | `pg_lsn` | `"16/B374D848"`; `tid` → `"(0,1)"`; `pg_snapshot` → `"10:20:10,14"` |
//! | `point` | `{"x":1.5,"y":2}` |
//! | `line`, `lseg`, `box`, `path`, `polygon`, `circle` | PostgreSQL text form string |
//! | `tsvector`, `tsquery` | PostgreSQL text form string (`"'a':1A 'fat':2B,4C"`) |
//! | arrays | nested JSON arrays (one level per dimension, lower bounds ignored, NULL → `null`, empty → `[]`) |
//! | ranges | `{"lower":..,"upper":..,"lower_inc":..,"upper_inc":..}` (`null` = unbounded); empty → `"empty"`; multiranges → array of those |
//! | composites | `{"field": value}` using the declared field types |
//! | `anyarray` (e.g. `pg_stats`) | array, element type from the OID in the data |
//! | anonymous `record` | `{"f1": .., "f2": ..}` (like `row_to_json`), fields decoded by their OID |
//! | `hstore` | `{"key": "value" or null}` |
//! | domains | as the base type |
//! | anything else | UTF-8 bytes → string, otherwise `"\\x<hex>"` |
//!
//! # Parameters: JSON → PostgreSQL text
//!
//! * `null` → SQL NULL, for every type.
//! * `json`/`jsonb`: **any** other JSON value is the document itself (the
//!   string `"abc"` becomes the JSON string `"abc"`, not the text `abc`).
//! * string → sent as is for every other type (`"42"`, `"\\xdead"`,
//!   `"{1,2}"`, `"[1,5)"`); for enums it must be one of the labels.
//! * number → its exact literal text for `int2/4/8`, `oid`/`reg*`,
//!   `float4/8`, `numeric`, `money` and text-like types; integer types
//!   reject fractions and exponents; other types reject numbers.
//! * bool → `true`/`false` for `bool` and text-like types only.
//! * array → array literal for array types: every element double-quoted
//!   (`"` and `\` escaped), `NULL` unquoted, nested arrays → nested braces
//!   (for `json[]`/`jsonb[]` an array or object element is one JSON
//!   document); `box[]` uses `;` as delimiter. For multiranges: an array
//!   of range objects or range strings.
//! * object → composite: row literal by field name (missing/null → NULL,
//!   unknown key → error); range: `{"lower","upper","lower_inc","upper_inc"}`
//!   (the decoded shape; defaults `[)`, missing bound = unbounded); point:
//!   `{"x","y"}`.
//! * Domains are encoded as their base type (the server checks the domain).
//!
//! Text-like types are `text`, `varchar`, `bpchar`, `name`, `"char"`,
//! `unknown` and `citext`.

pub mod decode;
pub mod encode;
mod oid;

pub use decode::{DecodeError, Raw, write_json, write_json_str};
pub use encode::{ParamError, TextParam, encode_param};
