//! Failures: bad desired SQL, an unreachable server, a cancelled run — and the scratch database
//! never outlives any of them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dbagent::migrate::autogen::{self, Error, Location};

use super::helpers::{TestDb, public, scratch_databases, server_config};

/// Waits (up to 10 s) until no scratch database outside `before` exists; other tests' scratch
/// databases come and go meanwhile.
async fn assert_no_new_scratch_database(before: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = scratch_databases()
            .await
            .into_iter()
            .filter(|d| !before.contains(d))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "scratch databases left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failing_statement_in_the_desired_schema_is_reported_with_its_sqlstate_and_position() {
    let live = TestDb::with("").await;
    let before: BTreeSet<String> = scratch_databases().await.into_iter().collect();
    let desired = "CREATE TABLE a (id int);\nCREATE TABLE b (\n    x nosuchtype\n);";

    let err = autogen::autogenerate(&live.config, desired, &public())
        .await
        .unwrap_err();

    let Error::InvalidSchema {
        statement,
        location,
        server,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*statement, Some(2));
    assert_eq!(server.sqlstate, "42704");
    assert_eq!(server.message, "type \"nosuchtype\" does not exist");
    assert_eq!(*location, Some(Location { line: 3, column: 7 }));
    assert_eq!(err.sqlstate(), Some("42704"));
    assert_eq!(
        err.to_string(),
        "the desired schema does not load: statement 2 failed at line 3, column 7"
    );
    assert_no_new_scratch_database(&before).await;
}

#[tokio::test]
async fn a_syntax_error_in_the_desired_schema_is_located_by_the_server() {
    let live = TestDb::with("").await;
    let desired = "CREATE TABLE a (id int);\nCREAT TABLE b ();";

    let err = autogen::autogenerate(&live.config, desired, &public())
        .await
        .unwrap_err();

    let Error::InvalidSchema {
        statement,
        location,
        server,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*statement, None);
    assert_eq!(server.sqlstate, "42601");
    assert_eq!(*location, Some(Location { line: 2, column: 1 }));
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let mut config = dbagent::db::PgConfig::plain(server_config());
    config.port(1).connect_timeout(Duration::from_secs(2));

    let err = autogen::autogenerate(&config, "CREATE TABLE a ()", &public())
        .await
        .unwrap_err();

    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_cancelled_autogenerate_still_drops_its_scratch_database() {
    let live = TestDb::with("").await;
    let before: BTreeSet<String> = scratch_databases().await.into_iter().collect();
    let slow = "CREATE TABLE a (id int);\nSELECT pg_sleep(30);";

    let outcome = tokio::time::timeout(
        Duration::from_millis(1500),
        autogen::autogenerate(&live.config, slow, &public()),
    )
    .await;

    assert!(outcome.is_err(), "the load was still running when cancelled");
    assert_no_new_scratch_database(&before).await;
}
