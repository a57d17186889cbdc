//! Several agents, one scheduled backup.

use std::time::Duration;

use chrono::{Datelike, Timelike};
use dbagent::backup::{self, ScheduleStats, ScheduledRun};

use super::helpers::{Location, TestDb};
use crate::helpers::{spawn_app_with, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_running_the_same_tick_take_exactly_one_backup() {
    // Arrange: a yearly schedule, so both agents are on the same tick.
    let db = TestDb::create().await;
    let location = Location::new();
    let mut settings = location.settings();
    settings.schedule = Some("0 0 1 1 *".into());
    settings.keep_last = Some(5);
    let (first_stats, second_stats) = (ScheduleStats::default(), ScheduleStats::default());

    // Act
    let config = db.config();
    let (first, second) = tokio::join!(
        backup::run_scheduled(&config, &settings, &first_stats),
        backup::run_scheduled(&config, &settings, &second_stats),
    );
    let third = backup::run_scheduled(&db.config(), &settings, &first_stats).await.unwrap();

    // Assert
    let outcomes = [first.unwrap(), second.unwrap()];
    let ran = outcomes.iter().filter(|o| matches!(o, ScheduledRun::Ran { .. })).count();
    assert_eq!(ran, 1, "{outcomes:?}");
    assert!(matches!(third, ScheduledRun::AlreadyTaken { .. }), "{third:?}");
    let backups = backup::list(&settings).unwrap();
    assert_eq!(backups.len(), 1);
    assert!(backups[0].scheduled_for.is_some());
    let (a, b) = (first_stats.snapshot(), second_stats.snapshot());
    assert_eq!(a.succeeded + b.succeeded, 1);
    assert_eq!(a.skipped + b.skipped, 2);
    assert_eq!(a.failed + b.failed, 0);
    let held: i64 = db
        .connect()
        .await
        .query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "the schedule lock was released");
}

#[tokio::test]
async fn a_served_agent_takes_the_backup_its_schedule_asks_for() {
    // Arrange: one tick (seconds and year fields), a few seconds from now, once the agent
    // serves; there is no backup in progress when it stops.
    let location = Location::new();
    let tick = (chrono::Utc::now() + chrono::Duration::seconds(5)).with_nanosecond(0).unwrap();
    let cron = format!("{} {} {} {} {} * {}", tick.second(), tick.minute(), tick.hour(), tick.day(), tick.month(), tick.year());
    let dir = location.path.clone();
    let app = spawn_app_with(move |c| {
        c.backup.location = dir;
        c.backup.schedule = Some(cron);
    })
    .await;

    // Act: serving started the schedule.
    wait_until("the scheduled backup", Duration::from_secs(60), async || {
        app.get("/health").await.1["backups"]["runs"].as_u64().is_some_and(|runs| runs >= 1)
    })
    .await;
    let (_, health) = app.get("/health").await;
    app.stop().await;

    // Assert
    assert_eq!(health["backups"]["succeeded"], 1, "{health:#}");
    let backups = backup::list(&location.settings()).unwrap();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0].scheduled_for, Some(tick));
}
