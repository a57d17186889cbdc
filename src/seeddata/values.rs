//! Plausible values for one column, in PostgreSQL's text form (what COPY reads): chosen by the
//! column's type, its name (`email`, `first_name`, `phone`, `created_at`, `price` ...) and the
//! CHECK rules read from the catalog. Pure: a seeded [`fastrand::Rng`] in, text out.
//!
//! Written by hand rather than with a fake-data crate: the few word lists needed are short,
//! the output must stay the same for a given `--seed` across dependency upgrades, and every
//! value must honour bounds and lengths that such crates know nothing of.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use fastrand::Rng;

use super::model::{Column, Filled};

const FIRST: &[&str] = &[
    "Ada", "Alan", "Amara", "Ana", "Ben", "Chen", "Clara", "David", "Elena", "Emma", "Farah", "Grace", "Hana", "Ivan", "Jamal", "Julia", "Kenji", "Lars",
    "Leila", "Liam", "Maria", "Mateo", "Mei", "Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael", "Sara", "Sofia", "Tariq", "Tom", "Yara", "Zoe",
];
const LAST: &[&str] = &[
    "Adams", "Ali", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Khan", "Kim", "Lopez", "Martin", "Meyer",
    "Nakamura", "Novak", "Okafor", "Patel", "Rossi", "Santos", "Schmidt", "Silva", "Smith", "Tanaka", "Usman", "Weber", "Wong", "Yilmaz",
];
const WORDS: &[&str] = &[
    "amber", "arrow", "autumn", "bright", "canyon", "cedar", "clear", "cloud", "coast", "crystal", "dawn", "delta", "ember", "field", "forest", "garden",
    "harbor", "island", "lake", "light", "maple", "meadow", "mist", "north", "ocean", "orbit", "quiet", "river", "silver", "stone", "summit", "valley",
];
const CITIES: &[&str] = &[
    "Amsterdam", "Austin", "Barcelona", "Berlin", "Bogota", "Cairo", "Dublin", "Helsinki", "Kyoto", "Lagos", "Lima", "Lisbon", "Melbourne", "Montreal",
    "Mumbai", "Nairobi", "Oslo", "Porto", "Seoul", "Toronto", "Vienna", "Warsaw",
];
const COUNTRIES: &[&str] =
    &["Argentina", "Australia", "Brazil", "Canada", "Egypt", "Finland", "France", "Germany", "India", "Japan", "Kenya", "Mexico", "Nigeria", "Norway", "Peru", "Portugal", "Spain"];
const STREETS: &[&str] = &["Main St", "Oak Ave", "Park Rd", "Elm St", "Lake View", "Hill Rd", "River Ln", "Station Rd", "Church St", "Mill Ln"];
const COMPANIES: &[&str] = &["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Tyrell"];
const COLORS: &[&str] = &["red", "green", "blue", "yellow", "purple", "orange", "black", "white", "teal", "gray"];

/// What a text column holds, guessed from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    Email,
    FirstName,
    LastName,
    FullName,
    Username,
    Phone,
    City,
    Country,
    Street,
    PostalCode,
    Url,
    Company,
    Color,
    Secret,
    Title,
    Sentence,
    Code,
    Word,
}

fn text_hint(name: &str) -> Text {
    let n = name.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if has(&["email", "e_mail", "mail"]) {
        Text::Email
    } else if has(&["first_name", "firstname", "given_name", "forename"]) {
        Text::FirstName
    } else if has(&["last_name", "lastname", "surname", "family_name"]) {
        Text::LastName
    } else if has(&["username", "user_name", "login", "handle", "nickname"]) {
        Text::Username
    } else if has(&["phone", "mobile", "tel", "fax"]) {
        Text::Phone
    } else if has(&["city", "town"]) {
        Text::City
    } else if has(&["country"]) {
        Text::Country
    } else if has(&["address", "street"]) {
        Text::Street
    } else if has(&["postal", "zip", "postcode"]) {
        Text::PostalCode
    } else if has(&["url", "website", "link", "homepage"]) {
        Text::Url
    } else if has(&["company", "organization", "organisation", "employer"]) {
        Text::Company
    } else if has(&["colour", "color"]) {
        Text::Color
    } else if has(&["password", "hash", "token", "secret"]) {
        Text::Secret
    } else if has(&["description", "bio", "note", "comment", "body", "content", "summary", "text", "message"]) {
        Text::Sentence
    } else if has(&["title", "subject", "headline"]) {
        Text::Title
    } else if has(&["code", "sku", "slug", "key", "ref"]) {
        Text::Code
    } else if n == "name" || n.ends_with("_name") || n.ends_with("name") {
        if has(&["full", "display", "contact", "customer", "author", "person", "employee"]) || n == "name" { Text::FullName } else { Text::Title }
    } else {
        Text::Word
    }
}

/// How one column's values are made.
#[derive(Debug, Clone)]
pub struct Maker {
    kind: Kind,
    /// Values must differ from row to row (a unique key of its own).
    unique: bool,
    /// Share of NULLs (nullable columns that are no key).
    null_share: f64,
    min_len: usize,
    max_len: Option<usize>,
    /// An array column: one to three elements.
    array: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Int { min: i64, max: i64 },
    Decimal { min: f64, max: f64, scale: u32 },
    Float { min: f64, max: f64 },
    Bool,
    Text(Text),
    Date { from: NaiveDate, days: i64 },
    Timestamp { from: NaiveDateTime, seconds: i64, tz: bool },
    Time,
    Interval,
    Uuid,
    Json,
    Bytea,
    Inet,
    Mac,
    Tsvector,
    OneOf(Vec<String>),
}

/// Why a column cannot be generated.
pub struct Unsupported;

impl Maker {
    /// The maker for `column`, or `Unsupported` for a type with no generator (the caller
    /// decides whether NULL will do).
    pub fn for_column(column: &Column, unique: bool, key: bool) -> Result<Maker, Unsupported> {
        let rules = &column.rules;
        let name = column.name.to_lowercase();
        let kind = if let Some(values) = &rules.allowed {
            Kind::OneOf(values.clone())
        } else if !column.enum_labels.is_empty() {
            Kind::OneOf(column.enum_labels.clone())
        } else {
            base_kind(column, &name)?
        };
        let mut kind = bounded(kind, column);
        // A unique integer counts up from its lower bound: give it the type's whole range
        // unless a CHECK caps it, so a million rows still fit.
        if let Kind::Int { max, .. } = &mut kind
            && unique
            && rules.max.is_none()
        {
            *max = match column.base_type.as_str() {
                "int2" => i16::MAX as i64,
                "int4" | "oid" => i32::MAX as i64,
                _ => i64::MAX,
            };
        }
        let max_len = match column.base_type.as_str() {
            "varchar" | "bpchar" if column.typmod > 4 => Some((column.typmod - 4) as usize),
            _ => None,
        };
        let max_len = match (max_len, rules.max_len) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let null_share = if column.not_null || unique || key { 0.0 } else { 0.1 };
        Ok(Maker { kind, unique, null_share, min_len: rules.min_len.unwrap_or(0), max_len, array: column.is_array })
    }

    /// Unique integers start past `max`, the largest value the table holds already.
    pub fn start_after(&mut self, max: i64) {
        if let Kind::Int { min, max: top } = &mut self.kind {
            *min = (*min).max(max.saturating_add(1));
            *top = (*top).max(*min);
        }
    }

    /// The value for the row numbered `serial` (unique across this run and the table's
    /// existing rows), `None` for NULL.
    pub fn make(&self, rng: &mut Rng, serial: u64) -> Option<String> {
        if self.null_share > 0.0 && rng.f64() < self.null_share {
            return None;
        }
        if self.array {
            let elements: Vec<String> = (0..rng.usize(1..=3))
                .map(|i| {
                    let element = self.element(rng, serial.wrapping_mul(3).wrapping_add(i as u64));
                    format!("\"{}\"", element.replace('\\', "\\\\").replace('"', "\\\""))
                })
                .collect();
            return Some(format!("{{{}}}", elements.join(",")));
        }
        Some(self.element(rng, serial))
    }

    fn element(&self, rng: &mut Rng, serial: u64) -> String {
        let value = match &self.kind {
            Kind::Int { min, max } if self.unique => {
                let span = (*max as i128 - *min as i128 + 1).max(1) as u64;
                (*min as i128 + (serial % span) as i128).to_string()
            }
            Kind::Int { min, max } => rng.i64(*min..=*max).to_string(),
            Kind::Decimal { min, max, scale } => {
                let factor = 10f64.powi(*scale as i32);
                let lo = (min * factor).ceil() as i64;
                let hi = (max * factor).floor() as i64;
                let units = if self.unique { lo + (serial as i64 % (hi - lo + 1).max(1)) } else { rng.i64(lo..=hi.max(lo)) };
                format_scaled(units, *scale)
            }
            Kind::Float { min, max } => format!("{:.4}", min + rng.f64() * (max - min)),
            Kind::Bool => rng.bool().to_string(),
            Kind::Text(hint) => text(*hint, rng, self.unique.then_some(serial)),
            Kind::Date { from, days } => (*from + Duration::days(if self.unique { serial as i64 } else { rng.i64(0..=*days) })).to_string(),
            Kind::Timestamp { from, seconds, tz } => {
                let at = *from + Duration::seconds(if self.unique { serial as i64 } else { rng.i64(0..=*seconds) });
                if *tz { format!("{}+00", at.format("%Y-%m-%d %H:%M:%S")) } else { at.format("%Y-%m-%d %H:%M:%S").to_string() }
            }
            Kind::Time => format!("{:02}:{:02}:{:02}", rng.u32(0..24), rng.u32(0..60), rng.u32(0..60)),
            Kind::Interval => format!("{} minutes", rng.u32(1..10_000)),
            Kind::Uuid => uuid(rng),
            Kind::Json => format!("{{\"n\": {}, \"tag\": \"{}\"}}", rng.u32(0..1000), pick(rng, WORDS)),
            Kind::Bytea => format!("\\x{:016x}", rng.u64(..)),
            Kind::Inet => format!("10.{}.{}.{}", rng.u8(..), rng.u8(..), rng.u8(1..255)),
            Kind::Mac => (0..6).map(|_| format!("{:02x}", rng.u8(..))).collect::<Vec<_>>().join(":"),
            Kind::Tsvector => format!("{} {}", pick(rng, WORDS), pick(rng, WORDS)),
            Kind::OneOf(values) => values[rng.usize(..values.len())].clone(),
        };
        self.fit(value, rng)
    }

    /// Text cut to the column's length, or padded to its minimum; a unique value keeps its
    /// distinguishing end.
    fn fit(&self, value: String, rng: &mut Rng) -> String {
        if !matches!(self.kind, Kind::Text(_)) {
            return value;
        }
        let mut value = value;
        while value.chars().count() < self.min_len {
            value.push(rng.alphanumeric());
        }
        match self.max_len {
            Some(max) if value.chars().count() > max => {
                let skip = value.chars().count() - max;
                if self.unique { value.chars().skip(skip).collect() } else { value.chars().take(max).collect() }
            }
            _ => value,
        }
    }
}

fn pick<'a>(rng: &mut Rng, list: &[&'a str]) -> &'a str {
    list[rng.usize(..list.len())]
}

fn format_scaled(units: i64, scale: u32) -> String {
    if scale == 0 {
        return units.to_string();
    }
    let factor = 10i64.pow(scale);
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    format!("{sign}{}.{:0width$}", abs / factor as u64, abs % factor as u64, width = scale as usize)
}

fn uuid(rng: &mut Rng) -> String {
    let bytes: [u8; 16] = std::array::from_fn(|_| rng.u8(..));
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

fn text(hint: Text, rng: &mut Rng, serial: Option<u64>) -> String {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let suffix = |sep: &str| serial.map_or_else(String::new, |n| format!("{sep}{n}"));
    match hint {
        Text::Email => format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), serial.map_or_else(|| rng.u32(1..1000).to_string(), |n| n.to_string())),
        Text::FirstName => format!("{first}{}", suffix(" ")),
        Text::LastName => format!("{last}{}", suffix(" ")),
        Text::FullName => format!("{first} {last}{}", suffix(" ")),
        Text::Username => format!("{}_{}{}", first.to_lowercase(), last.to_lowercase(), suffix("_")),
        Text::Phone => match serial {
            Some(n) => format!("+1-555-{:07}", n % 10_000_000),
            None => format!("+1-555-{:03}-{:04}", rng.u32(100..1000), rng.u32(0..10_000)),
        },
        Text::City => format!("{}{}", pick(rng, CITIES), suffix(" ")),
        Text::Country => format!("{}{}", pick(rng, COUNTRIES), suffix(" ")),
        Text::Street => format!("{} {}{}", rng.u32(1..2000), pick(rng, STREETS), suffix(" #")),
        Text::PostalCode => match serial {
            Some(n) => format!("{:05}", n % 100_000),
            None => format!("{:05}", rng.u32(10_000..100_000)),
        },
        Text::Url => format!("https://example.com/{}{}", pick(rng, WORDS), suffix("-")),
        Text::Company => format!("{} {}{}", pick(rng, COMPANIES), ["Inc", "Ltd", "GmbH", "LLC"][rng.usize(..4)], suffix(" ")),
        Text::Color => format!("{}{}", pick(rng, COLORS), suffix("-")),
        Text::Secret => (0..32).map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0')).collect(),
        Text::Title => {
            let words: Vec<String> = (0..rng.usize(2..4)).map(|_| capitalized(pick(rng, WORDS))).collect();
            format!("{}{}", words.join(" "), suffix(" "))
        }
        Text::Sentence => {
            let words: Vec<&str> = (0..rng.usize(6..14)).map(|_| pick(rng, WORDS)).collect();
            format!("{}.{}", capitalized(&words.join(" ")), suffix(" "))
        }
        Text::Code => match serial {
            Some(n) => format!("{}-{n:06}", pick(rng, WORDS).to_uppercase()),
            None => (0..8).map(|_| rng.alphanumeric().to_ascii_uppercase()).collect(),
        },
        Text::Word => format!("{}{}", pick(rng, WORDS), suffix("-")),
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

fn int_range(name: &str, type_min: i64, type_max: i64) -> (i64, i64) {
    let has = |words: &[&str]| words.iter().any(|w| name.contains(w));
    let (lo, hi) = if has(&["age"]) {
        (18, 90)
    } else if has(&["year"]) {
        (1970, 2025)
    } else if has(&["rating", "score", "stars"]) {
        (1, 5)
    } else if has(&["quantity", "qty", "count", "stock", "amount"]) {
        (1, 100)
    } else if has(&["percent", "pct"]) {
        (0, 100)
    } else if has(&["length", "duration", "minutes", "runtime"]) {
        (1, 300)
    } else {
        (1, 100_000)
    };
    (lo.clamp(type_min, type_max), hi.clamp(type_min, type_max))
}

fn base_kind(column: &Column, name: &str) -> Result<Kind, Unsupported> {
    let has = |words: &[&str]| words.iter().any(|w| name.contains(w));
    let time_range = || {
        if has(&["birth", "dob"]) {
            (NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default(), 365 * 55)
        } else {
            (NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(), 365 * 2)
        }
    };
    Ok(match column.base_type.as_str() {
        "int2" => {
            let (min, max) = int_range(name, i16::MIN as i64, i16::MAX as i64);
            Kind::Int { min, max }
        }
        "int4" | "oid" => {
            let (min, max) = int_range(name, i32::MIN as i64, i32::MAX as i64);
            Kind::Int { min, max }
        }
        "int8" => {
            let (min, max) = int_range(name, i64::MIN, i64::MAX);
            Kind::Int { min, max }
        }
        "numeric" | "money" => {
            let (precision, scale) = if column.typmod > 4 { (((column.typmod - 4) >> 16) & 0xffff, (column.typmod - 4) & 0xffff) } else { (0, 2) };
            let (min, max): (f64, f64) = if has(&["lat"]) {
                (-90.0, 90.0)
            } else if has(&["lon", "lng"]) {
                (-180.0, 180.0)
            } else if has(&["rate", "percent"]) {
                (0.0, 10.0)
            } else {
                (1.0, 1000.0)
            };
            // A numeric(p, s) holds less than 10^(p - s).
            let limit = if precision > 0 { 10f64.powi(precision - scale) - 10f64.powi(-scale) } else { f64::MAX };
            Kind::Decimal { min: min.max(-limit), max: max.min(limit), scale: scale.max(0) as u32 }
        }
        "float4" | "float8" => Kind::Float { min: 0.0, max: 1000.0 },
        "bool" => Kind::Bool,
        "text" | "varchar" | "bpchar" | "name" | "citext" => Kind::Text(text_hint(name)),
        "date" => {
            let (from, days) = time_range();
            Kind::Date { from, days }
        }
        "timestamp" | "timestamptz" => {
            let (from, days) = time_range();
            Kind::Timestamp { from: from.and_hms_opt(0, 0, 0).unwrap_or_default(), seconds: days * 86_400, tz: column.base_type == "timestamptz" }
        }
        "time" | "timetz" => Kind::Time,
        "interval" => Kind::Interval,
        "uuid" => Kind::Uuid,
        "json" | "jsonb" => Kind::Json,
        "bytea" => Kind::Bytea,
        "inet" | "cidr" => Kind::Inet,
        "macaddr" => Kind::Mac,
        "tsvector" => Kind::Tsvector,
        _ => return Err(Unsupported),
    })
}

/// `[min, max]` (the type's or the name's plausible range) narrowed to `[lo, hi]` (the CHECK
/// bounds): their overlap, or, when they do not overlap, the CHECK's range from its nearer end,
/// as wide as the plausible one was.
fn narrow(min: f64, max: f64, lo: f64, hi: f64) -> (f64, f64) {
    let (a, b) = (min.max(lo), max.min(hi));
    if a <= b {
        return (a, b);
    }
    let width = max - min;
    if max < lo { (lo, (lo + width).min(hi)) } else { ((hi - width).max(lo), hi) }
}

/// `kind` narrowed to the column's CHECK bounds.
fn bounded(kind: Kind, column: &Column) -> Kind {
    let rules = &column.rules;
    if rules.min.is_none() && rules.max.is_none() {
        return kind;
    }
    let lo = |step: f64| rules.min.map_or(f64::MIN, |b| if b.inclusive { b.value } else { b.value + step });
    let hi = |step: f64| rules.max.map_or(f64::MAX, |b| if b.inclusive { b.value } else { b.value - step });
    match kind {
        Kind::Int { min, max } => {
            let (a, b) = narrow(min as f64, max as f64, lo(1.0).ceil(), hi(1.0).floor());
            Kind::Int { min: a.ceil() as i64, max: b.floor() as i64 }
        }
        Kind::Decimal { min, max, scale } => {
            let step = 10f64.powi(-(scale as i32));
            let (a, b) = narrow(min, max, lo(step), hi(step));
            Kind::Decimal { min: a, max: b, scale }
        }
        Kind::Float { min, max } => {
            let (a, b) = narrow(min, max, lo(1e-3), hi(1e-3));
            Kind::Float { min: a, max: b }
        }
        other => other,
    }
}

/// Whether the generator gives this column a value, rather than leaving it to the server.
pub fn generated(column: &Column, in_foreign_key: bool) -> bool {
    match column.filled {
        Filled::No => true,
        Filled::Always | Filled::Sequence => false,
        // A default like now() would give every row the same time: spread them instead.
        Filled::Default => in_foreign_key || matches!(column.base_type.as_str(), "timestamp" | "timestamptz" | "date"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeddata::checks::{Bound, Rules};

    fn column(name: &str, base: &str, typmod: i32, rules: Rules) -> Column {
        Column {
            name: name.into(),
            not_null: true,
            formatted_type: base.into(),
            base_type: base.into(),
            typmod,
            is_array: false,
            enum_labels: Vec::new(),
            filled: Filled::No,
            rules,
        }
    }

    fn values(c: &Column, unique: bool, n: u64) -> Vec<String> {
        let maker = Maker::for_column(c, unique, false).ok().expect("supported");
        let mut rng = Rng::with_seed(7);
        (0..n).map(|i| maker.make(&mut rng, i).expect("not null")).collect()
    }

    #[test]
    fn names_pick_plausible_values() {
        let email = values(&column("email", "text", -1, Rules::default()), true, 50);
        assert!(email.iter().all(|e| e.contains('@') && e.ends_with("@example.com")), "{email:?}");
        let distinct: std::collections::HashSet<_> = email.iter().collect();
        assert_eq!(distinct.len(), 50);
        let phone = values(&column("phone", "varchar", 20 + 4, Rules::default()), false, 5);
        assert!(phone.iter().all(|p| p.starts_with("+1-555-") && p.len() <= 20), "{phone:?}");
        let created = values(&column("created_at", "timestamptz", -1, Rules::default()), false, 5);
        assert!(created.iter().all(|t| t.starts_with("202") && t.ends_with("+00")), "{created:?}");
    }

    #[test]
    fn checks_and_types_bound_the_values() {
        let rules = Rules { min: Some(Bound { value: 0.0, inclusive: false }), max: Some(Bound { value: 10.0, inclusive: true }), ..Default::default() };
        for v in values(&column("price", "numeric", ((5 << 16) | 2) + 4, rules), false, 200) {
            let x: f64 = v.parse().unwrap();
            assert!(x > 0.0 && x <= 10.0, "{v}");
            assert_eq!(v.split('.').nth(1).map(str::len), Some(2), "{v}");
        }
        let year = Rules { min: Some(Bound { value: 1901.0, inclusive: true }), max: Some(Bound { value: 2155.0, inclusive: true }), ..Default::default() };
        assert!(values(&column("release_year", "int4", -1, year), false, 100).iter().all(|v| (1970..=2025).contains(&v.parse::<i32>().unwrap())));
        let far = Rules { min: Some(Bound { value: 500_000.0, inclusive: false }), ..Default::default() };
        assert!(values(&column("n", "int4", -1, far), false, 100).iter().all(|v| (500_001..=600_000).contains(&v.parse::<i32>().unwrap())));
        assert_eq!(narrow(0.0, 10.0, 20.0, 25.0), (20.0, 25.0));
        assert_eq!(narrow(0.0, 10.0, -50.0, -40.0), (-50.0, -40.0));
        let short = Rules { max_len: Some(3), min_len: Some(2), ..Default::default() };
        assert!(values(&column("code", "text", -1, short), false, 50).iter().all(|v| (2..=3).contains(&v.chars().count())));
        let small = values(&column("n", "int2", -1, Rules::default()), true, 3);
        assert_eq!(small, ["1", "2", "3"]);
        assert_eq!(format_scaled(-5, 2), "-0.05");
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let c = column("name", "text", -1, Rules::default());
        assert_eq!(values(&c, false, 20), values(&c, false, 20));
    }
}
