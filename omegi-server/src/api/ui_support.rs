//! What the web UI needs beyond the rest of the API.
//!
//! - `GET /api/me`: who the token belongs to (the UI shows the signed-in
//!   user and tells the user's own notes from everyone's).
//!
//! The notes, search and graph routes the UI uses are in [`super::notes`].

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::{ApiUser, SharedState};

/// The answer of `GET /api/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Me {
    /// The user's login.
    login: String,
}

pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/api/me", get(me))
}

async fn me(ApiUser(login): ApiUser) -> Json<Me> {
    Json(Me { login })
}
