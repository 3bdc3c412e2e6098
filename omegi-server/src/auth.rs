//! Tokens and who holds them.
//!
//! Projects have *ingest tokens* (sent by services to `/v1/traces` and
//! `/v1/logs`), users have *API tokens* (for `/api/`). Both travel as
//! `Authorization: Bearer <token>`. Only the SHA-256 of a token is stored
//! (`sha256:<hex>` in [`Project::token_hash`] and [`User::token_hash`]); the
//! token itself is shown once, when it is created.
//!
//! On first start [`bootstrap`] creates the project `default` and the user
//! `admin` and saves their tokens in `<data>/credentials.json` (mode 0600),
//! where the CLI on the same machine finds them.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use omegi_store::{Project, Store, User};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The name of the credentials file in the data directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// The project created on first start.
pub const DEFAULT_PROJECT: &str = "default";

/// The user created on first start.
pub const ADMIN_USER: &str = "admin";

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A project's ingest token (`omegi_i_…`).
    Ingest,
    /// A user's API token (`omegi_u_…`).
    User,
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
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
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

/// Checks tokens against the hashes in the store, with a cache of the
/// hashes seen so far (refreshed from the store on a miss).
#[derive(Debug)]
pub struct Authenticator {
    store: Store,
    cache: RwLock<HashMap<String, Principal>>,
}

impl Authenticator {
    /// An authenticator over the projects and users of `store`.
    pub fn new(store: Store) -> Self {
        Authenticator {
            store,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Who `token` belongs to, or `None` for an unknown token.
    pub fn authenticate(&self, token: &str) -> Result<Option<Principal>, omegi_store::Error> {
        let hash = hash_token(token);
        if let Some(p) = self.read_cache().get(&hash) {
            return Ok(Some(p.clone()));
        }
        let fresh = self.load()?;
        let found = fresh.get(&hash).cloned();
        *self
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(found)
    }

    /// Forgets the cached hashes (after a token changed).
    pub fn invalidate(&self) {
        self.cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Principal>> {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn load(&self) -> Result<HashMap<String, Principal>, omegi_store::Error> {
        let mut map = HashMap::new();
        for project in self.store.projects()? {
            if let Some(hash) = project.token_hash {
                map.insert(hash, Principal::Project(project.id));
            }
        }
        for user in self.store.users()? {
            if let Some(hash) = user.token_hash {
                map.insert(hash, Principal::User(user.login));
            }
        }
        Ok(map)
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
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{path}: {source}")]
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

/// Creates a project with a fresh ingest token; returns the project and
/// the token. Fails with [`AccountError::Exists`] if the id is taken.
pub fn create_project(store: &Store, id: &str) -> Result<(Project, String), AccountError> {
    check_account_name("project", id)?;
    if store.project(id)?.is_some() {
        return Err(AccountError::Exists {
            what: "project",
            name: id.to_owned(),
        });
    }
    let token = new_token(TokenKind::Ingest);
    let mut project = Project::new(id);
    project.token_hash = Some(hash_token(&token));
    store.put_project(&project)?;
    Ok((project, token))
}

/// Creates a user with a fresh API token, an admin if `admin`; returns the
/// user and the token. Fails with [`AccountError::Exists`] if the login is
/// taken.
pub fn create_user(
    store: &Store,
    login: &str,
    admin: bool,
) -> Result<(User, String), AccountError> {
    check_account_name("user", login)?;
    if store.user(login)?.is_some() {
        return Err(AccountError::Exists {
            what: "user",
            name: login.to_owned(),
        });
    }
    let token = new_token(TokenKind::User);
    let mut user = User::new(login);
    user.token_hash = Some(hash_token(&token));
    store.put_user(&user)?;
    if admin {
        store.set_admin(login, true)?;
    }
    Ok((user, token))
}

/// Why a project or user could not be created.
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
/// every user could create accounts) makes every user an admin. Returns the
/// credentials created now, `None` when nothing was created.
pub fn bootstrap(store: &Store, data_dir: &Path) -> Result<Option<Credentials>, CredentialsError> {
    let mut created = Credentials::default();
    if store.projects()?.is_empty() {
        let (project, token) = create_project(store, DEFAULT_PROJECT)?;
        created.project = Some(NamedToken {
            name: project.id,
            token,
        });
    }
    if store.users()?.is_empty() {
        let (user, token) = create_user(store, ADMIN_USER, true)?;
        created.user = Some(NamedToken {
            name: user.login,
            token,
        });
    }
    if store.admins()?.is_empty() {
        for user in store.users()? {
            store.set_admin(&user.login, true)?;
        }
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
        let stored = store.project(DEFAULT_PROJECT).unwrap().unwrap();
        assert_eq!(stored.token_hash, Some(hash_token(&project.token)));
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
        // A project created later is found on a cache miss.
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
            create_user(&store, "bad name", false),
            Err(AccountError::InvalidName { .. })
        ));
        // The first user is the admin; later ones are admins only if asked.
        assert_eq!(store.admins().unwrap(), [ADMIN_USER]);
        create_user(&store, "kim", false).unwrap();
        create_user(&store, "lee", true).unwrap();
        assert_eq!(store.admins().unwrap(), [ADMIN_USER, "lee"]);
        assert!(bootstrap(&store, dir.path()).unwrap().is_none());
        assert!(!store.is_admin("kim").unwrap());
    }

    #[test]
    fn a_store_from_before_admins_makes_every_user_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::temporary().unwrap();
        create_project(&store, DEFAULT_PROJECT).unwrap();
        for login in ["admin", "kim"] {
            store.put_user(&User::new(login)).unwrap();
        }
        assert!(store.admins().unwrap().is_empty());
        assert!(bootstrap(&store, dir.path()).unwrap().is_none());
        assert_eq!(store.admins().unwrap(), ["admin", "kim"]);
    }
}
