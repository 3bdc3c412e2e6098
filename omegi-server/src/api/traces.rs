//! `/api/traces`: recent traces and one trace with its tree, flows,
//! waterfall and raw log.
//!
//! A trace belongs to a project: the same trace id sent to two projects is
//! two traces. Both routes read only projects the caller may read
//! ([`super::readable_projects`]).

use axum::extract::State;
use axum::Json;
use omegi_core::flow::Trace;
use omegi_core::TraceId;
use omegi_store::{TraceQuery, TraceSummary};
use serde::Deserialize;

use super::extract::{Path, Query};
use super::views::{brief_trace, TraceView};
use super::{
    blocking, readable_project, readable_projects, window, ApiError, ApiUser, SharedState,
};

/// Query of `GET /api/traces`.
#[derive(Debug, Deserialize)]
pub(super) struct ListParams {
    project: Option<String>,
    service: Option<String>,
    from: Option<u64>,
    to: Option<u64>,
    since: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn list(
    State(state): State<SharedState>,
    user: ApiUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<TraceSummary>>, ApiError> {
    let (from, to) = window(params.from, params.to, params.since.as_deref(), None)?;
    let limit = params.limit.unwrap_or(50).min(1000);
    blocking(&state, move |state| {
        let projects = match &params.project {
            Some(p) => vec![readable_project(state, &user, p)?],
            None => readable_projects(state, &user)?.ids(&state.store)?,
        };
        let mut query = TraceQuery::projects(projects);
        if let Some(s) = params.service {
            query = query.service(s);
        }
        Ok(Json(
            state
                .store
                .traces()
                .list(&query.between(from, to).limit(limit))?
                .into_iter()
                .map(|t| brief_trace(t, &state.read_limits))
                .collect(),
        ))
    })
    .await
}

/// Query of `GET /api/traces/{trace_id}`.
#[derive(Debug, Deserialize)]
pub(super) struct DetailParams {
    /// The trace's project; without it, the one readable project that has
    /// a trace with this id.
    project: Option<String>,
    /// Width of the waterfall bar (default 40).
    width: Option<usize>,
}

pub(super) async fn detail(
    State(state): State<SharedState>,
    user: ApiUser,
    Path(trace_id): Path<String>,
    Query(params): Query<DetailParams>,
) -> Result<Json<TraceView>, ApiError> {
    let id: TraceId = trace_id
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("invalid trace id {trace_id:?}: {e}")))?;
    let width = params.width.unwrap_or(40).clamp(10, 400);
    blocking(&state, move |state| {
        let candidates = match &params.project {
            Some(p) => vec![readable_project(state, &user, p)?],
            None => readable_projects(state, &user)?.ids(&state.store)?,
        };
        let mut found = Vec::new();
        for project in &candidates {
            if let Some(summary) = state.store.traces().get(project, id)? {
                found.push(summary);
            }
        }
        let summary = match found.len() {
            0 => return sampled_out(state, &candidates, id),
            1 => found.remove(0),
            _ => {
                let projects: Vec<&str> = found.iter().map(|s| s.project.as_str()).collect();
                return Err(ApiError::Conflict(format!(
                    "trace {id} is in projects {}: name one with ?project=",
                    projects.join(", ")
                )));
            }
        };
        let spans = state.store.traces().spans(&summary.project, id)?;
        if spans.is_empty() {
            return Err(ApiError::NotFound(format!("no trace {id}")));
        }
        let settlement = state.store.traces().settlement(&summary.project, id)?;
        let trace =
            Trace::from_spans(spans).map_err(|e| ApiError::Internal(format!("trace {id}: {e}")))?;
        let mut view = TraceView::new(&trace, Some(summary), width, &state.read_limits);
        view.settlement = settlement;
        Ok(Json(view))
    })
    .await
}

/// The answer for a trace whose spans are not stored: `200` with no spans
/// and its settlement when it settled and was sampled out (its statistics
/// were kept), else `404`.
fn sampled_out(
    state: &super::AppState,
    candidates: &[String],
    id: TraceId,
) -> Result<Json<TraceView>, ApiError> {
    for project in candidates {
        if let Some(settled) = state.store.traces().settlement(project, id)? {
            if !settled.kept {
                return Ok(Json(TraceView {
                    trace_id: id,
                    summary: None,
                    spans: Vec::new(),
                    flows: Vec::new(),
                    waterfall: String::new(),
                    raw_log: String::new(),
                    dependencies: Vec::new(),
                    truncated: false,
                    settlement: Some(settled),
                }));
            }
        }
    }
    Err(ApiError::NotFound(format!("no trace {id}")))
}
