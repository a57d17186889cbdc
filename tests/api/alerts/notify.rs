//! Notifications as the receivers see them: fired once after `for:`, resolved, repeated until
//! acknowledged, held back by silences, retried when the receiver is down.

use super::*;

#[tokio::test]
async fn a_saturated_pool_fires_once_within_its_for_to_every_channel_and_resolves_after() {
    // Arrange: a webhook, a Slack webhook and an email channel for the pool rule.
    let hooks = receiver().await;
    let (smtp_port, mails) = smtp_receiver().await;
    let channels = vec![
        channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_saturation"),
        channel("slack", ChannelKind::Slack, Some(format!("{}/slack", hooks.url)), "pool_saturation"),
        channel("mail", ChannelKind::Email, None, "pool_saturation"),
    ];
    let app = spawn_app_with(move |c| {
        alerting(c, 1.0, channels);
        c.alerts.smtp.server = Some("127.0.0.1".into());
        c.alerts.smtp.port = smtp_port;
        c.alerts.smtp.security = SmtpSecurity::None;
        c.alerts.smtp.from = Some("dbagent@example.org".into());
    })
    .await;

    // Act: both connections busy for 4 s.
    let sleepers = saturate(&app, 4).await;
    let saturated_at = Instant::now();
    wait_until("the firing notification", Duration::from_secs(5), async || !hooks.hooks("firing").is_empty()).await;
    let detected = hooks.hooks("firing")[0].1 - saturated_at;
    eprintln!("pool_saturation detection latency (for: 1 s, evaluation every 200 ms): {} ms", detected.as_millis());

    // Assert: fired after its `for:` (not before), in Alertmanager's format, and listed.
    assert!(detected >= Duration::from_millis(900) && detected < Duration::from_secs(4), "{detected:?}");
    let firing = hooks.hooks("firing")[0].0.clone();
    assert_eq!((firing["version"].as_str(), firing["receiver"].as_str()), (Some("4"), Some("ops")), "{firing:#}");
    let labels = &firing["alerts"][0]["labels"];
    assert_eq!((labels["alertname"].as_str(), labels["severity"].as_str(), labels["subject"].as_str()), (Some("pool_saturation"), Some("critical"), Some("primary")));
    assert_eq!(firing["alerts"][0]["annotations"]["value"], "100%");
    let alert = the_alert(&app, "pool_saturation").await;
    assert_eq!((alert["state"].as_str(), alert["severity"].as_str()), (Some("firing"), Some("critical")), "{alert:#}");

    // No duplicate while it keeps firing.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(hooks.hooks("firing").len(), 1, "one firing notification while firing");

    // Resolved once the connections are free again.
    for s in sleepers {
        assert_eq!(s.await.unwrap(), StatusCode::OK);
    }
    wait_until("the resolved notification", Duration::from_secs(5), async || !hooks.hooks("resolved").is_empty()).await;
    let resolved = hooks.hooks("resolved")[0].0.clone();
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");

    // Slack: a formatted message with level, value, threshold and the dashboard link.
    wait_until("both Slack messages", Duration::from_secs(5), async || hooks.bodies("/slack").len() == 2).await;
    let slack = hooks.bodies("/slack")[0].0.to_string();
    for part in ["[FIRING:CRITICAL] pool_saturation on primary", "*Level*\\nCRITICAL", "*Value*\\n100%", "*Threshold*\\n100%", "http://dashboard.test/alerts/"] {
        assert!(slack.contains(part), "{part} in {slack}");
    }
    // Email: both messages through the SMTP server.
    wait_until("both emails", Duration::from_secs(5), async || mails.lock().unwrap().len() == 2).await;
    let mail = mails.lock().unwrap()[0].clone();
    assert!(mail.contains("Subject: [dbagent] [FIRING:CRITICAL] pool_saturation on primary"), "{mail}");
    assert!(mail.contains("To: dba@example.org") && mail.contains("Threshold: 100%"), "{mail}");

    // The alert's history says what happened, deliveries included.
    wait_until("the deliveries in the history", Duration::from_secs(5), async || {
        let alert = the_alert(&app, "pool_saturation").await;
        alert["history"].as_array().unwrap().iter().filter(|e| e["kind"] == "delivered").count() == 6
    })
    .await;
    let alert = the_alert(&app, "pool_saturation").await;
    let kinds: Vec<&str> = alert["history"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["pending", "firing", "notified", "resolved"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert_eq!(alert["state"], "resolved");
    app.stop().await;
}

#[tokio::test]
async fn an_acknowledged_alert_stops_repeating() {
    // Arrange: the pool rule fires at once and repeats every 400 ms.
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_saturation");
    let app = spawn_app_with(move |c| {
        alerting(c, 0.0, vec![hook]);
        c.alerts.repeat_interval = 0.4;
    })
    .await;
    let sleepers = saturate(&app, 5).await;
    wait_until("repeated notifications", Duration::from_secs(5), async || hooks.hooks("firing").len() >= 3).await;

    // Act
    let id = the_alert(&app, "pool_saturation").await["id"].as_str().unwrap().to_string();
    let (status, body) = app.post(&format!("/alerts/{id}/ack"), &json!({"comment": "looking into it"})).await;

    // Assert: who and why are kept; no more repeats (one may have been in flight).
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["alert"]["acked_by"].as_str(), body["alert"]["ack_comment"].as_str()), (Some("api"), Some("looking into it")));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after_ack = hooks.hooks("firing").len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hooks.hooks("firing").len(), after_ack, "acknowledged: no more repeats");
    let (status, _) = app.post("/alerts/nope/ack", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_silence_holds_notifications_back_until_it_ends() {
    // Arrange: a silence on the pool rule, then a saturated pool.
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_saturation");
    let app = spawn_app_with(move |c| alerting(c, 0.0, vec![hook])).await;
    let (status, body) = app.post("/silences", &json!({"rule": "pool_saturation", "duration": "1h", "comment": "maintenance"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let silence = body["silence"]["id"].as_str().unwrap().to_string();
    let sleepers = saturate(&app, 4).await;

    // Act: it fires, silenced.
    wait_until("the alert to fire", Duration::from_secs(5), async || the_alert(&app, "pool_saturation").await["state"] == "firing").await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Assert: nothing sent, and the history says why; once the silence ends it is sent.
    assert!(hooks.hooks("firing").is_empty(), "silenced");
    let alert = the_alert(&app, "pool_saturation").await;
    assert!(alert["history"].as_array().unwrap().iter().any(|e| e["kind"] == "silenced"), "{alert:#}");
    let (status, listed) = app.get("/silences").await;
    assert_eq!((status, listed["silences"][0]["id"].as_str()), (StatusCode::OK, Some(silence.as_str())));
    let status = app.http.delete(format!("{}/silences/{silence}", app.address)).send().await.unwrap().status();
    assert_eq!(status, StatusCode::OK);
    wait_until("the notification after the silence", Duration::from_secs(3), async || hooks.hooks("firing").len() == 1).await;
    let (status, body) = app.post("/silences", &json!({"rule": "pool_saturation"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a silence needs an end: {body}");
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_retries_and_the_failure_shows_in_health_and_metrics() {
    // Arrange: the receiver answers 500.
    let hooks = receiver().await;
    hooks.down.store(true, Ordering::Relaxed);
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_saturation");
    let app = spawn_app_with(move |c| alerting(c, 0.0, vec![hook])).await;

    // Act
    let sleepers = saturate(&app, 3).await;
    wait_until("the delivery to fail after its retries", Duration::from_secs(5), async || {
        app.get("/health").await.1["alerts"]["channels"][0]["failed"].as_u64() == Some(1)
    })
    .await;

    // Assert: 1 + 2 retries, visible in /health (degraded), /metrics and the history.
    assert_eq!(hooks.attempts.load(Ordering::Relaxed), 3);
    let (_, health) = app.get("/health").await;
    let ops = &health["alerts"]["channels"][0];
    assert_eq!((ops["retries"].as_u64(), ops["failing"].as_bool()), (Some(2), Some(true)), "{health:#}");
    assert!(ops["last_error"].as_str().unwrap().contains("500"), "{health:#}");
    assert_eq!(health["status"], "degraded");
    let metrics = app.http.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dbagent_alert_notifications_total{channel=\"ops\",outcome=\"failed\"} 1"), "{metrics}");
    assert!(metrics.contains("dbagent_alerts_firing{rule=\"pool_saturation\",severity=\"critical\"} 1"), "{metrics}");
    wait_until("the failure in the alert's history", Duration::from_secs(3), async || {
        the_alert(&app, "pool_saturation").await["history"].as_array().unwrap().iter().any(|e| e["kind"] == "delivery_failed")
    })
    .await;
    // And a test notification now: refused with the reason.
    let (status, body) = app.post("/alerts/test", &json!({"channel": "ops"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("notification_failed")), "{body}");
    hooks.down.store(false, Ordering::Relaxed);
    let (status, body) = app.post("/alerts/test", &json!({"channel": "ops"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.post("/alerts/test", &json!({"channel": "nope"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}
