//! Projects and users: plain records. Authentication is built on top of
//! them; each carries a slot for the hash of its API token. Some users are
//! admins: the server lets only them create projects and users.

use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::error::{Error, Result};
use crate::keys::{check_name, Key};
use crate::Store;

/// A project: a group of services whose errors are tracked together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Short id used in URLs and in ingest (`shop`, `payments-prod`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// When it was created, ns.
    pub created_ns: u64,
    /// Hash of the project's ingest token, if it has one.
    pub token_hash: Option<String>,
}

impl Project {
    /// A project named after its id, created now, without a token.
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        Project {
            name: id.clone(),
            id,
            created_ns: crate::now_ns(),
            token_hash: None,
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
    /// Projects the user belongs to.
    pub projects: Vec<String>,
    /// When the user was created, ns.
    pub created_ns: u64,
    /// Hash of the user's API token, if any.
    pub token_hash: Option<String>,
}

impl User {
    /// A user with only a login, created now.
    pub fn new(login: impl Into<String>) -> Self {
        let login = login.into();
        User {
            name: login.clone(),
            login,
            email: None,
            projects: Vec::new(),
            created_ns: crate::now_ns(),
            token_hash: None,
        }
    }
}

fn key(what: &'static str, name: &str) -> Result<Key> {
    check_name(what, name)?;
    Key::new().str(what, name)
}

impl Store {
    /// Creates or replaces a project.
    pub fn put_project(&self, project: &Project) -> Result<()> {
        self.core()
            .t
            .projects
            .insert(key("project", &project.id)?, encode(project)?)?;
        Ok(())
    }

    /// One project.
    pub fn project(&self, id: &str) -> Result<Option<Project>> {
        match self.core().t.projects.get(key("project", id)?)? {
            Some(v) => Ok(Some(decode("projects", &v)?)),
            None => Ok(None),
        }
    }

    /// All projects, by id.
    pub fn projects(&self) -> Result<Vec<Project>> {
        let mut out = Vec::new();
        for item in self.core().t.projects.iter() {
            let (_, v) = item?;
            out.push(decode::<Project>("projects", &v)?);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Removes a project's record (its spans and issues stay); returns
    /// whether it existed.
    pub fn remove_project(&self, id: &str) -> Result<bool> {
        Ok(self
            .core()
            .t
            .projects
            .remove(key("project", id)?)?
            .is_some())
    }

    /// Creates or replaces a user.
    pub fn put_user(&self, user: &User) -> Result<()> {
        self.core()
            .t
            .users
            .insert(key("user", &user.login)?, encode(user)?)?;
        Ok(())
    }

    /// One user.
    pub fn user(&self, login: &str) -> Result<Option<User>> {
        match self.core().t.users.get(key("user", login)?)? {
            Some(v) => Ok(Some(decode("users", &v)?)),
            None => Ok(None),
        }
    }

    /// All users, by login.
    pub fn users(&self) -> Result<Vec<User>> {
        let mut out = Vec::new();
        for item in self.core().t.users.iter() {
            let (_, v) = item?;
            out.push(decode::<User>("users", &v)?);
        }
        out.sort_by(|a, b| a.login.cmp(&b.login));
        Ok(out)
    }

    /// Removes a user (and their admin role); returns whether it existed.
    pub fn remove_user(&self, login: &str) -> Result<bool> {
        let t = &self.core().t;
        let key = key("user", login)?;
        t.admins.remove(&key)?;
        Ok(t.users.remove(key)?.is_some())
    }

    /// Makes `login` an admin, or no longer one. The user must exist.
    pub fn set_admin(&self, login: &str, admin: bool) -> Result<()> {
        let t = &self.core().t;
        let key = key("user", login)?;
        if admin {
            if !t.users.contains_key(&key)? {
                return Err(Error::UserNotFound {
                    login: login.to_owned(),
                });
            }
            t.admins.insert(key, &[])?;
        } else {
            t.admins.remove(key)?;
        }
        Ok(())
    }

    /// Whether `login` is an admin.
    pub fn is_admin(&self, login: &str) -> Result<bool> {
        Ok(self.core().t.admins.contains_key(key("user", login)?)?)
    }

    /// The admins' logins, sorted.
    pub fn admins(&self) -> Result<Vec<String>> {
        let t = &self.core().t;
        let mut out = Vec::new();
        for item in t.admins.iter() {
            let (key, _) = item?;
            if let Some(v) = t.users.get(key)? {
                out.push(decode::<User>("users", &v)?.login);
            }
        }
        out.sort();
        Ok(out)
    }
}
