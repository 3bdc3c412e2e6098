//! The write-ahead log: what a collector acknowledged, on disk before it
//! is settled and stored.
//!
//! A collector that waits for traces to be complete before it stores them
//! ([`crate::SettledTrace`]) answers a request only once the request's
//! records are in this log, and keeps them there until the traces they
//! belong to have settled and the store has made them durable. After a
//! crash, [`Wal::open`] hands back every entry still in the log, so that
//! the traces that had not settled are rebuilt and settle normally; those
//! that had settled settle again and change nothing (the store counts a
//! span, an occurrence and a statistic once).
//!
//! # On disk
//!
//! The log is a directory of *segment* files, `wal-<seq>.log` (`seq` in
//! 16 hex digits), each starting with the 12-byte header `OMEGIWAL` and a
//! format version (u32, little endian), then records: the payload's length
//! (u32 LE), its CRC-32 (IEEE, u32 LE), and the payload, an entry encoded
//! with postcard. A new segment starts once the current one holds
//! [`WalConfig::segment_bytes`].
//!
//! A record that ends past the end of its file (a write torn by a crash),
//! or whose checksum does not match, ends its segment: the file is
//! truncated there and the loss is counted ([`Replay`], [`WalStats`]),
//! never fatal. A segment whose header is not Omegi's is set aside as
//! `wal-<seq>.log.corrupt`.
//!
//! # Durability and deletion
//!
//! [`Wal::append`] writes a record; [`Wal::sync`] makes every record
//! appended before it durable (`fsync`), sharing the flush with concurrent
//! callers (group commit). Each entry *pins* its segment once per
//! [`TraceChunk`]; the collector unpins a chunk once its trace is settled
//! ([`Wal::unpin`]). [`Wal::release`] deletes the segments that nothing
//! pins any more (never the one being written), after calling the store's
//! sync: a segment goes only once what was settled from it is durable in
//! the store.
//!
//! ```
//! use omegi_core::{Resource, SpanId, TraceId};
//! use omegi_store::wal::{TraceChunk, Wal, WalConfig};
//!
//! # fn main() -> omegi_store::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let resource = Resource::new("payment");
//! let chunk = TraceChunk::encode(Some(TraceId(7)), &[], &[])?;
//! {
//!     let (wal, replay) = Wal::open(dir.path(), WalConfig::default(), |_, _| Ok(()))?;
//!     assert_eq!(replay.entries, 0);
//!     wal.append("shop", &[resource], &[chunk])?;
//!     wal.sync()?;
//! } // a crash here: nothing was settled
//! let mut seen = Vec::new();
//! let (wal, replay) = Wal::open(dir.path(), WalConfig::default(), |segment, entry| {
//!     seen.push((segment, entry.project.clone(), entry.chunks.len()));
//!     Ok(())
//! })?;
//! assert_eq!(replay.entries, 1);
//! assert_eq!(seen[0].1, "shop");
//! // Once settled and stored durably, the segment can go.
//! wal.unpin(seen[0].0, 1);
//! assert_eq!(wal.release(|| Ok(()))?, 1);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use omegi_core::{ErrorRecord, Resource, SpanRecord, TraceId};
use serde::{Deserialize, Serialize};

use crate::codec::{borrowed, decode, SError, SResource, SSpan};
use crate::durability::GroupCommit;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"OMEGIWAL";
const VERSION: u32 = 1;
const HEADER: usize = 12;
/// A record's length and checksum.
const FRAME: usize = 8;
/// The largest record accepted on replay: a length above it is damage.
const MAX_RECORD: usize = 1 << 30;

/// How the log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalConfig {
    /// A segment holding this many bytes is closed and a new one started
    /// (default 32 MiB).
    pub segment_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_bytes: 32 << 20,
        }
    }
}

impl WalConfig {
    /// Sets the segment size.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(HEADER as u64 + 1);
        self
    }
}

/// The records of one trace (or of no trace: errors outside a span) from
/// one request, encoded: what the collector keeps in memory until the
/// trace settles, and what the log holds.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceChunk {
    trace_id: Option<TraceId>,
    spans: u32,
    errors: u32,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for TraceChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceChunk")
            .field("trace_id", &self.trace_id)
            .field("spans", &self.spans)
            .field("errors", &self.errors)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// The records of a chunk, decoded; each with the index of its resource
/// in the entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkRecords {
    /// The spans.
    pub spans: Vec<(u32, SpanRecord)>,
    /// The errors.
    pub errors: Vec<(u32, ErrorRecord)>,
}

#[derive(Serialize)]
struct ChunkBodyRef<'a> {
    spans: Vec<(u32, borrowed::SSpan<'a>)>,
    errors: Vec<(u32, SError)>,
}

#[derive(Deserialize)]
struct ChunkBody {
    spans: Vec<(u32, SSpan)>,
    errors: Vec<(u32, SError)>,
}

impl TraceChunk {
    /// Encodes records of one trace (`None`: errors outside any trace),
    /// each with the index of its resource in the request.
    pub fn encode(
        trace_id: Option<TraceId>,
        spans: &[(u32, &SpanRecord)],
        errors: &[(u32, &ErrorRecord)],
    ) -> Result<TraceChunk> {
        let body = ChunkBodyRef {
            spans: spans
                .iter()
                .map(|(r, s)| (*r, borrowed::SSpan::new(s)))
                .collect(),
            errors: errors
                .iter()
                .map(|(r, e)| (*r, SError::from_record(e)))
                .collect(),
        };
        let bytes = postcard::to_allocvec(&body).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(TraceChunk {
            trace_id,
            spans: u32::try_from(spans.len()).unwrap_or(u32::MAX),
            errors: u32::try_from(errors.len()).unwrap_or(u32::MAX),
            bytes,
        })
    }

    /// Decodes the records.
    pub fn decode(&self) -> Result<ChunkRecords> {
        let body: ChunkBody = decode("wal", &self.bytes)?;
        Ok(ChunkRecords {
            spans: body
                .spans
                .into_iter()
                .map(|(r, s)| Ok((r, s.into_record("wal")?)))
                .collect::<Result<_>>()?,
            errors: body
                .errors
                .into_iter()
                .map(|(r, e)| Ok((r, e.into_record("wal")?)))
                .collect::<Result<_>>()?,
        })
    }

    /// The trace, or `None` for errors outside any trace.
    pub fn trace_id(&self) -> Option<TraceId> {
        self.trace_id
    }

    /// How many spans it holds.
    pub fn spans(&self) -> usize {
        self.spans as usize
    }

    /// How many errors it holds.
    pub fn errors(&self) -> usize {
        self.errors as usize
    }

    /// Its size encoded, in bytes.
    pub fn encoded_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// One acknowledged request as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct WalEntry {
    /// The project it was sent to.
    pub project: String,
    /// The processes that sent its records.
    pub resources: Vec<Resource>,
    /// Its records, by trace.
    pub chunks: Vec<TraceChunk>,
}

#[derive(Serialize)]
struct ChunkRowRef<'a> {
    trace_id: Option<u128>,
    spans: u32,
    errors: u32,
    #[serde(with = "bytes_ref")]
    bytes: &'a [u8],
}

#[derive(Serialize)]
struct EntryRowRef<'a> {
    project: &'a str,
    resources: Vec<SResource>,
    chunks: Vec<ChunkRowRef<'a>>,
}

#[derive(Deserialize)]
struct ChunkRow {
    trace_id: Option<u128>,
    spans: u32,
    errors: u32,
    bytes: Vec<u8>,
}

#[derive(Deserialize)]
struct EntryRow {
    project: String,
    resources: Vec<SResource>,
    chunks: Vec<ChunkRow>,
}

/// A byte slice written as a sequence of bytes, as `Vec<u8>` reads it.
mod bytes_ref {
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(bytes.iter())
    }
}

/// What opening the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replay {
    /// Segments read.
    pub segments: u64,
    /// Entries handed back.
    pub entries: u64,
    /// Segments whose end was torn or damaged, and truncated.
    pub truncated_segments: u64,
    /// Bytes cut off by those truncations.
    pub truncated_bytes: u64,
    /// Segments set aside because their header is not the log's.
    pub foreign_segments: u64,
    /// What was truncated or set aside, one line each, for the caller's
    /// log.
    pub damage: Vec<String>,
}

/// Counters of the log since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalStats {
    /// Entries appended.
    pub appended: u64,
    /// Bytes appended.
    pub appended_bytes: u64,
    /// Flushes to disk.
    pub syncs: u64,
    /// Segments on disk now.
    pub segments: u64,
    /// Bytes on disk now.
    pub disk_bytes: u64,
    /// Segments deleted.
    pub deleted_segments: u64,
    /// Torn or damaged segment ends truncated (on opening).
    pub truncated_segments: u64,
    /// Bytes cut off by those truncations.
    pub truncated_bytes: u64,
    /// Entries handed back on opening.
    pub replayed: u64,
}

struct Writer {
    seq: u64,
    file: Arc<File>,
    len: u64,
}

#[derive(Default)]
struct Counters {
    appended: AtomicU64,
    appended_bytes: AtomicU64,
    syncs: AtomicU64,
    deleted: AtomicU64,
}

/// The write-ahead log: see the module docs.
pub struct Wal {
    dir: PathBuf,
    config: WalConfig,
    writer: Mutex<Writer>,
    /// Pins per segment on disk, the one being written included; its size.
    segments: Mutex<BTreeMap<u64, (u64, u64)>>,
    group: GroupCommit,
    counters: Counters,
    replay: Replay,
    /// The directory's lock file, locked while the log is open: two
    /// processes never write one log.
    _lock: File,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_owned(),
        source,
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("wal-{seq:016x}.log"))
}

fn segment_seq(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Makes a directory entry (a new or deleted file) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates a segment with its header, durable with its directory entry.
fn create_segment(dir: &Path, seq: u64) -> Result<Writer> {
    let path = segment_path(dir, seq);
    let mut options = OpenOptions::new();
    options.create_new(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(io(&path))?;
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    file.write_all(&header).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    sync_dir(dir)?;
    Ok(Writer {
        seq,
        file: Arc::new(file),
        len: HEADER as u64,
    })
}

/// The records of one segment's bytes (after the header): each entry with
/// the offset where the next record starts; and where the last good
/// record ends when the rest is torn or damaged.
fn parse_records(bytes: &[u8]) -> (Vec<EntryRow>, Option<usize>) {
    let mut entries = Vec::new();
    let mut at = HEADER;
    while at < bytes.len() {
        let Some(frame) = bytes.get(at..at + FRAME) else {
            return (entries, Some(at));
        };
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len > MAX_RECORD {
            return (entries, Some(at));
        }
        let Some(payload) = bytes.get(at + FRAME..at + FRAME + len) else {
            return (entries, Some(at));
        };
        if crc32fast::hash(payload) != crc {
            return (entries, Some(at));
        }
        match decode::<EntryRow>("wal", payload) {
            Ok(entry) => entries.push(entry),
            // A checksum that matches over bytes that do not decode: not
            // this build's log. Stop here as for damage.
            Err(_) => return (entries, Some(at)),
        }
        at += FRAME + len;
    }
    (entries, None)
}

fn into_entry(row: EntryRow) -> WalEntry {
    WalEntry {
        project: row.project,
        resources: row
            .resources
            .into_iter()
            .map(SResource::into_record)
            .collect(),
        chunks: row
            .chunks
            .into_iter()
            .map(|c| TraceChunk {
                trace_id: c.trace_id.map(TraceId),
                spans: c.spans,
                errors: c.errors,
                bytes: c.bytes,
            })
            .collect(),
    }
}

impl Wal {
    /// Opens the log in `dir` (created if missing, readable by its owner
    /// only), handing every entry still in it to `on_entry` with its
    /// segment, oldest first; each pins its segment once per chunk, as
    /// [`Wal::append`] does. A torn or damaged end of a segment is
    /// truncated and counted, never fatal. New entries go into a new
    /// segment.
    pub fn open(
        dir: &Path,
        config: WalConfig,
        mut on_entry: impl FnMut(u64, WalEntry) -> Result<()>,
    ) -> Result<(Wal, Replay)> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::LogInUse {
                    path: dir.to_owned(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            if let Some(seq) = name.to_str().and_then(segment_seq) {
                found.push((seq, entry.path()));
            }
        }
        found.sort();
        let mut replay = Replay::default();
        let mut segments: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        let mut next = 1;
        for (seq, path) in found {
            next = next.max(seq + 1);
            replay.segments += 1;
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io(&path))?;
            let header_ok = bytes.len() >= HEADER
                && &bytes[..8] == MAGIC
                && bytes[8..12] == VERSION.to_le_bytes();
            if !header_ok {
                if bytes.len() < HEADER && MAGIC.starts_with(&bytes[..bytes.len().min(8)]) {
                    // Torn while it was created: nothing was ever in it.
                    std::fs::remove_file(&path).map_err(io(&path))?;
                    if !bytes.is_empty() {
                        replay.truncated_segments += 1;
                        replay.truncated_bytes += bytes.len() as u64;
                    }
                } else {
                    let aside = path.with_extension("log.corrupt");
                    std::fs::rename(&path, &aside).map_err(io(&path))?;
                    replay.foreign_segments += 1;
                    replay.damage.push(format!(
                        "segment {} is not Omegi's: set aside as {}",
                        path.display(),
                        aside.display()
                    ));
                }
                continue;
            }
            let (rows, cut) = parse_records(&bytes);
            let mut len = bytes.len() as u64;
            if let Some(at) = cut {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                file.set_len(at as u64).map_err(io(&path))?;
                file.sync_all().map_err(io(&path))?;
                replay.truncated_segments += 1;
                replay.truncated_bytes += (bytes.len() - at) as u64;
                len = at as u64;
                replay.damage.push(format!(
                    "segment {}: {} bytes torn or damaged at offset {at}, truncated",
                    path.display(),
                    bytes.len() - at
                ));
            }
            drop(bytes);
            let mut pins = 0u64;
            for row in rows {
                let entry = into_entry(row);
                pins += entry.chunks.len() as u64;
                replay.entries += 1;
                on_entry(seq, entry)?;
            }
            segments.insert(seq, (pins, len));
        }
        let writer = create_segment(dir, next)?;
        segments.insert(next, (0, writer.len));
        let wal = Wal {
            dir: dir.to_owned(),
            config,
            writer: Mutex::new(writer),
            segments: Mutex::new(segments),
            group: GroupCommit::default(),
            counters: Counters::default(),
            replay: replay.clone(),
            _lock: lock,
        };
        Ok((wal, replay))
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_segments(&self) -> MutexGuard<'_, BTreeMap<u64, (u64, u64)>> {
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a request's records and pins the segment they went into
    /// once per chunk; returns the segment. Durable after the next
    /// [`Wal::sync`].
    pub fn append(
        &self,
        project: &str,
        resources: &[Resource],
        chunks: &[TraceChunk],
    ) -> Result<u64> {
        let row = EntryRowRef {
            project,
            resources: resources.iter().map(SResource::from_record).collect(),
            chunks: chunks
                .iter()
                .map(|c| ChunkRowRef {
                    trace_id: c.trace_id.map(|t| t.0),
                    spans: c.spans,
                    errors: c.errors,
                    bytes: &c.bytes,
                })
                .collect(),
        };
        let mut record = vec![0u8; FRAME];
        record = postcard::to_extend(&row, record).map_err(|e| Error::Encode(e.to_string()))?;
        let payload_len = record.len() - FRAME;
        if payload_len > MAX_RECORD {
            return Err(Error::Encode(format!(
                "a write-ahead log record of {payload_len} bytes is larger than {MAX_RECORD}"
            )));
        }
        let crc = crc32fast::hash(&record[FRAME..]);
        record[..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        record[4..FRAME].copy_from_slice(&crc.to_le_bytes());

        let mut writer = self.lock_writer();
        if writer.len >= self.config.segment_bytes {
            // Close the full segment durably, so that a caller whose record
            // is in it and who syncs the next one is covered too.
            let path = segment_path(&self.dir, writer.seq);
            writer.file.sync_data().map_err(io(&path))?;
            let next = create_segment(&self.dir, writer.seq + 1)?;
            self.lock_segments().insert(next.seq, (0, next.len));
            *writer = next;
        }
        let path = segment_path(&self.dir, writer.seq);
        (&*writer.file).write_all(&record).map_err(|e| {
            // A partial write is cut off on the next opening.
            io(&path)(e)
        })?;
        writer.len += record.len() as u64;
        let seq = writer.seq;
        {
            let mut segments = self.lock_segments();
            let entry = segments.entry(seq).or_insert((0, 0));
            entry.0 += chunks.len() as u64;
            entry.1 = writer.len;
        }
        drop(writer);
        self.counters.appended.fetch_add(1, Ordering::Relaxed);
        self.counters
            .appended_bytes
            .fetch_add(record.len() as u64, Ordering::Relaxed);
        Ok(seq)
    }

    /// Waits until every record appended before this call is on disk,
    /// sharing the flush with concurrent callers.
    pub fn sync(&self) -> Result<()> {
        self.group.sync(|| {
            let (file, seq) = {
                let writer = self.lock_writer();
                (Arc::clone(&writer.file), writer.seq)
            };
            self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            file.sync_data().map_err(io(&segment_path(&self.dir, seq)))
        })
    }

    /// Releases `n` pins of `segment`: chunks of it whose traces settled.
    pub fn unpin(&self, segment: u64, n: u64) {
        if let Some(entry) = self.lock_segments().get_mut(&segment) {
            entry.0 = entry.0.saturating_sub(n);
        }
    }

    /// Deletes the segments nothing pins (but the one being written):
    /// first calls `sync_store`, which must make what was settled from them
    /// durable; returns how many were deleted.
    pub fn release(&self, sync_store: impl FnOnce() -> Result<()>) -> Result<usize> {
        let active = self.lock_writer().seq;
        let free: Vec<u64> = self
            .lock_segments()
            .iter()
            .filter(|(seq, (pins, _))| **seq != active && *pins == 0)
            .map(|(seq, _)| *seq)
            .collect();
        if free.is_empty() {
            return Ok(0);
        }
        sync_store()?;
        for seq in &free {
            let path = segment_path(&self.dir, *seq);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            self.lock_segments().remove(seq);
            self.counters.deleted.fetch_add(1, Ordering::Relaxed);
        }
        sync_dir(&self.dir)?;
        Ok(free.len())
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters since the log was opened, and what is on disk now.
    pub fn stats(&self) -> WalStats {
        let segments = self.lock_segments();
        WalStats {
            appended: self.counters.appended.load(Ordering::Relaxed),
            appended_bytes: self.counters.appended_bytes.load(Ordering::Relaxed),
            syncs: self.counters.syncs.load(Ordering::Relaxed),
            segments: segments.len() as u64,
            disk_bytes: segments.values().map(|(_, len)| len).sum(),
            deleted_segments: self.counters.deleted.load(Ordering::Relaxed),
            truncated_segments: self.replay.truncated_segments,
            truncated_bytes: self.replay.truncated_bytes,
            replayed: self.replay.entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use omegi_core::{ErrorKind, SpanId, SpanKind, Status};

    use super::*;

    fn span(trace: u128, id: u64) -> SpanRecord {
        SpanRecord::new(TraceId(trace), SpanId(id), "charge", 10, 20)
            .with_service("payment")
            .with_target("t")
            .with_kind(SpanKind::Server)
            .with_attribute("n", 1.5)
            .with_status(Status::Error)
            .with_status_message("declined")
    }

    fn error() -> ErrorRecord {
        ErrorRecord::new("boom", 5)
            .with_service("payment")
            .with_kind(ErrorKind::Remote)
            .with_causes(vec!["below".into()])
            .with_error_type("E")
            .with_target("t")
    }

    fn resource() -> Resource {
        Resource::new("payment").with_attribute("host", "a")
    }

    #[test]
    fn a_log_is_open_in_one_place_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = reopen(dir.path());
        let second = Wal::open(dir.path(), WalConfig::default(), |_, _| Ok(()));
        assert!(
            matches!(&second, Err(Error::LogInUse { path }) if path == dir.path()),
            "{second:?}"
        );
        drop(wal);
        reopen(dir.path());
    }

    /// Opens `dir` and collects what it replays.
    fn reopen(dir: &Path) -> (Wal, Replay, Vec<(u64, WalEntry)>) {
        let mut seen = Vec::new();
        let (wal, replay) = Wal::open(dir, WalConfig::default(), |seg, e| {
            seen.push((seg, e));
            Ok(())
        })
        .unwrap();
        (wal, replay, seen)
    }

    fn write_entries(dir: &Path, n: u128) -> Vec<TraceChunk> {
        let (wal, _, _) = reopen(dir);
        let mut chunks = Vec::new();
        for t in 1..=n {
            let s = span(t, t as u64);
            let e = error();
            let chunk = TraceChunk::encode(Some(TraceId(t)), &[(0, &s)], &[(0, &e)]).unwrap();
            wal.append("shop", &[resource()], std::slice::from_ref(&chunk))
                .unwrap();
            chunks.push(chunk);
        }
        wal.sync().unwrap();
        chunks
    }

    fn only_segment(dir: &Path) -> PathBuf {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "log")
                    && std::fs::metadata(p).unwrap().len() > HEADER as u64
            })
            .collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        logs.remove(0)
    }

    #[test]
    fn entries_come_back_whole_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = write_entries(dir.path(), 3);
        let (_, replay, seen) = reopen(dir.path());
        assert_eq!(replay.entries, 3);
        assert_eq!(replay.truncated_segments, 0);
        let back: Vec<TraceChunk> = seen.into_iter().flat_map(|(_, e)| e.chunks).collect();
        assert_eq!(back, chunks);
        let records = back[1].decode().unwrap();
        assert_eq!(records.spans, vec![(0, span(2, 2))]);
        assert_eq!(records.errors, vec![(0, error())]);
    }

    #[test]
    fn a_torn_tail_is_truncated_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 3);
        let path = only_segment(dir.path());
        let full = std::fs::metadata(&path).unwrap().len();
        // Cut the last record in the middle, as a crash during the write.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(full - 5).unwrap();
        drop(file);
        let (wal, replay, seen) = reopen(dir.path());
        assert_eq!(seen.len(), 2);
        assert_eq!(replay.truncated_segments, 1);
        assert!(replay.truncated_bytes > 0);
        assert_eq!(wal.stats().truncated_segments, 1);
        // The cut is gone: the next opening finds the two whole records.
        drop(wal);
        let (_, replay, seen) = reopen(dir.path());
        assert_eq!((seen.len(), replay.truncated_segments), (2, 0));
    }

    #[test]
    fn a_bad_checksum_ends_the_segment_there() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 3);
        let path = only_segment(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        // Flip a byte in the payload of the second record.
        let first = u32::from_le_bytes(bytes[HEADER..HEADER + 4].try_into().unwrap()) as usize;
        let second = HEADER + FRAME + first;
        bytes[second + FRAME + 3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, replay, seen) = reopen(dir.path());
        assert_eq!(seen.len(), 1);
        assert_eq!(replay.truncated_segments, 1);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            second,
            "truncated at the damaged record"
        );
    }

    #[test]
    fn a_foreign_file_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(segment_path(dir.path(), 1), b"not a log at all, really").unwrap();
        let (_, replay, seen) = reopen(dir.path());
        assert!(seen.is_empty());
        assert_eq!(replay.foreign_segments, 1);
        assert!(dir
            .path()
            .join(format!("wal-{:016x}.log.corrupt", 1))
            .exists());
    }

    #[test]
    fn segments_roll_and_go_once_unpinned_and_the_store_synced() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(
            dir.path(),
            WalConfig::default().segment_bytes(64),
            |_, _| Ok(()),
        )
        .unwrap();
        let s = span(1, 1);
        let chunk = TraceChunk::encode(Some(TraceId(1)), &[(0, &s)], &[]).unwrap();
        let first = wal
            .append("shop", &[resource()], std::slice::from_ref(&chunk))
            .unwrap();
        let second = wal.append("shop", &[resource()], &[chunk]).unwrap();
        assert_ne!(first, second, "the first segment was full");
        // Pinned: nothing goes, and the store is not even asked.
        assert_eq!(wal.release(|| panic!("no sync needed")).unwrap(), 0);
        wal.unpin(first, 1);
        let mut synced = false;
        assert_eq!(
            wal.release(|| {
                synced = true;
                Ok(())
            })
            .unwrap(),
            1
        );
        assert!(synced);
        assert!(!segment_path(dir.path(), first).exists());
        // The segment being written stays even when nothing pins it.
        wal.unpin(second, 1);
        drop(wal);
        let (_, replay, seen) = reopen(dir.path());
        assert_eq!(seen.len(), 1, "only the second entry is left");
        assert_eq!(replay.entries, 1);
    }
}
