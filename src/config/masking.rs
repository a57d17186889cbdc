//! `security.masking:` — which result columns callers without the `unmask` scope see masked,
//! and how (see `security::masking`).

use serde::{Deserialize, Serialize};

use super::{Error, Secret, invalid};

/// Column masking. No rules: nothing is masked and the result path pays nothing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Masking {
    /// The rules, in order; a column several rules select takes the first one's strategy.
    /// Default: none.
    pub rules: Vec<MaskRule>,
    /// The HMAC-SHA256 key of the `hash` strategy (at least 16 characters). Required when a
    /// rule can hash (a `hash` rule, or a `tag` rule: a comment may ask for `hash`).
    pub hash_key: Option<Secret>,
    /// Callers with no key at all (where keys are not required, and the CLI) and the bootstrap
    /// key are masked too. Default false: they see data as it is.
    pub mask_unauthenticated: bool,
    /// Seconds between re-reads of the catalog (comments, labels, new columns). A relation or
    /// column a result shows and the last read did not know is read at once anyway.
    /// Default 60.
    pub refresh_seconds: u64,
}

/// One rule: one selector (`match`, `tag`, `security_label` or `heuristics`) and a strategy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    /// `schema.table.column`, each part a name or a glob with `*` (`public.*.email`,
    /// `*.customer.*`); an unqualified `table.column` means any schema.
    #[serde(default, rename = "match")]
    pub pattern: Option<String>,
    /// Columns whose COMMENT contains `[mask]` (this rule's strategy) or `[mask:<strategy>]`.
    #[serde(default)]
    pub tag: bool,
    /// Columns with a `SECURITY LABEL FOR <this provider>`: a label that is a strategy's name
    /// selects that strategy, any other label (such as anon's `MASKED WITH ...`) this rule's.
    #[serde(default)]
    pub security_label: Option<String>,
    /// Columns named like personal data: email, phone, card numbers, national ids (see
    /// README, "Masking").
    #[serde(default)]
    pub heuristics: bool,
    /// `redact`, `partial`, `hash` or `"null"` (quoted: YAML reads a bare null as none). Required
    /// but for `tag` rules (default `redact`).
    #[serde(default)]
    pub strategy: Option<Strategy>,
}

/// How a masked value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// `"***"` whatever the type (null stays null).
    Redact,
    /// Emails as `j***@example.com`, other values as their last 4 characters after `*`s.
    Partial,
    /// `"h:"` and 32 hex digits of HMAC-SHA256 of the value's text: equal values, equal hashes.
    Hash,
    /// `null`.
    Null,
}

impl Strategy {
    pub fn parse(text: &str) -> Option<Strategy> {
        match text.trim().to_ascii_lowercase().as_str() {
            "redact" => Some(Strategy::Redact),
            "partial" => Some(Strategy::Partial),
            "hash" => Some(Strategy::Hash),
            "null" => Some(Strategy::Null),
            _ => None,
        }
    }
}

impl Default for Masking {
    fn default() -> Self {
        Masking { rules: Vec::new(), hash_key: None, mask_unauthenticated: false, refresh_seconds: 60 }
    }
}

impl Masking {
    pub fn enabled(&self) -> bool {
        !self.rules.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        let mut may_hash = false;
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("security.masking.rules[{i}]");
            let selectors =
                [rule.pattern.is_some(), rule.tag, rule.security_label.is_some(), rule.heuristics].iter().filter(|s| **s).count();
            if selectors != 1 {
                return invalid(&at, "a rule has exactly one of match, tag, security_label or heuristics");
            }
            if let Some(pattern) = &rule.pattern {
                let parts = pattern.split('.').count();
                if !(2..=3).contains(&parts) || pattern.split('.').any(str::is_empty) {
                    return invalid(&format!("{at}.match"), format!("{pattern:?} is not schema.table.column (or table.column), with * for any"));
                }
            }
            if rule.security_label.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return invalid(&format!("{at}.security_label"), "names the label provider, e.g. anon");
            }
            if rule.strategy.is_none() && !rule.tag {
                return invalid(&format!("{at}.strategy"), "is required: redact, partial, hash or null");
            }
            may_hash |= rule.tag || rule.security_label.is_some() || rule.strategy == Some(Strategy::Hash);
        }
        match &self.hash_key {
            None if may_hash => invalid(
                "security.masking.hash_key",
                "is required when a rule may hash (a hash strategy, or a tag or security_label rule that may ask for one)",
            ),
            Some(key) if key.expose().chars().count() < 16 => invalid("security.masking.hash_key", "must be at least 16 characters"),
            _ if self.refresh_seconds == 0 => invalid("security.masking.refresh_seconds", "must be at least 1"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Masking, String> {
        let masking: Masking = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        masking.validate().map_err(|e| e.to_string())?;
        Ok(masking)
    }

    #[test]
    fn rules_are_checked() {
        assert!(parse("rules: [{match: public.customer.email, strategy: partial}]").is_ok());
        assert!(parse("rules: [{heuristics: true, strategy: redact}]").is_ok());
        let hashing = "rules: [{match: customer.email, strategy: hash}]";
        assert!(parse(hashing).unwrap_err().contains("hash_key"));
        assert!(parse(&format!("{hashing}\nhash_key: 0123456789abcdef")).is_ok());
        assert!(parse("rules: [{match: email, strategy: redact}]").unwrap_err().contains("schema.table.column"));
        assert!(parse("rules: [{match: a.b.c, heuristics: true, strategy: redact}]").unwrap_err().contains("exactly one"));
        assert!(parse("rules: [{match: a.b.c}]").unwrap_err().contains("strategy"));
        assert!(parse("rules: [{match: a.b.c, strategy: scramble}]").is_err());
        assert!(parse("rules: [{match: a.b.c, strategy: redact, extra: 1}]").is_err());
    }

    #[test]
    fn the_hash_key_is_never_printed() {
        let masking = parse("rules: [{match: a.b.c, strategy: hash}]\nhash_key: the-secret-hash-key-value").unwrap();
        let printed = format!("{masking:?} {}", serde_norway::to_string(&masking).unwrap());
        assert!(!printed.contains("the-secret-hash-key-value"), "{printed}");
    }
}
