//! The ingest entry point: one call per batch of records from one process.

use std::borrow::Cow;

use omegi_core::{ErrorRecord, Fingerprint, Record, Resource, SpanRecord};

use crate::error::Result;
use crate::issues::{write_errors, Issue};
use crate::keys::{check_name, Key};
use crate::spans::write_spans;
use crate::stats::{record_ingest, Totals};
use crate::{codec::encode, now_ns, Project, Store};

/// What one ingest did: alerts fire on `created` and `regressed`.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct IngestReport {
    /// Spans written.
    pub spans: usize,
    /// Errors written.
    pub errors: usize,
    /// Traces seen for the first time.
    pub new_traces: u64,
    /// Issues this ingest created, as they are after it.
    pub created: Vec<Issue>,
    /// Resolved issues that occurred again, as they are after it.
    pub regressed: Vec<Issue>,
}

impl Store {
    /// Stores a batch of records sent by one process (`resource`) to
    /// `project`: spans by trace, errors grouped into issues, counters for
    /// the dashboard. Records whose service is empty take the resource's.
    ///
    /// The project is created with default settings if it does not exist.
    /// The writes are visible when this returns and durable after the next
    /// [`Store::flush`] (see the crate docs).
    pub fn ingest(
        &self,
        project: &str,
        resource: &Resource,
        records: &[Record],
    ) -> Result<IngestReport> {
        self.ingest_resources(project, [(resource, records)])
    }

    /// Stores the records of several processes at once, as one
    /// [`Store::ingest`] call per resource would, but writing each trace
    /// once: an OTLP request carries one group per resource, and the spans
    /// of one trace are usually spread over them.
    ///
    /// ```
    /// use omegi_core::{CodeLocation, ErrorKind, ErrorRecord, Record, Resource};
    /// # fn main() -> omegi_store::Result<()> {
    /// let store = omegi_store::Store::temporary()?;
    /// let failure = |message: &str| Record::Error(ErrorRecord {
    ///     trace_id: None,
    ///     span_id: None,
    ///     service: String::new(), // filled in from the resource
    ///     time_ns: 1_700_000_000_000_000_000,
    ///     kind: ErrorKind::Event,
    ///     message: message.into(),
    ///     causes: vec![],
    ///     error_type: None,
    ///     target: "api".into(),
    ///     fields: vec![],
    ///     span_stack: vec![],
    ///     breadcrumbs: vec![],
    ///     location: CodeLocation::default(),
    ///     thread: None,
    ///     fingerprint: None,
    /// });
    /// let gateway = Resource { service: "gateway".into(), attributes: vec![] };
    /// let payment = Resource { service: "payment".into(), attributes: vec![] };
    /// let (from_gateway, from_payment) = ([failure("upstream failed")], [failure("declined")]);
    /// let report = store.ingest_resources(
    ///     "shop",
    ///     [(&gateway, &from_gateway[..]), (&payment, &from_payment[..])],
    /// )?;
    /// assert_eq!(report.errors, 2);
    /// let mut services: Vec<_> = report.created.iter().map(|i| i.services.clone()).collect();
    /// services.sort();
    /// assert_eq!(services, [["gateway"], ["payment"]]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ingest_resources<'a>(
        &self,
        project: &str,
        batches: impl IntoIterator<Item = (&'a Resource, &'a [Record])>,
    ) -> Result<IngestReport> {
        check_name("project", project)?;
        let mut resources: Vec<&Resource> = Vec::new();
        let mut spans: Vec<Cow<'_, SpanRecord>> = Vec::new();
        let mut errors: Vec<Cow<'_, ErrorRecord>> = Vec::new();
        for (resource, records) in batches {
            resources.push(resource);
            for record in records {
                match record {
                    Record::Span(s) if s.service.is_empty() => {
                        let mut s = s.clone();
                        s.service.clone_from(&resource.service);
                        spans.push(Cow::Owned(s));
                    }
                    Record::Span(s) => spans.push(Cow::Borrowed(s)),
                    Record::Error(e) if e.service.is_empty() => {
                        let mut e = e.clone();
                        e.service.clone_from(&resource.service);
                        errors.push(Cow::Owned(e));
                    }
                    Record::Error(e) => errors.push(Cow::Borrowed(e)),
                }
            }
        }
        let spans: Vec<&SpanRecord> = spans.iter().map(|s| s.as_ref()).collect();
        let errors: Vec<&ErrorRecord> = errors.iter().map(|e| e.as_ref()).collect();
        let mut services: Vec<&str> = spans
            .iter()
            .map(|s| s.service.as_str())
            .chain(errors.iter().map(|e| e.service.as_str()))
            .chain(
                resources
                    .iter()
                    .map(|r| r.service.as_str())
                    .filter(|s| !s.is_empty()),
            )
            .collect();
        services.sort_unstable();
        services.dedup();

        let core = self.core();
        let (new_traces, outcome) = {
            let _guard = core.lock();
            let t = &core.t;
            let project_key = Key::new().str("project", project)?;
            if !t.projects.contains_key(&project_key)? {
                t.projects
                    .insert(project_key, encode(&Project::new(project))?)?;
            }
            let new_traces = write_spans(core, project, &spans)?;
            let outcome = write_errors(core, project, &errors)?;
            record_ingest(
                core,
                project,
                &resources,
                &services,
                &errors,
                Totals {
                    spans: spans.len() as u64,
                    traces: new_traces,
                    errors: errors.len() as u64,
                },
                now_ns(),
            )?;
            (new_traces, outcome)
        };
        let mut report = IngestReport {
            spans: spans.len(),
            errors: errors.len(),
            new_traces,
            ..IngestReport::default()
        };
        for fp in outcome.created {
            if let Some(issue) = self.issue(project, &Fingerprint(fp))? {
                report.created.push(issue);
            }
        }
        for fp in outcome.regressed {
            if let Some(issue) = self.issue(project, &Fingerprint(fp))? {
                report.regressed.push(issue);
            }
        }
        Ok(report)
    }
}
