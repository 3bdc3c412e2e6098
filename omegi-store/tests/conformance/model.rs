//! A model test: the store and an in-memory model of spans and issues
//! receive the same random operations and must agree after each one. The
//! two projects share trace ids (each is its own trace), and a request is
//! sometimes sent again (a client's retry), which must change nothing.

use std::collections::{BTreeMap, BTreeSet};

use omegi_core::{fingerprint, ErrorRecord, Fingerprint, Record, SpanRecord, TraceId};
use omegi_store::{Error, IssueQuery, IssueSort, IssueStatus, TraceQuery};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

use crate::common::*;
use crate::Backend;

const PROJECTS: [&str; 2] = ["shop", "blog"];
const SERVICES: [&str; 3] = ["gateway", "payment", "stock"];
const MESSAGES: [&str; 3] = ["declined", "timeout", "not found"];
const STATUSES: [IssueStatus; 4] = [
    IssueStatus::Unresolved,
    IssueStatus::Resolved,
    IssueStatus::Ignored,
    IssueStatus::Regressed,
];

/// An error as an operation describes it: service, message, time offset
/// and trace. The same description is the same error.
type ErrorDescription = (usize, usize, u64, Option<u128>);

#[derive(Debug, Clone)]
enum Op {
    Spans {
        project: usize,
        spans: Vec<(u128, u64, Option<u64>, usize, u64)>,
    },
    Errors {
        project: usize,
        errors: Vec<ErrorDescription>,
    },
    SetStatus {
        project: usize,
        service: usize,
        message: usize,
        status: usize,
    },
    /// The latest `Spans` or `Errors` operation, sent again.
    Retry,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..2usize,
            prop::collection::vec(
                (
                    1..6u128,
                    1..6u64,
                    prop::option::of(1..6u64),
                    0..3usize,
                    0..20u64
                ),
                0..8
            )
        )
            .prop_map(|(project, spans)| Op::Spans { project, spans }),
        (
            0..2usize,
            prop::collection::vec(
                (0..3usize, 0..3usize, 0..6u64, prop::option::of(1..6u128)),
                0..6
            )
        )
            .prop_map(|(project, errors)| Op::Errors { project, errors }),
        (0..2usize, 0..3usize, 0..3usize, 0..4usize).prop_map(
            |(project, service, message, status)| Op::SetStatus {
                project,
                service,
                message,
                status
            }
        ),
        Just(Op::Retry),
    ]
}

#[derive(Debug, Clone)]
struct ModelIssue {
    status: IssueStatus,
    count: u64,
    first: u64,
    last: u64,
    services: BTreeSet<String>,
    latest_trace: Option<TraceId>,
    latest_error: ErrorRecord,
}

#[derive(Default)]
struct Model {
    /// (project, trace, span) -> the latest copy.
    spans: BTreeMap<(String, u128, u64), SpanRecord>,
    issues: BTreeMap<(String, String), ModelIssue>,
    occurrences: BTreeMap<(String, String), Vec<ErrorRecord>>,
    /// The errors stored, as the operation described them, per project:
    /// the same description is the same error.
    errors_seen: BTreeSet<(String, ErrorDescription)>,
    /// Projects that ingested anything, even nothing.
    projects: BTreeSet<String>,
    /// The latest `Spans` or `Errors` operation.
    last_batch: Option<Op>,
}

fn make_error(service: usize, message: usize, offset: u64, trace: Option<u128>) -> ErrorRecord {
    error(SERVICES[service], MESSAGES[message], T0 + offset, trace)
}

impl Model {
    fn apply(&mut self, op: &Op, store: &Backend) {
        if matches!(op, Op::Spans { .. } | Op::Errors { .. }) {
            self.last_batch = Some(op.clone());
        }
        match op {
            Op::Retry => {
                if let Some(last) = self.last_batch.clone() {
                    self.apply(&last, store);
                }
            }
            Op::Spans { project, spans } => {
                let records: Vec<SpanRecord> = spans
                    .iter()
                    .map(|&(t, s, p, svc, off)| span(t, s, p, SERVICES[svc], T0 + off * 10))
                    .collect();
                let project = PROJECTS[*project];
                self.projects.insert(project.to_owned());
                for s in &records {
                    self.spans
                        .insert((project.to_owned(), s.trace_id.0, s.span_id.0), s.clone());
                }
                let batch: Vec<Record> = records.into_iter().map(Record::Span).collect();
                store
                    .traces()
                    .ingest(project, &resource("gateway"), &batch)
                    .unwrap();
            }
            Op::Errors { project, errors } => {
                let project = PROJECTS[*project];
                self.projects.insert(project.to_owned());
                let records: Vec<ErrorRecord> = errors
                    .iter()
                    .map(|&(svc, msg, off, trace)| make_error(svc, msg, off, trace))
                    .collect();
                let mut created = BTreeSet::new();
                let mut regressed = BTreeSet::new();
                for (described, e) in errors.iter().zip(&records) {
                    // The same error sent again is one occurrence.
                    if !self.errors_seen.insert((project.to_owned(), *described)) {
                        continue;
                    }
                    let key = (project.to_owned(), fingerprint(e).0);
                    let issue = self.issues.entry(key.clone()).or_insert_with(|| {
                        created.insert(key.1.clone());
                        ModelIssue {
                            status: IssueStatus::Unresolved,
                            count: 0,
                            first: e.time_ns,
                            last: e.time_ns,
                            services: BTreeSet::new(),
                            latest_trace: e.trace_id,
                            latest_error: e.clone(),
                        }
                    });
                    if issue.status == IssueStatus::Resolved {
                        issue.status = IssueStatus::Regressed;
                        regressed.insert(key.1.clone());
                    }
                    issue.count += 1;
                    issue.first = issue.first.min(e.time_ns);
                    if e.time_ns >= issue.last {
                        issue.last = e.time_ns;
                        issue.latest_error = e.clone();
                        if e.trace_id.is_some() {
                            issue.latest_trace = e.trace_id;
                        }
                    }
                    issue.services.insert(e.service.clone());
                    self.occurrences.entry(key).or_default().push(e.clone());
                }
                let batch: Vec<Record> = records.into_iter().map(Record::Error).collect();
                let report = store
                    .traces()
                    .ingest(project, &resource("gateway"), &batch)
                    .unwrap();
                let got_created: BTreeSet<String> = report
                    .created
                    .iter()
                    .map(|i| i.fingerprint.0.clone())
                    .collect();
                let got_regressed: BTreeSet<String> = report
                    .regressed
                    .iter()
                    .map(|i| i.fingerprint.0.clone())
                    .collect();
                assert_eq!(got_created, created);
                assert_eq!(got_regressed, regressed);
            }
            Op::SetStatus {
                project,
                service,
                message,
                status,
            } => {
                let project = PROJECTS[*project];
                let fp = fingerprint(&make_error(*service, *message, 0, None));
                let status = STATUSES[*status];
                let result = store.issues().set_status(project, &fp, status);
                match self.issues.get_mut(&(project.to_owned(), fp.0.clone())) {
                    Some(issue) => {
                        issue.status = status;
                        assert_eq!(result.unwrap().status, status);
                    }
                    None => assert!(matches!(result, Err(Error::IssueNotFound { .. }))),
                }
            }
        }
    }

    fn check(&self, store: &Backend) {
        // Spans per (project, trace), in (start, span id) order.
        let mut traces: BTreeMap<(&str, u128), Vec<&SpanRecord>> = BTreeMap::new();
        for ((p, t, _), s) in &self.spans {
            traces.entry((p.as_str(), *t)).or_default().push(s);
        }
        for project in PROJECTS {
            for t in 1..6u128 {
                let mut want: Vec<SpanRecord> = traces
                    .get(&(project, t))
                    .map(|rows| rows.iter().map(|s| (*s).clone()).collect())
                    .unwrap_or_default();
                want.sort_by_key(|s| (s.start_ns, s.span_id));
                assert_eq!(store.traces().spans(project, TraceId(t)).unwrap(), want);
                let summary = store.traces().get(project, TraceId(t)).unwrap();
                assert_eq!(
                    summary.map(|s| (s.span_count, s.start_ns)),
                    (!want.is_empty()).then(|| (
                        want.len() as u64,
                        want.iter().map(|s| s.start_ns).min().unwrap_or(0)
                    ))
                );
            }
        }
        // Trace lists by projects and service: newest start first, then
        // trace id, then project.
        for projects in [vec!["shop"], vec!["blog"], vec!["shop", "blog"]] {
            for service in [None, Some("gateway"), Some("payment"), Some("stock")] {
                let mut want: Vec<(u64, u128, std::cmp::Reverse<&str>)> = traces
                    .iter()
                    .filter(|((p, _), _)| projects.contains(p))
                    .filter(|(_, rows)| {
                        service.is_none_or(|svc| rows.iter().any(|s| s.service == svc))
                    })
                    .map(|((p, t), rows)| {
                        let start = rows.iter().map(|s| s.start_ns).min().unwrap_or(0);
                        (start, *t, std::cmp::Reverse(*p))
                    })
                    .collect();
                want.sort_by(|a, b| b.cmp(a));
                let mut query = TraceQuery::projects(projects.iter().copied());
                if let Some(svc) = service {
                    query = query.service(svc);
                }
                let listed = store.traces().list(&query).unwrap();
                let got: Vec<(u64, u128, std::cmp::Reverse<&str>)> = listed
                    .iter()
                    .map(|t| {
                        (
                            t.start_ns,
                            t.trace_id.0,
                            std::cmp::Reverse(t.project.as_str()),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "traces of {projects:?} / {service:?}");
            }
        }
        // Totals count what is stored once, however often it was sent.
        let summary = store.stats().summary().unwrap();
        let got: Vec<(&str, u64, u64, u64)> = summary
            .projects
            .iter()
            .map(|p| (p.project.as_str(), p.spans, p.traces, p.errors))
            .collect();
        let want: Vec<(&str, u64, u64, u64)> = self
            .projects
            .iter()
            .map(|p| {
                let spans = self.spans.keys().filter(|(q, _, _)| q == p).count();
                let traces = traces.keys().filter(|(q, _)| q == p).count();
                let errors = self.errors_seen.iter().filter(|(q, _)| q == p).count();
                (p.as_str(), spans as u64, traces as u64, errors as u64)
            })
            .collect();
        assert_eq!(got, want);
        // Issues, each field, and the sorted and filtered lists.
        for project in PROJECTS {
            let mine: Vec<(&String, &ModelIssue)> = self
                .issues
                .iter()
                .filter(|((p, _), _)| p == project)
                .map(|((_, fp), i)| (fp, i))
                .collect();
            for (fp, want) in &mine {
                let fp = Fingerprint((*fp).clone());
                let got = store.issues().get(project, &fp).unwrap().unwrap();
                assert_eq!(got.status, want.status);
                assert_eq!(got.count, want.count);
                assert_eq!(
                    (got.first_seen_ns, got.last_seen_ns),
                    (want.first, want.last)
                );
                assert_eq!(
                    got.services,
                    want.services.iter().cloned().collect::<Vec<_>>()
                );
                assert_eq!(got.latest_trace, want.latest_trace);
                assert_eq!(got.latest_error, want.latest_error);
                // Oldest first; occurrences at the same time in the order of
                // their ids, which derive from their content.
                let key =
                    |e: &ErrorRecord| (e.time_ns, e.trace_id, e.service.clone(), e.message.clone());
                let mut occ = self.occurrences[&(project.to_owned(), fp.0.clone())].clone();
                occ.sort_by_key(key);
                let mut got_occ: Vec<ErrorRecord> = store
                    .issues()
                    .occurrences(project, &fp, 0, u64::MAX, usize::MAX)
                    .unwrap()
                    .into_iter()
                    .map(|o| o.error)
                    .collect();
                assert!(got_occ.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
                got_occ.sort_by_key(key);
                assert_eq!(got_occ, occ);
            }
            for statuses in [
                vec![],
                vec![IssueStatus::Unresolved, IssueStatus::Regressed],
                vec![IssueStatus::Resolved],
                vec![IssueStatus::Ignored],
            ] {
                let keep = |i: &ModelIssue| statuses.is_empty() || statuses.contains(&i.status);
                let mut by_last: Vec<(u64, &String)> = mine
                    .iter()
                    .filter(|(_, i)| keep(i))
                    .map(|(fp, i)| (i.last, *fp))
                    .collect();
                by_last.sort_by(|a, b| b.cmp(a));
                let listed = store
                    .issues()
                    .list(project, &IssueQuery::with_statuses(&statuses))
                    .unwrap();
                let got: Vec<(u64, &String)> = listed
                    .iter()
                    .map(|i| (i.last_seen_ns, &i.fingerprint.0))
                    .collect();
                assert_eq!(got, by_last);

                let mut by_count: Vec<(std::cmp::Reverse<u64>, &String)> = mine
                    .iter()
                    .filter(|(_, i)| keep(i))
                    .map(|(fp, i)| (std::cmp::Reverse(i.count), *fp))
                    .collect();
                by_count.sort();
                by_count.truncate(2);
                let listed = store
                    .issues()
                    .list(
                        project,
                        &IssueQuery::with_statuses(&statuses)
                            .sort(IssueSort::Count)
                            .limit(2),
                    )
                    .unwrap();
                let got: Vec<(std::cmp::Reverse<u64>, &String)> = listed
                    .iter()
                    .map(|i| (std::cmp::Reverse(i.count), &i.fingerprint.0))
                    .collect();
                assert_eq!(got, by_count);
            }
        }
    }
}

/// Runs random operations on fresh stores of the backend of `store` (a
/// new one per case) and on the model, comparing after each step. Fewer
/// cases on PostgreSQL, where each read is a round trip.
pub(crate) fn store_agrees_with_a_model(store: Backend) {
    let cases = match store {
        Backend::Sled(_) => 48,
        Backend::Postgres(..) => 12,
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/conformance/model.proptest-regressions",
        ))),
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(op(), 1..24), |ops| {
            let store = store.another();
            let mut model = Model::default();
            for op in &ops {
                model.apply(op, &store);
                model.check(&store);
            }
            Ok(())
        })
        .unwrap();
}
