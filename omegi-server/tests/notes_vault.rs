//! Notes as a vault through the API: folders (create, move, resolve, graph).

use omegi_core::note::{NodeKind, Note, Subgraph};
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
