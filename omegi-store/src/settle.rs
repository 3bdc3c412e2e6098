//! Settled traces: what a collector decided about a trace once it was
//! complete, stored in one transaction with others.
//!
//! A collector that waits for a trace to be complete (the settle window of
//! `omegi serve`) assembles it, attributes its failures to their root
//! causes and decides whether to keep it ([`SettledTrace`]);
//! [`Traces::ingest_settled`] then stores, for a batch of such traces:
//!
//! - a *settled row* per trace, kept or sampled out: the ids, parents and
//!   services of its spans, the spans that failed and the occurrences of
//!   its root causes. It makes a second settle of the same trace (spans
//!   that arrived late, a write-ahead log replayed after a crash) add only
//!   what is new, and it answers "sampled out" for a trace whose spans were
//!   not stored ([`Traces::settlement`]);
//! - the spans of kept traces, as [`Traces::ingest`] stores spans;
//! - the errors of the root causes as occurrences of their issues, each
//!   with its consequences ([`omegi_core::Consequence`]), and the
//!   retraction of an occurrence whose span a later part of the trace
//!   showed to be the consequence of another failure;
//! - the traffic statistics of the new spans, kept or not (see
//!   [`crate::RouteStats`]), and the totals.
//!
//! Everything is counted once per span: a span already in the settled row
//! adds nothing, so a batch settled twice changes nothing the second time.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use omegi_core::flow::{Call, Request, Verdict};
use omegi_core::{Consequence, ErrorRecord, Resource, SpanId, SpanRecord, TraceId};
use serde::{Deserialize, Serialize};

use crate::codec::decode;
use crate::error::Result;
use crate::handles::At;
use crate::ingest::IngestReport;
use crate::issues::{retract_occurrence, stage_errors, ErrorOutcome, OccurrenceRef};
use crate::keys::{check_name, Key};
use crate::spans::{stage_spans, TraceRoot};
use crate::staging::Staging;
use crate::stats::{stage_stats, unstage_errors, Totals};
use crate::traffic::TrafficChanges;
use crate::writes::{Lookup, TreeId, Writes};
use crate::{now_ns, Issues, Traces};
use omegi_core::Fingerprint;

/// A span as the settled row remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct SkeletonRow {
    id: u64,
    parent: Option<u64>,
    /// Index into the row's services.
    service: u32,
}

/// Where a root cause of the trace is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CauseRow {
    span: Option<u64>,
    occurrence: OccurrenceRef,
}

/// What the store keeps of every settled trace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SettledRow {
    kept: bool,
    start_ns: u64,
    end_ns: u64,
    services: Vec<String>,
    root: Option<(u64, u64, String)>,
    /// By id.
    spans: Vec<SkeletonRow>,
    /// Sorted.
    failing: Vec<u64>,
    causes: Vec<CauseRow>,
    first_settled_ns: u64,
    last_settled_ns: u64,
}

impl SettledRow {
    fn has(&self, id: u64) -> bool {
        self.spans.binary_search_by_key(&id, |s| s.id).is_ok()
    }

    fn service_index(&mut self, service: &str) -> u32 {
        match self.services.iter().position(|s| s == service) {
            Some(i) => i as u32,
            None => {
                self.services.push(service.to_owned());
                (self.services.len() - 1) as u32
            }
        }
    }

    fn add(&mut self, span: &SpanRecord) {
        if self.spans.is_empty() {
            self.start_ns = span.start_ns;
            self.end_ns = span.end_ns;
        } else {
            self.start_ns = self.start_ns.min(span.start_ns);
            self.end_ns = self.end_ns.max(span.end_ns);
        }
        if span.parent_span_id.is_none() {
            let better = self
                .root
                .as_ref()
                .is_none_or(|(start, id, _)| (span.start_ns, span.span_id.0) < (*start, *id));
            if better {
                self.root = Some((span.start_ns, span.span_id.0, span.name.to_string()));
            }
        }
        let service = self.service_index(&span.service);
        let row = SkeletonRow {
            id: span.span_id.0,
            parent: span.parent_span_id.map(|p| p.0),
            service,
        };
        if let Err(at) = self.spans.binary_search_by_key(&row.id, |s| s.id) {
            self.spans.insert(at, row);
        }
    }

    pub(crate) fn start_ns(&self) -> u64 {
        self.start_ns
    }

    pub(crate) fn summary(&self, project: &str, trace_id: TraceId) -> SettledSummary {
        let mut services = self.services.clone();
        services.sort();
        SettledSummary {
            trace_id,
            project: project.to_owned(),
            kept: self.kept,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            root: self.root.as_ref().and_then(|(_, id, name)| {
                let span = self.spans.iter().find(|s| s.id == *id)?;
                Some(TraceRoot {
                    span_id: SpanId(*id),
                    service: self.services.get(span.service as usize)?.clone(),
                    name: name.clone(),
                })
            }),
            services,
            span_count: self.spans.len() as u64,
            failed: !self.failing.is_empty(),
            settled_ns: self.last_settled_ns,
        }
    }
}

pub(crate) fn settled_key(project: &str, trace: TraceId) -> Result<Vec<u8>> {
    Ok(Key::new().str("project", project)?.trace(trace).into_vec())
}

pub(crate) fn settled_index_key(project: &str, start: u64, trace: TraceId) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u64(start)
        .trace(trace)
        .into_vec())
}

pub(crate) fn read_settled(
    r: &impl Lookup,
    project: &str,
    trace: TraceId,
) -> Result<Option<SettledRow>> {
    match r.lookup(TreeId::Settled, &settled_key(project, trace)?)? {
        Some(bytes) => Ok(Some(decode("settled", &bytes)?)),
        None => Ok(None),
    }
}

/// A span of a settled trace as the store remembers it after its spans
/// may be gone: its id, parent and service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanSkeleton {
    /// The span.
    pub span_id: SpanId,
    /// Its parent, if it named one.
    pub parent: Option<SpanId>,
    /// Its service.
    pub service: String,
}

/// What the store knows of a trace that settled before, for settling it
/// again with what arrived since: see [`Traces::settled`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PriorSettle {
    /// Whether its spans are stored.
    pub kept: bool,
    /// Every span counted so far, kept or not.
    pub spans: Vec<SpanSkeleton>,
    /// The spans that failed.
    pub failing: Vec<SpanId>,
    /// The errors of its root causes whose occurrences are still retained.
    pub cause_errors: Vec<ErrorRecord>,
    /// Its stored spans (empty when it was sampled out).
    pub stored_spans: Vec<SpanRecord>,
}

/// A settled trace as the API shows it, kept or sampled out: see
/// [`Traces::settlement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// Its project.
    pub project: String,
    /// Whether its spans are stored (`false`: sampled out, only its
    /// statistics are kept).
    pub kept: bool,
    /// Earliest span start, ns.
    pub start_ns: u64,
    /// Latest span end, ns.
    pub end_ns: u64,
    /// The earliest span without a parent, once it arrived.
    pub root: Option<TraceRoot>,
    /// Its services, sorted.
    pub services: Vec<String>,
    /// Spans counted.
    pub span_count: u64,
    /// Whether something in it failed.
    pub failed: bool,
    /// When it last settled (server clock), ns.
    pub settled_ns: u64,
}

/// A root cause of a settled trace: the error it reports and the failures
/// it caused.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledCause {
    /// The error, with its context.
    pub error: ErrorRecord,
    /// The failing spans above it, nearest first.
    pub consequences: Vec<Consequence>,
}

/// What the settle step decided about one trace: see the module docs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SettledTrace {
    /// The trace.
    pub trace_id: TraceId,
    /// The spans that arrived since it last settled (services filled in);
    /// spans the store counted already are left out.
    pub spans: Vec<SpanRecord>,
    /// Whether to keep it; a trace kept once stays kept.
    pub verdict: Verdict,
    /// Every span of the trace that failed.
    pub failing: Vec<SpanId>,
    /// Its root causes.
    pub causes: Vec<SettledCause>,
    /// Spans whose occurrences, stored when they were root causes, are now
    /// consequences: those occurrences are taken back.
    pub retract: Vec<SpanId>,
    /// The requests of the whole trace; those of spans counted already are
    /// left out.
    pub requests: Vec<Request>,
    /// The calls of the whole trace; those between two spans counted
    /// already are left out.
    pub calls: Vec<Call>,
}

impl SettledTrace {
    /// A trace with these new spans and this verdict, with nothing failed,
    /// no requests and no calls: fill in the other fields.
    pub fn new(trace_id: TraceId, spans: Vec<SpanRecord>, verdict: Verdict) -> Self {
        SettledTrace {
            trace_id,
            spans,
            verdict,
            failing: Vec::new(),
            causes: Vec::new(),
            retract: Vec::new(),
            requests: Vec::new(),
            calls: Vec::new(),
        }
    }
}

impl Traces<'_> {
    /// What the store knows of a trace that settled before: `None` for a
    /// trace never settled. Reads the trace's stored spans and its root
    /// causes' occurrences; a collector calls it only for traces it settles
    /// again.
    pub fn settled(&self, project: &str, trace: TraceId) -> Result<Option<PriorSettle>> {
        match self.settled_row(project, trace)? {
            Some(row) => self.prior(project, trace, row).map(Some),
            None => Ok(None),
        }
    }

    /// [`Traces::settled`] of several traces, in the order given: the
    /// settled rows of all of them are read at once (one statement on
    /// PostgreSQL), so that a collector settling a batch pays one lookup
    /// for the batch, not one per trace.
    pub fn settled_many(
        &self,
        project: &str,
        traces: &[TraceId],
    ) -> Result<Vec<Option<PriorSettle>>> {
        let rows = match self.at {
            At::Sled(store) => traces
                .iter()
                .map(|trace| read_settled(&store.core().t, project, *trace))
                .collect::<Result<Vec<_>>>()?,
            At::Pg(db) => crate::postgres::traces::settled_rows(db, project, traces)?,
        };
        traces
            .iter()
            .zip(rows)
            .map(|(trace, row)| row.map(|row| self.prior(project, *trace, row)).transpose())
            .collect()
    }

    /// What a settle again needs of a trace's settled row.
    fn prior(&self, project: &str, trace: TraceId, row: SettledRow) -> Result<PriorSettle> {
        let issues = Issues { at: self.at };
        let mut cause_errors = Vec::new();
        for cause in &row.causes {
            let o = &cause.occurrence;
            if let Some(occurrence) = issues.occurrence(
                project,
                &Fingerprint(o.fingerprint.clone()),
                o.time_ns,
                o.id,
            )? {
                cause_errors.push(occurrence.error);
            }
        }
        let stored_spans = if row.kept {
            self.spans(project, trace)?
        } else {
            Vec::new()
        };
        Ok(PriorSettle {
            kept: row.kept,
            spans: row
                .spans
                .iter()
                .map(|s| SpanSkeleton {
                    span_id: SpanId(s.id),
                    parent: s.parent.map(SpanId),
                    service: row
                        .services
                        .get(s.service as usize)
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect(),
            failing: row.failing.iter().map(|&id| SpanId(id)).collect(),
            cause_errors,
            stored_spans,
        })
    }

    /// How a trace settled, kept or sampled out; `None` when it never did
    /// (or retention deleted what was known of it).
    pub fn settlement(&self, project: &str, trace: TraceId) -> Result<Option<SettledSummary>> {
        Ok(self
            .settled_row(project, trace)?
            .map(|row| row.summary(project, trace)))
    }

    /// What is stored of a settled trace.
    fn settled_row(&self, project: &str, trace: TraceId) -> Result<Option<SettledRow>> {
        match self.at {
            At::Sled(store) => read_settled(&store.core().t, project, trace),
            At::Pg(db) => crate::postgres::traces::settled_row(db, project, trace),
        }
    }

    /// Stores a batch of settled traces of `project` in one transaction
    /// (see the module docs), with `loose_errors`, errors outside any trace
    /// (they wait for nothing); `resources` are the processes that sent
    /// their records (for the services list). The report counts what was
    /// new: a batch stored again changes nothing.
    pub fn ingest_settled(
        &self,
        project: &str,
        resources: &[Resource],
        traces: &[SettledTrace],
        loose_errors: &[ErrorRecord],
    ) -> Result<IngestReport> {
        check_name("project", project)?;
        let now = now_ns();
        let (mut error_outcome, new_traces, stored, (retracted, withdrawn)) = match self.at {
            At::Sled(store) => {
                let core = store.core();
                let _guard = core.lock();
                let mut w = Writes::new(core);
                let max_routes = core.config.max_routes_per_service;
                let outcome = stage_settled(
                    &mut w,
                    project,
                    resources,
                    traces,
                    loose_errors,
                    now,
                    max_routes,
                )?;
                w.commit()?;
                outcome
            }
            At::Pg(db) => {
                let max_routes = db.max_routes_per_service();
                let spans = traces.iter().flat_map(|t| &t.spans).map(|s| s.start_ns);
                let causes = traces.iter().flat_map(|t| &t.causes).map(|c| &c.error);
                let errors = causes.chain(loose_errors).map(|e| e.time_ns);
                db.prepare_days(spans.chain(errors))?;
                db.write(|w| {
                    stage_settled(w, project, resources, traces, loose_errors, now, max_routes)
                })?
            }
        };
        let mut report = IngestReport {
            spans: usize::try_from(stored).unwrap_or(usize::MAX),
            errors: error_outcome.new.iter().filter(|new| **new).count(),
            new_traces,
            occurrences: std::mem::take(&mut error_outcome.per_issue)
                .into_iter()
                .map(|(fp, n)| (Fingerprint(fp), n))
                .collect(),
            retracted,
            withdrawn,
            ..IngestReport::default()
        };
        self.report_issues(project, &mut report, error_outcome)?;
        Ok(report)
    }
}

/// What staging a batch of settled traces did.
type SettleOutcome = (ErrorOutcome, u64, u64, (usize, Vec<Fingerprint>));

/// Stages a batch of settled traces (see [`Traces::ingest_settled`]).
fn stage_settled(
    w: &mut impl Staging,
    project: &str,
    resources: &[Resource],
    traces: &[SettledTrace],
    loose_errors: &[ErrorRecord],
    now: u64,
    max_routes: usize,
) -> Result<SettleOutcome> {
    w.ensure_project(project)?;
    let mut locked: Vec<TraceId> = traces.iter().map(|t| t.trace_id).collect();
    locked.sort_unstable();
    locked.dedup();
    w.lock_traces(project, &locked)?;
    // Every settled row the batch rewrites, in one read, with its lock held.
    let mut stored: BTreeMap<TraceId, SettledRow> = BTreeMap::new();
    for (trace, row) in locked.iter().zip(w.settled_rows(project, &locked)?) {
        if let Some(row) = row {
            stored.insert(*trace, row);
        }
    }
    let mut traffic = TrafficChanges::default();
    let mut kept_spans: Vec<&SpanRecord> = Vec::new();
    let mut rows: BTreeMap<TraceId, (Option<u64>, SettledRow)> = BTreeMap::new();
    let mut services: BTreeSet<&str> = BTreeSet::new();
    let mut to_retract: Vec<OccurrenceRef> = Vec::new();
    let mut new_traces = 0u64;
    for t in traces {
        let prior = match rows.remove(&t.trace_id) {
            Some((start, row)) => Some((start, row)),
            None => stored.remove(&t.trace_id).map(|r| (Some(r.start_ns), r)),
        };
        let (old_start, mut row, late) = match prior {
            Some((start, row)) => (start, row, true),
            None => (None, SettledRow::default(), false),
        };
        let mut fresh: HashSet<u64> = HashSet::new();
        let mut new_spans: Vec<&SpanRecord> = Vec::new();
        for span in &t.spans {
            let id = span.span_id.0;
            if !row.has(id) && fresh.insert(id) {
                new_spans.push(span);
            }
        }
        let keep = t.verdict.keeps() || row.kept;
        if !late {
            new_traces += 1;
            traffic.totals.traces += 1;
            if keep {
                traffic.totals.kept_traces += 1;
            } else {
                traffic.totals.sampled_out_traces += 1;
            }
        } else if keep && !row.kept {
            traffic.totals.kept_traces += 1;
            traffic.now_kept += 1;
        }
        if late {
            traffic.totals.late_spans += new_spans.len() as u64;
        }
        traffic.totals.spans += new_spans.len() as u64;
        if keep {
            traffic.totals.kept_spans += new_spans.len() as u64;
            kept_spans.extend(new_spans.iter().copied());
        }
        row.kept = keep;
        let starts: HashSet<u64> = new_spans.iter().map(|s| s.span_id.0).collect();
        for span in &new_spans {
            services.insert(&span.service);
            row.add(span);
        }
        for r in &t.requests {
            if starts.contains(&r.span_id.0) {
                traffic.request(&r.service, &r.route, r.start_ns, r.duration_ns, r.failed);
            }
        }
        for c in &t.calls {
            if starts.contains(&c.callee_span.0) || starts.contains(&c.caller_span.0) {
                traffic.call(&c.caller, &c.callee, c.start_ns, c.failed);
            }
        }
        for id in &t.failing {
            if let Err(at) = row.failing.binary_search(&id.0) {
                row.failing.insert(at, id.0);
            }
        }
        let retract: HashSet<u64> = t.retract.iter().map(|s| s.0).collect();
        row.causes.retain(|c| {
            let gone = c.span.is_some_and(|s| retract.contains(&s));
            if gone {
                to_retract.push(c.occurrence.clone());
            }
            !gone
        });
        row.first_settled_ns = if row.first_settled_ns == 0 {
            now
        } else {
            row.first_settled_ns
        };
        row.last_settled_ns = now;
        rows.insert(t.trace_id, (old_start, row));
    }
    let span_outcome = stage_spans(w, project, &kept_spans)?;
    let mut retracted: Vec<ErrorRecord> = Vec::new();
    let mut withdrawn: Vec<Fingerprint> = Vec::new();
    for occurrence in &to_retract {
        if let Some(gone) = retract_occurrence(w, project, occurrence)? {
            if gone.issue_removed {
                withdrawn.push(Fingerprint(occurrence.fingerprint.clone()));
            }
            retracted.push(gone.error);
        }
    }
    traffic.totals.retracted += retracted.len() as u64;
    let cause_list: Vec<(Option<TraceId>, &ErrorRecord, &[Consequence])> = traces
        .iter()
        .flat_map(|t| {
            t.causes
                .iter()
                .map(move |c| (Some(t.trace_id), &c.error, c.consequences.as_slice()))
        })
        .chain(loose_errors.iter().map(|e| (None, e, &[][..])))
        .collect();
    let errors: Vec<&ErrorRecord> = cause_list.iter().map(|(_, e, _)| *e).collect();
    let error_outcome = stage_errors(w, project, &errors)?;
    for ((trace, error, consequences), key) in cause_list.iter().zip(&error_outcome.keys) {
        w.put_consequences(project, key, consequences)?;
        if let Some((_, row)) = trace.and_then(|t| rows.get_mut(&t)) {
            let span = error.span_id.map(|s| s.0);
            if !row.causes.iter().any(|c| c.occurrence == *key) {
                row.causes.push(CauseRow {
                    span,
                    occurrence: key.clone(),
                });
            }
        }
    }
    let settled: Vec<(TraceId, Option<u64>, &SettledRow)> = rows
        .iter()
        .map(|(trace, (old_start, row))| (*trace, *old_start, row))
        .collect();
    w.put_settled_rows(project, &settled)?;
    let mut new_errors: Vec<&ErrorRecord> = Vec::new();
    for (error, new) in errors.iter().zip(&error_outcome.new) {
        if *new {
            services.insert(&error.service);
            new_errors.push(error);
        }
    }
    unstage_errors(w, project, &retracted)?;
    let senders: Vec<&Resource> = resources
        .iter()
        .filter(|r| services.contains(r.service.as_str()))
        .collect();
    let service_list: Vec<&str> = services.into_iter().collect();
    stage_stats(
        w,
        project,
        &senders,
        &service_list,
        &new_errors,
        Totals {
            spans: traffic.totals.spans,
            traces: new_traces,
            errors: new_errors.len() as u64,
        },
        now,
    )?;
    traffic.stage(w, project, max_routes)?;
    Ok((
        error_outcome,
        new_traces,
        span_outcome.new_spans,
        (retracted.len(), withdrawn),
    ))
}
