//! Spans and traces: spans in segments, one summary per trace, and the
//! trace indexes by time, by project and by service.
//!
//! # Layout
//!
//! An ingest writes its spans as one *segment* (more when it is large): the
//! spans of each trace are encoded as one chunk, and the chunks are laid end
//! to end in one value of the `span_segments` tree. The trace's summary row
//! lists where its chunks are. sled's cost per write is high and its cost per
//! byte is low, so a batch of 1,000 spans costs one large write plus a few
//! small ones per trace, rather than one write per trace for the spans.
//!
//! A segment's key starts with the latest span start in it, so that
//! retention deletes whole segments by a range scan: a segment whose latest
//! start is before the cutoff holds only spans of traces that started before
//! it. A chunk of a trace deleted earlier stays until its segment ages out,
//! but no summary points at it any more; a span dated in the future keeps
//! its segment until then, as it keeps its trace.

use std::collections::BTreeMap;

use omegi_core::{SpanId, SpanRecord, Status, TraceId};
use serde::{Deserialize, Serialize};

use crate::codec::{borrowed, decode, encode, SSpan};
use crate::error::{Error, Result};
use crate::keys::{Key, KeyReader};

use crate::{Core, Store, Trees};

/// Spans of one trace written by one ingest, as a chunk of a segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkRow {
    pub(crate) project: String,
    pub(crate) spans: Vec<SSpan>,
}

/// Serializes as [`ChunkRow`].
#[derive(Serialize)]
struct ChunkRowRef<'a> {
    project: &'a str,
    spans: Vec<borrowed::SSpan<'a>>,
}

/// A stored summary with what incremental updates need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SummaryRow {
    summary: TraceSummary,
    /// Start of the root, to pick the earliest root when several arrive.
    root_start_ns: u64,
    /// Sorted ids of the spans stored, to recognise a span sent again.
    span_ids: Vec<u64>,
    /// Where the trace's chunks are, oldest first.
    chunks: Vec<ChunkRef>,
}

/// Where one chunk is: a segment and a byte range in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkRef {
    /// The segment's key: its latest span start and a sequence number.
    segment_time: u64,
    segment_seq: u64,
    offset: u32,
    len: u32,
}

impl ChunkRef {
    fn segment_key(&self) -> [u8; 16] {
        segment_key(self.segment_time, self.segment_seq)
    }
}

/// Segments larger than this are closed and a new one started.
const SEGMENT_BYTES: usize = 1 << 20;

fn segment_key(time: u64, seq: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&time.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
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
    /// Earliest span start, ns since the Unix epoch.
    pub start_ns: u64,
    /// Latest span end, ns since the Unix epoch.
    pub end_ns: u64,
    /// The earliest span without a parent, once it has arrived.
    pub root: Option<TraceRoot>,
    /// Projects that sent spans of this trace, sorted.
    pub projects: Vec<String>,
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
    fn empty(trace_id: TraceId) -> Self {
        SummaryRow {
            summary: TraceSummary {
                trace_id,
                start_ns: 0,
                end_ns: 0,
                root: None,
                projects: Vec::new(),
                services: Vec::new(),
                span_count: 0,
                error_spans: 0,
            },
            root_start_ns: 0,
            span_ids: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// Adds a span not seen before.
    fn add(&mut self, project: &str, span: &SpanRecord) {
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
        insert_sorted(&mut s.projects, project);
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

/// Which traces to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceQuery {
    /// Only traces with spans from this project.
    pub project: Option<String>,
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
    /// All traces, newest first.
    pub fn all() -> Self {
        TraceQuery::default()
    }

    /// Traces of one project.
    pub fn project(project: impl Into<String>) -> Self {
        TraceQuery {
            project: Some(project.into()),
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

/// The index entries of one trace summary.
pub(crate) struct IndexKeys {
    pub(crate) by_time: Vec<u8>,
    /// Keys and values: the value lists the trace's services, so that a
    /// query by service filters the project index without reading summaries.
    pub(crate) by_project: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(crate) fn index_keys(s: &TraceSummary) -> Result<IndexKeys> {
    let by_time = Key::new().u64(s.start_ns).trace(s.trace_id).into_vec();
    let services = encode(&s.services)?;
    let mut by_project = Vec::with_capacity(s.projects.len());
    for project in &s.projects {
        by_project.push((
            Key::new()
                .str("project", project)?
                .u64(s.start_ns)
                .trace(s.trace_id)
                .into_vec(),
            services.clone(),
        ));
    }
    Ok(IndexKeys {
        by_time,
        by_project,
    })
}

/// Index updates collected during one write, applied in order (single
/// writes are cheaper than sled batches, and the write lock already keeps
/// writers apart).
#[derive(Default)]
pub(crate) struct IndexBatches {
    by_time: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    by_project: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl IndexBatches {
    pub(crate) fn remove(&mut self, keys: IndexKeys) {
        self.by_time.push((keys.by_time, None));
        self.by_project
            .extend(keys.by_project.into_iter().map(|(k, _)| (k, None)));
    }

    pub(crate) fn insert(&mut self, keys: IndexKeys) {
        self.by_time.push((keys.by_time, Some(Vec::new())));
        self.by_project
            .extend(keys.by_project.into_iter().map(|(k, v)| (k, Some(v))));
    }

    pub(crate) fn apply(self, t: &Trees) -> Result<()> {
        for (tree, ops) in [
            (&t.traces_by_time, self.by_time),
            (&t.traces_by_project, self.by_project),
        ] {
            for (key, value) in ops {
                match value {
                    Some(value) => tree.insert(key, value)?,
                    None => tree.remove(key)?,
                };
            }
        }
        Ok(())
    }
}

pub(crate) fn read_summary_row(t: &Trees, trace: TraceId) -> Result<Option<SummaryRow>> {
    match t.traces.get(trace.to_bytes())? {
        Some(bytes) => Ok(Some(decode("traces", &bytes)?)),
        None => Ok(None),
    }
}

pub(crate) fn read_summary(t: &Trees, trace: TraceId) -> Result<Option<TraceSummary>> {
    Ok(read_summary_row(t, trace)?.map(|row| row.summary))
}

/// The spans of a trace with their projects, by span id; where a span was
/// sent more than once, the latest copy.
pub(crate) fn merged_spans(t: &Trees, trace: TraceId) -> Result<BTreeMap<u64, (String, SSpan)>> {
    match read_summary_row(t, trace)? {
        Some(row) => chunks_spans(t, &row.chunks),
        None => Ok(BTreeMap::new()),
    }
}

/// The spans in `chunks`, merged by span id (later chunks win).
fn chunks_spans(t: &Trees, chunks: &[ChunkRef]) -> Result<BTreeMap<u64, (String, SSpan)>> {
    let mut spans = BTreeMap::new();
    // Chunks of one trace often share a segment: keep the last one read.
    let mut segment: Option<([u8; 16], sled::IVec)> = None;
    for chunk in chunks {
        let key = chunk.segment_key();
        if segment.as_ref().is_none_or(|(k, _)| *k != key) {
            // A segment can be gone only when retention deleted it, and
            // then every span in it was superseded by a later copy.
            segment = t.segments.get(key)?.map(|value| (key, value));
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
            spans.insert(span.span_id(), (chunk.project.clone(), span));
        }
    }
    Ok(spans)
}

/// Rebuilds a trace's summary from its stored spans.
fn recompute(t: &Trees, trace: TraceId, chunks: Vec<ChunkRef>) -> Result<SummaryRow> {
    let mut row = SummaryRow::empty(trace);
    for (_, (project, span)) in chunks_spans(t, &chunks)? {
        row.add(&project, &span.into_record("span_segments")?);
    }
    row.chunks = chunks;
    Ok(row)
}

/// Encodes the spans of `by_trace` into segments and writes them; returns
/// each trace's chunk, in the order of `by_trace`. Call with the write lock
/// held.
fn write_segments(
    core: &Core,
    project: &str,
    by_trace: &BTreeMap<TraceId, Vec<&SpanRecord>>,
) -> Result<Vec<ChunkRef>> {
    let t = &core.t;
    // One buffer for every ingest: allocating and freeing a large buffer
    // per batch makes the allocator consolidate its free lists each time.
    let mut buf = core
        .segment_buf
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    buf.clear();
    // Where each segment starts in `buf`, and its latest span start.
    let mut segments: Vec<(usize, u64)> = vec![(0, 0)];
    // (segment, offset in it, length) per trace.
    let mut places: Vec<(usize, u32, u32)> = Vec::with_capacity(by_trace.len());
    let too_big = |n: usize| Error::Encode(format!("a segment of {n} bytes is larger than 4 GiB"));
    for group in by_trace.values() {
        let mut start = segments[segments.len() - 1].0;
        if buf.len() - start >= SEGMENT_BYTES {
            start = buf.len();
            segments.push((start, 0));
        }
        let offset = buf.len() - start;
        let chunk = ChunkRowRef {
            project,
            spans: group.iter().map(|s| borrowed::SSpan::new(s)).collect(),
        };
        *buf = postcard::to_extend(&chunk, std::mem::take(&mut *buf))
            .map_err(|e| Error::Encode(e.to_string()))?;
        let latest = &mut segments.last_mut().expect("one segment at least").1;
        for span in group {
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
        let seq = t.db.generate_id()?;
        t.segments
            .insert(segment_key(latest, seq), &buf[start..end])?;
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

/// Writes spans and maintains summaries and indexes; returns the number of
/// traces that were new. Call with the write lock held.
///
/// The segments are written before the summaries that point into them, so
/// that after a crash no summary points at a missing chunk.
pub(crate) fn write_spans(core: &Core, project: &str, spans: &[&SpanRecord]) -> Result<u64> {
    let t = &core.t;
    if spans.is_empty() {
        return Ok(0);
    }
    let mut by_trace: BTreeMap<TraceId, Vec<&SpanRecord>> = BTreeMap::new();
    for span in spans {
        by_trace.entry(span.trace_id).or_default().push(span);
    }
    let chunks = write_segments(core, project, &by_trace)?;
    let mut new_traces = 0;
    let mut index = IndexBatches::default();
    for ((trace, group), chunk) in by_trace.into_iter().zip(chunks) {
        let old = read_summary_row(t, trace)?;
        let mut row = old.clone().unwrap_or_else(|| SummaryRow::empty(trace));
        row.chunks.push(chunk);
        let mut ids: Vec<u64> = group.iter().map(|s| s.span_id.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let resent =
            ids.len() < group.len() || ids.iter().any(|id| row.span_ids.binary_search(id).is_ok());
        if resent {
            // Rare: a span sent again. Rebuild from what is stored, this
            // chunk included.
            row = recompute(t, trace, row.chunks)?;
        } else {
            for span in &group {
                row.add(project, span);
            }
        }
        let new_keys = index_keys(&row.summary)?;
        match &old {
            None => {
                new_traces += 1;
                index.insert(new_keys);
            }
            Some(old) => {
                let (o, n) = (&old.summary, &row.summary);
                if o.start_ns != n.start_ns || o.projects != n.projects || o.services != n.services
                {
                    index.remove(index_keys(o)?);
                    index.insert(new_keys);
                }
            }
        }
        t.traces.insert(trace.to_bytes(), encode(&row)?)?;
    }
    index.apply(t)?;
    Ok(new_traces)
}

impl Store {
    /// One span (the latest copy if it was sent more than once).
    pub fn span(&self, trace: TraceId, span: SpanId) -> Result<Option<SpanRecord>> {
        merged_spans(&self.core().t, trace)?
            .remove(&span.0)
            .map(|(_, s)| s.into_record("span_segments"))
            .transpose()
    }

    /// The spans of a trace, ordered by start time then span id: the input
    /// of flow reconstruction. Empty when the trace is unknown.
    pub fn trace_spans(&self, trace: TraceId) -> Result<Vec<SpanRecord>> {
        let mut spans = merged_spans(&self.core().t, trace)?
            .into_values()
            .map(|(_, s)| s.into_record("span_segments"))
            .collect::<Result<Vec<_>>>()?;
        spans.sort_by_key(|s| (s.start_ns, s.span_id));
        Ok(spans)
    }

    /// The summary of one trace.
    pub fn trace(&self, trace: TraceId) -> Result<Option<TraceSummary>> {
        read_summary(&self.core().t, trace)
    }

    /// Traces started in the query's window, newest first (ties: higher
    /// trace id first).
    pub fn traces(&self, query: &TraceQuery) -> Result<Vec<TraceSummary>> {
        let t = &self.core().t;
        let limit = query.limit.unwrap_or(usize::MAX);
        let to = query.to_ns.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        if limit == 0 || query.from_ns >= to {
            return Ok(out);
        }
        let (tree, tree_name, prefix) = match &query.project {
            Some(p) => (
                &t.traces_by_project,
                "traces_by_project",
                Key::new().str("project", p)?.into_vec(),
            ),
            None => (&t.traces_by_time, "traces_by_time", Vec::new()),
        };
        let mut lo = prefix.clone();
        lo.extend_from_slice(&query.from_ns.to_be_bytes());
        let mut hi = prefix.clone();
        hi.extend_from_slice(&to.to_be_bytes());
        for item in tree.range(lo..hi).rev() {
            let (key, value) = item?;
            let mut r = KeyReader::new(tree_name, &key[prefix.len()..]);
            let start = r.u64()?;
            let trace = r.trace()?;
            r.end()?;
            if let (Some(_), Some(service)) = (&query.project, &query.service) {
                let services: Vec<String> = decode(tree_name, &value)?;
                if services.binary_search(service).is_err() {
                    continue;
                }
            }
            // After a crash an index entry may outlive its trace or point at
            // an older start: skip those.
            let Some(summary) = read_summary(t, trace)? else {
                continue;
            };
            if summary.start_ns != start {
                continue;
            }
            if let Some(service) = &query.service {
                if summary.services.binary_search(service).is_err() {
                    continue;
                }
            }
            out.push(summary);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}
