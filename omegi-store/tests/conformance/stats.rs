//! Statistics and traffic.

use omegi_core::Record;
use omegi_store::{Bucket, BucketCount, IssueQuery};

use crate::common::*;
use crate::Backend;

pub(crate) fn statistics_count_errors_per_bucket_service_and_project(store: Backend) {
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

pub(crate) fn clones_share_one_database_across_threads(store: Backend) {
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
