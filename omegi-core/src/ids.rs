//! Trace and span identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid [`TraceId`] or [`SpanId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string does not have the required number of hex digits.
    #[error("expected {expected} hex digits, got {got} characters")]
    Length {
        /// Digits required (32 for a trace id, 16 for a span id).
        expected: usize,
        /// Characters found.
        got: usize,
    },
    /// A character is not a lowercase hex digit.
    #[error("invalid character {0:?}: ids are lowercase hex")]
    Character(char),
    /// The id is all zeros, which W3C Trace Context reserves as invalid.
    #[error("an all-zero id is invalid")]
    Zero,
}

/// Parses exactly `N` lowercase hex digits into a number; rejects zero.
fn parse_hex(s: &str, digits: usize) -> Result<u128, IdError> {
    if s.len() != digits {
        return Err(IdError::Length {
            expected: digits,
            got: s.chars().count(),
        });
    }
    let mut value: u128 = 0;
    for c in s.chars() {
        let d = match c {
            '0'..='9' => c as u8 - b'0',
            'a'..='f' => c as u8 - b'a' + 10,
            _ => return Err(IdError::Character(c)),
        };
        value = (value << 4) | u128::from(d);
    }
    if value == 0 {
        return Err(IdError::Zero);
    }
    Ok(value)
}

/// A 128-bit trace id, shared by every span of one request across services.
///
/// Displayed and parsed as 32 lowercase hex digits, as in W3C Trace Context.
///
/// ```
/// use omegi_core::TraceId;
/// let id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
/// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!("00000000000000000000000000000000".parse::<TraceId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TraceId(pub u128);

/// A 64-bit span id, unique within its trace.
///
/// Displayed and parsed as 16 lowercase hex digits, as in W3C Trace Context.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SpanId(pub u64);

impl TraceId {
    /// The invalid all-zero id.
    pub const INVALID: TraceId = TraceId(0);

    /// Whether the id is not all zeros.
    pub fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// The id as 16 big-endian bytes (OTLP's wire form).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id from 16 big-endian bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        TraceId(u128::from_be_bytes(bytes))
    }
}

impl SpanId {
    /// The invalid all-zero id.
    pub const INVALID: SpanId = SpanId(0);

    /// Whether the id is not all zeros.
    pub fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// The id as 8 big-endian bytes (OTLP's wire form).
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The id from 8 big-endian bytes.
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        SpanId(u64::from_be_bytes(bytes))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

impl FromStr for TraceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex(s, 32).map(TraceId)
    }
}

impl FromStr for SpanId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // 16 hex digits always fit in a u64.
        parse_hex(s, 16).map(|v| SpanId(v as u64))
    }
}

macro_rules! serde_as_hex {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let s = std::borrow::Cow::<str>::deserialize(deserializer)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    Deserialize::deserialize(deserializer).map(Self)
                }
            }
        }
    };
}

serde_as_hex!(TraceId);
serde_as_hex!(SpanId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_pads_to_full_width() {
        assert_eq!(TraceId(1).to_string(), format!("{:0>32}", "1"));
        assert_eq!(SpanId(0xab).to_string(), "00000000000000ab");
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert_eq!(
            "abc".parse::<SpanId>(),
            Err(IdError::Length {
                expected: 16,
                got: 3
            })
        );
        assert_eq!(
            "00f067aa0ba902B7".parse::<SpanId>(),
            Err(IdError::Character('B'))
        );
        assert_eq!("0000000000000000".parse::<SpanId>(), Err(IdError::Zero));
        assert_eq!("ffffffffffffffff".parse::<SpanId>(), Ok(SpanId(u64::MAX)));
    }

    #[test]
    fn json_uses_hex_strings() {
        let id = TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"4bf92f3577b34da6a3ce929d0e0e4736\"");
        assert_eq!(serde_json::from_str::<TraceId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<TraceId>("\"xyz\"").is_err());
    }

    #[test]
    fn bytes_round_trip() {
        let id = TraceId(0x0102030405060708090a0b0c0d0e0f10);
        assert_eq!(id.to_bytes()[0], 1);
        assert_eq!(TraceId::from_bytes(id.to_bytes()), id);
        let s = SpanId(0x0102030405060708);
        assert_eq!(SpanId::from_bytes(s.to_bytes()), s);
    }
}
