//! The `omegi` command line.
//!
//! `omegi serve` runs the server; every other command (issues, flows,
//! notes: `omegi note`, `omegi notes`, `omegi search`, `omegi graph`) talks to a running
//! server's REST API (`--server`, `OMEGI_SERVER`, default
//! `http://127.0.0.1:7700`) with a user token (`--token`, `OMEGI_TOKEN`, else
//! the admin token in `<data>/credentials.json`). Output is for people by
//! default and JSON with `--json`.
//!
//! `omegi project add`, `omegi user add` and `omegi token add --user|--project`
//! go through the API when the server answers, and otherwise open the data
//! directory directly (which works only while no server holds it).
//! `omegi export` and `omegi import` always work on the data directory
//! directly.
//!
//! [`Cli`] is the parsed command line and [`run`] executes it, writing to
//! any [`Write`]: tests call it without spawning a process.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use omegi_core::flow::{Flow, Trace};
use omegi_core::TraceId;
use omegi_store::postgres::PgConfig;
use omegi_store::Store;
use serde::Serialize;

use crate::alerts::WebhookFormat;
use crate::api::notes::IssueSuggestions;
use crate::api::now_ns;
use crate::api::views::{
    split_issue_id, CreatedAccount, ErrorFlowView, IssueDetail, IssueView, ProjectView, StatsView,
    TraceView, UserView,
};
use crate::auth::{self, read_credentials, AccountError, CredentialsError};
use crate::server::{
    ServeConfig, ServeError, Server, SyncPolicy, TlsFiles, DEFAULT_DATA_DIR, DEFAULT_GRPC_LISTEN,
    DEFAULT_LISTEN, DEFAULT_OTLP_HTTP_LISTEN, STORE_DIR,
};

mod accounts;
mod client;
pub mod data;
pub mod limits;
pub mod notes;
pub mod render;

pub use accounts::TokenCommand;
pub use client::ApiClient;
pub use data::{DataFileArgs, ImportArgs};
pub use notes::{GraphArgs, NewNoteArgs, NoteCommand, NotesCommand, SearchArgs};

/// `omegi`: distributed error tracking for microservices.
#[derive(Debug, Parser)]
#[command(name = "omegi", version, about, propagate_version = true)]
pub struct Cli {
    /// The server's base URL.
    #[arg(
        long,
        env = "OMEGI_SERVER",
        default_value = "http://127.0.0.1:7700",
        global = true
    )]
    pub server: String,
    /// A user's API token (default: the admin token in DATA/credentials.json).
    #[arg(long, env = "OMEGI_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM file of CA certificates to trust for an `https://` server,
    /// besides the bundled Mozilla roots.
    #[arg(long, env = "OMEGI_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// The data directory.
    #[arg(long, env = "OMEGI_DATA", default_value = DEFAULT_DATA_DIR, global = true)]
    pub data: PathBuf,
    /// Keep the data in this PostgreSQL database
    /// (`postgres://user:password@host:5432/omegi`) instead of the embedded
    /// store in DATA/store, for `serve`, `export`, `import` and accounts
    /// made without a server. The data directory still holds the node's
    /// write-ahead log and credentials. Prefer the environment variable: a
    /// password in an argument is visible to other users of the machine.
    #[arg(
        long,
        env = "OMEGI_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// `serve` carries every limit; a command is parsed once per process.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the server: OTLP/gRPC and OTLP/HTTP receivers, REST API, web UI
    /// and alerts.
    Serve(ServeArgs),
    /// List issues.
    Issues(IssuesArgs),
    /// Show one issue and the flow of its latest occurrence.
    Issue(IssueArgs),
    /// Mark an issue resolved.
    Resolve(IssueArgs),
    /// Mark an issue ignored.
    Ignore(IssueArgs),
    /// Reopen an issue.
    Unresolve(IssueArgs),
    /// Show a trace: its waterfall and the flow of each failure.
    Flow(FlowArgs),
    /// Show dashboard statistics.
    Stats(StatsArgs),
    /// List projects.
    Projects,
    /// List users (admins marked).
    Users,
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// List, issue, revoke and rotate tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write, show, edit or delete a note.
    #[command(subcommand)]
    Note(NoteCommand),
    /// List, import or export notes.
    #[command(subcommand)]
    Notes(NotesCommand),
    /// Search notes.
    Search(SearchArgs),
    /// Show the note graph (around one note, or all of it).
    Graph(GraphArgs),
    /// Write the whole store of the data directory to a JSON-lines file
    /// (the server must be stopped).
    Export(DataFileArgs),
    /// Read an export into a new data directory (the server must be
    /// stopped); its accounts only with --accounts.
    Import(ImportArgs),
}

/// `omegi serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the REST API and web UI, which take OTLP/HTTP
    /// (`/v1/traces`, `/v1/logs`) too; `off`: none.
    #[arg(long, env = "OMEGI_LISTEN", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: Listen,
    /// Address of the OTLP/HTTP receiver alone (`/v1/traces`, `/v1/logs`),
    /// the OpenTelemetry SDKs' default for http/protobuf; `off`: none.
    #[arg(long, env = "OMEGI_OTLP_HTTP_LISTEN", default_value = DEFAULT_OTLP_HTTP_LISTEN,
          value_parser = parse_listen)]
    pub otlp_http_listen: Listen,
    /// Address of the OTLP/gRPC receiver, the OpenTelemetry SDKs' default
    /// for grpc; `off`: none.
    #[arg(long, env = "OMEGI_GRPC_LISTEN", default_value = DEFAULT_GRPC_LISTEN,
          value_parser = parse_listen)]
    pub grpc_listen: Listen,
    /// Serve TLS on every listener with this certificate chain (PEM, leaf
    /// first); needs --tls-key.
    #[arg(long, env = "OMEGI_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "OMEGI_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// POST every alert to this URL (repeatable; OMEGI_WEBHOOKS takes a
    /// comma-separated list). Logs show its scheme and host only.
    #[arg(
        long = "webhook",
        env = "OMEGI_WEBHOOKS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub webhooks: Vec<String>,
    /// What webhooks receive: `json` (the alert as API.md shows it) or
    /// `slack` (a Slack Block Kit message: `text` and `blocks`).
    #[arg(long, env = "OMEGI_WEBHOOK_FORMAT", default_value = "json")]
    pub webhook_format: WebhookFormat,
    /// Where people reach the web UI (`https://omegi.example.com`), for the
    /// links in alerts; default: the --listen address.
    #[arg(long, env = "OMEGI_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// A PEM file of CA certificates that webhook connections trust,
    /// besides the bundled Mozilla roots.
    #[arg(long, env = "OMEGI_WEBHOOK_CA_CERT")]
    pub webhook_ca_cert: Option<PathBuf>,
    /// Delete spans and occurrences older than this (12h, 30d, 8w); issues
    /// and notes are kept, and older spans and errors are rejected when
    /// they arrive. `off` keeps everything.
    #[arg(long, env = "OMEGI_RETENTION", default_value = "30d", value_parser = parse_retention)]
    pub retention: Retention,
    /// The store's page cache (bytes; K, KiB, M, MiB): most of the memory
    /// the server keeps, whatever the data's size.
    #[arg(long, env = "OMEGI_STORE_CACHE", default_value = "64MiB",
          value_parser = limits::parse_bytes)]
    pub store_cache: usize,
    /// How much one read answer shows.
    #[command(flatten)]
    pub read_limits: crate::api::limits::ReadLimits,
    /// What one note may hold.
    #[command(flatten)]
    pub note_limits: crate::api::limits::NoteLimitFlags,
    /// Tokens one project or user may hold at once.
    #[arg(long, env = "OMEGI_MAX_TOKENS", default_value_t = auth::DEFAULT_MAX_TOKENS,
          value_parser = parse_max_tokens)]
    pub max_tokens: usize,
    /// How often an open alert stream checks that its token is still valid
    /// (1s, 30s, 2m): a revoked token's stream ends within this time.
    #[arg(long, env = "OMEGI_STREAM_RECHECK", default_value = "5s", value_parser = parse_recheck)]
    pub stream_recheck: std::time::Duration,
    /// When an OTLP request is answered 200: `always` once its data is on
    /// disk (concurrent requests share flushes), `interval` once stored
    /// (the store flushes every 500 ms: a crash can lose that much).
    #[arg(long, env = "OMEGI_SYNC", value_enum, default_value_t = SyncPolicy::Always)]
    pub sync: SyncPolicy,
    /// With --database: the most connections to PostgreSQL this node
    /// keeps open at once.
    #[arg(long, env = "OMEGI_DATABASE_POOL", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool: u32,
    /// With --database: how long connecting to PostgreSQL, or waiting for
    /// a free connection of the pool, may take.
    #[arg(long, env = "OMEGI_DATABASE_CONNECT_TIMEOUT", default_value = "10s",
          value_parser = parse_recheck)]
    pub database_connect_timeout: std::time::Duration,
    /// With --database: how long one statement may run before PostgreSQL
    /// cancels it (and the request that made it fails).
    #[arg(long, env = "OMEGI_DATABASE_STATEMENT_TIMEOUT", default_value = "30s",
          value_parser = parse_recheck)]
    pub database_statement_timeout: std::time::Duration,
    /// What one OTLP request may hold and cost.
    #[command(flatten)]
    pub limits: limits::LimitArgs,
}

/// Where the commands that work without a server find the store: the
/// embedded store in DATA/store, or the PostgreSQL database of
/// `--database`.
#[derive(Debug, Clone)]
pub(crate) enum Local {
    /// The embedded store's directory.
    Dir(PathBuf),
    /// A PostgreSQL URL.
    Database(String),
}

impl Cli {
    /// Where the store of the commands that work without a server is.
    pub(crate) fn local(&self) -> Local {
        match &self.database {
            Some(url) => Local::Database(url.clone()),
            None => Local::Dir(self.data.join(STORE_DIR)),
        }
    }
}

impl Local {
    /// Opens the store, which must exist: `missing` ends the message
    /// given when the data directory holds none (a database is created by
    /// connecting).
    pub(crate) fn open_existing(&self, missing: &str) -> Result<Store, CliError> {
        if let Local::Dir(path) = self {
            if !path.exists() {
                return Err(CliError::Usage(format!(
                    "no store in {}{missing}",
                    path.display()
                )));
            }
        }
        self.open()
    }

    /// Opens the store, creating the embedded one when it is missing.
    pub(crate) fn open(&self) -> Result<Store, CliError> {
        match self {
            Local::Dir(path) => Store::open(path),
            Local::Database(url) => Store::connect(PgConfig::new(url.as_str())),
        }
        .map_err(self.error())
    }

    /// Maps a store error to the CLI's, naming the store.
    pub(crate) fn error(&self) -> impl FnOnce(omegi_store::Error) -> CliError + '_ {
        move |source| match self {
            Local::Dir(path) => CliError::Store {
                path: path.clone(),
                source,
            },
            Local::Database(_) => CliError::Database { source },
        }
    }
}

/// A listener's address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

fn parse_listen(text: &str) -> Result<Listen, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(Listen(None));
    }
    text.parse::<SocketAddr>()
        .map(|addr| Listen(Some(addr)))
        .map_err(|_| format!("expected an address like 127.0.0.1:4317, or off; got {text:?}"))
}

fn parse_max_tokens(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a number of tokens, at least 1; got {text:?}"
        )),
    }
}

fn parse_recheck(text: &str) -> Result<std::time::Duration, String> {
    match crate::api::parse_duration_ns(text) {
        Some(ns) if ns >= 10_000_000 => Ok(std::time::Duration::from_nanos(ns)),
        _ => Err(format!(
            "expected a duration of at least 10ms like 500ms, 5s or 1m; got {text:?}"
        )),
    }
}

/// How long `omegi serve` keeps spans and occurrences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Option<std::time::Duration>);

fn parse_retention(text: &str) -> Result<Retention, String> {
    if matches!(text.trim(), "off" | "none" | "forever") {
        return Ok(Retention(None));
    }
    match crate::api::parse_duration_ns(text) {
        Some(ns) if ns > 0 => Ok(Retention(Some(std::time::Duration::from_nanos(ns)))),
        _ => Err(format!(
            "expected an age like 12h, 30d or 8w, or off; got {text:?}"
        )),
    }
}

/// `omegi issues`.
#[derive(Debug, Args)]
pub struct IssuesArgs {
    /// Only this project.
    #[arg(long)]
    pub project: Option<String>,
    /// open (default), all, or statuses separated by commas.
    #[arg(long)]
    pub status: Option<String>,
    /// Only issues seen in this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only issues seen in this last duration (15m, 1h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// last_seen (default) or count.
    #[arg(long)]
    pub sort: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// An issue argument.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// `<project>:<fingerprint>`, or a fingerprint with --project.
    pub id: String,
    /// The project of a bare fingerprint.
    #[arg(long, default_value = auth::DEFAULT_PROJECT)]
    pub project: String,
}

/// `omegi flow`.
#[derive(Debug, Args)]
pub struct FlowArgs {
    /// The trace id (32 hex digits).
    pub trace_id: String,
    /// The trace's project; needed only when several projects you may read
    /// have a trace with this id.
    #[arg(long)]
    pub project: Option<String>,
    /// Width of the waterfall bars.
    #[arg(long, default_value_t = 40)]
    pub width: usize,
}

/// `omegi stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this project.
    #[arg(long)]
    pub project: Option<String>,
    /// The window (default 24h).
    #[arg(long)]
    pub since: Option<String>,
    /// minute, hour (default) or day.
    #[arg(long)]
    pub bucket: Option<String>,
}

/// `omegi project …`.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and print its ingest token (only an admin may).
    Add {
        /// The project id (letters, digits, '-', '_', '.').
        name: String,
    },
    /// Make a user a member of a project (only an admin may).
    AddMember {
        /// The project id.
        project: String,
        /// The user's login.
        login: String,
    },
    /// End a user's membership of a project (only an admin may).
    RemoveMember {
        /// The project id.
        project: String,
        /// The user's login.
        login: String,
    },
    /// List a project's members (admins belong to every project).
    Members {
        /// The project id.
        project: String,
    },
}

/// `omegi user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and print its API token (only an admin may).
    Add {
        /// The login (letters, digits, '-', '_', '.').
        login: String,
        /// Make the user an admin: one who may create projects and users
        /// and who belongs to every project.
        #[arg(long)]
        admin: bool,
        /// Make the user a member of this project (repeatable).
        #[arg(long = "project")]
        projects: Vec<String>,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// No token was given and the credentials file has none.
    #[error("no API token: pass --token, set OMEGI_TOKEN, or run where the data directory's credentials.json is")]
    NoToken,
    /// The server could not be reached.
    #[error("{url}")]
    Http {
        /// The URL.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("server answered {status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server's answer was not what the CLI expects.
    #[error("unexpected answer from {url}: {message}")]
    Response {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// An argument is invalid.
    #[error("{0}")]
    Usage(String),
    /// The credentials file could not be read.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// Creating a project or user in the data directory failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The data directory's store could not be opened.
    #[error("data directory {path}")]
    Store {
        /// The store's directory.
        path: PathBuf,
        /// What failed.
        source: omegi_store::Error,
    },
    /// The PostgreSQL database of `--database` could not be used.
    #[error("database (--database)")]
    Database {
        /// What failed.
        source: omegi_store::Error,
    },
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Writing the output failed.
    #[error("writing the output failed")]
    Output(#[from] std::io::Error),
}

impl Cli {
    /// The token to use: `--token`/`OMEGI_TOKEN`, else the credentials file's.
    pub fn resolve_token(&self) -> Result<Option<String>, CliError> {
        if let Some(t) = &self.token {
            return Ok(Some(t.clone()));
        }
        Ok(read_credentials(&self.data)?
            .and_then(|c| c.user)
            .map(|u| u.token))
    }

    fn client(&self) -> Result<ApiClient, CliError> {
        self.client_with(self.resolve_token()?)
    }

    /// A client of `--server` with `token`, trusting `--ca-cert`.
    fn client_with(&self, token: Option<String>) -> Result<ApiClient, CliError> {
        ApiClient::with_ca(&self.server, token, self.ca_cert.as_deref())
    }
}

fn print_json<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Usage(e.to_string()))?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// How many linked and suggested notes `omegi issue` shows.
const ISSUE_NOTES: usize = 5;

fn issue_path(args: &IssueArgs) -> String {
    let (project, fp) = split_issue_id(&args.id, &args.project);
    format!("/api/issues/{project}/{fp}")
}

/// Runs a parsed command line, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    match &cli.command {
        Command::Serve(args) => serve(&cli, args, out).await,
        Command::Issues(args) => {
            let mut query = vec![("limit", args.limit.to_string())];
            let optional = [
                ("project", &args.project),
                ("status", &args.status),
                ("service", &args.service),
                ("since", &args.since),
                ("sort", &args.sort),
            ];
            for (key, value) in optional {
                if let Some(v) = value {
                    query.push((key, v.clone()));
                }
            }
            let list: Vec<IssueView> = cli.client()?.get("/api/issues", &query).await?;
            if cli.json {
                print_json(out, &list)
            } else {
                write!(out, "{}", render::issues(&list, now_ns()))?;
                Ok(())
            }
        }
        Command::Issue(args) => {
            let client = cli.client()?;
            let path = issue_path(args);
            let detail: IssueDetail = client.get(&path, &[]).await?;
            let flow: ErrorFlowView = client.get(&format!("{path}/flow"), &[]).await?;
            let notes: IssueSuggestions = client
                .get(
                    &format!("{path}/suggestions"),
                    &[("limit", ISSUE_NOTES.to_string())],
                )
                .await?;
            if cli.json {
                print_json(
                    out,
                    &serde_json::json!({ "issue": detail, "flow": flow, "notes": notes }),
                )
            } else {
                let text = render::issue(&detail, Some(&flow), Some(&notes), now_ns());
                write!(out, "{text}")?;
                Ok(())
            }
        }
        Command::Resolve(args) | Command::Ignore(args) | Command::Unresolve(args) => {
            let action = match &cli.command {
                Command::Resolve(_) => "resolve",
                Command::Ignore(_) => "ignore",
                _ => "unresolve",
            };
            let path = format!("{}/{action}", issue_path(args));
            let issue: IssueView = cli.client()?.post(&path, None::<&()>).await?;
            if cli.json {
                print_json(out, &issue)
            } else {
                writeln!(out, "{}  {}", issue.id, render_status(&issue))?;
                Ok(())
            }
        }
        Command::Flow(args) => {
            let id: TraceId = args.trace_id.parse().map_err(|e| {
                CliError::Usage(format!("invalid trace id {:?}: {e}", args.trace_id))
            })?;
            let mut query = vec![("width", args.width.to_string())];
            if let Some(project) = &args.project {
                query.push(("project", project.clone()));
            }
            let view: TraceView = cli
                .client()?
                .get(&format!("/api/traces/{id}"), &query)
                .await?;
            if cli.json {
                return print_json(out, &view);
            }
            write!(out, "{}", render_trace(&view, args.width))?;
            Ok(())
        }
        Command::Stats(args) => {
            let mut query = Vec::new();
            for (key, value) in [
                ("project", &args.project),
                ("since", &args.since),
                ("bucket", &args.bucket),
            ] {
                if let Some(v) = value {
                    query.push((key, v.clone()));
                }
            }
            let stats: StatsView = cli.client()?.get("/api/stats", &query).await?;
            if cli.json {
                print_json(out, &stats)
            } else {
                write!(out, "{}", render::stats(&stats))?;
                Ok(())
            }
        }
        Command::Projects => {
            let list: Vec<ProjectView> = cli.client()?.get("/api/projects", &[]).await?;
            if cli.json {
                return print_json(out, &list);
            }
            for p in list {
                writeln!(out, "{}", p.id)?;
            }
            Ok(())
        }
        Command::Users => {
            let list: Vec<UserView> = cli.client()?.get("/api/users", &[]).await?;
            if cli.json {
                return print_json(out, &list);
            }
            for u in list {
                let role = if u.admin { "  admin" } else { "" };
                writeln!(out, "{}{role}", u.login)?;
            }
            Ok(())
        }
        Command::Project(ProjectCommand::Add { name }) => {
            let created = add_account(&cli, AccountKind::Project, name).await?;
            print_created(&cli, out, "project", "ingest", &created)
        }
        Command::Project(ProjectCommand::AddMember { project, login }) => {
            let command = accounts::MembershipCommand::Add {
                project: project.clone(),
                login: login.clone(),
            };
            accounts::membership(&cli, &command, out).await
        }
        Command::Project(ProjectCommand::RemoveMember { project, login }) => {
            let command = accounts::MembershipCommand::Remove {
                project: project.clone(),
                login: login.clone(),
            };
            accounts::membership(&cli, &command, out).await
        }
        Command::Project(ProjectCommand::Members { project }) => {
            let command = accounts::MembershipCommand::List {
                project: project.clone(),
            };
            accounts::membership(&cli, &command, out).await
        }
        Command::User(UserCommand::Add {
            login,
            admin,
            projects,
        }) => {
            let kind = AccountKind::User {
                admin: *admin,
                projects: projects.clone(),
            };
            let created = add_account(&cli, kind, login).await?;
            print_created(&cli, out, "user", "API", &created)
        }
        Command::Token(command) => accounts::token(&cli, command, out).await,
        Command::Note(command) => notes::note(&cli, command, out).await,
        Command::Notes(command) => notes::notes(&cli, command, out).await,
        Command::Search(args) => notes::search(&cli, args, out).await,
        Command::Graph(args) => notes::graph(&cli, args, out).await,
        Command::Export(args) => data::export(&cli, args, out).await,
        Command::Import(args) => data::import(&cli, args, out).await,
    }
}

fn render_status(issue: &IssueView) -> String {
    serde_json::to_value(issue.issue.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The waterfall and the flow summaries of a trace, rendered here with
/// omegi-core from the spans the server sent.
pub fn render_trace(view: &TraceView, width: usize) -> String {
    let spans = view.spans.iter().map(|n| n.span.clone());
    let Ok(trace) = Trace::from_spans(spans) else {
        return format!("trace {}: no spans\n", view.trace_id);
    };
    let mut text = trace.waterfall(width.max(10));
    let flows: Vec<Flow> = trace.failing_flows();
    for flow in flows {
        text.push_str("\nflow:\n");
        text.push_str(&flow.summary());
    }
    text
}

fn print_created(
    cli: &Cli,
    out: &mut dyn Write,
    what: &str,
    token_kind: &str,
    created: &CreatedAccount,
) -> Result<(), CliError> {
    if cli.json {
        return print_json(out, created);
    }
    writeln!(out, "created {what} {}", created.name)?;
    writeln!(out, "{token_kind} token: {}", created.token)?;
    writeln!(out, "(shown once: only its hash is stored)")?;
    Ok(())
}

#[derive(Clone)]
enum AccountKind {
    Project,
    User { admin: bool, projects: Vec<String> },
}

/// Creates a project or user through the API, or directly in the data
/// directory when the server cannot be reached.
async fn add_account(cli: &Cli, kind: AccountKind, name: &str) -> Result<CreatedAccount, CliError> {
    let (path, body) = match &kind {
        AccountKind::Project => ("/api/projects", serde_json::json!({ "id": name })),
        AccountKind::User { admin, projects } => (
            "/api/users",
            serde_json::json!({ "login": name, "admin": admin, "projects": projects }),
        ),
    };
    let token = cli.resolve_token()?;
    if token.is_some() {
        match cli.client_with(token)?.post(path, Some(&body)).await {
            Ok(created) => return Ok(created),
            Err(CliError::Http { source, .. }) if source.is_connect() => {}
            Err(other) => return Err(other),
        }
    }
    let local = cli.local();
    let name = name.to_owned();
    blocking(move || {
        let store = local
            .open_existing(" and no server at the given address: start `omegi serve` first")?;
        let created = match kind {
            AccountKind::Project => {
                let (p, token) = auth::create_project(&store, &name)?;
                CreatedAccount { name: p.id, token }
            }
            AccountKind::User { admin, projects } => {
                let (u, token) = auth::create_user(&store, &name, admin, &projects)?;
                CreatedAccount {
                    name: u.login,
                    token,
                }
            }
        };
        store.flush().map_err(local.error())?;
        Ok(created)
    })
    .await
}

/// Runs blocking work (the store) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CliError> + Send + 'static,
) -> Result<T, CliError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CliError::Usage(format!("task failed: {e}")))?
}

/// A `--public-url`: an absolute `http` or `https` URL without query or
/// fragment (alert links append `/#/…` to it).
fn parse_public_url(text: &str) -> Result<String, String> {
    let expected =
        || format!("expected an http(s) URL like https://omegi.example.com; got {text:?}");
    let url = reqwest::Url::parse(text).map_err(|_| expected())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(expected());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

async fn serve(cli: &Cli, args: &ServeArgs, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles::new(cert, key)),
        _ => None,
    };
    let api = args.listen.0;
    let config = ServeConfig::new(&cli.data, api.unwrap_or(([127, 0, 0, 1], 0).into()))
        .listen(api)
        .otlp_http_listen(args.otlp_http_listen.0)
        .grpc_listen(args.grpc_listen.0)
        .tls(tls)
        .webhooks(args.webhooks.iter().filter(|u| !u.is_empty()).cloned())
        .webhook_ca(args.webhook_ca_cert.clone())
        .webhook_format(args.webhook_format)
        .public_url(args.public_url.clone())
        .retention(args.retention.0)
        .store_cache(args.store_cache as u64)
        .read_limits(args.read_limits)
        .note_limits(args.note_limits)
        .max_tokens(args.max_tokens)
        .stream_recheck(args.stream_recheck)
        .sync(args.sync)
        .database(cli.database.as_ref().map(|url| {
            PgConfig::new(url.as_str())
                .pool_size(args.database_pool)
                .connect_timeout(args.database_connect_timeout)
                .statement_timeout(args.database_statement_timeout)
        }));
    let config = args.limits.apply(config);
    let server = Server::start(config).await?;
    writeln!(
        out,
        "omegi {} listening on {} (data: {}{})",
        env!("CARGO_PKG_VERSION"),
        server.url(),
        cli.data.display(),
        if cli.database.is_some() {
            ", store: PostgreSQL (--database)"
        } else {
            ""
        }
    )?;
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    if let Some(addr) = server.api_addr() {
        writeln!(out, "  API and web UI (and OTLP/HTTP): {scheme}://{addr}")?;
    }
    if let Some(addr) = server.otlp_http_addr() {
        writeln!(out, "  OTLP/HTTP: {scheme}://{addr} (/v1/traces, /v1/logs)")?;
    }
    if let Some(addr) = server.grpc_addr() {
        writeln!(out, "  OTLP/gRPC: {scheme}://{addr}")?;
    }
    match args.retention.0 {
        Some(age) => writeln!(
            out,
            "retention: spans and occurrences older than {} are deleted (issues and notes are kept)",
            render::whole_units(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX))
        )?,
        None => writeln!(out, "retention: off (everything is kept)")?,
    }
    match args.sync {
        SyncPolicy::Always => writeln!(out, "sync: always (200 once on disk)")?,
        SyncPolicy::Interval => writeln!(
            out,
            "sync: interval (200 once stored; on disk within 500 ms)"
        )?,
    }
    let wait = args.limits.trace_wait;
    if wait.is_zero() {
        writeln!(out, "settle: on arrival (--trace-wait 0: no window)")?;
    } else {
        writeln!(
            out,
            "settle: a trace settles {} ms after its last span (write-ahead log in {})",
            wait.as_millis(),
            cli.data.join(crate::settle::WAL_DIR).display()
        )?;
    }
    writeln!(
        out,
        "sampling: {}% of healthy traces stored whole; failed{} traces always; statistics count all",
        args.limits.sample_rate * 100.0,
        if args.limits.keep_slower_than.is_zero() {
            String::new()
        } else {
            format!(
                " and slow (> {})",
                render::whole_units(
                    u64::try_from(args.limits.keep_slower_than.as_nanos()).unwrap_or(u64::MAX)
                )
            )
        }
    )?;
    if let Some(created) = server.created_credentials() {
        writeln!(
            out,
            "first start: created credentials (saved in {}):",
            auth::credentials_path(&cli.data).display()
        )?;
        if let Some(p) = &created.project {
            writeln!(out, "  project {:<8} ingest token: {}", p.name, p.token)?;
        }
        if let Some(u) = &created.user {
            writeln!(out, "  user    {:<8} API token:    {}", u.name, u.token)?;
        }
    }
    out.flush()?;
    let report = server.run_until_signal().await?;
    writeln!(
        out,
        "stopped: requests drained: {}, webhooks drained: {}, store flushed",
        report.requests_drained, report.webhooks_drained
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["omegi", "serve"].iter().chain(args).copied();
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(args) => Ok(args),
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn webhook_format_public_url_and_alert_notes_are_flags() {
        let args = serve_args(&[
            "--webhook-format",
            "slack",
            "--public-url",
            "https://omegi.example.com/",
            "--alert-notes",
            "1",
            "--alert-suggestions",
            "0",
            "--alert-excerpt-chars",
            "80",
        ])
        .unwrap();
        assert_eq!(args.webhook_format, WebhookFormat::Slack);
        assert_eq!(
            args.public_url.as_deref(),
            Some("https://omegi.example.com")
        );
        assert_eq!(
            (
                args.limits.alert_notes,
                args.limits.alert_suggestions,
                args.limits.alert_excerpt_chars
            ),
            (1, 0, 80)
        );
        assert!(serve_args(&["--webhook-format", "xml"]).is_err());
        for bad in [
            "omegi.example.com",
            "ftp://omegi.example.com",
            "https://x/?a=1",
            "https://x/#/",
        ] {
            assert!(serve_args(&["--public-url", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_budget_and_stream_recheck_are_flags() {
        let args = serve_args(&["--max-tokens", "7", "--stream-recheck", "500ms"]).unwrap();
        assert_eq!(args.max_tokens, 7);
        assert_eq!(args.stream_recheck, std::time::Duration::from_millis(500));
        assert!(serve_args(&["--max-tokens", "0"]).is_err());
        assert!(serve_args(&["--stream-recheck", "1ms"]).is_err());
        assert!(serve_args(&["--stream-recheck", "soon"]).is_err());
    }

    #[test]
    fn listeners_default_to_the_opentelemetry_ports_and_turn_off() {
        let addr = |text: &str| Listen(Some(text.parse().unwrap()));
        let unset = [
            "OMEGI_LISTEN",
            "OMEGI_OTLP_HTTP_LISTEN",
            "OMEGI_GRPC_LISTEN",
        ]
        .iter()
        .all(|var| std::env::var_os(var).is_none());
        if unset {
            let args = serve_args(&[]).unwrap();
            assert_eq!(args.listen, addr("127.0.0.1:7700"));
            assert_eq!(args.otlp_http_listen, addr("127.0.0.1:4318"));
            assert_eq!(args.grpc_listen, addr("127.0.0.1:4317"));
        }
        let args = serve_args(&[
            "--listen",
            "0.0.0.0:8080",
            "--otlp-http-listen",
            "off",
            "--grpc-listen",
            "OFF",
        ])
        .unwrap();
        assert_eq!(args.listen, addr("0.0.0.0:8080"));
        assert_eq!(args.otlp_http_listen, Listen(None));
        assert_eq!(args.grpc_listen, Listen(None));
        let err = serve_args(&["--grpc-listen", "4317"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("or off"), "{err}");
        // TLS needs both files.
        assert!(serve_args(&["--tls-cert", "c.pem"]).is_err());
        assert!(serve_args(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).is_ok());
    }

    #[test]
    fn sync_is_always_or_interval() {
        // The default unless OMEGI_SYNC says otherwise.
        if std::env::var_os("OMEGI_SYNC").is_none() {
            assert_eq!(serve_args(&[]).unwrap().sync, SyncPolicy::Always);
        }
        let sync = |text: &str| serve_args(&["--sync", text]).map(|a| a.sync);
        assert_eq!(sync("always").unwrap(), SyncPolicy::Always);
        assert_eq!(sync("interval").unwrap(), SyncPolicy::Interval);
        let err = sync("sometimes").unwrap_err().to_string();
        assert!(err.contains("always") && err.contains("interval"), "{err}");
    }

    #[test]
    fn retention_is_an_age_or_off() {
        let day = std::time::Duration::from_secs(86_400);
        // The default unless OMEGI_RETENTION says otherwise.
        if std::env::var_os("OMEGI_RETENTION").is_none() {
            assert_eq!(
                serve_args(&[]).unwrap().retention,
                Retention(Some(30 * day))
            );
        }
        let age = |text: &str| serve_args(&["--retention", text]).map(|a| a.retention);
        assert_eq!(age("7d").unwrap(), Retention(Some(7 * day)));
        assert_eq!(age("12h").unwrap(), Retention(Some(day / 2)));
        assert_eq!(age("off").unwrap(), Retention(None));
        for bad in ["0d", "soon", "1y", ""] {
            let err = age(bad).expect_err(bad).to_string();
            assert!(
                err.contains("expected an age like 12h, 30d or 8w, or off"),
                "{err}"
            );
        }
    }
}
