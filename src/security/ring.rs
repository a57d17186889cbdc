//! Every key in memory, as the request path needs it: found by id, compared by digest in
//! constant time, with its rate bucket and requests in flight kept across reloads; kept current
//! by [`spawn_refresh`] (NOTIFY, a miss, every 30 s).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio_postgres::Client;

use super::keys::{BOOTSTRAP_ID, CHANNEL, COLUMNS, PREFIX, digest, info, parse_net, readable};
use super::{Error, Scope};
use crate::config;
use crate::db::{self, Pools, Purpose};

/// Reload at least this often, whatever the notifications say.
const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// One key as the request path needs it.
#[derive(Debug)]
pub struct KeyEntry {
    pub id: String,
    pub name: String,
    /// The widest of its scopes.
    pub scope: Scope,
    /// The key has the `unmask` scope: its results are never masked.
    pub unmask: bool,
    digest: [u8; 32],
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
    pub allow_from: Vec<IpNet>,
    pub state: Arc<KeyState>,
}

impl KeyEntry {
    #[cfg(test)]
    pub fn for_tests(id: &str, scope: Scope) -> KeyEntry {
        let limits = Limits { rate: 10.0, burst: 10, max_concurrent: 10 };
        KeyEntry {
            id: id.into(),
            name: id.into(),
            scope,
            unmask: false,
            digest: [0; 32],
            expires_at: None,
            revoked: false,
            allow_from: Vec::new(),
            state: Arc::new(KeyState::new(limits)),
        }
    }

    fn usable(&self) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| at > Utc::now())
    }
}

/// What a key carries across reloads: its bucket, its requests in flight, when it was used.
#[derive(Debug)]
pub struct KeyState {
    limits: Limits,
    limiter: governor::DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
    /// Unix seconds; 0: not since the last flush.
    last_used: AtomicI64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Limits {
    rate: f64,
    burst: u32,
    max_concurrent: u32,
}

impl KeyState {
    fn new(limits: Limits) -> KeyState {
        let period = Duration::from_secs_f64(1.0 / limits.rate);
        let burst = NonZeroU32::new(limits.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = governor::Quota::with_period(period).unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MAX)).allow_burst(burst);
        KeyState {
            limits,
            limiter: governor::RateLimiter::direct(quota),
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent as usize)),
            last_used: AtomicI64::new(0),
        }
    }

    /// Takes one request from the bucket and a place among the requests in flight; the place
    /// is given back when the permit drops.
    pub fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        if let Err(not_until) = self.limiter.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            return Err(Error::RateLimited { retry_after: wait });
        }
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| Error::RateLimited { retry_after: Duration::from_secs(1) })?;
        self.last_used.store(Utc::now().timestamp(), Ordering::Relaxed);
        Ok(permit)
    }
}

/// Every key, in memory, and the bootstrap key.
pub struct KeyRing {
    keys: RwLock<Arc<HashMap<String, Arc<KeyEntry>>>>,
    bootstrap: Option<Arc<KeyEntry>>,
    /// Per-key state kept across reloads.
    states: Mutex<HashMap<String, Arc<KeyState>>>,
    defaults: Limits,
    /// An unknown key triggers a reload at most this often (a key just made elsewhere is found
    /// even if its notification was lost, without letting random keys hammer the database).
    last_miss_reload: Mutex<Option<Instant>>,
    reload_now: tokio::sync::Notify,
    /// Keys are required: the roles are checked even before any key exists.
    required: bool,
    /// The roles read and write keys run as were checked (see `roles::ensure`).
    roles_ready: std::sync::atomic::AtomicBool,
}

impl KeyRing {
    pub fn new(settings: &config::Security, required: bool) -> KeyRing {
        let defaults = Limits {
            rate: settings.default_rate,
            burst: settings.default_burst.unwrap_or(((settings.default_rate * 2.0).ceil() as u32).max(1)),
            max_concurrent: settings.max_concurrent.unwrap_or(u32::MAX >> 3),
        };
        let bootstrap = settings.admin_key.as_ref().map(|key| {
            Arc::new(KeyEntry {
                id: BOOTSTRAP_ID.into(),
                name: "bootstrap (DBAGENT_ADMIN_KEY)".into(),
                scope: Scope::Admin,
                // Decided by `masking.mask_unauthenticated` (`Caller::masked`).
                unmask: false,
                digest: digest(key.expose()),
                expires_at: None,
                revoked: false,
                allow_from: Vec::new(),
                state: Arc::new(KeyState::new(defaults)),
            })
        });
        KeyRing {
            keys: RwLock::new(Arc::default()),
            bootstrap,
            states: Mutex::default(),
            defaults,
            last_miss_reload: Mutex::new(None),
            reload_now: tokio::sync::Notify::new(),
            required,
            roles_ready: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn roles_ready(&self) -> bool {
        self.roles_ready.load(Ordering::Relaxed)
    }

    pub fn set_roles_ready(&self) {
        self.roles_ready.store(true, Ordering::Relaxed);
    }

    /// Default per-key requests in flight (for keys that name none).
    pub fn set_default_concurrency(&mut self, max: u32) {
        self.defaults.max_concurrent = max.max(1);
    }

    fn snapshot(&self) -> Arc<HashMap<String, Arc<KeyEntry>>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Any key in the table (active or not)?
    pub fn has_stored_keys(&self) -> bool {
        !self.snapshot().is_empty()
    }

    /// Keys that work now.
    pub fn active(&self) -> usize {
        self.snapshot().values().filter(|k| k.usable()).count()
    }

    /// The usable key `presented` is, if any. Constant time in the secret: the id picks the
    /// row, the digests are compared with `subtle`.
    pub fn find(&self, presented: &str) -> Result<Arc<KeyEntry>, super::Refusal> {
        use super::Refusal;
        let wanted = digest(presented);
        let candidate = match presented.strip_prefix(PREFIX).and_then(|rest| rest.split_once('_')) {
            Some((id, _)) => {
                let found = self.snapshot().get(id).cloned();
                if found.is_none() {
                    self.miss();
                }
                found
            }
            None => self.bootstrap.clone(),
        }
        .ok_or(Refusal::Invalid)?;
        let same: bool = candidate.digest.ct_eq(&wanted).into();
        match () {
            () if !same => Err(Refusal::Invalid),
            () if candidate.revoked => Err(Refusal::Revoked),
            () if !candidate.usable() => Err(Refusal::Expired),
            () => Ok(candidate),
        }
    }

    fn miss(&self) {
        let mut last = self.last_miss_reload.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            self.reload_now.notify_one();
        }
    }

    /// Reads every key again.
    pub async fn reload(&self, client: &Client) -> Result<(), Error> {
        let rows = client.query(&format!("SELECT {COLUMNS} FROM dbagent.api_keys"), &[]).await?;
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = HashMap::with_capacity(rows.len());
        for row in &rows {
            let Some((info, stored)) = readable(info(row)) else { continue };
            let Ok(digest) = <[u8; 32]>::try_from(stored.as_slice()) else {
                tracing::warn!(key = %info.id, "an API key's stored digest is not 32 bytes; the key is ignored");
                continue;
            };
            let limits = Limits {
                rate: info.rate_per_second.unwrap_or(self.defaults.rate),
                burst: info.burst.unwrap_or_else(|| match info.rate_per_second {
                    Some(rate) => ((rate * 2.0).ceil() as u32).max(1),
                    None => self.defaults.burst,
                }),
                max_concurrent: info.max_concurrent.unwrap_or(self.defaults.max_concurrent),
            };
            let state = match states.get(&info.id) {
                Some(state) if state.limits == limits => state.clone(),
                _ => Arc::new(KeyState::new(limits)),
            };
            states.insert(info.id.clone(), state.clone());
            let allow_from = info.allow_from.iter().filter_map(|t| parse_net(t).ok()).collect();
            let entry = KeyEntry {
                scope: info.scopes.iter().copied().filter(|s| *s != Scope::Unmask).max().unwrap_or(Scope::Read),
                unmask: info.scopes.contains(&Scope::Unmask),
                id: info.id.clone(),
                name: info.name,
                digest,
                expires_at: info.expires_at,
                revoked: info.revoked_at.is_some(),
                allow_from,
                state,
            };
            keys.insert(info.id, Arc::new(entry));
        }
        states.retain(|id, _| keys.contains_key(id));
        drop(states);
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// Writes the keys' last use (kept in memory per request) to the table.
    async fn flush_last_used(&self, client: &Client) -> Result<(), Error> {
        let (mut ids, mut times) = (Vec::new(), Vec::new());
        for entry in self.snapshot().values() {
            let at = entry.state.last_used.swap(0, Ordering::Relaxed);
            if at != 0 {
                ids.push(entry.id.clone());
                times.push(at as f64);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        client
            .execute(
                "UPDATE dbagent.api_keys k SET last_used_at = greatest(k.last_used_at, to_timestamp(u.at))
                   FROM unnest($1::text[], $2::float8[]) AS u(id, at) WHERE k.id = u.id",
                &[&ids, &times],
            )
            .await?;
        Ok(())
    }
}

/// Keeps `ring` current: reloads on `NOTIFY dbagent_keys`, after the listener (re)connects,
/// when an unknown key was presented (at most once a second), and every 30 s; writes the keys'
/// last use every 10 s.
pub fn spawn_refresh(pools: Weak<Pools>, ring: Arc<KeyRing>, db: crate::db::PgConfig, settings: config::Security) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Reconnects go to the current primary (a failover or switchover may have moved it).
        let current = pools.clone();
        let mut notices = db::listen::listen(pools, CHANNEL, Purpose::Security);
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reload = Instant::now();
        let mut client: Option<Client> = None;
        loop {
            let reload = tokio::select! {
                notice = notices.recv() => match notice {
                    // Nothing to reload from while the connection is lost.
                    Some(notice) => notice != db::listen::Notice::Lost,
                    None => return,
                },
                () = ring.reload_now.notified() => true,
                _ = tick.tick() => last_reload.elapsed() >= RELOAD_EVERY,
            };
            if client.as_ref().is_none_or(Client::is_closed) {
                let config = current.upgrade().map_or_else(|| db.clone(), |p| p.admin_config());
                client = db::admin::connect(&config, Purpose::Security).await.ok();
            }
            let Some(c) = &client else { continue };
            if reload || (!ring.roles_ready() && (ring.required || ring.has_stored_keys())) {
                let loaded = async {
                    super::keys::ensure_table(c).await?;
                    ring.reload(c).await?;
                    if !ring.roles_ready() && (ring.required || ring.has_stored_keys()) {
                        super::roles::ensure(c, &settings).await?;
                        ring.set_roles_ready();
                    }
                    Ok::<(), Error>(())
                };
                match loaded.await {
                    Ok(()) => last_reload = Instant::now(),
                    Err(err) => tracing::warn!(error = %db::error_chain(&err), "cannot reload the API keys"),
                }
            }
            if let Err(err) = ring.flush_last_used(c).await {
                tracing::debug!(error = %db::error_chain(&err), "cannot record the API keys' last use");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refuses_past_the_burst() {
        let state = KeyState::new(Limits { rate: 1.0, burst: 2, max_concurrent: 1 });
        let first = state.admit().unwrap();
        // One in flight at most.
        assert!(matches!(state.admit(), Err(Error::RateLimited { .. })));
        drop(first);
        match state.admit() {
            Err(Error::RateLimited { retry_after }) => assert!(retry_after <= Duration::from_secs(1)),
            other => panic!("the third request within a second passed: {:?}", other.map(|_| ())),
        }
    }
}
