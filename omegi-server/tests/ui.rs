//! The web UI in a real browser: headless Chromium (Debian's `chromium`)
//! driven over the DevTools protocol against a server started in-process.
//!
//! The test seeds a three-service trace with an exception through
//! `/v1/traces`, then signs in, reads the dashboard, filters the issues,
//! opens the issue and its flow, writes a note from the error, finds it by
//! search and sees it in the graph. A screenshot of every screen goes to
//! `<target>/ui-screenshots/`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use headless_chrome::protocol::cdp::Page;
use headless_chrome::{Browser, LaunchOptions, Tab};
use omegi_server::server::{ServeConfig, Server};
use omegi_server::settle::SettleConfig;
use serde_json::{json, Value};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Where Debian installs Chromium, then other usual places.
const CHROMIUM_PATHS: &[&str] = &[
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/lib/chromium/chromium",
];

/// The longest any one wait in the browser may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("OMEGI_CHROMIUM") {
        return PathBuf::from(path);
    }
    CHROMIUM_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "the UI tests need Chromium, and none was found at {CHROMIUM_PATHS:?}: \
                 `cargo xtask test` installs it (or point OMEGI_CHROMIUM at a Chromium binary)"
            )
        })
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("ui-screenshots")
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn resource_spans(service: &str, spans: Vec<Value>) -> Value {
    json!({
        "resource": {"attributes": [attr("service.name", service)]},
        "scopeSpans": [{"scope": {"name": format!("{service}::http")}, "spans": spans}]
    })
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    start: u64,
    end: u64,
    events: Vec<Value>,
    error: Option<&str>,
) -> Value {
    let mut s = json!({
        "traceId": trace, "spanId": id, "parentSpanId": parent, "name": name,
        "kind": 2, "startTimeUnixNano": start.to_string(), "endTimeUnixNano": end.to_string(),
        "events": events,
    });
    if let Some(message) = error {
        s["status"] = json!({"code": 2, "message": message});
    }
    s
}

fn log(time: u64, message: &str, level: &str) -> Value {
    json!({"timeUnixNano": time.to_string(), "name": message,
           "attributes": [attr("level", level), attr("order.id", "A-1042")]})
}

/// A checkout through three services that fails in payment with a
/// `PaymentError` exception.
fn checkout_trace(trace: &str, t0: u64) -> Value {
    let ms = 1_000_000;
    json!({"resourceSpans": [
        resource_spans("user-service", vec![span(
            trace, "a000000000000001", "", "POST /checkout", t0, t0 + 48 * ms,
            vec![log(t0 + ms, "checkout started", "INFO")], Some("upstream failed"),
        )]),
        resource_spans("inventory-service", vec![span(
            trace, "b000000000000002", "a000000000000001", "reserve items", t0 + 4 * ms, t0 + 40 * ms,
            vec![log(t0 + 6 * ms, "reserved 3 items", "INFO")], Some("payment failed"),
        )]),
        resource_spans("payment-service", vec![span(
            trace, "c000000000000003", "b000000000000002", "charge card", t0 + 10 * ms, t0 + 31 * ms,
            vec![
                log(t0 + 12 * ms, "calling card gateway", "INFO"),
                json!({"timeUnixNano": (t0 + 30 * ms).to_string(), "name": "exception", "attributes": [
                    attr("exception.type", "PaymentError"),
                    attr("exception.message", "card declined by issuer"),
                    attr("exception.stacktrace", "payment::charge at src/charge.rs:88"),
                ]}),
            ],
            Some("card declined by issuer"),
        )]),
    ]})
}

/// One failed span in one service: a second, unrelated issue.
fn timeout_trace(trace: &str, t0: u64) -> Value {
    json!({"resourceSpans": [resource_spans("inventory-service", vec![span(
        trace, "d000000000000004", "", "GET /stock", t0, t0 + 5_000_000_000,
        vec![json!({"timeUnixNano": (t0 + 4_900_000_000u64).to_string(), "name": "exception", "attributes": [
            attr("exception.type", "TimeoutError"),
            attr("exception.message", "warehouse database timed out after 5s"),
        ]})],
        Some("warehouse database timed out after 5s"),
    )])]})
}

async fn post_json(url: &str, token: &str, body: &Value) -> Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Evaluates `expression` (which yields a JSON-able value) in the page.
fn eval(tab: &Tab, expression: &str) -> Result<Value> {
    let wrapped = format!("JSON.stringify((() => {{ return ({expression}); }})() ?? null)");
    let result = tab.evaluate(&wrapped, false)?;
    match result.value {
        Some(Value::String(text)) => Ok(serde_json::from_str(&text)?),
        other => Err(format!(
            "{expression}: no value ({other:?}, {:?})",
            result.description
        )
        .into()),
    }
}

/// Waits until `expression` is truthy in the page.
fn wait_for(tab: &Tab, what: &str, expression: &str) -> Result {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let value = match eval(tab, &format!("!!({expression})")) {
            Ok(value) => value,
            Err(e) => {
                eprintln!("{e}");
                Value::Bool(false)
            }
        };
        if value == Value::Bool(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let body = eval(tab, "document.body.innerText.slice(0, 2000)").unwrap_or_default();
            return Err(format!(
                "timed out waiting for {what} ({expression}) at {}\npage text: {body}",
                tab.get_url()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text_of(tab: &Tab, selector: &str) -> Result<String> {
    let value = eval(
        tab,
        &format!(
            "(document.querySelector({}) || {{innerText: ''}}).innerText",
            serde_json::to_string(selector)?
        ),
    )?;
    Ok(value.as_str().unwrap_or_default().to_owned())
}

/// Sets the size of the page's viewport.
fn viewport(tab: &Tab, width: u32, height: u32, mobile: bool) -> Result {
    tab.call_method(
        headless_chrome::protocol::cdp::Emulation::SetDeviceMetricsOverride {
            width,
            height,
            device_scale_factor: 1.0,
            mobile,
            scale: None,
            screen_width: None,
            screen_height: None,
            position_x: None,
            position_y: None,
            dont_set_visible_size: None,
            screen_orientation: None,
            viewport: None,
            display_feature: None,
            device_posture: None,
        },
    )?;
    Ok(())
}

/// Opens a screen by its hash route.
fn go(tab: &Tab, hash: &str) -> Result {
    eval(
        tab,
        &format!("location.hash = {}", serde_json::to_string(hash)?),
    )?;
    Ok(())
}

/// Saves a PNG of the whole page (up to 2400 px tall).
fn screenshot(tab: &Tab, dir: &Path, name: &str) -> Result<PathBuf> {
    // Let the last frame paint.
    std::thread::sleep(Duration::from_millis(300));
    let size = eval(
        tab,
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]",
    )?;
    let width = size[0].as_f64().unwrap_or(1280.0).max(1.0);
    let height = size[1].as_f64().unwrap_or(800.0).clamp(1.0, 2400.0);
    let data = tab
        .call_method(Page::CaptureScreenshot {
            format: Some(Page::CaptureScreenshotFormatOption::Png),
            quality: None,
            clip: Some(Page::Viewport {
                x: 0.0,
                y: 0.0,
                width,
                height,
                scale: 1.0,
            }),
            from_surface: Some(true),
            capture_beyond_viewport: Some(true),
            optimize_for_speed: None,
        })?
        .data;
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD.decode(data)?;
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png)?;
    println!("screenshot: {}", path.display());
    Ok(path)
}

/// Saves a PNG of what the window shows, without resizing it.
fn screenshot_viewport(tab: &Tab, dir: &Path, name: &str) -> Result<PathBuf> {
    std::thread::sleep(Duration::from_millis(300));
    let data = tab
        .call_method(Page::CaptureScreenshot {
            format: Some(Page::CaptureScreenshotFormatOption::Png),
            quality: None,
            clip: None,
            from_surface: Some(true),
            capture_beyond_viewport: Some(false),
            optimize_for_speed: None,
        })?
        .data;
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD.decode(data)?;
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png)?;
    println!("screenshot: {}", path.display());
    Ok(path)
}

/// Fills the open editor (visibility as the editor chose it unless
/// `visibility`), waits until the server's live preview satisfies
/// `preview`, saves, and answers the saved note's id.
fn save_from_editor(
    tab: &Tab,
    title: &str,
    body: &str,
    visibility: Option<&str>,
    preview: &str,
) -> Result<String> {
    tab.wait_for_element("#note-title")?.click()?;
    tab.type_str(title)?;
    eval(
        tab,
        &format!(
            "(() => {{ const b = document.querySelector('#note-body'); b.value = {}; b.dispatchEvent(new Event('input')); return true; }})()",
            serde_json::to_string(body)?
        ),
    )?;
    if let Some(visibility) = visibility {
        eval(
            tab,
            &format!(
                "document.querySelector('#note-visibility').value = {}",
                serde_json::to_string(visibility)?
            ),
        )?;
    }
    wait_for(tab, "the live preview from the server", preview)?;
    tab.wait_for_element("#save-note")?.click()?;
    wait_for(
        tab,
        "the saved note",
        &format!(
            "location.hash.startsWith('#/note/') && document.querySelector('h1') && document.querySelector('h1').innerText === {}",
            serde_json::to_string(title)?
        ),
    )?;
    let hash = eval(tab, "location.hash")?;
    let id = hash
        .as_str()
        .and_then(|h| h.strip_prefix("#/note/"))
        .ok_or("a note's route")?;
    Ok(id.to_owned())
}

/// Starts headless Chromium with its profile in `profile`.
fn launch(chromium: PathBuf, profile: &Path) -> Result<Browser> {
    let args: Vec<&OsStr> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    Ok(Browser::new(
        LaunchOptions::default_builder()
            .path(Some(chromium))
            .headless(true)
            .sandbox(false)
            .window_size(Some((1280, 800)))
            .user_data_dir(Some(profile.to_path_buf()))
            .args(args)
            .idle_browser_timeout(Duration::from_secs(60))
            .build()?,
    )?)
}

/// Opens the UI at `base` in a 1280×800 viewport and signs in with `token`.
fn sign_in(tab: &Tab, base: &str, token: &str) -> Result {
    tab.set_default_timeout(STEP_TIMEOUT);
    viewport(tab, 1280, 800, false)?;
    tab.navigate_to(&format!("{base}/"))?
        .wait_until_navigated()?;
    wait_for(
        tab,
        "the sign-in page",
        "location.hash === '#/signin' && document.querySelector('#token')",
    )?;
    tab.wait_for_element("#token")?.click()?;
    tab.type_str(token)?.press_key("Enter")?;
    Ok(())
}

#[test]
fn every_screen_works_in_a_browser() -> Result {
    let started = Instant::now();
    let chromium = chromium();
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let data = tempfile::tempdir()?;
    let server = runtime.block_on(Server::start(
        ServeConfig::new(data.path(), "127.0.0.1:0".parse()?)
            .stream_recheck(Duration::from_millis(200)),
    ))?;
    let base = server.url();
    let credentials = server
        .created_credentials()
        .ok_or("a first start creates credentials")?;
    let user = credentials.user.clone().ok_or("an admin user")?;
    let project = credentials.project.clone().ok_or("a default project")?;

    // Seed: the failing checkout, and a second issue.
    let t0 = now_ns() - 20 * 60 * 1_000_000_000;
    runtime.block_on(async {
        for body in [
            checkout_trace("5b8efff798038103d269b633813fc60c", t0),
            checkout_trace("5b8efff798038103d269b633813fc60d", t0 + 60_000_000_000),
            timeout_trace("6c8efff798038103d269b633813fc60c", t0 + 120_000_000_000),
        ] {
            let (status, answer) =
                post_json(&format!("{base}/v1/traces"), &project.token, &body).await?;
            assert_eq!(status, 200, "ingest: {answer}");
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;

    // Notes written through the API; the one written in the browser links
    // to the second. The runbook has an alias; the incidents note links by
    // it, has a Korean tag and an indented code block; the review mentions
    // "card declines" without a link. A second user, lee, reads along.
    let (lee, runbook_id) = runtime.block_on(async {
        let seed = [
            ("Payment runbook", "How to handle [[Card declines]] and gateway outages.\n\nSee the #payments dashboard.", vec!["payments", "runbook"]),
            ("Card declines", "Declines come from the issuer; retrying does not help.\n\n![[Payment runbook]]", vec!["payments"]),
            ("Checkout incidents", "Declines are tagged #결제 and follow the [[runbook]].\n\n    [[Card declines]] #not-a-tag in code\n", vec![]),
            ("Weekly review", "We read the card declines note twice.", vec![]),
        ];
        let mut runbook_id = String::new();
        for (title, body, tags) in seed {
            let mut note = json!({"title": title, "body": body, "tags": tags, "visibility": "public"});
            if title == "Payment runbook" {
                note["aliases"] = json!(["runbook"]);
            }
            let (status, answer) =
                post_json(&format!("{base}/api/notes"), &user.token, &note).await?;
            assert!(status == 200 || status == 201, "create note: {status} {answer}");
            if title == "Payment runbook" {
                runbook_id = answer["id"].as_str().ok_or("an id")?.to_owned();
            }
        }
        let (status, created) = post_json(
            &format!("{base}/api/users"),
            &user.token,
            &json!({"login": "lee", "projects": ["default"]}),
        )
        .await?;
        assert_eq!(status, 201, "{created}");
        let lee = created["token"].as_str().ok_or("lee's token")?.to_owned();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((lee, runbook_id))
    })?;

    let profile = tempfile::tempdir()?;
    let browser = launch(chromium, profile.path())?;
    let tab = browser.new_tab()?;
    sign_in(&tab, &base, &user.token)?;

    // Dashboard.
    wait_for(
        &tab,
        "the dashboard",
        "document.querySelector('.project .chart rect.bar:not(.empty)')",
    )?;
    let dashboard = text_of(&tab, "main")?;
    assert!(
        dashboard.contains("PaymentError: card declined by issuer"),
        "{dashboard}"
    );
    assert!(dashboard.contains("TimeoutError"), "{dashboard}");
    // Services where errors happened are marked; the caller whose span only
    // failed because a callee did is not.
    for (service, failing) in [
        ("user-service", false),
        ("inventory-service", true),
        ("payment-service", true),
    ] {
        let marked = eval(
            &tab,
            &format!("document.querySelector('.deps .svc[data-service=\"{service}\"]').classList.contains('failing')"),
        )?;
        assert_eq!(
            marked,
            Value::Bool(failing),
            "{service} marked failing: {failing}"
        );
    }
    let edges = eval(&tab, "document.querySelectorAll('.deps line.edge').length")?;
    assert_eq!(edges, json!(2), "user → inventory → payment");
    assert_eq!(text_of(&tab, "#whoami")?, user.name);
    screenshot(&tab, &shots, "dashboard")?;

    // Issues, filtered by service and sorted by count; a live alert while
    // away from the dashboard shows a badge.
    go(&tab, "#/issues?service=payment-service&sort=count")?;
    wait_for(
        &tab,
        "the filtered issues",
        "document.querySelectorAll('table.issues tbody tr').length === 1",
    )?;
    assert!(text_of(&tab, "table.issues")?.contains("PaymentError"));
    go(&tab, "#/issues?status=all")?;
    wait_for(
        &tab,
        "every issue",
        "document.querySelectorAll('table.issues tbody tr').length === 2",
    )?;
    wait_for(
        &tab,
        "the alert stream",
        "document.body.dataset.alerts === 'open'",
    )?;
    runtime.block_on(async {
        let (status, answer) = post_json(
            &format!("{base}/v1/traces"),
            &project.token,
            &timeout_trace("7c8efff798038103d269b633813fc60c", now_ns())
                .to_string()
                .replace("TimeoutError", "StockError")
                .parse::<Value>()?,
        )
        .await?;
        assert_eq!(status, 200, "{answer}");
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    wait_for(&tab, "the alert badge", "!document.querySelector('#alert-badge').hidden && document.querySelector('#alert-badge').innerText === '1'")?;
    wait_for(
        &tab,
        "the alert toast",
        "document.querySelector('#toasts').innerText.includes('StockError')",
    )?;
    // Ignore the new issue from the list.
    go(&tab, "#/issues?status=all&sort=count")?;
    wait_for(
        &tab,
        "three issues",
        "document.querySelectorAll('table.issues tbody tr').length === 3",
    )?;
    eval(&tab, "[...document.querySelectorAll('table.issues tbody tr')].find(r => r.innerText.includes('StockError')).querySelectorAll('button')[1].click()")?;
    wait_for(&tab, "the ignored issue", "[...document.querySelectorAll('table.issues tbody tr')].some(r => r.innerText.includes('StockError') && r.innerText.includes('ignored'))")?;
    screenshot(&tab, &shots, "issues")?;

    // The issue and its flow.
    eval(&tab, "[...document.querySelectorAll('table.issues a')].find(a => a.innerText.includes('PaymentError')).click()")?;
    wait_for(
        &tab,
        "the waterfall",
        "document.querySelectorAll('.waterfall .hop').length === 3",
    )?;
    let hops = eval(
        &tab,
        "[...document.querySelectorAll('.waterfall .hop .hop-service')].map(e => e.innerText)",
    )?;
    assert_eq!(
        hops,
        json!(["user-service", "inventory-service", "payment-service"])
    );
    let waterfall = text_of(&tab, ".waterfall")?;
    assert!(waterfall.contains("charge card"), "{waterfall}");
    assert!(
        waterfall.contains("calling card gateway"),
        "hop logs: {waterfall}"
    );
    assert!(text_of(&tab, "pre.rawlog")?.contains("reserved 3 items"));
    assert!(text_of(&tab, "pre.summary")?.contains("card declined by issuer"));
    assert!(text_of(&tab, "ul.occurrences")?.contains("payment-service"));
    screenshot(&tab, &shots, "issue")?;

    // Write a note from the error: the editor comes pre-filled.
    eval(&tab, "document.querySelector('#write-note').click()")?;
    wait_for(&tab, "the note editor", "document.querySelector('#note-body') && document.querySelector('#note-body').value.includes('## Flow')")?;
    let title = eval(&tab, "document.querySelector('#note-title').value")?;
    assert_eq!(title, json!("PaymentError: card declined by issuer"));
    let body = eval(&tab, "document.querySelector('#note-body').value")?;
    let body = body.as_str().unwrap_or_default();
    assert!(
        body.contains("payment-service"),
        "flow summary in the note: {body}"
    );
    assert!(body.contains("#/issue/"), "link to the issue: {body}");
    // Type a `[[` link: the completion offers note titles.
    tab.wait_for_element("#note-body")?.click()?;
    eval(&tab, "(() => { const b = document.querySelector('#note-body'); b.selectionStart = b.selectionEnd = b.value.length; return true; })()")?;
    tab.type_str("Root cause: the issuer refused the card. Quokka ")?;
    tab.type_str("[[Card")?;
    wait_for(&tab, "the [[ completion", "!document.querySelector('.complete').hidden && document.querySelector('.complete').innerText.includes('Card declines')")?;
    tab.press_key("Enter")?;
    wait_for(
        &tab,
        "the completed link",
        "document.querySelector('#note-body').value.includes('[[Card declines]]')",
    )?;
    wait_for(
        &tab,
        "the live preview",
        "document.querySelector('#note-preview').innerText.includes('Quokka')",
    )?;
    screenshot(&tab, &shots, "editor")?;

    tab.wait_for_element("#save-note")?.click()?;
    wait_for(
        &tab,
        "the saved note",
        "location.hash.startsWith('#/note/') && document.querySelector('.note-body')",
    )?;
    assert!(text_of(&tab, ".note-body")?.contains("Quokka"));
    assert!(text_of(&tab, ".note-body a.wikilink")?.contains("Card declines"));

    // The linked note lists it among its backlinks; its embed renders.
    eval(
        &tab,
        "document.querySelector('.note-body a.wikilink').click()",
    )?;
    wait_for(&tab, "the linked note", "document.querySelector('h1') && document.querySelector('h1').innerText === 'Card declines' && document.querySelectorAll('.backlinks li').length === 2")?;
    let backlinks = text_of(&tab, ".backlinks")?;
    assert!(
        backlinks.contains("Payment runbook") && backlinks.contains("PaymentError"),
        "{backlinks}"
    );
    assert!(text_of(&tab, ".note-body .embed")?.contains("gateway outages"));
    // Its unlinked mentions come from the API: the review names it in
    // prose; the incidents note has its name only in code.
    let mentions = text_of(&tab, ".mentions")?;
    assert!(mentions.contains("Weekly review"), "{mentions}");
    assert!(!mentions.contains("Checkout incidents"), "{mentions}");
    screenshot(&tab, &shots, "note")?;

    // The server's rendering: a Korean tag is a tag, a link by an alias
    // resolves, an indented code block stays code.
    go(&tab, "#/notes")?;
    wait_for(
        &tab,
        "the notes list",
        "document.querySelectorAll('.note-list li').length === 5",
    )?;
    eval(&tab, "[...document.querySelectorAll('.note-list a')].find(a => a.innerText === 'Checkout incidents').click()")?;
    wait_for(
        &tab,
        "the incidents note",
        "document.querySelector('h1') && document.querySelector('h1').innerText === 'Checkout incidents' && document.querySelector('.note-body')",
    )?;
    let tags = eval(
        &tab,
        "[...document.querySelectorAll('.note-body a.tag')].map(a => a.innerText)",
    )?;
    assert_eq!(tags, json!(["#결제"]));
    let links = eval(
        &tab,
        "[...document.querySelectorAll('.note-body a.wikilink')].map(a => [a.innerText, a.className, a.dataset.note || ''])",
    )?;
    assert_eq!(links, json!([["runbook", "wikilink", runbook_id]]));
    let code = text_of(&tab, ".note-body pre code")?;
    assert!(code.contains("[[Card declines]] #not-a-tag"), "{code}");
    assert_eq!(
        eval(&tab, "document.querySelectorAll('.note-body pre a').length")?,
        json!(0)
    );
    screenshot(&tab, &shots, "note-rendered")?;
    // Following the alias link opens the runbook.
    eval(
        &tab,
        "document.querySelector('.note-body a.wikilink').click()",
    )?;
    wait_for(&tab, "the runbook", "document.querySelector('h1') && document.querySelector('h1').innerText === 'Payment runbook'")?;

    // A new note from the editor is private unless made public; the live
    // preview is the server's rendering of what is typed.
    go(&tab, "#/notes/new")?;
    wait_for(&tab, "an empty editor", "document.querySelector('#note-body') && document.querySelector('#note-title').value === ''")?;
    assert_eq!(
        eval(&tab, "document.querySelector('#note-visibility').value")?,
        json!("private")
    );
    let draft_id = save_from_editor(
        &tab,
        "Draft 결제",
        "Half done: see [[runbook]] #결제/카드",
        None,
        "document.querySelector('#note-preview a.tag') && document.querySelector('#note-preview a.tag').innerText === '#결제/카드' && document.querySelector('#note-preview a.wikilink[data-note]')",
    )?;
    go(&tab, "#/notes/new")?;
    wait_for(&tab, "an empty editor", "document.querySelector('#note-body') && document.querySelector('#note-title').value === ''")?;
    let shared_id = save_from_editor(
        &tab,
        "Shared fix",
        "Ask the issuer. Draft: [[Draft 결제]].",
        Some("public"),
        "document.querySelector('#note-preview a.wikilink') && document.querySelector('#note-preview a.wikilink').innerText === 'Draft 결제' && !document.querySelector('#note-preview a.unresolved')",
    )?;
    // Pasting an image and dropping a file into the editor attach them to
    // the note and embed them where the cursor is; the saved note shows the
    // image, fetched with the reader's token.
    go(&tab, &format!("#/note/{shared_id}/edit"))?;
    wait_for(&tab, "the editor of the shared note", "document.querySelector('#note-body') && document.querySelector('#note-body').value.startsWith('Ask the issuer')")?;
    eval(
        &tab,
        r#"(() => {
            const b = document.querySelector('#note-body');
            b.selectionStart = b.selectionEnd = b.value.length;
            // A 1x1 PNG, as a screenshot tool puts on the clipboard.
            const png = Uint8Array.from(atob('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=='), c => c.charCodeAt(0));
            const pasted = new DataTransfer();
            pasted.items.add(new File([png], 'image.png', { type: 'image/png' }));
            b.dispatchEvent(new ClipboardEvent('paste', { clipboardData: pasted, bubbles: true, cancelable: true }));
            return true;
        })()"#,
    )?;
    wait_for(&tab, "the pasted image embedded", "/!\\[\\[Pasted image \\d{14}\\.png\\]\\]$/.test(document.querySelector('#note-body').value)")?;
    eval(
        &tab,
        r#"(() => {
            const b = document.querySelector('#note-body');
            b.selectionStart = b.selectionEnd = b.value.length;
            const dropped = new DataTransfer();
            dropped.items.add(new File(['GET /checkout 502\n'], 'gateway.log', { type: 'text/plain' }));
            b.dispatchEvent(new DragEvent('drop', { dataTransfer: dropped, bubbles: true, cancelable: true }));
            return true;
        })()"#,
    )?;
    wait_for(
        &tab,
        "the dropped file embedded",
        "document.querySelector('#note-body').value.endsWith('![[gateway.log]]')",
    )?;
    tab.wait_for_element("#save-note")?.click()?;
    wait_for(
        &tab,
        "the saved note with its image shown",
        "location.hash.startsWith('#/note/') && document.querySelector('.note-body img.attachment') && document.querySelector('.note-body img.attachment').src.startsWith('blob:') && document.querySelector('.note-body img.attachment').naturalWidth === 1",
    )?;
    let attached = runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(format!("{base}/api/notes/{shared_id}/attachments"))
            .bearer_auth(&user.token)
            .send()
            .await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response.json::<Value>().await?)
    })?;
    let mut names: Vec<&str> = attached
        .as_array()
        .ok_or("a list of attachments")?
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{attached}");
    assert!(
        names[0].starts_with("Pasted image ") && names[0].ends_with(".png"),
        "{attached}"
    );
    assert_eq!(names[1], "gateway.log", "{attached}");

    let (draft, shared) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let get = |id: String| {
            let client = client.clone();
            let base = base.clone();
            let lee = lee.clone();
            async move {
                let response = client
                    .get(format!("{base}/api/notes/{id}"))
                    .bearer_auth(&lee)
                    .send()
                    .await?;
                let status = response.status().as_u16();
                let note: Value = response.json().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, note))
            }
        };
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((
            get(draft_id.clone()).await?,
            get(shared_id.clone()).await?,
        ))
    })?;
    assert_eq!(draft.0, 404, "the draft is private: {}", draft.1);
    assert_eq!(shared.0, 200, "lee reads the shared note: {}", shared.1);
    assert_eq!(shared.1["visibility"], "public");

    go(&tab, "#/notes")?;
    wait_for(
        &tab,
        "the notes list",
        "document.querySelectorAll('.note-list li').length === 7",
    )?;
    screenshot(&tab, &shots, "notes")?;

    // Search finds it, with the term highlighted.
    go(&tab, "#/search?q=quokka")?;
    wait_for(
        &tab,
        "the search result",
        "document.querySelectorAll('ol.results li').length >= 1",
    )?;
    let result = text_of(&tab, "ol.results li")?;
    assert!(
        result.contains("PaymentError: card declined by issuer"),
        "{result}"
    );
    let marked = eval(
        &tab,
        "[...document.querySelectorAll('ol.results mark')].map(m => m.innerText.toLowerCase())",
    )?;
    assert!(
        marked
            .as_array()
            .is_some_and(|m| m.contains(&json!("quokka"))),
        "{marked}"
    );
    screenshot(&tab, &shots, "search")?;

    // The graph shows the new note, linked to its issue.
    go(&tab, "#/graph")?;
    wait_for(
        &tab,
        "the graph",
        "window.omegiGraph && document.querySelector('#graph-canvas')",
    )?;
    let labels = eval(
        &tab,
        "window.omegiGraph.nodes().map(n => n.kind + ':' + n.label)",
    )?;
    let labels: Vec<String> = serde_json::from_value(labels)?;
    assert!(
        labels.contains(&"note:PaymentError: card declined by issuer".to_owned()),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"note:Card declines".to_owned()),
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l.starts_with("issue:")), "{labels:?}");
    std::thread::sleep(Duration::from_millis(700));
    screenshot(&tab, &shots, "graph")?;
    // Switching issue nodes off removes them.
    tab.wait_for_element("#graph-issues")?.click()?;
    wait_for(&tab, "the graph without issues", "location.hash.includes('issues=0') && window.omegiGraph && window.omegiGraph.nodes().every(n => n.kind !== 'issue')")?;

    // A narrow screen still shows the issue.
    viewport(&tab, 390, 844, true)?;
    go(&tab, "#/issues?status=all")?;
    wait_for(
        &tab,
        "the issues on a narrow screen",
        "document.querySelectorAll('table.issues tbody tr').length === 3",
    )?;
    screenshot(&tab, &shots, "issues-narrow")?;

    // Revoking the token the page uses ends its alert stream, and the page
    // signs out.
    wait_for(
        &tab,
        "the alert stream",
        "document.body.dataset.alerts === 'open'",
    )?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let tokens: Value = client
            .get(format!("{base}/api/tokens"))
            .bearer_auth(&user.token)
            .send()
            .await?
            .json()
            .await?;
        let id = tokens[0]["id"].as_str().ok_or("a token id")?.to_owned();
        let status = client
            .delete(format!("{base}/api/tokens/{id}"))
            .bearer_auth(&user.token)
            .send()
            .await?
            .status();
        assert_eq!(status, 200);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    wait_for(
        &tab,
        "the sign-in page after the token was revoked",
        "location.hash.startsWith('#/signin') && document.body.innerText.includes('Your token was revoked')",
    )?;

    // lee signs in: the shared note shows, its link to the admin's
    // private draft is unresolved, and the draft itself is not there.
    tab.wait_for_element("#token")?.click()?;
    tab.type_str(&lee)?.press_key("Enter")?;
    wait_for(&tab, "lee's dashboard", "document.querySelector('#whoami') && document.querySelector('#whoami').innerText === 'lee'")?;
    go(&tab, &format!("#/note/{shared_id}"))?;
    wait_for(&tab, "the shared note as lee", "document.querySelector('h1') && document.querySelector('h1').innerText === 'Shared fix' && document.querySelector('.note-body a.wikilink')")?;
    let link = eval(&tab, "[document.querySelector('.note-body a.wikilink').className, document.querySelector('.note-body a.wikilink').dataset.note || '']")?;
    assert_eq!(link, json!(["wikilink unresolved", ""]));
    assert!(!text_of(&tab, ".note-body")?.contains("Half done"));
    screenshot(&tab, &shots, "note-as-another-user")?;
    go(&tab, &format!("#/note/{draft_id}"))?;
    wait_for(
        &tab,
        "no draft for lee",
        "document.querySelector('.error-box')",
    )?;
    assert!(!text_of(&tab, "main")?.contains("Half done"));

    runtime.block_on(server.shutdown())?;
    println!("ui test took {:?}", started.elapsed());
    Ok(())
}

#[test]
fn the_page_and_its_assets_are_served_from_the_binary() -> Result {
    let runtime = tokio::runtime::Runtime::new()?;
    let data = tempfile::tempdir()?;
    runtime.block_on(async {
        let server = Server::start(ServeConfig::new(data.path(), "127.0.0.1:0".parse()?)).await?;
        let base = server.url();
        let client = reqwest::Client::new();
        let page = client.get(format!("{base}/")).send().await?;
        assert_eq!(page.status(), 200);
        let headers = page.headers().clone();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let csp = headers["content-security-policy"].to_str()?;
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let html = page.text().await?;
        for asset in ["/assets/app.js", "/assets/graph.js", "/assets/app.css"] {
            assert!(html.contains(asset), "{asset} is linked from the page");
            let response = client.get(format!("{base}{asset}")).send().await?;
            assert_eq!(response.status(), 200, "{asset}");
            let kind = response.headers()["content-type"].to_str()?.to_owned();
            assert!(
                kind.starts_with(if asset.ends_with(".css") {
                    "text/css"
                } else {
                    "text/javascript"
                }),
                "{asset}: {kind}"
            );
            assert!(!response.text().await?.is_empty());
        }
        for missing in ["/assets/nope.js", "/assets/markdown.js"] {
            let missing = client.get(format!("{base}{missing}")).send().await?;
            assert_eq!(missing.status(), 404);
        }
        // The API keeps its own answers.
        let api = client.get(format!("{base}/api/nope")).send().await?;
        assert_eq!(api.status(), 404);
        assert!(api.text().await?.contains("\"error\""));
        // The page itself holds no data: no token needed for it, but one for the API.
        let me = client.get(format!("{base}/api/me")).send().await?;
        assert_eq!(me.status(), 401);
        server.shutdown().await?;
        Ok(())
    })
}

/// Answers the fingerprint of the only issue whose title contains `title`.
async fn fingerprint_of(base: &str, token: &str, title: &str) -> Result<String> {
    let issues: Value = reqwest::Client::new()
        .get(format!("{base}/api/issues?status=all"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let issue = issues
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|i| i["title"].as_str().is_some_and(|t| t.contains(title)))
        })
        .ok_or_else(|| format!("no issue {title} in {issues}"))?;
    Ok(issue["fingerprint"]
        .as_str()
        .ok_or("a fingerprint")?
        .to_owned())
}

/// An alert toast brings the note written last time, and for an issue
/// without one, its "write one" link opens the issue's note editor,
/// prefilled as the issue page's button does.
#[test]
fn an_alert_toast_brings_the_note_or_starts_one() -> Result {
    let chromium = chromium();
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let data = tempfile::tempdir()?;
    // Requests settle on arrival: the alerts come at once.
    let server = runtime.block_on(Server::start(
        ServeConfig::new(data.path(), "127.0.0.1:0".parse()?)
            .settle(SettleConfig::default().trace_wait(Duration::ZERO)),
    ))?;
    let base = server.url();
    let credentials = server
        .created_credentials()
        .ok_or("a first start creates credentials")?;
    let user = credentials.user.clone().ok_or("an admin user")?;
    let project = credentials.project.clone().ok_or("a default project")?;

    // The declined payment happened before: resolved, with a public note.
    let note_id = runtime.block_on(async {
        let (status, answer) = post_json(
            &format!("{base}/v1/traces"),
            &project.token,
            &checkout_trace("1b8efff798038103d269b633813fc60c", now_ns()),
        )
        .await?;
        assert_eq!(status, 200, "ingest: {answer}");
        let fp = fingerprint_of(&base, &user.token, "PaymentError").await?;
        let (status, answer) = post_json(
            &format!("{base}/api/issues/default/{fp}/resolve"),
            &user.token,
            &json!({}),
        )
        .await?;
        assert_eq!(status, 200, "resolve: {answer}");
        let (status, note) = post_json(
            &format!("{base}/api/notes"),
            &user.token,
            &json!({"title": "Declined cards", "visibility": "public",
                "body": "Ask for another card.", "issues": [fp]}),
        )
        .await?;
        assert_eq!(status, 201, "{note}");
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
            note["id"].as_str().ok_or("an id")?.to_owned(),
        )
    })?;

    let profile = tempfile::tempdir()?;
    let browser = launch(chromium, profile.path())?;
    let tab = browser.new_tab()?;
    sign_in(&tab, &base, &user.token)?;
    go(&tab, "#/issues?status=all")?;
    wait_for(
        &tab,
        "the alert stream",
        "document.body.dataset.alerts === 'open'",
    )?;

    // It regresses: the toast names the note and links it.
    let send = |body: Value| {
        runtime.block_on(async {
            let (status, answer) =
                post_json(&format!("{base}/v1/traces"), &project.token, &body).await?;
            assert_eq!(status, 200, "ingest: {answer}");
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
    };
    send(checkout_trace("2b8efff798038103d269b633813fc60c", now_ns()))?;
    wait_for(
        &tab,
        "the regression toast",
        "document.querySelector('.toast[data-alert=regressed] .toast-note-link')",
    )?;
    let regressed = text_of(&tab, ".toast[data-alert=regressed]")?;
    assert!(
        regressed.starts_with("Regressed: PaymentError: card declined by issuer"),
        "{regressed}"
    );
    assert!(
        regressed.contains("Solved before: Declined cards by admin"),
        "{regressed}"
    );
    let link = eval(
        &tab,
        "document.querySelector('.toast[data-alert=regressed] .toast-note-link').getAttribute('href')",
    )?;
    assert_eq!(link, json!(format!("#/note/{note_id}")));

    // A new issue has no note yet: its toast invites to write one.
    send(timeout_trace("3c8efff798038103d269b633813fc60c", now_ns()))?;
    wait_for(
        &tab,
        "the new issue's toast",
        "document.querySelector('.toast[data-alert=new_issue] .toast-write-note')",
    )?;
    let fresh = text_of(&tab, ".toast[data-alert=new_issue]")?;
    assert!(fresh.contains("No note yet — write one"), "{fresh}");
    screenshot(&tab, &shots, "alert-toasts")?;
    let timeout_fp = runtime.block_on(fingerprint_of(&base, &user.token, "TimeoutError"))?;
    tab.wait_for_element(".toast[data-alert=new_issue] .toast-write-note")?
        .click()?;
    wait_for(
        &tab,
        "the prefilled note editor",
        "document.querySelector('#note-body') && document.querySelector('#note-body').value.includes('## Error')",
    )?;
    let hash = eval(&tab, "location.hash")?;
    assert_eq!(
        hash,
        json!(format!("#/notes/new?issue=default%3A{timeout_fp}")),
        "the issue page's own Write note link"
    );
    let title = eval(&tab, "document.querySelector('#note-title').value")?;
    assert_eq!(
        title,
        json!("TimeoutError: warehouse database timed out after 5s")
    );
    let body = eval(&tab, "document.querySelector('#note-body').value")?;
    let body = body.as_str().unwrap_or_default();
    assert!(
        body.contains("TimeoutError: warehouse database timed out after 5s"),
        "{body}"
    );
    assert!(
        body.contains(&format!("#/issue/default/{timeout_fp}")),
        "{body}"
    );
    screenshot(&tab, &shots, "editor-from-alert")?;
    drop(tab);
    drop(browser);
    runtime.block_on(server.shutdown())?;
    Ok(())
}

/// The vault of the graph test: 300 notes in three folders (and the top
/// one), each tagged with one of 6 topics; about 1,100 links, a tenth of
/// them to 12 hub notes; 10 orphans that link nowhere and are linked by
/// nobody; a few links to notes that do not exist; a few notes embed an
/// image that lies beside them. Deterministic.
struct Vault {
    /// Title, folder, tag and the titles it links to, per note.
    notes: Vec<(String, &'static str, String, Vec<String>)>,
}

impl Vault {
    const NOTES: usize = 300;
    const ORPHANS: usize = 10;
    const HUBS: usize = 12;
    /// Every this many notes (from the third), one embeds a chart image.
    const CHART_EVERY: usize = 50;

    /// The image the `i`th note embeds, if any.
    fn chart(i: usize) -> Option<String> {
        (i % Self::CHART_EVERY == 3).then(|| format!("chart-{i}.png"))
    }

    fn generate() -> Self {
        let title = |i: usize| format!("Note {i:03}");
        // A linear congruential generator: the same vault every run.
        let mut seed: u64 = 0x5eed;
        let mut next = move |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        };
        let folders = ["", "Payments", "Infra/Databases", "Runbooks"];
        let linkable = Self::NOTES - Self::ORPHANS;
        let mut notes = Vec::new();
        for i in 0..Self::NOTES {
            let mut links: Vec<String> = Vec::new();
            if i < linkable {
                let count = 3 + usize::from(i % 3 != 0);
                while links.len() < count {
                    let target = if next(10) == 0 {
                        next(Self::HUBS)
                    } else {
                        next(linkable)
                    };
                    let target = title(target);
                    if target != title(i) && !links.contains(&target) {
                        links.push(target);
                    }
                }
                if i % 30 == 7 {
                    links.push(format!("Missing {i}"));
                }
            }
            notes.push((title(i), folders[i % 4], format!("topic{}", i % 6), links));
        }
        Vault { notes }
    }

    fn write(&self, dir: &Path) -> Result {
        // A 1×1 PNG.
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\xdac\xfc\xcf\xc0\xf0\x1f\0\x05\x05\x02\0_\xc8\xf1\xd2\0\0\0\0IEND\xaeB`\x82";
        for (i, (title, folder, tag, links)) in self.notes.iter().enumerate() {
            let folder = dir.join(folder);
            std::fs::create_dir_all(&folder)?;
            let mut body: String = links.iter().map(|l| format!("See [[{l}]].\n")).collect();
            if let Some(chart) = Self::chart(i) {
                std::fs::write(folder.join(&chart), PNG)?;
                body.push_str(&format!("\n![[{chart}]]\n"));
            }
            std::fs::write(
                folder.join(format!("{title}.md")),
                format!("---\ntags: [{tag}]\n---\n# {title}\n\n{body}"),
            )?;
        }
        Ok(())
    }

    fn links(&self) -> usize {
        self.notes.iter().map(|n| n.3.len()).sum()
    }

    /// The titles of the notes linked with `title`, either way.
    fn neighbours(&self, title: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for (t, _, _, links) in &self.notes {
            if t == title {
                out.extend(links.iter().filter(|l| l.starts_with("Note")).cloned());
            } else if links.iter().any(|l| l == title) {
                out.insert(t.clone());
            }
        }
        out
    }
}

/// Asserts that every node drawn on the graph's canvas is inside it;
/// answers the nodes.
fn nodes_inside_the_frame(tab: &Tab, what: &str) -> Result<Vec<Value>> {
    let layout = eval(tab, "window.omegiGraph.layout()")?;
    let (width, height) = (
        layout["width"].as_f64().ok_or("a width")?,
        layout["height"].as_f64().ok_or("a height")?,
    );
    let nodes = eval(tab, "window.omegiGraph.nodes()")?;
    let nodes = nodes.as_array().ok_or("nodes")?.clone();
    for n in &nodes {
        let (x, y, r) = (
            n["x"].as_f64().ok_or("x")?,
            n["y"].as_f64().ok_or("y")?,
            n["r"].as_f64().ok_or("r")?,
        );
        assert!(
            x - r >= 0.0 && y - r >= 0.0 && x + r <= width && y + r <= height,
            "{what}: node {n} outside the {width}×{height} frame"
        );
    }
    println!(
        "{what}: {} nodes laid out in {:.1} ms of the browser's time ({} ticks, settled: {}), frame {width}×{height}",
        nodes.len(),
        layout["ms"].as_f64().unwrap_or(-1.0),
        layout["ticks"],
        layout["settled"]
    );
    Ok(nodes)
}

fn note_labels(nodes: &[Value]) -> std::collections::BTreeSet<String> {
    nodes
        .iter()
        .filter(|n| n["kind"] == "note")
        .filter_map(|n| n["label"].as_str().map(str::to_owned))
        .collect()
}

/// A vault of 300 notes and about 1,100 links: the whole graph settles,
/// fits its frame, sizes nodes by links, labels hubs, highlights a hovered
/// node's neighbours; filters keep what they say; a note's local graph
/// holds its neighbours.
#[test]
fn the_graph_holds_a_real_vault() -> Result {
    let chromium = chromium();
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let data = tempfile::tempdir()?;
    let server = runtime.block_on(Server::start(ServeConfig::new(
        data.path(),
        "127.0.0.1:0".parse()?,
    )))?;
    let base = server.url();
    let credentials = server
        .created_credentials()
        .ok_or("a first start creates credentials")?;
    let user = credentials.user.clone().ok_or("an admin user")?;

    let vault = Vault::generate();
    assert!(
        (1000..=1200).contains(&vault.links()),
        "{} links",
        vault.links()
    );
    let dir = tempfile::tempdir()?;
    vault.write(dir.path())?;
    let imported = server.store().notes().import_vault(
        dir.path(),
        &user.name,
        &omegi_store::VaultImportOptions::default()
            .visibility(omegi_core::note::Visibility::Public),
    )?;
    assert_eq!(
        imported.created.len(),
        Vault::NOTES,
        "{:?}",
        imported.skipped
    );

    let profile = tempfile::tempdir()?;
    let browser = launch(chromium, profile.path())?;
    let tab = browser.new_tab()?;
    sign_in(&tab, &base, &user.token)?;
    wait_for(&tab, "the dashboard", "document.querySelector('main h1')")?;

    // The whole graph.
    go(&tab, "#/graph?issues=0")?;
    wait_for(
        &tab,
        "the laid-out graph",
        "window.omegiGraph && document.querySelector('#graph-canvas') && document.querySelector('#graph-canvas').dataset.settleMs",
    )?;
    let nodes = nodes_inside_the_frame(&tab, "whole graph")?;
    let notes = note_labels(&nodes);
    assert_eq!(notes.len(), Vault::NOTES);
    assert!(nodes.len() >= 300);
    let count = text_of(&tab, "#graph-count")?;
    let edges: usize = count
        .split(" · ")
        .nth(1)
        .and_then(|e| e.split(' ').next())
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| format!("an edge count in {count:?}"))?;
    // Links plus one tag edge per note.
    assert_eq!(edges, vault.links() + Vault::NOTES, "{count}");
    // Sizes follow links: the best-linked node is the largest.
    let by_degree = |n: &Value| n["degree"].as_u64().unwrap_or(0);
    let hub = nodes
        .iter()
        .filter(|n| n["kind"] == "note")
        .max_by_key(|n| by_degree(n))
        .ok_or("a hub")?;
    let orphan = nodes
        .iter()
        .find(|n| n["label"] == "Note 299")
        .ok_or("an orphan")?;
    assert_eq!(by_degree(orphan), 1, "its tag only");
    assert!(hub["r"].as_f64() > orphan["r"].as_f64(), "{hub} {orphan}");
    // Hubs are labelled, not every node.
    let labels: usize = eval(
        &tab,
        "document.querySelector('#graph-canvas').dataset.labels",
    )?
    .as_str()
    .and_then(|l| l.parse().ok())
    .ok_or("a label count")?;
    assert!((5..=20).contains(&labels), "{labels} labels");
    screenshot(&tab, &shots, "graph-vault")?;

    // Hovering a hub highlights it and its neighbours, and labels them.
    let hub_key = hub["key"].as_str().ok_or("a key")?;
    let hub_title = hub["label"].as_str().ok_or("a label")?.to_owned();
    let frame = eval(
        &tab,
        "(r => [r.left, r.top])(document.querySelector('#graph-canvas').getBoundingClientRect())",
    )?;
    tab.move_mouse_to_point(headless_chrome::browser::tab::point::Point {
        x: frame[0].as_f64().ok_or("left")? + hub["x"].as_f64().ok_or("x")?,
        y: frame[1].as_f64().ok_or("top")? + hub["y"].as_f64().ok_or("y")?,
    })?;
    wait_for(
        &tab,
        "the hovered hub",
        &format!(
            "document.querySelector('#graph-canvas').dataset.hover === {}",
            serde_json::to_string(hub_key)?
        ),
    )?;
    let lit = eval(&tab, "window.omegiGraph.highlighted()")?;
    let lit: Vec<String> = serde_json::from_value(lit)?;
    let lit_notes: std::collections::BTreeSet<String> = nodes
        .iter()
        .filter(|n| {
            n["kind"] == "note" && lit.iter().any(|k| Some(k.as_str()) == n["key"].as_str())
        })
        .filter_map(|n| n["label"].as_str().map(str::to_owned))
        .filter(|l| *l != hub_title)
        .collect();
    assert_eq!(lit_notes, vault.neighbours(&hub_title));
    let labels = eval(
        &tab,
        "document.querySelector('#graph-canvas').dataset.labels",
    )?;
    assert_eq!(labels, json!(lit.len().to_string()));
    // The window as it is: a whole-page capture resizes the window, and
    // the pointer would leave the canvas.
    screenshot_viewport(&tab, &shots, "graph-vault-hover")?;

    // Without orphans: the 10 notes without links are gone.
    tab.wait_for_element("#graph-orphans")?.click()?;
    wait_for(&tab, "the graph without orphans", "location.hash.includes('orphans=0') && window.omegiGraph && window.omegiGraph.nodes().filter(n => n.kind === 'note').length === 290")?;
    let nodes = nodes_inside_the_frame(&tab, "without orphans")?;
    assert!(!note_labels(&nodes).contains("Note 295"));
    // One tag: exactly the notes with it.
    go(&tab, "#/graph?issues=0&tag=topic2")?;
    wait_for(&tab, "the graph of one tag", "location.hash.includes('tag=topic2') && window.omegiGraph && document.querySelector('#graph-tag').value === 'topic2'")?;
    let nodes = nodes_inside_the_frame(&tab, "tag topic2")?;
    let expected: std::collections::BTreeSet<String> = vault
        .notes
        .iter()
        .filter(|n| n.2 == "topic2")
        .map(|n| n.0.clone())
        .collect();
    assert_eq!(note_labels(&nodes), expected);

    // Attachments asked for: the graph asks the server for them; the
    // charts the vault embeds appear, the notes stay.
    let charts: std::collections::BTreeSet<String> =
        (0..Vault::NOTES).filter_map(Vault::chart).collect();
    assert!(imported.skipped.is_empty(), "{:?}", imported.skipped);
    go(&tab, "#/graph?issues=0&attachments=1")?;
    wait_for(&tab, "the graph with attachments", "document.querySelector('#graph-attachments') && document.querySelector('#graph-attachments').checked && window.omegiGraph && window.omegiGraph.nodes().some(n => n.kind === 'attachment')")?;
    let nodes = nodes_inside_the_frame(&tab, "with attachments")?;
    assert_eq!(note_labels(&nodes).len(), Vault::NOTES);
    let shown: std::collections::BTreeSet<String> = nodes
        .iter()
        .filter(|n| n["kind"] == "attachment")
        .filter_map(|n| n["label"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(shown, charts);

    // One folder, from the real graph: the notes in it or below it.
    go(&tab, "#/graph?issues=0&folder=Infra")?;
    wait_for(&tab, "the graph of one folder", "location.hash.includes('folder=Infra') && window.omegiGraph && document.querySelector('#graph-folder').value === 'Infra'")?;
    let nodes = nodes_inside_the_frame(&tab, "folder Infra")?;
    let expected: std::collections::BTreeSet<String> = vault
        .notes
        .iter()
        .filter(|n| n.1 == "Infra/Databases")
        .map(|n| n.0.clone())
        .collect();
    assert_eq!(expected.len(), Vault::NOTES / 4);
    assert_eq!(note_labels(&nodes), expected);

    // The filters on folders and attachments, on a graph as the API
    // answers it (a node without `folder` is in the top folder).
    let filtered = eval(
        &tab,
        r#"(() => {
            const g = { nodes: [
                { kind: "note", key: "a", label: "A", folder: "Infra/Databases" },
                { kind: "note", key: "b", label: "B", folder: "Infra" },
                { kind: "note", key: "c", label: "C" },
                { kind: "attachment", key: "attachment:shot.png", label: "shot.png" },
                { kind: "note", key: "d", label: "D", folder: "Infrastructure" },
              ], edges: [
                { from: 0, to: 3, kind: "link" }, { from: 1, to: 0, kind: "link" },
                { from: 2, to: 3, kind: "link" }, { from: 4, to: 2, kind: "link" } ] };
            const labels = f => OmegiGraph.filter(g, f).nodes.map(n => n.label);
            return [
              labels({ folder: "Infra", orphans: true, tags: true, attachments: true }),
              labels({ folder: "", orphans: true, tags: true, attachments: false }),
              labels({ folder: "Infra/Databases", orphans: true, tags: true, attachments: true }),
            ];
        })()"#,
    )?;
    assert_eq!(
        filtered,
        json!([
            ["A", "B", "shot.png"],
            ["A", "B", "C", "D"],
            ["A", "shot.png"]
        ])
    );

    // A note shows its folder, which leads to the notes in it: the
    // server's search with its folder filter.
    let in_databases = server
        .store()
        .notes()
        .list(&user.name, &omegi_store::NoteFilter::all())?
        .into_iter()
        .find(|n| n.title == "Note 002")
        .ok_or("Note 002")?;
    assert_eq!(in_databases.folder, "Infra/Databases");
    go(&tab, &format!("#/note/{}", in_databases.id))?;
    wait_for(&tab, "the note's folder", "document.querySelector('.page-head a.folder') && document.querySelector('.page-head a.folder').innerText === 'Infra/Databases/'")?;
    eval(
        &tab,
        "document.querySelector('.page-head a.folder').click()",
    )?;
    wait_for(&tab, "the notes of the folder", "location.hash.startsWith('#/search') && document.querySelector('.search-folder') && document.querySelectorAll('ol.results li').length > 0")?;
    let metas = eval(
        &tab,
        "[...document.querySelectorAll('ol.results li .meta')].map(m => m.innerText)",
    )?;
    let metas = metas.as_array().ok_or("result metas")?;
    assert_eq!(metas.len(), 50, "the first page of the folder's 75 notes");
    assert!(
        metas.iter().all(|m| m
            .as_str()
            .is_some_and(|m| m.starts_with(" in Infra/Databases/ by"))),
        "{metas:?}"
    );

    // The local graph opens from the note, at depth 1: its neighbours.
    let hub_id = hub_key.to_owned();
    go(&tab, &format!("#/note/{hub_id}"))?;
    wait_for(
        &tab,
        "the hub note",
        "[...document.querySelectorAll('a.button')].some(a => a.innerText === 'Local graph')",
    )?;
    eval(&tab, "[...document.querySelectorAll('a.button')].find(a => a.innerText === 'Local graph').click()")?;
    wait_for(&tab, "the local graph", "location.hash.includes('note=') && window.omegiGraph && document.querySelector('#graph-depth').value === '1'")?;
    let nodes = nodes_inside_the_frame(&tab, "local graph, depth 1")?;
    let mut expected = vault.neighbours(&hub_title);
    expected.insert(hub_title.clone());
    assert_eq!(note_labels(&nodes), expected);
    screenshot(&tab, &shots, "graph-local")?;
    // Depth 2 holds more.
    go(&tab, &format!("#/graph?note={hub_id}&depth=2"))?;
    wait_for(&tab, "the local graph at depth 2", "document.querySelector('#graph-depth') && document.querySelector('#graph-depth').value === '2' && window.omegiGraph")?;
    let nodes = nodes_inside_the_frame(&tab, "local graph, depth 2")?;
    assert!(note_labels(&nodes).len() > expected.len());
    drop(tab);
    drop(browser);
    runtime.block_on(server.shutdown())?;
    Ok(())
}
