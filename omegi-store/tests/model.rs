//! A model test: the store and an in-memory model of spans and issues
//! receive the same random operations and must agree after each one.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use omegi_core::{fingerprint, ErrorRecord, Fingerprint, Record, SpanRecord, TraceId};
use omegi_store::{Error, IssueQuery, IssueSort, IssueStatus, Store, TraceQuery};
use proptest::prelude::*;

const PROJECTS: [&str; 2] = ["shop", "blog"];
const SERVICES: [&str; 3] = ["gateway", "payment", "stock"];
const MESSAGES: [&str; 3] = ["declined", "timeout", "not found"];
const STATUSES: [IssueStatus; 4] = [
    IssueStatus::Unresolved,
    IssueStatus::Resolved,
    IssueStatus::Ignored,
    IssueStatus::Regressed,
];

#[derive(Debug, Clone)]
enum Op {
    Spans {
        project: usize,
        spans: Vec<(u128, u64, Option<u64>, usize, u64)>,
    },
    Errors {
        project: usize,
        errors: Vec<(usize, usize, u64, Option<u128>)>,
    },
    SetStatus {
        project: usize,
        service: usize,
        message: usize,
        status: usize,
    },
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
    spans: BTreeMap<(u128, u64), (String, SpanRecord)>,
    issues: BTreeMap<(String, String), ModelIssue>,
    occurrences: BTreeMap<(String, String), Vec<ErrorRecord>>,
}

fn make_error(service: usize, message: usize, offset: u64, trace: Option<u128>) -> ErrorRecord {
    error(SERVICES[service], MESSAGES[message], T0 + offset, trace)
}

impl Model {
    fn apply(&mut self, op: &Op, store: &Store) {
        match op {
            Op::Spans { project, spans } => {
                let records: Vec<SpanRecord> = spans
                    .iter()
                    .map(|&(t, s, p, svc, off)| span(t, s, p, SERVICES[svc], T0 + off * 10))
                    .collect();
                let project = PROJECTS[*project];
                for s in &records {
                    self.spans
                        .insert((s.trace_id.0, s.span_id.0), (project.to_owned(), s.clone()));
                }
                let batch: Vec<Record> = records.into_iter().map(Record::Span).collect();
                store.ingest(project, &resource("gateway"), &batch).unwrap();
            }
            Op::Errors { project, errors } => {
                let project = PROJECTS[*project];
                let records: Vec<ErrorRecord> = errors
                    .iter()
                    .map(|&(svc, msg, off, trace)| make_error(svc, msg, off, trace))
                    .collect();
                let mut created = BTreeSet::new();
                let mut regressed = BTreeSet::new();
                for e in &records {
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
                let report = store.ingest(project, &resource("gateway"), &batch).unwrap();
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
                let result = store.set_issue_status(project, &fp, status);
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

    fn check(&self, store: &Store) {
        // Spans per trace, in (start, span id) order.
        let mut traces: BTreeMap<u128, Vec<&(String, SpanRecord)>> = BTreeMap::new();
        for ((t, _), row) in &self.spans {
            traces.entry(*t).or_default().push(row);
        }
        for t in 1..6u128 {
            let mut want: Vec<SpanRecord> = traces
                .get(&t)
                .map(|rows| rows.iter().map(|(_, s)| s.clone()).collect())
                .unwrap_or_default();
            want.sort_by_key(|s| (s.start_ns, s.span_id));
            assert_eq!(store.trace_spans(TraceId(t)).unwrap(), want);
        }
        // Trace lists by project and service: newest start first, then trace id.
        for project in PROJECTS {
            for service in [None, Some("gateway"), Some("payment"), Some("stock")] {
                let mut want: Vec<(u64, u128)> = traces
                    .iter()
                    .filter(|(_, rows)| rows.iter().any(|(p, _)| p == project))
                    .filter(|(_, rows)| {
                        service.is_none_or(|svc| rows.iter().any(|(_, s)| s.service == svc))
                    })
                    .map(|(t, rows)| (rows.iter().map(|(_, s)| s.start_ns).min().unwrap_or(0), *t))
                    .collect();
                want.sort_by(|a, b| b.cmp(a));
                let mut query = TraceQuery::project(project);
                if let Some(svc) = service {
                    query = query.service(svc);
                }
                let got: Vec<(u64, u128)> = store
                    .traces(&query)
                    .unwrap()
                    .iter()
                    .map(|t| (t.start_ns, t.trace_id.0))
                    .collect();
                assert_eq!(got, want, "traces of {project} / {service:?}");
            }
        }
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
                let got = store.issue(project, &fp).unwrap().unwrap();
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
                let mut occ = self.occurrences[&(project.to_owned(), fp.0.clone())].clone();
                occ.sort_by_key(|e| e.time_ns);
                let got_occ: Vec<ErrorRecord> = store
                    .occurrences(project, &fp, 0, u64::MAX, usize::MAX)
                    .unwrap()
                    .into_iter()
                    .map(|o| o.error)
                    .collect();
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
                    .issues(project, &IssueQuery::with_statuses(&statuses))
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
                    .issues(
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_a_model(ops in prop::collection::vec(op(), 1..24)) {
        let store = Store::temporary().unwrap();
        let mut model = Model::default();
        for op in &ops {
            model.apply(op, &store);
            model.check(&store);
        }
    }
}
