//! Full-text search: relevance over a seeded set of notes in English and
//! Korean, filters, snippets, and rebuilding the index.

mod common;

use omegi_core::{Fingerprint, NoteId, Record};
use omegi_store::{NewNote, NoteQuery, Store};

struct Seeded {
    store: Store,
    webhook_fp: Fingerprint,
    smtp_fp: Fingerprint,
    ids: Vec<(&'static str, NoteId)>,
}

impl Seeded {
    fn id(&self, title: &str) -> NoteId {
        self.ids
            .iter()
            .find(|(t, _)| *t == title)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| panic!("no seeded note {title}"))
    }
}

/// Title, author, body, tags, linked issues.
type Seed = (
    &'static str,
    &'static str,
    &'static str,
    Vec<&'static str>,
    Vec<Fingerprint>,
);

fn seed(store: Store) -> Seeded {
    let r = common::resource("mailer");
    let mut smtp = common::error(
        "mailer",
        "SMTP relay rejected the message",
        common::T0,
        None,
    );
    smtp.error_type = Some("MailError".into());
    let smtp_fp = store
        .traces()
        .ingest("shop", &r, &[Record::Error(smtp)])
        .unwrap()
        .created[0]
        .fingerprint
        .clone();
    let webhook_fp = Fingerprint("00000000000000f1".into());
    let notes: Vec<Seed> = vec![
        (
            "결제 서비스 타임아웃",
            "kim",
            "PG사 응답이 30초를 넘으면 결제 서비스가 멈춥니다. 재시도는 지수 백오프로.",
            vec!["payments", "korean"],
            vec![],
        ),
        (
            "Checkout 502",
            "lee",
            "결제가 실패했습니다. The gateway returned 502 when checkout called the provider.",
            vec!["checkout"],
            vec![],
        ),
        (
            "Payment timeout",
            "lee",
            "The payment provider timed out after 30s. Increase the client timeout and retry with backoff.",
            vec!["payments/stripe"],
            vec![],
        ),
        (
            "Card declined by issuer",
            "park",
            "Stripe returns card_declined when the issuer refuses. Ask the user for another card.",
            vec!["payments/stripe"],
            vec![],
        ),
        (
            "Inventory reservation deadlock",
            "lee",
            "Two transactions lock rows in different order. Sort the SKU ids before locking.",
            vec!["inventory", "database"],
            vec![],
        ),
        (
            "Redis connection refused",
            "park",
            "The cache pod restarted; connection refused for 20 seconds. Use a retrying pool.",
            vec!["cache"],
            vec![],
        ),
        (
            "재고 동기화 오류",
            "park",
            "재고 수량이 음수가 되는 문제. 동시 주문 시 락이 필요합니다.",
            vec!["inventory"],
            vec![],
        ),
        (
            "Database timeout on order insert",
            "kim",
            "Postgres statement timeout hit during peak. Add an index on orders.created_at.",
            vec!["database"],
            vec![],
        ),
        (
            "Webhook signature mismatch",
            "lee",
            "Stripe webhook secret rotated; the signature check failed.",
            vec!["payments/stripe"],
            vec![webhook_fp.clone()],
        ),
        (
            "Mail queue backlog",
            "kim",
            "Queue emails and back off when the provider pushes back.",
            vec!["email"],
            vec![smtp_fp.clone()],
        ),
        (
            "Timeout runbook",
            "lee",
            "General advice: check upstream latency first, then the client settings.",
            vec![],
            vec![],
        ),
    ];
    let mut ids = Vec::new();
    for (title, author, body, tags, issues) in notes {
        let note = store
            .notes()
            .create(
                NewNote::new(author, title, body)
                    .tags(tags)
                    .issues(issues)
                    .public(),
            )
            .unwrap();
        ids.push((title, note.id));
    }
    Seeded {
        store,
        webhook_fp,
        smtp_fp,
        ids,
    }
}

fn first(store: &Store, query: &NoteQuery) -> Option<String> {
    store
        .search()
        .notes("viewer", query)
        .unwrap()
        .first()
        .map(|h| h.note.title.clone())
}

fn check_relevance(s: &Seeded) {
    let cases: Vec<(NoteQuery, &str)> = vec![
        (NoteQuery::new("결제"), "결제 서비스 타임아웃"),
        (NoteQuery::new("타임아웃"), "결제 서비스 타임아웃"),
        (NoteQuery::new("결제가 실패"), "Checkout 502"),
        (NoteQuery::new("재고"), "재고 동기화 오류"),
        (NoteQuery::new("payment timeout"), "Payment timeout"),
        (NoteQuery::new("card declined"), "Card declined by issuer"),
        (NoteQuery::new("DEADLOCK"), "Inventory reservation deadlock"),
        (
            NoteQuery::new("connection refused"),
            "Redis connection refused",
        ),
        (
            NoteQuery::new("timeout").tag("database"),
            "Database timeout on order insert",
        ),
        (
            NoteQuery::new("timeout").author("kim"),
            "Database timeout on order insert",
        ),
        (
            NoteQuery::new("stripe").issue(s.webhook_fp.clone()),
            "Webhook signature mismatch",
        ),
        // Found through the linked issue's message only.
        (NoteQuery::new("smtp relay"), "Mail queue backlog"),
        (NoteQuery::new("").tag("email"), "Mail queue backlog"),
    ];
    for (query, expected) in cases {
        assert_eq!(
            first(&s.store, &query).as_deref(),
            Some(expected),
            "query {query:?}"
        );
    }
    // Filters narrow, they do not just rank.
    let stripe = s
        .store
        .search()
        .notes("viewer", &NoteQuery::new("").tag("payments"))
        .unwrap();
    assert_eq!(stripe.len(), 4, "nested tags match their parent");
    assert!(s
        .store
        .search()
        .notes("viewer", &NoteQuery::new("deadlock").author("kim"))
        .unwrap()
        .is_empty());
    let both = s
        .store
        .search()
        .notes("viewer", &NoteQuery::new("결제"))
        .unwrap();
    let mut titles: Vec<&str> = both.iter().map(|h| h.note.title.as_str()).collect();
    titles.sort();
    assert_eq!(titles, ["Checkout 502", "결제 서비스 타임아웃"]);
    assert!(both[0].score >= both[1].score);
    assert_eq!(
        s.store.notes().for_issue(&s.smtp_fp, "x").unwrap()[0].id,
        s.id("Mail queue backlog")
    );
}

#[test]
fn expected_notes_rank_first() {
    let s = seed(Store::temporary().unwrap());
    check_relevance(&s);
}

#[test]
fn snippets_highlight_the_matches() {
    let s = seed(Store::temporary().unwrap());
    let hits = s
        .store
        .search()
        .notes("viewer", &NoteQuery::new("결제").limit(5))
        .unwrap();
    let checkout = hits
        .iter()
        .find(|h| h.note.title == "Checkout 502")
        .expect("the body match is found");
    let snippet = &checkout.snippet;
    assert!(!snippet.highlights.is_empty());
    for range in &snippet.highlights {
        assert_eq!(&snippet.text[range.clone()], "결제");
    }
    assert!(snippet.html.contains("<b>결제</b>"), "{}", snippet.html);

    let hits = s
        .store
        .search()
        .notes("viewer", &NoteQuery::new("card declined"))
        .unwrap();
    let snippet = &hits[0].snippet;
    let words: Vec<&str> = snippet
        .highlights
        .iter()
        .map(|r| &snippet.text[r.clone()])
        .collect();
    assert!(words.contains(&"card"), "{words:?}");
    assert!(snippet.html.contains("<b>card</b>"));
    // HTML is escaped.
    let note = s
        .store
        .notes()
        .create(NewNote::new("kim", "Escaping", "the <script> tag breaks zebra pages").public())
        .unwrap();
    let hits = s
        .store
        .search()
        .notes("kim", &NoteQuery::new("zebra"))
        .unwrap();
    assert_eq!(hits[0].note.id, note.id);
    assert!(hits[0].snippet.html.contains("&lt;script&gt;"));
    assert!(hits[0].snippet.html.contains("<b>zebra</b>"));
}

#[test]
fn writes_show_in_search_at_once() {
    let s = seed(Store::temporary().unwrap());
    let id = s.id("Redis connection refused");
    assert_eq!(
        first(&s.store, &NoteQuery::new("refused")).as_deref(),
        Some("Redis connection refused")
    );
    s.store
        .notes()
        .update(
            id,
            "park",
            omegi_store::NoteUpdate::new().body("Now about a quokka."),
            1,
        )
        .unwrap();
    // Still found by title, no longer by the old body text.
    assert!(s
        .store
        .search()
        .notes("x", &NoteQuery::new("pod restarted"))
        .unwrap()
        .is_empty());
    assert_eq!(
        first(&s.store, &NoteQuery::new("quokka")).as_deref(),
        Some("Redis connection refused")
    );
    s.store.notes().rename(id, "park", "Cache outage").unwrap();
    assert_eq!(
        first(&s.store, &NoteQuery::new("cache outage")).as_deref(),
        Some("Cache outage")
    );
    s.store.notes().delete(id, "park").unwrap();
    assert!(s
        .store
        .search()
        .notes("x", &NoteQuery::new("quokka"))
        .unwrap()
        .is_empty());
}

#[test]
fn a_deleted_index_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = seed(Store::open(dir.path()).unwrap());
        check_relevance(&s);
        s.store.flush().unwrap();
    }
    let index = dir.path().join("search");
    assert!(index.join("meta.json").exists());
    std::fs::remove_dir_all(&index).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(index.join("meta.json").exists());
    assert_eq!(
        first(&store, &NoteQuery::new("결제")).as_deref(),
        Some("결제 서비스 타임아웃")
    );
    assert_eq!(
        store
            .search()
            .notes("x", &NoteQuery::new(""))
            .unwrap()
            .len(),
        11
    );
}

#[test]
fn an_index_behind_the_notes_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("search");
    let saved = tempfile::tempdir().unwrap();
    {
        let s = seed(Store::open(dir.path()).unwrap());
        s.store.flush().unwrap();
    }
    copy_dir(&index, saved.path());
    let added = {
        let store = Store::open(dir.path()).unwrap();
        let note = store
            .notes()
            .create(NewNote::new("kim", "Late arrival", "a wombat in the logs").public())
            .unwrap();
        store
            .notes()
            .delete(s_id(&store, "Timeout runbook"), "lee")
            .unwrap();
        store.flush().unwrap();
        note.id
    };
    // Put back the older index: it lacks the new note and has the deleted one.
    std::fs::remove_dir_all(&index).unwrap();
    copy_dir(saved.path(), &index);
    let store = Store::open(dir.path()).unwrap();
    let hits = store
        .search()
        .notes("x", &NoteQuery::new("wombat"))
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].note.id, added);
    assert!(store
        .search()
        .notes("x", &NoteQuery::new("upstream latency"))
        .unwrap()
        .is_empty());

    // A damaged index is rebuilt too.
    drop(store);
    std::fs::write(index.join("meta.json"), b"{ not json").unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store
            .search()
            .notes("x", &NoteQuery::new("wombat"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.search().rebuild().unwrap(), 11);
    assert_eq!(
        store
            .search()
            .notes("x", &NoteQuery::new("wombat"))
            .unwrap()
            .len(),
        1
    );
}

fn s_id(store: &Store, title: &str) -> NoteId {
    store
        .search()
        .notes("x", &NoteQuery::new("").limit(100))
        .unwrap()
        .into_iter()
        .find(|h| h.note.title == title)
        .map(|h| h.note.id)
        .unwrap_or_else(|| panic!("no note {title}"))
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
