//! The OTLP sink (feature `otlp`): sends records to any OTLP receiver, such
//! as `omegi serve`, an OpenTelemetry Collector, Jaeger or Tempo, over
//! OTLP/HTTP with protobuf or (feature `grpc`) OTLP/gRPC.
//!
//! Spans go to the traces service as OTLP spans; errors go to the logs
//! service as ERROR log records following the OpenTelemetry exception
//! conventions, with `omegi.*` attributes for what those conventions have no
//! place for.

use std::fmt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use omegi_core::{Record, Resource};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use prost::Message as _;

use super::{CapturedBatch, Sink, SinkError};
use crate::env::{key_value_list, Environment};

mod encode;
#[cfg(feature = "grpc")]
mod grpc;
mod http;
mod wire;

/// The base URL used for OTLP/HTTP when neither the code nor the
/// environment names one.
const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
/// The URL used for OTLP/gRPC when neither the code nor the environment
/// names one.
const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// How long one export may take, retries included, unless configured.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries after a first failed attempt.
const MAX_RETRIES: u32 = 3;
/// The first pause between attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1_600);

/// How the OTLP sink talks to its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`, the default): spans
    /// to `<endpoint>/v1/traces`, errors to `<endpoint>/v1/logs`.
    HttpProtobuf,
    /// OTLP/gRPC (`grpc`, feature `grpc`): the endpoint is used as it is.
    Grpc,
}

impl OtlpProtocol {
    /// The protocol named as `OTEL_EXPORTER_OTLP_PROTOCOL` names it
    /// (`http/protobuf` or `grpc`); `None` for any other name (`http/json`
    /// is not supported).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim() {
            "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
            "grpc" => Some(OtlpProtocol::Grpc),
            _ => None,
        }
    }
}

/// Sends spans and errors over OTLP, from the exporter thread: OTLP/HTTP
/// with a blocking client (no async runtime), or OTLP/gRPC with a
/// single-threaded Tokio runtime of its own (feature `grpc`). Both use
/// rustls for `https://` endpoints, trusting the bundled Mozilla root
/// certificates (`webpki-roots`, so the platform's store is not read), or
/// only the CA certificates given by
/// [`ca_certificate_pem`](OtlpSinkBuilder::ca_certificate_pem) or
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`.
///
/// What the code sets wins; what it leaves unset comes from the
/// OpenTelemetry variables, as the specification names them (a signal's own
/// variable, `…_TRACES_…` for spans and `…_LOGS_…` for errors, wins over the
/// general one):
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_TRACES_PROTOCOL`, `…_LOGS_PROTOCOL` | `http/protobuf` or `grpc` (both signals must use the same) | `http/protobuf` |
/// | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL; HTTP appends `/v1/traces` and `/v1/logs`, gRPC uses it as it is | `http://localhost:4318` (HTTP), `http://localhost:4317` (gRPC) |
/// | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `…_LOGS_ENDPOINT` | the signal's URL, used as it is | from the base URL |
/// | `OTEL_EXPORTER_OTLP_HEADERS`, `…_TRACES_HEADERS`, `…_LOGS_HEADERS` | `key=value,key2=value2`, values percent-decoded, added to the code's | none |
/// | `OTEL_EXPORTER_OTLP_TIMEOUT`, `…_TRACES_TIMEOUT`, `…_LOGS_TIMEOUT` | milliseconds one export may take, retries included | 10,000 |
/// | `OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_TRACES_CERTIFICATE`, `…_LOGS_CERTIFICATE` | PEM file of the CA certificates to trust instead of the bundled roots | bundled roots |
///
/// Compression is not used (`OTEL_EXPORTER_OTLP_COMPRESSION` is not read).
///
/// The resource sent carries `service.name`, the [`Resource`]'s attributes,
/// and `telemetry.sdk.name = "omegi"`, by which `omegi serve` knows that
/// errors come as log records and not from failed spans.
///
/// What goes on the wire:
/// - A [`SpanRecord`](omegi_core::SpanRecord) becomes an OTLP span with the
///   same ids, parent (and whether it is remote), kind, times, attributes
///   and status; its target and level (when not INFO) go in `omegi.target`
///   and `omegi.level`, its location in `code.filepath`, `code.lineno` and
///   `code.namespace`. Each event becomes a span event named by its message,
///   with a `level` attribute, `omegi.target` when it differs from the
///   span's, `code.*`, and its fields.
/// - An [`ErrorRecord`](omegi_core::ErrorRecord) becomes an ERROR log record
///   with the trace and span ids, body = message, `exception.type`,
///   `exception.message`, `exception.stacktrace` (the causes as `caused by:
///   ...` lines), `thread.name`, `code.*`, `omegi.error.kind`,
///   `omegi.fingerprint`, `omegi.causes` (array of strings),
///   `omegi.span_stack` and `omegi.breadcrumbs` (JSON), `omegi.target`, then
///   the error's fields.
///
/// Unsigned attribute values above `i64::MAX` are sent as strings, and a
/// status message is sent for status Error only (OTLP keeps no other).
///
/// A request that fails for a reason worth retrying (no connection; HTTP
/// `429`, `502`, `503`, `504`; the gRPC codes the OTLP specification calls
/// retryable) is retried up to 3 times with exponential backoff (100 ms up
/// to 1.6 s, or as `Retry-After` says) within the timeout; after that its
/// records count as failed in [`OmegiGuard::stats`](crate::OmegiGuard::stats).
///
/// ```no_run
/// use omegi_layer::sink::OtlpSink;
/// use std::time::Duration;
///
/// // To `omegi serve` or a collector, with a token:
/// let sink = OtlpSink::builder()
///     .endpoint("https://otlp.example.com")
///     .bearer_token("secret")
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// // Or from the OTEL_EXPORTER_OTLP_* variables alone:
/// let from_env = OtlpSink::new()?;
/// # Ok::<(), omegi_layer::SinkError>(())
/// ```
pub struct OtlpSink {
    transport: Transport,
    traces: SignalConfig,
    logs: SignalConfig,
    scope: InstrumentationScope,
    /// The resource last sent, its OTLP form and that form encoded.
    resource: Option<(Resource, OtlpResource, Vec<u8>)>,
    /// The scope, encoded.
    scope_bytes: Vec<u8>,
    /// The encoded request, reused from batch to batch.
    buffer: Vec<u8>,
    /// Reused for the spans' requests over HTTP.
    traces_buffer: wire::Backward,
    /// What the span encoder keeps from batch to batch.
    constants: wire::Constants,
}

enum Transport {
    Http(http::HttpTransport),
    #[cfg(feature = "grpc")]
    Grpc(Box<grpc::GrpcTransport>),
}

impl fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers may hold secrets: not shown.
        f.debug_struct("OtlpSink")
            .field("protocol", &self.protocol())
            .field("traces", &self.traces.url)
            .field("logs", &self.logs.url)
            .finish_non_exhaustive()
    }
}

/// Where and how one signal (traces or logs) is sent.
#[derive(Clone)]
pub(crate) struct SignalConfig {
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) ca_pem: Option<Vec<u8>>,
}

/// Configures an [`OtlpSink`]: protocol, endpoint, headers, timeout, CA.
/// What is not set here comes from the OpenTelemetry variables (see
/// [`OtlpSink`]), read from [`environment`](Self::environment).
#[derive(Debug, Clone, Default)]
pub struct OtlpSinkBuilder {
    protocol: Option<OtlpProtocol>,
    endpoint: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    ca: Option<CaSource>,
    environment: Environment,
}

#[derive(Clone)]
enum CaSource {
    Pem(Vec<u8>),
    File(PathBuf),
}

impl fmt::Debug for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaSource::Pem(pem) => write!(f, "Pem({} bytes)", pem.len()),
            CaSource::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

impl OtlpSinkBuilder {
    /// The protocol (default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    /// `http/protobuf`).
    pub fn protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// The receiver's base URL, e.g. `http://localhost:4318`: for OTLP/HTTP,
    /// `/v1/traces` and `/v1/logs` are appended; for OTLP/gRPC it is used as
    /// it is. Wins over the `OTEL_EXPORTER_OTLP_*ENDPOINT` variables.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Adds a header (gRPC: metadata) to every request; wins over the same
    /// header from `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>` to every request.
    pub fn bearer_token(self, token: impl AsRef<str>) -> Self {
        let value = format!("Bearer {}", token.as_ref());
        self.header("authorization", value)
    }

    /// How long one export may take, retries included (default:
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, else 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Trusts only the CA certificates of this PEM bundle for `https://`
    /// endpoints, instead of the bundled roots (a private CA, a
    /// self-signed collector). Wins over `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(CaSource::Pem(pem.into()));
        self
    }

    /// [`ca_certificate_pem`](Self::ca_certificate_pem) read from a file
    /// when the sink is built.
    pub fn ca_certificate_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca = Some(CaSource::File(path.as_ref().to_owned()));
        self
    }

    /// Where the `OTEL_EXPORTER_OTLP_*` variables are read (default: the
    /// process environment).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// Builds the sink. Fails with a message naming the setting when the
    /// protocol is unknown (or needs a feature not built), an endpoint is
    /// not an `http://` or `https://` URL, a header or timeout variable
    /// cannot be read, or a CA certificate file cannot be read or holds no
    /// certificate; nothing is sent yet.
    pub fn build(self) -> Result<OtlpSink, SinkError> {
        let env = &self.environment;
        let protocol = match self.protocol {
            Some(p) => p,
            None => env_protocol(env)?,
        };
        let traces = self.signal(protocol, "TRACES", "/v1/traces")?;
        let logs = self.signal(protocol, "LOGS", "/v1/logs")?;
        let transport = match protocol {
            OtlpProtocol::HttpProtobuf => {
                if traces.ca_pem != logs.ca_pem {
                    return Err(SinkError::new(
                        "the traces and logs CA certificates differ; one CA serves both over HTTP",
                    ));
                }
                Transport::Http(
                    http::HttpTransport::new(traces.ca_pem.as_deref()).map_err(SinkError::new)?,
                )
            }
            #[cfg(feature = "grpc")]
            OtlpProtocol::Grpc => Transport::Grpc(Box::new(
                grpc::GrpcTransport::new(&traces, &logs).map_err(SinkError::new)?,
            )),
            #[cfg(not(feature = "grpc"))]
            OtlpProtocol::Grpc => {
                return Err(SinkError::new(
                    "OTLP/gRPC needs omegi-layer's feature `grpc`",
                ))
            }
        };
        let scope = encode::scope();
        Ok(OtlpSink {
            transport,
            traces,
            logs,
            scope_bytes: scope.encode_to_vec(),
            scope,
            resource: None,
            buffer: Vec::new(),
            traces_buffer: wire::Backward::default(),
            constants: wire::Constants::default(),
        })
    }

    /// The settings of one signal: the code's, else the signal's variable,
    /// else the general one, else the default.
    fn signal(
        &self,
        protocol: OtlpProtocol,
        signal: &str,
        path: &str,
    ) -> Result<SignalConfig, SinkError> {
        let env = &self.environment;
        let var = |name: &str| {
            let specific = format!("OTEL_EXPORTER_OTLP_{signal}_{name}");
            env.get(&specific).map(|v| (specific, v)).or_else(|| {
                let general = format!("OTEL_EXPORTER_OTLP_{name}");
                env.get(&general).map(|v| (general, v))
            })
        };
        let join = |base: &str| match protocol {
            OtlpProtocol::HttpProtobuf => format!("{}{path}", base.trim_end_matches('/')),
            OtlpProtocol::Grpc => base.to_owned(),
        };
        let url = if let Some(base) = &self.endpoint {
            join(base.trim())
        } else if let Some(url) = env.get(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")) {
            url.trim().to_owned()
        } else if let Some(base) = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            join(base.trim())
        } else {
            join(match protocol {
                OtlpProtocol::HttpProtobuf => DEFAULT_HTTP_ENDPOINT,
                OtlpProtocol::Grpc => DEFAULT_GRPC_ENDPOINT,
            })
        };
        check_url(&url)?;

        let mut headers: Vec<(String, String)> = Vec::new();
        let mut add = |name: String, value: String| {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            headers.push((name, value));
        };
        if let Some(list) = env.get("OTEL_EXPORTER_OTLP_HEADERS") {
            key_value_list(&list).for_each(|(k, v)| add(k, v));
        }
        if let Some(list) = env.get(&format!("OTEL_EXPORTER_OTLP_{signal}_HEADERS")) {
            key_value_list(&list).for_each(|(k, v)| add(k, v));
        }
        for (k, v) in &self.headers {
            add(k.clone(), v.clone());
        }

        let timeout = match (self.timeout, var("TIMEOUT")) {
            (Some(timeout), _) => timeout,
            (None, Some((name, ms))) => ms
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| SinkError::new(format!("{name}: `{ms}` is not milliseconds")))?,
            (None, None) => DEFAULT_TIMEOUT,
        };

        let ca_pem = match (&self.ca, var("CERTIFICATE")) {
            (Some(CaSource::Pem(pem)), _) => Some(pem.clone()),
            (Some(CaSource::File(path)), _) => Some(read_ca(path, "the CA certificate file")?),
            (None, Some((name, path))) => Some(read_ca(Path::new(path.trim()), &name)?),
            (None, None) => None,
        };
        if let Some(pem) = &ca_pem {
            // Refused now rather than at the first export.
            http::ca_certificates(pem).map_err(SinkError::new)?;
        }
        Ok(SignalConfig {
            url,
            headers,
            timeout,
            ca_pem,
        })
    }
}

/// The protocol named by the environment, `http/protobuf` when none is.
fn env_protocol(env: &Environment) -> Result<OtlpProtocol, SinkError> {
    let parse = |name: &str| -> Result<Option<OtlpProtocol>, SinkError> {
        env.get(name)
            .map(|value| {
                OtlpProtocol::from_name(&value).ok_or_else(|| {
                    SinkError::new(format!(
                        "{name}: `{value}` is not supported (http/protobuf or grpc)"
                    ))
                })
            })
            .transpose()
    };
    let general = parse("OTEL_EXPORTER_OTLP_PROTOCOL")?;
    let traces = parse("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")?.or(general);
    let logs = parse("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")?.or(general);
    match (traces, logs) {
        (Some(t), Some(l)) if t != l => Err(SinkError::new(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL and OTEL_EXPORTER_OTLP_LOGS_PROTOCOL differ; one protocol serves both",
        )),
        (t, l) => Ok(t.or(l).unwrap_or(OtlpProtocol::HttpProtobuf)),
    }
}

/// An `http://` or `https://` URL with a host.
fn check_url(url: &str) -> Result<(), SinkError> {
    let invalid = || SinkError::new(format!("invalid OTLP endpoint `{}`", redact(url)));
    let uri: ::http::Uri = url.parse().map_err(|_| invalid())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(()),
        _ => Err(invalid()),
    }
}

/// `url` without its query (which may hold a secret).
fn redact(url: &str) -> &str {
    url.split_once('?').map_or(url, |(base, _)| base)
}

fn read_ca(path: &Path, setting: &str) -> Result<Vec<u8>, SinkError> {
    std::fs::read(path)
        .map_err(|e| SinkError::new(format!("{setting}: cannot read {}: {e}", path.display())))
}

/// What one attempt of a request came to.
pub(crate) enum Attempt {
    Done,
    Retry {
        error: String,
        after: Option<Duration>,
    },
    Fail(String),
}

/// Runs `attempt` (given the time left) until it is done, fails for good,
/// has been retried [`MAX_RETRIES`] times or the deadline has passed.
pub(crate) fn retry(
    deadline: Instant,
    mut attempt: impl FnMut(Duration) -> Attempt,
) -> Result<(), String> {
    let mut backoff = FIRST_BACKOFF;
    let mut retries = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err("timed out".to_owned());
        }
        match attempt(remaining) {
            Attempt::Done => return Ok(()),
            Attempt::Fail(error) => return Err(error),
            Attempt::Retry { error, after } => {
                let pause = after.unwrap_or(backoff);
                let remaining = deadline.saturating_duration_since(Instant::now());
                if retries == MAX_RETRIES || pause >= remaining {
                    return Err(error);
                }
                thread::sleep(pause);
                retries += 1;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

impl OtlpSink {
    /// A sink configured from the `OTEL_EXPORTER_OTLP_*` variables alone,
    /// else sending OTLP/HTTP to `http://localhost:4318`.
    pub fn new() -> Result<Self, SinkError> {
        Self::builder().build()
    }

    /// A sink sending to the receiver at `url` (a base URL such as
    /// `http://localhost:4318`).
    pub fn with_endpoint(url: impl Into<String>) -> Result<Self, SinkError> {
        Self::builder().endpoint(url).build()
    }

    /// A builder for protocol, headers (authentication), timeout and CA.
    pub fn builder() -> OtlpSinkBuilder {
        OtlpSinkBuilder::default()
    }

    /// The default base URL of OTLP/HTTP when nothing is configured.
    pub const DEFAULT_ENDPOINT: &'static str = DEFAULT_HTTP_ENDPOINT;

    /// The protocol this sink speaks.
    pub fn protocol(&self) -> OtlpProtocol {
        match self.transport {
            Transport::Http(_) => OtlpProtocol::HttpProtobuf,
            #[cfg(feature = "grpc")]
            Transport::Grpc(_) => OtlpProtocol::Grpc,
        }
    }

    /// The URLs spans and errors are sent to.
    pub fn urls(&self) -> (&str, &str) {
        (&self.traces.url, &self.logs.url)
    }

    /// Makes `resource` the one `self.resource` holds, in its OTLP forms.
    fn set_resource(&mut self, resource: &Resource) {
        if !matches!(&self.resource, Some((r, _, _)) if r == resource) {
            let otlp = encode::resource(resource);
            let bytes = otlp.encode_to_vec();
            self.resource = Some((resource.clone(), otlp, bytes));
        }
    }

    fn otlp_resource(&self) -> OtlpResource {
        self.resource
            .as_ref()
            .map(|(_, otlp, _)| otlp.clone())
            .unwrap_or_default()
    }

    fn export_spans(&mut self, spans: Vec<omegi_core::SpanRecord>) -> Result<(), String> {
        match &mut self.transport {
            Transport::Http(http) => {
                // Encoded straight from the records, into reused buffers.
                let resource = self.resource.as_ref().map_or(&[][..], |(_, _, b)| b);
                wire::traces_request(
                    resource,
                    &self.scope_bytes,
                    spans.iter(),
                    &mut self.constants,
                    &mut self.traces_buffer,
                );
                drop(spans);
                http.post(&self.traces, self.traces_buffer.as_slice())
            }
            #[cfg(feature = "grpc")]
            Transport::Grpc(grpc) => {
                let resource = self
                    .resource
                    .as_ref()
                    .map(|(_, otlp, _)| otlp.clone())
                    .unwrap_or_default();
                let spans = spans.into_iter().map(encode::span).collect();
                let request = encode::traces_request(resource, self.scope.clone(), spans);
                grpc.export_traces(&self.traces, &request)
            }
        }
    }

    fn export_errors(&mut self, errors: Vec<omegi_core::ErrorRecord>) -> Result<(), String> {
        let records = errors.into_iter().map(encode::log_record).collect();
        let request = encode::logs_request(self.otlp_resource(), self.scope.clone(), records);
        match &mut self.transport {
            Transport::Http(http) => {
                self.buffer.clear();
                request
                    .encode(&mut self.buffer)
                    .map_err(|e| e.to_string())?;
                http.post(&self.logs, &self.buffer)
            }
            #[cfg(feature = "grpc")]
            Transport::Grpc(grpc) => grpc.export_logs(&self.logs, &request),
        }
    }
}

impl Sink for OtlpSink {
    /// Over HTTP, encodes the spans straight from the captured data into a
    /// reused buffer: no record, no allocation per span.
    fn export_captured(
        &mut self,
        batch: &mut CapturedBatch,
        resource: &Resource,
    ) -> Result<(), SinkError> {
        self.set_resource(resource);
        let http = match &self.transport {
            Transport::Http(http) => http,
            #[cfg(feature = "grpc")]
            Transport::Grpc(_) => {
                let records = batch.take_records(resource);
                return self.export(records, resource);
            }
        };
        // Both are attempted; the first failure is reported.
        let spans_result = if batch.spans().next().is_none() {
            Ok(())
        } else {
            let resource = self.resource.as_ref().map_or(&[][..], |(_, _, b)| b);
            wire::traces_request(
                resource,
                &self.scope_bytes,
                batch.spans(),
                &mut self.constants,
                &mut self.traces_buffer,
            );
            http.post(&self.traces, self.traces_buffer.as_slice())
                .map_err(|e| SinkError::new(format!("OTLP span export failed: {e}")))
        };
        let errors = batch.take_errors();
        let errors_result = if errors.is_empty() {
            Ok(())
        } else {
            self.export_errors(errors)
                .map_err(|e| SinkError::new(format!("OTLP log export failed: {e}")))
        };
        spans_result.and(errors_result)
    }

    fn export(&mut self, batch: Vec<Record>, resource: &Resource) -> Result<(), SinkError> {
        self.set_resource(resource);
        let mut spans = Vec::new();
        let mut errors = Vec::new();
        for record in batch {
            match record {
                Record::Span(s) => spans.push(s),
                Record::Error(e) => errors.push(e),
            }
        }
        // Both are attempted; the first failure is reported.
        let spans_result = if spans.is_empty() {
            Ok(())
        } else {
            self.export_spans(spans)
                .map_err(|e| SinkError::new(format!("OTLP span export failed: {e}")))
        };
        let errors_result = if errors.is_empty() {
            Ok(())
        } else {
            self.export_errors(errors)
                .map_err(|e| SinkError::new(format!("OTLP log export failed: {e}")))
        };
        spans_result.and(errors_result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> OtlpSinkBuilder {
        OtlpSink::builder().environment(Environment::from_vars(vars.iter().copied()))
    }

    #[test]
    fn builder_rejects_an_invalid_endpoint() {
        let err = OtlpSink::with_endpoint("not a url at all").unwrap_err();
        assert!(err.to_string().contains("endpoint"), "{err}");
        let err = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x?token=secret")])
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("ftp://x") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn without_settings_it_sends_http_to_the_opentelemetry_default() {
        let sink = env(&[]).build().unwrap();
        assert_eq!(sink.protocol(), OtlpProtocol::HttpProtobuf);
        assert_eq!(
            sink.urls(),
            (
                "http://localhost:4318/v1/traces",
                "http://localhost:4318/v1/logs"
            )
        );
        assert_eq!(sink.traces.timeout, DEFAULT_TIMEOUT);
        assert!(sink.traces.headers.is_empty() && sink.traces.ca_pem.is_none());
    }

    #[test]
    fn signal_variables_win_over_the_general_ones_and_code_over_both() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://logs:9000/custom",
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20t0k,x-a=1",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-a=2"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "700"),
        ];
        let sink = env(&vars).build().unwrap();
        assert_eq!(
            sink.urls(),
            ("http://collector:4318/v1/traces", "http://logs:9000/custom")
        );
        let header = |signal: &SignalConfig, name: &str| {
            signal
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header(&sink.traces, "authorization").as_deref(),
            Some("Bearer t0k")
        );
        assert_eq!(header(&sink.traces, "x-a").as_deref(), Some("2"));
        assert_eq!(header(&sink.logs, "x-a").as_deref(), Some("1"));
        assert_eq!(sink.traces.timeout, Duration::from_millis(2500));
        assert_eq!(sink.logs.timeout, Duration::from_millis(700));

        let sink = env(&vars)
            .endpoint("https://code:1")
            .header("X-A", "code")
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        assert_eq!(
            sink.urls(),
            ("https://code:1/v1/traces", "https://code:1/v1/logs")
        );
        assert_eq!(header(&sink.logs, "X-A").as_deref(), Some("code"));
        assert_eq!(header(&sink.logs, "x-a"), None);
        assert_eq!(sink.logs.timeout, Duration::from_secs(1));
    }

    #[test]
    fn grpc_uses_its_own_default_port_and_the_endpoint_as_it_is() {
        let sink = env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).build();
        #[cfg(feature = "grpc")]
        {
            let sink = sink.unwrap();
            assert_eq!(sink.protocol(), OtlpProtocol::Grpc);
            assert_eq!(
                sink.urls(),
                ("http://localhost:4317", "http://localhost:4317")
            );
            let sink = env(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ])
            .build()
            .unwrap();
            assert_eq!(
                sink.urls(),
                ("http://collector:4317", "http://collector:4317")
            );
        }
        #[cfg(not(feature = "grpc"))]
        assert!(sink.unwrap_err().to_string().contains("grpc"));
    }

    #[test]
    fn bad_settings_are_named_in_the_error() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                    ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
                ],
                "differ",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon")],
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")],
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ),
        ];
        for (vars, expected) in cases {
            let err = env(vars).build().unwrap_err().to_string();
            assert!(err.contains(expected), "{vars:?}: {err}");
        }
        let err = OtlpSink::builder()
            .ca_certificate_pem("not a certificate")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("CA certificate"), "{err}");
    }

    #[test]
    fn retries_stop_at_the_limit_and_at_the_deadline() {
        let mut attempts = 0;
        let result = retry(Instant::now() + Duration::from_secs(60), |_| {
            attempts += 1;
            Attempt::Retry {
                error: "busy".into(),
                after: Some(Duration::from_millis(1)),
            }
        });
        assert_eq!(result, Err("busy".into()));
        assert_eq!(attempts, 1 + MAX_RETRIES);

        let mut attempts = 0;
        let result = retry(Instant::now() + Duration::from_secs(60), |_| {
            attempts += 1;
            // A pause longer than the time left is not waited for.
            Attempt::Retry {
                error: "later".into(),
                after: Some(Duration::from_secs(3600)),
            }
        });
        assert_eq!((result, attempts), (Err("later".into()), 1));

        let mut attempts = 0;
        let result = retry(Instant::now() + Duration::from_secs(60), |_| {
            attempts += 1;
            if attempts == 2 {
                Attempt::Done
            } else {
                Attempt::Retry {
                    error: "once".into(),
                    after: Some(Duration::from_millis(1)),
                }
            }
        });
        assert_eq!((result, attempts), (Ok(()), 2));
        assert_eq!(
            retry(Instant::now() + Duration::from_secs(60), |_| Attempt::Fail(
                "no".into()
            )),
            Err("no".into())
        );
    }
}
