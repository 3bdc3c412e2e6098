//! Time partitions of spans and occurrences, and retention on PostgreSQL.
//!
//! `span_chunks` (by the latest span start of a chunk) and `occurrences`
//! (by time) are partitioned by range, one partition per UTC day
//! (`span_chunks_d<day>`, `occurrences_d<day>`, `<day>` counted from the
//! Unix epoch). A writer creates the partition of a day the first time it
//! writes data of that day, before its transaction opens, under an advisory
//! lock so that nodes create it once; days far from today (see
//! [`PARTITION_DAYS`]) go to the default partition, so that a client with
//! a wrong clock cannot make thousands of tables.
//!
//! [`Database::purge_before`] then drops the partitions that are wholly
//! older than its cutoff instead of deleting their rows, deletes the rows
//! of the rest that are older (the day the cutoff falls in, and the default
//! partition), and deletes traces, settled traces and their span chunks as
//! the embedded store's retention does. Issues, error counters and traffic
//! statistics are kept; the per-bucket occurrence counters of issues go
//! with their occurrences.

use std::collections::{BTreeMap, BTreeSet};

use r2d2_postgres::postgres::GenericClient;

use super::ingest::{db, lock_key};
#[cfg(doc)]
use super::PgConfig;
use super::{ns_from_sql, ns_to_sql, Database};
use crate::codec::decode;
use crate::error::Result;
use crate::issues::IssueCounts;
use crate::spans::SummaryRow;
use crate::{DiskUsage, RetentionReport};

/// One day in ns.
const DAY_NS: u64 = 24 * 3600 * 1_000_000_000;

/// Days before and after today that get partitions of their own; data of
/// other days goes to the default partition.
pub const PARTITION_DAYS: (u64, u64) = (60, 2);

/// Rows deleted per transaction by a purge.
const BATCH: i64 = 1_000;

/// A key for `pg_advisory_xact_lock` taken while partitions are created
/// or dropped.
const PARTITION_LOCK: i64 = 0x6f6d_6567_6970;

/// The partitioned tables.
const PARTITIONED: [&str; 2] = ["span_chunks", "occurrences"];

fn partition_name(table: &str, day: u64) -> String {
    format!("{table}_d{day}")
}

impl Database {
    /// Makes sure the days of `times` (ns) have their partitions, for the
    /// days near today; call before a transaction that writes data of
    /// those times.
    pub(crate) fn prepare_days(&self, times: impl IntoIterator<Item = u64>) -> Result<()> {
        let today = crate::now_ns() / DAY_NS;
        let (before, after) = PARTITION_DAYS;
        let wanted: BTreeSet<u64> = times
            .into_iter()
            .map(|t| t / DAY_NS)
            .filter(|d| *d + before >= today && *d <= today + after)
            .collect();
        let missing: Vec<u64> = {
            let known = self.known_days();
            wanted.into_iter().filter(|d| !known.contains(d)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .map_err(db)?;
        for &day in &missing {
            let from = ns_to_sql(day * DAY_NS)?;
            let to = ns_to_sql((day + 1) * DAY_NS)?;
            for table in PARTITIONED {
                let name = partition_name(table, day);
                // Rows of the day in the default partition (written by a
                // node whose clock put the day out of its range) keep the
                // day there: the partition is not created.
                let sql = format!(
                    "SAVEPOINT p;
                     CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table}
                         FOR VALUES FROM ({from}) TO ({to});
                     RELEASE SAVEPOINT p;"
                );
                if tx.batch_execute(&sql).is_err() {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT p").map_err(db)?;
                }
            }
        }
        tx.commit().map_err(db)?;
        self.known_days().extend(missing);
        Ok(())
    }

    fn known_days(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.data
            .days
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The database's size on disk (`pg_database_size`).
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let bytes: i64 = self
            .conn()?
            .query_one("SELECT pg_database_size(current_database())", &[])
            .map_err(db)?
            .get(0);
        Ok(DiskUsage {
            engine_bytes: u64::try_from(bytes).unwrap_or(0),
            ..DiskUsage::default()
        })
    }

    /// Deletes spans and occurrences older than [`PgConfig::retention`]
    /// as of `now_ns` (see [`Database::purge_before`]). Does nothing (but
    /// measure) without a configured retention.
    pub fn run_retention(&self, now_ns: u64) -> Result<RetentionReport> {
        let cutoff = match self.data.retention {
            Some(age) => now_ns.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)),
            None => 0,
        };
        self.purge_before(cutoff)
    }

    /// Deletes traces started before `cutoff_ns` with their spans, what is
    /// known of settled traces started before it, and occurrences before
    /// it, as [`Store::purge_before`](crate::Store::purge_before) does:
    /// issues, error counters and traffic statistics are kept. The days of
    /// spans and occurrences wholly before the cutoff go by dropping their
    /// partitions; rows of other days, in batches, one transaction each.
    /// Safe to run on several nodes at once, and with ingests running.
    pub fn purge_before(&self, cutoff_ns: u64) -> Result<RetentionReport> {
        let mut report = RetentionReport {
            cutoff_ns,
            before: self.disk_usage()?,
            ..RetentionReport::default()
        };
        let cutoff = ns_to_sql(cutoff_ns).unwrap_or(i64::MAX);
        let (traces, spans) = self.purge_traces(cutoff)?;
        report.traces = traces;
        report.spans = spans;
        self.purge_settled(cutoff)?;
        // Whole days before the day of the cutoff.
        let first_day = cutoff_ns / DAY_NS;
        report.occurrences += self.drop_days(first_day, cutoff)?;
        // The rest of the occurrences: the day of the cutoff and the
        // default partition.
        report.occurrences += self.purge_occurrences(cutoff)?;
        self.conn()?
            .execute("DELETE FROM span_chunks WHERE latest_ns < $1", &[&cutoff])
            .map_err(db)?;
        report.after = self.disk_usage()?;
        Ok(report)
    }

    /// Deletes traces started before `cutoff` with their chunks, in
    /// batches, each trace under its lock; how many traces and spans.
    fn purge_traces(&self, cutoff: i64) -> Result<(u64, u64)> {
        let (mut traces, mut spans) = (0, 0);
        loop {
            let deleted = self.write(|w| {
                let tx = w.client();
                let found = tx
                    .query(
                        "SELECT project, trace_id FROM traces WHERE start_ns < $1 LIMIT $2",
                        &[&cutoff, &BATCH],
                    )
                    .map_err(db)?;
                if found.is_empty() {
                    return Ok(None);
                }
                let (projects, ids): (Vec<String>, Vec<Vec<u8>>) =
                    found.iter().map(|r| (r.get(0), r.get(1))).unzip();
                lock_all(tx, "trace", &projects, &ids)?;
                let gone = tx
                    .query(
                        "DELETE FROM traces t USING unnest($1::text[], $2::bytea[]) AS k(p, id)
                         WHERE t.project = k.p AND t.trace_id = k.id AND t.start_ns < $3
                         RETURNING t.project, t.trace_id, t.summary",
                        &[&projects, &ids, &cutoff],
                    )
                    .map_err(db)?;
                let mut span_count = 0;
                let (mut gone_projects, mut gone_ids) = (Vec::new(), Vec::new());
                for row in &gone {
                    let summary: SummaryRow = decode("traces", row.get::<_, &[u8]>(2))?;
                    span_count += summary.summary.span_count;
                    gone_projects.push(row.get::<_, String>(0));
                    gone_ids.push(row.get::<_, Vec<u8>>(1));
                }
                // Their chunks, wherever they are: a trace id sent again
                // later starts afresh.
                tx.execute(
                    "DELETE FROM span_chunks c USING unnest($1::text[], $2::bytea[]) AS k(p, id)
                     WHERE c.project = k.p AND c.trace_id = k.id",
                    &[&gone_projects, &gone_ids],
                )
                .map_err(db)?;
                Ok(Some((gone.len() as u64, span_count)))
            })?;
            match deleted {
                Some((t, s)) => {
                    traces += t;
                    spans += s;
                }
                None => return Ok((traces, spans)),
            }
        }
    }

    /// Deletes what is known of settled traces started before `cutoff`.
    fn purge_settled(&self, cutoff: i64) -> Result<()> {
        loop {
            let more = self.write(|w| {
                let tx = w.client();
                let found = tx
                    .query(
                        "SELECT project, trace_id FROM settled WHERE start_ns < $1 LIMIT $2",
                        &[&cutoff, &BATCH],
                    )
                    .map_err(db)?;
                if found.is_empty() {
                    return Ok(false);
                }
                let (projects, ids): (Vec<String>, Vec<Vec<u8>>) =
                    found.iter().map(|r| (r.get(0), r.get(1))).unzip();
                lock_all(tx, "trace", &projects, &ids)?;
                tx.execute(
                    "DELETE FROM settled s USING unnest($1::text[], $2::bytea[]) AS k(p, id)
                     WHERE s.project = k.p AND s.trace_id = k.id AND s.start_ns < $3",
                    &[&projects, &ids, &cutoff],
                )
                .map_err(db)?;
                Ok(true)
            })?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Drops the partitions of days before `first_day` (the occurrences'
    /// and the span chunks'), deletes the occurrences of those days from
    /// the default partition, and the issue counters of buckets before the
    /// day (every bucket width divides a day, so all of their occurrences
    /// go); how many occurrences went. One transaction.
    fn drop_days(&self, first_day: u64, cutoff: i64) -> Result<u64> {
        let day_start = ns_to_sql(first_day * DAY_NS).unwrap_or(i64::MAX);
        self.write(|w| {
            let tx = w.client();
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
                .map_err(db)?;
            let mut occurrences = 0u64;
            for table in PARTITIONED {
                let partitions = tx
                    .query(
                        "SELECT c.relname::text FROM pg_inherits i
                         JOIN pg_class c ON c.oid = i.inhrelid
                         JOIN pg_class p ON p.oid = i.inhparent
                         WHERE p.relname = $1",
                        &[&table],
                    )
                    .map_err(db)?;
                for row in partitions {
                    let name: String = row.get(0);
                    let Some(day) = name
                        .strip_prefix(table)
                        .and_then(|rest| rest.strip_prefix("_d"))
                        .and_then(|day| day.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    // Span chunks go once the latest start in them is
                    // before the cutoff; occurrences by whole days, the
                    // rest row by row (their counters are lowered).
                    let gone = match table {
                        "span_chunks" => ns_to_sql((day + 1) * DAY_NS)? <= cutoff,
                        _ => day < first_day,
                    };
                    if !gone {
                        continue;
                    }
                    if table == "occurrences" {
                        let n: i64 = tx
                            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                            .map_err(db)?
                            .get(0);
                        occurrences += u64::try_from(n).unwrap_or(0);
                    }
                    tx.batch_execute(&format!("DROP TABLE {name}"))
                        .map_err(db)?;
                }
            }
            occurrences += tx
                .execute("DELETE FROM occurrences WHERE time_ns < $1", &[&day_start])
                .map_err(db)?;
            tx.execute(
                "DELETE FROM issue_counters WHERE start_ns < $1",
                &[&day_start],
            )
            .map_err(db)?;
            Ok(occurrences)
        })
        .inspect(|_| {
            // Dropped days are created again if data of them comes back.
            self.known_days().retain(|d| *d >= first_day);
        })
    }

    /// Deletes the occurrences left before `cutoff` row by row, lowering
    /// the counters of their issues as the embedded store does; how many.
    fn purge_occurrences(&self, cutoff: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.write(|w| {
                let gone = w
                    .client()
                    .query(
                        "DELETE FROM occurrences WHERE (tableoid, ctid) IN (
                             SELECT tableoid, ctid FROM occurrences WHERE time_ns < $1 LIMIT $2)
                         RETURNING project, fingerprint, time_ns",
                        &[&cutoff, &BATCH],
                    )
                    .map_err(db)?;
                let mut counts: BTreeMap<String, IssueCounts> = BTreeMap::new();
                for row in &gone {
                    let fp: &str = row.get(1);
                    let time = ns_from_sql("occurrences", row.get(2))?;
                    counts.entry(row.get(0)).or_default().add(fp, time, -1);
                }
                for (project, counts) in counts {
                    counts.stage(w, &project)?;
                }
                Ok(gone.len() as u64)
            })?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }
}

/// Takes the locks of traces (`ids` are stored trace ids) in key order.
fn lock_all(
    tx: &mut impl GenericClient,
    kind: &str,
    projects: &[String],
    ids: &[Vec<u8>],
) -> Result<()> {
    let mut keys: Vec<i64> = projects
        .iter()
        .zip(ids)
        .map(|(p, id)| lock_key(kind, p, id))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
        &[&keys],
    )
    .map_err(db)?;
    Ok(())
}
