//! The writes of one change (an ingest, a step of retention, a part of an
//! import), staged in memory and applied in one sled transaction.
//!
//! A change first reads what it needs and stages every write here; reads
//! of staged keys see the staged value, so a change that touches a key
//! twice (two errors of one issue) builds on its own writes. Nothing is
//! written until [`Writes::commit`], which applies all of them in one
//! multi-tree transaction: other readers see none or all of them, and sled
//! recovers none or all of them after a crash (see the crate docs). So
//! whatever can refuse a change (a name too long, a value that does not
//! encode) refuses it while staging, before anything is written.

use crate::error::Db;
use std::collections::BTreeMap;

use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError, Transactional,
};
use sled::IVec;

use crate::error::{Error, Result};
use crate::{Core, Trees};

/// The trees a change can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TreeId {
    Segments,
    Traces,
    TraceIndex,
    Issues,
    IssuesByLastSeen,
    IssuesByFirstSeen,
    Occurrences,
    OccurrencesByTime,
    IssueCounters,
    Consequences,
    Settled,
    SettledByStart,
    Traffic,
    Counters,
    ServiceCounters,
    Totals,
    Services,
    Projects,
}

impl TreeId {
    pub(crate) fn tree(self, t: &Trees) -> &sled::Tree {
        match self {
            TreeId::Segments => &t.segments,
            TreeId::Traces => &t.traces,
            TreeId::TraceIndex => &t.trace_index,
            TreeId::Issues => &t.issues,
            TreeId::IssuesByLastSeen => &t.issues_by_last_seen,
            TreeId::IssuesByFirstSeen => &t.issues_by_first_seen,
            TreeId::Occurrences => &t.occurrences,
            TreeId::OccurrencesByTime => &t.occurrences_by_time,
            TreeId::IssueCounters => &t.issue_counters,
            TreeId::Consequences => &t.consequences,
            TreeId::Settled => &t.settled,
            TreeId::SettledByStart => &t.settled_by_start,
            TreeId::Traffic => &t.traffic,
            TreeId::Counters => &t.counters,
            TreeId::ServiceCounters => &t.service_counters,
            TreeId::Totals => &t.totals,
            TreeId::Services => &t.services,
            TreeId::Projects => &t.projects,
        }
    }
}

/// Point reads, from the database or through staged writes.
pub(crate) trait Lookup {
    /// The value of `key` in `tree`.
    fn lookup(&self, tree: TreeId, key: &[u8]) -> Result<Option<IVec>>;
}

impl Lookup for Trees {
    fn lookup(&self, tree: TreeId, key: &[u8]) -> Result<Option<IVec>> {
        tree.tree(self).get(key).db()
    }
}

/// Writes staged for one transaction. Stage them with the store's write
/// lock held, so that what was read stays true until the commit.
pub(crate) struct Writes<'a> {
    core: &'a Core,
    staged: BTreeMap<TreeId, BTreeMap<IVec, Option<IVec>>>,
}

impl Lookup for Writes<'_> {
    fn lookup(&self, tree: TreeId, key: &[u8]) -> Result<Option<IVec>> {
        match self.staged.get(&tree).and_then(|writes| writes.get(key)) {
            Some(staged) => Ok(staged.clone()),
            None => self.core.t.lookup(tree, key),
        }
    }
}

impl<'a> Writes<'a> {
    pub(crate) fn new(core: &'a Core) -> Self {
        Writes {
            core,
            staged: BTreeMap::new(),
        }
    }

    pub(crate) fn core(&self) -> &'a Core {
        self.core
    }

    /// Stages `key = value` in `tree`.
    pub(crate) fn insert(&mut self, tree: TreeId, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.staged
            .entry(tree)
            .or_default()
            .insert(key.into(), Some(value.into()));
    }

    /// Stages the removal of `key` from `tree`.
    pub(crate) fn remove(&mut self, tree: TreeId, key: impl Into<IVec>) {
        self.staged
            .entry(tree)
            .or_default()
            .insert(key.into(), None);
    }

    /// The number of writes staged.
    pub(crate) fn len(&self) -> usize {
        self.staged.values().map(BTreeMap::len).sum()
    }

    /// Whether nothing is staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.staged.values().all(BTreeMap::is_empty)
    }

    /// Applies every staged write in one transaction: all of them, or (on
    /// an error) none.
    pub(crate) fn commit(self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let trees: Vec<&sled::Tree> = self.staged.keys().map(|id| id.tree(&self.core.t)).collect();
        let staged: Vec<&BTreeMap<IVec, Option<IVec>>> = self.staged.values().collect();
        let core = self.core;
        let outcome =
            trees
                .as_slice()
                .transaction(|views| -> ConflictableTransactionResult<(), Abandoned> {
                    let mut written = 0u64;
                    for (view, writes) in views.iter().zip(&staged) {
                        for (key, value) in writes.iter() {
                            written += 1;
                            core.failpoint.check(written)?;
                            match value {
                                Some(value) => view.insert(key.clone(), value.clone())?,
                                None => view.remove(key.clone())?,
                            };
                        }
                    }
                    Ok(())
                });
        match outcome {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(Error::database(e)),
            Err(TransactionError::Abort(failed)) => Err(failed.into()),
        }
    }
}

/// Why a transaction was abandoned before its commit.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Abandoned(String);

impl From<Abandoned> for Error {
    fn from(abandoned: Abandoned) -> Self {
        Error::Io(std::io::Error::other(abandoned.0))
    }
}

/// Fault injection for the tests: fails the Nth write of every following
/// commit, so that a test can show that no commit is ever half applied.
/// Outside the crate's own tests it does nothing and costs nothing.
#[derive(Debug, Default)]
pub(crate) struct Failpoint {
    #[cfg(test)]
    fail_write: std::sync::atomic::AtomicU64,
}

impl Failpoint {
    /// Fails the `n`th write (from 1) of each commit; 0 turns it off.
    #[cfg(test)]
    pub(crate) fn fail_write(&self, n: u64) {
        self.fail_write
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(test)]
    fn check(
        &self,
        written: u64,
    ) -> std::result::Result<(), ConflictableTransactionError<Abandoned>> {
        if self.fail_write.load(std::sync::atomic::Ordering::SeqCst) == written {
            return Err(ConflictableTransactionError::Abort(Abandoned(format!(
                "injected failure of write {written}"
            ))));
        }
        Ok(())
    }

    #[cfg(not(test))]
    #[inline(always)]
    fn check(
        &self,
        _written: u64,
    ) -> std::result::Result<(), ConflictableTransactionError<Abandoned>> {
        Ok(())
    }
}
