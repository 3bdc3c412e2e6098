//! `POST /v1/traces` and `POST /v1/logs`: the OTLP/HTTP receiver.
//!
//! Order of checks: token (401, or 403 for a user token), a free slot (503
//! with `Retry-After` when the server is busy for too long), body size
//! (413), content type and encoding (415), body (400), what the store
//! takes (400 for a name it cannot store; 503 with `Retry-After` when it
//! fails). A request rejected by any of them stores nothing: its records
//! go into the store in one transaction. Accepted records go into the
//! project that owns the ingest token; with `--sync always` (the default)
//! the answer is `200` only once they are on disk, and a retry of the same
//! request stores and counts nothing twice. New and regressed issues and
//! spikes raise alerts, once the records are durable.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use omegi_store::IngestReport;

use super::{now_ns, principal, ApiError, AppState, SharedState};
use crate::alerts::{Alert, AlertKind};
use crate::auth::Principal;
use crate::otlp::{self, DecodeError, Decoded};
use crate::server::SyncPolicy;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Logs,
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

async fn receive(state: SharedState, request: Request, signal: Signal) -> Response {
    let headers = request.headers();
    let project = match principal(&state, headers) {
        Ok(Principal::Project(project)) => project,
        Ok(Principal::User(_)) => {
            return ApiError::Forbidden(
                "a user token cannot send data: use the project's ingest token".into(),
            )
            .into_response()
        }
        Err(error) => return error.into_response(),
    };
    let content_type = header_str(headers, header::CONTENT_TYPE)
        .unwrap_or("")
        .to_owned();
    let encoding = header_str(headers, header::CONTENT_ENCODING).map(str::to_owned);
    // Bodies are read only with a slot, so that a burst of requests cannot
    // hold more than `ingest_slots` bodies in memory.
    let Ok(Ok(_slot)) = tokio::time::timeout(state.ingest_wait, state.ingest_slots.acquire()).await
    else {
        return busy(&content_type);
    };
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let error = DecodeError::BodyTooLarge {
                limit: state.body_limit,
            };
            return otlp_error(&error, &content_type);
        }
        Err(rejection) => {
            return ApiError::BadRequest(format!(
                "could not read the body: {}",
                rejection.body_text()
            ))
            .into_response()
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
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(error) => return otlp_error(&error, &content_type),
        };
        if let Err(error) = store_records(&task_state, &project, &decoded) {
            return store_error(&error, &content_type);
        }
        let (ct, body) = match signal {
            Signal::Traces => otlp::traces_response(&decoded, &content_type),
            Signal::Logs => otlp::logs_response(&decoded, &content_type),
        };
        answer(StatusCode::OK, ct, body)
    })
    .await;
    outcome
        .unwrap_or_else(|e| ApiError::Internal(format!("ingest task failed: {e}")).into_response())
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

/// Ingests every resource's records in one store call (one transaction;
/// each trace is written once however many processes sent its spans),
/// waits until they are durable when the sync policy says so, then raises
/// the alerts they cause: an alert never announces data a crash could
/// still take back.
fn store_records(
    state: &AppState,
    project: &str,
    decoded: &Decoded,
) -> Result<(), omegi_store::Error> {
    let now = now_ns();
    let report = state.store.ingest_resources(
        project,
        decoded
            .resources
            .iter()
            .filter(|batch| !batch.records.is_empty())
            .map(|batch| (&batch.resource, batch.records.as_slice())),
    )?;
    if state.sync == SyncPolicy::Always {
        state.store.sync()?;
    }
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
        // The request is stored: a failure here costs alerts, not data.
        if let Err(error) = check_spikes(state, project, &report, now) {
            tracing::warn!(%error, "spike detection failed");
        }
    }
    Ok(())
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
