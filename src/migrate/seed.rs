//! Seed data: `seeds/<env>/*.sql`, run in name order in one transaction, so a failing script
//! leaves nothing behind.

use std::path::{Path, PathBuf};

use super::{Error, PgError};

/// Runs every `.sql` file of `dir/env` in one transaction; returns the files, in order.
pub async fn run(db: &crate::db::PgConfig, dir: &Path, env: &str) -> Result<Vec<PathBuf>, Error> {
    if env.is_empty() || env.contains(['/', '\\']) || env.starts_with('.') {
        return Err(Error::InvalidName { name: env.to_owned(), reason: "an environment name is one plain directory name" });
    }
    let dir = dir.join(env);
    let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io { action: "read", path: dir.clone(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql") && p.is_file())
        .collect();
    files.sort();
    let scripts = files
        .iter()
        .map(|f| std::fs::read_to_string(f).map_err(|source| Error::Io { action: "read", path: f.clone(), source }))
        .collect::<Result<Vec<String>, Error>>()?;
    let mut client = super::session::connect(db).await?;
    let tx = client.transaction().await.map_err(|source| Error::Unavailable { source })?;
    for (file, sql) in files.iter().zip(&scripts) {
        if let Err(source) = tx.batch_execute(sql).await {
            let server = source.as_db_error().map(|db| Box::new(PgError::from_db(db)));
            return Err(Error::SeedFailed { path: file.clone(), server, source });
        }
    }
    tx.commit().await.map_err(|source| Error::Unavailable { source })?;
    Ok(files)
}
