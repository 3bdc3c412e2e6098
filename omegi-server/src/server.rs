//! Running `omegi serve`: open the store, create the first credentials,
//! listen, and shut down gracefully.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omegi_store::{Config as StoreConfig, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alerts::{AlertHub, RetryPolicy, SpikeConfig, SpikeDetector};
use crate::api::{router, AppState};
use crate::auth::{bootstrap, Authenticator, Credentials, CredentialsError};
use crate::otlp::Limits;

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./omegi-data";

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// The store lives in this folder of the data directory.
pub const STORE_DIR: &str = "store";

/// How to run the server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The data directory: `store/` and `credentials.json`.
    pub data_dir: PathBuf,
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Webhook URLs that get every alert.
    pub webhooks: Vec<String>,
    /// Webhook retries.
    pub retry: RetryPolicy,
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
    /// OTLP requests read, decoded and stored at once: this bounds the
    /// memory that request bodies take.
    pub ingest_concurrency: usize,
    /// How long an OTLP request waits for its turn before it is answered
    /// `503 Service Unavailable` with `Retry-After`, which OTLP exporters
    /// retry.
    pub ingest_wait: Duration,
}

impl ServeConfig {
    /// Defaults with this data directory and listen address: 8 MiB bodies
    /// (32 MiB decompressed), default retries and spike settings, 30 s to
    /// shut down, no retention (a pass every 10 minutes once it is set),
    /// twice as many OTLP requests at once as there are cores (at least 4),
    /// each waiting up to 2 s for its turn.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        ServeConfig {
            data_dir: data_dir.into(),
            listen,
            webhooks: Vec::new(),
            retry: RetryPolicy::default(),
            spike: SpikeConfig::default(),
            body_limit: 8 * 1024 * 1024,
            limits: Limits::default(),
            shutdown_timeout: Duration::from_secs(30),
            retention: None,
            retention_interval: StoreConfig::default().retention_interval,
            ingest_concurrency: std::thread::available_parallelism()
                .map_or(4, |n| n.get() * 2)
                .max(4),
            ingest_wait: Duration::from_secs(2),
        }
    }

    /// Sets how many OTLP requests are read, decoded and stored at once,
    /// and how long others wait for their turn before `503`.
    pub fn ingest_limit(mut self, concurrency: usize, wait: Duration) -> Self {
        self.ingest_concurrency = concurrency;
        self.ingest_wait = wait;
        self
    }

    /// Sets what one OTLP request may hold and cost.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
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
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The store could not be opened or flushed.
    #[error("store: {0}")]
    Store(#[from] omegi_store::Error),
    /// The first credentials could not be created or saved.
    #[error("credentials: {0}")]
    Credentials(#[from] CredentialsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server: {0}")]
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

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    created: Option<Credentials>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<ShutdownReport, ServeError>>,
}

impl Server {
    /// Opens the store in `<data>/store`, creates the default project and
    /// admin user on first start, binds the address and starts serving on
    /// the current Tokio runtime.
    pub async fn start(config: ServeConfig) -> Result<Server, ServeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let mut store_config = StoreConfig::new(config.data_dir.join(STORE_DIR))
            .retention_interval(config.retention_interval);
        if let Some(age) = config.retention {
            store_config = store_config.retention(age);
        }
        let data_dir = config.data_dir.clone();
        let (store, created) = tokio::task::spawn_blocking(move || {
            let store = Store::open_with(store_config)?;
            let created = bootstrap(&store, &data_dir)?;
            Ok::<_, ServeError>((store, created))
        })
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            auth: Authenticator::new(store.clone()),
            alerts: AlertHub::new(&config.webhooks, config.retry),
            spikes: Mutex::new(SpikeDetector::new(config.spike)),
            limits: Limits {
                max_age: config.limits.max_age.or(config.retention),
                ..config.limits
            },
            body_limit: config.body_limit,
            ingest_slots: tokio::sync::Semaphore::new(config.ingest_concurrency.max(1)),
            ingest_wait: config.ingest_wait,
            shutdown: shutdown_rx.clone(),
            store,
        });
        let task = tokio::spawn(serve(listener, state, shutdown_rx, config.shutdown_timeout));
        Ok(Server {
            addr,
            created,
            shutdown: shutdown_tx,
            task,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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

async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
    timeout: Duration,
) -> Result<ShutdownReport, ServeError> {
    let app = router(Arc::clone(&state));
    let mut stop = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    });
    let server = server.into_future();
    tokio::pin!(server);
    // Serve until shutdown starts; then give requests in flight `timeout`.
    let served = tokio::select! {
        r = &mut server => Some(r),
        _ = shutdown.wait_for(|stopped| *stopped) => None,
    };
    let requests_drained = match served {
        Some(result) => {
            result?;
            true
        }
        None => match tokio::time::timeout(timeout, &mut server).await {
            Ok(result) => {
                result?;
                true
            }
            Err(_) => {
                tracing::warn!("requests still in flight after {timeout:?}: closing");
                false
            }
        },
    };
    let webhooks_drained = state.alerts.close(timeout).await;
    let flushed_bytes = state.store.flush_async().await?;
    Ok(ShutdownReport {
        requests_drained,
        webhooks_drained,
        flushed_bytes,
    })
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
