//! Markdown vault import and export.

use std::collections::BTreeSet;
use std::path::Path;

use omegi_core::Visibility;
use omegi_store::{NoteFilter, Store, Subfolders, VaultExportOptions, VaultImportOptions};

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

fn shape(store: &Store, viewer: &str) -> Shape {
    store
        .notes()
        .list(viewer, &NoteFilter::all())
        .unwrap()
        .into_iter()
        .map(|n| (n.title, n.body, n.tags, n.aliases))
        .collect()
}

/// (source title, target title) of every link `viewer` sees.
fn edges(store: &Store, viewer: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for note in store.notes().list(viewer, &NoteFilter::all()).unwrap() {
        for target in store.notes().links(note.id, viewer).unwrap().outgoing {
            out.insert((note.title.clone(), target.title));
        }
    }
    out
}

#[test]
fn a_vault_imports_with_subfolders_front_matter_and_links() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    let store = Store::temporary().unwrap();
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

#[test]
fn export_then_import_keeps_titles_bodies_tags_and_links() {
    let source = tempfile::tempdir().unwrap();
    vault(source.path());
    let store = Store::temporary().unwrap();
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
        let copy = Store::temporary().unwrap();
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

/// A store with two public notes of kim's.
fn two_notes() -> Store {
    let store = Store::temporary().unwrap();
    for (title, body) in [
        ("Runbook", "Restart it."),
        ("Checkout 502", "See [[Runbook]]."),
    ] {
        store
            .notes()
            .create(omegi_store::NewNote::new("kim", title, body).public())
            .unwrap();
    }
    store
}

fn export(store: &Store, dir: &Path, force: bool) -> omegi_store::Result<omegi_store::VaultExport> {
    store.notes().export_vault(
        dir,
        "kim",
        &NoteFilter::all(),
        &VaultExportOptions::default()
            .subfolders(Subfolders::FirstTag)
            .force(force),
    )
}

#[test]
fn export_overwrites_only_what_it_wrote_unless_forced() {
    let store = two_notes();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("vault");
    // A file that was there before, under a name the export wants.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Runbook.md"), "my own notes").unwrap();
    let err = export(&store, &dir, false).unwrap_err();
    assert!(
        matches!(&err, omegi_store::Error::ExportWouldOverwrite { files } if files == &[Path::new("Runbook.md")]),
        "{err}"
    );
    assert!(err.to_string().contains("--force"), "{err}");
    // Nothing was written: the file is intact and no other file appeared.
    assert_eq!(
        std::fs::read_to_string(dir.join("Runbook.md")).unwrap(),
        "my own notes"
    );
    assert!(!dir.join("Checkout 502.md").exists());

    std::fs::remove_file(dir.join("Runbook.md")).unwrap();
    let first = export(&store, &dir, false).unwrap();
    assert_eq!(first.files.len(), 2);
    assert!(first.unchanged.is_empty());
    // Again: its own files, unchanged, are left alone.
    let again = export(&store, &dir, false).unwrap();
    assert_eq!(again.unchanged.len(), 2);
    // A note that changed is rewritten: the file is still the one it wrote.
    let note = store
        .notes()
        .list("kim", &NoteFilter::all())
        .unwrap()
        .into_iter()
        .find(|n| n.title == "Runbook")
        .unwrap();
    store
        .notes()
        .update(
            note.id,
            "kim",
            omegi_store::NoteUpdate::new().body("Restart it twice."),
            note.revision,
        )
        .unwrap();
    let third = export(&store, &dir, false).unwrap();
    assert_eq!(third.unchanged.len(), 1);
    assert!(std::fs::read_to_string(dir.join("Runbook.md"))
        .unwrap()
        .contains("Restart it twice."));
    // A file someone edited since is not overwritten without force.
    std::fs::write(dir.join("Checkout 502.md"), "edited by hand").unwrap();
    store
        .notes()
        .create(omegi_store::NewNote::new("kim", "Later", "x").public())
        .unwrap();
    // Still refused: the hand edit differs from what the note says now.
    assert!(matches!(
        export(&store, &dir, false),
        Err(omegi_store::Error::ExportWouldOverwrite { .. })
    ));
    assert!(!dir.join("Later.md").exists());
    let forced = export(&store, &dir, true).unwrap();
    assert_eq!(forced.files.len(), 3);
    assert!(std::fs::read_to_string(dir.join("Checkout 502.md"))
        .unwrap()
        .contains("See [[Runbook]]."));
    // The manifest is hidden from vault imports.
    assert!(dir.join(".omegi-export.json").is_file());
    let copy = Store::temporary().unwrap();
    let report = copy
        .notes()
        .import_vault(&dir, "park", &VaultImportOptions::default())
        .unwrap();
    assert_eq!(report.created.len(), 3, "{report:?}");
}

#[cfg(unix)]
#[test]
fn export_never_follows_a_symlink_planted_in_the_folder() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let store = two_notes();
    store
        .notes()
        .create(omegi_store::NewNote::new("kim", "Pool", "#db sizing").public())
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let dir = out.path().join("vault");
    std::fs::create_dir(&dir).unwrap();

    // A link where a note file goes: refused, even forced the target is
    // never written (forced, the link itself is replaced by the file).
    symlink(&victim, dir.join("Runbook.md")).unwrap();
    assert!(matches!(
        export(&store, &dir, false),
        Err(omegi_store::Error::ExportWouldOverwrite { .. })
    ));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    export(&store, &dir, true).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(!std::fs::symlink_metadata(dir.join("Runbook.md"))
        .unwrap()
        .file_type()
        .is_symlink());

    // A link where a tag folder goes: refused, forced or not.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::remove_dir_all(dir.join("db")).unwrap();
    symlink(elsewhere.path(), dir.join("db")).unwrap();
    for force in [false, true] {
        let err = export(&store, &dir, force).unwrap_err();
        assert!(
            matches!(&err, omegi_store::Error::SymlinkInExport { path } if path == &dir.join("db")),
            "{err}"
        );
    }
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);

    // A link planted as the manifest is not followed either.
    std::fs::remove_file(dir.join("db")).unwrap();
    std::fs::remove_file(dir.join(".omegi-export.json")).unwrap();
    symlink(&victim, dir.join(".omegi-export.json")).unwrap();
    export(&store, &dir, true).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");

    // What the export creates is private.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let fresh = out.path().join("fresh/vault");
    export(&store, &fresh, false).unwrap();
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("db")), 0o700);
    assert_eq!(mode(&fresh.join("Runbook.md")), 0o600);
    assert_eq!(mode(&fresh.join("db/Pool.md")), 0o600);
}
