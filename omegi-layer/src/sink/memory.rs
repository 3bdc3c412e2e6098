//! An in-memory sink for tests and tool authors.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use omegi_core::{ErrorRecord, Record, Resource, SpanRecord};

use super::{Sink, SinkError};

/// Keeps every exported record in memory; clones share the same records.
///
/// ```
/// use omegi_layer::MemorySink;
/// let sink = MemorySink::new();
/// let reader = sink.clone(); // give `sink` to the layer, read through `reader`
/// assert!(reader.spans().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    records: Vec<Record>,
    resource: Option<Resource>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        // A panic while holding the lock cannot leave the Vec half-written.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every record exported so far, in export order.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    /// The span records exported so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.lock()
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Span(s) => Some(s.clone()),
                Record::Error(_) => None,
            })
            .collect()
    }

    /// The error records exported so far.
    pub fn errors(&self) -> Vec<ErrorRecord> {
        self.lock()
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Error(e) => Some(e.clone()),
                Record::Span(_) => None,
            })
            .collect()
    }

    /// The resource of the last batch, once one arrived.
    pub fn resource(&self) -> Option<Resource> {
        self.lock().resource.clone()
    }

    /// Forgets everything exported so far.
    pub fn clear(&self) {
        self.lock().records.clear();
    }
}

impl Sink for MemorySink {
    fn export(&mut self, batch: Vec<Record>, resource: &Resource) -> Result<(), SinkError> {
        let mut captured = self.lock();
        captured.records.extend(batch);
        captured.resource = Some(resource.clone());
        Ok(())
    }
}
