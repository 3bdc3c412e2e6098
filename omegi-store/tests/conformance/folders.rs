//! Notes in vault folders: the name index resolves links as
//! core's resolver does (by path, same folder, shortest path, oldest),
//! through create, move, rename and visibility.

use super::Backend;
use omegi_core::{Note, NoteGraph, NoteId};
use omegi_store::{Error, NewNote, NoteFilter, NoteUpdate};

fn ids(notes: &[Note]) -> Vec<NoteId> {
    notes.iter().map(|n| n.id).collect()
}

fn note(store: &Backend, author: &str, folder: &str, title: &str, body: &str) -> Note {
    store
        .notes()
        .create(NewNote::new(author, title, body).folder(folder).public())
        .unwrap()
}

/// The store's link queries agree with the graph core builds from the same
/// notes, for each viewer.
fn assert_consistent(store: &Backend, viewers: &[&str]) {
    for viewer in viewers {
        let notes = store.notes().list(viewer, &NoteFilter::all()).unwrap();
        let graph = NoteGraph::build(&notes, viewer);
        for note in &notes {
            assert_eq!(
                ids(&store.notes().backlinks(note.id, viewer).unwrap()),
                graph.backlinks(note.id),
                "backlinks of {}/{} for {viewer}",
                note.folder,
                note.title
            );
            let links = store.notes().links(note.id, viewer).unwrap();
            assert_eq!(
                ids(&links.outgoing),
                graph.outgoing(note.id),
                "links of {}/{} for {viewer}",
                note.folder,
                note.title
            );
            assert_eq!(links.unresolved, graph.unresolved(note.id));
        }
    }
}

pub(crate) fn colliding_names_resolve_by_folder_in_the_index(store: Backend) {
    let core = note(&store, "kim", "Plugins/Core", "Setup", "core");
    let plugins = note(&store, "kim", "Plugins", "Setup", "plugins");
    let top = note(&store, "kim", "", "Setup", "top");
    let index = note(
        &store,
        "kim",
        "",
        "Index",
        "[[Setup]] [[Plugins/Setup]] [[Core/Setup]] [[Nowhere/Setup]]",
    );
    let guide = note(&store, "kim", "Plugins", "Guide", "[[Setup]]");
    let to = |target: &str, from: &str| {
        store
            .notes()
            .resolve_link_from(target, from, "lee")
            .unwrap()
    };
    assert_eq!(to("Setup", ""), Some(top.id));
    assert_eq!(to("Setup", "Plugins"), Some(plugins.id));
    assert_eq!(to("setup", "plugins/core"), Some(core.id));
    assert_eq!(to("Plugins/Setup", "Other"), Some(plugins.id));
    assert_eq!(to("Core/Setup.md", ""), Some(core.id));
    assert_eq!(to("Nowhere/Setup", ""), None);

    let links = store.notes().links(index.id, "lee").unwrap();
    assert_eq!(ids(&links.outgoing), vec![top.id, plugins.id, core.id]);
    assert_eq!(links.unresolved, vec!["Nowhere/Setup".to_string()]);
    assert_eq!(ids(&store.notes().backlinks(plugins.id, "lee").unwrap()), {
        let mut v = vec![guide.id, index.id];
        v.sort_by_key(|id| if *id == guide.id { 0 } else { 1 });
        v
    });
    assert_eq!(
        ids(&store.notes().backlinks(core.id, "lee").unwrap()),
        vec![index.id]
    );
    assert_consistent(&store, &["kim", "lee"]);
}

pub(crate) fn a_private_note_in_a_folder_is_never_resolved_for_others(store: Backend) {
    let public_top = note(&store, "kim", "", "Setup", "");
    let private = store
        .notes()
        .create(NewNote::new("lee", "Setup", "mine").folder("Plugins"))
        .unwrap();
    let guide = note(
        &store,
        "kim",
        "Plugins",
        "Guide",
        "[[Setup]] [[Plugins/Setup]]",
    );
    let kim = store.notes().links(guide.id, "kim").unwrap();
    assert_eq!(ids(&kim.outgoing), vec![public_top.id]);
    assert_eq!(kim.unresolved, vec!["Plugins/Setup".to_string()]);
    let lee = store.notes().links(guide.id, "lee").unwrap();
    assert_eq!(ids(&lee.outgoing), vec![private.id]);
    assert!(store.notes().backlinks(private.id, "kim").is_err());
    assert_consistent(&store, &["kim", "lee", "park"]);
}

pub(crate) fn moving_a_note_updates_the_links_to_it(store: Backend) {
    let setup = note(&store, "kim", "Plugins", "Setup", "");
    let other = note(&store, "kim", "Docs", "Setup", "");
    let index = note(&store, "kim", "", "Index", "[[Plugins/Setup|setup]]");
    let guide = note(&store, "kim", "Plugins", "Guide", "[[Setup]]");
    let moved = store
        .notes()
        .update(
            setup.id,
            "kim",
            NoteUpdate::new().folder("/Archive/Plugins/"),
            setup.revision,
        )
        .unwrap();
    assert_eq!(moved.folder, "Archive/Plugins");
    assert_eq!(moved.revision, setup.revision + 1);
    // `[[Plugins/Setup]]` still names it (a path names the end of a folder
    // path), so the index keeps its link as written.
    let index = store.notes().get(index.id, "kim").unwrap().unwrap();
    assert_eq!(index.body, "[[Plugins/Setup|setup]]");
    // From Plugins, `[[Setup]]` would now lead to Docs/Setup (shortest
    // path): the link gets the path.
    let guide = store.notes().get(guide.id, "kim").unwrap().unwrap();
    assert_eq!(guide.body, "[[Archive/Plugins/Setup]]");
    assert_eq!(
        ids(&store.notes().links(guide.id, "kim").unwrap().outgoing),
        vec![setup.id]
    );
    assert_eq!(
        ids(&store.notes().links(index.id, "kim").unwrap().outgoing),
        vec![setup.id]
    );
    assert!(store.notes().backlinks(other.id, "kim").unwrap().is_empty());
    assert_consistent(&store, &["kim"]);
}

pub(crate) fn renaming_keeps_path_links_as_paths(store: Backend) {
    let setup = note(&store, "kim", "Plugins", "Setup", "");
    let index = note(&store, "lee", "", "Index", "[[Plugins/Setup#Steps]]");
    store.notes().rename(setup.id, "kim", "Install").unwrap();
    let index = store.notes().get(index.id, "kim").unwrap().unwrap();
    assert_eq!(index.body, "[[Plugins/Install#Steps]]");
    assert_consistent(&store, &["kim", "lee"]);
}

pub(crate) fn folders_are_normalized_and_bad_ones_refused(store: Backend) {
    let n = note(&store, "kim", " a//b/ ", "T", "");
    assert_eq!(n.folder, "a/b");
    for bad in ["../up", "a/./b", "a\\b", "x[1]", "a|b"] {
        let err = store
            .notes()
            .create(NewNote::new("kim", "U", "").folder(bad))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidNote(_)), "{bad}: {err}");
    }
    let long = "f/".repeat(300);
    let err = store
        .notes()
        .create(NewNote::new("kim", "U", "").folder(long))
        .unwrap_err();
    assert!(err.to_string().contains("folder"), "{err}");
    assert_eq!(store.notes().count().unwrap(), 1);
}
