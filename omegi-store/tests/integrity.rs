//! Integrity of ingest: projects never touch each other's data, a refused
//! ingest stores nothing, and the same data sent again is stored once.

mod common;

use std::time::Duration;

use common::*;
use omegi_core::{fingerprint, Record, Resource, SpanId, SpanRecord, TraceId};
use omegi_store::{
    Bucket, BucketCount, Config, Error, IngestReport, Issue, IssueQuery, IssueStatus, Occurrence,
    ProjectSummary, ServiceCount, ServiceInfo, Store, TraceQuery, TraceSummary,
};

/// Everything a user can read of a set of projects.
#[derive(Debug, PartialEq)]
struct Readable {
    projects: Vec<ProjectSummary>,
    traces: Vec<(TraceSummary, Vec<SpanRecord>)>,
    issues: Vec<(Issue, Vec<Occurrence>, Vec<BucketCount>)>,
    counts: Vec<Vec<BucketCount>>,
    per_service: Vec<ServiceCount>,
    services: Vec<ServiceInfo>,
    new_issues: Vec<Issue>,
}

fn readable(store: &Store, projects: &[&str]) -> Readable {
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

fn send(store: &Store, project: &str, request: &[(Resource, Vec<Record>)]) -> IngestReport {
    store
        .traces()
        .ingest_resources(
            project,
            request.iter().map(|(r, records)| (r, &records[..])),
        )
        .unwrap()
}

#[test]
fn the_same_request_three_times_is_stored_and_counted_once() {
    let store = Store::temporary().unwrap();
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

#[test]
fn a_changed_copy_of_a_span_replaces_it_without_counting_again() {
    let store = Store::temporary().unwrap();
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

#[test]
fn a_trace_id_sent_to_two_projects_is_two_traces() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open_with(Config::new(dir.path()).retention(Duration::from_secs(3600))).unwrap();
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
    let report = store.run_retention(T0 + 600 * SEC).unwrap();
    assert_eq!((report.traces, report.spans, report.occurrences), (1, 1, 1));
    assert!(store
        .traces()
        .get("other", TraceId(trace))
        .unwrap()
        .is_none());
    assert_eq!(readable(&store, &["default"]), before);
}

#[test]
fn a_refused_ingest_stores_nothing_and_the_store_goes_on() {
    let store = Store::temporary().unwrap();
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
