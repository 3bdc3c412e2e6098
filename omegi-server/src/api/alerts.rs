//! `GET /api/alerts/stream`: alerts as server-sent events.
//!
//! Each alert is one event whose type is the alert's kind (`new_issue`,
//! `regressed`, `spike`) and whose data is the [`Alert`] as JSON. A client
//! too slow to keep up gets a `lagged` event with the number of alerts it
//! missed. The token may be sent as `?token=` for clients that cannot set
//! headers (browsers' `EventSource`).
//!
//! A stream carries only alerts of the projects its user belongs to,
//! checked for every alert (a membership ended stops them at once). The
//! token is checked again before every alert and every
//! [`AppState::stream_recheck`](super::AppState::stream_recheck): once it
//! is revoked, the stream ends with an `unauthorized` event.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::extract::Query;
use super::{bearer, readable_projects, ApiError, ApiUser, SharedState};
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

/// The token of the request: the `Authorization` header, else `?token=`.
fn request_token(headers: &HeaderMap, query: Option<String>) -> Result<String, ApiError> {
    match headers.get(axum::http::header::AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(bearer)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into())),
        None => query
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer <token>".into())),
    }
}

/// Whether `token` still belongs to the user `login` (looked up on a
/// blocking thread; a failed check counts as no).
async fn still_valid(state: &SharedState, token: &str, login: &str) -> bool {
    let (token, login) = (token.to_owned(), login.to_owned());
    super::blocking(state, move |state| {
        Ok(matches!(
            state.auth.authenticate(&token),
            Ok(Some(Principal::User(l))) if l == login
        ))
    })
    .await
    .unwrap_or(false)
}

/// Whether the user may see `alert` (looked up on a blocking thread; a
/// failed check counts as no).
async fn may_see(state: &SharedState, user: &ApiUser, alert: &Alert) -> bool {
    let (user, project) = (user.clone(), alert.project.clone());
    super::blocking(state, move |state| {
        Ok(readable_projects(state, &user).is_ok_and(|r| r.contains(&project)))
    })
    .await
    .unwrap_or(false)
}

pub(super) async fn stream(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let token = request_token(&headers, params.token)?;
    let login = match super::token_principal(&state, token.clone()).await? {
        Principal::User(login) => login,
        Principal::Project(_) => {
            return Err(ApiError::Forbidden(
                "an ingest token cannot read alerts; use a user token".into(),
            ))
        }
    };
    let user = ApiUser(login);
    if let Some(project) = params.project.clone() {
        // Like every project filter: 404 for a project the user does not
        // belong to.
        let user = user.clone();
        super::blocking(&state, move |state| {
            super::check_project(&state.store, &readable_projects(state, &user)?, &project)
        })
        .await?;
    }
    let rx = state.alerts.subscribe();
    let shutdown = state.shutdown.clone();
    let every = state.stream_recheck;
    let watch = Watch {
        state,
        token,
        user,
        project: params.project,
        next_check: Instant::now() + every,
        ended: false,
    };
    let events = stream::unfold(
        (rx, shutdown, watch),
        |(mut rx, mut shutdown, mut watch)| async move {
            loop {
                if watch.ended || *shutdown.borrow() {
                    return None;
                }
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = shutdown.changed() => return None,
                    _ = tokio::time::sleep_until(watch.next_check) => {
                        watch.next_check = Instant::now() + watch.state.stream_recheck;
                        if watch.token_valid().await {
                            continue;
                        }
                        return Some((Ok(watch.end()), (rx, shutdown, watch)));
                    }
                };
                let event = match received {
                    Ok(alert) => {
                        if !watch.token_valid().await {
                            return Some((Ok(watch.end()), (rx, shutdown, watch)));
                        }
                        if watch.project.as_ref().is_some_and(|p| *p != alert.project)
                            || !may_see(&watch.state, &watch.user, &alert).await
                        {
                            continue;
                        }
                        alert_event(&alert)
                    }
                    Err(RecvError::Lagged(n)) => {
                        Event::default().event("lagged").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (rx, shutdown, watch)));
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15))))
}

/// What an open stream keeps checking.
struct Watch {
    state: SharedState,
    token: String,
    user: ApiUser,
    project: Option<String>,
    next_check: Instant,
    ended: bool,
}

impl Watch {
    async fn token_valid(&self) -> bool {
        still_valid(&self.state, &self.token, &self.user.0).await
    }

    /// The last event of a stream whose token was revoked.
    fn end(&mut self) -> Event {
        self.ended = true;
        Event::default()
            .event("unauthorized")
            .data("the token was revoked")
    }
}

fn alert_event(alert: &Alert) -> Event {
    let data = serde_json::to_string(alert).unwrap_or_else(|_| "{}".into());
    Event::default().event(alert.kind.as_str()).data(data)
}
