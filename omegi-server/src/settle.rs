//! The settle window: spans of a trace wait until the trace is complete,
//! then the trace is decided as a whole.
//!
//! A trace of several services reaches the collector in several requests,
//! one per process and batch. An accepted request's records are first
//! appended to the write-ahead log ([`omegi_store::wal`]; with
//! `--sync always` the answer `200` waits until they are on disk), then
//! wait in memory per (project, trace id). A trace *settles* once no span
//! of it arrived for [`SettleConfig::trace_wait`], or early when its buffer
//! ([`SettleConfig::max_trace_spans`], [`SettleConfig::max_trace_bytes`])
//! or the window's ([`SettleConfig::max_spans`],
//! [`SettleConfig::max_bytes`]) is full. Errors outside any trace wait for
//! nothing.
//!
//! Settling a trace assembles it with what the store
//! already knows of it (a late span's trace settled before), attributes its
//! failures to their root causes ([`omegi_core::flow::Trace::attribute`]:
//! one failure is one issue, the failures it caused are its consequences),
//! takes back occurrences that a later part of the trace showed to be
//! consequences, and decides whether the trace is stored whole
//! ([`TailSampling`]); statistics count every trace. One store transaction
//! per batch; then alerts, then the log's segments whose traces all
//! settled are deleted once the store is durable. Several threads settle
//! ([`SettleConfig::workers`]), each the traces of its share of trace ids,
//! so that the work before the transaction runs side by side and a trace
//! is never settled by two threads at once.
//!
//! With a `trace_wait` of zero there is no window: each request settles as
//! it arrives, in its own transaction, before it is answered (no log is
//! needed: `200` means stored, and durable with `--sync always`). A trace
//! split over requests is then attributed as its parts arrive: an issue
//! raised for a failure that a later request shows to be a consequence is
//! taken back.
//!
//! On start, the log is replayed: the traces that had not settled wait
//! again and settle normally; those that had settled change nothing when
//! settled again (the store counts a span, an occurrence and a statistic
//! once).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use omegi_core::flow::{ErrorContext, TailSampling, Trace};
use omegi_core::{
    ErrorRecord, Record, RecordLimits, Resource, SpanId, SpanRecord, Status, TraceId, Value,
};
use omegi_store::wal::{TraceChunk, Wal, WalConfig, WalStats};
use omegi_store::{IngestReport, PriorSettle, SettledCause, SettledTrace, Store};
use serde::Serialize;

use crate::otlp::Decoded;

/// The log lives in this folder of the data directory.
pub const WAL_DIR: &str = "wal";

/// How often the log is flushed with `--sync interval`.
const LOG_SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// How traces settle: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SettleConfig {
    /// How long a trace stays quiet before it settles; zero: every request
    /// settles as it arrives (no window, no log).
    pub trace_wait: Duration,
    /// Spans waiting in the window, all traces together: past it, the
    /// traces that waited longest settle early.
    pub max_spans: usize,
    /// Bytes (encoded) waiting in the window, all traces together: as
    /// above. A request that would take the window past twice this, or
    /// past twice `max_spans`, is answered `503` with `Retry-After` and
    /// stores nothing.
    pub max_bytes: usize,
    /// Spans of one trace waiting: past it, the trace settles early.
    pub max_trace_spans: usize,
    /// Bytes of one trace waiting: as above.
    pub max_trace_bytes: usize,
    /// Which settled traces are stored whole.
    pub sampling: TailSampling,
    /// The size of a log segment.
    pub wal_segment_bytes: u64,
    /// Threads that settle traces, each the traces of its share of trace
    /// ids (so that a trace is never settled by two at once); their store
    /// transactions take turns, the rest runs side by side.
    pub workers: usize,
}

impl Default for SettleConfig {
    /// 5 s of quiet; 250,000 spans and 64 MiB in the window; 10,000
    /// spans and 16 MiB per trace; 10% of healthy traces kept, and every
    /// trace with a request slower than 2 s; 32 MiB log segments; a
    /// settle thread per core, from 2 to 4.
    fn default() -> Self {
        SettleConfig {
            trace_wait: Duration::from_secs(5),
            max_spans: 250_000,
            max_bytes: 64 << 20,
            max_trace_spans: 10_000,
            max_trace_bytes: 16 << 20,
            sampling: TailSampling::default(),
            wal_segment_bytes: WalConfig::default().segment_bytes,
            workers: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 4),
        }
    }
}

impl SettleConfig {
    /// Sets how long a trace stays quiet before it settles.
    pub fn trace_wait(mut self, wait: Duration) -> Self {
        self.trace_wait = wait;
        self
    }

    /// Sets the sampling policy.
    pub fn sampling(mut self, sampling: TailSampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Sets how many threads settle traces (at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets the window's budget (all traces) and each trace's.
    pub fn budget(
        mut self,
        max_spans: usize,
        max_bytes: usize,
        max_trace_spans: usize,
        max_trace_bytes: usize,
    ) -> Self {
        self.max_spans = max_spans.max(1);
        self.max_bytes = max_bytes.max(1);
        self.max_trace_spans = max_trace_spans.max(1);
        self.max_trace_bytes = max_trace_bytes.max(1);
        self
    }
}

/// Counters of the window since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SettleStats {
    /// Traces waiting now (or being settled).
    pub waiting_traces: u64,
    /// Spans waiting now.
    pub waiting_spans: u64,
    /// Bytes waiting now (encoded).
    pub waiting_bytes: u64,
    /// The most bytes that waited at once.
    pub peak_bytes: u64,
    /// Traces settled (a trace settled again with late spans counts again).
    pub settled: u64,
    /// Traces settled early because their buffer or the window was full.
    pub early: u64,
    /// Requests refused because the window was full (`503`).
    pub refused: u64,
    /// Batches the store failed to take (retried).
    pub store_failures: u64,
    /// Errors of failed spans not derived because their trace had
    /// [`ErrorBudget::max_errors`] already (the spans are kept).
    pub errors_not_derived: u64,
    /// The log's counters (none without a window).
    pub wal: Option<WalStats>,
}

/// What the errors of one settled trace may cost: the bytes of span stacks
/// and breadcrumbs copied into them, and how many errors settling derives
/// from spans that failed with nothing but a status (the cap one OTLP
/// request has, so that spans whose errors a request left out over its cap
/// do not bring them all back when their trace settles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorBudget {
    /// Bytes of span stacks and breadcrumbs copied into one trace's errors.
    pub context_bytes: usize,
    /// Errors derived from failed spans' statuses per settled trace.
    pub max_errors: usize,
}

/// What settling a batch changed, for alerts.
pub(crate) type Settled = IngestReport;

/// Why a request could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The window is full: retry later.
    #[error(
        "the settle window is full ({spans} spans and {bytes} bytes waiting; \
         at most {max_spans} spans and {max_bytes} bytes): retry later"
    )]
    Full {
        /// Spans waiting.
        spans: usize,
        /// Bytes waiting.
        bytes: usize,
        /// The hard limit of spans (twice `max_spans`).
        max_spans: usize,
        /// The hard limit of bytes (twice `max_bytes`).
        max_bytes: usize,
    },
    /// The log or the store failed.
    #[error(transparent)]
    Store(#[from] omegi_store::Error),
}

/// A part of a trace from one request.
struct Part {
    /// The log segment it is in (none when replayed parts are done).
    segment: Option<u64>,
    resources: Arc<[Resource]>,
    chunk: TraceChunk,
}

/// What a chunk counts against the window's bytes: its encoded records and
/// a little for its entry.
fn window_bytes(chunk: &TraceChunk) -> usize {
    chunk.encoded_bytes() + 64
}

impl Part {
    fn bytes(&self) -> usize {
        window_bytes(&self.chunk)
    }
}

/// A project's traces (or errors outside a trace) taken from the window,
/// with their parts.
type Batch = Vec<(Option<TraceId>, Vec<Part>)>;

/// A trace (or errors outside a trace) taken from the window: its project
/// and parts.
type Due = (String, Option<TraceId>, Vec<Part>);

struct Pending {
    parts: Vec<Part>,
    spans: usize,
    bytes: usize,
    last: Instant,
    early: bool,
}

#[derive(Default)]
struct Window {
    traces: HashMap<(String, TraceId), Pending>,
    loose: Vec<(String, Part)>,
    spans: usize,
    bytes: usize,
}

/// The settle window of a server: see the module docs.
pub struct Settler {
    store: Store,
    config: SettleConfig,
    limits: RecordLimits,
    errors: ErrorBudget,
    errors_not_derived: AtomicU64,
    wal: Option<Wal>,
    window: Mutex<Window>,
    wake: Condvar,
    stopping: AtomicBool,
    settled: AtomicU64,
    /// Traces taken from the window and not yet stored.
    settling: AtomicU64,
    early: AtomicU64,
    refused: AtomicU64,
    store_failures: AtomicU64,
    peak_bytes: AtomicU64,
    /// Settled traces released log segments since the last deletion.
    unpinned: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One trace to settle: its new records, with their services filled in.
#[derive(Default)]
pub(crate) struct TraceInput {
    spans: Vec<SpanRecord>,
    errors: Vec<ErrorRecord>,
    /// Spans sent by Omegi's own layer, which reports its errors itself.
    omegi_spans: HashSet<SpanId>,
}

/// Whether a process is Omegi's own layer (`telemetry.sdk.name = omegi`).
fn sent_by_omegi(resource: &Resource) -> bool {
    resource
        .attributes
        .iter()
        .any(|a| a.key == "telemetry.sdk.name" && a.value == Value::Str("omegi".into()))
}

/// The records of a request by trace, each with the index of its
/// resource; and the errors outside any trace.
type Grouped<'a> = (
    BTreeMap<TraceId, (Vec<(u32, &'a SpanRecord)>, Vec<(u32, &'a ErrorRecord)>)>,
    Vec<(u32, &'a ErrorRecord)>,
);

fn group(decoded: &Decoded) -> Grouped<'_> {
    let mut traces: Grouped<'_> = (BTreeMap::new(), Vec::new());
    for (ri, batch) in decoded.resources.iter().enumerate() {
        let ri = u32::try_from(ri).unwrap_or(u32::MAX);
        for record in &batch.records {
            match record {
                Record::Span(s) => traces.0.entry(s.trace_id).or_default().0.push((ri, s)),
                Record::Error(e) => match e.trace_id {
                    Some(t) => traces.0.entry(t).or_default().1.push((ri, e)),
                    None => traces.1.push((ri, e)),
                },
            }
        }
    }
    traces
}

impl TraceInput {
    fn add_span(&mut self, resources: &[Resource], ri: u32, mut span: SpanRecord) {
        if let Some(resource) = resources.get(ri as usize) {
            resource.fill_service(&mut span.service);
            if sent_by_omegi(resource) {
                self.omegi_spans.insert(span.span_id);
            }
        }
        self.spans.push(span);
    }

    fn add_error(&mut self, resources: &[Resource], ri: u32, mut error: ErrorRecord) {
        if let Some(resource) = resources.get(ri as usize) {
            resource.fill_service(&mut error.service);
        }
        self.errors.push(error);
    }
}

impl Settler {
    /// A window over `store`; with a non-zero `trace_wait`, its log in
    /// `<data_dir>/wal`, replayed now; the server starts its settle threads.
    pub fn open(
        store: Store,
        data_dir: &Path,
        config: SettleConfig,
        limits: RecordLimits,
        errors: ErrorBudget,
    ) -> Result<Settler, omegi_store::Error> {
        let mut window = Window::default();
        let wal = if config.trace_wait.is_zero() {
            None
        } else {
            let now = Instant::now();
            let wal_config = WalConfig::default().segment_bytes(config.wal_segment_bytes);
            let (wal, replay) =
                Wal::open(&data_dir.join(WAL_DIR), wal_config, |segment, entry| {
                    let resources: Arc<[Resource]> = entry.resources.into();
                    for chunk in entry.chunks {
                        let part = Part {
                            segment: Some(segment),
                            resources: Arc::clone(&resources),
                            chunk,
                        };
                        window.add(&entry.project, part, now, &config);
                    }
                    Ok(())
                })?;
            for line in &replay.damage {
                tracing::warn!("write-ahead log: {line}");
            }
            if replay.entries > 0 {
                tracing::info!(
                    entries = replay.entries,
                    traces = window.traces.len(),
                    "write-ahead log replayed: unsettled traces settle again"
                );
            }
            Some(wal)
        };
        let peak = window.bytes as u64;
        Ok(Settler {
            store,
            config,
            limits,
            errors,
            errors_not_derived: AtomicU64::new(0),
            wal,
            window: Mutex::new(window),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            settled: AtomicU64::new(0),
            settling: AtomicU64::new(0),
            early: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            store_failures: AtomicU64::new(0),
            peak_bytes: AtomicU64::new(peak),
            unpinned: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SettleConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the threads that settle traces
    /// ([`SettleConfig::workers`]); `on_settled` gets what each batch
    /// changed (for alerts), once it is durable as the sync policy says.
    pub(crate) fn start(
        self: &Arc<Self>,
        on_settled: impl Fn(&str, &Settled) + Send + Sync + 'static,
        durable: bool,
    ) {
        if self.wal.is_none() {
            return;
        }
        let on_settled = Arc::new(on_settled);
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        for worker in 0..self.config.workers.max(1) {
            let me = Arc::clone(self);
            let on_settled = Arc::clone(&on_settled);
            let handle = std::thread::Builder::new()
                .name(format!("omegi-settle-{worker}"))
                .spawn(move || me.run(worker, &*on_settled, durable))
                .expect("a thread can be started");
            threads.push(handle);
        }
    }

    /// Settles everything waiting, stops the threads and deletes the log
    /// segments whose traces all settled (shutdown).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_all();
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let started = !handles.is_empty();
        for handle in handles {
            let _ = handle.join();
        }
        if started {
            if let Some(Err(error)) = self.wal.as_ref().map(Wal::sync) {
                tracing::warn!(error = %omegi_core::ErrorChain(&error), "flushing the write-ahead log failed");
            }
            self.release();
        }
    }

    /// Which settle thread settles `trace`.
    fn worker_of(&self, trace: TraceId) -> usize {
        let workers = self.config.workers.max(1) as u64;
        let mixed =
            ((trace.0 as u64) ^ ((trace.0 >> 64) as u64)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((mixed >> 32) % workers) as usize
    }

    /// Adds what a settle counted to the counters.
    fn count(&self, counts: &SettleCounts) {
        self.settled
            .fetch_add(counts.settled as u64, Ordering::Relaxed);
        self.errors_not_derived
            .fetch_add(counts.not_derived as u64, Ordering::Relaxed);
    }

    /// The counters.
    pub fn stats(&self) -> SettleStats {
        let window = self.lock();
        SettleStats {
            waiting_traces: window.traces.len() as u64 + self.settling.load(Ordering::SeqCst),
            waiting_spans: window.spans as u64,
            waiting_bytes: window.bytes as u64,
            peak_bytes: self.peak_bytes.load(Ordering::Relaxed),
            settled: self.settled.load(Ordering::Relaxed),
            early: self.early.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            store_failures: self.store_failures.load(Ordering::Relaxed),
            errors_not_derived: self.errors_not_derived.load(Ordering::Relaxed),
            wal: self.wal.as_ref().map(Wal::stats),
        }
    }

    /// Takes a decoded request of `project`. Without a window it is settled
    /// and stored now (returned for alerts); with one it is in the log
    /// (durable when `durable`) and waiting when this returns.
    pub(crate) fn accept(
        &self,
        project: &str,
        decoded: &Decoded,
        durable: bool,
    ) -> Result<Option<Settled>, AcceptError> {
        let (traces, loose) = group(decoded);
        let resources: Vec<Resource> = decoded
            .resources
            .iter()
            .map(|r| r.resource.clone())
            .collect();
        let Some(wal) = &self.wal else {
            let mut inputs = Vec::with_capacity(traces.len());
            for (trace_id, (spans, errors)) in traces {
                let mut input = TraceInput::default();
                for (ri, s) in spans {
                    input.add_span(&resources, ri, s.clone());
                }
                for (ri, e) in errors {
                    input.add_error(&resources, ri, e.clone());
                }
                inputs.push((trace_id, input));
            }
            let mut loose_input = TraceInput::default();
            for (ri, e) in loose {
                loose_input.add_error(&resources, ri, e.clone());
            }
            let report = settle_traces(
                &self.store,
                project,
                &resources,
                inputs,
                loose_input.errors,
                &self.config.sampling,
                &self.limits,
                self.errors,
            )?;
            self.count(&report.1);
            if durable {
                self.store.sync()?;
            }
            return Ok(Some(report.0));
        };
        let mut chunks = Vec::with_capacity(traces.len() + 1);
        for (trace_id, (spans, errors)) in &traces {
            chunks.push(TraceChunk::encode(Some(*trace_id), spans, errors)?);
        }
        if !loose.is_empty() {
            chunks.push(TraceChunk::encode(None, &[], &loose)?);
        }
        if chunks.is_empty() {
            return Ok(None);
        }
        let bytes: usize = chunks.iter().map(window_bytes).sum();
        let spans: usize = chunks.iter().map(TraceChunk::spans).sum();
        {
            let window = self.lock();
            let max_bytes = self.config.max_bytes.saturating_mul(2);
            let max_spans = self.config.max_spans.saturating_mul(2);
            let over = window.bytes + bytes > max_bytes || window.spans + spans > max_spans;
            if over && window.bytes > 0 {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(AcceptError::Full {
                    spans: window.spans,
                    bytes: window.bytes,
                    max_spans,
                    max_bytes,
                });
            }
        }
        let segment = wal.append(project, &resources, &chunks)?;
        if durable {
            wal.sync()?;
        }
        let resources: Arc<[Resource]> = resources.into();
        let now = Instant::now();
        let mut window = self.lock();
        let mut wake = false;
        for chunk in chunks {
            let part = Part {
                segment: Some(segment),
                resources: Arc::clone(&resources),
                chunk,
            };
            wake |= window.add(project, part, now, &self.config) == Added::Due;
        }
        if window.spans > self.config.max_spans || window.bytes > self.config.max_bytes {
            window.settle_oldest_early(&self.config);
            wake = true;
        }
        self.peak_bytes
            .fetch_max(window.bytes as u64, Ordering::Relaxed);
        drop(window);
        if wake {
            self.wake.notify_all();
        }
        Ok(None)
    }

    fn tick(&self) -> Duration {
        (self.config.trace_wait / 4).clamp(Duration::from_millis(5), Duration::from_millis(100))
    }

    /// Takes what is due for settle thread `worker`: errors outside traces
    /// (the first thread), its traces quiet for the wait or marked early,
    /// everything when stopping; at most `max` traces.
    fn take_due(&self, worker: usize, everything: bool, max: usize) -> Vec<Due> {
        let now = Instant::now();
        let mut window = self.lock();
        let mut due: Vec<Due> = Vec::new();
        if worker == 0 {
            for (project, part) in std::mem::take(&mut window.loose) {
                window.bytes = window.bytes.saturating_sub(part.bytes());
                due.push((project, None, vec![part]));
            }
        }
        let wait = self.config.trace_wait;
        let keys: Vec<(String, TraceId)> = window
            .traces
            .iter()
            .filter(|((_, t), _)| self.worker_of(*t) == worker)
            .filter(|(_, p)| everything || p.early || now.duration_since(p.last) >= wait)
            .map(|(k, _)| k.clone())
            .take(max)
            .collect();
        // Still counted as waiting until stored (see `run`).
        self.settling.fetch_add(keys.len() as u64, Ordering::SeqCst);
        for key in keys {
            if let Some(p) = window.traces.remove(&key) {
                window.spans = window.spans.saturating_sub(p.spans);
                window.bytes = window.bytes.saturating_sub(p.bytes);
                if p.early {
                    self.early.fetch_add(1, Ordering::Relaxed);
                }
                due.push((key.0, Some(key.1), p.parts));
            }
        }
        due
    }

    /// The loop of settle thread `worker`; the first one also flushes the
    /// log (`--sync interval`) and deletes settled segments.
    fn run(&self, worker: usize, on_settled: &dyn Fn(&str, &Settled), durable: bool) {
        let mut last_release = Instant::now();
        let mut last_log_sync = Instant::now();
        loop {
            let stopping = self.stopping.load(Ordering::SeqCst);
            if worker == 0 && !durable && last_log_sync.elapsed() >= LOG_SYNC_INTERVAL {
                // `--sync interval`: the log is flushed periodically.
                if let Some(Err(error)) = self.wal.as_ref().map(Wal::sync) {
                    tracing::warn!(error = %omegi_core::ErrorChain(&error), "flushing the write-ahead log failed");
                }
                last_log_sync = Instant::now();
            }
            // Settled segments go about once a second, busy or not.
            if worker == 0 && last_release.elapsed() >= Duration::from_secs(1) {
                if self.unpinned.swap(false, Ordering::SeqCst) {
                    self.release();
                }
                last_release = Instant::now();
            }
            let due = self.take_due(worker, stopping, 2_000);
            if due.is_empty() {
                if stopping {
                    break;
                }
                let window = self.lock();
                let _ = self
                    .wake
                    .wait_timeout(window, self.tick())
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let mut by_project: BTreeMap<String, Batch> = BTreeMap::new();
            for (project, trace, parts) in due {
                by_project.entry(project).or_default().push((trace, parts));
            }
            for (project, batch) in by_project {
                let traces = batch.iter().filter(|(t, _)| t.is_some()).count() as u64;
                let outcome = self.settle_batch(&project, &batch, durable);
                match outcome {
                    Ok(report) => {
                        on_settled(&project, &report);
                        self.unpin(&batch);
                        self.unpinned.store(true, Ordering::SeqCst);
                    }
                    Err(error) => {
                        self.store_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %omegi_core::ErrorChain(&error), project, "settling traces failed: retrying");
                        let now = Instant::now();
                        let mut window = self.lock();
                        for (trace, parts) in batch {
                            for part in parts {
                                window.add(&project, part, now, &self.config);
                            }
                            if let Some(t) = trace {
                                if let Some(p) = window.traces.get_mut(&(project.clone(), t)) {
                                    p.early = true;
                                }
                            }
                        }
                        drop(window);
                        if stopping {
                            self.settling.fetch_sub(traces, Ordering::SeqCst);
                            return;
                        }
                        self.settling.fetch_sub(traces, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(500));
                        continue;
                    }
                }
                self.settling.fetch_sub(traces, Ordering::SeqCst);
            }
        }
    }

    fn unpin(&self, batch: &[(Option<TraceId>, Vec<Part>)]) {
        let Some(wal) = &self.wal else { return };
        let mut pins: BTreeMap<u64, u64> = BTreeMap::new();
        for (_, parts) in batch {
            for part in parts {
                if let Some(segment) = part.segment {
                    *pins.entry(segment).or_default() += 1;
                }
            }
        }
        for (segment, n) in pins {
            wal.unpin(segment, n);
        }
    }

    fn release(&self) {
        if let Some(wal) = &self.wal {
            if let Err(error) = wal.release(|| self.store.sync().map(|_| ())) {
                tracing::warn!(error = %omegi_core::ErrorChain(&error), "deleting settled log segments failed");
            }
        }
    }

    /// Decodes and settles one project's due traces in one transaction;
    /// durable when `durable` (before alerts).
    fn settle_batch(
        &self,
        project: &str,
        batch: &[(Option<TraceId>, Vec<Part>)],
        durable: bool,
    ) -> Result<Settled, omegi_store::Error> {
        let mut inputs = Vec::new();
        let mut loose = TraceInput::default();
        // The processes that sent the batch: each request's list once
        // (its parts share it), each process once.
        let mut resources: Vec<Resource> = Vec::new();
        let mut seen: HashSet<*const Resource> = HashSet::new();
        for (trace, parts) in batch {
            let mut input = TraceInput::default();
            for part in parts {
                let records = match part.chunk.decode() {
                    Ok(records) => records,
                    Err(error) => {
                        tracing::error!(error = %omegi_core::ErrorChain(&error), "a waiting chunk does not decode: left out");
                        continue;
                    }
                };
                let target = if trace.is_some() {
                    &mut input
                } else {
                    &mut loose
                };
                if seen.insert(part.resources.as_ptr()) {
                    for r in part.resources.iter() {
                        if !resources.contains(r) {
                            resources.push(r.clone());
                        }
                    }
                }
                for (ri, s) in records.spans {
                    target.add_span(&part.resources, ri, s);
                }
                for (ri, e) in records.errors {
                    target.add_error(&part.resources, ri, e);
                }
            }
            if let Some(trace) = trace {
                inputs.push((*trace, input));
            }
        }
        let (report, settled) = settle_traces(
            &self.store,
            project,
            &resources,
            inputs,
            loose.errors,
            &self.config.sampling,
            &self.limits,
            self.errors,
        )?;
        self.count(&settled);
        if durable {
            self.store.sync()?;
        }
        Ok(report)
    }
}

#[derive(PartialEq, Eq)]
enum Added {
    Waiting,
    Due,
}

impl Window {
    /// Adds a part; `Due` when it settles without waiting (errors outside a
    /// trace, a trace over its own budget).
    fn add(&mut self, project: &str, part: Part, now: Instant, config: &SettleConfig) -> Added {
        let bytes = part.bytes();
        self.bytes += bytes;
        match part.chunk.trace_id() {
            None => {
                self.loose.push((project.to_owned(), part));
                Added::Due
            }
            Some(trace) => {
                let spans = part.chunk.spans();
                self.spans += spans;
                let pending = self
                    .traces
                    .entry((project.to_owned(), trace))
                    .or_insert_with(|| Pending {
                        parts: Vec::new(),
                        spans: 0,
                        bytes: 0,
                        last: now,
                        early: false,
                    });
                pending.parts.push(part);
                pending.spans += spans;
                pending.bytes += bytes;
                pending.last = now;
                let over = pending.spans > config.max_trace_spans
                    || pending.bytes > config.max_trace_bytes;
                if over && !pending.early {
                    pending.early = true;
                    return Added::Due;
                }
                Added::Waiting
            }
        }
    }

    /// Marks the traces that waited longest early until what is left is
    /// within nine tenths of the budget; traces marked before are on their
    /// way out and do not count.
    fn settle_oldest_early(&mut self, config: &SettleConfig) {
        let (mut spans, mut bytes) = (self.spans, self.bytes);
        for p in self.traces.values().filter(|p| p.early) {
            spans = spans.saturating_sub(p.spans);
            bytes = bytes.saturating_sub(p.bytes);
        }
        if spans <= config.max_spans && bytes <= config.max_bytes {
            return;
        }
        let mut order: Vec<(Instant, (String, TraceId), usize, usize)> = self
            .traces
            .iter()
            .filter(|(_, p)| !p.early)
            .map(|(k, p)| (p.last, k.clone(), p.spans, p.bytes))
            .collect();
        order.sort_by_key(|(last, ..)| *last);
        let (max_spans, max_bytes) = (config.max_spans / 10 * 9, config.max_bytes / 10 * 9);
        for (_, key, s, b) in order {
            if spans <= max_spans && bytes <= max_bytes {
                break;
            }
            if let Some(p) = self.traces.get_mut(&key) {
                p.early = true;
            }
            spans = spans.saturating_sub(s);
            bytes = bytes.saturating_sub(b);
        }
    }
}

/// A span the store remembers only by its id, parent and service (its
/// trace was sampled out): enough to place the spans around it.
fn skeleton(trace_id: TraceId, s: &omegi_store::SpanSkeleton) -> SpanRecord {
    SpanRecord::new(trace_id, s.span_id, "", 0, 0)
        .with_parent(s.parent)
        .with_service(s.service.clone())
}

/// Settles traces of `project` and stores them with `loose` errors in one
/// transaction (see the module docs); returns the store's report and how
/// many traces settled.
#[allow(clippy::too_many_arguments)]
pub(crate) fn settle_traces(
    store: &Store,
    project: &str,
    resources: &[Resource],
    inputs: Vec<(TraceId, TraceInput)>,
    mut loose: Vec<ErrorRecord>,
    sampling: &TailSampling,
    limits: &RecordLimits,
    budget: ErrorBudget,
) -> Result<(IngestReport, SettleCounts), omegi_store::Error> {
    let mut settled = Vec::with_capacity(inputs.len());
    let mut counts = SettleCounts::default();
    // What is known of every trace of the batch, in one read.
    let ids: Vec<TraceId> = inputs.iter().map(|(trace_id, _)| *trace_id).collect();
    let priors = store.traces().settled_many(project, &ids)?;
    for ((trace_id, input), prior) in inputs.into_iter().zip(priors) {
        match settle_one(trace_id, prior, input, sampling, limits, budget) {
            Ok((trace, not_derived)) => {
                settled.push(trace);
                counts.not_derived += not_derived;
            }
            Err(errors) => loose.extend(errors),
        }
    }
    counts.settled = settled.len();
    let report = store
        .traces()
        .ingest_settled(project, resources, &settled, &loose)?;
    Ok((report, counts))
}

/// What [`settle_traces`] counted.
#[derive(Debug, Default)]
pub(crate) struct SettleCounts {
    /// Traces settled.
    pub(crate) settled: usize,
    /// Errors of failed spans left out over [`ErrorBudget::max_errors`].
    pub(crate) not_derived: usize,
}

/// Settles one trace with what the store knows of it (`prior`): `Err`
/// with its errors when it has no span at all (they are stored as errors
/// outside a trace).
fn settle_one(
    trace_id: TraceId,
    prior: Option<PriorSettle>,
    input: TraceInput,
    sampling: &TailSampling,
    limits: &RecordLimits,
    budget: ErrorBudget,
) -> Result<(SettledTrace, usize), Vec<ErrorRecord>> {
    let mut all: Vec<SpanRecord> = Vec::new();
    let mut known: HashSet<SpanId> = HashSet::new();
    let mut also: Vec<SpanId> = Vec::new();
    let mut errors: Vec<ErrorRecord> = input.errors;
    let mut prior_causes: Vec<SpanId> = Vec::new();
    if let Some(prior) = &prior {
        for s in &prior.stored_spans {
            if known.insert(s.span_id) {
                all.push(s.clone());
            }
        }
        for s in &prior.spans {
            if known.insert(s.span_id) {
                all.push(skeleton(trace_id, s));
            }
        }
        also.clone_from(&prior.failing);
        prior_causes = prior
            .cause_errors
            .iter()
            .filter_map(|e| e.span_id)
            .collect();
        errors.extend(prior.cause_errors.iter().cloned());
    }
    let mut new_spans: Vec<SpanRecord> = Vec::new();
    let mut fresh: HashSet<SpanId> = HashSet::new();
    for s in input.spans {
        // A span counted before, or sent twice, is one node.
        if !known.contains(&s.span_id) && fresh.insert(s.span_id) {
            new_spans.push(s.clone());
            all.push(s);
        }
    }
    let Ok(trace) = Trace::from_spans(all) else {
        return Err(errors);
    };
    let attribution = trace.attribute(&errors, &also);
    // Built only for a root cause that reports nothing but its status.
    let mut context: Option<ErrorContext<'_>> = None;
    let mut causes = Vec::new();
    let (mut derived, mut not_derived) = (0, 0);
    for cause in &attribution.causes {
        let consequences = attribution.consequences_of(&trace, cause, &errors);
        let mut recorded: Vec<ErrorRecord> =
            cause.errors.iter().map(|&i| errors[i].clone()).collect();
        if recorded.is_empty() {
            if let Some(node) = cause.node {
                let span = &trace[node].span;
                let reports = span.status == Status::Error
                    && fresh.contains(&span.span_id)
                    && !input.omegi_spans.contains(&span.span_id);
                if reports && derived >= budget.max_errors {
                    not_derived += 1;
                } else if reports {
                    derived += 1;
                    let mut error = trace.status_error(node);
                    context
                        .get_or_insert_with(|| {
                            ErrorContext::new(&trace, limits, budget.context_bytes)
                        })
                        .fill(&mut error, node);
                    recorded.push(error);
                }
            }
        }
        for error in recorded {
            causes.push(SettledCause {
                error,
                consequences: consequences.clone(),
            });
        }
    }
    let retract: Vec<SpanId> = prior_causes
        .into_iter()
        .filter(|span| {
            trace
                .find(*span)
                .is_some_and(|node| !attribution.because_of[node.index()].is_empty())
        })
        .collect();
    let verdict = sampling.decide(&trace, attribution.has_failures());
    let mut settled = SettledTrace::new(trace_id, new_spans, verdict);
    settled.failing = attribution.failing_spans(&trace);
    settled.requests = trace.requests(&attribution.failing);
    settled.calls = trace.calls(&attribution.failing);
    settled.causes = causes;
    settled.retract = retract;
    Ok((settled, not_derived))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{decode_traces, Limits};

    /// A request of one trace with `spans` healthy spans, as OTLP/JSON.
    fn request(trace: u128, spans: u64) -> Decoded {
        let start = crate::api::now_ns() - 1_000_000_000;
        let spans: Vec<String> = (1..=spans)
            .map(|id| {
                format!(
                    r#"{{"traceId":"{trace:032x}","spanId":"{id:016x}","name":"GET /","startTimeUnixNano":"{start}","endTimeUnixNano":"{}"}}"#,
                    start + 1_000
                )
            })
            .collect();
        let body = format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"web"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        );
        decode_traces(
            body.as_bytes(),
            "application/json",
            None,
            &Limits::default(),
        )
        .expect("a valid request")
    }

    /// A window whose settle threads are not started: nothing leaves it.
    fn window(dir: &Path, max_spans: usize, max_bytes: usize) -> Settler {
        let config = SettleConfig::default()
            .trace_wait(Duration::from_secs(3_600))
            .budget(max_spans, max_bytes, 10_000, 16 << 20);
        let errors = ErrorBudget {
            context_bytes: 1 << 20,
            max_errors: 1_000,
        };
        let store = Store::temporary().expect("a store");
        Settler::open(store, dir, config, RecordLimits::default(), errors).expect("a window")
    }

    #[test]
    fn a_request_past_twice_the_span_budget_is_refused_and_nothing_of_it_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let settler = window(dir.path(), 4, 64 << 20);
        // An empty window takes any request, however large.
        assert!(settler.accept("default", &request(1, 6), false).is_ok());
        // 6 + 2 = 8: at twice the budget, still taken.
        assert!(settler.accept("default", &request(2, 2), false).is_ok());
        let before = settler.stats();
        assert_eq!(before.waiting_spans, 8);
        let refused = settler.accept("default", &request(3, 1), false);
        match refused {
            Err(AcceptError::Full {
                spans, max_spans, ..
            }) => assert_eq!((spans, max_spans), (8, 8)),
            other => panic!("not refused: {other:?}"),
        }
        let after = settler.stats();
        assert_eq!(after.refused, 1);
        assert_eq!(after.waiting_spans, 8, "nothing of it waits");
        let log = |s: &SettleStats| s.wal.as_ref().map(|w| w.appended);
        assert_eq!(log(&after), log(&before), "nothing of it is in the log");
    }

    #[test]
    fn a_request_past_twice_the_byte_budget_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = request(1, 10);
        let bytes: usize = group(&first)
            .0
            .iter()
            .map(|(id, (spans, errors))| {
                window_bytes(&TraceChunk::encode(Some(*id), spans, errors).unwrap())
            })
            .sum();
        // Twice the budget holds the first request and not a second.
        let settler = window(dir.path(), 250_000, bytes * 3 / 4);
        assert!(settler.accept("default", &first, false).is_ok());
        let refused = settler.accept("default", &request(2, 10), false);
        assert!(
            matches!(refused, Err(AcceptError::Full { .. })),
            "{refused:?}"
        );
        assert_eq!(settler.stats().waiting_spans, 10);
    }
}
