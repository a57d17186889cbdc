//! Why a configuration could not be loaded.

use std::path::PathBuf;

/// A configuration problem; every variant names the file or the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read configuration file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {} is not valid YAML", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}
