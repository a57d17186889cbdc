//! Migration overhead benchmark: applies N small migrations with `dbagent::migrate` and runs the
//! same N statements, one transaction each, on one plain connection; the difference per
//! migration is what dbagent spends beyond the SQL itself (lock, checksums, history, events).
//!
//!   cargo run --release --example migrate_bench [-- N]
//!
//! Server: `BENCH_DATABASE_URL` (default `postgresql://postgres@127.0.0.1:5432/postgres`); a
//! database `dbagent_migrate_bench_<pid>` is created there and dropped at the end.

use std::time::Instant;

use dbagent::migrate::{Migrator, Settings, UpOptions};
use tokio_postgres::NoTls;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let server = std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("dbagent_migrate_bench_{}", std::process::id());
    let (admin, conn) = tokio_postgres::connect(&server, NoTls).await?;
    tokio::spawn(conn);
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    let mut config: tokio_postgres::Config = server.parse()?;
    config.dbname(&name);

    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let statement = |i: usize| format!("CREATE TABLE t_{i} (id int PRIMARY KEY, v text);");
    for i in 1..=n {
        std::fs::write(dir.join(format!("{i}_t{i}.up.sql")), statement(i))?;
    }

    // Baseline: the same statements, each in its own transaction, on one connection.
    let (client, conn) = config.connect(NoTls).await?;
    tokio::spawn(conn);
    let started = Instant::now();
    for i in 1..=n {
        client.batch_execute(&format!("BEGIN; {} COMMIT;", statement(i).replace("t_", "base_"))).await?;
    }
    let baseline = started.elapsed();

    let migrator = Migrator::load(Settings::new(&dir))?;
    let started = Instant::now();
    let report = migrator.up(&dbagent::db::PgConfig::plain(config.clone()), &UpOptions { applied_by: "bench".into(), ..UpOptions::default() }).await?;
    let migrated = started.elapsed();
    assert_eq!(report.applied.len(), n);

    drop(client);
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await?;
    std::fs::remove_dir_all(&dir)?;
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / n as f64;
    println!("{n} migrations: dbagent {:.1} ms/migration, the bare SQL {:.1} ms/statement", per(migrated), per(baseline));
    let overhead = per(migrated) - per(baseline);
    println!(
        "overhead beyond the SQL: {overhead:.2} ms per migration (target < 2 ms: {})",
        if overhead < 2.0 { "ok" } else { "MISS" }
    );
    Ok(())
}
