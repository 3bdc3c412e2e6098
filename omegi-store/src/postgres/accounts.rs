//! [`Accounts`] on PostgreSQL: the tables of migration 1.

use std::sync::atomic::{AtomicU64, Ordering};

use r2d2_postgres::postgres::{GenericClient, Row};

use super::{conn, database, ns_from_sql, ns_to_sql, violated, Pool};
use crate::accounts::{new_token_id, sort_tokens};
use crate::error::{Error, Result};
use crate::keys::check_name;
use crate::{Accounts, AccountsMigration, Project, Token, TokenOwner, User};

/// The accounts of a [`Database`](super::Database).
pub(crate) struct PgAccounts {
    pool: Pool,
    reads: AtomicU64,
}

impl PgAccounts {
    pub(crate) fn new(pool: Pool) -> Self {
        PgAccounts {
            pool,
            reads: AtomicU64::new(0),
        }
    }

    fn count_reads(&self, n: usize) {
        self.reads.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn replace_token(
        &self,
        revoke: Option<&str>,
        owner: TokenOwner,
        hash: &str,
        label: &str,
    ) -> Result<(Token, Option<Token>)> {
        let mut token = Token::checked(owner, hash, label)?;
        check_name(owner_what(&token.owner), token.owner.name())?;
        let mut conn = conn(&self.pool)?;
        loop {
            let mut tx = conn.transaction().map_err(database)?;
            let mut revoked = None;
            if let Some(old_id) = revoke {
                let row = tx
                    .query_opt(
                        &format!("DELETE FROM tokens WHERE id = $1 {TOKEN_RETURNING}"),
                        &[&old_id],
                    )
                    .map_err(database)?;
                match row {
                    Some(row) => revoked = Some(token_of(&row)?),
                    None => {
                        return Err(Error::TokenNotFound {
                            id: old_id.to_owned(),
                        })
                    }
                }
            }
            let (project, login) = owner_columns(&token.owner);
            let inserted = tx.execute(
                "INSERT INTO tokens (id, hash, project, login, label, created_ns)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &token.id,
                    &token.hash,
                    &project,
                    &login,
                    &token.label,
                    &ns_to_sql(token.created_ns)?,
                ],
            );
            match inserted {
                Ok(_) => {
                    tx.commit().map_err(database)?;
                    return Ok((token, revoked));
                }
                Err(e) => match violated(&e) {
                    // Try again with another id.
                    Some("tokens_id") => token.id = new_token_id(),
                    Some("tokens_hash") => return Err(Error::TokenExists),
                    Some("tokens_project" | "tokens_login") => {
                        return Err(owner_not_found(&token.owner))
                    }
                    _ => return Err(database(e)),
                },
            }
        }
    }

    fn change_membership(&self, project: &str, login: &str, member: bool) -> Result<bool> {
        check_name("project", project)?;
        check_name("user", login)?;
        let mut conn = conn(&self.pool)?;
        let mut tx = conn.transaction().map_err(database)?;
        // Both must exist, the project first, as on the embedded store; the
        // user's row is locked so that a concurrent removal waits.
        let project_exists = tx
            .query_opt("SELECT 1 FROM projects WHERE id = $1", &[&project])
            .map_err(database)?
            .is_some();
        if !project_exists {
            return Err(Error::ProjectNotFound {
                id: project.to_owned(),
            });
        }
        let user_exists = tx
            .query_opt("SELECT 1 FROM users WHERE login = $1 FOR UPDATE", &[&login])
            .map_err(database)?
            .is_some();
        if !user_exists {
            return Err(Error::UserNotFound {
                login: login.to_owned(),
            });
        }
        let changed = if member {
            tx.execute(
                "INSERT INTO memberships (login, project) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&login, &project],
            )
        } else {
            tx.execute(
                "DELETE FROM memberships WHERE login = $1 AND project = $2",
                &[&login, &project],
            )
        }
        .map_err(database)?;
        tx.commit().map_err(database)?;
        Ok(changed > 0)
    }
}

impl PgAccounts {
    /// Stores a token as it is (an import); `false` when a token with its
    /// id or its hash is stored already.
    pub(crate) fn insert_token(&self, token: &Token) -> Result<bool> {
        let (project, login) = owner_columns(&token.owner);
        let last_used = token.last_used_ns.map(ns_to_sql).transpose()?;
        let inserted = conn(&self.pool)?
            .execute(
                "INSERT INTO tokens (id, hash, project, login, label, created_ns, last_used_ns)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &token.id,
                    &token.hash,
                    &project,
                    &login,
                    &token.label,
                    &ns_to_sql(token.created_ns)?,
                    &last_used,
                ],
            )
            .map_err(database)?;
        Ok(inserted == 1)
    }
}

/// The columns a token is read with.
const TOKEN_COLUMNS: &str = "id, hash, project, login, label, created_ns, last_used_ns";
const TOKEN_RETURNING: &str = "RETURNING id, hash, project, login, label, created_ns, last_used_ns";

fn token_of(row: &Row) -> Result<Token> {
    let project: Option<String> = row.get(2);
    let login: Option<String> = row.get(3);
    let owner = match (project, login) {
        (Some(id), None) => TokenOwner::Project(id),
        (None, Some(login)) => TokenOwner::User(login),
        _ => {
            return Err(Error::corrupt(
                "tokens",
                "a token without exactly one owner",
            ))
        }
    };
    Ok(Token {
        id: row.get(0),
        hash: row.get(1),
        owner,
        label: row.get(4),
        created_ns: ns_from_sql("tokens", row.get(5))?,
        last_used_ns: row
            .get::<_, Option<i64>>(6)
            .map(|ns| ns_from_sql("tokens", ns))
            .transpose()?,
    })
}

fn owner_columns(owner: &TokenOwner) -> (Option<&str>, Option<&str>) {
    match owner {
        TokenOwner::Project(id) => (Some(id), None),
        TokenOwner::User(login) => (None, Some(login)),
    }
}

fn owner_what(owner: &TokenOwner) -> &'static str {
    match owner {
        TokenOwner::Project(_) => "project",
        TokenOwner::User(_) => "user",
    }
}

fn owner_not_found(owner: &TokenOwner) -> Error {
    match owner {
        TokenOwner::Project(id) => Error::ProjectNotFound { id: id.clone() },
        TokenOwner::User(login) => Error::UserNotFound {
            login: login.clone(),
        },
    }
}

fn project_of(row: &Row) -> Result<Project> {
    Ok(Project {
        id: row.get(0),
        name: row.get(1),
        created_ns: ns_from_sql("projects", row.get(2))?,
    })
}

/// A user with their memberships, sorted.
const USER_SELECT: &str = "SELECT u.login, u.name, u.email, u.created_ns,
        coalesce(array_agg(m.project ORDER BY m.project) FILTER (WHERE m.project IS NOT NULL),
                 '{}')
     FROM users u LEFT JOIN memberships m ON m.login = u.login";

fn user_of(row: &Row) -> Result<User> {
    Ok(User {
        login: row.get(0),
        name: row.get(1),
        email: row.get(2),
        projects: row.get(4),
        created_ns: ns_from_sql("users", row.get(3))?,
    })
}

fn read_tokens(client: &mut impl GenericClient, owner: Option<&TokenOwner>) -> Result<Vec<Token>> {
    let rows = match owner.map(owner_columns) {
        None => client.query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens"), &[]),
        Some((Some(project), _)) => client.query(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE project = $1"),
            &[&project],
        ),
        Some((_, login)) => client.query(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE login = $1"),
            &[&login],
        ),
    }
    .map_err(database)?;
    let mut out = rows.iter().map(token_of).collect::<Result<Vec<_>>>()?;
    sort_tokens(&mut out);
    Ok(out)
}

impl Accounts for PgAccounts {
    fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn put_project(&self, project: &Project) -> Result<()> {
        check_name("project", &project.id)?;
        conn(&self.pool)?
            .execute(
                "INSERT INTO projects (id, name, created_ns) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                                                created_ns = excluded.created_ns",
                &[&project.id, &project.name, &ns_to_sql(project.created_ns)?],
            )
            .map_err(database)?;
        Ok(())
    }

    fn project(&self, id: &str) -> Result<Option<Project>> {
        check_name("project", id)?;
        self.count_reads(1);
        conn(&self.pool)?
            .query_opt(
                "SELECT id, name, created_ns FROM projects WHERE id = $1",
                &[&id],
            )
            .map_err(database)?
            .map(|row| project_of(&row))
            .transpose()
    }

    fn projects(&self) -> Result<Vec<Project>> {
        let rows = conn(&self.pool)?
            .query("SELECT id, name, created_ns FROM projects ORDER BY id", &[])
            .map_err(database)?;
        self.count_reads(rows.len());
        rows.iter().map(project_of).collect()
    }

    fn remove_project(&self, id: &str) -> Result<bool> {
        check_name("project", id)?;
        let mut conn = conn(&self.pool)?;
        let mut tx = conn.transaction().map_err(database)?;
        // Its tokens go with it (ON DELETE CASCADE).
        let existed = tx
            .execute("DELETE FROM projects WHERE id = $1", &[&id])
            .map_err(database)?
            > 0;
        tx.execute("DELETE FROM memberships WHERE project = $1", &[&id])
            .map_err(database)?;
        tx.commit().map_err(database)?;
        Ok(existed)
    }

    fn put_user(&self, user: &User) -> Result<()> {
        check_name("user", &user.login)?;
        let mut conn = conn(&self.pool)?;
        let mut tx = conn.transaction().map_err(database)?;
        tx.execute(
            "INSERT INTO users (login, name, email, created_ns) VALUES ($1, $2, $3, $4)
             ON CONFLICT (login) DO UPDATE SET name = excluded.name, email = excluded.email,
                                               created_ns = excluded.created_ns",
            &[
                &user.login,
                &user.name,
                &user.email,
                &ns_to_sql(user.created_ns)?,
            ],
        )
        .map_err(database)?;
        tx.execute("DELETE FROM memberships WHERE login = $1", &[&user.login])
            .map_err(database)?;
        tx.execute(
            "INSERT INTO memberships (login, project)
             SELECT $1, p FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING",
            &[&user.login, &user.projects],
        )
        .map_err(database)?;
        tx.commit().map_err(database)
    }

    fn user(&self, login: &str) -> Result<Option<User>> {
        check_name("user", login)?;
        self.count_reads(1);
        conn(&self.pool)?
            .query_opt(
                &format!("{USER_SELECT} WHERE u.login = $1 GROUP BY u.login"),
                &[&login],
            )
            .map_err(database)?
            .map(|row| user_of(&row))
            .transpose()
    }

    fn users(&self) -> Result<Vec<User>> {
        let rows = conn(&self.pool)?
            .query(
                &format!("{USER_SELECT} GROUP BY u.login ORDER BY u.login"),
                &[],
            )
            .map_err(database)?;
        self.count_reads(rows.len());
        rows.iter().map(user_of).collect()
    }

    fn remove_user(&self, login: &str) -> Result<bool> {
        check_name("user", login)?;
        // Memberships and tokens go with the user (ON DELETE CASCADE).
        let removed = conn(&self.pool)?
            .execute("DELETE FROM users WHERE login = $1", &[&login])
            .map_err(database)?;
        Ok(removed > 0)
    }

    fn set_admin(&self, login: &str, admin: bool) -> Result<()> {
        check_name("user", login)?;
        let changed = conn(&self.pool)?
            .execute(
                "UPDATE users SET admin = $2 WHERE login = $1",
                &[&login, &admin],
            )
            .map_err(database)?;
        if admin && changed == 0 {
            return Err(Error::UserNotFound {
                login: login.to_owned(),
            });
        }
        Ok(())
    }

    fn is_admin(&self, login: &str) -> Result<bool> {
        check_name("user", login)?;
        self.count_reads(1);
        Ok(conn(&self.pool)?
            .query_opt("SELECT admin FROM users WHERE login = $1", &[&login])
            .map_err(database)?
            .is_some_and(|row| row.get(0)))
    }

    fn admins(&self) -> Result<Vec<String>> {
        let rows = conn(&self.pool)?
            .query("SELECT login FROM users WHERE admin ORDER BY login", &[])
            .map_err(database)?;
        self.count_reads(rows.len());
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn add_member(&self, project: &str, login: &str) -> Result<bool> {
        self.change_membership(project, login, true)
    }

    fn remove_member(&self, project: &str, login: &str) -> Result<bool> {
        self.change_membership(project, login, false)
    }

    fn members(&self, project: &str) -> Result<Vec<String>> {
        let rows = conn(&self.pool)?
            .query(
                "SELECT login FROM memberships WHERE project = $1 ORDER BY login",
                &[&project],
            )
            .map_err(database)?;
        self.count_reads(rows.len());
        Ok(rows.iter().map(|row| row.get(0)).collect())
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
        conn(&self.pool)?
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"),
                &[&hash],
            )
            .map_err(database)?
            .map(|row| token_of(&row))
            .transpose()
    }

    fn token(&self, id: &str) -> Result<Option<Token>> {
        self.count_reads(1);
        conn(&self.pool)?
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"),
                &[&id],
            )
            .map_err(database)?
            .map(|row| token_of(&row))
            .transpose()
    }

    fn tokens(&self, owner: Option<&TokenOwner>) -> Result<Vec<Token>> {
        let out = read_tokens(&mut *conn(&self.pool)?, owner)?;
        self.count_reads(out.len());
        Ok(out)
    }

    fn revoke_token(&self, id: &str) -> Result<Option<Token>> {
        conn(&self.pool)?
            .query_opt(
                &format!("DELETE FROM tokens WHERE id = $1 {TOKEN_RETURNING}"),
                &[&id],
            )
            .map_err(database)?
            .map(|row| token_of(&row))
            .transpose()
    }

    fn touch_token(&self, token: &Token, now_ns: u64, resolution_ns: u64) -> Result<()> {
        if !token.use_to_record(now_ns, resolution_ns) {
            return Ok(());
        }
        let last = token.last_used_ns.map(ns_to_sql).transpose()?;
        // Compare-and-swap: a token revoked or touched meanwhile is left as
        // it is.
        conn(&self.pool)?
            .execute(
                "UPDATE tokens SET last_used_ns = $1
                 WHERE id = $2 AND hash = $3 AND last_used_ns IS NOT DISTINCT FROM $4",
                &[&ns_to_sql(now_ns)?, &token.id, &token.hash, &last],
            )
            .map_err(database)?;
        Ok(())
    }

    fn take_migration(&self) -> Result<Option<AccountsMigration>> {
        // A PostgreSQL database never held accounts from before
        // memberships: an import of such accounts migrates them itself.
        Ok(None)
    }
}
