//! What an ingest reads and writes, as one narrow interface that each
//! backend implements: [`Staging`].
//!
//! The rules of the data path (which spans are new, how a trace's summary
//! follows its spans, how an error joins its issue and when the issue is
//! created or regresses, what an occurrence's id is, what is counted once,
//! which routes are counted by name) are written once, in `ingest.rs`,
//! `settle.rs`, `spans.rs`, `issues.rs`, `stats.rs` and `traffic.rs`,
//! against this trait. A backend only fetches and stores the rows they
//! name, inside one transaction:
//!
//! - the embedded store stages them in [`Writes`] under its write lock and
//!   commits them as one sled transaction;
//! - PostgreSQL reads and writes them in one database transaction. Several
//!   nodes ingest at once, so a row that a rule reads and then rewrites
//!   (a trace's summary, a settled trace, an issue, a route list, the
//!   sampling totals) is read under a lock the database holds until the
//!   commit: [`Staging::lock_traces`] and [`Staging::lock_issues`] take
//!   transaction-scoped advisory locks, in key order, *before* the row is
//!   read, so that of two nodes seeing the same new issue exactly one finds
//!   it absent (creates it, and reports it new) and the other waits, then
//!   finds it. Counters are added with atomic upserts.
//!
//! Every method may fail; nothing is visible to readers before the
//! backend's commit.

use std::collections::BTreeMap;

use omegi_core::{Consequence, SpanRecord, TraceId};

use crate::codec::{SAttribute, SError, SSpan};
use crate::error::Result;
use crate::issues::{IssueRow, OccurrenceRef};
use crate::settle::SettledRow;
use crate::spans::{ChunkRef, SummaryRow};
use crate::stats::{Bucket, Totals};
use crate::traffic::{RouteCounts, SamplingTotals};

/// A signed change of a project's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TotalsDelta {
    pub(crate) spans: i64,
    pub(crate) traces: i64,
    pub(crate) errors: i64,
}

impl TotalsDelta {
    /// Adds `add`.
    pub(crate) fn from_totals(add: Totals) -> Self {
        TotalsDelta {
            spans: i64::try_from(add.spans).unwrap_or(i64::MAX),
            traces: i64::try_from(add.traces).unwrap_or(i64::MAX),
            errors: i64::try_from(add.errors).unwrap_or(i64::MAX),
        }
    }

    pub(crate) fn is_zero(&self) -> bool {
        *self == TotalsDelta::default()
    }

    /// `totals` with this change, never below zero.
    pub(crate) fn apply(&self, totals: &mut Totals) {
        totals.spans = totals.spans.saturating_add_signed(self.spans);
        totals.traces = totals.traces.saturating_add_signed(self.traces);
        totals.errors = totals.errors.saturating_add_signed(self.errors);
    }
}

/// Error counters of a project changed by one ingest: per bucket, and per
/// service and bucket; a counter that reaches zero is removed.
#[derive(Debug, Default)]
pub(crate) struct ErrorCounts {
    pub(crate) project: BTreeMap<(Bucket, u64), i64>,
    pub(crate) service: BTreeMap<(String, Bucket, u64), i64>,
}

/// The reads and writes of one ingest, on one backend, in one transaction:
/// see the module docs. Rows that a rule rewrites are read with the lock of
/// their key held ([`Staging::lock_traces`], [`Staging::lock_issues`],
/// [`Staging::lock_routes`]); the embedded store holds its write lock for
/// the whole change, so these are no-ops there.
pub(crate) trait Staging {
    /// Creates the project with default settings when it does not exist.
    fn ensure_project(&mut self, project: &str) -> Result<()>;

    /// Holds the traces' locks until the commit (call with the ids sorted).
    fn lock_traces(&mut self, project: &str, traces: &[TraceId]) -> Result<()>;
    /// Holds the issues' locks until the commit (call with the
    /// fingerprints sorted).
    fn lock_issues(&mut self, project: &str, fingerprints: &[&str]) -> Result<()>;
    /// Holds the lock of a service's route list until the commit.
    fn lock_routes(&mut self, project: &str, service: &str) -> Result<()>;

    // Spans and traces.
    /// The summary rows of traces, in the order given.
    fn summary_rows(
        &mut self,
        project: &str,
        traces: &[TraceId],
    ) -> Result<Vec<Option<SummaryRow>>>;
    /// The stored spans of a trace, by span id (the latest copy of each).
    fn stored_spans(
        &mut self,
        project: &str,
        trace: TraceId,
        row: &SummaryRow,
    ) -> Result<BTreeMap<u64, SSpan>>;
    /// Stores each group of spans (one per trace) as one chunk; returns
    /// where each went, when the summary must remember it.
    fn append_spans(
        &mut self,
        project: &str,
        groups: &[(TraceId, Vec<&SpanRecord>)],
    ) -> Result<Vec<Option<ChunkRef>>>;
    /// Writes traces' summaries: (trace, the summary read if any, the new
    /// one).
    fn put_summary_rows(
        &mut self,
        project: &str,
        rows: &[(TraceId, Option<SummaryRow>, SummaryRow)],
    ) -> Result<()>;

    // Settled traces.
    /// What is known of settled traces, in the order given.
    fn settled_rows(
        &mut self,
        project: &str,
        traces: &[TraceId],
    ) -> Result<Vec<Option<SettledRow>>>;
    /// Writes them: (trace, its start when it was read, the row).
    fn put_settled_rows(
        &mut self,
        project: &str,
        rows: &[(TraceId, Option<u64>, &SettledRow)],
    ) -> Result<()>;

    // Issues and occurrences.
    /// Stores an occurrence unless one with its key is stored; whether it
    /// was new.
    fn insert_occurrence(
        &mut self,
        project: &str,
        key: &OccurrenceRef,
        error: &SError,
    ) -> Result<bool>;
    /// Removes an occurrence with its consequences; its error, if it was
    /// stored.
    fn take_occurrence(&mut self, project: &str, key: &OccurrenceRef) -> Result<Option<SError>>;
    /// Sets an occurrence's consequences (none: removes them).
    fn put_consequences(
        &mut self,
        project: &str,
        key: &OccurrenceRef,
        consequences: &[Consequence],
    ) -> Result<()>;
    /// An issue's row.
    fn issue_row(&mut self, project: &str, fingerprint: &str) -> Result<Option<IssueRow>>;
    /// Writes an issue (`old`: the row read, if any).
    fn put_issue_row(
        &mut self,
        project: &str,
        fingerprint: &str,
        old: Option<&IssueRow>,
        row: &IssueRow,
    ) -> Result<()>;
    /// Removes an issue (`old`: its row).
    fn remove_issue(&mut self, project: &str, fingerprint: &str, old: &IssueRow) -> Result<()>;
    /// Adds to the per-bucket occurrence counters of issues:
    /// (fingerprint, bucket, start) -> change; a counter at zero goes.
    fn add_issue_counts(
        &mut self,
        project: &str,
        counts: &BTreeMap<(String, Bucket, u64), i64>,
    ) -> Result<()>;

    // Statistics.
    /// Adds to the error counters.
    fn add_error_counts(&mut self, project: &str, counts: &ErrorCounts) -> Result<()>;
    /// Adds to the project's totals, never below zero.
    fn add_totals(&mut self, project: &str, delta: TotalsDelta) -> Result<()>;
    /// Records that `service` sent something at `now`, with the attributes
    /// of the process naming it (`None`: keep those known).
    fn touch_service(
        &mut self,
        project: &str,
        service: &str,
        attributes: Option<Vec<SAttribute>>,
        now: u64,
    ) -> Result<()>;

    // Traffic.
    /// Whether a route of a service is counted by name.
    fn route_known(&mut self, project: &str, service: &str, route: &str) -> Result<bool>;
    /// How many routes of a service are counted by name.
    fn route_count(&mut self, project: &str, service: &str) -> Result<u64>;
    /// Counts a route of a service by name from now on.
    fn add_route_name(&mut self, project: &str, service: &str, route: &str) -> Result<()>;
    /// Adds requests of routes: (bucket, start, service, route) -> what
    /// to add, in key order.
    fn add_route_counts(
        &mut self,
        project: &str,
        counts: &BTreeMap<(Bucket, u64, String, String), RouteCounts>,
    ) -> Result<()>;
    /// Adds calls between services: (bucket, start, caller, callee) ->
    /// (calls, errors) to add, in key order.
    fn add_edge_counts(
        &mut self,
        project: &str,
        counts: &BTreeMap<(Bucket, u64, String, String), (u64, u64)>,
    ) -> Result<()>;
    /// The project's sampling totals, locked until the commit.
    fn sampling_totals(&mut self, project: &str) -> Result<SamplingTotals>;
    /// Writes them.
    fn put_sampling_totals(&mut self, project: &str, totals: &SamplingTotals) -> Result<()>;
}

/// The embedded store: every row is a key of a tree, staged in [`Writes`]
/// under the store's write lock.
mod sled_rows {
    use std::collections::BTreeMap;

    use omegi_core::{Consequence, SpanRecord, TraceId};
    use sled::IVec;

    use super::{ErrorCounts, Staging, TotalsDelta};
    use crate::codec::{decode, encode, SAttribute, SConsequence, SError, SSpan};
    use crate::error::Result;
    use crate::issues::{
        first_seen_key, issue_counter_key, issue_key, last_seen_key, occurrence_keys, read_row,
        IssueRow, OccurrenceRef,
    };
    use crate::keys::{counter, Key};
    use crate::settle::{read_settled, settled_index_key, settled_key, SettledRow};
    use crate::spans::{chunks_spans, index_key, read_summary_row, stage_segments, trace_key};
    use crate::spans::{ChunkRef, SummaryRow};
    use crate::stats::{
        counter_key, put_totals, read_totals, service_counter_key, Bucket, ServiceRow,
    };
    use crate::traffic::{self, RouteCounts, SamplingTotals};
    use crate::writes::{Lookup, TreeId, Writes};
    use crate::Project;

    /// Adds `delta` to the counter at `key`; one at zero is removed.
    fn add_counter(
        w: &mut Writes<'_>,
        tree: TreeId,
        name: &'static str,
        key: Vec<u8>,
        delta: i64,
    ) -> Result<()> {
        if delta == 0 {
            return Ok(());
        }
        let old = match w.lookup(tree, &key)? {
            Some(v) => counter(name, &v)?,
            None => 0,
        };
        match old.saturating_add_signed(delta) {
            0 => {
                if old != 0 {
                    w.remove(tree, key);
                }
            }
            new => w.insert(tree, key, &new.to_be_bytes()[..]),
        }
        Ok(())
    }

    impl Staging for Writes<'_> {
        fn ensure_project(&mut self, project: &str) -> Result<()> {
            let key = Key::new().str("project", project)?.into_vec();
            if self.lookup(TreeId::Projects, &key)?.is_none() {
                self.insert(TreeId::Projects, key, encode(&Project::new(project))?);
            }
            Ok(())
        }

        fn lock_traces(&mut self, _project: &str, _traces: &[TraceId]) -> Result<()> {
            Ok(())
        }

        fn lock_issues(&mut self, _project: &str, _fingerprints: &[&str]) -> Result<()> {
            Ok(())
        }

        fn lock_routes(&mut self, _project: &str, _service: &str) -> Result<()> {
            Ok(())
        }

        fn summary_rows(
            &mut self,
            project: &str,
            traces: &[TraceId],
        ) -> Result<Vec<Option<SummaryRow>>> {
            traces
                .iter()
                .map(|trace| read_summary_row(self, project, *trace))
                .collect()
        }

        fn stored_spans(
            &mut self,
            project: &str,
            _trace: TraceId,
            row: &SummaryRow,
        ) -> Result<BTreeMap<u64, SSpan>> {
            chunks_spans(self, project, &row.chunks)
        }

        fn append_spans(
            &mut self,
            project: &str,
            groups: &[(TraceId, Vec<&SpanRecord>)],
        ) -> Result<Vec<Option<ChunkRef>>> {
            let groups: Vec<&[&SpanRecord]> = groups.iter().map(|(_, g)| g.as_slice()).collect();
            Ok(stage_segments(self, project, &groups)?
                .into_iter()
                .map(Some)
                .collect())
        }

        fn put_summary_rows(
            &mut self,
            project: &str,
            rows: &[(TraceId, Option<SummaryRow>, SummaryRow)],
        ) -> Result<()> {
            for (trace, old, row) in rows {
                let (trace, new) = (*trace, &row.summary);
                match old {
                    None => self.insert(
                        TreeId::TraceIndex,
                        index_key(project, new.start_ns, trace)?,
                        encode(&new.services)?,
                    ),
                    Some(old) => {
                        let old = &old.summary;
                        if old.start_ns != new.start_ns || old.services != new.services {
                            self.remove(
                                TreeId::TraceIndex,
                                index_key(project, old.start_ns, trace)?,
                            );
                            self.insert(
                                TreeId::TraceIndex,
                                index_key(project, new.start_ns, trace)?,
                                encode(&new.services)?,
                            );
                        }
                    }
                }
                self.insert(TreeId::Traces, trace_key(project, trace)?, encode(row)?);
            }
            Ok(())
        }

        fn settled_rows(
            &mut self,
            project: &str,
            traces: &[TraceId],
        ) -> Result<Vec<Option<SettledRow>>> {
            traces
                .iter()
                .map(|trace| read_settled(self, project, *trace))
                .collect()
        }

        fn put_settled_rows(
            &mut self,
            project: &str,
            rows: &[(TraceId, Option<u64>, &SettledRow)],
        ) -> Result<()> {
            for &(trace, old_start, row) in rows {
                if old_start != Some(row.start_ns()) {
                    if let Some(old) = old_start {
                        self.remove(
                            TreeId::SettledByStart,
                            settled_index_key(project, old, trace)?,
                        );
                    }
                    self.insert(
                        TreeId::SettledByStart,
                        settled_index_key(project, row.start_ns(), trace)?,
                        IVec::default(),
                    );
                }
                self.insert(TreeId::Settled, settled_key(project, trace)?, encode(row)?);
            }
            Ok(())
        }

        fn insert_occurrence(
            &mut self,
            project: &str,
            key: &OccurrenceRef,
            error: &SError,
        ) -> Result<bool> {
            let (main, by_time) = occurrence_keys(project, &key.fingerprint, key.time_ns, key.id)?;
            if self.lookup(TreeId::Occurrences, &main)?.is_some() {
                return Ok(false);
            }
            self.insert(TreeId::Occurrences, main, encode(error)?);
            self.insert(TreeId::OccurrencesByTime, by_time, IVec::default());
            Ok(true)
        }

        fn take_occurrence(
            &mut self,
            project: &str,
            key: &OccurrenceRef,
        ) -> Result<Option<SError>> {
            let (main, by_time) = occurrence_keys(project, &key.fingerprint, key.time_ns, key.id)?;
            let Some(bytes) = self.lookup(TreeId::Occurrences, &main)? else {
                return Ok(None);
            };
            let error: SError = decode("occurrences", &bytes)?;
            self.remove(TreeId::Occurrences, main.clone());
            self.remove(TreeId::OccurrencesByTime, by_time);
            if self.lookup(TreeId::Consequences, &main)?.is_some() {
                self.remove(TreeId::Consequences, main);
            }
            Ok(Some(error))
        }

        fn put_consequences(
            &mut self,
            project: &str,
            key: &OccurrenceRef,
            consequences: &[Consequence],
        ) -> Result<()> {
            let (main, _) = occurrence_keys(project, &key.fingerprint, key.time_ns, key.id)?;
            if consequences.is_empty() {
                if self.lookup(TreeId::Consequences, &main)?.is_some() {
                    self.remove(TreeId::Consequences, main);
                }
                return Ok(());
            }
            let stored: Vec<SConsequence> =
                consequences.iter().map(SConsequence::from_record).collect();
            self.insert(TreeId::Consequences, main, encode(&stored)?);
            Ok(())
        }

        fn issue_row(&mut self, project: &str, fingerprint: &str) -> Result<Option<IssueRow>> {
            read_row(self, project, fingerprint)
        }

        fn put_issue_row(
            &mut self,
            project: &str,
            fp: &str,
            old: Option<&IssueRow>,
            row: &IssueRow,
        ) -> Result<()> {
            match old {
                Some(old) => {
                    if old.last_seen_ns != row.last_seen_ns {
                        self.remove(
                            TreeId::IssuesByLastSeen,
                            last_seen_key(project, old.last_seen_ns, fp)?,
                        );
                        self.insert(
                            TreeId::IssuesByLastSeen,
                            last_seen_key(project, row.last_seen_ns, fp)?,
                            IVec::default(),
                        );
                    }
                    if old.first_seen_ns != row.first_seen_ns {
                        self.remove(
                            TreeId::IssuesByFirstSeen,
                            first_seen_key(project, old.first_seen_ns, fp)?,
                        );
                        self.insert(
                            TreeId::IssuesByFirstSeen,
                            first_seen_key(project, row.first_seen_ns, fp)?,
                            IVec::default(),
                        );
                    }
                }
                None => {
                    self.insert(
                        TreeId::IssuesByLastSeen,
                        last_seen_key(project, row.last_seen_ns, fp)?,
                        IVec::default(),
                    );
                    self.insert(
                        TreeId::IssuesByFirstSeen,
                        first_seen_key(project, row.first_seen_ns, fp)?,
                        IVec::default(),
                    );
                }
            }
            self.insert(
                TreeId::Issues,
                issue_key(project, fp)?.into_vec(),
                encode(row)?,
            );
            Ok(())
        }

        fn remove_issue(&mut self, project: &str, fp: &str, old: &IssueRow) -> Result<()> {
            self.remove(TreeId::Issues, issue_key(project, fp)?.into_vec());
            self.remove(
                TreeId::IssuesByLastSeen,
                last_seen_key(project, old.last_seen_ns, fp)?,
            );
            self.remove(
                TreeId::IssuesByFirstSeen,
                first_seen_key(project, old.first_seen_ns, fp)?,
            );
            Ok(())
        }

        fn add_issue_counts(
            &mut self,
            project: &str,
            counts: &BTreeMap<(String, Bucket, u64), i64>,
        ) -> Result<()> {
            for ((fp, bucket, start), delta) in counts {
                let key = issue_counter_key(project, fp, *bucket, *start)?;
                add_counter(self, TreeId::IssueCounters, "issue_counters", key, *delta)?;
            }
            Ok(())
        }

        fn add_error_counts(&mut self, project: &str, counts: &ErrorCounts) -> Result<()> {
            for ((bucket, start), delta) in &counts.project {
                let key = counter_key(project, *bucket, *start)?;
                add_counter(self, TreeId::Counters, "counters", key, *delta)?;
            }
            for ((service, bucket, start), delta) in &counts.service {
                let key = service_counter_key(project, service, *bucket, *start)?;
                add_counter(
                    self,
                    TreeId::ServiceCounters,
                    "service_counters",
                    key,
                    *delta,
                )?;
            }
            Ok(())
        }

        fn add_totals(&mut self, project: &str, delta: TotalsDelta) -> Result<()> {
            if delta.is_zero() {
                return Ok(());
            }
            let mut totals = read_totals(self, project)?;
            delta.apply(&mut totals);
            put_totals(self, project, &totals)
        }

        fn touch_service(
            &mut self,
            project: &str,
            service: &str,
            attributes: Option<Vec<SAttribute>>,
            now: u64,
        ) -> Result<()> {
            let key = Key::new()
                .str("project", project)?
                .str("service", service)?
                .into_vec();
            let attributes = match attributes {
                Some(given) => given,
                None => match self.lookup(TreeId::Services, &key)? {
                    Some(v) => decode::<ServiceRow>("services", &v)?.attributes,
                    None => Vec::new(),
                },
            };
            let row = ServiceRow {
                attributes,
                last_seen_ns: now,
            };
            self.insert(TreeId::Services, key, encode(&row)?);
            Ok(())
        }

        fn route_known(&mut self, project: &str, service: &str, route: &str) -> Result<bool> {
            Ok(self
                .lookup(
                    TreeId::Traffic,
                    &traffic::route_name_key(project, service, route)?,
                )?
                .is_some())
        }

        fn route_count(&mut self, project: &str, service: &str) -> Result<u64> {
            match self.lookup(
                TreeId::Traffic,
                &traffic::route_count_key(project, service)?,
            )? {
                Some(v) => counter("traffic", &v),
                None => Ok(0),
            }
        }

        fn add_route_name(&mut self, project: &str, service: &str, route: &str) -> Result<()> {
            let count = self.route_count(project, service)?;
            self.insert(
                TreeId::Traffic,
                traffic::route_name_key(project, service, route)?,
                IVec::default(),
            );
            self.insert(
                TreeId::Traffic,
                traffic::route_count_key(project, service)?,
                &(count + 1).to_be_bytes()[..],
            );
            Ok(())
        }

        fn add_route_counts(
            &mut self,
            project: &str,
            counts: &BTreeMap<(Bucket, u64, String, String), RouteCounts>,
        ) -> Result<()> {
            for ((bucket, start, service, route), counts) in counts {
                let key = traffic::route_key(project, *bucket, *start, service, route)?;
                let mut stored: RouteCounts = match self.lookup(TreeId::Traffic, &key)? {
                    Some(v) => decode("traffic", &v)?,
                    None => RouteCounts::default(),
                };
                stored.add(counts);
                self.insert(TreeId::Traffic, key, encode(&stored)?);
            }
            Ok(())
        }

        fn add_edge_counts(
            &mut self,
            project: &str,
            counts: &BTreeMap<(Bucket, u64, String, String), (u64, u64)>,
        ) -> Result<()> {
            for ((bucket, start, caller, callee), (calls, errors)) in counts {
                let key = traffic::edge_key(project, *bucket, *start, caller, callee)?;
                let (c, e): (u64, u64) = match self.lookup(TreeId::Traffic, &key)? {
                    Some(v) => decode("traffic", &v)?,
                    None => (0, 0),
                };
                self.insert(TreeId::Traffic, key, encode(&(c + calls, e + errors))?);
            }
            Ok(())
        }

        fn sampling_totals(&mut self, project: &str) -> Result<SamplingTotals> {
            traffic::read_totals(self, project)
        }

        fn put_sampling_totals(&mut self, project: &str, totals: &SamplingTotals) -> Result<()> {
            self.insert(
                TreeId::Traffic,
                traffic::totals_key(project)?,
                encode(totals)?,
            );
            Ok(())
        }
    }
}
