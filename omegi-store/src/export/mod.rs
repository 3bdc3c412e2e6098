//! Export and import of a whole store as JSON lines, for backup and
//! migration between stores and between backends.
//!
//! The first line is a header (`{"type":"header","format":"omegi-store",
//! "schema":4}`); every other line is one record tagged by `type`: the
//! accounts (`project`, `user` with its memberships, `admin`, `token` with
//! its hash), then the data (`service`, `span`, `issue`, `occurrence` with
//! its consequences, `settled`: what the settle step decided about a trace,
//! kept or sampled out, `traffic`: the statistics of requests, calls and
//! sampling counted from every settled trace, `counter`, `totals`, `note`,
//! `attachment`). Derived data (trace summaries, indexes, the registered
//! routes, the per-issue counters, the notes' links and full-text index)
//! is rebuilt on import. Importing an export into an empty store gives a
//! store whose export is the same text, on either backend: the embedded
//! store and PostgreSQL write the same lines in the same order (each
//! section in the byte order of the embedded store's keys), so a file
//! moves data from one to the other.
//!
//! An export carries the accounts, but an import takes them only when asked
//! ([`ImportOptions::accounts`]): a file must not be able to create admins
//! or tokens behind the back of whoever imports it. [`TransferStats`] says
//! what the file brought either way.
//!
//! # One format, two backends
//!
//! The format's rules are written once, here: the header and its versions,
//! the order of the sections, what older versions mean (legacy token hashes,
//! memberships of files from before them), what is imported only with the
//! accounts, how the spans of one trace become one chunk, what is derived
//! and rebuilt. They work over [`Transfer`], a narrow crate-private
//! interface each backend implements by storing and fetching only: a
//! section's records streamed in key order ([`Transfer::read_section`]),
//! and a batch of records written in one transaction
//! ([`Transfer::write_batch`]), whose rows are staged by [`stage_item`]
//! over the same [`Staging`] interface as an ingest, plus the few rows
//! only an import writes as they are ([`ImportRows`]). The embedded
//! store's side is in `embedded.rs`, PostgreSQL's in
//! `postgres/transfer.rs`.
//!
//! An export streams: no section is read whole into memory. An import
//! commits a few thousand records at a time, and restores notes and
//! attached files in batches too.

mod embedded;

use std::io::{BufRead, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use omegi_core::{Fingerprint, Note, NoteId, SpanRecord, TraceId};
use serde::{Deserialize, Serialize};

use crate::accounts::{grant_legacy_memberships, legacy_token, Project, Token, TokenOwner, User};
use crate::attachments::Attachment;
use crate::codec::SError;
use crate::error::{Error, Result};
use crate::issues::{Issue, IssueCounts, IssueRow, Occurrence, OccurrenceRef};
use crate::settle::SettledRow;
use crate::spans::stage_spans;
use crate::staging::Staging;
use crate::stats::{Bucket, ServiceInfo, Totals};
use crate::traffic::{register_route, RouteCounts, TrafficRecord, OTHER_ROUTE};
use crate::{Accounts, Notes};

/// Records an import writes in one transaction (the spans of a trace count
/// one each).
const IMPORT_BATCH: usize = 4096;

/// Items (records, or the spans of a trace) an import writes in one
/// transaction: PostgreSQL holds a lock per trace until the commit, and its
/// lock table is shared by every connection.
const IMPORT_ITEMS: usize = 1024;

/// Notes an import restores at once.
const NOTE_BATCH: usize = 512;

/// Bytes of attached files an import restores at once (at least one file).
const ATTACHMENT_BATCH_BYTES: usize = 16 << 20;

const FORMAT: &str = "omegi-store";

/// The version of the export format (the header's `schema`), which is
/// independent of the on-disk [`SCHEMA_VERSION`](crate::SCHEMA_VERSION):
/// an export is how data moves between on-disk schemas. Version 2 added the
/// admins (`{"type":"admin","login":…}` after the users); version 3 moved
/// each project's and user's `token_hash` into `token` lines (several per
/// project or user, each with an id and a label) and made `projects` of a
/// user the memberships that are enforced. Version 4 added the files
/// attached to notes (`{"type":"attachment","note":…,"name":…,
/// "created_ns":…,"data":"<base64>"}` after the notes), notes' `folder`,
/// the settled traces (`settled`) and the traffic statistics (`traffic`).
/// Versions 1 to 3 are still read: their token hashes become tokens, and, as
/// versions 1 and 2 predate memberships, every user who is not an admin
/// becomes a member of every project.
pub const EXPORT_VERSION: u32 = 4;

/// A project line: the project, and in exports of version 2 and older its
/// token's hash.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProjectLine {
    #[serde(flatten)]
    project: Project,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_hash: Option<String>,
}

/// A user line: the user, and in exports of version 2 and older its
/// token's hash.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UserLine {
    #[serde(flatten)]
    user: User,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_hash: Option<String>,
}

/// One line of an export: what a backend reads for each record of a
/// section, and what an import hands it to write.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Line {
    Header {
        format: String,
        schema: u32,
    },
    Project {
        project: ProjectLine,
    },
    User {
        user: UserLine,
    },
    Admin {
        login: String,
    },
    Token {
        token: Token,
    },
    Service {
        project: String,
        service: ServiceInfo,
    },
    Span {
        project: String,
        span: SpanRecord,
    },
    Issue {
        issue: Issue,
    },
    Occurrence {
        project: String,
        fingerprint: Fingerprint,
        occurrence: Occurrence,
    },
    Settled {
        project: String,
        trace_id: TraceId,
        settled: SettledRow,
    },
    Traffic {
        #[serde(flatten)]
        record: TrafficRecord,
    },
    Counter {
        project: String,
        service: Option<String>,
        bucket: Bucket,
        start_ns: u64,
        count: u64,
    },
    Totals {
        project: String,
        spans: u64,
        traces: u64,
        errors: u64,
    },
    Note {
        note: Note,
    },
    Attachment {
        note: omegi_core::NoteId,
        name: String,
        created_ns: u64,
        /// The bytes, base64 (standard alphabet, padded).
        data: String,
    },
}

/// What an export wrote or an import read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TransferStats {
    /// Lines, header included.
    pub lines: u64,
    /// Projects in the file.
    pub projects: u64,
    /// Users in the file.
    pub users: u64,
    /// Admins in the file.
    pub admins: u64,
    /// Tokens in the file (ingest and API tokens, as hashes).
    pub tokens: u64,
    /// Whether the accounts (projects, users, admins, tokens) were
    /// imported; an export always writes them.
    pub accounts: bool,
    /// Users of a file from before memberships who were made members of
    /// every project (only when accounts were imported).
    pub legacy_members: u64,
    /// Spans.
    pub spans: u64,
    /// Issues.
    pub issues: u64,
    /// Occurrences.
    pub occurrences: u64,
    /// Notes.
    pub notes: u64,
    /// Files attached to notes.
    pub attachments: u64,
    /// Settled traces, kept or sampled out.
    pub settled: u64,
    /// Records of traffic statistics (routes, calls, sampling totals).
    pub traffic: u64,
}

/// How to import an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Import the accounts too: projects, users, admins and tokens. Off by
    /// default: the accounts are counted in [`TransferStats`] and skipped.
    pub accounts: bool,
}

impl ImportOptions {
    /// Data only: accounts are counted and skipped.
    pub fn data_only() -> Self {
        ImportOptions::default()
    }

    /// Everything the file holds, accounts included: a restore.
    pub fn everything() -> Self {
        ImportOptions { accounts: true }
    }

    /// Sets whether accounts are imported.
    pub fn accounts(mut self, accounts: bool) -> Self {
        self.accounts = accounts;
        self
    }
}

/// The sections of an export after the accounts, in the order of the file.
/// Within a section, records come in the byte order of the embedded
/// store's keys, which every backend follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// `service` lines, by project and service.
    Services,
    /// `span` lines: the traces by project and trace id, the spans of each
    /// by span id (the latest copy of a span sent more than once).
    Spans,
    /// `issue` lines, by project and fingerprint.
    Issues,
    /// `occurrence` lines, by project, fingerprint, time and id.
    Occurrences,
    /// `settled` lines, by project and trace id.
    Settled,
    /// `traffic` lines, by project, then calls, routes and the sampling
    /// totals, each by bucket, bucket start and names.
    Traffic,
    /// `counter` lines: the project's, by project, bucket and start; then
    /// the services', by project, service, bucket and start.
    Counters,
    /// `totals` lines, by project.
    Totals,
    /// `note` lines, by id.
    Notes,
    /// `attachment` lines, by note and name key.
    Attachments,
}

impl Section {
    pub(crate) const ALL: [Section; 10] = [
        Section::Services,
        Section::Spans,
        Section::Issues,
        Section::Occurrences,
        Section::Settled,
        Section::Traffic,
        Section::Counters,
        Section::Totals,
        Section::Notes,
        Section::Attachments,
    ];
}

impl Line {
    /// The line of an attached file and its bytes.
    pub(crate) fn attachment(a: Attachment, bytes: &[u8]) -> Line {
        Line::Attachment {
            note: a.note,
            name: a.name,
            created_ns: a.created_ns,
            data: BASE64.encode(bytes),
        }
    }
}

/// What an import writes in one transaction: data lines, and the spans of
/// one trace as one chunk.
#[derive(Debug)]
pub(crate) enum Item {
    /// A `service`, `issue`, `occurrence`, `settled`, `traffic`, `counter`
    /// or `totals` line.
    Line(Box<Line>),
    /// Spans of one trace of a project, stored as one chunk.
    Trace {
        project: String,
        spans: Vec<SpanRecord>,
    },
}

/// What a backend does for export and import: fetch and store, nothing
/// more (see the module docs).
pub(crate) trait Transfer {
    /// The accounts, read and written through their own interface.
    fn transfer_accounts(&self) -> &dyn Accounts;
    /// The notes, restored through their own rules.
    fn transfer_notes(&self) -> Notes<'_>;
    /// Hands each record of `section` to `emit`, in the section's order,
    /// without reading the section whole into memory.
    fn read_section(
        &self,
        section: Section,
        emit: &mut dyn FnMut(Line) -> Result<()>,
    ) -> Result<()>;
    /// Writes `batch` in one transaction, each item through [`stage_item`].
    fn write_batch(&self, batch: &[Item]) -> Result<()>;
    /// Stores a token as it is; `false` when a token with its id or its
    /// hash is stored already.
    fn insert_token(&self, token: &Token) -> Result<bool>;
}

/// The rows only an import writes as they are (replacing what has their
/// key), beside those it stages as an ingest does.
pub(crate) trait ImportRows: Staging {
    /// A service of a project.
    fn put_service(&mut self, project: &str, service: &ServiceInfo) -> Result<()>;
    /// An error counter of a project, or of one of its services.
    fn put_counter(
        &mut self,
        project: &str,
        service: Option<&str>,
        bucket: Bucket,
        start_ns: u64,
        count: u64,
    ) -> Result<()>;
    /// A project's totals.
    fn put_totals(&mut self, project: &str, totals: &Totals) -> Result<()>;
    /// The requests of a route in a bucket.
    fn put_route_counts(
        &mut self,
        project: &str,
        key: &(Bucket, u64, String, String),
        counts: &RouteCounts,
    ) -> Result<()>;
    /// The calls between two services in a bucket.
    fn put_edge_counts(
        &mut self,
        project: &str,
        key: &(Bucket, u64, String, String),
        calls: u64,
        errors: u64,
    ) -> Result<()>;
}

/// Stages one item of an import: the rules of what each record becomes,
/// and what is derived from it, for every backend.
pub(crate) fn stage_item(w: &mut impl ImportRows, item: &Item) -> Result<()> {
    let line = match item {
        Item::Trace { project, spans } => {
            // Summaries and trace indexes are rebuilt as an ingest builds
            // them.
            let spans: Vec<&SpanRecord> = spans.iter().collect();
            stage_spans(w, project, &spans)?;
            return Ok(());
        }
        Item::Line(line) => &**line,
    };
    match line {
        Line::Service { project, service } => w.put_service(project, service),
        Line::Issue { issue } => {
            let fp = &issue.fingerprint.0;
            let old = w.issue_row(&issue.project, fp)?;
            w.put_issue_row(
                &issue.project,
                fp,
                old.as_ref(),
                &IssueRow::from_issue(issue),
            )
        }
        Line::Occurrence {
            project,
            fingerprint,
            occurrence,
        } => {
            let key = OccurrenceRef {
                fingerprint: fingerprint.0.clone(),
                time_ns: occurrence.time_ns,
                id: occurrence.seq,
            };
            // Kept under the id it was exported with; one that replaces a
            // stored one is not counted again.
            let replaced = w.take_occurrence(project, &key)?.is_some();
            w.insert_occurrence(project, &key, &SError::from_record(&occurrence.error))?;
            if !replaced {
                let mut counts = IssueCounts::default();
                counts.add(&fingerprint.0, occurrence.time_ns, 1);
                counts.stage(w, project)?;
            }
            w.put_consequences(project, &key, &occurrence.consequences)
        }
        Line::Settled {
            project,
            trace_id,
            settled,
        } => {
            let old = w.settled_rows(project, &[*trace_id])?.pop().flatten();
            w.put_settled_rows(
                project,
                &[(*trace_id, old.map(|row| row.start_ns()), settled)],
            )
        }
        Line::Traffic { record } => match record {
            TrafficRecord::Route {
                project,
                bucket,
                start_ns,
                service,
                route,
                counts,
            } => {
                // A route counted by name is registered again, whatever
                // the limit: the file's routes are the ones that were.
                if route != OTHER_ROUTE {
                    register_route(w, project, service, route, usize::MAX)?;
                }
                let key = (*bucket, *start_ns, service.clone(), route.clone());
                w.put_route_counts(project, &key, counts)
            }
            TrafficRecord::Call {
                project,
                bucket,
                start_ns,
                caller,
                callee,
                calls,
                errors,
            } => {
                let key = (*bucket, *start_ns, caller.clone(), callee.clone());
                w.put_edge_counts(project, &key, *calls, *errors)
            }
            TrafficRecord::Sampling { project, totals } => {
                // Read first: PostgreSQL creates the row (and locks it).
                w.sampling_totals(project)?;
                w.put_sampling_totals(project, totals)
            }
        },
        Line::Counter {
            project,
            service,
            bucket,
            start_ns,
            count,
        } => w.put_counter(project, service.as_deref(), *bucket, *start_ns, *count),
        Line::Totals {
            project,
            spans,
            traces,
            errors,
        } => w.put_totals(
            project,
            &Totals {
                spans: *spans,
                traces: *traces,
                errors: *errors,
            },
        ),
        Line::Header { .. }
        | Line::Project { .. }
        | Line::User { .. }
        | Line::Admin { .. }
        | Line::Token { .. }
        | Line::Span { .. }
        | Line::Note { .. }
        | Line::Attachment { .. } => Err(Error::Import {
            line: 0,
            reason: "a record that is not written in a batch".into(),
        }),
    }
}

fn write_line(out: &mut impl Write, line: &Line, lines: &mut u64) -> Result<()> {
    serde_json::to_writer(&mut *out, line).map_err(|e| Error::Encode(e.to_string()))?;
    out.write_all(b"\n")?;
    *lines += 1;
    Ok(())
}

/// Writes the whole store as JSON lines (see the module docs).
pub(crate) fn export(store: &impl Transfer, mut out: impl Write) -> Result<TransferStats> {
    let mut stats = TransferStats::default();
    let header = Line::Header {
        format: FORMAT.into(),
        schema: EXPORT_VERSION,
    };
    write_line(&mut out, &header, &mut stats.lines)?;
    let accounts = store.transfer_accounts();
    for project in accounts.projects()? {
        let project = ProjectLine {
            project,
            token_hash: None,
        };
        write_line(&mut out, &Line::Project { project }, &mut stats.lines)?;
        stats.projects += 1;
    }
    for user in accounts.users()? {
        let user = UserLine {
            user,
            token_hash: None,
        };
        write_line(&mut out, &Line::User { user }, &mut stats.lines)?;
        stats.users += 1;
    }
    for login in accounts.admins()? {
        write_line(&mut out, &Line::Admin { login }, &mut stats.lines)?;
        stats.admins += 1;
    }
    for token in accounts.tokens(None)? {
        write_line(&mut out, &Line::Token { token }, &mut stats.lines)?;
        stats.tokens += 1;
    }
    stats.accounts = true;
    for section in Section::ALL {
        store.read_section(section, &mut |line| {
            match &line {
                Line::Span { .. } => stats.spans += 1,
                Line::Issue { .. } => stats.issues += 1,
                Line::Occurrence { .. } => stats.occurrences += 1,
                Line::Settled { .. } => stats.settled += 1,
                Line::Traffic { .. } => stats.traffic += 1,
                Line::Note { .. } => stats.notes += 1,
                Line::Attachment { .. } => stats.attachments += 1,
                _ => {}
            }
            write_line(&mut out, &line, &mut stats.lines)
        })?;
    }
    out.flush()?;
    Ok(stats)
}

/// What an import has read and not written yet.
struct Pending {
    /// Items for the next transaction.
    batch: Vec<Item>,
    /// Records in it (each span counts).
    records: usize,
    /// The spans of the trace being read: they become one chunk.
    trace: Option<(String, Vec<SpanRecord>)>,
    notes: Vec<Note>,
    files: Vec<(NoteId, String, u64, Vec<u8>)>,
    file_bytes: usize,
}

impl Pending {
    fn new() -> Self {
        Pending {
            batch: Vec::new(),
            records: 0,
            trace: None,
            notes: Vec::new(),
            files: Vec::new(),
            file_bytes: 0,
        }
    }

    /// Closes the trace being read.
    fn end_trace(&mut self) {
        if let Some((project, spans)) = self.trace.take() {
            self.batch.push(Item::Trace { project, spans });
        }
    }

    /// Writes the batch.
    fn write(&mut self, store: &impl Transfer) -> Result<()> {
        self.end_trace();
        if !self.batch.is_empty() {
            store.write_batch(&self.batch)?;
            self.batch.clear();
        }
        self.records = 0;
        Ok(())
    }

    fn restore_notes(&mut self, store: &impl Transfer) -> Result<()> {
        if !self.notes.is_empty() {
            store
                .transfer_notes()
                .restore(std::mem::take(&mut self.notes))?;
        }
        Ok(())
    }

    fn restore_files(&mut self, store: &impl Transfer) -> Result<()> {
        if !self.files.is_empty() {
            store
                .transfer_notes()
                .restore_attachments(std::mem::take(&mut self.files))?;
        }
        self.file_bytes = 0;
        Ok(())
    }
}

/// Reads an export into a store meant to be empty (see
/// [`Store::import_with`](crate::Store::import_with)).
pub(crate) fn import(
    store: &impl Transfer,
    input: impl BufRead,
    options: ImportOptions,
) -> Result<TransferStats> {
    let mut stats = TransferStats::default();
    let mut pending = Pending::new();
    let mut version = EXPORT_VERSION;
    stats.accounts = options.accounts;
    let accounts = store.transfer_accounts();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line).map_err(|e| Error::Import {
            line: number,
            reason: e.to_string(),
        })?;
        stats.lines += 1;
        if stats.lines == 1 {
            match &parsed {
                Line::Header { format, schema } if format == FORMAT => {
                    version = *schema;
                    if *schema > EXPORT_VERSION {
                        return Err(Error::Import {
                            line: number,
                            reason: format!(
                                "schema {schema} is newer than {EXPORT_VERSION}, \
                                 the newest this version reads"
                            ),
                        });
                    }
                }
                _ => {
                    return Err(Error::Import {
                        line: number,
                        reason: "the first line is not an omegi-store header".into(),
                    })
                }
            }
            continue;
        }
        if !matches!(parsed, Line::Span { .. }) {
            pending.end_trace();
        }
        if pending.records >= IMPORT_BATCH || pending.batch.len() >= IMPORT_ITEMS {
            pending.write(store)?;
        }
        match parsed {
            Line::Header { .. } => {
                return Err(Error::Import {
                    line: number,
                    reason: "a second header".into(),
                })
            }
            Line::Project { project } => {
                stats.projects += 1;
                if options.accounts {
                    accounts.put_project(&project.project)?;
                    if let Some(hash) = project.token_hash {
                        let owner = TokenOwner::Project(project.project.id.clone());
                        let token = legacy_token(owner, hash, project.project.created_ns);
                        import_token(store, token, number)?;
                        stats.tokens += 1;
                    }
                } else if project.token_hash.is_some() {
                    stats.tokens += 1;
                }
            }
            Line::User { user } => {
                stats.users += 1;
                if options.accounts {
                    accounts.put_user(&user.user)?;
                    if let Some(hash) = user.token_hash {
                        let owner = TokenOwner::User(user.user.login.clone());
                        let token = legacy_token(owner, hash, user.user.created_ns);
                        import_token(store, token, number)?;
                        stats.tokens += 1;
                    }
                } else if user.token_hash.is_some() {
                    stats.tokens += 1;
                }
            }
            Line::Admin { login } => {
                stats.admins += 1;
                if options.accounts {
                    accounts
                        .set_admin(&login, true)
                        .map_err(|e| Error::Import {
                            line: number,
                            reason: e.to_string(),
                        })?;
                }
            }
            Line::Token { token } => {
                stats.tokens += 1;
                if options.accounts {
                    import_token(store, token, number)?;
                }
            }
            Line::Span { project, span } => {
                // Spans of one trace come together: they are written as one
                // chunk. Exports of schema 2 and older kept a trace of
                // several projects as one: each span names its project, so
                // here it becomes one trace per project.
                if pending.trace.as_ref().is_some_and(|(p, spans)| {
                    *p != project || spans.first().map(|s| s.trace_id) != Some(span.trace_id)
                }) {
                    pending.end_trace();
                }
                pending
                    .trace
                    .get_or_insert_with(|| (project, Vec::new()))
                    .1
                    .push(span);
                pending.records += 1;
                stats.spans += 1;
            }
            Line::Note { note } => {
                pending.notes.push(note);
                stats.notes += 1;
                if pending.notes.len() >= NOTE_BATCH {
                    pending.restore_notes(store)?;
                }
            }
            Line::Attachment {
                note,
                name,
                created_ns,
                data,
            } => {
                let bytes = BASE64.decode(data.as_bytes()).map_err(|e| Error::Import {
                    line: number,
                    reason: format!("attachment {name:?}: its data is not base64: {e}"),
                })?;
                // A file goes to a note the file held before it.
                pending.restore_notes(store)?;
                pending.file_bytes += bytes.len();
                pending.files.push((note, name, created_ns, bytes));
                stats.attachments += 1;
                if pending.file_bytes >= ATTACHMENT_BATCH_BYTES {
                    pending.restore_files(store)?;
                }
            }
            line => {
                match &line {
                    Line::Issue { .. } => stats.issues += 1,
                    Line::Occurrence { .. } => stats.occurrences += 1,
                    Line::Settled { .. } => stats.settled += 1,
                    Line::Traffic { .. } => stats.traffic += 1,
                    _ => {}
                }
                pending.batch.push(Item::Line(Box::new(line)));
                pending.records += 1;
            }
        }
    }
    pending.write(store)?;
    pending.restore_notes(store)?;
    pending.restore_files(store)?;
    if stats.lines == 0 {
        return Err(Error::Import {
            line: 1,
            reason: "empty input: no header".into(),
        });
    }
    if options.accounts && version < 3 {
        // The file predates memberships: every user could read every
        // project then.
        stats.legacy_members = grant_legacy_memberships(accounts)?.members.len() as u64;
    }
    Ok(stats)
}

/// Stores an imported token as it is; its owner must have been imported
/// before it, and its id and hash must be new.
fn import_token(store: &impl Transfer, token: Token, line: usize) -> Result<()> {
    let accounts = store.transfer_accounts();
    let exists = match &token.owner {
        TokenOwner::Project(id) => accounts.project(id)?.is_some(),
        TokenOwner::User(login) => accounts.user(login)?.is_some(),
    };
    if !exists {
        return Err(Error::Import {
            line,
            reason: format!(
                "token {} of {}, which the file does not hold",
                token.id, token.owner
            ),
        });
    }
    if !store.insert_token(&token)? {
        return Err(Error::Import {
            line,
            reason: format!("token {} twice (by id or by hash)", token.id),
        });
    }
    Ok(())
}
