//! OIDs of the built-in PostgreSQL types this module handles specially.
//!
//! Dispatching on the OID (a `u32`) compiles to a jump table, which is
//! cheaper than comparing a [`Type`](tokio_postgres::types::Type) against a
//! long chain of constants for every value. The constants are checked
//! against `tokio_postgres`'s own `Type::X.oid()` in the unit tests.

pub const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
pub const CHAR: u32 = 18;
pub const NAME: u32 = 19;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const REGPROC: u32 = 24;
pub const TEXT: u32 = 25;
pub const OID: u32 = 26;
pub const TID: u32 = 27;
pub const XID: u32 = 28;
pub const CID: u32 = 29;
pub const JSON: u32 = 114;
pub const XML: u32 = 142;
pub const PG_NODE_TREE: u32 = 194;
pub const POINT: u32 = 600;
pub const LSEG: u32 = 601;
pub const PATH: u32 = 602;
pub const BOX: u32 = 603;
pub const POLYGON: u32 = 604;
pub const LINE: u32 = 628;
pub const CIDR: u32 = 650;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const UNKNOWN: u32 = 705;
pub const CIRCLE: u32 = 718;
pub const MACADDR8: u32 = 774;
pub const MONEY: u32 = 790;
pub const MACADDR: u32 = 829;
pub const INET: u32 = 869;
pub const BPCHAR: u32 = 1042;
pub const VARCHAR: u32 = 1043;
pub const DATE: u32 = 1082;
pub const TIME: u32 = 1083;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;
pub const INTERVAL: u32 = 1186;
pub const TIMETZ: u32 = 1266;
pub const BIT: u32 = 1560;
pub const VARBIT: u32 = 1562;
pub const NUMERIC: u32 = 1700;
pub const REFCURSOR: u32 = 1790;
pub const REGPROCEDURE: u32 = 2202;
pub const REGOPER: u32 = 2203;
pub const REGOPERATOR: u32 = 2204;
pub const REGCLASS: u32 = 2205;
pub const REGTYPE: u32 = 2206;
pub const RECORD: u32 = 2249;
pub const CSTRING: u32 = 2275;
pub const ANYARRAY: u32 = 2277;
pub const VOID: u32 = 2278;
pub const UUID: u32 = 2950;
pub const TXID_SNAPSHOT: u32 = 2970;
pub const PG_LSN: u32 = 3220;
pub const TSVECTOR: u32 = 3614;
pub const TSQUERY: u32 = 3615;
pub const REGCONFIG: u32 = 3734;
pub const REGDICTIONARY: u32 = 3769;
pub const JSONB: u32 = 3802;
pub const JSONPATH: u32 = 4072;
pub const REGNAMESPACE: u32 = 4089;
pub const REGROLE: u32 = 4096;
pub const REGCOLLATION: u32 = 4191;
pub const PG_SNAPSHOT: u32 = 5038;
pub const XID8: u32 = 5069;

#[cfg(test)]
mod tests {
    use tokio_postgres::types::Type;

    #[test]
    fn constants_match_tokio_postgres() {
        let table = [
            (super::BOOL, Type::BOOL),
            (super::BYTEA, Type::BYTEA),
            (super::CHAR, Type::CHAR),
            (super::NAME, Type::NAME),
            (super::INT8, Type::INT8),
            (super::INT2, Type::INT2),
            (super::INT4, Type::INT4),
            (super::REGPROC, Type::REGPROC),
            (super::TEXT, Type::TEXT),
            (super::OID, Type::OID),
            (super::TID, Type::TID),
            (super::XID, Type::XID),
            (super::CID, Type::CID),
            (super::JSON, Type::JSON),
            (super::XML, Type::XML),
            (super::PG_NODE_TREE, Type::PG_NODE_TREE),
            (super::POINT, Type::POINT),
            (super::LSEG, Type::LSEG),
            (super::PATH, Type::PATH),
            (super::BOX, Type::BOX),
            (super::POLYGON, Type::POLYGON),
            (super::LINE, Type::LINE),
            (super::CIDR, Type::CIDR),
            (super::FLOAT4, Type::FLOAT4),
            (super::FLOAT8, Type::FLOAT8),
            (super::UNKNOWN, Type::UNKNOWN),
            (super::CIRCLE, Type::CIRCLE),
            (super::MACADDR8, Type::MACADDR8),
            (super::MONEY, Type::MONEY),
            (super::MACADDR, Type::MACADDR),
            (super::INET, Type::INET),
            (super::BPCHAR, Type::BPCHAR),
            (super::VARCHAR, Type::VARCHAR),
            (super::DATE, Type::DATE),
            (super::TIME, Type::TIME),
            (super::TIMESTAMP, Type::TIMESTAMP),
            (super::TIMESTAMPTZ, Type::TIMESTAMPTZ),
            (super::INTERVAL, Type::INTERVAL),
            (super::TIMETZ, Type::TIMETZ),
            (super::BIT, Type::BIT),
            (super::VARBIT, Type::VARBIT),
            (super::NUMERIC, Type::NUMERIC),
            (super::REFCURSOR, Type::REFCURSOR),
            (super::REGPROCEDURE, Type::REGPROCEDURE),
            (super::REGOPER, Type::REGOPER),
            (super::REGOPERATOR, Type::REGOPERATOR),
            (super::REGCLASS, Type::REGCLASS),
            (super::REGTYPE, Type::REGTYPE),
            (super::RECORD, Type::RECORD),
            (super::CSTRING, Type::CSTRING),
            (super::ANYARRAY, Type::ANYARRAY),
            (super::VOID, Type::VOID),
            (super::UUID, Type::UUID),
            (super::TXID_SNAPSHOT, Type::TXID_SNAPSHOT),
            (super::PG_LSN, Type::PG_LSN),
            (super::TSVECTOR, Type::TS_VECTOR),
            (super::TSQUERY, Type::TSQUERY),
            (super::REGCONFIG, Type::REGCONFIG),
            (super::REGDICTIONARY, Type::REGDICTIONARY),
            (super::JSONB, Type::JSONB),
            (super::JSONPATH, Type::JSONPATH),
            (super::REGNAMESPACE, Type::REGNAMESPACE),
            (super::REGROLE, Type::REGROLE),
            (super::REGCOLLATION, Type::REGCOLLATION),
            (super::PG_SNAPSHOT, Type::PG_SNAPSHOT),
            (super::XID8, Type::XID8),
        ];
        for (oid, ty) in table {
            assert_eq!(oid, ty.oid(), "{}", ty.name());
        }
    }
}
