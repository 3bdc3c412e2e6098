//! The notes commands: `omegi note …`, `omegi notes …`, `omegi search` and
//! `omegi graph`, all through the REST API.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use omegi_core::note::{note_from_markdown_file, Note, NoteDefaults, NoteId, Subgraph, Visibility};

use super::{print_json, ApiClient, Cli, CliError};
use crate::api::notes::{Hit, NewNoteBody, RenderedNote, UpdateNoteBody};
use crate::api::now_ns;

/// `omegi note …`.
#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// Write a note (body from --file, else stdin when it is not a
    /// terminal, else $EDITOR).
    New(NewNoteArgs),
    /// Edit a note's Markdown body in $EDITOR.
    Edit {
        /// The note: its id, or its title or an alias as a `[[link]]` names it.
        id: String,
    },
    /// Show a note with its embeds expanded.
    Show {
        /// The note: its id, or its title or an alias as a `[[link]]` names it.
        id: String,
    },
    /// Delete a note.
    Rm {
        /// The note: its id, or its title or an alias as a `[[link]]` names it.
        id: String,
    },
}

/// `omegi note new`.
#[derive(Debug, Args)]
pub struct NewNoteArgs {
    /// The title.
    #[arg(long)]
    pub title: String,
    /// The vault folder (`a/b`; default: the top).
    #[arg(long, default_value = "")]
    pub folder: String,
    /// An issue the note is about: `<project>:<fingerprint>` (repeatable).
    #[arg(long = "issue")]
    pub issues: Vec<String>,
    /// A tag, without `#` (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Let every user see the note (default: only you).
    #[arg(long)]
    pub public: bool,
    /// Read the body from this file (`-`: stdin).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

/// `omegi notes …`.
#[derive(Debug, Subcommand)]
pub enum NotesCommand {
    /// List the notes you may see.
    List(ListNotesArgs),
    /// Import the Markdown files of a directory (an Obsidian vault) as
    /// notes: a file whose front matter `id` names one of your notes
    /// updates it, one naming someone else's note is skipped, every other
    /// file becomes a new note. The vault's other files (images, logs) are
    /// attached to the note that embeds or links to them.
    Import {
        /// The directory.
        dir: PathBuf,
        /// Make the new notes public.
        #[arg(long)]
        public: bool,
    },
    /// Write the notes you may see as Markdown files into a directory. It
    /// never follows a symbolic link inside the directory, and overwrites
    /// only files it wrote itself and nobody changed since, unless --force.
    Export {
        /// The directory (created if needed).
        dir: PathBuf,
        /// Only your own notes.
        #[arg(long)]
        mine: bool,
        /// Overwrite files the export did not write, or that changed since.
        #[arg(long)]
        force: bool,
    },
}

/// `omegi notes list`.
#[derive(Debug, Args)]
pub struct ListNotesArgs {
    /// Only notes by this author.
    #[arg(long)]
    pub author: Option<String>,
    /// Only notes with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Only notes linked to this issue (`<project>:<fingerprint>`).
    #[arg(long)]
    pub issue: Option<String>,
    /// Only your own notes.
    #[arg(long)]
    pub mine: bool,
}

/// `omegi search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The words to find.
    pub query: String,
    /// Only notes by this author.
    #[arg(long)]
    pub author: Option<String>,
    /// Only notes with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Only notes linked to this issue.
    #[arg(long)]
    pub issue: Option<String>,
    /// Only notes in this vault folder or below it.
    #[arg(long)]
    pub folder: Option<String>,
    /// At most this many hits.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// The output format of `omegi graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum GraphFormat {
    /// The graph as JSON.
    #[default]
    Json,
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

impl GraphFormat {
    fn as_str(self) -> &'static str {
        match self {
            GraphFormat::Json => "json",
            GraphFormat::Dot => "dot",
            GraphFormat::Mermaid => "mermaid",
        }
    }
}

/// `omegi graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The note at the centre, by id, title or alias (default: every note).
    pub note: Option<String>,
    /// Links away from the centre.
    #[arg(long, default_value_t = 2)]
    pub depth: u32,
    /// json, dot or mermaid.
    #[arg(long, value_enum, default_value_t = GraphFormat::Json)]
    pub format: GraphFormat,
}

/// The id of the note that `reference` names: the reference itself when it
/// is a note id, else the note a `[[reference]]` link leads to.
async fn note_id(client: &ApiClient, reference: &str) -> Result<NoteId, CliError> {
    if let Ok(id) = reference.parse::<NoteId>() {
        return Ok(id);
    }
    if reference.trim().is_empty() {
        return Err(CliError::Usage("empty note reference".into()));
    }
    let note: Note = client
        .get("/api/notes/resolve", &[("name", reference.to_owned())])
        .await?;
    Ok(note.id)
}

async fn note_path(client: &ApiClient, reference: &str) -> Result<String, CliError> {
    Ok(format!("/api/notes/{}", note_id(client, reference).await?))
}

/// Runs `omegi note …`.
pub(super) async fn note(
    cli: &Cli,
    command: &NoteCommand,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let client = cli.client()?;
    match command {
        NoteCommand::New(args) => {
            let body = match &args.file {
                Some(path) if path.as_os_str() == "-" => read_stdin()?,
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?,
                None if !std::io::stdin().is_terminal() => read_stdin()?,
                None => edit_text("")?,
            };
            let new = NewNoteBody {
                title: args.title.clone(),
                folder: args.folder.clone(),
                body,
                tags: args.tags.clone(),
                aliases: Vec::new(),
                visibility: if args.public {
                    Visibility::Public
                } else {
                    Visibility::Private
                },
                issues: args.issues.clone(),
            };
            let note: Note = client.post("/api/notes", Some(&new)).await?;
            if cli.json {
                return print_json(out, &note);
            }
            writeln!(out, "created note {}  {}", note.id, note.title)?;
            Ok(())
        }
        NoteCommand::Edit { id } => {
            let path = note_path(&client, id).await?;
            let note: Note = client.get(&path, &[]).await?;
            let body = edit_text(&note.body)?;
            if body == note.body {
                if cli.json {
                    return print_json(out, &note);
                }
                writeln!(out, "no change to note {}", note.id)?;
                return Ok(());
            }
            let update = UpdateNoteBody {
                revision: note.revision,
                body: Some(body),
                ..UpdateNoteBody::default()
            };
            let saved: Note = client.put(&path, &update).await?;
            if cli.json {
                return print_json(out, &saved);
            }
            writeln!(
                out,
                "saved note {}  {} (revision {})",
                saved.id, saved.title, saved.revision
            )?;
            Ok(())
        }
        NoteCommand::Show { id } => {
            let path = note_path(&client, id).await?;
            let note: Note = client.get(&path, &[]).await?;
            if cli.json {
                return print_json(out, &note);
            }
            let rendered: RenderedNote = client.get(&format!("{path}/rendered"), &[]).await?;
            write!(out, "{}", render_note(&note, &rendered.markdown))?;
            Ok(())
        }
        NoteCommand::Rm { id } => {
            let note: Note = client.delete(&note_path(&client, id).await?).await?;
            if cli.json {
                return print_json(out, &note);
            }
            writeln!(out, "deleted note {}  {}", note.id, note.title)?;
            Ok(())
        }
    }
}

/// A note for people: a header with its metadata, then `markdown`.
pub fn render_note(note: &Note, markdown: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{}", note.title);
    let _ = writeln!(
        text,
        "id {}  by {}  {}  revision {}",
        note.id,
        note.author,
        visibility(note.visibility),
        note.revision
    );
    if !note.tags.is_empty() {
        let tags: Vec<String> = note.tags.iter().map(|t| format!("#{t}")).collect();
        let _ = writeln!(text, "tags: {}", tags.join(" "));
    }
    if !note.aliases.is_empty() {
        let _ = writeln!(text, "aliases: {}", note.aliases.join(", "));
    }
    if !note.issues.is_empty() {
        let issues: Vec<&str> = note.issues.iter().map(|f| f.0.as_str()).collect();
        let _ = writeln!(text, "issues: {}", issues.join(", "));
    }
    text.push('\n');
    text.push_str(markdown);
    if !markdown.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn visibility(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        _ => "private",
    }
}

/// Search hits for people: score, title, id, then the snippet.
pub fn render_hits(hits: &[Hit]) -> String {
    if hits.is_empty() {
        return "no notes found\n".into();
    }
    let mut text = String::new();
    for hit in hits {
        let _ = writeln!(
            text,
            "{:>6.2}  {}  ({}, by {})",
            hit.score, hit.note.title, hit.note.id, hit.note.author
        );
        let snippet = hit.snippet.text.replace('\n', " ");
        if !snippet.trim().is_empty() {
            let _ = writeln!(text, "        {}", snippet.trim());
        }
    }
    text
}

/// A note list for people.
pub fn render_notes(notes: &[Note]) -> String {
    if notes.is_empty() {
        return "no notes\n".into();
    }
    let mut text = String::new();
    for n in notes {
        let _ = writeln!(
            text,
            "{}  {:<8} {} {}",
            n.id,
            visibility(n.visibility),
            super::render::pad_end(&n.author, 10),
            n.title
        );
    }
    text
}

/// Runs `omegi notes …`.
pub(super) async fn notes(
    cli: &Cli,
    command: &NotesCommand,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let client = cli.client()?;
    match command {
        NotesCommand::List(args) => {
            let list = list(&client, args).await?;
            if cli.json {
                return print_json(out, &list);
            }
            write!(out, "{}", render_notes(&list))?;
            Ok(())
        }
        NotesCommand::Import { dir, public } => {
            let report = import(&client, dir, *public).await?;
            if cli.json {
                return print_json(out, &report);
            }
            writeln!(
                out,
                "imported {}: {} created, {} updated, {} unchanged, {} attached, {} skipped",
                dir.display(),
                report.created.len(),
                report.updated.len(),
                report.unchanged.len(),
                report.attached.len(),
                report.skipped.len()
            )?;
            for (path, why) in &report.skipped {
                writeln!(out, "  skipped {path}: {why}")?;
            }
            Ok(())
        }
        NotesCommand::Export { dir, mine, force } => {
            let args = ListNotesArgs {
                author: None,
                tag: None,
                issue: None,
                mine: *mine,
            };
            let notes = list(&client, &args).await?;
            let attachments = attachments_of(&client, &notes).await?;
            let files = export_with(dir, &notes, &attachments, *force)?;
            if cli.json {
                return print_json(out, &files);
            }
            writeln!(out, "exported {} notes to {}", files.len(), dir.display())?;
            Ok(())
        }
    }
}

async fn list(client: &ApiClient, args: &ListNotesArgs) -> Result<Vec<Note>, CliError> {
    let mut query = vec![("limit", "1000".to_owned())];
    for (key, value) in [
        ("author", &args.author),
        ("tag", &args.tag),
        ("issue", &args.issue),
    ] {
        if let Some(v) = value {
            query.push((key, v.clone()));
        }
    }
    if args.mine {
        query.push(("mine", "true".into()));
    }
    client.get("/api/notes", &query).await
}

/// What `omegi notes import` did, by file path.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    /// Files that became new notes.
    pub created: Vec<String>,
    /// Files that changed one of the caller's notes.
    pub updated: Vec<String>,
    /// Files equal to the note they name.
    pub unchanged: Vec<String>,
    /// Other files of the vault attached to the note that embeds or links
    /// to them (new, or held already with the same bytes).
    pub attached: Vec<String>,
    /// Files not imported, and why.
    pub skipped: Vec<(String, String)>,
}

async fn import(client: &ApiClient, dir: &Path, public: bool) -> Result<ImportReport, CliError> {
    let mut report = ImportReport::default();
    let defaults = NoteDefaults {
        author: String::new(),
        visibility: if public {
            Visibility::Public
        } else {
            Visibility::Private
        },
        now_ns: now_ns(),
    };
    let files = omegi_store::markdown_files(dir).map_err(|e| CliError::Usage(e.to_string()))?;
    // The caller's notes as the server has them after the import: what
    // the vault's other files are attached to.
    let mut imported: Vec<Note> = Vec::new();
    for path in files {
        let shown = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                note_from_markdown_file(&stem, &text, &defaults).map_err(|e| e.to_string())
            });
        let folder = omegi_store::vault_folder(path.strip_prefix(dir).unwrap_or(&path));
        let note = match parsed.and_then(|note| folder.map(|folder| (note, folder))) {
            Ok((mut note, folder)) => {
                note.folder = folder;
                note
            }
            Err(why) => {
                report.skipped.push((shown, why));
                continue;
            }
        };
        let issues: Vec<String> = note.issues.iter().map(|f| f.0.clone()).collect();
        let existing: Option<Note> = match client.get(&format!("/api/notes/{}", note.id), &[]).await
        {
            Ok(n) => Some(n),
            Err(CliError::Api { status: 404, .. }) => None,
            Err(e) => return Err(e),
        };
        let result = match existing {
            Some(old)
                if old.title == note.title
                    && old.folder == note.folder
                    && old.body == note.body
                    && old.tags == note.tags
                    && old.aliases == note.aliases
                    && old.visibility == note.visibility
                    && old.issues == note.issues =>
            {
                report.unchanged.push(shown);
                imported.push(old);
                continue;
            }
            Some(old) => {
                let update = UpdateNoteBody {
                    revision: old.revision,
                    title: Some(note.title),
                    folder: Some(note.folder),
                    body: Some(note.body),
                    tags: Some(note.tags),
                    aliases: Some(note.aliases),
                    visibility: Some(note.visibility),
                    issues: Some(issues),
                };
                client
                    .put::<Note, _>(&format!("/api/notes/{}", old.id), &update)
                    .await
                    .map(|n| (n, &mut report.updated))
            }
            None => {
                let new = NewNoteBody {
                    title: note.title,
                    folder: note.folder,
                    body: note.body,
                    tags: note.tags,
                    aliases: note.aliases,
                    visibility: note.visibility,
                    issues,
                };
                client
                    .post::<Note, _>("/api/notes", Some(&new))
                    .await
                    .map(|n| (n, &mut report.created))
            }
        };
        match result {
            Ok((note, list)) => {
                list.push(shown);
                imported.push(note);
            }
            Err(CliError::Api { message, .. }) => report.skipped.push((shown, message)),
            Err(e) => return Err(e),
        }
    }
    attach_files(client, dir, &imported, &mut report).await?;
    Ok(report)
}

/// Uploads the vault's other files to the notes that embed or link to
/// them, as the store's vault import does ([`omegi_store::vault_attachments`]). A file no note names, or one the server refuses (over
/// its limits, another file by that name), is skipped with the reason.
async fn attach_files(
    client: &ApiClient,
    dir: &Path,
    notes: &[Note],
    report: &mut ImportReport,
) -> Result<(), CliError> {
    let files =
        omegi_store::vault_attachments(dir, notes).map_err(|e| CliError::Usage(e.to_string()))?;
    for file in files {
        let shown = file.relative.display().to_string();
        let Some(owner) = file.owner else {
            report.skipped.push((shown, omegi_store::NO_OWNER.into()));
            continue;
        };
        let upload = format!("/api/notes/{}/attachments", owner.id);
        let sent = client
            .post_file::<serde_json::Value>(&upload, &[("name", file.name)], &file.path)
            .await;
        match sent {
            Ok(_) => report.attached.push(shown),
            Err(CliError::Api { message, .. }) => report.skipped.push((shown, message)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes each note as `<title>.md` into `dir` with
/// [`omegi_store::write_vault`] (no symbolic link followed, no file
/// overwritten that the export did not write unless `force`); the paths
/// written.
pub fn export(dir: &Path, notes: &[Note], force: bool) -> Result<Vec<PathBuf>, CliError> {
    export_with(dir, notes, &[], force)
}

/// The files attached to `notes`, with their bytes, read through the API.
async fn attachments_of(
    client: &ApiClient,
    notes: &[Note],
) -> Result<Vec<(NoteId, String, Vec<u8>)>, CliError> {
    let mut out = Vec::new();
    for note in notes {
        let path = format!("/api/notes/{}/attachments", note.id);
        let list: Vec<omegi_store::Attachment> = client.get(&path, &[]).await?;
        for a in list {
            let bytes = client
                .get_bytes(&format!("{path}/{}", path_segment(&a.name)))
                .await?;
            out.push((note.id, a.name, bytes));
        }
    }
    Ok(out)
}

/// A name percent-encoded for one segment of a URL's path.
fn path_segment(name: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// [`export`] with the notes' attachments, each beside its note
/// ([`omegi_store::write_vault_with`]); the notes' paths written.
pub fn export_with(
    dir: &Path,
    notes: &[Note],
    files: &[(NoteId, String, Vec<u8>)],
    force: bool,
) -> Result<Vec<PathBuf>, CliError> {
    let options = omegi_store::VaultExportOptions::default().force(force);
    let written = omegi_store::write_vault_with(dir, notes, files, &options)
        .map_err(|e| CliError::Usage(format!("{}: {e}", dir.display())))?;
    Ok(written
        .files
        .into_iter()
        .map(|(_, relative)| dir.join(relative))
        .collect())
}

/// Runs `omegi search`.
pub(super) async fn search(
    cli: &Cli,
    args: &SearchArgs,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let mut query = vec![("q", args.query.clone()), ("limit", args.limit.to_string())];
    for (key, value) in [
        ("author", &args.author),
        ("tag", &args.tag),
        ("issue", &args.issue),
        ("folder", &args.folder),
    ] {
        if let Some(v) = value {
            query.push((key, v.clone()));
        }
    }
    let hits: Vec<Hit> = cli.client()?.get("/api/search", &query).await?;
    if cli.json {
        return print_json(out, &hits);
    }
    write!(out, "{}", render_hits(&hits))?;
    Ok(())
}

/// Runs `omegi graph`.
pub(super) async fn graph(
    cli: &Cli,
    args: &GraphArgs,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let client = cli.client()?;
    let mut query = vec![("depth", args.depth.to_string())];
    if let Some(note) = &args.note {
        query.push(("note", note_id(&client, note).await?.to_string()));
    }
    // `--json` asks for JSON whatever the format.
    let format = if cli.json {
        GraphFormat::Json
    } else {
        args.format
    };
    query.push(("format", format.as_str().into()));
    if format == GraphFormat::Json {
        let graph: Subgraph = client.get("/api/graph", &query).await?;
        return print_json(out, &graph);
    }
    let text = client.get_text("/api/graph", &query).await?;
    write!(out, "{text}")?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

fn read_stdin() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    Ok(text)
}

/// Opens `$VISUAL`/`$EDITOR` (default `vi`) on `text`; the edited text.
fn edit_text(text: &str) -> Result<String, CliError> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    // Readable by the user alone (the note may be private), removed when
    // dropped.
    let file = tempfile::Builder::new()
        .prefix("omegi-note-")
        .suffix(".md")
        .tempfile()?;
    std::fs::write(file.path(), text)?;
    // Through the shell, so that EDITOR may carry arguments (`code -w`).
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status();
    match status {
        // Read by path: editors often replace the file rather than write into it.
        Ok(s) if s.success() => std::fs::read_to_string(file.path()).map_err(CliError::from),
        Ok(s) => Err(CliError::Usage(format!("{editor} exited with {s}"))),
        Err(e) => Err(CliError::Usage(format!("cannot run {editor}: {e}"))),
    }
}
