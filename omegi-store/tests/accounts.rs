//! Accounts on the embedded store: the migration of accounts from before
//! memberships and token ids. (What every backend does alike is in
//! `conformance/accounts.rs`; what an import does with the accounts of a
//! file, in `conformance/transfer.rs`.)

use omegi_store::{Store, TokenOwner};
use serde::Serialize;

fn project(id: &str) -> TokenOwner {
    TokenOwner::Project(id.into())
}

/// A project as stored before token ids (postcard keeps field order).
#[derive(Serialize)]
struct LegacyProject<'a> {
    id: &'a str,
    name: &'a str,
    created_ns: u64,
    token_hash: Option<&'a str>,
}

/// A user as stored before token ids.
#[derive(Serialize)]
struct LegacyUser<'a> {
    login: &'a str,
    name: &'a str,
    email: Option<&'a str>,
    projects: Vec<&'a str>,
    created_ns: u64,
    token_hash: Option<&'a str>,
}

/// A key as the store writes it: a 2-byte length and the text.
fn name_key(name: &str) -> Vec<u8> {
    let mut key = (name.len() as u16).to_be_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

#[test]
fn opening_accounts_from_before_memberships_migrates_them_once() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    {
        // Write the accounts as an older version did.
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("accounts_meta").unwrap().clear().unwrap();
        let projects = db.open_tree("projects").unwrap();
        for (id, hash) in [("a", Some("sha256:pa")), ("b", None)] {
            let p = LegacyProject {
                id,
                name: id,
                created_ns: 5,
                token_hash: hash,
            };
            projects
                .insert(name_key(id), postcard::to_allocvec(&p).unwrap())
                .unwrap();
        }
        let users = db.open_tree("users").unwrap();
        for (login, hash) in [("kim", Some("sha256:kim")), ("root", Some("sha256:root"))] {
            let u = LegacyUser {
                login,
                name: login,
                email: None,
                projects: vec![],
                created_ns: 7,
                token_hash: hash,
            };
            users
                .insert(name_key(login), postcard::to_allocvec(&u).unwrap())
                .unwrap();
        }
        db.open_tree("admins")
            .unwrap()
            .insert(name_key("root"), &[])
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.accounts().user("kim").unwrap().unwrap().projects,
        ["a", "b"]
    );
    assert!(store
        .accounts()
        .user("root")
        .unwrap()
        .unwrap()
        .projects
        .is_empty());
    assert_eq!(
        store.accounts().project("a").unwrap().unwrap().created_ns,
        5
    );
    let tokens = store.accounts().tokens(None).unwrap();
    assert_eq!(tokens.len(), 3);
    assert_eq!(
        store
            .accounts()
            .token_by_hash("sha256:pa")
            .unwrap()
            .unwrap()
            .owner,
        project("a")
    );
    let report = store
        .accounts()
        .take_migration()
        .unwrap()
        .expect("a migration report");
    assert_eq!(report.members, ["kim"]);
    assert_eq!(report.projects, ["a", "b"]);
    assert_eq!(report.tokens, 3);
    assert!(report
        .to_string()
        .contains("became members of every project"));
    assert_eq!(
        store.accounts().take_migration().unwrap(),
        None,
        "told once"
    );
    drop(store);

    // Reopening migrates nothing again: a membership removed stays removed.
    let store = Store::open(dir.path()).unwrap();
    store.accounts().remove_member("b", "kim").unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.accounts().user("kim").unwrap().unwrap().projects,
        ["a"]
    );
    assert_eq!(store.accounts().tokens(None).unwrap(), tokens);
    assert_eq!(store.accounts().take_migration().unwrap(), None);
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("new/store");
    let store = Store::open(&dir).unwrap();
    store
        .notes()
        .create(omegi_store::NewNote::new("kim", "Runbook", "text"))
        .unwrap();
    store.flush().unwrap();
    drop(store);
    // Reopening makes whatever the engine and the index added private too.
    drop(Store::open(&dir).unwrap());
    assert_eq!(mode(&dir), 0o700);
    let mut seen = 0;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            seen += 1;
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                stack.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
    }
    assert!(seen >= 3, "conf, db and the search index at least");

    // A store directory made by an earlier version, readable by everyone,
    // is made private when opened.
    let old = parent.path().join("old");
    drop(Store::open(&old).unwrap());
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(old.join("db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&old).unwrap());
    assert_eq!(mode(&old), 0o700);
    assert_eq!(mode(&old.join("db")), 0o600);
}
