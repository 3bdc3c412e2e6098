//! The bounded queue between the application and the exporter thread, the
//! thread itself, and the guard that flushes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender, TrySendError};
use omegi_core::{CodeLocation, ErrorRecord, EventRecord, Level, Record, Resource, SpanRecord};
use tracing_core::Metadata;

use crate::layer::data::{RawEvent, SpanData};
use crate::sink::Sink;

/// A finished span or an error, on its way to the exporter thread.
pub(crate) enum Item {
    Span {
        meta: &'static Metadata<'static>,
        data: SpanData,
        end_ns: u64,
    },
    Error(Box<ErrorRecord>),
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
}

/// A snapshot of the export counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Records handed to the sink successfully.
    pub exported: u64,
    /// Records dropped because the queue was full or the exporter had stopped.
    pub dropped: u64,
    /// Records lost because the sink returned an error.
    pub failed: u64,
    /// Batches handed to the sink.
    pub batches: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ExportStats {
        ExportStats {
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }
}

/// The application's end of the queue. Cloning is cheap.
#[derive(Clone)]
pub(crate) struct Queue {
    tx: Sender<Item>,
    pub(crate) counters: Arc<Counters>,
}

impl Queue {
    /// Enqueues without ever blocking; a full or closed queue drops and counts.
    pub(crate) fn push(&self, item: Item) {
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Settings of the exporter thread.
pub(crate) struct ExportConfig {
    pub(crate) capacity: usize,
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
    let (tx, rx) = bounded(config.capacity.max(1));
    let (ctl_tx, ctl_rx) = unbounded();
    let counters = Arc::new(Counters::default());
    let mut exporter = Exporter {
        sink,
        resource,
        rx,
        ctl: ctl_rx,
        counters: counters.clone(),
        batch: Vec::with_capacity(config.batch_size),
        batch_size: config.batch_size.max(1),
        interval: config.interval,
    };
    let handle = std::thread::Builder::new()
        .name("omegi-exporter".into())
        .spawn(move || exporter.run());
    let (handle, counters) = match handle {
        Ok(handle) => (Some(handle), counters),
        Err(_) => {
            // Without a thread nothing can be exported: every record is dropped
            // (and counted) because the receiver is gone.
            (None, counters)
        }
    };
    let guard = OmegiGuard {
        ctl: ctl_tx,
        counters: counters.clone(),
        handle,
        flush_timeout: config.flush_timeout,
    };
    (Queue { tx, counters }, guard)
}

struct Exporter {
    sink: Box<dyn Sink>,
    resource: Resource,
    rx: Receiver<Item>,
    ctl: Receiver<Control>,
    counters: Arc<Counters>,
    batch: Vec<Record>,
    batch_size: usize,
    interval: Duration,
}

impl Exporter {
    fn run(&mut self) {
        let mut deadline = Instant::now() + self.interval;
        loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            select! {
                recv(self.rx) -> item => match item {
                    Ok(item) => {
                        self.add(item);
                        if self.batch.len() >= self.batch_size {
                            self.export();
                        }
                    }
                    // Every layer (and with it every sender) is gone: export
                    // what is left, then answer the guard until it goes too.
                    Err(_) => {
                        self.export();
                        let _ = self.sink.flush();
                        for msg in self.ctl.iter() {
                            match msg {
                                Control::Flush(ack) => {
                                    let _ = ack.send(());
                                }
                                Control::Shutdown(ack) => {
                                    let _ = ack.send(());
                                    return;
                                }
                            }
                        }
                        return;
                    }
                },
                recv(self.ctl) -> msg => match msg {
                    Ok(Control::Flush(ack)) => {
                        self.drain();
                        let _ = self.sink.flush();
                        let _ = ack.send(());
                    }
                    Ok(Control::Shutdown(ack)) => {
                        self.drain();
                        let _ = self.sink.flush();
                        let _ = ack.send(());
                        return;
                    }
                    Err(_) => {
                        self.drain();
                        let _ = self.sink.flush();
                        return;
                    }
                },
                default(timeout) => {
                    self.export();
                    deadline = Instant::now() + self.interval;
                }
            }
        }
    }

    /// Exports everything queued right now.
    fn drain(&mut self) {
        while let Ok(item) = self.rx.try_recv() {
            self.add(item);
            if self.batch.len() >= self.batch_size {
                self.export();
            }
        }
        self.export();
    }

    fn add(&mut self, item: Item) {
        let record = match item {
            Item::Span { meta, data, end_ns } => {
                Record::Span(span_record(meta, data, end_ns, &self.resource.service))
            }
            Item::Error(mut error) => {
                if error.service.is_empty() {
                    error.service.clone_from(&self.resource.service);
                }
                Record::Error(*error)
            }
        };
        self.batch.push(record);
    }

    fn export(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        let n = batch.len() as u64;
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        match self.sink.export(batch, &self.resource) {
            Ok(()) => self.counters.exported.fetch_add(n, Ordering::Relaxed),
            Err(_) => self.counters.failed.fetch_add(n, Ordering::Relaxed),
        };
    }
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

pub(crate) fn location(meta: &Metadata<'_>) -> CodeLocation {
    CodeLocation {
        file: meta.file().map(str::to_owned),
        line: meta.line(),
        module: meta.module_path().map(str::to_owned),
    }
}

pub(crate) fn attributes(
    fields: &[(&'static str, omegi_core::Value)],
) -> Vec<omegi_core::Attribute> {
    fields
        .iter()
        .map(|(k, v)| omegi_core::Attribute {
            key: (*k).to_owned(),
            value: v.clone(),
        })
        .collect()
}

pub(crate) fn event_record(event: &RawEvent) -> EventRecord {
    EventRecord {
        time_ns: event.time_ns,
        level: level(event.meta),
        target: event.meta.target().to_owned(),
        message: event.message.clone(),
        fields: attributes(&event.fields),
        location: location(event.meta),
    }
}

fn span_record(
    meta: &'static Metadata<'static>,
    data: SpanData,
    end_ns: u64,
    service: &str,
) -> SpanRecord {
    SpanRecord {
        trace_id: data.trace_id,
        span_id: data.span_id,
        parent_span_id: data.parent,
        remote_parent: data.remote_parent,
        service: service.to_owned(),
        name: data.name.unwrap_or_else(|| meta.name().to_owned()),
        target: meta.target().to_owned(),
        level: level(meta),
        kind: data.kind,
        start_ns: data.start_ns,
        end_ns,
        attributes: attributes(&data.attributes),
        events: data.events.iter().map(|e| event_record(e)).collect(),
        dropped_events: data.dropped_events,
        status: data.status,
        status_message: data.status_message,
        location: location(meta),
    }
}

/// Keeps the exporter running; dropping it flushes everything pending (with a
/// timeout) and stops the exporter thread.
///
/// Keep it alive for as long as the application runs, e.g. as a variable in
/// `main`: `let _guard = ...;` (not `let _ = ...;`, which drops it at once).
#[must_use = "dropping the guard stops the exporter"]
pub struct OmegiGuard {
    ctl: Sender<Control>,
    counters: Arc<Counters>,
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
        ack_rx.recv_timeout(timeout).is_ok()
    }

    /// The export counters: exported, dropped (queue full), failed (sink error).
    pub fn stats(&self) -> ExportStats {
        self.counters.snapshot()
    }
}

impl Drop for OmegiGuard {
    fn drop(&mut self) {
        let (ack_tx, ack_rx) = bounded(1);
        if self.ctl.send(Control::Shutdown(ack_tx)).is_ok()
            && ack_rx.recv_timeout(self.flush_timeout).is_ok()
        {
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
