//! The PostgreSQL backend: the store's data in a database that operators
//! already run, replicate and back up, so that several `omegi serve` nodes
//! can share it.
//!
//! [`Database::connect`] opens a pool of connections to the database a URL
//! names (`postgres://user:password@host:5432/omegi`) and brings its schema
//! up to date: the [`migrations`] run at start, in order, each once, in one
//! transaction under an advisory lock, so that nodes starting together
//! apply them once. A database migrated by a newer build is refused
//! ([`Error::DatabaseTooNew`]).
//!
//! Each concern is the same interface on every backend: the accounts are
//! [`Accounts`], as on the embedded store ([`crate::Store::accounts`]); the
//! notes, with their links, attached files (bytes in the database) and
//! vault import and export, are [`Notes`] ([`Database::notes`]), the same
//! type with the same rules as [`crate::Store::notes`]. A note write runs
//! in a serializable transaction that checks the revision of every note
//! it changes and runs again when another node came first. Full-text
//! search ([`Database::search`]) is [`Search`], the same as
//! [`crate::Store::search`], over an index each node keeps in memory: built
//! from the database when it connects, updated by the writes made through
//! it, and by those of other nodes, which the database announces
//! (LISTEN/NOTIFY; see `listen`).
//!
//! Spans and traces, issues and statistics are the same handles as the
//! embedded store's ([`Database::traces`] → [`Traces`](crate::Traces),
//! [`Database::issues`] → [`Issues`](crate::Issues), [`Database::stats`] →
//! [`Stats`](crate::Stats)), with the same results: their rules (what is
//! new, how an error joins its issue, when an issue regresses, what is
//! counted once) are written once for both backends, and each backend only
//! stores and fetches rows.
//!
//! Several nodes may write at once. An ingest is one transaction; a row
//! that it reads and then rewrites (a trace's summary, an issue, the routes
//! of a service) is read under a transaction-scoped advisory lock on its
//! key, taken in key order, so that nodes wait for each other only on what
//! they share: of two nodes that see the same new error at once, exactly
//! one creates its issue and reports it in
//! [`IngestReport::created`](crate::IngestReport::created) (and likewise
//! for [`IngestReport::regressed`](crate::IngestReport::regressed)), which
//! is what lets an alert fire once. Counters are raised with atomic
//! upserts. A transaction the database breaks off to resolve a deadlock is
//! run again; ingests are idempotent, so a retry changes nothing twice.
//! An ingest costs a few dozen statements however many traces it holds:
//! each kind of row a batch reads or writes (summaries, settled rows, span
//! chunks, counters, traffic) is one statement over arrays; a collector
//! reads what it needs of a batch's traces with
//! [`Traces::settled_many`](crate::Traces::settled_many).
//!
//! Spans are stored as on the embedded store: the spans of a trace written
//! by one ingest are one postcard-encoded chunk (`span_chunks.spans`, a
//! `bytea`), beside the columns queries filter on; summaries, issues and
//! occurrences are postcard values beside theirs (about 210 bytes per span
//! on disk with its trace's summary, for spans of five attributes: see
//! `tests/disk.rs`).
//!
//! [`Database::export`] and [`Database::import_with`] read and write the
//! JSON lines of [`Store::export`](crate::Store::export): the same data
//! gives the same text on both backends, so `omegi export` from one and
//! `omegi import` into the other moves everything. The format's rules are
//! written once for both (see the crate's `export` module); here each
//! section is one query whose rows are streamed in the order of the
//! embedded store's keys, and an import writes a few thousand records per
//! transaction, rebuilding the trace summaries, registered routes, issue
//! counters and notes' links as it goes (and every node's search index,
//! through the notes' change feed).
//!
//! Span chunks and occurrences are in tables partitioned by day, created
//! as data of a day first arrives; [`Database::purge_before`] is retention:
//! it drops the partitions of whole days before its cutoff instead of
//! deleting their rows (see [`PARTITION_DAYS`]).
//!
//! # TLS
//!
//! Whenever the connection uses TLS, the server's certificate and name are
//! verified (libpq's `verify-full`), against the CA file of `sslrootcert`
//! in the URL (or [`PgConfig::root_cert`]) or else Mozilla's roots.
//! `sslmode=disable` connects without TLS; `prefer` (the default) uses it
//! when the server offers it; `require`, `verify-ca` and `verify-full`
//! insist on it. [`Database::encrypted`] tells whether a connection is.
//!
//! The client is synchronous, like the rest of the store: async callers run
//! it on blocking threads, as they run the embedded store.
//!
//! ```no_run
//! use omegi_core::{ErrorRecord, Record, Resource};
//! use omegi_store::postgres::Database;
//! use omegi_store::{IssueQuery, NewNote, Project};
//!
//! # fn main() -> omegi_store::Result<()> {
//! let db = Database::connect("postgres://omegi@127.0.0.1/omegi")?;
//! db.accounts().put_project(&Project::new("shop"))?;
//! assert_eq!(db.accounts().projects()?.len(), 1);
//! let note = db.notes().create(NewNote::new("kim", "Runbook", "Restart it.").public())?;
//! assert_eq!(db.notes().resolve_link("runbook", "lee")?, Some(note.id));
//!
//! // The same calls as on the embedded store.
//! let error = ErrorRecord::new("card declined", 1_700_000_000_000_000_000);
//! let report = db
//!     .traces()
//!     .ingest("shop", &Resource::new("payment"), &[Record::Error(error)])?;
//! assert_eq!(report.created.len(), 1);
//! assert_eq!(db.issues().list("shop", &IssueQuery::open())?.len(), 1);
//! # Ok(())
//! # }
//! ```

mod accounts;
mod ingest;
pub(crate) mod issues;
mod listen;
pub mod migrations;
mod notes;
mod retention;
pub(crate) mod stats;
mod throwaway;
mod tls;
pub(crate) mod traces;
mod transfer;

pub(crate) use notes::PgNotes;
use std::time::Duration;

use r2d2_postgres::postgres;
use r2d2_postgres::PostgresConnectionManager;

use crate::error::{EngineError, Error, Result};
use crate::notes::NoteSettings;
use crate::{Accounts, Notes, Search};

pub use retention::PARTITION_DAYS;
pub use throwaway::{Throwaway, ThrowawayError, DATABASE_URL_VAR};

type Pool = r2d2::Pool<PostgresConnectionManager<tls::MakeTls>>;
type Conn = r2d2::PooledConnection<PostgresConnectionManager<tls::MakeTls>>;

/// How to connect to PostgreSQL. Its `Debug` leaves out the URL, which
/// may hold a password.
#[derive(Clone)]
pub struct PgConfig {
    url: String,
    pool_size: u32,
    connect_timeout: Duration,
    statement_timeout: Duration,
    root_cert: Option<std::path::PathBuf>,
    notes: NoteSettings,
    max_routes_per_service: usize,
    retention: Option<Duration>,
    retention_interval: Duration,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("root_cert", &self.root_cert)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// Connects to the database `url` names, in the form
    /// `postgres://user:password@host:port/database?options` (or
    /// PostgreSQL's `key=value` form), with the defaults: 16 connections,
    /// 10 s to connect, 30 s per statement.
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            root_cert: None,
            notes: NoteSettings::default(),
            max_routes_per_service: crate::Config::default().max_routes_per_service,
            retention: None,
            retention_interval: crate::Config::default().retention_interval,
        }
    }

    /// Keeps spans and occurrences this long: [`Database::run_retention`]
    /// deletes what is older, and a [`Store`](crate::Store) opened with
    /// [`Store::connect`](crate::Store::connect) runs it every
    /// [`PgConfig::retention_interval`] (as
    /// [`Config::retention`](crate::Config::retention) does for the
    /// embedded store). `None` (the default) keeps everything.
    pub fn retention(mut self, age: Option<Duration>) -> Self {
        self.retention = age;
        self
    }

    /// How often a [`Store`](crate::Store) runs retention in the
    /// background (with [`PgConfig::retention`] set).
    pub fn retention_interval(mut self, every: Duration) -> Self {
        self.retention_interval = every;
        self
    }

    /// The retention configured, and how often it runs.
    pub(crate) fn upkeep(&self) -> (Option<Duration>, Duration) {
        (self.retention, self.retention_interval)
    }

    /// How many routes per service the traffic statistics count by name
    /// (as [`Config::max_routes_per_service`](crate::Config::max_routes_per_service)).
    pub fn max_routes_per_service(mut self, routes: usize) -> Self {
        self.max_routes_per_service = routes.max(1);
        self
    }

    /// The most connections open at once.
    pub fn pool_size(mut self, connections: u32) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// How long connecting, or waiting for a free connection, may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Trusts the CA certificates of this PEM file for TLS to the database,
    /// instead of Mozilla's roots (as `sslrootcert` in the URL does; the
    /// URL's wins). See the [TLS rules](self#tls).
    pub fn root_cert(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.root_cert = Some(path.into());
        self
    }

    /// How long one statement may run before the database cancels it.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// What one note may hold (as [`Config::note_limits`](crate::Config::note_limits)).
    pub fn note_limits(mut self, limits: omegi_core::note::NoteLimits) -> Self {
        self.notes.note_limits = limits;
        self
    }

    /// What the files of one note may hold (as
    /// [`Config::attachment_limits`](crate::Config::attachment_limits)).
    pub fn attachment_limits(mut self, limits: omegi_core::note::AttachmentLimits) -> Self {
        self.notes.attachment_limits = limits;
        self
    }

    /// How far a note's embeds are expanded (as
    /// [`Config::embeds`](crate::Config::embeds)).
    pub fn embeds(mut self, embeds: omegi_core::note::EmbedOptions) -> Self {
        self.notes.embeds = embeds;
        self
    }
}

/// An open PostgreSQL database holding Omegi's data. Cheap to clone:
/// clones share the pool of connections.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    accounts: std::sync::Arc<accounts::PgAccounts>,
    notes: std::sync::Arc<notes::PgNotes>,
    note_settings: NoteSettings,
    data: std::sync::Arc<Data>,
}

/// What the data path shares between clones.
struct Data {
    max_routes_per_service: usize,
    /// How long spans and occurrences are kept.
    retention: Option<Duration>,
    /// Days known to have their partitions.
    days: std::sync::Mutex<std::collections::BTreeSet<u64>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: it is not shown.
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

impl Database {
    /// Connects with the defaults of [`PgConfig::new`] and migrates the
    /// schema.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PgConfig::new(url))
    }

    /// Connects as `config` says and migrates the schema.
    pub fn connect_with(config: PgConfig) -> Result<Self> {
        let (url, root_cert) = tls::split_url(&config.url)?;
        let mut pg: postgres::Config = url
            .parse()
            .map_err(|e| Error::InvalidDatabaseUrl(Box::new(e)))?;
        let tls = tls::connector(root_cert.as_deref().or(config.root_cert.as_deref()))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.connect_timeout);
        }
        let millis = config.statement_timeout.as_millis();
        // Each connection names this node, so that the changes it makes are
        // known as its own (see `listen`).
        let node = uuid::Uuid::new_v4().simple().to_string();
        let options = match pg.get_options() {
            Some(given) => format!("{given} -c statement_timeout={millis} -c omegi.node={node}"),
            None => format!("-c statement_timeout={millis} -c omegi.node={node}"),
        };
        pg.options(&options);
        let (listen_config, listen_tls) = (pg.clone(), tls.clone());
        let manager = PostgresConnectionManager::new(pg, tls);
        // The first connection is made here, not by the pool, so that a
        // refusal (a certificate, a password) is reported at once and with
        // its cause, where the pool would retry until its timeout.
        let mut first = r2d2::ManageConnection::connect(&manager).map_err(database)?;
        migrations::migrate(&mut first)?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            .connection_timeout(config.connect_timeout)
            // The pool's own log line would repeat the error returned.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(database)?;
        // Listening before the index is built: no change falls between.
        let listening = listen::subscribe(&listen_config, &listen_tls)?;
        let notes = std::sync::Arc::new(notes::PgNotes::new(pool.clone())?);
        listen::start(
            std::sync::Arc::downgrade(&notes),
            node,
            listening,
            listen_config,
            listen_tls,
        )?;
        Ok(Database {
            accounts: std::sync::Arc::new(accounts::PgAccounts::new(pool.clone())),
            notes,
            note_settings: config.notes,
            pool,
            data: std::sync::Arc::new(Data {
                max_routes_per_service: config.max_routes_per_service,
                retention: config.retention,
                days: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            }),
        })
    }

    /// Whether a connection of the pool is encrypted (TLS), as the server
    /// sees it.
    pub fn encrypted(&self) -> Result<bool> {
        let row = conn(&self.pool)?
            .query_one(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .map_err(database)?;
        Ok(row.get(0))
    }

    /// The projects, users, memberships and tokens (see [`Accounts`]).
    pub fn accounts(&self) -> &dyn Accounts {
        &*self.accounts
    }

    /// The notes, their links and attached files (see [`Notes`]): the same
    /// handle, with the same rules, as the embedded store's
    /// [`Store::notes`](crate::Store::notes).
    pub fn notes(&self) -> Notes<'_> {
        Notes {
            storage: &*self.notes,
            settings: self.note_settings,
        }
    }

    /// Full-text search over the notes (see [`Search`]), from this node's
    /// own index: built from the database when it connects, and updated by
    /// every note written through this `Database` (and its clones) at once,
    /// and by those other nodes write as soon as the database announces
    /// them (within moments of their commit). Suggestions for an issue by its fingerprint
    /// give the notes linked to it; those for an error record also match
    /// its words.
    pub fn search(&self) -> Search<'_> {
        Search::postgres(&self.notes.search, self.notes(), self.issues(), &self.notes)
    }

    pub(crate) fn max_routes_per_service(&self) -> usize {
        self.data.max_routes_per_service
    }

    /// A connection from the pool.
    pub(crate) fn conn(&self) -> Result<Conn> {
        conn(&self.pool)
    }
}

/// A failure of the database or of the pool.
pub(crate) fn database(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Storage(EngineError::database(e))
}

/// A connection from the pool.
fn conn(pool: &Pool) -> Result<Conn> {
    pool.get().map_err(database)
}

/// Stored nanoseconds: PostgreSQL's `bigint` is signed, so times after
/// 2262 are refused rather than wrapped.
pub(crate) fn ns_to_sql(ns: u64) -> Result<i64> {
    i64::try_from(ns).map_err(|_| Error::Encode(format!("time {ns} ns is past the year 2262")))
}

/// Nanoseconds read back.
pub(crate) fn ns_from_sql(table: &'static str, ns: i64) -> Result<u64> {
    u64::try_from(ns).map_err(|_| Error::corrupt(table, format!("negative time {ns}")))
}

/// The name of the constraint a statement violated, if that is why it
/// failed.
fn violated(e: &postgres::Error) -> Option<&str> {
    let db = e.as_db_error()?;
    let code = db.code();
    if *code == postgres::error::SqlState::UNIQUE_VIOLATION
        || *code == postgres::error::SqlState::FOREIGN_KEY_VIOLATION
    {
        db.constraint()
    } else {
        None
    }
}
