//! Running `omegi serve`: open the store, create the first credentials,
//! listen, and shut down gracefully.
//!
//! Three listeners, each of which can be turned off: the API and web UI
//! (which take OTLP/HTTP too, `127.0.0.1:7700`), OTLP/HTTP alone
//! (`127.0.0.1:4318`, the OpenTelemetry default) and OTLP/gRPC
//! (`127.0.0.1:4317`). With [`TlsFiles`] every listener speaks TLS only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omegi_store::postgres::PgConfig;
use omegi_store::{Config as StoreConfig, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::alerts::{
    AlertHub, AlertKnowledge, AlertNoteLimits, RetryPolicy, SpikeConfig, SpikeDetector,
    WebhookFormat,
};
use crate::api::limits::{NoteLimitFlags, ReadLimits};
use crate::api::{otlp_router, router, AppState, BodyBudget, BodyRate, ProjectSlots};
use crate::auth::{bootstrap, Authenticator, Credentials, CredentialsError};
use crate::otlp::Limits;
use crate::settle::{SettleConfig, Settler};
use crate::tls::TlsError;
pub use crate::tls::TlsFiles;

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./omegi-data";

/// The default address of the API and web UI (which take OTLP/HTTP too).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// The default address of the OTLP/HTTP receiver, the OpenTelemetry
/// default (`/v1/traces`, `/v1/logs`).
pub const DEFAULT_OTLP_HTTP_LISTEN: &str = "127.0.0.1:4318";

/// The default address of the OTLP/gRPC receiver, the OpenTelemetry
/// default.
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:4317";

/// The store lives in this folder of the data directory.
pub const STORE_DIR: &str = "store";

/// When `omegi serve` answers an OTLP request `200`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncPolicy {
    /// After the request's writes are on disk: `200` means durable.
    /// Concurrent requests share flushes ([`omegi_store::Store::sync`]).
    #[default]
    Always,
    /// As soon as the writes are stored; the store flushes every 500 ms
    /// on its own, so a crash (of the machine or the process) loses up to
    /// the last half second of acknowledged requests.
    Interval,
}

/// How to run the server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The data directory: `store/` and `credentials.json`.
    pub data_dir: PathBuf,
    /// Where the API and web UI listen (with OTLP/HTTP); `None`: not at
    /// all. Port 0 picks a free port, here and below.
    pub listen: Option<SocketAddr>,
    /// Where OTLP/HTTP alone listens; `None`: not at all.
    pub otlp_http_listen: Option<SocketAddr>,
    /// Where OTLP/gRPC listens; `None`: not at all.
    pub grpc_listen: Option<SocketAddr>,
    /// The certificate and key every listener serves TLS with; `None`:
    /// plain TCP.
    pub tls: Option<TlsFiles>,
    /// Webhook URLs that get every alert.
    pub webhooks: Vec<String>,
    /// A PEM file of CA certificates that webhook connections trust besides
    /// the bundled roots.
    pub webhook_ca: Option<PathBuf>,
    /// Webhook retries.
    pub retry: RetryPolicy,
    /// What webhooks receive: Omegi's JSON or a Slack message.
    pub webhook_format: WebhookFormat,
    /// Where people reach the web UI, for the links in alerts; `None`: the
    /// API's address.
    pub public_url: Option<String>,
    /// How many notes an alert carries and how much of each.
    pub alert_notes: AlertNoteLimits,
    /// Spike detection.
    pub spike: SpikeConfig,
    /// The largest OTLP request body, in bytes, compressed or not.
    pub body_limit: usize,
    /// What one OTLP request may hold and cost: decompressed size, decode
    /// budget, record limits, error caps and the time window. A
    /// [`Limits::max_age`] of `None` takes the retention.
    pub limits: Limits,
    /// How long shutdown waits for requests in flight and webhook queues.
    pub shutdown_timeout: Duration,
    /// Spans and occurrences older than this are deleted in the background
    /// (issues and notes are kept); `None` keeps everything.
    pub retention: Option<Duration>,
    /// How often the retention pass runs.
    pub retention_interval: Duration,
    /// The store's page cache, in bytes.
    pub store_cache: u64,
    /// Keep the data in this PostgreSQL database instead of the embedded
    /// store in `<data>/store`, so that several nodes can share it (the
    /// data directory still holds this node's write-ahead log and
    /// `credentials.json`). The note limits and the retention of this
    /// configuration are applied to it.
    pub database: Option<PgConfig>,
    /// OTLP requests decoded and stored at once: this bounds the memory
    /// that decoding takes (bodies being read are bounded by
    /// [`ServeConfig::bodies_in_flight`]).
    pub ingest_concurrency: usize,
    /// How long an OTLP request waits for its turn before it is answered
    /// `503 Service Unavailable` with `Retry-After`, which OTLP exporters
    /// retry.
    pub ingest_wait: Duration,
    /// How much one read answer of the REST API shows.
    pub read_limits: ReadLimits,
    /// What one note may hold and how far its embeds are expanded.
    pub note_limits: NoteLimitFlags,
    /// Tokens one project or user may hold at once.
    pub max_tokens: usize,
    /// How often an open alert stream checks that its token is still valid:
    /// a revoked token's stream ends within this time.
    pub stream_recheck: Duration,
    /// When an OTLP request is answered `200`: once durable (default), or
    /// once stored.
    pub sync: SyncPolicy,
    /// OTLP requests of one project decoded and stored at once, so that one
    /// project's large uploads leave room for the others.
    pub ingest_slots_per_project: usize,
    /// How long a client may take to send a request's headers; also how
    /// long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// How fast an OTLP request body must arrive.
    pub body_rate: BodyRate,
    /// Bytes of OTLP request bodies being read at once, all projects;
    /// `None`: one body limit per ingest slot.
    pub bodies_in_flight: Option<usize>,
    /// Bytes of OTLP request bodies of one project being read at once;
    /// `None`: one body limit per slot of a project.
    pub bodies_in_flight_per_project: Option<usize>,
    /// The settle window: how long a trace waits for its spans, its
    /// memory budget and tail sampling.
    pub settle: SettleConfig,
}

impl ServeConfig {
    /// Defaults with this data directory and API address, and no other
    /// listener (see [`ServeConfig::otlp_http_listen`] and
    /// [`ServeConfig::grpc_listen`]), without TLS: 8 MiB bodies,
    /// the default [`Limits`], default retries and spike settings, 30 s to
    /// shut down, no retention (a pass every 10 minutes once it is set),
    /// twice as many OTLP requests at once as there are cores (at least 4),
    /// one less for one project (at least 1), each waiting up to 2 s for its
    /// turn; 30 s to send the headers, and bodies at 16 KiB/s or faster
    /// after 5 s; `200` once durable, 100 tokens per project or user, alert
    /// streams checking their token every 5 s.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        let ingest_concurrency = std::thread::available_parallelism()
            .map_or(4, |n| n.get() * 2)
            .max(4);
        ServeConfig {
            data_dir: data_dir.into(),
            listen: Some(listen),
            otlp_http_listen: None,
            grpc_listen: None,
            tls: None,
            webhooks: Vec::new(),
            webhook_ca: None,
            retry: RetryPolicy::default(),
            webhook_format: WebhookFormat::Json,
            public_url: None,
            alert_notes: AlertNoteLimits::default(),
            spike: SpikeConfig::default(),
            body_limit: 8 * 1024 * 1024,
            limits: Limits::default(),
            shutdown_timeout: Duration::from_secs(30),
            retention: None,
            retention_interval: StoreConfig::default().retention_interval,
            store_cache: StoreConfig::default().cache_capacity,
            database: None,
            ingest_concurrency,
            ingest_wait: Duration::from_secs(2),
            read_limits: ReadLimits::default(),
            note_limits: NoteLimitFlags::default(),
            max_tokens: crate::auth::DEFAULT_MAX_TOKENS,
            stream_recheck: Duration::from_secs(5),
            sync: SyncPolicy::Always,
            ingest_slots_per_project: ingest_concurrency.saturating_sub(1).max(1),
            header_read_timeout: Duration::from_secs(30),
            body_rate: BodyRate::default(),
            bodies_in_flight: None,
            bodies_in_flight_per_project: None,
            settle: SettleConfig::default(),
        }
    }

    /// Sets where the API and web UI listen (`None`: not at all).
    pub fn listen(mut self, addr: Option<SocketAddr>) -> Self {
        self.listen = addr;
        self
    }

    /// Sets where OTLP/HTTP alone listens (`None`: not at all).
    pub fn otlp_http_listen(mut self, addr: Option<SocketAddr>) -> Self {
        self.otlp_http_listen = addr;
        self
    }

    /// Sets where OTLP/gRPC listens (`None`: not at all).
    pub fn grpc_listen(mut self, addr: Option<SocketAddr>) -> Self {
        self.grpc_listen = addr;
        self
    }

    /// Serves TLS with this certificate and key on every listener.
    pub fn tls(mut self, files: Option<TlsFiles>) -> Self {
        self.tls = files;
        self
    }

    /// Trusts the CA certificates of this PEM file for webhooks, besides
    /// the bundled roots.
    pub fn webhook_ca(mut self, pem: Option<PathBuf>) -> Self {
        self.webhook_ca = pem;
        self
    }

    /// Sets the settle window (its wait, budget and sampling).
    pub fn settle(mut self, settle: SettleConfig) -> Self {
        self.settle = settle;
        self
    }

    /// Sets how much one read answer of the REST API shows.
    pub fn read_limits(mut self, limits: ReadLimits) -> Self {
        self.read_limits = limits;
        self
    }

    /// Sets what one note may hold and how far its embeds are expanded.
    pub fn note_limits(mut self, limits: NoteLimitFlags) -> Self {
        self.note_limits = limits;
        self
    }

    /// Sets how many tokens one project or user may hold at once.
    pub fn max_tokens(mut self, max: usize) -> Self {
        self.max_tokens = max;
        self
    }

    /// Sets how often an open alert stream checks that its token is still
    /// valid.
    pub fn stream_recheck(mut self, every: Duration) -> Self {
        self.stream_recheck = every;
        self
    }

    /// Sets when an OTLP request is answered `200`.
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// Sets how many OTLP requests are decoded and stored at once,
    /// and how long others wait for their turn before `503`; one project
    /// gets one slot less (at least one).
    pub fn ingest_limit(mut self, concurrency: usize, wait: Duration) -> Self {
        self.ingest_concurrency = concurrency;
        self.ingest_wait = wait;
        self.ingest_slots_per_project = concurrency.saturating_sub(1).max(1);
        self
    }

    /// Sets how many OTLP requests of one project are decoded and stored at
    /// once.
    pub fn ingest_slots_per_project(mut self, slots: usize) -> Self {
        self.ingest_slots_per_project = slots;
        self
    }

    /// Sets how many bytes of OTLP request bodies may be read at once, for
    /// the whole server and for one project (`None`: one body limit per
    /// ingest slot, of the server and of a project).
    pub fn bodies_in_flight(mut self, server: Option<usize>, per_project: Option<usize>) -> Self {
        self.bodies_in_flight = server;
        self.bodies_in_flight_per_project = per_project;
        self
    }

    /// Sets what one OTLP request may hold and cost.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets how long a client may take to send a request's headers, and how
    /// fast a request body must arrive.
    pub fn connection_timeouts(mut self, header_read: Duration, body_rate: BodyRate) -> Self {
        self.header_read_timeout = header_read;
        self.body_rate = body_rate;
        self
    }

    /// Deletes spans and occurrences older than `age` in the background
    /// (`None`: keep everything); unless [`Limits::max_age`] says
    /// otherwise, spans and errors older than `age` are rejected when they
    /// arrive.
    pub fn retention(mut self, age: Option<Duration>) -> Self {
        self.retention = age;
        self
    }

    /// Sets the size of the store's page cache, in bytes.
    pub fn store_cache(mut self, bytes: u64) -> Self {
        self.store_cache = bytes;
        self
    }

    /// Keeps the data in PostgreSQL (see [`ServeConfig::database`]);
    /// `None`: the embedded store.
    pub fn database(mut self, database: Option<PgConfig>) -> Self {
        self.database = database;
        self
    }

    /// Sets how often the retention pass runs.
    pub fn retention_interval(mut self, every: Duration) -> Self {
        self.retention_interval = every;
        self
    }

    /// Adds webhook URLs.
    pub fn webhooks(mut self, urls: impl IntoIterator<Item = String>) -> Self {
        self.webhooks.extend(urls);
        self
    }

    /// Sets what webhooks receive.
    pub fn webhook_format(mut self, format: WebhookFormat) -> Self {
        self.webhook_format = format;
        self
    }

    /// Sets where people reach the web UI (for the links in alerts).
    pub fn public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url;
        self
    }

    /// Sets how many notes an alert carries and how much of each.
    pub fn alert_notes(mut self, limits: AlertNoteLimits) -> Self {
        self.alert_notes = limits;
        self
    }

    /// Sets the webhook retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the spike settings.
    pub fn spike(mut self, spike: SpikeConfig) -> Self {
        self.spike = spike;
        self
    }

    /// Sets the largest request body.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The store could not be opened or flushed.
    #[error("store")]
    Store(#[from] omegi_store::Error),
    /// The first credentials could not be created or saved.
    #[error("credentials")]
    Credentials(#[from] CredentialsError),
    /// Every listener is turned off.
    #[error("nothing to listen on: every listener is off")]
    NoListener,
    /// The TLS certificate, key or a CA file could not be used.
    #[error("TLS")]
    Tls(#[from] TlsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed")]
    Io(#[from] std::io::Error),
    /// The server task ended abnormally.
    #[error("server task failed: {0}")]
    Task(String),
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether every request in flight finished before the timeout.
    pub requests_drained: bool,
    /// Whether every queued webhook alert was delivered (or given up)
    /// before the timeout.
    pub webhooks_drained: bool,
    /// Bytes written by the final store flush.
    pub flushed_bytes: usize,
}

/// What one listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listening {
    /// The API, web UI and OTLP/HTTP, over HTTP/1.1.
    Api,
    /// OTLP/HTTP alone, over HTTP/1.1.
    OtlpHttp,
    /// OTLP/gRPC, over HTTP/2.
    Grpc,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    api_addr: Option<SocketAddr>,
    otlp_http_addr: Option<SocketAddr>,
    grpc_addr: Option<SocketAddr>,
    tls: bool,
    store: Store,
    created: Option<Credentials>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<ShutdownReport, ServeError>>,
    settle: Arc<Settler>,
}

impl Server {
    /// Opens the store in `<data>/store`, creates the default project and
    /// admin user on first start, binds the addresses and starts serving on
    /// the current Tokio runtime.
    pub async fn start(config: ServeConfig) -> Result<Server, ServeError> {
        let wanted = [
            (Listening::Api, config.listen),
            (Listening::OtlpHttp, config.otlp_http_listen),
            (Listening::Grpc, config.grpc_listen),
        ];
        if wanted.iter().all(|(_, addr)| addr.is_none()) {
            return Err(ServeError::NoListener);
        }
        // Certificates first: a bad file is reported before anything opens.
        let acceptors = match &config.tls {
            Some(files) => Some((files.acceptor(&[b"http/1.1"])?, files.acceptor(&[b"h2"])?)),
            None => None,
        };
        let webhook_client =
            crate::tls::trust_ca(reqwest::Client::builder(), config.webhook_ca.as_deref())?
                .timeout(config.retry.timeout)
                .build()
                .map_err(|e| TlsError::Config(format!("webhook client: {e}")))?;
        create_data_dir(&config.data_dir).map_err(|source| ServeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let mut store_config = StoreConfig::new(config.data_dir.join(STORE_DIR))
            .retention_interval(config.retention_interval)
            .cache_capacity(config.store_cache)
            .note_limits(config.note_limits.notes())
            .attachment_limits(config.note_limits.attachments())
            .embeds(config.note_limits.embeds());
        if let Some(age) = config.retention {
            store_config = store_config.retention(age);
        }
        let data_dir = config.data_dir.clone();
        let settle_config = config.settle;
        let record_limits = config.limits.records;
        let error_budget = crate::settle::ErrorBudget {
            context_bytes: config.limits.max_error_context_bytes,
            max_errors: config.limits.max_errors_per_request,
        };
        let database = config.database.clone().map(|pg| {
            pg.note_limits(config.note_limits.notes())
                .attachment_limits(config.note_limits.attachments())
                .embeds(config.note_limits.embeds())
                .retention(config.retention)
                .retention_interval(config.retention_interval)
        });
        let (store, created, settler) = tokio::task::spawn_blocking(move || {
            let store = match database {
                Some(pg) => Store::connect(pg)?,
                None => Store::open_with(store_config)?,
            };
            let created = bootstrap(&store, &data_dir)?;
            // The log is replayed before the first request is taken.
            let settler = Settler::open(
                store.clone(),
                &data_dir,
                settle_config,
                record_limits,
                error_budget,
            )?;
            Ok::<_, ServeError>((store, created, settler))
        })
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;

        let mut listeners = Vec::new();
        for (listening, addr) in wanted {
            let Some(addr) = addr else { continue };
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            let tls = acceptors.as_ref().map(|(http, grpc)| match listening {
                Listening::Grpc => grpc.clone(),
                Listening::Api | Listening::OtlpHttp => http.clone(),
            });
            listeners.push((listening, listener.local_addr()?, listener, tls));
        }
        let bound = |wanted: Listening| {
            listeners
                .iter()
                .find(|(listening, ..)| *listening == wanted)
                .map(|(_, addr, ..)| *addr)
        };
        let (api_addr, otlp_http_addr, grpc_addr) = (
            bound(Listening::Api),
            bound(Listening::OtlpHttp),
            bound(Listening::Grpc),
        );
        let addr = listeners[0].1;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            auth: Authenticator::new(store.clone()),
            alerts: AlertHub::with_client(
                &config.webhooks,
                config.retry,
                config.webhook_format,
                webhook_client,
            )
            .knowledge(
                AlertKnowledge::new(config.public_url.clone().unwrap_or_else(|| {
                    let scheme = if config.tls.is_some() {
                        "https"
                    } else {
                        "http"
                    };
                    format!("{scheme}://{}", api_addr.unwrap_or(addr))
                }))
                .limits(config.alert_notes),
                store.clone(),
            ),
            spikes: Mutex::new(SpikeDetector::new(config.spike)),
            limits: Limits {
                max_age: config.limits.max_age.or(config.retention),
                ..config.limits
            },
            body_limit: config.body_limit,
            ingest_slots: tokio::sync::Semaphore::new(config.ingest_concurrency.max(1)),
            ingest_wait: config.ingest_wait,
            sync: config.sync,
            project_slots: ProjectSlots::new(config.ingest_slots_per_project),
            body_rate: config.body_rate,
            body_budget: BodyBudget::new(
                config.bodies_in_flight.unwrap_or(
                    config
                        .ingest_concurrency
                        .max(1)
                        .saturating_mul(config.body_limit),
                ),
                config.bodies_in_flight_per_project.unwrap_or(
                    config
                        .ingest_slots_per_project
                        .max(1)
                        .saturating_mul(config.body_limit),
                ),
                config.body_limit,
            ),
            shutdown: shutdown_rx.clone(),
            read_limits: config.read_limits,
            max_tokens: config.max_tokens.max(1),
            stream_recheck: config.stream_recheck.max(Duration::from_millis(10)),
            settle: Arc::new(settler),
            store,
        });
        {
            // Alerts of settled traces; the thread holds the state until
            // shutdown stops it.
            let alert_state = Arc::clone(&state);
            state.settle.start(
                move |project, report| {
                    crate::api::raise_alerts(&alert_state, project, report, crate::api::now_ns())
                },
                config.sync == SyncPolicy::Always,
            );
        }
        let store = state.store.clone();
        let settle = Arc::clone(&state.settle);
        let task = tokio::spawn(serve(
            listeners
                .into_iter()
                .map(|(listening, _, listener, tls)| (listening, listener, tls))
                .collect(),
            state,
            shutdown_rx,
            config.shutdown_timeout,
            config.header_read_timeout,
        ));
        Ok(Server {
            addr,
            api_addr,
            otlp_http_addr,
            grpc_addr,
            tls: config.tls.is_some(),
            store,
            created,
            shutdown: shutdown_tx,
            task,
            settle,
        })
    }

    /// The address of the API listener; when it is off, of the OTLP/HTTP
    /// listener, else of the gRPC listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the API and web UI, if they listen.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// The bound address of the OTLP/HTTP listener, if it listens.
    pub fn otlp_http_addr(&self) -> Option<SocketAddr> {
        self.otlp_http_addr
    }

    /// The bound address of the OTLP/gRPC listener, if it listens.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// The base URL of [`Server::local_addr`]: `http://<addr>`, or
    /// `https://<addr>` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The store the server serves (a clone of its handle).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settle window's counters: traces waiting and settled, early
    /// settles, the write-ahead log.
    pub fn settle_stats(&self) -> crate::settle::SettleStats {
        self.settle.stats()
    }

    /// The credentials created by this start (first start only).
    pub fn created_credentials(&self) -> Option<&Credentials> {
        self.created.as_ref()
    }

    /// Stops accepting connections, lets requests in flight finish, ends
    /// alert streams, drains webhook queues and flushes the store.
    pub async fn shutdown(self) -> Result<ShutdownReport, ServeError> {
        let _ = self.shutdown.send(true);
        self.task
            .await
            .map_err(|e| ServeError::Task(e.to_string()))?
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> Result<ShutdownReport, ServeError> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

/// Creates the data directory readable by its owner only (0700 on Unix).
/// An existing one is left as it is, with a warning when others may read
/// it: it may be a directory the operator chose for more than Omegi.
fn create_data_dir(path: &std::path::Path) -> std::io::Result<()> {
    if path.exists() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the data directory is open to other users; `chmod 700` it"
                );
            }
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Serves every listener until shutdown starts; then lets requests in
/// flight finish for `timeout`, drains the webhook queues and flushes the
/// store.
async fn serve(
    listeners: Vec<(Listening, TcpListener, Option<TlsAcceptor>)>,
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
    timeout: Duration,
    header_read_timeout: Duration,
) -> Result<ShutdownReport, ServeError> {
    let mut loops = tokio::task::JoinSet::new();
    for (listening, listener, tls) in listeners {
        let endpoint = Endpoint {
            listening,
            tls,
            state: Arc::clone(&state),
            header_read_timeout,
        };
        loops.spawn(accept_loop(listener, endpoint, shutdown.clone(), timeout));
    }
    let mut requests_drained = true;
    while let Some(drained) = loops.join_next().await {
        requests_drained &= drained.unwrap_or(false);
    }
    // What waits in the settle window settles now, before alerts close.
    let settler = Arc::clone(&state.settle);
    tokio::task::spawn_blocking(move || settler.stop())
        .await
        .map_err(|e| ServeError::Task(e.to_string()))?;
    let webhooks_drained = state.alerts.close(timeout).await;
    let flushed_bytes = state.store.flush_async().await?;
    Ok(ShutdownReport {
        requests_drained,
        webhooks_drained,
        flushed_bytes,
    })
}

/// What a listener's connections speak, and with what.
#[derive(Clone)]
struct Endpoint {
    listening: Listening,
    tls: Option<TlsAcceptor>,
    state: Arc<AppState>,
    header_read_timeout: Duration,
}

/// Accepts connections and serves each until shutdown starts; then lets
/// requests in flight finish for `timeout`. Whether they all did.
async fn accept_loop(
    listener: TcpListener,
    endpoint: Endpoint,
    shutdown: watch::Receiver<bool>,
    timeout: Duration,
) -> bool {
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::error!(error = %omegi_core::ErrorChain(&error), "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let endpoint = endpoint.clone();
        let stop = shutdown.clone();
        connections.spawn(async move {
            match endpoint.tls.clone() {
                None => serve_connection(stream, &endpoint, stop).await,
                Some(acceptor) => {
                    // The handshake counts as the first request's headers.
                    let handshake =
                        tokio::time::timeout(endpoint.header_read_timeout, acceptor.accept(stream))
                            .await;
                    match handshake {
                        Ok(Ok(stream)) => serve_connection(stream, &endpoint, stop).await,
                        Ok(Err(error)) => tracing::debug!(error = %omegi_core::ErrorChain(&error), "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake too slow"),
                    }
                }
            }
        });
    }
    drop(listener);
    // Give requests in flight `timeout`.
    let drained = tokio::time::timeout(timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!("requests still in flight after {timeout:?}: closing");
        connections.abort_all();
    }
    drained
}

/// Serves one connection until it ends, or until shutdown starts (then
/// lets its requests in flight finish): HTTP/1.1 for the API and
/// OTLP/HTTP, HTTP/2 for gRPC. A client that does not send a request's
/// headers within `header_read_timeout` (or leaves a keep-alive HTTP/1.1
/// connection idle that long) is disconnected; an HTTP/2 peer that stops
/// answering pings is too.
async fn serve_connection<S>(stream: S, endpoint: &Endpoint, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    match endpoint.listening {
        Listening::Api | Listening::OtlpHttp => {
            let app = match endpoint.listening {
                Listening::Api => router(Arc::clone(&endpoint.state)),
                _ => otlp_router(Arc::clone(&endpoint.state)),
            };
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(endpoint.header_read_timeout);
            let connection = http.serve_connection(io, TowerToHyperService::new(app));
            tokio::pin!(connection);
            let stopping = tokio::select! {
                _ = connection.as_mut() => false,
                _ = stop.wait_for(|stopped| *stopped) => true,
            };
            if stopping {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
        Listening::Grpc => {
            let mut http = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            http.timer(TokioTimer::new())
                .keep_alive_interval(Some(endpoint.header_read_timeout))
                .keep_alive_timeout(endpoint.header_read_timeout);
            let service = crate::grpc::service(Arc::clone(&endpoint.state));
            let connection = http.serve_connection(io, service);
            tokio::pin!(connection);
            let stopping = tokio::select! {
                _ = connection.as_mut() => false,
                _ = stop.wait_for(|stopped| *stopped) => true,
            };
            if stopping {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

/// Errors of one connection that `accept` reports; the next one is fine.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
