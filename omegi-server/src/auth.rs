//! Tokens and who holds them.
//!
//! Projects have *ingest tokens* (sent by services to `/v1/traces` and
//! `/v1/logs`), users have *API tokens* (for `/api/`). Both travel as
//! `Authorization: Bearer <token>`. A project or user may have several
//! tokens (one per service, one per laptop), each with an id and a label.
//! Only the SHA-256 of a token is stored ([`omegi_store::Token::hash`],
//! `sha256:<hex>`); the token itself is shown once, when it is created.
//!
//! [`Authenticator::authenticate`] finds a token by its hash in the store:
//! one point read per request, whether the token exists or not, and no
//! cache, so that a revoked token ([`omegi_store::Accounts::revoke_token`]) is
//! refused at once by every server sharing the store.
//!
//! On first start [`bootstrap`] creates the project `default` and the user
//! `admin` and saves their tokens in `<data>/credentials.json` (mode 0600),
//! where the CLI on the same machine finds them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use omegi_store::{Project, Store, Token, TokenOwner, User};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The name of the credentials file in the data directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// The project created on first start.
pub const DEFAULT_PROJECT: &str = "default";

/// The user created on first start.
pub const ADMIN_USER: &str = "admin";

/// The label of the token a new project or user gets.
pub const FIRST_TOKEN_LABEL: &str = "default";

/// Tokens one project or user may hold at once, unless configured.
pub const DEFAULT_MAX_TOKENS: usize = 100;

/// How often a token's last use is recorded at most: once a minute.
pub const LAST_USED_RESOLUTION_NS: u64 = 60_000_000_000;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A project's ingest token (`omegi_i_…`).
    Ingest,
    /// A user's API token (`omegi_u_…`).
    User,
}

impl TokenKind {
    /// The kind of token `owner` holds.
    pub fn of(owner: &TokenOwner) -> Self {
        match owner {
            TokenOwner::Project(_) => TokenKind::Ingest,
            TokenOwner::User(_) => TokenKind::User,
        }
    }
}

/// A new random token: a prefix saying what it is for and 256 random bits
/// in hex.
pub fn new_token(kind: TokenKind) -> String {
    let prefix = match kind {
        TokenKind::Ingest => "omegi_i_",
        TokenKind::User => "omegi_u_",
    };
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{a}{b}")
}

/// The stored form of a token: `sha256:<hex>`.
pub fn hash_token(token: &str) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A project, by id: may send data.
    Project(String),
    /// A user, by login: may use the API.
    User(String),
}

impl From<TokenOwner> for Principal {
    fn from(owner: TokenOwner) -> Self {
        match owner {
            TokenOwner::Project(id) => Principal::Project(id),
            TokenOwner::User(login) => Principal::User(login),
        }
    }
}

/// Checks tokens against the store: one point read by the token's hash
/// per check, no cache.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
}

impl Authenticator {
    /// An authenticator over the tokens of `store`.
    pub fn new(store: Store) -> Self {
        Authenticator { store }
    }

    /// Who `token` belongs to, or `None` for a token nobody has (never
    /// had, or revoked). Records the token's use, at most once a minute.
    pub fn authenticate(&self, token: &str) -> Result<Option<Principal>, omegi_store::Error> {
        let Some(found) = self.store.accounts().token_by_hash(&hash_token(token))? else {
            return Ok(None);
        };
        if let Err(error) =
            self.store
                .accounts()
                .touch_token(&found, crate::api::now_ns(), LAST_USED_RESOLUTION_NS)
        {
            // Recording the last use is a courtesy; the request goes on.
            tracing::warn!(error = %omegi_core::ErrorChain(&error), token = %found.id, "could not record a token's last use");
        }
        Ok(Some(found.owner.into()))
    }
}

/// A name with its token, as saved in the credentials file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedToken {
    /// The project id or user login.
    pub name: String,
    /// The token.
    pub token: String,
}

/// `<data>/credentials.json`: the tokens created on first start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The default project and its ingest token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<NamedToken>,
    /// The admin user and its API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<NamedToken>,
}

/// Why the credentials file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// Reading or writing the file failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{path}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: serde_json::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] omegi_store::Error),
    /// Creating the default project or user failed.
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// The credentials file of a data directory.
pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CREDENTIALS_FILE)
}

/// Reads `<data>/credentials.json`; `None` when it does not exist.
pub fn read_credentials(data_dir: &Path) -> Result<Option<Credentials>, CredentialsError> {
    let path = credentials_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CredentialsError::Io { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| CredentialsError::Invalid { path, source })
}

/// Writes `<data>/credentials.json` readable and writable by the owner only
/// (0600 on Unix), replacing it atomically.
pub fn write_credentials(
    data_dir: &Path,
    credentials: &Credentials,
) -> Result<(), CredentialsError> {
    let path = credentials_path(data_dir);
    let tmp = data_dir.join(format!("{CREDENTIALS_FILE}.tmp"));
    let io = |source| CredentialsError::Io {
        path: path.clone(),
        source,
    };
    let mut text = serde_json::to_string_pretty(credentials)
        .map_err(|source| CredentialsError::Invalid {
            path: path.clone(),
            source,
        })?
        .into_bytes();
    text.push(b'\n');
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(&text).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

/// Creates a project with a fresh ingest token (labelled
/// [`FIRST_TOKEN_LABEL`]); returns the project and the token. Fails with
/// [`AccountError::Exists`] if the id is taken.
pub fn create_project(store: &Store, id: &str) -> Result<(Project, String), AccountError> {
    check_account_name("project", id)?;
    if store.accounts().project(id)?.is_some() {
        return Err(AccountError::Exists {
            what: "project",
            name: id.to_owned(),
        });
    }
    let project = Project::new(id);
    store.accounts().put_project(&project)?;
    let (_, token) = issue_token(
        store,
        TokenOwner::Project(project.id.clone()),
        FIRST_TOKEN_LABEL,
        DEFAULT_MAX_TOKENS,
    )?;
    Ok((project, token))
}

/// Creates a user with a fresh API token (labelled [`FIRST_TOKEN_LABEL`]),
/// an admin if `admin`, a member of `projects`; returns the user and the
/// token. Fails with [`AccountError::Exists`] if the login is taken and
/// with [`AccountError::NotFound`] for a project that does not exist.
pub fn create_user(
    store: &Store,
    login: &str,
    admin: bool,
    projects: &[String],
) -> Result<(User, String), AccountError> {
    check_account_name("user", login)?;
    if store.accounts().user(login)?.is_some() {
        return Err(AccountError::Exists {
            what: "user",
            name: login.to_owned(),
        });
    }
    for id in projects {
        if store.accounts().project(id)?.is_none() {
            return Err(AccountError::NotFound {
                what: "project",
                name: id.clone(),
            });
        }
    }
    let mut user = User::new(login);
    user.projects = projects.to_vec();
    store.accounts().put_user(&user)?;
    if admin {
        store.accounts().set_admin(login, true)?;
    }
    let (_, token) = issue_token(
        store,
        TokenOwner::User(user.login.clone()),
        FIRST_TOKEN_LABEL,
        DEFAULT_MAX_TOKENS,
    )?;
    let user = store.accounts().user(login)?.unwrap_or(user);
    Ok((user, token))
}

/// Issues a new token for `owner` with this label; returns the stored
/// token and the token itself (shown once). Fails with
/// [`AccountError::TooManyTokens`] when the owner holds `max_tokens`
/// already.
pub fn issue_token(
    store: &Store,
    owner: TokenOwner,
    label: &str,
    max_tokens: usize,
) -> Result<(Token, String), AccountError> {
    check_token_count(store, &owner, max_tokens)?;
    let secret = new_token(TokenKind::of(&owner));
    let token = store
        .accounts()
        .add_token(owner, &hash_token(&secret), label)?;
    Ok((token, secret))
}

/// Replaces the token `id` by a new one with the same owner and label,
/// revoking the old one in the same step unless `keep_old`; returns the
/// new token, the token itself (shown once) and the revoked one.
pub fn rotate_token(
    store: &Store,
    id: &str,
    keep_old: bool,
    max_tokens: usize,
) -> Result<(Token, String, Option<Token>), AccountError> {
    let old = store
        .accounts()
        .token(id)?
        .ok_or_else(|| AccountError::NotFound {
            what: "token",
            name: id.to_owned(),
        })?;
    if keep_old {
        check_token_count(store, &old.owner, max_tokens)?;
    }
    let secret = new_token(TokenKind::of(&old.owner));
    let (token, revoked) = store
        .accounts()
        .rotate_token(id, &hash_token(&secret), !keep_old)?;
    Ok((token, secret, revoked))
}

fn check_token_count(
    store: &Store,
    owner: &TokenOwner,
    max_tokens: usize,
) -> Result<(), AccountError> {
    let held = store.accounts().tokens(Some(owner))?.len();
    if held >= max_tokens {
        return Err(AccountError::TooManyTokens {
            owner: owner.to_string(),
            max: max_tokens,
        });
    }
    Ok(())
}

/// Why an account or token could not be created or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The id or login is taken.
    #[error("{what} {name:?} already exists")]
    Exists {
        /// "project" or "user".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The id or login is not allowed.
    #[error("invalid {what} name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'")]
    InvalidName {
        /// "project" or "user".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A project, user or token named in the request does not exist.
    #[error("no {what} {name:?}")]
    NotFound {
        /// "project", "user" or "token".
        what: &'static str,
        /// The name or id.
        name: String,
    },
    /// The owner holds as many tokens as allowed.
    #[error("{owner} holds {max} tokens, the most allowed: revoke one first")]
    TooManyTokens {
        /// The project or user.
        owner: String,
        /// The limit.
        max: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] omegi_store::Error),
}

/// Project ids and logins appear in URLs: keep them to a safe alphabet.
fn check_account_name(what: &'static str, name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::InvalidName {
            what,
            name: name.chars().take(64).collect(),
        })
    }
}

/// Every start: creates the project `default` when there is no project and
/// the user `admin` (an admin) when there is no user, and saves the new
/// tokens in `<data>/credentials.json` (keeping what the file already had).
/// A store without any admin (data from before there were admins, when
/// every user could create accounts) makes every user an admin. What
/// opening the store migrated from before memberships
/// ([`Accounts::take_migration`](omegi_store::Accounts::take_migration))
/// is logged, once. Returns the credentials created now, `None` when
/// nothing was created.
pub fn bootstrap(store: &Store, data_dir: &Path) -> Result<Option<Credentials>, CredentialsError> {
    let mut created = Credentials::default();
    if store.accounts().projects()?.is_empty() {
        let (project, token) = create_project(store, DEFAULT_PROJECT)?;
        created.project = Some(NamedToken {
            name: project.id,
            token,
        });
    }
    if store.accounts().users()?.is_empty() {
        let (user, token) = create_user(store, ADMIN_USER, true, &[])?;
        created.user = Some(NamedToken {
            name: user.login,
            token,
        });
    }
    if store.accounts().admins()?.is_empty() {
        for user in store.accounts().users()? {
            store.accounts().set_admin(&user.login, true)?;
        }
        store.flush()?;
    }
    if let Some(migration) = store.accounts().take_migration()? {
        tracing::warn!("{migration}");
        store.flush()?;
    }
    if created.project.is_none() && created.user.is_none() {
        return Ok(None);
    }
    let mut saved = read_credentials(data_dir)?.unwrap_or_default();
    if created.project.is_some() {
        saved.project.clone_from(&created.project);
    }
    if created.user.is_some() {
        saved.user.clone_from(&created.user);
    }
    write_credentials(data_dir, &saved)?;
    store.flush()?;
    Ok(Some(created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_hashes_are_stable() {
        let a = new_token(TokenKind::Ingest);
        let b = new_token(TokenKind::Ingest);
        assert_ne!(a, b);
        assert!(a.starts_with("omegi_i_") && a.len() == 8 + 64);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(
            hash_token("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn bootstrap_creates_once_and_saves_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::temporary().unwrap();
        let created = bootstrap(&store, dir.path()).unwrap().expect("first start");
        let project = created.project.clone().unwrap();
        let user = created.user.clone().unwrap();
        assert_eq!(project.name, DEFAULT_PROJECT);
        assert_eq!(user.name, ADMIN_USER);
        assert_eq!(read_credentials(dir.path()).unwrap(), Some(created));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(credentials_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only hashes are stored.
        let stored = store.accounts().tokens(None).unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|t| t.label == FIRST_TOKEN_LABEL));
        assert_eq!(
            store
                .accounts()
                .token_by_hash(&hash_token(&project.token))
                .unwrap()
                .map(|t| t.owner),
            Some(TokenOwner::Project(DEFAULT_PROJECT.into()))
        );
        assert!(bootstrap(&store, dir.path()).unwrap().is_none());

        let auth = Authenticator::new(store.clone());
        assert_eq!(
            auth.authenticate(&project.token).unwrap(),
            Some(Principal::Project(DEFAULT_PROJECT.into()))
        );
        assert_eq!(
            auth.authenticate(&user.token).unwrap(),
            Some(Principal::User(ADMIN_USER.into()))
        );
        assert_eq!(auth.authenticate("nope").unwrap(), None);
        // A project created later is found at once.
        let (_, token) = create_project(&store, "shop").unwrap();
        assert_eq!(
            auth.authenticate(&token).unwrap(),
            Some(Principal::Project("shop".into()))
        );
        assert!(matches!(
            create_project(&store, "shop"),
            Err(AccountError::Exists { .. })
        ));
        assert!(matches!(
            create_user(&store, "bad name", false, &[]),
            Err(AccountError::InvalidName { .. })
        ));
        // The first user is the admin; later ones are admins only if asked.
        assert_eq!(store.accounts().admins().unwrap(), [ADMIN_USER]);
        create_user(&store, "kim", false, &["shop".into()]).unwrap();
        create_user(&store, "lee", true, &[]).unwrap();
        assert_eq!(
            store.accounts().user("kim").unwrap().unwrap().projects,
            ["shop"]
        );
        assert!(matches!(
            create_user(&store, "ann", false, &["nope".into()]),
            Err(AccountError::NotFound { .. })
        ));
        assert!(store.accounts().user("ann").unwrap().is_none());
        assert_eq!(store.accounts().admins().unwrap(), [ADMIN_USER, "lee"]);
        assert!(bootstrap(&store, dir.path()).unwrap().is_none());
        assert!(!store.accounts().is_admin("kim").unwrap());
    }

    #[test]
    fn tokens_are_issued_rotated_and_bounded() {
        let store = Store::temporary().unwrap();
        let (_, first) = create_project(&store, "shop").unwrap();
        let auth = Authenticator::new(store.clone());
        let shop = || Some(Principal::Project("shop".into()));
        let (gateway, secret) =
            issue_token(&store, TokenOwner::Project("shop".into()), "gateway", 3).unwrap();
        assert!(secret.starts_with("omegi_i_"));
        assert_eq!(auth.authenticate(&secret).unwrap(), shop());
        assert_eq!(auth.authenticate(&first).unwrap(), shop());
        // The third token fills the budget; rotating while keeping the old
        // one would exceed it, replacing it does not.
        issue_token(&store, TokenOwner::Project("shop".into()), "payment", 3).unwrap();
        assert!(matches!(
            issue_token(&store, TokenOwner::Project("shop".into()), "more", 3),
            Err(AccountError::TooManyTokens { max: 3, .. })
        ));
        assert!(matches!(
            rotate_token(&store, &gateway.id, true, 3),
            Err(AccountError::TooManyTokens { .. })
        ));
        let (new, new_secret, revoked) = rotate_token(&store, &gateway.id, false, 3).unwrap();
        assert_eq!(revoked.map(|t| t.id), Some(gateway.id.clone()));
        assert_eq!(new.label, "gateway");
        assert_eq!(auth.authenticate(&secret).unwrap(), None);
        assert_eq!(auth.authenticate(&new_secret).unwrap(), shop());
        assert!(matches!(
            rotate_token(&store, &gateway.id, false, 3),
            Err(AccountError::NotFound { what: "token", .. })
        ));
        // Using a token records when, coarsely.
        let used = store.accounts().token(&new.id).unwrap().unwrap();
        assert!(used.last_used_ns.is_some());
    }

    #[test]
    fn a_store_from_before_admins_makes_every_user_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::temporary().unwrap();
        create_project(&store, DEFAULT_PROJECT).unwrap();
        for login in ["admin", "kim"] {
            store.accounts().put_user(&User::new(login)).unwrap();
        }
        assert!(store.accounts().admins().unwrap().is_empty());
        assert!(bootstrap(&store, dir.path()).unwrap().is_none());
        assert_eq!(store.accounts().admins().unwrap(), ["admin", "kim"]);
    }
}
