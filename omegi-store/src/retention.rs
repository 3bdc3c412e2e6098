//! Retention: spans and occurrences older than the configured age are
//! deleted; issues, counters, projects and users are kept.
//!
//! A trace is deleted as a whole, with all its spans, once its start is
//! older than the cutoff; a span segment goes once its latest span start
//! is. Deletion runs in chunks so that ingest is never blocked for long.
//!
//! # Disk use
//!
//! sled 0.34 has no compaction call: it rewrites a log segment once enough
//! of it is dead, so space freed by deletes is reused by later writes rather
//! than returned at once. [`Store::disk_usage`] reports both the engine's
//! own figure and the bytes in the data directory;
//! [`RetentionReport`] carries both before and after a pass. To give space
//! back, [`Store::export`] to a file and [`Store::import`] into a fresh
//! directory.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::issues::occurrence_keys;
use crate::keys::{Key, KeyReader};
use crate::spans::{index_keys, read_summary, IndexBatches};
use crate::{now_ns, Core, Store};

/// Deletes per chunk, each under the write lock.
const CHUNK: usize = 512;

/// Disk use of a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// What the engine reports (`sled::Db::size_on_disk`).
    pub engine_bytes: u64,
    /// The apparent size of all files in the data directory (0 when the
    /// store has no directory).
    pub dir_bytes: u64,
}

/// What a retention pass deleted, and the disk use around it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Data older than this was deleted, ns.
    pub cutoff_ns: u64,
    /// Traces deleted.
    pub traces: u64,
    /// Spans deleted.
    pub spans: u64,
    /// Occurrences deleted.
    pub occurrences: u64,
    /// Disk use before the pass.
    pub before: DiskUsage,
    /// Disk use after the pass (after a flush).
    pub after: DiskUsage,
}

/// The apparent size of the files below `path`. sled deletes blob files
/// in the background: one that vanishes while it is being counted counts
/// as nothing.
fn dir_size(path: &Path) -> std::io::Result<u64> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut total = 0;
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if gone(&e) => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let (path, meta) = match entry.and_then(|e| Ok((e.path(), e.metadata()?))) {
            Ok(found) => found,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        total += if meta.is_dir() {
            dir_size(&path)?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

impl Store {
    /// The store's disk use now.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        disk_usage(self.core())
    }

    /// Deletes spans and occurrences older than the configured retention as
    /// of `now_ns`. Does nothing (but measure) without a configured
    /// retention.
    pub fn run_retention(&self, now_ns: u64) -> Result<RetentionReport> {
        run(self.core(), now_ns)
    }

    /// Deletes traces started before `cutoff_ns` and occurrences before it.
    pub fn purge_before(&self, cutoff_ns: u64) -> Result<RetentionReport> {
        purge(self.core(), cutoff_ns)
    }

    /// The outcome of the last background retention pass, if one ran.
    pub fn last_retention(&self) -> Option<std::result::Result<RetentionReport, String>> {
        self.core()
            .last_retention
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn disk_usage(core: &Core) -> Result<DiskUsage> {
    let engine_bytes = core.t.db.size_on_disk()?;
    let dir_bytes = match &core.path {
        Some(path) if path.exists() => dir_size(path)?,
        _ => 0,
    };
    Ok(DiskUsage {
        engine_bytes,
        dir_bytes,
    })
}

fn run(core: &Core, now: u64) -> Result<RetentionReport> {
    let cutoff = match core.config.retention {
        Some(age) => now.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)),
        None => 0,
    };
    purge(core, cutoff)
}

fn purge(core: &Core, cutoff: u64) -> Result<RetentionReport> {
    let t = &core.t;
    let mut report = RetentionReport {
        cutoff_ns: cutoff,
        before: disk_usage(core)?,
        ..RetentionReport::default()
    };
    let hi = Key::new().u64(cutoff).into_vec();
    // Traces, chunk by chunk.
    loop {
        let _guard = core.lock();
        let mut keys = Vec::with_capacity(CHUNK);
        for item in t.traces_by_time.range(..hi.as_slice()).take(CHUNK) {
            keys.push(item?.0);
        }
        if keys.is_empty() {
            break;
        }
        let mut index = IndexBatches::default();
        let mut summaries = sled::Batch::default();
        let mut by_time = sled::Batch::default();
        for key in keys {
            let mut r = KeyReader::new("traces_by_time", &key);
            let start = r.u64()?;
            let trace = r.trace()?;
            r.end()?;
            by_time.remove(key.clone());
            match read_summary(t, trace)? {
                Some(summary) if summary.start_ns == start => {
                    index.remove(index_keys(&summary)?);
                    summaries.remove(&trace.to_bytes());
                    report.spans += summary.span_count;
                    report.traces += 1;
                }
                // A stale entry (crash between index writes): just drop it.
                _ => {}
            }
        }
        t.traces.apply_batch(summaries)?;
        index.apply(t)?;
        t.traces_by_time.apply_batch(by_time)?;
    }
    // Span segments whose latest span started before the cutoff: every trace
    // with a span in them started before it, and was deleted above.
    loop {
        let _guard = core.lock();
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in t.segments.range(..hi.as_slice()).take(CHUNK) {
            batch.remove(item?.0);
            n += 1;
        }
        if n == 0 {
            break;
        }
        t.segments.apply_batch(batch)?;
    }
    // Occurrences, chunk by chunk.
    loop {
        let _guard = core.lock();
        let mut keys = Vec::with_capacity(CHUNK);
        for item in t.occurrences_by_time.range(..hi.as_slice()).take(CHUNK) {
            keys.push(item?.0);
        }
        if keys.is_empty() {
            break;
        }
        let mut main = sled::Batch::default();
        let mut by_time = sled::Batch::default();
        for key in keys {
            let mut r = KeyReader::new("occurrences_by_time", &key);
            let time = r.u64()?;
            let project = r.str()?;
            let fp = r.str()?;
            let seq = r.u64()?;
            r.end()?;
            let (occurrence, _) = occurrence_keys(project, fp, time, seq)?;
            main.remove(occurrence);
            by_time.remove(key.clone());
            report.occurrences += 1;
        }
        t.occurrences.apply_batch(main)?;
        t.occurrences_by_time.apply_batch(by_time)?;
    }
    t.db.flush()?;
    report.after = disk_usage(core)?;
    Ok(report)
}

/// The background retention thread; stops and is joined on drop.
pub(crate) struct Worker {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    pub(crate) fn start(core: Arc<Core>) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let every = core.config.retention_interval;
        let handle = std::thread::Builder::new()
            .name("omegi-store-retention".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {
                        let outcome = run(&core, now_ns()).map_err(|e| e.to_string());
                        *core
                            .last_retention
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })?;
        Ok(Worker {
            stop: Some(stop),
            handle: Some(handle),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread, which then returns.
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            // A panic in the thread has nowhere better to go than here.
            let _ = handle.join();
        }
    }
}
