//! `/api/issues`: lists with filters, detail, status changes, occurrences
//! and the flow of an occurrence.

use axum::extract::State;
use axum::Json;
use omegi_core::flow::{Flow, Trace};
use omegi_core::{ErrorRecord, Fingerprint};
use omegi_store::{Bucket, Issue, IssueQuery, IssueSort, IssueStatus};
use serde::Deserialize;

use super::extract::{Path, Query};
use super::views::{issue_id, ErrorFlowView, FlowView, IssueDetail, IssueView, OccurrenceView};
use super::{blocking, check_project, window, ApiError, ApiUser, AppState, SharedState};

/// Query of `GET /api/issues`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListParams {
    project: Option<String>,
    /// `open` (default), `all`, or a comma-separated list of statuses.
    status: Option<String>,
    service: Option<String>,
    from: Option<u64>,
    to: Option<u64>,
    since: Option<String>,
    /// `last_seen` (default) or `count`.
    sort: Option<String>,
    limit: Option<usize>,
}

fn parse_statuses(text: Option<&str>) -> Result<Vec<IssueStatus>, ApiError> {
    let text = text.unwrap_or("open");
    match text {
        "open" => return Ok(vec![IssueStatus::Unresolved, IssueStatus::Regressed]),
        "all" | "" => return Ok(Vec::new()),
        _ => {}
    }
    text.split(',')
        .map(|s| match s.trim() {
            "unresolved" => Ok(IssueStatus::Unresolved),
            "resolved" => Ok(IssueStatus::Resolved),
            "ignored" => Ok(IssueStatus::Ignored),
            "regressed" => Ok(IssueStatus::Regressed),
            other => Err(ApiError::BadRequest(format!(
                "unknown status {other:?}: expected open, all, unresolved, resolved, ignored or regressed"
            ))),
        })
        .collect()
}

fn parse_sort(text: Option<&str>) -> Result<IssueSort, ApiError> {
    match text.unwrap_or("last_seen") {
        "last_seen" | "last-seen" => Ok(IssueSort::LastSeen),
        "count" => Ok(IssueSort::Count),
        other => Err(ApiError::BadRequest(format!(
            "unknown sort {other:?}: expected last_seen or count"
        ))),
    }
}

pub(super) async fn list(
    State(state): State<SharedState>,
    _user: ApiUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<IssueView>>, ApiError> {
    let statuses = parse_statuses(params.status.as_deref())?;
    let sort = parse_sort(params.sort.as_deref())?;
    let limit = params.limit.unwrap_or(100).min(10_000);
    let timed = params.from.is_some() || params.to.is_some() || params.since.is_some();
    let (from, to) = if timed {
        window(params.from, params.to, params.since.as_deref(), None)?
    } else {
        (0, u64::MAX)
    };
    blocking(&state, move |state| {
        let projects = match &params.project {
            Some(p) => {
                check_project(&state.store, p)?;
                vec![p.clone()]
            }
            None => state.store.projects()?.into_iter().map(|p| p.id).collect(),
        };
        let filtered = params.service.is_some() || timed;
        let mut query = IssueQuery::with_statuses(&statuses).sort(sort);
        if !filtered {
            query = query.limit(limit);
        }
        let mut issues: Vec<Issue> = Vec::new();
        for project in &projects {
            issues.extend(
                state
                    .store
                    .issues(project, &query)?
                    .into_iter()
                    .filter(|i| match &params.service {
                        None => true,
                        Some(s) => i.services.iter().any(|x| x == s),
                    })
                    .filter(|i| i.last_seen_ns >= from && i.last_seen_ns < to),
            );
        }
        match sort {
            IssueSort::Count => issues.sort_by(|a, b| {
                b.count
                    .cmp(&a.count)
                    .then_with(|| a.project.cmp(&b.project))
                    .then_with(|| a.fingerprint.cmp(&b.fingerprint))
            }),
            _ => issues.sort_by(|a, b| {
                b.last_seen_ns
                    .cmp(&a.last_seen_ns)
                    .then_with(|| a.project.cmp(&b.project))
                    .then_with(|| a.fingerprint.cmp(&b.fingerprint))
            }),
        }
        issues.truncate(limit);
        Ok(Json(issues.into_iter().map(IssueView::from).collect()))
    })
    .await
}

fn find_issue(state: &AppState, project: &str, fp: &str) -> Result<Issue, ApiError> {
    state
        .store
        .issue(project, &Fingerprint(fp.to_owned()))?
        .ok_or_else(|| ApiError::NotFound(format!("no issue {}", issue_id(project, fp))))
}

pub(super) async fn detail(
    State(state): State<SharedState>,
    _user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
) -> Result<Json<IssueDetail>, ApiError> {
    blocking(&state, move |state| {
        let issue = find_issue(state, &project, &fp)?;
        let occurrences = latest_occurrences(state, &issue, 20)?;
        let to = super::now_ns().max(issue.last_seen_ns + 1);
        let from = to.saturating_sub(24 * Bucket::Hour.width_ns());
        let histogram =
            state
                .store
                .issue_histogram(&project, &issue.fingerprint, Bucket::Hour, from, to)?;
        Ok(Json(IssueDetail {
            issue: issue.into(),
            occurrences,
            histogram,
        }))
    })
    .await
}

/// The latest `limit` occurrences, newest first.
fn latest_occurrences(
    state: &AppState,
    issue: &Issue,
    limit: usize,
) -> Result<Vec<OccurrenceView>, ApiError> {
    // Occurrences are read oldest first: look back over growing windows
    // until enough are found.
    let end = issue.last_seen_ns.saturating_add(1);
    let mut width = Bucket::Hour.width_ns();
    loop {
        let from = end.saturating_sub(width);
        let all =
            state
                .store
                .occurrences(&issue.project, &issue.fingerprint, from, end, usize::MAX)?;
        if all.len() >= limit || from == 0 || from <= issue.first_seen_ns {
            return Ok(all
                .iter()
                .rev()
                .take(limit)
                .map(OccurrenceView::from)
                .collect());
        }
        width = width.saturating_mul(8);
    }
}

/// Query of the occurrences endpoint.
#[derive(Debug, Deserialize)]
pub(super) struct OccurrenceParams {
    limit: Option<usize>,
}

pub(super) async fn occurrences(
    State(state): State<SharedState>,
    _user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
    Query(params): Query<OccurrenceParams>,
) -> Result<Json<Vec<OccurrenceView>>, ApiError> {
    let limit = params.limit.unwrap_or(50).min(10_000);
    blocking(&state, move |state| {
        let issue = find_issue(state, &project, &fp)?;
        Ok(Json(latest_occurrences(state, &issue, limit)?))
    })
    .await
}

/// Query of the flow endpoint.
#[derive(Debug, Deserialize)]
pub(super) struct FlowParams {
    /// `<time_ns>-<seq>` from the occurrence list; the latest when absent.
    occurrence: Option<String>,
    /// Width of the waterfall bar.
    width: Option<usize>,
}

pub(super) async fn flow(
    State(state): State<SharedState>,
    _user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
    Query(params): Query<FlowParams>,
) -> Result<Json<ErrorFlowView>, ApiError> {
    let width = params.width.unwrap_or(40).clamp(10, 400);
    blocking(&state, move |state| {
        let issue = find_issue(state, &project, &fp)?;
        let error = match &params.occurrence {
            None => issue.latest_error.clone(),
            Some(id) => find_occurrence(state, &issue, id)?,
        };
        Ok(Json(error_flow(
            state,
            &project,
            issue_id(&project, &fp),
            params.occurrence,
            error,
            width,
        )?))
    })
    .await
}

fn find_occurrence(state: &AppState, issue: &Issue, id: &str) -> Result<ErrorRecord, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "invalid occurrence {id:?}: expected <time_ns>-<seq> from the occurrence list"
        ))
    };
    let (time, seq) = id.split_once('-').ok_or_else(bad)?;
    let time: u64 = time.parse().map_err(|_| bad())?;
    let seq: u64 = seq.parse().map_err(|_| bad())?;
    state
        .store
        .occurrences(
            &issue.project,
            &issue.fingerprint,
            time,
            time.saturating_add(1),
            usize::MAX,
        )?
        .into_iter()
        .find(|o| o.seq == seq)
        .map(|o| o.error)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no occurrence {id} of issue {}",
                issue_id(&issue.project, &issue.fingerprint.0)
            ))
        })
}

/// The flow of an error of `project`: its trace is the project's trace
/// with the error's trace id.
fn error_flow(
    state: &AppState,
    project: &str,
    issue_id: String,
    occurrence: Option<String>,
    error: ErrorRecord,
    width: usize,
) -> Result<ErrorFlowView, ApiError> {
    let mut view = ErrorFlowView {
        issue_id,
        occurrence,
        flow: None,
        flow_error: None,
        raw_log: None,
        waterfall: None,
        error,
    };
    let Some(trace_id) = view.error.trace_id else {
        view.flow_error = Some("the error was not captured in a trace".into());
        return Ok(view);
    };
    let spans = state.store.trace_spans(project, trace_id)?;
    let trace = match Trace::from_spans(spans) {
        Ok(trace) => trace,
        Err(e) => {
            view.flow_error = Some(format!("trace {trace_id}: {e}"));
            return Ok(view);
        }
    };
    match Flow::for_error(&trace, &view.error) {
        Ok(flow) => view.flow = Some(FlowView::from(&flow)),
        Err(e) => view.flow_error = Some(e.to_string()),
    }
    view.raw_log = Some(trace.raw_log());
    view.waterfall = Some(trace.waterfall(width));
    Ok(view)
}

async fn set_status(
    state: SharedState,
    project: String,
    fp: String,
    status: IssueStatus,
) -> Result<Json<IssueView>, ApiError> {
    blocking(&state, move |state| {
        let fingerprint = Fingerprint(fp.clone());
        if state.store.issue(&project, &fingerprint)?.is_none() {
            return Err(ApiError::NotFound(format!(
                "no issue {}",
                issue_id(&project, &fp)
            )));
        }
        let issue = state
            .store
            .set_issue_status(&project, &fingerprint, status)?;
        Ok(Json(issue.into()))
    })
    .await
}

pub(super) async fn resolve(
    State(state): State<SharedState>,
    _user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
) -> Result<Json<IssueView>, ApiError> {
    set_status(state, project, fp, IssueStatus::Resolved).await
}

pub(super) async fn ignore(
    State(state): State<SharedState>,
    _user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
) -> Result<Json<IssueView>, ApiError> {
    set_status(state, project, fp, IssueStatus::Ignored).await
}

pub(super) async fn unresolve(
    State(state): State<SharedState>,
    _user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
) -> Result<Json<IssueView>, ApiError> {
    set_status(state, project, fp, IssueStatus::Unresolved).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_sort_parameters() {
        assert_eq!(
            parse_statuses(None).unwrap(),
            vec![IssueStatus::Unresolved, IssueStatus::Regressed]
        );
        assert!(parse_statuses(Some("all")).unwrap().is_empty());
        assert_eq!(
            parse_statuses(Some("resolved,ignored")).unwrap(),
            vec![IssueStatus::Resolved, IssueStatus::Ignored]
        );
        assert!(parse_statuses(Some("closed")).is_err());
        assert_eq!(parse_sort(Some("count")).unwrap(), IssueSort::Count);
        assert!(parse_sort(Some("age")).is_err());
    }
}
