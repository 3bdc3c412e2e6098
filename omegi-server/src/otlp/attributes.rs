//! OTLP attributes and values in the model's terms: the attributes Omegi
//! reads for itself (target, level, code location), values as the model's
//! [`Value`]s or as text, and the model's [`Attribute`]s. Spans, events,
//! logs and errors are all converted with these.

use base64::Engine as _;
use omegi_core::{Attribute, CodeLocation, Level, Value};
use opentelemetry_proto::tonic::common::v1::{self as pc, any_value::Value as AV};

/// The target attribute written by Omegi's sink.
pub(crate) const TARGET: &str = "omegi.target";
/// The span level attribute written by Omegi's sink.
pub(crate) const SPAN_LEVEL: &str = "omegi.level";
/// The event level attribute.
pub(crate) const EVENT_LEVEL: &str = "level";

/// A level from its name, any case (`warning` too).
pub(crate) fn level(name: &str) -> Option<Level> {
    match name.to_ascii_lowercase().as_str() {
        "trace" => Some(Level::Trace),
        "debug" => Some(Level::Debug),
        "info" => Some(Level::Info),
        "warn" | "warning" => Some(Level::Warn),
        "error" => Some(Level::Error),
        _ => None,
    }
}

/// Removes an attribute and returns its value (the first one with that key;
/// later duplicates are removed too).
pub(crate) fn take(attributes: &mut Vec<pc::KeyValue>, key: &str) -> Option<pc::AnyValue> {
    let mut found = None;
    attributes.retain_mut(|kv| {
        if kv.key != key {
            return true;
        }
        if found.is_none() {
            found = Some(kv.value.take().unwrap_or_default());
        }
        false
    });
    found
}

/// Removes the `code.*` attributes and returns the location they describe.
pub(crate) fn take_location(attributes: &mut Vec<pc::KeyValue>) -> CodeLocation {
    let file_old = take(attributes, "code.filepath");
    let file_new = take(attributes, "code.file.path");
    let line_old = take(attributes, "code.lineno");
    let line_new = take(attributes, "code.line.number");
    let module = take(attributes, "code.namespace");
    CodeLocation {
        file: file_old.or(file_new).map(|v| text(&v).into()),
        line: line_old.or(line_new).and_then(|v| match v.value {
            Some(AV::IntValue(i)) => u32::try_from(i).ok(),
            Some(AV::StringValue(s)) => s.trim().parse().ok(),
            _ => None,
        }),
        module: module.map(|v| text(&v).into()),
    }
}

/// Attributes in the model's form, in order.
pub(crate) fn attributes_of(attributes: Vec<pc::KeyValue>) -> Vec<Attribute> {
    attributes
        .into_iter()
        .map(|kv| Attribute {
            key: kv.key,
            value: value(kv.value.as_ref()),
        })
        .collect()
}

/// An OTLP value in the model: scalars keep their type, arrays, key-value
/// lists and bytes become JSON text, an empty value the empty string.
pub(crate) fn value(v: Option<&pc::AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        None => Value::Str(String::new()),
        Some(AV::StringValue(s)) => Value::Str(s.clone()),
        Some(AV::BoolValue(b)) => Value::Bool(*b),
        Some(AV::IntValue(i)) => Value::I64(*i),
        Some(AV::DoubleValue(d)) => Value::F64(*d),
        Some(other) => Value::Str(json_of(Some(other)).to_string()),
    }
}

/// An OTLP value as text: strings as they are, anything else as JSON text.
pub(crate) fn text(v: &pc::AnyValue) -> String {
    match &v.value {
        Some(AV::StringValue(s)) => s.clone(),
        None => String::new(),
        other => json_of(other.as_ref()).to_string(),
    }
}

/// An OTLP value as JSON: bytes as a base64 string, non-finite doubles as
/// their OTLP/JSON names.
fn json_of(v: Option<&AV>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        None => J::Null,
        Some(AV::StringValue(s)) => J::String(s.clone()),
        Some(AV::BoolValue(b)) => J::Bool(*b),
        Some(AV::IntValue(i)) => J::from(*i),
        Some(AV::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or_else(
            || {
                J::String(if d.is_nan() {
                    "NaN".into()
                } else if *d > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                })
            },
            J::Number,
        ),
        Some(AV::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|v| json_of(v.value.as_ref())).collect())
        }
        Some(AV::KvlistValue(kvs)) => J::Object(
            kvs.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        json_of(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
        Some(AV::BytesValue(b)) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(AV::StringValueStrindex(i)) => J::from(*i),
    }
}

/// An array of strings (other elements as text); a lone value as one string.
pub(crate) fn strings(v: &pc::AnyValue) -> Vec<String> {
    match &v.value {
        Some(AV::ArrayValue(a)) => a.values.iter().map(text).collect(),
        _ => vec![text(v)],
    }
}
