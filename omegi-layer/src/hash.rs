//! One hasher for keys that are already distinct machine words: span ids,
//! callsite addresses (with a small tag). Each word is mixed in by one
//! folded multiplication, so that the low bits (a map's slot), the top bits
//! (its tags) and the middle bits all vary.

use std::hash::{BuildHasherDefault, Hasher};

/// Builds [`WordHasher`]s, for `HashMap`.
pub(crate) type BuildWordHasher = BuildHasherDefault<WordHasher>;

/// Mixes `word` into `state`: the product's high half folded onto its low.
#[inline]
pub(crate) fn mix(state: u64, word: u64) -> u64 {
    let product = u128::from(state.rotate_left(5) ^ word) * 0x9e37_79b9_7f4a_7c15;
    (product as u64) ^ ((product >> 64) as u64)
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u8(&mut self, word: u8) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.0 = mix(self.0, word);
    }
}
