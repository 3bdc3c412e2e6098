//! `GET /api/alerts/stream`: alerts as server-sent events.
//!
//! Each alert is one event whose type is the alert's kind (`new_issue`,
//! `regressed`, `spike`) and whose data is the [`Alert`] as JSON. A client
//! too slow to keep up gets a `lagged` event with the number of alerts it
//! missed. The token may be sent as `?token=` for clients that cannot set
//! headers (browsers' `EventSource`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::extract::Query;
use super::{principal, token_principal, ApiError, SharedState};
use crate::alerts::Alert;
use crate::auth::Principal;

/// Query of the stream.
#[derive(Debug, Deserialize)]
pub(super) struct Params {
    /// Only alerts of this project.
    project: Option<String>,
    /// The API token, when it cannot be sent as a header.
    token: Option<String>,
}

pub(super) async fn stream(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let who = match (
        &params.token,
        headers.contains_key(axum::http::header::AUTHORIZATION),
    ) {
        (Some(token), false) => token_principal(&state, token)?,
        _ => principal(&state, &headers)?,
    };
    if let Principal::Project(_) = who {
        return Err(ApiError::Forbidden(
            "an ingest token cannot read alerts; use a user token".into(),
        ));
    }
    let rx = state.alerts.subscribe();
    let shutdown = state.shutdown.clone();
    let project = params.project;
    let events = stream::unfold(
        (rx, shutdown, project),
        |(mut rx, mut shutdown, project)| async move {
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = shutdown.changed() => return None,
                };
                let event = match received {
                    Ok(alert) => {
                        if project.as_ref().is_some_and(|p| *p != alert.project) {
                            continue;
                        }
                        alert_event(&alert)
                    }
                    Err(RecvError::Lagged(n)) => {
                        Event::default().event("lagged").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (rx, shutdown, project)));
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn alert_event(alert: &Alert) -> Event {
    let data = serde_json::to_string(alert).unwrap_or_else(|_| "{}".into());
    Event::default().event(alert.kind.as_str()).data(data)
}
