//! Where captured records go: the [`Sink`] trait and the sinks that ship with
//! the layer.
//!
//! A sink runs on the exporter thread only, so it may block and do I/O; the
//! application never waits for it.

use std::error::Error as StdError;

use omegi_core::{Record, Resource};

mod memory;
#[cfg(feature = "otlp")]
mod otlp;
#[cfg(feature = "store")]
mod store;

pub use crate::export::CapturedBatch;
pub use memory::MemorySink;
#[cfg(feature = "otlp")]
pub use otlp::{OtlpProtocol, OtlpSink, OtlpSinkBuilder};
#[cfg(feature = "store")]
pub use store::StoreSink;

/// Why a sink could not export a batch.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SinkError(pub Box<dyn StdError + Send + Sync>);

impl SinkError {
    /// An error from any error value or message.
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        SinkError(error.into())
    }
}

/// A destination for batches of captured records.
///
/// Implemented by [`MemorySink`], by the store sink (feature `store`) and by
/// the OTLP sink (feature `otlp`); tool authors may write their own.
pub trait Sink: Send + 'static {
    /// Exports one batch of records from the process described by `resource`.
    fn export(&mut self, batch: Vec<Record>, resource: &Resource) -> Result<(), SinkError>;

    /// Exports one batch as the layer captured it; what the exporter thread
    /// calls. By default it makes records of the batch
    /// ([`CapturedBatch::take_records`]) and calls [`export`](Self::export);
    /// the OTLP sink encodes the spans straight from the captured data
    /// instead, without a record per span.
    fn export_captured(
        &mut self,
        batch: &mut CapturedBatch,
        resource: &Resource,
    ) -> Result<(), SinkError> {
        let records = batch.take_records(resource);
        self.export(records, resource)
    }

    /// Makes everything exported so far durable or delivered. Called when the
    /// guard flushes.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl<T: Sink + ?Sized> Sink for Box<T> {
    fn export(&mut self, batch: Vec<Record>, resource: &Resource) -> Result<(), SinkError> {
        (**self).export(batch, resource)
    }

    fn export_captured(
        &mut self,
        batch: &mut CapturedBatch,
        resource: &Resource,
    ) -> Result<(), SinkError> {
        (**self).export_captured(batch, resource)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        (**self).flush()
    }
}

/// Discards every batch: chosen explicitly with
/// [`OmegiBuilder::with_sink`](crate::OmegiBuilder::with_sink) (a layer
/// without a sink sends OTLP), and the floor in benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn export(&mut self, _batch: Vec<Record>, _resource: &Resource) -> Result<(), SinkError> {
        Ok(())
    }

    fn export_captured(
        &mut self,
        _batch: &mut CapturedBatch,
        _resource: &Resource,
    ) -> Result<(), SinkError> {
        // Nothing to make records for.
        Ok(())
    }
}
