//! Notes: CRUD, backlinks, rendering, the note graph, search and the notes
//! suggested for an issue (documented in `API.md`).
//!
//! Every read goes through the store with the caller as viewer, so private
//! notes stay private: a note the caller may not see answers 404, a note
//! the caller may see but did not write answers 403 to changes, and a
//! change based on an old revision answers 409.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use omegi_core::note::{
    to_dot, to_mermaid, AttachmentLimits, LocalGraphOptions, Note, NoteId, NoteLimits, Subgraph,
    Visibility,
};
use omegi_core::Fingerprint;
use omegi_store::{NewNote, NoteFilter, NoteQuery, NoteUpdate, SuggestFor, SuggestReason};
use serde::{Deserialize, Serialize};

use super::extract::{JsonBody, Path, Query};
use super::{blocking, ApiError, ApiUser, SharedState};

/// The most notes a list or search answers with.
const MAX_LIMIT: usize = 1000;

/// The notes routes; note bodies are read up to what `limits` let a note
/// hold (twice its bytes, for JSON escapes, and 64 KiB for the rest), an
/// attachment's up to what `attachments` let one file hold.
pub fn routes(limits: NoteLimits, attachments: AttachmentLimits) -> Router<SharedState> {
    let body_limit = limits
        .body_bytes
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    let files = Router::new()
        .route(
            "/api/notes/{id}/attachments",
            get(list_attachments).post(upload_attachment),
        )
        .route(
            "/api/notes/{id}/attachments/{name}",
            get(attachment).delete(delete_attachment),
        )
        .layer(DefaultBodyLimit::max(attachments.file_bytes));
    Router::new()
        .route("/api/notes", get(list_notes).post(create_note))
        .route("/api/notes/resolve", get(resolve))
        .route(
            "/api/notes/{id}",
            get(note).put(update_note).delete(delete_note),
        )
        .route("/api/notes/{id}/backlinks", get(backlinks))
        .route("/api/notes/{id}/rendered", get(rendered))
        .route("/api/notes/{id}/mentions", get(mentions))
        .route("/api/notes/render", post(preview))
        .route("/api/notes/{id}/graph", get(local_graph))
        .route("/api/graph", get(graph))
        .route("/api/notes/graph", get(graph))
        .route("/api/search", get(search))
        .route(
            "/api/issues/{project}/{fingerprint}/suggestions",
            get(suggestions),
        )
        .route(
            "/api/issues/{project}/{fingerprint}/notes",
            get(issue_notes),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .merge(files)
}

/// An issue reference in a note body: a fingerprint, or
/// `<project>:<fingerprint>` (notes link to fingerprints).
fn fingerprint(text: &str) -> Result<Fingerprint, ApiError> {
    let fp = text.rsplit_once(':').map_or(text, |(_, fp)| fp).trim();
    if fp.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "invalid issue {text:?}: expected a fingerprint"
        )));
    }
    Ok(Fingerprint(fp.to_owned()))
}

fn fingerprints(list: Vec<String>) -> Result<Vec<Fingerprint>, ApiError> {
    list.iter().map(|s| fingerprint(s)).collect()
}

/// A store error as the answer it deserves: missing or hidden notes are
/// 404, someone else's note 403, a stale revision 409, an invalid note 400,
/// a note over the size limit 413 (over another limit 400).
fn store_error(e: omegi_store::Error) -> ApiError {
    use omegi_store::Error as E;
    match e {
        E::NoteOverLimit(limit) if limit.is_too_large() => {
            ApiError::Rejected(StatusCode::PAYLOAD_TOO_LARGE, limit.to_string())
        }
        E::NoteOverLimit(limit) => ApiError::BadRequest(limit.to_string()),
        E::NoteNotFound { .. } => ApiError::NotFound(e.to_string()),
        E::NotNoteAuthor { .. } => ApiError::Forbidden(e.to_string()),
        E::RevisionMismatch { .. } => ApiError::Conflict(e.to_string()),
        E::InvalidNote(_) | E::InvalidName { .. } => ApiError::BadRequest(e.to_string()),
        E::AttachmentRefused(ref refused) if refused.is_too_large() => {
            ApiError::Rejected(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        E::AttachmentRefused(_) => ApiError::BadRequest(e.to_string()),
        E::AttachmentExists { .. } => ApiError::Conflict(e.to_string()),
        E::AttachmentNotFound { .. } => ApiError::NotFound(e.to_string()),
        other => ApiError::Store(other),
    }
}

fn note_id(text: &str) -> Result<NoteId, ApiError> {
    text.parse()
        .map_err(|e| ApiError::BadRequest(format!("invalid note id {text:?}: {e}")))
}

/// Query of `GET /api/notes`.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// Only notes by this author.
    pub author: Option<String>,
    /// Only notes with this tag (or a tag nested below it).
    pub tag: Option<String>,
    /// Only notes linked to this issue (fingerprint or `project:fingerprint`).
    pub issue: Option<String>,
    /// Only the caller's own notes.
    pub mine: Option<bool>,
    /// At most this many (default and maximum 1000).
    pub limit: Option<usize>,
}

async fn list_notes(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<Note>>, ApiError> {
    let mut filter = NoteFilter::all().limit(params.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT));
    if params.mine == Some(true) {
        if params.author.as_ref().is_some_and(|a| *a != viewer) {
            return Err(ApiError::BadRequest(
                "mine=true and author name different users".into(),
            ));
        }
        filter = filter.author(viewer.clone());
    } else if let Some(author) = params.author {
        filter = filter.author(author);
    }
    if let Some(tag) = params.tag {
        filter = filter.tag(tag.trim_start_matches('#'));
    }
    if let Some(issue) = params.issue {
        filter = filter.issue(fingerprint(&issue)?);
    }
    blocking(&state, move |state| {
        Ok(Json(
            state
                .store
                .notes()
                .list(&viewer, &filter)
                .map_err(store_error)?,
        ))
    })
    .await
}

/// Body of `POST /api/notes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewNoteBody {
    /// The title.
    pub title: String,
    /// The vault folder (`a/b`; empty or absent: the top).
    #[serde(default)]
    pub folder: String,
    /// The Markdown body.
    #[serde(default)]
    pub body: String,
    /// Tags without `#`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Other names `[[...]]` links resolve by.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `private` (default) or `public`.
    #[serde(default)]
    pub visibility: Visibility,
    /// The issues the note is about: fingerprints or `project:fingerprint`.
    #[serde(default)]
    pub issues: Vec<String>,
}

async fn create_note(
    State(state): State<SharedState>,
    ApiUser(author): ApiUser,
    JsonBody(body): JsonBody<NewNoteBody>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    if body.title.trim().is_empty() {
        return Err(ApiError::BadRequest("a note needs a title".into()));
    }
    let issues = fingerprints(body.issues)?;
    blocking(&state, move |state| {
        let mut new = NewNote::new(author, body.title.trim(), body.body)
            .folder(body.folder)
            .tags(body.tags)
            .aliases(body.aliases)
            .issues(issues);
        if body.visibility == Visibility::Public {
            new = new.public();
        }
        Ok((
            StatusCode::CREATED,
            Json(state.store.notes().create(new).map_err(store_error)?),
        ))
    })
    .await
}

async fn note(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<Note>, ApiError> {
    let id = note_id(&id)?;
    blocking(&state, move |state| {
        state
            .store
            .notes()
            .get(id, &viewer)
            .map_err(store_error)?
            .map(Json)
            .ok_or_else(|| ApiError::NotFound(format!("no note {id}")))
    })
    .await
}

/// Query of `GET /api/notes/resolve`.
#[derive(Debug, Deserialize)]
pub(super) struct ResolveParams {
    /// A title or alias, as a `[[link]]` would name the note, or a path
    /// (`Folder/Title`).
    name: String,
    /// The folder of the note the link is written in (default: the top).
    #[serde(default)]
    from: String,
}

/// The note a `[[link]]` with this name leads to, for the caller.
async fn resolve(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Query(params): Query<ResolveParams>,
) -> Result<Json<Note>, ApiError> {
    blocking(&state, move |state| {
        let store = &state.store;
        let not_found = || ApiError::NotFound(format!("no note named {:?}", params.name));
        let id = store
            .notes()
            .resolve_link_from(&params.name, &params.from, &viewer)
            .map_err(store_error)?
            .ok_or_else(not_found)?;
        store
            .notes()
            .get(id, &viewer)
            .map_err(store_error)?
            .map(Json)
            .ok_or_else(not_found)
    })
    .await
}

/// Body of `PUT /api/notes/{id}`: the fields to change, and the revision
/// the change is based on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateNoteBody {
    /// The revision the caller read (409 when the note has moved on).
    pub revision: u64,
    /// A new title: renames the note and rewrites the links naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A new folder (`""`: the top): moves the note and rewrites the links
    /// that would no longer lead to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// A new body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// New tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// New aliases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// New visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// New linked issues (fingerprints or `project:fingerprint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issues: Option<Vec<String>>,
}

async fn update_note(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateNoteBody>,
) -> Result<Json<Note>, ApiError> {
    let id = note_id(&id)?;
    let issues = body.issues.map(fingerprints).transpose()?;
    if body.title.as_ref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::BadRequest("a note needs a title".into()));
    }
    let mut update = NoteUpdate::new();
    if let Some(text) = body.body {
        update = update.body(text);
    }
    if let Some(tags) = body.tags {
        update = update.tags(tags);
    }
    if let Some(aliases) = body.aliases {
        update = update.aliases(aliases);
    }
    if let Some(visibility) = body.visibility {
        update = update.visibility(visibility);
    }
    if let Some(issues) = issues {
        update = update.issues(issues);
    }
    if let Some(title) = body.title {
        update = update.title(title);
    }
    if let Some(folder) = body.folder {
        update = update.folder(folder);
    }
    blocking(&state, move |state| {
        // One revision check for the fields and the rename together; an
        // update that changes nothing answers with the note as it is.
        Ok(Json(
            state
                .store
                .notes()
                .update(id, &viewer, update, body.revision)
                .map_err(store_error)?,
        ))
    })
    .await
}

async fn delete_note(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<Note>, ApiError> {
    with_note(&state, &id, viewer, |notes, id, viewer| {
        notes.delete(id, viewer)
    })
    .await
}

async fn backlinks(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<Note>>, ApiError> {
    with_note(&state, &id, viewer, |notes, id, viewer| {
        notes.backlinks(id, viewer)
    })
    .await
}

/// The answer of `GET /api/notes/{id}/rendered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedNote {
    /// The note's id.
    pub id: NoteId,
    /// Its title.
    pub title: String,
    /// The note as HTML for the caller ([`omegi_core::note::to_html`]):
    /// links resolved as the caller sees them, embeds expanded, raw HTML
    /// escaped.
    #[serde(default)]
    pub html: String,
    /// Its Markdown with `![[...]]` embeds expanded for the caller (for
    /// terminals).
    pub markdown: String,
    /// Whether the expansion ran out of its budget (the Markdown and the
    /// HTML then say `(embed limit reached)` where they stopped).
    #[serde(default)]
    pub limit_reached: bool,
}

async fn rendered(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<RenderedNote>, ApiError> {
    let id = note_id(&id)?;
    blocking(&state, move |state| {
        let title = state
            .store
            .notes()
            .get(id, &viewer)
            .map_err(store_error)?
            .map(|n| n.title)
            .ok_or(ApiError::NotFound(format!("no note {id}")))?;
        let expanded = state
            .store
            .notes()
            .expand(id, &viewer)
            .map_err(store_error)?;
        let html = state.store.notes().html(id, &viewer).map_err(store_error)?;
        Ok(Json(RenderedNote {
            id,
            title,
            html: html.html,
            markdown: expanded.markdown,
            limit_reached: expanded.limit_reached || html.limit_reached,
        }))
    })
    .await
}

/// Body of `POST /api/notes/render`: a note as it is being written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreviewBody {
    /// The title being written (links to it lead to the note itself).
    #[serde(default)]
    pub title: String,
    /// The Markdown being written.
    #[serde(default)]
    pub body: String,
    /// Its aliases.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The id of the note being edited, if it is stored already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<NoteId>,
}

/// The answer of `POST /api/notes/render`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewHtml {
    /// The note as HTML, as the caller will see it once saved.
    pub html: String,
    /// Whether the embeds ran out of their budget.
    #[serde(default)]
    pub limit_reached: bool,
}

/// The editor's live preview: the Markdown rendered as the caller would
/// see it saved, within the note limits (nothing is stored).
async fn preview(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    JsonBody(body): JsonBody<PreviewBody>,
) -> Result<Json<PreviewHtml>, ApiError> {
    blocking(&state, move |state| {
        let mut note = Note::new(
            body.id.unwrap_or(NoteId(uuid::Uuid::nil())),
            viewer,
            body.title.trim(),
            body.body,
            0,
        );
        note.aliases = body.aliases;
        note.tags = body.tags;
        let html = state
            .store
            .notes()
            .preview_html(&note)
            .map_err(store_error)?;
        Ok(Json(PreviewHtml {
            html: html.html,
            limit_reached: html.limit_reached,
        }))
    })
    .await
}

/// The notes that name a note without linking to it, as the caller sees
/// them.
async fn mentions(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<Note>>, ApiError> {
    with_note(&state, &id, viewer, |notes, id, viewer| {
        notes.unlinked_mentions(id, viewer)
    })
    .await
}

/// Query of `GET /api/search`.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    /// The words to find; none: every note the filters keep.
    #[serde(default)]
    pub q: String,
    /// Only notes by this author.
    pub author: Option<String>,
    /// Only notes with this tag.
    pub tag: Option<String>,
    /// Only notes linked to this issue.
    pub issue: Option<String>,
    /// Only notes in this vault folder or below it.
    pub folder: Option<String>,
    /// At most this many hits (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The note.
    pub note: Note,
    /// Its BM25 score, higher is better.
    pub score: f32,
    /// Where it matched.
    pub snippet: SnippetView,
}

/// Where a note matched: text, byte ranges of the matched words in it, and
/// the same as HTML with `<mark>`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnippetView {
    /// The text.
    pub text: String,
    /// Byte ranges of the matched words, as `{"start", "end"}`.
    pub highlights: Vec<std::ops::Range<usize>>,
    /// The text as escaped HTML with the matches marked.
    #[serde(default)]
    pub html: String,
}

async fn search(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Query(params): Query<SearchParams>,
) -> Result<Json<Vec<Hit>>, ApiError> {
    let mut query = NoteQuery::new(params.q).limit(params.limit.unwrap_or(50).min(MAX_LIMIT));
    if let Some(author) = params.author {
        query = query.author(author);
    }
    if let Some(tag) = params.tag {
        query = query.tag(tag.trim_start_matches('#'));
    }
    if let Some(issue) = params.issue {
        query = query.issue(fingerprint(&issue)?);
    }
    if let Some(folder) = params.folder {
        query = query.folder(folder);
    }
    blocking(&state, move |state| {
        let hits = state
            .store
            .search()
            .notes(&viewer, &query)
            .map_err(store_error)?;
        Ok(Json(
            hits.into_iter()
                .map(|h| Hit {
                    note: h.note,
                    score: h.score,
                    snippet: SnippetView {
                        text: h.snippet.text,
                        highlights: h.snippet.highlights,
                        html: h.snippet.html,
                    },
                })
                .collect(),
        ))
    })
    .await
}

/// How a graph is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphFormat {
    /// A [`Subgraph`] as JSON.
    #[default]
    Json,
    /// Graphviz DOT, as text.
    Dot,
    /// A Mermaid flowchart, as text.
    Mermaid,
}

/// Query of the graph endpoints. Values are taken as text so that an empty
/// parameter (`depth=`) means "the default".
#[derive(Debug, Default, Deserialize)]
pub struct GraphParams {
    /// `GET /api/graph` only: the note at the centre (default: every note).
    pub note: Option<String>,
    /// Links away from the centre (default 2, at most 10).
    pub depth: Option<String>,
    /// `true`/`false`: show issue nodes (default true).
    pub issues: Option<String>,
    /// `true`/`false`: show tag nodes (default true); anything else is a
    /// comma-separated list of tags that notes must have.
    pub tags: Option<String>,
    /// `json` (default), `dot` or `mermaid`.
    pub format: Option<GraphFormat>,
    /// `true`/`false`: show the files notes embed or link to as
    /// `attachment` nodes (default false; a file is never an unresolved
    /// note).
    pub attachments: Option<String>,
}

fn flag(name: &str, value: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None | Some("") => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid {name} {other:?}: expected true or false"
        ))),
    }
}

impl GraphParams {
    fn options(&self) -> Result<LocalGraphOptions, ApiError> {
        let depth = match self.depth.as_deref().map(str::trim) {
            None | Some("") => 2,
            Some(d) => d.parse::<u32>().map_err(|_| {
                ApiError::BadRequest(format!("invalid depth {d:?}: expected a number"))
            })?,
        };
        let (show_tags, tags) = match self.tags.as_deref().map(str::trim) {
            Some(list) if !matches!(list, "" | "true" | "false" | "1" | "0") => (
                true,
                list.split(',')
                    .map(|t| t.trim().trim_start_matches('#').to_owned())
                    .filter(|t| !t.is_empty())
                    .collect(),
            ),
            other => (flag("tags", other, true)?, Vec::new()),
        };
        Ok(LocalGraphOptions {
            depth: depth.min(10),
            tags,
            show_issues: flag("issues", self.issues.as_deref(), true)?,
            show_tags,
            show_unresolved: true,
            show_attachments: flag("attachments", self.attachments.as_deref(), false)?,
            ..LocalGraphOptions::default()
        })
    }
}

fn graph_response(graph: Subgraph, format: GraphFormat) -> Response {
    let text = |body: String| {
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
    };
    match format {
        GraphFormat::Json => Json(graph).into_response(),
        GraphFormat::Dot => text(to_dot(&graph)),
        GraphFormat::Mermaid => text(to_mermaid(&graph)),
    }
}

async fn graph(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Query(params): Query<GraphParams>,
) -> Result<Response, ApiError> {
    let centre = match params.note.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) => Some(note_id(id)?),
    };
    graph_of(state, viewer, centre, params).await
}

async fn local_graph(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path(id): Path<String>,
    Query(params): Query<GraphParams>,
) -> Result<Response, ApiError> {
    let id = note_id(&id)?;
    graph_of(state, viewer, Some(id), params).await
}

async fn graph_of(
    state: SharedState,
    viewer: String,
    centre: Option<NoteId>,
    params: GraphParams,
) -> Result<Response, ApiError> {
    let options = params.options()?;
    let format = params.format.unwrap_or_default();
    let graph = blocking(&state, move |state| {
        let graph = state.store.notes().graph(&viewer).map_err(store_error)?;
        match centre {
            None => Ok(graph.full(&options)),
            Some(id) => graph
                .local_graph(id, &options)
                .ok_or_else(|| ApiError::NotFound(format!("no note {id}"))),
        }
    })
    .await?;
    Ok(graph_response(graph, format))
}

/// Query of the issue notes endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct SuggestParams {
    /// At most this many notes in all (default 20, at most 100).
    pub limit: Option<usize>,
}

/// The answer of `GET /api/issues/{project}/{fingerprint}/suggestions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssueSuggestions {
    /// Notes linked to the issue, most recently updated first.
    pub linked: Vec<Note>,
    /// Notes whose text matches the issue's error, best first.
    pub suggested: Vec<Note>,
}

async fn suggested_for(
    state: SharedState,
    viewer: String,
    project: String,
    fingerprint: String,
    limit: Option<usize>,
) -> Result<IssueSuggestions, ApiError> {
    let limit = limit.unwrap_or(20).clamp(1, 100);
    blocking(&state, move |state| {
        // The issue's project must be the caller's.
        super::readable_projects(state, &ApiUser(viewer.clone()))?.require(&project)?;
        let fp = Fingerprint(fingerprint);
        let mut out = IssueSuggestions::default();
        for s in state
            .store
            .search()
            .suggest(&project, SuggestFor::Issue(&fp), &viewer, limit)
            .map_err(store_error)?
        {
            match s.reason {
                SuggestReason::Linked => out.linked.push(s.note),
                SuggestReason::Matches(_) => out.suggested.push(s.note),
            }
        }
        Ok(out)
    })
    .await
}

async fn suggestions(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path((project, fingerprint)): Path<(String, String)>,
    Query(params): Query<SuggestParams>,
) -> Result<Json<IssueSuggestions>, ApiError> {
    Ok(Json(
        suggested_for(state, viewer, project, fingerprint, params.limit).await?,
    ))
}

/// The answer of `GET /api/issues/{project}/{fingerprint}/notes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssueNotes {
    /// The linked notes first, then the suggested ones.
    pub notes: Vec<Note>,
}

async fn issue_notes(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path((project, fingerprint)): Path<(String, String)>,
    Query(params): Query<SuggestParams>,
) -> Result<Json<IssueNotes>, ApiError> {
    let s = suggested_for(state, viewer, project, fingerprint, params.limit).await?;
    let mut notes = s.linked;
    notes.extend(s.suggested);
    Ok(Json(IssueNotes { notes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_references() {
        assert_eq!(fingerprint("abc").ok(), Some(Fingerprint("abc".into())));
        assert_eq!(
            fingerprint("shop:abc").ok(),
            Some(Fingerprint("abc".into()))
        );
        assert!(fingerprint("shop:").is_err());
        assert!(fingerprint("").is_err());
    }

    #[test]
    fn graph_options() {
        let params = GraphParams {
            depth: Some("".into()),
            tags: Some("db, #payments".into()),
            issues: Some("false".into()),
            ..GraphParams::default()
        };
        let options = params.options().expect("valid options");
        assert_eq!(options.depth, 2);
        assert_eq!(options.tags, vec!["db".to_owned(), "payments".to_owned()]);
        assert!(!options.show_issues);
        let bad = GraphParams {
            depth: Some("deep".into()),
            ..GraphParams::default()
        };
        assert!(bad.options().is_err());
        let hidden = GraphParams {
            tags: Some("false".into()),
            ..GraphParams::default()
        };
        assert!(!hidden.options().expect("valid").show_tags);
    }
}

/// Query of `POST /api/notes/{id}/attachments`.
#[derive(Debug, Deserialize)]
pub struct UploadParams {
    /// The file name, as `![[name]]` embeds it.
    pub name: String,
}

/// `POST /api/notes/{id}/attachments?name=…` with the file's bytes as the
/// raw body: 201 with the attachment when it is new, 200 when the note
/// held these bytes under this name already. A `Content-Length` over the
/// limit is refused (413) before the body is read.
async fn upload_attachment(
    State(state): State<SharedState>,
    ApiUser(author): ApiUser,
    Path(id): Path<String>,
    Query(params): Query<UploadParams>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<omegi_store::Attachment>), ApiError> {
    let id = note_id(&id)?;
    let limit = state.store.notes().attachment_limits().file_bytes;
    let too_large = |bytes: String| {
        ApiError::Rejected(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the file is {bytes} bytes, more than the {limit} an attachment may have \
                 (attachment_max_bytes)"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&n| n > limit as u64) {
        return Err(too_large(length.to_string()));
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(format!("more than {limit}")))?;
    blocking(&state, move |state| {
        let attached = state
            .store
            .notes()
            .add_attachment(id, &author, &params.name, &bytes)
            .map_err(store_error)?;
        let status = if attached.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(attached.attachment)))
    })
    .await
}

async fn list_attachments(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<omegi_store::Attachment>>, ApiError> {
    with_note(&state, &id, viewer, |notes, id, viewer| {
        notes.attachments(id, viewer)
    })
    .await
}

/// The bytes of an attachment, served so that they cannot run: the stored
/// content type (never HTML or SVG), `nosniff`, a CSP that allows nothing
/// and sandboxes, and `attachment` disposition for anything but a proven
/// image.
async fn attachment(
    State(state): State<SharedState>,
    ApiUser(viewer): ApiUser,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = note_id(&id)?;
    let (a, bytes) = blocking(&state, move |state| {
        state
            .store
            .notes()
            .attachment(id, &viewer, &name)
            .map_err(store_error)
    })
    .await?;
    let disposition = format!(
        "{}; filename=\"{}\"; filename*=UTF-8''{}",
        if a.inline_image {
            "inline"
        } else {
            "attachment"
        },
        ascii_file_name(&a.name),
        percent_encoded(&a.name)
    );
    let headers = [
        (header::CONTENT_TYPE, a.content_type.clone()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox".to_owned(),
        ),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CACHE_CONTROL, "private, no-cache".to_owned()),
    ];
    Ok((headers, bytes).into_response())
}

async fn delete_attachment(
    State(state): State<SharedState>,
    ApiUser(author): ApiUser,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<omegi_store::Attachment>, ApiError> {
    with_note(&state, &id, author, move |notes, id, author| {
        notes.delete_attachment(id, author, &name)
    })
    .await
}

/// Runs `f` with the notes handle on note `id` (its text from the path)
/// for `viewer`, on the blocking pool; its answer as JSON, a store error
/// as the API's.
async fn with_note<T, F>(
    state: &SharedState,
    id: &str,
    viewer: String,
    f: F,
) -> Result<Json<T>, ApiError>
where
    F: FnOnce(omegi_store::Notes<'_>, NoteId, &str) -> omegi_store::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let id = note_id(id)?;
    blocking(state, move |state| {
        f(state.store.notes(), id, &viewer)
            .map(Json)
            .map_err(store_error)
    })
    .await
}

/// A file name for the plain `filename=` parameter: ASCII letters, digits
/// and `.-_ ` kept, anything else `_`.
fn ascii_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// RFC 8187 encoding for `filename*=UTF-8''…`.
fn percent_encoded(name: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
