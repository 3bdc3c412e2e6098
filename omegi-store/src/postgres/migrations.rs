//! The PostgreSQL schema, as numbered migrations.
//!
//! [`MIGRATIONS`] lists every change to the schema since the first, in
//! order; a database records the versions applied to it in the table
//! `omegi_migrations`. Opening a database applies the missing ones, in one
//! transaction that first takes an advisory lock: when several nodes start
//! at once, one applies them and the others wait, then find nothing to do.
//! A migration is never edited once released; a change is a new one.
//!
//! Text that is sorted or compared as a key is stored with the `"C"`
//! collation, so that the database orders it byte by byte, as the embedded
//! store does, whatever the database's own locale.

use r2d2_postgres::postgres::Client;

use super::database;
use crate::error::{Error, Result};

/// One change to the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number: the migrations are applied in this order.
    pub version: u32,
    /// What it adds, in a few words.
    pub name: &'static str,
    /// The SQL it runs.
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "accounts",
        sql: include_str!("migrations/0001_accounts.sql"),
    },
    Migration {
        version: 2,
        name: "notes",
        sql: include_str!("migrations/0002_notes.sql"),
    },
    Migration {
        version: 3,
        name: "traces",
        sql: include_str!("migrations/0003_traces.sql"),
    },
    Migration {
        version: 4,
        name: "note changes",
        sql: include_str!("migrations/0004_note_changes.sql"),
    },
];

/// The newest schema version this build knows.
pub fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A key for `pg_advisory_xact_lock` that no other application is likely
/// to take: "omegi" in ASCII.
const LOCK_KEY: i64 = 0x006f_6d65_6769;

/// Applies the migrations the database lacks; returns how many.
pub(crate) fn migrate(client: &mut Client) -> Result<usize> {
    let mut tx = client.transaction().map_err(database)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .map_err(database)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS omegi_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .map_err(database)?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM omegi_migrations",
            &[],
        )
        .map_err(database)?
        .get(0);
    let found = u32::try_from(found).unwrap_or(0);
    if found > latest() {
        return Err(Error::DatabaseTooNew {
            found,
            supported: latest(),
        });
    }
    let mut applied = 0;
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.batch_execute(m.sql).map_err(database)?;
        let version = i32::try_from(m.version).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO omegi_migrations (version, name) VALUES ($1, $2)",
            &[&version, &m.name],
        )
        .map_err(database)?;
        applied += 1;
    }
    tx.commit().map_err(database)?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        // A database records the newest version applied: a gap filled later
        // would never be applied to it.
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
        }
    }
}
