//! `GET /security/compliance`: the checks follow what the server shows (a new superuser, a
//! CREATE granted to everyone), every check carries its evidence and controls, and the
//! Markdown form is a table to hand over.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id}: {report}"))
}

#[tokio::test]
async fn the_report_follows_what_the_server_shows() {
    let app = spawn_app().await;
    let (status, report) = app.get("/security/compliance").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 30, "{} checks", checks.len());
    for c in checks {
        assert!(["pass", "fail", "warn", "not_applicable"].contains(&c["status"].as_str().unwrap()), "{c}");
        assert!(!c["evidence"].as_str().unwrap().is_empty(), "{c}");
        if c["status"] == "fail" || c["status"] == "warn" {
            assert!(!c["fix"].as_str().unwrap().is_empty(), "a finding without its fix: {c}");
        }
    }
    let frameworks: Vec<&str> = report["frameworks"].as_array().unwrap().iter().map(|f| f["framework"].as_str().unwrap()).collect();
    assert_eq!(frameworks, ["SOC 2", "PCI-DSS", "HIPAA", "GDPR"]);
    assert!(report["disclaimer"].as_str().unwrap().contains("not a certification"));
    // The test server's own facts: trust auth and no TLS.
    assert_eq!(check(&report, "pg.ssl")["status"], "fail");
    assert_eq!(check(&report, "pg.hba_trust")["status"], "fail", "the test server trusts TCP connections");
    assert_eq!(check(&report, "pg.public_schema_create")["status"], "pass", "PostgreSQL 15 no longer grants CREATE on public");
    assert_eq!(check(&report, "agent.audit")["status"], "pass");

    // What the test changes, the report sees.
    let superuser = format!("extra superuser {}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    app.setup(&format!("CREATE ROLE {} SUPERUSER LOGIN; GRANT CREATE ON SCHEMA public TO PUBLIC", dbagent::db::sql::ident(&superuser))).await;
    let (_, after) = app.get("/security/compliance").await;
    let count = check(&after, "pg.superusers");
    assert_eq!(count["status"], "warn", "{count}");
    assert!(count["evidence"].as_str().unwrap().contains(&superuser), "{count}");
    assert_eq!(check(&after, "pg.public_schema_create")["status"], "fail");
    let soc2 = &after["frameworks"][0];
    let cc61 = soc2["controls"].as_array().unwrap().iter().find(|c| c["control"] == "CC6.1").unwrap();
    assert_eq!(cc61["status"], "fail", "{cc61}");

    app.setup(&format!("DROP ROLE {}", dbagent::db::sql::ident(&superuser))).await;
    let (_, last) = app.get("/security/compliance").await;
    assert!(!check(&last, "pg.superusers")["evidence"].as_str().unwrap().contains(&superuser));
}

#[tokio::test]
async fn the_markdown_report_is_a_table_with_the_fixes_and_the_disclaimer() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE customers (id int, email text, \"pipe|name\" text)").await;
    let response = app.http.get(format!("{}/security/compliance?format=markdown", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    let text = response.text().await.unwrap();
    assert!(text.contains("| status | id | check | evidence | CIS |\n|---|---|---|---|---|\n"), "{text}");
    assert!(text.contains("| FAIL | `pg.ssl` |"), "{text}");
    assert!(text.contains("not a certification"));
    assert!(text.contains("## Fixes") && text.contains("### PCI DSS v4.0"));
    // The PII-like column is named (warn: no masking configured), its text escaped for the table.
    let masking = text.lines().find(|l| l.contains("`agent.masking`") && l.starts_with('|')).unwrap();
    assert!(masking.starts_with("| WARN |") && masking.contains("customers.email"), "{masking}");
    let check_rows = text.lines().filter(|l| ["| PASS |", "| FAIL |", "| WARN |", "| N/A |"].iter().any(|s| l.starts_with(s)) && l.contains(" | `"));
    for line in check_rows {
        assert_eq!(line.matches(" | ").count(), 4, "a row with a broken cell: {line}");
    }

    let (status, body) = app.get("/security/compliance?format=pdf").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("format"), "{body}");
}
