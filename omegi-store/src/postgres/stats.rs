//! [`Stats`](crate::Stats)' reads on PostgreSQL.

use std::collections::BTreeMap;

use omegi_core::flow::ServiceEdge;
use r2d2_postgres::postgres::Row;

use super::ingest::bucket_to_sql;
use super::traces::bound;
use super::{database, ns_from_sql, Database};
use crate::codec::{attrs_out, decode, SAttribute};
use crate::error::{Error, Result};
use crate::issues::IssueStatus;
use crate::stats::{summary_of, Totals};
use crate::traffic::{route_stats_of, RouteCounts};
use crate::{Bucket, BucketCount, RouteStats, SamplingTotals, ServiceCount, ServiceInfo, Summary};

/// A count stored as `bigint`.
fn count(table: &'static str, n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| Error::corrupt(table, format!("negative count {n}")))
}

/// `(start_ns, n)` rows as bucket counts.
pub(crate) fn bucket_counts(table: &'static str, rows: &[Row]) -> Result<Vec<BucketCount>> {
    rows.iter()
        .map(|row| {
            Ok(BucketCount {
                start_ns: ns_from_sql(table, row.get(0))?,
                count: count(table, row.get(1))?,
            })
        })
        .collect()
}

pub(crate) fn error_counts(
    db: &Database,
    project: &str,
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
            "SELECT start_ns, n FROM error_counters
             WHERE project = $1 AND bucket = $2 AND start_ns >= $3 AND start_ns < $4
             ORDER BY start_ns",
            &[
                &project,
                &bucket_to_sql(bucket),
                &bound(from_ns),
                &bound(to_ns),
            ],
        )
        .map_err(database)?;
    bucket_counts("error_counters", &rows)
}

pub(crate) fn service_error_counts(
    db: &Database,
    project: &str,
    bucket: Bucket,
    from_ns: u64,
    to_ns: u64,
) -> Result<Vec<ServiceCount>> {
    if from_ns >= to_ns {
        return Ok(Vec::new());
    }
    // Only the services known, as on the embedded store.
    let rows = db
        .conn()?
        .query(
            "SELECT c.service, sum(c.n)::bigint AS total FROM service_error_counters c
             JOIN services s ON s.project = c.project AND s.service = c.service
             WHERE c.project = $1 AND c.bucket = $2 AND c.start_ns >= $3 AND c.start_ns < $4
             GROUP BY c.service
             HAVING sum(c.n) > 0
             ORDER BY total DESC, c.service ASC",
            &[
                &project,
                &bucket_to_sql(bucket),
                &bound(from_ns),
                &bound(to_ns),
            ],
        )
        .map_err(database)?;
    rows.iter()
        .map(|row| {
            Ok(ServiceCount {
                service: row.get(0),
                count: count("service_error_counters", row.get(1))?,
            })
        })
        .collect()
}

pub(crate) fn services(db: &Database, project: &str) -> Result<Vec<ServiceInfo>> {
    let rows = db
        .conn()?
        .query(
            "SELECT service, attributes, last_seen_ns FROM services
             WHERE project = $1 ORDER BY service",
            &[&project],
        )
        .map_err(database)?;
    rows.iter()
        .map(|row| {
            let attributes: Vec<SAttribute> = decode("services", row.get::<_, &[u8]>(1))?;
            Ok(ServiceInfo {
                service: row.get(0),
                attributes: attrs_out(attributes),
                last_seen_ns: ns_from_sql("services", row.get(2))?,
            })
        })
        .collect()
}

pub(crate) fn summary(db: &Database) -> Result<Summary> {
    let projects = db.accounts().projects()?;
    let mut conn = db.conn()?;
    let mut totals = Vec::new();
    for row in conn
        .query("SELECT project, spans, traces, errors FROM totals", &[])
        .map_err(database)?
    {
        totals.push((
            row.get::<_, String>(0),
            Totals {
                spans: count("totals", row.get(1))?,
                traces: count("totals", row.get(2))?,
                errors: count("totals", row.get(3))?,
            },
        ));
    }
    let mut groups = BTreeMap::new();
    for row in conn
        .query(
            "SELECT project, status, count(*), max(last_seen_ns) FROM issues
             GROUP BY project, status",
            &[],
        )
        .map_err(database)?
    {
        let status = u8::try_from(row.get::<_, i16>(1))
            .map_err(|_| Error::corrupt("issues", "a status out of range"))
            .and_then(IssueStatus::from_code)?;
        groups.insert(
            (row.get::<_, String>(0), status),
            (
                count("issues", row.get(2))?,
                ns_from_sql("issues", row.get(3))?,
            ),
        );
    }
    Ok(summary_of(projects, totals, groups))
}

pub(crate) fn route_stats(
    db: &Database,
    project: &str,
    bucket: Bucket,
    from_ns: u64,
    to_ns: u64,
) -> Result<Vec<RouteStats>> {
    let mut sums: BTreeMap<(String, String), RouteCounts> = BTreeMap::new();
    if from_ns < to_ns {
        let rows = db
            .conn()?
            .query(
                "SELECT service, route, counts FROM traffic_routes
                 WHERE project = $1 AND bucket = $2 AND start_ns >= $3 AND start_ns < $4",
                &[
                    &project,
                    &bucket_to_sql(bucket),
                    &bound(from_ns),
                    &bound(to_ns),
                ],
            )
            .map_err(database)?;
        for row in rows {
            let counts: RouteCounts = decode("traffic_routes", row.get::<_, &[u8]>(2))?;
            sums.entry((row.get(0), row.get(1)))
                .or_default()
                .add(&counts);
        }
    }
    Ok(route_stats_of(sums))
}

pub(crate) fn service_edges(
    db: &Database,
    project: &str,
    bucket: Bucket,
    from_ns: u64,
    to_ns: u64,
) -> Result<Vec<ServiceEdge>> {
    if from_ns >= to_ns {
        return Ok(Vec::new());
    }
    let rows = db
        .conn()?
        .query(
            "SELECT caller, callee, sum(calls)::bigint, sum(errors)::bigint FROM traffic_edges
             WHERE project = $1 AND bucket = $2 AND start_ns >= $3 AND start_ns < $4
             GROUP BY caller, callee ORDER BY caller, callee",
            &[
                &project,
                &bucket_to_sql(bucket),
                &bound(from_ns),
                &bound(to_ns),
            ],
        )
        .map_err(database)?;
    rows.iter()
        .map(|row| {
            Ok(ServiceEdge {
                caller: row.get(0),
                callee: row.get(1),
                calls: count("traffic_edges", row.get(2))?,
                errors: count("traffic_edges", row.get(3))?,
            })
        })
        .collect()
}

pub(crate) fn sampling_totals(db: &Database, project: &str) -> Result<SamplingTotals> {
    match db
        .conn()?
        .query_opt(
            "SELECT totals FROM sampling_totals WHERE project = $1",
            &[&project],
        )
        .map_err(database)?
    {
        Some(row) => decode("sampling_totals", row.get::<_, &[u8]>(0)),
        None => Ok(SamplingTotals::default()),
    }
}
