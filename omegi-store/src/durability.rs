//! Group commit: callers that need their writes durable share flushes.
//!
//! One caller at a time flushes; the others wait. A caller needs a flush
//! that *started* after it asked (its writes had returned by then, so the
//! flush covers them): the flush running when it arrives may have started
//! too early, the next one will not. While one flush runs, every caller
//! arriving waits for the next, which then serves all of them at once: with
//! many concurrent writers the number of flushes per second stays about
//! one over the flush's duration, however many writers there are.

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};

#[derive(Debug, Default)]
struct Flushes {
    /// Flushes started so far; the running one, if any, is the last.
    started: u64,
    /// The latest finished flush (its number), 0 before the first.
    finished: u64,
    /// Whether a flush runs now.
    running: bool,
    /// How the latest finished flush ended.
    failure: Option<String>,
    /// Callers waiting for a flush to finish.
    waiting: usize,
}

/// Shares flushes between concurrent callers of [`crate::Store::sync`].
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    flushes: Mutex<Flushes>,
    finished: Condvar,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, Flushes> {
        // The state is a few counters updated together: a panic elsewhere
        // cannot leave it half written.
        self.flushes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns once a flush that started after this call has finished:
    /// runs it, or waits for the caller that does. `flush` makes every
    /// write that returned before it started durable.
    pub(crate) fn sync(&self, flush: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut flushes = self.lock();
        let needed = flushes.started + 1;
        let mut flush = Some(flush);
        loop {
            if flushes.finished >= needed {
                // The latest flush started after this call: its outcome is
                // this caller's.
                return match &flushes.failure {
                    None => Ok(()),
                    Some(failure) => Err(Error::Io(std::io::Error::other(format!(
                        "flushing the store failed: {failure}"
                    )))),
                };
            }
            if flushes.running {
                flushes.waiting += 1;
                flushes = self
                    .finished
                    .wait(flushes)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                flushes.waiting -= 1;
                continue;
            }
            // Nobody flushes: this caller does, for everyone waiting.
            flushes.running = true;
            flushes.started += 1;
            let number = flushes.started;
            drop(flushes);
            let outcome = match flush.take() {
                Some(flush) => flush(),
                None => Ok(()), // unreachable: a caller flushes at most once
            };
            flushes = self.lock();
            flushes.running = false;
            flushes.finished = number;
            flushes.failure = outcome.err().map(|e| e.to_string());
            self.finished.notify_all();
        }
    }

    /// Flushes started so far (tests).
    #[cfg(test)]
    pub(crate) fn flushes_started(&self) -> u64 {
        self.lock().started
    }

    /// Callers waiting for a flush (tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().waiting
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_caller_returns_after_a_flush_that_started_after_it() {
        let group = GroupCommit::default();
        let flushes = AtomicU64::new(0);
        for expected in 1..=3 {
            group
                .sync(|| {
                    flushes.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .unwrap();
            assert_eq!(flushes.load(Ordering::SeqCst), expected);
        }
        assert_eq!(group.flushes_started(), 3);
    }

    #[test]
    fn callers_arriving_during_a_flush_share_the_next_one() {
        let group = Arc::new(GroupCommit::default());
        let flushes = Arc::new(AtomicU64::new(0));
        let others = 7;
        // The first flush lasts until every other caller waits for it; they
        // all need a flush that started after they arrived, so one more
        // flush serves the seven of them.
        let first = {
            let (group, flushes) = (group.clone(), flushes.clone());
            std::thread::spawn(move || {
                group.sync(|| {
                    flushes.fetch_add(1, Ordering::SeqCst);
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while group.waiting() < others {
                        assert!(Instant::now() < deadline, "the callers never arrived");
                        std::thread::yield_now();
                    }
                    Ok(())
                })
            })
        };
        while group.flushes_started() == 0 {
            std::thread::yield_now();
        }
        let waiting: Vec<_> = (0..others)
            .map(|_| {
                let (group, flushes) = (group.clone(), flushes.clone());
                std::thread::spawn(move || {
                    group.sync(|| {
                        flushes.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                })
            })
            .collect();
        first.join().unwrap().unwrap();
        for caller in waiting {
            caller.join().unwrap().unwrap();
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_flush_fails_its_callers_and_the_next_may_succeed() {
        let group = GroupCommit::default();
        let err = group
            .sync(|| Err(Error::Io(std::io::Error::other("disk full"))))
            .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        group.sync(|| Ok(())).unwrap();
    }
}
