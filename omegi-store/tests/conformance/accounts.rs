//! Accounts: memberships and tokens with ids.

use super::Backend;
use omegi_store::{Error, Project, TokenOwner, User};

fn project(id: &str) -> TokenOwner {
    TokenOwner::Project(id.into())
}

fn user(login: &str) -> TokenOwner {
    TokenOwner::User(login.into())
}

/// A backend with projects `a` and `b`, the admin `root` and the user `kim`.
fn accounts(store: &Backend) {
    for id in ["a", "b"] {
        store.accounts().put_project(&Project::new(id)).unwrap();
    }
    for login in ["root", "kim"] {
        store.accounts().put_user(&User::new(login)).unwrap();
    }
    store.accounts().set_admin("root", true).unwrap();
}

pub(crate) fn memberships_are_added_listed_and_removed(store: Backend) {
    accounts(&store);
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

pub(crate) fn tokens_have_ids_labels_and_owners(store: Backend) {
    accounts(&store);
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

pub(crate) fn last_use_is_recorded_coarsely_and_never_revives_a_revoked_token(store: Backend) {
    accounts(&store);
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

pub(crate) fn finding_a_token_is_one_read_whether_it_exists_or_not(store: Backend) {
    accounts(&store);
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
