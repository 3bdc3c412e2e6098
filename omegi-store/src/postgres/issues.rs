//! [`Issues`](crate::Issues)' reads on PostgreSQL (its one write,
//! `set_status`, is the store's, over [`Staging`](crate::staging::Staging)).

use omegi_core::{Consequence, Fingerprint};
use r2d2_postgres::postgres::Row;

use super::ingest::{bucket_to_sql, id_from_sql, id_to_sql};
use super::traces::bound;
use super::{database, ns_from_sql, Database};
use crate::codec::{decode, SConsequence, SError};
use crate::error::Result;
use crate::issues::{latest_occurrence, occurrence_summary, IssueRow};
use crate::{Bucket, BucketCount, Issue, IssueQuery, IssueSort, Occurrence, OccurrenceSummary};

/// An issue from `(fingerprint, row_data)`.
fn issue_of(project: &str, row: &Row) -> Result<Issue> {
    let fp: &str = row.get(0);
    let data: IssueRow = decode("issues", row.get::<_, &[u8]>(1))?;
    data.into_issue(project, fp)
}

/// An occurrence from `(time_ns, id, error, consequences)`.
fn occurrence_of(row: &Row) -> Result<Occurrence> {
    let seq = id_from_sql(row.get(1));
    let error: SError = decode("occurrences", row.get::<_, &[u8]>(2))?;
    Ok(Occurrence::new(
        error.into_record("occurrences")?,
        seq,
        consequences_of(row.get(3))?,
    ))
}

fn consequences_of(bytes: Option<&[u8]>) -> Result<Vec<Consequence>> {
    match bytes {
        Some(bytes) => {
            let stored: Vec<SConsequence> = decode("occurrences", bytes)?;
            Ok(stored.into_iter().map(SConsequence::into_record).collect())
        }
        None => Ok(Vec::new()),
    }
}

pub(crate) fn get(
    db: &Database,
    project: &str,
    fingerprint: &Fingerprint,
) -> Result<Option<Issue>> {
    db.conn()?
        .query_opt(
            "SELECT fingerprint, row_data FROM issues WHERE project = $1 AND fingerprint = $2",
            &[&project, &fingerprint.0],
        )
        .map_err(database)?
        .map(|row| issue_of(project, &row))
        .transpose()
}

pub(crate) fn list(db: &Database, project: &str, query: &IssueQuery) -> Result<Vec<Issue>> {
    let limit = query.limit.unwrap_or(usize::MAX);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let statuses: Vec<i16> = query.statuses.iter().map(|s| i16::from(s.code())).collect();
    let order = match query.sort {
        IssueSort::LastSeen => "last_seen_ns DESC, fingerprint DESC",
        IssueSort::Count => "count DESC, fingerprint ASC",
    };
    let rows = db
        .conn()?
        .query(
            &format!(
                "SELECT fingerprint, row_data FROM issues
                 WHERE project = $1 AND (cardinality($2::smallint[]) = 0 OR status = ANY($2))
                 ORDER BY {order} LIMIT $3"
            ),
            &[
                &project,
                &statuses,
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )
        .map_err(database)?;
    rows.iter().map(|row| issue_of(project, row)).collect()
}

pub(crate) fn occurrences(
    db: &Database,
    project: &str,
    fingerprint: &Fingerprint,
    from_ns: u64,
    to_ns: u64,
    limit: usize,
) -> Result<Vec<Occurrence>> {
    if from_ns >= to_ns || limit == 0 {
        return Ok(Vec::new());
    }
    let rows = db
        .conn()?
        .query(
            "SELECT time_ns, id, error, consequences FROM occurrences
             WHERE project = $1 AND fingerprint = $2 AND time_ns >= $3 AND time_ns < $4
             ORDER BY time_ns, id LIMIT $5",
            &[
                &project,
                &fingerprint.0,
                &bound(from_ns),
                &bound(to_ns),
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )
        .map_err(database)?;
    rows.iter().map(occurrence_of).collect()
}

pub(crate) fn latest_occurrences(
    db: &Database,
    project: &str,
    fingerprint: &Fingerprint,
    before: Option<(u64, u64)>,
    limit: usize,
) -> Result<Vec<OccurrenceSummary>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Before the occurrence (time, id), or before everything past the end.
    let (time, id) = match before {
        Some((time, seq)) => (bound(time), id_to_sql(seq)),
        None => (i64::MAX, i64::MAX),
    };
    let rows = db
        .conn()?
        .query(
            "SELECT time_ns, id, error FROM occurrences
             WHERE project = $1 AND fingerprint = $2 AND (time_ns, id) < ($3, $4)
             ORDER BY time_ns DESC, id DESC LIMIT $5",
            &[
                &project,
                &fingerprint.0,
                &time,
                &id,
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )
        .map_err(database)?;
    rows.iter()
        .map(|row| {
            occurrence_summary(
                ns_from_sql("occurrences", row.get(0))?,
                id_from_sql(row.get(1)),
                row.get(2),
            )
        })
        .collect()
}

pub(crate) fn occurrence(
    db: &Database,
    project: &str,
    fingerprint: &Fingerprint,
    time_ns: u64,
    seq: u64,
) -> Result<Option<Occurrence>> {
    let Ok(time) = super::ns_to_sql(time_ns) else {
        return Ok(None);
    };
    db.conn()?
        .query_opt(
            "SELECT time_ns, id, error, consequences FROM occurrences
             WHERE project = $1 AND fingerprint = $2 AND time_ns = $3 AND id = $4",
            &[&project, &fingerprint.0, &time, &id_to_sql(seq)],
        )
        .map_err(database)?
        .map(|row| occurrence_of(&row))
        .transpose()
}

pub(crate) fn latest_consequences(db: &Database, issue: &Issue) -> Result<Vec<Consequence>> {
    let o = latest_occurrence(issue)?;
    let Ok(time) = super::ns_to_sql(o.time_ns) else {
        return Ok(Vec::new());
    };
    let row = db
        .conn()?
        .query_opt(
            "SELECT consequences FROM occurrences
             WHERE project = $1 AND fingerprint = $2 AND time_ns = $3 AND id = $4",
            &[&issue.project, &o.fingerprint, &time, &id_to_sql(o.id)],
        )
        .map_err(database)?;
    match row {
        Some(row) => consequences_of(row.get(0)),
        None => Ok(Vec::new()),
    }
}

pub(crate) fn histogram(
    db: &Database,
    project: &str,
    fingerprint: &Fingerprint,
    bucket: Bucket,
    from_ns: u64,
    to_ns: u64,
) -> Result<Vec<BucketCount>> {
    if from_ns >= to_ns {
        return Ok(Vec::new());
    }
    let rows = db
        .conn()?
        .query(
            "SELECT start_ns, n FROM issue_counters
             WHERE project = $1 AND fingerprint = $2 AND bucket = $3
               AND start_ns >= $4 AND start_ns < $5
             ORDER BY start_ns",
            &[
                &project,
                &fingerprint.0,
                &bucket_to_sql(bucket),
                &bound(bucket.start_of(from_ns)),
                &bound(to_ns),
            ],
        )
        .map_err(database)?;
    super::stats::bucket_counts("issue_counters", &rows)
}

pub(crate) fn new_issues(
    db: &Database,
    project: &str,
    from_ns: u64,
    to_ns: u64,
) -> Result<Vec<Issue>> {
    if from_ns >= to_ns {
        return Ok(Vec::new());
    }
    let rows = db
        .conn()?
        .query(
            "SELECT fingerprint, row_data FROM issues
             WHERE project = $1 AND first_seen_ns >= $2 AND first_seen_ns < $3
             ORDER BY first_seen_ns, fingerprint",
            &[&project, &bound(from_ns), &bound(to_ns)],
        )
        .map_err(database)?;
    rows.iter().map(|row| issue_of(project, row)).collect()
}

pub(crate) fn latest_new_issues(
    db: &Database,
    project: &str,
    from_ns: u64,
    to_ns: u64,
    limit: usize,
) -> Result<(Vec<Issue>, u64)> {
    if from_ns >= to_ns {
        return Ok((Vec::new(), 0));
    }
    let mut conn = db.conn()?;
    let (from, to) = (bound(from_ns), bound(to_ns));
    let total: i64 = conn
        .query_one(
            "SELECT count(*) FROM issues
             WHERE project = $1 AND first_seen_ns >= $2 AND first_seen_ns < $3",
            &[&project, &from, &to],
        )
        .map_err(database)?
        .get(0);
    let rows = conn
        .query(
            "SELECT fingerprint, row_data FROM issues
             WHERE project = $1 AND first_seen_ns >= $2 AND first_seen_ns < $3
             ORDER BY first_seen_ns DESC, fingerprint DESC LIMIT $4",
            &[
                &project,
                &from,
                &to,
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )
        .map_err(database)?;
    let mut out = rows
        .iter()
        .map(|row| issue_of(project, row))
        .collect::<Result<Vec<_>>>()?;
    out.reverse();
    Ok((out, u64::try_from(total).unwrap_or(0)))
}
