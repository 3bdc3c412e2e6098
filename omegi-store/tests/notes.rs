//! Notes on the embedded store with its search index: export and import. The notes' own behaviour (links, renames,
//! revisions, visibility) is in the conformance suite
//! (`tests/conformance/notes.rs`).

mod common;

use omegi_core::{Note, NoteId};
use omegi_store::{NewNote, NoteQuery, NoteUpdate, Store};

fn ids(notes: &[Note]) -> Vec<NoteId> {
    notes.iter().map(|n| n.id).collect()
}

fn public(store: &Store, author: &str, title: &str, body: &str) -> Note {
    store
        .notes()
        .create(NewNote::new(author, title, body).public())
        .unwrap()
}

#[test]
fn export_and_import_carry_the_notes() {
    let store = Store::temporary().unwrap();
    let a = public(
        &store,
        "kim",
        "결제 서비스 타임아웃",
        "[[Checkout]] 결제가 실패",
    );
    let b = store
        .notes()
        .create(NewNote::new("lee", "Checkout", "private").tags(["x"]))
        .unwrap();
    store
        .notes()
        .update(b.id, "lee", NoteUpdate::new().body("still private"), 1)
        .unwrap();
    let mut first = Vec::new();
    let stats = store.export(&mut first).unwrap();
    assert_eq!(stats.notes, 2);

    let copy = Store::temporary().unwrap();
    let read = copy.import(first.as_slice()).unwrap();
    assert_eq!(read.notes, 2);
    let mut second = Vec::new();
    copy.export(&mut second).unwrap();
    assert_eq!(
        String::from_utf8(first).unwrap(),
        String::from_utf8(second).unwrap()
    );
    assert_eq!(copy.notes().get(b.id, "lee").unwrap().unwrap().revision, 2);
    assert_eq!(ids(&copy.notes().backlinks(b.id, "lee").unwrap()), [a.id]);
    let hits = copy
        .search()
        .notes("park", &NoteQuery::new("결제"))
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].note.id, a.id);
}
