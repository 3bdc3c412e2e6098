//! Alerts that bring the fix: a regressed issue's alert, on the SSE stream
//! and at a webhook (Omegi's JSON and Slack's Block Kit), carries the public
//! notes linked to the issue, the suggestions and the links back to the
//! issue; never a private note.

use std::time::Duration;

use omegi_server::alerts::{RetryPolicy, WebhookFormat, SLACK_SECTION_CHARS};
use omegi_server::api::views::IssueView;
use serde_json::{json, Value};

mod common;

use common::{webhook_receiver, TestServer};

/// Every test is bounded in time.
const LIMIT: Duration = Duration::from_secs(60);

const LINKED: &str = "Card declined: offer another card";
const PRIVATE: &str = "My private scribbles on the decline";
const SUGGESTED: &str = "Issuer declines";

/// One failing `charge` span of payment-service with an `exception`
/// event, as OTLP/JSON.
fn declined_payment(trace: u128) -> Vec<u8> {
    let t0 = omegi_server::api::now_ns();
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "payment-service"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": format!("{trace:032x}"),
            "spanId": "00000000000000a1",
            "name": "charge",
            "kind": 2,
            "startTimeUnixNano": t0.to_string(),
            "endTimeUnixNano": (t0 + 5_000_000).to_string(),
            "status": {"code": 2, "message": "card declined"},
            "events": [{"timeUnixNano": (t0 + 4_000_000).to_string(), "name": "exception",
                "attributes": [
                    {"key": "exception.type", "value": {"stringValue": "PaymentError"}},
                    {"key": "exception.message", "value": {"stringValue": "card declined by issuer"}}]}]
        }]}]
    }]}))
    .expect("JSON")
}

impl TestServer {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.server.url()))
            .bearer_auth(&self.user);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        assert!(status.is_success(), "{method} {path}: {status}");
        response.json().await.unwrap_or(Value::Null)
    }

    async fn ingest(&self, trace: u128) {
        let status = self
            .http
            .post(format!("{}/v1/traces", self.server.url()))
            .header("content-type", "application/json")
            .bearer_auth(&self.ingest)
            .body(declined_payment(trace))
            .send()
            .await
            .expect("the collector answers")
            .status();
        assert_eq!(status, 200);
    }
}

/// Reads the stream until an event of `kind` arrives; its data as JSON.
async fn next_event(stream: &mut reqwest::Response, buffer: &mut String, kind: &str) -> Value {
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == format!("event: {kind}")) {
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("a data line");
                return serde_json::from_str(data).expect("JSON data");
            }
        }
        let chunk = stream
            .chunk()
            .await
            .expect("the stream stays open")
            .expect("an event arrives");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// What one run of the story gave: the regressed alert on the stream and
/// the webhook bodies.
struct Story {
    fingerprint: String,
    base: String,
    linked_id: String,
    suggested_id: String,
    streamed: Value,
    webhook: Vec<Value>,
}

/// A declined payment becomes an issue; it is resolved; a public note is
/// linked to it (and a private one, which no alert may carry), another
/// public note matches its error; the payment is declined again: the issue
/// regresses.
async fn regress_with_a_note(format: WebhookFormat) -> Story {
    let (hook_url, receiver, hook_task) = webhook_receiver().await;
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    let s = TestServer::start_with(|c| c.webhooks([hook_url]).retry(retry).webhook_format(format))
        .await;
    let base = s.server.url();
    let mut stream = s
        .http
        .get(format!("{base}/api/alerts/stream"))
        .bearer_auth(&s.user)
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(stream.status(), 200);
    let mut buffer = String::new();

    s.ingest(1).await;
    let new_issue = next_event(&mut stream, &mut buffer, "new_issue").await;
    assert_eq!(new_issue["solved_before"], false);
    assert_eq!(new_issue["notes"], json!([]));
    let issues: Vec<IssueView> =
        serde_json::from_value(s.send(reqwest::Method::GET, "/api/issues", None).await)
            .expect("issues");
    assert_eq!(issues.len(), 1);
    let fingerprint = issues[0].issue.fingerprint.0.clone();
    s.send(
        reqwest::Method::POST,
        &format!("/api/issues/default/{fingerprint}/resolve"),
        None,
    )
    .await;
    let linked = s
        .send(
            reqwest::Method::POST,
            "/api/notes",
            Some(json!({"title": LINKED, "visibility": "public",
                "body": "The issuer refused the card.\n\nAsk the customer for another card; retrying the same one never helps.",
                "issues": [format!("default:{fingerprint}")]})),
        )
        .await;
    s.send(
        reqwest::Method::POST,
        "/api/notes",
        Some(json!({"title": PRIVATE, "visibility": "private",
            "body": "Nobody else may read this.", "issues": [fingerprint]})),
    )
    .await;
    let suggested = s
        .send(
            reqwest::Method::POST,
            "/api/notes",
            Some(json!({"title": SUGGESTED, "visibility": "public",
                "body": "When the issuer answers card declined, the PaymentError carries its reason."})),
        )
        .await;

    s.ingest(2).await;
    let streamed = next_event(&mut stream, &mut buffer, "regressed").await;
    drop(stream);
    // Shutdown drains the webhook queue.
    let report = s.server.shutdown().await.expect("a clean shutdown");
    assert!(report.webhooks_drained);
    hook_task.abort();
    let webhook = receiver.bodies.lock().await.clone();
    Story {
        fingerprint,
        base,
        linked_id: linked["id"].as_str().expect("an id").to_owned(),
        suggested_id: suggested["id"].as_str().expect("an id").to_owned(),
        streamed,
        webhook,
    }
}

/// The JSON alert of a regression carries the linked public note, the
/// suggestion and the links; not the private note.
fn assert_alert_brings_the_note(alert: &Value, story: &Story) {
    let fp = &story.fingerprint;
    assert_eq!(alert["kind"], "regressed", "{alert:#}");
    assert_eq!(alert["solved_before"], true);
    let notes = alert["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1, "{alert:#}");
    let note = &notes[0];
    assert_eq!(note["title"], LINKED);
    assert_eq!(note["id"], story.linked_id.as_str());
    assert_eq!(note["author"], "admin");
    assert_eq!(
        note["url"],
        format!("{}/#/note/{}", story.base, story.linked_id)
    );
    assert!(note["updated_ns"].as_u64().expect("a time") > 0);
    assert!(
        note["excerpt"]
            .as_str()
            .expect("an excerpt")
            .starts_with("The issuer refused the card. Ask the customer"),
        "{note:#}"
    );
    let suggestions = alert["suggestions"].as_array().expect("suggestions");
    assert_eq!(suggestions.len(), 1, "{alert:#}");
    assert_eq!(suggestions[0]["title"], SUGGESTED);
    assert_eq!(suggestions[0]["id"], story.suggested_id.as_str());
    assert_eq!(
        alert["issue_url"],
        format!("{}/#/issue/default/{fp}", story.base)
    );
    assert_eq!(
        alert["new_note_url"],
        format!("{}/#/issue/default/{fp}?new-note=1", story.base)
    );
    assert!(!alert.to_string().contains(PRIVATE), "{alert:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regression_alert_carries_the_note_on_the_stream_and_the_webhook() {
    tokio::time::timeout(LIMIT, async {
        let story = regress_with_a_note(WebhookFormat::Json).await;
        assert_alert_brings_the_note(&story.streamed, &story);
        assert_eq!(story.webhook.len(), 2, "new issue, then regressed");
        assert_eq!(story.webhook[0]["kind"], "new_issue");
        assert_eq!(story.webhook[0]["solved_before"], false);
        assert_alert_brings_the_note(&story.webhook[1], &story);
        // The stream and the webhook send the same alert.
        assert_eq!(story.webhook[1], story.streamed);
    })
    .await
    .expect("the test finishes in time");
}

/// Checks a body against Slack's documented message payload: a `text`
/// and at most 50 `blocks` of known types; section texts are text objects
/// of at most 3,000 characters; context blocks hold 1 to 10 elements;
/// actions blocks 1 to 25 buttons, each with a plain-text label of at most
/// 75 characters and an absolute URL of at most 3,000.
fn assert_slack_shape(body: &Value) {
    let object = body.as_object().expect("an object");
    let text = object["text"].as_str().expect("a top-level text");
    assert!(!text.is_empty() && text.chars().count() <= 40_000);
    let blocks = object["blocks"].as_array().expect("blocks");
    assert!((1..=50).contains(&blocks.len()), "{} blocks", blocks.len());
    let text_object = |t: &Value| {
        let kind = t["type"].as_str().expect("a text type");
        assert!(kind == "mrkdwn" || kind == "plain_text", "{t}");
        let text = t["text"].as_str().expect("a text");
        assert!(!text.is_empty(), "{t}");
        assert!(text.chars().count() <= SLACK_SECTION_CHARS, "{t}");
    };
    for block in blocks {
        match block["type"].as_str().expect("a block type") {
            "section" => text_object(&block["text"]),
            "context" => {
                let elements = block["elements"].as_array().expect("elements");
                assert!((1..=10).contains(&elements.len()));
                elements.iter().for_each(text_object);
            }
            "actions" => {
                let elements = block["elements"].as_array().expect("elements");
                assert!((1..=25).contains(&elements.len()));
                for button in elements {
                    assert_eq!(button["type"], "button");
                    assert_eq!(button["text"]["type"], "plain_text");
                    let label = button["text"]["text"].as_str().expect("a label");
                    assert!(!label.is_empty() && label.chars().count() <= 75);
                    let url = button["url"].as_str().expect("a URL");
                    assert!(url.starts_with("http") && url.len() <= 3000, "{url}");
                }
            }
            other => panic!("unexpected block type {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_webhook_gets_block_kit_with_the_note() {
    tokio::time::timeout(LIMIT, async {
        let story = regress_with_a_note(WebhookFormat::Slack).await;
        // The stream keeps Omegi's JSON.
        assert_alert_brings_the_note(&story.streamed, &story);
        assert_eq!(story.webhook.len(), 2, "new issue, then regressed");
        for body in &story.webhook {
            assert_slack_shape(body);
        }
        let new_issue = story.webhook[0].to_string();
        assert!(new_issue.contains("No note yet"), "{new_issue}");
        let regressed = &story.webhook[1];
        let text = regressed["text"].as_str().unwrap();
        assert!(text.starts_with("Regressed: PaymentError"), "{text}");
        assert!(text.contains(LINKED), "{text}");
        let sections: Vec<&str> = regressed["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "section")
            .map(|b| b["text"]["text"].as_str().unwrap())
            .collect();
        let issue_url = format!("{}/#/issue/default/{}", story.base, story.fingerprint);
        assert!(
            sections[0].contains(&format!("<{issue_url}|Regressed: ")),
            "{sections:?}"
        );
        let note_url = format!("{}/#/note/{}", story.base, story.linked_id);
        assert!(sections[1].contains("Solved before"), "{sections:?}");
        assert!(
            sections[1].contains(&format!(
                "<{note_url}|{LINKED}> by admin, last edited <!date^"
            )),
            "{sections:?}"
        );
        assert!(sections[2].contains(SUGGESTED), "{sections:?}");
        assert!(!regressed.to_string().contains(PRIVATE));
        let buttons = regressed["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .expect("buttons");
        assert_eq!(buttons["elements"][0]["url"], issue_url.as_str());
        assert_eq!(
            buttons["elements"][1]["url"],
            format!("{issue_url}?new-note=1")
        );
    })
    .await
    .expect("the test finishes in time");
}
