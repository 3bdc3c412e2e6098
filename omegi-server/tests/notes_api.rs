//! The notes API and the notes commands of the CLI, over real HTTP on
//! loopback against an in-process server.

use std::time::Duration;

use omegi_core::note::{Note, Subgraph};
use omegi_server::api::notes::{Hit, IssueNotes, IssueSuggestions};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use reqwest::Method;
use serde_json::{json, Value};

/// Every test is bounded in time.
const LIMIT: Duration = Duration::from_secs(60);

mod common;

use common::{kv, TestServer};

impl TestServer {
    /// Sends a request with `token`; the status and the body as JSON (or
    /// as a JSON string when it is not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, text) = self.call_text(method, path, token, body).await;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn call_text(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server.url()))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
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
        created["token"]
            .as_str()
            .expect("a token for the new user")
            .to_owned()
    }
}

/// One failing span of payment-service with a `CardDeclined` exception.
fn card_declined(t0: u64) -> Vec<u8> {
    let span = pt::Span {
        trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736u128
            .to_be_bytes()
            .to_vec(),
        span_id: 0x00f067aa0ba902b7u64.to_be_bytes().to_vec(),
        name: "POST /charge".into(),
        kind: pt::span::SpanKind::Server as i32,
        start_time_unix_nano: t0,
        end_time_unix_nano: t0 + 5_000_000,
        events: vec![pt::span::Event {
            time_unix_nano: t0 + 1_000_000,
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", "CardDeclined"),
                kv("exception.message", "card declined: insufficient funds"),
            ],
            ..Default::default()
        }],
        status: Some(pt::Status {
            code: pt::status::StatusCode::Error as i32,
            message: "card declined".into(),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "payment-service")],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_crud_permissions_search_graph_and_suggestions() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let admin = s.user.clone();
        let lee = s.add_user("lee").await;

        // Create.
        let (status, created) = s
            .call(
                Method::POST,
                "/api/notes",
                &admin,
                Some(json!({
                    "title": "결제 서비스 타임아웃",
                    "body": "Retry with backoff. #payments",
                    "visibility": "public",
                })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let note: Note = serde_json::from_value(created).expect("a note");
        assert_eq!(note.revision, 1);
        let path = format!("/api/notes/{}", note.id);

        // Get.
        let got: Note = s.ok(Method::GET, &path, &admin, None).await;
        assert_eq!(got, note);
        let (status, _) = s.call(Method::GET, "/api/notes/nope", &admin, None).await;
        assert_eq!(status, 400);

        // Update; a stale revision is refused.
        let updated: Note = s
            .ok(
                Method::PUT,
                &path,
                &admin,
                Some(json!({ "revision": 1, "body": "Retry with backoff, then alert.", "tags": ["payments"] })),
            )
            .await;
        assert_eq!(updated.revision, 2);
        assert_eq!(updated.body, "Retry with backoff, then alert.");
        let (status, body) = s
            .call(
                Method::PUT,
                &path,
                &admin,
                Some(json!({ "revision": 1, "body": "lost update" })),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("revision")));

        // A rename keeps the revision check and rewrites links.
        let linking: Note = s
            .ok(
                Method::POST,
                "/api/notes",
                &admin,
                Some(json!({ "title": "Checkout 502", "body": "See [[결제 서비스 타임아웃]].", "visibility": "public" })),
            )
            .await;
        let renamed: Note = s
            .ok(
                Method::PUT,
                &path,
                &admin,
                Some(json!({ "revision": 2, "title": "결제 타임아웃" })),
            )
            .await;
        assert_eq!(renamed.title, "결제 타임아웃");
        assert_eq!(renamed.revision, 3);
        let relinked: Note = s
            .ok(Method::GET, &format!("/api/notes/{}", linking.id), &admin, None)
            .await;
        assert_eq!(relinked.body, "See [[결제 타임아웃]].");
        let backlinks: Vec<Note> = s
            .ok(Method::GET, &format!("{path}/backlinks"), &admin, None)
            .await;
        assert_eq!(
            backlinks.iter().map(|n| n.id).collect::<Vec<_>>(),
            vec![linking.id]
        );

        // Another user: a private note is invisible, a public one read-only.
        let private: Note = s
            .ok(
                Method::POST,
                "/api/notes",
                &admin,
                Some(json!({ "title": "Admin secrets", "body": "rotate keys" })),
            )
            .await;
        let private_path = format!("/api/notes/{}", private.id);
        let (status, _) = s.call(Method::GET, &private_path, &lee, None).await;
        assert_eq!(status, 404);
        let (status, _) = s
            .call(
                Method::PUT,
                &private_path,
                &lee,
                Some(json!({ "revision": 1, "body": "mine now" })),
            )
            .await;
        assert_eq!(status, 404);
        let (status, body) = s
            .call(
                Method::PUT,
                &path,
                &lee,
                Some(json!({ "revision": 3, "body": "mine now" })),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        let (status, _) = s.call(Method::DELETE, &path, &lee, None).await;
        assert_eq!(status, 403);
        let lee_sees: Vec<Note> = s.ok(Method::GET, "/api/notes", &lee, None).await;
        assert!(lee_sees.iter().all(|n| n.id != private.id));
        assert_eq!(lee_sees.len(), 2);

        // Filters.
        let mine: Vec<Note> = s.ok(Method::GET, "/api/notes?mine=true", &lee, None).await;
        assert!(mine.is_empty());
        let tagged: Vec<Note> = s
            .ok(Method::GET, "/api/notes?tag=payments", &admin, None)
            .await;
        assert_eq!(tagged.iter().map(|n| n.id).collect::<Vec<_>>(), vec![note.id]);

        // Search finds the Korean title, with highlights into the snippet.
        let hits: Vec<Hit> = s
            .ok(
                Method::GET,
                "/api/search?q=%EA%B2%B0%EC%A0%9C&limit=10",
                &lee,
                None,
            )
            .await;
        assert!(hits.iter().any(|h| h.note.id == note.id), "{hits:?}");
        assert!(hits.iter().all(|h| h.note.id != private.id));
        let hits: Vec<Hit> = s
            .ok(Method::GET, "/api/search?q=rotate", &lee, None)
            .await;
        assert!(hits.is_empty(), "a private note leaked: {hits:?}");
        let raw: Value = s
            .ok(Method::GET, "/api/search?q=backoff", &admin, None)
            .await;
        assert!(raw[0]["snippet"]["highlights"][0]["start"].is_u64(), "{raw}");
        // The folder filter: a public note in a folder, found there and
        // not elsewhere.
        let filed: Note = s
            .ok(
                Method::POST,
                "/api/notes",
                &admin,
                Some(json!({"title": "Ledger lag", "folder": "Runbooks/Ledger", "body": "Backoff.", "visibility": "public"})),
            )
            .await;
        let hits: Vec<Hit> = s
            .ok(Method::GET, "/api/search?q=backoff&folder=runbooks", &lee, None)
            .await;
        assert_eq!(hits.iter().map(|h| h.note.id).collect::<Vec<_>>(), vec![filed.id]);
        let hits: Vec<Hit> = s
            .ok(Method::GET, "/api/search?q=backoff&folder=Incidents", &lee, None)
            .await;
        assert!(hits.is_empty(), "{hits:?}");

        // Rendered.
        let rendered: Value = s
            .ok(Method::GET, &format!("{path}/rendered"), &admin, None)
            .await;
        assert_eq!(rendered["markdown"], "Retry with backoff, then alert.");

        // Graph as JSON, DOT and Mermaid.
        let graph: Subgraph = s
            .ok(
                Method::GET,
                &format!("/api/graph?note={}&depth=1", note.id),
                &admin,
                None,
            )
            .await;
        assert!(graph.note_ids().contains(&linking.id));
        let (status, dot) = s
            .call_text(Method::GET, "/api/graph?format=dot", &admin, None)
            .await;
        assert_eq!(status, 200);
        assert!(dot.starts_with("digraph"), "{dot}");
        assert!(dot.contains("결제 타임아웃"), "{dot}");
        let (status, mermaid) = s
            .call_text(
                Method::GET,
                &format!("/api/notes/{}/graph?format=mermaid&tags=false", note.id),
                &admin,
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert!(mermaid.starts_with("flowchart") || mermaid.starts_with("graph"), "{mermaid}");
        let (status, _) = s
            .call(Method::GET, "/api/graph?format=png", &admin, None)
            .await;
        assert_eq!(status, 400);

        // Suggestions for an issue: the linked note first, then matches.
        let (status, _) = s
            .http
            .post(format!("{}/v1/traces", s.server.url()))
            .bearer_auth(&s.ingest)
            .header("content-type", "application/x-protobuf")
            .body(card_declined(omegi_server::api::now_ns()))
            .send()
            .await
            .map(|r| (r.status().as_u16(), ()))
            .expect("OTLP is accepted");
        assert_eq!(status, 200);
        let issues: Vec<Value> = s.ok(Method::GET, "/api/issues?status=all", &admin, None).await;
        let issue_id = issues[0]["id"].as_str().expect("an issue id").to_owned();
        let (project, fp) = issue_id.split_once(':').expect("project:fingerprint");
        let matching: Note = s
            .ok(
                Method::POST,
                "/api/notes",
                &lee,
                Some(json!({ "title": "CardDeclined explained", "body": "card declined: insufficient funds happens when the issuer refuses", "visibility": "public" })),
            )
            .await;
        let linked: Note = s
            .ok(
                Method::POST,
                "/api/notes",
                &admin,
                Some(json!({ "title": "Card declined runbook", "body": "Offer another card.", "visibility": "public", "issues": [issue_id] })),
            )
            .await;
        assert_eq!(linked.issues[0].0, fp);
        let suggestions: IssueSuggestions = s
            .ok(
                Method::GET,
                &format!("/api/issues/{project}/{fp}/suggestions"),
                &lee,
                None,
            )
            .await;
        assert_eq!(
            suggestions.linked.iter().map(|n| n.id).collect::<Vec<_>>(),
            vec![linked.id]
        );
        assert!(suggestions.suggested.iter().any(|n| n.id == matching.id));
        let notes: IssueNotes = s
            .ok(Method::GET, &format!("/api/issues/{project}/{fp}/notes"), &lee, None)
            .await;
        assert_eq!(notes.notes.first().map(|n| n.id), Some(linked.id));
        assert!(notes.notes.iter().any(|n| n.id == matching.id));
        let by_issue: Vec<Note> = s
            .ok(Method::GET, &format!("/api/notes?issue={issue_id}"), &admin, None)
            .await;
        assert_eq!(by_issue.iter().map(|n| n.id).collect::<Vec<_>>(), vec![linked.id]);

        // Delete.
        let deleted: Note = s.ok(Method::DELETE, &path, &admin, None).await;
        assert_eq!(deleted.id, note.id);
        let (status, _) = s.call(Method::GET, &path, &admin, None).await;
        assert_eq!(status, 404);
        let (status, _) = s.call(Method::DELETE, &path, &admin, None).await;
        assert_eq!(status, 404);

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_writes_shows_searches_graphs_and_exports_notes() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let body = s.dir.path().join("body.md");
        std::fs::write(&body, "Restart the pool. See [[Pool sizing]].\n").expect("write body");
        let body = body.display().to_string();

        let out = s
            .run_cli(&[
                "--json",
                "note",
                "new",
                "--title",
                "DB 연결 풀 고갈",
                "--public",
                "--issue",
                "shop:abc123",
                "--file",
                &body,
            ])
            .await;
        let note: Note = serde_json::from_str(&out).expect("the note as JSON");
        assert_eq!(note.title, "DB 연결 풀 고갈");
        assert_eq!(note.issues[0].0, "abc123");
        let id = note.id.to_string();

        let sizing = s.dir.path().join("sizing.md");
        std::fs::write(&sizing, "Twice the cores.").expect("write body");
        let out = s
            .run_cli(&[
                "note",
                "new",
                "--title",
                "Pool sizing",
                "--file",
                &sizing.display().to_string(),
            ])
            .await;
        assert!(out.starts_with("created note "), "{out}");

        let shown = s.run_cli(&["note", "show", &id]).await;
        assert!(shown.starts_with("DB 연결 풀 고갈\n"), "{shown}");
        // A note is also named the way a [[link]] names it.
        assert_eq!(s.run_cli(&["note", "show", "db 연결 풀 고갈"]).await, shown);
        let err = s
            .try_cli(&["note", "show", "No such note"])
            .await
            .expect_err("no such note");
        assert!(
            err.contains("404") && err.contains("no note named"),
            "{err}"
        );
        assert!(shown.contains("public"), "{shown}");
        assert!(shown.contains("Restart the pool."), "{shown}");

        let found = s.run_cli(&["search", "연결"]).await;
        assert!(found.contains("DB 연결 풀 고갈"), "{found}");
        assert!(found.contains(&id), "{found}");
        let none = s.run_cli(&["search", "zebra"]).await;
        assert_eq!(none, "no notes found\n");

        let dot = s
            .run_cli(&["graph", &id, "--depth", "1", "--format", "dot"])
            .await;
        assert!(dot.starts_with("digraph"), "{dot}");
        assert!(dot.contains("Pool sizing"), "{dot}");
        let by_title = s
            .run_cli(&[
                "graph",
                "DB 연결 풀 고갈",
                "--depth",
                "1",
                "--format",
                "dot",
            ])
            .await;
        assert_eq!(by_title, dot);
        let mermaid = s.run_cli(&["graph", "--format", "mermaid"]).await;
        assert!(mermaid.contains("Pool sizing"), "{mermaid}");
        let json = s.run_cli(&["graph", &id, "--format", "json"]).await;
        let graph: Subgraph = serde_json::from_str(&json).expect("a graph");
        assert!(graph.note_ids().contains(&note.id));

        let vault = s.dir.path().join("vault");
        let out = s
            .run_cli(&["notes", "export", &vault.display().to_string()])
            .await;
        assert_eq!(out, format!("exported 2 notes to {}\n", vault.display()));
        let file =
            std::fs::read_to_string(vault.join("DB 연결 풀 고갈.md")).expect("the exported file");
        assert!(file.starts_with("---\n"), "{file}");
        assert!(file.contains(&format!("id: {id}")), "{file}");
        assert!(
            file.ends_with("Restart the pool. See [[Pool sizing]].\n"),
            "{file}"
        );

        // Importing the export again changes nothing; a new file is created,
        // and the image it embeds is attached to it; a file no note names
        // is skipped.
        std::fs::write(
            vault.join("New runbook.md"),
            "Page the on-call.\n\n![[pager.png]]",
        )
        .expect("write");
        let png = b"\x89PNG\r\n\x1a\nnot really an image".to_vec();
        std::fs::write(vault.join("pager.png"), &png).expect("write");
        std::fs::write(vault.join("stray.log"), "nobody links here").expect("write");
        let import = ["--json", "notes", "import", &vault.display().to_string()];
        let out = s.run_cli(&import).await;
        let report: Value = serde_json::from_str(&out).expect("an import report");
        assert_eq!(
            report["unchanged"].as_array().map(Vec::len),
            Some(2),
            "{report}"
        );
        assert_eq!(report["created"], json!(["New runbook.md"]), "{report}");
        assert_eq!(report["attached"], json!(["pager.png"]), "{report}");
        assert_eq!(
            report["skipped"],
            json!([["stray.log", "no note embeds or links to this file"]]),
            "{report}"
        );
        let listed: Vec<Note> = s.ok(Method::GET, "/api/notes", &s.user, None).await;
        let runbook = listed
            .iter()
            .find(|n| n.title == "New runbook")
            .expect("the new note");
        let path = format!("/api/notes/{}/attachments", runbook.id);
        let files: Value = s.ok(Method::GET, &path, &s.user, None).await;
        assert_eq!(files.as_array().map(Vec::len), Some(1), "{files}");
        assert_eq!(files[0]["name"], "pager.png", "{files}");
        let served = s
            .http
            .get(format!("{}{path}/pager.png", s.server.url()))
            .bearer_auth(&s.user)
            .send()
            .await
            .expect("the API answers");
        assert_eq!(served.status(), 200);
        assert_eq!(served.bytes().await.expect("the file").to_vec(), png);

        let out = s.run_cli(&["note", "rm", &id]).await;
        assert!(out.starts_with(&format!("deleted note {id}")), "{out}");
        let listed = s.run_cli(&["notes", "list"]).await;
        assert!(!listed.contains(&id), "{listed}");
        assert!(listed.contains("New runbook"), "{listed}");

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

/// Runs the built `omegi` binary against the server with `stdin` and extra
/// environment; its standard output.
async fn run_binary(s: &TestServer, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_omegi"));
    command
        .arg("--server")
        .arg(s.server.url())
        .arg("--token")
        .arg(&s.user)
        .args(args)
        .env_remove("VISUAL")
        .env_remove("EDITOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("omegi starts");
        child
            .stdin
            .take()
            .expect("a stdin pipe")
            .write_all(stdin.as_bytes())
            .expect("stdin is written");
        let output = child.wait_with_output().expect("omegi ends");
        assert!(
            output.status.success(),
            "omegi {:?} failed: {}",
            command.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    })
    .await
    .expect("the command task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reads_a_body_from_stdin_and_edits_it_in_the_editor() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let out = run_binary(
            &s,
            &["--json", "note", "new", "--title", "Pool exhausted"],
            "Raise the pool size.\n",
            &[],
        )
        .await;
        let note: Note = serde_json::from_str(&out).expect("the note as JSON");
        assert_eq!(note.body, "Raise the pool size.\n");
        assert_eq!(note.visibility, omegi_core::Visibility::Private);
        let id = note.id.to_string();

        // The editor is any command taking the file as its last argument.
        let out = run_binary(
            &s,
            &["note", "edit", &id],
            "",
            &[("EDITOR", "sed -i -e s/Raise/Halve/")],
        )
        .await;
        assert_eq!(
            out,
            format!("saved note {id}  Pool exhausted (revision 2)\n")
        );
        let saved: Note = s
            .ok(Method::GET, &format!("/api/notes/{id}"), &s.user, None)
            .await;
        assert_eq!(saved.body, "Halve the pool size.\n");

        // An editor that changes nothing saves nothing.
        let out = run_binary(&s, &["note", "edit", &id], "", &[("EDITOR", "true")]).await;
        assert_eq!(out, format!("no change to note {id}\n"));

        // The file handed to the editor is the user's alone: this editor
        // writes the file's mode into it.
        let out = run_binary(
            &s,
            &["note", "edit", &id],
            "",
            &[("EDITOR", r#"f() { stat -c %a "$1" > "$1"; }; f"#)],
        )
        .await;
        assert!(out.starts_with("saved note"), "{out}");
        let saved: Note = s
            .ok(Method::GET, &format!("/api/notes/{id}"), &s.user, None)
            .await;
        assert_eq!(saved.body, "600\n");
        let (status, _) = s
            .call(
                Method::PUT,
                &format!("/api/notes/{id}"),
                &s.user,
                Some(json!({ "revision": 3, "visibility": "public" })),
            )
            .await;
        assert_eq!(status, 200);

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_api_cannot_read_get_json_errors() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let token = s.user.clone();
        let error_of = |value: &Value| -> String {
            value["error"]
                .as_str()
                .unwrap_or_else(|| panic!("not a JSON error: {value}"))
                .to_owned()
        };

        // Query strings.
        let (status, body) = s
            .call(Method::GET, "/api/issues?limit=-1", &token, None)
            .await;
        assert_eq!(status, 400);
        assert!(error_of(&body).contains("limit"), "{body}");
        let (status, body) = s
            .call(Method::GET, "/api/notes/resolve", &token, None)
            .await;
        assert_eq!(status, 400);
        assert!(error_of(&body).contains("name"), "{body}");
        // A project filter that names no project is not an empty answer.
        for path in [
            "/api/issues?project=nope",
            "/api/traces?project=nope",
            "/api/stats?project=nope",
        ] {
            let (status, body) = s.call(Method::GET, path, &token, None).await;
            assert_eq!(status, 404, "{path}");
            assert!(error_of(&body).contains("no project \"nope\""), "{body}");
        }
        let (status, _) = s
            .call(Method::GET, "/api/issues?project=default", &token, None)
            .await;
        assert_eq!(status, 200);
        // A path that is not UTF-8.
        let (status, body) = s.call(Method::GET, "/api/notes/%FF", &token, None).await;
        assert_eq!(status, 400);
        error_of(&body);
        // JSON of the wrong shape, JSON that is not JSON, and no JSON at all.
        let (status, body) = s
            .call(
                Method::POST,
                "/api/notes",
                &token,
                Some(json!({ "title": 5 })),
            )
            .await;
        assert_eq!(status, 422);
        assert!(error_of(&body).contains("title"), "{body}");
        for (content_type, payload, expected) in [
            ("application/json", "{\"title\":", 400),
            ("text/plain", "title", 415),
        ] {
            let response = s
                .http
                .post(format!("{}/api/notes", s.server.url()))
                .bearer_auth(&token)
                .header("content-type", content_type)
                .body(payload)
                .send()
                .await
                .expect("the API answers");
            assert_eq!(response.status().as_u16(), expected, "{content_type}");
            let body: Value = response.json().await.expect("a JSON body");
            error_of(&body);
        }
        // Nothing of it was stored.
        let notes: Vec<Note> = s.ok(Method::GET, "/api/notes", &token, None).await;
        assert!(notes.is_empty(), "{notes:?}");

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

/// Notes are rendered by the server for their reader: links and embeds
/// follow what the reader may see, the editor's preview renders unsaved
/// Markdown the same way, and unlinked mentions come from the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_render_to_html_for_their_reader() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let admin = s.user.clone();
        let lee = s.add_user("lee").await;
        let create = |token: &str, note: Value| {
            let token = token.to_owned();
            let s = &s;
            async move {
                let note: Note = s
                    .ok(Method::POST, "/api/notes", &token, Some(note))
                    .await;
                note
            }
        };
        let secret = create(
            &admin,
            json!({ "title": "Secret fix", "body": "zebra **stripes**" }),
        )
        .await;
        let runbook = create(
            &admin,
            json!({
                "title": "Payment runbook",
                "aliases": ["runbook"],
                "body": "Call the issuer.",
                "visibility": "public",
            }),
        )
        .await;
        let page = create(
            &lee,
            json!({
                "title": "Declines",
                "visibility": "public",
                "body": "See [[runbook]] and [[Secret fix]]. #결제\n\n![[Secret fix]]\n\n    [[runbook]] #code\n",
            }),
        )
        .await;
        let mention = create(
            &admin,
            json!({
                "title": "Weekly review",
                "visibility": "public",
                "body": "We followed the payment runbook twice.",
            }),
        )
        .await;
        create(
            &admin,
            json!({ "title": "Private review", "body": "The payment runbook again." }),
        )
        .await;

        // lee's page as lee: the alias resolves, the private note of
        // another user neither resolves nor embeds, the Korean tag is a
        // tag, the indented code is code.
        let path = format!("/api/notes/{}/rendered", page.id);
        let rendered: Value = s.ok(Method::GET, &path, &lee, None).await;
        let html = rendered["html"].as_str().expect("HTML").to_owned();
        assert!(
            html.contains(&format!(
                "<a class=\"wikilink\" href=\"#/note/{0}\" data-note=\"{0}\"",
                runbook.id
            )),
            "{html}"
        );
        assert_eq!(html.matches("wikilink unresolved").count(), 2, "{html}");
        assert!(!html.contains("zebra"), "{html}");
        assert!(!html.contains(&secret.id.to_string()), "{html}");
        assert!(
            html.contains("<a class=\"tag\" href=\"#/search?q=%23%EA%B2%B0%EC%A0%9C\">#결제</a>"),
            "{html}"
        );
        assert!(
            html.contains("<pre><code>[[runbook]] #code\n</code></pre>"),
            "{html}"
        );
        assert_eq!(rendered["limit_reached"], false);
        // The same page as the secret's author: linked and embedded.
        let rendered: Value = s.ok(Method::GET, &path, &admin, None).await;
        let html = rendered["html"].as_str().expect("HTML");
        assert!(html.contains("<strong>stripes</strong>"), "{html}");
        assert!(!html.contains("unresolved"), "{html}");

        // The preview renders unsaved Markdown as it will be seen saved.
        let preview: Value = s
            .ok(
                Method::POST,
                "/api/notes/render",
                &lee,
                Some(json!({
                    "title": "Draft",
                    "body": "[[runbook]] ![[Secret fix]] [[Draft]] <script>alert(1)</script> [x](javascript:alert(1))",
                })),
            )
            .await;
        let html = preview["html"].as_str().expect("HTML");
        assert!(html.contains(&format!("data-note=\"{}\"", runbook.id)), "{html}");
        assert!(html.contains("No note named Secret fix"), "{html}");
        assert!(!html.contains("zebra"), "{html}");
        assert!(html.contains("title=\"Draft\""), "a link to itself resolves: {html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        // The preview is within the note limits, and stores nothing.
        let (status, body) = s
            .call(
                Method::POST,
                "/api/notes/render",
                &lee,
                Some(json!({ "title": "Big", "body": "x".repeat(1024 * 1024 + 1) })),
            )
            .await;
        assert_eq!(status, 413, "{body}");
        let mine: Vec<Note> = s
            .ok(Method::GET, "/api/notes?mine=true", &lee, None)
            .await;
        assert_eq!(mine.len(), 1, "{mine:?}");

        // Unlinked mentions of the runbook, as lee sees them: the public
        // review, not the private one, and not the page that links it.
        let mentions: Vec<Note> = s
            .ok(
                Method::GET,
                &format!("/api/notes/{}/mentions", runbook.id),
                &lee,
                None,
            )
            .await;
        let titles: Vec<&str> = mentions.iter().map(|n| n.title.as_str()).collect();
        assert_eq!(titles, ["Weekly review"]);
        assert_eq!(mentions[0].id, mention.id);
        let mentions: Vec<Note> = s
            .ok(
                Method::GET,
                &format!("/api/notes/{}/mentions", runbook.id),
                &admin,
                None,
            )
            .await;
        assert_eq!(mentions.len(), 2, "{mentions:?}");
        // A note lee may not see has no mentions for lee.
        let (status, _) = s
            .call(
                Method::GET,
                &format!("/api/notes/{}/mentions", secret.id),
                &lee,
                None,
            )
            .await;
        assert_eq!(status, 404);

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}
