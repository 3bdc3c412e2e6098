//! The notes on PostgreSQL: [`NoteStorage`] over the tables of migration 2.
//!
//! A note is a row of `notes`; its names, link keys and issues are rows of
//! `note_names`, `note_links` and `note_issues`, derived from the note by
//! the same function as on the embedded store and written in the
//! transaction that writes the note; its files are rows of `attachments`,
//! bytes included (`bytea`). Deleting a note deletes all of them
//! (`ON DELETE CASCADE`).
//!
//! Several nodes write at once, so a write never relies on a lock of this
//! process: it runs in a `SERIALIZABLE` transaction, and every change
//! checks the revision it was decided from (`UPDATE ... WHERE id = $1 AND
//! revision = $2`; an insert that finds the id taken, a delete that finds
//! another revision). When another writer came first (a revision moved, or
//! the database reports a serialization failure or a deadlock), the
//! transaction is rolled back and the write runs again from its reads, a
//! bounded number of times. Reads run in a `REPEATABLE READ` read-only
//! transaction: one consistent view per call.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use omegi_core::note::{attachment_key, Via};
use omegi_core::{Fingerprint, Note, NoteId, Visibility};
use r2d2_postgres::postgres::error::SqlState;
use r2d2_postgres::postgres::{IsolationLevel, Row, Transaction};
use uuid::Uuid;

use super::{conn, ns_from_sql, ns_to_sql, Pool};
use crate::attachments::Attachment;
use crate::error::{EngineError, Error, Result};
use crate::notes::derive;
use crate::notes::storage::{Change, LinkEntry, NameEntry, NoteReads, NoteStorage, NoteTx};
use crate::search::SearchIndex;

/// How many times a write runs before a conflict with other writers is
/// returned.
const WRITE_ATTEMPTS: usize = 16;

pub(crate) const NOTE_COLUMNS: &str =
    "t.id, t.author, t.title, t.folder, t.body, t.tags, t.aliases, \
     t.public, t.issues, t.created_ns, t.updated_ns, t.revision";

pub(crate) const ATTACHMENT_COLUMNS: &str =
    "note, name, content_type, inline_image, size, sha256, created_ns";

/// The notes of a [`Database`](super::Database), and this node's search
/// index over them.
pub(crate) struct PgNotes {
    pool: Pool,
    /// Built from the database at connect, in memory, and updated by every
    /// write made through this node.
    pub(crate) search: SearchIndex,
    /// Orders this node's commits with their index updates, so that the
    /// index sees a note's versions in the order they were committed.
    commit: Mutex<()>,
    /// Counts the index's commits.
    generation: AtomicU64,
}

impl PgNotes {
    /// The notes of the database `pool` reaches, with a search index built
    /// from them.
    pub(crate) fn new(pool: Pool) -> Result<Self> {
        let notes = PgNotes {
            pool,
            search: SearchIndex::open(None)?,
            commit: Mutex::new(()),
            generation: AtomicU64::new(0),
        };
        notes.rebuild_search()?;
        Ok(notes)
    }

    fn commit_lock(&self) -> MutexGuard<'_, ()> {
        // Guards no data of its own.
        self.commit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts the notes `ids` in this node's search index as the database
    /// holds them now (another node changed them); a note no longer in the
    /// database leaves the index.
    pub(crate) fn reindex(&self, ids: &[NoteId]) -> Result<()> {
        let _guard = self.commit_lock();
        let mut found = Vec::new();
        self.read(&mut |r| {
            found.clear();
            for id in ids {
                found.extend(r.note(*id)?);
            }
            Ok(())
        })?;
        let refs: Vec<&Note> = found.iter().collect();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.search
            .write(ids, &refs, &Default::default(), generation, false)
    }

    /// Builds this node's search index again from the database; returns
    /// how many notes it holds.
    pub(crate) fn rebuild_search(&self) -> Result<usize> {
        let _guard = self.commit_lock();
        let mut all = Vec::new();
        self.read(&mut |r| {
            all = r.all()?;
            Ok(())
        })?;
        let refs: Vec<&Note> = all.iter().collect();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.search
            .write(&[], &refs, &Default::default(), generation, true)?;
        Ok(all.len())
    }
}

/// One transaction, whether it lost to another writer, and the changes of
/// notes it made.
struct Pg<'t, 'c> {
    tx: &'t mut Transaction<'c>,
    conflict: &'t Cell<bool>,
    changed: Vec<Change>,
}

/// A failure of the database; a serialization failure or a deadlock marks
/// the transaction as one to run again.
fn failed(conflict: &Cell<bool>, e: r2d2_postgres::postgres::Error) -> Error {
    if let Some(code) = e.code() {
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            conflict.set(true);
        }
    }
    Error::Storage(EngineError::database(e))
}

fn get<'a, T: r2d2_postgres::postgres::types::FromSql<'a>>(
    table: &'static str,
    row: &'a Row,
    column: usize,
) -> Result<T> {
    row.try_get(column)
        .map_err(|e| Error::corrupt(table, format!("column {column}: {e}")))
}

fn u64_of(table: &'static str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::corrupt(table, format!("negative count {v}")))
}

fn i64_of(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Encode(format!("{v} does not fit a bigint")))
}

pub(crate) fn note_of(row: &Row) -> Result<Note> {
    const T: &str = "notes";
    let issues: Vec<String> = get(T, row, 8)?;
    let public: bool = get(T, row, 7)?;
    Ok(Note {
        id: NoteId(get::<Uuid>(T, row, 0)?),
        author: get(T, row, 1)?,
        title: get(T, row, 2)?,
        folder: get(T, row, 3)?,
        body: get(T, row, 4)?,
        tags: get(T, row, 5)?,
        aliases: get(T, row, 6)?,
        visibility: if public {
            Visibility::Public
        } else {
            Visibility::Private
        },
        issues: issues.into_iter().map(Fingerprint).collect(),
        created_ns: ns_from_sql(T, get(T, row, 9)?)?,
        updated_ns: ns_from_sql(T, get(T, row, 10)?)?,
        revision: u64_of(T, get(T, row, 11)?)?,
    })
}

pub(crate) fn attachment_of(row: &Row) -> Result<Attachment> {
    const T: &str = "attachments";
    Ok(Attachment {
        note: NoteId(get::<Uuid>(T, row, 0)?),
        name: get(T, row, 1)?,
        content_type: get(T, row, 2)?,
        inline_image: get(T, row, 3)?,
        size: u64_of(T, get(T, row, 4)?)?,
        sha256: get(T, row, 5)?,
        created_ns: ns_from_sql(T, get(T, row, 6)?)?,
    })
}

impl Pg<'_, '_> {
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn r2d2_postgres::postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.tx
            .query(sql, params)
            .map_err(|e| failed(self.conflict, e))
    }

    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn r2d2_postgres::postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        self.tx
            .execute(sql, params)
            .map_err(|e| failed(self.conflict, e))
    }

    fn notes(
        &mut self,
        sql: &str,
        params: &[&(dyn r2d2_postgres::postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Note>> {
        self.query(sql, params)?.iter().map(note_of).collect()
    }

    /// Another writer changed `id` since it was read: the write runs again.
    fn lost(&mut self, id: NoteId, expected: u64) -> Error {
        self.conflict.set(true);
        Error::RevisionMismatch {
            id,
            expected,
            actual: 0,
        }
    }

    /// Writes the index rows of `note`.
    fn index(&mut self, note: &Note) -> Result<()> {
        let d = derive(note);
        let id = note.id.0;
        let (kinds, keys): (Vec<i16>, Vec<String>) = d
            .names
            .into_iter()
            .map(|(kind, key)| (i16::from(kind), key))
            .unzip();
        self.execute(
            "INSERT INTO note_names (key, note, kind)
             SELECT k, $2, kind FROM unnest($1::text[], $3::smallint[]) AS u (k, kind)",
            &[&keys, &id, &kinds],
        )?;
        let links: Vec<String> = d.link_keys.into_iter().collect();
        self.execute(
            "INSERT INTO note_links (key, note) SELECT k, $2 FROM unnest($1::text[]) AS u (k)",
            &[&links, &id],
        )?;
        let mut issues: Vec<String> = note.issues.iter().map(|f| f.0.clone()).collect();
        issues.sort();
        issues.dedup();
        self.execute(
            "INSERT INTO note_issues (fingerprint, note)
             SELECT f, $2 FROM unnest($1::text[]) AS u (f)",
            &[&issues, &id],
        )?;
        Ok(())
    }

    /// Removes the index rows of note `id`.
    fn unindex(&mut self, id: Uuid) -> Result<()> {
        for table in ["note_names", "note_links", "note_issues"] {
            self.execute(&format!("DELETE FROM {table} WHERE note = $1"), &[&id])?;
        }
        Ok(())
    }
}

impl NoteReads for Pg<'_, '_> {
    fn note(&mut self, id: NoteId) -> Result<Option<Note>> {
        Ok(self
            .notes(
                &format!("SELECT {NOTE_COLUMNS} FROM notes t WHERE t.id = $1"),
                &[&id.0],
            )?
            .pop())
    }

    fn named(&mut self, key: &str) -> Result<Vec<NameEntry>> {
        const T: &str = "note_names";
        let rows = self.query(
            "SELECT n.kind, n.note, t.created_ns, t.public, t.author, t.folder
             FROM note_names n JOIN notes t ON t.id = n.note
             WHERE n.key = $1 ORDER BY n.kind, t.created_ns, n.note",
            &[&key],
        )?;
        rows.iter()
            .map(|row| {
                Ok(NameEntry {
                    key: key.to_owned(),
                    via: match get::<i16>(T, row, 0)? {
                        0 => Via::Title,
                        1 => Via::Alias,
                        other => return Err(Error::corrupt(T, format!("kind {other}"))),
                    },
                    id: NoteId(get::<Uuid>(T, row, 1)?),
                    created_ns: ns_from_sql(T, get(T, row, 2)?)?,
                    public: get(T, row, 3)?,
                    author: get(T, row, 4)?,
                    folder: get(T, row, 5)?,
                })
            })
            .collect()
    }

    fn linking(&mut self, key: &str) -> Result<Vec<LinkEntry>> {
        const T: &str = "note_links";
        let rows = self.query(
            "SELECT l.note, t.public, t.author
             FROM note_links l JOIN notes t ON t.id = l.note
             WHERE l.key = $1 ORDER BY l.note",
            &[&key],
        )?;
        rows.iter()
            .map(|row| {
                Ok(LinkEntry {
                    id: NoteId(get::<Uuid>(T, row, 0)?),
                    public: get(T, row, 1)?,
                    author: get(T, row, 2)?,
                })
            })
            .collect()
    }

    fn by_author(&mut self, author: &str) -> Result<Vec<Note>> {
        self.notes(
            &format!("SELECT {NOTE_COLUMNS} FROM notes t WHERE t.author = $1 ORDER BY t.id"),
            &[&author],
        )
    }

    fn by_issue(&mut self, fingerprint: &str) -> Result<Vec<Note>> {
        self.notes(
            &format!(
                "SELECT {NOTE_COLUMNS} FROM notes t JOIN note_issues i ON i.note = t.id
                 WHERE i.fingerprint = $1 ORDER BY t.id"
            ),
            &[&fingerprint],
        )
    }

    fn all(&mut self) -> Result<Vec<Note>> {
        self.notes(
            &format!("SELECT {NOTE_COLUMNS} FROM notes t ORDER BY t.id"),
            &[],
        )
    }

    fn count(&mut self) -> Result<usize> {
        let rows = self.query("SELECT count(*) FROM notes", &[])?;
        let n: i64 = match rows.first() {
            Some(row) => get("notes", row, 0)?,
            None => 0,
        };
        usize::try_from(n).map_err(|_| Error::corrupt("notes", format!("count {n}")))
    }

    fn attachments(&mut self, note: NoteId) -> Result<Vec<Attachment>> {
        self.query(
            &format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE note = $1 ORDER BY key"),
            &[&note.0],
        )?
        .iter()
        .map(attachment_of)
        .collect()
    }

    fn attachment(&mut self, note: NoteId, key: &str) -> Result<Option<Attachment>> {
        self.query(
            &format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE note = $1 AND key = $2"),
            &[&note.0, &key],
        )?
        .first()
        .map(attachment_of)
        .transpose()
    }

    fn attachment_bytes(&mut self, note: NoteId, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(
            "SELECT data FROM attachments WHERE note = $1 AND key = $2",
            &[&note.0, &key],
        )?
        .first()
        .map(|row| get("attachments", row, 0))
        .transpose()
    }

    fn attachment_holders(&mut self, key: &str) -> Result<Vec<NoteId>> {
        self.query(
            "SELECT note FROM attachments WHERE key = $1 ORDER BY note",
            &[&key],
        )?
        .iter()
        .map(|row| Ok(NoteId(get::<Uuid>("attachments", row, 0)?)))
        .collect()
    }
}

impl NoteTx for Pg<'_, '_> {
    fn put(&mut self, changes: &[Change]) -> Result<()> {
        self.changed.extend_from_slice(changes);
        for c in changes {
            match (&c.old, &c.new) {
                (None, None) => {}
                (Some(old), None) => {
                    let deleted = self.execute(
                        "DELETE FROM notes WHERE id = $1 AND revision = $2",
                        &[&old.id.0, &i64_of(old.revision)?],
                    )?;
                    if deleted == 0 {
                        return Err(self.lost(old.id, old.revision));
                    }
                }
                (old, Some(n)) => {
                    let tags = &n.tags;
                    let aliases = &n.aliases;
                    let issues: Vec<String> = n.issues.iter().map(|f| f.0.clone()).collect();
                    let public = n.visibility == Visibility::Public;
                    let (created, updated, revision) = (
                        ns_to_sql(n.created_ns)?,
                        ns_to_sql(n.updated_ns)?,
                        i64_of(n.revision)?,
                    );
                    let written = match old {
                        None => self.execute(
                            "INSERT INTO notes (id, author, title, folder, body, tags, aliases,
                                 public, issues, created_ns, updated_ns, revision)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                             ON CONFLICT (id) DO NOTHING",
                            &[
                                &n.id.0, &n.author, &n.title, &n.folder, &n.body, tags, aliases,
                                &public, &issues, &created, &updated, &revision,
                            ],
                        )?,
                        Some(old) => {
                            let updated_rows = self.execute(
                                "UPDATE notes SET author = $2, title = $3, folder = $4,
                                     body = $5, tags = $6, aliases = $7, public = $8,
                                     issues = $9, created_ns = $10, updated_ns = $11,
                                     revision = $12
                                 WHERE id = $1 AND revision = $13",
                                &[
                                    &n.id.0,
                                    &n.author,
                                    &n.title,
                                    &n.folder,
                                    &n.body,
                                    tags,
                                    aliases,
                                    &public,
                                    &issues,
                                    &created,
                                    &updated,
                                    &revision,
                                    &i64_of(old.revision)?,
                                ],
                            )?;
                            if updated_rows > 0 {
                                self.unindex(n.id.0)?;
                            }
                            updated_rows
                        }
                    };
                    if written == 0 {
                        let expected = old.as_ref().map_or(0, |o| o.revision);
                        return Err(self.lost(n.id, expected));
                    }
                    self.index(n)?;
                }
            }
        }
        Ok(())
    }

    fn put_attachment(&mut self, a: &Attachment, bytes: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO attachments (note, key, name, content_type, inline_image, size,
                 sha256, created_ns, data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &a.note.0,
                &attachment_key(&a.name),
                &a.name,
                &a.content_type,
                &a.inline_image,
                &i64_of(a.size)?,
                &a.sha256,
                &ns_to_sql(a.created_ns)?,
                &bytes,
            ],
        )?;
        Ok(())
    }

    fn remove_attachment(&mut self, note: NoteId, key: &str) -> Result<()> {
        self.execute(
            "DELETE FROM attachments WHERE note = $1 AND key = $2",
            &[&note.0, &key],
        )?;
        Ok(())
    }
}

impl NoteStorage for PgNotes {
    fn read(&self, f: &mut dyn FnMut(&mut dyn NoteReads) -> Result<()>) -> Result<()> {
        let mut conn = conn(&self.pool)?;
        let conflict = Cell::new(false);
        let mut tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(|e| failed(&conflict, e))?;
        f(&mut Pg {
            tx: &mut tx,
            conflict: &conflict,
            changed: Vec::new(),
        })?;
        tx.commit().map_err(|e| failed(&conflict, e))
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn NoteTx) -> Result<()>) -> Result<()> {
        let mut conn = conn(&self.pool)?;
        let conflict = Cell::new(false);
        let mut attempt = 0;
        loop {
            attempt += 1;
            conflict.set(false);
            let result = (|| {
                let mut tx = conn
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .map_err(|e| failed(&conflict, e))?;
                let mut pg = Pg {
                    tx: &mut tx,
                    conflict: &conflict,
                    changed: Vec::new(),
                };
                f(&mut pg)?;
                let changed = std::mem::take(&mut pg.changed);
                let _guard = self.commit_lock();
                tx.commit().map_err(|e| failed(&conflict, e))?;
                if changed.is_empty() {
                    return Ok(());
                }
                // Committed: what follows is never run again.
                let removed: Vec<NoteId> = changed
                    .iter()
                    .filter_map(|c| c.old.as_ref().or(c.new.as_ref()).map(|n| n.id))
                    .collect();
                let added: Vec<&Note> = changed.iter().filter_map(|c| c.new.as_ref()).collect();
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                self.search
                    .write(&removed, &added, &Default::default(), generation, false)
            })();
            match result {
                Err(_) if conflict.get() && attempt < WRITE_ATTEMPTS => continue,
                other => return other,
            }
        }
    }
}
