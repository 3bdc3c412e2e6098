//! The captured-data model: what a layer records and a store keeps.
//!
//! A [`SpanRecord`] is one unit of work in one service, with its
//! [`EventRecord`]s. An [`ErrorRecord`] is one error as it happened: its
//! message and `source` chain, the span stack that led to it, and the
//! breadcrumbs logged before it. Both are plain serde types so that any sink,
//! store or wire format can carry them.
//!
//! The records are `#[non_exhaustive]`: outside this crate they are built
//! with their `new` constructor, which takes what every record has, and
//! `with_*` methods for the rest. Their fields stay public to read, assign
//! and match (`SpanRecord { name, .. }`).

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
///
/// [`EventRecord::new`] takes what every event has; the `with_*` methods set
/// the rest, and the fields stay public to read and assign. New fields may be
/// added in later versions, with a default in `new`.
///
/// ```
/// use omegi_core::{EventRecord, Level, Value};
///
/// let event = EventRecord::new(1_000, Level::Warn, "retrying")
///     .with_target("payment::api")
///     .with_field("attempt", 2i64);
/// assert_eq!(event.message, "retrying");
/// assert_eq!(event.field("attempt"), Some(&Value::I64(2)));
/// assert!(event.location.file.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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

impl EventRecord {
    /// An event at `time_ns` (ns since the Unix epoch) with a level and a
    /// message; no target, no other fields, no location.
    pub fn new(time_ns: u64, level: Level, message: impl Into<String>) -> Self {
        EventRecord {
            time_ns,
            level,
            target: Text::Borrowed(""),
            message: message.into(),
            fields: Vec::new(),
            location: CodeLocation::default(),
        }
    }

    /// With the `tracing` target.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<Text>) -> Self {
        self.target = target.into();
        self
    }

    /// With these fields in place of the ones it has.
    #[must_use]
    pub fn with_fields(mut self, fields: Vec<Attribute>) -> Self {
        self.fields = fields;
        self
    }

    /// With one more field.
    #[must_use]
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.push(Attribute::new(key, value));
        self
    }

    /// With where it was logged.
    #[must_use]
    pub fn with_location(mut self, location: CodeLocation) -> Self {
        self.location = location;
        self
    }

    /// The value of one field.
    pub fn field(&self, key: &str) -> Option<&Value> {
        attribute(&self.fields, key)
    }
}

/// One unit of work in one service, finished.
///
/// [`SpanRecord::new`] takes what every span has (its trace, its id, its
/// name, when it started and ended) and gives the rest a default: no parent,
/// no service, [`SpanKind::Internal`], [`Level::Info`], [`Status::Unset`],
/// no attributes or events. The `with_*` methods set the rest; the fields
/// stay public to read and assign. New fields may be added in later
/// versions, with a default in `new`.
///
/// ```
/// use omegi_core::{EventRecord, Level, SpanId, SpanKind, SpanRecord, Status, TraceId};
///
/// let span = SpanRecord::new(TraceId(7), SpanId(2), "charge", 1_000, 26_000)
///     .with_parent(SpanId(1))
///     .with_service("payment")
///     .with_kind(SpanKind::Server)
///     .with_attribute("order", 42i64)
///     .with_event(EventRecord::new(20_000, Level::Warn, "card declined"))
///     .with_status(Status::Error)
///     .with_status_message("declined");
/// assert_eq!(span.parent_span_id, Some(SpanId(1)));
/// assert!(!span.remote_parent);
/// assert_eq!(span.duration_ns(), 25_000);
/// assert_eq!(span.level, Level::Info);
/// assert_eq!(span.status_message.as_deref(), Some("declined"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// A span of `trace_id` with its own id and name, from `start_ns` to
    /// `end_ns` (ns since the Unix epoch), everything else at its default.
    ///
    /// It allocates nothing but what `name` brings (a `&'static str` is
    /// borrowed).
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        name: impl Into<Text>,
        start_ns: u64,
        end_ns: u64,
    ) -> Self {
        SpanRecord {
            trace_id,
            span_id,
            parent_span_id: None,
            remote_parent: false,
            service: String::new(),
            name: name.into(),
            target: Text::Borrowed(""),
            level: Level::Info,
            kind: SpanKind::Internal,
            start_ns,
            end_ns,
            attributes: Vec::new(),
            events: Vec::new(),
            dropped_events: 0,
            status: Status::Unset,
            status_message: None,
            location: CodeLocation::default(),
        }
    }

    /// With a parent in the same process, or none (`None`: a trace root).
    #[must_use]
    pub fn with_parent(mut self, parent: impl Into<Option<SpanId>>) -> Self {
        self.parent_span_id = parent.into();
        self.remote_parent = false;
        self
    }

    /// With a parent in another process: the span joined a remote trace.
    #[must_use]
    pub fn with_remote_parent(mut self, parent: SpanId) -> Self {
        self.parent_span_id = Some(parent);
        self.remote_parent = true;
        self
    }

    /// With the service that recorded it.
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// With the `tracing` target.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<Text>) -> Self {
        self.target = target.into();
        self
    }

    /// With a level other than [`Level::Info`].
    #[must_use]
    pub fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// With a role other than [`SpanKind::Internal`].
    #[must_use]
    pub fn with_kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// With these attributes in place of the ones it has.
    #[must_use]
    pub fn with_attributes(mut self, attributes: Vec<Attribute>) -> Self {
        self.attributes = attributes;
        self
    }

    /// With one more attribute.
    #[must_use]
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.push(Attribute::new(key, value));
        self
    }

    /// With these events, oldest first, in place of the ones it has.
    #[must_use]
    pub fn with_events(mut self, events: Vec<EventRecord>) -> Self {
        self.events = events;
        self
    }

    /// With one more event, after the ones it has.
    #[must_use]
    pub fn with_event(mut self, event: EventRecord) -> Self {
        self.events.push(event);
        self
    }

    /// With an outcome other than [`Status::Unset`].
    #[must_use]
    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    /// With why the span failed (the status stays as set).
    #[must_use]
    pub fn with_status_message(mut self, message: impl Into<String>) -> Self {
        self.status_message = Some(message.into());
        self
    }

    /// With where the span was declared.
    #[must_use]
    pub fn with_location(mut self, location: CodeLocation) -> Self {
        self.location = location;
        self
    }

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
///
/// [`SpanFrame::new`] takes the span's id and name, [`SpanFrame::of`] copies
/// a [`SpanRecord`]; the `with_*` methods set the rest. New fields may be
/// added in later versions.
///
/// ```
/// use omegi_core::{SpanFrame, SpanId};
///
/// let frame = SpanFrame::new(SpanId(2), "charge")
///     .with_target("payment::api")
///     .with_field("order", 42i64);
/// assert_eq!(frame.name, "charge");
/// assert_eq!(frame.fields.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// The frame of span `span_id` named `name`, with no target, fields or
    /// location.
    pub fn new(span_id: SpanId, name: impl Into<String>) -> Self {
        SpanFrame {
            span_id,
            name: name.into(),
            target: String::new(),
            fields: Vec::new(),
            location: CodeLocation::default(),
        }
    }

    /// With the span's target.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// With the span's fields at the time of the error.
    #[must_use]
    pub fn with_fields(mut self, fields: Vec<Attribute>) -> Self {
        self.fields = fields;
        self
    }

    /// With one more field.
    #[must_use]
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.push(Attribute::new(key, value));
        self
    }

    /// With where the span was declared.
    #[must_use]
    pub fn with_location(mut self, location: CodeLocation) -> Self {
        self.location = location;
        self
    }

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
///
/// [`ErrorRecord::new`] takes what every error has (its message and when it
/// happened) and gives the rest a default: outside any trace, no service,
/// [`ErrorKind::Event`], no type, causes, fields, span stack or
/// breadcrumbs. The `with_*` methods set the rest; the fields stay public to
/// read and assign. New fields may be added in later versions, with a
/// default in `new`.
///
/// ```
/// use omegi_core::{ErrorKind, ErrorRecord, SpanFrame, SpanId, TraceId};
///
/// let error = ErrorRecord::new("card declined", 1_000)
///     .with_trace_id(TraceId(7))
///     .with_span_id(SpanId(2))
///     .with_service("payment")
///     .with_error_type("payment::Declined")
///     .with_causes(vec!["issuer said no".into()])
///     .with_span_stack(vec![SpanFrame::new(SpanId(2), "charge")])
///     .with_field("order", 42i64);
/// assert_eq!(error.kind, ErrorKind::Event);
/// assert_eq!(error.innermost_span(), Some("charge"));
/// assert_eq!(error.fingerprint, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// An error with `message` at `time_ns` (ns since the Unix epoch),
    /// everything else at its default.
    pub fn new(message: impl Into<String>, time_ns: u64) -> Self {
        ErrorRecord {
            trace_id: None,
            span_id: None,
            service: String::new(),
            time_ns,
            kind: ErrorKind::Event,
            message: message.into(),
            causes: Vec::new(),
            error_type: None,
            target: String::new(),
            fields: Vec::new(),
            span_stack: Vec::new(),
            breadcrumbs: Vec::new(),
            location: CodeLocation::default(),
            thread: None,
            fingerprint: None,
        }
    }

    /// The error a failed span reports when nothing but its status says
    /// what went wrong: kind [`ErrorKind::Remote`], the status message
    /// (else `span <name> failed`) as message, no type, at the span's end,
    /// in its trace, span, service, target and location, with the span as
    /// its span stack. The one rule for such errors, wherever a failed span
    /// is read (one OTLP request, or a whole settled trace).
    ///
    /// ```
    /// use omegi_core::{ErrorKind, ErrorRecord, SpanId, SpanRecord, Status, TraceId};
    ///
    /// let span = SpanRecord::new(TraceId(1), SpanId(2), "charge", 10, 20)
    ///     .with_status(Status::Error);
    /// let error = ErrorRecord::of_failed_span(&span);
    /// assert_eq!(error.message, "span charge failed");
    /// assert_eq!((error.kind, error.time_ns), (ErrorKind::Remote, 20));
    /// let error = ErrorRecord::of_failed_span(&span.with_status_message("declined"));
    /// assert_eq!(error.message, "declined");
    /// ```
    pub fn of_failed_span(span: &SpanRecord) -> Self {
        let message = match &span.status_message {
            Some(message) => message.clone(),
            None => format!("span {} failed", span.name),
        };
        ErrorRecord::new(message, span.end_ns)
            .with_trace_id(span.trace_id)
            .with_span_id(span.span_id)
            .with_service(span.service.clone())
            .with_kind(ErrorKind::Remote)
            .with_target(span.target.to_string())
            .with_span_stack(vec![SpanFrame::of(span, false)])
            .with_location(span.location.clone())
    }

    /// With the trace it happened in, or none.
    #[must_use]
    pub fn with_trace_id(mut self, trace_id: impl Into<Option<TraceId>>) -> Self {
        self.trace_id = trace_id.into();
        self
    }

    /// With the innermost span at the time of the error, or none.
    #[must_use]
    pub fn with_span_id(mut self, span_id: impl Into<Option<SpanId>>) -> Self {
        self.span_id = span_id.into();
        self
    }

    /// With the service that recorded it.
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// With how it was captured, other than [`ErrorKind::Event`].
    #[must_use]
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// With the error's type.
    #[must_use]
    pub fn with_error_type(mut self, error_type: impl Into<String>) -> Self {
        self.error_type = Some(error_type.into());
        self
    }

    /// With the `Error::source` chain, outermost cause first.
    #[must_use]
    pub fn with_causes(mut self, causes: Vec<String>) -> Self {
        self.causes = causes;
        self
    }

    /// With the event's target.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// With these fields in place of the ones it has.
    #[must_use]
    pub fn with_fields(mut self, fields: Vec<Attribute>) -> Self {
        self.fields = fields;
        self
    }

    /// With one more field.
    #[must_use]
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.push(Attribute::new(key, value));
        self
    }

    /// With the spans from the root to the innermost one.
    #[must_use]
    pub fn with_span_stack(mut self, span_stack: Vec<SpanFrame>) -> Self {
        self.span_stack = span_stack;
        self
    }

    /// With the earlier events of the same trace, oldest first.
    #[must_use]
    pub fn with_breadcrumbs(mut self, breadcrumbs: Vec<EventRecord>) -> Self {
        self.breadcrumbs = breadcrumbs;
        self
    }

    /// With where the error was logged.
    #[must_use]
    pub fn with_location(mut self, location: CodeLocation) -> Self {
        self.location = location;
        self
    }

    /// With the thread's name.
    #[must_use]
    pub fn with_thread(mut self, thread: impl Into<String>) -> Self {
        self.thread = Some(thread.into());
        self
    }

    /// With an explicit grouping key, as the `omegi.fingerprint` field gives.
    #[must_use]
    pub fn with_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

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
///
/// New fields may be added in later versions.
///
/// ```
/// use omegi_core::Resource;
///
/// let resource = Resource::new("payment").with_attribute("deployment.environment", "prod");
/// assert_eq!(resource.service, "payment");
/// assert_eq!(resource.attributes.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// The resource of `service` (`service.name`), with no other attributes.
    pub fn new(service: impl Into<String>) -> Self {
        Resource {
            service: service.into(),
            attributes: Vec::new(),
        }
    }

    /// With these attributes in place of the ones it has.
    #[must_use]
    pub fn with_attributes(mut self, attributes: Vec<Attribute>) -> Self {
        self.attributes = attributes;
        self
    }

    /// With one more attribute.
    #[must_use]
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.push(Attribute::new(key, value));
        self
    }

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
    fn constructors_give_the_documented_defaults() {
        let span = SpanRecord::new(TraceId(1), SpanId(2), "charge", 10, 25);
        assert_eq!(
            span,
            SpanRecord {
                trace_id: TraceId(1),
                span_id: SpanId(2),
                parent_span_id: None,
                remote_parent: false,
                service: String::new(),
                name: "charge".into(),
                target: "".into(),
                level: Level::Info,
                kind: SpanKind::Internal,
                start_ns: 10,
                end_ns: 25,
                attributes: vec![],
                events: vec![],
                dropped_events: 0,
                status: Status::Unset,
                status_message: None,
                location: CodeLocation::default(),
            }
        );
        // A name known at compile time is borrowed, not copied.
        assert!(matches!(span.name, Text::Borrowed(_)));
        let remote = span.clone().with_remote_parent(SpanId(1));
        assert_eq!(
            (remote.parent_span_id, remote.remote_parent),
            (Some(SpanId(1)), true)
        );
        let local = remote.with_parent(SpanId(1));
        assert_eq!(
            (local.parent_span_id, local.remote_parent),
            (Some(SpanId(1)), false)
        );
        assert_eq!(local.with_parent(None).parent_span_id, None);

        let error = ErrorRecord::new("declined", 5);
        assert_eq!(
            (error.trace_id, error.span_id, error.kind),
            (None, None, ErrorKind::Event)
        );
        assert!(error.service.is_empty() && error.span_stack.is_empty());
        let event = EventRecord::new(5, Level::Warn, "slow");
        assert_eq!((event.target.as_ref(), event.fields.len()), ("", 0));
        assert_eq!(
            Resource::new("payment"),
            Resource {
                service: "payment".into(),
                attributes: vec![],
            }
        );
    }

    #[test]
    fn span_record_round_trips_through_json() {
        let span = SpanRecord::new(TraceId(1), SpanId(2), "charge", 10, 25)
            .with_service("payment")
            .with_target("payment::api")
            .with_kind(SpanKind::Server)
            .with_attribute("order", 7i64)
            .with_status(Status::Error)
            .with_status_message("declined");
        let json = serde_json::to_string(&Record::Span(span.clone())).unwrap();
        assert!(json.contains("\"type\":\"span\""));
        assert_eq!(
            serde_json::from_str::<Record>(&json).unwrap(),
            Record::Span(span.clone())
        );
        assert_eq!(span.duration_ns(), 15);
    }
}
