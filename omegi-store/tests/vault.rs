//! Markdown vault export on the embedded store: what it overwrites and
//! that it never follows a symbolic link. Import and export of notes are in
//! the conformance suite (`tests/conformance/vault.rs`).

use std::path::Path;

use omegi_store::{NoteFilter, Store, Subfolders, VaultExportOptions, VaultImportOptions};

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
