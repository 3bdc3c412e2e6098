//! A folder of Markdown files (an Obsidian vault) in and out.
//!
//! Import walks the folder and its subfolders, skipping hidden entries
//! (`.obsidian`, `.git`, `.trash`), and reads every `.md` file as a note of
//! one user: the title comes from the front matter or else the file name,
//! tags and aliases from the front matter (Obsidian's forms), Omegi's own
//! fields (`id`, `visibility`, `issues`, times, revision) when present, and
//! the note's folder from the file's folder in the vault ([`vault_folder`]).
//! A file whose `id` is a stored note of the same user updates that note.
//!
//! Export writes one file per note, into the note's folder
//! ([`Subfolders::Vault`], the default), named after its sanitized title
//! (made unique, ignoring case), with Omegi's front matter, so that
//! importing the folder again gives back the same folders, titles, bodies,
//! tags, aliases and links.
//!
//! Export is careful with the folder it writes into ([`write_vault`]): it
//! never follows a symbolic link inside it (a link planted there cannot
//! redirect a write elsewhere), and it does not overwrite a file it did not
//! write — one that was there before, or that someone changed since — unless
//! forced ([`VaultExportOptions::force`]). What it wrote is remembered in a
//! manifest, `.omegi-export.json`, with each file's SHA-256. Folders it
//! creates are private to their owner (0700 on Unix), and so are its files
//! (0600).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use omegi_core::note::{
    file_stem, normalize_folder, note_from_markdown_file, note_to_markdown_file, NoteDefaults,
};
use omegi_core::{Note, NoteId, Visibility};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::notes::{Change, NoteFilter};
use crate::{now_ns, Notes};

/// How to import a vault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultImportOptions {
    /// Visibility of notes whose file does not say (private by default).
    pub visibility: Visibility,
}

impl VaultImportOptions {
    /// Files without a `visibility` field become notes with this one.
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultImport {
    /// Notes created, in file order.
    pub created: Vec<NoteId>,
    /// Stored notes changed by a file with their id.
    pub updated: Vec<NoteId>,
    /// Stored notes that a file matched exactly.
    pub unchanged: Vec<NoteId>,
    /// Files that were not imported, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Where exported notes go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subfolders {
    /// Each note in its own vault folder ([`Note::folder`]), as it was
    /// imported or moved.
    #[default]
    Vault,
    /// All files in the folder itself.
    None,
    /// In a subfolder named after the note's first tag (a nested tag
    /// `a/b` gives `a/b/`); untagged notes at the top.
    FirstTag,
    /// In a subfolder per author.
    Author,
}

/// How to export a vault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultExportOptions {
    /// Folder layout.
    pub subfolders: Subfolders,
    /// Overwrite files the export did not write (or that changed since it
    /// wrote them), and replace symbolic links in their place by files.
    /// Symbolic links are never followed, forced or not.
    pub force: bool,
}

impl VaultExportOptions {
    /// Sets the folder layout.
    pub fn subfolders(mut self, subfolders: Subfolders) -> Self {
        self.subfolders = subfolders;
        self
    }

    /// Sets whether files the export did not write may be overwritten.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultExport {
    /// Each note and its file, relative to the folder.
    pub files: Vec<(NoteId, PathBuf)>,
    /// Each attachment's note and its file, relative to the folder: beside
    /// the note's file.
    pub attachments: Vec<(NoteId, PathBuf)>,
    /// The files among them that held this text already and were left
    /// alone.
    pub unchanged: Vec<PathBuf>,
}

/// The manifest of an exported folder: what the export wrote there.
const MANIFEST: &str = ".omegi-export.json";

/// The manifest's content: each file the export wrote, relative to the
/// folder, with the SHA-256 of what it wrote, in hex.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    files: BTreeMap<String, String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The relative path as the manifest names it: `/`-separated.
fn manifest_name(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads the manifest of `dir`, if it is a regular file (a symbolic link
/// is not followed). An unreadable manifest is an empty one: every existing
/// file then counts as not written by the export.
fn read_manifest(dir: &Path) -> Manifest {
    let path = dir.join(MANIFEST);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_file() => std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default(),
        _ => Manifest::default(),
    }
}

/// Creates a folder private to its owner (0700 on Unix).
fn create_private_dir(path: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes `bytes` to `path` without following a symbolic link there: into
/// a new private file (0600) next to it, renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    Ok(())
}

/// Writes `notes` to `dir` (created if missing), one Markdown file per
/// note, named after its title (the oldest note of a title gets the plain
/// name, the others ` (2)`, ` (3)`, …), in subfolders as `options` say.
///
/// Nothing is written when any file is in the way: a symbolic link on the
/// way to a file ([`Error::SymlinkInExport`]), or, unless
/// [`VaultExportOptions::force`], a file the export did not write or that
/// changed since ([`Error::ExportWouldOverwrite`], listing them). A file
/// that holds the same text already is left as it is.
pub fn write_vault(
    dir: &Path,
    notes: &[Note],
    options: &VaultExportOptions,
) -> Result<VaultExport> {
    write_vault_with(dir, notes, &[], options)
}

/// [`write_vault`] with the notes' attachments: each file (its note's id,
/// its name and bytes) is written beside its note's file, under its name
/// (a name another file of the folder has already, ignoring case, is left
/// out). Notes not in `notes` take their files with them.
pub fn write_vault_with(
    dir: &Path,
    notes: &[Note],
    files: &[(NoteId, String, Vec<u8>)],
    options: &VaultExportOptions,
) -> Result<VaultExport> {
    let mut notes: Vec<&Note> = notes.iter().collect();
    // Oldest first, so that the oldest note of a title keeps the plain
    // file name, whatever the listing order.
    notes.sort_by_key(|n| (n.created_ns, n.id));
    let mut taken: HashSet<String> = HashSet::new();
    let mut planned: Vec<(PathBuf, NoteId, Vec<u8>)> = Vec::with_capacity(notes.len());
    for note in notes {
        let folder: PathBuf = match options.subfolders {
            Subfolders::Vault => note
                .folder
                .split('/')
                .filter(|s| !s.is_empty())
                .map(file_stem)
                .collect(),
            Subfolders::None => PathBuf::new(),
            Subfolders::FirstTag => note
                .all_tags()
                .first()
                .map(|t| t.split('/').map(file_stem).collect())
                .unwrap_or_default(),
            Subfolders::Author => PathBuf::from(file_stem(&note.author)),
        };
        let stem = file_stem(&note.title);
        let mut n = 1;
        let relative = loop {
            let name = if n == 1 {
                format!("{stem}.md")
            } else {
                format!("{stem} ({n}).md")
            };
            let candidate = folder.join(name);
            if taken.insert(candidate.to_string_lossy().to_lowercase()) {
                break candidate;
            }
            n += 1;
        };
        planned.push((relative, note.id, note_to_markdown_file(note).into_bytes()));
    }
    let note_files = planned.len();
    let folder_of: std::collections::HashMap<NoteId, PathBuf> = planned
        .iter()
        .map(|(p, id, _)| (*id, p.parent().map(Path::to_path_buf).unwrap_or_default()))
        .collect();
    for (id, name, bytes) in files {
        let Some(folder) = folder_of.get(id) else {
            continue;
        };
        if omegi_core::note::attachment_name(name).is_err() {
            continue;
        }
        let candidate = folder.join(name);
        if taken.insert(candidate.to_string_lossy().to_lowercase()) {
            planned.push((candidate, *id, bytes.clone()));
        }
    }

    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io_err(dir))?;
    }
    let mut manifest = read_manifest(dir);

    // First look at everything in the way, then write.
    let mut conflicts = Vec::new();
    let mut unchanged = Vec::new();
    let mut to_write = Vec::new();
    for (relative, _, bytes) in &planned {
        // Every folder on the way must be a real folder (or missing).
        let mut on_the_way = dir.to_owned();
        let components: Vec<_> = relative.components().collect();
        for c in &components[..components.len().saturating_sub(1)] {
            on_the_way.push(c);
            match std::fs::symlink_metadata(&on_the_way) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::SymlinkInExport { path: on_the_way });
                }
                Ok(meta) if !meta.is_dir() => {
                    return Err(Error::File {
                        path: on_the_way,
                        source: std::io::Error::other("a file where a folder should be"),
                    })
                }
                _ => {}
            }
        }
        let path = dir.join(relative);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => to_write.push(relative),
            Err(e) => return Err(io_err(&path)(e)),
            Ok(meta) if meta.file_type().is_symlink() => {
                if options.force {
                    to_write.push(relative);
                } else {
                    conflicts.push(relative.clone());
                }
            }
            Ok(meta) if meta.is_file() => {
                let current = std::fs::read(&path).map_err(io_err(&path))?;
                if current == *bytes {
                    unchanged.push(relative.clone());
                    continue;
                }
                let ours = manifest
                    .files
                    .get(&manifest_name(relative))
                    .is_some_and(|hash| *hash == sha256_hex(&current));
                if ours || options.force {
                    to_write.push(relative);
                } else {
                    conflicts.push(relative.clone());
                }
            }
            Ok(_) => {
                return Err(Error::File {
                    path,
                    source: std::io::Error::other("a folder where a file should be"),
                })
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::ExportWouldOverwrite { files: conflicts });
    }

    let writes: HashSet<&PathBuf> = to_write.into_iter().collect();
    for (relative, _, bytes) in &planned {
        let name = manifest_name(relative);
        if !writes.contains(relative) {
            // Unchanged: it is ours from now on.
            manifest.files.insert(name, sha256_hex(bytes));
            continue;
        }
        let mut folder = dir.to_owned();
        let components: Vec<_> = relative.components().collect();
        for c in &components[..components.len().saturating_sub(1)] {
            folder.push(c);
            create_private_dir(&folder)?;
        }
        replace_file(&dir.join(relative), bytes)?;
        manifest.files.insert(name, sha256_hex(bytes));
    }
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Encode(e.to_string()))?;
    replace_file(&dir.join(MANIFEST), &text)?;

    let mut out = VaultExport {
        attachments: planned[note_files..]
            .iter()
            .map(|(p, id, _)| (*id, p.clone()))
            .collect(),
        files: planned
            .into_iter()
            .take(note_files)
            .map(|(p, id, _)| (id, p))
            .collect(),
        unchanged,
    };
    out.files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_owned(),
        source,
    }
}

/// The note folder of a file at `relative` (a path inside the vault): the
/// folders on its way, `/`-separated ([`normalize_folder`]); `""` for a
/// file at the top. Import through the store and through the API both read
/// folders with it.
///
/// ```
/// use std::path::Path;
/// assert_eq!(omegi_store::vault_folder(Path::new("Plugins/Core/Setup.md")).unwrap(), "Plugins/Core");
/// assert_eq!(omegi_store::vault_folder(Path::new("Setup.md")).unwrap(), "");
/// ```
pub fn vault_folder(relative: &Path) -> std::result::Result<String, String> {
    let Some(parent) = relative.parent() else {
        return Ok(String::new());
    };
    let mut segments = Vec::new();
    for c in parent.components() {
        match c {
            std::path::Component::Normal(s) => segments.push(s.to_string_lossy().into_owned()),
            std::path::Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{} is not a path inside the vault",
                    relative.display()
                ))
            }
        }
    }
    normalize_folder(&segments.join("/")).map_err(|e| e.to_string())
}

/// The `.md` files under `dir` and its subfolders, sorted by path, skipping
/// hidden entries (`.obsidian`, `.git`) and not following symbolic links:
/// the files [`Notes::import_vault`] reads.
pub fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>> {
    vault_files(dir, true)
}

/// The files under `dir` that a vault import attaches to notes: every file
/// but Markdown, hidden ones (a leading `.`) and those in hidden folders
/// left out, sorted by path. No symbolic link is followed.
pub fn attachment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    vault_files(dir, false)
}

/// Why a vault file is not attached: no note names it.
pub const NO_OWNER: &str = "no note embeds or links to this file";

/// A file of a vault, with the note it is attached to on import.
#[derive(Debug)]
#[non_exhaustive]
pub struct VaultAttachment<'a> {
    /// The file.
    pub path: PathBuf,
    /// Its path in the vault.
    pub relative: PathBuf,
    /// Its name, as `![[name]]` embeds it.
    pub name: String,
    /// The note that embeds or links to it, by
    /// [`AttachmentOwners`](omegi_core::note::AttachmentOwners); `None`: no
    /// note does ([`NO_OWNER`]).
    pub owner: Option<&'a Note>,
}

/// The vault's [`attachment_files`], each with the one of `notes` it goes
/// to: what every importer of a vault attaches (the store's, and
/// `omegi notes import` over the API).
pub fn vault_attachments<'a>(dir: &Path, notes: &'a [Note]) -> Result<Vec<VaultAttachment<'a>>> {
    let owners = omegi_core::note::AttachmentOwners::of(notes);
    let files = attachment_files(dir)?;
    Ok(files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_owned();
            let name = relative
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let folder = vault_folder(&relative).unwrap_or_default();
            let owner = owners.owner(&folder, &name);
            VaultAttachment {
                path,
                relative,
                name,
                owner,
            }
        })
        .collect())
}

/// The files under `dir` and its subfolders that are Markdown (or, with
/// `markdown` false, that are not), sorted by path, skipping hidden entries
/// and not following symbolic links.
fn vault_files(dir: &Path, markdown: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let entry = entry.map_err(io_err(&d))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(io_err(&path))?;
            let is_markdown = || {
                path.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("md"))
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && is_markdown() == markdown {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Notes<'_> {
    /// Attaches the vault's other files to the notes that embed or link to
    /// them by name: to such a note in the file's own folder, else to the
    /// first such note by path. A file no note names, one over the limits,
    /// or one its note holds under that name with other bytes is skipped,
    /// with the reason.
    fn import_vault_files(
        &self,
        dir: &Path,
        notes: &[Note],
        report: &mut VaultImport,
    ) -> Result<()> {
        let limit = self.attachment_limits().file_bytes;
        for file in vault_attachments(dir, notes)? {
            let VaultAttachment {
                path,
                relative,
                name,
                owner,
            } = file;
            let Some(owner) = owner else {
                report.skipped.push((relative, NO_OWNER.into()));
                continue;
            };
            let size = std::fs::metadata(&path).map_err(io_err(&path))?.len();
            if size > limit as u64 {
                report.skipped.push((
                    relative,
                    format!(
                        "the file is {size} bytes, more than the {limit} an attachment may have"
                    ),
                ));
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            match self.add_attachment(owner.id, &owner.author, &name, &bytes) {
                Ok(_) => {}
                Err(e @ (Error::AttachmentRefused(_) | Error::AttachmentExists { .. })) => {
                    report.skipped.push((relative, e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Notes<'_> {
    /// Imports every Markdown file under `dir` as a note of `author` (see
    /// the module docs). Files that cannot be read as notes are listed in
    /// [`VaultImport::skipped`], as are files whose id belongs to another
    /// user's note; the rest are written at once.
    pub fn import_vault(
        &self,
        dir: impl AsRef<Path>,
        author: &str,
        options: &VaultImportOptions,
    ) -> Result<VaultImport> {
        let dir = dir.as_ref();
        crate::keys::check_name("user", author)?;
        let now = now_ns();
        let defaults = NoteDefaults {
            author: author.to_owned(),
            visibility: options.visibility,
            now_ns: now,
        };
        let mut report = VaultImport::default();
        let mut notes: Vec<(PathBuf, Note)> = Vec::new();
        let mut ids = HashSet::new();
        for path in markdown_files(dir)? {
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_owned();
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            let Ok(text) = String::from_utf8(bytes) else {
                report.skipped.push((relative, "not UTF-8 text".into()));
                continue;
            };
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut note = match note_from_markdown_file(&stem, &text, &defaults) {
                Ok(n) => n,
                Err(e) => {
                    report.skipped.push((relative, e.to_string()));
                    continue;
                }
            };
            note.author = author.to_owned();
            match vault_folder(&relative) {
                Ok(folder) => note.folder = folder,
                Err(why) => {
                    report.skipped.push((relative, why));
                    continue;
                }
            }
            if !ids.insert(note.id) {
                report
                    .skipped
                    .push((relative, format!("another file has id {}", note.id)));
                continue;
            }
            notes.push((relative, note));
        }

        // Decided in one write, from the notes as they are in it.
        let (imported, outcome) = self.write(|tx| {
            let mut outcome = VaultImport::default();
            let mut changes = Vec::new();
            // The notes the vault now holds: where their links find files.
            let mut imported: Vec<Note> = Vec::new();
            for (relative, note) in &notes {
                let mut note = note.clone();
                if let Err(e) = self.check_new_note(&note) {
                    outcome.skipped.push((relative.clone(), e.to_string()));
                    continue;
                }
                match tx.note(note.id)? {
                    None => {
                        outcome.created.push(note.id);
                        imported.push(note.clone());
                        changes.push(Change {
                            old: None,
                            new: Some(note),
                        });
                    }
                    Some(old) if old.author != author => {
                        outcome.skipped.push((
                            relative.clone(),
                            format!("note {} belongs to {:?}", old.id, old.author),
                        ));
                    }
                    Some(old) => {
                        let same = old.title == note.title
                            && old.folder == note.folder
                            && old.body == note.body
                            && old.tags == note.tags
                            && old.aliases == note.aliases
                            && old.visibility == note.visibility
                            && old.issues == note.issues;
                        if same {
                            outcome.unchanged.push(old.id);
                            imported.push(old);
                            continue;
                        }
                        note.created_ns = old.created_ns;
                        note.revision = old.revision + 1;
                        note.updated_ns = now.max(old.updated_ns);
                        outcome.updated.push(note.id);
                        imported.push(note.clone());
                        changes.push(Change {
                            old: Some(old),
                            new: Some(note),
                        });
                    }
                }
            }
            tx.put(&changes)?;
            Ok((imported, outcome))
        })?;
        report.created = outcome.created;
        report.updated = outcome.updated;
        report.unchanged = outcome.unchanged;
        report.skipped.extend(outcome.skipped);
        self.import_vault_files(dir, &imported, &mut report)?;
        Ok(report)
    }

    /// Writes the notes `viewer` may see that pass `filter` to `dir`, one
    /// Markdown file per note: [`write_vault`].
    pub fn export_vault(
        &self,
        dir: impl AsRef<Path>,
        viewer: &str,
        filter: &NoteFilter,
        options: &VaultExportOptions,
    ) -> Result<VaultExport> {
        let notes = self.list(viewer, filter)?;
        let mut files = Vec::new();
        for note in &notes {
            for a in self.attachments(note.id, viewer)? {
                let (a, bytes) = self.attachment(note.id, viewer, &a.name)?;
                files.push((note.id, a.name, bytes));
            }
        }
        write_vault_with(dir.as_ref(), &notes, &files, options)
    }
}
