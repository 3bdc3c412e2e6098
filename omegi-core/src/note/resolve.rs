//! Link resolution and rename.
//!
//! A link target names a note by its title or one of its aliases, compared
//! case-insensitively after trimming (a trailing `.md` is ignored, as in a
//! link to a file), or by its vault path: `[[Folder/Note]]` names the note
//! `Note` whose folder is `Folder` or ends with `/Folder`. When several
//! notes share a name, the one a link resolves to is decided as Obsidian
//! decides it, by [`best_match`]: titles before aliases, then the note in
//! the linking note's own folder, then the one with the shortest folder
//! path, then the oldest (by creation time, then id), so resolution is
//! deterministic. A target that names no note stays an unresolved link.
//!
//! [`best_match`] is the one place this rule lives: the [`Resolver`] here,
//! the store's name index, rendering, search and the graph all ask it.

use std::collections::HashMap;

use super::{merge_names, parse, Note, NoteId, Visibility};

/// How a link target matched its note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    /// The note's title.
    Title,
    /// One of the note's aliases.
    Alias,
}

/// A resolved link target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution<'a> {
    /// The note the target names.
    pub note: &'a Note,
    /// Whether it matched the title or an alias.
    pub via: Via,
}

/// Why a rename was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenameError {
    /// The new title is empty or has a character that would break `[[...]]`
    /// links (`[`, `]`, `|`, `#`, `^` or a line break).
    #[error("invalid note title {0:?}: it must be non-empty and contain none of [ ] | # ^ or line breaks")]
    InvalidTitle(String),
    /// No note has the given id.
    #[error("no note with id {0}")]
    UnknownNote(NoteId),
}

/// Why a folder path was refused by [`normalize_folder`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// A segment is `.` or `..`: a folder is a path inside the vault.
    #[error("folder {0:?} has a `.` or `..` segment; a folder is a path inside the vault")]
    DotSegment(String),
    /// A character that would break a `[[Folder/Note]]` link or a file
    /// name: a control character, `\\`, `[`, `]`, `|`, `#` or `^`.
    #[error("folder {0:?} contains a control character or one of \\ [ ] | # ^")]
    InvalidCharacter(String),
}

/// A folder path in its stored form: `/`-separated segments, each trimmed,
/// empty segments (a leading, trailing or doubled `/`) dropped; `""` is
/// the top of the vault.
///
/// ```
/// use omegi_core::note::normalize_folder;
/// assert_eq!(normalize_folder(" /Plugins//Core/ ").unwrap(), "Plugins/Core");
/// assert_eq!(normalize_folder("").unwrap(), "");
/// assert!(normalize_folder("a/../b").is_err());
/// ```
pub fn normalize_folder(folder: &str) -> Result<String, FolderError> {
    if folder
        .chars()
        .any(|c| c.is_control() || matches!(c, '\\' | '[' | ']' | '|' | '#' | '^'))
    {
        return Err(FolderError::InvalidCharacter(short(folder)));
    }
    let mut out = String::with_capacity(folder.len());
    for segment in folder.split('/').map(str::trim).filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return Err(FolderError::DotSegment(short(folder)));
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(segment);
    }
    Ok(out)
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A link target read as a vault path: the name it ends with and the
/// folder before it, as lookup keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPath {
    /// The key of the whole target ([`name_key`]): a note whose title (or
    /// alias) is the whole target, `/` included, matches it too.
    pub whole: String,
    /// The key of the last segment: the note's name.
    pub name: String,
    /// The folder part, lowercase, segments trimmed, `None` without a `/`.
    pub folder: Option<String>,
}

impl LinkPath {
    /// Reads a link target.
    ///
    /// ```
    /// use omegi_core::note::LinkPath;
    /// let p = LinkPath::parse("Plugins/Templates.md");
    /// assert_eq!((p.name.as_str(), p.folder.as_deref()), ("templates", Some("plugins")));
    /// assert_eq!(LinkPath::parse("Templates").folder, None);
    /// ```
    pub fn parse(target: &str) -> LinkPath {
        let whole = name_key(target);
        match whole.rsplit_once('/') {
            Some((folder, name)) => {
                let folder: Vec<&str> = folder
                    .split('/')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                LinkPath {
                    name: name.trim().to_owned(),
                    folder: Some(folder.join("/")),
                    whole,
                }
            }
            None => LinkPath {
                name: whole.clone(),
                folder: None,
                whole,
            },
        }
    }

    /// The name keys under which the notes this target may name are
    /// found: the last segment's, and the whole target's when it differs.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let whole = (self.whole != self.name).then_some(self.whole.as_str());
        std::iter::once(self.name.as_str())
            .chain(whole)
            .filter(|k| !k.is_empty())
    }
}

/// A note that has a name a link target may mean: one candidate of
/// [`best_match`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameMatch<'a> {
    /// The note.
    pub id: NoteId,
    /// The name key ([`name_key`]) of the note's title or alias that
    /// matched.
    pub key: &'a str,
    /// Whether that name is its title or an alias.
    pub via: Via,
    /// The note's folder.
    pub folder: &'a str,
    /// The note's creation time.
    pub created_ns: u64,
}

/// Whether `folder` is `hint` or ends with `/hint` (case-insensitively).
fn folder_ends_with(folder: &str, hint: &str) -> bool {
    let folder = folder.to_lowercase();
    folder == hint
        || folder
            .strip_suffix(hint)
            .is_some_and(|rest| rest.ends_with('/'))
}

/// The note `path` names for a link written in a note in `from_folder`,
/// among `candidates` (every note the reader may see that has one of
/// `path`'s [keys](LinkPath::keys) as title or alias; others are ignored):
///
/// 1. a match by path (`[[Folder/Note]]`: the name in that folder) before a
///    note whose whole name is the target;
/// 2. a title before an alias;
/// 3. the note in the linking note's folder;
/// 4. the shortest folder path;
/// 5. the oldest note, then the smallest id.
///
/// ```
/// use omegi_core::note::{best_match, LinkPath, NameMatch, NoteId, Via};
/// let (a, b) = (NoteId(uuid::Uuid::from_u128(1)), NoteId(uuid::Uuid::from_u128(2)));
/// let notes = [
///     NameMatch { id: a, key: "setup", via: Via::Title, folder: "", created_ns: 1 },
///     NameMatch { id: b, key: "setup", via: Via::Title, folder: "Plugins", created_ns: 2 },
/// ];
/// let to = |target, from| best_match(&LinkPath::parse(target), from, notes).map(|m| m.id);
/// assert_eq!(to("Setup", ""), Some(a)); // the shortest path
/// assert_eq!(to("Setup", "plugins"), Some(b)); // the same folder
/// assert_eq!(to("Plugins/Setup", ""), Some(b)); // by path
/// ```
pub fn best_match<'a>(
    path: &LinkPath,
    from_folder: &str,
    candidates: impl IntoIterator<Item = NameMatch<'a>>,
) -> Option<NameMatch<'a>> {
    let from = from_folder.to_lowercase();
    candidates
        .into_iter()
        .filter_map(|c| {
            let by_path = match &path.folder {
                Some(hint) if c.key == path.name && folder_ends_with(c.folder, hint) => 0u8,
                _ if c.key == path.whole => 1,
                _ => return None,
            };
            let elsewhere = c.folder.to_lowercase() != from;
            let rank = (
                by_path,
                c.via,
                elsewhere,
                c.folder.chars().count(),
                c.created_ns,
                c.id,
            );
            Some((rank, c))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, c)| c)
}

/// Resolves link targets against a set of notes.
#[derive(Debug, Clone)]
pub struct Resolver<'a> {
    notes: Vec<&'a Note>,
    by_id: HashMap<NoteId, u32>,
    /// Name key → every note with that title or alias.
    names: HashMap<String, Vec<(u32, Via)>>,
}

/// The lookup key of a note name or link target: trimmed, lowercase, without
/// a trailing `.md`. Two names match when their keys are equal.
pub fn name_key(name: &str) -> String {
    let name = name.trim();
    let name = match name.len().checked_sub(3) {
        Some(cut) if name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(".md") => {
            &name[..cut]
        }
        _ => name,
    };
    name.trim().to_lowercase()
}

impl<'a> Resolver<'a> {
    /// A resolver over all of `notes` (aliases include those in each body's
    /// front matter).
    pub fn new(notes: impl IntoIterator<Item = &'a Note>) -> Resolver<'a> {
        let notes: Vec<&'a Note> = notes.into_iter().collect();
        let aliases: Vec<Vec<String>> = notes.iter().map(|n| n.all_aliases()).collect();
        Resolver::with_aliases(notes, &aliases)
    }

    /// A resolver over the notes `viewer` may see: links to anything else
    /// stay unresolved for them.
    pub fn for_viewer(notes: impl IntoIterator<Item = &'a Note>, viewer: &str) -> Resolver<'a> {
        Resolver::new(notes.into_iter().filter(|n| n.visible_to(viewer)))
    }

    /// Builds from notes and their already known aliases (same order).
    pub(crate) fn with_aliases(notes: Vec<&'a Note>, aliases: &[Vec<String>]) -> Resolver<'a> {
        let mut names: HashMap<String, Vec<(u32, Via)>> = HashMap::with_capacity(notes.len() * 2);
        for (i, note) in notes.iter().enumerate() {
            let title = name_key(&note.title);
            if !title.is_empty() {
                names
                    .entry(title.clone())
                    .or_default()
                    .push((i as u32, Via::Title));
            }
            for alias in aliases.get(i).into_iter().flatten() {
                let key = name_key(alias);
                if !key.is_empty() && key != title {
                    let entry = names.entry(key).or_default();
                    if !entry.contains(&(i as u32, Via::Alias)) {
                        entry.push((i as u32, Via::Alias));
                    }
                }
            }
        }
        let by_id = notes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id, i as u32))
            .collect();
        Resolver {
            notes,
            by_id,
            names,
        }
    }

    /// The note a link target names, if any, for a link written at the top
    /// of the vault (see [`Resolver::resolve_from`]).
    pub fn resolve(&self, target: &str) -> Option<Resolution<'a>> {
        self.resolve_from(target, "")
    }

    /// The note a link target names for a link written in a note in
    /// `from_folder`, if any ([`best_match`]).
    pub fn resolve_from(&self, target: &str, from_folder: &str) -> Option<Resolution<'a>> {
        self.resolve_index(target, from_folder)
            .map(|(i, via)| Resolution {
                note: self.notes[i as usize],
                via,
            })
    }

    /// Index (in [`Resolver::notes`]) of the note a target names.
    pub(crate) fn resolve_index(&self, target: &str, from_folder: &str) -> Option<(u32, Via)> {
        let path = LinkPath::parse(target);
        let mut keys: Vec<&str> = path.keys().collect();
        keys.dedup();
        let candidates = keys.into_iter().flat_map(|key| {
            self.names
                .get_key_value(key)
                .into_iter()
                .flat_map(|(key, found)| {
                    found.iter().map(move |&(i, via)| {
                        let note = self.notes[i as usize];
                        NameMatch {
                            id: note.id,
                            key: key.as_str(),
                            via,
                            folder: &note.folder,
                            created_ns: note.created_ns,
                        }
                    })
                })
        });
        let best = best_match(&path, from_folder, candidates)?;
        Some((*self.by_id.get(&best.id)?, best.via))
    }

    /// The note with this id, if the resolver knows it.
    pub fn get(&self, id: NoteId) -> Option<&'a Note> {
        self.by_id.get(&id).map(|&i| self.notes[i as usize])
    }

    /// The notes this resolver covers.
    pub fn notes(&self) -> &[&'a Note] {
        &self.notes
    }
}

/// Rewrites the links in `body` whose target is `old_name`
/// (case-insensitively) to point to `new_name`, keeping `#heading`, `|shown`
/// and the embed `!`. Links in code are untouched. Returns `None` when no
/// link changed.
///
/// ```
/// let body = "See [[Old]], [[old#Fix|the fix]], ![[OLD]] and `[[Old]]`.";
/// let out = omegi_core::note::rename_links(body, "Old", "New").unwrap();
/// assert_eq!(out, "See [[New]], [[New#Fix|the fix]], ![[New]] and `[[Old]]`.");
/// ```
pub fn rename_links(body: &str, old_name: &str, new_name: &str) -> Option<String> {
    let old = name_key(old_name);
    let parsed = parse::parse(body);
    rewrite(
        body,
        parsed
            .links
            .iter()
            .filter(|l| name_key(&l.target) == old)
            .map(|l| l.target_range.clone()),
        new_name,
    )
}

fn rewrite(
    body: &str,
    ranges: impl Iterator<Item = std::ops::Range<usize>>,
    new_name: &str,
) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut copied = 0;
    let mut changed = false;
    for range in ranges {
        if range.start < copied || range.end > body.len() {
            continue;
        }
        out.push_str(&body[copied..range.start]);
        out.push_str(new_name);
        copied = range.end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&body[copied..]);
    Some(out)
}

/// Whether `title` can be the target of a `[[...]]` link.
pub(crate) fn valid_title(title: &str) -> bool {
    !title.trim().is_empty() && !title.contains(['[', ']', '|', '#', '^', '\n', '\r'])
}

/// What renaming a note changes: see [`rename_note`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenamePlan {
    /// The new bodies of the notes whose links are rewritten (the renamed
    /// note's own included), in the order of the notes given.
    pub bodies: Vec<(NoteId, String)>,
    /// The former title, for the renamed note to keep as an alias: set
    /// when the note is public, so that links to it in notes its author
    /// cannot see, and so does not rewrite, keep leading to it.
    pub former_title_alias: Option<String>,
}

/// Plans the rename of note `id` to `new_title`, scoped to what its
/// author may see and to what each link means for the author of the note
/// holding it:
///
/// - only notes the renamed note's author may see are rewritten (their own
///   and public ones); a rename never changes anyone's private note;
/// - in each of them, a link is rewritten only when it resolves to the
///   renamed note *for that note's author* (by title; links through an
///   alias stay as they are), and only when the new name leads that author
///   to the renamed note too, so that no link anywhere starts pointing at
///   another note;
/// - a public note keeps its former title as an alias
///   ([`RenamePlan::former_title_alias`]) for the links the rename may not
///   rewrite.
///
/// `notes` must hold the renamed note, every note that may link to it and
/// every note that has the new name (their titles and aliases decide what
/// links resolve to). The caller stores the bodies, the new title and the
/// alias.
pub fn rename_note(notes: &[Note], id: NoteId, new_title: &str) -> Result<RenamePlan, RenameError> {
    let renamed = notes
        .iter()
        .find(|n| n.id == id)
        .ok_or(RenameError::UnknownNote(id))?;
    rename_edited_note(notes, renamed, new_title)
}

/// [`rename_note`] for a note that changes more than its title at once:
/// `edited` is the note with its other changes made (body, aliases,
/// visibility, folder: a move), `notes` holds it as it was. Links mean what
/// they resolved to before the change, from the folder of the note holding
/// them; each is rewritten to the shortest text that leads that note's
/// author to the note as it is after: its new title, or its new path
/// (`Folder/Title`) when the title alone would lead elsewhere (a link
/// written with a path keeps a path). A link that still leads to it as
/// written stays, unless the title changed.
pub fn rename_edited_note(
    notes: &[Note],
    edited: &Note,
    new_title: &str,
) -> Result<RenamePlan, RenameError> {
    if !valid_title(new_title) {
        return Err(RenameError::InvalidTitle(new_title.to_string()));
    }
    let id = edited.id;
    let new_title = new_title.trim();
    let pos = notes
        .iter()
        .position(|n| n.id == id)
        .ok_or(RenameError::UnknownNote(id))?;
    let title_changed = notes[pos].title != new_title;
    let former_title_alias = (edited.visibility == Visibility::Public
        && name_key(&notes[pos].title) != name_key(new_title))
    .then(|| notes[pos].title.clone());
    let aliases_of = |n: &Note, p: &parse::ParsedNote| {
        merge_names(n.aliases.iter().chain(&p.front_matter.aliases))
    };
    let parsed: Vec<parse::ParsedNote> = notes.iter().map(Note::parse).collect();
    let aliases: Vec<Vec<String>> = notes
        .iter()
        .zip(&parsed)
        .map(|(n, p)| aliases_of(n, p))
        .collect();
    // The renamed note as it will be, for the resolvers after the rename.
    let mut after = edited.clone();
    after.title = new_title.to_owned();
    let new_path = after.path();
    let edited_parsed = edited.parse();
    let mut after_aliases = aliases.clone();
    after_aliases[pos] = aliases_of(edited, &edited_parsed);
    after_aliases[pos].extend(former_title_alias.clone());
    let before_notes: Vec<&Note> = notes.iter().collect();
    let mut after_notes = before_notes.clone();
    after_notes[pos] = &after;

    // Links mean what they resolve to for the author of their note: one
    // pair of resolvers (before, after) per author.
    let resolvers_for = |author: &str| {
        let visible = |all: &[&Note]| -> Vec<usize> {
            (0..all.len())
                .filter(|&i| all[i].visible_to(author))
                .collect()
        };
        (
            resolver_of(&before_notes, &aliases, &visible(&before_notes)),
            resolver_of(&after_notes, &after_aliases, &visible(&after_notes)),
        )
    };
    let mut resolvers: HashMap<&str, (Resolver<'_>, Resolver<'_>)> = HashMap::new();
    let mut bodies = Vec::new();
    for (i, note) in notes.iter().enumerate() {
        // The renamed note is rewritten as edited, from where it will be.
        let (note, parsed, folder_before) = if i == pos {
            (edited, &edited_parsed, notes[pos].folder.as_str())
        } else {
            (note, &parsed[i], note.folder.as_str())
        };
        if !note.visible_to(&edited.author) {
            continue;
        }
        let (before, after) = resolvers
            .entry(note.author.as_str())
            .or_insert_with(|| resolvers_for(&note.author));
        let leads = |text: &str| {
            after
                .resolve_from(text, &note.folder)
                .is_some_and(|r| r.note.id == id)
        };
        let mut texts: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        for link in &parsed.links {
            let Some(r) = before.resolve_from(&link.target, folder_before) else {
                continue;
            };
            if r.note.id != id || r.via != Via::Title {
                continue;
            }
            if !title_changed && leads(&link.target) {
                continue;
            }
            let with_path = link.target.contains('/');
            let text = if !with_path && leads(new_title) {
                new_title
            } else if leads(&new_path) {
                new_path.as_str()
            } else {
                continue;
            };
            if text != link.target {
                texts.push((link.target_range.clone(), text.to_owned()));
            }
        }
        if let Some(body) = rewrite_each(&note.body, &texts) {
            bodies.push((note.id, body));
        }
    }
    Ok(RenamePlan {
        bodies,
        former_title_alias,
    })
}

/// `body` with each range replaced by its text (ranges in order, not
/// overlapping); `None` when there is none.
fn rewrite_each(body: &str, texts: &[(std::ops::Range<usize>, String)]) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut copied = 0;
    let mut changed = false;
    for (range, text) in texts {
        if range.start < copied || range.end > body.len() {
            continue;
        }
        out.push_str(&body[copied..range.start]);
        out.push_str(text);
        copied = range.end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&body[copied..]);
    Some(out)
}

/// A resolver over the notes at positions `visible` of `notes`, whose
/// aliases are `aliases` (same positions).
fn resolver_of<'a>(notes: &[&'a Note], aliases: &[Vec<String>], visible: &[usize]) -> Resolver<'a> {
    Resolver::with_aliases(
        visible.iter().map(|&i| notes[i]).collect(),
        &visible
            .iter()
            .map(|&i| aliases[i].clone())
            .collect::<Vec<_>>(),
    )
}
