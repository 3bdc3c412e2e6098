//! Export and import on the embedded store: each section read in key order
//! from its tree, and batches staged in [`Writes`] and committed as sled
//! transactions. The format's rules are in the parent module.

use super::{
    export, import, stage_item, ImportOptions, ImportRows, Item, Line, Section, Transfer,
    TransferStats,
};
use crate::accounts::Token;
use crate::codec::{decode, encode};
use crate::error::{Db, Error, Result};
use crate::keys::{counter, KeyReader};
use crate::spans::merged_spans;
use crate::stats::{counter_key, put_service, put_totals, read_totals, service_counter_key};
use crate::stats::{Bucket, ServiceInfo, Totals};
use crate::traffic::{edge_key, route_key, traffic_record, RouteCounts};
use crate::writes::{TreeId, Writes};
use crate::{Accounts, Embedded, Notes};

/// Writes a batch stages before it commits them.
const IMPORT_WRITES: usize = 4096;

fn read_counter_key(
    tree: &'static str,
    key: &[u8],
    with_service: bool,
) -> Result<(String, Option<String>, Bucket, u64)> {
    let mut r = KeyReader::new(tree, key);
    let project = r.str()?.to_owned();
    let service = if with_service {
        Some(r.str()?.to_owned())
    } else {
        None
    };
    let code = r.u8()?;
    let bucket = Bucket::from_code(code)
        .ok_or_else(|| Error::corrupt(tree, format!("unknown bucket {code}")))?;
    let start = r.u64()?;
    r.end()?;
    Ok((project, service, bucket, start))
}

impl Embedded {
    /// Writes the whole store as JSON lines (see the `export` module).
    /// Writes made during the export may or may not be included.
    pub fn export(&self, out: impl std::io::Write) -> Result<TransferStats> {
        export(self, out)
    }

    /// Reads an export into this store, meant to be empty: records with the
    /// same keys are replaced, counters are overwritten. Trace summaries and
    /// indexes are rebuilt. Accounts are imported only if `options` say so;
    /// they are counted either way. Call [`Store::flush`](crate::Store::flush)
    /// afterwards for durability.
    pub fn import_with(
        &self,
        input: impl std::io::BufRead,
        options: ImportOptions,
    ) -> Result<TransferStats> {
        import(self, input, options)
    }
}

impl Transfer for Embedded {
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
        let t = &self.core().t;
        match section {
            Section::Services => {
                for (project, service) in self.all_services()? {
                    emit(Line::Service { project, service })?;
                }
            }
            Section::Spans => {
                for item in t.traces.iter() {
                    let (key, _) = item.db()?;
                    let mut r = KeyReader::new("traces", &key);
                    let project = r.str()?.to_owned();
                    let trace = r.trace()?;
                    r.end()?;
                    for span in merged_spans(t, &project, trace)?.into_values() {
                        let span = span.into_record("span_segments")?;
                        let project = project.clone();
                        emit(Line::Span { project, span })?;
                    }
                }
            }
            Section::Issues => {
                for issue in self.all_issues() {
                    emit(Line::Issue { issue: issue? })?;
                }
            }
            Section::Occurrences => {
                for occurrence in self.all_occurrences() {
                    let (project, fingerprint, occurrence) = occurrence?;
                    emit(Line::Occurrence {
                        project,
                        fingerprint,
                        occurrence,
                    })?;
                }
            }
            Section::Settled => {
                for item in t.settled.iter() {
                    let (key, value) = item.db()?;
                    let mut r = KeyReader::new("settled", &key);
                    let project = r.str()?.to_owned();
                    let trace_id = r.trace()?;
                    r.end()?;
                    emit(Line::Settled {
                        project,
                        trace_id,
                        settled: decode("settled", &value)?,
                    })?;
                }
            }
            Section::Traffic => {
                for item in t.traffic.iter() {
                    let (key, value) = item.db()?;
                    if let Some(record) = traffic_record(&key, &value)? {
                        emit(Line::Traffic { record })?;
                    }
                }
            }
            Section::Counters => {
                for (tree, name, with_service) in [
                    (&t.counters, "counters", false),
                    (&t.service_counters, "service_counters", true),
                ] {
                    for item in tree.iter() {
                        let (key, value) = item.db()?;
                        let (project, service, bucket, start_ns) =
                            read_counter_key(name, &key, with_service)?;
                        emit(Line::Counter {
                            project,
                            service,
                            bucket,
                            start_ns,
                            count: counter(name, &value)?,
                        })?;
                    }
                }
            }
            Section::Totals => {
                for item in t.totals.iter() {
                    let (key, _) = item.db()?;
                    let mut r = KeyReader::new("totals", &key);
                    let project = r.str()?.to_owned();
                    r.end()?;
                    let totals = read_totals(t, &project)?;
                    emit(Line::Totals {
                        project,
                        spans: totals.spans,
                        traces: totals.traces,
                        errors: totals.errors,
                    })?;
                }
            }
            Section::Notes => {
                for note in crate::notes::all_notes(t) {
                    emit(Line::Note { note: note? })?;
                }
            }
            Section::Attachments => {
                for file in crate::attachments::all_attachments(t) {
                    let (a, bytes) = file?;
                    emit(Line::attachment(a, &bytes))?;
                }
            }
        }
        Ok(())
    }

    fn write_batch(&self, batch: &[Item]) -> Result<()> {
        let core = self.core();
        let _guard = core.lock();
        let mut w = Writes::new(core);
        for item in batch {
            stage_item(&mut w, item)?;
            if w.len() >= IMPORT_WRITES {
                std::mem::replace(&mut w, Writes::new(core)).commit()?;
            }
        }
        w.commit()
    }

    fn insert_token(&self, token: &Token) -> Result<bool> {
        let core = self.core();
        let _guard = core.lock();
        let t = &core.t;
        if t.token_ids.contains_key(token.id.as_bytes()).db()?
            || t.tokens.contains_key(token.hash.as_bytes()).db()?
        {
            return Ok(false);
        }
        t.tokens
            .insert(token.hash.as_bytes(), encode(token)?)
            .db()?;
        t.token_ids
            .insert(token.id.as_bytes(), token.hash.as_bytes())
            .db()?;
        Ok(true)
    }
}

impl ImportRows for Writes<'_> {
    fn put_service(&mut self, project: &str, service: &ServiceInfo) -> Result<()> {
        put_service(self, project, service)
    }

    fn put_counter(
        &mut self,
        project: &str,
        service: Option<&str>,
        bucket: Bucket,
        start_ns: u64,
        count: u64,
    ) -> Result<()> {
        let (tree, key) = match service {
            Some(s) => (
                TreeId::ServiceCounters,
                service_counter_key(project, s, bucket, start_ns)?,
            ),
            None => (TreeId::Counters, counter_key(project, bucket, start_ns)?),
        };
        self.insert(tree, key, &count.to_be_bytes()[..]);
        Ok(())
    }

    fn put_totals(&mut self, project: &str, totals: &Totals) -> Result<()> {
        put_totals(self, project, totals)
    }

    fn put_route_counts(
        &mut self,
        project: &str,
        (bucket, start, service, route): &(Bucket, u64, String, String),
        counts: &RouteCounts,
    ) -> Result<()> {
        let key = route_key(project, *bucket, *start, service, route)?;
        self.insert(TreeId::Traffic, key, encode(counts)?);
        Ok(())
    }

    fn put_edge_counts(
        &mut self,
        project: &str,
        (bucket, start, caller, callee): &(Bucket, u64, String, String),
        calls: u64,
        errors: u64,
    ) -> Result<()> {
        let key = edge_key(project, *bucket, *start, caller, callee)?;
        self.insert(TreeId::Traffic, key, encode(&(calls, errors))?);
        Ok(())
    }
}
