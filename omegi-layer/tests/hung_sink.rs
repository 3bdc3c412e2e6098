//! A sink that hangs costs the application at most the configured memory:
//! a million records with 1 MiB field values go through a layer whose sink
//! never returns while they are sent; the heap of this process (counted by
//! its own global allocator) stays within the queue's byte budget, the
//! records that do not fit are dropped and counted, and the application
//! thread never waits (the test ends because nothing blocks).
//!
//! One test in its own binary: the allocator counts the whole process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use omegi_core::{Record, Resource};
use omegi_layer::{Sink, SinkError};
use tracing_subscriber::prelude::*;

/// Counts the bytes allocated and not yet freed, and their peak.
struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; only
// the sizes are counted.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            grew(new_size);
            shrank(layout.size());
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// A sink whose `export` does not return until the gate opens.
#[derive(Clone, Default)]
struct HungSink {
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl HungSink {
    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
}

impl Sink for HungSink {
    fn export(&mut self, _batch: Vec<Record>, _: &Resource) -> Result<(), SinkError> {
        let mut open = self.gate.0.lock().unwrap();
        while !*open {
            open = self.gate.1.wait(open).unwrap();
        }
        Ok(())
    }
}

/// A `Display` value, so that the layer formats it rather than copying it.
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A line of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`), for the log.
fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

const MIB: usize = 1024 * 1024;

#[test]
fn a_hung_sink_costs_the_application_at_most_the_configured_memory() {
    const SPANS: usize = 1_000_000;
    const ERRORS: usize = SPANS / 100;
    const QUEUE_BYTES: usize = 8 * MIB;
    // Allocations that the budget does not cover: the batch vector the
    // exporter allocates after handing one to the sink, the registry's
    // pages, a record being built before it is queued.
    const OUTSIDE_THE_BUDGET: usize = MIB;

    let value = "v".repeat(MIB);
    let sink = HungSink::default();
    let (layer, guard) = omegi_layer::layer("svc")
        .with_sink(sink.clone())
        .queue_bytes(QUEUE_BYTES)
        .export_interval(Duration::from_millis(20))
        .flush_timeout(Duration::from_millis(100))
        .build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let hwm_before = proc_status_kib("VmHWM:");
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);

    let started = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..SPANS {
            let span = tracing::info_span!(
                "request",
                i,
                body = value.as_str(),
                detail = %Shown(&value),
            )
            .entered();
            if i % 100 == 0 {
                tracing::error!(payload = %Shown(&value), "failed: {}", Shown(&value));
            }
            drop(span);
        }
    });
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    let stats = guard.stats();
    eprintln!(
        "{SPANS} spans and {ERRORS} errors with 1 MiB values in {elapsed:?}: heap peak \
         {:.2} MiB above the start (budget {} MiB); held {:.2} MiB; dropped {}; \
         VmHWM {hwm_before:?} -> {:?} KiB",
        peak as f64 / MIB as f64,
        QUEUE_BYTES / MIB,
        stats.held_bytes as f64 / MIB as f64,
        stats.dropped,
        proc_status_kib("VmHWM:"),
    );

    assert!(
        peak <= QUEUE_BYTES + OUTSIDE_THE_BUDGET,
        "heap grew by {peak} bytes with a budget of {QUEUE_BYTES}"
    );
    assert!(stats.held_bytes as usize <= QUEUE_BYTES, "{stats:?}");
    assert_eq!(stats.exported, 0, "the sink never returned: {stats:?}");
    // Each span holds two values of 4 KiB: not even 1,000 of them fit.
    assert!(
        stats.dropped as usize >= SPANS + ERRORS - 1_000,
        "{stats:?}"
    );

    // Once the sink returns, everything that was accepted is exported: no
    // record is lost without being counted, and the budget is given back.
    sink.open();
    assert!(guard.flush(Duration::from_secs(30)));
    let stats = guard.stats();
    assert_eq!(
        stats.exported + stats.dropped,
        (SPANS + ERRORS) as u64,
        "{stats:?}"
    );
    assert!(stats.exported > 0, "{stats:?}");
    // Span data waiting to be reused is freed once the application is idle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while guard.stats().held_bytes > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(guard.stats().held_bytes, 0, "{:?}", guard.stats());
}
