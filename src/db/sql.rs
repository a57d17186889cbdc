//! SQL text dbagent writes itself: identifiers, qualified names, string literals and
//! postgresql.conf strings. Whatever dbagent splices into a statement or a configuration file is
//! quoted here, and only here; a value that can be a bind parameter is one instead (user-given
//! relation names go to `to_regclass($1)` as [`regclass`] text, never into the statement).
//!
//! Identifiers are always double-quoted (`"Order"`, `"a""b"`), so case, spaces, keywords and
//! unicode survive; [`ident_as_needed`] leaves plain lower-case words bare, for generated
//! migrations that people read.
//!
//! PostgreSQL keeps the first 63 bytes of a name (`NAMEDATALEN - 1`) and drops the rest with only
//! a NOTICE, so two long names that differ after byte 63 silently become one. dbagent refuses
//! such a name instead: every name a user gives for something new goes through [`name`], which
//! also refuses the empty name (PostgreSQL rejects `""`) and NUL (which no name can hold). Names
//! read back from the catalog are within the limit by construction and are quoted as they are.

/// The longest name PostgreSQL keeps whole, in bytes (`NAMEDATALEN - 1`).
pub const MAX_NAME_BYTES: usize = 63;

/// Why some text cannot name a database object as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("the name {name:?} is {bytes} bytes long; PostgreSQL keeps only {MAX_NAME_BYTES} bytes of a name and would silently cut the rest")]
    TooLong { name: String, bytes: usize },
    #[error("the name {name:?} contains a NUL character, which no PostgreSQL name can hold")]
    Nul { name: String },
}

/// `text` when PostgreSQL would keep it whole as a name: 1 to 63 bytes, no NUL.
pub fn name(text: &str) -> Result<&str, NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if text.contains('\0') {
        return Err(NameError::Nul { name: text.to_owned() });
    }
    if text.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong { name: text.to_owned(), bytes: text.len() });
    }
    Ok(text)
}

/// The longest prefix of `text` that fits in a name (cut at a character boundary), for names
/// dbagent derives itself (`<table>_<columns>_idx`).
pub fn fit(text: &str) -> &str {
    let mut end = text.len().min(MAX_NAME_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `name` as a double-quoted identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.name`, each part a double-quoted identifier.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// `name` as an identifier, quoted only when it must be (like PostgreSQL's `quote_ident`):
/// anything but a lower-case word, or a word the grammar reserves in any position.
pub fn ident_as_needed(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_keyword(name) { name.to_string() } else { ident(name) }
}

/// Whether PostgreSQL's scanner takes `word` for a keyword that would need quoting as a name
/// (every kind but unreserved). The scanner is PostgreSQL's own, through pg_query, so the
/// keyword list can never be out of date.
fn is_keyword(word: &str) -> bool {
    use pg_query::protobuf::KeywordKind;
    match pg_query::scan_tokens(word) {
        Ok(tokens) => tokens.iter().any(|t| {
            t.keyword_kind != KeywordKind::NoKeyword as i32 && t.keyword_kind != KeywordKind::UnreservedKeyword as i32
        }),
        Err(_) => true,
    }
}

/// A relation name as the parser gives it (`schema.table`, folded already) → the text
/// `to_regclass` reads, each part double-quoted so case and dots inside a part survive. Pass it
/// as a bind parameter.
pub fn regclass(table: &str) -> String {
    match table.rsplit_once('.') {
        Some((schema, rel)) => qualified(schema, rel),
        None => ident(table),
    }
}

/// `text` as a string literal, read the same whatever `standard_conforming_strings` is: quotes
/// doubled, and when there is a backslash, an escape string (`E'...'`) with it doubled (in a
/// plain literal a backslash means itself only while `standard_conforming_strings` is on).
pub fn literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') { format!("E'{}'", quoted.replace('\\', "\\\\")) } else { format!("'{quoted}'") }
}

/// `text` as a quoted postgresql.conf value: quotes doubled, backslashes escaped (the
/// configuration file's parser treats `\` as an escape inside quoted values, always).
pub fn conf_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted_and_keep_hostile_text() {
        let cases = [
            ("users", "\"users\""),
            ("Order Items", "\"Order Items\""),
            ("a\"b", "\"a\"\"b\""),
            ("\"", "\"\"\"\""),
            ("it's", "\"it's\""),
            ("x\"; DROP TABLE t; --", "\"x\"\"; DROP TABLE t; --\""),
            ("tëst_ü", "\"tëst_ü\""),
            ("表", "\"表\""),
            ("a\\b", "\"a\\b\""),
        ];
        for (name, quoted) in cases {
            assert_eq!(ident(name), quoted, "{name}");
        }
        assert_eq!(qualified("my schema", "T\"1"), "\"my schema\".\"T\"\"1\"");
    }

    #[test]
    fn identifiers_as_needed_are_bare_only_for_plain_lower_case_non_keywords() {
        let cases = [
            ("users", "users"),
            ("_x1", "_x1"),
            ("a$", "\"a$\""),
            ("Users", "\"Users\""),
            ("order items", "\"order items\""),
            ("1st", "\"1st\""),
            ("say\"hi", "\"say\"\"hi\""),
            ("user", "\"user\""),
            ("order", "\"order\""),
            ("between", "\"between\""),
            ("left", "\"left\""),
            ("name", "name"),
            ("comment", "comment"),
            ("é", "\"é\""),
        ];
        for (name, quoted) in cases {
            assert_eq!(ident_as_needed(name), quoted, "{name}");
        }
    }

    #[test]
    fn names_past_63_bytes_empty_or_with_nul_are_refused() {
        let ascii_63 = "a".repeat(63);
        let ascii_64 = "a".repeat(64);
        // 'é' is two bytes: 31 of them and one 'a' fit, 32 do not.
        let unicode_63 = format!("{}a", "é".repeat(31));
        let unicode_64 = "é".repeat(32);
        assert_eq!(name(&ascii_63), Ok(ascii_63.as_str()));
        assert_eq!(name(&unicode_63), Ok(unicode_63.as_str()));
        assert_eq!(name(&ascii_64), Err(NameError::TooLong { name: ascii_64.clone(), bytes: 64 }));
        assert_eq!(name(&unicode_64), Err(NameError::TooLong { name: unicode_64.clone(), bytes: 64 }));
        assert_eq!(name(""), Err(NameError::Empty));
        assert!(matches!(name("a\0b"), Err(NameError::Nul { .. })));
        assert_eq!(name("Order \"Items\""), Ok("Order \"Items\""));
        assert!(NameError::TooLong { name: ascii_64, bytes: 64 }.to_string().contains("63 bytes"));
    }

    #[test]
    fn derived_names_are_cut_at_a_character_boundary_within_63_bytes() {
        assert_eq!(fit("short"), "short");
        assert_eq!(fit(&"a".repeat(70)), "a".repeat(63));
        // 62 bytes of 'a', then a two-byte character that would end at byte 64.
        let text = format!("{}éz", "a".repeat(62));
        assert_eq!(fit(&text), "a".repeat(62));
        assert!(name(fit(&"表".repeat(30))).is_ok());
    }

    #[test]
    fn relation_names_for_to_regclass_quote_each_part() {
        assert_eq!(regclass("public.users"), "\"public\".\"users\"");
        assert_eq!(regclass("Order Items"), "\"Order Items\"");
        assert_eq!(regclass("it's"), "\"it's\"");
        assert_eq!(regclass("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn literals_survive_quotes_and_backslashes_whatever_standard_conforming_strings_is() {
        let cases = [
            ("a", "'a'"),
            ("it's", "'it''s'"),
            ("a\\b", "E'a\\\\b'"),
            ("\\'", "E'\\\\'''"),
            ("", "''"),
            ("ünïcødé", "'ünïcødé'"),
            ("'; DROP TABLE t; --", "'''; DROP TABLE t; --'"),
        ];
        for (text, quoted) in cases {
            assert_eq!(literal(text), quoted, "{text}");
        }
    }

    #[test]
    fn conf_strings_escape_quotes_and_backslashes() {
        assert_eq!(conf_string("/srv/db"), "'/srv/db'");
        assert_eq!(conf_string("it's"), "'it''s'");
        assert_eq!(conf_string("C:\\pg"), "'C:\\\\pg'");
    }
}
