//! Failpoints: named places where a test can make a risky multi-step operation fail as it
//! would in production (a COMMIT whose answer is lost, say), to prove nothing is lost. Compiled
//! only with the `failpoints` feature (the test command enables it); a release build has none.
//!
//! A process-wide registry is the one exception to "no globals": failpoints are armed by tests
//! from the outside, the way the `fail` crate does it.

use std::collections::HashMap;
use std::sync::Mutex;

/// Armed failpoints: name → (text the operation must mention, shots left). The text keeps a
/// failpoint armed by one test from firing in another test running at the same time.
static ARMED: Mutex<Option<HashMap<String, (String, u32)>>> = Mutex::new(None);

/// Arms `name` to fire `times` times, only for operations whose SQL contains `needle`.
pub fn arm(name: &str, needle: &str, times: u32) {
    ARMED.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(HashMap::new).insert(name.to_owned(), (needle.to_owned(), times));
}

/// Whether `name` fires now for an operation running `sql` (consuming one shot).
pub fn fire(name: &str, sql: &str) -> bool {
    let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
    let Some((needle, left)) = armed.as_mut().and_then(|m| m.get_mut(name)) else { return false };
    if *left == 0 || !sql.contains(needle.as_str()) {
        return false;
    }
    *left -= 1;
    tracing::warn!(failpoint = name, "failpoint fired");
    true
}
