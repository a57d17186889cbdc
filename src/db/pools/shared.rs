//! Connections shared by concurrent short reads: multiplexing.
//!
//! A busy dbagent spends much of its CPU — and makes PostgreSQL spend much of its own — on
//! waking up: one socket wake-up per statement on each side when every request has a
//! connection to itself. Autocommit reads need no session of their own (each statement is its
//! own implicit transaction, closed by its own Sync), so several of them can be pipelined on
//! one connection: tokio-postgres sends whatever is queued in one write, and the backend
//! answers them in order without sleeping in between. This is Npgsql's multiplexing; on the
//! benchmark's two cores it lifts point reads at 16 clients from about half of `pgbench`'s rate
//! to about three quarters (see BENCHMARKS.md).
//!
//! The cost is head-of-line blocking: a statement waits for those ahead of it on the same
//! connection. So only statements known to be short, with small answers, share (the executor
//! decides, from each statement's recent runs), a connection whose oldest statement has made no progress
//! for `max_stall` takes no newcomers, and none takes more than twice `depth`; when nothing
//! suits, the read takes a connection of its own as before. A new shared connection opens
//! when every one already shared has `depth` statements queued, up to `max_connections`.
//!
//! Shared connections are ordinary pool connections: taken from the pool when the read traffic
//! needs one, given back once they have sat idle for [`RELEASE_AFTER`] (the health check, every
//! second, looks) — at once when another request is waiting for the pool. At most half the
//! pool is shared, so writes and transactions always find connections. An idle agent holds none, pool statistics count them as active, and
//! `max_size` bounds them with the rest.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bb8::PooledConnection;
use serde::Serialize;

use super::super::conn::{Manager, Upstream};
use super::super::{Conn, Error};

/// A shared connection idle this long goes back to the pool (where idle connections are
/// pre-pinged, recycled and trimmed as usual).
pub const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// The `SET` sent on a connection as it becomes shared, answered along with the first statement.
pub type Setup = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// How a pool shares connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// At most this many connections shared at a time; 0 turns sharing off.
    pub max_connections: usize,
    /// Statements queued on every shared connection before another one opens.
    pub depth: u32,
    /// A connection whose oldest statement has made no progress this long takes no newcomers.
    pub max_stall: Duration,
    /// A connection shared this long takes no newcomers (it goes back to the pool, which
    /// recycles it), so sharing never keeps a connection past `recycle`.
    pub max_lifetime: Duration,
}

/// The shared connections of one pool.
pub struct Sharing {
    state: Mutex<State>,
    /// Requests waiting for a connection of this pool (the pool's `waiting` statistic): while
    /// there are any, a shared connection goes back as soon as its last statement is answered.
    waiting: AtomicU32,
    limits: Limits,
    epoch: Instant,
    statements: AtomicU64,
}

#[derive(Default)]
struct State {
    slots: Vec<Arc<Slot>>,
    /// Connections being taken from the pool to be shared (counted against the limit).
    opening: usize,
}

/// One shared connection.
struct Slot {
    conn: PooledConnection<'static, Manager>,
    in_flight: AtomicU32,
    /// Microseconds since [`Sharing::epoch`] of the last answer (or of becoming busy).
    progress: AtomicU64,
    /// Taken out of service (a timeout, a lost connection): never joined again, and the pool
    /// discards the connection when the last statement on it lets go.
    broken: AtomicBool,
    shared_since: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if *self.broken.get_mut() {
            self.conn.mark_broken();
        } else {
            self.conn.end_use();
        }
    }
}

/// A place on a shared connection, held for one statement.
pub struct Shared<'a> {
    sharing: &'a Sharing,
    slot: Arc<Slot>,
    /// Index of the replica serving it; `None` for the primary.
    pub replica: Option<usize>,
}

impl Shared<'_> {
    pub fn conn(&self) -> &Conn {
        &self.slot.conn
    }

    /// How long the server spent on a statement sent at `sent` and answered just now: the time
    /// since it was sent or since the statement ahead of it was answered, whichever is later —
    /// its wait in the queue does not count. An estimate: an answer ahead of it not yet
    /// recorded makes it longer, a statement that left without an answer (bad parameters, a
    /// dropped request) shorter.
    pub fn service_time(&self, sent: Instant) -> Duration {
        let sent = sent.saturating_duration_since(self.sharing.epoch).as_micros() as u64;
        let since = sent.max(self.slot.progress.load(Ordering::Relaxed));
        Duration::from_micros(self.sharing.now().saturating_sub(since))
    }

    /// Takes the connection out of service: a statement on it timed out on the client side or
    /// left it in an uncertain state. Statements already queued on it finish (or fail) as
    /// they would.
    pub fn discard(&self) {
        self.slot.broken.store(true, Ordering::Relaxed);
    }
}

impl Drop for Shared<'_> {
    fn drop(&mut self) {
        // Under the lock, so that `join` and `release_idle` see depth and progress together.
        let mut state = self.sharing.lock();
        self.slot.progress.store(self.sharing.now(), Ordering::Relaxed);
        let last = self.slot.in_flight.fetch_sub(1, Ordering::Relaxed) == 1;
        if last && self.sharing.waiting.load(Ordering::Relaxed) > 0 {
            state.slots.retain(|slot| !Arc::ptr_eq(slot, &self.slot));
        }
        // If that was the list's reference, the connection goes back when `self.slot` drops,
        // after the lock is released (fields drop after this body).
    }
}

/// Counts a request waiting for a pool connection while it lives.
pub struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The right to add one shared connection (see [`Join::Open`]); given up if dropped unused.
pub struct Opening<'a> {
    sharing: &'a Sharing,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.sharing.lock().opening -= 1;
    }
}

/// What a pool's shared connections are doing.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct SharingStats {
    /// Pool connections currently shared by reads (counted in `active` too).
    pub connections: usize,
    /// Statements on them right now.
    pub in_flight: u32,
    /// Statements that ran on a shared connection since start.
    pub statements: u64,
}

/// What [`Sharing::join`] found.
pub enum Join<'a> {
    Joined(Shared<'a>),
    /// Take a connection from the pool and share it ([`Sharing::open`]).
    Open(Opening<'a>),
    /// Nothing suits: run on a connection of its own.
    Alone,
}

impl Sharing {
    pub fn new(limits: Limits) -> Self {
        Sharing { state: Mutex::default(), waiting: AtomicU32::new(0), limits, epoch: Instant::now(), statements: AtomicU64::new(0) }
    }

    pub fn enabled(&self) -> bool {
        self.limits.max_connections > 0
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins the least busy shared connection that is not stalled and not full; opens a new
    /// one instead when each has `depth` statements queued (or there is none), the limit
    /// allows and `pool_has_room`.
    pub fn join(&self, upstream: &Upstream, pool_has_room: impl FnOnce() -> bool) -> Join<'_> {
        let now = self.now();
        let stall = self.limits.max_stall.as_micros() as u64;
        let full = self.limits.depth.saturating_mul(2).max(1);
        let mut state = self.lock();
        // Out of service, left behind by a failover, or due for recycling: no newcomers. Each
        // goes back to the pool (or is discarded) when its last statement lets go.
        let mut leaving = Vec::new();
        state.slots.retain(|slot| {
            if !slot.conn.is_current(upstream) {
                slot.broken.store(true, Ordering::Relaxed);
            }
            let stays = !slot.broken.load(Ordering::Relaxed) && slot.shared_since.elapsed() <= self.limits.max_lifetime;
            if !stays {
                leaving.push(slot.clone());
            }
            stays
        });
        let best = state
            .slots
            .iter()
            .map(|slot| (slot, slot.in_flight.load(Ordering::Relaxed)))
            .filter(|(slot, depth)| {
                let stalled = *depth > 0 && now.saturating_sub(slot.progress.load(Ordering::Relaxed)) > stall;
                !stalled && *depth < full
            })
            .min_by_key(|(_, depth)| *depth)
            .map(|(slot, depth)| (slot.clone(), depth));
        let open = state.slots.len() + state.opening < self.limits.max_connections
            && best.as_ref().is_none_or(|(_, depth)| *depth >= self.limits.depth)
            && pool_has_room();
        let join = match best {
            _ if open => {
                state.opening += 1;
                Join::Open(Opening { sharing: self })
            }
            Some((slot, depth)) => {
                if depth == 0 {
                    slot.progress.store(now, Ordering::Relaxed);
                }
                slot.in_flight.fetch_add(1, Ordering::Relaxed);
                self.statements.fetch_add(1, Ordering::Relaxed);
                Join::Joined(Shared { sharing: self, slot, replica: None })
            }
            None => Join::Alone,
        };
        drop(state);
        drop(leaving); // back to the pool, outside the lock
        join
    }

    /// Makes `conn` (fresh from the pool) shared, with the caller's statement as its first.
    /// The connection must run autocommit statements read-only: if it is not in that mode yet,
    /// the `SET` is queued on it here, before anyone else can send, and handed to the caller,
    /// who must await its answer along with its statement's.
    pub fn open<'a>(&'a self, opening: Opening<'a>, conn: PooledConnection<'static, Manager>) -> (Shared<'a>, Option<Setup>) {
        let set = conn.switch_read_only(true);
        let slot = Arc::new(Slot {
            conn,
            in_flight: AtomicU32::new(1),
            progress: AtomicU64::new(self.now()),
            broken: AtomicBool::new(false),
            shared_since: Instant::now(),
        });
        let setup = set.map(|set| {
            let owner = slot.clone();
            let mut setup: Setup = Box::pin(async move {
                owner.conn.client().simple_query(set).await.map(drop).map_err(|e| Error::from_driver(e, false))
            });
            // The first poll puts the SET in the connection's queue; its answer comes later.
            let waker = futures_util::task::noop_waker();
            if let std::task::Poll::Ready(result) = setup.as_mut().poll(&mut std::task::Context::from_waker(&waker)) {
                setup = Box::pin(std::future::ready(result));
            }
            setup
        });
        self.lock().slots.push(slot.clone());
        drop(opening); // counted as shared now, no longer as opening
        self.statements.fetch_add(1, Ordering::Relaxed);
        (Shared { sharing: self, slot, replica: None }, setup)
    }

    /// Counts the caller as waiting for a pool connection until the result is dropped.
    pub fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.waiting)
    }

    pub fn waiters(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Gives back shared connections without statements for `idle_for` (the health check
    /// passes [`RELEASE_AFTER`]).
    pub fn release_idle(&self, idle_for: Duration) {
        self.release(idle_for, || true);
    }

    /// Gives back every shared connection without statements, if there is one and `needed()`
    /// (asked only then: a request waiting for the pool pays nothing when sharing holds none).
    pub fn release_unused_if(&self, needed: impl FnOnce() -> bool) {
        self.release(Duration::ZERO, needed);
    }

    fn release(&self, idle_for: Duration, needed: impl FnOnce() -> bool) {
        let now = self.now();
        let idle_for = idle_for.as_micros() as u64;
        let is_idle = |slot: &Arc<Slot>| {
            slot.in_flight.load(Ordering::Relaxed) == 0 && now.saturating_sub(slot.progress.load(Ordering::Relaxed)) >= idle_for
        };
        let mut state = self.lock();
        if !state.slots.iter().any(is_idle) || !needed() {
            return;
        }
        let (leaving, staying) = std::mem::take(&mut state.slots).into_iter().partition(is_idle);
        state.slots = staying;
        drop(state);
        drop::<Vec<_>>(leaving); // back to the pool, outside the lock
    }

    pub fn stats(&self) -> SharingStats {
        let state = self.lock();
        SharingStats {
            connections: state.slots.len(),
            in_flight: state.slots.iter().map(|s| s.in_flight.load(Ordering::Relaxed)).sum(),
            statements: self.statements.load(Ordering::Relaxed),
        }
    }
}
