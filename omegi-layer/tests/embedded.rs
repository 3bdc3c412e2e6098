//! Embedded mode end to end: an instrumented function fails, and the store
//! holds its trace, its issue and the occurrence.

use std::time::Duration;

use omegi_layer::sink::StoreSink;
use omegi_store::{IssueQuery, IssueStatus, Store};
use tracing_subscriber::prelude::*;

#[derive(Debug, thiserror::Error)]
#[error("order {0} not found")]
struct NotFound(u64, #[source] std::io::Error);

#[tracing::instrument(err)]
fn load_order(id: u64) -> Result<(), NotFound> {
    tracing::info!("querying orders table");
    Err(NotFound(id, std::io::Error::other("no rows")))
}

#[tracing::instrument]
fn handle(id: u64) {
    let _ = load_order(id);
}

#[test]
fn failing_function_lands_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (layer, guard) = omegi_layer::layer("orders")
        .with_sink(StoreSink::new(store.clone(), "shop"))
        .build();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        handle(1234);
        handle(98);
    });
    assert!(guard.flush(Duration::from_secs(10)));
    assert_eq!(guard.stats().failed, 0);

    // One issue for both failures: the order ids differ only in a number.
    let issues = store.issues().list("shop", &IssueQuery::all()).unwrap();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let issue = &issues[0];
    assert_eq!(issue.count, 2);
    assert_eq!(issue.status, IssueStatus::Unresolved);
    assert_eq!(issue.services, ["orders"]);
    assert_eq!(issue.latest_error.message, "order 98 not found");
    assert_eq!(issue.latest_error.innermost_span(), Some("load_order"));

    // Its latest trace holds both spans of the failing request.
    let trace = issue.latest_trace.expect("a trace");
    let spans = store.traces().spans("shop", trace).unwrap();
    let mut names: Vec<&str> = spans.iter().map(|s| &*s.name).collect();
    names.sort();
    assert_eq!(names, ["handle", "load_order"]);

    // And both occurrences are kept, oldest first.
    let occurrences = store
        .issues()
        .occurrences("shop", &issue.fingerprint, 0, u64::MAX, 10)
        .unwrap();
    assert_eq!(occurrences.len(), 2);
    drop(guard);
    // Reopening finds everything: the guard's flush made it durable.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.issues().list("shop", &IssueQuery::all()).unwrap()[0].count,
        2
    );
}
