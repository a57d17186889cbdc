//! Read-your-writes for callers that do not want to carry `commit_lsn` around themselves: the
//! last commit position of each caller session, so a later read with
//! `consistency: read_your_writes` is served only by a replica that has replayed it.

use std::time::Duration;

use crate::db::Lsn;

/// Sessions remembered at most; the least recently used are forgotten first (a forgotten
/// session's reads then go by `min_lsn` alone).
const MAX_SESSIONS: u64 = 100_000;
/// A session idle this long is forgotten.
const SESSION_IDLE: Duration = Duration::from_secs(3600);

/// The newest commit position per caller session.
pub struct Sessions {
    last_commit: moka::sync::Cache<String, Lsn>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            last_commit: moka::sync::Cache::builder().max_capacity(MAX_SESSIONS).time_to_idle(SESSION_IDLE).build(),
        }
    }
}

impl Sessions {
    /// Remembers that `session` committed at `lsn` (never moving its floor backwards, even
    /// when two of its writes answer out of order).
    pub fn record(&self, session: &str, lsn: Lsn) {
        self.last_commit
            .entry_by_ref(session)
            .and_upsert_with(|old| old.map_or(lsn, |e| (*e.value()).max(lsn)));
    }

    /// The newest commit position of `session`, if it wrote anything recently.
    pub fn floor(&self, session: &str) -> Option<Lsn> {
        self.last_commit.get(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_only_moves_forward() {
        let sessions = Sessions::default();
        assert_eq!(sessions.floor("a"), None);
        sessions.record("a", Lsn(10));
        sessions.record("a", Lsn(5));
        assert_eq!(sessions.floor("a"), Some(Lsn(10)));
        sessions.record("a", Lsn(12));
        assert_eq!(sessions.floor("a"), Some(Lsn(12)));
        assert_eq!(sessions.floor("b"), None);
    }
}
