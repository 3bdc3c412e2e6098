//! Notes as a vault through the API: folders (create, move, resolve,
//! graph) and attachments (upload limits, safe serving, visibility,
//! embeds, deletion with the note).

use omegi_core::note::{AttachmentLimits, NodeKind, Note, Subgraph};
use omegi_server::api::limits::NoteLimitFlags;
use omegi_store::Attachment;
use reqwest::Method;
use serde_json::{json, Value};

mod common;

use common::TestServer;

impl TestServer {
    /// Sends a request with `token`; the status and the body as JSON (or as
    /// a JSON string when it is not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server.url()))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn ok<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> T {
        let (status, value) = self.call(method.clone(), path, token, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        serde_json::from_value(value).expect("JSON of the expected shape")
    }

    /// A user who is a member of the default project.
    async fn add_user(&self, login: &str) -> String {
        let created: Value = self
            .ok(
                Method::POST,
                "/api/users",
                &self.user,
                Some(json!({ "login": login, "projects": ["default"] })),
            )
            .await;
        created["token"].as_str().expect("a token").to_owned()
    }

    /// Uploads `bytes` as `name` to a note; the status, headers and body.
    async fn upload(&self, token: &str, note: &Note, name: &str, bytes: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(format!(
                "{}/api/notes/{}/attachments?name={}",
                self.server.url(),
                note.id,
                urlencode(name)
            ))
            .bearer_auth(token)
            .body(bytes)
            .send()
            .await
            .expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Fetches an attachment: the status, the headers and the bytes.
    async fn fetch(
        &self,
        token: &str,
        note: &Note,
        name: &str,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let response = self
            .http
            .get(format!(
                "{}/api/notes/{}/attachments/{}",
                self.server.url(),
                note.id,
                urlencode(name)
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("the API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.bytes().await.expect("a body").to_vec(),
        )
    }

    async fn new_note(&self, folder: &str, title: &str, body: &str) -> Note {
        self.ok(
            Method::POST,
            "/api/notes",
            &self.user,
            Some(json!({ "title": title, "folder": folder, "body": body, "visibility": "public" })),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_through_the_api() {
    let s = TestServer::start().await;
    let top = s.new_note("", "Setup", "top").await;
    let plugins = s.new_note("/Plugins/", "Setup", "plugins").await;
    assert_eq!(plugins.folder, "Plugins");
    let other = s.new_note("Docs", "Setup", "docs").await;
    let guide = s.new_note("Plugins", "Guide", "[[Setup]]").await;

    // Resolution from a folder, and by path.
    let resolved = |name: &str, from: &str| {
        format!(
            "/api/notes/resolve?name={}&from={}",
            urlencode(name),
            urlencode(from)
        )
    };
    let r: Note = s
        .ok(Method::GET, &resolved("Setup", ""), &s.user, None)
        .await;
    assert_eq!(r.id, top.id);
    let r: Note = s
        .ok(Method::GET, &resolved("Setup", "Plugins"), &s.user, None)
        .await;
    assert_eq!(r.id, plugins.id);
    let r: Note = s
        .ok(Method::GET, &resolved("Docs/Setup", ""), &s.user, None)
        .await;
    assert_eq!(r.id, other.id);

    // The graph carries folders, at both of its addresses.
    for path in ["/api/graph", "/api/notes/graph"] {
        let graph: Subgraph = s.ok(Method::GET, path, &s.user, None).await;
        let node = |id: omegi_core::NoteId| {
            graph
                .nodes
                .iter()
                .position(|n| n.key == id.to_string())
                .unwrap()
        };
        assert_eq!(graph.nodes[node(plugins.id)].folder, "Plugins");
        assert_eq!(graph.nodes[node(top.id)].folder, "");
        assert!(graph
            .edges
            .iter()
            .any(|e| e.from == node(guide.id) && e.to == node(plugins.id)));
        assert!(graph.nodes.iter().all(|n| n.kind != NodeKind::Unresolved));
    }

    // A move rewrites the link that would lose the note.
    let moved: Note = s
        .ok(
            Method::PUT,
            &format!("/api/notes/{}", plugins.id),
            &s.user,
            Some(json!({ "revision": plugins.revision, "folder": "Archive" })),
        )
        .await;
    assert_eq!(moved.folder, "Archive");
    let guide: Note = s
        .ok(
            Method::GET,
            &format!("/api/notes/{}", guide.id),
            &s.user,
            None,
        )
        .await;
    assert_eq!(guide.body, "[[Archive/Setup]]");

    // A folder that leaves the vault is refused, and nothing is stored.
    let before: Vec<Note> = s.ok(Method::GET, "/api/notes", &s.user, None).await;
    let (status, body) = s
        .call(
            Method::POST,
            "/api/notes",
            &s.user,
            Some(json!({ "title": "Escape", "folder": "../etc" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains(".."), "{body}");
    let after: Vec<Note> = s.ok(Method::GET, "/api/notes", &s.user, None).await;
    assert_eq!(before.len(), after.len());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A PNG's signature and a little more: enough for the type check.
fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 13, b'I', b'H', b'D', b'R']);
    bytes.extend(std::iter::repeat_n(7u8, 100));
    bytes
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_limited_served_safely_and_private_with_their_note() {
    let limits = AttachmentLimits::default()
        .file_bytes(1024)
        .note_bytes(1500)
        .files_per_note(3);
    let s = TestServer::start_with(|c| {
        c.note_limits(NoteLimitFlags::default().with_attachments(limits))
    })
    .await;
    let lee = s.add_user("lee").await;
    let note = s
        .new_note(
            "Ops",
            "Dashboard",
            "Before:\n\n![[shot.png]]\n\nLog: [[run.log]]\n",
        )
        .await;

    // Upload, and the same again: stored once.
    let (status, body) = s.upload(&s.user, &note, "shot.png", png()).await;
    assert_eq!(status, 201, "{body}");
    let shot: Attachment = serde_json::from_value(body).unwrap();
    assert_eq!(
        (shot.content_type.as_str(), shot.inline_image, shot.size),
        ("image/png", true, png().len() as u64)
    );
    let (status, _) = s.upload(&s.user, &note, "shot.png", png()).await;
    assert_eq!(status, 200);
    let (status, body) = s
        .upload(&s.user, &note, "shot.png", b"other".to_vec())
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = s
        .upload(&s.user, &note, "run.log", b"ok\nfailed\n".to_vec())
        .await;
    assert_eq!(status, 201);

    // The image is served inline, and nothing in it can run.
    let (status, headers, bytes) = s.fetch(&s.user, &note, "shot.png").await;
    assert_eq!(status, 200);
    assert_eq!(bytes, png());
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&headers, "content-security-policy"),
        "default-src 'none'; sandbox"
    );
    assert!(header(&headers, "content-disposition").starts_with("inline;"));

    // A disguised HTML page is stored as bytes and served for download.
    let page = b"<!doctype html><script>fetch('/api/notes')</script>".to_vec();
    let (status, body) = s.upload(&s.user, &note, "evil.png", page.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["content_type"], "application/octet-stream");
    let (_, headers, bytes) = s.fetch(&s.user, &note, "evil.png").await;
    assert_eq!(bytes, page);
    assert_eq!(header(&headers, "content-type"), "application/octet-stream");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&headers, "content-security-policy"),
        "default-src 'none'; sandbox"
    );
    assert!(
        header(&headers, "content-disposition").starts_with("attachment;"),
        "{headers:?}"
    );

    // Over the limits: 413, and nothing stored.
    let list = format!("/api/notes/{}/attachments", note.id);
    let before: Vec<Attachment> = s.ok(Method::GET, &list, &s.user, None).await;
    assert_eq!(before.len(), 3);
    let (status, body) = s.upload(&s.user, &note, "big.bin", vec![0; 1025]).await;
    assert_eq!(status, 413, "{body}");
    let other = s.new_note("", "Other", "").await;
    let (status, _) = s.upload(&s.user, &other, "a.bin", vec![1; 1000]).await;
    assert_eq!(status, 201);
    let (status, body) = s.upload(&s.user, &other, "b.bin", vec![2; 600]).await;
    assert_eq!(status, 413, "the note's files together: {body}");
    let (status, body) = s.upload(&s.user, &note, "four.txt", b"4".to_vec()).await;
    assert_eq!(status, 400, "files per note: {body}");
    let (status, _) = s.upload(&s.user, &note, "../x.png", png()).await;
    assert_eq!(status, 400);
    let after: Vec<Attachment> = s.ok(Method::GET, &list, &s.user, None).await;
    assert_eq!(after, before);

    // Only the author adds files; others who may see the note read them.
    let (status, _) = s.upload(&lee, &note, "lee.png", png()).await;
    assert_eq!(status, 403, "the note is public, and not lee's");
    let (status, _, bytes) = s.fetch(&lee, &note, "shot.png").await;
    assert_eq!((status, bytes), (200, png()));
    // A private note's files do not exist for anyone else.
    let private: Note = s
        .ok(
            Method::POST,
            "/api/notes",
            &s.user,
            Some(json!({ "title": "Mine", "body": "![[secret.png]]" })),
        )
        .await;
    let (status, _) = s.upload(&s.user, &private, "secret.png", png()).await;
    assert_eq!(status, 201);
    let (status, _, _) = s.fetch(&lee, &private, "secret.png").await;
    assert_eq!(status, 404);
    let (status, _, _) = s.fetch(&lee, &private, "nothing.png").await;
    assert_eq!(
        status, 404,
        "the same answer whether the file exists or not"
    );
    let private_list = format!("/api/notes/{}/attachments", private.id);
    let (status, _) = s.call(Method::GET, &private_list, &lee, None).await;
    assert_eq!(status, 404);
    let (status, _) = s.upload(&lee, &private, "x.png", png()).await;
    assert_eq!(status, 404);
    // Nor does a note of lee's that embeds a file of that name find it.
    let lees: Note = s
        .ok(
            Method::POST,
            "/api/notes",
            &lee,
            Some(json!({ "title": "Lee's", "body": "![[secret.png]]" })),
        )
        .await;
    let rendered: Value = s
        .ok(
            Method::GET,
            &format!("/api/notes/{}/rendered", lees.id),
            &lee,
            None,
        )
        .await;
    assert!(
        !rendered["html"]
            .as_str()
            .unwrap_or_default()
            .contains("attachments/"),
        "{rendered}"
    );

    // The note renders the image inline and the log as a download link;
    // the graph shows files only when asked, never as unresolved notes.
    let rendered: Value = s
        .ok(
            Method::GET,
            &format!("/api/notes/{}/rendered", note.id),
            &s.user,
            None,
        )
        .await;
    let html = rendered["html"].as_str().unwrap_or_default();
    assert!(
        html.contains(&format!(
            "<img class=\"attachment\" src=\"/api/notes/{}/attachments/shot.png\"",
            note.id
        )),
        "{html}"
    );
    assert!(
        html.contains("<a class=\"attachment\" download href=\""),
        "{html}"
    );
    let graph: Subgraph = s.ok(Method::GET, "/api/notes/graph", &s.user, None).await;
    assert!(graph
        .nodes
        .iter()
        .all(|n| n.kind != NodeKind::Attachment && n.kind != NodeKind::Unresolved));
    let graph: Subgraph = s
        .ok(
            Method::GET,
            "/api/notes/graph?attachments=true",
            &s.user,
            None,
        )
        .await;
    let files: Vec<&str> = graph
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Attachment)
        .map(|n| n.label.as_str())
        .collect();
    assert_eq!(files, ["shot.png", "run.log", "secret.png"]);

    // Deleted with the note.
    let _: Note = s
        .ok(
            Method::DELETE,
            &format!("/api/notes/{}", note.id),
            &s.user,
            None,
        )
        .await;
    let (status, _, _) = s.fetch(&s.user, &note, "shot.png").await;
    assert_eq!(status, 404);
}
