//! Export and import on PostgreSQL: each section read with one query whose
//! rows are fetched a thousand at a time from a portal (never the whole
//! table in memory), in the byte order of the embedded store's keys, and
//! each batch written in one transaction.
//! The format's rules are in the crate's `export` module.
//!
//! The embedded store's keys put a 2-byte length before each text, so a
//! section is sorted by the length of a text, then by its bytes (the key
//! columns are `COLLATE "C"`); trace ids are big-endian `bytea`, which
//! sorts as the ids do, and times are non-negative `bigint`s.

use omegi_core::{Fingerprint, TraceId};
use r2d2_postgres::postgres::Row;

use super::ingest::{bucket_to_sql, db, id_from_sql, PgTx};
use super::notes::{attachment_of, note_of, ATTACHMENT_COLUMNS, NOTE_COLUMNS};
use super::{database, ns_from_sql, ns_to_sql, Database};
use crate::accounts::Token;
use crate::codec::{attrs_in, attrs_out, decode, encode, SAttribute, SConsequence, SError, SSpan};
use crate::error::{Error, Result};
use crate::export::{export, import, stage_item, ImportRows, Item, Line, Section, Transfer};
use crate::issues::{IssueRow, Occurrence};
use crate::spans::ChunkRow;
use crate::stats::{Bucket, ServiceInfo, Totals};
use crate::traffic::{RouteCounts, TrafficRecord};
use crate::{Accounts, ImportOptions, Notes, TransferStats};

/// Rows an export fetches at a time.
const EXPORT_ROWS: i32 = 1000;

/// The kinds of traffic rows, in the order of the embedded store's keys.
const EDGE: i16 = b'e' as i16;
const ROUTE: i16 = b'r' as i16;
const TOTALS: i16 = b't' as i16;

impl Database {
    /// Writes the whole database as JSON lines, in the format of
    /// [`Store::export`](crate::Store::export): the same data gives the
    /// same text on either backend, so a file moves data between them.
    /// Each section is read with one query, whose rows are streamed; writes
    /// made during the export may or may not be included.
    pub fn export(&self, out: impl std::io::Write) -> Result<TransferStats> {
        export(self, out)
    }

    /// Reads an export into the database, meant to be empty, as
    /// [`Store::import_with`](crate::Store::import_with) does: the records
    /// are written a few thousand per transaction, trace summaries, the
    /// registered routes, the issues' counters and the notes' links are
    /// rebuilt, and the notes reach the search index of this node at once
    /// and that of every other node as the database announces them.
    pub fn import_with(
        &self,
        input: impl std::io::BufRead,
        options: ImportOptions,
    ) -> Result<TransferStats> {
        import(self, input, options)
    }

    /// Runs `sql` and hands each row to `each`, [`EXPORT_ROWS`] rows at a
    /// time from a portal (a cursor the database keeps for the
    /// transaction), so that a table is never in memory whole. An export
    /// sorts whole tables: its statements have no time limit.
    fn stream(&self, sql: &str, mut each: impl FnMut(&Row) -> Result<()>) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .build_transaction()
            .read_only(true)
            .start()
            .map_err(database)?;
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .map_err(database)?;
        let portal = tx.bind(sql, &[]).map_err(database)?;
        loop {
            let rows = tx.query_portal(&portal, EXPORT_ROWS).map_err(database)?;
            for row in &rows {
                each(row)?;
            }
            if rows.len() < EXPORT_ROWS as usize {
                break;
            }
        }
        tx.commit().map_err(database)
    }
}

/// A column, or corruption of `table`.
fn get<'a, T: r2d2_postgres::postgres::types::FromSql<'a>>(
    table: &'static str,
    row: &'a Row,
    column: usize,
) -> Result<T> {
    row.try_get(column)
        .map_err(|e| Error::corrupt(table, format!("column {column}: {e}")))
}

fn trace_of(table: &'static str, row: &Row, column: usize) -> Result<TraceId> {
    let bytes: &[u8] = get(table, row, column)?;
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| Error::corrupt(table, "a trace id that is not 16 bytes"))?;
    Ok(TraceId(u128::from_be_bytes(bytes)))
}

fn bucket_of(table: &'static str, row: &Row, column: usize) -> Result<Bucket> {
    let code: i8 = get(table, row, column)?;
    Bucket::from_code(code as u8)
        .ok_or_else(|| Error::corrupt(table, format!("unknown bucket {code}")))
}

fn count_of(table: &'static str, row: &Row, column: usize) -> Result<u64> {
    let n: i64 = get(table, row, column)?;
    u64::try_from(n).map_err(|_| Error::corrupt(table, format!("negative count {n}")))
}

/// The spans of one trace, merged by span id (later chunks win), as lines.
fn emit_spans(
    project: &str,
    spans: std::collections::BTreeMap<u64, SSpan>,
    emit: &mut dyn FnMut(Line) -> Result<()>,
) -> Result<()> {
    for span in spans.into_values() {
        let span = span.into_record("span_chunks")?;
        emit(Line::Span {
            project: project.to_owned(),
            span,
        })?;
    }
    Ok(())
}

impl Transfer for Database {
    fn transfer_accounts(&self) -> &dyn Accounts {
        self.accounts()
    }

    fn transfer_notes(&self) -> Notes<'_> {
        self.notes()
    }

    fn read_section(
        &self,
        section: Section,
        emit: &mut dyn FnMut(Line) -> Result<()>,
    ) -> Result<()> {
        match section {
            Section::Services => self.stream(
                "SELECT project, service, attributes, last_seen_ns FROM services
                 ORDER BY octet_length(project), project, octet_length(service), service",
                |row| {
                    const T: &str = "services";
                    let attributes: Vec<SAttribute> = decode(T, get::<&[u8]>(T, row, 2)?)?;
                    emit(Line::Service {
                        project: get(T, row, 0)?,
                        service: ServiceInfo {
                            service: get(T, row, 1)?,
                            attributes: attrs_out(attributes),
                            last_seen_ns: ns_from_sql(T, get(T, row, 3)?)?,
                        },
                    })
                },
            ),
            Section::Spans => {
                // Chunks come trace by trace: the spans of one trace are
                // merged, then written, before the next trace's are read.
                let mut current: Option<(String, TraceId)> = None;
                let mut spans = std::collections::BTreeMap::new();
                self.stream(
                    "SELECT t.project, t.trace_id, c.spans FROM traces t
                     JOIN span_chunks c ON c.project = t.project AND c.trace_id = t.trace_id
                     ORDER BY octet_length(t.project), t.project, t.trace_id, c.seq",
                    |row| {
                        const T: &str = "span_chunks";
                        let project: &str = get(T, row, 0)?;
                        let trace = trace_of(T, row, 1)?;
                        if current
                            .as_ref()
                            .is_some_and(|(p, t)| p != project || *t != trace)
                        {
                            if let Some((p, _)) = current.take() {
                                emit_spans(&p, std::mem::take(&mut spans), emit)?;
                            }
                        }
                        if current.is_none() {
                            current = Some((project.to_owned(), trace));
                        }
                        let chunk: ChunkRow = decode(T, get::<&[u8]>(T, row, 2)?)?;
                        for span in chunk.spans {
                            spans.insert(span.span_id(), span);
                        }
                        Ok(())
                    },
                )?;
                if let Some((project, _)) = current {
                    emit_spans(&project, spans, emit)?;
                }
                Ok(())
            }
            Section::Issues => self.stream(
                "SELECT project, fingerprint, row_data FROM issues
                 ORDER BY octet_length(project), project, octet_length(fingerprint), fingerprint",
                |row| {
                    const T: &str = "issues";
                    let issue: IssueRow = decode(T, get::<&[u8]>(T, row, 2)?)?;
                    let issue = issue.into_issue(get(T, row, 0)?, get(T, row, 1)?)?;
                    emit(Line::Issue { issue })
                },
            ),
            Section::Occurrences => self.stream(
                "SELECT project, fingerprint, id, error, consequences FROM occurrences
                 ORDER BY octet_length(project), project, octet_length(fingerprint), fingerprint,
                     time_ns, id",
                |row| {
                    const T: &str = "occurrences";
                    let error: SError = decode(T, get::<&[u8]>(T, row, 3)?)?;
                    let consequences = match get::<Option<&[u8]>>(T, row, 4)? {
                        Some(bytes) => decode::<Vec<SConsequence>>(T, bytes)?
                            .into_iter()
                            .map(SConsequence::into_record)
                            .collect(),
                        None => Vec::new(),
                    };
                    emit(Line::Occurrence {
                        project: get(T, row, 0)?,
                        fingerprint: Fingerprint(get(T, row, 1)?),
                        occurrence: Occurrence::new(
                            error.into_record(T)?,
                            id_from_sql(get(T, row, 2)?),
                            consequences,
                        ),
                    })
                },
            ),
            Section::Settled => self.stream(
                "SELECT project, trace_id, row_data FROM settled
                 ORDER BY octet_length(project), project, trace_id",
                |row| {
                    const T: &str = "settled";
                    emit(Line::Settled {
                        project: get(T, row, 0)?,
                        trace_id: trace_of(T, row, 1)?,
                        settled: decode(T, get::<&[u8]>(T, row, 2)?)?,
                    })
                },
            ),
            Section::Traffic => self.stream(
                &format!(
                    "SELECT * FROM (
                         SELECT project, {EDGE}::int2 AS kind, bucket, start_ns,
                             caller AS a, callee AS b, NULL::bytea AS data, calls, errors
                         FROM traffic_edges
                         UNION ALL
                         SELECT project, {ROUTE}::int2, bucket, start_ns, service, route, counts,
                             0, 0
                         FROM traffic_routes
                         UNION ALL
                         SELECT project, {TOTALS}::int2, NULL, 0, '', '', totals, 0, 0
                         FROM sampling_totals
                     ) t
                     ORDER BY octet_length(project), project COLLATE \"C\", kind, bucket,
                         start_ns, octet_length(a), a COLLATE \"C\", octet_length(b),
                         b COLLATE \"C\""
                ),
                |row| {
                    const T: &str = "traffic";
                    let project: String = get(T, row, 0)?;
                    let record = match get::<i16>(T, row, 1)? {
                        EDGE => TrafficRecord::Call {
                            project,
                            bucket: bucket_of(T, row, 2)?,
                            start_ns: ns_from_sql(T, get(T, row, 3)?)?,
                            caller: get(T, row, 4)?,
                            callee: get(T, row, 5)?,
                            calls: count_of(T, row, 7)?,
                            errors: count_of(T, row, 8)?,
                        },
                        ROUTE => TrafficRecord::Route {
                            project,
                            bucket: bucket_of(T, row, 2)?,
                            start_ns: ns_from_sql(T, get(T, row, 3)?)?,
                            service: get(T, row, 4)?,
                            route: get(T, row, 5)?,
                            counts: decode(T, get::<&[u8]>(T, row, 6)?)?,
                        },
                        _ => TrafficRecord::Sampling {
                            project,
                            totals: decode(T, get::<&[u8]>(T, row, 6)?)?,
                        },
                    };
                    emit(Line::Traffic { record })
                },
            ),
            Section::Counters => {
                self.stream(
                    "SELECT project, NULL::text, bucket, start_ns, n FROM error_counters
                     ORDER BY octet_length(project), project, bucket, start_ns",
                    |row| emit(counter_line("error_counters", row)?),
                )?;
                self.stream(
                    "SELECT project, service, bucket, start_ns, n FROM service_error_counters
                     ORDER BY octet_length(project), project, octet_length(service), service,
                         bucket, start_ns",
                    |row| emit(counter_line("service_error_counters", row)?),
                )
            }
            Section::Totals => self.stream(
                "SELECT project, spans, traces, errors FROM totals
                 ORDER BY octet_length(project), project",
                |row| {
                    const T: &str = "totals";
                    emit(Line::Totals {
                        project: get(T, row, 0)?,
                        spans: count_of(T, row, 1)?,
                        traces: count_of(T, row, 2)?,
                        errors: count_of(T, row, 3)?,
                    })
                },
            ),
            Section::Notes => self.stream(
                &format!("SELECT {NOTE_COLUMNS} FROM notes t ORDER BY t.id"),
                |row| {
                    emit(Line::Note {
                        note: note_of(row)?,
                    })
                },
            ),
            Section::Attachments => self.stream(
                &format!("SELECT {ATTACHMENT_COLUMNS}, data FROM attachments ORDER BY note, key"),
                |row| {
                    let bytes: &[u8] = get("attachments", row, 7)?;
                    emit(Line::attachment(attachment_of(row)?, bytes))
                },
            ),
        }
    }

    fn write_batch(&self, batch: &[Item]) -> Result<()> {
        self.write(|tx| {
            for item in batch {
                stage_item(tx, item)?;
            }
            Ok(())
        })
    }

    fn insert_token(&self, token: &Token) -> Result<bool> {
        self.accounts.insert_token(token)
    }
}

fn counter_line(table: &'static str, row: &Row) -> Result<Line> {
    Ok(Line::Counter {
        project: get(table, row, 0)?,
        service: get(table, row, 1)?,
        bucket: bucket_of(table, row, 2)?,
        start_ns: ns_from_sql(table, get(table, row, 3)?)?,
        count: count_of(table, row, 4)?,
    })
}

impl ImportRows for PgTx<'_> {
    fn put_service(&mut self, project: &str, service: &ServiceInfo) -> Result<()> {
        self.client()
            .execute(
                "INSERT INTO services (project, service, attributes, last_seen_ns)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project, service) DO UPDATE SET attributes = excluded.attributes,
                     last_seen_ns = excluded.last_seen_ns",
                &[
                    &project,
                    &service.service,
                    &encode(&attrs_in(&service.attributes))?,
                    &ns_to_sql(service.last_seen_ns)?,
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn put_counter(
        &mut self,
        project: &str,
        service: Option<&str>,
        bucket: Bucket,
        start_ns: u64,
        count: u64,
    ) -> Result<()> {
        let (bucket, start) = (bucket_to_sql(bucket), ns_to_sql(start_ns)?);
        let n = i64::try_from(count).unwrap_or(i64::MAX);
        match service {
            Some(service) => self.client().execute(
                "INSERT INTO service_error_counters (project, service, bucket, start_ns, n)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (project, service, bucket, start_ns) DO UPDATE SET n = excluded.n",
                &[&project, &service, &bucket, &start, &n],
            ),
            None => self.client().execute(
                "INSERT INTO error_counters (project, bucket, start_ns, n) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project, bucket, start_ns) DO UPDATE SET n = excluded.n",
                &[&project, &bucket, &start, &n],
            ),
        }
        .map_err(db)?;
        Ok(())
    }

    fn put_totals(&mut self, project: &str, totals: &Totals) -> Result<()> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.client()
            .execute(
                "INSERT INTO totals (project, spans, traces, errors) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project) DO UPDATE SET spans = excluded.spans,
                     traces = excluded.traces, errors = excluded.errors",
                &[
                    &project,
                    &n(totals.spans),
                    &n(totals.traces),
                    &n(totals.errors),
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn put_route_counts(
        &mut self,
        project: &str,
        (bucket, start, service, route): &(Bucket, u64, String, String),
        counts: &RouteCounts,
    ) -> Result<()> {
        self.client()
            .execute(
                "INSERT INTO traffic_routes (project, bucket, start_ns, service, route, counts)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (project, bucket, start_ns, service, route)
                 DO UPDATE SET counts = excluded.counts",
                &[
                    &project,
                    &bucket_to_sql(*bucket),
                    &ns_to_sql(*start)?,
                    service,
                    route,
                    &encode(counts)?,
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn put_edge_counts(
        &mut self,
        project: &str,
        (bucket, start, caller, callee): &(Bucket, u64, String, String),
        calls: u64,
        errors: u64,
    ) -> Result<()> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.client()
            .execute(
                "INSERT INTO traffic_edges (project, bucket, start_ns, caller, callee, calls, errors)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (project, bucket, start_ns, caller, callee)
                 DO UPDATE SET calls = excluded.calls, errors = excluded.errors",
                &[
                    &project,
                    &bucket_to_sql(*bucket),
                    &ns_to_sql(*start)?,
                    caller,
                    callee,
                    &n(calls),
                    &n(errors),
                ],
            )
            .map_err(db)?;
        Ok(())
    }
}
