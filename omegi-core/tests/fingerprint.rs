//! Fingerprints and message normalization: what groups together and what not.

use omegi_core::{
    fingerprint, normalize_message, Attribute, ErrorRecord, SpanFrame, SpanId, TraceId,
};

/// Pairs of messages and whether occurrences with them must form one issue.
const PAIRS: &[(&str, &str, bool)] = &[
    // Numbers.
    ("order 1234 not found", "order 98 not found", true),
    ("order not found", "payment declined", false),
    ("order 1234 not found", "order not found", false),
    ("timeout after 250ms", "timeout after 3000ms", true),
    ("took 12.5ms", "took 100ms", true),
    ("balance is -5", "balance is 10", true),
    ("retry 3 of 5 failed", "retry 1 of 5 failed", true),
    ("expected 2 rows, got 0", "expected 1 rows, got 3", true),
    ("at 2024-01-15T10:30:00Z", "at 2023-12-31T23:59:59Z", true),
    ("pool user_42 exhausted", "pool user_7 exhausted", true),
    ("record order1234 missing", "record order5678 missing", true),
    ("utf8 decode failed", "utf16 decode failed", false),
    ("worker3 crashed", "worker4 crashed", false),
    // Hex, UUIDs.
    ("bad pointer 0xdeadbeef", "bad pointer 0x1f", true),
    (
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 dropped",
        "trace 00f067aa0ba902b7 dropped",
        true,
    ),
    (
        "session 7f9c24e8-3b12-4fef-91e0-3d4ba3a3a0a1 expired",
        "session 123e4567-e89b-12d3-a456-426614174000 expired",
        true,
    ),
    (
        "session expired",
        "session 123e4567-e89b-12d3-a456-426614174000 expired",
        false,
    ),
    ("deadbeef", "facade", false),
    // Quoted strings.
    ("user 'bob' not allowed", "user 'alice' not allowed", true),
    ("key \"a b c\" missing", "key \"x\" missing", true),
    ("column `email` is null", "column `name` is null", true),
    ("can't open file", "can't read file", false),
    ("user 'bob' not allowed", "group 'bob' not allowed", false),
    ("say \"it's \\\"fine\\\"\" now", "say \"no\" now", true),
    // E-mail and IP addresses.
    (
        "no account for bob@example.com",
        "no account for a.b+c@mail.example.org",
        true,
    ),
    (
        "connect to 10.0.0.7 refused",
        "connect to 192.168.1.254 refused",
        true,
    ),
    (
        "connect to 10.0.0.7:5432 refused",
        "connect to 172.16.0.1:6432 refused",
        true,
    ),
    (
        "connect to fe80::1 refused",
        "connect to 2001:db8::8a2e:370:7334 refused",
        true,
    ),
    (
        "connect to ::1 refused",
        "connect to ::ffff:192.0.2.1 refused",
        true,
    ),
    (
        "connect to 2001:0db8:85a3:0000:0000:8a2e:0370:7334 refused",
        "connect to 10.1.2.3 refused",
        true,
    ),
    ("db::Error at step", "io::Error at step", false),
    // Paths.
    (
        "GET /orders/1234/items failed",
        "GET /orders/98/items failed",
        true,
    ),
    (
        "GET /orders/A-17/items failed",
        "GET /orders/B-2/items failed",
        true,
    ),
    (
        "GET /orders/1/items failed",
        "GET /orders/1/payments failed",
        false,
    ),
    (
        "GET /api/v1/users failed",
        "GET /api/v2/users failed",
        false,
    ),
    (
        "GET http://10.0.0.1:8080/users/7",
        "GET http://10.0.0.2:8080/users/9",
        true,
    ),
    // Whitespace.
    ("  order   1 \t not found ", "order 2 not found", true),
];

#[test]
fn message_pairs_group_together_or_apart() {
    assert!(PAIRS.len() >= 30);
    let mut wrong = Vec::new();
    for &(a, b, same) in PAIRS {
        let (na, nb) = (normalize_message(a), normalize_message(b));
        if (na == nb) != same {
            wrong.push(format!(
                "{a:?} -> {na:?} / {b:?} -> {nb:?}: expected {}",
                if same { "together" } else { "apart" }
            ));
        }
        let (fa, fb) = (
            fingerprint(&error("svc", Some("E"), a, Some("op"))),
            fingerprint(&error("svc", Some("E"), b, Some("op"))),
        );
        assert_eq!(fa == fb, same, "fingerprints of {a:?} and {b:?}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn normalized_forms_read_well() {
    let cases = [
        ("order 1234 not found", "order <num> not found"),
        ("took 12.5ms", "took <num>ms"),
        ("GET /orders/1234/items", "GET /orders/<id>/items"),
        ("user 'bob' at bob@example.com", "user <str> at <email>"),
        ("from 10.0.0.7 and fe80::1", "from <ip> and <ip>"),
        ("ptr 0xdeadbeef id 4bf92f3577b34da6", "ptr <hex> id <hex>"),
        ("id 123e4567-e89b-12d3-a456-426614174000", "id <uuid>"),
        (
            "at 2024-01-15T10:30:00Z",
            "at <num>-<num>-<num>T<num>:<num>:<num>Z",
        ),
        ("can't open 'a.txt'", "can't open <str>"),
        ("unterminated \"quote", "unterminated \"quote"),
        ("std::io::Error: broken pipe", "std::io::Error: broken pipe"),
        ("", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(normalize_message(input), expected, "input {input:?}");
    }
}

#[test]
fn normalizer_takes_any_text() {
    for text in [
        "'",
        "\"",
        "`",
        "/",
        "::",
        ":::",
        "@",
        "a@",
        "@b.c",
        "0x",
        "-",
        "1.",
        ".1",
        "1..2",
        "::ffff:1.2.3",
        "1.2.3.4.5",
        "999.1.1.1",
        "é 12 ü",
        "\\'x'",
        "'''",
        "a/b/c/",
        "////",
    ] {
        let once = normalize_message(text);
        // Placeholders are left as they are: normalizing twice changes nothing.
        assert_eq!(normalize_message(&once), once, "input {text:?}");
    }
    assert_eq!(normalize_message("1.2.3.4.5"), "<num>.<num>.<num>");
    assert_eq!(normalize_message("999.1.1.1"), "<num>.<num>");
}

fn error(service: &str, ty: Option<&str>, message: &str, span: Option<&str>) -> ErrorRecord {
    let mut error = ErrorRecord::new(message, 1)
        .with_trace_id(TraceId(1))
        .with_span_id(SpanId(2))
        .with_service(service)
        .with_target("t")
        .with_span_stack(
            span.map(|name| SpanFrame::new(SpanId(2), name).with_target("t"))
                .into_iter()
                .collect(),
        );
    error.error_type = ty.map(Into::into);
    error
}

#[test]
fn fingerprint_is_stable_across_runs_and_machines() {
    // A fixed value (FNV-1a of the four parts, each followed by 0xff): a
    // change here regroups every stored issue.
    let e = error(
        "payment-service",
        Some("CardError"),
        "card 4242 declined",
        Some("charge"),
    );
    assert_eq!(fingerprint(&e).as_str().len(), 16);
    assert!(fingerprint(&e)
        .as_str()
        .chars()
        .all(|c| c.is_ascii_hexdigit()));
    let known = fingerprint(&e);
    assert_eq!(known.to_string(), "ebcfcff16afb7cdf");
}

#[test]
fn service_type_and_span_separate_issues() {
    let base = error("payment", Some("CardError"), "declined", Some("charge"));
    let fp = fingerprint(&base);
    assert_ne!(
        fp,
        fingerprint(&error(
            "billing",
            Some("CardError"),
            "declined",
            Some("charge")
        ))
    );
    assert_ne!(
        fp,
        fingerprint(&error(
            "payment",
            Some("IoError"),
            "declined",
            Some("charge")
        ))
    );
    assert_ne!(
        fp,
        fingerprint(&error("payment", None, "declined", Some("charge")))
    );
    assert_ne!(
        fp,
        fingerprint(&error(
            "payment",
            Some("CardError"),
            "declined",
            Some("refund")
        ))
    );
    assert_ne!(
        fp,
        fingerprint(&error("payment", Some("CardError"), "declined", None))
    );
    // Parts do not run into each other.
    assert_ne!(
        fingerprint(&error("ab", None, "c", None)),
        fingerprint(&error("a", None, "bc", None))
    );
    // Variable parts of span names do not split issues.
    assert_eq!(
        fingerprint(&error("api", None, "x", Some("GET /orders/1"))),
        fingerprint(&error("api", None, "x", Some("GET /orders/2")))
    );
    // Events and times do not matter.
    let mut later = base.clone();
    later.time_ns = 99;
    later.span_id = Some(SpanId(77));
    later.causes = vec!["other cause".into()];
    assert_eq!(fp, fingerprint(&later));
}

#[test]
fn explicit_fingerprint_overrides() {
    let mut a = error("payment", Some("CardError"), "declined", Some("charge"));
    let mut b = error("inventory", None, "something else", None);
    assert_ne!(fingerprint(&a), fingerprint(&b));
    a.fingerprint = Some("db-down".into());
    b.fingerprint = Some("db-down".into());
    assert_eq!(fingerprint(&a), fingerprint(&b));

    // The field form counts too.
    let mut c = error("api", None, "whatever", None);
    c.fields
        .push(Attribute::new("omegi.fingerprint", "db-down"));
    assert_eq!(fingerprint(&c), fingerprint(&a));

    // A blank key is no key.
    let mut d = error("api", None, "whatever", None);
    d.fingerprint = Some("  ".into());
    assert_eq!(
        fingerprint(&d),
        fingerprint(&error("api", None, "whatever", None))
    );

    // An explicit key never collides with a computed one of the same text.
    let plain = error("", None, "db-down", None);
    assert_ne!(fingerprint(&plain), fingerprint(&a));
}
