//! Export and import: an export imported into an empty store exports the
//! same text, on each backend and from one backend to the other; derived
//! data is rebuilt; files of older export versions are read; an import
//! takes the accounts only when asked.

use omegi_core::{fingerprint, NoteId, Record, TraceId};
use omegi_store::{
    Bucket, Error, ImportOptions, IssueQuery, IssueStatus, NewNote, NoteQuery, NoteUpdate, Project,
    TokenOwner, TransferStats, User,
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

/// An export of `version` (1 to 3) as an older Omegi wrote it
/// (`tests/fixtures/exports`): projects `blog` and `shop`, users `kim` and
/// `root` (an admin from version 2), an ingest token of `shop` and an API
/// token of `kim`, a trace id sent to both projects, an issue with one
/// occurrence, counters, totals and a note.
fn old_export(version: u32) -> String {
    let path = format!(
        "{}/tests/fixtures/exports/v{version}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(crate) fn exports_of_older_versions_are_read(store: Backend) {
    for version in 1..=3 {
        let file = old_export(version);
        let counted = import(&store.another(), &file, ImportOptions::data_only());
        assert_eq!(
            (
                counted.projects,
                counted.users,
                counted.admins,
                counted.tokens,
                counted.accounts
            ),
            (2, 2, u64::from(version >= 2), 2, false),
            "version {version}"
        );

        let copy = store.another();
        let stats = import(&copy, &file, ImportOptions::everything());
        assert_eq!(
            (stats.spans, stats.issues, stats.occurrences, stats.notes),
            (3, 1, 1, 1),
            "version {version}"
        );
        // Before memberships (versions 1 and 2) every user who is not an
        // admin could read every project: still can, by membership.
        let (members, kim_reads) = match version {
            1 => (2, vec!["blog", "shop"]),
            2 => (1, vec!["blog", "shop"]),
            _ => (0, vec!["shop"]),
        };
        assert_eq!(stats.legacy_members, members, "version {version}");
        assert_eq!(
            copy.accounts().user("kim").unwrap().unwrap().projects,
            kim_reads,
            "version {version}"
        );
        assert_eq!(
            copy.accounts().admins().unwrap().len(),
            usize::from(version >= 2)
        );
        // Token hashes of versions 1 and 2 became tokens with ids.
        let kim = copy
            .accounts()
            .token_by_hash("sha256:kim")
            .unwrap()
            .unwrap();
        let shop = copy
            .accounts()
            .token_by_hash("sha256:shop")
            .unwrap()
            .unwrap();
        assert_eq!(kim.owner, TokenOwner::User("kim".into()));
        assert_eq!(shop.owner, TokenOwner::Project("shop".into()));
        let labels = if version < 3 {
            ("api", "ingest")
        } else {
            ("laptop", "gateway")
        };
        assert_eq!((kim.label.as_str(), shop.label.as_str()), labels);
        assert_eq!(copy.accounts().tokens(None).unwrap().len(), 2);

        // A trace id of two projects is two traces.
        assert_eq!(copy.traces().spans("shop", TraceId(1)).unwrap().len(), 2);
        assert_eq!(copy.traces().spans("blog", TraceId(1)).unwrap().len(), 1);
        let issues = copy.issues().list("shop", &IssueQuery::all()).unwrap();
        assert_eq!(issues.len(), 1);
        let occurrences = copy
            .issues()
            .occurrences("shop", &issues[0].fingerprint, 0, u64::MAX, 10)
            .unwrap();
        assert_eq!(occurrences.len(), 1);
        assert!(occurrences[0].consequences.is_empty());
        let note = copy
            .notes()
            .resolve_link("Runbook", "lee")
            .unwrap()
            .unwrap();
        assert_eq!(copy.notes().get(note, "lee").unwrap().unwrap().folder, "");
        assert_eq!(
            copy.notes()
                .for_issue(&issues[0].fingerprint, "lee")
                .unwrap()
                .len(),
            1
        );

        // What was read is written in the current version, and reads back
        // the same.
        let text = export(&copy);
        assert!(text.starts_with(&header(omegi_store::EXPORT_VERSION)));
        assert!(!text.contains("token_hash"));
        let again = store.another();
        import(&again, &text, ImportOptions::everything());
        assert_eq!(export(&again), text, "version {version}");
    }
}

/// `{"type":"header",…}` of an export of version `schema`.
fn header(schema: u32) -> String {
    format!("{{\"type\":\"header\",\"format\":\"omegi-store\",\"schema\":{schema}}}\n")
}

pub(crate) fn an_import_takes_accounts_only_when_asked_and_always_counts_them(store: Backend) {
    for id in ["a", "b"] {
        store.accounts().put_project(&Project::new(id)).unwrap();
    }
    for login in ["root", "kim"] {
        store.accounts().put_user(&User::new(login)).unwrap();
    }
    store.accounts().set_admin("root", true).unwrap();
    store.accounts().add_member("a", "kim").unwrap();
    store
        .accounts()
        .add_token(TokenOwner::Project("a".into()), "sha256:1", "gateway")
        .unwrap();
    store
        .accounts()
        .add_token(TokenOwner::User("kim".into()), "sha256:2", "laptop")
        .unwrap();
    store
        .traces()
        .ingest("a", &omegi_core::Resource::default(), &[])
        .unwrap();
    let file = export(&store);
    assert!(
        file.starts_with(&header(omegi_store::EXPORT_VERSION)),
        "{file}"
    );
    assert!(!file.contains("token_hash"), "{file}");

    let data_only = store.another();
    let stats = import(&data_only, &file, ImportOptions::data_only());
    assert_eq!(
        (
            stats.projects,
            stats.users,
            stats.admins,
            stats.tokens,
            stats.accounts
        ),
        (2, 2, 1, 2, false)
    );
    assert!(data_only.accounts().projects().unwrap().is_empty());
    assert!(data_only.accounts().users().unwrap().is_empty());
    assert!(data_only.accounts().admins().unwrap().is_empty());
    assert!(data_only.accounts().tokens(None).unwrap().is_empty());
    assert_eq!(
        data_only.accounts().token_by_hash("sha256:1").unwrap(),
        None
    );

    let everything = store.another();
    let stats = import(&everything, &file, ImportOptions::everything());
    assert!(stats.accounts);
    assert_eq!(stats.legacy_members, 0);
    assert_eq!(
        everything.accounts().tokens(None).unwrap(),
        store.accounts().tokens(None).unwrap()
    );
    assert_eq!(everything.accounts().members("a").unwrap(), ["kim"]);
    assert!(everything.accounts().members("b").unwrap().is_empty());
    assert_eq!(everything.accounts().admins().unwrap(), ["root"]);

    // A token whose owner the file does not hold is refused, and so is a
    // token twice.
    let orphan = format!(
        "{}{}",
        header(3),
        "{\"type\":\"token\",\"token\":{\"id\":\"00000000000000aa\",\"hash\":\"sha256:x\",\
         \"owner\":{\"user\":\"ghost\"},\"label\":\"\",\"created_ns\":1,\"last_used_ns\":null}}\n"
    );
    let err = store
        .another()
        .import_with(orphan.as_bytes(), ImportOptions::everything())
        .unwrap_err();
    assert!(matches!(err, Error::Import { line: 2, .. }), "{err}");
    let err = everything
        .import_with(file.as_bytes(), ImportOptions::everything())
        .unwrap_err();
    assert!(matches!(err, Error::Import { .. }), "{err}");
    assert!(err.to_string().contains("twice"), "{err}");
}

/// More records than an import writes in one transaction (4,096 spans,
/// or 1,024 records and traces), with a trace whose spans fall on both
/// sides of a boundary, and more notes than it restores at once (512): the
/// copy exports the same text.
pub(crate) fn an_export_larger_than_a_batch_reads_back_the_same(store: Backend) {
    let mut records = Vec::new();
    for trace in 1..=1_200u128 {
        let start = T0 + trace as u64 * SEC;
        records.push(span(trace, 1, None, "gateway", start));
        records.push(span(trace, 2, Some(1), "payment", start + 1));
    }
    let big = 5_000u128;
    records.push(span(big, 1, None, "gateway", T0));
    for id in 2..=4_200u64 {
        records.push(span(big, id, Some(1), "payment", T0 + id));
    }
    for part in records.chunks(1_000) {
        store
            .traces()
            .ingest("shop", &resource("gateway"), &spans(part.to_vec()))
            .unwrap();
    }
    let notes: Vec<omegi_core::Note> = (0..600)
        .map(|i| {
            let mut note = omegi_core::Note::new(
                NoteId::now_v7(),
                "kim",
                format!("Note {i}"),
                format!("After [[Note {}]].", i + 1),
                T0 + i,
            );
            note.visibility = omegi_core::note::Visibility::Public;
            note
        })
        .collect();
    assert_eq!(store.notes().restore(notes.clone()).unwrap(), 600);
    let text = export(&store);
    let copy = store.another();
    let stats = import(&copy, &text, ImportOptions::everything());
    assert_eq!((stats.spans, stats.notes), (6_600, 600));
    assert_eq!(export(&copy), text);
    for trace in [TraceId(1_100), TraceId(big)] {
        assert_eq!(
            copy.traces().get("shop", trace).unwrap(),
            store.traces().get("shop", trace).unwrap()
        );
    }
    assert_eq!(
        copy.traces().spans("shop", TraceId(big)).unwrap().len(),
        4_200
    );
    assert_eq!(
        copy.notes()
            .backlinks(notes[1].id, "lee")
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>(),
        [notes[0].id]
    );
}
