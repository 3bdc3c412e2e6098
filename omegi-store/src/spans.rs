//! Spans and traces: spans in segments, one summary per trace, and the
//! trace index by project and start time (its values name the services).
//!
//! # Layout
//!
//! Every key starts with the project: a trace id sent to two projects is
//! two traces, with their own spans, summaries and index entries.
//!
//! An ingest writes its spans as one *segment* (more when it is large): the
//! spans of each trace are encoded as one chunk, and the chunks are laid end
//! to end in one value of the `span_segments` tree. The trace's summary row
//! lists where its chunks are. sled's cost per write is high and its cost per
//! byte is low, so a batch of 1,000 spans costs one large write plus a few
//! small ones per trace, rather than one write per trace for the spans.
//!
//! A segment's key is its project and the latest span start in it, so that
//! retention deletes whole segments by a range scan: a segment whose latest
//! start is before the cutoff holds only spans of traces that started before
//! it. A chunk of a trace deleted earlier stays until its segment ages out,
//! but no summary points at it any more; a span dated in the future keeps
//! its segment until then, as it keeps its trace.
//!
//! # Spans sent again
//!
//! A span is known by its trace and span id. A copy of a stored span that
//! is the same, byte for byte, is not written again and changes nothing
//! (an OTLP client retrying a request); a different copy replaces the
//! stored one (the latest copy wins) without counting as a new span.

use crate::error::Db;
use std::cmp::Reverse;
use std::collections::BTreeMap;

use omegi_core::{SpanId, SpanRecord, Status, TraceId};
use serde::{Deserialize, Serialize};
use sled::IVec;

use crate::codec::{borrowed, decode, encode, SSpan};
use crate::error::{Error, Result};
use crate::handles::At;
use crate::keys::{Key, KeyReader};
use crate::staging::Staging;
use crate::writes::{Lookup, TreeId, Writes};
use crate::Traces;

/// Spans of one trace written by one ingest, as a chunk of a segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkRow {
    pub(crate) spans: Vec<SSpan>,
}

/// Serializes as [`ChunkRow`].
#[derive(Serialize)]
struct ChunkRowRef<'a> {
    spans: Vec<borrowed::SSpan<'a>>,
}

/// The spans of one trace encoded as one chunk (a [`ChunkRow`]).
pub(crate) fn encode_chunk(spans: &[&SpanRecord]) -> Result<Vec<u8>> {
    let chunk = ChunkRowRef {
        spans: spans.iter().map(|s| borrowed::SSpan::new(s)).collect(),
    };
    postcard::to_allocvec(&chunk).map_err(|e| Error::Encode(e.to_string()))
}

/// A stored summary with what incremental updates need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SummaryRow {
    pub(crate) summary: TraceSummary,
    /// Start of the root, to pick the earliest root when several arrive.
    root_start_ns: u64,
    /// Sorted ids of the spans stored, to recognise a span sent again.
    span_ids: Vec<u64>,
    /// Where the trace's chunks are, oldest first (the embedded store; a
    /// database finds them by the trace).
    pub(crate) chunks: Vec<ChunkRef>,
}

/// Where one chunk is: a segment of the trace's project and a byte range
/// in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkRef {
    /// The segment's key after the project: its latest span start and a
    /// sequence number.
    segment_time: u64,
    segment_seq: u64,
    offset: u32,
    len: u32,
}

/// Segments larger than this are closed and a new one started.
const SEGMENT_BYTES: usize = 1 << 20;

fn segment_key(project: &str, time: u64, seq: u64) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u64(time)
        .u64(seq)
        .into_vec())
}

/// The key of a trace's summary.
pub(crate) fn trace_key(project: &str, trace: TraceId) -> Result<Vec<u8>> {
    Ok(Key::new().str("project", project)?.trace(trace).into_vec())
}

/// The key of a trace's entry in the trace index.
pub(crate) fn index_key(project: &str, start_ns: u64, trace: TraceId) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u64(start_ns)
        .trace(trace)
        .into_vec())
}

/// The root span of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRoot {
    /// The root span's id.
    pub span_id: SpanId,
    /// The service that recorded it.
    pub service: String,
    /// Its name.
    pub name: String,
}

/// What the trace list shows of one trace; a function of the trace's spans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// The project whose spans these are: the same trace id in another
    /// project is another trace.
    pub project: String,
    /// Earliest span start, ns since the Unix epoch.
    pub start_ns: u64,
    /// Latest span end, ns since the Unix epoch.
    pub end_ns: u64,
    /// The earliest span without a parent, once it has arrived.
    pub root: Option<TraceRoot>,
    /// Services that recorded spans of this trace, sorted.
    pub services: Vec<String>,
    /// Number of distinct spans.
    pub span_count: u64,
    /// Spans with status `Error`.
    pub error_spans: u64,
}

impl TraceSummary {
    /// Duration of the trace in ns.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

impl SummaryRow {
    fn empty(project: &str, trace_id: TraceId) -> Self {
        SummaryRow {
            summary: TraceSummary {
                trace_id,
                project: project.to_owned(),
                start_ns: 0,
                end_ns: 0,
                root: None,
                services: Vec::new(),
                span_count: 0,
                error_spans: 0,
            },
            root_start_ns: 0,
            span_ids: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// Whether a span with this id is stored.
    fn has(&self, span: SpanId) -> bool {
        self.span_ids.binary_search(&span.0).is_ok()
    }

    /// Adds a span not seen before.
    fn add(&mut self, span: &SpanRecord) {
        let s = &mut self.summary;
        if s.span_count == 0 {
            s.start_ns = span.start_ns;
            s.end_ns = span.end_ns;
        } else {
            s.start_ns = s.start_ns.min(span.start_ns);
            s.end_ns = s.end_ns.max(span.end_ns);
        }
        s.span_count += 1;
        if span.status == Status::Error {
            s.error_spans += 1;
        }
        insert_sorted(&mut s.services, &span.service);
        if span.parent_span_id.is_none() {
            let better = match &s.root {
                None => true,
                Some(root) => (span.start_ns, span.span_id) < (self.root_start_ns, root.span_id),
            };
            if better {
                s.root = Some(TraceRoot {
                    span_id: span.span_id,
                    service: span.service.clone(),
                    name: span.name.to_string(),
                });
                self.root_start_ns = span.start_ns;
            }
        }
        if let Err(at) = self.span_ids.binary_search(&span.span_id.0) {
            self.span_ids.insert(at, span.span_id.0);
        }
    }
}

pub(crate) fn insert_sorted(list: &mut Vec<String>, item: &str) {
    if let Err(at) = list.binary_search_by(|x| x.as_str().cmp(item)) {
        list.insert(at, item.to_owned());
    }
}

/// Which traces to list, newest first. Traces are listed only from the
/// projects named: a query that names none lists nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceQuery {
    /// Only traces of these projects.
    pub projects: Vec<String>,
    /// Only traces with spans from this service.
    pub service: Option<String>,
    /// Traces that started at or after this time (ns).
    pub from_ns: u64,
    /// Traces that started before this time (ns); `None`: no bound.
    pub to_ns: Option<u64>,
    /// At most this many.
    pub limit: Option<usize>,
}

impl TraceQuery {
    /// Traces of one project.
    pub fn project(project: impl Into<String>) -> Self {
        TraceQuery::projects([project])
    }

    /// Traces of any of these projects.
    pub fn projects(projects: impl IntoIterator<Item = impl Into<String>>) -> Self {
        TraceQuery {
            projects: projects.into_iter().map(Into::into).collect(),
            ..TraceQuery::default()
        }
    }

    /// Narrows to one service.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// Narrows to traces started in `[from_ns, to_ns)`.
    pub fn between(mut self, from_ns: u64, to_ns: u64) -> Self {
        self.from_ns = from_ns;
        self.to_ns = Some(to_ns);
        self
    }

    /// Keeps at most `limit` traces.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

pub(crate) fn read_summary_row(
    r: &impl Lookup,
    project: &str,
    trace: TraceId,
) -> Result<Option<SummaryRow>> {
    match r.lookup(TreeId::Traces, &trace_key(project, trace)?)? {
        Some(bytes) => Ok(Some(decode("traces", &bytes)?)),
        None => Ok(None),
    }
}

pub(crate) fn read_summary(
    r: &impl Lookup,
    project: &str,
    trace: TraceId,
) -> Result<Option<TraceSummary>> {
    Ok(read_summary_row(r, project, trace)?.map(|row| row.summary))
}

/// The spans of a trace by span id; where a span was sent more than once,
/// the latest copy.
pub(crate) fn merged_spans(
    r: &impl Lookup,
    project: &str,
    trace: TraceId,
) -> Result<BTreeMap<u64, SSpan>> {
    match read_summary_row(r, project, trace)? {
        Some(row) => chunks_spans(r, project, &row.chunks),
        None => Ok(BTreeMap::new()),
    }
}

/// The spans in `chunks`, merged by span id (later chunks win).
pub(crate) fn chunks_spans(
    r: &impl Lookup,
    project: &str,
    chunks: &[ChunkRef],
) -> Result<BTreeMap<u64, SSpan>> {
    let mut spans = BTreeMap::new();
    // Chunks of one trace often share a segment: keep the last one read.
    let mut segment: Option<(Vec<u8>, IVec)> = None;
    for chunk in chunks {
        let key = segment_key(project, chunk.segment_time, chunk.segment_seq)?;
        if segment.as_ref().is_none_or(|(k, _)| *k != key) {
            // A segment can be gone only when retention deleted it, and
            // then every span in it was superseded by a later copy.
            segment = r.lookup(TreeId::Segments, &key)?.map(|value| (key, value));
        }
        let Some((_, value)) = &segment else {
            continue;
        };
        let start = chunk.offset as usize;
        let bytes = start
            .checked_add(chunk.len as usize)
            .and_then(|end| value.get(start..end))
            .ok_or_else(|| {
                Error::corrupt(
                    "span_segments",
                    format!(
                        "chunk {}..+{} is outside its segment of {} bytes",
                        chunk.offset,
                        chunk.len,
                        value.len()
                    ),
                )
            })?;
        let chunk: ChunkRow = decode("span_segments", bytes)?;
        for span in chunk.spans {
            spans.insert(span.span_id(), span);
        }
    }
    Ok(spans)
}

/// Whether a stored copy of a span is the same as `span`, field for field.
fn same_span(stored: &SSpan, span: &SpanRecord) -> Result<bool> {
    let sent = postcard::to_allocvec(&borrowed::SSpan::new(span))
        .map_err(|e| Error::Encode(e.to_string()))?;
    Ok(encode(stored)? == sent)
}

/// Encodes the groups of spans (one per trace) into segments and stages
/// them; returns each group's chunk, in order. Call with the write lock
/// held.
pub(crate) fn stage_segments(
    w: &mut Writes<'_>,
    project: &str,
    groups: &[&[&SpanRecord]],
) -> Result<Vec<ChunkRef>> {
    let core = w.core();
    // One buffer for every ingest: allocating and freeing a large buffer
    // per batch makes the allocator consolidate its free lists each time.
    let mut buf = core
        .segment_buf
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    buf.clear();
    // Where each segment starts in `buf`, and its latest span start.
    let mut segments: Vec<(usize, u64)> = vec![(0, 0)];
    // (segment, offset in it, length) per group.
    let mut places: Vec<(usize, u32, u32)> = Vec::with_capacity(groups.len());
    let too_big = |n: usize| Error::Encode(format!("a segment of {n} bytes is larger than 4 GiB"));
    for group in groups {
        let mut start = segments[segments.len() - 1].0;
        if buf.len() - start >= SEGMENT_BYTES {
            start = buf.len();
            segments.push((start, 0));
        }
        let offset = buf.len() - start;
        let chunk = ChunkRowRef {
            spans: group.iter().map(|s| borrowed::SSpan::new(s)).collect(),
        };
        *buf = postcard::to_extend(&chunk, std::mem::take(&mut *buf))
            .map_err(|e| Error::Encode(e.to_string()))?;
        let latest = &mut segments.last_mut().expect("one segment at least").1;
        for span in group.iter() {
            *latest = (*latest).max(span.start_ns);
        }
        let len = buf.len() - start - offset;
        places.push((
            segments.len() - 1,
            u32::try_from(offset).map_err(|_| too_big(offset))?,
            u32::try_from(len).map_err(|_| too_big(len))?,
        ));
    }
    let mut keys = Vec::with_capacity(segments.len());
    for (i, &(start, latest)) in segments.iter().enumerate() {
        let end = segments.get(i + 1).map_or(buf.len(), |next| next.0);
        // Ids are never reused; one taken by a change that then fails is
        // simply skipped.
        let seq = core.t.db.generate_id().db()?;
        w.insert(
            TreeId::Segments,
            segment_key(project, latest, seq)?,
            IVec::from(&buf[start..end]),
        );
        keys.push((latest, seq));
    }
    if buf.capacity() > 4 * SEGMENT_BYTES {
        // A huge batch (an import): do not keep its memory.
        *buf = Vec::new();
    }
    Ok(places
        .into_iter()
        .map(|(segment, offset, len)| ChunkRef {
            segment_time: keys[segment].0,
            segment_seq: keys[segment].1,
            offset,
            len,
        })
        .collect())
}

/// What staging the spans of one ingest found.
#[derive(Debug, Default)]
pub(crate) struct SpanOutcome {
    /// Spans not stored before (by trace and span id).
    pub(crate) new_spans: u64,
    /// Traces not stored before.
    pub(crate) new_traces: u64,
    /// Per input span: whether it is written (new, or a changed copy).
    pub(crate) written: Vec<bool>,
}

/// A trace that an ingest writes to.
struct TraceChange<'s> {
    trace: TraceId,
    old: Option<SummaryRow>,
    /// The stored spans, read when some of the trace's spans were sent
    /// again.
    stored: Option<BTreeMap<u64, SSpan>>,
    /// The spans to write: new ones and changed copies.
    spans: Vec<&'s SpanRecord>,
}

/// Stages the spans of one ingest with their summaries (and, on the
/// embedded store, index entries).
pub(crate) fn stage_spans(
    w: &mut impl Staging,
    project: &str,
    spans: &[&SpanRecord],
) -> Result<SpanOutcome> {
    let mut outcome = SpanOutcome {
        written: vec![false; spans.len()],
        ..SpanOutcome::default()
    };
    if spans.is_empty() {
        return Ok(outcome);
    }
    // The last copy of each span of each trace, in request order.
    let mut by_trace: BTreeMap<TraceId, BTreeMap<u64, usize>> = BTreeMap::new();
    for (i, span) in spans.iter().enumerate() {
        by_trace
            .entry(span.trace_id)
            .or_default()
            .insert(span.span_id.0, i);
    }
    let traces: Vec<TraceId> = by_trace.keys().copied().collect();
    w.lock_traces(project, &traces)?;
    let olds = w.summary_rows(project, &traces)?;
    let mut changes: Vec<TraceChange<'_>> = Vec::with_capacity(by_trace.len());
    for ((trace, latest), old) in by_trace.into_iter().zip(olds) {
        let mut chosen: Vec<usize> = latest.into_values().collect();
        chosen.sort_unstable();
        let mut stored = None;
        if let Some(row) = old.as_ref() {
            if chosen.iter().any(|&i| row.has(spans[i].span_id)) {
                // Rare: spans sent again. Keep only the copies that differ
                // from what is stored.
                let have = w.stored_spans(project, trace, row)?;
                let mut differ = Vec::with_capacity(chosen.len());
                for i in chosen {
                    match have.get(&spans[i].span_id.0) {
                        Some(copy) if same_span(copy, spans[i])? => {}
                        _ => differ.push(i),
                    }
                }
                chosen = differ;
                stored = Some(have);
            }
        }
        if chosen.is_empty() {
            continue;
        }
        for &i in &chosen {
            outcome.written[i] = true;
            if !old.as_ref().is_some_and(|row| row.has(spans[i].span_id)) {
                outcome.new_spans += 1;
            }
        }
        changes.push(TraceChange {
            trace,
            old,
            stored,
            spans: chosen.into_iter().map(|i| spans[i]).collect(),
        });
    }
    if changes.is_empty() {
        return Ok(outcome);
    }
    let groups: Vec<(TraceId, Vec<&SpanRecord>)> =
        changes.iter().map(|c| (c.trace, c.spans.clone())).collect();
    let chunks = w.append_spans(project, &groups)?;
    let mut rows: Vec<(TraceId, Option<SummaryRow>, SummaryRow)> =
        Vec::with_capacity(changes.len());
    for (change, chunk) in changes.into_iter().zip(chunks) {
        let trace = change.trace;
        let mut row = match change.stored {
            None => {
                let mut row = change
                    .old
                    .clone()
                    .unwrap_or_else(|| SummaryRow::empty(project, trace));
                for span in &change.spans {
                    row.add(span);
                }
                row
            }
            Some(stored) => {
                // Rebuild from the stored spans with the new copies.
                let mut merged: BTreeMap<u64, SpanRecord> = BTreeMap::new();
                for (id, span) in stored {
                    merged.insert(id, span.into_record("span_segments")?);
                }
                for span in &change.spans {
                    merged.insert(span.span_id.0, (*span).clone());
                }
                let mut row = SummaryRow::empty(project, trace);
                for span in merged.values() {
                    row.add(span);
                }
                row.chunks = change
                    .old
                    .as_ref()
                    .map(|o| o.chunks.clone())
                    .unwrap_or_default();
                row
            }
        };
        row.chunks.extend(chunk);
        if change.old.is_none() {
            outcome.new_traces += 1;
        }
        rows.push((trace, change.old, row));
    }
    w.put_summary_rows(project, &rows)?;
    Ok(outcome)
}

/// The next entry of one project's part of the trace index, newest first.
struct IndexHead<'p> {
    project: &'p str,
    prefix_len: usize,
    entries: std::iter::Rev<sled::Iter>,
    next: Option<(u64, TraceId, IVec)>,
}

impl IndexHead<'_> {
    fn advance(&mut self) -> Result<()> {
        self.next = match self.entries.next() {
            None => None,
            Some(item) => {
                let (key, value) = item.db()?;
                let mut r = KeyReader::new("traces_by_start", &key[self.prefix_len..]);
                let start = r.u64()?;
                let trace = r.trace()?;
                r.end()?;
                Some((start, trace, value))
            }
        };
        Ok(())
    }
}

impl Traces<'_> {
    /// One span of a project's trace (the latest copy if it was sent more
    /// than once).
    pub fn span(&self, project: &str, trace: TraceId, span: SpanId) -> Result<Option<SpanRecord>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::traces::span(db, project, trace, span),
        };
        merged_spans(&store.core().t, project, trace)?
            .remove(&span.0)
            .map(|s| s.into_record("span_segments"))
            .transpose()
    }

    /// The spans of a project's trace, ordered by start time then span id:
    /// the input of flow reconstruction. Empty when the project has no such
    /// trace.
    pub fn spans(&self, project: &str, trace: TraceId) -> Result<Vec<SpanRecord>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::traces::spans(db, project, trace),
        };
        let mut spans = merged_spans(&store.core().t, project, trace)?
            .into_values()
            .map(|s| s.into_record("span_segments"))
            .collect::<Result<Vec<_>>>()?;
        spans.sort_by_key(|s| (s.start_ns, s.span_id));
        Ok(spans)
    }

    /// The summary of a project's trace.
    pub fn get(&self, project: &str, trace: TraceId) -> Result<Option<TraceSummary>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::traces::get(db, project, trace),
        };
        read_summary(&store.core().t, project, trace)
    }

    /// Traces of the query's projects started in its window, newest first
    /// (ties: higher trace id first, then the project first by name).
    pub fn list(&self, query: &TraceQuery) -> Result<Vec<TraceSummary>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::traces::list(db, query),
        };
        let t = &store.core().t;
        let limit = query.limit.unwrap_or(usize::MAX);
        let to = query.to_ns.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        if limit == 0 || query.from_ns >= to {
            return Ok(out);
        }
        let mut projects: Vec<&str> = query.projects.iter().map(String::as_str).collect();
        projects.sort_unstable();
        projects.dedup();
        let mut heads = Vec::with_capacity(projects.len());
        for project in projects {
            let prefix = Key::new().str("project", project)?.into_vec();
            let lo = [prefix.as_slice(), &query.from_ns.to_be_bytes()].concat();
            let hi = [prefix.as_slice(), &to.to_be_bytes()].concat();
            let mut head = IndexHead {
                project,
                prefix_len: prefix.len(),
                entries: t.trace_index.range(lo..hi).rev(),
                next: None,
            };
            head.advance()?;
            heads.push(head);
        }
        loop {
            let newest = heads
                .iter_mut()
                .filter_map(|h| {
                    let key = h.next.as_ref().map(|(start, trace, _)| (*start, *trace))?;
                    Some((key, Reverse(h.project), h))
                })
                .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
                .map(|(_, _, head)| head);
            let Some(head) = newest else {
                break;
            };
            let Some((start, trace, services)) = head.next.take() else {
                break;
            };
            let project = head.project;
            head.advance()?;
            if let Some(service) = &query.service {
                let services: Vec<String> = decode("traces_by_start", &services)?;
                if services.binary_search(service).is_err() {
                    continue;
                }
            }
            let Some(summary) = read_summary(t, project, trace)? else {
                continue;
            };
            if summary.start_ns != start {
                continue;
            }
            out.push(summary);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}
