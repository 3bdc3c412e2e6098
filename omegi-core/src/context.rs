//! W3C Trace Context Level 1: the `traceparent` and `tracestate` headers.
//!
//! [`TraceParent::parse`] follows the specification's processing rules: version
//! `ff`, all-zero ids, wrong lengths, uppercase and non-hex characters are
//! invalid, and a higher version is parsed by the forward-compatibility rule.
//! [`TraceState::parse`] follows the list rules: a `tracestate` with any
//! invalid list member, or with more than 32 members, is discarded whole
//! (parsing yields an empty state), several header lines are one list joined
//! with `,`, and of two members with the same key the first is kept.
//!
//! A caller that receives an invalid `traceparent` starts a new trace; the
//! error only says why, for logging. A caller that joins a trace forwards the
//! flags it understands ([`TraceParent::propagated_flags`]: `sampled` and the
//! Level 2 `random` bit) and sets every other bit to zero.
//!
//! ```
//! use omegi_core::{TraceParent, TraceState};
//! let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
//! assert!(tp.sampled());
//! assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! assert!(TraceParent::parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_err());
//!
//! let ts = TraceState::parse("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7");
//! assert_eq!(ts.to_string(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
//! // One invalid member discards the whole list.
//! assert!(TraceState::parse("congo=t61rcWkgMzE,Bad Key=1").is_empty());
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{SpanId, TraceId};

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";

/// Why a `traceparent` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceParentError {
    /// The value is shorter than 55 characters, or a version-00 value is not exactly 55.
    #[error("traceparent has length {0}; version 00 needs exactly 55 characters")]
    Length(usize),
    /// The version field is not two lowercase hex digits.
    #[error("traceparent version is not two lowercase hex digits")]
    Version,
    /// Version `ff` is forbidden by the specification.
    #[error("traceparent version ff is invalid")]
    ForbiddenVersion,
    /// A field is not followed by the `-` separator.
    #[error("traceparent fields must be separated by '-'")]
    Separator,
    /// The trace id is not 32 lowercase hex digits, or is all zeros.
    #[error("traceparent trace-id is invalid")]
    TraceId,
    /// The parent id is not 16 lowercase hex digits, or is all zeros.
    #[error("traceparent parent-id is invalid")]
    ParentId,
    /// The flags are not two lowercase hex digits.
    #[error("traceparent trace-flags are invalid")]
    Flags,
}

/// The parsed `traceparent` header: which trace a request belongs to and which
/// span of the caller sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceParent {
    /// The version the sender used; always written back as `00`.
    pub version: u8,
    /// The trace the request belongs to.
    pub trace_id: TraceId,
    /// The caller's span that sent the request.
    pub parent_id: SpanId,
    /// Trace flags; bit 0 is `sampled`.
    pub flags: u8,
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_u128(bytes: &[u8]) -> Option<u128> {
    bytes.iter().try_fold(0u128, |acc, &b| {
        hex_digit(b).map(|d| (acc << 4) | u128::from(d))
    })
}

impl TraceParent {
    /// The sampled flag bit.
    pub const SAMPLED: u8 = 0x01;
    /// The `random` flag bit of Trace Context Level 2: the trace id's right
    /// 7 bytes are random.
    pub const RANDOM: u8 = 0x02;

    /// A version-00 `traceparent` for a span of a trace, sampled.
    pub fn new(trace_id: TraceId, parent_id: SpanId) -> Self {
        TraceParent {
            version: 0,
            trace_id,
            parent_id,
            flags: Self::SAMPLED,
        }
    }

    /// Whether the caller recorded its span (the `sampled` flag).
    pub fn sampled(&self) -> bool {
        self.flags & Self::SAMPLED != 0
    }

    /// The flags a participant that joins this trace sends on: the caller's
    /// `sampled` decision and the `random` bit as received, every bit the
    /// specification does not define set to zero.
    pub fn propagated_flags(&self) -> u8 {
        self.flags & (Self::SAMPLED | Self::RANDOM)
    }

    /// This context with other flags.
    pub fn with_flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// Parses a `traceparent` value by the Level 1 processing rules.
    pub fn parse(value: &str) -> Result<Self, TraceParentError> {
        // Surrounding whitespace is allowed by the HTTP field grammar (OWS).
        let s = value.trim_matches([' ', '\t']).as_bytes();
        if s.len() < 55 {
            return Err(TraceParentError::Length(s.len()));
        }
        let version = match (hex_digit(s[0]), hex_digit(s[1])) {
            (Some(a), Some(b)) => (a << 4) | b,
            _ => return Err(TraceParentError::Version),
        };
        if version == 0xff {
            return Err(TraceParentError::ForbiddenVersion);
        }
        if version == 0 && s.len() != 55 {
            return Err(TraceParentError::Length(s.len()));
        }
        // A higher version may carry more fields, but only after a dash.
        if s.len() > 55 && s[55] != b'-' {
            return Err(TraceParentError::Separator);
        }
        if s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
            return Err(TraceParentError::Separator);
        }
        let trace_id = match hex_u128(&s[3..35]) {
            Some(v) if v != 0 => TraceId(v),
            _ => return Err(TraceParentError::TraceId),
        };
        let parent_id = match hex_u128(&s[36..52]) {
            Some(v) if v != 0 => SpanId(v as u64),
            _ => return Err(TraceParentError::ParentId),
        };
        let flags = match hex_u128(&s[53..55]) {
            Some(v) => v as u8,
            None => return Err(TraceParentError::Flags),
        };
        // Flags not defined by version 00 are not propagated from a higher version.
        let flags = if version == 0 {
            flags
        } else {
            flags & Self::SAMPLED
        };
        Ok(TraceParent {
            version,
            trace_id,
            parent_id,
            flags,
        })
    }
}

impl fmt::Display for TraceParent {
    /// Always writes version `00`, the version this codec implements.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// The most list members a `tracestate` may carry.
pub const TRACESTATE_MAX_MEMBERS: usize = 32;

/// The `tracestate` header: vendor-specific key/value pairs, forwarded as received.
///
/// Parsing never fails, but it is all or nothing: a list with an invalid
/// member or more than [`TRACESTATE_MAX_MEMBERS`] members is discarded whole,
/// as the W3C Trace Context test suite expects. Empty members (`a=1,,b=2`)
/// and whitespace around members are allowed; of duplicate keys the first is
/// kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

/// Key grammar: `[0-9a-z][_0-9a-z\-*/@]{0,255}`. It covers the simple keys
/// and the multi-tenant `tenant@system` form of the specification, and keys
/// such as `foo@` or `foo@@bar` that the test suite forwards too.
fn valid_key(key: &str) -> bool {
    let k = key.as_bytes();
    !k.is_empty()
        && k.len() <= 256
        && (k[0].is_ascii_lowercase() || k[0].is_ascii_digit())
        && k.iter()
            .all(|&c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'))
}

/// Value grammar: 1 to 256 printable ASCII characters except `,` and `=`,
/// not ending in a space.
fn valid_value(value: &str) -> bool {
    let v = value.as_bytes();
    !v.is_empty()
        && v.len() <= 256
        && v.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && v[v.len() - 1] != b' '
}

impl TraceState {
    /// Parses a `tracestate` value; an invalid list yields an empty state.
    pub fn parse(value: &str) -> Self {
        Self::parse_all([value])
    }

    /// Parses several `tracestate` header lines as one list joined by
    /// commas; an invalid list yields an empty state.
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut state = TraceState::default();
        let mut count = 0usize;
        for member in values.into_iter().flat_map(|v| v.split(',')) {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            count += 1;
            let Some((key, val)) = member.split_once('=') else {
                return TraceState::default();
            };
            if count > TRACESTATE_MAX_MEMBERS || !valid_key(key) || !valid_value(val) {
                return TraceState::default();
            }
            if state.get(key).is_none() {
                state.members.push((key.to_owned(), val.to_owned()));
            }
        }
        state
    }

    /// The value for a key, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a key, moving it to the front as the specification asks of a
    /// vendor that updates its own entry; the last member goes when the list
    /// would exceed [`TRACESTATE_MAX_MEMBERS`]. Invalid keys or values are
    /// refused.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        if !valid_key(key) || !valid_value(value) {
            return false;
        }
        self.members.retain(|(k, _)| k != key);
        self.members.insert(0, (key.to_owned(), value.to_owned()));
        self.members.truncate(TRACESTATE_MAX_MEMBERS);
        true
    }

    /// The list members in order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of list members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no list members (then no header is sent).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// A span context received from or sent to another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteContext {
    /// The `traceparent` of the remote span.
    pub parent: TraceParent,
    /// The `tracestate` to forward.
    pub state: TraceState,
}

impl RemoteContext {
    /// Builds the context from header values. Returns `None` when `traceparent`
    /// is absent or invalid (a new trace starts); `tracestate` is then ignored,
    /// as the specification requires.
    pub fn from_headers<'a>(
        traceparent: Option<&str>,
        tracestate: impl IntoIterator<Item = &'a str>,
    ) -> Option<Self> {
        let parent = TraceParent::parse(traceparent?).ok()?;
        Some(RemoteContext {
            parent,
            state: TraceState::parse_all(tracestate),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_valid_cases() {
        let cases: &[(&str, u128, u64, u8)] = &[
            (
                VALID,
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                1,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                0,
            ),
            // Version 00 keeps unknown flags as received.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                9,
            ),
            // Higher versions: parsed by the first 55 characters; extra fields after a dash.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                1,
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds",
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                1,
            ),
            // Whitespace around the value (OWS).
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                1,
            ),
        ];
        for &(input, trace, span, flags) in cases {
            let tp = TraceParent::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(tp.trace_id, TraceId(trace), "{input}");
            assert_eq!(tp.parent_id, SpanId(span), "{input}");
            assert_eq!(tp.flags, flags, "{input}");
        }
    }

    #[test]
    fn traceparent_invalid_cases() {
        use TraceParentError as E;
        let cases: &[(&str, TraceParentError)] = &[
            ("", E::Length(0)),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                E::Length(52),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                E::Length(56),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
                E::Length(56),
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::ForbiddenVersion,
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Version,
            ),
            (
                "AA-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Version,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                E::TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                E::ParentId,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                E::TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                E::ParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0G",
                E::Flags,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
                E::Flags,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
                E::TraceId,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Separator,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                E::Separator,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                E::Separator,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                E::Separator,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                E::Length(52),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47-3600f067aa0ba902b7-01",
                E::Separator,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                TraceParent::parse(input).as_ref(),
                Err(expected),
                "{input:?}"
            );
        }
    }

    #[test]
    fn traceparent_written_as_version_00() {
        let tp =
            TraceParent::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")
                .unwrap();
        assert_eq!(tp.to_string(), VALID);
    }

    /// The `tracestate` cases of the W3C Trace Context test suite, one
    /// entry per request: the header lines sent, and the list forwarded
    /// (`""`: discarded).
    #[test]
    fn tracestate_cases_of_the_w3c_test_suite() {
        let all_key_chars = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let all_value_chars: String = (0x20u8..=0x7e)
            .filter(|c| *c != b',' && *c != b'=')
            .map(char::from)
            .collect();
        let vendor_key = format!("{all_key_chars}@a-z0-9_-*/");
        let z256 = "z".repeat(256);
        let z257 = "z".repeat(257);
        let tenant_max = format!("{}@{}", "t".repeat(241), "v".repeat(14));
        let tenant_long = format!("{}@v", "t".repeat(242));
        let system_long = format!("t@{}", "v".repeat(15));
        let members = |n: usize| {
            (1..=n)
                .map(|i| format!("bar{i:02}={i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let (m32, m33) = (members(32), members(33));
        macro_rules! lines {
            ($($line:expr),* $(,)?) => { vec![$(($line).to_string()),*] };
        }
        let cases: Vec<(Vec<String>, String)> = vec![
            (lines![], "".into()),
            (lines!["foo=1,bar=2"], "foo=1,bar=2".into()),
            // empty header lines are ignored, on either side
            (lines![""], "".into()),
            (lines!["foo=1", ""], "foo=1".into()),
            (lines!["", "foo=1"], "foo=1".into()),
            // several lines are one list, in order
            (
                lines!["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
                "foo=1,bar=2,rojo=1,congo=2,baz=3".into(),
            ),
            // duplicate keys: one of them is kept
            (lines!["foo=1,foo=1"], "foo=1".into()),
            (lines!["foo=1,foo=2"], "foo=1".into()),
            (lines!["foo=1", "foo=2"], "foo=1".into()),
            // every allowed character
            (
                lines![&format!("{all_key_chars}={all_value_chars}")],
                format!("{all_key_chars}={all_value_chars}"),
            ),
            (
                lines![&format!("{vendor_key}={all_value_chars}")],
                format!("{vendor_key}={all_value_chars}"),
            ),
            // optional whitespace around members
            (
                lines!["foo=1 \t , \t bar=2, \t baz=3"],
                "foo=1,bar=2,baz=3".into(),
            ),
            (
                lines!["foo=1\t \t,\t \tbar=2,\t \tbaz=3"],
                "foo=1,bar=2,baz=3".into(),
            ),
            (lines![" foo=1"], "foo=1".into()),
            (lines!["\tfoo=1"], "foo=1".into()),
            (lines!["foo=1 "], "foo=1".into()),
            (lines!["foo=1\t"], "foo=1".into()),
            (lines!["\t foo=1 \t"], "foo=1".into()),
            // an illegal key discards the list
            (lines!["foo =1"], "".into()),
            (lines!["FOO=1"], "".into()),
            (lines!["foo.bar=1"], "".into()),
            (lines!["foo=1,Bar=2"], "".into()),
            // at signs: anywhere but first
            (lines!["foo@=1,bar=2"], "foo@=1,bar=2".into()),
            (lines!["@foo=1,bar=2"], "".into()),
            (lines!["foo@@bar=1,bar=2"], "foo@@bar=1,bar=2".into()),
            (lines!["foo@bar@baz=1,bar=2"], "foo@bar@baz=1,bar=2".into()),
            // 32 members pass, 33 discard the list
            (lines![&m32], m32.clone()),
            (lines![&m33], "".into()),
            // key length: 256 in all
            (
                lines!["foo=1", &format!("{z256}=1")],
                format!("foo=1,{z256}=1"),
            ),
            (lines!["foo=1", &format!("{z257}=1")], "".into()),
            (
                lines!["foo=1", &format!("{tenant_max}=1")],
                format!("foo=1,{tenant_max}=1"),
            ),
            (
                lines!["foo=1", &format!("{tenant_long}=1")],
                format!("foo=1,{tenant_long}=1"),
            ),
            (
                lines!["foo=1", &format!("{system_long}=1")],
                format!("foo=1,{system_long}=1"),
            ),
            // illegal values discard the list
            (lines!["foo=bar=baz"], "".into()),
            (lines!["foo=,bar=3"], "".into()),
            (lines!["foo=1,novalue"], "".into()),
            (lines!["a=\u{7f}"], "".into()),
            (lines!["a=\u{e9}"], "".into()),
            (lines!["a=b\tc"], "".into()),
            (
                lines![&format!("x={}", "v".repeat(256))],
                format!("x={}", "v".repeat(256)),
            ),
            (lines![&format!("x={}", "v".repeat(257))], "".into()),
        ];
        for (lines, expected) in &cases {
            assert_eq!(
                TraceState::parse_all(lines.iter().map(String::as_str)).to_string(),
                *expected,
                "{lines:?}"
            );
        }
    }

    #[test]
    fn tracestate_insert_moves_to_front() {
        let mut state = TraceState::parse("a=1,b=2");
        assert!(state.insert("b", "3"));
        assert_eq!(state.to_string(), "b=3,a=1");
        assert!(!state.insert("B", "3"));
    }

    #[test]
    fn only_defined_flags_are_propagated() {
        let flags = |f: &str| {
            TraceParent::parse(&format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{f}"
            ))
            .unwrap()
            .propagated_flags()
        };
        assert_eq!(flags("00"), 0, "not sampled stays not sampled");
        assert_eq!(flags("01"), 1);
        assert_eq!(flags("02"), 2, "the random bit is kept");
        assert_eq!(flags("03"), 3);
        assert_eq!(flags("09"), 1, "unknown bits are zeroed");
        assert_eq!(flags("fc"), 0);
    }

    #[test]
    fn invalid_traceparent_discards_tracestate() {
        assert_eq!(RemoteContext::from_headers(Some("garbage"), ["a=1"]), None);
        assert_eq!(RemoteContext::from_headers(None, ["a=1"]), None);
        let ctx = RemoteContext::from_headers(Some(VALID), ["a=1"]).unwrap();
        assert_eq!(ctx.state.get("a"), Some("1"));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in "\\PC{0,80}") {
                let _ = TraceParent::parse(&s);
                let _ = TraceState::parse(&s);
            }

            #[test]
            fn parse_never_panics_on_near_valid(
                s in "[0-9a-fA-F-]{2}-[0-9a-gA-F]{30,34}-[0-9a-f]{14,18}-[0-9a-f]{1,3}(-.{0,5})?"
            ) {
                let _ = TraceParent::parse(&s);
            }

            #[test]
            fn traceparent_round_trips(trace in 1u128.., span in 1u64.., flags: u8) {
                let tp = TraceParent { version: 0, trace_id: TraceId(trace), parent_id: SpanId(span), flags };
                let text = tp.to_string();
                prop_assert_eq!(TraceParent::parse(&text), Ok(tp));
                prop_assert_eq!(TraceParent::parse(&text).unwrap().to_string(), text);
            }

            #[test]
            fn one_invalid_member_discards_the_list(
                members in proptest::collection::vec(("[a-z][a-z0-9_*/@-]{0,10}", "[!-+\\--<>-~]{1,12}"), 0..20),
                bad in prop_oneof!["[A-Z][a-z]{0,5}=1", "[a-z]{1,5}=", "[a-z]{1,5}", "@[a-z]{1,5}=1", "[a-z]{1,5}=a=b"],
                at in 0usize..21,
            ) {
                let mut text: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
                text.insert(at.min(text.len()), bad);
                prop_assert!(TraceState::parse(&text.join(",")).is_empty());
            }

            #[test]
            fn tracestate_round_trips(
                members in proptest::collection::vec(("[a-z][a-z0-9_*/-]{0,10}", "[!-+\\--<>-~]{1,12}"), 0..40)
            ) {
                let text: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let state = TraceState::parse(&text.join(","));
                prop_assert!(state.len() <= TRACESTATE_MAX_MEMBERS);
                if members.len() > TRACESTATE_MAX_MEMBERS {
                    prop_assert!(state.is_empty());
                } else {
                    let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                    keys.dedup();
                    prop_assert!(state.len() <= keys.len());
                    prop_assert_eq!(state.members().next().map(|(k, _)| k), members.first().map(|(k, _)| k.as_str()));
                }
                let again = TraceState::parse(&state.to_string());
                prop_assert_eq!(&again, &state);
                prop_assert_eq!(again.to_string(), state.to_string());
            }
        }
    }
}
