//! Omegi's store: everything Omegi captures, kept in one data directory on
//! [sled](https://docs.rs/sled/0.34) (embedded, the default), or in a
//! PostgreSQL database that several `omegi serve` nodes share
//! ([`postgres`]).
//!
//! [`Store`] is the open store: cheap to clone, `Send + Sync`; every clone
//! shares the same database. Open the embedded one with [`Store::open`],
//! [`Store::open_with`] and a [`Config`], or [`Store::temporary`] in tests;
//! connect to PostgreSQL with [`Store::connect`] and a
//! [`postgres::PgConfig`]. Everything below is the same on both, but for
//! upkeep (durability, disk use, retention; see [`Store`]).
//! What it keeps is reached through one handle per concern, a borrowed view
//! that costs nothing to make (`store.issues().list(project, &query)`):
//!
//! - [`Store::traces`] → [`Traces`]: [`Traces::ingest`] takes the
//!   [`Record`](omegi_core::Record)s that a layer or the collector received
//!   for a project: spans are kept by trace, errors are grouped by
//!   fingerprint into [`Issue`]s. The [`IngestReport`] names the issues that
//!   were created and those that regressed, so that alerts can fire.
//!   [`Traces::ingest_settled`] takes traces a collector decided about once
//!   they were complete ([`SettledTrace`]: root causes with their
//!   consequences, occurrences to take back, kept or sampled out), in one
//!   transaction; [`Traces::settled`] and [`Traces::settlement`] say what
//!   is known of a settled trace. [`Traces::list`] (over a set of
//!   projects), [`Traces::get`] and [`Traces::spans`] (of one project) read
//!   them back. [`wal`] is the write-ahead log that holds what a collector
//!   acknowledged until it settles.
//! - [`Store::issues`] → [`Issues`]: [`Issues::list`],
//!   [`Issues::set_status`], [`Issues::occurrences`],
//!   [`Issues::latest_occurrences`] (newest first, reading no more than it
//!   returns), [`Issues::histogram`], [`Issues::new_issues`] and
//!   [`Issues::latest_new_issues`].
//! - [`Store::stats`] → [`Stats`]: [`Stats::error_counts`],
//!   [`Stats::service_error_counts`] and [`Stats::summary`] for a
//!   dashboard; [`Stats::route_stats`], [`Stats::service_edges`] and
//!   [`Stats::sampling_totals`] are counted from every settled trace,
//!   sampled out or not.
//! - [`Store::notes`] → [`Notes`] and [`Store::search`] → [`Search`]: error
//!   notes, their links and attached files, and full-text search over them
//!   (see [Notes](#notes) below). [`Notes`] and [`Search`] are the same
//!   types, with the same rules, on PostgreSQL
//!   ([`postgres::Database::notes`], [`postgres::Database::search`]).
//! - [`Store::accounts`] → [`Accounts`]: [`Project`]s, [`User`]s who are
//!   members of projects ([`Accounts::add_member`]; admins belong to every
//!   project), and [`Token`]s with ids, found by their hash in one read
//!   ([`Accounts::token_by_hash`]) and revoked at once
//!   ([`Accounts::revoke_token`]).
//! - [`Store`] itself: durability ([`Store::sync`] makes what was ingested
//!   durable, sharing flushes between concurrent callers) and upkeep:
//!   [`Store::run_retention`] (also run by a background thread when
//!   [`Config::retention`] is set), [`Store::export`] and
//!   [`Store::import_with`] as JSON lines (accounts only when
//!   [`ImportOptions::accounts`] says so), the same text from either
//!   backend, so that a file moves a store from one to the other.
//!
//! The same handles reach a PostgreSQL database shared by several nodes:
//! [`postgres::Database`] has [`Database::traces`](postgres::Database::traces),
//! [`Database::issues`](postgres::Database::issues),
//! [`Database::stats`](postgres::Database::stats) and
//! [`Database::accounts`](postgres::Database::accounts), with the same
//! results (the rules are written once, for both backends; see
//! [`postgres`]); its retention is
//! [`Database::purge_before`](postgres::Database::purge_before), and its
//! export and import [`Database::export`](postgres::Database::export) and
//! [`Database::import_with`](postgres::Database::import_with).
//!
//! Every method returns the store's [`Error`]; the engines underneath
//! (sled, tantivy) appear in no signature: their failures are an
//! [`Error::Storage`] whose [`EngineError`] keeps the engine's own error as
//! its [`source`](std::error::Error::source). No error's message repeats the
//! message of its source, so a caller prints the chain to show each cause
//! once.
//!
//! ```
//! use omegi_core::{ErrorRecord, Record, Resource, TraceId};
//! use omegi_store::{IssueQuery, IssueStatus, Store};
//!
//! # fn main() -> omegi_store::Result<()> {
//! let store = Store::temporary()?;
//! let resource = Resource::new("payment");
//! // No service of its own: it is filled in from the resource.
//! let error = ErrorRecord::new("card declined", 1_700_000_000_000_000_000)
//!     .with_trace_id(TraceId(7))
//!     .with_error_type("PaymentError")
//!     .with_target("payment::api");
//!
//! let report = store.traces().ingest("shop", &resource, &[Record::Error(error.clone())])?;
//! assert_eq!(report.created.len(), 1);
//! let issue = &report.created[0];
//! assert_eq!(issue.title, "PaymentError: card declined");
//!
//! // Resolve it. The same error sent again (a client's retry) changes
//! // nothing; the next occurrence regresses it.
//! store.issues().set_status("shop", &issue.fingerprint, IssueStatus::Resolved)?;
//! let retry = store.traces().ingest("shop", &resource, &[Record::Error(error.clone())])?;
//! assert!(retry.regressed.is_empty());
//! let mut later = error;
//! later.time_ns += 1_000_000;
//! let report = store.traces().ingest("shop", &resource, &[Record::Error(later)])?;
//! assert_eq!(report.regressed[0].status, IssueStatus::Regressed);
//! assert_eq!(report.regressed[0].count, 2);
//!
//! let open = store.issues().list("shop", &IssueQuery::open())?;
//! assert_eq!(open.len(), 1);
//! store.sync()?; // durable from here on
//! # Ok(())
//! # }
//! ```
//!
//! # Projects are isolated
//!
//! Every key of trace, issue and statistics data starts with the project.
//! The same trace id sent to two projects is two traces: each project reads
//! its own spans and summary ([`Traces::get`] and [`Traces::spans`]
//! take the project, [`TraceQuery`] names the projects to list), and
//! nothing one project sends changes what another reads, lists, counts or
//! keeps (retention runs project by project).
//!
//! # One ingest, one transaction
//!
//! An ingest first reads what it needs and stages every write in memory
//! (segments, trace summaries and index entries, issues, occurrences,
//! counters, totals, services, the project record); whatever can refuse it
//! (a name longer than a key holds, a value that does not encode) refuses it
//! there, before anything is written. Then all of its writes go into the
//! database in one sled transaction over all the trees concerned. This
//! relies on two guarantees of sled 0.34's transactions
//! ([`sled::Transactional`]): other threads see none or all of a
//! transaction's writes, since a transaction holds sled's concurrency lock
//! exclusively while it applies them and every single read or write takes
//! it shared; and after a crash sled recovers none or all of them, since the
//! transaction's writes are logged as one batch behind a marker that
//! records where the batch ends, and recovery stops before a batch whose
//! end never reached the disk. An ingest that fails, before or during its commit,
//! leaves nothing readable. (A failure inside sled's own commit, an I/O
//! error, leaves sled refusing further writes; reopening recovers without
//! the transaction.) Retention deletes in chunks, each chunk one
//! transaction too.
//!
//! # Sending the same data again
//!
//! A client that retries a request after a timeout sends the same spans and
//! errors twice; they are stored and counted once. A span is known by its
//! project, trace and span id: an identical copy changes nothing, a changed
//! copy replaces the stored one without counting as a new span. An
//! occurrence's key is its project, fingerprint, time and an id derived
//! from the error's content (trace and span ids, message, type, fields…),
//! not a counter: an error whose occurrence is stored already changes no
//! count, no last-seen time, no statistic and reopens no resolved issue.
//! Span, trace and error totals count only what was new.
//!
//! # Durability
//!
//! A write is visible to every clone of the [`Store`] as soon as the call
//! returns, but it is *durable* (survives a crash or power loss) only once
//! the storage engine has flushed it: after [`Store::sync`], [`Store::flush`]
//! or [`Store::flush_async`] returns, every write that returned before the
//! call is durable. [`Store::sync`] is the one to call after each request
//! when many run at once: concurrent callers share flushes (group commit).
//! Without an explicit flush, the engine flushes by itself every
//! [`Config::flush_every_ms`] milliseconds (500 by default), so a crash loses
//! at most that much. After a crash the store reopens cleanly with the
//! ingests made before it, each whole or not at all.
//!
//! # On disk
//!
//! Values are encoded with postcard, keys as big-endian integers and
//! length-prefixed strings so that range scans follow time order. The
//! schema version is stored in the database: opening data written by a newer
//! schema fails with [`Error::SchemaTooNew`], by an older one with
//! [`Error::SchemaTooOld`] (move such data with [`Store::export`] and
//! [`Store::import`], whose format is versioned on its own); a sled database
//! that is not an Omegi store fails with [`Error::Foreign`]; undecodable
//! values give [`Error::Corrupt`], never a panic.
//!
//! The spans of one ingest are written as one segment: each trace's spans
//! are one chunk, the chunks lie end to end in one value, and the trace's
//! summary lists where its chunks are. A batch thus costs one large write
//! plus a few small ones per trace (summary and two index entries), which
//! suits sled: its cost per write is high and its cost per byte low.
//! [`Traces::ingest_resources`] takes the records of several processes in one
//! call, so that a trace spread over them is written once.
//!
//! # Notes
//!
//! Error notes ([`omegi_core::Note`]) are stored with their links:
//! [`Notes::create`], [`Notes::update`] (optimistic: it takes the
//! revision the change is based on), [`Notes::rename`] (rewrites the
//! links to the note that its author may see), [`Notes::delete`];
//! [`Notes::backlinks`], [`Notes::links`], [`Notes::graph`] and
//! [`Notes::render`] (embeds expanded within [`Config::embeds`]),
//! [`Notes::html`] and [`Notes::preview_html`] (a note as HTML
//! for one reader, by [`omegi_core::note::to_html_with`]) and
//! [`Notes::unlinked_mentions`] follow them. A note over
//! [`Config::note_limits`] is refused before it is written.
//! [`Search::notes`] is full-text search (BM25 with snippets; Korean,
//! Chinese and Japanese text is indexed as character bigrams) and [`Search::suggest`] finds the notes that help with an
//! error. Everything is visibility-aware: public notes are everyone's, a
//! private note is seen only by its author, and search statistics count
//! only the notes the viewer may see. [`Notes::import_vault`] and
//! [`Notes::export_vault`] read and write a folder of Markdown files (an
//! Obsidian vault): notes keep their folder, and links resolve by it as
//! Obsidian resolves them ([`Notes::resolve_link_from`]). Files attached to
//! notes ([`Notes::add_attachment`], [`Notes::attachment`]) are checked
//! against [`Config::attachment_limits`] and typed by their bytes, read
//! with their note's visibility and deleted with it.
//!
//! The notes' rules (what a link resolves to for whom, what a rename
//! rewrites, who may see or change a note, the attachment limits) are
//! written once over a narrow storage interface that both backends
//! implement: the embedded store, and PostgreSQL
//! ([`postgres::Database::notes`]), where a write checks the revisions it
//! was decided from, so that several nodes may write the same notes.
//!
//! ```
//! use omegi_store::{NewNote, NoteQuery, Store};
//!
//! # fn main() -> omegi_store::Result<()> {
//! let store = Store::temporary()?;
//! let notes = store.notes();
//! let timeout = notes.create(NewNote::new("kim", "결제 서비스 타임아웃", "Retry with backoff.").public())?;
//! let incident = notes.create(NewNote::new("lee", "Checkout 502", "결제가 실패했습니다: [[결제 서비스 타임아웃]]").public())?;
//! assert_eq!(notes.backlinks(timeout.id, "park")?[0].id, incident.id);
//!
//! let hits = store.search().notes("park", &NoteQuery::new("결제"))?;
//! assert_eq!(hits.len(), 2);
//! assert_eq!(hits[0].note.id, timeout.id); // the title weighs more
//! # Ok(())
//! # }
//! ```
//!
//! The data directory is created readable by its owner only (0700), and
//! opening a store makes the files the engine and the index keep there
//! 0600.
//!
//! The full-text index lives in `search/` inside the data directory. It
//! derives from the notes: when it is missing or behind them, opening the
//! store rebuilds it ([`Search::rebuild`] does it on demand).
//!
//! This crate has no feature flags.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod accounts;
mod attachments;
mod codec;
mod durability;
mod error;
mod export;
mod handles;
mod ingest;
mod issues;
mod keys;
mod notes;
pub mod postgres;
mod retention;
mod search;
mod settle;
mod spans;
mod staging;
mod stats;
mod store;
mod traffic;
mod vault;
pub mod wal;
mod writes;

use crate::error::Db;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use accounts::{
    Accounts, AccountsMigration, Project, Token, TokenOwner, User, MAX_TOKEN_LABEL_CHARS,
};
pub use attachments::{Attached, Attachment};
pub use error::{EngineError, Error, Result};
pub use export::{ImportOptions, TransferStats, EXPORT_VERSION};
pub use handles::{Issues, Stats, Traces};
pub use ingest::IngestReport;
pub use issues::{
    title_line, Issue, IssueQuery, IssueSort, IssueStatus, Occurrence, OccurrenceSummary,
    TITLE_CHARS,
};
pub use notes::{NewNote, NoteFilter, NoteLinks, NoteUpdate, Notes, Renamed};
pub use retention::{DiskUsage, RetentionReport};
pub use search::{NoteQuery, Search, SearchHit, Snippet, SuggestFor, SuggestReason, Suggestion};
pub use settle::{PriorSettle, SettledCause, SettledSummary, SettledTrace, SpanSkeleton};
pub use spans::{TraceQuery, TraceRoot, TraceSummary};
pub use stats::{Bucket, BucketCount, ProjectSummary, ServiceCount, ServiceInfo, Summary};
pub use store::Store;
pub use traffic::{RouteStats, SamplingTotals, DURATION_BOUNDS_MS, OTHER_ROUTE};
pub use vault::{
    attachment_files, markdown_files, vault_attachments, vault_folder, write_vault,
    write_vault_with, Subfolders, VaultAttachment, VaultExport, VaultExportOptions, VaultImport,
    VaultImportOptions, NO_OWNER,
};

/// The on-disk schema version this build writes and reads.
///
/// Version 2 keeps spans in segments (one per ingest) instead of one value
/// per trace per ingest. Version 3 keys traces, segments, their indexes and
/// the occurrences' time index by project first (a trace id sent to two
/// projects is two traces), and derives occurrence ids from the error's
/// content.
pub const SCHEMA_VERSION: u32 = 4;

const FORMAT: &[u8] = b"omegi-store";
const META_FORMAT: &[u8] = b"format";
const META_SCHEMA: &[u8] = b"schema_version";

/// How to open a [`Store`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The data directory (created if missing).
    pub path: Option<PathBuf>,
    /// Delete the data when the store is dropped (tests).
    pub temporary: bool,
    /// Delete spans and occurrences older than this; `None` keeps everything.
    pub retention: Option<Duration>,
    /// How often the background retention pass runs.
    pub retention_interval: Duration,
    /// The engine's periodic flush, in ms; `None` flushes only on request.
    pub flush_every_ms: Option<u64>,
    /// The engine's page cache, in bytes (64 MiB by default): most of what
    /// the store keeps in memory, whatever the data's size.
    pub cache_capacity: u64,
    /// The engine's log segment size, in bytes (a power of two, 256 B to 16 MiB).
    pub segment_size: usize,
    /// What one note may hold; checked when a note is created, updated or
    /// imported.
    pub note_limits: omegi_core::note::NoteLimits,
    /// What the files attached to one note may hold.
    pub attachment_limits: omegi_core::note::AttachmentLimits,
    /// How far a note's embeds are expanded ([`Notes::render`]).
    pub embeds: omegi_core::note::EmbedOptions,
    /// Routes counted per service in the traffic statistics; requests of
    /// further routes are counted under [`OTHER_ROUTE`] (default 200).
    pub max_routes_per_service: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: None,
            temporary: false,
            retention: None,
            retention_interval: Duration::from_secs(600),
            flush_every_ms: Some(500),
            cache_capacity: 64 * 1024 * 1024,
            segment_size: 512 * 1024,
            note_limits: omegi_core::note::NoteLimits::default(),
            attachment_limits: omegi_core::note::AttachmentLimits::default(),
            embeds: omegi_core::note::EmbedOptions::default(),
            max_routes_per_service: 200,
        }
    }
}

impl Config {
    /// A store in `path`, with defaults: no retention, flush every 500 ms.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Config {
            path: Some(path.into()),
            ..Config::default()
        }
    }

    /// A store deleted on drop.
    pub fn temporary() -> Self {
        Config {
            temporary: true,
            ..Config::default()
        }
    }

    /// Keeps spans and occurrences for `age`, deleting older ones in a
    /// background pass every [`Config::retention_interval`].
    pub fn retention(mut self, age: Duration) -> Self {
        self.retention = Some(age);
        self
    }

    /// Sets how often the background retention pass runs.
    pub fn retention_interval(mut self, every: Duration) -> Self {
        self.retention_interval = every;
        self
    }

    /// Sets the periodic flush (`None`: only [`Store::flush`] makes writes durable).
    pub fn flush_every_ms(mut self, every: Option<u64>) -> Self {
        self.flush_every_ms = every;
        self
    }

    /// Sets the page cache size in bytes.
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// Sets the log segment size in bytes.
    pub fn segment_size(mut self, bytes: usize) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Sets what one note may hold.
    pub fn note_limits(mut self, limits: omegi_core::note::NoteLimits) -> Self {
        self.note_limits = limits;
        self
    }

    /// Sets what the files attached to one note may hold.
    pub fn attachment_limits(mut self, limits: omegi_core::note::AttachmentLimits) -> Self {
        self.attachment_limits = limits;
        self
    }

    /// Sets how far a note's embeds are expanded.
    pub fn embeds(mut self, options: omegi_core::note::EmbedOptions) -> Self {
        self.embeds = options;
        self
    }

    /// Sets how many routes per service the traffic statistics count.
    pub fn max_routes_per_service(mut self, routes: usize) -> Self {
        self.max_routes_per_service = routes.max(1);
        self
    }
}

/// The trees of the database. Every key of trace, issue and statistics
/// data starts with the project, so that one project's data never shares a
/// key with another's.
pub(crate) struct Trees {
    pub(crate) db: sled::Db,
    /// project, latest span start(8), seq(8) -> chunks (ChunkRow) end to end
    pub(crate) segments: sled::Tree,
    /// project, trace(16) -> SummaryRow
    pub(crate) traces: sled::Tree,
    /// project, start(8), trace(16) -> the trace's services (postcard)
    pub(crate) trace_index: sled::Tree,
    /// project fingerprint -> IssueRow
    pub(crate) issues: sled::Tree,
    /// project last_seen(8) fingerprint -> ()
    pub(crate) issues_by_last_seen: sled::Tree,
    /// project first_seen(8) fingerprint -> ()
    pub(crate) issues_by_first_seen: sled::Tree,
    /// project fingerprint time(8) id(8) -> SError; the id derives from the
    /// error's content
    pub(crate) occurrences: sled::Tree,
    /// project time(8) fingerprint id(8) -> ()
    pub(crate) occurrences_by_time: sled::Tree,
    /// project fingerprint bucket(1) start(8) -> u64: the issue's retained
    /// occurrences per bucket, kept with the occurrences
    pub(crate) issue_counters: sled::Tree,
    /// project fingerprint time(8) id(8) (an occurrence's key) ->
    /// Vec<SConsequence>, for occurrences that caused failures
    pub(crate) consequences: sled::Tree,
    /// project, trace(16) -> SettledRow: every trace that settled, kept
    /// or sampled out
    pub(crate) settled: sled::Tree,
    /// project, start(8), trace(16) -> (): settled rows by start, for
    /// retention
    pub(crate) settled_by_start: sled::Tree,
    /// project, kind(1), ... -> traffic counters of every settled trace
    /// (requests per route, calls per edge, sampling totals)
    pub(crate) traffic: sled::Tree,
    /// project bucket(1) start(8) -> u64
    pub(crate) counters: sled::Tree,
    /// project service bucket(1) start(8) -> u64
    pub(crate) service_counters: sled::Tree,
    /// project -> Totals
    pub(crate) totals: sled::Tree,
    /// project service -> ServiceRow
    pub(crate) services: sled::Tree,
    /// project id -> Project
    pub(crate) projects: sled::Tree,
    /// login -> User
    pub(crate) users: sled::Tree,
    /// login -> () for the users who administer the accounts
    pub(crate) admins: sled::Tree,
    /// token hash -> Token
    pub(crate) tokens: sled::Tree,
    /// token id -> token hash
    pub(crate) token_ids: sled::Tree,
    /// "version" -> u32 of the accounts layout; "migration" -> what the
    /// last migration did (JSON), until taken
    pub(crate) accounts_meta: sled::Tree,
    /// note id(16) -> NoteRow
    pub(crate) notes: sled::Tree,
    /// name key, kind(1: title 0, alias 1), created(8), note id(16) -> Owner
    pub(crate) note_names: sled::Tree,
    /// link target name key, source note id(16) -> Owner
    pub(crate) note_links: sled::Tree,
    /// author, note id(16) -> ()
    pub(crate) notes_by_author: sled::Tree,
    /// fingerprint, note id(16) -> ()
    pub(crate) notes_by_issue: sled::Tree,
    /// "generation" -> u64, bumped by every change of the notes
    pub(crate) notes_meta: sled::Tree,
    /// note id(16), name key -> AttachmentRow
    pub(crate) attachments: sled::Tree,
    /// note id(16), name key -> the file's bytes
    pub(crate) attachment_data: sled::Tree,
    /// name key, note id(16) -> ()
    pub(crate) attachments_by_name: sled::Tree,
}

impl Trees {
    fn open(db: sled::Db) -> Result<Self> {
        Ok(Trees {
            segments: db.open_tree("span_segments").db()?,
            traces: db.open_tree("traces").db()?,
            trace_index: db.open_tree("traces_by_start").db()?,
            issues: db.open_tree("issues").db()?,
            issues_by_last_seen: db.open_tree("issues_by_last_seen").db()?,
            issues_by_first_seen: db.open_tree("issues_by_first_seen").db()?,
            occurrences: db.open_tree("occurrences").db()?,
            occurrences_by_time: db.open_tree("occurrences_by_time").db()?,
            issue_counters: db.open_tree("issue_counters").db()?,
            consequences: db.open_tree("consequences").db()?,
            settled: db.open_tree("settled").db()?,
            settled_by_start: db.open_tree("settled_by_start").db()?,
            traffic: db.open_tree("traffic").db()?,
            counters: db.open_tree("counters").db()?,
            service_counters: db.open_tree("service_counters").db()?,
            totals: db.open_tree("totals").db()?,
            services: db.open_tree("services").db()?,
            projects: db.open_tree("projects").db()?,
            users: db.open_tree("users").db()?,
            admins: db.open_tree("admins").db()?,
            tokens: db.open_tree("tokens").db()?,
            token_ids: db.open_tree("token_ids").db()?,
            accounts_meta: db.open_tree("accounts_meta").db()?,
            notes: db.open_tree("notes").db()?,
            note_names: db.open_tree("note_names").db()?,
            note_links: db.open_tree("note_links").db()?,
            notes_by_author: db.open_tree("notes_by_author").db()?,
            notes_by_issue: db.open_tree("notes_by_issue").db()?,
            notes_meta: db.open_tree("notes_meta").db()?,
            attachments: db.open_tree("attachments").db()?,
            attachment_data: db.open_tree("attachment_data").db()?,
            attachments_by_name: db.open_tree("attachments_by_name").db()?,
            db,
        })
    }
}

/// State shared by every clone and by the retention thread.
pub(crate) struct Core {
    pub(crate) t: Trees,
    /// Serializes read-modify-write updates (issues, summaries, counters).
    write_lock: Mutex<()>,
    pub(crate) config: Config,
    pub(crate) path: Option<PathBuf>,
    pub(crate) last_retention: Mutex<Option<std::result::Result<RetentionReport, String>>>,
    /// The notes' write lock and full-text index.
    pub(crate) notes: notes::NoteState,
    /// The buffer span segments are encoded into, kept between ingests
    /// (used under the write lock).
    pub(crate) segment_buf: Mutex<Vec<u8>>,
    /// Account records read (see [`Accounts::reads`]).
    pub(crate) account_reads: std::sync::atomic::AtomicU64,
    /// Flushes shared by the callers of [`Store::sync`].
    group_commit: durability::GroupCommit,
    /// Fault injection for the crate's tests.
    pub(crate) failpoint: writes::Failpoint,
}

impl Core {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data of its own, so a panic while holding it
        // leaves nothing half-updated in memory.
        self.write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) struct Inner {
    core: Arc<Core>,
    accounts: accounts::SledAccounts,
    // Dropped with the last clone: stops and joins the retention thread.
    _worker: Option<retention::Worker>,
}

/// The embedded store on sled, behind [`Store`]. Clones share one
/// database.
#[derive(Clone)]
pub(crate) struct Embedded {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("path", &self.inner.core.path)
            .finish_non_exhaustive()
    }
}

impl Embedded {
    /// Opens (or creates) the store in `path` with the default [`Config`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(Config::new(path.as_ref()))
    }

    /// Opens a store that is deleted when the last clone is dropped.
    pub fn temporary() -> Result<Self> {
        Self::open_with(Config::temporary())
    }

    /// Opens (or creates) a store as `config` says.
    pub fn open_with(config: Config) -> Result<Self> {
        let mut sled_config = sled::Config::new()
            .temporary(config.temporary)
            .flush_every_ms(config.flush_every_ms)
            .cache_capacity(config.cache_capacity)
            .segment_size(config.segment_size);
        if let Some(path) = &config.path {
            private_dir(path)?;
            sled_config = sled_config.path(path);
        }
        let db = open_engine(&sled_config)?;
        let shown_path = config
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("<temporary>"));
        check_schema(&db, &shown_path)?;
        let trees = Trees::open(db)?;
        accounts::migrate(&trees)?;
        notes::migrate(&trees)?;
        let notes = notes::NoteState::open(config.path.as_deref())?;
        if let Some(path) = &config.path {
            make_private(path)?;
        }
        let core = Arc::new(Core {
            t: trees,
            write_lock: Mutex::new(()),
            path: config.path.clone(),
            config,
            last_retention: Mutex::new(None),
            notes,
            segment_buf: Mutex::new(Vec::new()),
            account_reads: std::sync::atomic::AtomicU64::new(0),
            group_commit: durability::GroupCommit::default(),
            failpoint: writes::Failpoint::default(),
        });
        let worker = match core.config.retention {
            Some(_) => Some(retention::Worker::embedded(Arc::clone(&core))?),
            None => None,
        };
        let store = Embedded {
            inner: Arc::new(Inner {
                accounts: accounts::SledAccounts {
                    core: Arc::clone(&core),
                },
                core,
                _worker: worker,
            }),
        };
        store.sync_search_index()?;
        Ok(store)
    }

    pub(crate) fn core(&self) -> &Core {
        &self.inner.core
    }

    /// The store's projects, users, memberships and tokens (see
    /// [`Accounts`]).
    pub fn accounts(&self) -> &dyn Accounts {
        &self.inner.accounts
    }

    /// Waits until every write that returned before this call is durable;
    /// returns the number of bytes written. Each call flushes on its own:
    /// concurrent callers share flushes with [`Store::sync`].
    pub fn flush(&self) -> Result<usize> {
        self.core().t.db.flush().db()
    }

    /// [`Store::flush`] as a future, for async callers.
    pub async fn flush_async(&self) -> Result<usize> {
        self.core().t.db.flush_async().await.db()
    }

    /// Waits until every write that returned before this call is durable,
    /// like [`Store::flush`], but shares the flush with concurrent callers
    /// (group commit): one caller flushes at a time, and every caller that
    /// arrives meanwhile waits for the next flush, which serves them all.
    /// A server that answers each request only once its writes are durable
    /// calls this after each request's [`Traces::ingest`]: with many requests
    /// at once, they cost a few flushes, not one each.
    ///
    /// It blocks: async callers run it on a blocking thread, as they run
    /// the ingest itself.
    pub fn sync(&self) -> Result<()> {
        let db = &self.core().t.db;
        self.core()
            .group_commit
            .sync(|| db.flush().map(|_| ()).db())
    }

    /// The data directory, unless the store is temporary without one.
    pub fn path(&self) -> Option<&Path> {
        self.core().path.as_deref()
    }

    /// Whether the engine recovered existing data when it opened.
    pub fn was_recovered(&self) -> bool {
        self.core().t.db.was_recovered()
    }
}

/// How long opening waits for the data directory's lock: a store handle
/// of this or another process that is closing (its engine's last thread
/// finishing) gives it back within moments.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the engine, waiting up to [`LOCK_WAIT`] while the directory's lock
/// is held; then the engine's error says who holds it.
fn open_engine(config: &sled::Config) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            // The engine says so only in its message.
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened.db(),
        }
    }
}

/// Creates the data directory readable by its owner only (0700 on Unix)
/// when it is missing.
fn private_dir(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|source| Error::File {
        path: path.to_owned(),
        source,
    })
}

/// Makes an opened store's directory and the files the engine and the
/// search index keep in it private to their owner: directories 0700, files
/// 0600 (also in data directories made by earlier versions). Only the
/// entries the store itself creates are touched; symbolic links are not
/// followed.
fn make_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fn set(path: &Path, dir: bool) -> Result<()> {
            let mode = if dir { 0o700 } else { 0o600 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(
                |source| Error::File {
                    path: path.to_owned(),
                    source,
                },
            )
        }
        fn walk(path: &Path) -> Result<()> {
            let io = |source| Error::File {
                path: path.to_owned(),
                source,
            };
            let kind = std::fs::symlink_metadata(path).map_err(io)?.file_type();
            if kind.is_dir() {
                set(path, true)?;
                for entry in std::fs::read_dir(path).map_err(io)? {
                    walk(&entry.map_err(io)?.path())?;
                }
            } else if kind.is_file() {
                set(path, false)?;
            }
            Ok(())
        }
        set(path, true)?;
        let entries = std::fs::read_dir(path).map_err(|source| Error::File {
            path: path.to_owned(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::File {
                path: path.to_owned(),
                source,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = matches!(name.as_ref(), "conf" | "db" | "blobs" | "search")
                || name.starts_with("snap.");
            if ours {
                walk(&entry.path())?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes the schema marker into a new database, or checks the one found.
fn check_schema(db: &sled::Db, path: &Path) -> Result<()> {
    let meta = db.open_tree("meta").db()?;
    match meta.get(META_FORMAT).db()? {
        Some(format) if format.as_ref() == FORMAT => {}
        Some(_) => {
            return Err(Error::Foreign {
                path: path.to_owned(),
            })
        }
        None => {
            let default_tree = db.name();
            let has_data = !db.is_empty()
                || db.tree_names().iter().any(|name| {
                    *name != default_tree
                        && name.as_ref() != b"meta"
                        && db.open_tree(name).map(|t| !t.is_empty()).unwrap_or(true)
                });
            if has_data || !meta.is_empty() {
                return Err(Error::Foreign {
                    path: path.to_owned(),
                });
            }
            meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())
                .db()?;
            meta.insert(META_FORMAT, FORMAT).db()?;
            db.flush().db()?;
        }
    }
    let raw = meta
        .get(META_SCHEMA)
        .db()?
        .ok_or_else(|| Error::corrupt("meta", "no schema version"))?;
    let bytes: [u8; 4] = raw
        .as_ref()
        .try_into()
        .map_err(|_| Error::corrupt("meta", "schema version is not 4 bytes"))?;
    let found = u32::from_be_bytes(bytes);
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        return Err(Error::corrupt("meta", format!("schema version {found}")));
    }
    if found < SCHEMA_VERSION {
        return Err(Error::SchemaTooOld {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Nanoseconds since the Unix epoch, now.
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn store_is_shareable() {
        assert_send_sync_clone::<Store>();
    }

    /// A store in `dir` whose marker says `version`.
    fn store_with_schema(dir: &Path, version: u32) {
        let store = Embedded::open(dir).unwrap();
        store
            .core()
            .t
            .db
            .open_tree("meta")
            .unwrap()
            .insert(META_SCHEMA, &version.to_be_bytes())
            .unwrap();
        store.flush().unwrap();
    }

    #[test]
    fn newer_schema_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        store_with_schema(dir.path(), SCHEMA_VERSION + 1);
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::SchemaTooNew { found, supported, .. }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade omegi-store"));
    }

    #[test]
    fn older_schema_is_refused_with_the_way_to_move_the_data() {
        let dir = tempfile::tempdir().unwrap();
        store_with_schema(dir.path(), SCHEMA_VERSION - 1);
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::SchemaTooOld { found, supported, .. }
                if found == SCHEMA_VERSION - 1 && supported == SCHEMA_VERSION),
            "{err}"
        );
        assert!(err.to_string().contains("omegi export"), "{err}");
    }

    #[test]
    fn opening_waits_for_a_handle_that_is_closing_and_refuses_one_that_stays() {
        let dir = tempfile::tempdir().unwrap();
        let held = Store::open(dir.path()).unwrap();
        // Held past the wait: the engine's lock error.
        let Err(err) = Store::open(dir.path()) else {
            panic!("a locked directory opened");
        };
        // The engine's own message is the error's source.
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            chain = format!("{chain}: {cause}");
            source = cause.source();
        }
        assert!(matches!(err, Error::Storage(_)), "{chain}");
        assert!(chain.contains("lock"), "{chain}");
        assert!(!err.to_string().contains("lock"), "{err}");
        // Given back within the wait: the open succeeds.
        let closer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        let reopened = Store::open(dir.path());
        closer.join().unwrap();
        assert!(reopened.is_ok(), "{:?}", reopened.err());
    }

    #[test]
    fn foreign_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert(b"hello", b"world").unwrap();
            db.flush().unwrap();
        }
        assert!(matches!(
            Store::open(dir.path()),
            Err(Error::Foreign { .. })
        ));
    }

    #[test]
    fn reopening_keeps_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.path(), Some(dir.path()));
    }
}
