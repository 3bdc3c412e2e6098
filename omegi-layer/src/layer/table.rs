//! The data of open spans, by span id: the layer's own table, instead of
//! the registry's extensions.
//!
//! The registry keeps a layer's per-span data in a map of boxed values per
//! span: one allocation, a map insert and a map removal per span, on the
//! application's thread. Here a span's data (already a box, reused from
//! span to span) moves into a shard of a table keyed by the span's id, and
//! out again when the span closes: no allocation, one short lock each time.
//!
//! Rule for callers: nothing runs under a shard's lock but the layer's own
//! code (no field is visited, no `Debug` of the application's runs, no
//! event is emitted), and no second shard is locked while one is held, so
//! that a span's data is never waited for by the thread that holds it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing_core::span::Id;

use super::data::SpanData;
use crate::hash::{mix, BuildWordHasher};

/// Shards: enough that threads touching different spans rarely meet.
const SHARDS: usize = 64;

type Map = HashMap<u64, Box<SpanData>, BuildWordHasher>;

/// One shard, alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
struct Shard(Mutex<Map>);

/// Open spans' data by span id (see the module docs).
pub(crate) struct SpanTable {
    shards: Box<[Shard]>,
}

impl Default for SpanTable {
    fn default() -> Self {
        SpanTable {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl SpanTable {
    #[inline]
    fn shard(&self, id: &Id) -> MutexGuard<'_, Map> {
        // The map takes the low bits (its slot) and the top 7 (its tags):
        // the shard, bits from the middle.
        let index = (mix(0, id.into_u64()) >> 32) as usize % SHARDS;
        self.shards[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the data of span `id`, which has just opened.
    #[inline]
    pub(crate) fn insert(&self, id: &Id, data: Box<SpanData>) {
        let replaced = self.shard(id).insert(id.into_u64(), data);
        // An id is not reused before its span closed, so there is nothing
        // to replace; if there were, it is freed outside the lock.
        drop(replaced);
    }

    /// Takes the data of span `id`, which is closing.
    #[inline]
    pub(crate) fn remove(&self, id: &Id) -> Option<Box<SpanData>> {
        self.shard(id).remove(&id.into_u64())
    }

    /// Runs `f` on the data of span `id` under its shard's lock: `f` must
    /// follow the rule of the module docs.
    #[inline]
    pub(crate) fn with<R>(&self, id: &Id, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
        self.shard(id).get_mut(&id.into_u64()).map(|data| f(data))
    }

    /// Spans whose data the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}
