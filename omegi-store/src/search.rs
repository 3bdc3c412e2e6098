//! Full-text search over notes, on [tantivy](https://docs.rs/tantivy).
//!
//! The index derives from the stored notes and can be rebuilt from them at
//! any time ([`Search::rebuild`]). It lives in `search/` inside
//! the data directory (in memory for a temporary store without one). On
//! PostgreSQL each node keeps its own index in memory, built from the
//! database when it connects and updated by the note writes it makes
//! ([`Database::search`](crate::postgres::Database::search)). Every
//! change of the notes bumps a generation counter kept with them; each
//! commit of the index records the generation it reflects in its commit
//! payload. A store whose index is missing, unreadable, of another layout or
//! behind the notes rebuilds it when it opens.
//!
//! Ranking is BM25 over the title, aliases, tags, body and the titles and
//! messages of the issues a note is linked to (looked up when the note is
//! indexed), with the title weighted most. All words of a query must match.
//!
//! A search sees only the notes its viewer may see, and so do its
//! statistics: BM25's document count, field lengths and document
//! frequencies, and the word weights that pick a snippet, are counted over
//! the viewer's visible notes ([`VisibleStatistics`]), never over the whole
//! index. Another user's private notes cannot change a viewer's scores,
//! order, counts or snippets, and so cannot be probed through them.
//!
//! Text is split by [`NoteTokenizer`]: words of letters and digits are kept
//! whole and lowercased, while runs of CJK characters (Hangul, Han, kana)
//! become overlapping character bigrams (a lone character a unigram). So
//! `결제` finds `결제가 실패했습니다` although Korean attaches particles to
//! words, and a longer Korean query matches as a phrase of bigrams.

use crate::error::Db;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use omegi_core::{fingerprint, normalize_message, ErrorRecord, Fingerprint, Note, NoteId};
use tantivy::collector::TopDocs;
use tantivy::query::{
    AllQuery, Bm25StatisticsProvider, BooleanQuery, ConstScoreQuery, EnableScoring, Occur, Query,
    QueryParser, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer};
use tantivy::{
    BitSet, DocId, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher,
    TantivyDocument, Term, TERMINATED,
};

use crate::error::{Error, Result};
use crate::keys::KeyReader;
use crate::notes::{self, tag_matches};
use crate::postgres::PgNotes;
use crate::{Embedded, Issues, Notes};

/// The layout of the index; a different one is rebuilt.
const LAYOUT: &str = "omegi-notes/2";
const TOKENIZER: &str = "omegi";
const WRITER_MEMORY: usize = 48 * 1024 * 1024;
const SNIPPET_CHARS: usize = 160;

fn search_err(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Storage(crate::EngineError::search_index(e))
}

/// Whether `c` is written without spaces between words (Hangul, Han, kana).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF     // Hangul Jamo
        | 0x3040..=0x30FF   // Hiragana, Katakana
        | 0x3130..=0x318F   // Hangul compatibility Jamo
        | 0x31F0..=0x31FF   // Katakana extensions
        | 0x3400..=0x4DBF   // CJK extension A
        | 0x4E00..=0x9FFF   // CJK unified ideographs
        | 0xA960..=0xA97F   // Hangul Jamo extended A
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0xD7B0..=0xD7FF   // Hangul Jamo extended B
        | 0xF900..=0xFAFF   // CJK compatibility ideographs
        | 0xFF66..=0xFF9F   // halfwidth Katakana
        | 0x20000..=0x2FA1F // CJK extensions B..
    )
}

/// Splits text into lowercase words, and CJK runs into character bigrams:
/// "Payment 결제가 실패" gives "payment", "결제", "제가", "실패".
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoteTokenizer;

#[cfg(test)]
impl NoteTokenizer {
    /// The tokens' texts, in order.
    pub(crate) fn tokens(text: &str) -> Vec<String> {
        tokenize(text).into_iter().map(|t| t.text).collect()
    }
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    let push = |from: usize, to: usize, text: String, out: &mut Vec<Token>| {
        let position = out.len();
        out.push(Token {
            offset_from: from,
            offset_to: to,
            position,
            text,
            position_length: 1,
        });
    };
    while let Some((start, c)) = chars.next() {
        if is_cjk(c) {
            let mut run = vec![(start, c)];
            while let Some(&(i, d)) = chars.peek() {
                if !is_cjk(d) {
                    break;
                }
                run.push((i, d));
                chars.next();
            }
            if run.len() == 1 {
                push(start, start + c.len_utf8(), c.to_string(), &mut out);
            } else {
                for pair in run.windows(2) {
                    let (a, ca) = pair[0];
                    let (b, cb) = pair[1];
                    let mut s = String::with_capacity(8);
                    s.push(ca);
                    s.push(cb);
                    push(a, b + cb.len_utf8(), s, &mut out);
                }
            }
        } else if c.is_alphanumeric() {
            let mut end = start + c.len_utf8();
            while let Some(&(i, d)) = chars.peek() {
                if !d.is_alphanumeric() || is_cjk(d) {
                    break;
                }
                end = i + d.len_utf8();
                chars.next();
            }
            push(start, end, text[start..end].to_lowercase(), &mut out);
        }
    }
    out
}

/// The token stream of [`NoteTokenizer`].
#[derive(Debug)]
pub(crate) struct NoteTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for NoteTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self
            .next
            .saturating_sub(1)
            .min(self.tokens.len().saturating_sub(1))]
    }

    fn token_mut(&mut self) -> &mut Token {
        let i = self
            .next
            .saturating_sub(1)
            .min(self.tokens.len().saturating_sub(1));
        &mut self.tokens[i]
    }
}

impl Tokenizer for NoteTokenizer {
    type TokenStream<'a> = NoteTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> NoteTokenStream {
        let mut tokens = tokenize(text);
        if tokens.is_empty() {
            // `token()` must return something even on an empty stream.
            tokens.push(Token::default());
            return NoteTokenStream { tokens, next: 1 };
        }
        NoteTokenStream { tokens, next: 0 }
    }
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    author: Field,
    public: Field,
    tag: Field,
    issue: Field,
    folder: Field,
    title: Field,
    aliases: Field,
    tags: Field,
    body: Field,
    issue_text: Field,
    folder_text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        author: b.add_text_field("author", STRING),
        public: b.add_text_field("public", STRING),
        tag: b.add_text_field("tag", STRING),
        issue: b.add_text_field("issue", STRING),
        folder: b.add_text_field("folder", STRING),
        title: b.add_text_field("title", text.clone()),
        aliases: b.add_text_field("aliases", text.clone()),
        tags: b.add_text_field("tags", text.clone()),
        body: b.add_text_field("body", text.clone()),
        issue_text: b.add_text_field("issue_text", text.clone()),
        folder_text: b.add_text_field("folder_text", text),
    };
    (b.build(), fields)
}

fn payload(generation: u64) -> String {
    format!("{LAYOUT} generation={generation}")
}

/// The generation an index's last commit recorded, if it has our layout.
fn committed_generation(index: &Index) -> Result<Option<u64>> {
    let metas = index.load_metas().map_err(search_err)?;
    Ok(metas.payload.as_deref().and_then(|p| {
        p.strip_prefix(LAYOUT)?
            .strip_prefix(" generation=")?
            .parse()
            .ok()
    }))
}

/// The full-text index of the notes.
pub(crate) struct SearchIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    all_words: QueryParser,
    any_word: QueryParser,
    /// The generation of the notes the index reflects; `None`: unknown
    /// (new or foreign), rebuild.
    generation: Mutex<Option<u64>>,
}

impl SearchIndex {
    /// Opens the index in `data_dir/search`, creating it (empty, generation
    /// unknown) when missing, unreadable or of another layout.
    pub(crate) fn open(data_dir: Option<&Path>) -> Result<Self> {
        let (schema, fields) = schema();
        let (index, generation) = match data_dir {
            None => (Index::create_in_ram(schema), Some(0)),
            Some(dir) => open_dir(&dir.join("search"), schema)?,
        };
        let analyzer = TextAnalyzer::builder(NoteTokenizer)
            .filter(RemoveLongFilter::limit(80))
            .build();
        index.tokenizers().register(TOKENIZER, analyzer);
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(search_err)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(search_err)?;
        let text_fields = vec![
            fields.title,
            fields.aliases,
            fields.tags,
            fields.body,
            fields.issue_text,
            fields.folder_text,
        ];
        let mut all_words = QueryParser::for_index(&index, text_fields.clone());
        let mut any_word = QueryParser::for_index(&index, text_fields);
        all_words.set_conjunction_by_default();
        for parser in [&mut all_words, &mut any_word] {
            parser.set_field_boost(fields.title, 3.0);
            parser.set_field_boost(fields.aliases, 2.5);
            parser.set_field_boost(fields.tags, 2.0);
            parser.set_field_boost(fields.body, 1.0);
            parser.set_field_boost(fields.issue_text, 0.8);
            parser.set_field_boost(fields.folder_text, 1.5);
        }
        Ok(SearchIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
            all_words,
            any_word,
            generation: Mutex::new(generation),
        })
    }

    fn writer(&self) -> MutexGuard<'_, IndexWriter> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn generation(&self) -> Option<u64> {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn document(&self, note: &Note, issue_texts: &HashMap<String, String>) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, note.id.to_string());
        doc.add_text(f.author, &note.author);
        doc.add_text(f.public, if note.visible_to("") { "1" } else { "0" });
        let mut tag_keys = HashSet::new();
        for tag in note.all_tags() {
            doc.add_text(f.tags, &tag);
            // A nested tag `a/b` is also found under `a`.
            let lower = tag.to_lowercase();
            tag_keys.extend(nested_keys(&lower).map(str::to_owned));
        }
        for key in tag_keys {
            doc.add_text(f.tag, key);
        }
        // The folder and each folder above it, for the folder filter; its
        // words for text queries.
        let folder = folder_key(&note.folder);
        for key in nested_keys(&folder).filter(|k| !k.is_empty()) {
            doc.add_text(f.folder, key);
        }
        if !note.folder.is_empty() {
            doc.add_text(f.folder_text, &note.folder);
        }
        doc.add_text(f.title, &note.title);
        for alias in note.all_aliases() {
            doc.add_text(f.aliases, alias);
        }
        doc.add_text(f.body, &note.body);
        for fp in &note.issues {
            doc.add_text(f.issue, &fp.0);
            if let Some(text) = issue_texts.get(&fp.0) {
                doc.add_text(f.issue_text, text);
            }
        }
        doc
    }

    /// Replaces the documents of `removed` ids with `added` notes and
    /// commits, recording `generation`.
    pub(crate) fn write(
        &self,
        removed: &[NoteId],
        added: &[&Note],
        issue_texts: &HashMap<String, String>,
        generation: u64,
        clear: bool,
    ) -> Result<()> {
        let mut writer = self.writer();
        let result = (|| {
            if clear {
                writer.delete_all_documents().map_err(search_err)?;
            }
            for id in removed {
                writer.delete_term(Term::from_field_text(self.fields.id, &id.to_string()));
            }
            for note in added {
                writer
                    .add_document(self.document(note, issue_texts))
                    .map_err(search_err)?;
            }
            let mut commit = writer.prepare_commit().map_err(search_err)?;
            commit.set_payload(&payload(generation));
            commit.commit().map_err(search_err)?;
            Ok(())
        })();
        if let Err(e) = result {
            // Drop what was not committed; the index is now behind and is
            // rebuilt when the store opens again.
            let _ = writer.rollback();
            *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(e);
        }
        drop(writer);
        self.reader.reload().map_err(search_err)?;
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = Some(generation);
        Ok(())
    }
}

/// How a folder is matched: without surrounding slashes, lowercase.
fn folder_key(folder: &str) -> String {
    folder.trim().trim_matches('/').to_lowercase()
}

/// The keys a nested tag or a folder is found under: itself and every
/// level above it (`a/b/c`: `a`, `a/b`, `a/b/c`).
fn nested_keys(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('/')
        .map(|(i, _)| &key[..i])
        .chain(std::iter::once(key))
}

fn open_dir(path: &Path, schema: Schema) -> Result<(Index, Option<u64>)> {
    let io = |e: std::io::Error| Error::File {
        path: path.to_owned(),
        source: e,
    };
    if path.join("meta.json").exists() {
        if let Ok(index) = Index::open_in_dir(path) {
            if index.schema() == schema {
                if let Ok(Some(generation)) = committed_generation(&index) {
                    return Ok((index, Some(generation)));
                }
            }
        }
        // Unreadable or another layout: start over (the index derives from
        // the notes).
        std::fs::remove_dir_all(path).map_err(io)?;
    }
    std::fs::create_dir_all(path).map_err(io)?;
    let index = Index::create_in_dir(path, schema).map_err(search_err)?;
    Ok((index, None))
}

/// Text to search for, from a query or an error message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoteQuery {
    /// Words that must all occur (in any field). Quotes make a phrase. An
    /// empty text matches every note that passes the filters.
    pub text: String,
    /// Only this author's notes.
    pub author: Option<String>,
    /// Only notes with all of these tags (case-insensitive; `a` also
    /// matches `a/b`).
    pub tags: Vec<String>,
    /// Only notes linked to this issue.
    pub issue: Option<Fingerprint>,
    /// Only notes in this vault folder or a folder below it
    /// (case-insensitive; `incidents` also matches `incidents/2026`).
    pub folder: Option<String>,
    /// At most this many hits (0 is taken as 20).
    pub limit: usize,
    /// Skip this many hits first.
    pub offset: usize,
}

impl NoteQuery {
    /// A query for `text`, 20 hits.
    pub fn new(text: impl Into<String>) -> Self {
        NoteQuery {
            text: text.into(),
            limit: 20,
            ..NoteQuery::default()
        }
    }

    /// Only this author's notes.
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }

    /// Only notes with this tag (repeatable).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Only notes linked to this issue.
    pub fn issue(mut self, fingerprint: Fingerprint) -> Self {
        self.issue = Some(fingerprint);
        self
    }

    /// Only notes in this folder or below it.
    pub fn folder(mut self, folder: impl Into<String>) -> Self {
        self.folder = Some(folder.into());
        self
    }

    /// At most `limit` hits.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Skips the first `offset` hits.
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
}

/// A piece of a note around what matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snippet {
    /// The text of the piece.
    pub text: String,
    /// Byte ranges of the matched words within `text`.
    pub highlights: Vec<Range<usize>>,
    /// `text` as HTML, escaped, with the matched words in `<b>`.
    pub html: String,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The note.
    pub note: Note,
    /// Its BM25 score (higher is better).
    pub score: f32,
    /// Where it matched: in the body, else in the title.
    pub snippet: Snippet,
}

/// The error to suggest notes for.
#[derive(Debug, Clone, Copy)]
pub enum SuggestFor<'a> {
    /// An issue of the project, by fingerprint.
    Issue(&'a Fingerprint),
    /// An error as captured.
    Error(&'a ErrorRecord),
}

impl<'a> From<&'a Fingerprint> for SuggestFor<'a> {
    fn from(f: &'a Fingerprint) -> Self {
        SuggestFor::Issue(f)
    }
}

impl<'a> From<&'a ErrorRecord> for SuggestFor<'a> {
    fn from(e: &'a ErrorRecord) -> Self {
        SuggestFor::Error(e)
    }
}

/// Why a note is suggested.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SuggestReason {
    /// It is linked to the error's issue.
    Linked,
    /// Its text matches the error's type and message, with this score.
    Matches(f32),
}

/// A note suggested for an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The note.
    pub note: Note,
    /// Why.
    pub reason: SuggestReason,
}

fn plain_snippet(text: &str) -> Snippet {
    let end = text
        .char_indices()
        .nth(SNIPPET_CHARS)
        .map_or(text.len(), |(i, _)| i);
    let text = text[..end].trim().to_owned();
    let mut html = String::with_capacity(text.len());
    escape_into(&text, &mut html);
    Snippet {
        text,
        highlights: Vec::new(),
        html,
    }
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// How many words a suggested note must share with the error.
const SUGGEST_MIN_WORDS: usize = 2;

/// Words that tell nothing about an error: English function words, and the
/// words that most error messages carry.
fn is_generic(word: &str) -> bool {
    const GENERIC: &[&str] = &[
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "cannot",
        "could",
        "did",
        "do",
        "error",
        "exception",
        "fail",
        "failed",
        "failure",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "no",
        "not",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "unable",
        "was",
        "were",
        "while",
        "will",
        "with",
    ];
    GENERIC.iter().any(|g| g.eq_ignore_ascii_case(word))
}

/// Error text as search words: type and normalized message, with the
/// placeholders of normalization (`<num>`, `<uuid>`, ...) and query syntax
/// removed.
fn error_words(error: &ErrorRecord) -> String {
    let mut text = String::new();
    if let Some(t) = &error.error_type {
        text.push_str(t);
        text.push(' ');
    }
    let normalized = normalize_message(&error.message);
    let mut in_placeholder = false;
    for c in normalized.chars() {
        match c {
            '<' => in_placeholder = true,
            '>' if in_placeholder => {
                in_placeholder = false;
                text.push(' ');
            }
            _ if in_placeholder => {}
            c if c.is_alphanumeric() => text.push(c),
            _ => text.push(' '),
        }
    }
    text
}

impl Embedded {
    /// Updates the search index after a committed change of the notes.
    pub(crate) fn index_notes(
        &self,
        removed: &[NoteId],
        added: &[&Note],
        generation: u64,
    ) -> Result<()> {
        let texts = self.issue_texts(added.iter().copied())?;
        self.core()
            .notes
            .search
            .write(removed, added, &texts, generation, false)
    }

    /// The titles and messages of the issues `notes` are linked to, by
    /// fingerprint (issues of every project).
    fn issue_texts<'a>(
        &self,
        notes: impl Iterator<Item = &'a Note>,
    ) -> Result<HashMap<String, String>> {
        let wanted: HashSet<&str> = notes
            .flat_map(|n| n.issues.iter().map(|f| f.0.as_str()))
            .collect();
        let mut out: HashMap<String, String> = HashMap::new();
        if wanted.is_empty() {
            return Ok(out);
        }
        for item in self.core().t.issues.iter() {
            let (k, _) = item.db()?;
            let mut r = KeyReader::new("issues", &k);
            let (project, fp) = (r.str()?, r.str()?);
            if !wanted.contains(fp) {
                continue;
            }
            let fingerprint = Fingerprint(fp.to_owned());
            if let Some(issue) = self.issues().get(project, &fingerprint)? {
                let text = out.entry(fingerprint.0).or_default();
                for part in [&issue.title, &issue.latest_error.message]
                    .into_iter()
                    .chain(&issue.latest_error.causes)
                {
                    text.push_str(part);
                    text.push('\n');
                }
            }
        }
        Ok(out)
    }

    fn rebuild_locked(&self) -> Result<usize> {
        let t = &self.core().t;
        let generation = notes::generation(t)?;
        let all: Vec<Note> = notes::all_notes(t).collect::<Result<_>>()?;
        let refs: Vec<&Note> = all.iter().collect();
        let texts = self.issue_texts(all.iter())?;
        self.core()
            .notes
            .search
            .write(&[], &refs, &texts, generation, true)?;
        Ok(all.len())
    }

    /// Rebuilds the index if it does not reflect the current notes (called
    /// when the store opens).
    pub(crate) fn sync_search_index(&self) -> Result<()> {
        let _guard = self.core().notes.lock();
        let current = notes::generation(&self.core().t)?;
        if self.core().notes.search.generation() != Some(current) {
            self.rebuild_locked()?;
        }
        Ok(())
    }
}

/// Where a search's index and notes come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// The embedded store: its index on disk, kept with its notes.
    Sled(&'a Embedded),
    /// PostgreSQL: this node's index, built from the database.
    Postgres(&'a PgNotes),
}

/// Full-text search over the notes a viewer may see: [`Search::notes`],
/// [`Search::suggest`] (the notes that help with an error) and
/// [`Search::rebuild`].
///
/// Returned by [`Store::search`](crate::Store::search) and
/// [`Database::search`](crate::postgres::Database::search); costs nothing
/// to make.
#[derive(Clone, Copy)]
pub struct Search<'a> {
    index: &'a SearchIndex,
    notes: Notes<'a>,
    /// The issues, whose latest error a suggestion for an issue matches.
    issues: Issues<'a>,
    source: Source<'a>,
}

impl std::fmt::Debug for Search<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search").finish_non_exhaustive()
    }
}

impl Embedded {
    /// The store's full-text search (see [`Search`]).
    pub fn search(&self) -> Search<'_> {
        Search {
            index: &self.core().notes.search,
            notes: self.notes(),
            issues: self.issues(),
            source: Source::Sled(self),
        }
    }
}

impl<'a> Search<'a> {
    /// Search over a PostgreSQL database's notes, with this node's index.
    pub(crate) fn postgres(
        index: &'a SearchIndex,
        notes: Notes<'a>,
        issues: Issues<'a>,
        pg: &'a PgNotes,
    ) -> Self {
        Search {
            index,
            notes,
            issues,
            source: Source::Postgres(pg),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_query(
        &self,
        viewer: &str,
        text_query: Box<dyn Query>,
        author: Option<&str>,
        tags: &[String],
        issue: Option<&Fingerprint>,
        folder: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<SearchHit>> {
        let index = self.index;
        let f = index.fields;
        let term = |field: Field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let filter = |q: Box<dyn Query>| -> (Occur, Box<dyn Query>) {
            (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
        };
        let visible: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
            (Occur::Should, term(f.public, "1")),
            (Occur::Should, term(f.author, viewer)),
        ]));
        let mut clauses = vec![(Occur::Must, text_query.box_clone())];
        clauses.push(filter(visible.box_clone()));
        if let Some(author) = author {
            clauses.push(filter(term(f.author, author)));
        }
        for tag in tags {
            clauses.push(filter(term(f.tag, &tag.trim().to_lowercase())));
        }
        if let Some(fp) = issue {
            clauses.push(filter(term(f.issue, &fp.0)));
        }
        let folder = folder.map(folder_key).filter(|k| !k.is_empty());
        if let Some(folder) = &folder {
            clauses.push(filter(term(f.folder, folder)));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = index.reader.searcher();
        let statistics = VisibleStatistics::new(&searcher, &*visible).map_err(search_err)?;
        let top = searcher
            .search_with_statistics_provider(
                &query,
                &TopDocs::with_limit(limit.max(1))
                    .and_offset(offset)
                    .order_by_score(),
                &statistics,
            )
            .map_err(search_err)?;
        let body_snippets = statistics
            .snippets(&*text_query, f.body, SNIPPET_CHARS)
            .map_err(search_err)?;
        let title_snippets = statistics
            .snippets(&*text_query, f.title, SNIPPET_CHARS)
            .map_err(search_err)?;
        let lowered_tags: Vec<String> = tags.iter().map(|t| t.trim().to_lowercase()).collect();
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(search_err)?;
            let Some(id) = doc
                .get_first(f.id)
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<NoteId>().ok())
            else {
                continue;
            };
            // The store is the truth: check the note against it again.
            let Some(note) = self.notes.get(id, viewer)? else {
                continue;
            };
            if author.is_some_and(|a| a != note.author)
                || issue.is_some_and(|fp| !note.issues.contains(fp))
                || folder
                    .as_deref()
                    .is_some_and(|k| !tag_matches(&folder_key(&note.folder), k))
                || !lowered_tags
                    .iter()
                    .all(|t| note.all_tags().iter().any(|n| tag_matches(n, t)))
            {
                continue;
            }
            let mut snippet = convert(body_snippets.snippet(&note.body));
            if snippet.highlights.is_empty() {
                let title = convert(title_snippets.snippet(&note.title));
                snippet = if title.highlights.is_empty() {
                    plain_snippet(&note.body)
                } else {
                    title
                };
            }
            out.push(SearchHit {
                note,
                score,
                snippet,
            });
        }
        Ok(out)
    }
}

impl Search<'_> {
    /// Rebuilds the search index from the stored notes; returns how many
    /// notes it holds. Opening a store does this by itself when the index is
    /// missing or behind.
    pub fn rebuild(&self) -> Result<usize> {
        match self.source {
            Source::Sled(store) => {
                let _guard = store.core().notes.lock();
                store.rebuild_locked()
            }
            Source::Postgres(pg) => pg.rebuild_search(),
        }
    }

    /// Searches the notes `viewer` may see (public notes and their own),
    /// best first, each with a snippet.
    pub fn notes(&self, viewer: &str, query: &NoteQuery) -> Result<Vec<SearchHit>> {
        let index = self.index;
        let text = query.text.trim();
        let text_query: Box<dyn Query> = if text.is_empty() {
            Box::new(AllQuery)
        } else {
            index.all_words.parse_query_lenient(text).0
        };
        let limit = if query.limit == 0 { 20 } else { query.limit };
        let hits = self.run_query(
            viewer,
            text_query,
            query.author.as_deref(),
            &query.tags,
            query.issue.as_ref(),
            query.folder.as_deref(),
            limit,
            query.offset,
        )?;
        Ok(hits)
    }

    /// Notes that may help with an error, for `viewer`: first the notes
    /// linked to its issue (most recently updated first), then notes that
    /// share at least two telling words with its error type and normalized
    /// message (not function words, nor `error` or `failed`), best first; at
    /// most `limit` in all.
    pub fn suggest<'a>(
        &self,
        project: &str,
        error: impl Into<SuggestFor<'a>>,
        viewer: &str,
        limit: usize,
    ) -> Result<Vec<Suggestion>> {
        let (fp, record) = match error.into() {
            SuggestFor::Issue(fp) => (
                fp.clone(),
                self.issues.get(project, fp)?.map(|i| i.latest_error),
            ),
            SuggestFor::Error(e) => (fingerprint(e), Some(e.clone())),
        };
        let mut out: Vec<Suggestion> = self
            .notes
            .for_issue(&fp, viewer)?
            .into_iter()
            .map(|note| Suggestion {
                note,
                reason: SuggestReason::Linked,
            })
            .collect();
        out.truncate(limit);
        let Some(record) = record else {
            return Ok(out);
        };
        if out.len() >= limit {
            return Ok(out);
        }
        // A note is suggested when it shares at least two telling words with
        // the error's type and message (or the one word there is): a single
        // shared word, like `customer`, suggests too much.
        let parser = &self.index.any_word;
        let mut distinct = HashSet::new();
        let clauses: Vec<(Occur, Box<dyn Query>)> = error_words(&record)
            .split_whitespace()
            .filter(|w| !is_generic(w) && distinct.insert(w.to_lowercase()))
            .map(|w| (Occur::Should, parser.parse_query_lenient(w).0))
            .collect();
        if clauses.is_empty() {
            return Ok(out);
        }
        let required = clauses.len().min(SUGGEST_MIN_WORDS);
        let query: Box<dyn Query> = Box::new(BooleanQuery::with_minimum_required_clauses(
            clauses, required,
        ));
        let seen: HashSet<NoteId> = out.iter().map(|s| s.note.id).collect();
        let hits = self.run_query(viewer, query, None, &[], None, None, limit + seen.len(), 0)?;
        for hit in hits {
            if out.len() >= limit {
                break;
            }
            if !seen.contains(&hit.note.id) {
                out.push(Suggestion {
                    note: hit.note,
                    reason: SuggestReason::Matches(hit.score),
                });
            }
        }
        Ok(out)
    }
}

/// BM25 statistics over the documents one viewer may see (public notes and
/// their own), alive in the index: what the index holds beyond them never
/// changes a score. Built per search, in one pass over the visible
/// documents; each document frequency walks the term's postings once.
struct VisibleStatistics<'s> {
    searcher: &'s Searcher,
    /// Per segment: the visible documents, ascending, and the same as a set.
    visible: Vec<(Vec<DocId>, BitSet)>,
}

impl<'s> VisibleStatistics<'s> {
    fn new(searcher: &'s Searcher, visibility: &dyn Query) -> tantivy::Result<Self> {
        let weight = visibility.weight(EnableScoring::disabled_from_searcher(searcher))?;
        let mut visible = Vec::with_capacity(searcher.segment_readers().len());
        for reader in searcher.segment_readers() {
            let mut docs = Vec::new();
            let mut set = BitSet::with_max_value(reader.max_doc());
            let alive = reader.alive_bitset();
            let mut scorer = weight.scorer(reader, 1.0)?;
            let mut doc = scorer.doc();
            while doc != TERMINATED {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    docs.push(doc);
                    set.insert(doc);
                }
                doc = scorer.advance();
            }
            visible.push((docs, set));
        }
        Ok(VisibleStatistics { searcher, visible })
    }

    /// A snippet generator whose word weights (rarer words count more)
    /// come from the visible documents.
    fn snippets(
        &self,
        query: &dyn Query,
        field: Field,
        max_chars: usize,
    ) -> tantivy::Result<SnippetGenerator> {
        let mut terms: Vec<Term> = Vec::new();
        query.query_terms(&mut |term, _| {
            if term.field() == field && !terms.contains(term) {
                terms.push(term.clone());
            }
        });
        let mut weights = std::collections::BTreeMap::new();
        for term in &terms {
            let value = term.value();
            let Some(text) = value.as_str() else {
                continue;
            };
            let doc_freq = self.doc_freq(term)?;
            if doc_freq > 0 {
                weights.insert(text.to_owned(), 1.0 / (1.0 + doc_freq as f32));
            }
        }
        let tokenizer = self.searcher.index().tokenizer_for_field(field)?;
        Ok(SnippetGenerator::new(weights, tokenizer, field, max_chars))
    }
}

impl Bm25StatisticsProvider for VisibleStatistics<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        let mut total = 0u64;
        for (reader, (docs, _)) in self.searcher.segment_readers().iter().zip(&self.visible) {
            let norms = reader.get_fieldnorms_reader(field)?;
            total += docs
                .iter()
                .map(|&doc| u64::from(norms.fieldnorm(doc)))
                .sum::<u64>();
        }
        Ok(total)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.visible.iter().map(|(docs, _)| docs.len() as u64).sum())
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let mut count = 0u64;
        for (reader, (_, set)) in self.searcher.segment_readers().iter().zip(&self.visible) {
            let index = reader.inverted_index(term.field())?;
            let Some(mut postings) = index.read_postings(term, IndexRecordOption::Basic)? else {
                continue;
            };
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if set.contains(doc) {
                    count += 1;
                }
                doc = postings.advance();
            }
        }
        Ok(count)
    }
}

fn convert(s: tantivy::snippet::Snippet) -> Snippet {
    Snippet {
        text: s.fragment().to_owned(),
        highlights: s.highlighted().to_vec(),
        html: s.to_html(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        NoteTokenizer::tokens(s)
    }

    #[test]
    fn latin_words_stay_whole_and_lowercase() {
        assert_eq!(
            texts("Card DECLINED: retry_later v2"),
            ["card", "declined", "retry", "later", "v2"]
        );
    }

    #[test]
    fn cjk_runs_become_bigrams_with_exact_offsets() {
        let tokens = tokenize("결제가 실패 값");
        let got: Vec<(&str, usize, usize, usize)> = tokens
            .iter()
            .map(|t| (t.text.as_str(), t.offset_from, t.offset_to, t.position))
            .collect();
        assert_eq!(
            got,
            [
                ("결제", 0, 6, 0),
                ("제가", 3, 9, 1),
                ("실패", 10, 16, 2),
                ("값", 17, 20, 3)
            ]
        );
    }

    #[test]
    fn mixed_scripts_split_at_the_boundary() {
        assert_eq!(
            texts("Payment 결제가 실패"),
            ["payment", "결제", "제가", "실패"]
        );
        assert_eq!(texts("DB-timeout 값"), ["db", "timeout", "값"]);
        assert_eq!(texts("API타임아웃"), ["api", "타임", "임아", "아웃"]);
        assert_eq!(texts(""), Vec::<String>::new());
    }

    #[test]
    fn empty_stream_is_safe() {
        let mut t = NoteTokenizer;
        let mut s = t.token_stream("  -- ");
        assert!(!s.advance());
        let _ = s.token();
    }

    #[test]
    fn error_words_drop_placeholders() {
        let e = ErrorRecord::new("timeout after 3000ms calling /orders/17", 0)
            .with_service("payment")
            .with_error_type("PaymentError");
        let words = error_words(&e);
        assert!(words.contains("PaymentError"));
        assert!(words.contains("timeout"));
        assert!(!words.contains("num"));
        assert!(!words.contains('<'));
    }
}
