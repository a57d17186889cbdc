//! Read-your-writes for callers that do not want to carry `commit_lsn` around themselves: the
//! last commit position of each caller (named by the `Dbagent-Session` header), so a later read
//! with `consistency: read_your_writes` is served only by a replica that has replayed it.

use std::time::Duration;

use crate::db::Lsn;

/// Callers remembered at most; the least recently used are forgotten first (a forgotten
/// caller's reads then go by `min_lsn` alone).
const MAX_CALLERS: u64 = 100_000;
/// A caller idle this long is forgotten.
const CALLER_IDLE: Duration = Duration::from_secs(3600);

/// The newest commit position per caller.
pub struct CallerCommits {
    last_commit: moka::sync::Cache<String, Lsn>,
}

impl Default for CallerCommits {
    fn default() -> Self {
        CallerCommits {
            last_commit: moka::sync::Cache::builder().max_capacity(MAX_CALLERS).time_to_idle(CALLER_IDLE).build(),
        }
    }
}

impl CallerCommits {
    /// Remembers that `caller` committed at `lsn` (never moving its floor backwards, even
    /// when two of its writes answer out of order).
    pub fn record(&self, caller: &str, lsn: Lsn) {
        self.last_commit
            .entry_by_ref(caller)
            .and_upsert_with(|old| old.map_or(lsn, |e| (*e.value()).max(lsn)));
    }

    /// The newest commit position of `caller`, if it wrote anything recently.
    pub fn floor(&self, caller: &str) -> Option<Lsn> {
        self.last_commit.get(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_only_moves_forward() {
        let commits = CallerCommits::default();
        assert_eq!(commits.floor("a"), None);
        commits.record("a", Lsn(10));
        commits.record("a", Lsn(5));
        assert_eq!(commits.floor("a"), Some(Lsn(10)));
        commits.record("a", Lsn(12));
        assert_eq!(commits.floor("a"), Some(Lsn(12)));
        assert_eq!(commits.floor("b"), None);
    }
}
