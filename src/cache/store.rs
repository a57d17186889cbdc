//! Where entries live: in process (moka) or in Redis, and the generation counters that make
//! invalidation exact.
//!
//! Invalidation never deletes entries one by one. Each watched table has a generation counter,
//! and there is one global epoch. An entry records the epoch and its tables' generations as
//! they were *before* its query ran; it is served only while all of them are unchanged. A
//! write bumps its tables' generations, so every entry that read them is dead at once, and a
//! write that lands while a query runs is never hidden by the entry that query stores.
//!
//! With Redis, the counters live in Redis too, so agents sharing it see each other's bumps
//! immediately. A generation key outlives every entry that recorded it (its expiry is renewed
//! to twice the entry TTL on each bump), so a counter can never fall back to a value an entry
//! remembers. While Redis cannot be reached, the cache is bypassed; before it is used again the
//! epoch is bumped, because invalidations may have been missed in between.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;

use super::stats::CacheStats;

/// A table's identity in the cache: its `pg_class` oid.
pub type Tag = u32;

/// The counters an entry was computed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub epoch: u64,
    pub gens: Vec<(Tag, u64)>,
}

/// After a Redis failure, how long to answer "miss" without trying Redis at all.
const REDIS_BACKOFF: Duration = Duration::from_secs(1);

pub enum Store {
    Local(Local),
    Redis(Box<RedisStore>),
}

impl Store {
    pub fn local(max_entries: u64, max_bytes: u64, ttl: Duration, stats: Arc<CacheStats>) -> Store {
        // moka bounds one measure; weighing each entry at least max_bytes / max_entries bounds
        // the count as well as the bytes.
        let floor = (max_bytes / max_entries.max(1)).max(1) as u32;
        let evictions = stats.clone();
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |_k: &[u8; 32], v: &Arc<Vec<u8>>| (v.len() as u32).max(floor))
            .time_to_live(ttl)
            .eviction_listener(move |_k, _v, cause| {
                if cause.was_evicted() {
                    evictions.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Store::Local(Local { entries, gens: Mutex::new(HashMap::new()), epoch: AtomicU64::new(0) })
    }

    pub fn redis(url: &str, prefix: String, ttl: Duration, stats: Arc<CacheStats>) -> Result<Store, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(300)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Store::Redis(Box::new(RedisStore {
            conn,
            prefix,
            ttl,
            stats,
            dirty: AtomicBool::new(false),
            retry_after: Mutex::new(None),
        })))
    }

    /// The counters of `tags` now (taken before the query runs). `None`: do not cache.
    pub async fn snapshot(&self, tags: &[Tag]) -> Option<Snapshot> {
        match self {
            Store::Local(local) => Some(local.snapshot(tags)),
            Store::Redis(redis) => redis.snapshot(tags).await,
        }
    }

    /// The entry under `key`, if its counters are unchanged.
    pub async fn get(&self, key: &[u8; 32], tags: &[Tag]) -> Option<Entry> {
        match self {
            Store::Local(local) => local.get(key),
            Store::Redis(redis) => redis.get(key, tags).await,
        }
    }

    pub async fn put(&self, key: [u8; 32], entry: Vec<u8>) {
        match self {
            Store::Local(local) => local.entries.insert(key, Arc::new(entry)),
            Store::Redis(redis) => redis.put(key, entry).await,
        }
    }

    /// Bumps the generation of every tag in `tags`, or the epoch when `tags` is `None`.
    pub async fn bump(&self, tags: Option<&[Tag]>) {
        match self {
            Store::Local(local) => local.bump(tags),
            Store::Redis(redis) => redis.bump(tags).await,
        }
    }

    /// Entries and bytes held in process (Redis reports its own).
    pub fn size(&self) -> (u64, u64) {
        match self {
            Store::Local(local) => {
                local.entries.run_pending_tasks();
                (local.entries.entry_count(), local.entries.weighted_size())
            }
            Store::Redis(_) => (0, 0),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Local(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }
}

/// An entry as stored: header (epoch, LSN, tags with generations) then the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub snapshot: Snapshot,
    pub lsn: u64,
    pub payload: Vec<u8>,
}

impl Entry {
    pub fn encode(snapshot: &Snapshot, lsn: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + snapshot.gens.len() * 12 + payload.len());
        out.extend_from_slice(&snapshot.epoch.to_le_bytes());
        out.extend_from_slice(&lsn.to_le_bytes());
        out.extend_from_slice(&(snapshot.gens.len() as u32).to_le_bytes());
        for (tag, generation) in &snapshot.gens {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&generation.to_le_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let u64_at = |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
        let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()));
        let epoch = u64_at(0)?;
        let lsn = u64_at(8)?;
        let count = u32_at(16)? as usize;
        let mut gens = Vec::with_capacity(count.min(1024));
        let mut at = 20;
        for _ in 0..count {
            gens.push((u32_at(at)?, u64_at(at + 4)?));
            at += 12;
        }
        Some(Entry { snapshot: Snapshot { epoch, gens }, lsn, payload: bytes.get(at..)?.to_vec() })
    }
}

/// The in-process store.
pub struct Local {
    entries: moka::sync::Cache<[u8; 32], Arc<Vec<u8>>>,
    gens: Mutex<HashMap<Tag, u64>>,
    epoch: AtomicU64,
}

impl Local {
    fn snapshot(&self, tags: &[Tag]) -> Snapshot {
        let gens = self.gens.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = self.epoch.load(Ordering::SeqCst);
        Snapshot { epoch, gens: tags.iter().map(|t| (*t, gens.get(t).copied().unwrap_or(0))).collect() }
    }

    fn get(&self, key: &[u8; 32]) -> Option<Entry> {
        let bytes = self.entries.get(key)?;
        let entry = Entry::decode(&bytes)?;
        let tags: Vec<Tag> = entry.snapshot.gens.iter().map(|(t, _)| *t).collect();
        (self.snapshot(&tags) == entry.snapshot).then_some(entry)
    }

    fn bump(&self, tags: Option<&[Tag]>) {
        let mut gens = self.gens.lock().unwrap_or_else(|p| p.into_inner());
        match tags {
            Some(tags) => tags.iter().for_each(|t| *gens.entry(*t).or_insert(0) += 1),
            None => {
                self.epoch.fetch_add(1, Ordering::SeqCst);
                self.entries.invalidate_all();
            }
        }
    }
}

/// The Redis store (shared between agents).
pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
    /// `dbagent:<database id>:`, so agents of different databases never mix.
    prefix: String,
    ttl: Duration,
    stats: Arc<CacheStats>,
    /// An invalidation may have been missed: bump the epoch before the next use.
    dirty: AtomicBool,
    retry_after: Mutex<Option<Instant>>,
}

impl RedisStore {
    fn entry_key(&self, key: &[u8; 32]) -> String {
        let mut hex = String::with_capacity(64);
        for b in key {
            hex.push_str(&format!("{b:02x}"));
        }
        format!("{}e:{hex}", self.prefix)
    }

    fn gen_key(&self, tag: Tag) -> String {
        format!("{}g:{tag}", self.prefix)
    }

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    /// A connection, unless Redis failed less than [`REDIS_BACKOFF`] ago; first repairs a
    /// missed invalidation by bumping the epoch.
    async fn usable(&self) -> Option<redis::aio::ConnectionManager> {
        if let Some(at) = *self.retry_after.lock().unwrap_or_else(|p| p.into_inner())
            && Instant::now() < at {
                return None;
            }
        let mut conn = self.conn.clone();
        if self.dirty.load(Ordering::SeqCst) {
            let bumped: redis::RedisResult<u64> = conn.incr(self.epoch_key(), 1).await;
            match bumped {
                Ok(_) => {
                    self.dirty.store(false, Ordering::SeqCst);
                    *self.retry_after.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    tracing::warn!("Redis is reachable again; cached entries from before the outage were dropped");
                }
                Err(err) => {
                    self.failed(&err);
                    return None;
                }
            }
        }
        Some(conn)
    }

    fn failed(&self, err: &redis::RedisError) {
        self.stats.redis_errors.fetch_add(1, Ordering::Relaxed);
        if !self.dirty.swap(true, Ordering::SeqCst) {
            tracing::warn!(error = %err, "Redis cannot be reached; serving from the database until it is back");
        }
        *self.retry_after.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + REDIS_BACKOFF);
    }

    async fn snapshot(&self, tags: &[Tag]) -> Option<Snapshot> {
        let mut conn = self.usable().await?;
        let mut keys = vec![self.epoch_key()];
        keys.extend(tags.iter().map(|t| self.gen_key(*t)));
        let values: redis::RedisResult<Vec<Option<u64>>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await;
        match values {
            Ok(values) => Some(Snapshot {
                epoch: values.first().copied().flatten().unwrap_or(0),
                gens: tags.iter().zip(values.iter().skip(1)).map(|(t, g)| (*t, g.unwrap_or(0))).collect(),
            }),
            Err(err) => {
                self.failed(&err);
                None
            }
        }
    }

    async fn get(&self, key: &[u8; 32], tags: &[Tag]) -> Option<Entry> {
        let mut conn = self.usable().await?;
        let mut keys = vec![self.entry_key(key), self.epoch_key()];
        keys.extend(tags.iter().map(|t| self.gen_key(*t)));
        let values: redis::RedisResult<Vec<Option<Vec<u8>>>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await;
        let values = match values {
            Ok(values) => values,
            Err(err) => {
                self.failed(&err);
                return None;
            }
        };
        let entry = Entry::decode(values.first()?.as_deref()?)?;
        let number = |v: Option<&Option<Vec<u8>>>| -> u64 {
            v.and_then(|v| v.as_deref()).and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse().ok()).unwrap_or(0)
        };
        let now = Snapshot {
            epoch: number(values.get(1)),
            gens: tags.iter().enumerate().map(|(i, t)| (*t, number(values.get(i + 2)))).collect(),
        };
        (now == entry.snapshot).then_some(entry)
    }

    async fn put(&self, key: [u8; 32], entry: Vec<u8>) {
        let Some(mut conn) = self.usable().await else { return };
        let stored: redis::RedisResult<()> = conn.set_ex(self.entry_key(&key), entry, self.ttl.as_secs().max(1)).await;
        if let Err(err) = stored {
            self.failed(&err);
        }
    }

    async fn bump(&self, tags: Option<&[Tag]>) {
        let Some(mut conn) = self.usable().await else {
            // Redis is out: the bump is lost, so the epoch is bumped once it is back.
            self.dirty.store(true, Ordering::SeqCst);
            return;
        };
        let mut pipe = redis::pipe();
        match tags {
            Some(tags) => {
                let keep = self.ttl.as_secs().max(1) * 2;
                for tag in tags {
                    pipe.incr(self.gen_key(*tag), 1).ignore().expire(self.gen_key(*tag), keep as i64).ignore();
                }
            }
            None => {
                pipe.incr(self.epoch_key(), 1).ignore();
            }
        }
        let done: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        if let Err(err) = done {
            self.failed(&err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let snapshot = Snapshot { epoch: 7, gens: vec![(16384, 3), (16390, 0)] };
        let bytes = Entry::encode(&snapshot, 0x16_B374_D848, b"[{\"a\":1}]");
        let entry = Entry::decode(&bytes).unwrap();
        assert_eq!(entry, Entry { snapshot, lsn: 0x16_B374_D848, payload: b"[{\"a\":1}]".to_vec() });
        assert_eq!(Entry::decode(&bytes[..10]), None);
    }

    #[test]
    fn a_bump_kills_the_entries_that_read_the_table_and_no_others() {
        let store = Store::local(100, 1 << 20, Duration::from_secs(60), Arc::default());
        let Store::Local(local) = &store else { unreachable!() };
        let a = local.snapshot(&[1]);
        let b = local.snapshot(&[2]);
        local.entries.insert([1; 32], Arc::new(Entry::encode(&a, 0, b"a")));
        local.entries.insert([2; 32], Arc::new(Entry::encode(&b, 0, b"b")));
        local.bump(Some(&[1]));
        assert!(local.get(&[1; 32]).is_none());
        assert_eq!(local.get(&[2; 32]).unwrap().payload, b"b");
        local.bump(None);
        assert!(local.get(&[2; 32]).is_none());
    }

    #[test]
    fn a_write_during_the_query_is_not_hidden_by_its_entry() {
        let store = Store::local(100, 1 << 20, Duration::from_secs(60), Arc::default());
        let Store::Local(local) = &store else { unreachable!() };
        let before = local.snapshot(&[1]); // taken before the query runs
        local.bump(Some(&[1])); // a write commits while it runs
        local.entries.insert([1; 32], Arc::new(Entry::encode(&before, 0, b"old")));
        assert!(local.get(&[1; 32]).is_none());
    }
}
