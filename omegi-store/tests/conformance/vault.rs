//! A Markdown vault imported into notes and exported back.

use std::collections::BTreeSet;
use std::path::Path;

use super::Backend;
use omegi_core::Visibility;
use omegi_store::{NoteFilter, Subfolders, VaultExportOptions, VaultImportOptions};

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn vault(root: &Path) {
    write(
        root,
        "Payment timeout.md",
        "Retry. See [[Checkout 502]] #payments\n",
    );
    write(
        root,
        "incidents/Checkout 502.md",
        "---\ntags: [checkout, incidents/2024]\naliases: 502 incident\n---\nCaused by [[payment timeout]].\n",
    );
    write(
        root,
        "incidents/2024/pg.md",
        "---\ntitle: \"결제 실패: PG 오류\"\ntags:\n  - 결제\n---\n[[502 incident]] 참고. ![[Payment timeout]]\n",
    );
    write(root, ".obsidian/workspace.md", "not a note");
    write(root, "attachments/diagram.txt", "not markdown");
    write(root, "broken.md", "---\ntags: [unclosed\n---\nbody");
}

/// (title, body, tags, aliases) of every note `viewer` sees.
type Shape = BTreeSet<(String, String, Vec<String>, Vec<String>)>;

fn shape(store: &Backend, viewer: &str) -> Shape {
    store
        .notes()
        .list(viewer, &NoteFilter::all())
        .unwrap()
        .into_iter()
        .map(|n| (n.title, n.body, n.tags, n.aliases))
        .collect()
}

/// (source title, target title) of every link `viewer` sees.
fn edges(store: &Backend, viewer: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for note in store.notes().list(viewer, &NoteFilter::all()).unwrap() {
        for target in store.notes().links(note.id, viewer).unwrap().outgoing {
            out.insert((note.title.clone(), target.title));
        }
    }
    out
}

pub(crate) fn a_vault_imports_with_subfolders_front_matter_and_links(store: Backend) {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    let report = store
        .notes()
        .import_vault(dir.path(), "kim", &VaultImportOptions::default())
        .unwrap();
    assert_eq!(report.created.len(), 3, "{report:?}");
    // The broken note, and a file no note embeds or links to.
    assert_eq!(report.skipped.len(), 2, "{report:?}");
    assert_eq!(report.skipped[0].0, Path::new("broken.md"));
    assert_eq!(report.skipped[1].0, Path::new("attachments/diagram.txt"));

    let notes = store.notes().list("kim", &NoteFilter::all()).unwrap();
    let titles: BTreeSet<&str> = notes.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(
        titles,
        BTreeSet::from(["Payment timeout", "Checkout 502", "결제 실패: PG 오류"])
    );
    assert!(notes
        .iter()
        .all(|n| n.author == "kim" && n.visibility == Visibility::Private));
    let checkout = notes.iter().find(|n| n.title == "Checkout 502").unwrap();
    assert_eq!(checkout.tags, ["checkout", "incidents/2024"]);
    assert_eq!(checkout.aliases, ["502 incident"]);
    assert_eq!(checkout.body, "Caused by [[payment timeout]].\n");
    assert_eq!(
        edges(&store, "kim"),
        BTreeSet::from([
            ("Payment timeout".into(), "Checkout 502".into()),
            ("Checkout 502".into(), "Payment timeout".into()),
            ("결제 실패: PG 오류".into(), "Checkout 502".into()),
            ("결제 실패: PG 오류".into(), "Payment timeout".into()),
        ])
    );
    assert!(store
        .notes()
        .list("lee", &NoteFilter::all())
        .unwrap()
        .is_empty());
    let rendered = store
        .notes()
        .render(
            notes
                .iter()
                .find(|n| n.title.starts_with("결제"))
                .unwrap()
                .id,
            "kim",
        )
        .unwrap();
    assert!(
        rendered.contains("Retry. See [[Checkout 502]]"),
        "{rendered}"
    );
}

pub(crate) fn export_then_import_keeps_titles_bodies_tags_and_links(store: Backend) {
    let source = tempfile::tempdir().unwrap();
    vault(source.path());
    store
        .notes()
        .import_vault(
            source.path(),
            "kim",
            &VaultImportOptions::default().visibility(Visibility::Public),
        )
        .unwrap();
    // A second note with the same title needs a distinct file name.
    store
        .notes()
        .create(omegi_store::NewNote::new("lee", "payment TIMEOUT", "duplicate").public())
        .unwrap();

    for layout in [
        Subfolders::Vault,
        Subfolders::None,
        Subfolders::FirstTag,
        Subfolders::Author,
    ] {
        let out = tempfile::tempdir().unwrap();
        let export = store
            .notes()
            .export_vault(
                out.path(),
                "kim",
                &NoteFilter::all(),
                &VaultExportOptions::default().subfolders(layout),
            )
            .unwrap();
        assert_eq!(export.files.len(), 4);
        let names: BTreeSet<String> = export
            .files
            .iter()
            .map(|(_, p)| p.to_string_lossy().to_lowercase())
            .collect();
        assert_eq!(names.len(), 4, "file names are unique: {names:?}");
        for (_, path) in &export.files {
            assert!(out.path().join(path).is_file());
        }
        match layout {
            Subfolders::Vault => {
                // The folders the notes were imported from.
                assert!(
                    names.contains("incidents/2024/결제 실패- pg 오류.md"),
                    "{names:?}"
                );
                assert!(names.contains("payment timeout (2).md"), "{names:?}");
            }
            Subfolders::None => {
                assert!(names.contains("결제 실패- pg 오류.md"), "{names:?}");
                assert!(names.contains("payment timeout (2).md"), "{names:?}");
            }
            Subfolders::FirstTag => {
                assert!(names.contains("checkout/checkout 502.md"), "{names:?}");
                assert!(names.contains("payments/payment timeout.md"), "{names:?}");
            }
            Subfolders::Author => {
                assert!(names.contains("lee/payment timeout.md"), "{names:?}");
            }
            _ => unreachable!(),
        }

        // Into a fresh store, as another user.
        let copy = store.another();
        let report = copy
            .notes()
            .import_vault(out.path(), "park", &VaultImportOptions::default())
            .unwrap();
        assert_eq!(report.created.len(), 4);
        assert!(report.skipped.is_empty());
        assert_eq!(shape(&copy, "park"), shape(&store, "kim"));
        // Subfolders by tag or author become the notes' folders on import,
        // and folders decide between colliding titles: only the layouts
        // that keep the notes' own folders keep every edge.
        if matches!(layout, Subfolders::Vault | Subfolders::None) {
            assert_eq!(edges(&copy, "park"), edges(&store, "kim"));
        }
    }

    // Into the same store: the ids match, nothing changes; an edited file
    // updates its note, and another user cannot take notes over.
    let out = tempfile::tempdir().unwrap();
    let export = store
        .notes()
        .export_vault(
            out.path(),
            "kim",
            &NoteFilter::all().author("kim"),
            &VaultExportOptions::default(),
        )
        .unwrap();
    assert_eq!(export.files.len(), 3);
    let again = store
        .notes()
        .import_vault(out.path(), "kim", &VaultImportOptions::default())
        .unwrap();
    assert_eq!(again.unchanged.len(), 3, "{again:?}");
    let (id, file) = export
        .files
        .iter()
        .find(|(_, p)| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("Checkout")
        })
        .unwrap()
        .clone();
    let path = out.path().join(&file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("Caused by", "Mostly caused by")).unwrap();
    let again = store
        .notes()
        .import_vault(out.path(), "kim", &VaultImportOptions::default())
        .unwrap();
    assert_eq!(again.updated, [id]);
    let note = store.notes().get(id, "kim").unwrap().unwrap();
    assert!(note.body.starts_with("Mostly caused by"));
    assert_eq!(note.revision, 2);
    let stolen = store
        .notes()
        .import_vault(out.path(), "lee", &VaultImportOptions::default())
        .unwrap();
    assert!(stolen.created.is_empty() && stolen.updated.is_empty());
    assert_eq!(stolen.skipped.len(), 3);
}
