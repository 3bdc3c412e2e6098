//! Error notes: their storage, the link and backlink index, rename and
//! delete, and the queries built on them (graph, embeds).
//!
//! A note is stored once, by id. Three indexes derive from it and are
//! written in the same transaction:
//!
//! - names: every name a `[[...]]` link can use for the note (its title and
//!   aliases, as lookup keys) → the note, with its owner and folder, so that
//!   a prefix scan finds every note a name may mean and core's
//!   [`best_match`] picks the one a link resolves to, exactly as the
//!   [`Resolver`] does (a path, then titles before aliases, then the
//!   linking note's folder, the shortest path, the oldest note);
//! - links: every link target a note's body names → the linking note, under
//!   the target's name and, for `[[Folder/Note]]`, its whole path too, so
//!   the backlinks of a note are found among the link entries under its
//!   names;
//! - by author and by issue, for listings and suggestions.
//!
//! Links are stored by target *name*, not by resolved id: a link to a note
//! that does not exist yet resolves as soon as it is created, a deleted note's
//! incoming links become unresolved without touching the notes that hold
//! them, and what a link resolves to depends on who looks (a private note is
//! invisible to everyone but its author).

use crate::error::Db;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use omegi_core::note::{
    best_match, expand_embeds, is_file_target, name_key, normalize_folder,
    to_html_with_attachments, AttachmentRef, Expanded, HtmlOptions, LinkPath, NameMatch, NoteGraph,
    NoteHtml, Via,
};
use omegi_core::{Fingerprint, Note, NoteId, Visibility};
use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::codec::{decode, encode};
use crate::error::{Error, Result};
use crate::keys::{check_name, Key, KeyReader};
use crate::search::SearchIndex;
use crate::{now_ns, Notes, Store, Trees};

/// Longest name key (title or alias, lowercased) the indexes keep.
const MAX_NAME_BYTES: usize = 4096;
/// Notes written per transaction by bulk writes.
const BULK_CHUNK: usize = 512;
const META_GENERATION: &[u8] = b"generation";
/// The layout of the notes' rows and indexes, kept in `notes_meta`.
const META_LAYOUT: &[u8] = b"layout";
/// Layout 2: rows and index entries carry the note's folder, and
/// `[[Folder/Note]]` links are indexed under the note's name too.
const NOTES_LAYOUT: u32 = 2;

/// A note to create with [`Notes::create`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewNote {
    /// The author (a user login); only they may change the note.
    pub author: String,
    /// Title: `[[Title]]` links resolve to it.
    pub title: String,
    /// The vault folder (`""`: the top); normalized when the note is
    /// created ([`normalize_folder`]).
    pub folder: String,
    /// Markdown body.
    pub body: String,
    /// Tags, without `#`.
    pub tags: Vec<String>,
    /// Other names links resolve by.
    pub aliases: Vec<String>,
    /// Who may see it.
    pub visibility: Visibility,
    /// Issues the note is about.
    pub issues: Vec<Fingerprint>,
}

impl NewNote {
    /// A private note without tags, aliases or issues.
    pub fn new(
        author: impl Into<String>,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        NewNote {
            author: author.into(),
            title: title.into(),
            body: body.into(),
            ..NewNote::default()
        }
    }

    /// Makes the note public.
    pub fn public(mut self) -> Self {
        self.visibility = Visibility::Public;
        self
    }

    /// Puts the note in a vault folder (`/`-separated).
    pub fn folder(mut self, folder: impl Into<String>) -> Self {
        self.folder = folder.into();
        self
    }

    /// Sets the tags.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the aliases.
    pub fn aliases<S: Into<String>>(mut self, aliases: impl IntoIterator<Item = S>) -> Self {
        self.aliases = aliases.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the linked issues.
    pub fn issues(mut self, issues: impl IntoIterator<Item = Fingerprint>) -> Self {
        self.issues = issues.into_iter().collect();
        self
    }
}

/// A change to a note for [`Notes::update`]; fields left `None` keep
/// their value. A new title renames the note as [`Notes::rename`] does,
/// rewriting the links to it, in the same revision as the other changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoteUpdate {
    /// New title.
    pub title: Option<String>,
    /// New folder (a move: links to the note follow).
    pub folder: Option<String>,
    /// New body.
    pub body: Option<String>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// New aliases.
    pub aliases: Option<Vec<String>>,
    /// New visibility.
    pub visibility: Option<Visibility>,
    /// New linked issues.
    pub issues: Option<Vec<Fingerprint>>,
}

impl NoteUpdate {
    /// Changes nothing (yet).
    pub fn new() -> Self {
        NoteUpdate::default()
    }

    /// Sets the title (a rename: links to the note follow).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets the folder (a move: links to the note follow).
    pub fn folder(mut self, folder: impl Into<String>) -> Self {
        self.folder = Some(folder.into());
        self
    }

    /// Sets the tags.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the aliases.
    pub fn aliases<S: Into<String>>(mut self, aliases: impl IntoIterator<Item = S>) -> Self {
        self.aliases = Some(aliases.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the visibility.
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = Some(visibility);
        self
    }

    /// Sets the linked issues.
    pub fn issues(mut self, issues: impl IntoIterator<Item = Fingerprint>) -> Self {
        self.issues = Some(issues.into_iter().collect());
        self
    }
}

/// Which notes [`Notes::list`] lists (always only those the viewer may see).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoteFilter {
    /// Only this author's notes.
    pub author: Option<String>,
    /// Only notes with this tag (case-insensitive; `a` also matches `a/b`).
    pub tag: Option<String>,
    /// Only notes linked to this issue.
    pub issue: Option<Fingerprint>,
    /// At most this many.
    pub limit: Option<usize>,
}

impl NoteFilter {
    /// Every visible note.
    pub fn all() -> Self {
        NoteFilter::default()
    }

    /// Only this author's notes.
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }

    /// Only notes with this tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only notes linked to this issue.
    pub fn issue(mut self, fingerprint: Fingerprint) -> Self {
        self.issue = Some(fingerprint);
        self
    }

    /// At most `limit` notes.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// Where a note's links lead, for one viewer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoteLinks {
    /// The notes it links to, in order of first appearance (links to itself
    /// left out).
    pub outgoing: Vec<Note>,
    /// Link targets that name no note the viewer may see, as first written.
    pub unresolved: Vec<String>,
}

/// What [`Notes::rename`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    /// The renamed note.
    pub note: Note,
    /// The other notes whose links were rewritten (each got a new revision).
    pub relinked: Vec<NoteId>,
}

/// The stored form of a note (postcard; owned by this crate so that the
/// on-disk layout changes only with the schema version).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoteRow {
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
struct NoteRowV1 {
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

    fn visible_to(&self, viewer: &str) -> bool {
        self.public || self.author == viewer
    }
}

/// Whether `title` can be the target of a `[[...]]` link.
fn check_title(title: &str) -> Result<()> {
    if title.trim().is_empty() {
        return Err(Error::InvalidNote("the title is empty".into()));
    }
    if title.contains(['[', ']', '|', '#', '^', '\n', '\r']) {
        return Err(Error::InvalidNote(format!(
            "title {:?} contains one of [ ] | # ^ or a line break",
            title.chars().take(64).collect::<String>()
        )));
    }
    if name_key(title).len() > MAX_NAME_BYTES {
        return Err(Error::InvalidNote(format!(
            "the title is longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

pub(crate) fn check_note(note: &Note) -> Result<()> {
    check_title(&note.title)?;
    match normalize_folder(&note.folder) {
        Ok(folder) if folder == note.folder => {}
        Ok(folder) => {
            return Err(Error::InvalidNote(format!(
                "folder {:?} is not in its normal form {folder:?}",
                note.folder.chars().take(64).collect::<String>()
            )))
        }
        Err(e) => return Err(Error::InvalidNote(e.to_string())),
    }
    check_name("user", &note.author)?;
    for alias in &note.aliases {
        if name_key(alias).len() > MAX_NAME_BYTES {
            return Err(Error::InvalidNote(format!(
                "an alias is longer than {MAX_NAME_BYTES} bytes"
            )));
        }
    }
    for fp in &note.issues {
        check_name("fingerprint", &fp.0)?;
    }
    Ok(())
}

/// The names and link targets of a note, as index keys.
struct Derived {
    /// (kind: 0 title, 1 alias; name key).
    names: Vec<(u8, String)>,
    /// Distinct link targets (by whole key), as first written.
    links: Vec<String>,
    /// The keys the links are indexed under ([`LinkPath::keys`]).
    link_keys: BTreeSet<String>,
}

fn derive(note: &Note) -> Derived {
    let parsed = note.parse();
    let title = name_key(&note.title);
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    if !title.is_empty() && title.len() <= MAX_NAME_BYTES {
        seen.insert(title.clone());
        names.push((0, title));
    }
    for alias in note.aliases.iter().chain(&parsed.front_matter.aliases) {
        let key = name_key(alias);
        if !key.is_empty() && key.len() <= MAX_NAME_BYTES && seen.insert(key.clone()) {
            names.push((1, key));
        }
    }
    let mut seen = HashSet::new();
    let mut links = Vec::new();
    let mut link_keys = BTreeSet::new();
    for link in &parsed.links {
        if link.target.is_empty() {
            continue;
        }
        let path = LinkPath::parse(&link.target);
        if path.whole.is_empty() || path.whole.len() > MAX_NAME_BYTES {
            continue;
        }
        if seen.insert(path.whole.clone()) {
            links.push(link.target.clone());
            link_keys.extend(path.keys().map(str::to_owned));
        }
    }
    Derived {
        names,
        links,
        link_keys,
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
pub(crate) fn trailing_note_id(tree: &'static str, key: &[u8]) -> Result<NoteId> {
    trailing_id(tree, key)
}

/// Reads the note id at the end of an index key.
fn trailing_id(tree: &'static str, key: &[u8]) -> Result<NoteId> {
    let tail = key
        .len()
        .checked_sub(16)
        .ok_or_else(|| Error::corrupt(tree, "key too short"))?;
    read_id(&mut KeyReader::new(tree, &key[tail..]))
}

fn name_prefix(key: &str) -> Result<Key> {
    Key::new().str("note name", key)
}

/// The trees of the notes, in transaction order.
const T_NOTES: usize = 0;
const T_NAMES: usize = 1;
const T_LINKS: usize = 2;
const T_AUTHOR: usize = 3;
const T_ISSUE: usize = 4;
const T_META: usize = 5;
pub(crate) const T_ATTACHMENTS: usize = 6;
pub(crate) const T_ATTACHMENT_DATA: usize = 7;
pub(crate) const T_ATTACHMENTS_BY_NAME: usize = 8;

type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// The index entries of one note, per tree.
fn entries(note: &Note) -> Result<[Entries; 4]> {
    let d = derive(note);
    let owner = encode(&Owner::of(note))?;
    let mut names = Entries::new();
    for (kind, key) in &d.names {
        let k = name_prefix(key)?.u8(*kind).u64(note.created_ns).into_vec();
        let mut k = k;
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
pub(crate) type Op = (usize, Vec<u8>, Option<Vec<u8>>);

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

/// A change of one note: what it was and what it becomes (`None`: absent).
pub(crate) struct Change {
    pub(crate) old: Option<Note>,
    pub(crate) new: Option<Note>,
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
            apply(t, &ops)?;
        }
    }
    t.notes_meta
        .insert(META_LAYOUT, &NOTES_LAYOUT.to_be_bytes())
        .db()?;
    t.notes_meta.flush().db()?;
    Ok(())
}

/// Applies `ops` and the next generation in one transaction; returns the
/// generation.
pub(crate) fn apply(t: &Trees, ops: &[Op]) -> Result<u64> {
    let generation = generation(t)? + 1;
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
            tx[T_META].insert(META_GENERATION, &generation.to_be_bytes())?;
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

impl Store {
    pub(crate) fn notes_lock(&self) -> MutexGuard<'_, ()> {
        self.core().notes.lock()
    }

    /// Checks a note someone writes (create, update, import) against the
    /// note limits, its size first so that an oversized body is refused
    /// before it is parsed, then its names.
    pub(crate) fn check_new_note(&self, note: &Note) -> Result<()> {
        self.notes().limits().check(note)?;
        check_note(note)
    }

    /// Writes changes (the caller holds the notes lock): the store in
    /// transactions of at most [`BULK_CHUNK`] notes, then the search index
    /// in one commit.
    pub(crate) fn commit_changes(&self, changes: &[Change]) -> Result<()> {
        self.commit_changes_with(changes, Vec::new())
    }

    /// [`Store::commit_changes`], with `extra` writes (the attachments of
    /// deleted notes) in the first transaction.
    pub(crate) fn commit_changes_with(&self, changes: &[Change], extra: Vec<Op>) -> Result<()> {
        let t = &self.core().t;
        let mut generation = None;
        let mut extra = Some(extra);
        for chunk in changes.chunks(BULK_CHUNK) {
            let mut ops = extra.take().unwrap_or_default();
            for c in chunk {
                plan(c.old.as_ref(), c.new.as_ref(), &mut ops)?;
            }
            generation = Some(apply(t, &ops)?);
        }
        let Some(generation) = generation else {
            return Ok(());
        };
        let removed: Vec<NoteId> = changes
            .iter()
            .filter_map(|c| c.old.as_ref().or(c.new.as_ref()).map(|n| n.id))
            .collect();
        let added: Vec<&Note> = changes.iter().filter_map(|c| c.new.as_ref()).collect();
        self.index_notes(&removed, &added, generation)
    }

    /// The note if it exists and `viewer` may see it.
    pub(crate) fn visible_note(&self, id: NoteId, viewer: &str) -> Result<Note> {
        match read_note(&self.core().t, id)? {
            Some(n) if n.visible_to(viewer) => Ok(n),
            _ => Err(Error::NoteNotFound { id }),
        }
    }

    /// The note if `viewer` may change it.
    pub(crate) fn owned_note(&self, id: NoteId, viewer: &str) -> Result<Note> {
        let note = self.visible_note(id, viewer)?;
        if note.author != viewer {
            return Err(Error::NotNoteAuthor {
                id,
                author: note.author,
                viewer: viewer.to_owned(),
            });
        }
        Ok(note)
    }

    /// Renames `stored` (as it is in the store) to `new_title`, with the
    /// other changes already made in `edited`; rewrites the links that name
    /// it. Call with the notes lock held.
    fn rename_locked(&self, stored: Note, edited: Note, new_title: &str) -> Result<Renamed> {
        let t = &self.core().t;
        let id = stored.id;
        // The notes that matter: those sharing a name with the renamed one
        // (they decide what its names resolve to), those linking to one of
        // its names, and those that already have the new name.
        let mut ids = BTreeSet::from([id]);
        let mut scan = |tree: &sled::Tree, key: &str| -> Result<()> {
            for item in tree.scan_prefix(name_prefix(key)?) {
                let (k, _) = item.db()?;
                ids.insert(trailing_id("note index", &k)?);
            }
            Ok(())
        };
        for (_, key) in derive(&stored).names {
            scan(&t.note_names, &key)?;
            scan(&t.note_links, &key)?;
        }
        let new_key = name_key(new_title);
        if new_key.len() <= MAX_NAME_BYTES {
            scan(&t.note_names, &new_key)?;
        }
        let mut notes = Vec::with_capacity(ids.len());
        for nid in ids {
            if nid == id {
                notes.push(stored.clone());
            } else if let Some(n) = read_note(t, nid)? {
                notes.push(n);
            }
        }
        let plan = omegi_core::note::rename_edited_note(&notes, &edited, new_title)
            .map_err(|e| Error::InvalidNote(e.to_string()))?;
        let mut bodies: HashMap<NoteId, String> = plan.bodies.into_iter().collect();

        let mut renamed = edited;
        if let Some(body) = bodies.remove(&id) {
            renamed.body = body;
        }
        renamed.title = new_title.trim().to_owned();
        if let Some(former) = plan.former_title_alias {
            // Kept while the note has room for another alias.
            let mut with_alias = renamed.clone();
            if !with_alias
                .all_aliases()
                .iter()
                .any(|a| name_key(a) == name_key(&former))
            {
                with_alias.aliases.push(former);
            }
            if self.notes().limits().check(&with_alias).is_ok() {
                renamed = with_alias;
            }
        }
        self.check_new_note(&renamed)?;
        bump(&mut renamed, stored.updated_ns);
        let mut changes = vec![Change {
            old: Some(stored),
            new: Some(renamed.clone()),
        }];
        let mut relinked = Vec::new();
        for n in notes {
            let Some(body) = bodies.remove(&n.id).filter(|b| *b != n.body) else {
                continue;
            };
            let mut changed = n.clone();
            changed.body = body;
            bump(&mut changed, n.updated_ns);
            relinked.push(n.id);
            changes.push(Change {
                old: Some(n),
                new: Some(changed),
            });
        }
        self.commit_changes(&changes)?;
        Ok(Renamed {
            note: renamed,
            relinked,
        })
    }

    fn change_issues(
        &self,
        id: NoteId,
        viewer: &str,
        edit: impl FnOnce(&mut Vec<Fingerprint>) -> bool,
    ) -> Result<Note> {
        let _guard = self.notes_lock();
        let old = self.owned_note(id, viewer)?;
        let mut note = old.clone();
        if !edit(&mut note.issues) {
            return Ok(old);
        }
        check_note(&note)?;
        bump(&mut note, old.updated_ns);
        self.commit_changes(&[Change {
            old: Some(old),
            new: Some(note.clone()),
        }])?;
        Ok(note)
    }

    /// The notes listed under `name` in an index keyed by `name id`.
    fn notes_in_index(
        &self,
        tree: &sled::Tree,
        what: &'static str,
        name: &str,
    ) -> Result<impl Iterator<Item = Result<Note>> + '_> {
        let prefix = Key::new().str(what, name)?;
        let t = &self.core().t;
        Ok(tree.scan_prefix(prefix).filter_map(move |item| {
            let f = || -> Result<Option<Note>> {
                let (k, _) = item.db()?;
                read_note(t, trailing_id("note index", &k)?)
            };
            f().transpose()
        }))
    }

    fn html_of(&self, note: &Note, viewer: &str) -> Result<NoteHtml> {
        let t = &self.core().t;
        let own_names: HashSet<String> = std::iter::once(&note.title)
            .chain(note.all_aliases().iter())
            .map(|n| name_key(n))
            .collect();
        let options = HtmlOptions::default().embeds(self.core().config.embeds);
        to_html_with_attachments(
            note,
            viewer,
            &options,
            |target, from| match self.notes().resolve_link_from(target, from, viewer)? {
                Some(id) if id == note.id => Ok(Some(note.clone())),
                Some(id) => read_note(t, id),
                None if own_names.contains(&name_key(target)) => Ok(Some(note.clone())),
                None => Ok(None),
            },
            |target, from| {
                Ok(self
                    .notes()
                    .find_attachment(target, from, viewer)?
                    .map(|a| AttachmentRef {
                        note: a.note,
                        name: a.name,
                        inline_image: a.inline_image,
                    }))
            },
        )
    }
}

impl Notes<'_> {
    /// What one note may hold in this store.
    pub fn limits(&self) -> omegi_core::note::NoteLimits {
        self.core().config.note_limits
    }

    /// Creates a note (revision 1, a fresh UUID v7 id).
    pub fn create(&self, new: NewNote) -> Result<Note> {
        let now = now_ns();
        let mut note = Note::new(
            NoteId::now_v7(),
            new.author,
            new.title.trim(),
            new.body,
            now,
        );
        note.folder =
            normalize_folder(&new.folder).map_err(|e| Error::InvalidNote(e.to_string()))?;
        note.tags = new.tags;
        note.aliases = new.aliases;
        note.visibility = new.visibility;
        note.issues = dedup_issues(new.issues);
        self.store.check_new_note(&note)?;
        let _guard = self.store.notes_lock();
        self.store.commit_changes(&[Change {
            old: None,
            new: Some(note.clone()),
        }])?;
        Ok(note)
    }

    /// A note, if it exists and `viewer` may see it (it is public or theirs).
    pub fn get(&self, id: NoteId, viewer: &str) -> Result<Option<Note>> {
        Ok(read_note(&self.core().t, id)?.filter(|n| n.visible_to(viewer)))
    }

    /// Changes a note. Fails with [`Error::RevisionMismatch`] unless the
    /// note is at `expected_revision`, with [`Error::NotNoteAuthor`] unless
    /// `viewer` wrote it. The revision goes up by one (an update that changes
    /// nothing returns the note as it is); links and backlinks follow the
    /// new body. A new title or folder (a move) also rewrites the links to
    /// the note (each note whose body changed gets a new revision), all
    /// under the same check.
    pub fn update(
        &self,
        id: NoteId,
        viewer: &str,
        update: NoteUpdate,
        expected_revision: u64,
    ) -> Result<Note> {
        if let Some(title) = &update.title {
            check_title(title)?;
        }
        let _guard = self.store.notes_lock();
        let old = self.store.owned_note(id, viewer)?;
        if old.revision != expected_revision {
            return Err(Error::RevisionMismatch {
                id,
                expected: expected_revision,
                actual: old.revision,
            });
        }
        let mut note = old.clone();
        if let Some(body) = update.body {
            note.body = body;
        }
        if let Some(folder) = &update.folder {
            note.folder =
                normalize_folder(folder).map_err(|e| Error::InvalidNote(e.to_string()))?;
        }
        if let Some(tags) = update.tags {
            note.tags = tags;
        }
        if let Some(aliases) = update.aliases {
            note.aliases = aliases;
        }
        if let Some(v) = update.visibility {
            note.visibility = v;
        }
        if let Some(issues) = update.issues {
            note.issues = dedup_issues(issues);
        }
        self.store.check_new_note(&note)?;
        if let Some(title) = update.title.filter(|t| t.trim() != old.title) {
            return Ok(self.store.rename_locked(old, note, &title)?.note);
        }
        if note.folder != old.folder {
            let title = old.title.clone();
            return Ok(self.store.rename_locked(old, note, &title)?.note);
        }
        if note == old {
            // Nothing changes: no new revision.
            return Ok(old);
        }
        bump(&mut note, old.updated_ns);
        self.store.commit_changes(&[Change {
            old: Some(old),
            new: Some(note.clone()),
        }])?;
        Ok(note)
    }

    /// Renames a note and rewrites the links that named it by its old title,
    /// as far as the author may see: in their own notes and in public ones,
    /// and only links that resolved to this note for the author of the
    /// note holding them (see [`omegi_core::note::rename_note`]; links
    /// through an alias stay). A public note keeps its former title as an
    /// alias, so that links in private notes of others, which a rename never
    /// changes, keep leading to it. Each note whose body changed gets a new
    /// revision. Only the author may rename. To rename only the revision
    /// one has seen, use [`Notes::update`] with a title.
    pub fn rename(&self, id: NoteId, viewer: &str, new_title: &str) -> Result<Renamed> {
        check_title(new_title)?;
        let _guard = self.store.notes_lock();
        let old = self.store.owned_note(id, viewer)?;
        if old.title == new_title.trim() {
            return Ok(Renamed {
                note: old,
                relinked: Vec::new(),
            });
        }
        self.store.rename_locked(old.clone(), old, new_title)
    }

    /// Deletes a note and its attachments, in one transaction; returns it.
    /// Its outgoing links go with it; links to it from other notes become
    /// unresolved. Only the author may delete.
    pub fn delete(&self, id: NoteId, viewer: &str) -> Result<Note> {
        let _guard = self.store.notes_lock();
        let old = self.store.owned_note(id, viewer)?;
        let files = crate::attachments::removal_ops(&self.core().t, id)?;
        self.store.commit_changes_with(
            &[Change {
                old: Some(old.clone()),
                new: None,
            }],
            files,
        )?;
        Ok(old)
    }

    /// Links a note to an issue (a new revision; nothing changes if it
    /// already is). Only the author may.
    pub fn link_to_issue(
        &self,
        id: NoteId,
        viewer: &str,
        fingerprint: &Fingerprint,
    ) -> Result<Note> {
        self.store.change_issues(id, viewer, |issues| {
            if issues.contains(fingerprint) {
                false
            } else {
                issues.push(fingerprint.clone());
                true
            }
        })
    }

    /// Removes a note's link to an issue (a new revision if it had one).
    pub fn unlink_from_issue(
        &self,
        id: NoteId,
        viewer: &str,
        fingerprint: &Fingerprint,
    ) -> Result<Note> {
        self.store.change_issues(id, viewer, |issues| {
            let before = issues.len();
            issues.retain(|f| f != fingerprint);
            issues.len() != before
        })
    }

    /// The notes `viewer` may see that pass `filter`, most recently updated
    /// first.
    pub fn list(&self, viewer: &str, filter: &NoteFilter) -> Result<Vec<Note>> {
        let t = &self.core().t;
        let candidates: Box<dyn Iterator<Item = Result<Note>>> = if let Some(fp) = &filter.issue {
            Box::new(
                self.store
                    .notes_in_index(&t.notes_by_issue, "fingerprint", &fp.0)?,
            )
        } else if let Some(author) = &filter.author {
            Box::new(
                self.store
                    .notes_in_index(&t.notes_by_author, "user", author)?,
            )
        } else {
            Box::new(all_notes(t))
        };
        let tag = filter.tag.as_deref().map(str::to_lowercase);
        let mut out = Vec::new();
        for note in candidates {
            let note = note?;
            if !note.visible_to(viewer) {
                continue;
            }
            if filter.author.as_ref().is_some_and(|a| *a != note.author) {
                continue;
            }
            if filter
                .issue
                .as_ref()
                .is_some_and(|f| !note.issues.contains(f))
            {
                continue;
            }
            if let Some(tag) = &tag {
                if !note.all_tags().iter().any(|t| tag_matches(t, tag)) {
                    continue;
                }
            }
            out.push(note);
        }
        out.sort_by(|a, b| b.updated_ns.cmp(&a.updated_ns).then(b.id.cmp(&a.id)));
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// The notes linked to an issue that `viewer` may see, most recently
    /// updated first.
    pub fn for_issue(&self, fingerprint: &Fingerprint, viewer: &str) -> Result<Vec<Note>> {
        self.list(viewer, &NoteFilter::all().issue(fingerprint.clone()))
    }

    /// The note a link target names for `viewer`, for a link at the top of
    /// the vault (see [`Notes::resolve_link_from`]).
    pub fn resolve_link(&self, target: &str, viewer: &str) -> Result<Option<NoteId>> {
        self.resolve_link_from(target, "", viewer)
    }

    /// The note a link target names for `viewer`, for a link written in a
    /// note in `from_folder`: among the notes they may see that have the
    /// target's name, the one core's [`best_match`] picks (by path, titles
    /// before aliases, then the same folder, the shortest path, the oldest).
    pub fn resolve_link_from(
        &self,
        target: &str,
        from_folder: &str,
        viewer: &str,
    ) -> Result<Option<NoteId>> {
        let path = LinkPath::parse(target);
        if path.whole.is_empty() || path.whole.len() > MAX_NAME_BYTES {
            return Ok(None);
        }
        struct Found {
            key: String,
            via: Via,
            folder: String,
            created_ns: u64,
            id: NoteId,
        }
        let mut found = Vec::new();
        for key in path.keys() {
            for item in self.core().t.note_names.scan_prefix(name_prefix(key)?) {
                let (k, v) = item.db()?;
                let owner = decode::<Owner>("note_names", &v)?;
                if !owner.visible_to(viewer) {
                    continue;
                }
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
                found.push(Found {
                    key: key.to_owned(),
                    via,
                    folder: owner.folder,
                    created_ns,
                    id: trailing_id("note_names", &k)?,
                });
            }
        }
        let best = best_match(
            &path,
            from_folder,
            found.iter().map(|f| NameMatch {
                id: f.id,
                key: &f.key,
                via: f.via,
                folder: &f.folder,
                created_ns: f.created_ns,
            }),
        );
        Ok(best.map(|m| m.id))
    }

    /// The notes that link to `id`, as `viewer` sees them (only notes they
    /// may see, and only links that resolve to `id` for them, from the
    /// folder of the note holding the link), sorted by title.
    pub fn backlinks(&self, id: NoteId, viewer: &str) -> Result<Vec<Note>> {
        let t = &self.core().t;
        let note = self.store.visible_note(id, viewer)?;
        let mut sources = BTreeSet::new();
        let names: HashSet<String> = derive(&note).names.into_iter().map(|(_, k)| k).collect();
        for key in &names {
            for item in t.note_links.scan_prefix(name_prefix(key)?) {
                let (k, v) = item.db()?;
                let source = trailing_id("note_links", &k)?;
                if source != id && decode::<Owner>("note_links", &v)?.visible_to(viewer) {
                    sources.insert(source);
                }
            }
        }
        let mut resolved: HashMap<(String, String), Option<NoteId>> = HashMap::new();
        let mut out = Vec::with_capacity(sources.len());
        for source in sources {
            let Some(n) = read_note(t, source)?.filter(|n| n.visible_to(viewer)) else {
                continue;
            };
            let mut links_here = false;
            for target in derive(&n).links {
                if !LinkPath::parse(&target).keys().any(|k| names.contains(k)) {
                    continue;
                }
                let key = (n.folder.to_lowercase(), name_key(&target));
                let to = match resolved.get(&key) {
                    Some(to) => *to,
                    None => {
                        let to = self.resolve_link_from(&target, &n.folder, viewer)?;
                        resolved.insert(key, to);
                        to
                    }
                };
                if to == Some(id) {
                    links_here = true;
                    break;
                }
            }
            if links_here {
                out.push(n);
            }
        }
        out.sort_by_cached_key(|n| (n.title.to_lowercase(), n.id));
        Ok(out)
    }

    /// Where a note's links lead for `viewer`.
    pub fn links(&self, id: NoteId, viewer: &str) -> Result<NoteLinks> {
        let note = self.store.visible_note(id, viewer)?;
        let mut out = NoteLinks::default();
        let mut seen = HashSet::new();
        for written in derive(&note).links {
            match self.resolve_link_from(&written, &note.folder, viewer)? {
                Some(target) if target == id => {}
                Some(target) => {
                    if seen.insert(target) {
                        if let Some(n) = read_note(&self.core().t, target)? {
                            out.outgoing.push(n);
                        }
                    }
                }
                // A file is an attachment, never an unresolved note.
                None if is_file_target(&written) => {}
                None => out.unresolved.push(written),
            }
        }
        Ok(out)
    }

    /// The link graph of every note `viewer` may see.
    pub fn graph(&self, viewer: &str) -> Result<NoteGraph> {
        let mut notes = Vec::new();
        for note in all_notes(&self.core().t) {
            let note = note?;
            if note.visible_to(viewer) {
                notes.push(note);
            }
        }
        Ok(NoteGraph::build(&notes, viewer))
    }

    /// A note's Markdown with its `![[...]]` embeds expanded, as `viewer`
    /// sees it: embeds of notes they may not see stay as written. The
    /// expansion stays within the store's [embed
    /// options](crate::Config::embeds): embedded notes are read only as the
    /// rendering reaches them, and past the budget an embed stays a link
    /// followed by [`EMBED_LIMIT_MARKER`](omegi_core::note::EMBED_LIMIT_MARKER).
    pub fn render(&self, id: NoteId, viewer: &str) -> Result<String> {
        Ok(self.expand(id, viewer)?.markdown)
    }

    /// [`Notes::render`], and whether the expansion reached its
    /// budget.
    pub fn expand(&self, id: NoteId, viewer: &str) -> Result<Expanded> {
        let note = self.store.visible_note(id, viewer)?;
        let t = &self.core().t;
        expand_embeds(
            &note,
            viewer,
            self.core().config.embeds,
            |target, from| match self.resolve_link_from(target, from, viewer)? {
                Some(target) => read_note(t, target),
                None => Ok(None),
            },
        )
    }

    /// A note as HTML for `viewer`
    /// ([`to_html_with_attachments`]):
    /// its files embedded from the notes `viewer` may see, its `[[links]]`
    /// resolved as they resolve for `viewer` (a note they may not see is an
    /// unresolved link), its embeds expanded within the store's [embed
    /// options](crate::Config::embeds), its links leading to the web UI's
    /// routes ([`HtmlOptions`]'s defaults).
    pub fn html(&self, id: NoteId, viewer: &str) -> Result<NoteHtml> {
        let note = self.store.visible_note(id, viewer)?;
        self.store.html_of(&note, viewer)
    }

    /// A note being written, not stored as it is, as HTML for its author:
    /// what [`Notes::html`] answers once it is saved. The note is
    /// checked against the note limits first, as a save would check it
    /// (its size before anything is parsed); its names are not checked, so
    /// that a title still being typed (empty, or with a `#`) previews.
    /// Links to its own title or aliases, and to its id's stored version,
    /// lead to the note itself.
    pub fn preview_html(&self, note: &Note) -> Result<NoteHtml> {
        self.limits().check(note)?;
        self.store.html_of(note, &note.author)
    }

    /// The notes `viewer` may see whose prose names `id`'s title or an
    /// alias as a whole word without linking to it (its unlinked
    /// mentions, as [`NoteGraph::unlinked_mentions`] finds them), sorted
    /// by title.
    pub fn unlinked_mentions(&self, id: NoteId, viewer: &str) -> Result<Vec<Note>> {
        self.store.visible_note(id, viewer)?;
        let mut notes = HashMap::new();
        for note in all_notes(&self.core().t) {
            let note = note?;
            if note.visible_to(viewer) {
                notes.insert(note.id, note);
            }
        }
        let graph = NoteGraph::build(notes.values(), viewer);
        Ok(graph
            .unlinked_mentions(id)
            .into_iter()
            .filter_map(|m| notes.remove(&m))
            .collect())
    }

    /// Writes notes exactly as given (ids, authors, revisions and times
    /// kept), replacing stored notes with the same id, with one commit of
    /// the search index. For restores and bulk loads; returns how many were
    /// written.
    pub fn restore(&self, notes: impl IntoIterator<Item = Note>) -> Result<usize> {
        let mut by_id: BTreeMap<NoteId, Note> = BTreeMap::new();
        for note in notes {
            self.store.check_new_note(&note)?;
            by_id.insert(note.id, note);
        }
        let _guard = self.store.notes_lock();
        let t = &self.core().t;
        let mut changes = Vec::with_capacity(by_id.len());
        for (id, note) in by_id {
            changes.push(Change {
                old: read_note(t, id)?,
                new: Some(note),
            });
        }
        self.store.commit_changes(&changes)?;
        Ok(changes.len())
    }

    /// How many notes the store holds.
    pub fn count(&self) -> usize {
        self.core().t.notes.len()
    }
}

/// Whether tag `t` matches the lowercase filter `tag` (itself or a child);
/// folders are filtered the same way.
pub(crate) fn tag_matches(t: &str, tag: &str) -> bool {
    let t = t.to_lowercase();
    t == tag
        || t.strip_prefix(tag)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn dedup_issues(issues: Vec<Fingerprint>) -> Vec<Fingerprint> {
    let mut out: Vec<Fingerprint> = Vec::with_capacity(issues.len());
    for fp in issues {
        if !out.contains(&fp) {
            out.push(fp);
        }
    }
    out
}

/// A new revision, updated now (never earlier than before).
fn bump(note: &mut Note, previous_ns: u64) {
    note.revision += 1;
    note.updated_ns = now_ns().max(previous_ns);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_keys_follow_the_resolver() {
        assert_eq!(name_key("  Payment Timeout.MD "), "payment timeout");
        assert_eq!(name_key("결제 서비스"), "결제 서비스");
        assert_eq!(name_key(".md"), "");
    }

    #[test]
    fn layout_1_notes_gain_folders_and_a_new_index_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let (linked, linking) = (NoteId::now_v7(), NoteId::now_v7());
        {
            let store = Store::open(dir.path()).unwrap();
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
        let store = Store::open(dir.path()).unwrap();
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

    #[test]
    fn titles_that_break_links_are_refused() {
        assert!(check_title("a [b]").is_err());
        assert!(check_title("  ").is_err());
        assert!(check_title("a|b").is_err());
        check_title("결제 서비스 타임아웃").unwrap();
    }

    #[test]
    fn nested_tags_match_their_parent() {
        assert!(tag_matches("Payments/Stripe", "payments"));
        assert!(tag_matches("payments", "payments"));
        assert!(!tag_matches("paymentsx", "payments"));
    }
}
