//! Which strategy, if any, the configured rules give a column: pure functions of what the
//! catalog says about it (names, type, comment, security labels).

use crate::config::{MaskRule, MaskStrategy as Strategy};

/// What a rule can select a column by.
#[derive(Debug, Clone, Default)]
pub struct ColumnFacts {
    pub schema: String,
    pub relation: String,
    pub column: String,
    /// `format_type` of the column's type (a domain's own name).
    pub type_name: String,
    pub comment: Option<String>,
    /// `(provider, label)` of its `SECURITY LABEL`s.
    pub labels: Vec<(String, String)>,
}

/// The first rule's strategy that selects `column`.
pub fn strategy_for(rules: &[MaskRule], column: &ColumnFacts) -> Option<Strategy> {
    rules.iter().find_map(|rule| selects(rule, column))
}

fn selects(rule: &MaskRule, c: &ColumnFacts) -> Option<Strategy> {
    if let Some(pattern) = &rule.pattern {
        return matches_pattern(pattern, &c.schema, &c.relation, &c.column).then_some(rule.strategy?);
    }
    if rule.tag {
        return c.comment.as_deref().and_then(|comment| tagged(comment, rule.strategy.unwrap_or(Strategy::Redact)));
    }
    if let Some(provider) = &rule.security_label {
        // A label that names no strategy (anon's `MASKED WITH FUNCTION ...`) still says
        // "sensitive": the rule's own strategy, or redact.
        let (_, label) = c.labels.iter().find(|(p, _)| p == provider)?;
        return Some(Strategy::parse(label).or(rule.strategy).unwrap_or(Strategy::Redact));
    }
    if rule.heuristics {
        return looks_personal(&c.column, &c.type_name).then_some(rule.strategy?);
    }
    None
}

/// `[mask]` → `default`; `[mask:partial]` → partial; `[mask:<anything else>]` → redact (a
/// typo must not unmask).
pub fn tagged(comment: &str, default: Strategy) -> Option<Strategy> {
    let lower = comment.to_ascii_lowercase();
    let start = lower.find("[mask")?;
    let rest = &lower[start + 5..];
    let end = rest.find(']')?;
    match rest[..end].trim() {
        "" => Some(default),
        word => Some(word.strip_prefix(':').and_then(Strategy::parse).unwrap_or(Strategy::Redact)),
    }
}

/// `schema.table.column` (or `table.column`, any schema) with `*` globs, case-insensitive.
pub fn matches_pattern(pattern: &str, schema: &str, relation: &str, column: &str) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    let (s, t, c) = match parts.as_slice() {
        [s, t, c] => (*s, *t, *c),
        [t, c] => ("*", *t, *c),
        _ => return false,
    };
    glob(s, schema) && glob(t, relation) && glob(c, column)
}

/// `*` matches any run of characters. By hand: a dozen lines, where a glob crate would bring
/// path semantics (`/`, `**`, classes) that names do not have.
fn glob(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_lowercase(), name.to_lowercase());
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else { return rest.is_empty() };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Names (and domain types) that hold personal data, as words of the name.
const PERSONAL_WORDS: &[&str] = &["email", "mail", "phone", "mobile", "cellphone", "fax", "ssn", "pan", "iban", "passport"];
/// Whole names (their words joined) that do.
const PERSONAL_NAMES: &[&str] = &[
    "e_mail", "card_number", "cardnumber", "cc_number", "ccnumber", "credit_card", "creditcard", "card_no", "phone_number",
    "tax_id", "national_id", "social_security_number",
];

/// Whether a column named `name` (or of a type named `type_name`) looks like an email, phone
/// or card number. Words are split on `_` and case changes: `contactEmail`, `home_phone`.
pub fn looks_personal(name: &str, type_name: &str) -> bool {
    let name_words = words(name);
    let joined = name_words.join("_");
    name_words.iter().any(|w| PERSONAL_WORDS.contains(&w.as_str()))
        || PERSONAL_NAMES.iter().any(|n| joined == *n || joined.ends_with(&format!("_{n}")) || joined.starts_with(&format!("{n}_")))
        || words(type_name).iter().any(|w| matches!(w.as_str(), "email" | "phone"))
}

fn words(name: &str) -> Vec<String> {
    let mut words = vec![String::new()];
    let mut previous_lower = false;
    for ch in name.chars() {
        if !ch.is_alphanumeric() {
            words.push(String::new());
        } else if ch.is_uppercase() && previous_lower {
            words.push(ch.to_lowercase().collect());
        } else if let Some(word) = words.last_mut() {
            word.extend(ch.to_lowercase());
        }
        previous_lower = ch.is_lowercase();
    }
    words.retain(|w| !w.is_empty());
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> MaskRule {
        serde_norway::from_str(yaml).unwrap()
    }

    fn column(schema: &str, relation: &str, column: &str) -> ColumnFacts {
        ColumnFacts { schema: schema.into(), relation: relation.into(), column: column.into(), type_name: "text".into(), ..Default::default() }
    }

    #[test]
    fn patterns_glob_each_part() {
        for (pattern, (s, t, c), expected) in [
            ("public.customer.email", ("public", "customer", "email"), true),
            ("customer.email", ("sales", "customer", "email"), true),
            ("public.*.email", ("public", "staff", "email"), true),
            ("*.cust*.*mail", ("x", "customers", "e_mail"), true),
            ("public.customer.email", ("public", "customer", "email2"), false),
            ("public.customer.email", ("private", "customer", "email"), false),
            ("public.c*r.*", ("public", "card", "x"), false),
            ("public.*_log.*", ("public", "log", "x"), false),
        ] {
            assert_eq!(matches_pattern(pattern, s, t, c), expected, "{pattern} on {s}.{t}.{c}");
        }
    }

    #[test]
    fn tags_name_a_strategy_or_take_the_rules() {
        assert_eq!(tagged("contact address [mask]", Strategy::Partial), Some(Strategy::Partial));
        assert_eq!(tagged("[MASK:hash] customer id", Strategy::Redact), Some(Strategy::Hash));
        assert_eq!(tagged("[mask:scramble]", Strategy::Null), Some(Strategy::Redact));
        assert_eq!(tagged("mask me", Strategy::Redact), None);
        assert_eq!(tagged("[masked]", Strategy::Redact), Some(Strategy::Redact));
    }

    #[test]
    fn heuristics_know_personal_names() {
        for name in ["email", "contact_email", "contactEmail", "e_mail", "phone", "home_phone", "mobile", "card_number", "cc_number", "pan", "ssn"] {
            assert!(looks_personal(name, "text"), "{name}");
        }
        for name in ["id", "name", "company", "panel", "emailed_at_count_x", "price", "span"] {
            assert!(!looks_personal(name, "integer"), "{name}");
        }
        assert!(looks_personal("contact", "email_address"));
    }

    #[test]
    fn the_first_selecting_rule_wins() {
        let rules = vec![
            rule("{match: public.customer.email, strategy: hash}"),
            rule("{heuristics: true, strategy: partial}"),
            rule("{tag: true}"),
            rule("{security_label: anon, strategy: \"null\"}"),
        ];
        assert_eq!(strategy_for(&rules, &column("public", "customer", "email")), Some(Strategy::Hash));
        assert_eq!(strategy_for(&rules, &column("public", "staff", "email")), Some(Strategy::Partial));
        assert_eq!(strategy_for(&rules, &column("public", "staff", "name")), None);
        let mut tagged = column("public", "staff", "notes");
        tagged.comment = Some("free text [mask:null]".into());
        assert_eq!(strategy_for(&rules, &tagged), Some(Strategy::Null));
        let mut labelled = column("public", "staff", "notes");
        labelled.labels = vec![("anon".into(), "MASKED WITH FUNCTION anon.fake_last_name()".into())];
        assert_eq!(strategy_for(&rules, &labelled), Some(Strategy::Null));
        labelled.labels = vec![("anon".into(), "partial".into())];
        assert_eq!(strategy_for(&rules, &labelled), Some(Strategy::Partial));
    }
}
