//! `POST /v1/traces` and `POST /v1/logs`: the OTLP/HTTP receiver.
//!
//! Order of checks: token (401, or 403 for a user token), a declared body
//! size over the limit (413), a free slot of the project and of the server
//! (503 with `Retry-After` when they stay busy for too long), the body as it
//! arrives (413 over the size limit, 408 when it arrives too slowly), content
//! type and encoding (415), the decode budget (413 or 400), the body itself
//! (400), what the store takes (400 for a name it cannot store; 503 with
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use omegi_store::IngestReport;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::{now_ns, principal, ApiError, AppState, SharedState};
use crate::alerts::{Alert, AlertKind};
use crate::auth::Principal;
use crate::otlp::{self, DecodeError, Decoded};
use crate::server::SyncPolicy;
use crate::settle::AcceptError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Logs,
}

/// How fast a request body must arrive: after `grace`, at least
/// `min_bytes_per_second` on average since the request started (0: no
/// limit). A body that falls behind is answered `408 Request Timeout`, and
/// its slot is free again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRate {
    /// Time allowed before the rate counts.
    pub grace: Duration,
    /// The slowest acceptable average rate after the grace period.
    pub min_bytes_per_second: u64,
}

impl Default for BodyRate {
    /// 5 s, then 16 KiB/s.
    fn default() -> Self {
        BodyRate {
            grace: Duration::from_secs(5),
            min_bytes_per_second: 16 * 1024,
        }
    }
}

impl BodyRate {
    /// When a body of which `received` bytes arrived since `start` must
    /// have its next bytes; `None` without a rate.
    fn deadline(&self, start: Instant, received: usize) -> Option<Instant> {
        if self.min_bytes_per_second == 0 {
            return None;
        }
        let allowed = self.grace
            + Duration::from_secs_f64(received as f64 / self.min_bytes_per_second as f64);
        Some(start + allowed)
    }
}

/// The ingest slots of each project, so that one project's slow or large
/// uploads cannot take every slot of the server.
#[derive(Debug)]
pub struct ProjectSlots {
    per_project: usize,
    projects: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl ProjectSlots {
    /// `per_project` requests of one project at once (at least 1).
    pub fn new(per_project: usize) -> Self {
        ProjectSlots {
            per_project: per_project.max(1),
            projects: Mutex::new(HashMap::new()),
        }
    }

    fn of(&self, project: &str) -> Arc<Semaphore> {
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
struct Turn<'a> {
    _project: OwnedSemaphorePermit,
    _server: SemaphorePermit<'a>,
}

/// Waits for a slot of the project, then of the server, in all at most
/// `ingest_wait`; `None` when the wait is over.
async fn take_turn<'a>(state: &'a AppState, project: &str) -> Option<Turn<'a>> {
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
        tracing::error!(%error, "ingest failed");
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

/// Why a body could not be read.
enum BodyError {
    /// More than the limit arrived.
    TooLarge,
    /// The body fell behind the minimum rate.
    TooSlow { received: usize, elapsed: Duration },
    /// The connection failed.
    Read(String),
}

/// Reads a body of at most `limit` bytes at the rate `rate` asks for.
async fn read_body(
    body: Body,
    limit: usize,
    rate: BodyRate,
    expected: Option<usize>,
) -> Result<Vec<u8>, BodyError> {
    let start = Instant::now();
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(expected.unwrap_or(0).min(limit));
    loop {
        let next = match rate.deadline(start, bytes.len()) {
            Some(deadline) => tokio::time::timeout_at(deadline, stream.next())
                .await
                .map_err(|_| BodyError::TooSlow {
                    received: bytes.len(),
                    elapsed: start.elapsed(),
                })?,
            None => stream.next().await,
        };
        match next {
            None => return Ok(bytes),
            Some(Ok(chunk)) => {
                if bytes.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                bytes.extend_from_slice(&chunk);
            }
            Some(Err(error)) => return Err(BodyError::Read(error.to_string())),
        }
    }
}

/// Reads and forgets at most `max` bytes of a body that is refused before it
/// is read, as fast as `rate` asks; stops at the end, past `max` or when the
/// body falls behind.
async fn drain(body: Body, max: u64, rate: BodyRate) {
    let start = Instant::now();
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    loop {
        let next = match rate.deadline(start, seen) {
            Some(deadline) => match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => return,
            },
            None => stream.next().await,
        };
        match next {
            Some(Ok(chunk)) => {
                seen += chunk.len();
                if seen as u64 > max {
                    return;
                }
            }
            _ => return,
        }
    }
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
    let project = match principal(&state, headers) {
        Ok(Principal::Project(project)) => project,
        Ok(Principal::User(_)) => {
            let error = ApiError::Forbidden(
                "a user token cannot send data: use the project's ingest token".into(),
            );
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
    // Bodies are read only with a turn, so that a burst of requests cannot
    // hold more than `ingest_slots` bodies in memory.
    let Some(turn) = take_turn(&state, &project).await else {
        return refuse(busy(&content_type), body).await;
    };
    let expected = declared.and_then(|len| usize::try_from(len).ok());
    let body = match read_body(body, state.body_limit, state.body_rate, expected).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return otlp_error(&too_large, &content_type),
        Err(BodyError::TooSlow { received, elapsed }) => {
            let rate = state.body_rate;
            let (ct, body) = otlp::status_response(
                4,
                format!(
                    "the body arrived too slowly: {received} bytes in {:.1} s, the minimum is \
                     {} bytes/s after {} s (min_body_rate, body_grace)",
                    elapsed.as_secs_f64(),
                    rate.min_bytes_per_second,
                    rate.grace.as_secs_f64()
                ),
                &content_type,
            );
            return answer(StatusCode::REQUEST_TIMEOUT, ct, body);
        }
        Err(BodyError::Read(error)) => {
            let message = format!("could not read the body: {error}");
            return otlp_api_error(ApiError::BadRequest(message), &content_type);
        }
    };
    let task_state = Arc::clone(&state);
    let outcome = tokio::task::spawn_blocking(move || {
        let limits = task_state.limits;
        let decoded = match signal {
            Signal::Traces => {
                otlp::decode_traces(&body, &content_type, encoding.as_deref(), &limits)
            }
            Signal::Logs => otlp::decode_logs(&body, &content_type, encoding.as_deref(), &limits),
        };
        drop(body);
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(error) => return otlp_error(&error, &content_type),
        };
        match store_records(&task_state, &project, &decoded) {
            Ok(()) => {}
            Err(AcceptError::Store(error)) => return store_error(&error, &content_type),
            Err(full @ AcceptError::Full { .. }) => {
                let (ct, body) = otlp::unavailable_response(&full.to_string(), &content_type);
                let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, ct, body);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
        }
        let (ct, body) = match signal {
            Signal::Traces => otlp::traces_response(&decoded, &content_type),
            Signal::Logs => otlp::logs_response(&decoded, &content_type),
        };
        answer(StatusCode::OK, ct, body)
    })
    .await;
    drop(turn);
    outcome.unwrap_or_else(|e| {
        otlp_api_error(
            ApiError::Internal(format!("ingest task failed: {e}")),
            "application/x-protobuf",
        )
    })
}

/// The answer to a request the store refused or failed to store (it
/// stored nothing of it): `400` when the data cannot be stored (a name
/// longer than the store takes), else `503` with `Retry-After`, which
/// exporters retry (a retry of data already stored changes nothing).
fn store_error(error: &omegi_store::Error, content_type: &str) -> Response {
    if let omegi_store::Error::InvalidName { .. } = error {
        let (ct, body) = otlp::invalid_argument_response(&error.to_string(), content_type);
        return answer(StatusCode::BAD_REQUEST, ct, body);
    }
    tracing::error!(%error, "could not store an OTLP request");
    let (ct, body) = otlp::unavailable_response(
        &format!("the request could not be stored: {error}; retry later"),
        content_type,
    );
    let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, ct, body);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
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
            .publish(Alert::new(AlertKind::NewIssue, issue, now));
    }
    for issue in &report.regressed {
        state
            .alerts
            .publish(Alert::new(AlertKind::Regressed, issue, now));
    }
    if !report.occurrences.is_empty() {
        // The records are stored: a failure here costs alerts, not data.
        if let Err(error) = check_spikes(state, project, report, now) {
            tracing::warn!(%error, "spike detection failed");
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
        if let Some(issue) = state.store.issue(project, &omegi_core::Fingerprint(fp))? {
            let mut alert = Alert::new(AlertKind::Spike, &issue, now);
            alert.spike = Some(info);
            state.alerts.publish(alert);
        }
    }
    Ok(())
}
