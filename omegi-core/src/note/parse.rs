//! Parsing a note's Markdown: wiki links, embeds, tags, headings and YAML
//! front matter.
//!
//! The Markdown itself is parsed by pulldown-cmark. Only its text events are
//! scanned for Obsidian syntax, so code spans, fenced and indented code blocks
//! and HTML never yield links or tags. pulldown-cmark splits text at `[`, `!`
//! and similar characters; text events that are adjacent in the source are
//! merged and the source slice they cover is scanned, which keeps exact byte
//! ranges for every link (rename rewrites through them).
//!
//! Front matter is the `---` block at the very start of the text, closed by a
//! `---` or `...` line. Its YAML is parsed with `serde_norway`; `tags`
//! (or `tag`) and `aliases` (or `alias`) may be a list or a single string.
//! **Malformed front matter never fails the parse**: the block is skipped,
//! the body is still parsed, and the reason is reported in
//! [`ParsedNote::front_matter_error`].

use std::ops::Range;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
use serde_norway::Value;

/// Why a note's front matter was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrontMatterError {
    /// The block is not valid YAML.
    #[error("front matter is not valid YAML: {0}")]
    Yaml(String),
    /// The YAML is valid but not a mapping of keys to values.
    #[error("front matter must be a mapping of keys to values")]
    NotAMapping,
    /// A known field has the wrong type.
    #[error("front matter field `{0}` must be a string or a list of strings")]
    InvalidField(&'static str),
}

/// A wiki link `[[Target#Heading|shown]]` or embed `![[Target]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The linked note's name as written, trimmed; empty for `[[#Heading]]`
    /// (a link into the same note).
    pub target: String,
    /// The part after `#`, trimmed, if any and not a block reference.
    pub heading: Option<String>,
    /// The block id of a block reference `[[Note#^id]]`.
    pub block: Option<String>,
    /// The part after `|`, if any, as written.
    pub display: Option<String>,
    /// Whether this is an embed (`![[...]]`).
    pub embed: bool,
    /// Bytes of the whole link in the parsed text, `!` of an embed included.
    pub range: Range<usize>,
    /// Bytes of the target name in the parsed text.
    pub target_range: Range<usize>,
}

/// A Markdown heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heading {
    /// 1 for `#`, up to 6.
    pub level: u8,
    /// The heading's text, markup removed.
    pub text: String,
    /// Bytes of the heading in the parsed text.
    pub range: Range<usize>,
}

/// A block marked with `^id` at the end of its last line, which
/// `[[Note#^id]]` links to and `![[Note#^id]]` embeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The id, without `^`.
    pub id: String,
    /// Bytes of the marker (` ^id`, from the `^`) in the parsed text.
    pub marker: Range<usize>,
}

/// Whether a callout starts open or folded: Obsidian's `+` and `-` after
/// `[!type]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// `+`: foldable, open.
    Open,
    /// `-`: foldable, folded.
    Folded,
}

/// A callout: a block quote whose first line is `[!type] Title`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    /// The type, lowercase (`note`, `warning`, `tip`, any word).
    pub kind: String,
    /// The title as written on the first line, if any.
    pub title: Option<String>,
    /// The `+` or `-` fold marker, if any.
    pub fold: Option<Fold>,
    /// Bytes of the whole block quote in the parsed text.
    pub range: Range<usize>,
}

/// The callout a block quote at `range` of `text` opens, if its first line
/// is `[!type]`, `[!type]+` or `[!type]-`, then an optional title. The type
/// is letters, digits, `-` and `_`.
pub(crate) fn callout_at(text: &str, range: Range<usize>) -> Option<Callout> {
    let quote = text.get(range.clone())?;
    let first = quote.lines().next()?;
    let line = first.trim_start().strip_prefix('>')?.trim_start();
    let rest = line.strip_prefix("[!")?;
    let close = rest.find(']')?;
    let kind = &rest[..close];
    if kind.is_empty()
        || kind.len() > 64
        || !kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return None;
    }
    let mut after = &rest[close + 1..];
    let fold = match after.chars().next() {
        Some('+') => Some(Fold::Open),
        Some('-') => Some(Fold::Folded),
        _ => None,
    };
    if fold.is_some() {
        after = &after[1..];
    }
    let title = after.trim();
    Some(Callout {
        kind: kind.to_ascii_lowercase(),
        title: (!title.is_empty()).then(|| title.to_owned()),
        fold,
        range,
    })
}

/// What the front matter says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontMatter {
    /// Bytes of the whole block with its delimiters, if there is one.
    pub range: Option<Range<usize>>,
    /// `tags`, without a leading `#`; invalid tags are dropped.
    pub tags: Vec<String>,
    /// `aliases`.
    pub aliases: Vec<String>,
}

/// The result of [`parse()`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedNote {
    /// Front matter (empty if absent or malformed).
    pub front_matter: FrontMatter,
    /// Why the front matter was ignored, if it was.
    pub front_matter_error: Option<FrontMatterError>,
    /// Links and embeds in source order.
    pub links: Vec<Link>,
    /// Inline tags without `#`, deduplicated case-insensitively, first
    /// spelling kept, in source order.
    pub tags: Vec<String>,
    /// Headings in source order.
    pub headings: Vec<Heading>,
    /// Blocks marked `^id`, in source order.
    pub blocks: Vec<Block>,
    /// Callouts, in source order (nested ones after their parent).
    pub callouts: Vec<Callout>,
    /// The prose: text outside code with links blanked out, one line per
    /// text run. Used to find unlinked mentions.
    pub plain_text: String,
}

/// Splits off the front matter: returns the YAML text and the byte offset at
/// which the body starts, or `None` when `text` has no front matter.
///
/// ```
/// let (yaml, body) = omegi_core::note::split_front_matter("---\ntags: [a]\n---\nBody").unwrap();
/// assert_eq!(yaml, "tags: [a]\n");
/// assert_eq!(body, 18);
/// ```
pub fn split_front_matter(text: &str) -> Option<(&str, usize)> {
    let first_end = text.find('\n')?;
    if text[..first_end].trim_end() != "---" {
        return None;
    }
    let yaml_start = first_end + 1;
    let mut pos = yaml_start;
    while pos <= text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = text[pos..line_end].trim_end();
        if line == "---" || line == "..." {
            let body_start = (line_end + 1).min(text.len());
            return Some((&text[yaml_start..pos], body_start));
        }
        if line_end == text.len() {
            break;
        }
        pos = line_end + 1;
    }
    None
}

/// The Markdown dialect notes are read in: CommonMark with task lists and
/// tables (GitHub's, as Obsidian reads them: `\\|` is a `|` inside a cell).
/// Parsing and rendering use the same options, so that they agree on what
/// is text, code and HTML.
pub(crate) const MARKDOWN: Options = Options::ENABLE_TASKLISTS.union(Options::ENABLE_TABLES);

/// Where the body of `text` starts: after its front matter, if any.
pub(crate) fn body_start(text: &str) -> usize {
    split_front_matter(text).map_or(0, |(_, start)| start)
}

/// A run of text events that are adjacent in the source, outside code: the
/// unit in which Obsidian syntax is looked for.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    /// The events' texts (as pulldown-cmark decoded them) and their bytes
    /// in the source.
    pub(crate) texts: Vec<(CowStr<'a>, Range<usize>)>,
    /// The bytes of the source the run covers.
    pub(crate) range: Range<usize>,
}

/// What [`Pieces`] yields: a run of text, or any other event.
#[derive(Debug)]
pub(crate) enum Piece<'a> {
    /// Text outside code, merged with the text next to it.
    Run(Run<'a>),
    /// Any other event (text in a code block among them), with its bytes in
    /// the source.
    Event(Event<'a>, Range<usize>),
}

/// The pulldown-cmark events of a part of a note, with text outside code
/// merged into [`Run`]s. pulldown-cmark splits text at `[`, `!` and
/// similar characters; text events that are adjacent in the source are
/// merged, so that a run's source slice holds whole links.
pub(crate) struct Pieces<'a> {
    text: &'a str,
    events: pulldown_cmark::OffsetIter<'a, pulldown_cmark::DefaultBrokenLinkCallback>,
    base: usize,
    code_depth: usize,
    run: Option<Run<'a>>,
    held: Option<Piece<'a>>,
}

impl<'a> Pieces<'a> {
    /// The pieces of `text[range]`, with byte ranges in `text`.
    pub(crate) fn new(text: &'a str, range: Range<usize>) -> Pieces<'a> {
        let part = text.get(range.clone()).unwrap_or_default();
        Pieces {
            text,
            events: Parser::new_ext(part, MARKDOWN).into_offset_iter(),
            base: range.start,
            code_depth: 0,
            run: None,
            held: None,
        }
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        if let Some(piece) = self.held.take() {
            return Some(piece);
        }
        loop {
            let Some((event, range)) = self.events.next() else {
                return self.run.take().map(Piece::Run);
            };
            let range = range.start + self.base..range.end + self.base;
            match event {
                Event::Text(t) if self.code_depth == 0 => match self.run.as_mut() {
                    Some(run)
                        if run.range.end == range.start
                            || escaped_pipe(self.text, run.range.end, range.start) =>
                    {
                        run.range.end = range.end;
                        run.texts.push((t, range));
                    }
                    _ => {
                        let run = Run {
                            range: range.clone(),
                            texts: vec![(t, range)],
                        };
                        if let Some(done) = self.run.replace(run) {
                            return Some(Piece::Run(done));
                        }
                    }
                },
                event => {
                    match event {
                        Event::Start(Tag::CodeBlock(_)) => self.code_depth += 1,
                        Event::End(TagEnd::CodeBlock) => {
                            self.code_depth = self.code_depth.saturating_sub(1)
                        }
                        _ => {}
                    }
                    let piece = Piece::Event(event, range);
                    return match self.run.take() {
                        Some(run) => {
                            self.held = Some(piece);
                            Some(Piece::Run(run))
                        }
                        None => Some(piece),
                    };
                }
            }
        }
    }
}

/// Whether the source between two text events is the `\\` of a `\\|` (a
/// pipe escaped in a table cell, which pulldown-cmark leaves out of the
/// text): the run goes on across it, so that `[[Note\\|label]]` stays one
/// link.
fn escaped_pipe(text: &str, end: usize, start: usize) -> bool {
    start == end + 1
        && text.as_bytes().get(end) == Some(&b'\\')
        && text.as_bytes().get(start) == Some(&b'|')
}

/// Obsidian syntax found in a run of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A wiki link or embed.
    Link(Link),
    /// A tag: its name without `#`, and the bytes of `#name`.
    Tag(String, Range<usize>),
    /// A block marker `^id` at the end of a line: the id, and the bytes of
    /// `^id`.
    Block(String, Range<usize>),
}

impl Token {
    /// The bytes of the token in the text.
    pub(crate) fn range(&self) -> Range<usize> {
        match self {
            Token::Link(link) => link.range.clone(),
            Token::Tag(_, range) | Token::Block(_, range) => range.clone(),
        }
    }
}

/// The links and tags in `text[range]`, a run of prose, in order; `steps`
/// counts the work (see [`parse_counting`]).
pub(crate) fn scan_run(text: &str, range: Range<usize>, steps: &mut usize) -> Vec<Token> {
    let mut tokens = Vec::new();
    let Some(s) = text.get(range.clone()) else {
        return tokens;
    };
    let base = range.start;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        *steps += 1;
        if bytes[i] == b'[' && bytes.get(i + 1) == Some(&b'[') {
            let (link, scanned) = wiki_link(text, base, s, i);
            *steps += scanned;
            if let Some(link) = link {
                i = link.range.end - base;
                tokens.push(Token::Link(link));
                continue;
            }
        } else if bytes[i] == b'^' && tag_may_start(text, base + i) {
            let id_len = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
                .count();
            *steps += id_len;
            let after = &s[i + 1 + id_len..];
            let line_end = after.find(['\n', '\r']).unwrap_or(after.len());
            if id_len > 0 && after[..line_end].trim().is_empty() {
                let start = base + i;
                let id = s[i + 1..i + 1 + id_len].to_string();
                tokens.push(Token::Block(id, start..start + 1 + id_len));
                i += 1 + id_len;
                continue;
            }
        } else if bytes[i] == b'#' && tag_may_start(text, base + i) {
            let name = tag_at(&s[i + 1..]);
            *steps += name.len();
            if is_valid_tag(name) {
                let start = base + i;
                tokens.push(Token::Tag(name.to_string(), start..start + 1 + name.len()));
                i += 1 + name.len();
                continue;
            }
        }
        i += 1;
    }
    tokens
}

/// A `#` starts a tag at the start of the text or after whitespace.
fn tag_may_start(text: &str, abs: usize) -> bool {
    match text[..abs].chars().next_back() {
        None => true,
        Some(c) => c.is_whitespace(),
    }
}

/// Parses a note's Markdown. Never fails and never panics; see the module
/// docs for how front matter errors are reported.
pub fn parse(text: &str) -> ParsedNote {
    parse_counting(text).0
}

/// [`parse()`], and how many steps the scan for links and tags took (bytes
/// looked at, plus one per position): linear in the text, whatever it
/// holds. Tests measure it; nothing else needs it.
pub(crate) fn parse_counting(text: &str) -> (ParsedNote, usize) {
    let mut out = ParsedNote::default();
    let mut body_start = 0;
    if let Some((yaml, start)) = split_front_matter(text) {
        body_start = start;
        match parse_front_matter(yaml) {
            Ok(mut fm) => {
                fm.range = Some(0..start);
                out.front_matter = fm;
            }
            Err(e) => out.front_matter_error = Some(e),
        }
    }
    let mut seen_tags = std::collections::HashSet::new();
    let mut steps = 0;
    let mut heading: Option<(u8, usize, String)> = None;
    for piece in Pieces::new(text, body_start..text.len()) {
        match piece {
            Piece::Run(run) => {
                if let Some(h) = heading.as_mut() {
                    for (t, _) in &run.texts {
                        h.2.push_str(t);
                    }
                }
                let tokens = scan_run(text, run.range.clone(), &mut steps);
                let s = &text[run.range.clone()];
                let base = run.range.start;
                let mut plain = String::with_capacity(s.len() + 1);
                let mut copied = 0;
                for token in tokens {
                    match token {
                        Token::Link(link) => {
                            let start = link.range.start - base;
                            plain.push_str(&s[copied..start.max(copied)]);
                            plain.push(' ');
                            copied = link.range.end - base;
                            out.links.push(link);
                        }
                        Token::Tag(name, _) => {
                            if seen_tags.insert(name.to_lowercase()) {
                                out.tags.push(name);
                            }
                        }
                        Token::Block(id, marker) => out.blocks.push(Block { id, marker }),
                    }
                }
                plain.push_str(&s[copied..]);
                out.plain_text.push_str(&plain);
                out.plain_text.push('\n');
            }
            Piece::Event(event, range) => match event {
                Event::Start(Tag::BlockQuote(_)) => {
                    out.callouts.extend(callout_at(text, range));
                }
                Event::Start(Tag::Heading { level, .. }) => {
                    heading = Some((level as u8, range.start, String::new()));
                }
                Event::End(TagEnd::Heading(_)) => {
                    if let Some((level, start, text)) = heading.take() {
                        out.headings.push(Heading {
                            level,
                            text: text.trim().to_string(),
                            range: start..range.end,
                        });
                    }
                }
                Event::Code(t) | Event::Text(t) => {
                    if let Some(h) = heading.as_mut() {
                        h.2.push_str(&t);
                    }
                }
                _ => {}
            },
        }
    }
    (out, steps)
}

/// Parses `[[...]]` starting at `s[i..]`; `s` starts at `base` in `text`.
/// Also returns how many bytes it looked at: up to the first `[`, `]` or
/// line break after the opening brackets (a link's text has none of them),
/// and the link's text again to split it. No byte is looked at by two calls
/// but for a constant few, so scanning a text is linear in its length even
/// for `[[[[…` or `![[![[…`.
fn wiki_link(text: &str, base: usize, s: &str, i: usize) -> (Option<Link>, usize) {
    let inner_start = i + 2;
    let rest = &s[inner_start..];
    let Some(close) = rest.find(['[', ']', '\n', '\r']) else {
        return (None, rest.len());
    };
    if !rest[close..].starts_with("]]") {
        return (None, close);
    }
    let scanned = close * 2;
    let inner = &rest[..close];
    let (left, display) = match inner.split_once('|') {
        // `\|` inside a table cell: the `\` escapes the pipe for the
        // table, and is no part of the link.
        Some((l, d)) => (l.strip_suffix('\\').unwrap_or(l), Some(d.to_string())),
        None => (inner, None),
    };
    let (target_raw, heading) = match left.split_once('#') {
        Some((t, h)) => (t, Some(h.trim().to_string())),
        None => (left, None),
    };
    let target = target_raw.trim();
    if target.is_empty() && heading.as_deref().unwrap_or_default().is_empty() {
        return (None, scanned);
    }
    let (heading, block) = match heading {
        Some(h) => match h.strip_prefix('^') {
            Some(id) => (None, Some(id.trim().to_string())),
            None => (Some(h), None),
        },
        None => (None, None),
    };
    let lead = target_raw.len() - target_raw.trim_start().len();
    let target_start = base + inner_start + lead;
    let abs = base + i;
    let embed = abs > 0 && text.as_bytes()[abs - 1] == b'!';
    let link = Link {
        target: target.to_string(),
        heading,
        block,
        display,
        embed,
        range: if embed { abs - 1 } else { abs }..base + inner_start + close + 2,
        target_range: target_start..target_start + target.len(),
    };
    (Some(link), scanned)
}

/// The longest run of tag characters at the start of `s`, trailing `/` removed.
fn tag_at(s: &str) -> &str {
    let end = s
        .char_indices()
        .find(|&(_, c)| !is_tag_char(c))
        .map_or(s.len(), |(i, _)| i);
    s[..end].trim_end_matches('/')
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '/')
}

/// Obsidian's tag rules: letters (any script), digits, `_`, `-` and `/`
/// (nesting), at least one character that is not a digit, not starting
/// with `/`.
pub(crate) fn is_valid_tag(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name.chars().all(is_tag_char)
        && name.chars().any(|c| !c.is_numeric())
}

/// Parses the YAML of a front matter block.
fn parse_front_matter(yaml: &str) -> Result<FrontMatter, FrontMatterError> {
    let mut fm = FrontMatter::default();
    if yaml.trim().is_empty() {
        return Ok(fm);
    }
    let value: Value =
        serde_norway::from_str(yaml).map_err(|e| FrontMatterError::Yaml(e.to_string()))?;
    let map = match value {
        Value::Null => return Ok(fm),
        Value::Mapping(map) => map,
        _ => return Err(FrontMatterError::NotAMapping),
    };
    for key in ["tags", "tag"] {
        if let Some(v) = map.get(key) {
            for raw in strings(v, key)? {
                for tag in raw.split(|c: char| c == ',' || c.is_whitespace()) {
                    let tag = tag.trim_start_matches('#');
                    if is_valid_tag(tag) && !fm.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
                        fm.tags.push(tag.to_string());
                    }
                }
            }
        }
    }
    for key in ["aliases", "alias"] {
        if let Some(v) = map.get(key) {
            for alias in strings(v, key)? {
                let alias = alias.trim();
                if !alias.is_empty() && !fm.aliases.iter().any(|a| a == alias) {
                    fm.aliases.push(alias.to_string());
                }
            }
        }
    }
    Ok(fm)
}

/// A YAML value that must be a string or a list of scalars.
fn strings(v: &Value, field: &'static str) -> Result<Vec<String>, FrontMatterError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => items
            .iter()
            .filter(|item| !item.is_null())
            .map(|item| scalar(item).ok_or(FrontMatterError::InvalidField(field)))
            .collect(),
        other => scalar(other)
            .map(|s| vec![s])
            .ok_or(FrontMatterError::InvalidField(field)),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_rules() {
        assert!(is_valid_tag("rust"));
        assert!(is_valid_tag("y2024"));
        assert!(is_valid_tag("결제/오류"));
        assert!(!is_valid_tag("2024"));
        assert!(!is_valid_tag("/a"));
        assert!(!is_valid_tag("a.b"));
        assert_eq!(tag_at("a/b/. rest"), "a/b");
    }

    /// Steps of the link and tag scan for `unit` repeated `n` times.
    fn steps(unit: &str, n: usize) -> usize {
        parse_counting(&unit.repeat(n)).1
    }

    #[test]
    fn the_scan_is_linear_on_adversarial_text() {
        let units = [
            "[",
            "[[",
            "![[",
            "[[a",
            "[[a|",
            "[[a#",
            "[[a||||#|#",
            "[[x]]",
            "![[x#h|y]]",
            "#a",
            "#1 ",
            " #a/b/c",
            "[[a\n",
            "a]]",
            "[[a\\|b]]",
            "[[a\\|",
            "[[a#^b]]",
            " ^b",
            " ^b\n",
            "^^^^",
            "| [[a\\|b]] |\n",
            "> [!note] t\n",
            "> [!",
        ];
        for unit in units {
            let (small, large) = (steps(unit, 2_000), steps(unit, 4_000));
            // Doubling the input at most doubles the work (and a bit).
            assert!(
                large <= small * 2 + 16,
                "{unit:?}: {small} steps for 2,000 copies, {large} for 4,000"
            );
            assert!(large <= unit.len() * 4_000 * 4, "{unit:?}: {large}");
        }
        // One long link body after many openers.
        let text = format!("{}{}]]", "[[".repeat(1_000), "a|#".repeat(1_000));
        let double = format!("{}{}]]", "[[".repeat(2_000), "a|#".repeat(2_000));
        let (a, b) = (parse_counting(&text).1, parse_counting(&double).1);
        assert!(b <= a * 2 + 16, "{a} then {b}");
    }

    #[test]
    fn front_matter_needs_closing_line() {
        assert_eq!(split_front_matter("---\ntags: a\nno end"), None);
        assert_eq!(split_front_matter("---\n---"), Some(("", 7)));
        assert_eq!(split_front_matter("x\n---\n---\n"), None);
    }
}
