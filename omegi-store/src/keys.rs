//! Key encoding: every key is a concatenation of big-endian integers and
//! length-prefixed strings, so that byte order is the order a range scan
//! should follow (by time, then by id) and no key is a prefix of a key that
//! belongs to a different string.

use omegi_core::TraceId;

use crate::error::{Error, Result};

/// Builds a key from parts.
#[derive(Debug, Default, Clone)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn new() -> Self {
        Key(Vec::with_capacity(48))
    }

    /// A string as a 2-byte big-endian length and its bytes.
    pub(crate) fn str(mut self, what: &'static str, s: &str) -> Result<Self> {
        let len = u16::try_from(s.len()).map_err(|_| Error::InvalidName {
            what,
            name: s.chars().take(64).collect(),
            reason: "longer than 65535 bytes",
        })?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
        Ok(self)
    }

    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn trace(mut self, id: TraceId) -> Self {
        self.0.extend_from_slice(&id.to_bytes());
        self
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Reads a key back, part by part; any mismatch is corruption.
pub(crate) struct KeyReader<'a> {
    tree: &'static str,
    bytes: &'a [u8],
}

impl<'a> KeyReader<'a> {
    pub(crate) fn new(tree: &'static str, bytes: &'a [u8]) -> Self {
        KeyReader { tree, bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::corrupt(self.tree, "key too short"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str> {
        let len = self.take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let raw = self.take(len)?;
        std::str::from_utf8(raw).map_err(|_| Error::corrupt(self.tree, "key string is not UTF-8"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let raw = self.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(raw);
        Ok(u64::from_be_bytes(b))
    }

    pub(crate) fn trace(&mut self) -> Result<TraceId> {
        let raw = self.take(16)?;
        let mut b = [0u8; 16];
        b.copy_from_slice(raw);
        Ok(TraceId::from_bytes(b))
    }

    /// Fails unless the whole key was read.
    pub(crate) fn end(&self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(Error::corrupt(self.tree, "trailing bytes in key"))
        }
    }
}

/// The smallest key greater than every key that starts with `prefix`, or
/// `None` when there is none (the prefix is all `0xff`): the end of a range
/// scan over the prefix, and where a scan that skips past it resumes.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Checks a name that the caller chose (project id, user login).
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > 256 {
        "longer than 256 bytes"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        what,
        name: name.chars().take(64).collect(),
        reason,
    })
}

/// Decodes a big-endian counter value.
pub(crate) fn counter(tree: &'static str, bytes: &[u8]) -> Result<u64> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::corrupt(tree, "counter is not 8 bytes"))?;
    Ok(u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_their_big_endian_parts() {
        let a = Key::new().str("p", "proj").unwrap().u64(5).into_vec();
        let b = Key::new().str("p", "proj").unwrap().u64(256).into_vec();
        assert!(a < b);
        let mut r = KeyReader::new("t", &b);
        assert_eq!(r.str().unwrap(), "proj");
        assert_eq!(r.u64().unwrap(), 256);
        r.end().unwrap();
    }

    #[test]
    fn prefix_end_follows_every_key_of_the_prefix() {
        let shop = Key::new().str("p", "shop").unwrap().into_vec();
        let end = prefix_end(&shop).unwrap();
        let inside = Key::new()
            .str("p", "shop")
            .unwrap()
            .u64(u64::MAX)
            .into_vec();
        assert!(inside < end);
        let next = Key::new().str("p", "shoq").unwrap().into_vec();
        assert!(end <= next);
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn short_keys_are_corrupt_not_panics() {
        let mut r = KeyReader::new("t", &[0, 9, b'a']);
        assert!(matches!(r.str(), Err(Error::Corrupt { .. })));
        assert!(check_name("project", "").is_err());
        assert!(check_name("project", "a\nb").is_err());
        check_name("project", "shop-prod").unwrap();
    }
}
