//! Note search and note writes in an on-disk store of 100,000 notes.
//!
//! The store is built once, outside the measurements, in a temporary
//! directory: notes with titles and bodies drawn from an error-tracking
//! vocabulary (one in five in Korean), tags, and `[[links]]` between them.
//!
//! - `search/*`: one full-text query with the top 10 hits and their
//!   snippets, as a user runs it (English, Korean, with a tag filter).
//! - `save_note_with_links`: an edit of a note that changes its links (the
//!   link index diff and a commit of the full-text index).
//!
//! `cargo bench -p benches --bench search -- --warm-up-time 1 --measurement-time 3`

use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use omegi_core::{Note, NoteId, Visibility};
use omegi_store::{NoteQuery, NoteUpdate, Store};

const NOTES: usize = 100_000;

const SERVICES: &[&str] = &[
    "payment",
    "checkout",
    "inventory",
    "gateway",
    "auth",
    "search",
    "mailer",
    "billing",
    "shipping",
    "catalog",
    "cart",
    "ledger",
    "notifier",
    "profile",
    "session",
    "pricing",
];
const PROBLEMS: &[&str] = &[
    "timeout",
    "deadlock",
    "connection refused",
    "card declined",
    "rate limited",
    "out of memory",
    "null pointer",
    "schema mismatch",
    "signature invalid",
    "quota exceeded",
    "stale cache",
    "dns failure",
    "tls handshake failed",
    "disk full",
    "slow query",
    "retry storm",
    "duplicate key",
    "serialization error",
    "missing header",
    "pool exhausted",
];
const WORDS: &[&str] = &[
    "the",
    "upstream",
    "returned",
    "after",
    "retry",
    "with",
    "backoff",
    "increase",
    "client",
    "pool",
    "size",
    "index",
    "on",
    "orders",
    "created_at",
    "restart",
    "pod",
    "check",
    "latency",
    "first",
    "then",
    "rollback",
    "deploy",
    "config",
    "flag",
    "alert",
    "threshold",
    "queue",
    "consumer",
    "lag",
    "partition",
    "leader",
    "replica",
    "token",
    "expired",
    "refresh",
    "header",
    "proxy",
    "load",
    "balancer",
    "health",
    "probe",
    "memory",
    "limit",
    "heap",
    "thread",
    "blocked",
    "lock",
    "order",
    "customer",
    "invoice",
    "webhook",
    "provider",
    "issuer",
    "stripe",
    "postgres",
    "redis",
    "kafka",
    "grpc",
    "http",
    "status",
    "502",
    "503",
    "429",
    "p99",
    "spike",
    "incident",
];
const KOREAN: &[&str] = &[
    "결제",
    "서비스",
    "타임아웃",
    "재고",
    "동기화",
    "오류",
    "주문",
    "실패했습니다",
    "지연",
    "재시도",
    "연결",
    "거부",
    "카드",
    "승인",
    "거절",
    "데이터베이스",
    "잠금",
    "배포",
    "롤백",
    "캐시",
    "만료",
    "토큰",
    "응답",
    "서버",
    "장애",
    "복구",
    "알림",
    "사용자",
    "요청이",
    "느려졌습니다",
];
const TAGS: &[&str] = &[
    "payments",
    "payments/stripe",
    "inventory",
    "database",
    "cache",
    "network",
    "auth",
    "email",
    "oncall",
    "postmortem",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn title(rng: &mut Rng, i: usize) -> String {
    if matches!(i % 5, 0) {
        format!(
            "{} {} {} {i}",
            rng.pick(KOREAN),
            rng.pick(KOREAN),
            rng.pick(KOREAN)
        )
    } else {
        format!("{} {} {i}", rng.pick(SERVICES), rng.pick(PROBLEMS))
    }
}

fn body(rng: &mut Rng, i: usize, titles: &[String]) -> String {
    let mut out = String::with_capacity(600);
    let korean = matches!(i % 5, 0);
    for sentence in 0..6 {
        for _ in 0..12 {
            out.push_str(if korean {
                rng.pick(KOREAN)
            } else {
                rng.pick(WORDS)
            });
            out.push(' ');
        }
        if sentence == 2 && !titles.is_empty() {
            let target = &titles[(rng.next() % titles.len() as u64) as usize];
            out.push_str(&format!("See [[{target}]]. "));
        }
        out.push_str(".\n");
    }
    out
}

fn build(dir: &std::path::Path) -> (Store, Vec<Note>) {
    let store = Store::open(dir).expect("open store");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut titles = Vec::with_capacity(NOTES);
    let mut notes = Vec::with_capacity(NOTES);
    let t0 = 1_700_000_000_000_000_000u64;
    for i in 0..NOTES {
        let t = title(&mut rng, i);
        let b = body(&mut rng, i, &titles);
        let mut note = Note::new(
            NoteId::now_v7(),
            format!("user{}", i % 50),
            t.clone(),
            b,
            t0 + i as u64,
        );
        note.visibility = if i.is_multiple_of(10) {
            Visibility::Private
        } else {
            Visibility::Public
        };
        note.tags = vec![rng.pick(TAGS).to_owned()];
        titles.push(t);
        notes.push(note);
    }
    let started = Instant::now();
    store.notes().restore(notes.clone()).expect("load notes");
    eprintln!(
        "built a store of {} notes in {:.1} s",
        store.notes().count().expect("count notes"),
        started.elapsed().as_secs_f64()
    );
    (store, notes)
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, notes) = build(dir.path());

    let mut group = c.benchmark_group("search_100k");
    let queries = [
        (
            "english_two_words",
            NoteQuery::new("payment timeout").limit(10),
        ),
        ("english_rare", NoteQuery::new("tls handshake").limit(10)),
        ("korean", NoteQuery::new("결제").limit(10)),
        ("korean_phrase", NoteQuery::new("타임아웃").limit(10)),
        (
            "with_tag_filter",
            NoteQuery::new("card declined").tag("payments").limit(10),
        ),
        (
            "with_author_filter",
            NoteQuery::new("timeout").author("user7").limit(10),
        ),
    ];
    for (name, query) in &queries {
        let hits = store.search().notes("user1", query).expect("search");
        assert!(!hits.is_empty(), "{name} finds something");
        group.bench_function(*name, |b| {
            b.iter(|| {
                black_box(
                    store
                        .search()
                        .notes("user1", black_box(query))
                        .expect("search"),
                )
            })
        });
    }
    group.finish();

    // A note with links, edited back and forth between two link sets.
    let note = notes
        .iter()
        .find(|n| n.author == "user3")
        .expect("a note of user3");
    let bodies = [
        format!(
            "Links: [[{}]] [[{}]] [[{}]]",
            notes[1].title, notes[2].title, notes[3].title
        ),
        format!(
            "Links: [[{}]] [[{}]] [[{}]]",
            notes[4].title, notes[5].title, notes[6].title
        ),
    ];
    let mut revision = store
        .notes()
        .get(note.id, "user3")
        .expect("read")
        .expect("exists")
        .revision;
    let mut flip = 0;
    c.bench_function("save_note_with_links", |b| {
        b.iter(|| {
            flip ^= 1;
            let saved = store
                .notes()
                .update(
                    note.id,
                    "user3",
                    NoteUpdate::new().body(bodies[flip].clone()),
                    revision,
                )
                .expect("update");
            revision = saved.revision;
        })
    });
}

criterion_group!(search, benches);
criterion_main!(search);
