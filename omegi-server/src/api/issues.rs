//! `/api/issues`: lists with filters, detail, status changes, occurrences
//! and the flow of an occurrence.

use axum::extract::State;
use axum::Json;
use omegi_core::flow::{Flow, Trace};
use omegi_core::{ErrorRecord, Fingerprint};
use omegi_store::{title_line, Bucket, Issue, IssueQuery, IssueSort, IssueStatus};
use serde::Deserialize;

use super::extract::{Path, Query};
use super::views::{issue_id, ErrorFlowView, FlowView, IssueDetail, IssueView, OccurrenceView};
use super::{
    blocking, check_project, readable_projects, window, ApiError, ApiUser, AppState, SharedState,
};

/// Occurrences shown on an issue's page.
const DETAIL_OCCURRENCES: usize = 20;

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
    user: ApiUser,
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
        let readable = readable_projects(state, &user)?;
        let projects = match &params.project {
            Some(p) => {
                check_project(&state.store, &readable, p)?;
                vec![p.clone()]
            }
            None => readable.ids(&state.store)?,
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
                    .issues()
                    .list(project, &query)?
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
        let limits = &state.read_limits;
        Ok(Json(
            issues
                .into_iter()
                .map(|i| IssueView::brief(i, limits))
                .collect(),
        ))
    })
    .await
}

/// The issue, if `user` may read its project (404 otherwise, as for an
/// issue that does not exist).
fn find_issue(
    state: &AppState,
    user: &ApiUser,
    project: &str,
    fp: &str,
) -> Result<Issue, ApiError> {
    readable_projects(state, user)?.require(project)?;
    state
        .store
        .issues()
        .get(project, &Fingerprint(fp.to_owned()))?
        .ok_or_else(|| ApiError::NotFound(format!("no issue {}", issue_id(project, fp))))
}

pub(super) async fn detail(
    State(state): State<SharedState>,
    user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
) -> Result<Json<IssueDetail>, ApiError> {
    blocking(&state, move |state| {
        let issue = find_issue(state, &user, &project, &fp)?;
        let occurrences = latest_occurrences(state, &issue, None, DETAIL_OCCURRENCES)?;
        let to = super::now_ns().max(issue.last_seen_ns + 1);
        let from = to.saturating_sub(24 * Bucket::Hour.width_ns());
        let histogram =
            state
                .store
                .issues()
                .histogram(&project, &issue.fingerprint, Bucket::Hour, from, to)?;
        let mut consequences = state.store.issues().latest_consequences(&issue)?;
        let items = state.read_limits.items;
        let cut = consequences.len() > items;
        consequences.truncate(items);
        let chars = state.read_limits.text_chars;
        let text = |t: &str| omegi_core::flow::clip(t, chars).into_owned();
        for c in &mut consequences {
            c.service = title_line(&c.service);
            c.span_name = title_line(&c.span_name);
            c.status_message = c.status_message.as_deref().map(text);
            c.error_type = c.error_type.as_deref().map(title_line);
            c.message = c.message.as_deref().map(text);
        }
        let (issue, truncated) = IssueView::detail(issue, &state.read_limits);
        Ok(Json(IssueDetail {
            issue,
            consequences,
            truncated: truncated || cut,
            occurrences,
            histogram,
        }))
    })
    .await
}

/// The latest `limit` occurrences (before the occurrence `before`, if
/// given), newest first: read from the newest end, so the cost follows
/// `limit`, not how often the issue occurred.
fn latest_occurrences(
    state: &AppState,
    issue: &Issue,
    before: Option<(u64, u64)>,
    limit: usize,
) -> Result<Vec<OccurrenceView>, ApiError> {
    Ok(state
        .store
        .issues()
        .latest_occurrences(&issue.project, &issue.fingerprint, before, limit)?
        .into_iter()
        .map(OccurrenceView::from)
        .collect())
}

/// Query of the occurrences endpoint.
#[derive(Debug, Deserialize)]
pub(super) struct OccurrenceParams {
    /// At most this many (default 50, at most 1000).
    limit: Option<usize>,
    /// Only occurrences before this one (`<time_ns>-<seq>`): the last one
    /// of the previous page.
    before: Option<String>,
}

/// The most occurrences one answer lists.
const MAX_OCCURRENCES: usize = 1000;

pub(super) async fn occurrences(
    State(state): State<SharedState>,
    user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
    Query(params): Query<OccurrenceParams>,
) -> Result<Json<Vec<OccurrenceView>>, ApiError> {
    let limit = params.limit.unwrap_or(50).min(MAX_OCCURRENCES);
    let before = params.before.as_deref().map(occurrence_id).transpose()?;
    blocking(&state, move |state| {
        let issue = find_issue(state, &user, &project, &fp)?;
        Ok(Json(latest_occurrences(state, &issue, before, limit)?))
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
    user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
    Query(params): Query<FlowParams>,
) -> Result<Json<ErrorFlowView>, ApiError> {
    let width = params.width.unwrap_or(40).clamp(10, 400);
    blocking(&state, move |state| {
        let issue = find_issue(state, &user, &project, &fp)?;
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

/// An occurrence id, `<time_ns>-<seq>`, as its parts.
fn occurrence_id(id: &str) -> Result<(u64, u64), ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "invalid occurrence {id:?}: expected <time_ns>-<seq> from the occurrence list"
        ))
    };
    let (time, seq) = id.split_once('-').ok_or_else(bad)?;
    Ok((
        time.parse().map_err(|_| bad())?,
        seq.parse().map_err(|_| bad())?,
    ))
}

fn find_occurrence(state: &AppState, issue: &Issue, id: &str) -> Result<ErrorRecord, ApiError> {
    let (time, seq) = occurrence_id(id)?;
    state
        .store
        .issues()
        .occurrence(&issue.project, &issue.fingerprint, time, seq)?
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
    let limits = state.read_limits.view();
    let clipped = limits.clip_error(&error);
    let mut view = ErrorFlowView {
        issue_id,
        occurrence,
        flow: None,
        flow_error: None,
        raw_log: None,
        waterfall: None,
        error: clipped.value,
        truncated: clipped.truncated,
    };
    let Some(trace_id) = error.trace_id else {
        view.flow_error = Some("the error was not captured in a trace".into());
        return Ok(view);
    };
    let spans = state.store.traces().spans(project, trace_id)?;
    let trace = match Trace::from_spans(spans) {
        Ok(trace) => trace,
        Err(e) => {
            view.flow_error = Some(format!("trace {trace_id}: {e}"));
            return Ok(view);
        }
    };
    match Flow::for_error(&trace, &error) {
        Ok(flow) => {
            let (flow, cut) = FlowView::within(&flow, &limits);
            view.flow = Some(flow);
            view.truncated |= cut;
        }
        Err(e) => view.flow_error = Some(e.to_string()),
    }
    let raw_log = trace.raw_log_within(&limits);
    let waterfall = trace.waterfall_within(width, &limits);
    view.truncated |= raw_log.truncated || waterfall.truncated;
    view.raw_log = Some(raw_log.text);
    view.waterfall = Some(waterfall.text);
    Ok(view)
}

async fn set_status(
    state: SharedState,
    user: ApiUser,
    project: String,
    fp: String,
    status: IssueStatus,
) -> Result<Json<IssueView>, ApiError> {
    blocking(&state, move |state| {
        readable_projects(state, &user)?.require(&project)?;
        let fingerprint = Fingerprint(fp.clone());
        if state.store.issues().get(&project, &fingerprint)?.is_none() {
            return Err(ApiError::NotFound(format!(
                "no issue {}",
                issue_id(&project, &fp)
            )));
        }
        let issue = state
            .store
            .issues()
            .set_status(&project, &fingerprint, status)?;
        Ok(Json(IssueView::brief(issue, &state.read_limits)))
    })
    .await
}

pub(super) async fn resolve(
    State(state): State<SharedState>,
    user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
) -> Result<Json<IssueView>, ApiError> {
    set_status(state, user, project, fp, IssueStatus::Resolved).await
}

pub(super) async fn ignore(
    State(state): State<SharedState>,
    user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
) -> Result<Json<IssueView>, ApiError> {
    set_status(state, user, project, fp, IssueStatus::Ignored).await
}

pub(super) async fn unresolve(
    State(state): State<SharedState>,
    user: ApiUser,
    Path((project, fp)): Path<(String, String)>,
) -> Result<Json<IssueView>, ApiError> {
    set_status(state, user, project, fp, IssueStatus::Unresolved).await
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
