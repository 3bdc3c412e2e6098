//! The bounded queue between the application and the exporter thread, the
//! thread itself, and the guard that flushes it.

use std::mem::size_of;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TryRecvError};
use crossbeam_queue::ArrayQueue;
use omegi_core::{
    CodeLocation, ErrorRecord, EventRecord, Level, Record, Resource, SpanRecord, Text,
};
use tracing_core::Metadata;

use crate::layer::data::{FieldValue, RawEvent, SpanData};
use crate::sink::Sink;

/// A finished span as the layer captured it: its callsite, its data and
/// when it closed.
pub(crate) struct CapturedSpan {
    /// Its callsite is `data.meta`.
    pub(crate) data: Box<SpanData>,
    pub(crate) end_ns: u64,
}

impl CapturedSpan {
    /// The span as a record of the model, for sinks that take records.
    fn record(&self, service: &str) -> SpanRecord {
        span_record(&self.data, self.end_ns, service)
    }
}

/// A finished span or an error, on its way to the exporter thread.
///
/// A span's data stays in the box it was captured into, from the layer's
/// span table through the queue and the sink's batch and back, so that only
/// a pointer moves.
pub(crate) enum Item {
    Span(CapturedSpan),
    Error {
        record: Box<ErrorRecord>,
        /// Estimated bytes of the record.
        bytes: usize,
    },
}

impl Item {
    /// An error record on its way to the exporter.
    pub(crate) fn error(record: ErrorRecord) -> Self {
        Item::Error {
            bytes: error_bytes(&record),
            record: Box::new(record),
        }
    }

    /// What the item counts against the queue's byte budget until it is
    /// exported and freed. A span counts twice: its captured data, which
    /// stays alive until the application reuses it, and the record a sink
    /// may make of it (see [`CapturedBatch::take_records`]), alive until
    /// the sink returns. An error record is moved into the batch as it is.
    #[inline]
    fn charge(&mut self) -> usize {
        match self {
            Item::Span(span) => {
                let data = &mut span.data;
                data.charged_bytes = data.estimated_bytes();
                2 * data.charged_bytes
            }
            Item::Error { bytes, .. } => *bytes,
        }
    }
}

/// One batch of spans and errors as the layer captured them, handed to
/// [`Sink::export_captured`].
///
/// The OTLP sink encodes its spans straight from it, without making records
/// of them; other sinks take the records of the model with
/// [`take_records`](Self::take_records) (what [`Sink::export_captured`]
/// does unless a sink overrides it). The exporter thread reuses the batch
/// from export to export.
pub struct CapturedBatch {
    items: Vec<Captured>,
}

enum Captured {
    Span(CapturedSpan),
    /// `None` once taken by [`CapturedBatch::take_records`].
    Error(Option<Box<ErrorRecord>>),
}

impl CapturedBatch {
    fn with_capacity(capacity: usize) -> Self {
        CapturedBatch {
            items: Vec::with_capacity(capacity),
        }
    }

    /// Spans and errors in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The batch as records of the model, in the order captured: spans made
    /// into [`SpanRecord`]s of the service `resource` names, error records
    /// moved out (a second call returns the spans only).
    pub fn take_records(&mut self, resource: &Resource) -> Vec<Record> {
        self.items
            .iter_mut()
            .filter_map(|item| match item {
                Captured::Span(span) => Some(Record::Span(span.record(&resource.service))),
                Captured::Error(error) => error.take().map(|e| Record::Error(*e)),
            })
            .collect()
    }

    /// The captured spans, in order.
    pub(crate) fn spans(&self) -> impl DoubleEndedIterator<Item = &CapturedSpan> {
        self.items.iter().filter_map(|item| match item {
            Captured::Span(span) => Some(span),
            Captured::Error(_) => None,
        })
    }

    /// The error records, moved out.
    pub(crate) fn take_errors(&mut self) -> Vec<ErrorRecord> {
        self.items
            .iter_mut()
            .filter_map(|item| match item {
                Captured::Error(error) => error.take().map(|e| *e),
                Captured::Span(_) => None,
            })
            .collect()
    }
}

impl std::fmt::Debug for CapturedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturedBatch")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Estimated bytes of an error record and what it holds.
fn error_bytes(error: &ErrorRecord) -> usize {
    let attributes = |fields: &[omegi_core::Attribute]| -> usize {
        fields
            .iter()
            .map(|a| {
                size_of::<omegi_core::Attribute>()
                    + a.key.capacity()
                    + match &a.value {
                        omegi_core::Value::Str(text) => text.capacity(),
                        _ => 0,
                    }
            })
            .sum()
    };
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
    size_of::<ErrorRecord>()
        + error.service.capacity()
        + error.message.capacity()
        + error
            .causes
            .iter()
            .map(|c| size_of::<String>() + c.capacity())
            .sum::<usize>()
        + text(&error.error_type)
        + error.target.capacity()
        + attributes(&error.fields)
        + error
            .span_stack
            .iter()
            .map(|f| {
                size_of::<omegi_core::SpanFrame>()
                    + f.name.capacity()
                    + f.target.capacity()
                    + attributes(&f.fields)
            })
            .sum::<usize>()
        + error
            .breadcrumbs
            .iter()
            .map(|e| size_of::<EventRecord>() + e.message.capacity() + attributes(&e.fields))
            .sum::<usize>()
        + text(&error.thread)
        + text(&error.fingerprint)
}

enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// Counters of the export pipeline, shared by the layer, the thread and the guard.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) exported: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) batches: AtomicU64,
    /// Estimated bytes held for export (see [`Item::charge`]).
    pub(crate) held_bytes: AtomicUsize,
}

/// A snapshot of the export counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Records handed to the sink successfully.
    pub exported: u64,
    /// Records dropped because the queue held as many records or bytes as
    /// it may (`queue_capacity`, `queue_bytes`), or the exporter had stopped.
    pub dropped: u64,
    /// Records lost because the sink returned an error.
    pub failed: u64,
    /// Batches handed to the sink.
    pub batches: u64,
    /// Estimated bytes the export pipeline holds right now: records waiting
    /// in the queue or in the sink's hands, and captured span data waiting
    /// to be reused. Never more than `queue_bytes`.
    pub held_bytes: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ExportStats {
        ExportStats {
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            held_bytes: self.held_bytes.load(Ordering::Relaxed) as u64,
        }
    }

    /// Takes `bytes` from the budget of `max` bytes and returns what is
    /// held now; `None`, taking nothing, when they do not fit.
    #[inline]
    fn reserve(&self, bytes: usize, max: usize) -> Option<usize> {
        let held = self
            .held_bytes
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if held <= max {
            return Some(held);
        }
        self.release(bytes);
        None
    }

    /// Gives `bytes` back to the budget.
    #[inline]
    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

/// State shared by the application's end of the queue and the exporter.
struct Shared {
    queue: ArrayQueue<Item>,
    counters: Arc<Counters>,
    /// The byte budget of everything held for export.
    max_bytes: usize,
    /// Queue length at which the application wakes the exporter early.
    wake_at: usize,
    /// Bytes held at which the application wakes the exporter early.
    wake_at_bytes: usize,
    /// Set while a wake-up is pending, so that only one thread sends it.
    waking: AtomicBool,
    /// Set when the exporter has stopped: later records are dropped at once.
    closed: AtomicBool,
    exporter: OnceLock<Thread>,
    /// Span data the exporter has converted, handed back for the application
    /// to reuse for its next spans: no allocation per span, and nothing
    /// allocated on one thread is freed on another (allocators cache freed
    /// memory per thread).
    returned: ArrayQueue<Box<SpanData>>,
}

impl Shared {
    fn wake(&self) {
        if let Some(thread) = self.exporter.get() {
            thread.unpark();
        }
    }
}

/// The application's end of the queue. Cloning is cheap.
///
/// Pushing is lock-free and never blocks: the exporter is not woken per
/// record (a wake-up is a system call) but polls on an interval, and is woken
/// early only when the queue is half full, in records or in bytes.
#[derive(Clone)]
pub(crate) struct Queue {
    shared: Arc<Shared>,
    pub(crate) counters: Arc<Counters>,
}

impl Queue {
    /// Enqueues without ever blocking; a full or closed queue, or one that
    /// holds as many bytes as it may, drops and counts.
    pub(crate) fn push(&self, mut item: Item) {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Relaxed) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let bytes = item.charge();
        let Some(held) = self.counters.reserve(bytes, shared.max_bytes) else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if shared.queue.push(item).is_err() {
            self.counters.release(bytes);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if (shared.queue.len() >= shared.wake_at || held >= shared.wake_at_bytes)
            && !shared.waking.swap(true, Ordering::AcqRel)
        {
            shared.wake();
        }
    }

    /// A box of span data that the exporter has finished with, to be
    /// overwritten for a new span; what it held leaves the byte budget.
    #[cfg(test)]
    pub(crate) fn recycled(&self) -> Option<Box<SpanData>> {
        self.returned().map(|data| self.reuse(data))
    }

    /// A box of span data that the exporter has finished with, not read
    /// yet: its memory is asked for now (see [`prefetch`]), so that other
    /// work can run while it arrives; [`Queue::reuse`] before it is
    /// overwritten.
    #[inline]
    pub(crate) fn returned(&self) -> Option<Box<SpanData>> {
        let data = self.shared.returned.pop()?;
        prefetch(&data);
        Some(data)
    }

    /// Takes what returned `data` held out of the byte budget, to be
    /// overwritten for a new span.
    #[inline]
    pub(crate) fn reuse(&self, data: Box<SpanData>) -> Box<SpanData> {
        self.counters.release(data.charged_bytes);
        data
    }
}

/// Asks for the memory of `data` ahead of its first read. The exporter
/// read it last, on another core; read at once, every line would be a
/// cache miss that the next atomic operation (the byte budget, a lock)
/// waits for, since those wait for every earlier load. A prefetch is not
/// waited for.
#[inline]
fn prefetch(data: &SpanData) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = std::ptr::from_ref(data).cast::<i8>();
        for offset in (0..size_of::<SpanData>()).step_by(64) {
            // SAFETY: a prefetch is a hint: it changes nothing the program
            // can see and never faults, whatever the address; SSE, which it
            // needs, is part of every x86_64 processor.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Settings of the exporter thread.
pub(crate) struct ExportConfig {
    pub(crate) capacity: usize,
    pub(crate) max_bytes: usize,
    pub(crate) batch_size: usize,
    pub(crate) interval: Duration,
    pub(crate) flush_timeout: Duration,
}

/// Starts the exporter thread and returns the queue and the guard.
pub(crate) fn start(
    sink: Box<dyn Sink>,
    resource: Resource,
    config: ExportConfig,
) -> (Queue, OmegiGuard) {
    let capacity = config.capacity.max(2);
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(Shared {
        queue: ArrayQueue::new(capacity),
        counters: counters.clone(),
        max_bytes: config.max_bytes,
        wake_at_bytes: config.max_bytes / 2,
        wake_at: capacity / 2,
        waking: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        exporter: OnceLock::new(),
        // The exporter wakes when the main queue is half full and returns
        // a burst of that size.
        returned: ArrayQueue::new((capacity / 2).max(1)),
    });
    let (ctl_tx, ctl_rx) = unbounded();
    let mut exporter = Exporter {
        sink,
        resource,
        shared: shared.clone(),
        ctl: ctl_rx,
        batch: CapturedBatch::with_capacity(config.batch_size.max(1)),
        batch_bytes: 0,
        batch_size: config.batch_size.max(1),
        interval: config.interval,
        last_item: Instant::now(),
    };
    let handle = std::thread::Builder::new()
        .name("omegi-exporter".into())
        .spawn(move || exporter.run());
    let handle = match handle {
        Ok(handle) => {
            let _ = shared.exporter.set(handle.thread().clone());
            Some(handle)
        }
        Err(_) => {
            // Without a thread nothing can be exported: drop and count.
            shared.closed.store(true, Ordering::Relaxed);
            None
        }
    };
    let guard = OmegiGuard {
        ctl: ctl_tx,
        shared: shared.clone(),
        handle,
        flush_timeout: config.flush_timeout,
    };
    (Queue { shared, counters }, guard)
}

struct Exporter {
    sink: Box<dyn Sink>,
    resource: Resource,
    shared: Arc<Shared>,
    ctl: Receiver<Control>,
    /// Reused from export to export.
    batch: CapturedBatch,
    /// What the records of `batch` count against the byte budget.
    batch_bytes: usize,
    batch_size: usize,
    interval: Duration,
    /// When the exporter last found records in the queue.
    last_item: Instant,
}

impl Exporter {
    fn run(&mut self) {
        loop {
            // Wait first: at start the queue is empty, and a flush or a
            // half-full queue unparks at once.
            std::thread::park_timeout(self.interval);
            loop {
                match self.ctl.try_recv() {
                    Ok(Control::Flush(ack)) => {
                        self.drain();
                        let _ = self.sink.flush();
                        let _ = ack.send(());
                    }
                    Ok(Control::Shutdown(ack)) => {
                        self.shutdown();
                        let _ = ack.send(());
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                    // The guard is gone.
                    Err(TryRecvError::Disconnected) => {
                        self.shutdown();
                        return;
                    }
                }
            }
            self.shared.waking.store(false, Ordering::Release);
            self.drain();
            self.free_when_idle();
        }
    }

    fn shutdown(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.drain();
        let _ = self.sink.flush();
    }

    /// Frees span data still waiting to be reused once the application has
    /// sent nothing for a whole interval: an idle application would keep it
    /// (and what it holds) alive, and there is no one to contend with.
    fn free_when_idle(&mut self) {
        if self.last_item.elapsed() < self.interval {
            return;
        }
        while let Some(data) = self.shared.returned.pop() {
            self.shared.counters.release(data.charged_bytes);
            drop(data);
        }
    }

    /// Exports everything queued right now, in batches.
    fn drain(&mut self) {
        if !self.shared.queue.is_empty() {
            self.last_item = Instant::now();
        }
        while let Some(item) = self.shared.queue.pop() {
            self.add(item);
            if self.batch.len() >= self.batch_size {
                self.export();
            }
        }
        self.export();
    }

    fn add(&mut self, item: Item) {
        let captured = match item {
            // The span's data is not read here (see `warm`).
            Item::Span(span) => Captured::Span(span),
            Item::Error { mut record, bytes } => {
                if record.service.is_empty() {
                    record.service.clone_from(&self.resource.service);
                }
                self.batch_bytes += bytes;
                Captured::Error(Some(record))
            }
        };
        self.batch.items.push(captured);
    }

    fn export(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let n = self.batch.len() as u64;
        // The records' share of the spans' charge (see `Item::charge`).
        self.batch_bytes += warm(&self.batch.items);
        let counters = &self.shared.counters;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        match self.sink.export_captured(&mut self.batch, &self.resource) {
            Ok(()) => counters.exported.fetch_add(n, Ordering::Relaxed),
            Err(_) => counters.failed.fetch_add(n, Ordering::Relaxed),
        };
        // The sink has returned: what it made of the batch is freed (a sink
        // that keeps records, like `MemorySink`, keeps them on its own
        // account), and the spans' data goes back for the application to
        // reuse (see `Shared::returned`); when that queue is full, it is
        // freed here.
        counters.release(std::mem::take(&mut self.batch_bytes));
        for item in self.batch.items.drain(..) {
            if let Captured::Span(span) = item {
                if let Err(data) = self.shared.returned.push(span.data) {
                    counters.release(data.charged_bytes);
                }
            }
        }
    }
}

/// Reads a little of each span's data, in a loop of loads that do not
/// wait on each other, before the sink reads all of it, and returns what
/// the spans are charged. The data was written on the application's
/// threads, so it is in another core's cache or in memory: read here, the
/// misses overlap, instead of stalling the sink once per span. (Read while
/// the queue is drained, each miss would wait alone: every pop is an atomic
/// read-modify-write, which later loads do not pass.)
#[inline(never)]
fn warm(items: &[Captured]) -> usize {
    let mut seen = 0u64;
    let mut charged = 0;
    for item in items {
        if let Captured::Span(span) = item {
            let data = &*span.data;
            charged += data.charged_bytes;
            seen ^= data.start_ns ^ u64::from(data.dropped_events);
            // Fields past those kept inline, and events, live in boxes of
            // their own.
            for (key, _) in data.attributes.iter().step_by(2) {
                seen ^= key.len() as u64;
            }
            for event in &data.events {
                seen ^= event.time_ns ^ event.message.len() as u64;
            }
        }
    }
    std::hint::black_box(seen);
    charged
}

pub(crate) fn level(meta: &Metadata<'_>) -> Level {
    match *meta.level() {
        tracing_core::Level::TRACE => Level::Trace,
        tracing_core::Level::DEBUG => Level::Debug,
        tracing_core::Level::INFO => Level::Info,
        tracing_core::Level::WARN => Level::Warn,
        _ => Level::Error,
    }
}

pub(crate) fn location(meta: &Metadata<'static>) -> CodeLocation {
    CodeLocation {
        file: meta.file().map(Text::Borrowed),
        line: meta.line(),
        module: meta.module_path().map(Text::Borrowed),
    }
}

pub(crate) fn attributes(fields: &[(&'static str, FieldValue)]) -> Vec<omegi_core::Attribute> {
    fields
        .iter()
        .map(|(k, v)| omegi_core::Attribute {
            key: (*k).to_owned(),
            value: v.to_value(),
        })
        .collect()
}

pub(crate) fn event_record(event: &RawEvent) -> EventRecord {
    EventRecord::new(event.time_ns, level(event.meta), event.message.to_string())
        .with_target(Text::Borrowed(event.meta.target()))
        .with_fields(attributes(&event.fields))
        .with_location(location(event.meta))
}

pub(crate) fn span_record(data: &SpanData, end_ns: u64, service: &str) -> SpanRecord {
    let meta = data.meta;
    let name = data
        .name
        .clone()
        .map_or(Text::Borrowed(meta.name()), Text::Owned);
    let mut span = SpanRecord::new(data.trace_id, data.span_id, name, data.start_ns, end_ns);
    span.parent_span_id = data.parent;
    span.remote_parent = data.remote_parent;
    span.service = service.to_owned();
    span.target = Text::Borrowed(meta.target());
    span.level = level(meta);
    span.kind = data.kind;
    span.attributes = attributes(&data.attributes);
    span.events = data.events.iter().map(|e| event_record(e)).collect();
    span.dropped_events = data.dropped_events;
    span.status = data.status;
    span.status_message = data.status_message.clone();
    span.location = location(meta);
    span
}

/// Keeps the exporter running; dropping it flushes everything pending (with a
/// timeout) and stops the exporter thread.
///
/// Keep it alive for as long as the application runs, e.g. as a variable in
/// `main`: `let _guard = ...;` (not `let _ = ...;`, which drops it at once).
#[must_use = "dropping the guard stops the exporter"]
pub struct OmegiGuard {
    ctl: Sender<Control>,
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
    flush_timeout: Duration,
}

impl OmegiGuard {
    /// Exports everything queued so far and flushes the sink. Returns `false`
    /// if that did not finish within `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = bounded(1);
        if self.ctl.send(Control::Flush(ack_tx)).is_err() {
            return false;
        }
        self.shared.wake();
        ack_rx.recv_timeout(timeout).is_ok()
    }

    /// The export counters: exported, dropped (queue full, in records or
    /// bytes), failed (sink error), and the bytes held for export.
    pub fn stats(&self) -> ExportStats {
        self.shared.counters.snapshot()
    }
}

impl Drop for OmegiGuard {
    fn drop(&mut self) {
        let (ack_tx, ack_rx) = bounded(1);
        let sent = self.ctl.send(Control::Shutdown(ack_tx)).is_ok();
        self.shared.wake();
        if sent && ack_rx.recv_timeout(self.flush_timeout).is_ok() {
            if let Some(handle) = self.handle.take() {
                let _ = handle.join();
            }
        }
        // On timeout the thread is left to finish on its own: the
        // application must not hang on a slow sink at exit.
    }
}

impl std::fmt::Debug for OmegiGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OmegiGuard")
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use omegi_core::{Resource, SpanId, TraceId};

    use super::*;
    use crate::layer::data::{LocalTrace, SpanData};
    use crate::sink::NullSink;

    fn span_data(id: u64) -> SpanData {
        let meta = tracing::info_span!("work")
            .metadata()
            .expect("span metadata");
        let mut data = *SpanData::start(
            None,
            meta,
            TraceId(1),
            None,
            Arc::new(LocalTrace::default()),
        );
        data.span_id = SpanId(id);
        data.start_ns = 1;
        data.name = Some("work".into());
        data
    }

    fn span(id: u64) -> Item {
        Item::Span(CapturedSpan {
            data: Box::new(span_data(id)),
            end_ns: 2,
        })
    }

    /// An exporter with a null sink that has exported spans `1..=10`.
    fn exported_ten(interval: Duration) -> (Queue, OmegiGuard) {
        let (queue, guard) = start(
            Box::new(NullSink),
            Resource::default(),
            ExportConfig {
                capacity: 64,
                max_bytes: 1 << 20,
                batch_size: 8,
                interval,
                flush_timeout: Duration::from_secs(5),
            },
        );
        for id in 1..=10 {
            queue.push(span(id));
        }
        assert!(guard.flush(Duration::from_secs(5)));
        assert_eq!(guard.stats().exported, 10);
        (queue, guard)
    }

    #[test]
    fn exported_span_data_goes_back_to_the_application_for_reuse() {
        let (queue, _guard) = exported_ten(Duration::from_secs(60));
        // The exporter converted the spans and handed their data back.
        assert_eq!(queue.shared.returned.len(), 10);
        let mut ids: Vec<u64> = std::iter::from_fn(|| queue.recycled())
            .map(|data| data.span_id.0)
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=10).collect::<Vec<_>>());
        assert!(queue.recycled().is_none());
    }

    #[test]
    fn held_bytes_follow_a_span_until_it_is_exported_and_its_data_reused() {
        let (queue, guard) = start(
            Box::new(NullSink),
            Resource::default(),
            ExportConfig {
                capacity: 64,
                max_bytes: 1 << 20,
                batch_size: 8,
                interval: Duration::from_secs(60),
                flush_timeout: Duration::from_secs(5),
            },
        );
        let estimate = span_data(1).estimated_bytes();
        assert!(estimate >= std::mem::size_of::<SpanData>());
        queue.push(span(1));
        // Queued: its data, and room for the record made of it.
        assert_eq!(guard.stats().held_bytes, 2 * estimate as u64);
        assert!(guard.flush(Duration::from_secs(5)));
        // Exported: the data waits to be reused.
        assert_eq!(guard.stats().held_bytes, estimate as u64);
        let data = queue.recycled().expect("returned data");
        assert_eq!(guard.stats().held_bytes, 0);
        drop(data);
        queue.push(Item::error(
            ErrorRecord::new("x".repeat(1000), 1).with_causes(vec!["y".repeat(500)]),
        ));
        let held = guard.stats().held_bytes;
        assert!(
            held >= 1500 + std::mem::size_of::<ErrorRecord>() as u64,
            "{held}"
        );
        assert!(guard.flush(Duration::from_secs(5)));
        assert_eq!(guard.stats().held_bytes, 0);
    }

    #[test]
    fn what_does_not_fit_in_the_byte_budget_is_dropped_and_counted() {
        let estimate = span_data(1).estimated_bytes();
        let (queue, guard) = start(
            Box::new(NullSink),
            Resource::default(),
            ExportConfig {
                capacity: 64,
                // Room for two spans, not three.
                max_bytes: 5 * estimate,
                batch_size: 8,
                interval: Duration::from_secs(60),
                flush_timeout: Duration::from_secs(5),
            },
        );
        for id in 1..=5 {
            queue.push(span(id));
        }
        let stats = guard.stats();
        assert_eq!(stats.dropped, 3, "{stats:?}");
        assert_eq!(stats.held_bytes, 4 * estimate as u64);
        assert!(guard.flush(Duration::from_secs(5)));
        assert_eq!(guard.stats().exported, 2);
    }

    #[test]
    fn an_idle_application_does_not_keep_span_data_alive() {
        let (queue, _guard) = exported_ten(Duration::from_millis(20));
        // Nothing more is sent: within a few intervals the exporter frees
        // the data itself.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !queue.shared.returned.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(queue.shared.returned.is_empty());
    }
}
