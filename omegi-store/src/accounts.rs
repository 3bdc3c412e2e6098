//! Accounts: projects, users, memberships and tokens.
//!
//! - A [`Project`] is a group of services whose errors are tracked
//!   together; a [`User`] is a person. Users are *members* of projects
//!   ([`User::projects`], changed with [`Accounts::add_member`] and
//!   [`Accounts::remove_member`]); admins ([`Accounts::set_admin`]) belong to every
//!   project. The server lets a user read and change only the projects
//!   they belong to.
//! - A [`Token`] belongs to a project (an ingest token) or to a user (an API
//!   token); each has its own id and label, so that a project can have one
//!   token per service and a user several. Only the token's hash is stored,
//!   keyed by that hash: finding who a token belongs to is one point read
//!   ([`Accounts::token_by_hash`]), and a revoked token ([`Accounts::revoke_token`])
//!   is gone for every reader of the store at once.
//!
//! # Data from before memberships and token ids
//!
//! Opening a store whose accounts predate memberships migrates them once,
//! in one transaction: every user who is not an admin becomes a member of
//! every project (they could read every project before, so nobody loses
//! access silently), and each project's and user's single token becomes a
//! [`Token`] with an id. [`Accounts::take_migration`] tells what was
//! done, once, so that the server can say so in its log.

use crate::error::Db;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::codec::{decode, encode};
use crate::error::{Error, Result};
use crate::keys::{check_name, Key};
use crate::{Core, Trees};
use std::sync::Arc;

/// A project: a group of services whose errors are tracked together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Short id used in URLs and in ingest (`shop`, `payments-prod`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// When it was created, ns.
    pub created_ns: u64,
}

impl Project {
    /// A project named after its id, created now.
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        Project {
            name: id.clone(),
            id,
            created_ns: crate::now_ns(),
        }
    }
}

/// A person who uses Omegi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique login.
    pub login: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Projects the user is a member of, sorted (admins belong to every
    /// project whatever this says).
    pub projects: Vec<String>,
    /// When the user was created, ns.
    pub created_ns: u64,
}

impl User {
    /// A user with only a login, created now, member of no project.
    pub fn new(login: impl Into<String>) -> Self {
        let login = login.into();
        User {
            name: login.clone(),
            login,
            email: None,
            projects: Vec::new(),
            created_ns: crate::now_ns(),
        }
    }

    /// Whether the user is a member of `project` (not counting the
    /// membership an admin has in every project).
    pub fn is_member(&self, project: &str) -> bool {
        self.projects.iter().any(|p| p == project)
    }
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenOwner {
    /// A project's ingest token, by project id: it may send data.
    Project(String),
    /// A user's API token, by login: it may use the API as that user.
    User(String),
}

impl TokenOwner {
    /// The project id or login.
    pub fn name(&self) -> &str {
        match self {
            TokenOwner::Project(id) => id,
            TokenOwner::User(login) => login,
        }
    }
}

impl std::fmt::Display for TokenOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenOwner::Project(id) => write!(f, "project {id}"),
            TokenOwner::User(login) => write!(f, "user {login}"),
        }
    }
}

/// A token as stored: its hash, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Short id that names the token in lists and when revoking it; not a
    /// secret.
    pub id: String,
    /// The token's hash, as the caller computed it (`sha256:<hex>` in the
    /// server); the key it is found by.
    pub hash: String,
    /// Who it belongs to.
    pub owner: TokenOwner,
    /// What it is for (a service name, a laptop, "CI").
    pub label: String,
    /// When it was created, ns.
    pub created_ns: u64,
    /// When it was last used, ns, as recorded by [`Accounts::touch_token`].
    pub last_used_ns: Option<u64>,
}

impl Token {
    /// A new token of `owner` with this hash and label, created now, with a
    /// new id; refused when the label is too long or holds a control
    /// character, or the hash is empty. What every backend stores.
    pub(crate) fn checked(owner: TokenOwner, hash: &str, label: &str) -> Result<Token> {
        check_label(label)?;
        if hash.is_empty() {
            return Err(Error::InvalidName {
                what: "token hash",
                name: String::new(),
                reason: "must not be empty",
            });
        }
        Ok(Token {
            id: new_token_id(),
            hash: hash.to_owned(),
            owner,
            label: label.to_owned(),
            created_ns: crate::now_ns(),
            last_used_ns: None,
        })
    }

    /// Whether a use at `now_ns` is to be recorded: not when the last one
    /// recorded is less than `resolution_ns` before (see
    /// [`Accounts::touch_token`]).
    pub(crate) fn use_to_record(&self, now_ns: u64, resolution_ns: u64) -> bool {
        self.last_used_ns
            .is_none_or(|last| now_ns.saturating_sub(last) >= resolution_ns)
    }
}

/// Tokens in the order [`Accounts::tokens`] lists them: by owner, then
/// oldest first.
pub(crate) fn sort_tokens(tokens: &mut [Token]) {
    tokens.sort_by(|a, b| (&a.owner, a.created_ns, &a.id).cmp(&(&b.owner, b.created_ns, &b.id)));
}

/// The longest token label, in characters.
pub const MAX_TOKEN_LABEL_CHARS: usize = 128;

/// What opening a store did to accounts from before memberships and token
/// ids (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccountsMigration {
    /// Users who are not admins and became members of every project.
    pub members: Vec<String>,
    /// The projects they became members of.
    pub projects: Vec<String>,
    /// Tokens that got an id.
    pub tokens: usize,
}

impl std::fmt::Display for AccountsMigration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accounts from before memberships: {} user(s) who are not admins ({}) became \
             members of every project ({}), as they could read every project before; \
             remove memberships with `omegi project remove-member`. {} token(s) got ids \
             (`omegi token list`)",
            self.members.len(),
            self.members.join(", "),
            self.projects.join(", "),
            self.tokens
        )
    }
}

/// The accounts layout version: 1 has memberships and tokens with ids.
const ACCOUNTS_VERSION: u32 = 1;
const META_VERSION: &[u8] = b"version";
const META_MIGRATION: &[u8] = b"migration";

fn key(what: &'static str, name: &str) -> Result<Key> {
    check_name(what, name)?;
    Key::new().str(what, name)
}

fn user_key(login: &str) -> Result<Key> {
    key("user", login)
}

fn project_key(id: &str) -> Result<Key> {
    key("project", id)
}

/// A transaction's abort carrying the store's error.
fn abort<T>(e: Error) -> std::result::Result<T, ConflictableTransactionError<Error>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_result<T>(r: std::result::Result<T, TransactionError<Error>>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(Error::database(e)),
    }
}

fn tx_decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> std::result::Result<T, ConflictableTransactionError<Error>> {
    decode(tree, bytes).or_else(abort)
}

fn tx_encode<T: Serialize>(
    value: &T,
) -> std::result::Result<Vec<u8>, ConflictableTransactionError<Error>> {
    encode(value).or_else(abort)
}

/// A new token id: 16 hex digits.
pub(crate) fn new_token_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(16);
    id
}

pub(crate) fn check_label(label: &str) -> Result<()> {
    if label.chars().count() > MAX_TOKEN_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(Error::InvalidName {
            what: "token label",
            name: label.chars().take(64).collect(),
            reason: "longer than 128 characters or contains a control character",
        });
    }
    Ok(())
}

/// The embedded store's accounts (see [`Store::accounts`](crate::Store::accounts)).
pub(crate) struct SledAccounts {
    pub(crate) core: Arc<Core>,
}

impl SledAccounts {
    fn core(&self) -> &Core {
        &self.core
    }

    fn count_reads(&self, n: u64) {
        self.core().account_reads.fetch_add(n, Ordering::Relaxed);
    }

    fn change_membership(&self, project: &str, login: &str, member: bool) -> Result<bool> {
        let t = &self.core().t;
        let pkey = project_key(project)?;
        let ukey = user_key(login)?;
        let r = (&t.projects, &t.users).transaction(|(projects, users)| {
            if projects.get(pkey.as_ref())?.is_none() {
                return abort(Error::ProjectNotFound {
                    id: project.to_owned(),
                });
            }
            let Some(v) = users.get(ukey.as_ref())? else {
                return abort(Error::UserNotFound {
                    login: login.to_owned(),
                });
            };
            let mut user: User = tx_decode("users", &v)?;
            let was = user.is_member(project);
            if was == member {
                return Ok(false);
            }
            if member {
                user.projects.push(project.to_owned());
                user.projects.sort();
            } else {
                user.projects.retain(|p| p != project);
            }
            users.insert(ukey.as_ref(), tx_encode(&user)?)?;
            Ok(true)
        });
        tx_result(r)
    }

    fn replace_token(
        &self,
        revoke: Option<&str>,
        owner: TokenOwner,
        hash: &str,
        label: &str,
    ) -> Result<(Token, Option<Token>)> {
        let mut token = Token::checked(owner, hash, label)?;
        let t = &self.core().t;
        let owner_key = match &token.owner {
            TokenOwner::Project(id) => project_key(id)?,
            TokenOwner::User(login) => user_key(login)?,
        };
        loop {
            let r = (&t.projects, &t.users, &t.tokens, &t.token_ids).transaction(
                |(projects, users, token_tree, ids)| {
                    let owner_tree: &TransactionalTree = match &token.owner {
                        TokenOwner::Project(_) => projects,
                        TokenOwner::User(_) => users,
                    };
                    if owner_tree.get(owner_key.as_ref())?.is_none() {
                        return abort(match &token.owner {
                            TokenOwner::Project(id) => Error::ProjectNotFound { id: id.clone() },
                            TokenOwner::User(login) => Error::UserNotFound {
                                login: login.clone(),
                            },
                        });
                    }
                    if ids.get(token.id.as_bytes())?.is_some() {
                        // Try again with another id.
                        return Ok(None);
                    }
                    if token_tree.get(token.hash.as_bytes())?.is_some() {
                        return abort(Error::TokenExists);
                    }
                    let mut revoked = None;
                    if let Some(old_id) = revoke {
                        let Some(old_hash) = ids.remove(old_id.as_bytes())? else {
                            return abort(Error::TokenNotFound {
                                id: old_id.to_owned(),
                            });
                        };
                        if let Some(v) = token_tree.remove(old_hash)? {
                            revoked = Some(tx_decode::<Token>("tokens", &v)?);
                        }
                    }
                    token_tree.insert(token.hash.as_bytes(), tx_encode(&token)?)?;
                    ids.insert(token.id.as_bytes(), token.hash.as_bytes())?;
                    Ok(Some(revoked))
                },
            );
            match tx_result(r)? {
                Some(revoked) => return Ok((token, revoked)),
                None => token.id = new_token_id(),
            }
        }
    }
}

/// Makes every user who is not an admin a member of every project, as
/// accounts from before memberships need (see the module docs).
pub(crate) fn grant_legacy_memberships(accounts: &dyn Accounts) -> Result<AccountsMigration> {
    let projects: Vec<String> = accounts.projects()?.into_iter().map(|p| p.id).collect();
    let mut report = AccountsMigration {
        projects: projects.clone(),
        ..AccountsMigration::default()
    };
    for mut user in accounts.users()? {
        if accounts.is_admin(&user.login)? {
            continue;
        }
        user.projects.extend(projects.iter().cloned());
        accounts.put_user(&user)?;
        report.members.push(user.login);
    }
    Ok(report)
}

/// Projects, users, memberships and API tokens: the same behaviour on every
/// backend (the embedded store's [`Store::accounts`](crate::Store::accounts), and PostgreSQL's
/// [`postgres::Database::accounts`](crate::postgres::Database::accounts)).
pub trait Accounts: Send + Sync {
    /// Account records read since the store was opened: projects, users,
    /// admin marks and tokens. A diagnostic: authenticating a request costs
    /// one read ([`Accounts::token_by_hash`]), whether the token exists or not.
    fn reads(&self) -> u64;

    /// Creates or replaces a project.
    fn put_project(&self, project: &Project) -> Result<()>;

    /// One project.
    fn project(&self, id: &str) -> Result<Option<Project>>;

    /// All projects, by id.
    fn projects(&self) -> Result<Vec<Project>>;

    /// Removes a project's record, its tokens and its memberships (its
    /// spans and issues stay); returns whether it existed.
    fn remove_project(&self, id: &str) -> Result<bool>;

    /// Creates or replaces a user (memberships included: `projects` is
    /// stored sorted and without repeats).
    fn put_user(&self, user: &User) -> Result<()>;

    /// One user.
    fn user(&self, login: &str) -> Result<Option<User>>;

    /// All users, by login.
    fn users(&self) -> Result<Vec<User>>;

    /// Removes a user, their admin role and their tokens; returns whether
    /// the user existed.
    fn remove_user(&self, login: &str) -> Result<bool>;

    /// Makes `login` an admin, or no longer one. The user must exist.
    fn set_admin(&self, login: &str, admin: bool) -> Result<()>;

    /// Whether `login` is an admin.
    fn is_admin(&self, login: &str) -> Result<bool>;

    /// The admins' logins, sorted.
    fn admins(&self) -> Result<Vec<String>>;

    /// Makes `login` a member of `project`; returns whether they were not
    /// one already. Fails with [`Error::ProjectNotFound`] or
    /// [`Error::UserNotFound`].
    fn add_member(&self, project: &str, login: &str) -> Result<bool>;

    /// Ends `login`'s membership of `project`; returns whether they were a
    /// member. An admin still belongs to every project.
    fn remove_member(&self, project: &str, login: &str) -> Result<bool>;

    /// The logins of the members of `project`, sorted (admins who are not
    /// members by name are not listed).
    fn members(&self, project: &str) -> Result<Vec<String>>;

    /// Stores a new token of `owner` with this hash and label; returns it
    /// with its new id. The owner must exist ([`Error::ProjectNotFound`],
    /// [`Error::UserNotFound`]); a hash that is stored already is
    /// [`Error::TokenExists`].
    fn add_token(&self, owner: TokenOwner, hash: &str, label: &str) -> Result<Token>;

    /// Stores a new token like [`Accounts::add_token`] and, in the same
    /// transaction, revokes the token `old_id` if given: a rotation. Returns
    /// the new token and the revoked one.
    fn rotate_token(
        &self,
        old_id: &str,
        hash: &str,
        revoke_old: bool,
    ) -> Result<(Token, Option<Token>)>;

    /// The token with this hash: one point read, whether it exists or not.
    fn token_by_hash(&self, hash: &str) -> Result<Option<Token>>;

    /// The token with this id.
    fn token(&self, id: &str) -> Result<Option<Token>>;

    /// The tokens of `owner`, or all tokens; by owner, then oldest first.
    fn tokens(&self, owner: Option<&TokenOwner>) -> Result<Vec<Token>>;

    /// Revokes a token: from now on nobody finds it. Returns it, or `None`
    /// when no token has this id.
    fn revoke_token(&self, id: &str) -> Result<Option<Token>>;

    /// Records that `token` (as read by [`Accounts::token_by_hash`]) was used
    /// at `now_ns`, unless its last use was recorded less than
    /// `resolution_ns` before: at most one write per token per
    /// `resolution_ns`. A token revoked meanwhile stays revoked.
    fn touch_token(&self, token: &Token, now_ns: u64, resolution_ns: u64) -> Result<()>;

    /// What opening this store migrated (see the module docs), once: the
    /// report is removed by this call. `None` when nothing was migrated or
    /// it was already taken.
    fn take_migration(&self) -> Result<Option<AccountsMigration>>;
}

impl Accounts for SledAccounts {
    fn reads(&self) -> u64 {
        self.core().account_reads.load(Ordering::Relaxed)
    }

    fn put_project(&self, project: &Project) -> Result<()> {
        self.core()
            .t
            .projects
            .insert(project_key(&project.id)?, encode(project)?)
            .db()?;
        Ok(())
    }

    fn project(&self, id: &str) -> Result<Option<Project>> {
        self.count_reads(1);
        match self.core().t.projects.get(project_key(id)?).db()? {
            Some(v) => Ok(Some(decode("projects", &v)?)),
            None => Ok(None),
        }
    }

    fn projects(&self) -> Result<Vec<Project>> {
        let mut out = Vec::new();
        for item in self.core().t.projects.iter() {
            let (_, v) = item.db()?;
            out.push(decode::<Project>("projects", &v)?);
        }
        self.count_reads(out.len() as u64);
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn remove_project(&self, id: &str) -> Result<bool> {
        let t = &self.core().t;
        let pkey = project_key(id)?;
        let owner = TokenOwner::Project(id.to_owned());
        let tokens = self.tokens(Some(&owner))?;
        let members = self.members(id)?;
        let r = (&t.projects, &t.users, &t.tokens, &t.token_ids).transaction(
            |(projects, users, token_tree, ids)| {
                let existed = projects.remove(pkey.as_ref())?.is_some();
                for token in &tokens {
                    token_tree.remove(token.hash.as_bytes())?;
                    ids.remove(token.id.as_bytes())?;
                }
                for login in &members {
                    let ukey = user_key(login).or_else(abort)?;
                    if let Some(v) = users.get(ukey.as_ref())? {
                        let mut user: User = tx_decode("users", &v)?;
                        user.projects.retain(|p| p != id);
                        users.insert(ukey.as_ref(), tx_encode(&user)?)?;
                    }
                }
                Ok(existed)
            },
        );
        tx_result(r)
    }

    fn put_user(&self, user: &User) -> Result<()> {
        let mut user = user.clone();
        user.projects.sort();
        user.projects.dedup();
        self.core()
            .t
            .users
            .insert(user_key(&user.login)?, encode(&user)?)
            .db()?;
        Ok(())
    }

    fn user(&self, login: &str) -> Result<Option<User>> {
        self.count_reads(1);
        match self.core().t.users.get(user_key(login)?).db()? {
            Some(v) => Ok(Some(decode("users", &v)?)),
            None => Ok(None),
        }
    }

    fn users(&self) -> Result<Vec<User>> {
        let mut out = Vec::new();
        for item in self.core().t.users.iter() {
            let (_, v) = item.db()?;
            out.push(decode::<User>("users", &v)?);
        }
        self.count_reads(out.len() as u64);
        out.sort_by(|a, b| a.login.cmp(&b.login));
        Ok(out)
    }

    fn remove_user(&self, login: &str) -> Result<bool> {
        let t = &self.core().t;
        let ukey = user_key(login)?;
        let tokens = self.tokens(Some(&TokenOwner::User(login.to_owned())))?;
        let r = (&t.users, &t.admins, &t.tokens, &t.token_ids).transaction(
            |(users, admins, token_tree, ids)| {
                admins.remove(ukey.as_ref())?;
                for token in &tokens {
                    token_tree.remove(token.hash.as_bytes())?;
                    ids.remove(token.id.as_bytes())?;
                }
                Ok(users.remove(ukey.as_ref())?.is_some())
            },
        );
        tx_result(r)
    }

    fn set_admin(&self, login: &str, admin: bool) -> Result<()> {
        let t = &self.core().t;
        let key = user_key(login)?;
        if admin {
            if !t.users.contains_key(&key).db()? {
                return Err(Error::UserNotFound {
                    login: login.to_owned(),
                });
            }
            t.admins.insert(key, &[]).db()?;
        } else {
            t.admins.remove(key).db()?;
        }
        Ok(())
    }

    fn is_admin(&self, login: &str) -> Result<bool> {
        self.count_reads(1);
        self.core().t.admins.contains_key(user_key(login)?).db()
    }

    fn admins(&self) -> Result<Vec<String>> {
        let t = &self.core().t;
        let mut out = Vec::new();
        for item in t.admins.iter() {
            let (key, _) = item.db()?;
            if let Some(v) = t.users.get(key).db()? {
                out.push(decode::<User>("users", &v)?.login);
            }
        }
        self.count_reads(out.len() as u64);
        out.sort();
        Ok(out)
    }

    fn add_member(&self, project: &str, login: &str) -> Result<bool> {
        self.change_membership(project, login, true)
    }

    fn remove_member(&self, project: &str, login: &str) -> Result<bool> {
        self.change_membership(project, login, false)
    }

    fn members(&self, project: &str) -> Result<Vec<String>> {
        Ok(self
            .users()?
            .into_iter()
            .filter(|u| u.is_member(project))
            .map(|u| u.login)
            .collect())
    }

    fn add_token(&self, owner: TokenOwner, hash: &str, label: &str) -> Result<Token> {
        self.replace_token(None, owner, hash, label)
            .map(|(token, _)| token)
    }

    fn rotate_token(
        &self,
        old_id: &str,
        hash: &str,
        revoke_old: bool,
    ) -> Result<(Token, Option<Token>)> {
        let old = self.token(old_id)?.ok_or_else(|| Error::TokenNotFound {
            id: old_id.to_owned(),
        })?;
        let revoke = revoke_old.then_some(old_id);
        self.replace_token(revoke, old.owner, hash, &old.label)
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<Token>> {
        self.count_reads(1);
        match self.core().t.tokens.get(hash.as_bytes()).db()? {
            Some(v) => Ok(Some(decode("tokens", &v)?)),
            None => Ok(None),
        }
    }

    fn token(&self, id: &str) -> Result<Option<Token>> {
        self.count_reads(1);
        let t = &self.core().t;
        let Some(hash) = t.token_ids.get(id.as_bytes()).db()? else {
            return Ok(None);
        };
        match t.tokens.get(hash).db()? {
            Some(v) => Ok(Some(decode("tokens", &v)?)),
            None => Ok(None),
        }
    }

    fn tokens(&self, owner: Option<&TokenOwner>) -> Result<Vec<Token>> {
        let mut out = Vec::new();
        for item in self.core().t.tokens.iter() {
            let (_, v) = item.db()?;
            let token: Token = decode("tokens", &v)?;
            if owner.is_none_or(|o| *o == token.owner) {
                out.push(token);
            }
        }
        self.count_reads(out.len() as u64);
        sort_tokens(&mut out);
        Ok(out)
    }

    fn revoke_token(&self, id: &str) -> Result<Option<Token>> {
        let t = &self.core().t;
        let r = (&t.tokens, &t.token_ids).transaction(|(token_tree, ids)| {
            let Some(hash) = ids.remove(id.as_bytes())? else {
                return Ok(None);
            };
            match token_tree.remove(hash)? {
                Some(v) => Ok(Some(tx_decode::<Token>("tokens", &v)?)),
                None => Ok(None),
            }
        });
        tx_result(r)
    }

    fn touch_token(&self, token: &Token, now_ns: u64, resolution_ns: u64) -> Result<()> {
        if !token.use_to_record(now_ns, resolution_ns) {
            return Ok(());
        }
        let old = encode(token)?;
        let mut used = token.clone();
        used.last_used_ns = Some(now_ns);
        // Compare-and-swap: if the token was revoked or touched meanwhile,
        // leave it as it is.
        let _ = self
            .core()
            .t
            .tokens
            .compare_and_swap(token.hash.as_bytes(), Some(old), Some(encode(&used)?))
            .db()?;
        Ok(())
    }

    fn take_migration(&self) -> Result<Option<AccountsMigration>> {
        let meta = &self.core().t.accounts_meta;
        match meta.remove(META_MIGRATION).db()? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| Error::corrupt("accounts_meta", e.to_string())),
        }
    }
}

/// A project as stored before token ids.
#[derive(Deserialize)]
struct LegacyProject {
    id: String,
    name: String,
    created_ns: u64,
    token_hash: Option<String>,
}

/// A user as stored before token ids.
#[derive(Deserialize)]
struct LegacyUser {
    login: String,
    name: String,
    email: Option<String>,
    projects: Vec<String>,
    created_ns: u64,
    token_hash: Option<String>,
}

/// A token that came with a project or user from before token ids.
pub(crate) fn legacy_token(owner: TokenOwner, hash: String, created_ns: u64) -> Token {
    let label = match owner {
        TokenOwner::Project(_) => "ingest",
        TokenOwner::User(_) => "api",
    };
    Token {
        id: new_token_id(),
        hash,
        owner,
        label: label.to_owned(),
        created_ns,
        last_used_ns: None,
    }
}

/// Brings accounts from before memberships and token ids to the current
/// layout, in one transaction (see the module docs). Runs on every open;
/// once done, it costs one read.
pub(crate) fn migrate(t: &Trees) -> Result<()> {
    if let Some(v) = t.accounts_meta.get(META_VERSION).db()? {
        let bytes: [u8; 4] = v
            .as_ref()
            .try_into()
            .map_err(|_| Error::corrupt("accounts_meta", "version is not 4 bytes"))?;
        if u32::from_be_bytes(bytes) >= ACCOUNTS_VERSION {
            return Ok(());
        }
    }
    let mut projects = Vec::new();
    let mut tokens = Vec::new();
    for item in t.projects.iter() {
        let (k, v) = item.db()?;
        let old: LegacyProject = decode("projects", &v)?;
        if let Some(hash) = old.token_hash {
            tokens.push(legacy_token(
                TokenOwner::Project(old.id.clone()),
                hash,
                old.created_ns,
            ));
        }
        let new = Project {
            id: old.id,
            name: old.name,
            created_ns: old.created_ns,
        };
        projects.push((k, new));
    }
    let project_ids: Vec<String> = projects.iter().map(|(_, p)| p.id.clone()).collect();
    let mut users = Vec::new();
    let mut report = AccountsMigration {
        projects: project_ids.clone(),
        ..AccountsMigration::default()
    };
    for item in t.users.iter() {
        let (k, v) = item.db()?;
        let old: LegacyUser = decode("users", &v)?;
        if let Some(hash) = old.token_hash {
            tokens.push(legacy_token(
                TokenOwner::User(old.login.clone()),
                hash,
                old.created_ns,
            ));
        }
        let mut new = User {
            login: old.login,
            name: old.name,
            email: old.email,
            projects: old.projects,
            created_ns: old.created_ns,
        };
        if !t.admins.contains_key(&k).db()? && !project_ids.is_empty() {
            new.projects.extend(project_ids.iter().cloned());
            new.projects.sort();
            new.projects.dedup();
            report.members.push(new.login.clone());
        }
        users.push((k, new));
    }
    report.tokens = tokens.len();
    let changed = !report.members.is_empty() || report.tokens > 0;
    let report_json = serde_json::to_vec(&report).map_err(|e| Error::Encode(e.to_string()))?;
    let r = (
        &t.projects,
        &t.users,
        &t.tokens,
        &t.token_ids,
        &t.accounts_meta,
    )
        .transaction(|(p, u, tok, ids, meta)| {
            for (k, project) in &projects {
                p.insert(k, tx_encode(project)?)?;
            }
            for (k, user) in &users {
                u.insert(k, tx_encode(user)?)?;
            }
            for token in &tokens {
                tok.insert(token.hash.as_bytes(), tx_encode(token)?)?;
                ids.insert(token.id.as_bytes(), token.hash.as_bytes())?;
            }
            if changed {
                meta.insert(META_MIGRATION, report_json.as_slice())?;
            }
            meta.insert(META_VERSION, &ACCOUNTS_VERSION.to_be_bytes())?;
            Ok(())
        });
    tx_result(r)?;
    t.db.flush().db()?;
    Ok(())
}
