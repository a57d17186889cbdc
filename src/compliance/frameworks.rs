//! Which checks support which framework control, and each control's worst status. The
//! mapping is ours, made in good faith from each control's text; it is a guide for the
//! people who own the audit, who decide whether a control is met.

use serde::Serialize;

use super::{Check, Counts, Status};

/// The frameworks, as the prefixes of the controls checks name.
pub const FRAMEWORKS: [(&str, &str); 4] = [
    ("SOC 2", "AICPA Trust Services Criteria (SOC 2)"),
    ("PCI-DSS", "PCI DSS v4.0"),
    ("HIPAA", "HIPAA Security Rule (45 CFR 164)"),
    ("GDPR", "GDPR"),
];

/// One framework's controls.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FrameworkSummary {
    /// `SOC 2`, `PCI-DSS`, `HIPAA`, `GDPR`.
    pub framework: &'static str,
    pub title: &'static str,
    pub counts: Counts,
    pub controls: Vec<ControlSummary>,
}

/// One control and the checks that support it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ControlSummary {
    /// `CC6.1`, `8.3`, `164.312(b)`, `Art. 32` ...
    pub control: String,
    /// The worst status of its checks (`not_applicable` counts as nothing found).
    pub status: Status,
    pub checks: Vec<&'static str>,
}

/// The per-framework summary of `checks`, controls in a stable order.
pub fn summarise(checks: &[Check]) -> Vec<FrameworkSummary> {
    FRAMEWORKS
        .iter()
        .map(|(framework, title)| {
            let mut controls: Vec<ControlSummary> = Vec::new();
            let mut seen: Vec<&Check> = Vec::new();
            for check in checks {
                for named in &check.frameworks {
                    let Some(control) = named.strip_prefix(framework).map(str::trim).filter(|_| named.starts_with(&format!("{framework} "))) else { continue };
                    if !seen.iter().any(|c| c.id == check.id) {
                        seen.push(check);
                    }
                    match controls.iter_mut().find(|c| c.control == control) {
                        Some(entry) => {
                            entry.status = worst(entry.status, check.status);
                            entry.checks.push(check.id);
                        }
                        None => controls.push(ControlSummary { control: control.to_owned(), status: check.status, checks: vec![check.id] }),
                    }
                }
            }
            controls.sort_by(|a, b| a.control.cmp(&b.control));
            FrameworkSummary { framework, title, counts: Counts::of(seen), controls }
        })
        .collect()
}

fn worst(a: Status, b: Status) -> Status {
    a.max(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::check;

    #[test]
    fn a_control_is_as_bad_as_its_worst_check() {
        let checks = vec![
            check("a", "a", Status::Pass, "", "", None, &["SOC 2 CC6.1", "GDPR Art. 32"]),
            check("b", "b", Status::Fail, "", "fix", None, &["SOC 2 CC6.1"]),
            check("c", "c", Status::NotApplicable, "", "", None, &["SOC 2 CC7.2"]),
        ];
        let summary = summarise(&checks);
        let soc2 = &summary[0];
        assert_eq!(soc2.framework, "SOC 2");
        assert_eq!(soc2.controls[0].control, "CC6.1");
        assert_eq!(soc2.controls[0].status, Status::Fail);
        assert_eq!(soc2.controls[0].checks, vec!["a", "b"]);
        assert_eq!(soc2.controls[1].status, Status::NotApplicable);
        assert_eq!(soc2.counts.fail, 1);
        let gdpr = summary.iter().find(|s| s.framework == "GDPR").unwrap();
        assert_eq!((gdpr.controls.len(), gdpr.counts.pass), (1, 1));
    }
}
