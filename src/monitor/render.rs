//! The Prometheus text exposition format, written by hand.
//!
//! Why not the `metrics` + `metrics-exporter-prometheus` crates: their recorder keys each
//! sample by a `Key` of owned label strings (hashed and looked up on every increment), which
//! is the per-request label allocation and locking the request path must not have; and the
//! database series are whole tables read every 15 s and replaced at once, not increments.
//! The format itself is a few lines (HELP, TYPE, `name{labels} value`, escaping), checked by
//! `promtool check metrics` in the tests.

use std::fmt::Write;

use super::histogram::HistogramSnapshot;

/// A metric family's type line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// For postgres_exporter's names that break Prometheus' naming lints (a counter without
    /// `_total`, a gauge ending in `_count`): the names are what existing dashboards and
    /// alert rules query, and PromQL treats the type as a hint only.
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Untyped => "untyped",
        }
    }
}

/// Text being written; families are announced once with [`Text::family`], then their samples.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    pub fn with_capacity(bytes: usize) -> Text {
        Text { out: String::with_capacity(bytes) }
    }

    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// A family and its one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram (its family announced first).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut le = String::new();
        for (bound, count) in h.cumulative() {
            le.clear();
            match bound {
                Some(b) => push_value(&mut le, b),
                None => le.push_str("+Inf"),
            }
            self.out.push_str(name);
            self.out.push_str("_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {count}");
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample(&format!("{name}_count"), labels, h.count() as f64);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let all = labels.iter().copied().chain(le.map(|v| ("le", v)));
        for (i, (k, v)) in all.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    pub fn push_str(&mut self, text: &str) {
        self.out.push_str(text);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_escaped_and_formatted() {
        let mut t = Text::default();
        t.family("x_total", Kind::Counter, "a \\ b\nc");
        t.sample("x_total", &[("q", "a\"b\\c\nd")], 3.0);
        t.sample("x_total", &[], 0.25);
        t.sample("x_total", &[("a", "1"), ("b", "2")], f64::NAN);
        let text = t.finish();
        assert_eq!(
            text,
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{q=\"a\\\"b\\\\c\\nd\"} 3\nx_total 0.25\nx_total{a=\"1\",b=\"2\"} NaN\n"
        );
    }
}
