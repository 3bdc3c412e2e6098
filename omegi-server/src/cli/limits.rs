//! The limits of `omegi serve` as flags and environment variables: one
//! per row of the limits table in `API.md`.

use std::time::Duration;

use clap::Args;

use omegi_core::flow::TailSampling;
use omegi_core::RecordLimits;

use crate::alerts::AlertNoteLimits;
use crate::api::BodyRate;
use crate::otlp::{DecodeBudget, Limits, VALUE_DEPTH_CEILING};
use crate::server::ServeConfig;
use crate::settle::SettleConfig;

/// What one OTLP request may hold and cost, and how clients must behave.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits (see the limits table of API.md)")]
pub struct LimitArgs {
    /// The largest OTLP request body as sent (bytes; K, KiB, M, MiB).
    #[arg(long, env = "OMEGI_BODY_LIMIT", default_value = "8MiB", value_parser = parse_bytes)]
    pub body_limit: usize,
    /// The largest OTLP request body after decompression.
    #[arg(long, env = "OMEGI_MAX_DECOMPRESSED_BYTES", default_value = "32MiB", value_parser = parse_bytes)]
    pub max_decompressed_bytes: usize,
    /// Resource groups in one request.
    #[arg(long, env = "OMEGI_MAX_RESOURCES", default_value_t = DecodeBudget::default().max_resources)]
    pub max_resources: usize,
    /// Scope groups in one request.
    #[arg(long, env = "OMEGI_MAX_SCOPES", default_value_t = DecodeBudget::default().max_scopes)]
    pub max_scopes: usize,
    /// Spans in one request.
    #[arg(long, env = "OMEGI_MAX_SPANS", default_value_t = DecodeBudget::default().max_spans)]
    pub max_spans: usize,
    /// Span events in one request.
    #[arg(long, env = "OMEGI_MAX_EVENTS", default_value_t = DecodeBudget::default().max_events)]
    pub max_events: usize,
    /// Span links in one request.
    #[arg(long, env = "OMEGI_MAX_LINKS", default_value_t = DecodeBudget::default().max_links)]
    pub max_links: usize,
    /// Log records in one request.
    #[arg(long, env = "OMEGI_MAX_LOG_RECORDS", default_value_t = DecodeBudget::default().max_log_records)]
    pub max_log_records: usize,
    /// Attributes (and array elements) in one request.
    #[arg(long, env = "OMEGI_MAX_ATTRIBUTES", default_value_t = DecodeBudget::default().max_attributes)]
    pub max_attributes: usize,
    /// Attributes of one span, event, link, log record, resource or scope,
    /// and elements of one array or key-value list.
    #[arg(long, env = "OMEGI_MAX_ATTRIBUTES_PER_ITEM", default_value_t = DecodeBudget::default().max_attributes_per_item)]
    pub max_attributes_per_item: usize,
    /// How deep array and key-value-list values nest.
    #[arg(long, env = "OMEGI_MAX_VALUE_DEPTH", default_value_t = DecodeBudget::default().max_value_depth,
          value_parser = parse_depth)]
    pub max_value_depth: usize,
    /// Bytes of all strings of one request.
    #[arg(long, env = "OMEGI_MAX_STRING_BYTES", default_value = "32MiB", value_parser = parse_bytes)]
    pub max_string_bytes: usize,
    /// Names (service, span, target, attribute key, error type) are cut to
    /// this length.
    #[arg(long, env = "OMEGI_MAX_NAME_BYTES", default_value = "256", value_parser = parse_bytes)]
    pub max_name_bytes: usize,
    /// Values (attribute values, messages, log bodies) are cut to this
    /// length.
    #[arg(long, env = "OMEGI_MAX_VALUE_BYTES", default_value = "4KiB", value_parser = parse_bytes)]
    pub max_value_bytes: usize,
    /// `exception.stacktrace` is cut to this length.
    #[arg(long, env = "OMEGI_MAX_STACKTRACE_BYTES", default_value = "16KiB", value_parser = parse_bytes)]
    pub max_stacktrace_bytes: usize,
    /// Attributes kept per span, event, error, resource and span frame.
    #[arg(long, env = "OMEGI_MAX_RECORD_ATTRIBUTES", default_value_t = 128)]
    pub max_record_attributes: usize,
    /// Events kept per span.
    #[arg(long, env = "OMEGI_MAX_SPAN_EVENTS", default_value_t = 128)]
    pub max_span_events: usize,
    /// Frames of an error's span stack kept besides the root.
    #[arg(long, env = "OMEGI_MAX_SPAN_STACK", default_value_t = 32)]
    pub max_span_stack: usize,
    /// Breadcrumbs kept per error.
    #[arg(long, env = "OMEGI_MAX_BREADCRUMBS", default_value_t = 50)]
    pub max_breadcrumbs: usize,
    /// Causes kept per error.
    #[arg(long, env = "OMEGI_MAX_CAUSES", default_value_t = 32)]
    pub max_causes: usize,
    /// Errors derived from the exception events of one span.
    #[arg(long, env = "OMEGI_MAX_ERRORS_PER_SPAN", default_value_t = Limits::default().max_errors_per_span)]
    pub max_errors_per_span: usize,
    /// Errors derived from one request.
    #[arg(long, env = "OMEGI_MAX_ERRORS_PER_REQUEST", default_value_t = Limits::default().max_errors_per_request)]
    pub max_errors_per_request: usize,
    /// Bytes of span stacks and breadcrumbs the errors of one request copy.
    #[arg(long, env = "OMEGI_MAX_ERROR_CONTEXT_BYTES", default_value = "8MiB", value_parser = parse_bytes)]
    pub max_error_context_bytes: usize,
    /// Spans and errors further ahead of the server's clock are rejected
    /// (older than the retention are rejected too).
    #[arg(long, env = "OMEGI_MAX_AHEAD", default_value = "1h", value_parser = parse_duration)]
    pub max_ahead: Duration,
    /// OTLP requests decoded and stored at once (default: twice the
    /// cores, at least 4).
    #[arg(long, env = "OMEGI_INGEST_SLOTS")]
    pub ingest_slots: Option<usize>,
    /// OTLP requests of one project at once (default: one less than the
    /// ingest slots, at least 1).
    #[arg(long, env = "OMEGI_INGEST_SLOTS_PER_PROJECT")]
    pub ingest_slots_per_project: Option<usize>,
    /// Bytes of OTLP request bodies being read at once, all projects
    /// (default: the body limit times the ingest slots).
    #[arg(long, env = "OMEGI_BODIES_IN_FLIGHT", value_parser = parse_bytes)]
    pub bodies_in_flight: Option<usize>,
    /// Bytes of OTLP request bodies of one project being read at once
    /// (default: the body limit times the slots of a project).
    #[arg(long, env = "OMEGI_BODIES_IN_FLIGHT_PER_PROJECT", value_parser = parse_bytes)]
    pub bodies_in_flight_per_project: Option<usize>,
    /// How long a request waits for a slot, or for room for its body,
    /// before 503.
    #[arg(long, env = "OMEGI_INGEST_WAIT", default_value = "2s", value_parser = parse_duration)]
    pub ingest_wait: Duration,
    /// Time to send a request's headers (and to keep an idle connection).
    #[arg(long, env = "OMEGI_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// Time a request body may take before the minimum rate counts.
    #[arg(long, env = "OMEGI_BODY_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub body_grace: Duration,
    /// The slowest average rate of a request body after the grace, per
    /// second (bytes; K, KiB, M, MiB; 0: no limit).
    #[arg(long, env = "OMEGI_MIN_BODY_RATE", default_value = "16KiB", value_parser = parse_bytes)]
    pub min_body_rate: usize,
    /// How long a trace stays quiet before it settles (its failures are
    /// attributed and it is sampled); 0: every request settles on arrival.
    #[arg(long, env = "OMEGI_TRACE_WAIT", default_value = "5s", value_parser = parse_duration)]
    pub trace_wait: Duration,
    /// Spans waiting in the settle window, all traces: past it, the traces
    /// that waited longest settle early.
    #[arg(long, env = "OMEGI_SETTLE_MAX_SPANS", default_value_t = SettleConfig::default().max_spans)]
    pub settle_max_spans: usize,
    /// Bytes waiting in the settle window: as above; a request that would
    /// take it past twice this is answered 503 with Retry-After.
    #[arg(long, env = "OMEGI_SETTLE_MAX_BYTES", default_value = "64MiB", value_parser = parse_bytes)]
    pub settle_max_bytes: usize,
    /// Spans of one trace waiting: past it, the trace settles early.
    #[arg(long, env = "OMEGI_TRACE_MAX_SPANS", default_value_t = SettleConfig::default().max_trace_spans)]
    pub trace_max_spans: usize,
    /// Bytes of one trace waiting: past it, the trace settles early.
    #[arg(long, env = "OMEGI_TRACE_MAX_BYTES", default_value = "16MiB", value_parser = parse_bytes)]
    pub trace_max_bytes: usize,
    /// Share of healthy traces stored whole (0 to 1); traces with a failure
    /// or a slow request are always stored, and statistics count all.
    #[arg(long, env = "OMEGI_SAMPLE_RATE", default_value_t = 0.1, value_parser = parse_rate)]
    pub sample_rate: f64,
    /// A trace with a request slower than this is stored whole (0: no such
    /// rule).
    #[arg(long, env = "OMEGI_KEEP_SLOWER_THAN", default_value = "2s", value_parser = parse_duration)]
    pub keep_slower_than: Duration,
    /// Public notes linked to an issue that one alert carries.
    #[arg(long, env = "OMEGI_ALERT_NOTES", default_value_t = AlertNoteLimits::default().linked)]
    pub alert_notes: usize,
    /// Public notes suggested for an issue that one alert carries.
    #[arg(long, env = "OMEGI_ALERT_SUGGESTIONS", default_value_t = AlertNoteLimits::default().suggested)]
    pub alert_suggestions: usize,
    /// Characters of a note's excerpt in an alert.
    #[arg(long, env = "OMEGI_ALERT_EXCERPT_CHARS", default_value_t = AlertNoteLimits::default().excerpt_chars)]
    pub alert_excerpt_chars: usize,
}

impl LimitArgs {
    /// The server configuration with these limits.
    pub fn apply(&self, config: ServeConfig) -> ServeConfig {
        let mut records = RecordLimits::default();
        records.max_name_bytes = self.max_name_bytes;
        records.max_value_bytes = self.max_value_bytes;
        records.max_stacktrace_bytes = self.max_stacktrace_bytes;
        records.max_attributes = self.max_record_attributes;
        records.max_events = self.max_span_events;
        records.max_span_stack = self.max_span_stack;
        records.max_breadcrumbs = self.max_breadcrumbs;
        records.max_causes = self.max_causes;
        let limits = Limits {
            max_decompressed_bytes: self.max_decompressed_bytes,
            budget: DecodeBudget {
                max_resources: self.max_resources,
                max_scopes: self.max_scopes,
                max_spans: self.max_spans,
                max_events: self.max_events,
                max_links: self.max_links,
                max_log_records: self.max_log_records,
                max_attributes: self.max_attributes,
                max_attributes_per_item: self.max_attributes_per_item,
                max_value_depth: self.max_value_depth,
                max_string_bytes: self.max_string_bytes,
            },
            records,
            max_errors_per_span: self.max_errors_per_span,
            max_errors_per_request: self.max_errors_per_request,
            max_error_context_bytes: self.max_error_context_bytes,
            // The server takes the retention.
            max_age: None,
            max_ahead: self.max_ahead,
        };
        let slots = self.ingest_slots.unwrap_or(config.ingest_concurrency);
        let mut config = config
            .body_limit(self.body_limit)
            .limits(limits)
            .ingest_limit(slots, self.ingest_wait)
            .bodies_in_flight(self.bodies_in_flight, self.bodies_in_flight_per_project)
            .connection_timeouts(
                self.header_timeout,
                BodyRate {
                    grace: self.body_grace,
                    min_bytes_per_second: self.min_body_rate as u64,
                },
            );
        let sampling = TailSampling::new(self.sample_rate)
            .keep_slower_than((!self.keep_slower_than.is_zero()).then_some(self.keep_slower_than));
        config = config.settle(
            SettleConfig::default()
                .trace_wait(self.trace_wait)
                .budget(
                    self.settle_max_spans,
                    self.settle_max_bytes,
                    self.trace_max_spans,
                    self.trace_max_bytes,
                )
                .sampling(sampling),
        );
        config = config.alert_notes(AlertNoteLimits {
            linked: self.alert_notes,
            suggested: self.alert_suggestions,
            excerpt_chars: self.alert_excerpt_chars,
        });
        if let Some(per_project) = self.ingest_slots_per_project {
            config = config.ingest_slots_per_project(per_project);
        }
        config
    }
}

/// A size: a number of bytes, or with `K`/`KiB`/`M`/`MiB`/`G`/`GiB`
/// (powers of 1024).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("expected a size like 4096, 4KiB or 8MiB; got {text:?}"))?;
    let unit: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "expected a size like 4096, 4KiB or 8MiB; got {text:?}"
            ))
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

fn parse_depth(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(depth) if (1..=VALUE_DEPTH_CEILING).contains(&depth) => Ok(depth),
        _ => Err(format!(
            "expected a depth from 1 to {VALUE_DEPTH_CEILING}; got {text:?}"
        )),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "expected a rate from 0 to 1, such as 0.1; got {text:?}"
        )),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::api::parse_duration_ns(text)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("expected a duration like 500ms, 30s, 5m or 1h; got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_bytes("8M"), Ok(8 << 20));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("4 parsecs").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
    }
}
