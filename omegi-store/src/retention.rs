//! Retention: spans and occurrences older than the configured age are
//! deleted, with what is remembered of settled traces (kept or sampled
//! out) and the consequences of deleted occurrences; issues, counters
//! (traffic statistics included), projects and users are kept.
//!
//! A trace is deleted as a whole, with all its spans, once its start is
//! older than the cutoff; a span segment goes once its latest span start
//! is. Each project is purged on its own (every key starts with the
//! project), so that one project's data never decides what happens to
//! another's. Deletion runs in chunks, each one transaction, so that ingest
//! is never blocked for long and a crash never leaves half a chunk.
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

use crate::error::Db;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::issues::{occurrence_keys, IssueCounts};
use crate::keys::{prefix_end, Key, KeyReader};
use crate::settle::{read_settled, settled_key};
use crate::spans::{read_summary, trace_key};
use crate::writes::{TreeId, Writes};
#[cfg(doc)]
use crate::Store;
use crate::{now_ns, Core, Embedded};

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
    /// The bytes of the files attached to notes (part of the above).
    #[serde(default)]
    pub attachment_bytes: u64,
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

impl Embedded {
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
    let engine_bytes = core.t.db.size_on_disk().db()?;
    let dir_bytes = match &core.path {
        Some(path) if path.exists() => dir_size(path)?,
        _ => 0,
    };
    let mut attachment_bytes = 0;
    for item in core.t.attachments.iter() {
        let (_, v) = item.db()?;
        attachment_bytes += crate::attachments::row_size(&v)?;
    }
    Ok(DiskUsage {
        engine_bytes,
        dir_bytes,
        attachment_bytes,
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
    // Project by project (every key starts with its project), chunk by
    // chunk, each chunk one transaction under the write lock.
    purge_older(
        core,
        &t.trace_index,
        "traces_by_start",
        cutoff,
        |project, key, rest, w, ()| {
            let mut r = KeyReader::new("traces_by_start", rest);
            let start = r.u64()?;
            let trace = r.trace()?;
            r.end()?;
            w.remove(TreeId::TraceIndex, key);
            if let Some(summary) = read_summary(t, project, trace)? {
                if summary.start_ns == start {
                    w.remove(TreeId::Traces, trace_key(project, trace)?);
                    report.spans += summary.span_count;
                    report.traces += 1;
                }
            }
            Ok(())
        },
    )?;
    // Span segments whose latest span started before the cutoff: every
    // trace with a span in them started before it, and was deleted above.
    purge_older(
        core,
        &t.segments,
        "span_segments",
        cutoff,
        |_, key, _, w, ()| {
            w.remove(TreeId::Segments, key);
            Ok(())
        },
    )?;
    // What is known of settled traces (kept or sampled out), by start.
    purge_older(
        core,
        &t.settled_by_start,
        "settled_by_start",
        cutoff,
        |project, key, rest, w, ()| {
            let mut r = KeyReader::new("settled_by_start", rest);
            let start = r.u64()?;
            let trace = r.trace()?;
            r.end()?;
            w.remove(TreeId::SettledByStart, key);
            if let Some(row) = read_settled(t, project, trace)? {
                if row.start_ns() == start {
                    w.remove(TreeId::Settled, settled_key(project, trace)?);
                }
            }
            Ok(())
        },
    )?;
    // Occurrences, and the counts of their issues.
    purge_older(
        core,
        &t.occurrences_by_time,
        "occurrences_by_time",
        cutoff,
        |project, key, rest, w, counts: &mut IssueCounts| {
            let mut r = KeyReader::new("occurrences_by_time", rest);
            let time = r.u64()?;
            let fp = r.str()?;
            let id = r.u64()?;
            r.end()?;
            let (occurrence, _) = occurrence_keys(project, fp, time, id)?;
            counts.add(fp, time, -1);
            w.remove(TreeId::Consequences, occurrence.clone());
            w.remove(TreeId::Occurrences, occurrence);
            w.remove(TreeId::OccurrencesByTime, key);
            report.occurrences += 1;
            Ok(())
        },
    )?;
    t.db.flush().db()?;
    report.after = disk_usage(core)?;
    Ok(report)
}

/// Deletes, project by project, the entries of a time index (keys: project,
/// then a big-endian time) older than `cutoff`, with what `entry` adds to
/// each deletion: in chunks of [`CHUNK`], each chunk one transaction under
/// the write lock, so that a large purge never holds the lock for long.
/// What the chunk gathered in `S` is staged with it ([`PurgeChunk`]).
fn purge_older<S: PurgeChunk>(
    core: &Core,
    tree: &sled::Tree,
    name: &'static str,
    cutoff: u64,
    mut entry: impl FnMut(&str, sled::IVec, &[u8], &mut Writes<'_>, &mut S) -> Result<()>,
) -> Result<()> {
    for_each_project(tree, name, |project, prefix| {
        let hi = [prefix, &cutoff.to_be_bytes()].concat();
        loop {
            let _guard = core.lock();
            let mut w = Writes::new(core);
            let mut gathered = S::default();
            let mut n = 0;
            for item in tree.range(prefix..hi.as_slice()).take(CHUNK) {
                let (key, _) = item.db()?;
                n += 1;
                // An `IVec` clone shares the key's bytes.
                entry(
                    project,
                    key.clone(),
                    &key[prefix.len()..],
                    &mut w,
                    &mut gathered,
                )?;
            }
            if n == 0 {
                return Ok(());
            }
            gathered.stage(&mut w, project)?;
            w.commit()?;
        }
    })
}

/// What a chunk of a purge gathers from its entries and stages with them.
trait PurgeChunk: Default {
    fn stage(self, w: &mut Writes<'_>, project: &str) -> Result<()>;
}

impl PurgeChunk for () {
    fn stage(self, _: &mut Writes<'_>, _: &str) -> Result<()> {
        Ok(())
    }
}

impl PurgeChunk for IssueCounts {
    fn stage(self, w: &mut Writes<'_>, project: &str) -> Result<()> {
        IssueCounts::stage(self, w, project)
    }
}

/// Calls `f` with each project that has keys in `tree` (whose keys start
/// with the project) and the project's key prefix, in key order. `f` may
/// delete keys of its project.
fn for_each_project(
    tree: &sled::Tree,
    name: &'static str,
    mut f: impl FnMut(&str, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut from: Vec<u8> = Vec::new();
    loop {
        let Some(item) = tree.range(from.as_slice()..).next() else {
            return Ok(());
        };
        let (key, _) = item.db()?;
        let project = KeyReader::new(name, &key).str()?.to_owned();
        let prefix = Key::new().str("project", &project)?.into_vec();
        f(&project, &prefix)?;
        match prefix_end(&prefix) {
            Some(end) => from = end,
            None => return Ok(()),
        }
    }
}

/// The background retention thread; stops and is joined on drop.
pub(crate) struct Worker {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

/// Where a retention pass's outcome is kept for [`Store::last_retention`].
pub(crate) type LastRetention =
    std::sync::Mutex<Option<std::result::Result<RetentionReport, String>>>;

impl Worker {
    /// The embedded store's retention thread.
    pub(crate) fn embedded(core: Arc<Core>) -> Result<Self> {
        let every = core.config.retention_interval;
        Self::start(every, move || {
            let outcome = run(&core, now_ns()).map_err(|e| e.to_string());
            *core
                .last_retention
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        })
    }

    /// A thread that runs `pass` every `every` until dropped.
    pub(crate) fn start(
        every: std::time::Duration,
        mut pass: impl FnMut() + Send + 'static,
    ) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("omegi-store-retention".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => pass(),
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
