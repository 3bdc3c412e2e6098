//! Behaviour of the store through its public API.

mod common;

use std::time::Duration;

use common::*;
use omegi_core::{fingerprint, Record, Resource, SpanId, TraceId};
use omegi_store::{
    Bucket, BucketCount, Config, Error, IssueQuery, IssueSort, IssueStatus, Project, Store,
    TokenOwner, TraceQuery, User,
};

#[test]
fn one_call_stores_the_records_of_several_processes() {
    let store = Store::temporary().unwrap();
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

#[test]
fn spans_are_kept_by_trace_and_listed_by_time_project_and_service() {
    let store = Store::temporary().unwrap();
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

#[test]
fn a_late_root_moves_the_trace_in_time_without_duplicating_it() {
    let store = Store::temporary().unwrap();
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

#[test]
fn errors_group_into_issues_that_resolve_regress_and_ignore() {
    let store = Store::temporary().unwrap();
    let r = resource("payment");
    let e1 = error("payment", "card declined", T0, Some(1));
    let e2 = error("payment", "card declined", T0 + SEC, Some(2));
    let other = error("inventory", "out of stock", T0 + 2 * SEC, None);
    let report = store
        .traces()
        .ingest(
            "shop",
            &r,
            &[
                Record::Error(e1.clone()),
                Record::Error(e2.clone()),
                Record::Error(other.clone()),
            ],
        )
        .unwrap();
    assert_eq!(report.created.len(), 2);
    assert!(report.regressed.is_empty());
    let fp = fingerprint(&e1);
    let issue = store.issues().get("shop", &fp).unwrap().unwrap();
    assert_eq!(issue.count, 2);
    assert_eq!(issue.title, "AppError: card declined");
    assert_eq!((issue.first_seen_ns, issue.last_seen_ns), (T0, T0 + SEC));
    assert_eq!(issue.latest_trace, Some(TraceId(2)));
    assert_eq!(issue.latest_error, e2);
    assert_eq!(issue.services, ["payment"]);
    assert_eq!(issue.status, IssueStatus::Unresolved);

    // Sorted by last seen: "out of stock" is newer; by count: "card declined" wins.
    let by_last = store.issues().list("shop", &IssueQuery::all()).unwrap();
    assert_eq!(by_last[0].fingerprint, fingerprint(&other));
    let by_count = store
        .issues()
        .list("shop", &IssueQuery::all().sort(IssueSort::Count))
        .unwrap();
    assert_eq!(by_count[0].fingerprint, fp);

    store
        .issues()
        .set_status("shop", &fp, IssueStatus::Resolved)
        .unwrap();
    store
        .issues()
        .set_status("shop", &fingerprint(&other), IssueStatus::Ignored)
        .unwrap();
    assert!(store
        .issues()
        .list("shop", &IssueQuery::open())
        .unwrap()
        .is_empty());

    let again = error("payment", "card declined", T0 + 3 * SEC, Some(3));
    let report = store
        .traces()
        .ingest(
            "shop",
            &r,
            &[
                Record::Error(again),
                Record::Error(error("inventory", "out of stock", T0 + 4 * SEC, None)),
            ],
        )
        .unwrap();
    assert!(report.created.is_empty());
    assert_eq!(report.regressed.len(), 1, "only the resolved one regresses");
    assert_eq!(report.regressed[0].status, IssueStatus::Regressed);
    assert_eq!(report.regressed[0].count, 3);
    let ignored = store
        .issues()
        .get("shop", &fingerprint(&other))
        .unwrap()
        .unwrap();
    assert_eq!((ignored.status, ignored.count), (IssueStatus::Ignored, 2));

    // A second occurrence while regressed is not reported again.
    let report = store
        .traces()
        .ingest(
            "shop",
            &r,
            &[Record::Error(error(
                "payment",
                "card declined",
                T0,
                Some(4),
            ))],
        )
        .unwrap();
    assert!(report.regressed.is_empty());
    assert_eq!(report.errors, 1);

    let occurrences = store
        .issues()
        .occurrences("shop", &fp, 0, u64::MAX, 100)
        .unwrap();
    assert_eq!(
        occurrences.iter().map(|o| o.time_ns).collect::<Vec<_>>(),
        [T0, T0, T0 + SEC, T0 + 3 * SEC]
    );
    assert_eq!(occurrences[2].error, e2);
    assert_eq!(occurrences[2].trace_id, Some(TraceId(2)));
    let histogram = store
        .issues()
        .histogram("shop", &fp, Bucket::Minute, 0, u64::MAX)
        .unwrap();
    assert_eq!(histogram.iter().map(|b| b.count).sum::<u64>(), 4);
    // A window counts the buckets that overlap it; one sent again counts once.
    store
        .traces()
        .ingest(
            "shop",
            &r,
            &[Record::Error(error(
                "payment",
                "card declined",
                T0,
                Some(4),
            ))],
        )
        .unwrap();
    let window = store
        .issues()
        .histogram("shop", &fp, Bucket::Minute, T0 + 1, T0 + 2)
        .unwrap();
    assert_eq!(
        window
            .iter()
            .map(|b| (b.start_ns, b.count))
            .collect::<Vec<_>>(),
        [(Bucket::Minute.start_of(T0), 4)]
    );

    // Issues are per project.
    assert!(store.issues().get("blog", &fp).unwrap().is_none());
    assert!(matches!(
        store
            .issues()
            .set_status("blog", &fp, IssueStatus::Resolved),
        Err(Error::IssueNotFound { .. })
    ));
}

#[test]
fn statistics_count_errors_per_bucket_service_and_project() {
    let store = Store::temporary().unwrap();
    let minute = Bucket::Minute.width_ns();
    let base = Bucket::Day.start_of(T0);
    let records = vec![
        Record::Error(error("a", "x", base, None)),
        Record::Error(error("a", "y", base + 1, None)),
        Record::Error(error("b", "x", base + minute, None)),
    ];
    store
        .traces()
        .ingest("shop", &resource("a"), &records)
        .unwrap();
    store
        .traces()
        .ingest(
            "blog",
            &resource("c"),
            &[Record::Error(error("c", "z", base, None))],
        )
        .unwrap();

    assert_eq!(
        store
            .stats()
            .error_counts("shop", Bucket::Minute, base, base + 10 * minute)
            .unwrap(),
        [
            BucketCount {
                start_ns: base,
                count: 2
            },
            BucketCount {
                start_ns: base + minute,
                count: 1
            }
        ]
    );
    assert_eq!(
        store
            .stats()
            .error_counts("shop", Bucket::Day, 0, u64::MAX)
            .unwrap(),
        [BucketCount {
            start_ns: base,
            count: 3
        }]
    );
    let per_service = store
        .stats()
        .service_error_counts("shop", Bucket::Hour, 0, u64::MAX)
        .unwrap();
    assert_eq!(
        per_service
            .iter()
            .map(|s| (s.service.as_str(), s.count))
            .collect::<Vec<_>>(),
        [("a", 2), ("b", 1)]
    );
    assert_eq!(
        store
            .issues()
            .new_issues("shop", base, base + 1)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .issues()
            .new_issues("shop", base, u64::MAX)
            .unwrap()
            .len(),
        3
    );

    let summary = store.stats().summary().unwrap();
    assert_eq!(
        summary
            .projects
            .iter()
            .map(|p| (p.project.as_str(), p.errors, p.issues))
            .collect::<Vec<_>>(),
        [("blog", 1, 1), ("shop", 3, 3)]
    );
    assert_eq!((summary.errors, summary.open_issues), (4, 4));
    let services = store.stats().services("shop").unwrap();
    assert_eq!(services.len(), 2);
    assert_eq!(services[0].attributes, resource("a").attributes);
}

#[test]
fn projects_and_users_are_records() {
    let store = Store::temporary().unwrap();
    let project = Project::new("shop");
    store.accounts().put_project(&project).unwrap();
    let mut user = User::new("ada");
    user.projects = vec!["shop".into()];
    store.accounts().put_user(&user).unwrap();
    store.accounts().put_user(&User::new("bob")).unwrap();
    assert_eq!(store.accounts().project("shop").unwrap(), Some(project));
    assert_eq!(store.accounts().user("ada").unwrap(), Some(user));
    assert_eq!(
        store
            .accounts()
            .users()
            .unwrap()
            .iter()
            .map(|u| u.login.as_str())
            .collect::<Vec<_>>(),
        ["ada", "bob"]
    );
    // Admins: only existing users, and a removed user is no admin.
    assert!(!store.accounts().is_admin("ada").unwrap());
    store.accounts().set_admin("ada", true).unwrap();
    store.accounts().set_admin("bob", true).unwrap();
    assert!(store.accounts().is_admin("ada").unwrap());
    assert_eq!(store.accounts().admins().unwrap(), ["ada", "bob"]);
    store.accounts().set_admin("ada", false).unwrap();
    assert_eq!(store.accounts().admins().unwrap(), ["bob"]);
    assert!(matches!(
        store.accounts().set_admin("nobody", true),
        Err(Error::UserNotFound { .. })
    ));
    assert!(store.accounts().remove_user("bob").unwrap());
    assert!(!store.accounts().remove_user("bob").unwrap());
    assert!(store.accounts().admins().unwrap().is_empty());
    store.accounts().put_user(&User::new("bob")).unwrap();
    assert!(!store.accounts().is_admin("bob").unwrap());
    assert!(matches!(
        store.accounts().put_project(&Project::new("")),
        Err(Error::InvalidName { .. })
    ));
    // Ingest creates the project it names.
    store.traces().ingest("blog", &resource("x"), &[]).unwrap();
    assert!(store.accounts().project("blog").unwrap().is_some());
}

/// Overwrites the first value of each named tree with bytes that do not decode.
fn corrupt(dir: &std::path::Path, trees: &[&str]) {
    let db = sled::open(dir).unwrap();
    for tree in trees {
        let tree = db.open_tree(tree).unwrap();
        let key = tree.first().unwrap().unwrap().0;
        tree.insert(key, &[0xff, 0xfe, 0x01][..]).unwrap();
    }
    db.flush().unwrap();
}

#[test]
fn garbage_in_a_tree_value_reads_as_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .traces()
            .ingest(
                "shop",
                &resource("a"),
                &spans(vec![span(1, 1, None, "a", T0)]),
            )
            .unwrap();
        store
            .traces()
            .ingest(
                "shop",
                &resource("a"),
                &[Record::Error(error("a", "x", T0, None))],
            )
            .unwrap();
        store.flush().unwrap();
    }
    corrupt(dir.path(), &["span_segments", "issues"]);
    {
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            store.traces().spans("shop", TraceId(1)),
            Err(Error::Corrupt {
                tree: "span_segments",
                ..
            })
        ));
        assert!(matches!(
            store.issues().list("shop", &IssueQuery::all()),
            Err(Error::Corrupt { tree: "issues", .. })
        ));
        assert!(store.stats().summary().is_err());
        assert!(store.export(std::io::sink()).is_err());
        // Ingesting onto a corrupt issue fails cleanly too.
        assert!(store
            .traces()
            .ingest(
                "shop",
                &resource("a"),
                &[Record::Error(error("a", "x", T0 + 1, None))]
            )
            .is_err());
    }
    corrupt(dir.path(), &["traces"]);
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(
        store.traces().get("shop", TraceId(1)),
        Err(Error::Corrupt { tree: "traces", .. })
    ));
    assert!(store.traces().list(&TraceQuery::project("shop")).is_err());
}

fn export_string(store: &Store) -> String {
    let mut out = Vec::new();
    store.export(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn import_of_an_export_gives_the_same_store() {
    let a = Store::temporary().unwrap();
    let r = resource("gateway");
    let mut records = spans(vec![
        span(1, 1, None, "gateway", T0),
        span(1, 2, Some(1), "payment", T0 + 5),
        span(2, 3, None, "gateway", T0 + SEC),
    ]);
    records.push(Record::Error(error("payment", "declined", T0 + 6, Some(1))));
    records.push(Record::Error(error("payment", "declined", T0 + 7, Some(1))));
    records.push(Record::Error(error(
        "gateway",
        "timeout",
        T0 + SEC,
        Some(2),
    )));
    a.traces().ingest("shop", &r, &records).unwrap();
    a.traces()
        .ingest(
            "blog",
            &resource("web"),
            &spans(vec![span(9, 9, None, "web", T0)]),
        )
        .unwrap();
    let fp = fingerprint(&error("payment", "declined", 0, None));
    a.issues()
        .set_status("shop", &fp, IssueStatus::Resolved)
        .unwrap();
    let mut user = User::new("ada");
    user.projects = vec!["shop".into()];
    a.accounts().put_user(&user).unwrap();
    a.accounts().put_user(&User::new("bob")).unwrap();
    a.accounts().set_admin("ada", true).unwrap();
    a.accounts()
        .add_token(TokenOwner::User("ada".into()), "h", "laptop")
        .unwrap();
    a.accounts()
        .add_token(TokenOwner::Project("shop".into()), "i", "gateway")
        .unwrap();

    let exported = export_string(&a);
    assert!(exported.starts_with("{\"type\":\"header\""));
    let b = Store::temporary().unwrap();
    let stats = b.import(exported.as_bytes()).unwrap();
    assert_eq!((stats.spans, stats.issues, stats.occurrences), (4, 2, 3));
    assert_eq!(export_string(&b), exported);
    assert_eq!(b.accounts().admins().unwrap(), ["ada"]);
    assert_eq!(
        b.accounts().tokens(None).unwrap(),
        a.accounts().tokens(None).unwrap()
    );
    assert_eq!(
        (stats.projects, stats.users, stats.admins, stats.tokens),
        (2, 2, 1, 2)
    );
    // Derived data is rebuilt too.
    let both = TraceQuery::projects(["shop", "blog"]);
    assert_eq!(
        a.traces().list(&both).unwrap(),
        b.traces().list(&both).unwrap()
    );
    assert_eq!(
        a.issues().list("shop", &IssueQuery::all()).unwrap(),
        b.issues().list("shop", &IssueQuery::all()).unwrap()
    );
    assert_eq!(a.stats().summary().unwrap(), b.stats().summary().unwrap());
    for bucket in Bucket::ALL {
        assert_eq!(
            a.issues()
                .histogram("shop", &fp, bucket, 0, u64::MAX)
                .unwrap(),
            b.issues()
                .histogram("shop", &fp, bucket, 0, u64::MAX)
                .unwrap()
        );
    }
    assert_eq!(
        b.traces().spans("shop", TraceId(1)).unwrap(),
        a.traces().spans("shop", TraceId(1)).unwrap()
    );

    assert!(matches!(
        Store::temporary()
            .unwrap()
            .import(&b"{\"type\":\"span\"}\n"[..]),
        Err(Error::Import { line: 1, .. })
    ));
    assert!(matches!(
        Store::temporary().unwrap().import(&b"not json"[..]),
        Err(Error::Import { line: 1, .. })
    ));
}

#[test]
fn retention_deletes_old_spans_and_occurrences_but_keeps_issues() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open_with(Config::new(dir.path()).retention(Duration::from_secs(3600))).unwrap();
    let r = resource("a");
    let old = T0;
    let new = T0 + 2 * 3600 * SEC;
    store
        .traces()
        .ingest(
            "p",
            &r,
            &[
                Record::Span(span(1, 1, None, "a", old)),
                Record::Span(span(1, 2, Some(1), "a", old + 1)),
                Record::Error(error("a", "boom", old, Some(1))),
            ],
        )
        .unwrap();
    store
        .traces()
        .ingest(
            "p",
            &r,
            &[
                Record::Span(span(2, 3, None, "a", new)),
                Record::Error(error("a", "boom", new, Some(2))),
                // A late span of the old trace: its segment is new.
                Record::Span(span(1, 4, Some(1), "a", old + 2)),
            ],
        )
        .unwrap();
    let report = store.run_retention(new + SEC).unwrap();
    assert_eq!((report.traces, report.spans, report.occurrences), (1, 3, 1));
    assert!(report.before.dir_bytes > 0);
    assert!(store.traces().spans("p", TraceId(1)).unwrap().is_empty());
    assert!(store.traces().get("p", TraceId(1)).unwrap().is_none());
    assert_eq!(store.traces().spans("p", TraceId(2)).unwrap().len(), 1);
    assert_eq!(
        store
            .traces()
            .list(&TraceQuery::project("p"))
            .unwrap()
            .len(),
        1
    );
    let fp = fingerprint(&error("a", "boom", 0, None));
    let issue = store.issues().get("p", &fp).unwrap().unwrap();
    assert_eq!(issue.count, 2, "issues keep their count");
    // The histogram counts what is retained: the old hour is gone.
    let hours = store
        .issues()
        .histogram("p", &fp, Bucket::Hour, 0, u64::MAX)
        .unwrap();
    assert_eq!(
        hours
            .iter()
            .map(|b| (b.start_ns, b.count))
            .collect::<Vec<_>>(),
        [(Bucket::Hour.start_of(new), 1)]
    );
    let left = store
        .issues()
        .occurrences("p", &fp, 0, u64::MAX, 10)
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].time_ns, new);
    // A second pass finds nothing more.
    let again = store.run_retention(new + SEC).unwrap();
    assert_eq!((again.traces, again.occurrences), (0, 0));
    drop(store);
    // The segment that held only old spans is gone; the one with the new
    // trace stays.
    let db = sled::open(dir.path()).unwrap();
    assert_eq!(db.open_tree("span_segments").unwrap().len(), 1);
}

#[test]
fn background_retention_runs_and_stops_with_the_store() {
    let config = Config::temporary()
        .retention(Duration::from_secs(1))
        .retention_interval(Duration::from_millis(20));
    let store = Store::open_with(config).unwrap();
    // Spans from the distant past are deleted by the thread.
    store
        .traces()
        .ingest(
            "p",
            &resource("a"),
            &spans(vec![span(1, 1, None, "a", 1_000)]),
        )
        .unwrap();
    let mut waited = 0;
    while (store.traces().get("p", TraceId(1)).unwrap().is_some()
        || store.last_retention().is_none())
        && waited < 500
    {
        std::thread::sleep(Duration::from_millis(10));
        waited += 1;
    }
    assert!(store.traces().get("p", TraceId(1)).unwrap().is_none());
    assert!(matches!(store.last_retention(), Some(Ok(_))));
    // Dropping the last clone joins the thread (a hang here would fail the run).
    let clone = store.clone();
    drop(store);
    drop(clone);
}

#[test]
fn clones_share_one_database_across_threads() {
    let store = Store::temporary().unwrap();
    let handles: Vec<_> = (0..4u64)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    let e = error("a", "shared", T0 + n * 1000 + i, None);
                    store
                        .traces()
                        .ingest("p", &resource("a"), &[Record::Error(e)])
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let issues = store.issues().list("p", &IssueQuery::all()).unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].count, 200);
}
