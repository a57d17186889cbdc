//! One function per subcommand; each loads what it needs and calls the library.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use super::{
    BackupCommand, CacheCommand, Cli, DictionaryFormat, ErdFormat, RestoreArgs, WalCommand, IndexesCommand, OptimizeArgs, Command, Failure, InstanceCommand, MigrateCommand, QueryArgs, ReplicaCommand, SchemaArgs,
    SchemaDocument, SeedCommand, TransactionArgs, database, exit, output,
};
use crate::replication::{self, topology::Cluster};
use crate::app::{self, Agent};
use crate::config::{self, Config, Environment, LogFormat};
use crate::error::Classify;
use crate::txn::{StatementRequest, TransactionRequest};
use crate::{instance, migrate, monitor, schema, txn};

pub async fn run(cli: Cli, env: Environment) -> Result<(), Failure> {
    let mut config = config::load(cli.config.as_deref(), &env).map_err(|e| Failure { code: exit::USAGE, error: e.into() })?;
    let serving = matches!(cli.command, Command::Serve(_));
    init_logging(&config, &env, serving);
    config.provenance.log();
    if !serving {
        // One-off commands need a connection or two, not a warm pool.
        let pool = &mut config.postgresql.connection_pool;
        pool.min_size = 0;
        pool.max_size = pool.max_size.min(4);
        // No result cache for one statement; other agents hear of its writes via the watch
        // triggers.
        config.caching.enable = false;
        // Nor a metrics collector or history sampler (`stats` reads what it shows itself).
        config.monitoring.enable = false;
    }
    match cli.command {
        Command::Serve(args) => {
            if let Some(bind) = args.bind {
                config.server.bind = bind;
            }
            if let Some(port) = args.port {
                config.server.port = port;
            }
            let agent = start(config).await?;
            app::serve(agent).await.map_err(Failure::from)
        }
        Command::Instance(InstanceCommand::Switchover { to, timeout }) => {
            let agent = start(config).await?;
            let result = agent.replication.switchover(to, std::time::Duration::from_secs(timeout.clamp(1, 600))).await;
            agent.shutdown(!cli.keep_running).await;
            let report = result.map_err(failure)?;
            output::key_values(&serde_json::to_value(report)?, cli.json)
        }
        Command::Instance(InstanceCommand::Rejoin) => {
            let agent = start(config).await?;
            let result = agent.replication.rejoin().await;
            agent.shutdown(!cli.keep_running).await;
            let report = result.map_err(failure)?;
            output::key_values(&serde_json::to_value(report)?, cli.json)
        }
        Command::Instance(cmd) => instance_cmd(&config, cmd, cli.json).await,
        command => {
            match database::need(&command) {
                database::Need::Nothing => return offline(&config, command, cli.json).await,
                database::Need::Existing => database::require_existing(&config)?,
                database::Need::Started => database::announce_start(&config, cli.keep_running)?,
            }
            // Every other command runs against a started agent, which is always stopped after
            // (and with it a managed instance it started, unless --keep-running).
            let agent = start(config).await?;
            let result = match command {
                Command::Query(args) => query(&agent, args, cli.json).await,
                Command::Transaction(args) => transaction(&agent, args, cli.json).await,
                Command::Health => health(&agent, cli.json).await,
                Command::Schema(args) => schema_cmd(&agent, args, cli.json).await,
                Command::Migrate(cmd) => migrate_cmd(&agent, cmd, &env, cli.json).await,
                Command::Seed(SeedCommand::Run { env }) => seed_cmd(&agent, &env, cli.json).await,
                Command::Seed(SeedCommand::Generate { table, rows, clear, seed }) => {
                    generate_cmd(&agent, crate::seeddata::Request { table, rows, clear, seed }, cli.json).await
                }
                Command::Cache(CacheCommand::Unwatch) => unwatch_cmd(&agent, cli.json).await,
                Command::Optimize(args) => optimize_cmd(&agent, args, cli.json).await,
                Command::Backup(cmd) => backup_cmd(&agent, cmd, cli.json).await,
                Command::Restore(args) => restore_cmd(&agent, args, cli.json).await,
                Command::Indexes(args) => indexes_cmd(&agent, args, cli.json).await,
                Command::Keys(cmd) => super::security::keys_cmd(&agent, cmd, cli.json).await,
                Command::Audit(cmd) => super::security::audit_cmd(&agent, cmd, cli.json).await,
                Command::Roles(cmd) => super::access::roles_cmd(&agent, cmd, cli.json).await,
                Command::Security(cmd) => super::access::security_cmd(&agent, cmd, cli.json).await,
                Command::Stats(cmd) => super::stats::run(&agent, cmd, cli.json).await,
                Command::Alerts(cmd) => super::alerts::run(&agent, cmd, cli.json).await,
                Command::Connections(cmd) => super::ops::connections(&agent, cmd, cli.json).await,
                Command::Locks => super::ops::locks(&agent, cli.json).await,
                Command::Maintenance(cmd) => super::ops::maintenance(&agent, cmd, cli.json).await,
                Command::Tune(args) => super::ops::tune(&agent, args, cli.json).await,
                Command::Serve(_) | Command::Instance(_) | Command::Wal(_) | Command::Openapi => Ok(()),
            };
            agent.shutdown(!cli.keep_running).await;
            result
        }
    }
}

/// Commands that read files only (`backup list`, `backup status`): no agent, no database.
async fn offline(config: &Config, command: Command, as_json: bool) -> Result<(), Failure> {
    use crate::backup;
    let settings = backup::Settings::from_config(config).map_err(|e| Failure { code: exit::USAGE, error: e.into() })?;
    match command {
        Command::Backup(BackupCommand::List { replaced: false, remote: false }) => output::backups(&backup::list(&settings).map_err(failure)?, as_json),
        Command::Backup(BackupCommand::List { replaced: false, remote: true }) => {
            output::remote_backups(&backup::remote::list_backups(&settings).await.map_err(failure)?, as_json)
        }
        Command::Alerts(super::alerts::AlertsCommand::ExportRules { output }) => super::alerts::export_rules(config, output.as_deref()),
        Command::Backup(BackupCommand::Status) => {
            let mut status = backup::status(&settings).map_err(failure)?;
            status.wal = backup::WalWatch::freshness_offline(&settings);
            status.remote = backup::remote::offline_status(&settings).await;
            output::key_values(&serde_json::to_value(status)?, as_json)
        }
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&crate::api::openapi::document())?);
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn start(config: Config) -> Result<Agent, Failure> {
    Agent::start(config).await.map_err(|error| {
        let code = if error.downcast_ref::<instance::Error>().is_some() { exit::INSTANCE } else { exit::USAGE };
        Failure { code, error }
    })
}

/// A capability error with the exit code of its kind; the message is the whole chain, its code,
/// and PostgreSQL's detail and hint when the server gave them.
pub(super) fn failure<E: Classify + std::error::Error + 'static>(err: E) -> Failure {
    let mut message = format!("{} ({})", crate::db::error_chain(&err), err.code());
    if let Some(pg) = err.server() {
        for (label, field) in [("detail", &pg.detail), ("hint", &pg.hint)] {
            if let Some(text) = field {
                message.push_str(&format!("\n{label}: {text}"));
            }
        }
    }
    Failure { code: exit::of(err.kind()), error: anyhow::anyhow!(message) }
}

/// `--param` values: JSON when they parse, text otherwise (so `--param alice` works).
fn parse_params(raw: &[String]) -> Vec<Value> {
    raw.iter().map(|p| serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.clone()))).collect()
}

/// Whether the command line's results are masked: it has no key, so as a caller without one
/// (`security.masking.mask_unauthenticated`).
fn cli_masked(agent: &Agent) -> bool {
    crate::security::Caller::anonymous(std::net::Ipv4Addr::LOCALHOST.into()).masked(&agent.config.security.masking)
}

async fn query(agent: &Agent, args: QueryArgs, as_json: bool) -> Result<(), Failure> {
    let params = parse_params(&args.params);
    if args.transaction {
        let mut request = TransactionRequest::single(args.sql, params);
        request.masked = cli_masked(agent);
        let out = txn::run(&agent.executor, &agent.config.transactions, &request).await.map_err(failure)?;
        return output::transaction(&out, as_json);
    }
    let freshness = crate::query::Freshness { masked: cli_masked(agent), ..Default::default() };
    let out = agent.executor.query(&args.sql, &params, freshness).await.map_err(failure)?;
    output::query(&out, as_json)
}

async fn transaction(agent: &Agent, args: TransactionArgs, as_json: bool) -> Result<(), Failure> {
    let mut request = read_transaction_file(&args.file)?;
    if args.isolation.is_some() {
        request.isolation_level = args.isolation;
    }
    request.read_only |= args.read_only;
    request.masked = cli_masked(agent);
    let out = txn::run(&agent.executor, &agent.config.transactions, &request).await.map_err(failure)?;
    output::transaction(&out, as_json)
}

/// A `.json` file is a `/transaction` request body; anything else is SQL split by the parser.
fn read_transaction_file(path: &Path) -> Result<TransactionRequest, Failure> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text).with_context(|| format!("{} is not a transaction request", path.display())).map_err(Failure::from);
    }
    let statements = pg_query::split_with_parser(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let queries = statements
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|sql| StatementRequest { sql: sql.to_string(), params: Vec::new() })
        .collect();
    Ok(TransactionRequest { queries, isolation_level: None, read_only: false, deferrable: false, max_retries: None, login: crate::db::Login::Service, masked: false })
}

async fn health(agent: &Agent, as_json: bool) -> Result<(), Failure> {
    let report = monitor::health::report(&agent.executor.pools, &agent.executor.stats, agent.executor.cache.as_deref(), agent.started).await;
    output::health(&report, as_json)?;
    if report.is_healthy() {
        Ok(())
    } else {
        Err(Failure { code: exit::UNAVAILABLE, error: anyhow::anyhow!("the database is not reachable") })
    }
}

async fn schema_cmd(agent: &Agent, args: SchemaArgs, as_json: bool) -> Result<(), Failure> {
    use crate::schema::{catalog, dictionary, erd};
    let pools = &agent.executor.pools;
    match args.document {
        Some(SchemaDocument::Erd { format, schema, table, all_columns }) => {
            let filter = catalog::Filter { schemas: schema, table, neighbours: true };
            let tables = catalog::load(pools, &filter).await.map_err(failure)?;
            let format = match format {
                ErdFormat::Mermaid => erd::Format::Mermaid,
                ErdFormat::Dot => erd::Format::Dot,
            };
            let columns = if all_columns { erd::Columns::All } else { erd::Columns::Keys };
            print!("{}", erd::render(&tables, format, columns));
            return Ok(());
        }
        Some(SchemaDocument::Dictionary { format, schema, table }) => {
            let filter = catalog::Filter { schemas: schema, table, neighbours: false };
            let tables = catalog::load(pools, &filter).await.map_err(failure)?;
            let format = match format {
                DictionaryFormat::Markdown if !as_json => dictionary::Format::Markdown,
                DictionaryFormat::Html if !as_json => dictionary::Format::Html,
                _ => dictionary::Format::Json,
            };
            println!("{}", dictionary::render(&tables, format).trim_end());
            return Ok(());
        }
        None => {}
    }
    match args.table {
        None => {
            let tables = schema::tables(pools).await.map_err(failure)?;
            output::tables(&tables, as_json)
        }
        Some(name) => {
            let detail = schema::describe(pools, &name).await.map_err(failure)?;
            output::table_detail(&detail, as_json)
        }
    }
}

async fn instance_cmd(config: &Config, cmd: InstanceCommand, as_json: bool) -> Result<(), Failure> {
    let settings = app::instance_settings(config)?;
    let fail = |e: instance::Error| Failure { code: exit::INSTANCE, error: e.into() };
    let value = match cmd {
        InstanceCommand::Init => {
            let created = instance::init(&settings).await.map_err(fail)?;
            json!({ "data_dir": settings.data_dir, "created": created })
        }
        InstanceCommand::Start => {
            let running = instance::start(&settings).await.map_err(fail)?;
            json!({
                "data_dir": running.data_dir,
                "port": running.port,
                "pid": running.pid,
                "url": running.url(&config.instance.database),
                "already_running": !running.started_by_us,
            })
        }
        InstanceCommand::Stop { mode } => {
            let mode: instance::StopMode = serde_json::from_value(Value::String(mode.clone()))
                .map_err(|_| Failure { code: exit::USAGE, error: anyhow::anyhow!("--mode must be smart, fast or immediate, not {mode:?}") })?;
            let was_running = instance::stop(&settings, mode).await.map_err(fail)?;
            json!({ "data_dir": settings.data_dir, "was_running": was_running })
        }
        InstanceCommand::Status => serde_json::to_value(instance::status(&settings).map_err(fail)?).map_err(Failure::from)?,
        InstanceCommand::Logs { lines } => {
            let text = instance::logs(&settings, lines).map_err(fail)?;
            if as_json {
                json!({ "log": text })
            } else {
                print!("{text}");
                return Ok(());
            }
        }
        InstanceCommand::Replica(ReplicaCommand::Create { number }) => {
            let primary = instance::start(&settings).await.map_err(fail)?;
            let number = match number {
                Some(n) => n,
                None => {
                    let taken: Vec<u32> = instance::replicas(&settings).map_err(fail)?.into_iter().map(|(n, _)| n).collect();
                    (1..).find(|n| !taken.contains(n)).unwrap_or(1)
                }
            };
            let replica = instance::replica_settings(&settings, number);
            let running = instance::create_replica(&primary, &replica).await.map_err(fail)?;
            json!({
                "replica": number,
                "data_dir": running.data_dir,
                "port": running.port,
                "url": running.url(&config.instance.database),
                "primary_port": primary.port,
            })
        }
        InstanceCommand::Replica(ReplicaCommand::List) => {
            let mut list = Vec::new();
            for (n, replica) in instance::replicas(&settings).map_err(fail)? {
                let status = instance::status(&replica).map_err(fail)?;
                let fenced = instance::fenced(&replica.data_dir).map_err(fail)?.is_some();
                list.push(json!({ "replica": n, "running": status.running, "port": status.port, "fenced": fenced, "data_dir": status.data_dir }));
            }
            return output::rows(&list, &["replica", "running", "port", "fenced", "data_dir"], as_json);
        }
        InstanceCommand::Switchover { .. } | InstanceCommand::Rejoin => {
            // Run by `run` with an agent of its own.
            return Err(Failure { code: exit::USAGE, error: anyhow::anyhow!("switchover needs an agent") });
        }
        InstanceCommand::Promote { replica: number } => {
            let replica = instance::replica_settings(&settings, number);
            if !instance::status(&replica).map_err(fail)?.running {
                return Err(fail(instance::Error::NotRunning { data_dir: replica.data_dir }));
            }
            let running = instance::start(&replica).await.map_err(fail)?; // adopts it: its port
            let cluster = Cluster { settings: replica, running };
            replication::promote(&settings, &cluster, &config.instance.database)
                .await
                .map_err(|e| Failure { code: exit::INSTANCE, error: e.into() })?;
            json!({ "promoted": cluster.settings.data_dir, "fenced": settings.data_dir })
        }
    };
    output::key_values(&value, as_json)
}

async fn migrate_cmd(agent: &Agent, cmd: MigrateCommand, env: &Environment, as_json: bool) -> Result<(), Failure> {
    let service = &agent.migrations;
    let db = agent.executor.pools.admin_config();
    let fail = failure::<migrate::Error>;
    let by = env.get("USER").map_or_else(|| "cli".into(), |u| format!("cli:{u}"));
    match cmd {
        MigrateCommand::Up { target, dry_run, allow_out_of_order } => {
            let target = migrate::UpTarget::parse(&target).map_err(fail)?;
            let up = migrate::Up { target, dry_run, allow_out_of_order, by };
            let report = service.up(&db, &up).await.map_err(fail)?;
            output::migration_report(&report, as_json)
        }
        MigrateCommand::Down { target, dry_run, confirm } => {
            let report = service.down(&db, &target, dry_run, confirm, &by).await.map_err(fail)?;
            output::migration_report(&report, as_json)
        }
        MigrateCommand::Status => {
            let status = service.status(&db).await.map_err(fail)?;
            output::migration_status(&status, as_json)
        }
        MigrateCommand::Current => {
            let status = service.status(&db).await.map_err(fail)?;
            output::key_values(&json!({ "current": status.current }), as_json)
        }
        MigrateCommand::History { limit } => {
            let events = service.history(&db, limit).await.map_err(fail)?;
            // The backup taken before each applied version (from the applied table; the
            // event log does not carry it). Without readable files there is none to show.
            let applied = service.status(&db).await.map(|s| s.applied).unwrap_or_default();
            output::migration_history(&events, &applied, as_json)
        }
        MigrateCommand::New { name, irreversible } => {
            let files = migrate::new_migration(service.directory(), &name, !irreversible, chrono::Utc::now()).map_err(fail)?;
            output::key_values(&json!({ "created": files }), as_json)
        }
        MigrateCommand::Repair { version } => {
            let repaired = service.migrator().map_err(fail)?.repair(&db, version, &by).await.map_err(fail)?;
            output::key_values(&json!({ "repaired": repaired }), as_json)
        }
        MigrateCommand::Autogenerate { name, schema, schemas } => {
            let desired = std::fs::read_to_string(&schema).with_context(|| format!("cannot read {}", schema.display()))?;
            let out = service.autogenerate(&db, &name, &desired, &schemas).await.map_err(fail)?;
            if as_json {
                return output::key_values(&serde_json::to_value(&out)?, true);
            }
            if out.files.is_empty() {
                println!("the database already matches {}", schema.display());
            }
            for file in &out.files {
                println!("wrote {}", file.display());
            }
            for note in &out.generated.notes {
                println!("note: {note}");
            }
            Ok(())
        }
        MigrateCommand::Baseline { version } => {
            service.migrator().map_err(fail)?.baseline(&db, version, &by).await.map_err(fail)?;
            output::key_values(&json!({ "baseline": version }), as_json)
        }
    }
}

async fn optimize_cmd(agent: &Agent, args: OptimizeArgs, as_json: bool) -> Result<(), Failure> {
    let params = parse_params(&args.params);
    let req = crate::advisor::OptimizeRequest {
        sql: args.sql,
        params,
        analyze: !args.no_analyze,
        suggest_indexes: true,
        allow_side_effects: args.allow_side_effects,
        login: crate::db::Login::Service,
    };
    let db = agent.executor.pools.admin_config();
    let slow = std::time::Duration::from_secs_f64(agent.config.optimization.slow_query_threshold_ms / 1000.0);
    let report = crate::advisor::optimize(&agent.executor, &db, &req, slow).await.map_err(failure)?;
    output::optimize(&report, as_json)
}

async fn indexes_cmd(agent: &Agent, cmd: IndexesCommand, as_json: bool) -> Result<(), Failure> {
    let db = agent.executor.pools.admin_config();
    let answer = crate::advisor::indexes(&agent.executor, &db, &indexes_request(cmd)).await.map_err(failure)?;
    output::indexes(&answer, as_json)
}

/// The API's request for a command line's action.
fn indexes_request(cmd: IndexesCommand) -> crate::advisor::IndexesRequest {
    use crate::advisor::{IndexesRequest as R, WorkloadQuery};
    let query = |sql: String| WorkloadQuery { sql, params: Vec::new() };
    match cmd {
        IndexesCommand::Suggest { table, queries, no_hypopg, max_index_bytes } => {
            R::Suggest { table, queries: queries.into_iter().map(query).collect(), use_hypopg: !no_hypopg, max_index_bytes }
        }
        IndexesCommand::Analyze { table } => R::Analyze { table },
        IndexesCommand::Unused { table } => R::Unused { table },
        IndexesCommand::Duplicates { table } => R::Duplicates { table },
        IndexesCommand::Invalid { table } => R::Invalid { table },
        IndexesCommand::Bloat { table } => R::Bloat { table },
        IndexesCommand::Rebuild { index, table } => R::Rebuild { index, table },
        IndexesCommand::Create { table, columns, name, unique } => R::Create { table, columns, name, unique },
        IndexesCommand::Drop { index, table } => R::Drop { index, table },
        IndexesCommand::Apply { sql, query: measured } => R::Apply { sql, query: query(measured) },
        IndexesCommand::ApplySet { statements } => R::ApplySet { statements },
    }
}

/// A progress line on stderr: bytes so far and the rate.
fn progress(p: crate::backup::Progress) {
    let seconds = p.elapsed.as_secs_f64().max(0.001);
    eprint!("\r{}: {:.1} MB, {:.1} MB/s   ", p.phase, p.bytes as f64 / 1e6, p.bytes as f64 / 1e6 / seconds);
}

async fn backup_cmd(agent: &Agent, cmd: BackupCommand, as_json: bool) -> Result<(), Failure> {
    use crate::backup;
    let settings = &agent.backup;
    let db = agent.executor.pools.admin_config();
    let fail = failure::<backup::Error>;
    let enum_arg = |field: &str, text: &str| -> Result<serde_json::Value, Failure> {
        Ok(Value::String(text.replace('-', "_"))).and_then(|v| {
            if text.is_empty() { Err(Failure { code: exit::USAGE, error: anyhow::anyhow!("--{field} is empty") }) } else { Ok(v) }
        })
    };
    let value = match cmd {
        BackupCommand::Create { name, kind, format, keep, tables } => {
            let kind = serde_json::from_value(enum_arg("kind", &kind)?)
                .map_err(|_| Failure { code: exit::USAGE, error: anyhow::anyhow!("--kind must be full, schema_only, data_only or base") })?;
            let format = serde_json::from_value(enum_arg("format", &format)?)
                .map_err(|_| Failure { code: exit::USAGE, error: anyhow::anyhow!("--format must be custom or directory") })?;
            let request = backup::CreateRequest { name, kind, format, keep, tables: (!tables.is_empty()).then_some(tables), pinned_by: None };
            let show: &(dyn Fn(backup::Progress) + Send + Sync) = if as_json { &|_| {} } else { &progress };
            let manifest = backup::create(&db, settings, &request, show).await.map_err(fail)?;
            if !as_json {
                eprintln!();
            }
            json!({ "backup_id": manifest.id, "stored_bytes": manifest.stored_bytes, "raw_bytes": manifest.raw_bytes, "duration_ms": manifest.duration_ms })
        }
        BackupCommand::List { replaced: false, remote: false } => return output::backups(&backup::list(settings).map_err(fail)?, as_json),
        BackupCommand::List { replaced: false, remote: true } => {
            return output::remote_backups(&backup::remote::list_backups(settings).await.map_err(fail)?, as_json);
        }
        BackupCommand::List { replaced: true, .. } => {
            let replaced = backup::list_replaced(&db).await.map_err(fail)?;
            return output::replaced(&replaced, as_json);
        }
        BackupCommand::Verify { id, level } => {
            let level = match level {
                1 => backup::VerifyLevel::Checksums,
                2 => backup::VerifyLevel::TrialRestore,
                _ => return Err(Failure { code: exit::USAGE, error: anyhow::anyhow!("--level is 1 or 2") }),
            };
            let report = backup::verify(&db, settings, &id, level, &|_| {}).await.map_err(fail)?;
            serde_json::to_value(report)?
        }
        BackupCommand::Prune { dry_run } => {
            let decisions = backup::prune(&db, settings, dry_run).await.map_err(fail)?;
            return output::prune(&decisions, dry_run, as_json);
        }
        BackupCommand::Delete { id, force } => json!({ "deleted": backup::delete(&db, settings, &id, force).await.map_err(fail)?.id }),
        BackupCommand::RebuildCatalog { remote: false } => serde_json::to_value(backup::rebuild_catalog(&db, settings).await.map_err(fail)?)?,
        BackupCommand::RebuildCatalog { remote: true } => {
            serde_json::to_value(backup::remote::rebuild_from_remote(&db, settings).await.map_err(fail)?)?
        }
        BackupCommand::Status => {
            let mut status = backup::status(settings).map_err(fail)?;
            status.wal = backup::WalWatch::freshness_offline(settings);
            status.remote = backup::remote::offline_status(settings).await;
            serde_json::to_value(status)?
        }
        BackupCommand::Export { id, to } => serde_json::to_value(backup::export(settings, &id, &to).await.map_err(fail)?)?,
    };
    output::key_values(&value, as_json)
}

async fn restore_cmd(agent: &Agent, args: RestoreArgs, as_json: bool) -> Result<(), Failure> {
    use crate::backup;
    let show: &(dyn Fn(backup::Progress) + Send + Sync) = if as_json { &|_| {} } else { &progress };
    let usage = |message: String| Failure { code: exit::USAGE, error: anyhow::anyhow!(message) };
    if let Some(super::RestoreCommand::Undo { id }) = args.action {
        let db = agent.executor.pools.admin_config();
        let undone = backup::undo(&db, &agent.backup, &id, "cli").await.map_err(failure)?;
        return output::key_values(&serde_json::to_value(undone)?, as_json);
    }
    let report = if let Some(text) = args.to_time {
        if args.target_database.is_some() || args.drop_existing || !args.tables.is_empty() || args.jobs.is_some() {
            return Err(usage("--to-time builds a new cluster; it takes no --target-database, --drop-existing, --table or --jobs".into()));
        }
        let to_time = chrono::DateTime::parse_from_rfc3339(&text)
            .map_err(|e| usage(format!("--to-time {text:?} is not an RFC 3339 time such as 2026-11-29T16:40:00Z: {e}")))?
            .with_timezone(&chrono::Utc);
        let request = backup::PitrRequest::new(&agent.config, Some(to_time), args.backup, args.data_dir).map_err(failure)?;
        serde_json::to_value(backup::recover_to(&agent.backup, &request, show).await.map_err(failure)?)?
    } else {
        if args.data_dir.is_some() {
            return Err(usage("--data-dir goes with --to-time".into()));
        }
        let db = agent.executor.pools.admin_config();
        let request = backup::RestoreRequest {
            backup_id: args.backup.unwrap_or_default(),
            target_database: args.target_database,
            drop_existing: args.drop_existing,
            tables: (!args.tables.is_empty()).then_some(args.tables),
            jobs: args.jobs,
            confirm: args.confirm,
            force: args.force,
            drop_replaced: args.drop_replaced,
            by: Some("cli".into()),
        };
        serde_json::to_value(backup::restore(&db, &agent.backup, &request, show).await.map_err(failure)?)?
    };
    if !as_json {
        eprintln!();
    }
    output::key_values(&report, as_json)
}

/// `dbagent wal push|fetch` (see [`WalCommand`]): exit 0 done, 1 failed or (fetch) not
/// archived.
pub(super) fn wal(cmd: &WalCommand) -> std::process::ExitCode {
    use crate::backup::wal;
    let outcome = match cmd {
        WalCommand::Push { archive, path, name } => wal::push(archive, path, name).map(|_| true),
        WalCommand::Fetch { archive, name, path } => wal::fetch(archive, name, path),
    };
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        // Not archived: PostgreSQL asks for files that may not exist (the next timeline's
        // history file, the segment after the last one); the answer is the exit code alone,
        // not a line in its log.
        Ok(false) => std::process::ExitCode::from(exit::FAILED),
        Err(err) => {
            eprintln!("dbagent wal: {}", crate::db::error_chain(&err));
            std::process::ExitCode::from(exit::FAILED)
        }
    }
}

async fn seed_cmd(agent: &Agent, env: &str, as_json: bool) -> Result<(), Failure> {
    let db = agent.executor.pools.admin_config();
    let files = agent.migrations.seed(&db, env).await.map_err(failure)?;
    output::key_values(&json!({ "environment": env, "scripts": files }), as_json)
}

async fn generate_cmd(agent: &Agent, request: crate::seeddata::Request, as_json: bool) -> Result<(), Failure> {
    let db = agent.executor.pools.admin_config();
    let report = crate::seeddata::generate(&db, &request).await.map_err(failure)?;
    output::generated(&report, as_json)
}

async fn unwatch_cmd(agent: &Agent, as_json: bool) -> Result<(), Failure> {
    // The CLI runs without a cache; build one just to reach the watcher.
    let mut config = (*agent.config).clone();
    config.caching.enable = true;
    config.optimization.enable_query_cache = true;
    config.caching.redis_url = None;
    let cache = crate::cache::Cache::new(&config, agent.executor.pools.clone())?.ok_or_else(|| anyhow::anyhow!("cache disabled"))?;
    let removed = cache.unwatch().await.map_err(failure)?;
    output::key_values(&json!({ "triggers_removed": removed }), as_json)
}

fn init_logging(config: &Config, env: &Environment, serving: bool) {
    use tracing_subscriber::EnvFilter;
    // Commands other than `serve` keep stderr quiet unless asked; stdout is their output.
    let default = if serving { config.logging.level.as_str() } else { "warn" };
    let filter = env.get("RUST_LOG").and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.logging.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
