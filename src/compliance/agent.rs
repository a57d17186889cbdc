//! Checks of dbagent itself: who may call it, what it records, its backups, how it reaches
//! the database, and personal data. Pure functions of [`Facts`].

use super::facts::Facts;
use super::{Check, Status, check, listing};

/// Every agent check, in the report's order.
pub fn checks(f: &Facts) -> Vec<Check> {
    vec![
        keys_required(f),
        unauthenticated(f),
        allowed_ips(f),
        audit(f),
        audit_retention(f),
        admin_key_expiry(f),
        key_roles(f),
        service_superuser(f),
        backups_recent(f),
        backups_encrypted(f),
        database_tls(f),
        masking(f),
    ]
}

fn keys_required(f: &Facts) -> Check {
    let a = &f.agent;
    let (status, evidence) = match (a.bound_beyond_loopback, a.keys_required) {
        (_, true) => (Status::Pass, "API keys are required".to_owned()),
        (true, false) => (Status::Fail, "the API listens beyond this host and API keys are not required".to_owned()),
        (false, false) => (Status::Pass, "keys are not required, and the API listens on loopback only".to_owned()),
    };
    check("agent.keys_required", "API keys are required wherever the API is reachable", status, evidence,
        "set security.api_keys_required: true (or auto) and create keys (dbagent keys create)", None, &["SOC 2 CC6.1", "PCI-DSS 8.3", "HIPAA 164.312(d)", "GDPR Art. 32"])
}

fn unauthenticated(f: &Facts) -> Check {
    let on = f.agent.allow_unauthenticated;
    check("agent.allow_unauthenticated", "Unauthenticated access beyond loopback is not allowed", if on { Status::Fail } else { Status::Pass },
        format!("security.allow_unauthenticated = {on}"), "set security.allow_unauthenticated: false", None, &["SOC 2 CC6.1", "PCI-DSS 8.3"])
}

fn allowed_ips(f: &Facts) -> Check {
    let a = &f.agent;
    let status = if a.bound_beyond_loopback && a.allowed_ips == 0 { Status::Warn } else { Status::Pass };
    let evidence = match (a.bound_beyond_loopback, a.allowed_ips) {
        (false, _) => "the API listens on loopback only".to_owned(),
        (true, 0) => "the API listens beyond this host and security.allowed_ips is empty (any address may call)".to_owned(),
        (true, n) => format!("{n} network(s) in security.allowed_ips"),
    };
    check("agent.allowed_ips", "Only known networks may call the API", status, evidence, "list the callers' networks in security.allowed_ips (and per key, allow_from)", None, &["SOC 2 CC6.6", "PCI-DSS 2.2"])
}

fn audit(f: &Facts) -> Check {
    let on = f.agent.audit;
    check("agent.audit", "Every change through dbagent is audited", if on { Status::Pass } else { Status::Fail }, format!("security.audit.enabled = {on}"),
        "set security.audit.enabled: true", None, &["SOC 2 CC7.2", "PCI-DSS 10.2", "HIPAA 164.312(b)", "GDPR Art. 32"])
}

fn audit_retention(f: &Facts) -> Check {
    let a = &f.agent;
    let (status, evidence) = if !a.audit {
        (Status::NotApplicable, "the audit log is off".to_owned())
    } else if a.audit_retention_days >= 365 {
        (Status::Pass, format!("security.audit.retention_days = {}", a.audit_retention_days))
    } else {
        (Status::Warn, format!("security.audit.retention_days = {} (PCI-DSS asks for a year)", a.audit_retention_days))
    };
    check("agent.audit_retention", "The audit log is kept for a year", status, evidence, "set security.audit.retention_days: 365 (or export the log to an archive: dbagent audit export)", None, &["PCI-DSS 10.5.1", "SOC 2 CC7.2"])
}

fn admin_key_expiry(f: &Facts) -> Check {
    let (status, evidence) = match &f.agent.admin_keys_without_expiry {
        Err(reason) => (Status::NotApplicable, reason.clone()),
        Ok(keys) if keys.is_empty() => (Status::Pass, "every active admin key expires".to_owned()),
        Ok(keys) => (Status::Warn, format!("admin keys without expiry: {}", listing(keys))),
    };
    check("agent.admin_key_expiry", "Admin API keys expire", status, evidence, "rotate them into keys with an expiry (dbagent keys create --expires 90d; dbagent keys revoke)", None, &["SOC 2 CC6.2", "PCI-DSS 8.3"])
}

fn key_roles(f: &Facts) -> Check {
    let allowed = f.agent.allow_superuser_roles;
    check("agent.key_roles", "Read and write keys run as roles PostgreSQL restrains", if allowed { Status::Fail } else { Status::Pass },
        format!("security.allow_superuser_roles = {allowed}"), "set security.allow_superuser_roles: false and make security.read_role / write_role ordinary roles", None, &["SOC 2 CC6.3", "PCI-DSS 7.2", "HIPAA 164.312(a)"])
}

fn service_superuser(f: &Facts) -> Check {
    let status = if f.superuser { Status::Warn } else { Status::Pass };
    let evidence = format!("dbagent's login {} is {}a superuser", f.login, if f.superuser { "" } else { "not " });
    check("agent.service_superuser", "dbagent's own login is not a superuser", status, evidence,
        "run dbagent as a role with CREATEROLE and the privileges it manages, not a superuser (some checks then become not applicable)", Some("4.3"), &["SOC 2 CC6.3", "PCI-DSS 7.2"])
}

fn backups_recent(f: &Facts) -> Check {
    let a = &f.agent;
    let hours = a.backup_max_age_hours;
    let (status, evidence) = match &a.backups {
        Err(reason) => (Status::Fail, reason.clone()),
        Ok(all) => match all.first() {
            None => (Status::Fail, "no backup in the catalogue".to_owned()),
            Some(newest) => {
                let age = (f.now - newest.created_at).num_minutes() as f64 / 60.0;
                let status = if age <= hours { Status::Pass } else { Status::Fail };
                (status, format!("newest backup {} is {age:.1} h old (backup.max_age: {hours} h)", newest.id))
            }
        },
    };
    check("agent.backups_recent", "A backup newer than backup.max_age exists", status, evidence, "schedule backups (backup.schedule) or take one now (dbagent backup create)", None,
        &["SOC 2 A1.2", "HIPAA 164.308(a)(7)", "GDPR Art. 32"])
}

fn backups_encrypted(f: &Facts) -> Check {
    let a = &f.agent;
    let newest = a.backups.as_ref().ok().and_then(|all| all.first());
    let (status, evidence) = match (a.backup_encryption_configured, newest) {
        (false, _) => (Status::Fail, "no backup.encryption_key, encryption_key_file or encryption_passphrase is configured".to_owned()),
        (true, Some(b)) if !b.encrypted => (Status::Warn, format!("encryption is configured, but the newest backup {} is not encrypted", b.id)),
        (true, Some(b)) => (Status::Pass, format!("encryption is configured and the newest backup {} is encrypted", b.id)),
        (true, None) => (Status::Pass, "encryption is configured (no backup yet)".to_owned()),
    };
    check("agent.backups_encrypted", "Backups are encrypted", status, evidence, "set backup.encryption_key_file (a 32-byte key) and take a new backup", None,
        &["SOC 2 CC6.1", "PCI-DSS 3.5", "HIPAA 164.312(a)", "GDPR Art. 32"])
}

fn database_tls(f: &Facts) -> Check {
    // TODO(tls): read `postgresql.sslmode` too once the TLS work is merged (require or
    // verify-full passes even before the first connection is checked here).
    let (status, evidence) = match (f.own_ssl, f.own_local) {
        (true, _) => (Status::Pass, "dbagent's connection to the database uses TLS (pg_stat_ssl)".to_owned()),
        (false, true) => (Status::Pass, "dbagent reaches the database on this host (socket or loopback) without TLS".to_owned()),
        (false, false) => (Status::Fail, "dbagent's connection to the database crosses the network without TLS (pg_stat_ssl)".to_owned()),
    };
    check("agent.database_tls", "dbagent reaches the database over TLS", status, evidence, "turn on ssl on the server and connect with sslmode=verify-full", None,
        &["SOC 2 CC6.7", "PCI-DSS 4.2.1", "HIPAA 164.312(e)", "GDPR Art. 32"])
}

fn masking(f: &Facts) -> Check {
    // TODO(masking): read `security.masking` once the masking work is merged: columns with a
    // rule pass, the others stay listed.
    let (status, evidence) = if f.pii_columns.is_empty() {
        (Status::Pass, "no column name looks like personal data".to_owned())
    } else {
        (Status::Warn, format!("no masking configured, and these columns look like personal data: {}", listing(&f.pii_columns)))
    };
    check("agent.masking", "Personal data is masked for those who need not see it", status, evidence,
        "mask these columns for read keys, or keep them out of reach with column privileges (POST /grants)", None, &["GDPR Art. 32", "HIPAA 164.312(a)"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::facts::BackupFact;

    fn status(f: &Facts, id: &str) -> Status {
        checks(f).into_iter().find(|c| c.id == id).unwrap().status
    }

    #[test]
    fn exposure_without_keys_fails() {
        let mut f = Facts::default();
        f.agent.bound_beyond_loopback = true;
        assert_eq!(status(&f, "agent.keys_required"), Status::Fail);
        assert_eq!(status(&f, "agent.allowed_ips"), Status::Warn);
        f.agent.keys_required = true;
        f.agent.allowed_ips = 1;
        assert_eq!(status(&f, "agent.keys_required"), Status::Pass);
        assert_eq!(status(&f, "agent.allowed_ips"), Status::Pass);
    }

    #[test]
    fn backups_must_be_recent_and_encrypted() {
        let mut f = Facts { now: "2026-12-02T12:00:00Z".parse().unwrap(), ..Facts::default() };
        f.agent.backups = Ok(vec![]);
        assert_eq!(status(&f, "agent.backups_recent"), Status::Fail);
        assert_eq!(status(&f, "agent.backups_encrypted"), Status::Fail);
        let backup = |hours_ago: i64, encrypted| BackupFact { id: "b".into(), created_at: f.now - chrono::Duration::hours(hours_ago), encrypted };
        f.agent.backups = Ok(vec![backup(2, true)]);
        f.agent.backup_encryption_configured = true;
        assert_eq!(status(&f, "agent.backups_recent"), Status::Pass);
        assert_eq!(status(&f, "agent.backups_encrypted"), Status::Pass);
        f.agent.backups = Ok(vec![backup(48, false)]);
        assert_eq!(status(&f, "agent.backups_recent"), Status::Fail);
        assert_eq!(status(&f, "agent.backups_encrypted"), Status::Warn);
    }

    #[test]
    fn personal_data_without_masking_warns() {
        let mut f = Facts::default();
        assert_eq!(status(&f, "agent.masking"), Status::Pass);
        f.pii_columns = vec!["public.users.email".into()];
        assert_eq!(status(&f, "agent.masking"), Status::Warn);
    }
}
