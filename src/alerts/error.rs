//! What can go wrong with alerts.

use crate::db;
use crate::error::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The alerts' tables could not be read or written.
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("no alert {0:?}")]
    AlertNotFound(String),
    #[error("no silence {0:?}")]
    SilenceNotFound(String),
    #[error("no alert channel {0:?} (see alerts.channels)")]
    ChannelNotFound(String),
    /// A test notification could not be delivered (after the configured retries).
    #[error("the notification to {channel:?} failed: {reason}")]
    NotificationFailed { channel: String, reason: String },
    /// A request's value is unusable.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A driver error of an alerts session (nothing written in flight that could be lost
    /// silently: each write is one statement, re-done at the next evaluation).
    pub fn driver(err: tokio_postgres::Error) -> Error {
        Error::Db(db::Error::from_driver(err, false))
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Db(err) => err.kind(),
            Error::AlertNotFound(_) | Error::SilenceNotFound(_) | Error::ChannelNotFound(_) => ErrorKind::NotFound,
            Error::NotificationFailed { .. } => ErrorKind::Unavailable,
            Error::Invalid(_) => ErrorKind::BadRequest,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Db(err) => err.code(),
            Error::AlertNotFound(_) => "alert_not_found",
            Error::SilenceNotFound(_) => "silence_not_found",
            Error::ChannelNotFound(_) => "channel_not_found",
            Error::NotificationFailed { .. } => "notification_failed",
            Error::Invalid(_) => "invalid_request",
        }
    }

    fn server(&self) -> Option<&db::PgError> {
        match self {
            Error::Db(err) => err.server(),
            _ => None,
        }
    }
}
