//! Accounts: memberships, tokens with ids, the migration of accounts from
//! before them, and what an import does with the accounts of a file.

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

#[test]
fn memberships_are_added_listed_and_removed() {
    let store = accounts();
    assert!(store.accounts().members("a").unwrap().is_empty());
    assert!(store.accounts().add_member("a", "kim").unwrap());
    assert!(
        !store.accounts().add_member("a", "kim").unwrap(),
        "already a member"
    );
    assert_eq!(store.accounts().members("a").unwrap(), ["kim"]);
    assert!(store.accounts().members("b").unwrap().is_empty());
    assert_eq!(
        store.accounts().user("kim").unwrap().unwrap().projects,
        ["a"]
    );
    assert!(matches!(
        store.accounts().add_member("nope", "kim"),
        Err(Error::ProjectNotFound { .. })
    ));
    assert!(matches!(
        store.accounts().add_member("a", "nobody"),
        Err(Error::UserNotFound { .. })
    ));
    // put_user keeps memberships sorted and without repeats.
    let mut kim = store.accounts().user("kim").unwrap().unwrap();
    kim.projects = vec!["b".into(), "a".into(), "b".into()];
    store.accounts().put_user(&kim).unwrap();
    assert_eq!(
        store.accounts().user("kim").unwrap().unwrap().projects,
        ["a", "b"]
    );
    assert!(store.accounts().remove_member("b", "kim").unwrap());
    assert!(!store.accounts().remove_member("b", "kim").unwrap());
    assert_eq!(
        store.accounts().user("kim").unwrap().unwrap().projects,
        ["a"]
    );

    // Removing a project ends its memberships and revokes its tokens.
    let token = store
        .accounts()
        .add_token(project("a"), "sha256:a", "gateway")
        .unwrap();
    assert!(store.accounts().remove_project("a").unwrap());
    assert!(store
        .accounts()
        .user("kim")
        .unwrap()
        .unwrap()
        .projects
        .is_empty());
    assert_eq!(store.accounts().token_by_hash("sha256:a").unwrap(), None);
    assert_eq!(store.accounts().token(&token.id).unwrap(), None);
}

#[test]
fn tokens_have_ids_labels_and_owners() {
    let store = accounts();
    let gateway = store
        .accounts()
        .add_token(project("a"), "sha256:1", "gateway")
        .unwrap();
    let payment = store
        .accounts()
        .add_token(project("a"), "sha256:2", "payment")
        .unwrap();
    let laptop = store
        .accounts()
        .add_token(user("kim"), "sha256:3", "laptop")
        .unwrap();
    assert_eq!(gateway.id.len(), 16);
    assert_ne!(gateway.id, payment.id);
    assert_eq!(gateway.owner, project("a"));
    assert_eq!(gateway.last_used_ns, None);

    assert_eq!(
        store.accounts().token_by_hash("sha256:2").unwrap(),
        Some(payment.clone())
    );
    assert_eq!(
        store.accounts().token(&laptop.id).unwrap(),
        Some(laptop.clone())
    );
    assert_eq!(
        store.accounts().tokens(Some(&project("a"))).unwrap(),
        [gateway.clone(), payment.clone()]
    );
    assert_eq!(
        store.accounts().tokens(Some(&user("kim"))).unwrap(),
        std::slice::from_ref(&laptop)
    );
    assert_eq!(store.accounts().tokens(None).unwrap().len(), 3);

    // Owners must exist; hashes are unique; labels are bounded.
    assert!(matches!(
        store.accounts().add_token(project("nope"), "sha256:4", ""),
        Err(Error::ProjectNotFound { .. })
    ));
    assert!(matches!(
        store.accounts().add_token(user("nobody"), "sha256:4", ""),
        Err(Error::UserNotFound { .. })
    ));
    assert!(matches!(
        store.accounts().add_token(user("kim"), "sha256:3", "again"),
        Err(Error::TokenExists)
    ));
    assert!(matches!(
        store
            .accounts()
            .add_token(user("kim"), "sha256:4", &"x".repeat(129)),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        store.accounts().add_token(user("kim"), "sha256:4", "a\nb"),
        Err(Error::InvalidName { .. })
    ));

    // Revoked: gone for every clone at once.
    let other = store.clone();
    assert_eq!(
        store.accounts().revoke_token(&payment.id).unwrap(),
        Some(payment.clone())
    );
    assert_eq!(other.accounts().token_by_hash("sha256:2").unwrap(), None);
    assert_eq!(other.accounts().token(&payment.id).unwrap(), None);
    assert_eq!(store.accounts().revoke_token(&payment.id).unwrap(), None);

    // Rotation: a new token with the same owner and label, the old one
    // revoked in the same step, or kept.
    let (new, old) = store
        .accounts()
        .rotate_token(&laptop.id, "sha256:5", true)
        .unwrap();
    assert_eq!(old, Some(laptop.clone()));
    assert_eq!(
        (new.owner.clone(), new.label.as_str()),
        (user("kim"), "laptop")
    );
    assert_eq!(store.accounts().token_by_hash("sha256:3").unwrap(), None);
    assert_eq!(
        store.accounts().token_by_hash("sha256:5").unwrap(),
        Some(new.clone())
    );
    let (kept, none) = store
        .accounts()
        .rotate_token(&new.id, "sha256:6", false)
        .unwrap();
    assert_eq!(none, None);
    assert!(store
        .accounts()
        .token_by_hash("sha256:5")
        .unwrap()
        .is_some());
    assert!(store
        .accounts()
        .token_by_hash("sha256:6")
        .unwrap()
        .is_some());
    assert_ne!(kept.id, new.id);
    assert!(matches!(
        store
            .accounts()
            .rotate_token("0000000000000000", "sha256:7", true),
        Err(Error::TokenNotFound { .. })
    ));

    // Removing a user revokes their tokens.
    assert!(store.accounts().remove_user("kim").unwrap());
    assert!(store
        .accounts()
        .tokens(Some(&user("kim")))
        .unwrap()
        .is_empty());
    assert_eq!(store.accounts().token_by_hash("sha256:6").unwrap(), None);
}

#[test]
fn last_use_is_recorded_coarsely_and_never_revives_a_revoked_token() {
    let store = accounts();
    let token = store
        .accounts()
        .add_token(user("kim"), "sha256:1", "")
        .unwrap();
    let minute = 60_000_000_000;
    store
        .accounts()
        .touch_token(&token, 1_000 * minute, minute)
        .unwrap();
    let used = store.accounts().token_by_hash("sha256:1").unwrap().unwrap();
    assert_eq!(used.last_used_ns, Some(1_000 * minute));
    // Within the resolution: nothing is written.
    store
        .accounts()
        .touch_token(&used, 1_000 * minute + 5, minute)
        .unwrap();
    assert_eq!(
        store
            .accounts()
            .token_by_hash("sha256:1")
            .unwrap()
            .unwrap()
            .last_used_ns,
        Some(1_000 * minute)
    );
    store
        .accounts()
        .touch_token(&used, 1_002 * minute, minute)
        .unwrap();
    assert_eq!(
        store
            .accounts()
            .token_by_hash("sha256:1")
            .unwrap()
            .unwrap()
            .last_used_ns,
        Some(1_002 * minute)
    );
    // A token read before it was revoked stays revoked when touched.
    let read = store.accounts().token_by_hash("sha256:1").unwrap().unwrap();
    store.accounts().revoke_token(&read.id).unwrap();
    store
        .accounts()
        .touch_token(&read, 2_000 * minute, minute)
        .unwrap();
    assert_eq!(store.accounts().token_by_hash("sha256:1").unwrap(), None);
}

#[test]
fn finding_a_token_is_one_read_whether_it_exists_or_not() {
    let store = accounts();
    for i in 0..100 {
        store
            .accounts()
            .add_token(user("kim"), &format!("sha256:{i}"), "")
            .unwrap();
    }
    let before = store.accounts().reads();
    for i in 0..1_000 {
        assert_eq!(
            store
                .accounts()
                .token_by_hash(&format!("unknown:{i}"))
                .unwrap(),
            None
        );
    }
    assert!(store
        .accounts()
        .token_by_hash("sha256:7")
        .unwrap()
        .is_some());
    assert_eq!(store.accounts().reads() - before, 1_001);
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
