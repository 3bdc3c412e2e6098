//! `/api/traces`: recent traces and one trace with its tree, flows,
//! waterfall and raw log.

use axum::extract::State;
use axum::Json;
use omegi_core::flow::Trace;
use omegi_core::TraceId;
use omegi_store::{TraceQuery, TraceSummary};
use serde::Deserialize;

use super::extract::{Path, Query};
use super::views::{brief_trace, TraceView};
use super::{blocking, check_project, window, ApiError, ApiUser, SharedState};

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
    _user: ApiUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<TraceSummary>>, ApiError> {
    let (from, to) = window(params.from, params.to, params.since.as_deref(), None)?;
    let limit = params.limit.unwrap_or(50).min(1000);
    blocking(&state, move |state| {
        let mut query = match params.project {
            Some(p) => {
                check_project(&state.store, &p)?;
                TraceQuery::project(p)
            }
            None => TraceQuery::all(),
        };
        if let Some(s) = params.service {
            query = query.service(s);
        }
        let traces = state.store.traces(&query.between(from, to).limit(limit))?;
        Ok(Json(
            traces
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
    /// Width of the waterfall bar (default 40).
    width: Option<usize>,
}

pub(super) async fn detail(
    State(state): State<SharedState>,
    _user: ApiUser,
    Path(trace_id): Path<String>,
    Query(params): Query<DetailParams>,
) -> Result<Json<TraceView>, ApiError> {
    let id: TraceId = trace_id
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("invalid trace id {trace_id:?}: {e}")))?;
    let width = params.width.unwrap_or(40).clamp(10, 400);
    blocking(&state, move |state| {
        let spans = state.store.trace_spans(id)?;
        if spans.is_empty() {
            return Err(ApiError::NotFound(format!("no trace {id}")));
        }
        let summary = state.store.trace(id)?;
        let trace =
            Trace::from_spans(spans).map_err(|e| ApiError::Internal(format!("trace {id}: {e}")))?;
        Ok(Json(TraceView::new(
            &trace,
            summary,
            width,
            &state.read_limits,
        )))
    })
    .await
}
