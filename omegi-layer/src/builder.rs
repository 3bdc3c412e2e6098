//! Configuration of the layer: service, resource, sink, limits.

use std::time::Duration;

use omegi_core::{Attribute, Resource};
use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;

use crate::env::{key_value_list, Environment};
use crate::export::{self, ExportConfig, OmegiGuard};
use crate::layer::OmegiLayer;
use crate::limits::{Limits, MIN_TEXT_BYTES};
use crate::sink::{NullSink, Sink, SinkError};

/// Starts configuring a layer for the service `service`.
///
/// The name set here wins over `OTEL_SERVICE_NAME`; use [`builder`] to take
/// the name from the environment.
pub fn layer(service: impl Into<String>) -> OmegiBuilder {
    OmegiBuilder {
        service: Some(service.into()),
        ..OmegiBuilder::default()
    }
}

/// Starts configuring a layer whose service name comes from
/// `OTEL_SERVICE_NAME`, or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, or
/// `unknown_service` as OpenTelemetry specifies.
pub fn builder() -> OmegiBuilder {
    OmegiBuilder::default()
}

/// Configures an [`OmegiLayer`]; finish with [`build`](OmegiBuilder::build).
pub struct OmegiBuilder {
    service: Option<String>,
    attributes: Vec<Attribute>,
    sink: Option<Box<dyn Sink>>,
    capacity: usize,
    queue_bytes: usize,
    batch_size: usize,
    interval: Duration,
    flush_timeout: Duration,
    limits: Limits,
    panic_hook: bool,
    environment: Environment,
}

impl Default for OmegiBuilder {
    fn default() -> Self {
        OmegiBuilder {
            service: None,
            attributes: Vec::new(),
            sink: None,
            capacity: 16_384,
            queue_bytes: 8 * 1024 * 1024,
            batch_size: 512,
            interval: Duration::from_millis(500),
            flush_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            panic_hook: false,
            environment: Environment::process(),
        }
    }
}

impl std::fmt::Debug for OmegiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OmegiBuilder")
            .field("service", &self.service)
            .field("capacity", &self.capacity)
            .field("queue_bytes", &self.queue_bytes)
            .field("batch_size", &self.batch_size)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl OmegiBuilder {
    /// Where records go. Without a sink, the layer sends them over OTLP as
    /// the `OTEL_EXPORTER_OTLP_*` variables say (see
    /// [`OtlpSink`](crate::sink::OtlpSink); feature `otlp`, on by default),
    /// to `http://localhost:4318` when none is set. Discarding is a choice:
    /// `with_sink(NullSink)`.
    pub fn with_sink(mut self, sink: impl Sink) -> Self {
        self.sink = Some(Box::new(sink));
        self
    }

    /// Adds a resource attribute (e.g. `deployment.environment`); wins over
    /// the same key in `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn with_resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<omegi_core::Value>,
    ) -> Self {
        self.attributes.push(Attribute::new(key, value));
        self
    }

    /// How many finished records may wait for the exporter (default 16,384).
    /// When the queue is full, new records are dropped and counted. The
    /// queue's slots are allocated up front (about 40 bytes each, with the
    /// queue that hands span data back for reuse).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// How much memory the records held for export may take, in estimated
    /// bytes (default 8 MiB): records waiting in the queue, the batch in the
    /// sink's hands until it returns, and span data waiting to be reused.
    /// A span counts twice (its data and the record made of it). A record
    /// that does not fit is dropped and counted, never waited for, so a sink
    /// that hangs costs the application at most this much.
    ///
    /// The estimate is kept cheaply as each record is queued and errs on the
    /// high side: a span with two short fields and one event counts about
    /// 1.1 KiB, so the default holds about 7,000 such spans, and the
    /// exporter is woken early when half of it is used.
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// Records per batch handed to the sink (default 512).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }

    /// How often a partial batch is exported (default 500 ms).
    pub fn export_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long dropping the guard waits for the last export (default 5 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Longest field value, message, error message or cause kept, in bytes
    /// (default 4 KiB, at least 64). Longer text is cut on a char boundary
    /// and ends with `…[truncated N bytes]`, within this length, by the
    /// rule the collector applies too (`omegi_core::limits`); formatting a
    /// longer value keeps no more and stops 64 KiB past the limit.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.limits.text.value_bytes = bytes.max(MIN_TEXT_BYTES);
        self
    }

    /// Longest `exception.stacktrace` field kept, in bytes (default 32 KiB;
    /// never less than [`max_value_bytes`](Self::max_value_bytes)): the
    /// panic hook's backtrace, which is longer than most values.
    pub fn max_stacktrace_bytes(mut self, bytes: usize) -> Self {
        self.limits.text.stacktrace_bytes = bytes;
        self
    }

    /// Causes (`Error::source`) kept per error (default 32); the rest of
    /// the chain is left out.
    pub fn max_error_causes(mut self, count: usize) -> Self {
        self.limits.text.error_causes = count;
        self
    }

    /// Events kept per span (default 128); later ones are counted in the
    /// span's `dropped_events` (OTLP `dropped_events_count`).
    pub fn max_events_per_span(mut self, max: usize) -> Self {
        self.limits.max_events_per_span = max;
        self
    }

    /// Earlier events of the same trace attached to an error (default 32),
    /// the most recent ones, within [`breadcrumb_bytes`](Self::breadcrumb_bytes).
    pub fn breadcrumbs(mut self, count: usize) -> Self {
        self.limits.breadcrumbs = count;
        self
    }

    /// Estimated bytes of the breadcrumbs kept per trace and attached to an
    /// error (default 64 KiB): older events make room for newer ones, and an
    /// event larger than this is not kept as a breadcrumb.
    pub fn breadcrumb_bytes(mut self, bytes: usize) -> Self {
        self.limits.breadcrumb_bytes = bytes;
        self
    }

    /// Frames of an error's span stack (default 32, at least 2): the root
    /// and the nearest spans. The number of spans left out between them is
    /// the error's field `omegi.dropped_span_frames`.
    pub fn max_span_frames(mut self, count: usize) -> Self {
        self.limits.max_span_frames = count.max(2);
        self
    }

    /// Estimated bytes of span fields in an error's span stack (default
    /// 64 KiB), nearest frames first; fields past it are left out and
    /// counted in the error's field `omegi.dropped_span_fields`.
    pub fn span_stack_bytes(mut self, bytes: usize) -> Self {
        self.limits.span_stack_bytes = bytes;
        self
    }

    /// Also records panics, with the span stack of the panicking thread, by
    /// installing a panic hook that calls the previous one afterwards.
    pub fn with_panic_hook(mut self) -> Self {
        self.panic_hook = true;
        self
    }

    /// Where the `OTEL_*` variables are read: `OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED` and, for the default
    /// sink, `OTEL_EXPORTER_OTLP_*` (default: the process environment).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The resource this builder describes, after reading the environment.
    pub fn resource(&self) -> Resource {
        resource_from(
            self.service.clone(),
            &self.attributes,
            self.environment.get("OTEL_SERVICE_NAME"),
            self.environment.get("OTEL_RESOURCE_ATTRIBUTES"),
        )
    }

    /// Starts the exporter thread and returns the layer and its guard.
    ///
    /// Keep the guard alive: dropping it flushes and stops the exporter.
    ///
    /// With `OTEL_SDK_DISABLED=true` the layer captures nothing, exports
    /// nothing and installs no panic hook. When the default OTLP sink cannot
    /// be configured from the environment (see [`try_build`](Self::try_build)),
    /// the reason is printed to standard error once and every record counts
    /// as failed in [`OmegiGuard::stats`]: nothing is discarded silently.
    pub fn build<S>(self) -> (OmegiLayer<S>, OmegiGuard)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut builder = self;
        match builder.sink_or_default() {
            Ok(sink) => builder.start(sink),
            Err(err) => {
                let message = omegi_core::ErrorChain(&err).to_string();
                eprintln!("omegi-layer: {message}; records will count as failed");
                builder.start(Box::new(Unconfigured(message)))
            }
        }
    }

    /// [`build`](Self::build), but fails when no sink was given and the
    /// default OTLP sink cannot be configured: an unsupported
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, an invalid endpoint, timeout or
    /// header, an unreadable `OTEL_EXPORTER_OTLP_CERTIFICATE`, or a build
    /// without the `otlp` feature.
    pub fn try_build<S>(mut self) -> Result<(OmegiLayer<S>, OmegiGuard), SinkError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let sink = self.sink_or_default()?;
        Ok(self.start(sink))
    }

    /// The sink given, else the default one; none is needed when the layer
    /// is disabled.
    fn sink_or_default(&mut self) -> Result<Box<dyn Sink>, SinkError> {
        if self.environment.sdk_disabled() {
            return Ok(Box::new(NullSink));
        }
        match self.sink.take() {
            Some(sink) => Ok(sink),
            None => default_sink(&self.environment),
        }
    }

    fn start<S>(self, sink: Box<dyn Sink>) -> (OmegiLayer<S>, OmegiGuard)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let active = !self.environment.sdk_disabled();
        let resource = self.resource();
        let (queue, guard) = export::start(
            sink,
            resource,
            ExportConfig {
                capacity: self.capacity,
                max_bytes: self.queue_bytes,
                batch_size: self.batch_size,
                interval: self.interval,
                flush_timeout: self.flush_timeout,
            },
        );
        if self.panic_hook && active {
            crate::panic::install();
        }
        (OmegiLayer::new(queue, self.limits, active), guard)
    }
}

/// The sink used when the code gives none: OTLP as the environment says.
fn default_sink(environment: &Environment) -> Result<Box<dyn Sink>, SinkError> {
    #[cfg(feature = "otlp")]
    {
        crate::sink::OtlpSink::builder()
            .environment(environment.clone())
            .build()
            .map(|sink| Box::new(sink) as Box<dyn Sink>)
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = environment;
        Err(SinkError::new(
            "no sink: give one with `with_sink`, or build omegi-layer with its feature `otlp`",
        ))
    }
}

/// Stands in for a default sink that could not be configured: every export
/// fails with the reason, so records count as failed.
struct Unconfigured(String);

impl Sink for Unconfigured {
    fn export(
        &mut self,
        _batch: Vec<omegi_core::Record>,
        _resource: &Resource,
    ) -> Result<(), SinkError> {
        Err(SinkError::new(self.0.clone()))
    }
}

/// Builds the resource: the code's settings win over the environment.
fn resource_from(
    service: Option<String>,
    code_attributes: &[Attribute],
    env_service: Option<String>,
    env_attributes: Option<String>,
) -> Resource {
    let mut attributes: Vec<Attribute> = Vec::new();
    let mut env_service_attr = None;
    for (key, value) in key_value_list(env_attributes.as_deref().unwrap_or("")) {
        let key = key.as_str();
        if key == "service.name" {
            env_service_attr = Some(value);
        } else {
            attributes.retain(|a| a.key != key);
            attributes.push(Attribute::new(key, value));
        }
    }
    for attr in code_attributes {
        attributes.retain(|a| a.key != attr.key);
        attributes.push(attr.clone());
    }
    for (key, value) in [
        ("telemetry.sdk.name", "omegi"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ] {
        attributes.retain(|a| a.key != key);
        attributes.push(Attribute::new(key, value));
    }
    let service = service
        .filter(|s| !s.is_empty())
        .or(env_service.filter(|s| !s.is_empty()))
        .or(env_service_attr.filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown_service".to_owned());
    Resource::new(service).with_attributes(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use omegi_core::{attribute, Value};

    #[test]
    fn code_wins_over_environment() {
        let r = resource_from(
            Some("payment".into()),
            &[Attribute::new("team", "pay")],
            Some("from-env".into()),
            Some("team=env,region=eu%2Dwest".into()),
        );
        assert_eq!(r.service, "payment");
        assert_eq!(attribute(&r.attributes, "team"), Some(&Value::from("pay")));
        assert_eq!(
            attribute(&r.attributes, "region"),
            Some(&Value::from("eu-west"))
        );
    }

    #[test]
    fn environment_names_the_service_when_code_does_not() {
        let r = resource_from(None, &[], Some("inventory".into()), None);
        assert_eq!(r.service, "inventory");
        let r = resource_from(None, &[], None, Some("service.name=user,x=1".into()));
        assert_eq!(r.service, "user");
        assert_eq!(attribute(&r.attributes, "service.name"), None);
        let r = resource_from(None, &[], None, Some("garbage,,=".into()));
        assert_eq!(r.service, "unknown_service");
        assert_eq!(
            attribute(&r.attributes, "telemetry.sdk.name"),
            Some(&Value::from("omegi"))
        );
    }
}
