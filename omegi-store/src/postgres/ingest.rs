//! The data path's writes on PostgreSQL: [`Staging`] over one database
//! transaction, and the retry of a transaction that the database chose as
//! the victim of a deadlock.
//!
//! The rules are the store's (see the crate's `staging` module); this file
//! only maps their rows to the tables of migration 3. Rows that a rule
//! reads and rewrites are read under transaction-scoped advisory locks
//! (one per trace, issue, route list), taken in key order before the read,
//! so that nodes ingesting at once serialize on what they share and on
//! nothing else; counters are raised with atomic upserts.
//!
//! The cost of an ingest is per statement, not per row: what a batch reads
//! (summaries, settled rows) is read with one statement per kind, and what
//! it writes (span chunks, summaries, settled rows, counters, traffic) is
//! written with one `unnest` statement per kind (rows in key order, so
//! that two nodes lock shared rows in the same order), so that a batch of
//! settled traces takes a few dozen round trips however many traces it
//! holds. Rows are looked up by key one by one inside the statement (a
//! lateral join on the primary key), so that a lookup stays an index probe
//! whatever the planner believes of the table's size.

use std::collections::{BTreeMap, HashMap};

use omegi_core::{Consequence, SpanRecord, TraceId};
use r2d2_postgres::postgres::types::ToSql;
use r2d2_postgres::postgres::{error::SqlState, Error as PgError, Row, Statement, Transaction};

use super::{database, ns_to_sql, traces, Database};
use crate::codec::{decode, encode, SAttribute, SConsequence, SError, SSpan};
use crate::error::{Error, Result};
use crate::issues::{IssueRow, OccurrenceRef};
use crate::settle::SettledRow;
use crate::spans::{encode_chunk, ChunkRef, ChunkRow, SummaryRow};
use crate::staging::{ErrorCounts, Staging, TotalsDelta};
use crate::stats::Bucket;
use crate::traffic::{RouteCounts, SamplingTotals};

/// How many times a transaction the database broke off (a deadlock, a
/// serialization failure) is run again before its error is returned.
const ATTEMPTS: usize = 8;

/// A trace id as stored: 16 bytes, big-endian, so that byte order is id
/// order.
pub(crate) fn trace_to_sql(trace: TraceId) -> Vec<u8> {
    trace.0.to_be_bytes().to_vec()
}

/// An occurrence id as stored: its top bit flipped, so that `bigint`
/// order is `u64` order.
pub(crate) fn id_to_sql(id: u64) -> i64 {
    (id ^ (1 << 63)) as i64
}

/// A stored occurrence id.
pub(crate) fn id_from_sql(id: i64) -> u64 {
    (id as u64) ^ (1 << 63)
}

/// A bucket width as stored (PostgreSQL's one-byte `"char"`).
pub(crate) fn bucket_to_sql(bucket: Bucket) -> i8 {
    bucket.code() as i8
}

/// The key of an advisory lock: the first 8 bytes of the SHA-256 of what
/// it locks.
pub(crate) fn lock_key(kind: &str, project: &str, key: &[u8]) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [kind.as_bytes(), project.as_bytes(), key] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let hash = h.finalize();
    let mut k = [0u8; 8];
    k.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(k)
}

impl Database {
    /// Runs `f` in one transaction and commits it; runs it again, in a new
    /// transaction, when the database broke the transaction off to resolve
    /// a deadlock or a serialization failure (the ingests are idempotent,
    /// and nothing of the broken one remains).
    pub(crate) fn write<T>(&self, mut f: impl FnMut(&mut PgTx<'_>) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.conn()?;
            RETRY.with(|r| r.set(false));
            let tx = conn.transaction().map_err(db)?;
            let mut w = PgTx {
                tx,
                statements: HashMap::new(),
            };
            let outcome = f(&mut w).and_then(|value| {
                let PgTx { tx, .. } = w;
                tx.commit().map_err(db)?;
                Ok(value)
            });
            let again = RETRY.with(|r| r.replace(false));
            match outcome {
                Err(_) if again && attempt < ATTEMPTS => continue,
                outcome => return outcome,
            }
        }
    }
}

thread_local! {
    /// Whether the last failure of this thread's transaction asks for a
    /// retry.
    static RETRY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn retryable(e: &r2d2_postgres::postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// The most bytes of a text that is part of a key (a service, a route, a
/// fingerprint): what a B-tree index entry of PostgreSQL holds with room
/// to spare. The embedded store takes up to 65535; longer texts are
/// refused here with the same error, before the database would refuse
/// them with its own.
const KEY_BYTES: usize = 2000;

/// A list of texts as PostgreSQL's text form of an array (`{"a","b"}`):
/// every element quoted, with `"` and `\` escaped, so that any text
/// (commas, braces, spaces, the word NULL) stays one element as it was.
fn array_literal(items: &[String]) -> String {
    let mut out = String::with_capacity(2 + items.iter().map(|i| i.len() + 3).sum::<usize>());
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Refuses a text too long to be part of a key.
fn key_text(what: &'static str, text: &str) -> Result<()> {
    if text.len() <= KEY_BYTES {
        return Ok(());
    }
    Err(Error::InvalidName {
        what,
        name: text.chars().take(64).collect(),
        reason: if text.len() > usize::from(u16::MAX) {
            "longer than 65535 bytes"
        } else {
            "longer than 2000 bytes, the most a database key holds"
        },
    })
}

/// One transaction of the data path.
pub(crate) struct PgTx<'c> {
    tx: Transaction<'c>,
    /// Statements prepared in this transaction, by their text: one that
    /// runs for every trace of a batch is parsed and planned once.
    statements: HashMap<String, Statement>,
}

/// Maps a database error, noting whether the transaction should be run
/// again.
pub(crate) fn db(e: r2d2_postgres::postgres::Error) -> Error {
    if retryable(&e) {
        RETRY.with(|r| r.set(true));
    }
    database(e)
}

impl<'c> PgTx<'c> {
    /// The transaction, for statements of its own.
    pub(crate) fn client(&mut self) -> &mut Transaction<'c> {
        &mut self.tx
    }

    /// `sql`, prepared the first time this transaction runs it.
    fn statement(&mut self, sql: &str) -> Result<Statement, PgError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn cached_execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgError> {
        let statement = self.statement(sql)?;
        self.tx.execute(&statement, params)
    }

    fn cached_query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError> {
        let statement = self.statement(sql)?;
        self.tx.query(&statement, params)
    }

    fn cached_query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, PgError> {
        let statement = self.statement(sql)?;
        self.tx.query_one(&statement, params)
    }

    fn cached_query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, PgError> {
        let statement = self.statement(sql)?;
        self.tx.query_opt(&statement, params)
    }

    fn lock(&mut self, mut keys: Vec<i64>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        keys.sort_unstable();
        keys.dedup();
        self.cached_execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
            &[&keys],
        )
        .map_err(db)?;
        Ok(())
    }

    /// Adds `delta` to the counter `n` of the row of `table` whose key
    /// `columns` have `values`: an upsert when it grows; when it shrinks,
    /// an update, and the row goes when it reaches zero.
    fn add_counter(
        &mut self,
        table: &str,
        columns: &[&str],
        values: &[&(dyn r2d2_postgres::postgres::types::ToSql + Sync)],
        delta: i64,
    ) -> Result<()> {
        if delta == 0 {
            return Ok(());
        }
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let n = columns.len() + 1;
        let mut params: Vec<&(dyn r2d2_postgres::postgres::types::ToSql + Sync)> = values.to_vec();
        params.push(&delta);
        if delta > 0 {
            let sql = format!(
                "INSERT INTO {table} ({cols}, n) VALUES ({ph}, ${n})
                 ON CONFLICT ({cols}) DO UPDATE SET n = {table}.n + excluded.n",
                cols = columns.join(", "),
                ph = placeholders.join(", "),
            );
            self.cached_execute(&sql, &params).map_err(db)?;
        } else {
            let cond: Vec<String> = columns
                .iter()
                .zip(&placeholders)
                .map(|(c, p)| format!("{c} = {p}"))
                .collect();
            let cond = cond.join(" AND ");
            let update = format!("UPDATE {table} SET n = greatest(n + ${n}, 0) WHERE {cond}");
            self.cached_execute(&update, &params).map_err(db)?;
            let delete = format!("DELETE FROM {table} WHERE {cond} AND n = 0");
            self.cached_execute(&delete, &params[..columns.len()])
                .map_err(db)?;
        }
        Ok(())
    }
}

impl Staging for PgTx<'_> {
    fn ensure_project(&mut self, project: &str) -> Result<()> {
        self.cached_execute(
            "INSERT INTO projects (id, name, created_ns) VALUES ($1, $1, $2)
                 ON CONFLICT (id) DO NOTHING",
            &[&project, &ns_to_sql(crate::now_ns())?],
        )
        .map_err(db)?;
        Ok(())
    }

    fn lock_traces(&mut self, project: &str, traces: &[TraceId]) -> Result<()> {
        let keys = traces
            .iter()
            .map(|t| lock_key("trace", project, &t.0.to_be_bytes()))
            .collect();
        self.lock(keys)
    }

    fn lock_issues(&mut self, project: &str, fingerprints: &[&str]) -> Result<()> {
        let keys = fingerprints
            .iter()
            .map(|fp| lock_key("issue", project, fp.as_bytes()))
            .collect();
        self.lock(keys)
    }

    fn lock_routes(&mut self, project: &str, service: &str) -> Result<()> {
        self.lock(vec![lock_key("routes", project, service.as_bytes())])
    }

    fn summary_rows(
        &mut self,
        project: &str,
        traces: &[TraceId],
    ) -> Result<Vec<Option<SummaryRow>>> {
        let ids: Vec<Vec<u8>> = traces.iter().map(|t| trace_to_sql(*t)).collect();
        let rows = self
            .cached_query(
                "SELECT k.id, t.summary FROM unnest($2::bytea[]) AS k(id) CROSS JOIN LATERAL
                     (SELECT summary FROM traces WHERE project = $1 AND trace_id = k.id LIMIT 1) AS t",
                &[&project, &ids],
            )
            .map_err(db)?;
        let mut found: BTreeMap<&[u8], SummaryRow> = BTreeMap::new();
        for row in &rows {
            found.insert(row.get(0), decode("traces", row.get::<_, &[u8]>(1))?);
        }
        Ok(ids.iter().map(|id| found.remove(id.as_slice())).collect())
    }

    fn stored_spans(
        &mut self,
        project: &str,
        trace: TraceId,
        _row: &SummaryRow,
    ) -> Result<BTreeMap<u64, SSpan>> {
        let rows = self
            .cached_query(
                "SELECT spans FROM span_chunks WHERE project = $1 AND trace_id = $2 ORDER BY seq",
                &[&project, &trace_to_sql(trace)],
            )
            .map_err(db)?;
        chunks_of(&rows)
    }

    fn append_spans(
        &mut self,
        project: &str,
        groups: &[(TraceId, Vec<&SpanRecord>)],
    ) -> Result<Vec<Option<ChunkRef>>> {
        let mut ids = Vec::with_capacity(groups.len());
        let mut latest = Vec::with_capacity(groups.len());
        let mut chunks = Vec::with_capacity(groups.len());
        for (trace, spans) in groups {
            ids.push(trace_to_sql(*trace));
            latest.push(ns_to_sql(
                spans.iter().map(|s| s.start_ns).max().unwrap_or(0),
            )?);
            chunks.push(encode_chunk(spans)?);
        }
        self.cached_execute(
            "INSERT INTO span_chunks (project, trace_id, latest_ns, spans)
                 SELECT $1, * FROM unnest($2::bytea[], $3::bigint[], $4::bytea[])",
            &[&project, &ids, &latest, &chunks],
        )
        .map_err(db)?;
        Ok(vec![None; groups.len()])
    }

    fn put_summary_rows(
        &mut self,
        project: &str,
        rows: &[(TraceId, Option<SummaryRow>, SummaryRow)],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let (mut ids, mut starts, mut services, mut data) = (vec![], vec![], vec![], vec![]);
        for (trace, _, row) in rows {
            ids.push(trace_to_sql(*trace));
            starts.push(ns_to_sql(row.summary.start_ns)?);
            services.push(array_literal(&row.summary.services));
            data.push(encode(row)?);
        }
        // One statement whatever the batch's size (a `VALUES` list would
        // be parsed and planned again for every batch); one row per trace,
        // in trace order.
        self.cached_execute(
            "INSERT INTO traces (project, trace_id, start_ns, services, summary)
                 SELECT $1, t, s, v::text[], d
                     FROM unnest($2::bytea[], $3::bigint[], $4::text[], $5::bytea[]) AS u(t, s, v, d)
                 ON CONFLICT (project, trace_id) DO UPDATE SET start_ns = excluded.start_ns,
                     services = excluded.services, summary = excluded.summary",
            &[&project, &ids, &starts, &services, &data],
        )
        .map_err(db)?;
        Ok(())
    }

    fn settled_rows(
        &mut self,
        project: &str,
        traces: &[TraceId],
    ) -> Result<Vec<Option<SettledRow>>> {
        if traces.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Vec<u8>> = traces.iter().map(|t| trace_to_sql(*t)).collect();
        let rows = self
            .cached_query(traces::SETTLED_ROWS_SQL, &[&project, &ids])
            .map_err(db)?;
        traces::settled_in_order(&ids, &rows)
    }

    fn put_settled_rows(
        &mut self,
        project: &str,
        rows: &[(TraceId, Option<u64>, &SettledRow)],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let (mut ids, mut starts, mut data) = (vec![], vec![], vec![]);
        for (trace, _, row) in rows {
            ids.push(trace_to_sql(*trace));
            starts.push(ns_to_sql(row.start_ns())?);
            data.push(encode(row)?);
        }
        // One row per trace (the rows come from a map), so no row is
        // written twice by the statement.
        self.cached_execute(
            "INSERT INTO settled (project, trace_id, start_ns, row_data)
                 SELECT $1, * FROM unnest($2::bytea[], $3::bigint[], $4::bytea[])
                 ON CONFLICT (project, trace_id) DO UPDATE SET start_ns = excluded.start_ns,
                     row_data = excluded.row_data",
            &[&project, &ids, &starts, &data],
        )
        .map_err(db)?;
        Ok(())
    }

    fn insert_occurrence(
        &mut self,
        project: &str,
        key: &OccurrenceRef,
        error: &SError,
    ) -> Result<bool> {
        key_text("fingerprint", &key.fingerprint)?;
        let inserted = self
            .cached_execute(
                "INSERT INTO occurrences (project, fingerprint, time_ns, id, error)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &project,
                    &key.fingerprint,
                    &ns_to_sql(key.time_ns)?,
                    &id_to_sql(key.id),
                    &encode(error)?,
                ],
            )
            .map_err(db)?;
        Ok(inserted == 1)
    }

    fn take_occurrence(&mut self, project: &str, key: &OccurrenceRef) -> Result<Option<SError>> {
        self.cached_query_opt(
            "DELETE FROM occurrences
                 WHERE project = $1 AND fingerprint = $2 AND time_ns = $3 AND id = $4
                 RETURNING error",
            &[
                &project,
                &key.fingerprint,
                &ns_to_sql(key.time_ns)?,
                &id_to_sql(key.id),
            ],
        )
        .map_err(db)?
        .map(|row| decode("occurrences", row.get::<_, &[u8]>(0)))
        .transpose()
    }

    fn put_consequences(
        &mut self,
        project: &str,
        key: &OccurrenceRef,
        consequences: &[Consequence],
    ) -> Result<()> {
        let stored: Option<Vec<u8>> = if consequences.is_empty() {
            None
        } else {
            let stored: Vec<SConsequence> =
                consequences.iter().map(SConsequence::from_record).collect();
            Some(encode(&stored)?)
        };
        self.cached_execute(
            "UPDATE occurrences SET consequences = $5
                 WHERE project = $1 AND fingerprint = $2 AND time_ns = $3 AND id = $4",
            &[
                &project,
                &key.fingerprint,
                &ns_to_sql(key.time_ns)?,
                &id_to_sql(key.id),
                &stored,
            ],
        )
        .map_err(db)?;
        Ok(())
    }

    fn issue_row(&mut self, project: &str, fingerprint: &str) -> Result<Option<IssueRow>> {
        self.cached_query_opt(
            "SELECT row_data FROM issues WHERE project = $1 AND fingerprint = $2",
            &[&project, &fingerprint],
        )
        .map_err(db)?
        .map(|row| decode("issues", row.get::<_, &[u8]>(0)))
        .transpose()
    }

    fn put_issue_row(
        &mut self,
        project: &str,
        fingerprint: &str,
        _old: Option<&IssueRow>,
        row: &IssueRow,
    ) -> Result<()> {
        put_issue(&mut self.tx, project, fingerprint, row).map_err(|e| match e {
            IssueWrite::Db(e) => db(e),
            IssueWrite::Other(e) => e,
        })
    }

    fn remove_issue(&mut self, project: &str, fingerprint: &str, _old: &IssueRow) -> Result<()> {
        self.cached_execute(
            "DELETE FROM issues WHERE project = $1 AND fingerprint = $2",
            &[&project, &fingerprint],
        )
        .map_err(db)?;
        Ok(())
    }

    fn add_issue_counts(
        &mut self,
        project: &str,
        counts: &BTreeMap<(String, Bucket, u64), i64>,
    ) -> Result<()> {
        let (mut fps, mut buckets, mut starts, mut ns) = (vec![], vec![], vec![], vec![]);
        for ((fp, bucket, start), delta) in counts {
            if *delta > 0 {
                key_text("fingerprint", fp)?;
                fps.push(fp.as_str());
                buckets.push(bucket_to_sql(*bucket));
                starts.push(ns_to_sql(*start)?);
                ns.push(*delta);
            } else {
                self.add_counter(
                    "issue_counters",
                    &["project", "fingerprint", "bucket", "start_ns"],
                    &[&project, fp, &bucket_to_sql(*bucket), &ns_to_sql(*start)?],
                    *delta,
                )?;
            }
        }
        if !ns.is_empty() {
            self
                .cached_execute(
                    "INSERT INTO issue_counters (project, fingerprint, bucket, start_ns, n)
                     SELECT $1, * FROM unnest($2::text[], $3::\"char\"[], $4::bigint[], $5::bigint[])
                     ON CONFLICT (project, fingerprint, bucket, start_ns)
                     DO UPDATE SET n = issue_counters.n + excluded.n",
                    &[&project, &fps, &buckets, &starts, &ns],
                )
                .map_err(db)?;
        }
        Ok(())
    }

    fn add_error_counts(&mut self, project: &str, counts: &ErrorCounts) -> Result<()> {
        let (mut buckets, mut starts, mut ns) = (vec![], vec![], vec![]);
        for ((bucket, start), delta) in &counts.project {
            if *delta > 0 {
                buckets.push(bucket_to_sql(*bucket));
                starts.push(ns_to_sql(*start)?);
                ns.push(*delta);
            } else {
                self.add_counter(
                    "error_counters",
                    &["project", "bucket", "start_ns"],
                    &[&project, &bucket_to_sql(*bucket), &ns_to_sql(*start)?],
                    *delta,
                )?;
            }
        }
        if !ns.is_empty() {
            self.cached_execute(
                "INSERT INTO error_counters (project, bucket, start_ns, n)
                     SELECT $1, * FROM unnest($2::\"char\"[], $3::bigint[], $4::bigint[])
                     ON CONFLICT (project, bucket, start_ns)
                     DO UPDATE SET n = error_counters.n + excluded.n",
                &[&project, &buckets, &starts, &ns],
            )
            .map_err(db)?;
        }
        let (mut services, mut buckets, mut starts, mut ns) = (vec![], vec![], vec![], vec![]);
        for ((service, bucket, start), delta) in &counts.service {
            key_text("service", service)?;
            if *delta > 0 {
                services.push(service.as_str());
                buckets.push(bucket_to_sql(*bucket));
                starts.push(ns_to_sql(*start)?);
                ns.push(*delta);
            } else {
                self.add_counter(
                    "service_error_counters",
                    &["project", "service", "bucket", "start_ns"],
                    &[
                        &project,
                        service,
                        &bucket_to_sql(*bucket),
                        &ns_to_sql(*start)?,
                    ],
                    *delta,
                )?;
            }
        }
        if !ns.is_empty() {
            self
                .cached_execute(
                    "INSERT INTO service_error_counters (project, service, bucket, start_ns, n)
                     SELECT $1, * FROM unnest($2::text[], $3::\"char\"[], $4::bigint[], $5::bigint[])
                     ON CONFLICT (project, service, bucket, start_ns)
                     DO UPDATE SET n = service_error_counters.n + excluded.n",
                    &[&project, &services, &buckets, &starts, &ns],
                )
                .map_err(db)?;
        }
        Ok(())
    }

    fn add_totals(&mut self, project: &str, delta: TotalsDelta) -> Result<()> {
        if delta.is_zero() {
            return Ok(());
        }
        self
            .cached_execute(
                "INSERT INTO totals (project, spans, traces, errors)
                 VALUES ($1, greatest($2::bigint, 0), greatest($3::bigint, 0), greatest($4::bigint, 0))
                 ON CONFLICT (project) DO UPDATE SET
                     spans = greatest(totals.spans + $2, 0),
                     traces = greatest(totals.traces + $3, 0),
                     errors = greatest(totals.errors + $4, 0)",
                &[&project, &delta.spans, &delta.traces, &delta.errors],
            )
            .map_err(db)?;
        Ok(())
    }

    fn touch_service(
        &mut self,
        project: &str,
        service: &str,
        attributes: Option<Vec<SAttribute>>,
        now: u64,
    ) -> Result<()> {
        key_text("service", service)?;
        let now = ns_to_sql(now)?;
        match attributes {
            Some(attributes) => self.cached_execute(
                "INSERT INTO services (project, service, attributes, last_seen_ns)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project, service) DO UPDATE SET attributes = excluded.attributes,
                     last_seen_ns = excluded.last_seen_ns",
                &[&project, &service, &encode(&attributes)?, &now],
            ),
            None => self.cached_execute(
                "INSERT INTO services (project, service, attributes, last_seen_ns)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project, service) DO UPDATE SET last_seen_ns = excluded.last_seen_ns",
                &[
                    &project,
                    &service,
                    &encode(&Vec::<SAttribute>::new())?,
                    &now,
                ],
            ),
        }
        .map_err(db)?;
        Ok(())
    }

    fn route_known(&mut self, project: &str, service: &str, route: &str) -> Result<bool> {
        key_text("service", service)?;
        key_text("route", route)?;
        Ok(self
            .cached_query_opt(
                "SELECT 1 FROM route_names WHERE project = $1 AND service = $2 AND route = $3",
                &[&project, &service, &route],
            )
            .map_err(db)?
            .is_some())
    }

    fn route_count(&mut self, project: &str, service: &str) -> Result<u64> {
        let n: i64 = self
            .cached_query_one(
                "SELECT count(*) FROM route_names WHERE project = $1 AND service = $2",
                &[&project, &service],
            )
            .map_err(db)?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn add_route_name(&mut self, project: &str, service: &str, route: &str) -> Result<()> {
        self.cached_execute(
            "INSERT INTO route_names (project, service, route) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            &[&project, &service, &route],
        )
        .map_err(db)?;
        Ok(())
    }

    fn add_route_counts(
        &mut self,
        project: &str,
        counts: &BTreeMap<(Bucket, u64, String, String), RouteCounts>,
    ) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let (mut buckets, mut starts, mut services, mut routes) = (vec![], vec![], vec![], vec![]);
        for (bucket, start, service, route) in counts.keys() {
            buckets.push(bucket_to_sql(*bucket));
            starts.push(ns_to_sql(*start)?);
            services.push(service.as_str());
            routes.push(route.as_str());
        }
        // Creates the rows or locks the ones there (in key order, as every
        // node does), and returns their counts.
        let stored = self
            .cached_query(
                "INSERT INTO traffic_routes (project, bucket, start_ns, service, route, counts)
                 SELECT $1, b, s, sv, r, $6
                     FROM unnest($2::\"char\"[], $3::bigint[], $4::text[], $5::text[]) AS u(b, s, sv, r)
                 ON CONFLICT (project, bucket, start_ns, service, route)
                 DO UPDATE SET counts = traffic_routes.counts
                 RETURNING bucket, start_ns, service, route, counts",
                &[
                    &project,
                    &buckets,
                    &starts,
                    &services,
                    &routes,
                    &encode(&RouteCounts::default())?,
                ],
            )
            .map_err(db)?;
        let mut sums: BTreeMap<(i8, i64, &str, &str), RouteCounts> = BTreeMap::new();
        for row in &stored {
            let key = (row.get(0), row.get(1), row.get(2), row.get(3));
            sums.insert(key, decode("traffic_routes", row.get::<_, &[u8]>(4))?);
        }
        let mut data = Vec::with_capacity(counts.len());
        for (i, add) in counts.values().enumerate() {
            let key = (buckets[i], starts[i], services[i], routes[i]);
            let Some(sum) = sums.get_mut(&key) else {
                return Err(Error::corrupt(
                    "traffic_routes",
                    "a route counted was not returned by its upsert",
                ));
            };
            sum.add(add);
            data.push(encode(&*sum)?);
        }
        self.cached_execute(
            "UPDATE traffic_routes AS t SET counts = u.c
                 FROM unnest($2::\"char\"[], $3::bigint[], $4::text[], $5::text[], $6::bytea[])
                     AS u(b, s, sv, r, c)
                 WHERE t.project = $1 AND t.bucket = u.b AND t.start_ns = u.s
                     AND t.service = u.sv COLLATE \"C\" AND t.route = u.r COLLATE \"C\"",
            &[&project, &buckets, &starts, &services, &routes, &data],
        )
        .map_err(db)?;
        Ok(())
    }

    fn add_edge_counts(
        &mut self,
        project: &str,
        counts: &BTreeMap<(Bucket, u64, String, String), (u64, u64)>,
    ) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let (mut buckets, mut starts, mut callers, mut callees) = (vec![], vec![], vec![], vec![]);
        let (mut calls, mut errors) = (vec![], vec![]);
        for ((bucket, start, caller, callee), (c, e)) in counts {
            key_text("service", caller)?;
            key_text("service", callee)?;
            buckets.push(bucket_to_sql(*bucket));
            starts.push(ns_to_sql(*start)?);
            callers.push(caller.as_str());
            callees.push(callee.as_str());
            calls.push(count(*c));
            errors.push(count(*e));
        }
        // One row per key (they come from a map), in key order.
        self.cached_execute(
            "INSERT INTO traffic_edges (project, bucket, start_ns, caller, callee, calls, errors)
                 SELECT $1, * FROM unnest($2::\"char\"[], $3::bigint[], $4::text[], $5::text[],
                     $6::bigint[], $7::bigint[])
                 ON CONFLICT (project, bucket, start_ns, caller, callee) DO UPDATE SET
                     calls = traffic_edges.calls + excluded.calls,
                     errors = traffic_edges.errors + excluded.errors",
            &[
                &project, &buckets, &starts, &callers, &callees, &calls, &errors,
            ],
        )
        .map_err(db)?;
        Ok(())
    }

    fn sampling_totals(&mut self, project: &str) -> Result<SamplingTotals> {
        // Creates the row or locks the one there.
        let row = self
            .cached_query_one(
                "INSERT INTO sampling_totals (project, totals) VALUES ($1, $2)
                 ON CONFLICT (project) DO UPDATE SET totals = sampling_totals.totals
                 RETURNING totals",
                &[&project, &encode(&SamplingTotals::default())?],
            )
            .map_err(db)?;
        decode("sampling_totals", row.get::<_, &[u8]>(0))
    }

    fn put_sampling_totals(&mut self, project: &str, totals: &SamplingTotals) -> Result<()> {
        self.cached_execute(
            "UPDATE sampling_totals SET totals = $2 WHERE project = $1",
            &[&project, &encode(totals)?],
        )
        .map_err(db)?;
        Ok(())
    }
}

/// Why writing an issue failed.
pub(crate) enum IssueWrite {
    Db(r2d2_postgres::postgres::Error),
    Other(Error),
}

/// Writes an issue with the columns lists filter and sort on.
pub(crate) fn put_issue(
    tx: &mut impl r2d2_postgres::postgres::GenericClient,
    project: &str,
    fingerprint: &str,
    row: &IssueRow,
) -> std::result::Result<(), IssueWrite> {
    let count = i64::try_from(row.count).unwrap_or(i64::MAX);
    let first = ns_to_sql(row.first_seen_ns).map_err(IssueWrite::Other)?;
    let last = ns_to_sql(row.last_seen_ns).map_err(IssueWrite::Other)?;
    let data = encode(row).map_err(IssueWrite::Other)?;
    tx.execute(
        "INSERT INTO issues (project, fingerprint, status, count, first_seen_ns, last_seen_ns, row_data)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (project, fingerprint) DO UPDATE SET status = excluded.status,
             count = excluded.count, first_seen_ns = excluded.first_seen_ns,
             last_seen_ns = excluded.last_seen_ns, row_data = excluded.row_data",
        &[
            &project,
            &fingerprint,
            &i16::from(row.status),
            &count,
            &first,
            &last,
            &data,
        ],
    )
    .map_err(IssueWrite::Db)?;
    Ok(())
}

/// The spans in chunk rows (their first column), merged by span id: later
/// chunks win.
pub(crate) fn chunks_of(rows: &[r2d2_postgres::postgres::Row]) -> Result<BTreeMap<u64, SSpan>> {
    let mut spans = BTreeMap::new();
    for row in rows {
        let chunk: ChunkRow = decode("span_chunks", row.get::<_, &[u8]>(0))?;
        for span in chunk.spans {
            spans.insert(span.span_id(), span);
        }
    }
    Ok(spans)
}
