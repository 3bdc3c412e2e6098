//! Export and import of a whole store as JSON lines, for backup and
//! migration.
//!
//! The first line is a header (`{"type":"header","format":"omegi-store",
//! "schema":3}`); every other line is one record tagged by `type`: the
//! accounts (`project`, `user` with its memberships, `admin`, `token` with
//! its hash), then the data (`service`, `span`, `issue`, `occurrence` with
//! its consequences, `settled`: what the settle step decided about a trace,
//! kept or sampled out, `traffic`: the statistics of requests, calls and
//! sampling counted from every settled trace, `counter`, `totals`, `note`).
//! Derived data (trace summaries, indexes, the registered routes, the
//! notes' links and full-text index) is rebuilt on import.
//! Importing an export into an empty store gives a store whose export is the
//! same text.
//!
//! An export carries the accounts, but an import takes them only when asked
//! ([`ImportOptions::accounts`]): a file must not be able to create admins
//! or tokens behind the back of whoever imports it. [`TransferStats`] says
//! what the file brought either way.

use crate::error::Db;
use std::io::{BufRead, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use omegi_core::{Fingerprint, Note, SpanRecord, TraceId};
use serde::{Deserialize, Serialize};

use crate::accounts::{legacy_token, Project, Token, TokenOwner, User};
use crate::codec::encode;
use crate::error::{Error, Result};
use crate::issues::{put_issue, put_occurrence, Issue, Occurrence};
use crate::keys::{counter, KeyReader};
use crate::settle::{settled_index_key, settled_key, SettledRow};
use crate::spans::{merged_spans, stage_spans};
use crate::stats::{
    counter_key, put_service, put_totals, read_totals, service_counter_key, Bucket, ServiceInfo,
    Totals,
};
use crate::traffic::{put_traffic, traffic_record, TrafficRecord};
use crate::writes::{TreeId, Writes};
use crate::Embedded;

/// Writes an import stages before it commits them.
const IMPORT_WRITES: usize = 4096;

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
struct ProjectLine {
    #[serde(flatten)]
    project: Project,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_hash: Option<String>,
}

/// A user line: the user, and in exports of version 2 and older its
/// token's hash.
#[derive(Debug, Serialize, Deserialize)]
struct UserLine {
    #[serde(flatten)]
    user: User,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_hash: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
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

fn write_line(out: &mut impl Write, line: &Line, lines: &mut u64) -> Result<()> {
    serde_json::to_writer(&mut *out, line).map_err(|e| Error::Encode(e.to_string()))?;
    out.write_all(b"\n")?;
    *lines += 1;
    Ok(())
}

fn read_counter_key(
    tree: &'static str,
    key: &[u8],
    with_service: bool,
) -> Result<(String, Option<String>, Bucket, u64)> {
    let mut r = KeyReader::new(tree, key);
    let project = r.str()?.to_owned();
    let service = if with_service {
        Some(r.str()?.to_owned())
    } else {
        None
    };
    let code = r.u8()?;
    let bucket = Bucket::from_code(code)
        .ok_or_else(|| Error::corrupt(tree, format!("unknown bucket {code}")))?;
    let start = r.u64()?;
    r.end()?;
    Ok((project, service, bucket, start))
}

impl Embedded {
    /// Writes the whole store as JSON lines. Writes made during the export
    /// may or may not be included.
    pub fn export(&self, mut out: impl Write) -> Result<TransferStats> {
        let t = &self.core().t;
        let mut stats = TransferStats::default();
        let lines = &mut stats.lines;
        write_line(
            &mut out,
            &Line::Header {
                format: FORMAT.into(),
                schema: EXPORT_VERSION,
            },
            lines,
        )?;
        for project in self.accounts().projects()? {
            let project = ProjectLine {
                project,
                token_hash: None,
            };
            write_line(&mut out, &Line::Project { project }, lines)?;
            stats.projects += 1;
        }
        for user in self.accounts().users()? {
            let user = UserLine {
                user,
                token_hash: None,
            };
            write_line(&mut out, &Line::User { user }, lines)?;
            stats.users += 1;
        }
        for login in self.accounts().admins()? {
            write_line(&mut out, &Line::Admin { login }, lines)?;
            stats.admins += 1;
        }
        for token in self.accounts().tokens(None)? {
            write_line(&mut out, &Line::Token { token }, lines)?;
            stats.tokens += 1;
        }
        stats.accounts = true;
        for (project, service) in self.all_services()? {
            write_line(&mut out, &Line::Service { project, service }, lines)?;
        }
        for item in t.traces.iter() {
            let (key, _) = item.db()?;
            let mut r = KeyReader::new("traces", &key);
            let project = r.str()?.to_owned();
            let trace = r.trace()?;
            r.end()?;
            for span in merged_spans(t, &project, trace)?.into_values() {
                let span = span.into_record("span_segments")?;
                let project = project.clone();
                write_line(&mut out, &Line::Span { project, span }, lines)?;
                stats.spans += 1;
            }
        }
        for issue in self.all_issues() {
            write_line(&mut out, &Line::Issue { issue: issue? }, lines)?;
            stats.issues += 1;
        }
        for occurrence in self.all_occurrences() {
            let (project, fingerprint, occurrence) = occurrence?;
            let line = Line::Occurrence {
                project,
                fingerprint,
                occurrence,
            };
            write_line(&mut out, &line, lines)?;
            stats.occurrences += 1;
        }
        for item in t.settled.iter() {
            let (key, value) = item.db()?;
            let mut r = KeyReader::new("settled", &key);
            let project = r.str()?.to_owned();
            let trace_id = r.trace()?;
            r.end()?;
            let settled = crate::codec::decode("settled", &value)?;
            let line = Line::Settled {
                project,
                trace_id,
                settled,
            };
            write_line(&mut out, &line, lines)?;
            stats.settled += 1;
        }
        for item in t.traffic.iter() {
            let (key, value) = item.db()?;
            if let Some(record) = traffic_record(&key, &value)? {
                write_line(&mut out, &Line::Traffic { record }, lines)?;
                stats.traffic += 1;
            }
        }
        for (tree, name, with_service) in [
            (&t.counters, "counters", false),
            (&t.service_counters, "service_counters", true),
        ] {
            for item in tree.iter() {
                let (key, value) = item.db()?;
                let (project, service, bucket, start_ns) =
                    read_counter_key(name, &key, with_service)?;
                let line = Line::Counter {
                    project,
                    service,
                    bucket,
                    start_ns,
                    count: counter(name, &value)?,
                };
                write_line(&mut out, &line, lines)?;
            }
        }
        for item in t.totals.iter() {
            let (key, _) = item.db()?;
            let mut r = KeyReader::new("totals", &key);
            let project = r.str()?.to_owned();
            r.end()?;
            let totals = read_totals(t, &project)?;
            let line = Line::Totals {
                project,
                spans: totals.spans,
                traces: totals.traces,
                errors: totals.errors,
            };
            write_line(&mut out, &line, lines)?;
        }
        for note in crate::notes::all_notes(t) {
            write_line(&mut out, &Line::Note { note: note? }, lines)?;
            stats.notes += 1;
        }
        for file in crate::attachments::all_attachments(t) {
            let (a, bytes) = file?;
            let line = Line::Attachment {
                note: a.note,
                name: a.name,
                created_ns: a.created_ns,
                data: BASE64.encode(bytes),
            };
            write_line(&mut out, &line, lines)?;
            stats.attachments += 1;
        }
        out.flush()?;
        Ok(stats)
    }

    /// Reads an export into this store, meant to be empty: records with the
    /// same keys are replaced, counters are overwritten. Trace summaries and
    /// indexes are rebuilt. Accounts are imported only if `options` say so;
    /// they are counted either way. Call [`Store::flush`] afterwards for
    /// durability.
    pub fn import_with(
        &self,
        input: impl BufRead,
        options: ImportOptions,
    ) -> Result<TransferStats> {
        let core = self.core();
        let _guard = core.lock();
        let mut stats = TransferStats::default();
        // The lines are staged and committed a few thousand writes at a
        // time: an import is as large as a store, not as a request.
        let mut w = Writes::new(core);
        let mut pending: Option<(String, Vec<SpanRecord>)> = None;
        let mut notes: Vec<Note> = Vec::new();
        let mut files: Vec<(omegi_core::NoteId, String, u64, Vec<u8>)> = Vec::new();
        let mut version = EXPORT_VERSION;
        stats.accounts = options.accounts;
        let stage_pending =
            |w: &mut Writes<'_>, pending: &mut Option<(String, Vec<SpanRecord>)>| -> Result<()> {
                if let Some((project, spans)) = pending.take() {
                    let refs: Vec<&SpanRecord> = spans.iter().collect();
                    stage_spans(w, &project, &refs)?;
                }
                Ok(())
            };
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
                stage_pending(&mut w, &mut pending)?;
            }
            if w.len() >= IMPORT_WRITES {
                std::mem::replace(&mut w, Writes::new(core)).commit()?;
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
                        self.accounts().put_project(&project.project)?;
                        if let Some(hash) = project.token_hash {
                            let owner = TokenOwner::Project(project.project.id.clone());
                            self.import_token(
                                legacy_token(owner, hash, project.project.created_ns),
                                number,
                            )?;
                            stats.tokens += 1;
                        }
                    } else if project.token_hash.is_some() {
                        stats.tokens += 1;
                    }
                }
                Line::User { user } => {
                    stats.users += 1;
                    if options.accounts {
                        self.accounts().put_user(&user.user)?;
                        if let Some(hash) = user.token_hash {
                            let owner = TokenOwner::User(user.user.login.clone());
                            self.import_token(
                                legacy_token(owner, hash, user.user.created_ns),
                                number,
                            )?;
                            stats.tokens += 1;
                        }
                    } else if user.token_hash.is_some() {
                        stats.tokens += 1;
                    }
                }
                Line::Admin { login } => {
                    stats.admins += 1;
                    if options.accounts {
                        self.accounts()
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
                        self.import_token(token, number)?;
                    }
                }
                Line::Service { project, service } => put_service(&mut w, &project, &service)?,
                Line::Span { project, span } => {
                    // Spans of one trace come together: write them as one
                    // chunk. Exports of schema 2 and older kept a trace of
                    // several projects as one: each span names its project,
                    // so here it becomes one trace per project.
                    if pending.as_ref().is_some_and(|(p, spans)| {
                        *p != project || spans.first().map(|s| s.trace_id) != Some(span.trace_id)
                    }) {
                        stage_pending(&mut w, &mut pending)?;
                    }
                    pending
                        .get_or_insert_with(|| (project, Vec::new()))
                        .1
                        .push(span);
                    stats.spans += 1;
                }
                Line::Issue { issue } => {
                    put_issue(&mut w, &issue)?;
                    stats.issues += 1;
                }
                Line::Occurrence {
                    project,
                    fingerprint,
                    occurrence,
                } => {
                    put_occurrence(&mut w, &project, &fingerprint.0, &occurrence)?;
                    stats.occurrences += 1;
                }
                Line::Settled {
                    project,
                    trace_id,
                    settled,
                } => {
                    w.insert(
                        TreeId::SettledByStart,
                        settled_index_key(&project, settled.start_ns(), trace_id)?,
                        sled::IVec::default(),
                    );
                    w.insert(
                        TreeId::Settled,
                        settled_key(&project, trace_id)?,
                        encode(&settled)?,
                    );
                    stats.settled += 1;
                }
                Line::Traffic { record } => {
                    put_traffic(&mut w, &record)?;
                    stats.traffic += 1;
                }
                Line::Counter {
                    project,
                    service,
                    bucket,
                    start_ns,
                    count,
                } => {
                    let (tree, key) = match service {
                        Some(s) => (
                            TreeId::ServiceCounters,
                            service_counter_key(&project, &s, bucket, start_ns)?,
                        ),
                        None => (TreeId::Counters, counter_key(&project, bucket, start_ns)?),
                    };
                    w.insert(tree, key, &count.to_be_bytes()[..]);
                }
                Line::Totals {
                    project,
                    spans,
                    traces,
                    errors,
                } => put_totals(
                    &mut w,
                    &project,
                    &Totals {
                        spans,
                        traces,
                        errors,
                    },
                )?,
                Line::Note { note } => {
                    notes.push(note);
                    stats.notes += 1;
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
                    files.push((note, name, created_ns, bytes));
                    stats.attachments += 1;
                }
            }
        }
        stage_pending(&mut w, &mut pending)?;
        w.commit()?;
        if !notes.is_empty() {
            // One batch: one commit of the full-text index.
            self.notes().restore(notes)?;
        }
        if !files.is_empty() {
            self.notes().restore_attachments(files)?;
        }
        if stats.lines == 0 {
            return Err(Error::Import {
                line: 1,
                reason: "empty input: no header".into(),
            });
        }
        if options.accounts && version < 3 {
            // The file predates memberships: every user could read every
            // project then.
            stats.legacy_members = self.grant_legacy_memberships()?.members.len() as u64;
        }
        Ok(stats)
    }

    /// Stores an imported token as it is; its owner must have been imported
    /// before it.
    fn import_token(&self, token: Token, line: usize) -> Result<()> {
        let t = &self.core().t;
        let exists = match &token.owner {
            TokenOwner::Project(id) => self.accounts().project(id)?.is_some(),
            TokenOwner::User(login) => self.accounts().user(login)?.is_some(),
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
        if t.token_ids.contains_key(token.id.as_bytes()).db()?
            || t.tokens.contains_key(token.hash.as_bytes()).db()?
        {
            return Err(Error::Import {
                line,
                reason: format!("token {} twice (by id or by hash)", token.id),
            });
        }
        t.tokens
            .insert(token.hash.as_bytes(), encode(&token)?)
            .db()?;
        t.token_ids
            .insert(token.id.as_bytes(), token.hash.as_bytes())
            .db()?;
        Ok(())
    }
}
