//! A backup streams: memory does not grow with its size.
//!
//! Peak memory (`VmHWM`) is per process and the other tests run beside this one, so the
//! measurement runs in a child process: this test re-runs its own binary, filtered to the
//! ignored `measure_backup_memory`, and reads what it printed.

use dbagent::backup::{self, CreateRequest, Key, VerifyLevel};

use super::helpers::{Location, TestDb, quiet};

const DB_VAR: &str = "DBAGENT_MEMORY_TEST_DB";
const LOCATION_VAR: &str = "DBAGENT_MEMORY_TEST_LOCATION";

#[tokio::test]
async fn a_large_table_streams_through_in_bounded_memory() {
    // Arrange: ~105 MB of table data that compresses only about 2:1 (pg_dump's gzip level 1
    // leaves a dump of about 55 MB).
    let db = TestDb::create().await;
    db.connect()
        .await
        .batch_execute(
            "CREATE TABLE big (id int, a text, b text);
             INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text), md5((g * 13)::text) FROM generate_series(1, 1000000) g;",
        )
        .await
        .unwrap();
    let location = Location::new();

    // Act
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["backup::memory::measure_backup_memory", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DB_VAR, &db.name)
        .env(LOCATION_VAR, &location.path)
        .output()
        .unwrap();

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "measurement failed:\n{stdout}\n{stderr}");
    let line = stdout.lines().find_map(|l| l.split_once("MEASURED ").map(|(_, rest)| rest)).unwrap_or_else(|| panic!("no measurement in:\n{stdout}"));
    let numbers: Vec<u64> = line.split_whitespace().map(|n| n.parse().unwrap()).collect();
    let (raw_mib, growth_mib) = (numbers[0], numbers[1]);
    assert!(raw_mib >= 50, "the dump should be large ({raw_mib} MiB)");
    assert!(growth_mib < 20, "peak memory grew by {growth_mib} MiB for a {raw_mib} MiB dump");
}

#[tokio::test]
#[ignore = "run in its own process by a_large_table_streams_through_in_bounded_memory"]
async fn measure_backup_memory() {
    let (Ok(name), Ok(path)) = (std::env::var(DB_VAR), std::env::var(LOCATION_VAR)) else {
        return;
    };
    let mut config = dbagent::db::PgConfig::plain(super::helpers::server());
    config.dbname(&name);
    let mut settings = dbagent::backup::Settings::new(path);
    settings.encryption = Some(Key::Raw([5; 32]));
    settings.bin_dir = std::env::var_os("PG_BIN").map(Into::into);

    let before = peak_rss_kib();
    let manifest = backup::create(&config, &settings, &CreateRequest::default(), &quiet).await.unwrap();
    backup::verify(&config, &settings, &manifest.id, VerifyLevel::Checksums, &quiet).await.unwrap();
    let growth_mib = peak_rss_kib().saturating_sub(before) / 1024;

    println!("MEASURED {} {growth_mib}", manifest.raw_bytes / (1024 * 1024));
}

/// Peak resident memory of this process so far, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
