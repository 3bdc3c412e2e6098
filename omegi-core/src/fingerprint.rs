//! Error fingerprints: the stable key that groups occurrences of one error
//! into an issue.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::ErrorRecord;

/// The grouping key of an error: 16 lowercase hex digits, the same on every
/// machine, process and run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 64-bit FNV-1a: fixed constants, so the same bytes hash the same everywhere.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes().iter().chain(&[0xff]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// The fingerprint of an error. An explicit `omegi.fingerprint` field wins.
pub fn fingerprint(error: &ErrorRecord) -> Fingerprint {
    if let Some(explicit) = &error.fingerprint {
        return Fingerprint(format!("{:016x}", fnv1a(&["explicit", explicit])));
    }
    let hash = fnv1a(&[
        &error.service,
        error.error_type.as_deref().unwrap_or(""),
        &error.message,
        error.innermost_span().unwrap_or(""),
    ]);
    Fingerprint(format!("{hash:016x}"))
}
