//! Accounts over real HTTP on loopback: memberships scope every route and
//! the alert stream, tokens are listed, revoked and rotated (401 at once on
//! `/v1`, `/api` and an open stream), unknown tokens cost one read, imports
//! take accounts only when asked, and what Omegi writes is private.

use std::time::Duration;

use omegi_server::api::views::{IssuedToken, MeView, MemberView, TokenView};
use reqwest::Method;
use serde_json::{json, Value};

mod common;

use common::{offline_cli, TestServer};

/// Every test is bounded in time.
const LIMIT: Duration = Duration::from_secs(90);

fn now_ns() -> u64 {
    omegi_server::api::now_ns()
}

/// One failing span as OTLP/JSON: an issue titled `<error>: <message>`.
fn failing_span(trace: u128, service: &str, error: &str, message: &str) -> Vec<u8> {
    let t0 = now_ns();
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": [{
            "traceId": format!("{trace:032x}"),
            "spanId": "00000000000000a1",
            "name": "handle",
            "kind": 2,
            "startTimeUnixNano": t0.to_string(),
            "endTimeUnixNano": (t0 + 1_000_000).to_string(),
            "status": {"code": 2, "message": message},
            "events": [{
                "timeUnixNano": t0.to_string(),
                "name": "exception",
                "attributes": [
                    {"key": "exception.type", "value": {"stringValue": error}},
                    {"key": "exception.message", "value": {"stringValue": message}},
                ],
            }],
        }]}],
    }]}))
    .expect("JSON")
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A request with `token`; the status and the body as JSON (`null`
    /// when it is not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, token, None).await
    }

    /// GET that must answer 200; its JSON.
    async fn ok(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, token).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Sends OTLP/JSON with an ingest token; the status.
    async fn ingest(&self, token: &str, body: Vec<u8>) -> u16 {
        self.http
            .post(self.url("/v1/traces"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the receiver answers")
            .status()
            .as_u16()
    }

    /// Creates a project as the admin; its ingest token.
    async fn project(&self, id: &str) -> String {
        let (status, body) = self
            .post("/api/projects", &self.user, json!({ "id": id }))
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("a token").to_owned()
    }

    /// Creates a user as the admin, member of `projects`; its API token.
    async fn user(&self, login: &str, projects: &[&str]) -> String {
        let (status, body) = self
            .post(
                "/api/users",
                &self.user,
                json!({ "login": login, "projects": projects }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("a token").to_owned()
    }

    /// The one issue of `project`, as the admin sees it: its fingerprint.
    async fn only_issue(&self, project: &str) -> String {
        let issues = self
            .ok(
                &format!("/api/issues?project={project}&status=all"),
                &self.user,
            )
            .await;
        let issues = issues.as_array().expect("a list");
        assert_eq!(issues.len(), 1, "{issues:?}");
        issues[0]["fingerprint"]
            .as_str()
            .expect("a fingerprint")
            .to_owned()
    }
}

fn projects_of(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| i["project"].as_str().expect("a project").to_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Reads an SSE stream until `until` holds for the text so far, or the
/// stream ends; the text.
async fn read_stream(stream: &mut reqwest::Response, until: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    while !until(&text) {
        match stream.chunk().await.expect("the stream reads") {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            None => break,
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_one_project_reads_and_changes_only_that_one() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let ingest_a = s.project("a").await;
        let ingest_b = s.project("b").await;
        let kim = s.user("kim", &["a"]).await;
        assert_eq!(
            s.ingest(
                &ingest_a,
                failing_span(0xa1, "shop", "ShopError", "out of stock")
            )
            .await,
            200
        );
        assert_eq!(
            s.ingest(
                &ingest_b,
                failing_span(0xb1, "bank", "BankError", "ledger locked")
            )
            .await,
            200
        );
        let fa = s.only_issue("a").await;
        let fb = s.only_issue("b").await;

        // What kim sees of project a: everything.
        for path in [
            "/api/issues?project=a".to_owned(),
            format!("/api/issues/a/{fa}"),
            format!("/api/issues/a/{fa}/occurrences"),
            format!("/api/issues/a/{fa}/flow"),
            format!("/api/issues/a/{fa}/suggestions"),
            format!("/api/issues/a/{fa}/notes"),
            "/api/traces?project=a".to_owned(),
            format!("/api/traces/{:032x}", 0xa1),
            "/api/stats?project=a".to_owned(),
            "/api/projects/a/members".to_owned(),
        ] {
            s.ok(&path, &kim).await;
        }
        // Of project b: nothing, as if it did not exist.
        for path in [
            "/api/issues?project=b".to_owned(),
            format!("/api/issues/b/{fb}"),
            format!("/api/issues/b/{fb}/occurrences"),
            format!("/api/issues/b/{fb}/flow"),
            format!("/api/issues/b/{fb}/suggestions"),
            format!("/api/issues/b/{fb}/notes"),
            "/api/traces?project=b".to_owned(),
            format!("/api/traces/{:032x}", 0xb1),
            "/api/stats?project=b".to_owned(),
            "/api/projects/b/members".to_owned(),
            "/api/alerts/stream?project=b".to_owned(),
        ] {
            let (status, body) = s.get(&path, &kim).await;
            assert_eq!(status, 404, "GET {path}: {body}");
            // The same answer as for a project that does not exist.
            let missing = path.replace("/b/", "/nope/").replace("=b", "=nope");
            let (status, other) = s.get(&missing, &kim).await;
            assert_eq!(status, 404, "GET {missing}: {other}");
            assert_eq!(
                body["error"]
                    .as_str()
                    .map(|e| e.replace("\"b\"", "\"nope\"")),
                other["error"].as_str().map(str::to_owned),
                "{path}"
            );
        }
        for action in ["resolve", "ignore", "unresolve"] {
            let (status, body) = s
                .call(
                    Method::POST,
                    &format!("/api/issues/b/{fb}/{action}"),
                    &kim,
                    None,
                )
                .await;
            assert_eq!(status, 404, "{action}: {body}");
        }
        let b_issue = s.ok(&format!("/api/issues/b/{fb}"), &s.user).await;
        assert_eq!(
            b_issue["issue"]["status"], "unresolved",
            "kim changed nothing"
        );

        // Lists carry project a only.
        assert_eq!(
            projects_of(&s.ok("/api/issues?status=all", &kim).await),
            ["a"]
        );
        let projects = s.ok("/api/projects", &kim).await;
        let ids: Vec<&str> = projects
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a"]);
        let traces = s.ok("/api/traces", &kim).await;
        assert_eq!(
            traces
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["trace_id"].as_str().unwrap())
                .collect::<Vec<_>>(),
            [format!("{:032x}", 0xa1)]
        );
        let stats = s.ok("/api/stats", &kim).await;
        assert_eq!(projects_of(&stats["summary"]["projects"]), ["a"]);
        assert_eq!(projects_of(&stats["projects"]), ["a"]);
        assert_eq!(stats["summary"]["errors"], 1);
        let me: MeView = serde_json::from_value(s.ok("/api/me", &kim).await).unwrap();
        assert_eq!((me.admin, me.projects), (false, vec!["a".to_owned()]));
        // The user list does not reveal memberships kim does not share.
        let lee = s.user("lee", &["a", "b"]).await;
        let users = s.ok("/api/users", &kim).await;
        let lee_row = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["login"] == "lee")
            .unwrap();
        assert_eq!(lee_row["projects"], json!(["a"]));

        // Admins see everything.
        assert_eq!(
            projects_of(&s.ok("/api/issues?status=all", &s.user).await),
            ["a", "b"]
        );
        let stats = s.ok("/api/stats", &s.user).await;
        assert_eq!(stats["summary"]["errors"], 2);
        let me: MeView = serde_json::from_value(s.ok("/api/me", &s.user).await).unwrap();
        assert!(me.admin);
        assert_eq!(me.projects, ["a", "b", "default"]);

        // Only admins change memberships; then kim reads b, until removed.
        for method in [Method::POST, Method::DELETE] {
            let (status, body) = s
                .call(method, "/api/projects/b/members/kim", &kim, None)
                .await;
            assert_eq!(status, 403, "{body}");
        }
        let (status, members) = s
            .call(Method::POST, "/api/projects/b/members/kim", &s.user, None)
            .await;
        assert_eq!(status, 200, "{members}");
        let members: Vec<MemberView> = serde_json::from_value(members).unwrap();
        let named: Vec<&str> = members
            .iter()
            .filter(|m| m.named)
            .map(|m| m.login.as_str())
            .collect();
        assert_eq!(named, ["kim", "lee"]);
        assert!(members
            .iter()
            .any(|m| m.login == "admin" && m.admin && !m.named));
        s.ok(&format!("/api/issues/b/{fb}"), &kim).await;
        let (status, _) = s
            .call(
                Method::POST,
                &format!("/api/issues/b/{fb}/resolve"),
                &kim,
                None,
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = s
            .call(Method::DELETE, "/api/projects/b/members/kim", &s.user, None)
            .await;
        assert_eq!(status, 200);
        let (status, _) = s.get(&format!("/api/issues/b/{fb}"), &kim).await;
        assert_eq!(status, 404);
        let (status, body) = s
            .call(Method::DELETE, "/api/projects/b/members/kim", &s.user, None)
            .await;
        assert_eq!(status, 404, "not a member any more: {body}");
        let (status, _) = s
            .call(
                Method::POST,
                "/api/projects/nope/members/kim",
                &s.user,
                None,
            )
            .await;
        assert_eq!(status, 404);
        let (status, _) = s
            .call(
                Method::POST,
                "/api/projects/a/members/nobody",
                &s.user,
                None,
            )
            .await;
        assert_eq!(status, 404);
        drop(lee);

        // The CLI goes through the same routes.
        let out = s.run_cli(&["project", "add-member", "b", "kim"]).await;
        assert_eq!(out, "kim is a member of b\n");
        let out = s.run_cli(&["project", "members", "b"]).await;
        assert_eq!(out, "admin  admin (member of every project)\nkim\nlee\n");
        let out = s.run_cli(&["project", "remove-member", "b", "kim"]).await;
        assert_eq!(out, "kim is no longer a member of b\n");
        let out = s.run_cli(&["--token", &kim, "projects"]).await;
        assert_eq!(out, "a\n");
        let refused = s
            .try_cli(&["--token", &kim, "issue", &format!("b:{fb}")])
            .await;
        assert!(refused.unwrap_err().contains("404"));
        let out = s.run_cli(&["user", "add", "ann", "--project", "b"]).await;
        assert!(out.starts_with("created user ann\n"), "{out}");
        let users = s.ok("/api/users", &s.user).await;
        let ann = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["login"] == "ann")
            .unwrap();
        assert_eq!(ann["projects"], json!(["b"]));

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_stream_never_carries_another_project_s_alerts() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let ingest_a = s.project("a").await;
        let ingest_b = s.project("b").await;
        let kim = s.user("kim", &["a"]).await;
        let open = |token: String| {
            let request = s.http.get(s.url("/api/alerts/stream")).bearer_auth(token);
            async move {
                let response = request.send().await.expect("the stream opens");
                assert_eq!(response.status(), 200);
                response
            }
        };
        let mut kims = open(kim.clone()).await;
        let mut admins = open(s.user.clone()).await;
        // b's alert is published first: kim's stream would carry it first.
        for i in 0..3u128 {
            assert_eq!(
                s.ingest(
                    &ingest_b,
                    failing_span(0xb0 + i, "bank", &format!("BankError{i}"), "ledger locked")
                )
                .await,
                200
            );
        }
        assert_eq!(
            s.ingest(
                &ingest_a,
                failing_span(0xa1, "shop", "ShopError", "out of stock")
            )
            .await,
            200
        );

        let text = read_stream(&mut kims, |t| t.contains("\n\n")).await;
        let first = text.split("\n\n").next().unwrap();
        assert!(first.contains("event: new_issue"), "{first}");
        assert!(first.contains("\"project\":\"a\""), "{first}");
        assert!(!text.contains("\"project\":\"b\""), "{text}");
        assert!(!text.contains("BankError"), "{text}");
        // The admin's stream carries all four.
        let text = read_stream(&mut admins, |t| t.matches("event: new_issue").count() == 4).await;
        assert_eq!(text.matches("\"project\":\"b\"").count(), 3, "{text}");
        assert_eq!(text.matches("\"project\":\"a\"").count(), 1, "{text}");

        // Ending kim's membership stops a's alerts on the open stream at once.
        let (status, _) = s
            .call(Method::DELETE, "/api/projects/a/members/kim", &s.user, None)
            .await;
        assert_eq!(status, 200);
        let (status, _) = s
            .call(Method::POST, "/api/projects/b/members/kim", &s.user, None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            s.ingest(&ingest_a, failing_span(0xa2, "shop", "ShopError2", "gone"))
                .await,
            200
        );
        assert_eq!(
            s.ingest(&ingest_b, failing_span(0xb9, "bank", "BankError9", "late"))
                .await,
            200
        );
        let text = read_stream(&mut kims, |t| t.contains("\n\n")).await;
        let next = text.split("\n\n").next().unwrap();
        assert!(next.contains("BankError9"), "{next}");
        assert!(!text.contains("ShopError2"), "{text}");

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_revoked_and_rotated_with_effect_at_once() {
    tokio::time::timeout(LIMIT, async {
        let s =
            TestServer::start_with(|c| c.stream_recheck(Duration::from_millis(100)).max_tokens(3))
                .await;
        let ingest_a = s.project("a").await;
        let kim = s.user("kim", &["a"]).await;

        // kim's own tokens: the first one, then a second for a laptop.
        let mine: Vec<TokenView> = serde_json::from_value(s.ok("/api/tokens", &kim).await).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(
            (
                mine[0].kind.as_str(),
                mine[0].owner.as_str(),
                mine[0].label.as_str()
            ),
            ("user", "kim", "default")
        );
        assert!(mine[0].last_used_ns.is_some(), "kim's token was just used");
        let (status, laptop) = s
            .post("/api/tokens", &kim, json!({ "label": "laptop" }))
            .await;
        assert_eq!(status, 201, "{laptop}");
        let laptop: IssuedToken = serde_json::from_value(laptop).unwrap();
        assert!(laptop.token.starts_with("omegi_u_"));
        assert_eq!(laptop.view.label, "laptop");
        s.ok("/api/issues", &laptop.token).await;
        // Listings never carry a token or its hash.
        let text = s
            .http
            .get(s.url("/api/tokens?all=true"))
            .bearer_auth(&s.user)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !text.contains("omegi_") && !text.contains("sha256"),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<Vec<TokenView>>(&text).unwrap().len(),
            5
        );

        // Scope: kim manages only her own.
        let admin_tokens: Vec<TokenView> =
            serde_json::from_value(s.ok("/api/tokens", &s.user).await).unwrap();
        for path in [
            "/api/tokens?project=a",
            "/api/tokens?user=admin",
            "/api/tokens?all=true",
        ] {
            let (status, body) = s.get(path, &kim).await;
            assert_eq!(status, 403, "{path}: {body}");
        }
        let (status, _) = s.post("/api/tokens", &kim, json!({ "project": "a" })).await;
        assert_eq!(status, 403);
        let (status, _) = s
            .call(
                Method::DELETE,
                &format!("/api/tokens/{}", admin_tokens[0].id),
                &kim,
                None,
            )
            .await;
        assert_eq!(status, 404, "someone else's token is not revealed");
        s.ok("/api/issues", &s.user).await;

        // Labels and the number of tokens per owner are bounded.
        let (status, _) = s
            .post("/api/tokens", &kim, json!({ "label": "x".repeat(129) }))
            .await;
        assert_eq!(status, 400);
        let (status, _) = s
            .post("/api/tokens", &kim, json!({ "label": "third" }))
            .await;
        assert_eq!(status, 201);
        let (status, body) = s
            .post("/api/tokens", &kim, json!({ "label": "fourth" }))
            .await;
        assert_eq!(status, 409, "{body}");

        // Revoking a user token: 401 at once on /api, and an open stream
        // that uses it ends.
        let mut stream = s
            .http
            .get(s.url(&format!("/api/alerts/stream?token={}", laptop.token)))
            .send()
            .await
            .expect("the stream opens");
        assert_eq!(stream.status(), 200);
        let (status, revoked) = s
            .call(
                Method::DELETE,
                &format!("/api/tokens/{}", laptop.view.id),
                &kim,
                None,
            )
            .await;
        assert_eq!(status, 200, "{revoked}");
        assert_eq!(revoked["id"], json!(laptop.view.id));
        let (status, body) = s.get("/api/issues", &laptop.token).await;
        assert_eq!(status, 401, "{body}");
        let reopened = s
            .http
            .get(s.url(&format!("/api/alerts/stream?token={}", laptop.token)))
            .send()
            .await
            .expect("an answer");
        assert_eq!(reopened.status(), 401);
        let ended =
            tokio::time::timeout(Duration::from_secs(10), read_stream(&mut stream, |_| false))
                .await
                .expect("the open stream ends within its re-check time");
        assert!(ended.contains("event: unauthorized"), "{ended}");
        // kim's other token still works.
        s.ok("/api/issues", &kim).await;

        // An ingest token per service; revoking one: 401 at once on /v1.
        let (status, payment) = s
            .post(
                "/api/tokens",
                &s.user,
                json!({ "project": "a", "label": "payment" }),
            )
            .await;
        assert_eq!(status, 201, "{payment}");
        let payment: IssuedToken = serde_json::from_value(payment).unwrap();
        assert!(payment.token.starts_with("omegi_i_"));
        assert_eq!(payment.view.kind, "ingest");
        assert_eq!(
            s.ingest(&payment.token, failing_span(1, "payment", "E", "m"))
                .await,
            200
        );
        let (status, _) = s
            .call(
                Method::DELETE,
                &format!("/api/tokens/{}", payment.view.id),
                &s.user,
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            s.ingest(&payment.token, failing_span(2, "payment", "E", "m"))
                .await,
            401
        );
        assert_eq!(
            s.ingest(&ingest_a, failing_span(3, "shop", "E", "m")).await,
            200
        );

        // Rotation: the new token works, the old one is refused at once...
        let listed: Vec<TokenView> =
            serde_json::from_value(s.ok("/api/tokens?project=a", &s.user).await).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_ns.is_some());
        let (status, rotated) = s
            .call(
                Method::POST,
                &format!("/api/tokens/{}/rotate", listed[0].id),
                &s.user,
                None,
            )
            .await;
        assert_eq!(status, 201, "{rotated}");
        let rotated: IssuedToken = serde_json::from_value(rotated).unwrap();
        assert_eq!(
            rotated.revoked.as_ref().map(|t| t.id.as_str()),
            Some(listed[0].id.as_str())
        );
        assert_eq!(rotated.view.label, listed[0].label);
        assert_eq!(
            s.ingest(&ingest_a, failing_span(4, "shop", "E", "m")).await,
            401
        );
        assert_eq!(
            s.ingest(&rotated.token, failing_span(5, "shop", "E", "m"))
                .await,
            200
        );
        // ...or, with keep_old, both work until the old one is revoked.
        let (status, kept) = s
            .call(
                Method::POST,
                &format!("/api/tokens/{}/rotate?keep_old=true", rotated.view.id),
                &s.user,
                None,
            )
            .await;
        assert_eq!(status, 201, "{kept}");
        let kept: IssuedToken = serde_json::from_value(kept).unwrap();
        assert!(kept.revoked.is_none());
        assert_eq!(
            s.ingest(&rotated.token, failing_span(6, "shop", "E", "m"))
                .await,
            200
        );
        assert_eq!(
            s.ingest(&kept.token, failing_span(7, "shop", "E", "m"))
                .await,
            200
        );
        // A user rotates their own API token.
        let (status, own) = s
            .call(
                Method::POST,
                &format!("/api/tokens/{}/rotate", mine[0].id),
                &kim,
                None,
            )
            .await;
        assert_eq!(status, 201, "{own}");
        let own: IssuedToken = serde_json::from_value(own).unwrap();
        assert_eq!(s.get("/api/issues", &kim).await.0, 401);
        s.ok("/api/issues", &own.token).await;

        // The CLI: list, add, rotate, revoke.
        let out = s.run_cli(&["token", "list", "--project", "a"]).await;
        assert!(out.starts_with("ID "), "{out}");
        assert_eq!(out.lines().count(), 3, "{out}");
        let out = s
            .run_cli(&["token", "add", "--project", "a", "--label", "gateway"])
            .await;
        assert!(out.starts_with("new ingest token "), "{out}");
        let token = out
            .lines()
            .find_map(|l| l.strip_prefix("token: "))
            .expect("the token")
            .to_owned();
        assert_eq!(
            s.ingest(&token, failing_span(8, "gateway", "E", "m")).await,
            200
        );
        let id = out.split_whitespace().nth(3).expect("an id").to_owned();
        let out = s.run_cli(&["token", "rotate", &id]).await;
        assert!(
            out.contains(&format!("revoked the old token {id}")),
            "{out}"
        );
        let new_id = out.split_whitespace().nth(3).expect("an id").to_owned();
        assert_eq!(
            s.ingest(&token, failing_span(9, "gateway", "E", "m")).await,
            401
        );
        let out = s.run_cli(&["token", "revoke", &new_id]).await;
        assert_eq!(
            out,
            format!("revoked ingest token {new_id} of a (gateway)\n")
        );
        let out = s.run_cli(&["--token", &own.token, "token", "list"]).await;
        assert_eq!(
            out.lines().count(),
            3,
            "kim's two tokens and the heading: {out}"
        );

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_cost_one_read_each_and_never_a_reload() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let store = s.server.store().clone();
        let requests = 10_000usize;
        let paths = [
            "/api/issues",
            "/v1/traces",
            "/api/tokens",
            "/api/alerts/stream",
        ];
        let before = store.accounts().reads();
        let mut statuses = std::collections::BTreeMap::new();
        for chunk in (0..requests).collect::<Vec<_>>().chunks(50) {
            let calls = chunk.iter().map(|&i| {
                let token = format!(
                    "omegi_u_{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                let path = paths[i % paths.len()];
                let request = if path == "/v1/traces" {
                    s.http
                        .post(s.url(path))
                        .header("content-type", "application/json")
                        .body("{}")
                } else {
                    s.http.get(s.url(path))
                };
                async move {
                    request
                        .bearer_auth(token)
                        .send()
                        .await
                        .expect("an answer")
                        .status()
                        .as_u16()
                }
            });
            for status in futures_util::future::join_all(calls).await {
                *statuses.entry(status).or_insert(0usize) += 1;
            }
        }
        assert_eq!(statuses, [(401u16, requests)].into_iter().collect());
        // One point read by hash per request: no scan, no reload.
        assert_eq!(store.accounts().reads() - before, requests as u64);
        // Known tokens still work.
        let (status, _) = s.get("/api/issues", &s.user).await;
        assert_eq!(status, 200);

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

/// Opens a store that a command has just closed. The engine's background
/// threads may hold its lock file for a moment after the last handle is
/// dropped, so a lock held by someone is retried for a bounded time.
fn reopen(path: &std::path::Path) -> omegi_store::Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match omegi_store::Store::open(path) {
            Ok(store) => return store,
            Err(e) if held_lock(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("cannot open {}: {e}", path.display()),
        }
    }
}

/// Whether opening failed because the data directory's lock is held: the
/// engine says so in a cause of the store's error.
fn held_lock(e: &omegi_store::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        if c.to_string().contains("lock") {
            return true;
        }
        cause = c.source();
    }
    false
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .expect("the file exists")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_says_what_accounts_it_brings_and_takes_them_only_when_asked() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let ingest = s.project("shop").await;
        let kim = s.user("kim", &["shop"]).await;
        assert_eq!(
            s.ingest(&ingest, failing_span(0x51, "shop", "ShopError", "boom"))
                .await,
            200
        );
        s.server.shutdown().await.expect("a clean shutdown");
        let file = s.dir.path().join("backup.jsonl");
        let file_arg = file.display().to_string();
        offline_cli(s.dir.path(), &["export", &file_arg])
            .await
            .expect("export");
        #[cfg(unix)]
        assert_eq!(mode(&file), 0o600, "the export holds token hashes");

        // Without --accounts: data in, accounts counted and skipped.
        let data_only = tempfile::tempdir().unwrap();
        let said = offline_cli(data_only.path(), &["import", &file_arg])
            .await
            .expect("import");
        assert!(
            said.contains("the file brings accounts: 2 projects, 2 users, 1 admins, 4 tokens"),
            "{said}"
        );
        assert!(said.contains("accounts skipped: pass --accounts"), "{said}");
        {
            let store = reopen(&data_only.path().join("store"));
            assert!(store.accounts().users().unwrap().is_empty());
            assert!(store.accounts().tokens(None).unwrap().is_empty());
            assert_eq!(
                store
                    .issues()
                    .list("shop", &omegi_store::IssueQuery::all())
                    .unwrap()
                    .len(),
                1
            );
        }
        // With --accounts: kim's token works against the new directory.
        let restored = tempfile::tempdir().unwrap();
        let said = offline_cli(restored.path(), &["import", &file_arg, "--accounts"])
            .await
            .expect("import");
        assert!(
            said.contains("accounts imported: 2 projects, 2 users, 1 admins, 4 tokens"),
            "{said}"
        );
        let listen = "127.0.0.1:0".parse().unwrap();
        let server = omegi_server::server::Server::start(omegi_server::server::ServeConfig::new(
            restored.path(),
            listen,
        ))
        .await
        .expect("the server starts on the imported data");
        assert!(
            server.created_credentials().is_none(),
            "the accounts came from the file"
        );
        let issues: Value = reqwest::Client::new()
            .get(format!("{}/api/issues?project=shop", server.url()))
            .bearer_auth(&kim)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(issues.as_array().map(Vec::len), Some(1), "{issues}");
        server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

/// `omegi notes export DIR [--force]` as the admin.
async fn notes_export(s: &TestServer, dir: &str, force: bool) -> Result<String, String> {
    let mut args = vec!["--token", s.user.as_str(), "notes", "export", dir];
    if force {
        args.push("--force");
    }
    s.try_cli(&args).await
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_omegi_writes_is_private_and_note_export_follows_no_link() {
    tokio::time::timeout(LIMIT, async {
        let parent = tempfile::tempdir().unwrap();
        let data = parent.path().join("omegi-data");
        let s = TestServer::start_with(|mut c| {
            c.data_dir = data.clone();
            c
        })
        .await;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("credentials.json")), 0o600);
        assert_eq!(mode(&data.join("store")), 0o700);
        assert_eq!(mode(&data.join("store/db")), 0o600);
        assert_eq!(mode(&data.join("store/conf")), 0o600);

        let (status, _) = s
            .post(
                "/api/notes",
                &s.user,
                json!({ "title": "Runbook", "body": "Restart it." }),
            )
            .await;
        assert_eq!(status, 201);
        let vault = parent.path().join("vault");
        let vault_arg = vault.display().to_string();
        let export = |force: bool| notes_export(&s, &vault_arg, force);
        // A link planted where the note's file goes is not followed.
        std::fs::create_dir(&vault).unwrap();
        let victim = parent.path().join("victim.txt");
        std::fs::write(&victim, "keep me").unwrap();
        std::os::unix::fs::symlink(&victim, vault.join("Runbook.md")).unwrap();
        let refused = export(false).await.unwrap_err();
        assert!(refused.contains("--force"), "{refused}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        export(true).await.expect("forced, the link is replaced");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(mode(&vault.join("Runbook.md")), 0o600);
        // A file someone wrote there is not overwritten without --force.
        std::fs::write(vault.join("Runbook.md"), "mine").unwrap();
        assert!(export(false).await.is_err());
        assert_eq!(
            std::fs::read_to_string(vault.join("Runbook.md")).unwrap(),
            "mine"
        );
        // What the export wrote itself is rewritten.
        export(true).await.unwrap();
        export(false).await.expect("its own, unchanged files");
        let fresh = parent.path().join("fresh/vault");
        s.try_cli(&[
            "--token",
            &s.user,
            "notes",
            "export",
            &fresh.display().to_string(),
        ])
        .await
        .unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&fresh.join("Runbook.md")), 0o600);

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}
