//! Notes in vault folders on the embedded store: folders survive reopening,
//! export and import, and the search index knows them. How links resolve
//! by folder is in the conformance suite (`tests/conformance/folders.rs`).

use omegi_core::{Note, NoteId};
use omegi_store::{NewNote, NoteUpdate, Store};

fn note(store: &Store, author: &str, folder: &str, title: &str, body: &str) -> Note {
    store
        .notes()
        .create(NewNote::new(author, title, body).folder(folder).public())
        .unwrap()
}

#[test]
fn folders_survive_reopening_and_export_import() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path()).unwrap();
        note(&store, "kim", "Plugins", "Setup", "").id
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.notes().get(id, "kim").unwrap().unwrap().folder,
        "Plugins"
    );
    let mut file = Vec::new();
    store.export(&mut file).unwrap();
    let copy = Store::temporary().unwrap();
    copy.import(&file[..]).unwrap();
    assert_eq!(
        copy.notes().get(id, "kim").unwrap().unwrap().folder,
        "Plugins"
    );
    assert_eq!(
        copy.notes().resolve_link("Plugins/Setup", "kim").unwrap(),
        Some(id)
    );
}

/// Search finds notes by their folder: its words match a text query, and
/// the folder filter keeps the notes in a folder or below it, through a
/// move and a reopen.
#[test]
fn search_knows_folders() {
    use omegi_store::NoteQuery;
    let dir = tempfile::tempdir().unwrap();
    let (payments, gateway, top) = {
        let store = Store::open(dir.path()).unwrap();
        let payments = note(
            &store,
            "kim",
            "Incidents/Payments",
            "Card declines",
            "Retry later.",
        );
        let gateway = note(
            &store,
            "kim",
            "Incidents",
            "Gateway 502",
            "Restart the pool.",
        );
        let top = note(&store, "kim", "", "Retry policy", "Backoff, then retry.");
        let titles = |query: &NoteQuery| -> Vec<String> {
            let mut t: Vec<String> = store
                .search()
                .notes("lee", query)
                .unwrap()
                .into_iter()
                .map(|h| h.note.title)
                .collect();
            t.sort();
            t
        };
        // A folder's words are searched like the rest of a note.
        assert_eq!(titles(&NoteQuery::new("payments")), ["Card declines"]);
        // The filter: the folder and everything below it, any case.
        assert_eq!(
            titles(&NoteQuery::new("").folder("incidents")),
            ["Card declines", "Gateway 502"]
        );
        assert_eq!(
            titles(&NoteQuery::new("retry").folder("/Incidents/Payments/")),
            ["Card declines"]
        );
        assert!(titles(&NoteQuery::new("").folder("Incid")).is_empty());
        // Moving a note moves it in the index.
        store
            .notes()
            .update(
                gateway.id,
                "kim",
                NoteUpdate::new().folder("Runbooks"),
                gateway.revision,
            )
            .unwrap();
        assert_eq!(
            titles(&NoteQuery::new("").folder("incidents")),
            ["Card declines"]
        );
        (payments.id, gateway.id, top.id)
    };
    // The index is kept in the data directory and read back as it was.
    let store = Store::open(dir.path()).unwrap();
    let found = |query: NoteQuery| -> Vec<NoteId> {
        let mut ids: Vec<NoteId> = store
            .search()
            .notes("lee", &query)
            .unwrap()
            .into_iter()
            .map(|h| h.note.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(found(NoteQuery::new("").folder("runbooks")), [gateway]);
    assert_eq!(found(NoteQuery::new("").folder("incidents")), [payments]);
    let mut everything = vec![payments, gateway, top];
    everything.sort();
    assert_eq!(found(NoteQuery::new("")), everything);
}
