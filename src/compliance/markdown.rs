//! The report as Markdown, for people: the disclaimer, the counts, one table of every check,
//! the fixes of the ones that did not pass, and the per-framework summary. Text from the
//! catalog (role and column names in the evidence) is escaped so it cannot break the table.

use super::{Report, Status};

/// `text` safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '<' | '>' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn badge(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Warn => "WARN",
        Status::NotApplicable => "N/A",
    }
}

/// The whole report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!("# Security compliance report: {}\n\n", cell(&report.database)));
    out.push_str(&format!("Generated {} by dbagent for PostgreSQL {}.\n\n", report.generated_at.format("%Y-%m-%d %H:%M UTC"), cell(&report.server_version)));
    out.push_str(&format!("> {}\n\n", report.disclaimer));
    let c = &report.counts;
    out.push_str(&format!("**{} checks:** {} pass, {} fail, {} warn, {} not applicable.\n\n", report.checks.len(), c.pass, c.fail, c.warn, c.not_applicable));
    out.push_str("## Checks\n\n| status | id | check | evidence | CIS |\n|---|---|---|---|---|\n");
    for check in &report.checks {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} |\n",
            badge(check.status),
            check.id,
            cell(check.title),
            cell(&check.evidence),
            check.cis.unwrap_or("-")
        ));
    }
    let open: Vec<_> = report.checks.iter().filter(|c| matches!(c.status, Status::Fail | Status::Warn)).collect();
    if !open.is_empty() {
        out.push_str("\n## Fixes\n\n");
        for check in open {
            out.push_str(&format!("- **{}** `{}`: {}\n", badge(check.status), check.id, cell(&check.fix)));
        }
    }
    out.push_str("\n## Frameworks\n\nWhich checks support which control (the worst status of its checks). A control asks for more than these checks show.\n");
    for framework in &report.frameworks {
        out.push_str(&format!("\n### {}\n\n| control | status | checks |\n|---|---|---|\n", framework.title));
        for control in &framework.controls {
            let checks: Vec<String> = control.checks.iter().map(|id| format!("`{id}`")).collect();
            out.push_str(&format!("| {} | {} | {} |\n", cell(&control.control), badge(control.status), checks.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_text_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(cell("`x` *y*"), "\\`x\\` \\*y\\*");
    }
}
