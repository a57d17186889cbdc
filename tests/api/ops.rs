//! Operations against real sessions: the blocking tree, cancel and terminate, close-idle,
//! VACUUM and ANALYZE, the maintenance report.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_postgres::NoTls;

use dbagent::config::{Config, Job, JobAction};

use crate::helpers::{TestApp, TestDb, spawn_app, spawn_app_on, spawn_app_with, spawn_managed_app, wait_until};

/// A login role of the test's own (not a superuser, so dbagent signals its sessions without
/// `force`), allowed to write the test database's tables. Dropped by [`Role::drop_now`].
struct Role {
    name: String,
}

impl Role {
    async fn create(app: &TestApp) -> Role {
        let name = format!("ops_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        app.setup(&format!("CREATE ROLE {name} LOGIN; GRANT ALL ON SCHEMA public TO {name}")).await;
        Role { name }
    }

    /// A session of this role on the test database: its client and its pid.
    async fn connect(&self, app: &TestApp) -> (tokio_postgres::Client, i32) {
        let mut config: tokio_postgres::Config = app.db.url.parse().expect("url");
        config.user(&self.name);
        config.application_name("ops test");
        let (client, conn) = config.connect(NoTls).await.expect("connect as the test role");
        tokio::spawn(conn);
        let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.expect("pid").get(0);
        (client, pid)
    }

    async fn drop_now(self, app: &TestApp) {
        app.setup(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{0}';
             DROP OWNED BY {0}; DROP ROLE {0}",
            self.name
        ))
        .await;
    }
}

fn pids(list: &Value) -> Vec<i64> {
    list.as_array().unwrap_or_else(|| panic!("not a list: {list}")).iter().map(|s| s["pid"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn a_blocked_update_shows_under_its_blocker_which_cancel_and_terminate_end() {
    let app = spawn_app().await;
    let role = Role::create(&app).await;
    app.setup(&format!("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); GRANT ALL ON t TO {}", role.name)).await;
    let (blocker, blocker_pid) = role.connect(&app).await;
    let (waiter, waiter_pid) = role.connect(&app).await;
    blocker.batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 1").await.unwrap();
    let sleeping = tokio::spawn(async move {
        let slept = blocker.batch_execute("SELECT pg_sleep(30)").await;
        (blocker, slept)
    });
    let waiting = tokio::spawn(async move { waiter.execute("UPDATE t SET v = 2 WHERE id = 1", &[]).await });

    // Both sides must be where the test says before it signals: the update waiting for the lock,
    // and the blocker inside its pg_sleep (a cancel that reaches an idle-in-transaction session
    // cancels nothing, and the sleep that starts after it would run its 30 s).
    let observer = app.db.connect().await;
    let mut locks = Value::Null;
    wait_until("the update to wait for the lock and the blocker to sleep", Duration::from_secs(10), async || {
        locks = app.get("/locks").await.1;
        let sleeping: bool = observer.query_one("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%')", &[&blocker_pid]).await.unwrap().get(0);
        locks["waiting_sessions"].as_i64().unwrap_or(0) >= 1 && sleeping
    })
    .await;
    let head = locks["head_blockers"].as_array().unwrap().iter().find(|h| h["pid"] == blocker_pid).unwrap_or_else(|| panic!("{locks:#}"));
    assert_eq!(pids(&head["blocking"]), [i64::from(waiter_pid)], "{locks:#}");
    assert_eq!(head["blocking"][0]["blocked_by"], json!([blocker_pid]));
    assert_eq!(head["blocking"][0]["waiting_for"]["mode"], "ShareLock", "{locks:#}");

    let (status, listed) = app.get(&format!("/connections?user={}&state=active", role.name)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let waiter_row = listed["connections"].as_array().unwrap().iter().find(|s| s["pid"] == waiter_pid).expect("the waiter is listed");
    assert_eq!(waiter_row["blocked_by"], json!([blocker_pid]));

    // Cancel ends the blocker's statement; its transaction (and lock) stays until it ends.
    let (status, cancelled) = app.post(&format!("/connections/{blocker_pid}/cancel"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(pids(&cancelled["signalled"]), [i64::from(blocker_pid)]);
    let (blocker, slept) = sleeping.await.unwrap();
    assert_eq!(slept.unwrap_err().code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED));
    assert!(!waiting.is_finished(), "the lock is held until the transaction ends");

    // Terminate ends the session: its transaction rolls back and the waiter goes on.
    let (status, terminated) = app.post(&format!("/connections/{blocker_pid}/terminate"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{terminated}");
    assert_eq!(terminated["signal"], "terminate");
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the waiter goes on").unwrap().unwrap(), 1);
    wait_until("the blocker's session to close", Duration::from_secs(5), async || blocker.is_closed()).await;
    // The client sees the connection end when the backend sends its FATAL, which is before the
    // backend leaves pg_stat_activity; until then the pid is still a session to signal.
    wait_until("the blocker's backend to exit", Duration::from_secs(5), async || {
        observer.query_one("SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)", &[&blocker_pid]).await.unwrap().get::<_, bool>(0)
    })
    .await;
    let (status, gone) = app.post(&format!("/connections/{blocker_pid}/cancel"), &json!({})).await;
    assert_eq!((status, gone["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("session_not_found")));
    role.drop_now(&app).await;
}

#[tokio::test]
async fn superusers_and_dbagents_own_sessions_are_signalled_only_with_force() {
    let app = spawn_app().await;
    let admin = app.db.connect().await;
    let admin_pid: i32 = admin.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let (status, body) = app.post(&format!("/connections/{admin_pid}/terminate"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "session_protected");
    assert!(body["error"]["message"].as_str().unwrap().contains("superuser"), "{body}");
    assert!(!admin.is_closed());

    let (status, body) = app.post(&format!("/connections/{admin_pid}/terminate"), &json!({"force": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_until("the forced terminate to close the session", Duration::from_secs(5), async || admin.is_closed()).await;

    let (status, body) = app.post("/connections/abc/cancel", &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    let (status, body) = app.post("/connections/1/cancel", &json!({"force": "yes"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn close_idle_lists_then_closes_exactly_the_sessions_idle_past_the_limit_and_none_of_dbagents() {
    let app = spawn_app().await;
    let role = Role::create(&app).await;
    let (old_a, a_pid) = role.connect(&app).await;
    let (old_b, b_pid) = role.connect(&app).await;
    let in_txn = role.connect(&app).await;
    in_txn.0.batch_execute("BEGIN; SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (fresh, fresh_pid) = role.connect(&app).await;

    let request = json!({"idle_for": "2s", "states": ["idle"], "user": role.name, "dry_run": true});
    let (status, dry) = app.post("/connections/close-idle", &request).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    let mut listed = pids(&dry["signalled"]);
    listed.sort();
    let mut expected = vec![i64::from(a_pid), i64::from(b_pid)];
    expected.sort();
    assert_eq!(listed, expected, "{dry:#}");
    assert!(!old_a.is_closed() && !old_b.is_closed(), "a dry run closes nothing");

    // dbagent's own idle pool connections on this database are candidates, and skipped.
    let (_, everyone) = app.post("/connections/close-idle", &json!({"idle_for": 0, "database": app.db.name, "dry_run": true})).await;
    let own_skipped = everyone["skipped"].as_array().unwrap().iter().any(|s| s["application"] == "dbagent");
    assert!(own_skipped, "{everyone:#}");
    assert!(everyone["signalled"].as_array().unwrap().iter().all(|s| !s["application"].as_str().unwrap_or("").starts_with("dbagent")), "{everyone:#}");

    let (status, closed) = app.post("/connections/close-idle", &json!({"idle_for": "2s", "states": ["idle"], "user": role.name})).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    let mut closed_pids = pids(&closed["signalled"]);
    closed_pids.sort();
    assert_eq!(closed_pids, expected);
    wait_until("the idle sessions to close", Duration::from_secs(5), async || old_a.is_closed() && old_b.is_closed()).await;
    assert!(!fresh.is_closed() && !in_txn.0.is_closed(), "the fresh and idle-in-transaction sessions stay");
    assert!(fresh.query_one("SELECT 1", &[]).await.is_ok());
    let _ = fresh_pid;

    // Seed 004's path with no body takes the defaults (idle and idle in transaction, 10 min).
    let (status, seed) = app.post_raw("/api/database/connections/close-idle", "").await;
    assert_eq!(status, StatusCode::OK, "{seed}");
    assert!(seed["signalled"].as_array().unwrap().iter().all(|s| s["pid"] != fresh_pid), "{seed}");
    role.drop_now(&app).await;
}

#[tokio::test]
async fn connections_and_their_stats_describe_the_server() {
    let app = spawn_app().await;
    let (status, list) = app.get(&format!("/api/database/connections/details?database={}", app.db.name)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list["count"].as_i64().unwrap() >= 1, "{list}");
    assert!(list["connections"].as_array().unwrap().iter().any(|s| s["dbagent"] == true), "{list:#}");
    let (status, bad) = app.get("/connections?min_age=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    let (status, stats) = app.get("/connections/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let max = stats["max_connections"].as_i64().unwrap();
    let reserved = stats["superuser_reserved_connections"].as_i64().unwrap();
    assert_eq!(stats["available_to_users"].as_i64().unwrap(), max - reserved);
    assert!(stats["client_sessions"].as_i64().unwrap() >= 1);
    assert_eq!(stats["pools"]["primary"]["max"], 10, "{stats:#}");
}

/// `t`: 10,000 rows, 6,000 of them deleted (dead until a vacuum).
async fn dead_rows(app: &TestApp, table: &str) {
    app.setup(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, v text); INSERT INTO {table} SELECT i, repeat('x', 100) FROM generate_series(1, 10000) i;
         ANALYZE {table}; DELETE FROM {table} WHERE id <= 6000;"
    ))
    .await;
}

fn finding<'a>(report: &'a Value, check: &str, object: &str) -> Option<&'a Value> {
    report["findings"].as_array()?.iter().find(|f| f["check"] == check && f["object"] == object)
}

#[tokio::test]
async fn dead_rows_are_reported_with_their_fix_and_vacuum_clears_them() {
    let app = spawn_app().await;
    dead_rows(&app, "t").await;
    app.setup("CREATE TABLE never (id int); INSERT INTO never VALUES (1); CREATE UNLOGGED TABLE scratch (id int)").await;

    let mut report = Value::Null;
    wait_until("the dead rows to be counted", Duration::from_secs(10), async || {
        report = app.get("/maintenance/report").await.1;
        finding(&report, "dead_tuples", "\"public\".\"t\"").is_some()
    })
    .await;
    let dead = finding(&report, "dead_tuples", "\"public\".\"t\"").unwrap();
    assert_eq!(dead["severity"], "critical", "{dead}");
    assert_eq!(dead["fix"], "VACUUM (ANALYZE) \"public\".\"t\";");
    assert!(finding(&report, "never_analyzed", "\"public\".\"never\"").is_some(), "{report:#}");
    assert_eq!(finding(&report, "unlogged", "\"public\".\"scratch\"").unwrap()["fix"], "ALTER TABLE \"public\".\"scratch\" SET LOGGED;");
    let current = report["databases"].as_array().unwrap().iter().find(|d| d["current"] == true).unwrap();
    assert!(current["xids_left"].as_i64().unwrap() > 2_000_000_000, "{current}");

    let (status, refused) = app.post("/maintenance/vacuum", &json!({"table": "t", "full": true})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("ACCESS EXCLUSIVE"), "{refused}");

    let (status, vacuumed) = app.post("/maintenance/vacuum", &json!({"table": "t", "analyze": true, "verbose": true})).await;
    assert_eq!(status, StatusCode::OK, "{vacuumed}");
    assert_eq!(vacuumed["done"], "VACUUM (VERBOSE, ANALYZE) \"public\".\"t\";");
    assert!(vacuumed["messages"].as_array().unwrap().iter().any(|m| m.as_str().unwrap().contains("\"t\"")), "{vacuumed:#}");
    wait_until("the vacuum to be counted", Duration::from_secs(10), async || {
        let report = app.get("/maintenance/report").await.1;
        finding(&report, "dead_tuples", "\"public\".\"t\"").is_none()
    })
    .await;

    let (status, analyzed) = app.post("/maintenance/analyze", &json!({"table": "never"})).await;
    assert_eq!(status, StatusCode::OK, "{analyzed}");
    assert_eq!(analyzed["done"], "ANALYZE \"public\".\"never\";");
    let (status, missing) = app.post("/maintenance/vacuum", &json!({"table": "nope"})).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("table_not_found")));
    let (status, whole) = app.post_raw("/maintenance/analyze", "").await;
    assert_eq!((status, whole["done"].as_str()), (StatusCode::OK, Some("ANALYZE;")));

    let (status, progress) = app.get("/maintenance/progress").await;
    assert_eq!(status, StatusCode::OK, "{progress}");
    assert!(progress["running"].is_array());
}

#[tokio::test]
async fn seed_000_rebuild_by_table_reports_each_index_before_and_after() {
    let app = spawn_app().await;
    app.setup(
        "CREATE TABLE users (id int PRIMARY KEY, email text); CREATE INDEX users_email ON users (email);
         INSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 5000) i; UPDATE users SET email = email || 'x';",
    )
    .await;
    let (status, body) = app.post("/indexes", &json!({"table": "users", "action": "rebuild"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let indexes = body["indexes"].as_array().unwrap();
    let names: Vec<&str> = indexes.iter().map(|i| i["index"].as_str().unwrap()).collect();
    assert_eq!(names, ["users_email", "users_pkey"], "{body:#}");
    for index in indexes {
        assert!(index["bytes_after"].as_i64().unwrap() > 0 && index["bytes_after"].as_i64() <= index["bytes_before"].as_i64(), "{body:#}");
    }
}

/// The figure for the closing note: the report over a database of 1,000 tables.
#[tokio::test]
async fn the_report_over_a_thousand_tables_takes_well_under_a_few_seconds() {
    let app = spawn_app().await;
    app.setup(
        "DO $$ BEGIN FOR i IN 1..1000 LOOP
           EXECUTE format('CREATE TABLE t%s (id int, name text, at timestamptz)', i);
           EXECUTE format('INSERT INTO t%s SELECT g, ''n'' || g, now() FROM generate_series(1, 20) g', i);
         END LOOP; END $$;
         ANALYZE;",
    )
    .await;
    let started = Instant::now();
    let (status, report) = app.get("/maintenance/report").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{report}");
    // dbagent's own tables (the audit log, the keys) are checked too.
    assert!(report["tables_checked"].as_i64().unwrap() >= 1000, "{}", report["tables_checked"]);
    eprintln!("maintenance report over 1,000 tables: {:.0} ms (server side {:.0} ms)", took.as_secs_f64() * 1000.0, report["seconds"].as_f64().unwrap() * 1000.0);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

fn vacuum_every_second(config: &mut Config) {
    config.maintenance.jobs = vec![Job {
        name: "vacuum".into(),
        schedule: "* * * * * *".into(),
        action: JobAction::VacuumAnalyze,
        dead_tuple_ratio: Some(0.2),
        min_dead_tuples: Some(1000),
        changed_ratio: None,
        bloat_pct: None,
        idle_for: None,
    }];
}

#[tokio::test]
async fn a_table_with_many_dead_rows_is_vacuumed_by_its_job_on_exactly_one_of_two_agents() {
    let first = spawn_app_with(vacuum_every_second).await;
    let second = spawn_app_on(TestDb::existing(&first.db.url), vacuum_every_second).await;
    // Autovacuum off for the table, so only the job can clear it.
    first
        .setup(
            "CREATE TABLE t (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
             INSERT INTO t SELECT i, repeat('x', 100) FROM generate_series(1, 10000) i; DELETE FROM t WHERE id <= 6000;",
        )
        .await;
    let vacuum = "VACUUM (ANALYZE) \"public\".\"t\";";
    let vacuumed_t = |runs: &Value| -> Vec<Value> {
        runs["runs"].as_array().unwrap().iter().filter(|r| r["statements"].as_array().unwrap().iter().any(|s| s == vacuum)).cloned().collect()
    };
    wait_until("the job to vacuum t", Duration::from_secs(15), async || !vacuumed_t(&first.get("/maintenance/history").await.1).is_empty()).await;
    // A few more ticks: t is clean now, and no tick ran twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, history) = second.get("/maintenance/history?job=vacuum&limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let runs = vacuumed_t(&history);
    assert_eq!(runs.len(), 1, "{history:#}");
    assert_eq!(runs[0]["outcome"], "done");
    let mut ticks: Vec<&str> = history["runs"].as_array().unwrap().iter().map(|r| r["scheduled_for"].as_str().unwrap()).collect();
    let all = ticks.len();
    ticks.dedup();
    assert_eq!(ticks.len(), all, "one run per tick");

    let (_, health_a) = first.get("/health").await;
    let (_, health_b) = second.get("/health").await;
    let ran = |h: &Value| h["maintenance"][0]["ran"].as_u64().unwrap_or(0);
    assert!(ran(&health_a) + ran(&health_b) >= 2, "{health_a:#} {health_b:#}");
    let skipped = |h: &Value| h["maintenance"][0]["skipped"].as_u64().unwrap_or(0);
    assert!(skipped(&health_a) + skipped(&health_b) >= 1, "each tick is skipped by one of the two: {health_a:#} {health_b:#}");
    drop(second);
}

/// On the managed instance (a server of the test's own, so changing settings disturbs no other
/// test): concrete values from the host, and an applied reload-only setting shows in pg_settings.
#[tokio::test]
async fn tuning_advice_on_the_managed_instance_gives_values_and_applying_one_reloads_it() {
    let app = spawn_managed_app(|_| {}).await;
    let (status, advice) = app.get("/advisor/config").await;
    assert_eq!(status, StatusCode::OK, "{advice}");
    assert_eq!(advice["host"]["source"], "managed instance host");
    let setting = |name: &str| advice["settings"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap_or_else(|| panic!("no {name}: {advice:#}"));
    let shared = setting("shared_buffers");
    assert!(shared["suggested"].as_str().is_some_and(|v| v.ends_with("MB") || v.ends_with("GB")), "{shared}");
    assert_eq!(shared["restart_required"], true);
    assert!(shared["statement"].as_str().unwrap().starts_with("ALTER SYSTEM SET \"shared_buffers\" = '"), "{shared}");
    assert!(setting("work_mem")["why"].as_str().unwrap().contains("max_connections"));
    assert!(advice["pool"]["suggested_max"].as_u64().unwrap() >= 2, "{advice:#}");
    let (status, given) = app.get("/advisor/config?memory=16GB&cpus=8&storage=hdd").await;
    assert_eq!(status, StatusCode::OK, "{given}");
    let random = given["settings"].as_array().unwrap().iter().find(|s| s["name"] == "random_page_cost").unwrap();
    assert_eq!(random["current"], "4");
    assert_eq!(random["suggested"], Value::Null, "4 fits spinning disks: {random}");
    let (status, _) = app.get("/advisor/config?memory=lots").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let request = json!({"settings": [
        {"name": "checkpoint_completion_target", "value": "0.8"},
        {"name": "shared_buffers", "value": "256MB"},
        {"name": "random_page_cost", "value": "fast"},
    ]});
    let (status, applied) = app.post("/advisor/config/apply", &request).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    let by_name = |name: &str| applied["settings"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap();
    assert_eq!(by_name("checkpoint_completion_target")["applied"], true, "{applied:#}");
    assert_eq!(by_name("checkpoint_completion_target")["now"], "0.8", "{applied:#}");
    assert_eq!(by_name("shared_buffers")["applied"], false);
    assert!(by_name("shared_buffers")["reason"].as_str().unwrap().contains("restart"), "{applied:#}");
    assert_eq!(by_name("random_page_cost")["applied"], false);
    let rows = app.rows("SELECT setting FROM pg_settings WHERE name = 'checkpoint_completion_target'", json!([])).await;
    assert_eq!(rows, vec![json!({"setting": "0.8"})]);

    let (status, unknown) = app.post("/advisor/config/apply", &json!({"settings": [{"name": "no_such_setting", "value": "1"}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{unknown}");
    app.stop().await;
}

fn job(name: &str, action: JobAction) -> Job {
    Job { name: name.into(), schedule: "0 3 * * *".into(), action, dead_tuple_ratio: None, min_dead_tuples: None, changed_ratio: None, bloat_pct: None, idle_for: None }
}

/// Each action once, through one tick as the schedule runs it; and the window.
#[tokio::test]
async fn each_job_action_does_its_work_and_a_tick_outside_the_window_is_skipped() {
    use dbagent::ops::jobs::{Context, JobsStatus, Outcome, run_tick};
    let app = spawn_app().await;
    let role = Role::create(&app).await;
    app.setup("CREATE TABLE fresh (id int); INSERT INTO fresh SELECT generate_series(1, 100)").await;
    let (idle, _) = role.connect(&app).await;
    let mut settings = dbagent::config::Maintenance::default();
    let close = Job { idle_for: Some("1s".into()), ..job("idle", JobAction::CloseIdleSessions) };
    settings.jobs = vec![job("stats", JobAction::Analyze), close.clone()];
    let pools = app.agent.executor.pools.clone();
    let context = Context { pools, settings: settings.clone(), agent: "test".into(), status: std::sync::Arc::new(JobsStatus::new(&settings)) };
    let tick = chrono::Utc::now();

    let analyzed = run_tick(&context, &settings.jobs[0], tick).await.unwrap();
    assert!(matches!(&analyzed, Outcome::Ran { statements } if statements.contains(&"ANALYZE \"public\".\"fresh\";".to_string())), "{analyzed:?}");
    assert_eq!(run_tick(&context, &settings.jobs[0], tick).await.unwrap(), Outcome::AlreadyRun);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let closed = run_tick(&context, &close, tick).await.unwrap();
    assert!(matches!(&closed, Outcome::Ran { statements } if statements.len() == 1), "only the test role's idle session: {closed:?}");
    wait_until("the idle session to close", Duration::from_secs(5), async || idle.is_closed()).await;

    let mut outside = context;
    let now = chrono::Utc::now();
    let (start, end) = ((now + chrono::Duration::hours(2)).format("%H:%M").to_string(), (now + chrono::Duration::hours(3)).format("%H:%M").to_string());
    outside.settings.window = Some(dbagent::config::Window { start, end });
    assert_eq!(run_tick(&outside, &job("later", JobAction::VacuumAnalyze), now).await.unwrap(), Outcome::OutsideWindow);

    let (status, history) = app.get("/maintenance/history?job=stats").await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["runs"].as_array().unwrap().len(), 1, "{history:#}");
    assert_eq!(history["runs"][0]["outcome"], "done");
    role.drop_now(&app).await;
}
