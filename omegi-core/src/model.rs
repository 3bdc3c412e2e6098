//! The captured-data model: what a layer records and a store keeps.
//!
//! A [`SpanRecord`] is one unit of work in one service, with its
//! [`EventRecord`]s. An [`ErrorRecord`] is one error as it happened: its
//! message and `source` chain, the span stack that led to it, and the
//! breadcrumbs logged before it. Both are plain serde types so that any sink,
//! store or wire format can carry them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{SpanId, TraceId};

/// Severity, as in `tracing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Very verbose.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected, not yet an error.
    Warn,
    /// An error.
    Error,
}

impl Level {
    /// The level's name in upper case, as logs print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer too large for `i64`.
    U64(u64),
    /// A float.
    F64(f64),
    /// Text (also what `Display` and `Debug` values become).
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Str(v) => f.write_str(v),
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::U64(v), Value::I64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// A named, typed field of a span or event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// The field name.
    pub key: String,
    /// The field value.
    pub value: Value,
}

impl Attribute {
    /// An attribute from a key and anything that converts to a [`Value`].
    pub fn new(key: impl Into<String>, value: impl Into<Value>) -> Self {
        Attribute {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Finds an attribute's value by key.
pub fn attribute<'a>(attributes: &'a [Attribute], key: &str) -> Option<&'a Value> {
    attributes.iter().find(|a| a.key == key).map(|a| &a.value)
}

/// Text that is most often known when the program is compiled (a target, a
/// span's name, a source file): borrowed then, so that capturing it costs no
/// allocation; owned when it comes from elsewhere (decoding, a name chosen
/// at run time). Serialized as a plain string.
pub type Text = std::borrow::Cow<'static, str>;

/// Where in the source code something was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodeLocation {
    /// Source file.
    pub file: Option<Text>,
    /// Line in the file.
    pub line: Option<u32>,
    /// Rust module path.
    pub module: Option<Text>,
}

impl fmt::Display for CodeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}"),
            (Some(file), None) => f.write_str(file),
            _ => f.write_str(self.module.as_deref().unwrap_or("<unknown>")),
        }
    }
}

/// The outcome of a span, as in OpenTelemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing said.
    #[default]
    Unset,
    /// Explicitly succeeded.
    Ok,
    /// Failed: an error happened in the span.
    Error,
}

/// The role of a span in a request, as in OpenTelemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    /// Work inside a service.
    #[default]
    Internal,
    /// Handling an incoming request.
    Server,
    /// Sending an outgoing request.
    Client,
    /// Sending a message.
    Producer,
    /// Receiving a message.
    Consumer,
}

/// Something logged at a point in time, inside a span or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When, in ns since the Unix epoch.
    pub time_ns: u64,
    /// Severity.
    pub level: Level,
    /// The `tracing` target (usually the module path).
    pub target: Text,
    /// The `message` field, or empty.
    pub message: String,
    /// The other fields.
    pub fields: Vec<Attribute>,
    /// Where it was logged.
    pub location: CodeLocation,
}

/// One unit of work in one service, finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// The parent span, local or remote; `None` for a trace root.
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent lives in another process (the span joined a remote trace).
    #[serde(default)]
    pub remote_parent: bool,
    /// The service that recorded the span.
    pub service: String,
    /// The span's name.
    pub name: Text,
    /// The `tracing` target.
    pub target: Text,
    /// The span's level.
    pub level: Level,
    /// The span's role.
    #[serde(default)]
    pub kind: SpanKind,
    /// Start, in ns since the Unix epoch.
    pub start_ns: u64,
    /// End, in ns since the Unix epoch.
    pub end_ns: u64,
    /// Fields, including values recorded after creation.
    pub attributes: Vec<Attribute>,
    /// Events logged inside the span, oldest first, capped.
    pub events: Vec<EventRecord>,
    /// Events not kept because of the cap.
    #[serde(default)]
    pub dropped_events: u32,
    /// Outcome.
    pub status: Status,
    /// Why the span failed, when it did.
    #[serde(default)]
    pub status_message: Option<String>,
    /// Where the span was declared.
    pub location: CodeLocation,
}

impl SpanRecord {
    /// Duration in ns (zero if the clock went backwards).
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The value of one attribute.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        attribute(&self.attributes, key)
    }
}

/// A span on the stack at the moment of an error: from the root to the current span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanFrame {
    /// The span's id.
    pub span_id: SpanId,
    /// The span's name.
    pub name: String,
    /// The span's target.
    pub target: String,
    /// The span's fields at the time of the error.
    pub fields: Vec<Attribute>,
    /// Where the span was declared.
    pub location: CodeLocation,
}

impl SpanFrame {
    /// `span` as a frame of a span stack, with its fields or not.
    pub fn of(span: &SpanRecord, with_fields: bool) -> SpanFrame {
        SpanFrame {
            span_id: span.span_id,
            name: span.name.to_string(),
            target: span.target.to_string(),
            fields: if with_fields {
                span.attributes.clone()
            } else {
                Vec::new()
            },
            location: span.location.clone(),
        }
    }
}

/// How an error was captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// An event at ERROR level or with an error field.
    #[default]
    Event,
    /// A panic, caught by the panic hook.
    Panic,
    /// An error reported over the wire (OTLP `exception` event, error log, failed span).
    Remote,
}

/// One error as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The trace the error happened in, if it was inside a span.
    pub trace_id: Option<TraceId>,
    /// The innermost span at the time of the error.
    pub span_id: Option<SpanId>,
    /// The service that recorded it.
    pub service: String,
    /// When, in ns since the Unix epoch.
    pub time_ns: u64,
    /// How it was captured.
    pub kind: ErrorKind,
    /// The error's message (the event message, or the error's `Display`).
    pub message: String,
    /// The `Error::source` chain, outermost cause first, not including `message`.
    pub causes: Vec<String>,
    /// The error's type, where known.
    pub error_type: Option<String>,
    /// The event's target.
    pub target: String,
    /// The event's other fields.
    pub fields: Vec<Attribute>,
    /// The spans from the root to the innermost one, with their fields.
    pub span_stack: Vec<SpanFrame>,
    /// Earlier events of the same trace in this process, oldest first.
    pub breadcrumbs: Vec<EventRecord>,
    /// Where the error was logged.
    pub location: CodeLocation,
    /// The thread's name, or its id when unnamed.
    pub thread: Option<String>,
    /// An explicit grouping key from the `omegi.fingerprint` field.
    pub fingerprint: Option<String>,
}

impl ErrorRecord {
    /// The name of the innermost span, if any.
    pub fn innermost_span(&self) -> Option<&str> {
        self.span_stack.last().map(|f| f.name.as_str())
    }
}

/// What a layer sends to a sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    /// A finished span.
    Span(SpanRecord),
    /// An error.
    Error(ErrorRecord),
}

/// Describes the process that produced records: OpenTelemetry's resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// `service.name`.
    pub service: String,
    /// Other resource attributes (`OTEL_RESOURCE_ATTRIBUTES` and the code's own).
    pub attributes: Vec<Attribute>,
}

/// The service name of a process that names none, as the OpenTelemetry
/// SDKs call it.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The one rule for a service name: the first non-empty of `names`, most
/// specific first (a record's own, then its process's, then what the
/// environment says), else [`UNKNOWN_SERVICE`].
///
/// ```
/// use omegi_core::model::service_name;
/// assert_eq!(service_name(["", "payment"]), "payment");
/// assert_eq!(service_name(["billing", "payment"]), "billing");
/// assert_eq!(service_name(["", ""]), "unknown_service");
/// ```
pub fn service_name<'a>(names: impl IntoIterator<Item = &'a str>) -> &'a str {
    names
        .into_iter()
        .find(|name| !name.is_empty())
        .unwrap_or(UNKNOWN_SERVICE)
}

impl Resource {
    /// Fills in the service of a record this process sent when the record
    /// names none ([`service_name`]: the process's, else
    /// [`UNKNOWN_SERVICE`]).
    pub fn fill_service(&self, service: &mut String) {
        if service.is_empty() {
            *service = service_name([self.service.as_str()]).to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_types_in_json() {
        let attrs = vec![
            Attribute::new("s", "x"),
            Attribute::new("i", -3i64),
            Attribute::new("u", u64::MAX),
            Attribute::new("f", 1.5),
            Attribute::new("b", true),
        ];
        let json = serde_json::to_string(&attrs).unwrap();
        let back: Vec<Attribute> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, attrs);
        assert_eq!(Value::from(7u64), Value::I64(7));
    }

    #[test]
    fn span_record_round_trips_through_json() {
        let span = SpanRecord {
            trace_id: TraceId(1),
            span_id: SpanId(2),
            parent_span_id: None,
            remote_parent: false,
            service: "payment".into(),
            name: "charge".into(),
            target: "payment::api".into(),
            level: Level::Info,
            kind: SpanKind::Server,
            start_ns: 10,
            end_ns: 25,
            attributes: vec![Attribute::new("order", 7i64)],
            events: vec![],
            dropped_events: 0,
            status: Status::Error,
            status_message: Some("declined".into()),
            location: CodeLocation::default(),
        };
        let json = serde_json::to_string(&Record::Span(span.clone())).unwrap();
        assert!(json.contains("\"type\":\"span\""));
        assert_eq!(
            serde_json::from_str::<Record>(&json).unwrap(),
            Record::Span(span.clone())
        );
        assert_eq!(span.duration_ns(), 15);
    }
}
