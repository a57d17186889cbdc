//! The managed clusters: the primary and its streaming replicas, started (or created) together
//! and stopped together. After a failover the fenced old primary names its successor, so the
//! next start serves from the promoted replica instead.

use std::path::PathBuf;

use crate::db;
use crate::instance::{self, Running, Settings};

/// One managed cluster and the server running on it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub settings: Settings,
    pub running: Running,
}

/// A managed replica and which read pool serves it.
#[derive(Debug, Clone)]
pub struct ManagedReplica {
    /// Index in `Pools::replicas()`.
    pub pool_index: usize,
    pub cluster: Cluster,
}

/// The managed primary and replicas, as they are now.
#[derive(Debug, Clone)]
pub struct Managed {
    /// Database dbagent serves on them.
    pub database: String,
    /// The configured primary's settings (`instance.*`): where the replica directories are.
    pub configured: Settings,
    /// `replication.replicas`: the replica directories `1..=slots`.
    pub slots: u32,
    pub primary: Cluster,
    pub replicas: Vec<ManagedReplica>,
}

pub use crate::instance::replica_settings;

impl Managed {
    /// Starts the primary (following a fence to its successor) and `replicas` streaming
    /// replicas, creating the missing ones with `pg_basebackup`. Replica pools are numbered in
    /// the order returned.
    pub async fn start(configured: &Settings, replicas: u32, database: &str) -> Result<Managed, instance::Error> {
        let primary_settings = current_primary(configured)?;
        let running = instance::start(&primary_settings).await?;
        let primary = Cluster { settings: primary_settings, running };
        let mut managed =
            Managed { database: database.to_owned(), configured: configured.clone(), slots: replicas, primary, replicas: Vec::new() };
        for n in 1..=replicas {
            let mut settings = replica_settings(configured, n);
            if settings.data_dir == managed.primary.settings.data_dir {
                // This replica was promoted: it is the primary now. Its place is the
                // configured primary's directory when a switchover or rejoin made that a
                // replica.
                match instance::fenced(&configured.data_dir)? {
                    Some(fence) if fence.allows_standby(&configured.data_dir) => {
                        settings = Settings { port: None, ..configured.clone() };
                    }
                    _ => continue,
                }
            } else if let Some(fence) = instance::fenced(&settings.data_dir)?
                && !fence.allows_standby(&settings.data_dir)
            {
                tracing::warn!(data_dir = %settings.data_dir.display(), "skipping a fenced replica directory");
                continue;
            }
            match managed.start_replica(settings).await {
                Ok(cluster) => {
                    let pool_index = managed.replicas.len();
                    managed.replicas.push(ManagedReplica { pool_index, cluster });
                }
                Err(err) => {
                    managed.stop().await;
                    return Err(err);
                }
            }
        }
        Ok(managed)
    }

    async fn start_replica(&self, settings: Settings) -> Result<Cluster, instance::Error> {
        let status = instance::status(&settings)?;
        let running = if status.initialized {
            let running = instance::start(&settings).await?;
            // The primary may have moved to another port since the replica was made.
            let cluster = Cluster { settings: settings.clone(), running: running.clone() };
            if let Err(err) = follow(&cluster, &self.primary.running, &self.database).await {
                tracing::warn!(data_dir = %settings.data_dir.display(), error = %err, "cannot point the replica at the primary");
            }
            running
        } else {
            instance::create_replica(&self.primary.running, &settings).await?
        };
        tracing::info!(data_dir = %settings.data_dir.display(), port = running.port, "managed replica is running");
        Ok(Cluster { settings, running })
    }

    /// Connection settings for `cluster`'s server.
    pub fn config_of(&self, cluster: &Cluster) -> crate::db::PgConfig {
        Managed::config_for(cluster, &self.database)
    }

    /// Connection settings for `cluster`'s server, database `database`.
    pub fn config_for(cluster: &Cluster, database: &str) -> crate::db::PgConfig {
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(cluster.running.port).user(&cluster.running.superuser).dbname(database);
        db::PgConfig::new(config, instance::certs::client_tls(&cluster.running.data_dir))
    }

    /// Stops every server this agent started: replicas first, then the primary.
    pub async fn stop(&self) {
        for replica in self.replicas.iter().rev() {
            stop_if_ours(&replica.cluster).await;
        }
        stop_if_ours(&self.primary).await;
    }
}

async fn stop_if_ours(cluster: &Cluster) {
    if !cluster.running.started_by_us {
        return;
    }
    match instance::stop(&cluster.settings, instance::StopMode::Fast).await {
        Ok(_) => tracing::info!(data_dir = %cluster.settings.data_dir.display(), "managed PostgreSQL stopped"),
        Err(err) => tracing::error!(error = %db::error_chain(&err), "cannot stop a managed PostgreSQL"),
    }
}

/// The configured data directory, or the replica that replaced it in a failover.
pub fn current_primary(configured: &Settings) -> Result<Settings, instance::Error> {
    let mut settings = configured.clone();
    let mut seen: Vec<PathBuf> = Vec::new();
    while let Some(fence) = instance::fenced(&settings.data_dir)? {
        if fence.successor.as_os_str().is_empty() || seen.contains(&fence.successor) {
            return Err(instance::Error::Fenced { data_dir: settings.data_dir, successor: fence.successor });
        }
        tracing::warn!(
            fenced = %settings.data_dir.display(),
            successor = %fence.successor.display(),
            "the configured primary was fenced by a failover; serving from its successor"
        );
        seen.push(settings.data_dir.clone());
        settings.data_dir = fence.successor;
        settings.port = None;
    }
    Ok(settings)
}

/// A just-promoted server was copied from a primary whose commits may have waited for a
/// replica; it has none yet, so its commits must not wait.
pub async fn release_commits(promoted: &Running, database: &str) -> Result<(), db::Error> {
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(promoted.port).user(&promoted.superuser).dbname(database);
    let config = db::PgConfig::new(config, instance::certs::client_tls(&promoted.data_dir));
    let reset = ["ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()"];
    db::admin::execute(&config, db::Purpose::Replication, &reset).await.map(drop)
}

/// The `primary_conninfo` of a managed replica of `primary`.
pub(super) fn primary_conninfo(primary: &Running) -> String {
    format!("host=127.0.0.1 port={} user={} application_name=dbagent_replica", primary.port, primary.superuser)
}

/// Points a replica's WAL receiver at `primary` (takes effect on reload, PostgreSQL 13+).
pub(super) async fn follow(replica: &Cluster, primary: &Running, database: &str) -> Result<(), db::Error> {
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(replica.running.port).user(&replica.running.superuser).dbname(database);
    let config = db::PgConfig::new(config, instance::certs::client_tls(&replica.running.data_dir));
    let conninfo = primary_conninfo(primary);
    let set = format!("ALTER SYSTEM SET primary_conninfo = {}", db::sql::literal(&conninfo));
    db::admin::execute(&config, db::Purpose::Replication, &[&set, "SELECT pg_reload_conf()"]).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_live_beside_the_primary() {
        let primary = Settings::new("/srv/db/pgdata");
        assert_eq!(replica_settings(&primary, 2).data_dir, PathBuf::from("/srv/db/pgdata-replica-2"));
    }
}
