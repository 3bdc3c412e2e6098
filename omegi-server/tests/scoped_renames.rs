//! Renames through the API are scoped: a rename rewrites only the links
//! that resolved to the renamed note for the author of the note holding
//! them, never changes a note its author cannot see, and never changes what
//! another user's link points to.

use std::time::Duration;

use omegi_core::note::Note;
use omegi_server::api::notes::RenderedNote;
use reqwest::Method;
use serde_json::{json, Value};

/// Every test is bounded in time.
const LIMIT: Duration = Duration::from_secs(60);

mod common;

use common::TestServer;

impl TestServer {
    async fn request(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.server.url()))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let value: Value = response.json().await.expect("JSON");
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    async fn user(&self, login: &str) -> String {
        let created = self
            .request(
                Method::POST,
                "/api/users",
                &self.user,
                Some(json!({ "login": login })),
            )
            .await;
        created["token"].as_str().expect("a token").to_owned()
    }

    async fn note(&self, token: &str, title: &str, body: &str, public: bool) -> Note {
        let visibility = if public { "public" } else { "private" };
        let created = self
            .request(
                Method::POST,
                "/api/notes",
                token,
                Some(json!({ "title": title, "body": body, "visibility": visibility })),
            )
            .await;
        serde_json::from_value(created).expect("a note")
    }

    async fn read(&self, token: &str, note: &Note) -> Note {
        let value = self
            .request(Method::GET, &format!("/api/notes/{}", note.id), token, None)
            .await;
        serde_json::from_value(value).expect("a note")
    }

    async fn rename(&self, token: &str, note: &Note, title: &str) -> Note {
        let value = self
            .request(
                Method::PUT,
                &format!("/api/notes/{}", note.id),
                token,
                Some(json!({ "revision": note.revision, "title": title })),
            )
            .await;
        serde_json::from_value(value).expect("a note")
    }

    async fn rendered(&self, token: &str, note: &Note) -> String {
        let value = self
            .request(
                Method::GET,
                &format!("/api/notes/{}/rendered", note.id),
                token,
                None,
            )
            .await;
        serde_json::from_value::<RenderedNote>(value)
            .expect("a rendered note")
            .markdown
    }

    async fn resolve(&self, token: &str, name: &str) -> Option<Note> {
        let response = self
            .http
            .get(format!("{}/api/notes/resolve", self.server.url()))
            .query(&[("name", name)])
            .bearer_auth(token)
            .send()
            .await
            .expect("the API answers");
        if response.status() == 404 {
            return None;
        }
        Some(response.json().await.expect("a note"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_private_note_leaves_other_users_notes_alone() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let mallory = s.user("mallory").await;
        let bob = s.user("bob").await;
        // Mallory's private Runbook is older than bob's public one.
        let evil = s.note(&mallory, "Runbook", "mallory's text", false).await;
        let runbook = s.note(&bob, "Runbook", "# Steps\nbob's steps", true).await;
        let incident = s
            .note(
                &bob,
                "Incident",
                "![[Runbook]]\n[[Runbook#Steps]] [[Runbook|the runbook]] ![[Runbook#Steps]]",
                false,
            )
            .await;
        let bobs_public = s.note(&bob, "Postmortem", "See [[Runbook]].", true).await;
        let mine = s.note(&mallory, "Mine", "![[Runbook]]", false).await;
        assert!(s.rendered(&bob, &incident).await.contains("bob's steps"));

        let renamed = s.rename(&mallory, &evil, "Evil").await;
        assert_eq!(renamed.title, "Evil");
        assert!(renamed.aliases.is_empty(), "a private note keeps no alias");

        // Bob's notes: same revision, same text, same meaning.
        for note in [&incident, &bobs_public, &runbook] {
            let now = s.read(&bob, note).await;
            assert_eq!((now.revision, &now.body), (1, &note.body), "{}", note.title);
        }
        let rendered = s.rendered(&bob, &incident).await;
        assert!(rendered.contains("bob's steps"), "{rendered}");
        assert!(!rendered.contains("mallory"), "{rendered}");
        // Mallory's own link meant her note: it follows.
        let mine = s.read(&mallory, &mine).await;
        assert_eq!((mine.revision, mine.body.as_str()), (2, "![[Evil]]"));
        assert_eq!(
            s.resolve(&bob, "Runbook").await.map(|n| n.id),
            Some(runbook.id)
        );
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_public_note_rewrites_the_public_links_that_meant_it() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let alice = s.user("alice").await;
        let carol = s.user("carol").await;
        let dave = s.user("dave").await;
        // Dave's private "Playbook" is older than alice's note: for him,
        // [[Playbook]] means his own note, so no link of his may become one.
        let dave_playbook = s.note(&dave, "Playbook", "dave's own", false).await;
        let runbook = s
            .note(&alice, "Runbook", "# Steps\nrestart the pool", true)
            .await;
        let aliased = s
            .request(
                Method::PUT,
                &format!("/api/notes/{}", runbook.id),
                &alice,
                Some(json!({ "revision": 1, "aliases": ["rb"] })),
            )
            .await;
        let runbook: Note = serde_json::from_value(aliased).expect("a note");
        let ops = s
            .note(
                &carol,
                "Ops",
                "[[Runbook#Steps]] [[Runbook|label]] ![[runbook#steps]] [[rb]]",
                true,
            )
            .await;
        let private = s.note(&carol, "Private ops", "![[Runbook]]", false).await;
        let daves = s.note(&dave, "Dave's", "[[Runbook]]", true).await;

        let renamed = s.rename(&alice, &runbook, "Playbook").await;
        assert_eq!(renamed.aliases, ["rb", "Runbook"]);

        // Carol's public note: rewritten where it meant the note by title,
        // headings and labels kept; the alias link stays.
        let ops_now = s.read(&carol, &ops).await;
        assert_eq!(
            ops_now.body,
            "[[Playbook#Steps]] [[Playbook|label]] ![[Playbook#steps]] [[rb]]"
        );
        assert_eq!(ops_now.revision, 2);
        // Carol's private note is not alice's to change, yet its embed
        // still shows alice's note through the former title.
        let private_now = s.read(&carol, &private).await;
        assert_eq!(
            (private_now.revision, private_now.body.as_str()),
            (1, "![[Runbook]]")
        );
        assert!(s
            .rendered(&carol, &private)
            .await
            .contains("restart the pool"));
        // Dave's link is left as it was and still leads to alice's note.
        let daves_now = s.read(&dave, &daves).await;
        assert_eq!(
            (daves_now.revision, daves_now.body.as_str()),
            (1, "[[Runbook]]")
        );
        assert_eq!(
            s.resolve(&dave, "Runbook").await.map(|n| n.id),
            Some(runbook.id)
        );
        assert_eq!(
            s.resolve(&dave, "Playbook").await.map(|n| n.id),
            Some(dave_playbook.id)
        );
        assert_eq!(
            s.resolve(&carol, "Playbook").await.map(|n| n.id),
            Some(runbook.id)
        );
    })
    .await
    .expect("within the time limit");
}
