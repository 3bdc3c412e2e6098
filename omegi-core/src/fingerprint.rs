//! Error fingerprints: the stable key that groups occurrences of one error
//! into an issue.
//!
//! The fingerprint hashes the service, the error type, the message with its
//! variable parts replaced ([`normalize_message`]) and the innermost span's
//! name (normalized the same way). An explicit `omegi.fingerprint` field on
//! the error replaces all of that.
//!
//! ```
//! use omegi_core::normalize_message;
//!
//! assert_eq!(normalize_message("order 1234 not found"), "order <num> not found");
//! assert_eq!(
//!     normalize_message("GET /orders/98/items from 10.0.0.7 as 'bob'"),
//!     "GET /orders/<id>/items from <ip> as <str>"
//! );
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{attribute, ErrorRecord, Value};

/// The grouping key of an error: 16 lowercase hex digits, the same on every
/// machine, process and run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 64-bit FNV-1a: fixed constants, so the same bytes hash the same everywhere.
/// Each part is followed by a 0xff byte, which UTF-8 never contains, so that
/// parts cannot run into each other.
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

/// The explicit grouping key of an error: the model's `fingerprint`, or an
/// `omegi.fingerprint` field left among the other fields. Blank keys count as
/// none.
fn explicit_key(error: &ErrorRecord) -> Option<&str> {
    let from_field = || match attribute(&error.fields, "omegi.fingerprint") {
        Some(Value::Str(s)) => Some(s.as_str()),
        _ => None,
    };
    error
        .fingerprint
        .as_deref()
        .or_else(from_field)
        .filter(|k| !k.trim().is_empty())
}

/// The fingerprint of an error: service, error type, normalized message and
/// normalized innermost span name. An explicit `omegi.fingerprint` wins.
pub fn fingerprint(error: &ErrorRecord) -> Fingerprint {
    if let Some(explicit) = explicit_key(error) {
        return Fingerprint(format!("{:016x}", fnv1a(&["explicit", explicit])));
    }
    let message = normalize_message(&error.message);
    let span = normalize_message(error.innermost_span().unwrap_or(""));
    let hash = fnv1a(&[
        &error.service,
        error.error_type.as_deref().unwrap_or(""),
        &message,
        &span,
    ]);
    Fingerprint(format!("{hash:016x}"))
}

/// Replaces the variable parts of an error message with placeholders, so that
/// occurrences of one error read the same:
///
/// | what | example | becomes |
/// | --- | --- | --- |
/// | quoted text (`"…"`, `'…'`, `` `…` ``) | `user 'bob'` | `user <str>` |
/// | UUID | `7f9c24e8-3b12-4fef-91e0-3d4ba3a3a0a1` | `<uuid>` |
/// | e-mail address | `bob@example.com` | `<email>` |
/// | IPv4 and IPv6 address | `10.0.0.7`, `fe80::1` | `<ip>` |
/// | hex: `0x…`, or a run of 7+ hex digits with a digit | `0xdeadbeef`, `4bf92f3577b3` | `<hex>` |
/// | number (sign and decimals included) | `-12.5` | `<num>` |
/// | number leading a word (units, dates) | `250ms`, `15T10` | `<num>ms`, `<num>T<num>` |
/// | digits after `_`, or 4+ digits, inside a word | `user_42`, `order1234` | `user_<num>`, `order<num>` |
/// | path segment with a digit or `@` | `/orders/A-17/items` | `/orders/<id>/items` |
///
/// Shorter digit runs inside words (`utf8`, `sha256`, `v2`, `worker3`) are
/// kept: they name things rather than count them. Whitespace runs become one
/// space; the ends are trimmed. A `'` inside a word (`can't`) opens no quote.
pub fn normalize_message(msg: &str) -> String {
    Scanner::new(msg).run()
}

const NUM: &str = "<num>";

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_hex(c: char) -> bool {
    c.is_ascii_hexdigit()
}

/// Characters that end a path segment.
fn ends_segment(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '/' | '?'
                | '#'
                | '&'
                | '='
                | '"'
                | '\''
                | '`'
                | ','
                | ';'
                | '('
                | ')'
                | '['
                | ']'
                | '{'
                | '}'
                | '<'
                | '>'
        )
}

struct Scanner {
    chars: Vec<char>,
    /// For each position, the first valid closing `"` at or after it.
    next_double: Vec<usize>,
    /// The same for `` ` ``.
    next_back: Vec<usize>,
    /// The same for `'`: one not followed by a letter or digit.
    next_single: Vec<usize>,
    out: String,
}

impl Scanner {
    fn new(msg: &str) -> Scanner {
        let chars: Vec<char> = msg.chars().collect();
        let n = chars.len();
        let mut next_double = vec![n; n + 1];
        let mut next_back = vec![n; n + 1];
        let mut next_single = vec![n; n + 1];
        for i in (0..n).rev() {
            let escaped = i > 0 && chars[i - 1] == '\\';
            next_double[i] = if chars[i] == '"' && !escaped {
                i
            } else {
                next_double[i + 1]
            };
            next_back[i] = if chars[i] == '`' { i } else { next_back[i + 1] };
            let closes =
                chars[i] == '\'' && !escaped && !chars.get(i + 1).is_some_and(|&c| is_word(c));
            next_single[i] = if closes { i } else { next_single[i + 1] };
        }
        Scanner {
            chars,
            next_double,
            next_back,
            next_single,
            out: String::with_capacity(msg.len()),
        }
    }

    fn at(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    /// Whether a token may start at `i`: no word character just before it.
    fn word_start(&self, i: usize) -> bool {
        i == 0 || !is_word(self.chars[i - 1])
    }

    /// Whether a token ending before `i` ends on a boundary.
    fn boundary(&self, i: usize) -> bool {
        !self.at(i).is_some_and(is_word)
    }

    fn run(mut self) -> String {
        let n = self.chars.len();
        let mut i = 0;
        let mut space = false;
        while i < n {
            let c = self.chars[i];
            if c.is_whitespace() {
                space = !self.out.is_empty();
                i += 1;
                continue;
            }
            if space {
                self.out.push(' ');
                space = false;
            }
            i = self.token(i);
        }
        self.out
    }

    /// Writes the token that starts at `i`, returns where the next one starts.
    fn token(&mut self, i: usize) -> usize {
        let c = self.chars[i];
        if let Some(end) = self.quoted(i) {
            self.out.push_str("<str>");
            return end;
        }
        if self.word_start(i) {
            let special = [
                (
                    Scanner::uuid as fn(&Scanner, usize) -> Option<usize>,
                    "<uuid>",
                ),
                (Scanner::ipv4, "<ip>"),
                (Scanner::ipv6, "<ip>"),
                (Scanner::email, "<email>"),
                (Scanner::hex_literal, "<hex>"),
            ];
            for (scan, placeholder) in special {
                if let Some(end) = scan(self, i) {
                    self.out.push_str(placeholder);
                    return end;
                }
            }
            if matches!(c, '-' | '+') && self.at(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                return self.word(i + 1, true);
            }
        }
        if c == '/' {
            self.out.push('/');
            return self.segment(i + 1);
        }
        if is_word(c) {
            return self.word(i, false);
        }
        self.out.push(c);
        i + 1
    }

    /// A quoted string opening at `i`: returns the position after its close.
    fn quoted(&self, i: usize) -> Option<usize> {
        let close = match self.chars[i] {
            '"' => self.next_double[i + 1],
            '`' => self.next_back[i + 1],
            '\'' if self.word_start(i) => self.next_single[i + 1],
            _ => return None,
        };
        (close < self.chars.len()).then_some(close + 1)
    }

    /// Exactly `count` hex digits from `i`: the position after them.
    fn hex_run(&self, i: usize, count: usize) -> Option<usize> {
        (i..i + count)
            .all(|k| self.at(k).is_some_and(is_hex))
            .then_some(i + count)
    }

    fn uuid(&self, i: usize) -> Option<usize> {
        let mut pos = i;
        for (k, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
            if k > 0 {
                if self.at(pos) != Some('-') {
                    return None;
                }
                pos += 1;
            }
            pos = self.hex_run(pos, len)?;
        }
        self.boundary(pos).then_some(pos)
    }

    /// A decimal octet (0-255, 1-3 digits) at `i`: the position after it.
    fn octet(&self, i: usize) -> Option<usize> {
        let mut end = i;
        let mut value = 0u32;
        while end < i + 3 {
            match self.at(end).and_then(|c| c.to_digit(10)) {
                Some(d) => value = value * 10 + d,
                None => break,
            }
            end += 1;
        }
        (end > i && value <= 255 && !self.at(end).is_some_and(|c| c.is_ascii_digit()))
            .then_some(end)
    }

    fn ipv4(&self, i: usize) -> Option<usize> {
        let mut pos = self.octet(i)?;
        for _ in 0..3 {
            if self.at(pos) != Some('.') {
                return None;
            }
            pos = self.octet(pos + 1)?;
        }
        let more =
            self.at(pos) == Some('.') && self.at(pos + 1).is_some_and(|c| c.is_ascii_digit());
        (self.boundary(pos) && !more).then_some(pos)
    }

    fn ipv6(&self, i: usize) -> Option<usize> {
        let mut pos = i;
        let mut groups = 0;
        let mut compressed = false;
        let mut digit = false;
        let mut last_group_start = None;
        if self.at(pos) == Some(':') {
            if self.at(pos + 1) != Some(':') {
                return None;
            }
            compressed = true;
            pos += 2;
        }
        loop {
            let start = pos;
            while pos < start + 4 && self.at(pos).is_some_and(is_hex) {
                pos += 1;
            }
            if pos == start {
                break;
            }
            if self.at(pos).is_some_and(is_hex) {
                return None; // a group has at most 4 digits
            }
            groups += 1;
            if groups > 8 {
                return None;
            }
            digit |= self.chars[start..pos].iter().any(char::is_ascii_digit);
            last_group_start = Some(start);
            match (self.at(pos), self.at(pos + 1)) {
                (Some(':'), Some(':')) => {
                    if compressed {
                        return None;
                    }
                    compressed = true;
                    pos += 2;
                }
                (Some(':'), Some(c)) if is_hex(c) => pos += 1,
                _ => break,
            }
        }
        // An embedded IPv4 tail (`::ffff:192.0.2.1`) counts as two groups.
        if self.at(pos) == Some('.') {
            pos = self.ipv4(last_group_start?)?;
            groups += 1;
            digit = true;
        }
        let valid = digit && groups >= 1 && if compressed { groups <= 7 } else { groups == 8 };
        (valid && self.boundary(pos)).then_some(pos)
    }

    fn email(&self, i: usize) -> Option<usize> {
        let local_ok = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
        let mut pos = i;
        while pos < i + 64 && self.at(pos).is_some_and(local_ok) {
            pos += 1;
        }
        if pos == i || self.at(pos) != Some('@') {
            return None;
        }
        let domain_start = pos + 1;
        let mut end = domain_start;
        let mut last_dot = None;
        while end < domain_start + 255 {
            match self.at(end) {
                Some(c) if c.is_alphanumeric() || c == '-' => end += 1,
                Some('.') if self.at(end + 1).is_some_and(|c| c.is_alphanumeric()) => {
                    last_dot = Some(end);
                    end += 1;
                }
                _ => break,
            }
        }
        let dot = last_dot?;
        (dot > domain_start && end > dot + 1 && self.boundary(end)).then_some(end)
    }

    fn hex_literal(&self, i: usize) -> Option<usize> {
        if self.at(i) != Some('0') || !matches!(self.at(i + 1), Some('x' | 'X')) {
            return None;
        }
        let mut pos = i + 2;
        while self.at(pos).is_some_and(is_hex) {
            pos += 1;
        }
        (pos > i + 2 && self.boundary(pos)).then_some(pos)
    }

    /// A path segment after a `/`: replaced when it holds a digit or an `@`,
    /// except a version such as `v2`.
    fn segment(&mut self, i: usize) -> usize {
        let mut end = i;
        while self.at(end).is_some_and(|c| !ends_segment(c)) {
            end += 1;
        }
        let seg = &self.chars[i..end];
        let version = seg.len() >= 2
            && matches!(seg[0], 'v' | 'V')
            && seg[1..].iter().all(char::is_ascii_digit);
        if !version && seg.iter().any(|&c| c.is_ascii_digit() || c == '@') {
            self.out.push_str("<id>");
            end
        } else {
            // Nothing variable: the ordinary scanner reads it.
            i
        }
    }

    /// A word (letters, digits, `_`) at `i`, where `signed` says a sign was
    /// consumed just before it.
    fn word(&mut self, i: usize, signed: bool) -> usize {
        let mut end = i;
        while self.at(end).is_some_and(is_word) {
            end += 1;
        }
        let word: Vec<char> = self.chars[i..end].to_vec();
        let all_digits = word.iter().all(char::is_ascii_digit);
        let has_digit = word.iter().any(char::is_ascii_digit);
        if !signed && word.len() >= 7 && has_digit && word.iter().all(|&c| is_hex(c)) && !all_digits
        {
            self.out.push_str("<hex>");
            return end;
        }
        if word[0].is_ascii_digit() {
            // A number: take its decimals and an exponent with it, then the
            // rest of the word with each digit run replaced.
            let mut pos = i;
            while self.at(pos).is_some_and(|c| c.is_ascii_digit()) {
                pos += 1;
            }
            if self.at(pos) == Some('.') && self.at(pos + 1).is_some_and(|c| c.is_ascii_digit()) {
                pos += 1;
                while self.at(pos).is_some_and(is_word) {
                    pos += 1;
                }
                end = pos;
            }
            self.out.push_str(NUM);
            let rest: Vec<char> = self.chars[i..end]
                .iter()
                .copied()
                .skip_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            self.digits_replaced(&rest, |_, _| true);
            return end;
        }
        // A word that starts with a letter or `_`: identifiers keep short
        // digit runs, lose long ones and those after `_`.
        self.digits_replaced(&word, |prev, len| prev == Some('_') || len >= 4);
        end
    }

    /// Writes `word`, replacing each digit run for which `replace(char before
    /// the run, run length)` holds.
    fn digits_replaced(&mut self, word: &[char], replace: impl Fn(Option<char>, usize) -> bool) {
        let mut k = 0;
        while k < word.len() {
            if word[k].is_ascii_digit() {
                let start = k;
                while k < word.len() && word[k].is_ascii_digit() {
                    k += 1;
                }
                let prev = start.checked_sub(1).map(|p| word[p]);
                if replace(prev, k - start) {
                    self.out.push_str(NUM);
                } else {
                    self.out.extend(&word[start..k]);
                }
            } else {
                self.out.push(word[k]);
                k += 1;
            }
        }
    }
}
