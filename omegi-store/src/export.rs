//! Export and import of a whole store as JSON lines, for backup and
//! migration.
//!
//! The first line is a header (`{"type":"header","format":"omegi-store",
//! "schema":1}`); every other line is one record tagged by `type`: `project`,
//! `user`, `service`, `span`, `issue`, `occurrence`, `counter`, `totals` or
//! `note`. Derived data (trace summaries, indexes, the notes' links and
//! full-text index) is rebuilt on import.
//! Importing an export into an empty store gives a store whose export is the
//! same text.

use std::io::{BufRead, Write};

use omegi_core::{Fingerprint, Note, SpanRecord};
use serde::{Deserialize, Serialize};

use crate::accounts::{Project, User};
use crate::error::{Error, Result};
use crate::issues::{put_issue, put_occurrence, Issue, Occurrence};
use crate::keys::{counter, KeyReader};
use crate::spans::{merged_spans, stage_spans};
use crate::stats::{
    counter_key, put_service, put_totals, read_totals, service_counter_key, Bucket, ServiceInfo,
    Totals,
};
use crate::writes::{TreeId, Writes};
use crate::Store;

/// Writes an import stages before it commits them.
const IMPORT_WRITES: usize = 4096;

const FORMAT: &str = "omegi-store";

/// The version of the export format (the header's `schema`), which is
/// independent of the on-disk [`SCHEMA_VERSION`](crate::SCHEMA_VERSION):
/// an export is how data moves between on-disk schemas. Version 2 added the
/// admins (`{"type":"admin","login":…}` after the users); version 1 is
/// still read.
pub const EXPORT_VERSION: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        schema: u32,
    },
    Project {
        project: Project,
    },
    User {
        user: User,
    },
    Admin {
        login: String,
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
}

/// What an export wrote or an import read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TransferStats {
    /// Lines, header included.
    pub lines: u64,
    /// Spans.
    pub spans: u64,
    /// Issues.
    pub issues: u64,
    /// Occurrences.
    pub occurrences: u64,
    /// Notes.
    pub notes: u64,
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

impl Store {
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
        for project in self.projects()? {
            write_line(&mut out, &Line::Project { project }, lines)?;
        }
        for user in self.users()? {
            write_line(&mut out, &Line::User { user }, lines)?;
        }
        for login in self.admins()? {
            write_line(&mut out, &Line::Admin { login }, lines)?;
        }
        for (project, service) in self.all_services()? {
            write_line(&mut out, &Line::Service { project, service }, lines)?;
        }
        for item in t.traces.iter() {
            let (key, _) = item?;
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
        for (tree, name, with_service) in [
            (&t.counters, "counters", false),
            (&t.service_counters, "service_counters", true),
        ] {
            for item in tree.iter() {
                let (key, value) = item?;
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
            let (key, _) = item?;
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
        out.flush()?;
        Ok(stats)
    }

    /// Reads an export into this store, meant to be empty: records with the
    /// same keys are replaced, counters are overwritten. Trace summaries and
    /// indexes are rebuilt. Call [`Store::flush`] afterwards for durability.
    pub fn import(&self, input: impl BufRead) -> Result<TransferStats> {
        let core = self.core();
        let _guard = core.lock();
        let mut stats = TransferStats::default();
        // The lines are staged and committed a few thousand writes at a
        // time: an import is as large as a store, not as a request.
        let mut w = Writes::new(core);
        let mut pending: Option<(String, Vec<SpanRecord>)> = None;
        let mut notes: Vec<Note> = Vec::new();
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
                Line::Project { project } => self.put_project(&project)?,
                Line::User { user } => self.put_user(&user)?,
                Line::Admin { login } => self.set_admin(&login, true)?,
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
            }
        }
        stage_pending(&mut w, &mut pending)?;
        w.commit()?;
        if !notes.is_empty() {
            // One batch: one commit of the full-text index.
            self.restore_notes(notes)?;
        }
        if stats.lines == 0 {
            return Err(Error::Import {
                line: 1,
                reason: "empty input: no header".into(),
            });
        }
        Ok(stats)
    }
}
