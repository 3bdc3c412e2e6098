//! Spans and traces: ingest, reads, retries, isolation.

use omegi_core::flow::Verdict;
use omegi_core::{fingerprint, Record, Resource, SpanId, SpanRecord, TraceId};
use omegi_store::{
    Bucket, BucketCount, Error, IngestReport, Issue, IssueQuery, IssueStatus, Occurrence,
    ProjectSummary, ServiceCount, ServiceInfo, SettledCause, SettledTrace, TraceQuery,
    TraceSummary,
};

use crate::common::*;
use crate::Backend;

/// Everything a user can read of a set of projects.
#[derive(Debug, PartialEq)]
pub(crate) struct Readable {
    projects: Vec<ProjectSummary>,
    traces: Vec<(TraceSummary, Vec<SpanRecord>)>,
    issues: Vec<(Issue, Vec<Occurrence>, Vec<BucketCount>)>,
    counts: Vec<Vec<BucketCount>>,
    per_service: Vec<ServiceCount>,
    services: Vec<ServiceInfo>,
    new_issues: Vec<Issue>,
}

pub(crate) fn readable(store: &Backend, projects: &[&str]) -> Readable {
    let summary = store.stats().summary().unwrap();
    let mut r = Readable {
        projects: summary
            .projects
            .into_iter()
            .filter(|p| projects.contains(&p.project.as_str()))
            .collect(),
        traces: Vec::new(),
        issues: Vec::new(),
        counts: Vec::new(),
        per_service: Vec::new(),
        services: Vec::new(),
        new_issues: Vec::new(),
    };
    for trace in store
        .traces()
        .list(&TraceQuery::projects(projects.iter().copied()))
        .unwrap()
    {
        let spans = store
            .traces()
            .spans(&trace.project, trace.trace_id)
            .unwrap();
        assert_eq!(
            store
                .traces()
                .get(&trace.project, trace.trace_id)
                .unwrap()
                .as_ref(),
            Some(&trace)
        );
        r.traces.push((trace, spans));
    }
    for project in projects {
        for issue in store.issues().list(project, &IssueQuery::all()).unwrap() {
            let occurrences = store
                .issues()
                .occurrences(project, &issue.fingerprint, 0, u64::MAX, usize::MAX)
                .unwrap();
            let histogram = store
                .issues()
                .histogram(project, &issue.fingerprint, Bucket::Minute, 0, u64::MAX)
                .unwrap();
            r.issues.push((issue, occurrences, histogram));
        }
        for bucket in Bucket::ALL {
            r.counts.push(
                store
                    .stats()
                    .error_counts(project, bucket, 0, u64::MAX)
                    .unwrap(),
            );
        }
        r.per_service.extend(
            store
                .stats()
                .service_error_counts(project, Bucket::Day, 0, u64::MAX)
                .unwrap(),
        );
        r.services.extend(store.stats().services(project).unwrap());
        r.new_issues
            .extend(store.issues().new_issues(project, 0, u64::MAX).unwrap());
    }
    r
}

/// A request as an OTLP exporter sends it: two processes, two traces, an
/// exception in one, a log error outside any trace.
fn request() -> Vec<(Resource, Vec<Record>)> {
    let gateway = Resource::new("gateway").with_attribute("host.name", "edge-1");
    let payment = Resource::new("payment").with_attribute("host.name", "pay-7");
    let mut failed = span(7, 3, Some(2), "payment", T0 + 20);
    failed.status = omegi_core::Status::Error;
    vec![
        (
            gateway,
            vec![
                Record::Span(span(7, 1, None, "gateway", T0)),
                Record::Span(span(7, 2, Some(1), "gateway", T0 + 10)),
                Record::Span(span(8, 1, None, "gateway", T0 + SEC)),
                Record::Error(error("gateway", "upstream failed", T0 + 30, Some(7))),
            ],
        ),
        (
            payment,
            vec![
                Record::Span(failed),
                Record::Error(error("payment", "card declined", T0 + 25, Some(7))),
                Record::Error(error("payment", "card declined", T0 + SEC, None)),
                Record::Error(error("payment", "ledger offline", T0 + 2 * SEC, None)),
            ],
        ),
    ]
}

fn send(store: &Backend, project: &str, request: &[(Resource, Vec<Record>)]) -> IngestReport {
    store
        .traces()
        .ingest_resources(
            project,
            request.iter().map(|(r, records)| (r, &records[..])),
        )
        .unwrap()
}

pub(crate) fn one_call_stores_the_records_of_several_processes(store: Backend) {
    let gateway = Resource::new("gateway").with_attribute("host.name", "edge-1");
    let payment = Resource::new("payment").with_attribute("host.name", "pay-7");
    // One trace over both processes; the spans leave the service empty.
    let root = span(1, 11, None, "", T0);
    let child = span(1, 12, Some(11), "", T0 + 10);
    let failure = error("", "declined", T0 + 20, Some(1));
    let from_gateway = [Record::Span(root)];
    let from_payment = [Record::Span(child), Record::Error(failure)];
    let report = store
        .traces()
        .ingest_resources(
            "shop",
            [(&gateway, &from_gateway[..]), (&payment, &from_payment[..])],
        )
        .unwrap();
    assert_eq!((report.spans, report.errors, report.new_traces), (2, 1, 1));
    assert_eq!(report.created[0].services, ["payment"]);
    let trace = store.traces().get("shop", TraceId(1)).unwrap().unwrap();
    assert_eq!(trace.services, ["gateway", "payment"]);
    assert_eq!(trace.span_count, 2);
    let services: Vec<_> = store
        .traces()
        .spans("shop", TraceId(1))
        .unwrap()
        .into_iter()
        .map(|s| s.service)
        .collect();
    assert_eq!(services, ["gateway", "payment"]);
    // Each service keeps the attributes of its own process.
    let known = store.stats().services("shop").unwrap();
    let host = |name: &str| {
        known
            .iter()
            .find(|s| s.service == name)
            .map(|s| s.attributes.clone())
            .unwrap()
    };
    assert_eq!(host("gateway"), gateway.attributes);
    assert_eq!(host("payment"), payment.attributes);
}

pub(crate) fn spans_are_kept_by_trace_and_listed_by_time_project_and_service(store: Backend) {
    let r = resource("gateway");
    // Trace 1: gateway -> payment; trace 2: gateway only, later; trace 3 in another project.
    let batch = spans(vec![
        span(1, 11, None, "gateway", T0),
        span(1, 12, Some(11), "payment", T0 + 10),
        span(2, 21, None, "gateway", T0 + SEC),
    ]);
    let report = store.traces().ingest("shop", &r, &batch).unwrap();
    assert_eq!((report.spans, report.new_traces), (3, 2));
    store
        .traces()
        .ingest(
            "blog",
            &r,
            &spans(vec![span(3, 31, None, "gateway", T0 + 2 * SEC)]),
        )
        .unwrap();

    let trace = store.traces().spans("shop", TraceId(1)).unwrap();
    assert_eq!(
        trace.iter().map(|s| s.span_id).collect::<Vec<_>>(),
        [SpanId(11), SpanId(12)]
    );
    assert_eq!(trace[1], span(1, 12, Some(11), "payment", T0 + 10));
    assert!(store
        .traces()
        .spans("shop", TraceId(99))
        .unwrap()
        .is_empty());
    assert!(store.traces().spans("blog", TraceId(1)).unwrap().is_empty());
    assert_eq!(
        store.traces().span("shop", TraceId(1), SpanId(12)).unwrap(),
        Some(span(1, 12, Some(11), "payment", T0 + 10))
    );
    assert_eq!(
        store.traces().span("blog", TraceId(1), SpanId(12)).unwrap(),
        None
    );

    let summary = store.traces().get("shop", TraceId(1)).unwrap().unwrap();
    assert_eq!(summary.project, "shop");
    assert_eq!(summary.services, ["gateway", "payment"]);
    assert_eq!(summary.span_count, 2);
    assert_eq!(summary.root.as_ref().unwrap().name, "op-11");

    let ids = |q: &TraceQuery| -> Vec<u128> {
        store
            .traces()
            .list(q)
            .unwrap()
            .into_iter()
            .map(|t| t.trace_id.0)
            .collect()
    };
    let both = || TraceQuery::projects(["shop", "blog"]);
    assert_eq!(ids(&both()), [3, 2, 1]);
    assert_eq!(ids(&TraceQuery::project("shop")), [2, 1]);
    assert_eq!(ids(&TraceQuery::project("blog")), [3]);
    assert_eq!(ids(&TraceQuery::project("shop").service("payment")), [1]);
    assert_eq!(ids(&both().service("payment")), [1]);
    assert_eq!(ids(&both().limit(1)), [3]);
    assert_eq!(ids(&both().between(T0 + 1, T0 + 2 * SEC)), [2]);
    // A query names the projects it lists: none, nothing.
    assert!(ids(&TraceQuery::default()).is_empty());
    assert!(ids(&TraceQuery::project("nobody")).is_empty());
}

pub(crate) fn a_trace_lists_under_services_of_any_name(store: Backend) {
    let names = ["say \"hi\", {x}", "back\\slash", "NULL", " spaced ", "{}"];
    let batch: Vec<SpanRecord> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let parent = (i > 0).then_some(10);
            span(7, 10 + i as u64, parent, name, T0 + i as u64)
        })
        .collect();
    store
        .traces()
        .ingest("shop", &resource(names[0]), &spans(batch))
        .unwrap();
    let mut sorted = names.map(str::to_owned).to_vec();
    sorted.sort();
    let summary = store.traces().get("shop", TraceId(7)).unwrap().unwrap();
    assert_eq!(summary.services, sorted);
    for name in names {
        let listed = store
            .traces()
            .list(&TraceQuery::project("shop").service(name))
            .unwrap();
        assert_eq!(listed.len(), 1, "{name}");
        assert_eq!(listed[0].services, sorted);
    }
    assert!(store
        .traces()
        .list(&TraceQuery::project("shop").service("say"))
        .unwrap()
        .is_empty());
}

pub(crate) fn a_late_root_moves_the_trace_in_time_without_duplicating_it(store: Backend) {
    let r = resource("a");
    store
        .traces()
        .ingest("p", &r, &spans(vec![span(5, 2, Some(1), "a", T0 + 100)]))
        .unwrap();
    store
        .traces()
        .ingest("p", &r, &spans(vec![span(5, 1, None, "b", T0)]))
        .unwrap();
    // Re-sending a span replaces it and does not count twice.
    store
        .traces()
        .ingest("p", &r, &spans(vec![span(5, 1, None, "b", T0)]))
        .unwrap();
    let listed = store.traces().list(&TraceQuery::project("p")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].start_ns, T0);
    assert_eq!(listed[0].span_count, 2);
    assert_eq!(
        store
            .traces()
            .list(&TraceQuery::project("p").service("b"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.stats().summary().unwrap().projects[0].traces, 1);
}

pub(crate) fn the_same_request_three_times_is_stored_and_counted_once(store: Backend) {
    let request = request();
    let first = send(&store, "shop", &request);
    assert_eq!((first.spans, first.errors, first.new_traces), (4, 4, 2));
    assert_eq!(first.created.len(), 3);
    let after_first = readable(&store, &["shop"]);
    assert_eq!(after_first.projects[0].spans, 4);
    assert_eq!(after_first.projects[0].errors, 4);
    for _ in 0..2 {
        let again = send(&store, "shop", &request);
        assert_eq!((again.spans, again.errors, again.new_traces), (0, 0, 0));
        assert!(again.created.is_empty() && again.regressed.is_empty());
        assert!(again.occurrences.is_empty());
        // Counts, statistics, lists, services (and their last-seen time)
        // are what they were after the first.
        assert_eq!(readable(&store, &["shop"]), after_first);
    }

    // A retry does not reopen a resolved issue either; a new occurrence does.
    let declined = fingerprint(&error("payment", "card declined", 0, None));
    store
        .issues()
        .set_status("shop", &declined, IssueStatus::Resolved)
        .unwrap();
    let resolved = readable(&store, &["shop"]);
    let again = send(&store, "shop", &request);
    assert!(again.regressed.is_empty());
    assert_eq!(readable(&store, &["shop"]), resolved);
    let new = error("payment", "card declined", T0 + 3 * SEC, None);
    let report = store
        .traces()
        .ingest("shop", &resource("payment"), &[Record::Error(new)])
        .unwrap();
    assert_eq!(report.regressed.len(), 1);
    assert_eq!(report.regressed[0].count, 3);
    assert_eq!(report.occurrences, [(declined, 1)]);
}

pub(crate) fn a_changed_copy_of_a_span_replaces_it_without_counting_again(store: Backend) {
    let r = resource("gateway");
    store
        .traces()
        .ingest("shop", &r, &spans(vec![span(1, 1, None, "gateway", T0)]))
        .unwrap();
    let mut renamed = span(1, 1, None, "gateway", T0);
    renamed.name = "POST /checkout".into();
    let report = store
        .traces()
        .ingest("shop", &r, &spans(vec![renamed.clone()]))
        .unwrap();
    assert_eq!((report.spans, report.new_traces), (0, 0));
    assert_eq!(
        store.traces().spans("shop", TraceId(1)).unwrap(),
        [renamed.clone()]
    );
    let summary = store.traces().get("shop", TraceId(1)).unwrap().unwrap();
    assert_eq!(summary.span_count, 1);
    assert_eq!(summary.root.unwrap().name, "POST /checkout");
    assert_eq!(store.stats().summary().unwrap().projects[0].spans, 1);
}

pub(crate) fn a_trace_id_sent_to_two_projects_is_two_traces(store: Backend) {
    let r = resource("gateway");
    let trace = 0x5b8e_fff7_9803_8103_d269_b633_813f_c60c_u128;
    let mut records = spans(vec![
        span(trace, 1, None, "gateway", T0),
        span(trace, 2, Some(1), "gateway", T0 + 10),
    ]);
    records.push(Record::Error(error("gateway", "boom", T0 + 5, Some(trace))));
    store.traces().ingest("default", &r, &records).unwrap();
    let before = readable(&store, &["default"]);

    // Another project's token sends a span with the same trace and span id,
    // from the distant past, and an error in that trace.
    let mut hacked = span(trace, 1, None, "evil", 1);
    hacked.name = "HACKED".into();
    let report = store
        .traces()
        .ingest(
            "other",
            &resource("evil"),
            &[
                Record::Span(hacked.clone()),
                Record::Error(error("gateway", "boom", 1, Some(trace))),
            ],
        )
        .unwrap();
    assert_eq!((report.spans, report.new_traces), (1, 1));
    assert_eq!(readable(&store, &["default"]), before);
    assert_eq!(
        store
            .traces()
            .span("default", TraceId(trace), SpanId(1))
            .unwrap()
            .unwrap()
            .name,
        "op-1"
    );
    // Listed in its own project only, with its own window.
    let since = |project: &str| {
        store
            .traces()
            .list(&TraceQuery::project(project).between(T0 - 3600 * SEC, u64::MAX))
            .unwrap()
    };
    assert_eq!(since("default").len(), 1);
    assert!(since("other").is_empty());
    let theirs = store
        .traces()
        .get("other", TraceId(trace))
        .unwrap()
        .unwrap();
    assert_eq!((theirs.project.as_str(), theirs.start_ns), ("other", 1));
    assert_eq!(
        store.traces().spans("other", TraceId(trace)).unwrap(),
        [hacked]
    );
    let both = store
        .traces()
        .list(&TraceQuery::projects(["default", "other"]))
        .unwrap();
    assert_eq!(
        both.iter()
            .map(|t| (t.project.as_str(), t.trace_id.0))
            .collect::<Vec<_>>(),
        [("default", trace), ("other", trace)]
    );

    // Retention deletes the old trace of `other` and nothing of `default`.
    let report = store.purge_before(T0 - 3000 * SEC);
    assert_eq!((report.traces, report.spans, report.occurrences), (1, 1, 1));
    assert!(store
        .traces()
        .get("other", TraceId(trace))
        .unwrap()
        .is_none());
    assert_eq!(readable(&store, &["default"]), before);
}

pub(crate) fn a_refused_ingest_stores_nothing_and_the_store_goes_on(store: Backend) {
    let r = resource("gateway");
    let mut records = spans(vec![span(1, 1, None, "gateway", T0)]);
    records.push(Record::Error(error("gateway", "boom", T0, Some(1))));
    // A service name longer than a key holds, after valid records.
    records.push(Record::Span(span(2, 1, None, &"x".repeat(70_000), T0)));
    let err = store.traces().ingest("shop", &r, &records).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidName {
                what: "service",
                ..
            }
        ),
        "{err}"
    );
    assert!(store.accounts().project("shop").unwrap().is_none());
    assert!(store.stats().summary().unwrap().projects.is_empty());
    assert!(store.traces().get("shop", TraceId(1)).unwrap().is_none());
    assert!(store
        .issues()
        .list("shop", &IssueQuery::all())
        .unwrap()
        .is_empty());
    assert!(store.stats().services("shop").unwrap().is_empty());

    records.pop();
    let report = store.traces().ingest("shop", &r, &records).unwrap();
    assert_eq!((report.spans, report.errors), (1, 1));
    assert_eq!(
        store.issues().list("shop", &IssueQuery::all()).unwrap()[0].count,
        1
    );
}

/// A consequence on `span` of `service`.
fn consequence(service: &str, span: u64) -> omegi_core::Consequence {
    omegi_core::Consequence {
        service: service.into(),
        span_id: SpanId(span),
        span_name: format!("op-{span}"),
        status_message: Some("upstream failed".into()),
        error_type: None,
        message: None,
    }
}

fn served(span: &SpanRecord, failed: bool) -> omegi_core::flow::Request {
    omegi_core::flow::Request {
        span_id: span.span_id,
        service: span.service.clone(),
        route: "/orders/{id}".into(),
        start_ns: span.start_ns,
        duration_ns: span.end_ns - span.start_ns,
        failed,
    }
}

fn call(caller: &SpanRecord, callee: &SpanRecord, failed: bool) -> omegi_core::flow::Call {
    omegi_core::flow::Call {
        caller_span: caller.span_id,
        callee_span: callee.span_id,
        caller: caller.service.clone(),
        callee: callee.service.clone(),
        start_ns: callee.start_ns,
        failed,
    }
}

/// Two settled traces: 1 failed (gateway calls payment, payment fails and
/// is the root cause), 2 healthy and sampled out.
pub(crate) fn settled_batch() -> Vec<SettledTrace> {
    let root = span(1, 1, None, "gateway", T0);
    let mut failing = span(1, 2, Some(1), "payment", T0 + 10);
    failing.status = omegi_core::Status::Error;
    let cause = error("payment", "card declined", T0 + 20, Some(1));
    let mut failed = SettledTrace::new(
        TraceId(1),
        vec![root.clone(), failing.clone()],
        Verdict::Failed,
    );
    failed.failing = vec![SpanId(1), SpanId(2)];
    failed.causes = vec![SettledCause {
        error: cause.with_span_id(Some(SpanId(2))),
        consequences: vec![consequence("gateway", 1)],
    }];
    failed.requests = vec![served(&root, true), served(&failing, true)];
    failed.calls = vec![call(&root, &failing, true)];
    let healthy = span(2, 1, None, "gateway", T0 + SEC);
    let mut sampled_out = SettledTrace::new(TraceId(2), vec![healthy.clone()], Verdict::SampledOut);
    sampled_out.requests = vec![served(&healthy, false)];
    vec![failed, sampled_out]
}

/// What a settle changes, besides [`readable`]: the settled traces and the
/// traffic.
fn settled_view(store: &Backend) -> String {
    let mut out = String::new();
    for t in [1, 2] {
        out += &format!(
            "{:?}\n",
            store
                .traces()
                .settlement("shop", TraceId(t))
                .unwrap()
                .map(|mut s| {
                    s.settled_ns = 0;
                    s
                })
        );
    }
    let stats = store.stats();
    out += &format!(
        "{:?}\n{:?}\n{:?}\n",
        stats
            .route_stats("shop", Bucket::Hour, 0, u64::MAX)
            .unwrap(),
        stats
            .service_edges("shop", Bucket::Day, 0, u64::MAX)
            .unwrap(),
        stats.sampling_totals("shop").unwrap()
    );
    out
}

pub(crate) fn settled_many_answers_as_settled_does_for_each_trace(store: Backend) {
    let resources = [resource("gateway"), resource("payment")];
    store
        .traces()
        .ingest_settled("shop", &resources, &settled_batch(), &[])
        .unwrap();
    let one = |trace| store.traces().settled("shop", TraceId(trace)).unwrap();
    let (kept, sampled_out) = (one(1), one(2));
    assert!(kept
        .as_ref()
        .is_some_and(|p| p.kept && p.cause_errors.len() == 1));
    assert!(sampled_out.as_ref().is_some_and(|p| !p.kept));
    // In the order asked, a trace named twice answered twice, an unknown
    // one with nothing.
    let ids = [TraceId(3), TraceId(1), TraceId(2), TraceId(1)];
    assert_eq!(
        store.traces().settled_many("shop", &ids).unwrap(),
        [None, kept.clone(), sampled_out, kept]
    );
    // Another project's traces are not this one's.
    assert_eq!(
        store.traces().settled_many("blog", &ids[1..2]).unwrap(),
        [None]
    );
    assert!(store.traces().settled_many("shop", &[]).unwrap().is_empty());
}

pub(crate) fn settled_traces_are_stored_once_and_sampled_out_ones_keep_their_statistics(
    store: Backend,
) {
    let resources = [resource("gateway"), resource("payment")];
    let batch = settled_batch();
    let report = store
        .traces()
        .ingest_settled("shop", &resources, &batch, &[])
        .unwrap();
    // The kept trace's spans are stored; the sampled-out one's are not.
    assert_eq!((report.spans, report.errors, report.new_traces), (2, 1, 2));
    assert_eq!(report.created.len(), 1);
    let issue = &report.created[0];
    assert_eq!(issue.title, "AppError: card declined");
    assert_eq!(
        store.issues().latest_consequences(issue).unwrap(),
        [consequence("gateway", 1)]
    );
    assert_eq!(store.traces().spans("shop", TraceId(1)).unwrap().len(), 2);
    assert!(store.traces().get("shop", TraceId(2)).unwrap().is_none());
    let kept = store
        .traces()
        .settlement("shop", TraceId(1))
        .unwrap()
        .unwrap();
    assert!(kept.kept && kept.failed);
    assert_eq!((kept.span_count, kept.services.len()), (2, 2));
    let out = store
        .traces()
        .settlement("shop", TraceId(2))
        .unwrap()
        .unwrap();
    assert!(!out.kept && !out.failed);
    assert!(store
        .traces()
        .settlement("shop", TraceId(3))
        .unwrap()
        .is_none());

    // What a collector reads to settle trace 1 again.
    let prior = store.traces().settled("shop", TraceId(1)).unwrap().unwrap();
    assert!(prior.kept);
    assert_eq!(prior.spans.len(), 2);
    assert_eq!(prior.failing, [SpanId(1), SpanId(2)]);
    assert_eq!(prior.cause_errors.len(), 1);
    assert_eq!(
        prior.stored_spans,
        store.traces().spans("shop", TraceId(1)).unwrap()
    );
    let prior = store.traces().settled("shop", TraceId(2)).unwrap().unwrap();
    assert!(!prior.kept && prior.stored_spans.is_empty());
    assert!(store
        .traces()
        .settled("blog", TraceId(1))
        .unwrap()
        .is_none());

    // The traffic counts every trace, kept or not.
    let routes = store
        .stats()
        .route_stats("shop", Bucket::Hour, 0, u64::MAX)
        .unwrap();
    assert_eq!(
        routes
            .iter()
            .map(|r| (r.service.as_str(), r.requests, r.errors))
            .collect::<Vec<_>>(),
        [("gateway", 2, 1), ("payment", 1, 1)]
    );
    let edges = store
        .stats()
        .service_edges("shop", Bucket::Minute, 0, u64::MAX)
        .unwrap();
    assert_eq!(
        edges
            .iter()
            .map(|e| (e.caller.as_str(), e.callee.as_str(), e.calls, e.errors))
            .collect::<Vec<_>>(),
        [("gateway", "payment", 1, 1)]
    );
    let totals = store.stats().sampling_totals("shop").unwrap();
    assert_eq!(
        (totals.traces, totals.kept_traces, totals.sampled_out_traces),
        (2, 1, 1)
    );
    assert_eq!(
        (totals.spans, totals.kept_spans, totals.late_spans),
        (3, 2, 0)
    );
    let summary = &store.stats().summary().unwrap().projects[0];
    assert_eq!((summary.spans, summary.traces, summary.errors), (3, 2, 1));

    // The same batch again (a write-ahead log replayed) changes nothing.
    let before = (readable(&store, &["shop"]), settled_view(&store));
    let again = store
        .traces()
        .ingest_settled("shop", &resources, &batch, &[])
        .unwrap();
    assert_eq!((again.spans, again.errors, again.new_traces), (0, 0, 0));
    assert!(again.created.is_empty() && again.occurrences.is_empty());
    assert_eq!((readable(&store, &["shop"]), settled_view(&store)), before);
}

pub(crate) fn a_late_part_of_a_trace_takes_back_an_occurrence_that_became_a_consequence(
    store: Backend,
) {
    let resources = [resource("payment"), resource("ledger")];
    // First settle: payment failed, and looked like the root cause.
    let mut failing = span(5, 2, None, "payment", T0);
    failing.status = omegi_core::Status::Error;
    let first_cause =
        error("payment", "payment failed", T0 + 5, Some(5)).with_span_id(Some(SpanId(2)));
    let mut first = SettledTrace::new(TraceId(5), vec![failing.clone()], Verdict::Failed);
    first.failing = vec![SpanId(2)];
    first.causes = vec![SettledCause {
        error: first_cause.clone(),
        consequences: Vec::new(),
    }];
    first.requests = vec![served(&failing, true)];
    let report = store
        .traces()
        .ingest_settled("shop", &resources, &[first], &[])
        .unwrap();
    assert_eq!(report.created.len(), 1);

    // Then the ledger's span arrives: it failed first, payment's failure
    // was its consequence.
    let mut ledger = span(5, 3, Some(2), "ledger", T0 + 1);
    ledger.status = omegi_core::Status::Error;
    let cause = error("ledger", "ledger offline", T0 + 2, Some(5)).with_span_id(Some(SpanId(3)));
    let mut late = SettledTrace::new(TraceId(5), vec![ledger.clone()], Verdict::Failed);
    late.failing = vec![SpanId(2), SpanId(3)];
    late.causes = vec![SettledCause {
        error: cause.clone(),
        consequences: vec![consequence("payment", 2)],
    }];
    late.retract = vec![SpanId(2)];
    late.requests = vec![served(&ledger, true)];
    late.calls = vec![call(&failing, &ledger, true)];
    let loose = error("ledger", "disk full", T0 + 3 * SEC, None);
    let report = store
        .traces()
        .ingest_settled(
            "shop",
            &resources,
            std::slice::from_ref(&late),
            std::slice::from_ref(&loose),
        )
        .unwrap();
    assert_eq!(report.retracted, 1);
    assert_eq!(report.withdrawn, [fingerprint(&first_cause)]);
    assert_eq!(report.created.len(), 2);
    assert_eq!((report.spans, report.errors, report.new_traces), (1, 2, 0));
    assert!(store
        .issues()
        .get("shop", &fingerprint(&first_cause))
        .unwrap()
        .is_none());
    let issues = store.issues().list("shop", &IssueQuery::all()).unwrap();
    assert_eq!(issues.len(), 2);
    let ledger_issue = store
        .issues()
        .get("shop", &fingerprint(&cause))
        .unwrap()
        .unwrap();
    let occurrences = store
        .issues()
        .occurrences("shop", &ledger_issue.fingerprint, 0, u64::MAX, 10)
        .unwrap();
    assert_eq!(occurrences.len(), 1);
    assert_eq!(occurrences[0].consequences, [consequence("payment", 2)]);
    // The retracted error is no longer counted.
    let summary = &store.stats().summary().unwrap().projects[0];
    assert_eq!((summary.errors, summary.issues), (2, 2));
    assert_eq!(
        store
            .stats()
            .error_counts("shop", Bucket::Day, 0, u64::MAX)
            .unwrap()
            .iter()
            .map(|b| b.count)
            .sum::<u64>(),
        2
    );
    let totals = store.stats().sampling_totals("shop").unwrap();
    assert_eq!(
        (
            totals.traces,
            totals.spans,
            totals.late_spans,
            totals.retracted
        ),
        (1, 2, 1, 1)
    );
    let prior = store.traces().settled("shop", TraceId(5)).unwrap().unwrap();
    assert_eq!(prior.failing, [SpanId(2), SpanId(3)]);
    assert_eq!(prior.cause_errors, [cause]);

    // Again: nothing more.
    let before = readable(&store, &["shop"]);
    let again = store
        .traces()
        .ingest_settled("shop", &resources, &[late], &[loose])
        .unwrap();
    assert_eq!((again.retracted, again.errors, again.spans), (0, 0, 0));
    assert_eq!(readable(&store, &["shop"]), before);
}

/// Ingests `records` from each handle at once, on its own thread; the
/// reports.
fn at_once(nodes: &[Backend], records: &[Vec<Record>]) -> Vec<IngestReport> {
    let barrier = std::sync::Barrier::new(nodes.len());
    std::thread::scope(|scope| {
        let threads: Vec<_> = nodes
            .iter()
            .zip(records)
            .map(|(node, records)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    node.traces()
                        .ingest("shop", &resource("payment"), records)
                        .unwrap()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// An error of the issue `key` (its fingerprint) at `time`.
fn keyed(key: &str, time: u64) -> Record {
    let mut e = error("payment", key, time, None);
    e.fingerprint = Some(key.into());
    Record::Error(e)
}

pub(crate) fn a_new_error_seen_by_two_nodes_at_once_is_new_once(store: Backend) {
    let nodes = [store.clone(), store.node()];
    for round in 0..20u64 {
        // The same new error sent to both nodes (a client retrying on
        // another node), and a different occurrence of another new one.
        let same = keyed(&format!("same {round}"), T0 + round);
        let at = |offset| keyed(&format!("other {round}"), T0 + offset);
        let reports = at_once(
            &nodes,
            &[vec![same.clone(), at(round)], vec![same, at(1_000 + round)]],
        );
        let created: Vec<String> = reports
            .iter()
            .flat_map(|r| r.created.iter().map(|i| i.title.clone()))
            .collect();
        let mut titles = created.clone();
        titles.sort();
        titles.dedup();
        assert_eq!(created.len(), 2, "round {round}: {created:?}");
        assert_eq!(titles.len(), 2, "round {round}: {created:?}");
        // Stored once, counted once: three occurrences in all.
        assert_eq!(reports.iter().map(|r| r.errors).sum::<usize>(), 3);
    }
    let issues = store.issues().list("shop", &IssueQuery::all()).unwrap();
    assert_eq!(issues.len(), 40);
    assert!(issues
        .iter()
        .all(|i| i.count == if i.title.contains("same") { 1 } else { 2 }));
    assert_eq!(store.stats().summary().unwrap().projects[0].errors, 60);

    // Resolved, then seen again by both at once (two new occurrences):
    // reported as regressed once.
    for issue in &issues {
        store
            .issues()
            .set_status("shop", &issue.fingerprint, IssueStatus::Resolved)
            .unwrap();
    }
    for round in 0..20u64 {
        let at = |offset| keyed(&format!("other {round}"), T0 + 5_000 + offset);
        let reports = at_once(&nodes, &[vec![at(round)], vec![at(10_000 + round)]]);
        let regressed: usize = reports.iter().map(|r| r.regressed.len()).sum();
        assert_eq!(regressed, 1, "round {round}");
        assert_eq!(reports.iter().map(|r| r.errors).sum::<usize>(), 2);
    }
}
