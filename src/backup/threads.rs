//! Running the synchronous pipeline from async code: blocking threads, progress ticks while
//! they work, and a sink that outlives a reader who left.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Error;

/// Runs `work` on every item on up to `jobs` blocking threads, calling `progress` with the
/// bytes counted so far (by `work`, through the counter it is given) about five times a second.
/// The first error stops the remaining items and is returned; results come back in item order.
pub(crate) async fn for_each_file<T, R, F>(
    items: Vec<T>,
    jobs: u32,
    progress: &(dyn Fn(u64) + Send + Sync),
    work: F,
) -> Result<Vec<R>, Error>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T, &AtomicU64) -> Result<R, Error> + Send + Sync + 'static,
{
    let count = items.len();
    let queue = Arc::new(Mutex::new(items.into_iter().enumerate().collect::<VecDeque<_>>()));
    let results = Arc::new(Mutex::new((0..count).map(|_| None).collect::<Vec<Option<R>>>()));
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let work = Arc::new(work);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..jobs.max(1).min(count.max(1) as u32) {
        let (queue, results, counter, stop, work) =
            (queue.clone(), results.clone(), counter.clone(), stop.clone(), work.clone());
        workers.spawn_blocking(move || -> Result<(), Error> {
            while !stop.load(Ordering::Relaxed) {
                let Some((index, item)) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                    break;
                };
                match work(item, &counter) {
                    Ok(result) => results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(result),
                    Err(err) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(err);
                    }
                }
            }
            Ok(())
        });
    }
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(200));
    let mut first_error = None;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(err))) => {
                    first_error.get_or_insert(err);
                }
                Some(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Some(Err(_cancelled)) => {}
            },
            _ = ticker.tick() => progress(counter.load(Ordering::Relaxed)),
        }
    }
    progress(counter.load(Ordering::Relaxed));
    if let Some(err) = first_error {
        return Err(err);
    }
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(results.into_iter().map(|r| r.expect("every item ran")).collect())
}

/// Waits for a blocking task, calling `progress` with `counter` about five times a second;
/// a panic in the task is resumed here.
pub(crate) async fn watch<T>(
    task: tokio::task::JoinHandle<Result<T, Error>>,
    counter: &AtomicU64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<T, Error> {
    tokio::pin!(task);
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(200));
    let joined = loop {
        tokio::select! {
            joined = &mut task => break joined,
            _ = ticker.tick() => progress(counter.load(Ordering::Relaxed)),
        }
    };
    progress(counter.load(Ordering::Relaxed));
    match joined {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => Err(Error::io("finish", Path::new("a cancelled backup task"))(io::ErrorKind::Interrupted.into())),
    }
}

/// A sink that keeps going when its reader leaves: the first write error is remembered, the
/// file closed, and everything after it discarded, so the caller can still read (and check)
/// the rest of its input.
pub(crate) struct Tolerant {
    inner: Option<File>,
    pub failed: Option<io::Error>,
}

impl Tolerant {
    pub(crate) fn new(file: File) -> Tolerant {
        Tolerant { inner: Some(file), failed: None }
    }
}

impl Write for Tolerant {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(file) = &mut self.inner
            && let Err(err) = file.write_all(buf)
        {
            self.failed = Some(err);
            self.inner = None;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs a short CPU-bound `work` (a key derivation) on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => Err(Error::io("finish", Path::new("a cancelled backup task"))(io::ErrorKind::Interrupted.into())),
    }
}
