//! Error notes: the rules of writing, linking, renaming and reading them,
//! written once over [`NoteStorage`], the narrow interface each backend
//! implements ([`sled`] for the embedded store, `postgres::notes` for
//! PostgreSQL).
//!
//! [`Notes`] stays one concrete type, the same for every backend, rather
//! than a public trait like [`Accounts`](crate::Accounts): what a note's
//! links are, what a link resolves to for whom, what a rename rewrites and
//! who may see or change a note are decided here and only here, from what
//! the backend reads; a backend only stores, indexes and fetches, and
//! makes a write's changes all at once.
//!
//! Three indexes derive from a note ([`derive`]) and each backend keeps
//! them with the note, in the same transaction:
//!
//! - names: every name a `[[...]]` link can use for the note (its title and
//!   aliases, as lookup keys) → the note, with its owner and folder, so that
//!   a lookup finds every note a name may mean and core's [`best_match`]
//!   picks the one a link resolves to, exactly as the [`Resolver`] does (a
//!   path, then titles before aliases, then the linking note's folder, the
//!   shortest path, the oldest note);
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
//!
//! [`Resolver`]: omegi_core::note::Resolver

pub(crate) mod sled;
pub(crate) mod storage;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use omegi_core::note::{
    best_match, expand_embeds, is_file_target, name_key, normalize_folder,
    to_html_with_attachments, AttachmentLimits, AttachmentRef, EmbedOptions, Expanded, HtmlOptions,
    LinkPath, NameMatch, NoteGraph, NoteHtml, NoteLimits,
};
use omegi_core::{Fingerprint, Note, NoteId, Visibility};

use crate::error::{Error, Result};
use crate::keys::check_name;
use crate::{now_ns, Config, Embedded};

pub(crate) use self::sled::{all_notes, generation, migrate, NoteState};
pub(crate) use storage::{Change, NoteReads, NoteStorage, NoteTx};

/// Longest name key (title or alias, lowercased) the indexes keep.
pub(crate) const MAX_NAME_BYTES: usize = 4096;

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
pub(crate) struct Derived {
    /// (kind: 0 title, 1 alias; name key).
    pub(crate) names: Vec<(u8, String)>,
    /// Distinct link targets (by whole key), as first written.
    pub(crate) links: Vec<String>,
    /// The keys the links are indexed under ([`LinkPath::keys`]).
    pub(crate) link_keys: BTreeSet<String>,
}

pub(crate) fn derive(note: &Note) -> Derived {
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

/// What a store allows its notes: the settings [`Notes`] checks and
/// renders with, from the store's [`Config`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NoteSettings {
    pub(crate) note_limits: NoteLimits,
    pub(crate) attachment_limits: AttachmentLimits,
    pub(crate) embeds: EmbedOptions,
}

impl NoteSettings {
    pub(crate) fn of(config: &Config) -> Self {
        NoteSettings {
            note_limits: config.note_limits,
            attachment_limits: config.attachment_limits,
            embeds: config.embeds,
        }
    }
}

/// Error notes with their links and attached files, on any backend:
/// written ([`Notes::create`], [`Notes::update`], [`Notes::rename`],
/// [`Notes::delete`]), read for one viewer ([`Notes::get`],
/// [`Notes::list`], [`Notes::for_issue`]), followed ([`Notes::backlinks`],
/// [`Notes::links`], [`Notes::graph`], [`Notes::resolve_link_from`]),
/// rendered ([`Notes::render`], [`Notes::html`]), and moved to and from a
/// folder of Markdown files ([`Notes::import_vault`],
/// [`Notes::export_vault`]).
///
/// Returned by [`Store::notes`](crate::Store::notes) and
/// [`Database::notes`](crate::postgres::Database::notes); costs nothing to
/// make.
#[derive(Clone, Copy)]
pub struct Notes<'a> {
    pub(crate) storage: &'a dyn NoteStorage,
    pub(crate) settings: NoteSettings,
}

impl std::fmt::Debug for Notes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notes")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Embedded {
    /// The store's notes (see [`Notes`]).
    pub fn notes(&self) -> Notes<'_> {
        Notes {
            storage: self,
            settings: NoteSettings::of(&self.core().config),
        }
    }
}

/// The note if it exists and `viewer` may see it.
pub(crate) fn visible_note(r: &mut dyn NoteReads, id: NoteId, viewer: &str) -> Result<Note> {
    match r.note(id)? {
        Some(n) if n.visible_to(viewer) => Ok(n),
        _ => Err(Error::NoteNotFound { id }),
    }
}

/// The note if `viewer` may change it.
pub(crate) fn owned_note(r: &mut dyn NoteReads, id: NoteId, viewer: &str) -> Result<Note> {
    let note = visible_note(r, id, viewer)?;
    if note.author != viewer {
        return Err(Error::NotNoteAuthor {
            id,
            author: note.author,
            viewer: viewer.to_owned(),
        });
    }
    Ok(note)
}

/// The note a link target names for `viewer` from a note in `from_folder`
/// (see [`Notes::resolve_link_from`]).
fn resolve_in(
    r: &mut dyn NoteReads,
    target: &str,
    from_folder: &str,
    viewer: &str,
) -> Result<Option<NoteId>> {
    let path = LinkPath::parse(target);
    if path.whole.is_empty() || path.whole.len() > MAX_NAME_BYTES {
        return Ok(None);
    }
    let mut found = Vec::new();
    for key in path.keys() {
        found.extend(
            r.named(key)?
                .into_iter()
                .filter(|e| e.public || e.author == viewer),
        );
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

impl<'a> Notes<'a> {
    /// Runs `f` over a consistent view of the notes.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut dyn NoteReads) -> Result<T>) -> Result<T> {
        let mut f = Some(f);
        let mut out = None;
        self.storage.read(&mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        out.ok_or_else(|| Error::corrupt("notes", "a read did not run"))
    }

    /// Runs `f` as one write (perhaps more than once: see
    /// [`NoteStorage::write`]); its answer from the run that was committed.
    pub(crate) fn write<T>(&self, mut f: impl FnMut(&mut dyn NoteTx) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.storage.write(&mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::corrupt("notes", "a write did not run"))
    }

    /// What one note may hold in this store.
    pub fn limits(&self) -> NoteLimits {
        self.settings.note_limits
    }

    /// Checks a note someone writes (create, update, import) against the
    /// note limits, its size first so that an oversized body is refused
    /// before it is parsed, then its names.
    pub(crate) fn check_new_note(&self, note: &Note) -> Result<()> {
        self.limits().check(note)?;
        check_note(note)
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
        self.check_new_note(&note)?;
        self.write(|tx| {
            tx.put(&[Change {
                old: None,
                new: Some(note.clone()),
            }])
        })?;
        Ok(note)
    }

    /// A note, if it exists and `viewer` may see it (it is public or theirs).
    pub fn get(&self, id: NoteId, viewer: &str) -> Result<Option<Note>> {
        Ok(self.read(|r| r.note(id))?.filter(|n| n.visible_to(viewer)))
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
        self.write(|tx| {
            let old = owned_note(tx, id, viewer)?;
            if old.revision != expected_revision {
                return Err(Error::RevisionMismatch {
                    id,
                    expected: expected_revision,
                    actual: old.revision,
                });
            }
            let update = update.clone();
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
            self.check_new_note(&note)?;
            if let Some(title) = update.title.filter(|t| t.trim() != old.title) {
                return Ok(self.rename_in(tx, old, note, &title)?.note);
            }
            if note.folder != old.folder {
                let title = old.title.clone();
                return Ok(self.rename_in(tx, old, note, &title)?.note);
            }
            if note == old {
                // Nothing changes: no new revision.
                return Ok(old);
            }
            bump(&mut note, old.updated_ns);
            tx.put(&[Change {
                old: Some(old),
                new: Some(note.clone()),
            }])?;
            Ok(note)
        })
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
        self.write(|tx| {
            let old = owned_note(tx, id, viewer)?;
            if old.title == new_title.trim() {
                return Ok(Renamed {
                    note: old,
                    relinked: Vec::new(),
                });
            }
            self.rename_in(tx, old.clone(), old, new_title)
        })
    }

    /// Renames `stored` (as it is in the store) to `new_title`, with the
    /// other changes already made in `edited`; rewrites the links that name
    /// it, in the same write.
    fn rename_in(
        &self,
        tx: &mut dyn NoteTx,
        stored: Note,
        edited: Note,
        new_title: &str,
    ) -> Result<Renamed> {
        let id = stored.id;
        // The notes that matter: those sharing a name with the renamed one
        // (they decide what its names resolve to), those linking to one of
        // its names, and those that already have the new name.
        let mut ids = BTreeSet::from([id]);
        for (_, key) in derive(&stored).names {
            ids.extend(tx.named(&key)?.into_iter().map(|e| e.id));
            ids.extend(tx.linking(&key)?.into_iter().map(|e| e.id));
        }
        let new_key = name_key(new_title);
        if new_key.len() <= MAX_NAME_BYTES {
            ids.extend(tx.named(&new_key)?.into_iter().map(|e| e.id));
        }
        let mut notes = Vec::with_capacity(ids.len());
        for nid in ids {
            if nid == id {
                notes.push(stored.clone());
            } else if let Some(n) = tx.note(nid)? {
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
            if self.limits().check(&with_alias).is_ok() {
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
        tx.put(&changes)?;
        Ok(Renamed {
            note: renamed,
            relinked,
        })
    }

    /// Deletes a note and its attachments, in one transaction; returns it.
    /// Its outgoing links go with it; links to it from other notes become
    /// unresolved. Only the author may delete.
    pub fn delete(&self, id: NoteId, viewer: &str) -> Result<Note> {
        self.write(|tx| {
            let old = owned_note(tx, id, viewer)?;
            tx.put(&[Change {
                old: Some(old.clone()),
                new: None,
            }])?;
            Ok(old)
        })
    }

    fn change_issues(
        &self,
        id: NoteId,
        viewer: &str,
        edit: impl Fn(&mut Vec<Fingerprint>) -> bool,
    ) -> Result<Note> {
        self.write(|tx| {
            let old = owned_note(tx, id, viewer)?;
            let mut note = old.clone();
            if !edit(&mut note.issues) {
                return Ok(old);
            }
            check_note(&note)?;
            bump(&mut note, old.updated_ns);
            tx.put(&[Change {
                old: Some(old),
                new: Some(note.clone()),
            }])?;
            Ok(note)
        })
    }

    /// Links a note to an issue (a new revision; nothing changes if it
    /// already is). Only the author may.
    pub fn link_to_issue(
        &self,
        id: NoteId,
        viewer: &str,
        fingerprint: &Fingerprint,
    ) -> Result<Note> {
        self.change_issues(id, viewer, |issues| {
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
        self.change_issues(id, viewer, |issues| {
            let before = issues.len();
            issues.retain(|f| f != fingerprint);
            issues.len() != before
        })
    }

    /// The notes `viewer` may see that pass `filter`, most recently updated
    /// first.
    pub fn list(&self, viewer: &str, filter: &NoteFilter) -> Result<Vec<Note>> {
        let candidates = self.read(|r| {
            if let Some(fp) = &filter.issue {
                r.by_issue(&fp.0)
            } else if let Some(author) = &filter.author {
                r.by_author(author)
            } else {
                r.all()
            }
        })?;
        let tag = filter.tag.as_deref().map(str::to_lowercase);
        let mut out = Vec::new();
        for note in candidates {
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
        self.read(|r| resolve_in(r, target, from_folder, viewer))
    }

    /// The notes that link to `id`, as `viewer` sees them (only notes they
    /// may see, and only links that resolve to `id` for them, from the
    /// folder of the note holding the link), sorted by title.
    pub fn backlinks(&self, id: NoteId, viewer: &str) -> Result<Vec<Note>> {
        self.read(|r| {
            let note = visible_note(r, id, viewer)?;
            let mut sources = BTreeSet::new();
            let names: HashSet<String> = derive(&note).names.into_iter().map(|(_, k)| k).collect();
            for key in &names {
                for e in r.linking(key)? {
                    if e.id != id && (e.public || e.author == viewer) {
                        sources.insert(e.id);
                    }
                }
            }
            let mut resolved: HashMap<(String, String), Option<NoteId>> = HashMap::new();
            let mut out = Vec::with_capacity(sources.len());
            for source in sources {
                let Some(n) = r.note(source)?.filter(|n| n.visible_to(viewer)) else {
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
                            let to = resolve_in(r, &target, &n.folder, viewer)?;
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
        })
    }

    /// Where a note's links lead for `viewer`.
    pub fn links(&self, id: NoteId, viewer: &str) -> Result<NoteLinks> {
        self.read(|r| {
            let note = visible_note(r, id, viewer)?;
            let mut out = NoteLinks::default();
            let mut seen = HashSet::new();
            for written in derive(&note).links {
                match resolve_in(r, &written, &note.folder, viewer)? {
                    Some(target) if target == id => {}
                    Some(target) => {
                        if seen.insert(target) {
                            if let Some(n) = r.note(target)? {
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
        })
    }

    /// Every note `viewer` may see.
    fn visible_notes(&self, viewer: &str) -> Result<Vec<Note>> {
        let mut notes = self.read(|r| r.all())?;
        notes.retain(|n| n.visible_to(viewer));
        Ok(notes)
    }

    /// The link graph of every note `viewer` may see.
    pub fn graph(&self, viewer: &str) -> Result<NoteGraph> {
        Ok(NoteGraph::build(&self.visible_notes(viewer)?, viewer))
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
        let embeds = self.settings.embeds;
        self.read(|r| {
            let note = visible_note(r, id, viewer)?;
            expand_embeds(&note, viewer, embeds, |target, from| {
                match resolve_in(r, target, from, viewer)? {
                    Some(target) => r.note(target),
                    None => Ok(None),
                }
            })
        })
    }

    /// A note as HTML for `viewer`
    /// ([`to_html_with_attachments`]):
    /// its files embedded from the notes `viewer` may see, its `[[links]]`
    /// resolved as they resolve for `viewer` (a note they may not see is an
    /// unresolved link), its embeds expanded within the store's [embed
    /// options](crate::Config::embeds), its links leading to the web UI's
    /// routes ([`HtmlOptions`]'s defaults).
    pub fn html(&self, id: NoteId, viewer: &str) -> Result<NoteHtml> {
        self.read(|r| {
            let note = visible_note(r, id, viewer)?;
            self.html_in(r, &note, viewer)
        })
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
        self.read(|r| self.html_in(r, note, &note.author))
    }

    fn html_in(&self, r: &mut dyn NoteReads, note: &Note, viewer: &str) -> Result<NoteHtml> {
        let own_names: HashSet<String> = std::iter::once(&note.title)
            .chain(note.all_aliases().iter())
            .map(|n| name_key(n))
            .collect();
        let options = HtmlOptions::default().embeds(self.settings.embeds);
        // Both callbacks read, one at a time.
        let r = RefCell::new(r);
        to_html_with_attachments(
            note,
            viewer,
            &options,
            |target, from| {
                let mut r = r.borrow_mut();
                match resolve_in(*r, target, from, viewer)? {
                    Some(id) if id == note.id => Ok(Some(note.clone())),
                    Some(id) => r.note(id),
                    None if own_names.contains(&name_key(target)) => Ok(Some(note.clone())),
                    None => Ok(None),
                }
            },
            |target, from| {
                let mut r = r.borrow_mut();
                Ok(
                    crate::attachments::find_in(*r, target, from, viewer)?.map(|a| AttachmentRef {
                        note: a.note,
                        name: a.name,
                        inline_image: a.inline_image,
                    }),
                )
            },
        )
    }

    /// The notes `viewer` may see whose prose names `id`'s title or an
    /// alias as a whole word without linking to it (its unlinked
    /// mentions, as [`NoteGraph::unlinked_mentions`] finds them), sorted
    /// by title.
    pub fn unlinked_mentions(&self, id: NoteId, viewer: &str) -> Result<Vec<Note>> {
        let all = self.read(|r| {
            visible_note(r, id, viewer)?;
            r.all()
        })?;
        let mut notes: HashMap<NoteId, Note> = all
            .into_iter()
            .filter(|n| n.visible_to(viewer))
            .map(|n| (n.id, n))
            .collect();
        let graph = NoteGraph::build(notes.values(), viewer);
        Ok(graph
            .unlinked_mentions(id)
            .into_iter()
            .filter_map(|m| notes.remove(&m))
            .collect())
    }

    /// Writes notes exactly as given (ids, authors, revisions and times
    /// kept), replacing stored notes with the same id, at once (the
    /// embedded store writes them in transactions of a few hundred notes).
    /// For restores and bulk loads; returns how many were written.
    pub fn restore(&self, notes: impl IntoIterator<Item = Note>) -> Result<usize> {
        let mut by_id: BTreeMap<NoteId, Note> = BTreeMap::new();
        for note in notes {
            self.check_new_note(&note)?;
            by_id.insert(note.id, note);
        }
        self.write(|tx| {
            let mut changes = Vec::with_capacity(by_id.len());
            for (id, note) in &by_id {
                changes.push(Change {
                    old: tx.note(*id)?,
                    new: Some(note.clone()),
                });
            }
            tx.put(&changes)?;
            Ok(changes.len())
        })
    }

    /// How many notes the store holds.
    pub fn count(&self) -> Result<usize> {
        self.read(|r| r.count())
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
