//! Several agents, one scheduled backup.

use dbagent::backup::{self, ScheduleStats, ScheduledRun};

use super::helpers::{Location, TestDb};

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
