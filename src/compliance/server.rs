//! Checks of the PostgreSQL server: authentication, TLS, logging, roles and privileges.
//! Pure functions of [`Facts`]; the CIS sections are the PostgreSQL Benchmark's.

use super::facts::{Facts, HbaRule};
use super::{Check, Status, check, listing};
use crate::db::sql;

const AUTH: &[&str] = &["SOC 2 CC6.1", "PCI-DSS 8.3", "HIPAA 164.312(d)", "GDPR Art. 32"];
const NETWORK: &[&str] = &["SOC 2 CC6.6", "PCI-DSS 2.2", "HIPAA 164.312(a)", "GDPR Art. 32"];
const TRANSIT: &[&str] = &["SOC 2 CC6.7", "PCI-DSS 4.2.1", "HIPAA 164.312(e)", "GDPR Art. 32"];
const LOGGING: &[&str] = &["SOC 2 CC7.2", "PCI-DSS 10.2", "HIPAA 164.312(b)"];
const PRIVILEGE: &[&str] = &["SOC 2 CC6.1", "SOC 2 CC6.3", "PCI-DSS 7.2", "HIPAA 164.312(a)", "GDPR Art. 32"];
const HARDENING: &[&str] = &["SOC 2 CC6.1", "PCI-DSS 2.2"];

/// Every server check, in the report's order.
pub fn checks(f: &Facts) -> Vec<Check> {
    let mut all = vec![password_encryption(f), md5_passwords(f)];
    all.extend(hba(f));
    all.extend([ssl(f), ssl_protocol(f), listen_addresses(f)]);
    all.extend(logging(f));
    all.extend([pgaudit(f), superusers(f), createrole(f), replication_bypassrls(f), server_file_access(f)]);
    all.extend([password_expiry(f), connection_limits(f), public_create(f), untrusted_languages(f), definers(f), data_checksums(f), version(f)]);
    all
}

fn setting<'a>(f: &'a Facts, name: &str) -> &'a str {
    f.settings.get(name).map(String::as_str).unwrap_or("")
}

fn shown(f: &Facts, name: &str) -> String {
    format!("{name} = {}", sql::literal(setting(f, name)))
}

fn password_encryption(f: &Facts) -> Check {
    let ok = setting(f, "password_encryption") == "scram-sha-256";
    check("pg.password_encryption", "New passwords are stored as SCRAM-SHA-256", if ok { Status::Pass } else { Status::Fail }, shown(f, "password_encryption"),
        "ALTER SYSTEM SET password_encryption = 'scram-sha-256'; SELECT pg_reload_conf(); then have each role set its password again", Some("5.12"), AUTH)
}

fn md5_passwords(f: &Facts) -> Check {
    const ID: &str = "pg.md5_passwords";
    const TITLE: &str = "No role keeps an MD5 password hash";
    if !f.superuser {
        return check(ID, TITLE, Status::NotApplicable, f.unreadable.clone(), "", Some("5.12"), AUTH);
    }
    let md5: Vec<String> = f.roles.iter().filter(|r| r.md5 == Some(true)).map(|r| r.name.clone()).collect();
    let status = if md5.is_empty() { Status::Pass } else { Status::Fail };
    let evidence = if md5.is_empty() { "no MD5 hashes in pg_authid".to_owned() } else { format!("MD5 hashes: {}", listing(&md5)) };
    check(ID, TITLE, status, evidence, "set password_encryption to scram-sha-256, then set these roles' passwords again (PATCH /roles/{name} with a password)", Some("5.12"), AUTH)
}

fn local(rule: &HbaRule) -> bool {
    rule.kind == "local"
}

fn lines(rules: &[&HbaRule]) -> String {
    rules.iter().map(|r| format!("line {} ({} {} {} {} {})", r.line, r.kind, r.database, r.user, if r.address.is_empty() { "-" } else { &r.address }, r.method)).collect::<Vec<_>>().join("; ")
}

fn hba(f: &Facts) -> Vec<Check> {
    let specs: [(&'static str, &'static str, Status, &'static str, fn(&HbaRule) -> bool); 4] = [
        ("pg.hba_trust", "No `trust` authentication beyond local sockets", Status::Fail,
         "replace `trust` with `scram-sha-256` on these pg_hba.conf lines, then SELECT pg_reload_conf()", |r| r.method == "trust" && !local(r)),
        ("pg.hba_password", "No clear-text `password` authentication", Status::Fail,
         "replace `password` with `scram-sha-256` on these pg_hba.conf lines, then SELECT pg_reload_conf()", |r| r.method == "password" && !local(r)),
        ("pg.hba_md5", "No `md5` authentication (SCRAM is the modern method)", Status::Warn,
         "replace `md5` with `scram-sha-256` once every role has a SCRAM password", |r| r.method == "md5"),
        ("pg.hba_open", "No rule open to every address, or without TLS beyond this host", Status::Warn,
         "narrow the address to the application's network, and use `hostssl` instead of `host`",
         |r| matches!(r.address.as_str(), "0.0.0.0/0" | "::/0" | "all") || (r.kind == "host" && !matches!(r.address.as_str(), "127.0.0.1/32" | "::1/128" | "samehost"))),
    ];
    specs
        .into_iter()
        .map(|(id, title, bad, fix, matches)| match &f.hba {
            None => check(id, title, Status::NotApplicable, f.unreadable.clone(), "", Some("5.4"), NETWORK),
            Some(rules) => {
                let found: Vec<&HbaRule> = rules.iter().filter(|r| matches(r)).collect();
                let status = if found.is_empty() { Status::Pass } else { bad };
                let evidence = if found.is_empty() { format!("{} pg_hba.conf rule(s), none of this kind", rules.len()) } else { lines(&found) };
                check(id, title, status, evidence, fix, Some("5.4"), if id == "pg.hba_open" { NETWORK } else { AUTH })
            }
        })
        .collect()
}

fn ssl(f: &Facts) -> Check {
    let on = setting(f, "ssl") == "on";
    check("pg.ssl", "The server accepts TLS connections", if on { Status::Pass } else { Status::Fail }, shown(f, "ssl"),
        "set ssl_cert_file and ssl_key_file, ALTER SYSTEM SET ssl = on, SELECT pg_reload_conf()", Some("6.8"), TRANSIT)
}

fn ssl_protocol(f: &Facts) -> Check {
    const ID: &str = "pg.ssl_min_protocol";
    const TITLE: &str = "TLS 1.2 or later only";
    if setting(f, "ssl") != "on" {
        return check(ID, TITLE, Status::NotApplicable, "ssl is off", "", Some("6.8"), TRANSIT);
    }
    let ok = matches!(setting(f, "ssl_min_protocol_version"), "TLSv1.2" | "TLSv1.3");
    check(ID, TITLE, if ok { Status::Pass } else { Status::Fail }, shown(f, "ssl_min_protocol_version"),
        "ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.2'; SELECT pg_reload_conf()", Some("6.8"), TRANSIT)
}

fn listen_addresses(f: &Facts) -> Check {
    let value = setting(f, "listen_addresses");
    let everywhere = value.split(',').map(str::trim).any(|a| matches!(a, "*" | "0.0.0.0" | "::"));
    check("pg.listen_addresses", "The server listens only where clients are", if everywhere { Status::Warn } else { Status::Pass }, shown(f, "listen_addresses"),
        "list only the interfaces clients use (ALTER SYSTEM SET listen_addresses = '10.0.0.5'; restart), or make sure a firewall does", Some("5.3"), NETWORK)
}

fn logging(f: &Facts) -> Vec<Check> {
    let on = |name: &str| setting(f, name) == "on";
    let prefix = setting(f, "log_line_prefix");
    let prefix_ok = prefix.contains("%u") && prefix.contains("%d") && (prefix.contains("%m") || prefix.contains("%t"));
    let collected = on("logging_collector") || setting(f, "log_destination").contains("syslog") || setting(f, "log_destination").contains("eventlog");
    let min_duration: i64 = setting(f, "log_min_duration_statement").parse().unwrap_or(-1);
    vec![
        check("pg.log_connections", "Connections are logged", if on("log_connections") { Status::Pass } else { Status::Fail }, shown(f, "log_connections"),
            "ALTER SYSTEM SET log_connections = on; SELECT pg_reload_conf()", Some("3.1.20"), LOGGING),
        check("pg.log_disconnections", "Disconnections (with session length) are logged", if on("log_disconnections") { Status::Pass } else { Status::Fail }, shown(f, "log_disconnections"),
            "ALTER SYSTEM SET log_disconnections = on; SELECT pg_reload_conf()", Some("3.1.21"), LOGGING),
        check("pg.log_statement", "Schema changes are logged", if matches!(setting(f, "log_statement"), "ddl" | "mod" | "all") { Status::Pass } else { Status::Warn }, shown(f, "log_statement"),
            "ALTER SYSTEM SET log_statement = 'ddl'; SELECT pg_reload_conf() (or configure pgaudit)", Some("3.1.23"), LOGGING),
        check("pg.log_min_duration_statement", "Slow statements are logged", if min_duration >= 0 { Status::Pass } else { Status::Warn }, shown(f, "log_min_duration_statement"),
            "ALTER SYSTEM SET log_min_duration_statement = '1s'; SELECT pg_reload_conf() (statements are logged with their literals: mind what they hold)", None, &["SOC 2 CC7.2"]),
        check("pg.log_line_prefix", "Log lines say when, who and which database", if prefix_ok { Status::Pass } else { Status::Warn }, shown(f, "log_line_prefix"),
            "ALTER SYSTEM SET log_line_prefix = '%m [%p] %q%u@%d from %h '; SELECT pg_reload_conf()", Some("3.1.22"), LOGGING),
        check("pg.log_destination", "Logs are collected to files or syslog", if collected { Status::Pass } else { Status::Warn },
            format!("{}, {}", shown(f, "logging_collector"), shown(f, "log_destination")),
            "ALTER SYSTEM SET logging_collector = on (restart), or send logs to syslog; keep them as long as the audit trail", Some("3.1.2"), LOGGING),
    ]
}

fn pgaudit(f: &Facts) -> Check {
    let loaded = setting(f, "shared_preload_libraries").split(',').any(|l| l.trim() == "pgaudit");
    check("pg.pgaudit", "pgaudit is loaded (session and object audit logging)", if loaded { Status::Pass } else { Status::Warn }, shown(f, "shared_preload_libraries"),
        "install pgaudit, add it to shared_preload_libraries (restart), CREATE EXTENSION pgaudit, and set pgaudit.log (e.g. 'ddl, role, write')", Some("3.2"), LOGGING)
}

fn superusers(f: &Facts) -> Check {
    let names: Vec<String> = f.roles.iter().filter(|r| r.superuser && r.login).map(|r| r.name.clone()).collect();
    let status = if names.len() <= 1 { Status::Pass } else { Status::Warn };
    check("pg.superusers", "At most one superuser can log in", status, format!("{} superuser(s) that can log in: {}", names.len(), listing(&names)),
        "give day-to-day roles only the privileges they need (POST /grants), and ALTER ROLE ... NOSUPERUSER (or NOLOGIN) on the others", Some("4.3"), PRIVILEGE)
}

fn createrole(f: &Facts) -> Check {
    let names: Vec<String> = f.roles.iter().filter(|r| r.createrole && !r.superuser).map(|r| r.name.clone()).collect();
    let status = if names.is_empty() { Status::Pass } else { Status::Warn };
    let evidence = if names.is_empty() { "no role but superusers has CREATEROLE".to_owned() } else { format!("CREATEROLE: {}", listing(&names)) };
    check("pg.createrole", "Few roles may create roles", status, evidence, "ALTER ROLE ... NOCREATEROLE (PATCH /roles/{name} with createrole: false) where it is not needed", Some("4.3"), PRIVILEGE)
}

fn replication_bypassrls(f: &Facts) -> Check {
    let names: Vec<String> = f.roles.iter().filter(|r| !r.superuser && (r.replication || r.bypassrls)).map(|r| {
        let what: Vec<&str> = [(r.replication, "REPLICATION"), (r.bypassrls, "BYPASSRLS")].into_iter().filter_map(|(on, w)| on.then_some(w)).collect();
        format!("{} ({})", r.name, what.join(", "))
    }).collect();
    let status = if names.is_empty() { Status::Pass } else { Status::Warn };
    let evidence = if names.is_empty() { "none".to_owned() } else { listing(&names) };
    check("pg.replication_bypassrls", "REPLICATION and BYPASSRLS only where needed", status, evidence, "ALTER ROLE ... NOREPLICATION / NOBYPASSRLS for roles that are not replicas or backup tools", Some("7.1"), PRIVILEGE)
}

fn server_file_access(f: &Facts) -> Check {
    let names: Vec<String> = f.roles.iter().filter(|r| !r.superuser && !r.server_access.is_empty()).map(|r| format!("{} ({})", r.name, r.server_access.join(", "))).collect();
    let status = if names.is_empty() { Status::Pass } else { Status::Fail };
    let evidence = if names.is_empty() { "no member of pg_execute_server_program, pg_read_server_files or pg_write_server_files".to_owned() } else { listing(&names) };
    check("pg.server_file_access", "No role reaches the server's files or programs", status, evidence, "REVOKE pg_execute_server_program, pg_read_server_files, pg_write_server_files FROM these roles", Some("4.3"), PRIVILEGE)
}

fn password_expiry(f: &Facts) -> Check {
    let known = f.superuser;
    let names: Vec<String> = f.roles.iter().filter(|r| r.login && !r.bootstrap && !r.expires && r.password_set != Some(false)).map(|r| r.name.clone()).collect();
    let status = if names.is_empty() { Status::Pass } else { Status::Warn };
    let mut evidence = if names.is_empty() { "every login role with a password has VALID UNTIL".to_owned() } else { format!("no VALID UNTIL: {}", listing(&names)) };
    if !known {
        evidence.push_str(" (whether each has a password is unknown: pg_authid is unreadable)");
    }
    check("pg.password_expiry", "Passwords expire", status, evidence, "set VALID UNTIL (PATCH /roles/{name} with valid_until) and rotate before it", Some("5.x"), &["SOC 2 CC6.2", "PCI-DSS 8.3", "HIPAA 164.312(d)"])
}

fn connection_limits(f: &Facts) -> Check {
    let names: Vec<String> = f.roles.iter().filter(|r| r.login && !r.superuser && r.connection_limit < 0).map(|r| r.name.clone()).collect();
    let status = if names.is_empty() { Status::Pass } else { Status::Warn };
    let evidence = if names.is_empty() { "every login role has a CONNECTION LIMIT".to_owned() } else { format!("no CONNECTION LIMIT: {}", listing(&names)) };
    check("pg.connection_limits", "Login roles have connection limits", status, evidence, "ALTER ROLE ... CONNECTION LIMIT n (PATCH /roles/{name} with connection_limit)", Some("5.5"), HARDENING)
}

fn public_create(f: &Facts) -> Check {
    let (status, evidence) = match f.public_create {
        None => (Status::NotApplicable, "this database has no schema public".to_owned()),
        Some(true) => (Status::Fail, format!("PUBLIC has CREATE on schema public in {}", sql::ident(&f.database))),
        Some(false) => (Status::Pass, format!("PUBLIC has no CREATE on schema public in {}", sql::ident(&f.database))),
    };
    check("pg.public_schema_create", "Not everyone may create objects in schema public", status, evidence,
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC (DELETE /grants {\"role\": \"PUBLIC\", \"privileges\": [\"CREATE\"], \"on\": \"schema\", \"name\": \"public\"})", Some("4.10"), PRIVILEGE)
}

fn untrusted_languages(f: &Facts) -> Check {
    let open: Vec<String> = f.untrusted_languages.iter().filter(|(_, users)| !users.is_empty()).map(|(lang, users)| format!("{lang} (usable by {})", users.join(", "))).collect();
    let (status, evidence) = if !open.is_empty() {
        (Status::Fail, listing(&open))
    } else if f.untrusted_languages.is_empty() {
        (Status::Pass, "no untrusted procedural language installed".to_owned())
    } else {
        (Status::Pass, format!("installed, superusers only: {}", f.untrusted_languages.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>().join(", ")))
    };
    check("pg.untrusted_languages", "Untrusted languages are for superusers only", status, evidence, "REVOKE USAGE ON LANGUAGE ... FROM PUBLIC (and from these roles)", Some("4.6"), PRIVILEGE)
}

fn definers(f: &Facts) -> Check {
    let status = if f.definers_without_search_path.is_empty() { Status::Pass } else { Status::Warn };
    let evidence = if f.definers_without_search_path.is_empty() { "none".to_owned() } else { listing(&f.definers_without_search_path) };
    check("pg.security_definer_search_path", "SECURITY DEFINER functions fix their search_path", status, evidence,
        "ALTER FUNCTION ... SET search_path = pg_catalog, pg_temp (or the schemas it needs)", None, HARDENING)
}

fn data_checksums(f: &Facts) -> Check {
    let on = setting(f, "data_checksums") == "on";
    check("pg.data_checksums", "Data pages carry checksums", if on { Status::Pass } else { Status::Warn }, shown(f, "data_checksums"),
        "stop the server and run pg_checksums --enable (or initdb --data-checksums for a new cluster)", Some("1.4.3"), &["HIPAA 164.312(c)", "SOC 2 CC7.2"])
}

/// PostgreSQL supports a major version for five years: major N (10 and later) came out in
/// 2007 + N and is unsupported from November of 2012 + N.
fn version(f: &Facts) -> Check {
    let num: u32 = setting(f, "server_version_num").parse().unwrap_or(0);
    let major = num / 10000;
    let eol_year = 2012 + major as i32;
    let eol = chrono::NaiveDate::from_ymd_opt(eol_year, 11, 1).unwrap_or_default().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let status = if f.now >= eol { Status::Fail } else if f.now + chrono::Duration::days(365) >= eol { Status::Warn } else { Status::Pass };
    check("pg.version_supported", "The major version still gets security fixes", status, format!("PostgreSQL {} (major {major}, supported until about November {eol_year})", f.server_version),
        "plan the upgrade to a supported major version (pg_upgrade or a logical copy); keep to the latest minor release", Some("1.5"), &["PCI-DSS 6.3.3", "SOC 2 CC7.1"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::facts::RoleFacts;

    fn facts(settings: &[(&str, &str)]) -> Facts {
        let mut f = Facts { superuser: true, database: "app".into(), hba: Some(vec![]), ..Facts::default() };
        for (k, v) in settings {
            f.settings.insert(k.to_string(), v.to_string());
        }
        f
    }

    fn status(checks: &[Check], id: &str) -> Status {
        checks.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("{id}")).status
    }

    #[test]
    fn settings_decide_their_checks() {
        let cases: &[(&str, &str, &str, Status)] = &[
            ("pg.password_encryption", "password_encryption", "scram-sha-256", Status::Pass),
            ("pg.password_encryption", "password_encryption", "md5", Status::Fail),
            ("pg.ssl", "ssl", "on", Status::Pass),
            ("pg.ssl", "ssl", "off", Status::Fail),
            ("pg.listen_addresses", "listen_addresses", "*", Status::Warn),
            ("pg.listen_addresses", "listen_addresses", "localhost", Status::Pass),
            ("pg.log_statement", "log_statement", "none", Status::Warn),
            ("pg.log_statement", "log_statement", "ddl", Status::Pass),
            ("pg.log_connections", "log_connections", "off", Status::Fail),
            ("pg.pgaudit", "shared_preload_libraries", "pg_stat_statements, pgaudit", Status::Pass),
            ("pg.pgaudit", "shared_preload_libraries", "pg_stat_statements", Status::Warn),
            ("pg.log_min_duration_statement", "log_min_duration_statement", "-1", Status::Warn),
            ("pg.log_min_duration_statement", "log_min_duration_statement", "1000", Status::Pass),
        ];
        for (id, name, value, expected) in cases {
            assert_eq!(status(&checks(&facts(&[(name, value)])), id), *expected, "{id} with {name} = {value}");
        }
        let mut tls_off = facts(&[("ssl", "off"), ("ssl_min_protocol_version", "TLSv1")]);
        assert_eq!(status(&checks(&tls_off), "pg.ssl_min_protocol"), Status::NotApplicable);
        tls_off.settings.insert("ssl".into(), "on".into());
        assert_eq!(status(&checks(&tls_off), "pg.ssl_min_protocol"), Status::Fail);
    }

    #[test]
    fn hba_rules_beyond_local_sockets_are_found_by_line() {
        let rule = |line, kind: &str, address: &str, method: &str| HbaRule { line, kind: kind.into(), database: "all".into(), user: "all".into(), address: address.into(), method: method.into() };
        let mut f = facts(&[]);
        f.hba = Some(vec![rule(1, "local", "", "trust"), rule(2, "host", "127.0.0.1/32", "scram-sha-256")]);
        assert_eq!(status(&checks(&f), "pg.hba_trust"), Status::Pass);
        assert_eq!(status(&checks(&f), "pg.hba_open"), Status::Pass);
        f.hba.as_mut().unwrap().push(rule(7, "host", "0.0.0.0/0", "trust"));
        let all = checks(&f);
        let trust = all.iter().find(|c| c.id == "pg.hba_trust").unwrap();
        assert_eq!(trust.status, Status::Fail);
        assert!(trust.evidence.contains("line 7") && !trust.evidence.contains("line 1"), "{}", trust.evidence);
        assert_eq!(status(&all, "pg.hba_open"), Status::Warn);
        f.hba = None;
        f.superuser = false;
        assert_eq!(status(&checks(&f), "pg.hba_trust"), Status::NotApplicable);
        assert_eq!(status(&checks(&f), "pg.md5_passwords"), Status::NotApplicable);
    }

    #[test]
    fn roles_decide_the_privilege_checks() {
        let role = |name: &str, superuser: bool| RoleFacts { name: name.into(), superuser, login: true, connection_limit: -1, password_set: Some(true), ..RoleFacts::default() };
        let mut f = facts(&[]);
        f.roles = vec![RoleFacts { bootstrap: true, ..role("postgres", true) }];
        assert_eq!(status(&checks(&f), "pg.superusers"), Status::Pass);
        f.roles.push(role("oops", true));
        f.roles.push(RoleFacts { createrole: true, md5: Some(true), ..role("app", false) });
        let all = checks(&f);
        assert_eq!(status(&all, "pg.superusers"), Status::Warn);
        assert_eq!(status(&all, "pg.createrole"), Status::Warn);
        assert_eq!(status(&all, "pg.md5_passwords"), Status::Fail);
        assert_eq!(status(&all, "pg.password_expiry"), Status::Warn);
        assert_eq!(status(&all, "pg.connection_limits"), Status::Warn);
    }

    #[test]
    fn an_unsupported_major_version_fails() {
        let mut f = facts(&[("server_version_num", "130012")]);
        f.now = "2026-12-02T00:00:00Z".parse().unwrap();
        assert_eq!(status(&checks(&f), "pg.version_supported"), Status::Fail);
        f.settings.insert("server_version_num".into(), "150004".into());
        assert_eq!(status(&checks(&f), "pg.version_supported"), Status::Warn);
        f.settings.insert("server_version_num".into(), "170002".into());
        assert_eq!(status(&checks(&f), "pg.version_supported"), Status::Pass);
    }
}
