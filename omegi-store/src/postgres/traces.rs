//! [`Traces`](crate::Traces)' reads on PostgreSQL.

use omegi_core::{SpanId, SpanRecord, TraceId};
use r2d2_postgres::postgres::Row;

use super::ingest::{chunks_of, trace_to_sql};
use super::{database, ns_to_sql, Database};
use crate::codec::decode;
use crate::error::Result;
use crate::keys::check_name;
use crate::settle::SettledRow;
use crate::spans::SummaryRow;
use crate::{TraceQuery, TraceSummary};

/// The spans of a trace by span id, the latest copy of each.
fn merged(
    db: &Database,
    project: &str,
    trace: TraceId,
) -> Result<std::collections::BTreeMap<u64, crate::codec::SSpan>> {
    let rows = db
        .conn()?
        .query(
            "SELECT spans FROM span_chunks WHERE project = $1 AND trace_id = $2 ORDER BY seq",
            &[&project, &trace_to_sql(trace)],
        )
        .map_err(database)?;
    chunks_of(&rows)
}

pub(crate) fn span(
    db: &Database,
    project: &str,
    trace: TraceId,
    span: SpanId,
) -> Result<Option<SpanRecord>> {
    merged(db, project, trace)?
        .remove(&span.0)
        .map(|s| s.into_record("span_chunks"))
        .transpose()
}

pub(crate) fn spans(db: &Database, project: &str, trace: TraceId) -> Result<Vec<SpanRecord>> {
    let mut spans = merged(db, project, trace)?
        .into_values()
        .map(|s| s.into_record("span_chunks"))
        .collect::<Result<Vec<_>>>()?;
    spans.sort_by_key(|s| (s.start_ns, s.span_id));
    Ok(spans)
}

pub(crate) fn get(db: &Database, project: &str, trace: TraceId) -> Result<Option<TraceSummary>> {
    db.conn()?
        .query_opt(
            "SELECT summary FROM traces WHERE project = $1 AND trace_id = $2",
            &[&project, &trace_to_sql(trace)],
        )
        .map_err(database)?
        .map(|row| decode::<SummaryRow>("traces", row.get::<_, &[u8]>(0)).map(|r| r.summary))
        .transpose()
}

pub(crate) fn list(db: &Database, query: &TraceQuery) -> Result<Vec<TraceSummary>> {
    let limit = query.limit.unwrap_or(usize::MAX);
    let to = query.to_ns.unwrap_or(u64::MAX);
    if limit == 0 || query.from_ns >= to || query.projects.is_empty() {
        return Ok(Vec::new());
    }
    for project in &query.projects {
        check_name("project", project)?;
    }
    // Past what a bigint holds: no bound.
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    let from = i64::try_from(query.from_ns).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = db
        .conn()?
        .query(
            "SELECT summary FROM traces
             WHERE project = ANY($1) AND start_ns >= $2 AND start_ns < $3
               AND ($4::text IS NULL OR $4 = ANY(services))
             ORDER BY start_ns DESC, trace_id DESC, project ASC
             LIMIT $5",
            &[&query.projects, &from, &to, &query.service, &limit],
        )
        .map_err(database)?;
    rows.iter()
        .map(|row| decode::<SummaryRow>("traces", row.get::<_, &[u8]>(0)).map(|r| r.summary))
        .collect()
}

pub(crate) fn settled_row(
    db: &Database,
    project: &str,
    trace: TraceId,
) -> Result<Option<SettledRow>> {
    db.conn()?
        .query_opt(
            "SELECT row_data FROM settled WHERE project = $1 AND trace_id = $2",
            &[&project, &trace_to_sql(trace)],
        )
        .map_err(database)?
        .map(|row| decode("settled", row.get::<_, &[u8]>(0)))
        .transpose()
}

/// Reads the settled rows of the traces `$2` (ids as `bytea[]`) of project
/// `$1`: a lateral probe per id, an index lookup whatever the planner
/// believes of the table's size. Its rows go to [`settled_in_order`].
pub(crate) const SETTLED_ROWS_SQL: &str =
    "SELECT k.id, s.row_data FROM unnest($2::bytea[]) AS k(id) CROSS JOIN LATERAL
         (SELECT row_data FROM settled WHERE project = $1 AND trace_id = k.id LIMIT 1) AS s";

/// The rows of [`SETTLED_ROWS_SQL`] for `ids`, in the order of `ids`: a
/// trace named twice gets its row twice.
pub(crate) fn settled_in_order(ids: &[Vec<u8>], rows: &[Row]) -> Result<Vec<Option<SettledRow>>> {
    let mut found: std::collections::BTreeMap<&[u8], SettledRow> = Default::default();
    for row in rows {
        found.insert(row.get(0), decode("settled", row.get::<_, &[u8]>(1))?);
    }
    Ok(ids
        .iter()
        .map(|id| found.get(id.as_slice()).cloned())
        .collect())
}

/// The settled rows of traces, in the order given, in one statement.
pub(crate) fn settled_rows(
    db: &Database,
    project: &str,
    traces: &[TraceId],
) -> Result<Vec<Option<SettledRow>>> {
    if traces.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Vec<u8>> = traces.iter().map(|t| trace_to_sql(*t)).collect();
    let rows = db
        .conn()?
        .query(SETTLED_ROWS_SQL, &[&project, &ids])
        .map_err(database)?;
    settled_in_order(&ids, &rows)
}

/// The time bound of a query, clamped to what the database stores.
pub(crate) fn bound(ns: u64) -> i64 {
    ns_to_sql(ns).unwrap_or(i64::MAX)
}
