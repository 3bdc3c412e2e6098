//! `POST /v1/traces` and `POST /v1/logs`: the OTLP/HTTP receiver.
//!
//! Order of checks: token (401, or 403 for a user token), a declared body
//! size over the limit (413), the content type (415), the body as it
//! arrives (413 over the size limit, 408 when it arrives too slowly, 503
//! with `Retry-After` when the budget of bodies in flight of its project or
//! of the server stays full for too long: see [`super::body`]), a free slot
//! of the project and of the server for decoding and storing (503 with
//! `Retry-After` when they stay busy for too long), the content encoding
//! (415), the decode budget (413 or 400), the body itself (400), what the
//! store takes (400 for a name it cannot store; 503 with
//! `Retry-After` when it fails). A request refused by any of them stores
//! nothing (its records go into the store in one transaction); one refused
//! before its body is read has its body read and forgotten (up to four
//! times the limit, at the minimum rate) so that the client sees the answer
//! rather than a reset connection. Every answer
//! other than 200 has a `google.rpc.Status` body in the request's format,
//! as the OTLP specification says. Accepted records go into the project that
//! owns the ingest token; with `--sync always` (the default) the answer is
//! `200` only once they are on disk, and a retry of the same request stores
//! and counts nothing twice. New and regressed issues and spikes raise
//! alerts, once the records are durable.
//!
//! Everything after the body is in hand is [`accept`], the one ingest path
//! that the gRPC receiver (`crate::grpc`) shares: the HTTP handler here only
//! does HTTP things (the token header, reading the body at its rate, the
//! turn, mapping a [`Refusal`] to a status).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use omegi_store::IngestReport;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::body::{drain, read_body, BodyError, BodyRate, ReadRules};
use super::{now_ns, principal, ApiError, AppState, SharedState};
use crate::alerts::{Alert, AlertKind};
use crate::auth::Principal;
use crate::otlp::{self, DecodeError, Decoded, Format};
use crate::server::SyncPolicy;
use crate::settle::AcceptError;

/// A semaphore of each project, all of one size: the ingest slots of each
/// project, so that one project's large uploads cannot take every slot of
/// the server, and the bytes of each project's bodies in flight
/// ([`super::BodyBudget`]).
#[derive(Debug)]
pub struct ProjectSlots {
    per_project: usize,
    projects: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl ProjectSlots {
    /// `per_project` permits for each project (at least 1).
    pub fn new(per_project: usize) -> Self {
        ProjectSlots {
            per_project: per_project.max(1),
            projects: Mutex::new(HashMap::new()),
        }
    }

    /// The semaphore of `project`, made at first use.
    pub(crate) fn of(&self, project: &str) -> Arc<Semaphore> {
        let mut projects = self
            .projects
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(
            projects
                .entry(project.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_project))),
        )
    }
}

/// A request's turn: one slot of its project and one of the server.
pub(crate) struct Turn<'a> {
    _project: OwnedSemaphorePermit,
    _server: SemaphorePermit<'a>,
}

/// Waits for a slot of the project, then of the server, in all at most
/// `ingest_wait`; `None` when the wait is over.
pub(crate) async fn take_turn<'a>(state: &'a AppState, project: &str) -> Option<Turn<'a>> {
    let deadline = Instant::now() + state.ingest_wait;
    let project_slots = state.project_slots.of(project);
    let project = tokio::time::timeout_at(deadline, project_slots.acquire_owned())
        .await
        .ok()?
        .ok()?;
    let server = tokio::time::timeout_at(deadline, state.ingest_slots.acquire())
        .await
        .ok()?
        .ok()?;
    Some(Turn {
        _project: project,
        _server: server,
    })
}

pub(super) async fn traces(State(state): State<SharedState>, request: Request) -> Response {
    receive(state, request, Signal::Traces).await
}

pub(super) async fn logs(State(state): State<SharedState>, request: Request) -> Response {
    receive(state, request, Signal::Logs).await
}

/// `503 Service Unavailable` with `Retry-After`: OTLP exporters retry it.
fn busy(content_type: &str) -> Response {
    let (ct, body) = otlp::unavailable_response(
        "the server is busy with other requests: retry later",
        content_type,
    );
    let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, ct, body);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// An OTLP answer: a status and a body of the given content type.
fn answer(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn otlp_error(error: &DecodeError, content_type: &str) -> Response {
    let (ct, body) = otlp::error_response(error, content_type);
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    answer(status, ct, body)
}

/// An API error (a token refused, a store that failed) as an OTLP answer:
/// the same status, with a `google.rpc.Status` body.
fn otlp_api_error(error: ApiError, content_type: &str) -> Response {
    let status = error.status();
    if status.is_server_error() {
        tracing::error!(error = %omegi_core::ErrorChain(&error), "ingest failed");
    }
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3,
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::FORBIDDEN => 7,
        StatusCode::NOT_FOUND => 5,
        StatusCode::CONFLICT => 6,
        StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        _ => 13,
    };
    let (ct, body) = otlp::status_response(code, error.to_string(), content_type);
    let mut response = answer(status, ct, body);
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

async fn receive(state: SharedState, request: Request, signal: Signal) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let content_type = header_str(headers, header::CONTENT_TYPE)
        .unwrap_or("")
        .to_owned();
    let encoding = header_str(headers, header::CONTENT_ENCODING).map(str::to_owned);
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let limit = state.body_limit as u64;
    // A refusal before the body is read still reads (and forgets) a body of
    // up to four times the limit, so that the client gets the answer rather
    // than a connection reset while it is still sending.
    let rate = state.body_rate;
    let refuse = |response: Response, body: Body| async move {
        let max = declared.unwrap_or(limit).min(4 * limit);
        drain(body, max, rate).await;
        response
    };
    let project = match principal(&state, headers).await {
        Ok(Principal::Project(project)) => project,
        Ok(Principal::User(_)) => {
            let error = ApiError::Forbidden(USER_TOKEN_REFUSED.into());
            return refuse(otlp_api_error(error, &content_type), body).await;
        }
        Err(error) => return refuse(otlp_api_error(error, &content_type), body).await,
    };
    let too_large = DecodeError::RequestTooLarge {
        limit: state.body_limit,
    };
    if declared.is_some_and(|len| len > limit) {
        return refuse(otlp_error(&too_large, &content_type), body).await;
    }
    let format = match Format::from_content_type(&content_type) {
        Ok(format) => format,
        Err(error) => return refuse(otlp_error(&error, &content_type), body).await,
    };
    // The body is read before the turn, within the project's and the
    // server's budget of bodies in flight, so that a client that sends
    // slowly holds room for what it sent, never a turn.
    let mut room = state.body_budget.reserve(&project);
    let rules = ReadRules {
        limit: state.body_limit,
        rate: state.body_rate,
        wait: state.ingest_wait,
    };
    let expected = declared.and_then(|len| usize::try_from(len).ok());
    let body = match read_body(body, rules, expected, &mut room).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return otlp_error(&too_large, &content_type),
        Err(BodyError::TooSlow { received, elapsed }) => {
            let refusal = Refusal::too_slow(received, elapsed, state.body_rate);
            return refusal_response(&refusal, &content_type);
        }
        Err(BodyError::Busy) => return busy(&content_type),
        Err(BodyError::Read(error)) => {
            let message = format!(
                "could not read the body: {}",
                omegi_core::ErrorChain(&error)
            );
            return otlp_api_error(ApiError::BadRequest(message), &content_type);
        }
    };
    let Some(turn) = take_turn(&state, &project).await else {
        return busy(&content_type);
    };
    let outcome = accept(
        Arc::clone(&state),
        project,
        signal,
        Bytes::from(body),
        format,
        encoding,
    )
    .await;
    drop(turn);
    drop(room);
    match outcome {
        Ok(accepted) => {
            let (ct, body) = accepted.response(format);
            answer(StatusCode::OK, ct, body)
        }
        Err(refusal) => refusal_response(&refusal, &content_type),
    }
}

/// A refusal as an OTLP/HTTP answer: its status, a `google.rpc.Status`
/// body in the request's format, and `Retry-After` when a retry may
/// succeed.
fn refusal_response(refusal: &Refusal, content_type: &str) -> Response {
    let (ct, body) =
        otlp::status_response(refusal.code.as_i32(), refusal.message.clone(), content_type);
    let status = StatusCode::from_u16(refusal.http_status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = answer(status, ct, body);
    if let Some(after) = refusal.retry_after {
        let seconds = after.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

// The ingest path that every transport shares: from here on nothing knows
// whether the request came over HTTP or gRPC.

/// Why a user token may not send data.
pub(crate) const USER_TOKEN_REFUSED: &str =
    "a user token cannot send data: use the project's ingest token";

/// What an OTLP export carries: spans (`/v1/traces`,
/// `TraceService/Export`) or log records (`/v1/logs`, `LogsService/Export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Logs,
}

/// A `google.rpc.Code` as OTLP answers carry it: the gRPC status, and the
/// `code` of the `Status` body of an OTLP/HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcCode {
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    ResourceExhausted = 8,
    Internal = 13,
    Unavailable = 14,
}

impl RpcCode {
    pub(crate) fn as_i32(self) -> i32 {
        self as i32
    }
}

/// An export that was stored: what its answer says.
#[derive(Debug)]
pub(crate) struct Accepted {
    signal: Signal,
    decoded: Decoded,
}

impl Accepted {
    /// The body of the success answer in `format`, with its content type:
    /// an `ExportTraceServiceResponse` or `ExportLogsServiceResponse`, with
    /// the partial success when something was left out or cut.
    pub(crate) fn response(&self, format: Format) -> (&'static str, Vec<u8>) {
        let content_type = format.content_type();
        match self.signal {
            Signal::Traces => otlp::traces_response(&self.decoded, content_type),
            Signal::Logs => otlp::logs_response(&self.decoded, content_type),
        }
    }
}

/// An export that was refused: nothing of it is stored. Each transport
/// answers it its own way, OTLP/HTTP with `http_status` and a `Status`
/// body with `code`, gRPC with `code`; both carry `message`, and say when
/// to retry when `retry_after` is set (a refusal without it is final).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: RpcCode,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) http_status: u16,
}

impl Refusal {
    /// A body that could not be decoded, or one over a limit: final.
    pub(crate) fn decode(error: &DecodeError) -> Refusal {
        let code = match error.rpc_code() {
            8 => RpcCode::ResourceExhausted,
            _ => RpcCode::InvalidArgument,
        };
        Refusal {
            code,
            message: error.to_string(),
            retry_after: None,
            http_status: error.http_status(),
        }
    }

    /// A body that arrived slower than `rate` allows.
    pub(crate) fn too_slow(received: usize, elapsed: Duration, rate: BodyRate) -> Refusal {
        Refusal {
            code: RpcCode::DeadlineExceeded,
            message: format!(
                "the body arrived too slowly: {received} bytes in {:.1} s, the minimum is \
                 {} bytes/s after {} s (min_body_rate, body_grace)",
                elapsed.as_secs_f64(),
                rate.min_bytes_per_second,
                rate.grace.as_secs_f64()
            ),
            retry_after: None,
            http_status: 408,
        }
    }

    /// The store refused or failed to store the request (nothing of it is
    /// stored): final for a name the store cannot keep, else worth a retry
    /// (a retry of data already stored changes nothing).
    fn store(error: &omegi_store::Error) -> Refusal {
        if let omegi_store::Error::InvalidName { .. } = error {
            return Refusal {
                code: RpcCode::InvalidArgument,
                message: error.to_string(),
                retry_after: None,
                http_status: 400,
            };
        }
        tracing::error!(error = %omegi_core::ErrorChain(error), "could not store an OTLP request");
        Refusal {
            code: RpcCode::Unavailable,
            message: format!(
                "the request could not be stored: {}; retry later",
                omegi_core::ErrorChain(error)
            ),
            retry_after: Some(Duration::from_secs(1)),
            http_status: 503,
        }
    }

    /// The settle window is full: worth a retry in a second.
    fn busy(message: String) -> Refusal {
        Refusal {
            code: RpcCode::Unavailable,
            message,
            retry_after: Some(Duration::from_secs(1)),
            http_status: 503,
        }
    }

    fn internal(message: String) -> Refusal {
        tracing::error!(%message, "ingest failed");
        Refusal {
            code: RpcCode::Internal,
            message,
            retry_after: None,
            http_status: 500,
        }
    }
}

/// The ingest path of every transport, once a request's body is in hand
/// (read within the body limit, with a turn taken): decodes it within the
/// [`Limits`](crate::otlp::Limits) (the wire budget first), stores its
/// records in one transaction (durably under `--sync always`) and raises
/// the alerts they cause. `encoding` is the body's content encoding, `None`
/// when the transport has undone it already. Decoding and storing run off
/// the async workers.
pub(crate) async fn accept(
    state: SharedState,
    project: String,
    signal: Signal,
    body: Bytes,
    format: Format,
    encoding: Option<String>,
) -> Result<Accepted, Refusal> {
    let outcome = tokio::task::spawn_blocking(move || {
        let limits = state.limits;
        let content_type = format.content_type();
        let encoding = encoding.as_deref();
        let decoded = match signal {
            Signal::Traces => otlp::decode_traces(&body, content_type, encoding, &limits),
            Signal::Logs => otlp::decode_logs(&body, content_type, encoding, &limits),
        };
        drop(body);
        let decoded = decoded.map_err(|error| Refusal::decode(&error))?;
        store_records(&state, &project, &decoded).map_err(|error| match error {
            AcceptError::Store(error) => Refusal::store(&error),
            full @ AcceptError::Full { .. } => Refusal::busy(full.to_string()),
        })?;
        Ok(Accepted { signal, decoded })
    })
    .await;
    outcome.unwrap_or_else(|e| Err(Refusal::internal(format!("ingest task failed: {e}"))))
}

/// Hands a decoded request to the settle window ([`crate::settle`]): with
/// a window, its records are in the write-ahead log (on disk with `--sync
/// always`) when this returns, and their traces settle later; without one,
/// they are settled and stored now in one transaction (durable with
/// `--sync always`), and the alerts they cause are raised: an alert never
/// announces data a crash could still take back.
fn store_records(state: &AppState, project: &str, decoded: &Decoded) -> Result<(), AcceptError> {
    let durable = state.sync == SyncPolicy::Always;
    if let Some(report) = state.settle.accept(project, decoded, durable)? {
        raise_alerts(state, project, &report, now_ns());
    }
    Ok(())
}

/// Raises the alerts of what a settle stored: new and regressed issues,
/// and spikes.
pub(crate) fn raise_alerts(state: &AppState, project: &str, report: &IngestReport, now: u64) {
    for issue in &report.created {
        state
            .alerts
            .raise(Alert::new(AlertKind::NewIssue, issue, now));
    }
    for issue in &report.regressed {
        state
            .alerts
            .raise(Alert::new(AlertKind::Regressed, issue, now));
    }
    if !report.occurrences.is_empty() {
        // The records are stored: a failure here costs alerts, not data.
        if let Err(error) = check_spikes(state, project, report, now) {
            tracing::warn!(error = %omegi_core::ErrorChain(&error), "spike detection failed");
        }
    }
}

/// Raises spike alerts from the request's new occurrences per issue (an
/// error sent again is not counted again).
fn check_spikes(
    state: &AppState,
    project: &str,
    report: &IngestReport,
    now: u64,
) -> Result<(), omegi_store::Error> {
    let spiking: Vec<(String, crate::alerts::SpikeInfo)> = {
        let mut detector = state
            .spikes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        report
            .occurrences
            .iter()
            .filter_map(|(fp, n)| {
                detector
                    .observe(project, &fp.0, now, *n)
                    .map(|s| (fp.0.clone(), s))
            })
            .collect()
    };
    for (fp, info) in spiking {
        if let Some(issue) = state
            .store
            .issues()
            .get(project, &omegi_core::Fingerprint(fp))?
        {
            let mut alert = Alert::new(AlertKind::Spike, &issue, now);
            alert.spike = Some(info);
            state.alerts.raise(alert);
        }
    }
    Ok(())
}
