//! Notes: links and backlinks through create, edit, rename and delete;
//! optimistic concurrency; visibility on every path, full-text search
//! included.

use std::collections::BTreeSet;

use super::Backend;
use omegi_core::{Fingerprint, Note, NoteGraph, NoteId, Visibility};
use omegi_store::{Error, NewNote, NoteFilter, NoteQuery, NoteUpdate};

fn ids(notes: &[Note]) -> Vec<NoteId> {
    notes.iter().map(|n| n.id).collect()
}

fn set(notes: &[Note]) -> BTreeSet<NoteId> {
    notes.iter().map(|n| n.id).collect()
}

pub(crate) fn public(store: &Backend, author: &str, title: &str, body: &str) -> Note {
    store
        .notes()
        .create(NewNote::new(author, title, body).public())
        .unwrap()
}

/// The store's link queries agree with the graph built from all notes.
pub(crate) fn assert_consistent(store: &Backend, viewers: &[&str]) {
    for viewer in viewers {
        let graph = store.notes().graph(viewer).unwrap();
        let notes = store.notes().list(viewer, &NoteFilter::all()).unwrap();
        assert_eq!(graph.len(), notes.len(), "viewer {viewer}");
        for note in &notes {
            assert_eq!(
                ids(&store.notes().backlinks(note.id, viewer).unwrap()),
                graph.backlinks(note.id),
                "backlinks of {:?} for {viewer}",
                note.title
            );
            let links = store.notes().links(note.id, viewer).unwrap();
            assert_eq!(
                ids(&links.outgoing),
                graph.outgoing(note.id),
                "{}",
                note.title
            );
            assert_eq!(
                links.unresolved,
                graph.unresolved(note.id),
                "{}",
                note.title
            );
        }
    }
}

pub(crate) fn links_and_backlinks_follow_edits_renames_and_deletes(store: Backend) {
    let timeout = public(&store, "kim", "Payment timeout", "Retry with backoff.");
    let checkout = public(
        &store,
        "lee",
        "Checkout 502",
        "Caused by [[payment timeout]] and [[Card declined]] (not written yet).",
    );
    let runbook = public(
        &store,
        "park",
        "On-call runbook",
        "- [[Payment Timeout#Fix|timeouts]]\n- [[Checkout 502]]\n- `[[Payment timeout]]` in code is no link",
    );
    assert_eq!(
        set(&store.notes().backlinks(timeout.id, "park").unwrap()),
        BTreeSet::from([checkout.id, runbook.id])
    );
    let links = store.notes().links(checkout.id, "park").unwrap();
    assert_eq!(ids(&links.outgoing), [timeout.id]);
    assert_eq!(links.unresolved, ["Card declined"]);

    // The missing note appears: the dangling link resolves.
    let declined = public(&store, "kim", "Card declined", "Ask for another card.");
    assert_eq!(
        ids(&store.notes().backlinks(declined.id, "park").unwrap()),
        [checkout.id]
    );
    assert!(store
        .notes()
        .links(checkout.id, "park")
        .unwrap()
        .unresolved
        .is_empty());

    // Edit: the runbook drops its timeout link and links the new note.
    let runbook = store
        .notes()
        .update(
            runbook.id,
            "park",
            NoteUpdate::new().body("- [[Checkout 502]]\n- [[card declined]]"),
            1,
        )
        .unwrap();
    assert_eq!(runbook.revision, 2);
    assert_eq!(
        ids(&store.notes().backlinks(timeout.id, "kim").unwrap()),
        [checkout.id]
    );
    // Sorted by title: "Checkout 502" < "On-call runbook".
    assert_eq!(
        ids(&store.notes().backlinks(declined.id, "kim").unwrap()),
        [checkout.id, runbook.id]
    );
    assert_consistent(&store, &["kim", "lee", "park"]);

    // Rename: the links that named the old title are rewritten, and those
    // notes get a new revision; the backlinks stay.
    let renamed = store
        .notes()
        .rename(timeout.id, "kim", "PG timeout")
        .unwrap();
    assert_eq!(renamed.note.title, "PG timeout");
    assert_eq!(renamed.note.revision, 2);
    assert_eq!(renamed.relinked, [checkout.id]);
    let checkout_now = store.notes().get(checkout.id, "kim").unwrap().unwrap();
    assert_eq!(
        checkout_now.body,
        "Caused by [[PG timeout]] and [[Card declined]] (not written yet)."
    );
    assert_eq!(checkout_now.revision, 2);
    assert_eq!(
        ids(&store.notes().backlinks(timeout.id, "lee").unwrap()),
        [checkout.id]
    );
    // A public note keeps its former title as an alias, for the links a
    // rename may not rewrite (in private notes of others).
    assert_eq!(renamed.note.aliases, ["Payment timeout"]);
    assert_eq!(
        store
            .notes()
            .resolve_link("payment timeout", "lee")
            .unwrap(),
        Some(timeout.id)
    );
    assert_eq!(
        store.notes().resolve_link("pg TIMEOUT", "lee").unwrap(),
        Some(timeout.id)
    );
    // The runbook no longer linked it, so it was left alone.
    assert_eq!(
        store
            .notes()
            .get(runbook.id, "park")
            .unwrap()
            .unwrap()
            .revision,
        2
    );
    assert_consistent(&store, &["kim", "lee", "park"]);

    // Delete: its outgoing links go, links to it become unresolved.
    let deleted = store.notes().delete(declined.id, "kim").unwrap();
    assert_eq!(deleted.id, declined.id);
    assert!(store.notes().get(declined.id, "kim").unwrap().is_none());
    assert_eq!(
        store.notes().links(checkout.id, "lee").unwrap().unresolved,
        ["Card declined"]
    );
    assert_eq!(
        store.notes().links(runbook.id, "lee").unwrap().unresolved,
        ["card declined"]
    );
    let deleted_links = store.notes().delete(checkout.id, "lee").unwrap();
    assert_eq!(deleted_links.id, checkout.id);
    assert!(store
        .notes()
        .backlinks(timeout.id, "kim")
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(&store.notes().links(runbook.id, "kim").unwrap().outgoing),
        Vec::<NoteId>::new()
    );
    assert_consistent(&store, &["kim", "lee", "park"]);
    assert!(matches!(
        store.notes().backlinks(checkout.id, "kim"),
        Err(Error::NoteNotFound { .. })
    ));
}

pub(crate) fn rename_keeps_alias_links_and_links_in_code(store: Backend) {
    let target = store
        .notes()
        .create(
            NewNote::new("kim", "Payment timeout", "Self: [[Payment timeout#Fix]]")
                .aliases(["PG timeout"])
                .public(),
        )
        .unwrap();
    let by_alias = public(
        &store,
        "lee",
        "A",
        "[[PG timeout]] and `[[Payment timeout]]`",
    );
    let embed = public(
        &store,
        "lee",
        "B",
        "![[payment timeout]]\n[[Payment timeout|shown]]",
    );
    let renamed = store
        .notes()
        .rename(target.id, "kim", "Gateway timeout")
        .unwrap();
    assert_eq!(renamed.relinked, [embed.id]);
    assert_eq!(renamed.note.body, "Self: [[Gateway timeout#Fix]]");
    assert_eq!(
        store.notes().get(embed.id, "x").unwrap().unwrap().body,
        "![[Gateway timeout]]\n[[Gateway timeout|shown]]"
    );
    assert_eq!(
        store
            .notes()
            .get(by_alias.id, "x")
            .unwrap()
            .unwrap()
            .revision,
        1
    );
    assert_eq!(
        set(&store.notes().backlinks(target.id, "x").unwrap()),
        BTreeSet::from([by_alias.id, embed.id])
    );
    assert!(matches!(
        store.notes().rename(target.id, "kim", "bad [title]"),
        Err(Error::InvalidNote(_))
    ));
    assert!(matches!(
        store.notes().rename(target.id, "lee", "Other"),
        Err(Error::NotNoteAuthor { .. })
    ));
    assert_consistent(&store, &["kim", "lee"]);
}

pub(crate) fn updates_are_optimistic_and_only_for_the_author(store: Backend) {
    let note = public(&store, "kim", "Deadlock", "v1");
    let v2 = store
        .notes()
        .update(note.id, "kim", NoteUpdate::new().body("v2"), 1)
        .unwrap();
    assert_eq!((v2.revision, v2.body.as_str()), (2, "v2"));
    assert!(v2.updated_ns >= note.updated_ns);
    assert_eq!(v2.created_ns, note.created_ns);
    // A writer who read revision 1 loses.
    let err = store
        .notes()
        .update(note.id, "kim", NoteUpdate::new().body("stale"), 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RevisionMismatch {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("revision 2"));
    assert_eq!(
        store.notes().get(note.id, "kim").unwrap().unwrap().body,
        "v2"
    );
    // An update that changes nothing makes no new revision, but is checked.
    let same = store
        .notes()
        .update(note.id, "kim", NoteUpdate::new().body("v2"), 2)
        .unwrap();
    assert_eq!(same, v2);
    assert!(matches!(
        store.notes().update(note.id, "kim", NoteUpdate::new(), 1),
        Err(Error::RevisionMismatch { .. })
    ));
    // Someone else may read but not write or delete.
    assert!(matches!(
        store
            .notes()
            .update(note.id, "lee", NoteUpdate::new().body("x"), 2),
        Err(Error::NotNoteAuthor { .. })
    ));
    assert!(matches!(
        store.notes().delete(note.id, "lee"),
        Err(Error::NotNoteAuthor { .. })
    ));
    assert!(matches!(
        store.notes().create(NewNote::new("kim", "a|b", "")),
        Err(Error::InvalidNote(_))
    ));
    assert!(matches!(
        store.notes().create(NewNote::new("", "ok", "")),
        Err(Error::InvalidName { .. })
    ));
    let missing = NoteId::now_v7();
    assert!(matches!(
        store.notes().update(missing, "kim", NoteUpdate::new(), 1),
        Err(Error::NoteNotFound { id }) if id == missing
    ));
}

pub(crate) fn an_update_with_a_new_title_renames_in_one_checked_revision(store: Backend) {
    let target = public(&store, "kim", "DB timeout", "v1, see [[DB timeout#Fix]]");
    let linker = public(&store, "kim", "Checkout", "Caused by [[DB timeout]].");
    // A writer who read an older revision cannot rename.
    store
        .notes()
        .update(target.id, "kim", NoteUpdate::new().body("v2"), 1)
        .unwrap();
    let stale = store.notes().update(
        target.id,
        "kim",
        NoteUpdate::new().title("PG timeout").body("v3"),
        1,
    );
    assert!(
        matches!(stale, Err(Error::RevisionMismatch { actual: 2, .. })),
        "{stale:?}"
    );
    assert_eq!(
        store.notes().get(target.id, "kim").unwrap().unwrap().title,
        "DB timeout"
    );
    // Title and body change together: one new revision, links follow.
    let renamed = store
        .notes()
        .update(
            target.id,
            "kim",
            NoteUpdate::new()
                .title("PG timeout")
                .body("v3, see [[DB timeout#Fix]]"),
            2,
        )
        .unwrap();
    assert_eq!(renamed.revision, 3);
    assert_eq!(renamed.title, "PG timeout");
    assert_eq!(renamed.body, "v3, see [[PG timeout#Fix]]");
    let linker = store.notes().get(linker.id, "kim").unwrap().unwrap();
    assert_eq!(linker.body, "Caused by [[PG timeout]].");
    assert_eq!(linker.revision, 2);
    assert_eq!(
        ids(&store.notes().backlinks(target.id, "kim").unwrap()),
        [linker.id]
    );
    // A bad title is refused before anything changes.
    assert!(matches!(
        store
            .notes()
            .update(target.id, "kim", NoteUpdate::new().title("a|b"), 3),
        Err(Error::InvalidNote(_))
    ));
    assert_consistent(&store, &["kim"]);
}

pub(crate) fn a_private_note_is_invisible_to_others_on_every_path(store: Backend) {
    let fp = Fingerprint("00000000000000ab".into());
    let secret = store
        .notes()
        .create(
            NewNote::new(
                "kim",
                "Secret payment fix",
                "zebra workaround, see [[Public guide]]",
            )
            .tags(["secret"])
            .issues([fp.clone()]),
        )
        .unwrap();
    let guide = public(
        &store,
        "lee",
        "Public guide",
        "See [[Secret payment fix]].\n\n![[Secret payment fix]]\n",
    );
    assert_eq!(secret.visibility, Visibility::Private);

    // The author sees everything.
    assert!(store.notes().get(secret.id, "kim").unwrap().is_some());
    assert_eq!(
        ids(&store.notes().backlinks(guide.id, "kim").unwrap()),
        [secret.id]
    );
    assert!(store
        .notes()
        .render(guide.id, "kim")
        .unwrap()
        .contains("zebra workaround"));
    {
        let search = store.search();
        let hits = search.notes("kim", &NoteQuery::new("zebra")).unwrap();
        assert_eq!(
            ids(&hits.into_iter().map(|h| h.note).collect::<Vec<_>>()),
            [secret.id]
        );
    }

    // Nobody else sees it, by any path.
    let park = "park";
    assert!(store.notes().get(secret.id, park).unwrap().is_none());
    assert_eq!(
        ids(&store.notes().list(park, &NoteFilter::all()).unwrap()),
        [guide.id]
    );
    assert!(store
        .notes()
        .list(park, &NoteFilter::all().tag("secret"))
        .unwrap()
        .is_empty());
    assert!(store
        .notes()
        .list(park, &NoteFilter::all().issue(fp.clone()))
        .unwrap()
        .is_empty());
    {
        let search = store.search();
        assert!(search
            .notes(park, &NoteQuery::new("zebra"))
            .unwrap()
            .is_empty());
        assert!(search
            .notes(park, &NoteQuery::new("").tag("secret"))
            .unwrap()
            .is_empty());
        assert!(search
            .notes(park, &NoteQuery::new("").issue(fp.clone()))
            .unwrap()
            .is_empty());
    }
    let graph = store.notes().graph(park).unwrap();
    assert!(!graph.contains(secret.id));
    assert!(graph.backlinks(guide.id).is_empty());
    assert!(store.notes().backlinks(guide.id, park).unwrap().is_empty());
    assert_eq!(
        store.notes().links(guide.id, park).unwrap().unresolved,
        ["Secret payment fix"]
    );
    let rendered = store.notes().render(guide.id, park).unwrap();
    assert!(!rendered.contains("zebra"), "{rendered}");
    assert!(rendered.contains("![[Secret payment fix]]"));
    assert!(store
        .notes()
        .resolve_link("secret payment fix", park)
        .unwrap()
        .is_none());
    {
        let search = store.search();
        assert!(search.suggest("shop", &fp, park, 10).unwrap().is_empty());
    }
    assert!(matches!(
        store.notes().backlinks(secret.id, park),
        Err(Error::NoteNotFound { .. })
    ));
    assert!(matches!(
        store.notes().render(secret.id, park),
        Err(Error::NoteNotFound { .. })
    ));
    // Not even whether it exists leaks through a write.
    assert!(matches!(
        store.notes().delete(secret.id, park),
        Err(Error::NoteNotFound { .. })
    ));
    assert!(matches!(
        store.notes().update(secret.id, park, NoteUpdate::new(), 1),
        Err(Error::NoteNotFound { .. })
    ));

    // Made public, it appears everywhere for everyone.
    store
        .notes()
        .update(
            secret.id,
            "kim",
            NoteUpdate::new().visibility(Visibility::Public),
            1,
        )
        .unwrap();
    assert_eq!(
        ids(&store.notes().backlinks(guide.id, park).unwrap()),
        [secret.id]
    );
    {
        let search = store.search();
        assert_eq!(
            search.notes(park, &NoteQuery::new("zebra")).unwrap().len(),
            1
        );
        assert_eq!(search.suggest("shop", &fp, park, 10).unwrap().len(), 1);
    }
    assert_consistent(&store, &["kim", "lee", park]);
}

pub(crate) fn same_title_resolves_per_viewer(store: Backend) {
    // kim's private note is older, so for kim it wins the name.
    let private = store
        .notes()
        .create(NewNote::new("kim", "Payment timeout", "mine"))
        .unwrap();
    let shared = public(&store, "lee", "Payment timeout", "shared");
    let linker = public(&store, "park", "Incident", "[[Payment timeout]]");
    assert_eq!(
        ids(&store.notes().backlinks(shared.id, "park").unwrap()),
        [linker.id]
    );
    assert!(store
        .notes()
        .backlinks(shared.id, "kim")
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(&store.notes().backlinks(private.id, "kim").unwrap()),
        [linker.id]
    );
    assert_consistent(&store, &["kim", "lee", "park"]);
    // Deleting the private one hands the name to the public one for kim.
    store.notes().delete(private.id, "kim").unwrap();
    assert_eq!(
        ids(&store.notes().backlinks(shared.id, "kim").unwrap()),
        [linker.id]
    );
    assert_consistent(&store, &["kim", "lee", "park"]);
}

pub(crate) fn embeds_render_for_the_viewer(store: Backend) {
    public(
        &store,
        "kim",
        "Fix",
        "# Steps\nrestart the pod\n# Other\nno",
    );
    let page = public(&store, "lee", "Page", "Before\n![[Fix#Steps]]\nAfter");
    let out = store.notes().render(page.id, "park").unwrap();
    assert_eq!(out, "Before\n# Steps\nrestart the pod\nAfter");
}

pub(crate) fn notes_listing_filters(store: Backend) {
    let a = store
        .notes()
        .create(
            NewNote::new("kim", "A", "")
                .tags(["payments/stripe"])
                .public(),
        )
        .unwrap();
    let b = store
        .notes()
        .create(NewNote::new("lee", "B", "inline #Payments tag").public())
        .unwrap();
    let _c = store
        .notes()
        .create(NewNote::new("lee", "C", "").tags(["paymentsx"]).public())
        .unwrap();
    let tagged = store
        .notes()
        .list("x", &NoteFilter::all().tag("payments"))
        .unwrap();
    assert_eq!(set(&tagged), BTreeSet::from([a.id, b.id]));
    let by_lee = store
        .notes()
        .list("x", &NoteFilter::all().author("lee").limit(1))
        .unwrap();
    assert_eq!(by_lee.len(), 1);
    assert_eq!(by_lee[0].author, "lee");
    let fp = Fingerprint("f1".into());
    store.notes().link_to_issue(a.id, "kim", &fp).unwrap();
    let again = store.notes().link_to_issue(a.id, "kim", &fp).unwrap();
    assert_eq!(again.revision, 2, "linking twice changes nothing");
    assert_eq!(ids(&store.notes().for_issue(&fp, "x").unwrap()), [a.id]);
    store.notes().unlink_from_issue(a.id, "kim", &fp).unwrap();
    assert!(store.notes().for_issue(&fp, "x").unwrap().is_empty());
}

pub(crate) fn graph_of_the_store_matches_the_core_graph(store: Backend) {
    let a = public(&store, "kim", "A", "[[B]] [[C]] [[Nowhere]]");
    let b = public(&store, "kim", "B", "[[A]]");
    let c = store
        .notes()
        .create(NewNote::new("lee", "C", "[[A]]"))
        .unwrap();
    let all: Vec<Note> = [&a, &b, &c]
        .iter()
        .map(|n| store.notes().get(n.id, &n.author).unwrap().unwrap())
        .collect();
    for viewer in ["kim", "lee"] {
        let expected = NoteGraph::build(&all, viewer);
        let got = store.notes().graph(viewer).unwrap();
        assert_eq!(got.len(), expected.len());
        for n in &all {
            assert_eq!(got.backlinks(n.id), expected.backlinks(n.id));
        }
    }
    assert_consistent(&store, &["kim", "lee"]);
}
