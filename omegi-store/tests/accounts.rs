//! Accounts on the embedded store: the migration of accounts from before
//! memberships and token ids, and what an import does with the accounts of
//! a file. (What every backend does alike is in `conformance/accounts.rs`.)

use omegi_store::{Error, ImportOptions, Project, Store, TokenOwner, User};
use serde::Serialize;

fn project(id: &str) -> TokenOwner {
    TokenOwner::Project(id.into())
}

fn user(login: &str) -> TokenOwner {
    TokenOwner::User(login.into())
}

/// A store with projects `a` and `b`, the admin `root` and the user `kim`.
fn accounts() -> Store {
    let store = Store::temporary().unwrap();
    for id in ["a", "b"] {
        store.accounts().put_project(&Project::new(id)).unwrap();
    }
    for login in ["root", "kim"] {
        store.accounts().put_user(&User::new(login)).unwrap();
    }
    store.accounts().set_admin("root", true).unwrap();
    store
}

/// `{"type":"header",…}` of an export of version `schema`.
fn header(schema: u32) -> String {
    format!("{{\"type\":\"header\",\"format\":\"omegi-store\",\"schema\":{schema}}}\n")
}

#[test]
fn an_import_takes_accounts_only_when_asked_and_always_counts_them() {
    let a = accounts();
    a.accounts().add_member("a", "kim").unwrap();
    a.accounts()
        .add_token(project("a"), "sha256:1", "gateway")
        .unwrap();
    a.accounts()
        .add_token(user("kim"), "sha256:2", "laptop")
        .unwrap();
    a.traces()
        .ingest("a", &omegi_core::Resource::default(), &[])
        .unwrap();
    let mut file = Vec::new();
    a.export(&mut file).unwrap();
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(
        text.starts_with(&header(omegi_store::EXPORT_VERSION)),
        "{text}"
    );
    assert!(!text.contains("token_hash"), "{text}");

    let data_only = Store::temporary().unwrap();
    let stats = data_only
        .import_with(&file[..], ImportOptions::data_only())
        .unwrap();
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

    let everything = Store::temporary().unwrap();
    let stats = everything
        .import_with(&file[..], ImportOptions::everything())
        .unwrap();
    assert!(stats.accounts);
    assert_eq!(stats.legacy_members, 0);
    assert_eq!(
        everything.accounts().tokens(None).unwrap(),
        a.accounts().tokens(None).unwrap()
    );
    assert_eq!(everything.accounts().members("a").unwrap(), ["kim"]);
    assert!(everything.accounts().members("b").unwrap().is_empty());
    assert_eq!(everything.accounts().admins().unwrap(), ["root"]);

    // A token whose owner the file does not hold is refused.
    let orphan = format!(
        "{}{}",
        header(3),
        "{\"type\":\"token\",\"token\":{\"id\":\"00000000000000aa\",\"hash\":\"sha256:x\",\
         \"owner\":{\"user\":\"ghost\"},\"label\":\"\",\"created_ns\":1,\"last_used_ns\":null}}\n"
    );
    let err = Store::temporary()
        .unwrap()
        .import_with(orphan.as_bytes(), ImportOptions::everything())
        .unwrap_err();
    assert!(matches!(err, Error::Import { line: 2, .. }), "{err}");
}

#[test]
fn an_export_from_before_memberships_keeps_everyone_s_access() {
    let file = format!(
        "{}{}{}{}{}{}",
        header(2),
        "{\"type\":\"project\",\"project\":{\"id\":\"a\",\"name\":\"a\",\"created_ns\":1,\"token_hash\":\"sha256:pa\"}}\n",
        "{\"type\":\"project\",\"project\":{\"id\":\"b\",\"name\":\"b\",\"created_ns\":1,\"token_hash\":null}}\n",
        "{\"type\":\"user\",\"user\":{\"login\":\"kim\",\"name\":\"kim\",\"email\":null,\"projects\":[],\"created_ns\":2,\"token_hash\":\"sha256:kim\"}}\n",
        "{\"type\":\"user\",\"user\":{\"login\":\"root\",\"name\":\"root\",\"email\":null,\"projects\":[],\"created_ns\":2,\"token_hash\":\"sha256:root\"}}\n",
        "{\"type\":\"admin\",\"login\":\"root\"}\n",
    );
    let counted = Store::temporary()
        .unwrap()
        .import_with(file.as_bytes(), ImportOptions::data_only())
        .unwrap();
    assert_eq!(
        (
            counted.projects,
            counted.users,
            counted.admins,
            counted.tokens
        ),
        (2, 2, 1, 3)
    );

    let store = Store::temporary().unwrap();
    let stats = store
        .import_with(file.as_bytes(), ImportOptions::everything())
        .unwrap();
    assert_eq!(stats.legacy_members, 1);
    // kim could read both projects before: still can, by membership.
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
    let kim = store
        .accounts()
        .token_by_hash("sha256:kim")
        .unwrap()
        .unwrap();
    assert_eq!((kim.owner, kim.label.as_str()), (user("kim"), "api"));
    let ingest = store
        .accounts()
        .token_by_hash("sha256:pa")
        .unwrap()
        .unwrap();
    assert_eq!(
        (ingest.owner, ingest.label.as_str()),
        (project("a"), "ingest")
    );
    assert_eq!(store.accounts().tokens(None).unwrap().len(), 3);
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
