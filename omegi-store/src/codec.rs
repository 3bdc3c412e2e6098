//! Value encoding: postcard, a compact non-self-describing binary format.
//!
//! The model types of `omegi-core` carry serde derives meant for JSON (an
//! untagged attribute value, internally tagged records) that a
//! non-self-describing format cannot read back. So values are stored through
//! the mirror types below, which this crate owns: the on-disk layout changes
//! only when the schema version does.

use omegi_core::limits::{DROPPED_BREADCRUMBS, DROPPED_FRAMES};
use omegi_core::{
    Attribute, CodeLocation, Consequence, ErrorKind, ErrorRecord, EventRecord, Level, Resource,
    SpanFrame, SpanId, SpanKind, SpanRecord, Status, TraceId, Value,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};

/// Encodes a value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Encode(e.to_string()))
}

/// Decodes a value, rejecting trailing bytes.
pub(crate) fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| Error::corrupt(tree, e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::corrupt(
            tree,
            format!("{} trailing bytes after value", rest.len()),
        ));
    }
    Ok(value)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SValue {
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SAttribute {
    key: String,
    value: SValue,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SLocation {
    file: Option<String>,
    line: Option<u32>,
    module: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SEvent {
    time_ns: u64,
    level: u8,
    target: String,
    message: String,
    fields: Vec<SAttribute>,
    location: SLocation,
}

/// A stored span.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SSpan {
    trace_id: u128,
    span_id: u64,
    parent_span_id: Option<u64>,
    remote_parent: bool,
    service: String,
    name: String,
    target: String,
    level: u8,
    kind: u8,
    start_ns: u64,
    end_ns: u64,
    attributes: Vec<SAttribute>,
    events: Vec<SEvent>,
    dropped_events: u32,
    status: u8,
    status_message: Option<String>,
    location: SLocation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SFrame {
    span_id: u64,
    name: String,
    target: String,
    fields: Vec<SAttribute>,
    location: SLocation,
}

/// A stored error record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SError {
    trace_id: Option<u128>,
    span_id: Option<u64>,
    service: String,
    time_ns: u64,
    kind: u8,
    message: String,
    causes: Vec<String>,
    error_type: Option<String>,
    target: String,
    fields: Vec<SAttribute>,
    span_stack: Vec<SFrame>,
    breadcrumbs: Vec<SEvent>,
    location: SLocation,
    thread: Option<String>,
    fingerprint: Option<String>,
}

fn level_code(l: Level) -> u8 {
    match l {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

fn level_from(tree: &'static str, c: u8) -> Result<Level> {
    Ok(match c {
        0 => Level::Trace,
        1 => Level::Debug,
        2 => Level::Info,
        3 => Level::Warn,
        4 => Level::Error,
        _ => return Err(Error::corrupt(tree, format!("unknown level {c}"))),
    })
}

fn kind_code(k: SpanKind) -> u8 {
    match k {
        SpanKind::Internal => 0,
        SpanKind::Server => 1,
        SpanKind::Client => 2,
        SpanKind::Producer => 3,
        SpanKind::Consumer => 4,
    }
}

fn kind_from(tree: &'static str, c: u8) -> Result<SpanKind> {
    Ok(match c {
        0 => SpanKind::Internal,
        1 => SpanKind::Server,
        2 => SpanKind::Client,
        3 => SpanKind::Producer,
        4 => SpanKind::Consumer,
        _ => return Err(Error::corrupt(tree, format!("unknown span kind {c}"))),
    })
}

fn status_code(s: Status) -> u8 {
    match s {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error => 2,
    }
}

fn status_from(tree: &'static str, c: u8) -> Result<Status> {
    Ok(match c {
        0 => Status::Unset,
        1 => Status::Ok,
        2 => Status::Error,
        _ => return Err(Error::corrupt(tree, format!("unknown status {c}"))),
    })
}

fn error_kind_code(k: ErrorKind) -> u8 {
    match k {
        ErrorKind::Event => 0,
        ErrorKind::Panic => 1,
        ErrorKind::Remote => 2,
    }
}

fn error_kind_from(tree: &'static str, c: u8) -> Result<ErrorKind> {
    Ok(match c {
        0 => ErrorKind::Event,
        1 => ErrorKind::Panic,
        2 => ErrorKind::Remote,
        _ => return Err(Error::corrupt(tree, format!("unknown error kind {c}"))),
    })
}

fn value_in(v: &Value) -> SValue {
    match v {
        Value::Bool(b) => SValue::Bool(*b),
        Value::I64(i) => SValue::I64(*i),
        Value::U64(u) => SValue::U64(*u),
        Value::F64(f) => SValue::F64(*f),
        Value::Str(s) => SValue::Str(s.clone()),
    }
}

fn value_out(v: SValue) -> Value {
    match v {
        SValue::Bool(b) => Value::Bool(b),
        SValue::I64(i) => Value::I64(i),
        SValue::U64(u) => Value::U64(u),
        SValue::F64(f) => Value::F64(f),
        SValue::Str(s) => Value::Str(s),
    }
}

pub(crate) fn attrs_in(attrs: &[Attribute]) -> Vec<SAttribute> {
    attrs
        .iter()
        .map(|a| SAttribute {
            key: a.key.clone(),
            value: value_in(&a.value),
        })
        .collect()
}

pub(crate) fn attrs_out(attrs: Vec<SAttribute>) -> Vec<Attribute> {
    attrs
        .into_iter()
        .map(|a| Attribute {
            key: a.key,
            value: value_out(a.value),
        })
        .collect()
}

fn loc_in(l: &CodeLocation) -> SLocation {
    SLocation {
        file: l.file.as_deref().map(str::to_owned),
        line: l.line,
        module: l.module.as_deref().map(str::to_owned),
    }
}

fn loc_out(l: SLocation) -> CodeLocation {
    CodeLocation {
        file: l.file.map(Into::into),
        line: l.line,
        module: l.module.map(Into::into),
    }
}

fn event_in(e: &EventRecord) -> SEvent {
    SEvent {
        time_ns: e.time_ns,
        level: level_code(e.level),
        target: e.target.to_string(),
        message: e.message.clone(),
        fields: attrs_in(&e.fields),
        location: loc_in(&e.location),
    }
}

fn event_out(tree: &'static str, e: SEvent) -> Result<EventRecord> {
    Ok(
        EventRecord::new(e.time_ns, level_from(tree, e.level)?, e.message)
            .with_target(e.target)
            .with_fields(attrs_out(e.fields))
            .with_location(loc_out(e.location)),
    )
}

impl SSpan {
    pub(crate) fn span_id(&self) -> u64 {
        self.span_id
    }

    #[cfg(test)]
    pub(crate) fn from_record(s: &SpanRecord) -> Self {
        SSpan {
            trace_id: s.trace_id.0,
            span_id: s.span_id.0,
            parent_span_id: s.parent_span_id.map(|p| p.0),
            remote_parent: s.remote_parent,
            service: s.service.clone(),
            name: s.name.to_string(),
            target: s.target.to_string(),
            level: level_code(s.level),
            kind: kind_code(s.kind),
            start_ns: s.start_ns,
            end_ns: s.end_ns,
            attributes: attrs_in(&s.attributes),
            events: s.events.iter().map(event_in).collect(),
            dropped_events: s.dropped_events,
            status: status_code(s.status),
            status_message: s.status_message.clone(),
            location: loc_in(&s.location),
        }
    }

    pub(crate) fn into_record(self, tree: &'static str) -> Result<SpanRecord> {
        let mut span = SpanRecord::new(
            TraceId(self.trace_id),
            SpanId(self.span_id),
            self.name,
            self.start_ns,
            self.end_ns,
        )
        .with_parent(self.parent_span_id.map(SpanId))
        .with_service(self.service)
        .with_target(self.target)
        .with_level(level_from(tree, self.level)?)
        .with_kind(kind_from(tree, self.kind)?)
        .with_attributes(attrs_out(self.attributes))
        .with_events(
            self.events
                .into_iter()
                .map(|e| event_out(tree, e))
                .collect::<Result<_>>()?,
        )
        .with_status(status_from(tree, self.status)?)
        .with_location(loc_out(self.location));
        span.remote_parent = self.remote_parent;
        span.dropped_events = self.dropped_events;
        span.status_message = self.status_message;
        Ok(span)
    }
}

impl SError {
    /// The id of this error's occurrence: the first 8 bytes of the SHA-256
    /// of what tells one error apart from another (service, trace and span
    /// ids, time, kind, message, causes, type, target, fields, location,
    /// thread and fingerprint key), so that the same error sent again has
    /// the same id. The span stack, the breadcrumbs and the fields counting
    /// what they left out (`omegi.dropped_frames`,
    /// `omegi.dropped_breadcrumbs`) are left out: they describe the error's
    /// context, which depends on what else of its trace had arrived.
    pub(crate) fn occurrence_id(&self) -> Result<u64> {
        use sha2::{Digest, Sha256};
        // The counters of what the context left out describe the context
        // too: they depend on what else arrived with the error.
        let fields: Vec<&SAttribute> = self
            .fields
            .iter()
            .filter(|a| a.key != DROPPED_FRAMES && a.key != DROPPED_BREADCRUMBS)
            .collect();
        let identity = (
            &self.service,
            self.trace_id,
            self.span_id,
            self.time_ns,
            self.kind,
            &self.message,
            &self.causes,
            &self.error_type,
            &self.target,
            &fields,
            &self.location,
            &self.thread,
            &self.fingerprint,
        );
        let hash = Sha256::digest(encode(&identity)?);
        let mut id = [0u8; 8];
        id.copy_from_slice(&hash[..8]);
        Ok(u64::from_be_bytes(id))
    }

    pub(crate) fn from_record(e: &ErrorRecord) -> Self {
        SError {
            trace_id: e.trace_id.map(|t| t.0),
            span_id: e.span_id.map(|s| s.0),
            service: e.service.clone(),
            time_ns: e.time_ns,
            kind: error_kind_code(e.kind),
            message: e.message.clone(),
            causes: e.causes.clone(),
            error_type: e.error_type.clone(),
            target: e.target.clone(),
            fields: attrs_in(&e.fields),
            span_stack: e
                .span_stack
                .iter()
                .map(|f| SFrame {
                    span_id: f.span_id.0,
                    name: f.name.clone(),
                    target: f.target.clone(),
                    fields: attrs_in(&f.fields),
                    location: loc_in(&f.location),
                })
                .collect(),
            breadcrumbs: e.breadcrumbs.iter().map(event_in).collect(),
            location: loc_in(&e.location),
            thread: e.thread.clone(),
            fingerprint: e.fingerprint.clone(),
        }
    }

    pub(crate) fn into_record(self, tree: &'static str) -> Result<ErrorRecord> {
        let mut error = ErrorRecord::new(self.message, self.time_ns)
            .with_trace_id(self.trace_id.map(TraceId))
            .with_span_id(self.span_id.map(SpanId))
            .with_service(self.service)
            .with_kind(error_kind_from(tree, self.kind)?)
            .with_causes(self.causes)
            .with_target(self.target)
            .with_fields(attrs_out(self.fields))
            .with_span_stack(
                self.span_stack
                    .into_iter()
                    .map(|f| {
                        SpanFrame::new(SpanId(f.span_id), f.name)
                            .with_target(f.target)
                            .with_fields(attrs_out(f.fields))
                            .with_location(loc_out(f.location))
                    })
                    .collect(),
            )
            .with_breadcrumbs(
                self.breadcrumbs
                    .into_iter()
                    .map(|e| event_out(tree, e))
                    .collect::<Result<_>>()?,
            )
            .with_location(loc_out(self.location));
        error.error_type = self.error_type;
        error.thread = self.thread;
        error.fingerprint = self.fingerprint;
        Ok(error)
    }
}

/// A stored consequence of a root cause.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SConsequence {
    service: String,
    span_id: u64,
    span_name: String,
    status_message: Option<String>,
    error_type: Option<String>,
    message: Option<String>,
}

impl SConsequence {
    pub(crate) fn from_record(c: &Consequence) -> Self {
        SConsequence {
            service: c.service.clone(),
            span_id: c.span_id.0,
            span_name: c.span_name.clone(),
            status_message: c.status_message.clone(),
            error_type: c.error_type.clone(),
            message: c.message.clone(),
        }
    }

    pub(crate) fn into_record(self) -> Consequence {
        Consequence {
            service: self.service,
            span_id: SpanId(self.span_id),
            span_name: self.span_name,
            status_message: self.status_message,
            error_type: self.error_type,
            message: self.message,
        }
    }
}

/// A stored resource (a process that sent records).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SResource {
    service: String,
    attributes: Vec<SAttribute>,
}

impl SResource {
    pub(crate) fn from_record(r: &Resource) -> Self {
        SResource {
            service: r.service.clone(),
            attributes: attrs_in(&r.attributes),
        }
    }

    pub(crate) fn into_record(self) -> Resource {
        Resource::new(self.service).with_attributes(attrs_out(self.attributes))
    }
}

/// Borrowed twins of the stored types, for encoding without copying: each
/// serializes to exactly the bytes of its owned twin.
pub(crate) mod borrowed {
    use omegi_core::{Attribute, CodeLocation, EventRecord, SpanRecord, Value};
    use serde::ser::{Serialize, Serializer};

    use super::{kind_code, level_code, status_code};

    #[derive(serde::Serialize)]
    enum SValue<'a> {
        Bool(bool),
        I64(i64),
        U64(u64),
        F64(f64),
        Str(&'a str),
    }

    #[derive(serde::Serialize)]
    struct SAttribute<'a> {
        key: &'a str,
        value: SValue<'a>,
    }

    struct Attrs<'a>(&'a [Attribute]);

    impl Serialize for Attrs<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(|a| SAttribute {
                key: &a.key,
                value: match &a.value {
                    Value::Bool(b) => SValue::Bool(*b),
                    Value::I64(i) => SValue::I64(*i),
                    Value::U64(u) => SValue::U64(*u),
                    Value::F64(f) => SValue::F64(*f),
                    Value::Str(v) => SValue::Str(v),
                },
            }))
        }
    }

    #[derive(serde::Serialize)]
    struct SLocation<'a> {
        file: Option<&'a str>,
        line: Option<u32>,
        module: Option<&'a str>,
    }

    fn loc(l: &CodeLocation) -> SLocation<'_> {
        SLocation {
            file: l.file.as_deref(),
            line: l.line,
            module: l.module.as_deref(),
        }
    }

    #[derive(serde::Serialize)]
    struct SEvent<'a> {
        time_ns: u64,
        level: u8,
        target: &'a str,
        message: &'a str,
        fields: Attrs<'a>,
        location: SLocation<'a>,
    }

    struct Events<'a>(&'a [EventRecord]);

    impl Serialize for Events<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(|e| SEvent {
                time_ns: e.time_ns,
                level: level_code(e.level),
                target: &e.target,
                message: &e.message,
                fields: Attrs(&e.fields),
                location: loc(&e.location),
            }))
        }
    }

    /// Serializes as [`super::SSpan`].
    #[derive(serde::Serialize)]
    pub(crate) struct SSpan<'a> {
        trace_id: u128,
        span_id: u64,
        parent_span_id: Option<u64>,
        remote_parent: bool,
        service: &'a str,
        name: &'a str,
        target: &'a str,
        level: u8,
        kind: u8,
        start_ns: u64,
        end_ns: u64,
        attributes: Attrs<'a>,
        events: Events<'a>,
        dropped_events: u32,
        status: u8,
        status_message: Option<&'a str>,
        location: SLocation<'a>,
    }

    impl<'a> SSpan<'a> {
        pub(crate) fn new(s: &'a SpanRecord) -> Self {
            SSpan {
                trace_id: s.trace_id.0,
                span_id: s.span_id.0,
                parent_span_id: s.parent_span_id.map(|p| p.0),
                remote_parent: s.remote_parent,
                service: &s.service,
                name: &s.name,
                target: &s.target,
                level: level_code(s.level),
                kind: kind_code(s.kind),
                start_ns: s.start_ns,
                end_ns: s.end_ns,
                attributes: Attrs(&s.attributes),
                events: Events(&s.events),
                dropped_events: s.dropped_events,
                status: status_code(s.status),
                status_message: s.status_message.as_deref(),
                location: loc(&s.location),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_trailing_bytes_are_corrupt() {
        assert!(matches!(
            decode::<SSpan>("spans", &[0xff, 0xff, 0xff]),
            Err(Error::Corrupt { tree: "spans", .. })
        ));
        let mut bytes = encode(&7u64).unwrap();
        bytes.push(0);
        assert!(decode::<u64>("t", &bytes).is_err());
    }

    #[test]
    fn borrowed_span_encodes_like_the_owned_one() {
        let mut span = SpanRecord::new(TraceId(9), SpanId(3), "op", 5, 9)
            .with_remote_parent(SpanId(1))
            .with_service("svc")
            .with_target("t")
            .with_level(Level::Warn)
            .with_kind(SpanKind::Client)
            .with_attributes(vec![Attribute::new("a", 1.5), Attribute::new("b", "x")])
            .with_events(vec![EventRecord::new(6, Level::Error, "m")
                .with_target("t")
                .with_field("n", u64::MAX)
                .with_location(CodeLocation {
                    file: Some("f.rs".into()),
                    line: Some(3),
                    module: None,
                })])
            .with_status(Status::Error)
            .with_status_message("bad");
        span.dropped_events = 2;
        let owned = encode(&SSpan::from_record(&span)).unwrap();
        assert_eq!(encode(&borrowed::SSpan::new(&span)).unwrap(), owned);
        let back: SSpan = decode("spans", &owned).unwrap();
        assert_eq!(back.into_record("spans").unwrap(), span);
    }

    #[test]
    fn occurrence_ids_follow_the_content_but_not_the_context() {
        let error = ErrorRecord::new("card declined", 1_700_000_000_000_000_000)
            .with_trace_id(TraceId(7))
            .with_span_id(SpanId(3))
            .with_service("payment")
            .with_kind(ErrorKind::Remote)
            .with_error_type("PaymentError")
            .with_target("payment::api")
            .with_field("order", 42i64);
        let id = |e: &ErrorRecord| SError::from_record(e).occurrence_id().unwrap();
        assert_eq!(id(&error), id(&error.clone()));
        // The context (breadcrumbs) may differ between two sendings.
        let mut with_context = error.clone();
        with_context
            .breadcrumbs
            .push(EventRecord::new(1, Level::Info, "earlier").with_target("t"));
        assert_eq!(id(&with_context), id(&error));
        // Another time, span or field is another occurrence.
        let mut later = error.clone();
        later.time_ns += 1;
        let mut other_span = error.clone();
        other_span.span_id = Some(SpanId(4));
        let mut other_order = error.clone();
        other_order.fields = vec![Attribute::new("order", 43i64)];
        for other in [later, other_span, other_order] {
            assert_ne!(id(&other), id(&error));
        }
        // Stable across builds: ids are part of the on-disk keys.
        assert_eq!(id(&error), 0x2626_24ef_3e0a_a9d4);
    }

    #[test]
    fn attribute_values_keep_their_types() {
        let attrs = vec![
            Attribute::new("u", u64::MAX),
            Attribute::new("f", 1.0),
            Attribute::new("i", -1i64),
            Attribute::new("b", false),
            Attribute::new("s", "x"),
        ];
        let bytes = encode(&attrs_in(&attrs)).unwrap();
        let back: Vec<SAttribute> = decode("t", &bytes).unwrap();
        assert_eq!(attrs_out(back), attrs);
    }
}
