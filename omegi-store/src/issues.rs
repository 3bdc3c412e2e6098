//! Issues: occurrences of one fingerprint grouped per project, with their
//! status, and the occurrences themselves.

use crate::error::Db;
use std::collections::BTreeMap;

use omegi_core::{fingerprint, Consequence, ErrorRecord, Fingerprint, SpanId, TraceId};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, SConsequence, SError};
use crate::error::{Error, Result};
use crate::handles::At;
use crate::keys::{Key, KeyReader};
use crate::spans::insert_sorted;
use crate::staging::Staging;
use crate::stats::Bucket;
use crate::writes::{Lookup, TreeId, Writes};
use crate::{now_ns, Embedded, Issues};

/// Where an issue stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueStatus {
    /// New or still happening, nobody resolved it.
    Unresolved,
    /// Marked fixed.
    Resolved,
    /// Marked not worth attention; new occurrences are counted but do not
    /// change the status.
    Ignored,
    /// Was resolved, then occurred again.
    Regressed,
}

impl IssueStatus {
    /// Whether the issue wants attention (unresolved or regressed).
    pub fn is_open(self) -> bool {
        matches!(self, IssueStatus::Unresolved | IssueStatus::Regressed)
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            IssueStatus::Unresolved => 0,
            IssueStatus::Resolved => 1,
            IssueStatus::Ignored => 2,
            IssueStatus::Regressed => 3,
        }
    }

    pub(crate) fn from_code(c: u8) -> Result<Self> {
        Ok(match c {
            0 => IssueStatus::Unresolved,
            1 => IssueStatus::Resolved,
            2 => IssueStatus::Ignored,
            3 => IssueStatus::Regressed,
            _ => return Err(Error::corrupt("issues", format!("unknown status {c}"))),
        })
    }
}

/// One error, grouped by fingerprint within a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// The project.
    pub project: String,
    /// The grouping key.
    pub fingerprint: Fingerprint,
    /// Error type and message: `PaymentError: card declined`.
    pub title: String,
    /// Status.
    pub status: IssueStatus,
    /// Occurrences ever ingested (retention does not lower it).
    pub count: u64,
    /// Time of the earliest occurrence, ns.
    pub first_seen_ns: u64,
    /// Time of the latest occurrence, ns.
    pub last_seen_ns: u64,
    /// Services it occurred in, sorted.
    pub services: Vec<String>,
    /// The trace of the latest occurrence that had one.
    pub latest_trace: Option<TraceId>,
    /// The latest occurrence's error.
    pub latest_error: ErrorRecord,
    /// When the status last changed by hand (or 0), ns.
    pub status_changed_ns: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IssueRow {
    pub(crate) title: String,
    pub(crate) status: u8,
    pub(crate) count: u64,
    pub(crate) first_seen_ns: u64,
    pub(crate) last_seen_ns: u64,
    pub(crate) services: Vec<String>,
    pub(crate) latest_trace: Option<u128>,
    pub(crate) latest_error: SError,
    pub(crate) status_changed_ns: u64,
}

/// The leading fields of an [`IssueRow`], decoded without the rest.
#[derive(Deserialize)]
struct IssueHead<'a> {
    #[allow(dead_code)]
    title: &'a str,
    status: u8,
    count: u64,
}

impl IssueRow {
    pub(crate) fn into_issue(self, project: &str, fp: &str) -> Result<Issue> {
        Ok(Issue {
            project: project.to_owned(),
            fingerprint: Fingerprint(fp.to_owned()),
            title: self.title,
            status: IssueStatus::from_code(self.status)?,
            count: self.count,
            first_seen_ns: self.first_seen_ns,
            last_seen_ns: self.last_seen_ns,
            services: self.services,
            latest_trace: self.latest_trace.map(TraceId),
            latest_error: self.latest_error.into_record("issues")?,
            status_changed_ns: self.status_changed_ns,
        })
    }

    pub(crate) fn from_issue(issue: &Issue) -> Self {
        IssueRow {
            title: issue.title.clone(),
            status: issue.status.code(),
            count: issue.count,
            first_seen_ns: issue.first_seen_ns,
            last_seen_ns: issue.last_seen_ns,
            services: issue.services.clone(),
            latest_trace: issue.latest_trace.map(|t| t.0),
            latest_error: SError::from_record(&issue.latest_error),
            status_changed_ns: issue.status_changed_ns,
        }
    }
}

/// One occurrence of an issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    /// When, ns.
    pub time_ns: u64,
    /// The trace it happened in.
    pub trace_id: Option<TraceId>,
    /// The innermost span.
    pub span_id: Option<SpanId>,
    /// The service.
    pub service: String,
    /// The error itself.
    pub error: ErrorRecord,
    /// Tells apart occurrences of the issue at the same time. It derives
    /// from the error's content (trace and span ids, time, message, type,
    /// fields, ...), so that the same error sent twice is one occurrence.
    pub seq: u64,
    /// The failures this one caused in its trace (the spans above it that
    /// failed because of it), nearest first; empty when it caused none or
    /// was not settled with its trace.
    #[serde(default)]
    pub consequences: Vec<Consequence>,
}

impl Occurrence {
    pub(crate) fn new(error: ErrorRecord, seq: u64, consequences: Vec<Consequence>) -> Self {
        Occurrence {
            time_ns: error.time_ns,
            trace_id: error.trace_id,
            span_id: error.span_id,
            service: error.service.clone(),
            error,
            seq,
            consequences,
        }
    }
}

/// One occurrence as a list shows it, read without its span stack,
/// breadcrumbs and fields: see [`Issues::latest_occurrences`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccurrenceSummary {
    /// When, ns.
    pub time_ns: u64,
    /// Tells apart occurrences at the same time.
    pub seq: u64,
    /// The trace it happened in.
    pub trace_id: Option<TraceId>,
    /// The innermost span.
    pub span_id: Option<SpanId>,
    /// The service, cut like [`Issue::title`].
    pub service: String,
    /// The first line of the error's message, cut like [`Issue::title`].
    pub message: String,
}

/// The leading fields of a stored occurrence (an `SError`), borrowed from
/// the value: a list reads these and nothing after them.
#[derive(Deserialize)]
struct OccurrenceHead<'a> {
    trace_id: Option<u128>,
    span_id: Option<u64>,
    service: &'a str,
    #[allow(dead_code)]
    time_ns: u64,
    #[allow(dead_code)]
    kind: u8,
    message: &'a str,
}

/// An occurrence as a list shows it, from the leading fields of its stored
/// error.
pub(crate) fn occurrence_summary(
    time_ns: u64,
    seq: u64,
    error: &[u8],
) -> Result<OccurrenceSummary> {
    let (head, _): (OccurrenceHead<'_>, _) = postcard::take_from_bytes(error)
        .map_err(|e| Error::corrupt("occurrences", e.to_string()))?;
    Ok(OccurrenceSummary {
        time_ns,
        seq,
        trace_id: head.trace_id.map(TraceId),
        span_id: head.span_id.map(SpanId),
        service: short(head.service),
        message: title_line(head.message),
    })
}

/// Stages an issue's new status, set by hand now.
fn stage_status(
    w: &mut impl Staging,
    project: &str,
    fp: &str,
    status: IssueStatus,
    now: u64,
) -> Result<IssueRow> {
    w.lock_issues(project, &[fp])?;
    let old = w
        .issue_row(project, fp)?
        .ok_or_else(|| Error::IssueNotFound {
            project: project.to_owned(),
            fingerprint: fp.to_owned(),
        })?;
    let mut row = old.clone();
    row.status = status.code();
    row.status_changed_ns = now;
    w.put_issue_row(project, fp, Some(&old), &row)?;
    Ok(row)
}

/// The key of the occurrence an issue's latest error is stored as.
pub(crate) fn latest_occurrence(issue: &Issue) -> Result<OccurrenceRef> {
    Ok(OccurrenceRef {
        fingerprint: issue.fingerprint.0.clone(),
        time_ns: issue.latest_error.time_ns,
        id: SError::from_record(&issue.latest_error).occurrence_id()?,
    })
}

/// Order of an issue list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueSort {
    /// Most recently seen first (ties: greater fingerprint first).
    #[default]
    LastSeen,
    /// Most occurrences first (ties: smaller fingerprint first).
    Count,
}

/// Which issues of a project to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssueQuery {
    /// Keep issues with one of these statuses; empty keeps all.
    pub statuses: Vec<IssueStatus>,
    /// Order.
    pub sort: IssueSort,
    /// At most this many.
    pub limit: Option<usize>,
}

impl IssueQuery {
    /// All issues, most recently seen first.
    pub fn all() -> Self {
        IssueQuery::default()
    }

    /// Unresolved and regressed issues, most recently seen first.
    pub fn open() -> Self {
        IssueQuery::with_statuses(&[IssueStatus::Unresolved, IssueStatus::Regressed])
    }

    /// Issues with one of these statuses.
    pub fn with_statuses(statuses: &[IssueStatus]) -> Self {
        IssueQuery {
            statuses: statuses.to_vec(),
            ..IssueQuery::default()
        }
    }

    /// Sets the order.
    pub fn sort(mut self, sort: IssueSort) -> Self {
        self.sort = sort;
        self
    }

    /// Keeps at most `limit` issues.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    pub(crate) fn keeps(&self, status: IssueStatus) -> bool {
        self.statuses.is_empty() || self.statuses.contains(&status)
    }
}

/// The most characters of an issue's title, and of the texts of an
/// [`OccurrenceSummary`].
pub const TITLE_CHARS: usize = 200;

/// `Type: message` (first line of the message, at most [`TITLE_CHARS`]
/// characters).
fn title(error: &ErrorRecord) -> String {
    let line = title_line(&error.message);
    match &error.error_type {
        Some(ty) if !ty.is_empty() => short(&format!("{}: {line}", short(ty))),
        _ => line,
    }
}

/// `text` cut to [`TITLE_CHARS`] characters, the last one `…` when cut;
/// costs `O(TITLE_CHARS)` whatever the length of `text`.
pub(crate) fn short(text: &str) -> String {
    match text.char_indices().nth(TITLE_CHARS) {
        None => text.to_owned(),
        Some(_) => {
            let end = text
                .char_indices()
                .nth(TITLE_CHARS - 1)
                .map_or(text.len(), |(i, _)| i);
            format!("{}…", &text[..end])
        }
    }
}

/// The first line of `text`, cut to [`TITLE_CHARS`] characters with a
/// last `…` when it was cut: how lists show a message. Costs
/// `O(TITLE_CHARS)` whatever the length of `text`.
///
/// ```
/// let line = omegi_store::title_line(&format!("{}\nmore", "x".repeat(500)));
/// assert_eq!(line.chars().count(), omegi_store::TITLE_CHARS);
/// assert!(line.ends_with('…'));
/// assert_eq!(omegi_store::title_line("card declined\nat line 3"), "card declined");
/// ```
pub fn title_line(text: &str) -> String {
    // Look for the line break only within the characters kept.
    let window = text
        .char_indices()
        .nth(TITLE_CHARS + 1)
        .map_or(text, |(i, _)| &text[..i]);
    short(window.lines().next().unwrap_or(""))
}

pub(crate) fn issue_key(project: &str, fp: &str) -> Result<Key> {
    Key::new().str("project", project)?.str("fingerprint", fp)
}

pub(crate) fn last_seen_key(project: &str, last: u64, fp: &str) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u64(last)
        .str("fingerprint", fp)?
        .into_vec())
}

pub(crate) fn first_seen_key(project: &str, first: u64, fp: &str) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u64(first)
        .str("fingerprint", fp)?
        .into_vec())
}

pub(crate) fn occurrence_keys(
    project: &str,
    fp: &str,
    time: u64,
    id: u64,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let main = issue_key(project, fp)?.u64(time).u64(id).into_vec();
    let by_time = Key::new()
        .str("project", project)?
        .u64(time)
        .str("fingerprint", fp)?
        .u64(id)
        .into_vec();
    Ok((main, by_time))
}

/// Changes in the per-bucket occurrence counts of issues, gathered while a
/// change is staged: (fingerprint, bucket, bucket start) -> added (or, when
/// negative, removed) occurrences.
#[derive(Debug, Default)]
pub(crate) struct IssueCounts(BTreeMap<(String, Bucket, u64), i64>);

impl IssueCounts {
    /// Counts one occurrence of `fp` at `time_ns` as added (`delta` 1) or
    /// removed (-1) in every bucket size.
    pub(crate) fn add(&mut self, fp: &str, time_ns: u64, delta: i64) {
        for bucket in Bucket::ALL {
            *self
                .0
                .entry((fp.to_owned(), bucket, bucket.start_of(time_ns)))
                .or_default() += delta;
        }
    }

    /// Stages the changed counters of `project`'s issues; a counter that
    /// reaches zero is removed.
    pub(crate) fn stage(self, w: &mut impl Staging, project: &str) -> Result<()> {
        w.add_issue_counts(project, &self.0)
    }
}

pub(crate) fn issue_counter_key(
    project: &str,
    fp: &str,
    bucket: Bucket,
    start: u64,
) -> Result<Vec<u8>> {
    Ok(issue_key(project, fp)?
        .u8(bucket.code())
        .u64(start)
        .into_vec())
}

pub(crate) fn read_row(r: &impl Lookup, project: &str, fp: &str) -> Result<Option<IssueRow>> {
    match r.lookup(TreeId::Issues, issue_key(project, fp)?.as_ref())? {
        Some(bytes) => Ok(Some(decode("issues", &bytes)?)),
        None => Ok(None),
    }
}

/// The consequences stored for the occurrence whose main key is `main`.
pub(crate) fn read_consequences(r: &impl Lookup, main: &[u8]) -> Result<Vec<Consequence>> {
    match r.lookup(TreeId::Consequences, main)? {
        Some(bytes) => {
            let stored: Vec<SConsequence> = decode("consequences", &bytes)?;
            Ok(stored.into_iter().map(SConsequence::into_record).collect())
        }
        None => Ok(Vec::new()),
    }
}

/// Where an occurrence is stored: its issue's fingerprint, its time and
/// its id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct OccurrenceRef {
    pub(crate) fingerprint: String,
    pub(crate) time_ns: u64,
    pub(crate) id: u64,
}

/// What a retraction took back.
pub(crate) struct Retracted {
    /// The error of the occurrence removed.
    pub(crate) error: ErrorRecord,
    /// Whether its issue went with it (it had no other occurrence).
    pub(crate) issue_removed: bool,
}

/// Takes an occurrence back (a failure that a later part of its trace
/// showed to be the consequence of another): the occurrence, its time index
/// entry and its consequences go, its issue counts one less, and an issue
/// left with no occurrence goes too. `None` when it is not stored.
pub(crate) fn retract_occurrence(
    w: &mut impl Staging,
    project: &str,
    occurrence: &OccurrenceRef,
) -> Result<Option<Retracted>> {
    let fp = &occurrence.fingerprint;
    w.lock_issues(project, &[fp])?;
    let Some(error) = w.take_occurrence(project, occurrence)? else {
        return Ok(None);
    };
    let error = error.into_record("occurrences")?;
    let mut counts = IssueCounts::default();
    counts.add(fp, occurrence.time_ns, -1);
    counts.stage(w, project)?;
    let mut issue_removed = false;
    if let Some(old) = w.issue_row(project, fp)? {
        let mut row = old.clone();
        row.count = row.count.saturating_sub(1);
        if row.count == 0 {
            w.remove_issue(project, fp, &old)?;
            issue_removed = true;
        } else {
            w.put_issue_row(project, fp, Some(&old), &row)?;
        }
    }
    Ok(Some(Retracted {
        error,
        issue_removed,
    }))
}

/// What staging the errors of one ingest found.
#[derive(Debug, Default)]
pub(crate) struct ErrorOutcome {
    /// Issues created, by fingerprint.
    pub(crate) created: Vec<String>,
    /// Resolved issues that occurred again, by fingerprint.
    pub(crate) regressed: Vec<String>,
    /// New occurrences per issue, by fingerprint.
    pub(crate) per_issue: BTreeMap<String, u64>,
    /// Per input error: whether it is a new occurrence (not one stored
    /// before, nor a copy of an earlier error of the same ingest).
    pub(crate) new: Vec<bool>,
    /// Per input error: where its occurrence is (new or not).
    pub(crate) keys: Vec<OccurrenceRef>,
}

/// Groups errors into issues and stages their occurrences. An error whose
/// occurrence is stored already (the same content sent again) changes
/// nothing: no count, no last seen, no regression. Call with the write lock
/// held.
pub(crate) fn stage_errors(
    w: &mut impl Staging,
    project: &str,
    errors: &[&ErrorRecord],
) -> Result<ErrorOutcome> {
    let mut outcome = ErrorOutcome {
        new: vec![false; errors.len()],
        ..ErrorOutcome::default()
    };
    let fingerprints: Vec<String> = errors.iter().map(|e| fingerprint(e).0).collect();
    let mut locked: Vec<&str> = fingerprints.iter().map(String::as_str).collect();
    locked.sort_unstable();
    locked.dedup();
    w.lock_issues(project, &locked)?;
    // fingerprint -> (row before this ingest, row now)
    let mut touched: BTreeMap<String, (Option<IssueRow>, IssueRow)> = BTreeMap::new();
    let mut counts = IssueCounts::default();
    for ((index, error), fp) in errors.iter().enumerate().zip(fingerprints) {
        let stored = SError::from_record(error);
        let key = OccurrenceRef {
            fingerprint: fp.clone(),
            time_ns: error.time_ns,
            id: stored.occurrence_id()?,
        };
        outcome.keys.push(key.clone());
        if !w.insert_occurrence(project, &key, &stored)? {
            continue;
        }
        outcome.new[index] = true;
        *outcome.per_issue.entry(fp.clone()).or_default() += 1;
        counts.add(&fp, error.time_ns, 1);
        if !touched.contains_key(&fp) {
            let old = w.issue_row(project, &fp)?;
            let row = match &old {
                Some(row) => row.clone(),
                None => {
                    outcome.created.push(fp.clone());
                    IssueRow {
                        title: title(error),
                        status: IssueStatus::Unresolved.code(),
                        count: 0,
                        first_seen_ns: error.time_ns,
                        last_seen_ns: error.time_ns,
                        services: Vec::new(),
                        latest_trace: error.trace_id.map(|t| t.0),
                        latest_error: stored.clone(),
                        status_changed_ns: 0,
                    }
                }
            };
            touched.insert(fp.clone(), (old, row));
        }
        let Some((_, row)) = touched.get_mut(&fp) else {
            continue;
        };
        if IssueStatus::from_code(row.status)? == IssueStatus::Resolved {
            row.status = IssueStatus::Regressed.code();
            outcome.regressed.push(fp.clone());
        }
        row.count += 1;
        row.first_seen_ns = row.first_seen_ns.min(error.time_ns);
        if error.time_ns >= row.last_seen_ns {
            row.last_seen_ns = error.time_ns;
            row.title = title(error);
            row.latest_error = stored;
            if let Some(trace) = error.trace_id {
                row.latest_trace = Some(trace.0);
            }
        }
        insert_sorted(&mut row.services, &error.service);
    }
    for (fp, (old, row)) in &touched {
        w.put_issue_row(project, fp, old.as_ref(), row)?;
    }
    counts.stage(w, project)?;
    Ok(outcome)
}

/// Parses `project fingerprint` at the start of a key.
fn read_issue_key<'a>(r: &mut KeyReader<'a>) -> Result<(&'a str, &'a str)> {
    Ok((r.str()?, r.str()?))
}

impl Embedded {
    /// Every issue of every project, in key order (export, summaries).
    pub(crate) fn all_issues(&self) -> impl Iterator<Item = Result<Issue>> + '_ {
        self.core().t.issues.iter().map(|item| {
            let (key, value) = item.db()?;
            let mut r = KeyReader::new("issues", &key);
            let (project, fp) = read_issue_key(&mut r)?;
            r.end()?;
            let row: IssueRow = decode("issues", &value)?;
            row.into_issue(project, fp)
        })
    }

    /// Every retained occurrence, in key order (export).
    pub(crate) fn all_occurrences(
        &self,
    ) -> impl Iterator<Item = Result<(String, Fingerprint, Occurrence)>> + '_ {
        self.core().t.occurrences.iter().map(|item| {
            let (key, value) = item.db()?;
            let mut r = KeyReader::new("occurrences", &key);
            let (project, fp) = read_issue_key(&mut r)?;
            let _time = r.u64()?;
            let seq = r.u64()?;
            r.end()?;
            let error: SError = decode("occurrences", &value)?;
            let consequences = read_consequences(&self.core().t, &key)?;
            Ok((
                project.to_owned(),
                Fingerprint(fp.to_owned()),
                Occurrence::new(error.into_record("occurrences")?, seq, consequences),
            ))
        })
    }
}

impl Issues<'_> {
    /// One issue.
    pub fn get(&self, project: &str, fingerprint: &Fingerprint) -> Result<Option<Issue>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::issues::get(db, project, fingerprint),
        };
        read_row(&store.core().t, project, &fingerprint.0)?
            .map(|row| row.into_issue(project, &fingerprint.0))
            .transpose()
    }

    /// Sets an issue's status: resolve it, ignore it, or reopen it.
    pub fn set_status(
        &self,
        project: &str,
        fingerprint: &Fingerprint,
        status: IssueStatus,
    ) -> Result<Issue> {
        let fp = &fingerprint.0;
        let now = now_ns();
        let row = match self.at {
            At::Sled(store) => {
                let core = store.core();
                let _guard = core.lock();
                let mut w = Writes::new(core);
                let row = stage_status(&mut w, project, fp, status, now)?;
                w.commit()?;
                row
            }
            At::Pg(db) => db.write(|w| stage_status(w, project, fp, status, now))?,
        };
        row.into_issue(project, fp)
    }

    /// A project's issues, filtered and sorted as the query says.
    pub fn list(&self, project: &str, query: &IssueQuery) -> Result<Vec<Issue>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::issues::list(db, project, query),
        };
        let t = &store.core().t;
        let limit = query.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let prefix = Key::new().str("project", project)?.into_vec();
        match query.sort {
            IssueSort::LastSeen => {
                for item in t.issues_by_last_seen.scan_prefix(&prefix).rev() {
                    let (key, _) = item.db()?;
                    let mut r = KeyReader::new("issues_by_last_seen", &key[prefix.len()..]);
                    let last = r.u64()?;
                    let fp = r.str()?;
                    r.end()?;
                    let Some(row) = read_row(t, project, fp)? else {
                        continue;
                    };
                    // Skip an index entry left stale by a crash.
                    if row.last_seen_ns != last {
                        continue;
                    }
                    let issue = row.into_issue(project, fp)?;
                    if query.keeps(issue.status) {
                        out.push(issue);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
            }
            IssueSort::Count => {
                // Rank on the leading fields alone; decode whole issues
                // (with their latest error) only for the ones returned.
                let mut ranked: Vec<(u64, String, sled::IVec)> = Vec::new();
                for item in t.issues.scan_prefix(&prefix) {
                    let (key, value) = item.db()?;
                    let mut r = KeyReader::new("issues", &key);
                    let (_, fp) = read_issue_key(&mut r)?;
                    r.end()?;
                    let (head, _): (IssueHead<'_>, _) = postcard::take_from_bytes(&value)
                        .map_err(|e| Error::corrupt("issues", e.to_string()))?;
                    if query.keeps(IssueStatus::from_code(head.status)?) {
                        ranked.push((head.count, fp.to_owned(), value));
                    }
                }
                ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                ranked.truncate(limit);
                for (_, fp, value) in ranked {
                    let row: IssueRow = decode("issues", &value)?;
                    out.push(row.into_issue(project, &fp)?);
                }
            }
        }
        Ok(out)
    }

    /// An issue's retained occurrences with time in `[from_ns, to_ns)`,
    /// oldest first, at most `limit`.
    pub fn occurrences(
        &self,
        project: &str,
        fingerprint: &Fingerprint,
        from_ns: u64,
        to_ns: u64,
        limit: usize,
    ) -> Result<Vec<Occurrence>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => {
                return crate::postgres::issues::occurrences(
                    db,
                    project,
                    fingerprint,
                    from_ns,
                    to_ns,
                    limit,
                )
            }
        };
        let t = &store.core().t;
        let prefix = issue_key(project, &fingerprint.0)?.into_vec();
        let mut out = Vec::new();
        if from_ns >= to_ns {
            return Ok(out);
        }
        let lo = [prefix.as_slice(), &from_ns.to_be_bytes()].concat();
        let hi = [prefix.as_slice(), &to_ns.to_be_bytes()].concat();
        for item in t.occurrences.range(lo..hi).take(limit) {
            let (key, value) = item.db()?;
            let mut r = KeyReader::new("occurrences", &key[prefix.len()..]);
            let _time = r.u64()?;
            let seq = r.u64()?;
            r.end()?;
            let error: SError = decode("occurrences", &value)?;
            let consequences = read_consequences(t, &key)?;
            out.push(Occurrence::new(
                error.into_record("occurrences")?,
                seq,
                consequences,
            ));
        }
        Ok(out)
    }

    /// An issue's latest retained occurrences, newest first, at most
    /// `limit`: all of them, or those before the occurrence `before`
    /// (`(time_ns, seq)`, the last one of the previous page). Reads from
    /// the newest end and stops at `limit`, decoding only the leading
    /// fields of each: the cost follows `limit`, not how many occurrences
    /// the issue has.
    pub fn latest_occurrences(
        &self,
        project: &str,
        fingerprint: &Fingerprint,
        before: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<OccurrenceSummary>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => {
                return crate::postgres::issues::latest_occurrences(
                    db,
                    project,
                    fingerprint,
                    before,
                    limit,
                )
            }
        };
        let t = &store.core().t;
        let prefix = issue_key(project, &fingerprint.0)?.into_vec();
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let range = match before {
            Some((time_ns, seq)) => {
                let (end, _) = occurrence_keys(project, &fingerprint.0, time_ns, seq)?;
                t.occurrences.range(prefix.clone()..end)
            }
            None => t.occurrences.scan_prefix(&prefix),
        };
        for item in range.rev().take(limit) {
            let (key, value) = item.db()?;
            let mut r = KeyReader::new("occurrences", &key[prefix.len()..]);
            let time_ns = r.u64()?;
            let seq = r.u64()?;
            r.end()?;
            out.push(occurrence_summary(time_ns, seq, &value)?);
        }
        Ok(out)
    }

    /// One retained occurrence of an issue, by its time and `seq`.
    pub fn occurrence(
        &self,
        project: &str,
        fingerprint: &Fingerprint,
        time_ns: u64,
        seq: u64,
    ) -> Result<Option<Occurrence>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => {
                return crate::postgres::issues::occurrence(db, project, fingerprint, time_ns, seq)
            }
        };
        let (key, _) = occurrence_keys(project, &fingerprint.0, time_ns, seq)?;
        let t = &store.core().t;
        match t.occurrences.get(&key).db()? {
            Some(value) => {
                let error: SError = decode("occurrences", &value)?;
                Ok(Some(Occurrence::new(
                    error.into_record("occurrences")?,
                    seq,
                    read_consequences(t, &key)?,
                )))
            }
            None => Ok(None),
        }
    }

    /// The consequences recorded for an issue's latest error (the failures
    /// it caused in its trace), if its occurrence is still retained.
    pub fn latest_consequences(&self, issue: &Issue) -> Result<Vec<Consequence>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::issues::latest_consequences(db, issue),
        };
        let o = latest_occurrence(issue)?;
        let (key, _) = occurrence_keys(&issue.project, &o.fingerprint, o.time_ns, o.id)?;
        read_consequences(&store.core().t, &key)
    }

    /// An issue's retained occurrences counted per bucket over
    /// `[from_ns, to_ns)`, oldest first; buckets without occurrences are
    /// left out. Reads one counter per bucket (kept with the occurrences:
    /// raised when one is stored, lowered when retention deletes one), so
    /// the cost follows the buckets asked for, not how often the issue
    /// occurred.
    pub fn histogram(
        &self,
        project: &str,
        fingerprint: &Fingerprint,
        bucket: Bucket,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<crate::BucketCount>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => {
                return crate::postgres::issues::histogram(
                    db,
                    project,
                    fingerprint,
                    bucket,
                    from_ns,
                    to_ns,
                )
            }
        };
        let t = &store.core().t;
        let prefix = issue_key(project, &fingerprint.0)?
            .u8(bucket.code())
            .into_vec();
        let mut out: Vec<crate::BucketCount> = Vec::new();
        if from_ns >= to_ns {
            return Ok(out);
        }
        // The bucket holding `from_ns` counts too.
        let lo = [prefix.as_slice(), &bucket.start_of(from_ns).to_be_bytes()].concat();
        let hi = [prefix.as_slice(), &to_ns.to_be_bytes()].concat();
        for item in t.issue_counters.range(lo..hi) {
            let (key, value) = item.db()?;
            let mut r = KeyReader::new("issue_counters", &key[prefix.len()..]);
            let start_ns = r.u64()?;
            r.end()?;
            out.push(crate::BucketCount {
                start_ns,
                count: crate::keys::counter("issue_counters", &value)?,
            });
        }
        Ok(out)
    }

    /// The latest `limit` issues first seen in `[from_ns, to_ns)`, oldest
    /// first, and how many were first seen in the window in all. Reads
    /// from the newest end and decodes only the issues returned.
    pub fn latest_new_issues(
        &self,
        project: &str,
        from_ns: u64,
        to_ns: u64,
        limit: usize,
    ) -> Result<(Vec<Issue>, u64)> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => {
                return crate::postgres::issues::latest_new_issues(
                    db, project, from_ns, to_ns, limit,
                )
            }
        };
        let t = &store.core().t;
        let prefix = Key::new().str("project", project)?.into_vec();
        let mut out = Vec::new();
        if from_ns >= to_ns {
            return Ok((out, 0));
        }
        let lo = [prefix.as_slice(), &from_ns.to_be_bytes()].concat();
        let hi = [prefix.as_slice(), &to_ns.to_be_bytes()].concat();
        let mut total = 0u64;
        for item in t.issues_by_first_seen.range(lo..hi).rev() {
            let (key, _) = item.db()?;
            total += 1;
            if out.len() >= limit {
                continue;
            }
            let mut r = KeyReader::new("issues_by_first_seen", &key[prefix.len()..]);
            let first = r.u64()?;
            let fp = r.str()?;
            r.end()?;
            if let Some(row) = read_row(t, project, fp)? {
                if row.first_seen_ns == first {
                    out.push(row.into_issue(project, fp)?);
                }
            }
        }
        out.reverse();
        Ok((out, total))
    }

    /// Issues first seen in `[from_ns, to_ns)`, oldest first.
    pub fn new_issues(&self, project: &str, from_ns: u64, to_ns: u64) -> Result<Vec<Issue>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::issues::new_issues(db, project, from_ns, to_ns),
        };
        let t = &store.core().t;
        let prefix = Key::new().str("project", project)?.into_vec();
        let mut out = Vec::new();
        if from_ns >= to_ns {
            return Ok(out);
        }
        let lo = [prefix.as_slice(), &from_ns.to_be_bytes()].concat();
        let hi = [prefix.as_slice(), &to_ns.to_be_bytes()].concat();
        for item in t.issues_by_first_seen.range(lo..hi) {
            let (key, _) = item.db()?;
            let mut r = KeyReader::new("issues_by_first_seen", &key[prefix.len()..]);
            let first = r.u64()?;
            let fp = r.str()?;
            r.end()?;
            if let Some(row) = read_row(t, project, fp)? {
                if row.first_seen_ns == first {
                    out.push(row.into_issue(project, fp)?);
                }
            }
        }
        Ok(out)
    }
}
