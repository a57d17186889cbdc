//! What fires which rule: the pool, the history (custom rules), a failing scheduled backup, a
//! stopped replica, the database itself; and which of two agents evaluates.

use super::*;

#[tokio::test]
async fn the_rules_endpoint_shows_each_rule_with_its_value_and_state() {
    let app = spawn_app_with(|c| alerting(c, 30.0, Vec::new())).await;
    let sleepers = saturate(&app, 2).await;
    wait_until("a pending pool alert", Duration::from_secs(5), async || {
        let (_, body) = app.get("/alerts/rules").await;
        let rules = body["rules"].as_array().cloned().unwrap_or_default();
        rules.iter().any(|r| r["name"] == "pool_saturation" && r["observations"][0]["state"] == "pending")
    })
    .await;
    let (_, body) = app.get("/alerts/rules").await;
    assert_eq!(body["leader"], true);
    // What one evaluation costs, over a few (the first also runs the slow checks and retention).
    let mut took = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        took.push(app.get("/alerts/rules").await.1["evaluation_ms"].as_f64().unwrap());
    }
    took.sort_by(f64::total_cmp);
    eprintln!("one evaluation (all rules, one database read, acknowledgements and silences, one active alert written): median {} ms, max {} ms", took[5], took[9]);
    let rules = body["rules"].as_array().unwrap();
    let pool = rules.iter().find(|r| r["name"] == "pool_saturation").unwrap();
    assert_eq!((pool["warning"].as_f64(), pool["critical"].as_f64(), pool["for_seconds"].as_f64()), (Some(80.0), Some(100.0), Some(30.0)));
    assert_eq!(pool["observations"][0]["value"], 100.0);
    let down = rules.iter().find(|r| r["name"] == "database_down").unwrap();
    assert_eq!(down["observations"][0]["value"], 0.0, "{down:#}");
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_custom_rule_over_the_history_fires() {
    // Arrange: the history sampled every second; a rule of the user's over one of its series.
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_busy");
    let app = spawn_app_with(move |c| {
        alerting(c, 0.0, vec![hook]);
        c.monitoring.enable = true;
        c.monitoring.sample_interval = 1.0;
        c.monitoring.collect_interval = 1.0;
        c.alerts.custom = vec![dbagent::config::CustomRule {
            name: "pool_busy".into(),
            metric: "pool_utilization_pct".into(),
            op: ">=".into(),
            warning: Some(50.0),
            critical: None,
            for_seconds: 0.0,
            labels: [("team".to_string(), "dba".to_string())].into(),
            summary: None,
        }];
    })
    .await;

    // Act
    let sleepers = saturate(&app, 4).await;
    wait_until("the custom rule to fire", Duration::from_secs(6), async || !hooks.hooks("firing").is_empty()).await;

    // Assert: its labels travel with it.
    let labels = hooks.hooks("firing")[0].0["alerts"][0]["labels"].clone();
    assert_eq!((labels["alertname"].as_str(), labels["severity"].as_str(), labels["team"].as_str()), (Some("pool_busy"), Some("warning"), Some("dba")), "{labels}");
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_failing_scheduled_backup_fires_the_backup_alert() {
    // Arrange: one scheduled tick a few seconds from now, made to fail before its manifest.
    use chrono::{Datelike, Timelike};
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "backup_failed");
    let location = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("alerts-backups-{}", uuid::Uuid::new_v4().simple()));
    let tick = (chrono::Utc::now() + chrono::Duration::seconds(4)).with_nanosecond(0).unwrap();
    let cron = format!("{} {} {} {} {} * {}", tick.second(), tick.minute(), tick.hour(), tick.day(), tick.month(), tick.year());
    let dir = location.clone();
    let app = spawn_app_with(move |c| {
        alerting(c, 0.0, vec![hook]);
        c.backup.location = dir;
        c.backup.schedule = Some(cron);
    })
    .await;
    dbagent::failpoints::arm("backup-before-manifest", &app.db.name, 1);

    // Act: the tick comes and its backup fails.
    wait_until("the scheduled backup to fail", Duration::from_secs(20), async || {
        app.get("/health").await.1["backups"]["failed"].as_u64() == Some(1)
    })
    .await;
    let failed_at = Instant::now();
    wait_until("the backup alert", Duration::from_secs(5), async || !hooks.hooks("firing").is_empty()).await;
    eprintln!("backup_failed detection latency (evaluation every 200 ms): {} ms", (hooks.hooks("firing")[0].1 - failed_at).as_millis());

    // Assert
    let firing = hooks.hooks("firing")[0].0.clone();
    let labels = &firing["alerts"][0]["labels"];
    assert_eq!((labels["alertname"].as_str(), labels["severity"].as_str(), labels["subject"].as_str()), (Some("backup_failed"), Some("critical"), Some("scheduled")));
    let alert = the_alert(&app, "backup_failed").await;
    assert_eq!(alert["state"], "firing", "{alert:#}");
    app.stop().await;
    let _ = std::fs::remove_dir_all(location);
}

#[tokio::test]
async fn a_stopped_replica_fires_the_replica_alert() {
    // Arrange: a primary and a streaming replica of the test's own, the replica rule at 1 s.
    use dbagent::instance;
    let root = format!("alerts-replica-{}", uuid::Uuid::new_v4().simple());
    let primary_settings = crate::helpers::test_instance_settings(&format!("{root}/primary"));
    let replica_settings = crate::helpers::test_instance_settings(&format!("{root}/replica"));
    let primary = crate::helpers::start_instance(&primary_settings);
    let replica = instance::create_replica(&primary, &replica_settings).await.expect("replica");
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "replica_not_streaming");
    let app = crate::helpers::spawn_app_on(crate::helpers::TestDb::existing(&primary.url("postgres")), |c| {
        c.postgresql.url = Some(Secret::new(primary.url("postgres")));
        c.postgresql.read_replicas = vec![dbagent::config::Replica { url: Some(Secret::new(replica.url("postgres"))), ..Default::default() }];
        alerting(c, 0.0, vec![hook]);
        c.alerts.rules.insert("replica_not_streaming".into(), RuleOverride { for_seconds: Some(1.0), ..RuleOverride::default() });
    })
    .await;
    wait_until("the replica to be seen streaming", Duration::from_secs(10), async || {
        let (_, body) = app.get("/alerts/rules").await;
        let rules = body["rules"].as_array().cloned().unwrap_or_default();
        rules.iter().any(|r| r["name"] == "replica_not_streaming" && r["observations"][0]["value"] == 0.0)
    })
    .await;

    // Act
    instance::stop(&replica_settings, instance::StopMode::Fast).await.expect("stop the replica");
    let stopped_at = Instant::now();
    wait_until("the replica alert", Duration::from_secs(15), async || !hooks.hooks("firing").is_empty()).await;
    let detected = hooks.hooks("firing")[0].1 - stopped_at;
    eprintln!("replica_not_streaming detection latency (for: 1 s, health checks every second, evaluation every 200 ms): {} ms", detected.as_millis());

    // Assert
    let labels = hooks.hooks("firing")[0].0["alerts"][0]["labels"].clone();
    assert_eq!((labels["alertname"].as_str(), labels["severity"].as_str()), (Some("replica_not_streaming"), Some("critical")), "{labels}");
    assert!(detected >= Duration::from_secs(1), "not before its for: {detected:?}");
    app.stop().await;
    instance::stop(&primary_settings, instance::StopMode::Fast).await.unwrap();
    let _ = std::fs::remove_dir_all(primary_settings.data_dir.parent().unwrap());
}

#[tokio::test]
async fn a_database_that_goes_down_is_notified_and_recorded_once_it_is_back() {
    // Arrange: a server of the test's own, the database_down rule at 1 s.
    use dbagent::instance;
    let root = format!("alerts-down-{}", uuid::Uuid::new_v4().simple());
    let settings = crate::helpers::test_instance_settings(&format!("{root}/primary"));
    let primary = crate::helpers::start_instance(&settings);
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "database_down");
    let app = crate::helpers::spawn_app_on(crate::helpers::TestDb::existing(&primary.url("postgres")), |c| {
        c.postgresql.url = Some(Secret::new(primary.url("postgres")));
        alerting(c, 0.0, vec![hook]);
        c.alerts.rules.insert("database_down".into(), RuleOverride { for_seconds: Some(1.0), ..RuleOverride::default() });
    })
    .await;
    wait_until("a first evaluation", Duration::from_secs(5), async || app.get("/alerts/rules").await.1["leader"] == true).await;

    // Act: the server stops; the agent cannot write the alert, but it notifies.
    instance::stop(&settings, instance::StopMode::Fast).await.expect("stop the server");
    let stopped_at = Instant::now();
    wait_until("the database_down notification", Duration::from_secs(10), async || !hooks.hooks("firing").is_empty()).await;
    eprintln!("database_down detection latency (for: 1 s, health checks every second): {} ms", (hooks.hooks("firing")[0].1 - stopped_at).as_millis());
    crate::helpers::start_instance(&settings);
    wait_until("the resolved notification", Duration::from_secs(15), async || !hooks.hooks("resolved").is_empty()).await;

    // Assert: once back, the alert is in the table with its whole story.
    wait_until("the alert written", Duration::from_secs(5), async || {
        let (status, body) = app.get("/alerts?state=all&rule=database_down").await;
        status == StatusCode::OK && body["alerts"][0]["state"] == "resolved"
    })
    .await;
    let alert = the_alert(&app, "database_down").await;
    let kinds: Vec<&str> = alert["history"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["pending", "firing", "notified", "resolved"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    app.stop().await;
    instance::stop(&settings, instance::StopMode::Fast).await.unwrap();
    let _ = std::fs::remove_dir_all(settings.data_dir.parent().unwrap());
}

#[tokio::test]
async fn one_of_two_agents_evaluates_and_the_other_takes_over_when_it_stops() {
    // Arrange: two agents on one database (kept until the end: neither agent owns it).
    let db = crate::helpers::TestDb::create().await;
    let first = crate::helpers::spawn_app_on(crate::helpers::TestDb::existing(&db.url), |c| alerting(c, 0.0, Vec::new())).await;
    let second = crate::helpers::spawn_app_on(crate::helpers::TestDb::existing(&db.url), |c| alerting(c, 0.0, Vec::new())).await;
    let leader = async |app: &TestApp| app.get("/alerts/rules").await.1["leader"] == true;
    wait_until("a leader", Duration::from_secs(5), async || leader(&first).await || leader(&second).await).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Assert: exactly one evaluates.
    let (a, b) = (leader(&first).await, leader(&second).await);
    assert!(a != b, "one leader: first {a}, second {b}");

    // Act: the leader stops; the other takes over within an interval or two.
    let (stopping, staying) = if a { (first, second) } else { (second, first) };
    let stopped_at = Instant::now();
    stopping.stop().await;
    wait_until("the other agent to take over", Duration::from_secs(5), async || leader(&staying).await).await;
    eprintln!("alert leadership taken over {} ms after the leader began stopping", stopped_at.elapsed().as_millis());
    staying.stop().await;
    drop(db);
}
