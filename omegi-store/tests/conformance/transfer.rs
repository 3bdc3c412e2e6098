//! Export and import: an export imported into an empty store exports the
//! same text, on each backend and from one backend to the other; derived
//! data is rebuilt; files of older export versions are read; an import
//! takes the accounts only when asked.

use omegi_core::{fingerprint, NoteId, Record, TraceId};
use omegi_store::{
    Bucket, Error, ImportOptions, IssueStatus, NewNote, NoteQuery, NoteUpdate, Project, TokenOwner,
    TransferStats, User,
};

use crate::common::*;
use crate::traces::{readable, settled_batch};
use crate::Backend;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

/// The projects [`populate`] writes data to. `zz` is shorter than the
/// others: the embedded store's keys order it first.
const PROJECTS: [&str; 3] = ["shop", "blog", "zz"];

fn export(store: &Backend) -> String {
    let mut out = Vec::new();
    store.export(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn import(store: &Backend, text: &str, options: ImportOptions) -> TransferStats {
    store
        .import_with(text.as_bytes(), options)
        .unwrap_or_else(|e| panic!("{}", omegi_core::ErrorChain(&e)))
}

/// A store with every kind of record: accounts with tokens, spans of
/// several traces and projects (one trace sent in two parts, one span sent
/// twice), issues with occurrences and consequences, a resolved issue,
/// settled traces kept and sampled out with their traffic, counters and
/// totals, notes with links, folders and a private one, and attached
/// files. Returns the ids of the notes.
fn populate(store: &Backend) -> Vec<NoteId> {
    for id in ["shop", "blog", "zz", "empty"] {
        store.accounts().put_project(&Project::new(id)).unwrap();
    }
    let mut ada = User::new("ada");
    ada.projects = vec!["shop".into()];
    store.accounts().put_user(&ada).unwrap();
    store.accounts().put_user(&User::new("bob")).unwrap();
    store.accounts().set_admin("bob", true).unwrap();
    store
        .accounts()
        .add_token(TokenOwner::User("ada".into()), "sha256:ada", "laptop")
        .unwrap();
    store
        .accounts()
        .add_token(TokenOwner::Project("shop".into()), "sha256:shop", "gateway")
        .unwrap();

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
    store
        .traces()
        .ingest("shop", &resource("gateway"), &records)
        .unwrap();
    // A late part of trace 1, and a changed copy of span 2: the trace is
    // two chunks, and the export has the latest copy once.
    let mut changed = span(1, 2, Some(1), "payment", T0 + 5);
    changed.name = "charge again".into();
    store
        .traces()
        .ingest(
            "shop",
            &resource("payment"),
            &spans(vec![span(1, 4, Some(2), "payment", T0 + 9), changed]),
        )
        .unwrap();
    store
        .traces()
        .ingest(
            "blog",
            &resource("web"),
            &[
                Record::Span(span(9, 9, None, "web", T0 + 2 * SEC)),
                Record::Error(error("web", "not found", T0 + 2 * SEC, Some(9))),
            ],
        )
        .unwrap();
    store
        .traces()
        .ingest_settled(
            "zz",
            &[resource("gateway"), resource("payment")],
            &settled_batch(),
            &[],
        )
        .unwrap();
    let declined = fingerprint(&error("payment", "declined", 0, None));
    store
        .issues()
        .set_status("shop", &declined, IssueStatus::Resolved)
        .unwrap();

    let runbook = store
        .notes()
        .create(
            NewNote::new("kim", "Card declines", "See [[Setup]] and ![[graph.png]].")
                .folder("Runbooks/Payments")
                .tags(["payments"])
                .issues([declined.clone()])
                .public(),
        )
        .unwrap();
    let setup = store
        .notes()
        .create(NewNote::new("kim", "Setup", "결제 서비스 타임아웃: restart it.").public())
        .unwrap();
    let private = store
        .notes()
        .create(NewNote::new("lee", "Private", "[[Card declines]]"))
        .unwrap();
    store
        .notes()
        .update(
            private.id,
            "lee",
            NoteUpdate::new().body("still [[Setup]]"),
            1,
        )
        .unwrap();
    store
        .notes()
        .add_attachment(runbook.id, "kim", "graph.png", PNG)
        .unwrap();
    store
        .notes()
        .add_attachment(runbook.id, "kim", "notes.txt", b"plain words")
        .unwrap();
    vec![runbook.id, setup.id, private.id]
}

/// What the lines of an export are, by type, in order.
fn types(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = value["type"].as_str().unwrap().to_owned();
        if out.last() != Some(&kind) {
            out.push(kind);
        }
    }
    out
}

/// What readers see of `store` besides its export: traces, issues,
/// statistics, traffic, settled traces, notes' links, files and search.
fn derived(store: &Backend, notes: &[NoteId]) -> String {
    let mut out = format!("{:?}\n", readable(store, &PROJECTS));
    let stats = store.stats();
    for t in [1, 2] {
        out += &format!(
            "{:?}\n",
            store
                .traces()
                .settlement("zz", TraceId(t))
                .unwrap()
                .map(|mut s| {
                    s.settled_ns = 0;
                    s
                })
        );
    }
    out += &format!(
        "{:?}\n{:?}\n{:?}\n",
        stats.route_stats("zz", Bucket::Hour, 0, u64::MAX).unwrap(),
        stats.service_edges("zz", Bucket::Day, 0, u64::MAX).unwrap(),
        stats.sampling_totals("zz").unwrap()
    );
    for id in notes {
        for viewer in ["kim", "lee"] {
            // A note another viewer may not see is an error, kept as
            // such.
            let backlinks = store
                .notes()
                .backlinks(*id, viewer)
                .map(|notes| notes.iter().map(|n| n.id).collect::<Vec<NoteId>>());
            out += &format!(
                "{id} {viewer} {:?} {:?}\n",
                backlinks,
                store.notes().attachments(*id, viewer)
            );
        }
    }
    out += &format!(
        "{:?} {:?}\n",
        store
            .notes()
            .resolve_link("Payments/Card declines", "kim")
            .unwrap(),
        store.notes().resolve_link("Private", "kim").unwrap()
    );
    let hits = store
        .search()
        .notes("kim", &NoteQuery::new("결제"))
        .unwrap();
    out += &format!("{:?}\n", hits.iter().map(|h| h.note.id).collect::<Vec<_>>());
    out
}

pub(crate) fn an_export_imported_into_an_empty_store_exports_the_same_text(store: Backend) {
    let notes = populate(&store);
    let text = export(&store);
    assert_eq!(
        types(&text),
        [
            "header",
            "project",
            "user",
            "admin",
            "token",
            "service",
            "span",
            "issue",
            "occurrence",
            "settled",
            "traffic",
            "counter",
            "totals",
            "note",
            "attachment"
        ]
    );
    // Sections follow the embedded store's key order: the shorter project
    // name first.
    let first_span = text.lines().find(|l| l.contains("\"type\":\"span\""));
    assert!(first_span.unwrap().contains("\"project\":\"zz\""), "{text}");

    let copy = store.another();
    let stats = import(&copy, &text, ImportOptions::everything());
    assert_eq!(
        (stats.projects, stats.users, stats.admins, stats.tokens),
        (4, 2, 1, 2)
    );
    assert_eq!(
        (stats.spans, stats.issues, stats.occurrences, stats.settled),
        (7, 4, 5, 2)
    );
    assert_eq!((stats.notes, stats.attachments), (3, 2));
    assert!(stats.traffic > 0);
    let again = export(&copy);
    assert_eq!(again, text);
    // Derived data is rebuilt: summaries and indexes, histograms, routes,
    // links, files and the search index.
    assert_eq!(derived(&copy, &notes), derived(&store, &notes));
    // The copy goes on as the original would: a new occurrence of the
    // resolved issue regresses it, and the next id follows the imported
    // ones.
    let declined = fingerprint(&error("payment", "declined", 0, None));
    let mut after = Vec::new();
    for s in [&store, &copy] {
        let report = s
            .traces()
            .ingest(
                "shop",
                &resource("payment"),
                &[Record::Error(error(
                    "payment",
                    "declined",
                    T0 + 9 * SEC,
                    Some(7),
                ))],
            )
            .unwrap();
        assert_eq!(report.regressed.len(), 1);
        let issue = s.issues().get("shop", &declined).unwrap().unwrap();
        assert_eq!((issue.status, issue.count), (IssueStatus::Regressed, 3));
        after.push(
            s.issues()
                .occurrences("shop", &declined, 0, u64::MAX, usize::MAX)
                .unwrap(),
        );
    }
    assert_eq!(after[0], after[1]);

    // Bad files are refused with the line at fault.
    for bad in ["{\"type\":\"span\"}\n", "not json"] {
        assert!(matches!(
            store
                .another()
                .import_with(bad.as_bytes(), ImportOptions::everything()),
            Err(Error::Import { line: 1, .. })
        ));
    }
}

/// A fresh store on the other backend.
fn other(store: &Backend) -> Backend {
    match store {
        Backend::Sled(_) => Backend::postgres(),
        Backend::Postgres(..) => Backend::sled(),
    }
}

pub(crate) fn an_export_moves_to_the_other_backend_and_back_unchanged(store: Backend) {
    let notes = populate(&store);
    let text = export(&store);
    let there = other(&store);
    import(&there, &text, ImportOptions::everything());
    assert_eq!(export(&there), text);
    assert_eq!(derived(&there, &notes), derived(&store, &notes));
    assert_eq!(
        there.accounts().tokens(None).unwrap(),
        store.accounts().tokens(None).unwrap()
    );
    let back = store.another();
    import(&back, &export(&there), ImportOptions::everything());
    assert_eq!(export(&back), text);
    assert_eq!(derived(&back, &notes), derived(&store, &notes));
}

pub(crate) fn notes_of_an_import_reach_the_search_of_every_node(store: Backend) {
    let source = store.another();
    let notes = populate(&source);
    let node = store.node();
    import(&store, &export(&source), ImportOptions::data_only());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let hits = node.search().notes("kim", &NoteQuery::new("결제")).unwrap();
        if hits.iter().map(|h| h.note.id).collect::<Vec<_>>() == [notes[1]] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other node's search never saw the imported notes: {hits:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let hits = store
        .search()
        .notes("kim", &NoteQuery::new("결제"))
        .unwrap();
    assert_eq!(hits.len(), 1);
}
