//! The ingest entry point: one call per batch of records, one transaction
//! per call.

use std::borrow::Cow;
use std::collections::BTreeSet;

use omegi_core::{ErrorRecord, Fingerprint, Record, Resource, SpanRecord};

use crate::error::Result;
use crate::handles::At;
use crate::issues::{stage_errors, ErrorOutcome, Issue};
use crate::keys::check_name;
use crate::spans::{stage_spans, SpanOutcome};
use crate::staging::Staging;
use crate::stats::{stage_stats, Totals};
use crate::writes::Writes;
use crate::{now_ns, Issues, Traces};

/// What one ingest did: alerts fire on `created` and `regressed`.
///
/// Everything here counts what the ingest stored for the first time: spans
/// and errors that were stored already (a client sending the same data
/// again) are not counted twice.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct IngestReport {
    /// Spans stored for the first time (a span is known by its trace and
    /// span id).
    pub spans: usize,
    /// Errors stored for the first time, as new occurrences.
    pub errors: usize,
    /// Traces seen for the first time.
    pub new_traces: u64,
    /// Issues this ingest created, as they are after it.
    pub created: Vec<Issue>,
    /// Resolved issues that occurred again, as they are after it.
    pub regressed: Vec<Issue>,
    /// New occurrences per issue (by fingerprint, sorted): what spike
    /// detection counts.
    pub occurrences: Vec<(Fingerprint, u64)>,
    /// Occurrences taken back ([`Traces::ingest_settled`]): failures stored
    /// as root causes that a later part of their trace showed to be
    /// consequences.
    pub retracted: usize,
    /// Issues removed because their only occurrences were taken back.
    pub withdrawn: Vec<Fingerprint>,
}

impl Traces<'_> {
    /// Stores a batch of records sent by one process (`resource`) to
    /// `project`: spans by trace, errors grouped into issues, counters for
    /// the dashboard. Records whose service is empty take the resource's
    /// ([`Resource::fill_service`]).
    ///
    /// The project is created with default settings if it does not exist.
    ///
    /// One call is one transaction: its writes become visible together when
    /// it returns, and an error (a name that cannot be stored, a failing
    /// disk) leaves nothing of it. Sending the same records again changes
    /// nothing: a span already stored in its trace, or an error whose
    /// occurrence is (same trace, span, time and content), is not stored or
    /// counted twice. The writes are durable after the next [`Store::sync`](crate::Store::sync)
    /// or [`Store::flush`](crate::Store::flush) (see the crate docs).
    pub fn ingest(
        &self,
        project: &str,
        resource: &Resource,
        records: &[Record],
    ) -> Result<IngestReport> {
        self.ingest_resources(project, [(resource, records)])
    }

    /// Stores the records of several processes at once, as one
    /// [`Traces::ingest`] call per resource would, but writing each trace
    /// once: an OTLP request carries one group per resource, and the spans
    /// of one trace are usually spread over them.
    ///
    /// ```
    /// use omegi_core::{ErrorRecord, Record, Resource};
    /// # fn main() -> omegi_store::Result<()> {
    /// let store = omegi_store::Store::temporary()?;
    /// // No service of its own: it is filled in from the resource.
    /// let failure = |message: &str| {
    ///     Record::Error(ErrorRecord::new(message, 1_700_000_000_000_000_000).with_target("api"))
    /// };
    /// let gateway = Resource::new("gateway");
    /// let payment = Resource::new("payment");
    /// let (from_gateway, from_payment) = ([failure("upstream failed")], [failure("declined")]);
    /// let report = store.traces().ingest_resources(
    ///     "shop",
    ///     [(&gateway, &from_gateway[..]), (&payment, &from_payment[..])],
    /// )?;
    /// assert_eq!(report.errors, 2);
    /// let mut services: Vec<_> = report.created.iter().map(|i| i.services.clone()).collect();
    /// services.sort();
    /// assert_eq!(services, [["gateway"], ["payment"]]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ingest_resources<'a>(
        &self,
        project: &str,
        batches: impl IntoIterator<Item = (&'a Resource, &'a [Record])>,
    ) -> Result<IngestReport> {
        check_name("project", project)?;
        let mut resources: Vec<&Resource> = Vec::new();
        // Each record with the index of its resource.
        let mut spans: Vec<(usize, Cow<'_, SpanRecord>)> = Vec::new();
        let mut errors: Vec<(usize, Cow<'_, ErrorRecord>)> = Vec::new();
        for (resource, records) in batches {
            let from = resources.len();
            resources.push(resource);
            for record in records {
                match record {
                    Record::Span(s) if s.service.is_empty() => {
                        let mut s = s.clone();
                        resource.fill_service(&mut s.service);
                        spans.push((from, Cow::Owned(s)));
                    }
                    Record::Span(s) => spans.push((from, Cow::Borrowed(s))),
                    Record::Error(e) if e.service.is_empty() => {
                        let mut e = e.clone();
                        resource.fill_service(&mut e.service);
                        errors.push((from, Cow::Owned(e)));
                    }
                    Record::Error(e) => errors.push((from, Cow::Borrowed(e))),
                }
            }
        }
        let now = now_ns();
        let (span_outcome, mut error_outcome) = match self.at {
            At::Sled(store) => {
                let core = store.core();
                let _guard = core.lock();
                let mut w = Writes::new(core);
                let outcome = stage_records(&mut w, project, &resources, &spans, &errors, now)?;
                w.commit()?;
                outcome
            }
            At::Pg(db) => {
                let times = spans.iter().map(|(_, s)| s.start_ns);
                db.prepare_days(times.chain(errors.iter().map(|(_, e)| e.time_ns)))?;
                db.write(|w| stage_records(w, project, &resources, &spans, &errors, now))?
            }
        };
        let mut report = IngestReport {
            spans: usize::try_from(span_outcome.new_spans).unwrap_or(usize::MAX),
            errors: error_outcome.new.iter().filter(|new| **new).count(),
            new_traces: span_outcome.new_traces,
            occurrences: std::mem::take(&mut error_outcome.per_issue)
                .into_iter()
                .map(|(fp, n)| (Fingerprint(fp), n))
                .collect(),
            ..IngestReport::default()
        };
        self.report_issues(project, &mut report, error_outcome)?;
        Ok(report)
    }

    /// Fills in the issues an ingest created and regressed, as they are
    /// after it.
    pub(crate) fn report_issues(
        &self,
        project: &str,
        report: &mut IngestReport,
        outcome: ErrorOutcome,
    ) -> Result<()> {
        let issues = Issues { at: self.at };
        for fp in outcome.created {
            if let Some(issue) = issues.get(project, &Fingerprint(fp))? {
                report.created.push(issue);
            }
        }
        for fp in outcome.regressed {
            if let Some(issue) = issues.get(project, &Fingerprint(fp))? {
                report.regressed.push(issue);
            }
        }
        Ok(())
    }
}

/// Stages one ingest of records (see [`Traces::ingest_resources`]):
/// everything is staged first, so that a name or value that cannot be
/// stored refuses the whole ingest before anything is written.
fn stage_records(
    w: &mut impl Staging,
    project: &str,
    resources: &[&Resource],
    spans: &[(usize, Cow<'_, SpanRecord>)],
    errors: &[(usize, Cow<'_, ErrorRecord>)],
    now: u64,
) -> Result<(SpanOutcome, ErrorOutcome)> {
    let span_refs: Vec<&SpanRecord> = spans.iter().map(|(_, s)| s.as_ref()).collect();
    let error_refs: Vec<&ErrorRecord> = errors.iter().map(|(_, e)| e.as_ref()).collect();
    w.ensure_project(project)?;
    let span_outcome = stage_spans(w, project, &span_refs)?;
    let error_outcome = stage_errors(w, project, &error_refs)?;
    // Services (and the processes naming them) that sent something
    // new: their last-seen time moves, nothing else's does.
    let mut services: BTreeSet<&str> = BTreeSet::new();
    let mut senders: BTreeSet<usize> = BTreeSet::new();
    for ((from, span), _) in spans
        .iter()
        .zip(&span_outcome.written)
        .filter(|(_, written)| **written)
    {
        services.insert(&span.service);
        senders.insert(*from);
    }
    let mut new_errors: Vec<&ErrorRecord> = Vec::new();
    for ((from, error), _) in errors
        .iter()
        .zip(&error_outcome.new)
        .filter(|(_, new)| **new)
    {
        services.insert(&error.service);
        senders.insert(*from);
        new_errors.push(error);
    }
    let senders: Vec<&Resource> = senders.into_iter().map(|i| resources[i]).collect();
    services.extend(
        senders
            .iter()
            .map(|r| r.service.as_str())
            .filter(|s| !s.is_empty()),
    );
    let services: Vec<&str> = services.into_iter().collect();
    stage_stats(
        w,
        project,
        &senders,
        &services,
        &new_errors,
        Totals {
            spans: span_outcome.new_spans,
            traces: span_outcome.new_traces,
            errors: new_errors.len() as u64,
        },
        now,
    )?;
    Ok((span_outcome, error_outcome))
}

#[cfg(test)]
mod tests {
    use omegi_core::{SpanFrame, SpanId, SpanKind, TraceId};

    use super::*;
    use crate::{Bucket, IssueQuery, IssueStatus, Store, TraceQuery};

    const T0: u64 = 1_700_000_000_000_000_000;

    fn span(trace: u128, id: u64, parent: Option<u64>, service: &str, start: u64) -> Record {
        Record::Span(
            SpanRecord::new(
                TraceId(trace),
                SpanId(id),
                format!("op-{id}"),
                start,
                start + 1_000,
            )
            .with_parent(parent.map(SpanId))
            .with_service(service)
            .with_target("svc::api")
            .with_kind(SpanKind::Server)
            .with_attribute("http.route", "/orders/{id}"),
        )
    }

    fn error(service: &str, message: &str, time: u64, trace: Option<u128>) -> Record {
        Record::Error(
            ErrorRecord::new(message, time)
                .with_trace_id(trace.map(TraceId))
                .with_span_id(trace.map(|_| SpanId(1)))
                .with_service(service)
                .with_error_type("AppError")
                .with_target("svc::api")
                .with_span_stack(vec![
                    SpanFrame::new(SpanId(1), "handle").with_target("svc::api")
                ]),
        )
    }

    fn resource(service: &str) -> Resource {
        Resource::new(service).with_attribute("host.name", service)
    }

    /// What the store held before the ingest under test: a trace, two
    /// issues (one resolved), statistics.
    fn earlier(store: &Store) {
        store
            .traces()
            .ingest(
                "shop",
                &resource("gateway"),
                &[
                    span(1, 1, None, "gateway", T0),
                    error("gateway", "timeout", T0 + 5, Some(1)),
                    error("gateway", "declined", T0 + 6, Some(1)),
                ],
            )
            .unwrap();
        let declined = omegi_core::fingerprint(match &error("gateway", "declined", 0, None) {
            Record::Error(e) => e,
            Record::Span(_) => unreachable!(),
        });
        store
            .issues()
            .set_status("shop", &declined, IssueStatus::Resolved)
            .unwrap();
    }

    /// The ingest under test: it extends the stored trace (a late root
    /// moves its start), starts another, adds occurrences to both issues
    /// (regressing the resolved one), creates a third, and brings a new
    /// service.
    fn ingest(store: &Store, project: &str) -> Result<IngestReport> {
        let gateway = resource("gateway");
        let payment = resource("payment");
        let from_gateway = [
            span(1, 2, Some(1), "gateway", T0 - 100),
            span(2, 1, None, "gateway", T0 + 50),
            error("gateway", "timeout", T0 + 60, Some(2)),
        ];
        let from_payment = [
            span(1, 3, Some(2), "payment", T0 + 10),
            error("payment", "ledger offline", T0 + 11, Some(1)),
            error("gateway", "declined", T0 + 12, Some(1)),
            error("payment", "ledger offline", T0 + 70, None),
        ];
        store.traces().ingest_resources(
            project,
            [(&gateway, &from_gateway[..]), (&payment, &from_payment[..])],
        )
    }

    /// Everything readable, as text; without `times`, leaving out the wall-
    /// clock times (services' last seen, projects' creation, status changes).
    fn readable(store: &Store, times: bool) -> String {
        let mut out = String::new();
        let mut projects = store.accounts().projects().unwrap();
        if !times {
            projects.iter_mut().for_each(|p| p.created_ns = 0);
        }
        out += &format!("{projects:?}\n{:?}\n", store.stats().summary().unwrap());
        for project in ["shop", "blog"] {
            for trace in store.traces().list(&TraceQuery::project(project)).unwrap() {
                let spans = store.traces().spans(project, trace.trace_id).unwrap();
                out += &format!("{trace:?}\n{spans:?}\n");
            }
            for t in 1..=2 {
                out += &format!("{:?}\n", store.traces().get(project, TraceId(t)).unwrap());
            }
            for mut issue in store.issues().list(project, &IssueQuery::all()).unwrap() {
                if !times {
                    issue.status_changed_ns = 0;
                }
                let occurrences = store
                    .issues()
                    .occurrences(project, &issue.fingerprint, 0, u64::MAX, usize::MAX)
                    .unwrap();
                out += &format!("{issue:?}\n{occurrences:?}\n");
            }
            for bucket in Bucket::ALL {
                out += &format!(
                    "{:?}\n{:?}\n",
                    store
                        .stats()
                        .error_counts(project, bucket, 0, u64::MAX)
                        .unwrap(),
                    store
                        .stats()
                        .service_error_counts(project, bucket, 0, u64::MAX)
                        .unwrap()
                );
            }
            let mut services = store.stats().services(project).unwrap();
            if !times {
                services.iter_mut().for_each(|s| s.last_seen_ns = 0);
            }
            let mut new_issues = store.issues().new_issues(project, 0, u64::MAX).unwrap();
            if !times {
                new_issues.iter_mut().for_each(|i| i.status_changed_ns = 0);
            }
            out += &format!("{services:?}\n{new_issues:?}\n");
        }
        out
    }

    #[test]
    fn an_ingest_failing_at_any_write_leaves_nothing_readable() {
        for project in ["shop", "blog"] {
            let reference = Store::temporary().unwrap();
            earlier(&reference);
            ingest(&reference, project).unwrap();
            let expected = readable(&reference, false);

            let mut failed = 0;
            for n in 1.. {
                assert!(n < 1_000, "the ingest never stopped failing");
                let store = Store::temporary().unwrap();
                earlier(&store);
                let before = readable(&store, true);
                store.as_embedded().unwrap().core().failpoint.fail_write(n);
                match ingest(&store, project) {
                    Err(e) => {
                        assert!(e.to_string().contains("injected failure"), "{e}");
                        failed += 1;
                    }
                    // More writes than the ingest has: it went through.
                    Ok(_) => break,
                }
                assert_eq!(
                    readable(&store, true),
                    before,
                    "write {n} of {project} failed and left something"
                );
                // The store still works, and the retry stores everything.
                store.as_embedded().unwrap().core().failpoint.fail_write(0);
                ingest(&store, project).unwrap();
                assert_eq!(readable(&store, false), expected, "after write {n}");
            }
            // Segments, summaries, indexes, issues and their indexes,
            // occurrences, counters, totals, services (and the project).
            assert!(failed >= 20, "{project}: only {failed} writes");
        }
    }
}
