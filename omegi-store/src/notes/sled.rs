//! The notes on the embedded store: [`NoteStorage`] over sled trees.
//!
//! A note is stored once, by id. Four indexes derive from it
//! ([`derive`]) and are written in the same transaction:
//!
//! - names: every name a `[[...]]` link can use for the note (its title and
//!   aliases, as lookup keys), then the kind of name, the note's creation
//!   time and id → the note's owner and folder, so that a prefix scan finds
//!   every note a name may mean;
//! - links: every key a note's links are indexed under → the linking note's
//!   owner, so that the backlinks of a note are found among the link
//!   entries under its names;
//! - by author and by issue, for listings.
//!
//! A note's attachments are kept under the note's id and the name's key,
//! their bytes apart from their description so that listings never read
//! them, with an index by name key.
//!
//! Writers take the notes lock, read, and apply their changes in sled
//! transactions of at most [`BULK_CHUNK`] notes, then update the search
//! index: one writer at a time, so what a writer read is still true when
//! it writes.

use crate::error::Db;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use omegi_core::note::Via;
use omegi_core::{Fingerprint, Note, NoteId, Visibility};
use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::storage::{Change, LinkEntry, NameEntry, NoteReads, NoteStorage, NoteTx};
use super::{derive, MAX_NAME_BYTES};
use crate::attachments::Attachment;
use crate::codec::{decode, encode};
use crate::error::{Error, Result};
use crate::keys::{Key, KeyReader};
use crate::search::SearchIndex;
use crate::{Embedded, Trees};

/// Notes written per transaction by bulk writes.
const BULK_CHUNK: usize = 512;
const META_GENERATION: &[u8] = b"generation";
/// The layout of the notes' rows and indexes, kept in `notes_meta`.
pub(super) const META_LAYOUT: &[u8] = b"layout";
/// Layout 2: rows and index entries carry the note's folder, and
/// `[[Folder/Note]]` links are indexed under the note's name too.
pub(super) const NOTES_LAYOUT: u32 = 2;

/// The stored form of a note (postcard; owned by this crate so that the
/// on-disk layout changes only with the schema version).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct NoteRow {
    author: String,
    title: String,
    body: String,
    tags: Vec<String>,
    aliases: Vec<String>,
    public: bool,
    issues: Vec<String>,
    created_ns: u64,
    updated_ns: u64,
    revision: u64,
    folder: String,
}

/// A row of layout 1, before notes had folders.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct NoteRowV1 {
    pub(super) author: String,
    pub(super) title: String,
    pub(super) body: String,
    pub(super) tags: Vec<String>,
    pub(super) aliases: Vec<String>,
    pub(super) public: bool,
    pub(super) issues: Vec<String>,
    pub(super) created_ns: u64,
    pub(super) updated_ns: u64,
    pub(super) revision: u64,
}

impl NoteRow {
    /// Decodes a row of this layout, or of layout 1 (a note at the top).
    fn decode_any(bytes: &[u8]) -> Result<NoteRow> {
        decode::<NoteRow>("notes", bytes).or_else(|e| {
            let Ok(v1) = decode::<NoteRowV1>("notes", bytes) else {
                return Err(e);
            };
            Ok(NoteRow {
                author: v1.author,
                title: v1.title,
                body: v1.body,
                tags: v1.tags,
                aliases: v1.aliases,
                public: v1.public,
                issues: v1.issues,
                created_ns: v1.created_ns,
                updated_ns: v1.updated_ns,
                revision: v1.revision,
                folder: String::new(),
            })
        })
    }

    fn from_note(n: &Note) -> Self {
        NoteRow {
            author: n.author.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            tags: n.tags.clone(),
            aliases: n.aliases.clone(),
            public: n.visibility == Visibility::Public,
            issues: n.issues.iter().map(|f| f.0.clone()).collect(),
            created_ns: n.created_ns,
            updated_ns: n.updated_ns,
            revision: n.revision,
            folder: n.folder.clone(),
        }
    }

    fn into_note(self, id: NoteId) -> Note {
        Note {
            id,
            author: self.author,
            title: self.title,
            folder: self.folder,
            body: self.body,
            tags: self.tags,
            aliases: self.aliases,
            visibility: if self.public {
                Visibility::Public
            } else {
                Visibility::Private
            },
            issues: self.issues.into_iter().map(Fingerprint).collect(),
            created_ns: self.created_ns,
            updated_ns: self.updated_ns,
            revision: self.revision,
        }
    }
}

/// Who owns an index entry's note and where it lies: enough to decide
/// visibility and resolution without reading the note.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Owner {
    public: bool,
    author: String,
    folder: String,
}

impl Owner {
    fn of(note: &Note) -> Self {
        Owner {
            public: note.visibility == Visibility::Public,
            author: note.author.clone(),
            folder: note.folder.clone(),
        }
    }
}

pub(crate) fn id_key(id: NoteId) -> Key {
    let v = id.0.as_u128();
    Key::new().u64((v >> 64) as u64).u64(v as u64)
}

fn read_id(r: &mut KeyReader<'_>) -> Result<NoteId> {
    let hi = u128::from(r.u64()?);
    let lo = u128::from(r.u64()?);
    Ok(NoteId(uuid::Uuid::from_u128((hi << 64) | lo)))
}

/// Reads the note id at the start of a key.
pub(crate) fn leading_id(tree: &'static str, key: &[u8]) -> Result<NoteId> {
    let head = key
        .get(..16)
        .ok_or_else(|| Error::corrupt(tree, "key too short"))?;
    read_id(&mut KeyReader::new(tree, head))
}

/// Reads the note id at the end of an index key.
pub(super) fn trailing_id(tree: &'static str, key: &[u8]) -> Result<NoteId> {
    let tail = key
        .len()
        .checked_sub(16)
        .ok_or_else(|| Error::corrupt(tree, "key too short"))?;
    read_id(&mut KeyReader::new(tree, &key[tail..]))
}

pub(super) fn name_prefix(key: &str) -> Result<Key> {
    Key::new().str("note name", key)
}

/// The trees of the notes, in transaction order.
const T_NOTES: usize = 0;
const T_NAMES: usize = 1;
const T_LINKS: usize = 2;
const T_AUTHOR: usize = 3;
const T_ISSUE: usize = 4;
const T_META: usize = 5;
const T_ATTACHMENTS: usize = 6;
const T_ATTACHMENT_DATA: usize = 7;
const T_ATTACHMENTS_BY_NAME: usize = 8;

type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// The index entries of one note, per tree.
fn entries(note: &Note) -> Result<[Entries; 4]> {
    let d = derive(note);
    let owner = encode(&Owner::of(note))?;
    let mut names = Entries::new();
    for (kind, key) in &d.names {
        let mut k = name_prefix(key)?.u8(*kind).u64(note.created_ns).into_vec();
        k.extend_from_slice(id_key(note.id).as_ref());
        names.insert(k, owner.clone());
    }
    let mut links = Entries::new();
    for key in &d.link_keys {
        let mut k = name_prefix(key)?.into_vec();
        k.extend_from_slice(id_key(note.id).as_ref());
        links.insert(k, owner.clone());
    }
    let mut by_author = Entries::new();
    let mut k = Key::new().str("user", &note.author)?.into_vec();
    k.extend_from_slice(id_key(note.id).as_ref());
    by_author.insert(k, Vec::new());
    let mut by_issue = Entries::new();
    for fp in &note.issues {
        let mut k = Key::new().str("fingerprint", &fp.0)?.into_vec();
        k.extend_from_slice(id_key(note.id).as_ref());
        by_issue.insert(k, Vec::new());
    }
    Ok([names, links, by_author, by_issue])
}

/// One write to a tree: insert or (with `None`) remove.
type Op = (usize, Vec<u8>, Option<Vec<u8>>);

/// The writes that turn `old` into `new` (same id): only entries that
/// differ are touched.
fn plan(old: Option<&Note>, new: Option<&Note>, ops: &mut Vec<Op>) -> Result<()> {
    let empty = || {
        [
            Entries::new(),
            Entries::new(),
            Entries::new(),
            Entries::new(),
        ]
    };
    let before = old.map(entries).transpose()?.unwrap_or_else(empty);
    let after = new.map(entries).transpose()?.unwrap_or_else(empty);
    for (i, (before, after)) in before.iter().zip(&after).enumerate() {
        let tree = [T_NAMES, T_LINKS, T_AUTHOR, T_ISSUE][i];
        for key in before.keys() {
            if !after.contains_key(key) {
                ops.push((tree, key.clone(), None));
            }
        }
        for (key, value) in after {
            if before.get(key) != Some(value) {
                ops.push((tree, key.clone(), Some(value.clone())));
            }
        }
    }
    match (old, new) {
        (_, Some(n)) => ops.push((
            T_NOTES,
            id_key(n.id).into_vec(),
            Some(encode(&NoteRow::from_note(n))?),
        )),
        (Some(o), None) => ops.push((T_NOTES, id_key(o.id).into_vec(), None)),
        (None, None) => {}
    }
    Ok(())
}

/// The notes' share of the store: the write lock for note changes and the
/// full-text index.
pub(crate) struct NoteState {
    lock: Mutex<()>,
    pub(crate) search: SearchIndex,
}

impl NoteState {
    pub(crate) fn open(data_dir: Option<&std::path::Path>) -> Result<Self> {
        Ok(NoteState {
            lock: Mutex::new(()),
            search: SearchIndex::open(data_dir)?,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        // Guards no data of its own: a panic while holding it leaves nothing
        // half-written in memory.
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The generation of the notes: incremented by every committed change, and
/// recorded by the search index at each of its commits.
pub(crate) fn generation(t: &Trees) -> Result<u64> {
    match t.notes_meta.get(META_GENERATION).db()? {
        Some(v) => crate::keys::counter("notes_meta", &v),
        None => Ok(0),
    }
}

pub(crate) fn read_note(t: &Trees, id: NoteId) -> Result<Option<Note>> {
    match t.notes.get(id_key(id)).db()? {
        Some(v) => Ok(Some(NoteRow::decode_any(&v)?.into_note(id))),
        None => Ok(None),
    }
}

/// Every stored note, by id.
pub(crate) fn all_notes(t: &Trees) -> impl Iterator<Item = Result<Note>> + '_ {
    t.notes.iter().map(|item| {
        let (k, v) = item.db()?;
        let mut r = KeyReader::new("notes", &k);
        let id = read_id(&mut r)?;
        r.end()?;
        Ok(NoteRow::decode_any(&v)?.into_note(id))
    })
}

/// Brings the notes written by an older layout to [`NOTES_LAYOUT`]: rows
/// gain their folder (the top), and the name and link indexes are built
/// again from the rows (their entries now carry the folder). Runs when the
/// store opens; a run cut short is run again at the next open, from the
/// rows, which are the truth.
pub(crate) fn migrate(t: &Trees) -> Result<()> {
    if let Some(v) = t.notes_meta.get(META_LAYOUT).db()? {
        let bytes: [u8; 4] = v
            .as_ref()
            .try_into()
            .map_err(|_| Error::corrupt("notes_meta", "layout is not 4 bytes"))?;
        if u32::from_be_bytes(bytes) >= NOTES_LAYOUT {
            return Ok(());
        }
    }
    if !t.notes.is_empty() {
        t.note_names.clear().db()?;
        t.note_links.clear().db()?;
        let notes: Vec<Note> = all_notes(t).collect::<Result<_>>()?;
        for chunk in notes.chunks(BULK_CHUNK) {
            let mut ops = Vec::new();
            for note in chunk {
                plan(None, Some(note), &mut ops)?;
            }
            apply(t, &ops, true)?;
        }
    }
    t.notes_meta
        .insert(META_LAYOUT, &NOTES_LAYOUT.to_be_bytes())
        .db()?;
    t.notes_meta.flush().db()?;
    Ok(())
}

/// Applies `ops` in one transaction, with the next generation when the
/// notes change (`bump`); returns the generation.
fn apply(t: &Trees, ops: &[Op], bump: bool) -> Result<u64> {
    let generation = generation(t)? + u64::from(bump);
    let trees = [
        &t.notes,
        &t.note_names,
        &t.note_links,
        &t.notes_by_author,
        &t.notes_by_issue,
        &t.notes_meta,
        &t.attachments,
        &t.attachment_data,
        &t.attachments_by_name,
    ];
    trees[..]
        .transaction(|tx| {
            for (tree, key, value) in ops {
                match value {
                    Some(v) => {
                        tx[*tree].insert(key.as_slice(), v.as_slice())?;
                    }
                    None => {
                        tx[*tree].remove(key.as_slice())?;
                    }
                }
            }
            if bump {
                tx[T_META].insert(META_GENERATION, &generation.to_be_bytes())?;
            }
            Ok(())
        })
        .map_err(|e: sled::transaction::TransactionError<()>| match e {
            sled::transaction::TransactionError::Storage(e) => Error::database(e),
            sled::transaction::TransactionError::Abort(()) => {
                Error::corrupt("notes", "transaction aborted")
            }
        })?;
    Ok(generation)
}

/// The stored description of an attachment (postcard).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AttachmentRow {
    name: String,
    content_type: String,
    inline_image: bool,
    size: u64,
    sha256: String,
    created_ns: u64,
}

impl AttachmentRow {
    fn of(a: &Attachment) -> Self {
        AttachmentRow {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            inline_image: a.inline_image,
            size: a.size,
            sha256: a.sha256.clone(),
            created_ns: a.created_ns,
        }
    }

    fn into_attachment(self, note: NoteId) -> Attachment {
        Attachment {
            note,
            name: self.name,
            content_type: self.content_type,
            inline_image: self.inline_image,
            size: self.size,
            sha256: self.sha256,
            created_ns: self.created_ns,
        }
    }
}

/// The key of a note's attachment: the note's id, then the name key.
fn file_key(note: NoteId, key: &str) -> Vec<u8> {
    let mut k = id_key(note).into_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

/// The key of the by-name index: the name key, a 0 byte, the note's id.
fn name_index_key(key: &str, note: NoteId) -> Vec<u8> {
    let mut k = key.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(id_key(note).as_ref());
    k
}

/// The attachments of a note, in name key order.
fn rows(t: &Trees, note: NoteId) -> Result<Vec<Attachment>> {
    let mut out = Vec::new();
    for item in t.attachments.scan_prefix(id_key(note)) {
        let (_, v) = item.db()?;
        out.push(decode::<AttachmentRow>("attachments", &v)?.into_attachment(note));
    }
    Ok(out)
}

/// The writes that remove every attachment of `note`.
fn removal_ops(t: &Trees, note: NoteId, ops: &mut Vec<Op>) -> Result<()> {
    for a in rows(t, note)? {
        let key = omegi_core::note::attachment_key(&a.name);
        let k = file_key(note, &key);
        ops.push((T_ATTACHMENTS, k.clone(), None));
        ops.push((T_ATTACHMENT_DATA, k, None));
        ops.push((T_ATTACHMENTS_BY_NAME, name_index_key(&key, note), None));
    }
    Ok(())
}

/// The size of the file an attachment row describes (for the disk
/// report).
pub(crate) fn row_size(row: &[u8]) -> Result<u64> {
    Ok(decode::<AttachmentRow>("attachments", row)?.size)
}

/// The bytes of every attachment, in (note, name) order: what an export
/// carries.
pub(crate) fn all_attachments(
    t: &Trees,
) -> impl Iterator<Item = Result<(Attachment, Vec<u8>)>> + '_ {
    t.attachments.iter().map(move |item| {
        let (k, v) = item.db()?;
        let id = leading_id("attachments", &k)?;
        let a = decode::<AttachmentRow>("attachments", &v)?.into_attachment(id);
        let data = t
            .attachment_data
            .get(&k)
            .db()?
            .ok_or_else(|| Error::corrupt("attachment_data", "an attachment without bytes"))?;
        Ok((a, data.to_vec()))
    })
}

/// Reads straight from the trees.
struct SledReads<'a> {
    t: &'a Trees,
}

impl SledReads<'_> {
    /// The notes listed under `name` in an index keyed by `name id`.
    fn in_index(&self, tree: &sled::Tree, what: &'static str, name: &str) -> Result<Vec<Note>> {
        let mut out = Vec::new();
        for item in tree.scan_prefix(Key::new().str(what, name)?) {
            let (k, _) = item.db()?;
            if let Some(n) = read_note(self.t, trailing_id("note index", &k)?)? {
                out.push(n);
            }
        }
        Ok(out)
    }
}

impl NoteReads for SledReads<'_> {
    fn note(&mut self, id: NoteId) -> Result<Option<Note>> {
        read_note(self.t, id)
    }

    fn named(&mut self, key: &str) -> Result<Vec<NameEntry>> {
        let mut out = Vec::new();
        if key.len() > MAX_NAME_BYTES {
            return Ok(out);
        }
        for item in self.t.note_names.scan_prefix(name_prefix(key)?) {
            let (k, v) = item.db()?;
            let owner = decode::<Owner>("note_names", &v)?;
            // name, kind (u8), created (u64), id (16 bytes).
            let tail = k
                .len()
                .checked_sub(25)
                .ok_or_else(|| Error::corrupt("note_names", "key too short"))?;
            let via = if k[tail] == 0 { Via::Title } else { Via::Alias };
            let created_ns = u64::from_be_bytes(
                k[tail + 1..tail + 9]
                    .try_into()
                    .map_err(|_| Error::corrupt("note_names", "key too short"))?,
            );
            out.push(NameEntry {
                key: key.to_owned(),
                via,
                id: trailing_id("note_names", &k)?,
                created_ns,
                public: owner.public,
                author: owner.author,
                folder: owner.folder,
            });
        }
        Ok(out)
    }

    fn linking(&mut self, key: &str) -> Result<Vec<LinkEntry>> {
        let mut out = Vec::new();
        if key.len() > MAX_NAME_BYTES {
            return Ok(out);
        }
        for item in self.t.note_links.scan_prefix(name_prefix(key)?) {
            let (k, v) = item.db()?;
            let owner = decode::<Owner>("note_links", &v)?;
            out.push(LinkEntry {
                id: trailing_id("note_links", &k)?,
                public: owner.public,
                author: owner.author,
            });
        }
        Ok(out)
    }

    fn by_author(&mut self, author: &str) -> Result<Vec<Note>> {
        self.in_index(&self.t.notes_by_author, "user", author)
    }

    fn by_issue(&mut self, fingerprint: &str) -> Result<Vec<Note>> {
        self.in_index(&self.t.notes_by_issue, "fingerprint", fingerprint)
    }

    fn all(&mut self) -> Result<Vec<Note>> {
        all_notes(self.t).collect()
    }

    fn count(&mut self) -> Result<usize> {
        Ok(self.t.notes.len())
    }

    fn attachments(&mut self, note: NoteId) -> Result<Vec<Attachment>> {
        rows(self.t, note)
    }

    fn attachment(&mut self, note: NoteId, key: &str) -> Result<Option<Attachment>> {
        match self.t.attachments.get(file_key(note, key)).db()? {
            Some(row) => Ok(Some(
                decode::<AttachmentRow>("attachments", &row)?.into_attachment(note),
            )),
            None => Ok(None),
        }
    }

    fn attachment_bytes(&mut self, note: NoteId, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .t
            .attachment_data
            .get(file_key(note, key))
            .db()?
            .map(|v| v.to_vec()))
    }

    fn attachment_holders(&mut self, key: &str) -> Result<Vec<NoteId>> {
        let mut prefix = key.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.t.attachments_by_name.scan_prefix(&prefix) {
            let (k, _) = item.db()?;
            out.push(trailing_id("attachments_by_name", &k)?);
        }
        Ok(out)
    }
}

/// A writer holding the notes lock: reads from the trees, collects its
/// writes.
struct SledTx<'a> {
    reads: SledReads<'a>,
    changes: Vec<Change>,
    files: Vec<Op>,
}

macro_rules! delegate_reads {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        impl NoteReads for SledTx<'_> {
            $(fn $name(&mut self, $($arg: $ty),*) -> Result<$out> {
                self.reads.$name($($arg),*)
            })*
        }
    };
}

delegate_reads! {
    note(id: NoteId) -> Option<Note>;
    named(key: &str) -> Vec<NameEntry>;
    linking(key: &str) -> Vec<LinkEntry>;
    by_author(author: &str) -> Vec<Note>;
    by_issue(fingerprint: &str) -> Vec<Note>;
    all() -> Vec<Note>;
    count() -> usize;
    attachments(note: NoteId) -> Vec<Attachment>;
    attachment(note: NoteId, key: &str) -> Option<Attachment>;
    attachment_bytes(note: NoteId, key: &str) -> Option<Vec<u8>>;
    attachment_holders(key: &str) -> Vec<NoteId>;
}

impl NoteTx for SledTx<'_> {
    fn put(&mut self, changes: &[Change]) -> Result<()> {
        for c in changes {
            if let (Some(old), None) = (&c.old, &c.new) {
                removal_ops(self.reads.t, old.id, &mut self.files)?;
            }
        }
        self.changes.extend_from_slice(changes);
        Ok(())
    }

    fn put_attachment(&mut self, a: &Attachment, bytes: &[u8]) -> Result<()> {
        let key = omegi_core::note::attachment_key(&a.name);
        let k = file_key(a.note, &key);
        self.files.push((
            T_ATTACHMENTS,
            k.clone(),
            Some(encode(&AttachmentRow::of(a))?),
        ));
        self.files
            .push((T_ATTACHMENT_DATA, k, Some(bytes.to_vec())));
        self.files.push((
            T_ATTACHMENTS_BY_NAME,
            name_index_key(&key, a.note),
            Some(Vec::new()),
        ));
        Ok(())
    }

    fn remove_attachment(&mut self, note: NoteId, key: &str) -> Result<()> {
        let k = file_key(note, key);
        self.files.push((T_ATTACHMENTS, k.clone(), None));
        self.files.push((T_ATTACHMENT_DATA, k, None));
        self.files
            .push((T_ATTACHMENTS_BY_NAME, name_index_key(key, note), None));
        Ok(())
    }
}

impl NoteStorage for Embedded {
    fn read(&self, f: &mut dyn FnMut(&mut dyn NoteReads) -> Result<()>) -> Result<()> {
        f(&mut SledReads { t: &self.core().t })
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn NoteTx) -> Result<()>) -> Result<()> {
        let _guard = self.core().notes.lock();
        let t = &self.core().t;
        let mut tx = SledTx {
            reads: SledReads { t },
            changes: Vec::new(),
            files: Vec::new(),
        };
        f(&mut tx)?;
        let SledTx { changes, files, .. } = tx;
        if changes.is_empty() {
            // Only files change: the notes, and so their generation and
            // search index, stay as they are.
            if !files.is_empty() {
                apply(t, &files, false)?;
            }
            return Ok(());
        }
        let mut generation = 0;
        let mut files = Some(files);
        for chunk in changes.chunks(BULK_CHUNK) {
            let mut ops = files.take().unwrap_or_default();
            for c in chunk {
                plan(c.old.as_ref(), c.new.as_ref(), &mut ops)?;
            }
            generation = apply(t, &ops, true)?;
        }
        let removed: Vec<NoteId> = changes
            .iter()
            .filter_map(|c| c.old.as_ref().or(c.new.as_ref()).map(|n| n.id))
            .collect();
        let added: Vec<&Note> = changes.iter().filter_map(|c| c.new.as_ref()).collect();
        self.index_notes(&removed, &added, generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_1_notes_gain_folders_and_a_new_index_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let (linked, linking) = (NoteId::now_v7(), NoteId::now_v7());
        {
            let store = Embedded::open(dir.path()).unwrap();
            let t = &store.core().t;
            let v1 = |title: &str, body: &str, created_ns| NoteRowV1 {
                author: "kim".into(),
                title: title.into(),
                body: body.into(),
                tags: Vec::new(),
                aliases: Vec::new(),
                public: true,
                issues: Vec::new(),
                created_ns,
                updated_ns: created_ns,
                revision: 1,
            };
            #[derive(Serialize)]
            struct OwnerV1 {
                public: bool,
                author: String,
            }
            let old_owner = encode(&OwnerV1 {
                public: true,
                author: "kim".into(),
            })
            .unwrap();
            t.notes
                .insert(id_key(linked), encode(&v1("Setup", "", 1)).unwrap())
                .unwrap();
            t.notes
                .insert(
                    id_key(linking),
                    encode(&v1("Index", "[[Setup]]", 2)).unwrap(),
                )
                .unwrap();
            let mut k = name_prefix("setup").unwrap().u8(0).u64(1).into_vec();
            k.extend_from_slice(id_key(linked).as_ref());
            t.note_names.insert(k, old_owner).unwrap();
            t.notes_meta.remove(META_LAYOUT).unwrap();
            t.notes_meta.flush().unwrap();
        }
        let store = Embedded::open(dir.path()).unwrap();
        let note = store.notes().get(linked, "lee").unwrap().unwrap();
        assert_eq!((note.title.as_str(), note.folder.as_str()), ("Setup", ""));
        assert_eq!(
            store.notes().resolve_link("Setup", "lee").unwrap(),
            Some(linked)
        );
        assert_eq!(
            store
                .notes()
                .backlinks(linked, "lee")
                .unwrap()
                .iter()
                .map(|n| n.id)
                .collect::<Vec<_>>(),
            vec![linking]
        );
        let layout = store.core().t.notes_meta.get(META_LAYOUT).unwrap().unwrap();
        assert_eq!(layout.as_ref(), NOTES_LAYOUT.to_be_bytes());
    }

    #[test]
    fn ids_round_trip_through_keys() {
        let id = NoteId::now_v7();
        let key = id_key(id).into_vec();
        assert_eq!(trailing_id("t", &key).unwrap(), id);
        assert!(trailing_id("t", &key[..5]).is_err());
    }
}
