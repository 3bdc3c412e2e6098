//! Behaviour of the store through its public API.

mod common;

use std::time::Duration;

use common::*;
use omegi_core::{Record, TraceId};
use omegi_store::{Config, Error, IssueQuery, Project, Store, TraceQuery, User};

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

#[test]
fn retention_by_age_deletes_whole_span_segments() {
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
    // What retention keeps and deletes is checked on both backends by the
    // conformance suite; here, the embedded store's own part: the age is
    // the configured one, and span segments go.
    let report = store.run_retention(new + SEC).unwrap();
    assert_eq!((report.traces, report.spans, report.occurrences), (1, 3, 1));
    assert!(report.before.dir_bytes > 0);
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
