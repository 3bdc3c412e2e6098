//! The queue between the application and the exporter: a full queue drops and
//! counts, the application never waits, and the guard flushes on drop.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use omegi_core::{Record, Resource};
use omegi_layer::{MemorySink, Sink, SinkError};
use tracing_subscriber::prelude::*;

/// A sink that blocks every export until the gate opens.
#[derive(Clone, Default)]
struct GatedSink {
    gate: Arc<(Mutex<bool>, Condvar)>,
    exported: Arc<Mutex<usize>>,
}

impl GatedSink {
    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
}

impl Sink for GatedSink {
    fn export(&mut self, batch: Vec<Record>, _: &Resource) -> Result<(), SinkError> {
        let mut open = self.gate.0.lock().unwrap();
        while !*open {
            open = self.gate.1.wait(open).unwrap();
        }
        *self.exported.lock().unwrap() += batch.len();
        Ok(())
    }
}

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let sink = GatedSink::default();
    let (layer, guard) = omegi_layer::layer("svc")
        .with_sink(sink.clone())
        .queue_capacity(16)
        .batch_size(4)
        .build();
    let subscriber = tracing_subscriber::registry().with(layer);
    // The sink is stuck: if pushing waited for it, this loop would never end.
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..1000 {
            tracing::info_span!("work", i).in_scope(|| {});
        }
    });
    let stats = guard.stats();
    // At most the queue plus one batch in the exporter's hands got through.
    assert!(stats.dropped >= 1000 - 16 - 4, "{stats:?}");
    sink.open();
    assert!(guard.flush(Duration::from_secs(10)));
    let stats = guard.stats();
    assert_eq!(stats.exported + stats.dropped, 1000, "{stats:?}");
    assert_eq!(*sink.exported.lock().unwrap() as u64, stats.exported);
    assert!(stats.exported > 0);
}

#[test]
fn guard_flushes_on_drop() {
    let sink = MemorySink::new();
    let (layer, guard) = omegi_layer::layer("svc")
        .with_sink(sink.clone())
        // Only the guard's flush can export within this test.
        .export_interval(Duration::from_secs(3600))
        .build();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..100 {
            tracing::info_span!("work", i).in_scope(|| {});
        }
        assert!(sink.spans().is_empty());
        drop(guard);
        assert_eq!(sink.spans().len(), 100);
    });
}

#[test]
fn records_after_the_guard_is_gone_are_counted_as_dropped() {
    let (layer, guard) = omegi_layer::layer("svc")
        .with_sink(omegi_layer::NullSink)
        .build();
    let subscriber = tracing_subscriber::registry().with(layer);
    let dispatch = tracing::Dispatch::new(subscriber);
    tracing::dispatcher::with_default(&dispatch, || {
        drop(guard);
        tracing::info_span!("late").in_scope(|| {});
    });
    let layer = dispatch
        .downcast_ref::<omegi_layer::OmegiLayer<tracing_subscriber::Registry>>()
        .expect("the layer");
    assert_eq!(layer.stats().dropped, 1);
}
