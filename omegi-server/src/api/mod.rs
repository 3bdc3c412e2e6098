//! The HTTP side of `omegi serve`: the OTLP receiver (`/v1/traces`,
//! `/v1/logs`) and the REST API under `/api/` (documented in `API.md`).
//!
//! [`router`] builds the whole [`axum::Router`] from an [`AppState`]; more
//! routes (a web UI at `/`) can be merged into it.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use omegi_core::ErrorChain;
use omegi_store::Store;
use tokio::sync::watch;

use crate::alerts::{AlertHub, SpikeDetector};
use crate::auth::{bearer, Authenticator, Principal};
use crate::otlp::Limits;

mod accounts;
mod alerts;
pub(crate) mod body;
mod extract;
pub(crate) mod ingest;
mod issues;
pub mod limits;
pub mod notes;
mod stats;
mod traces;
mod ui_support;
pub mod views;

pub use body::{BodyBudget, BodyRate};
pub(crate) use ingest::raise_alerts;
pub use ingest::ProjectSlots;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Token checks.
    pub auth: Authenticator,
    /// Alert delivery.
    pub alerts: AlertHub,
    /// Spike detection over ingested errors.
    pub spikes: Mutex<SpikeDetector>,
    /// Limits of OTLP decoding.
    pub limits: Limits,
    /// The largest request body accepted on `/v1/*`, in bytes (before
    /// decompression).
    pub body_limit: usize,
    /// OTLP requests decoded and stored at once; the others wait.
    pub ingest_slots: tokio::sync::Semaphore,
    /// How long an OTLP request waits for a slot before `503` with
    /// `Retry-After`.
    pub ingest_wait: std::time::Duration,
    /// Whether an OTLP request is answered once its writes are durable.
    pub sync: crate::server::SyncPolicy,
    /// The slots of each project: a request takes one of its project's,
    /// then one of `ingest_slots`.
    pub project_slots: ProjectSlots,
    /// How fast an OTLP request body must arrive.
    pub body_rate: BodyRate,
    /// The memory that OTLP request bodies being read may take, for the
    /// server and per project.
    pub body_budget: BodyBudget,
    /// Turns `true` when the server shuts down (ends SSE streams).
    pub shutdown: watch::Receiver<bool>,
    /// How much one read answer shows.
    pub read_limits: limits::ReadLimits,
    /// Tokens one project or user may hold at once.
    pub max_tokens: usize,
    /// How often an open alert stream checks that its token is still valid
    /// (a revoked token's stream ends within this time).
    pub stream_recheck: std::time::Duration,
    /// The settle window every accepted OTLP request goes through.
    pub settle: Arc<crate::settle::Settler>,
}

/// The shared state handed to the router.
pub type SharedState = Arc<AppState>;

/// The routes of the OTLP/HTTP receiver alone: `/v1/traces` and
/// `/v1/logs`.
pub fn otlp_router(state: SharedState) -> Router {
    otlp_routes(state.body_limit).with_state(state)
}

fn otlp_routes(body_limit: usize) -> Router<SharedState> {
    Router::new()
        .route("/v1/traces", post(ingest::traces))
        .route("/v1/logs", post(ingest::logs))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
}

/// The routes of `omegi serve`: `/v1/traces`, `/v1/logs`, `/api/…`, and the
/// web UI at `/` ([`crate::ui::router`]).
pub fn router(state: SharedState) -> Router {
    let otlp = otlp_routes(state.body_limit);
    let api = Router::new()
        .route("/api/health", get(health))
        .route(
            "/api/projects",
            get(accounts::list_projects).post(accounts::create_project),
        )
        .route(
            "/api/projects/{project}/members",
            get(accounts::list_members),
        )
        .route(
            "/api/projects/{project}/members/{login}",
            post(accounts::add_member).delete(accounts::remove_member),
        )
        .route(
            "/api/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route(
            "/api/tokens",
            get(accounts::list_tokens).post(accounts::create_token),
        )
        .route("/api/tokens/{id}", delete(accounts::revoke_token))
        .route("/api/tokens/{id}/rotate", post(accounts::rotate_token))
        .route("/api/issues", get(issues::list))
        .route("/api/issues/{project}/{fingerprint}", get(issues::detail))
        .route(
            "/api/issues/{project}/{fingerprint}/occurrences",
            get(issues::occurrences),
        )
        .route(
            "/api/issues/{project}/{fingerprint}/flow",
            get(issues::flow),
        )
        .route(
            "/api/issues/{project}/{fingerprint}/resolve",
            post(issues::resolve),
        )
        .route(
            "/api/issues/{project}/{fingerprint}/ignore",
            post(issues::ignore),
        )
        .route(
            "/api/issues/{project}/{fingerprint}/unresolve",
            post(issues::unresolve),
        )
        .route("/api/traces", get(traces::list))
        .route("/api/traces/{trace_id}", get(traces::detail))
        .route("/api/stats", get(stats::dashboard))
        .route("/api/alerts/stream", get(alerts::stream))
        .merge(notes::routes(
            state.store.notes().limits(),
            state.store.notes().attachment_limits(),
        ))
        .merge(ui_support::routes())
        .fallback(api_not_found);
    otlp.merge(api).with_state(state).merge(crate::ui::router())
}

/// `GET /api/health`: the server answers; its version and the settle
/// window's counters (traces waiting, settled, settled early, the
/// write-ahead log's size).
async fn health(State(state): State<SharedState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "settle": state.settle.stats(),
    }))
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// An error answer of the REST API: a status and `{"error": "<message>"}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 401: no token, or a token nobody has.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid token that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 400: a parameter or body is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// 409: the thing exists already, or changed since it was read.
    #[error("{0}")]
    Conflict(String),
    /// A query string, path or body that could not be read: the status
    /// says why (400, 413, 415, 422).
    #[error("{1}")]
    Rejected(StatusCode, String),
    /// 500: the store failed.
    #[error(transparent)]
    Store(#[from] omegi_store::Error),
    /// 500: something else failed.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Rejected(status, _) => *status,
            ApiError::Store(omegi_store::Error::InvalidName { .. }) => StatusCode::BAD_REQUEST,
            ApiError::Store(omegi_store::Error::IssueNotFound { .. }) => StatusCode::NOT_FOUND,
            ApiError::Store(
                omegi_store::Error::ProjectNotFound { .. }
                | omegi_store::Error::UserNotFound { .. }
                | omegi_store::Error::TokenNotFound { .. },
            ) => StatusCode::NOT_FOUND,
            ApiError::Store(omegi_store::Error::TokenExists) => StatusCode::CONFLICT,
            ApiError::Store(omegi_store::Error::NoteNotFound { .. }) => StatusCode::NOT_FOUND,
            ApiError::Store(omegi_store::Error::NotNoteAuthor { .. }) => StatusCode::FORBIDDEN,
            ApiError::Store(omegi_store::Error::RevisionMismatch { .. }) => StatusCode::CONFLICT,
            ApiError::Store(omegi_store::Error::InvalidNote(_)) => StatusCode::BAD_REQUEST,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %ErrorChain(&self), "request failed");
        }
        let mut response = (
            status,
            Json(serde_json::json!({ "error": ErrorChain(&self).to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Who sent a request, from its bearer token.
/// Who the request's bearer token belongs to. The token is looked up in
/// the store on a blocking thread, as all store work is.
pub(crate) async fn principal(
    state: &SharedState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer <token>".into()))?;
    let token =
        value.to_str().ok().and_then(bearer).ok_or_else(|| {
            ApiError::Unauthorized("expected Authorization: Bearer <token>".into())
        })?;
    token_principal(state, token.to_owned()).await
}

/// Who `token` belongs to (looked up on a blocking thread).
pub(crate) async fn token_principal(
    state: &SharedState,
    token: String,
) -> Result<Principal, ApiError> {
    blocking(state, move |state| {
        state
            .auth
            .authenticate(&token)?
            .ok_or_else(|| ApiError::Unauthorized("invalid token".into()))
    })
    .await
}

/// A request made with a user's API token: the user's login.
#[derive(Debug, Clone)]
pub struct ApiUser(pub String);

impl FromRequestParts<SharedState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        match principal(state, &parts.headers).await? {
            Principal::User(login) => Ok(ApiUser(login)),
            Principal::Project(_) => Err(ApiError::Forbidden(
                "an ingest token can only send data to /v1/traces and /v1/logs; use a user token"
                    .into(),
            )),
        }
    }
}

/// Runs store work off the async workers.
pub(crate) async fn blocking<T, F>(state: &SharedState, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| ApiError::Internal(format!("task failed: {e}")))?
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Parses a duration such as `90s`, `15m`, `1h`, `7d` (a bare number is
/// seconds) into nanoseconds.
pub fn parse_duration_ns(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let unit_ns: u64 = match unit {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        "w" => 7 * 86_400_000_000_000,
        _ => return None,
    };
    n.checked_mul(unit_ns)
}

/// The projects a user may read and change: an admin every project, any
/// other user the projects they are a member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadableProjects {
    admin: bool,
    members_of: Vec<String>,
}

impl ReadableProjects {
    /// Whether the user is an admin (and so may read every project).
    pub(crate) fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether the user may read and change `project`.
    pub(crate) fn contains(&self, project: &str) -> bool {
        self.admin || self.members_of.iter().any(|p| p == project)
    }

    /// The ids of the projects the user may read, sorted: every project
    /// record for an admin.
    pub(crate) fn ids(&self, store: &Store) -> Result<Vec<String>, ApiError> {
        if self.admin {
            Ok(store
                .accounts()
                .projects()?
                .into_iter()
                .map(|p| p.id)
                .collect())
        } else {
            Ok(self.members_of.clone())
        }
    }

    /// `404`, as for a project that does not exist, unless the user may
    /// read `project`: a project one does not belong to is not revealed.
    pub(crate) fn require(&self, project: &str) -> Result<(), ApiError> {
        if self.contains(project) {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!("no project {project:?}")))
        }
    }
}

/// The projects `user` may read and change (two point reads: the admin
/// mark and the user's record). Every route that reads or changes project
/// data asks this first.
pub(crate) fn readable_projects(
    state: &AppState,
    user: &ApiUser,
) -> Result<ReadableProjects, ApiError> {
    let login = &user.0;
    if state.store.accounts().is_admin(login)? {
        return Ok(ReadableProjects {
            admin: true,
            members_of: Vec::new(),
        });
    }
    let members_of = state
        .store
        .accounts()
        .user(login)?
        .map(|u| u.projects)
        .unwrap_or_default();
    Ok(ReadableProjects {
        admin: false,
        members_of,
    })
}

/// `404` for a project filter that names a project the caller may not read
/// or no project at all (no record and no data), so that a typo is not
/// answered with an empty list.
pub(crate) fn check_project(
    store: &Store,
    readable: &ReadableProjects,
    project: &str,
) -> Result<(), ApiError> {
    readable.require(project)?;
    if store.accounts().project(project)?.is_some()
        || store
            .stats()
            .summary()?
            .projects
            .iter()
            .any(|p| p.project == project)
    {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no project {project:?}")))
    }
}

/// `project` if `user` may read it and it exists, else `404` (as for a
/// project that does not exist: a caller learns nothing about projects it
/// may not read).
pub(crate) fn readable_project(
    state: &AppState,
    user: &ApiUser,
    project: &str,
) -> Result<String, ApiError> {
    let readable = readable_projects(state, user)?;
    check_project(&state.store, &readable, project)?;
    Ok(project.to_owned())
}

/// A time window from `from`/`to` (ns since the epoch) or `since` (a
/// duration before now); `default_since_ns` when neither is given.
pub(crate) fn window(
    from: Option<u64>,
    to: Option<u64>,
    since: Option<&str>,
    default_since_ns: Option<u64>,
) -> Result<(u64, u64), ApiError> {
    let now = now_ns();
    let to = to.unwrap_or(u64::MAX);
    let from = match (from, since) {
        (Some(from), _) => from,
        (None, Some(since)) => {
            let d = parse_duration_ns(since).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "invalid since {since:?}: expected a duration like 30s, 15m, 1h or 7d"
                ))
            })?;
            now.saturating_sub(d)
        }
        (None, None) => default_since_ns.map_or(0, |d| now.saturating_sub(d)),
    };
    if from >= to {
        return Err(ApiError::BadRequest(format!(
            "empty time range: from {from} is not before to {to}"
        )));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("90"), Some(90_000_000_000));
        assert_eq!(parse_duration_ns("15m"), Some(900_000_000_000));
        assert_eq!(parse_duration_ns("2h"), Some(7_200_000_000_000));
        assert_eq!(parse_duration_ns("1d"), Some(86_400_000_000_000));
        assert_eq!(parse_duration_ns("1y"), None);
        assert_eq!(parse_duration_ns("m"), None);
        assert_eq!(parse_duration_ns("99999999999999999999d"), None);
    }
}
