//! Embedded mode: records go straight into an `omegi-store` database.

use omegi_core::{Record, Resource};
use omegi_store::Store;

use super::{Sink, SinkError};

/// Writes batches into a [`Store`] under one project (feature `store`).
///
/// Spans, issues and occurrences are queryable as soon as a batch is
/// exported; they are durable after the guard's flush (which flushes the
/// store) or sled's periodic flush.
///
/// ```
/// use omegi_layer::sink::StoreSink;
/// let store = omegi_store::Store::temporary().unwrap();
/// let (layer, _guard) = omegi_layer::layer("billing")
///     .with_sink(StoreSink::new(store.clone(), "default"))
///     .build::<tracing_subscriber::Registry>();
/// # drop(layer);
/// ```
#[derive(Debug, Clone)]
pub struct StoreSink {
    store: Store,
    project: String,
}

impl StoreSink {
    /// A sink that writes into `store` under `project`.
    pub fn new(store: Store, project: impl Into<String>) -> Self {
        StoreSink {
            store,
            project: project.into(),
        }
    }
}

impl Sink for StoreSink {
    fn export(&mut self, batch: Vec<Record>, resource: &Resource) -> Result<(), SinkError> {
        self.store
            .traces()
            .ingest(&self.project, resource, &batch)
            .map(|_| ())
            .map_err(SinkError::new)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.store.flush().map(|_| ()).map_err(SinkError::new)
    }
}
