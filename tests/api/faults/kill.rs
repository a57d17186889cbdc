//! The real binary (`dbagent serve`) killed with SIGKILL in the middle of a backup, a restore
//! with `drop_existing`, a migration and a `CREATE INDEX CONCURRENTLY`: a new agent on the same
//! database and location finds no half state. And SIGTERM under load: every request accepted
//! completes, the process exits 0 within `server.shutdown_timeout`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestDb, spawn_serve, wait_until};

/// `dbagent serve` on `db`, its files under `dir`; killed on drop if still running.
struct Served {
    child: Child,
    address: String,
    http: reqwest::Client,
}

impl Served {
    fn start(dir: &Path, db: &TestDb) -> Served {
        let config = dir.join("dbagent.yaml");
        let yaml = format!(
            "server:\n  port: 0\n  shutdown_timeout: {SHUTDOWN_TIMEOUT}\n\
             postgresql:\n  url: \"{}\"\n  connection_pool:\n    min_size: 1\n    max_size: 40\n\
             backup:\n  location: \"{}\"\n  schedule: null\n\
             migrations:\n  directory: \"{}\"\n  backup_before_migrate: false\n\
             monitoring:\n  enable: false\nalerts:\n  enabled: false\nlogging:\n  level: warn\n",
            db.url,
            dir.join("backups").display(),
            dir.join("migrations").display(),
        );
        std::fs::write(&config, yaml).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbagent"));
        command.arg("serve").arg("--config").arg(&config).current_dir(dir);
        for var in ["DATABASE_URL", "CONFIG_PATH", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "RUST_LOG"] {
            command.env_remove(var);
        }
        let (child, address) = spawn_serve(&mut command, Duration::from_secs(60));
        Served { child, address, http: reqwest::Client::new() }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn kill(mut self) {
        kill(self.pid(), Signal::SIGKILL).unwrap();
        self.child.wait().unwrap();
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.http.post(format!("{}{path}", self.address)).json(body).send().await.expect("request");
        (response.status(), response.json().await.expect("JSON"))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(format!("{}{path}", self.address)).send().await.expect("request");
        (response.status(), response.json().await.expect("JSON"))
    }

    /// Sends `body` to `path` in the background (its answer never comes when the agent dies).
    fn post_in_background(&self, path: &str, body: Value) {
        let request = self.http.post(format!("{}{path}", self.address)).json(&body);
        tokio::spawn(async move {
            let _ = request.send().await;
        });
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

const SHUTDOWN_TIMEOUT: u64 = 10;

/// A directory for one test's files, removed unless the test fails.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kill-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("migrations")).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Sessions of the test database matching `condition` (SQL over `pg_stat_activity`).
async fn sessions(client: &tokio_postgres::Client, condition: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND {condition}");
    client.query_one(&sql, &[]).await.expect("pg_stat_activity").get(0)
}

/// Names in the backup location (hidden ones included).
fn entries(location: &Path) -> Vec<String> {
    std::fs::read_dir(location).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_backup_the_incomplete_backup_is_never_listed_and_is_removed() {
    let dir = Dir::new("backup");
    let db = TestDb::create().await;
    let direct = db.connect().await;
    direct.batch_execute("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g").await.unwrap();
    let agent = Served::start(&dir.0, &db);
    // pg_dump waits for its lock on `t` while we hold this one: the backup is mid-way.
    let mut blocker = db.connect().await;
    let lock = blocker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE").await.unwrap();
    agent.post_in_background("/backup", json!({}));
    let location = dir.0.join("backups");
    wait_until("the backup waiting for its lock, its directory created", Duration::from_secs(20), async || {
        sessions(&direct, "datname = current_database() AND wait_event_type = 'Lock'").await >= 1 && !entries(&location).is_empty()
    })
    .await;
    let half = entries(&location);
    assert!(!half.is_empty() && half.iter().all(|n| !location.join(n).join("manifest.json").exists()), "a backup directory in progress: {half:?}");
    agent.kill();
    lock.rollback().await.unwrap();

    let agent = Served::start(&dir.0, &db);
    let (status, listed) = agent.get("/backups").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["backups"], json!([]), "an incomplete backup is listed: {listed}");
    wait_until("the incomplete backup's directory to be removed", Duration::from_secs(10), async || entries(&location).is_empty()).await;
    let (status, created) = agent.post("/backup", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (_, listed) = agent.get("/backups").await;
    assert_eq!(listed["backups"].as_array().map(Vec::len), Some(1), "{listed}");
    let rows: i64 = direct.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(rows, 1000);
    eprintln!("faults: SIGKILL mid-backup: incomplete directory {half:?} never listed, removed by the next agent; the next backup succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_restore_over_the_database_the_original_stays_and_the_scratch_copy_goes() {
    let dir = Dir::new("restore");
    let db = TestDb::create().await;
    let direct = db.connect().await;
    // Rows whose CHECK is slow only while being restored (into `<db>_restoring_<stamp>`).
    direct
        .batch_execute(
            "CREATE FUNCTION slow_ok(int) RETURNS boolean LANGUAGE sql AS \
               $$ SELECT pg_sleep(CASE WHEN current_database() LIKE '%\\_restoring\\_%' THEN 0.02 ELSE 0 END) IS NOT NULL $$; \
             CREATE TABLE t (id int PRIMARY KEY CHECK (slow_ok(id)), v text); \
             INSERT INTO t SELECT g, 'original ' || g FROM generate_series(1, 150) g",
        )
        .await
        .unwrap();
    let fingerprint = "SELECT count(*)::text || md5(string_agg(v, ',' ORDER BY id)) FROM t";
    let before: String = direct.query_one(fingerprint, &[]).await.unwrap().get(0);
    let agent = Served::start(&dir.0, &db);
    let (status, created) = agent.post("/backup", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["backup_id"].as_str().unwrap().to_string();
    // The original changes after the backup: a restore would bring back the old rows.
    direct.batch_execute("UPDATE t SET v = 'changed ' || id").await.unwrap();
    let before_restore: String = direct.query_one(fingerprint, &[]).await.unwrap().get(0);
    assert_ne!(before, before_restore);

    agent.post_in_background("/restore", json!({"backup_id": id, "drop_existing": true}));
    // The scratch copy's name starts with the database's (cut to fit 63 bytes).
    let prefix = db.name[..20].replace('_', "\\_");
    let scratch = format!("{prefix}%\\_restoring\\_%");
    let loading = format!("datname LIKE '{scratch}' AND query ILIKE 'COPY%'");
    wait_until("the restore loading rows into its scratch copy", Duration::from_secs(20), async || sessions(&direct, &loading).await >= 1).await;
    agent.kill();
    // pg_restore, orphaned, may finish its load; the copy is left with nobody connected.
    let in_scratch = format!("datname LIKE '{scratch}'");
    wait_until("the orphaned pg_restore to end", Duration::from_secs(30), async || sessions(&direct, &in_scratch).await == 0).await;
    let leftover = format!("SELECT count(*) FROM pg_database WHERE datname LIKE '{scratch}'");
    let left: i64 = direct.query_one(&leftover, &[]).await.unwrap().get(0);
    assert_eq!(left, 1, "the kill left the scratch copy");

    // The original is intact and in place; the next agent drops the scratch copy.
    let after: String = direct.query_one(fingerprint, &[]).await.unwrap().get(0);
    assert_eq!(after, before_restore, "the original database changed");
    // The cleanup leaves scratch copies alone while any restore runs on the server (other
    // tests' restores, when the suite runs in parallel).
    wait_until("no restore running on the server", Duration::from_secs(60), async || sessions(&direct, "application_name = 'dbagent restore'").await == 0).await;
    let started = Instant::now();
    let _agent = Served::start(&dir.0, &db);
    wait_until("the next agent to drop the scratch copy", Duration::from_secs(10), async || {
        direct.query_one(&leftover, &[]).await.unwrap().get::<_, i64>(0) == 0
    })
    .await;
    let old = format!("SELECT count(*) FROM pg_database WHERE datname LIKE '{prefix}%\\_old\\_%'");
    assert_eq!(direct.query_one(&old, &[]).await.unwrap().get::<_, i64>(0), 0, "a swap happened");
    eprintln!(
        "faults: SIGKILL mid-restore (drop_existing): original unchanged, scratch copy dropped {:.2} s after the next agent started",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_migration_the_lock_is_free_and_the_history_consistent() {
    let dir = Dir::new("migrate");
    let migrations = dir.0.join("migrations");
    std::fs::write(migrations.join("1_first.up.sql"), "CREATE TABLE first (id int);").unwrap();
    std::fs::write(migrations.join("1_first.down.sql"), "DROP TABLE first;").unwrap();
    std::fs::write(migrations.join("2_slow.up.sql"), "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);").unwrap();
    std::fs::write(migrations.join("2_slow.down.sql"), "DROP TABLE slow;").unwrap();
    let db = TestDb::create().await;
    let direct = db.connect().await;
    let agent = Served::start(&dir.0, &db);
    agent.post_in_background("/migrate", json!({"direction": "upgrade", "target": "head"}));
    let sleeping = "datname = current_database() AND query LIKE '%pg_sleep(60)%'";
    wait_until("the slow migration running", Duration::from_secs(20), async || sessions(&direct, sleeping).await >= 1).await;
    agent.kill();
    let killed = Instant::now();
    // The server notices the dead client: the migration rolls back and the lock goes with it.
    let locks = "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                 WHERE l.locktype = 'advisory' AND d.datname = current_database()";
    wait_until("the migration lock to be released", Duration::from_secs(10), async || {
        direct.query_one(locks, &[]).await.unwrap().get::<_, i64>(0) == 0 && sessions(&direct, sleeping).await == 0
    })
    .await;
    let freed = killed.elapsed();
    let slow: Option<String> = direct.query_one("SELECT to_regclass('slow')::text", &[]).await.unwrap().get(0);
    assert_eq!(slow, None, "half a migration committed");

    let agent = Served::start(&dir.0, &db);
    let (_, listing) = agent.get("/migrations").await;
    let applied: Vec<String> = listing["applied"].as_array().expect("applied").iter().map(|m| m["version"].to_string()).collect();
    assert_eq!(applied, ["1"], "{listing}");
    // The slow one fixed, the next run takes the lock and applies it.
    std::fs::write(migrations.join("2_slow.up.sql"), "CREATE TABLE slow (id int);").unwrap();
    let (status, body) = agent.post("/migrate", &json!({"direction": "upgrade", "target": "head"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listing) = agent.get("/migrations").await;
    assert_eq!(listing["applied"].as_array().map(Vec::len), Some(2), "{listing}");
    eprintln!("faults: SIGKILL mid-migration: lock free and the migration rolled back {:.2} s after the kill", freed.as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_concurrent_index_build_the_invalid_index_is_reported() {
    let dir = Dir::new("index");
    let db = TestDb::create().await;
    let direct = db.connect().await;
    direct.batch_execute("CREATE TABLE t AS SELECT g AS id, g % 7 AS k FROM generate_series(1, 10000) g").await.unwrap();
    let agent = Served::start(&dir.0, &db);
    // A writer's open transaction: CREATE INDEX CONCURRENTLY waits for it, its index invalid.
    let mut writer = db.connect().await;
    let open = writer.transaction().await.unwrap();
    open.batch_execute("INSERT INTO t VALUES (0, 0)").await.unwrap();
    agent.post_in_background("/indexes", json!({"action": "create", "table": "t", "columns": ["k"]}));
    let building = "datname = current_database() AND query ILIKE 'CREATE INDEX CONCURRENTLY%'";
    wait_until("the index build waiting", Duration::from_secs(20), async || sessions(&direct, building).await >= 1).await;
    agent.kill();
    let killed = Instant::now();
    wait_until("the orphaned build to stop", Duration::from_secs(10), async || sessions(&direct, building).await == 0).await;
    let stopped = killed.elapsed();
    open.rollback().await.unwrap();
    let invalid: Vec<String> = direct
        .query("SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(invalid.len(), 1, "the interrupted build left an invalid index: {invalid:?}");

    let agent = Served::start(&dir.0, &db);
    let (status, report) = agent.post("/indexes", &json!({"action": "invalid"})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(report.to_string().contains(&invalid[0]), "the invalid index {} is not reported: {report}", invalid[0]);
    eprintln!(
        "faults: SIGKILL mid CREATE INDEX CONCURRENTLY: the orphaned build stopped {:.2} s after the kill, invalid index {} reported",
        stopped.as_secs_f64(),
        invalid[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_every_accepted_request_and_exits_0_in_time() {
    let dir = Dir::new("sigterm");
    let db = TestDb::create().await;
    let direct = db.connect().await;
    let mut agent = Served::start(&dir.0, &db);
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..32 {
        let (http, address, stop) = (agent.http.clone(), agent.address.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut refused) = (0u32, Vec::new(), 0u32);
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let sql = if (c + round) % 2 == 0 { "SELECT pg_sleep(0.5) /* drain */" } else { "SELECT 1 AS quick" };
                match http.post(format!("{address}/query")).json(&json!({"sql": sql})).send().await {
                    Ok(response) if response.status() == StatusCode::OK => ok += 1,
                    Ok(response) => failed.push(format!("{} {}", response.status(), response.text().await.unwrap_or_default())),
                    // Not accepted: the listener is closed (or the connection was idle and closed).
                    Err(_) => {
                        refused += 1;
                        break;
                    }
                }
            }
            (ok, failed, refused)
        }));
    }
    wait_until("requests in flight", Duration::from_secs(20), async || {
        sessions(&direct, "datname = current_database() AND state = 'active' AND query LIKE '%/* drain */%'").await >= 8
    })
    .await;
    let in_flight = sessions(&direct, "datname = current_database() AND state = 'active' AND query LIKE '%/* drain */%'").await;
    kill(agent.pid(), Signal::SIGTERM).unwrap();
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(SHUTDOWN_TIMEOUT + 10), "dbagent did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let exited = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for client in clients {
        let (o, f, _) = client.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(failed.is_empty(), "{} accepted requests failed during the drain: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    assert!(status.success(), "exit status {status}");
    assert!(exited < Duration::from_secs(SHUTDOWN_TIMEOUT), "exited {exited:?} after SIGTERM");
    eprintln!(
        "faults: SIGTERM under 32 clients: {in_flight} pg_sleep(0.5) in flight at the signal, {ok} requests answered 200, 0 failed; exit 0 after {:.2} s",
        exited.as_secs_f64()
    );
}
