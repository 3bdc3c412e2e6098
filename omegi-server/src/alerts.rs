//! Alerts: new issues, regressed issues and spikes, delivered as
//! server-sent events and to webhooks.
//!
//! - [`Alert`]: what is delivered, as JSON (`kind` is `new_issue`,
//!   `regressed` or `spike`).
//! - [`AlertKnowledge`]: what an alert carries besides the issue: links
//!   to the issue page (and to it with the note editor open), the public
//!   notes linked to the issue and the best suggestions, looked up after
//!   the alert is raised, off the settle path, bounded by
//!   [`AlertNoteLimits`].
//! - [`SpikeDetector`]: decides when an issue spikes (see [`SpikeConfig`]).
//! - [`AlertHub`]: fans alerts out to the SSE subscribers (a broadcast
//!   channel) and to one background task per webhook URL, each with a
//!   bounded queue: a full queue drops the alert and counts it, the request
//!   that caused it never waits. A webhook receives the [`Alert`] as JSON
//!   or, with [`WebhookFormat::Slack`], the [`slack_payload`] of it.
//!
//! # Spikes
//!
//! Occurrences are counted per issue in one-minute buckets of the server's
//! clock (when they arrived, not when they happened). An issue *spikes*
//! when its occurrences in the current minute reach
//! [`SpikeConfig::min_count`] and exceed [`SpikeConfig::multiple`] times
//! its average per minute over the [`SpikeConfig::baseline_minutes`]
//! minutes before. Only issues first seen before the current minute can
//! spike (a new issue already gets a `new_issue` alert), and an issue
//! alerts at most once per [`SpikeConfig::cooldown_minutes`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omegi_core::note::{Note, Visibility};
use omegi_core::Fingerprint;
use omegi_store::{Issue, IssueStatus, Store, SuggestFor, SuggestReason};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

const MINUTE_NS: u64 = 60_000_000_000;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// An issue seen for the first time.
    NewIssue,
    /// A resolved issue occurred again.
    Regressed,
    /// An issue occurs much more often than usual.
    Spike,
}

impl AlertKind {
    /// The name used as SSE event type and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::NewIssue => "new_issue",
            AlertKind::Regressed => "regressed",
            AlertKind::Spike => "spike",
        }
    }
}

/// The numbers behind a spike alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpikeInfo {
    /// Occurrences in the current minute.
    pub last_minute: u64,
    /// Average occurrences per minute over the baseline window.
    pub average_per_minute: f64,
    /// The multiple of the average that was exceeded.
    pub multiple: f64,
}

/// One alert, as sent on the SSE stream and to webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// The issue id, `<project>:<fingerprint>`.
    pub issue_id: String,
    /// The project.
    pub project: String,
    /// The fingerprint.
    pub fingerprint: String,
    /// The issue's title.
    pub title: String,
    /// The issue's status after the ingest.
    pub status: IssueStatus,
    /// Occurrences ever.
    pub count: u64,
    /// Services the issue occurred in.
    pub services: Vec<String>,
    /// The trace of the latest occurrence.
    pub latest_trace: Option<String>,
    /// When the alert was raised, ns since the Unix epoch.
    pub time_ns: u64,
    /// For spikes: the numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike: Option<SpikeInfo>,
    /// The issue's page in the web UI.
    #[serde(default)]
    pub issue_url: String,
    /// The issue's page that opens the note editor prefilled from the
    /// issue (flow summary, error, causes).
    #[serde(default)]
    pub new_note_url: String,
    /// Whether a public note is linked to the issue: it was solved before.
    #[serde(default)]
    pub solved_before: bool,
    /// The public notes linked to the issue, most recently edited first.
    #[serde(default)]
    pub notes: Vec<AlertNote>,
    /// Public notes whose text matches the issue's error, best first.
    #[serde(default)]
    pub suggestions: Vec<AlertNote>,
}

impl Alert {
    /// An alert about `issue`.
    pub fn new(kind: AlertKind, issue: &Issue, time_ns: u64) -> Self {
        Alert {
            kind,
            issue_id: format!("{}:{}", issue.project, issue.fingerprint),
            project: issue.project.clone(),
            fingerprint: issue.fingerprint.0.clone(),
            title: issue.title.clone(),
            status: issue.status,
            count: issue.count,
            services: issue.services.clone(),
            latest_trace: issue.latest_trace.map(|t| t.to_string()),
            time_ns,
            spike: None,
            issue_url: String::new(),
            new_note_url: String::new(),
            solved_before: false,
            notes: Vec::new(),
            suggestions: Vec::new(),
        }
    }

    /// What the alert says happened, as a person reads it.
    pub fn headline(&self) -> String {
        let what = match self.kind {
            AlertKind::NewIssue => "New issue",
            AlertKind::Regressed => "Regressed",
            AlertKind::Spike => "Spike",
        };
        format!("{what}: {}", self.title)
    }
}

/// A note an alert carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNote {
    /// The note's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its author's login.
    pub author: String,
    /// Its page in the web UI.
    pub url: String,
    /// When it was last edited, ns since the Unix epoch.
    pub updated_ns: u64,
    /// The start of its body as plain text, at most
    /// [`AlertNoteLimits::excerpt_chars`] characters.
    pub excerpt: String,
}

/// How much of the notes one alert carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertNoteLimits {
    /// Linked notes at most.
    pub linked: usize,
    /// Suggested notes at most.
    pub suggested: usize,
    /// Characters of a note's excerpt at most.
    pub excerpt_chars: usize,
}

impl Default for AlertNoteLimits {
    /// 3 linked notes, 3 suggestions, 200-character excerpts.
    fn default() -> Self {
        AlertNoteLimits {
            linked: 3,
            suggested: 3,
            excerpt_chars: 200,
        }
    }
}

/// The viewer the notes of an alert are looked up as: a name no user can
/// have (names hold no control character), so only public notes are seen.
const NOBODY: &str = "\u{0}alert";

/// What alerts carry besides the issue: links into the web UI and the
/// notes. An alert reaches every member of the issue's project (on the
/// stream and through webhooks), so it carries only notes every member may
/// read: public ones, never a private note, whoever wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertKnowledge {
    /// Where the web UI is reached, without a trailing `/`
    /// (`https://omegi.example.com`).
    pub base_url: String,
    /// How many notes, and how much of each.
    pub limits: AlertNoteLimits,
}

impl AlertKnowledge {
    /// Links under `base_url`, with the default limits.
    pub fn new(base_url: impl Into<String>) -> Self {
        AlertKnowledge {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            limits: AlertNoteLimits::default(),
        }
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: AlertNoteLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The issue's page.
    pub fn issue_url(&self, project: &str, fingerprint: &str) -> String {
        format!(
            "{}/#/issue/{}/{}",
            self.base_url,
            url_segment(project),
            url_segment(fingerprint)
        )
    }

    /// The issue's page opening the note editor, prefilled from the issue.
    pub fn new_note_url(&self, project: &str, fingerprint: &str) -> String {
        format!("{}?new-note=1", self.issue_url(project, fingerprint))
    }

    /// A note's page.
    pub fn note_url(&self, id: &str) -> String {
        format!("{}/#/note/{}", self.base_url, url_segment(id))
    }

    /// Fills in the alert's links, its public linked notes and suggestions
    /// (at most [`AlertNoteLimits`]) and whether it was solved before.
    /// The store is read, never written.
    pub fn attach(&self, store: &Store, alert: &mut Alert) -> omegi_store::Result<()> {
        alert.issue_url = self.issue_url(&alert.project, &alert.fingerprint);
        alert.new_note_url = self.new_note_url(&alert.project, &alert.fingerprint);
        let limit = self.limits.linked + self.limits.suggested;
        if limit == 0 {
            return Ok(());
        }
        let fingerprint = Fingerprint(alert.fingerprint.clone());
        let found = store.search().suggest(
            &alert.project,
            SuggestFor::Issue(&fingerprint),
            NOBODY,
            limit,
        )?;
        for suggestion in found {
            if suggestion.note.visibility != Visibility::Public {
                continue;
            }
            match suggestion.reason {
                SuggestReason::Linked => {
                    alert.solved_before = true;
                    if alert.notes.len() < self.limits.linked {
                        alert.notes.push(self.alert_note(&suggestion.note));
                    }
                }
                SuggestReason::Matches(_) => {
                    if alert.suggestions.len() < self.limits.suggested {
                        alert.suggestions.push(self.alert_note(&suggestion.note));
                    }
                }
            }
        }
        Ok(())
    }

    fn alert_note(&self, note: &Note) -> AlertNote {
        let id = note.id.to_string();
        AlertNote {
            url: self.note_url(&id),
            id,
            title: note.title.clone(),
            author: note.author.clone(),
            updated_ns: note.updated_ns,
            excerpt: excerpt(&note.body, self.limits.excerpt_chars),
        }
    }
}

/// A URL path segment: everything but unreserved characters percent-encoded.
fn url_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The start of a Markdown body as one line of text: front matter left
/// out, whitespace collapsed, at most `max` characters (`…` when cut).
fn excerpt(body: &str, max: usize) -> String {
    let mut text = body.trim_start();
    if let Some(rest) = text.strip_prefix("---") {
        if let Some(end) = rest.find("\n---") {
            text = rest[end + 4..].trim_start();
        }
    }
    let mut out = String::new();
    for (chars, c) in text
        .split_whitespace()
        .flat_map(|word| std::iter::once(' ').chain(word.chars()))
        .skip(1)
        .enumerate()
    {
        if chars + 1 > max {
            // Cut: the last character makes room for the ellipsis.
            if max > 0 {
                out.pop();
                out.push('…');
            }
            return out;
        }
        out.push(c);
    }
    out
}

/// When an issue counts as spiking (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeConfig {
    /// The current minute must exceed this multiple of the average.
    pub multiple: f64,
    /// And hold at least this many occurrences.
    pub min_count: u64,
    /// Minutes before the current one that make the average.
    pub baseline_minutes: u64,
    /// Minutes after a spike alert before the same issue alerts again.
    pub cooldown_minutes: u64,
    /// Issues tracked at most; the least recently seen are forgotten.
    pub max_issues: usize,
}

impl Default for SpikeConfig {
    /// 5 times the average of the previous 10 minutes, at least 10
    /// occurrences, at most one alert per issue per 10 minutes.
    fn default() -> Self {
        SpikeConfig {
            multiple: 5.0,
            min_count: 10,
            baseline_minutes: 10,
            cooldown_minutes: 10,
            max_issues: 10_000,
        }
    }
}

#[derive(Debug, Default)]
struct IssueWindow {
    /// (minute index, count), oldest first, at most baseline + 1 entries.
    minutes: VecDeque<(u64, u64)>,
    /// The minute the first occurrence was counted in.
    first_minute: u64,
    /// The minute of the last spike alert.
    alerted_minute: Option<u64>,
    last_seen_minute: u64,
}

/// Counts occurrences per issue per minute and tells when one spikes.
#[derive(Debug)]
pub struct SpikeDetector {
    config: SpikeConfig,
    issues: HashMap<(String, String), IssueWindow>,
}

impl SpikeDetector {
    /// A detector with these settings.
    pub fn new(config: SpikeConfig) -> Self {
        SpikeDetector {
            config,
            issues: HashMap::new(),
        }
    }

    /// Counts `n` occurrences of an issue that arrived at `now_ns`; returns
    /// the spike when this makes the issue spike.
    pub fn observe(
        &mut self,
        project: &str,
        fingerprint: &str,
        now_ns: u64,
        n: u64,
    ) -> Option<SpikeInfo> {
        let minute = now_ns / MINUTE_NS;
        let config = self.config;
        if self.issues.len() >= config.max_issues
            && !self
                .issues
                .contains_key(&(project.to_owned(), fingerprint.to_owned()))
        {
            self.evict(minute);
        }
        let window = self
            .issues
            .entry((project.to_owned(), fingerprint.to_owned()))
            .or_insert_with(|| IssueWindow {
                first_minute: minute,
                ..IssueWindow::default()
            });
        window.last_seen_minute = window.last_seen_minute.max(minute);
        match window.minutes.back_mut() {
            Some((m, count)) if *m == minute => *count += n,
            // A clock that went back: count it in the latest minute.
            Some((m, count)) if *m > minute => {
                let _ = m;
                *count += n;
            }
            _ => window.minutes.push_back((minute, n)),
        }
        let current_minute = window.minutes.back().map_or(minute, |(m, _)| *m);
        let oldest = current_minute.saturating_sub(config.baseline_minutes);
        while window.minutes.front().is_some_and(|(m, _)| *m < oldest) {
            window.minutes.pop_front();
        }
        let current = window.minutes.back().map_or(0, |(_, c)| *c);
        if window.first_minute >= current_minute || current < config.min_count {
            return None;
        }
        if let Some(alerted) = window.alerted_minute {
            if current_minute < alerted + config.cooldown_minutes.max(1) {
                return None;
            }
        }
        let before: u64 = window
            .minutes
            .iter()
            .filter(|(m, _)| *m < current_minute)
            .map(|(_, c)| *c)
            .sum();
        // The baseline covers the minutes the issue existed, at most the
        // configured window.
        let span = (current_minute - window.first_minute).clamp(1, config.baseline_minutes.max(1));
        let average = before as f64 / span as f64;
        if (current as f64) > config.multiple * average {
            window.alerted_minute = Some(current_minute);
            Some(SpikeInfo {
                last_minute: current,
                average_per_minute: average,
                multiple: config.multiple,
            })
        } else {
            None
        }
    }

    /// The number of issues tracked.
    pub fn tracked(&self) -> usize {
        self.issues.len()
    }

    fn evict(&mut self, minute: u64) {
        let horizon = minute.saturating_sub(self.config.baseline_minutes + 1);
        self.issues.retain(|_, w| w.last_seen_minute >= horizon);
        if self.issues.len() >= self.config.max_issues {
            // Still full: forget the least recently seen half.
            let mut seen: Vec<u64> = self.issues.values().map(|w| w.last_seen_minute).collect();
            seen.sort_unstable();
            let cut = seen[seen.len() / 2];
            self.issues.retain(|_, w| w.last_seen_minute > cut);
        }
    }
}

/// What a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The [`Alert`] as JSON.
    #[default]
    Json,
    /// A Slack message ([`slack_payload`]): for Slack's incoming webhooks
    /// and the chat tools that take the same payload.
    Slack,
}

impl WebhookFormat {
    /// The body POSTed for `alert`.
    pub fn body(self, alert: &Alert) -> serde_json::Value {
        match self {
            WebhookFormat::Json => serde_json::to_value(alert).unwrap_or_default(),
            WebhookFormat::Slack => slack_payload(alert),
        }
    }
}

impl std::str::FromStr for WebhookFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(WebhookFormat::Json),
            "slack" => Ok(WebhookFormat::Slack),
            other => Err(format!("unknown webhook format {other:?}: json or slack")),
        }
    }
}

/// The most characters of a Slack section's text.
pub const SLACK_SECTION_CHARS: usize = 3000;
/// The most characters of a Slack message's top-level `text` that Omegi
/// sends (Slack's own limit is 40,000).
pub const SLACK_TEXT_CHARS: usize = 3000;
/// The most characters of a Slack button's label.
const SLACK_BUTTON_CHARS: usize = 75;

/// An alert as a Slack message, in Slack's Block Kit: a top-level `text`
/// (what notifications show) and `blocks`: a section naming the alert and
/// linking the issue, a section with the linked notes ("solved before") or
/// "no note yet", one with the suggestions when there are any, a context
/// block (project, fingerprint, count, services) and buttons to open the
/// issue and to write a note. Section texts are `mrkdwn`, escaped as Slack
/// asks (`&`, `<`, `>`) and cut to [`SLACK_SECTION_CHARS`]; there are
/// never more than 6 blocks.
pub fn slack_payload(alert: &Alert) -> serde_json::Value {
    use serde_json::json;
    let mut text = alert.headline();
    if let Some(note) = alert.notes.first() {
        text.push_str(&format!(
            " (solved before: \"{}\" by {}, last edited {})",
            note.title,
            note.author,
            utc_minute(note.updated_ns)
        ));
    }
    let section = |mrkdwn: String| json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&mrkdwn, SLACK_SECTION_CHARS)}});
    let mut head = format!(
        "*{}*\n{} occurrence{}",
        slack_link(&alert.issue_url, &alert.headline()),
        alert.count,
        if alert.count == 1 { "" } else { "s" }
    );
    if !alert.services.is_empty() {
        head.push_str(&format!(" in {}", slack_escape(&alert.services.join(", "))));
    }
    if let Some(spike) = alert.spike {
        head.push_str(&format!(
            "\n{} in the last minute, {:.1} per minute before",
            spike.last_minute, spike.average_per_minute
        ));
    }
    let mut blocks = vec![section(head)];
    if alert.notes.is_empty() {
        blocks.push(section(format!(
            "No note yet: {}",
            slack_link(&alert.new_note_url, "write one")
        )));
    } else {
        let mut solved = String::from(":white_check_mark: *Solved before*");
        for note in &alert.notes {
            solved.push_str(&format!("\n• {}", slack_note(note)));
            if !note.excerpt.is_empty() {
                solved.push_str(&format!("\n> {}", slack_escape(&note.excerpt)));
            }
        }
        blocks.push(section(solved));
    }
    if !alert.suggestions.is_empty() {
        let mut suggested = String::from("*Notes that may help*");
        for note in &alert.suggestions {
            suggested.push_str(&format!("\n• {}", slack_note(note)));
        }
        blocks.push(section(suggested));
    }
    blocks.push(json!({"type": "context", "elements": [{
        "type": "mrkdwn",
        "text": cut(&format!("project `{}` · fingerprint `{}` · {}",
            slack_escape(&alert.project), slack_escape(&alert.fingerprint),
            alert.kind.as_str()), SLACK_SECTION_CHARS),
    }]}));
    let button = |label: &str, url: &str| {
        json!({"type": "button", "text": {"type": "plain_text",
            "text": cut(label, SLACK_BUTTON_CHARS)}, "url": url})
    };
    let mut buttons = vec![button("Open issue", &alert.issue_url)];
    buttons.push(button(
        if alert.notes.is_empty() {
            "Write a note"
        } else {
            "Write another note"
        },
        &alert.new_note_url,
    ));
    if !alert.issue_url.starts_with("http") {
        // Slack takes absolute links only.
        buttons.clear();
    }
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    json!({"text": cut(&text, SLACK_TEXT_CHARS), "blocks": blocks})
}

/// A note as a Slack line: its link, author and last edit.
fn slack_note(note: &AlertNote) -> String {
    format!(
        "{} by {}, last edited <!date^{}^{{date_short_pretty}} {{time}}|{}>",
        slack_link(&note.url, &note.title),
        slack_escape(&note.author),
        note.updated_ns / 1_000_000_000,
        utc_minute(note.updated_ns)
    )
}

/// A Slack link `<url|label>`.
fn slack_link(url: &str, label: &str) -> String {
    format!(
        "<{}|{}>",
        slack_escape(url),
        slack_escape(label).replace('|', "¦")
    )
}

/// Text escaped as Slack's mrkdwn asks: `&`, `<` and `>`.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters of `text`, `…` when cut (never inside an
/// escape or a link would be nicer; a cut there only loses formatting).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A time as `2026-12-01 20:04 UTC`.
pub fn utc_minute(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// How webhook deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the second attempt; doubled before each next one.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// The timeout of one attempt.
    pub timeout: Duration,
    /// Alerts waiting per webhook at most; more are dropped and counted.
    pub queue: usize,
}

impl Default for RetryPolicy {
    /// 5 attempts, 500 ms doubling up to 30 s, 5 s per attempt, 1024 queued.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            queue: 1024,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// Counters of the webhook deliveries.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Alerts delivered (a 2xx answer).
    pub delivered: AtomicU64,
    /// Alerts given up after the last attempt or a 4xx answer.
    pub failed: AtomicU64,
    /// Alerts dropped because a queue was full.
    pub dropped: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Alerts sent without their notes because the look-up queue was full.
    pub without_notes: AtomicU64,
}

struct Webhook {
    /// The URL as logs show it ([`redacted_url`]).
    shown: String,
    tx: mpsc::Sender<Alert>,
}

/// A webhook URL as logs and error messages show it: its scheme, host and
/// port only. Webhook URLs carry their secret in the query string
/// (`?token=`), the user info (`https://user:secret@`) or the path (Slack's
/// `/services/T…/B…/secret`, Discord's `/api/webhooks/id/secret`), so
/// nothing of those is shown; an unreadable URL shows as `<invalid URL>`.
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("");
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if parsed.path() == "/" && parsed.query().is_none() {
                ""
            } else {
                "/…"
            };
            format!("{}://{host}{port}{rest}", parsed.scheme())
        }
        Err(_) => "<invalid URL>".into(),
    }
}

/// Where published alerts go: the SSE subscribers and the webhook queues.
struct Fanout {
    events: broadcast::Sender<Alert>,
    webhooks: std::sync::Mutex<Vec<Webhook>>,
    stats: Arc<WebhookStats>,
}

impl Fanout {
    fn publish(&self, alert: Alert) {
        for hook in self.lock_webhooks().iter() {
            if hook.tx.try_send(alert.clone()).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %hook.shown, "webhook queue full: alert dropped");
            }
        }
        // No subscriber is not an error.
        let _ = self.events.send(alert);
    }

    fn lock_webhooks(&self) -> std::sync::MutexGuard<'_, Vec<Webhook>> {
        self.webhooks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Fans alerts out to SSE subscribers and webhooks; with
/// [`AlertHub::knowledge`], looks up their notes first, on a background
/// task of its own.
pub struct AlertHub {
    fanout: Arc<Fanout>,
    /// Alerts waiting for their notes (with [`AlertHub::knowledge`]).
    lookups: std::sync::Mutex<Option<mpsc::Sender<Alert>>>,
    lookup_task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Alerts waiting per queue at most.
    queue: usize,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for AlertHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertHub")
            .field("webhooks", &self.fanout.lock_webhooks().len())
            .finish_non_exhaustive()
    }
}

impl AlertHub {
    /// A hub delivering to these webhook URLs; spawns one task per URL on
    /// the current Tokio runtime.
    pub fn new(webhook_urls: &[String], policy: RetryPolicy) -> Self {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::with_client(webhook_urls, policy, WebhookFormat::Json, client)
    }

    /// A hub delivering to these webhook URLs with `client` (which trusts
    /// a custom CA, say: [`crate::tls::trust_ca`]); each attempt is bounded
    /// by [`RetryPolicy::timeout`]; each webhook receives `format`. Spawns
    /// one task per URL on the current Tokio runtime.
    pub fn with_client(
        webhook_urls: &[String],
        policy: RetryPolicy,
        format: WebhookFormat,
        client: reqwest::Client,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        let stats = Arc::new(WebhookStats::default());
        let mut webhooks = Vec::new();
        let mut tasks = Vec::new();
        for url in webhook_urls {
            let (tx, rx) = mpsc::channel(policy.queue.max(1));
            tasks.push(tokio::spawn(deliver_loop(
                client.clone(),
                url.clone(),
                rx,
                policy,
                format,
                Arc::clone(&stats),
            )));
            webhooks.push(Webhook {
                shown: redacted_url(url),
                tx,
            });
        }
        AlertHub {
            fanout: Arc::new(Fanout {
                events,
                webhooks: std::sync::Mutex::new(webhooks),
                stats,
            }),
            lookups: std::sync::Mutex::new(None),
            lookup_task: std::sync::Mutex::new(None),
            queue: policy.queue.max(1),
            tasks: std::sync::Mutex::new(tasks),
        }
    }

    /// Alerts raised through [`AlertHub::raise`] carry these links and
    /// the notes found in `store`. The look-ups run on a task of their own
    /// (spawned on the current Tokio runtime), one alert at a time, in
    /// the order raised, with a queue as long as a webhook's: whoever
    /// raises an alert never waits for them.
    pub fn knowledge(self, knowledge: AlertKnowledge, store: Store) -> Self {
        let (tx, rx) = mpsc::channel(self.queue);
        let task = tokio::spawn(lookup_loop(
            rx,
            Arc::new(knowledge),
            store,
            Arc::clone(&self.fanout),
        ));
        *lock(&self.lookups) = Some(tx);
        *lock(&self.lookup_task) = Some(task);
        self
    }

    /// Raises an alert once what it announces is stored: with
    /// [`AlertHub::knowledge`], queues it for its notes and links (a full
    /// queue sends it at once without them, counted in
    /// [`WebhookStats::without_notes`]), else publishes it. Never waits.
    pub fn raise(&self, alert: Alert) {
        let refused = match lock(&self.lookups).as_ref() {
            Some(tx) => match tx.try_send(alert) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(alert)) => {
                    self.fanout
                        .stats
                        .without_notes
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(issue = %alert.issue_id, "alert look-up queue full: sent without notes");
                    alert
                }
                Err(mpsc::error::TrySendError::Closed(alert)) => alert,
            },
            None => alert,
        };
        self.fanout.publish(refused);
    }

    /// Sends an alert as it is to every subscriber and webhook, never
    /// waiting.
    pub fn publish(&self, alert: Alert) {
        self.fanout.publish(alert);
    }

    /// A new SSE subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<Alert> {
        self.fanout.events.subscribe()
    }

    /// Delivery counters.
    pub fn stats(&self) -> &WebhookStats {
        &self.fanout.stats
    }

    /// Stops taking alerts and waits up to `deadline` for the queued ones to
    /// be completed and delivered; returns whether every queue was drained
    /// in time.
    pub async fn close(&self, deadline: Duration) -> bool {
        // Closing the look-up queue: its task completes and publishes what
        // is queued, then ends; then the webhook queues, the same way.
        drop(lock(&self.lookups).take());
        let lookup = lock(&self.lookup_task).take();
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        let fanout = Arc::clone(&self.fanout);
        let drain = async move {
            if let Some(lookup) = lookup {
                let _ = lookup.await;
            }
            fanout.lock_webhooks().clear();
            futures_util::future::join_all(tasks).await;
        };
        let drained = tokio::time::timeout(deadline, drain).await.is_ok();
        // Past the deadline the webhook queues close all the same.
        self.fanout.lock_webhooks().clear();
        drained
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Completes queued alerts with their notes and publishes them, one at a
/// time; a failed look-up publishes the alert without notes.
async fn lookup_loop(
    mut rx: mpsc::Receiver<Alert>,
    knowledge: Arc<AlertKnowledge>,
    store: Store,
    fanout: Arc<Fanout>,
) {
    while let Some(alert) = rx.recv().await {
        let bare = alert.clone();
        let (knowledge, store) = (Arc::clone(&knowledge), store.clone());
        let looked_up = tokio::task::spawn_blocking(move || {
            let mut alert = alert;
            let result = knowledge.attach(&store, &mut alert);
            (alert, result)
        })
        .await;
        let alert = match looked_up {
            Ok((alert, Ok(()))) => alert,
            Ok((alert, Err(error))) => {
                tracing::warn!(error = %omegi_core::ErrorChain(&error), issue = %alert.issue_id, "notes of an alert not found");
                alert
            }
            Err(error) => {
                tracing::warn!(error = %omegi_core::ErrorChain(&error), issue = %bare.issue_id, "notes of an alert not looked up");
                bare
            }
        };
        fanout.publish(alert);
    }
}

async fn deliver_loop(
    client: reqwest::Client,
    url: String,
    mut rx: mpsc::Receiver<Alert>,
    policy: RetryPolicy,
    format: WebhookFormat,
    stats: Arc<WebhookStats>,
) {
    while let Some(alert) = rx.recv().await {
        let body = format.body(&alert);
        if deliver(&client, &url, &body, &policy, &stats).await {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// POSTs one alert's body, retrying network errors, timeouts, 429 and 5xx.
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    policy: &RetryPolicy,
    stats: &WebhookStats,
) -> bool {
    let attempts = policy.max_attempts.max(1);
    let shown = redacted_url(url);
    for attempt in 1..=attempts {
        let result = client
            .post(url)
            .timeout(policy.timeout)
            .json(body)
            .send()
            .await;
        let retry = match result {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) => {
                let status = response.status();
                tracing::warn!(url = %shown, %status, attempt, "webhook answered with an error");
                status.is_server_error() || status.as_u16() == 429
            }
            Err(error) => {
                // reqwest's errors name the URL: it is left out.
                let error = error.without_url();
                tracing::warn!(url = %shown, error = %omegi_core::ErrorChain(&error), attempt,
                    "webhook delivery failed");
                true
            }
        };
        if !retry || attempt == attempts {
            break;
        }
        stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(policy.backoff(attempt)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_no_secret() {
        for (url, shown) in [
            (
                "https://hooks.example.com/?token=s3cret",
                "https://hooks.example.com/…",
            ),
            (
                "https://user:s3cret@hooks.example.com/",
                "https://hooks.example.com",
            ),
            (
                "https://hooks.slack.com/services/T000/B000/s3cret",
                "https://hooks.slack.com/…",
            ),
            (
                "http://127.0.0.1:9000/hook#s3cret",
                "http://127.0.0.1:9000/…",
            ),
            ("not a url s3cret", "<invalid URL>"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
            assert!(!redacted_url(url).contains("s3cret"));
        }
    }

    fn alert_with_notes(notes: usize, title: &str) -> Alert {
        let knowledge = AlertKnowledge::new("https://omegi.example.com/");
        let note = |i: usize| AlertNote {
            id: format!("n{i}"),
            title: format!("{title} {i}"),
            author: "ana".into(),
            url: knowledge.note_url(&format!("n{i}")),
            updated_ns: 1_764_619_440 * 1_000_000_000,
            excerpt: "x".repeat(200),
        };
        Alert {
            kind: AlertKind::Regressed,
            issue_id: "shop:abc".into(),
            project: "shop".into(),
            fingerprint: "abc".into(),
            title: title.into(),
            status: IssueStatus::Unresolved,
            count: 2,
            services: vec!["payment-service".into()],
            latest_trace: None,
            time_ns: 0,
            spike: None,
            issue_url: knowledge.issue_url("shop", "abc"),
            new_note_url: knowledge.new_note_url("shop", "abc"),
            solved_before: notes > 0,
            notes: (0..notes).map(note).collect(),
            suggestions: (0..notes).map(note).collect(),
        }
    }

    /// The look-up queue holds `queue` alerts; one raised while it is full
    /// goes out at once, without notes, and is counted; the queued one
    /// still goes out with its notes. Whoever raises never waits.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_look_up_queue_sends_alerts_at_once_without_notes() {
        let store = Store::temporary().unwrap();
        store
            .notes()
            .create(
                omegi_store::NewNote::new("ana", "Declined cards", "Ask the issuer.")
                    .public()
                    .issues([Fingerprint("abc".into())]),
            )
            .unwrap();
        let policy = RetryPolicy {
            queue: 1,
            ..RetryPolicy::default()
        };
        let hub = AlertHub::new(&[], policy)
            .knowledge(AlertKnowledge::new("http://127.0.0.1:7700"), store);
        let mut events = hub.subscribe();
        // The runtime has one thread and nothing here yields: the look-up
        // task has not taken the first alert when the others are raised.
        for n in 0..3 {
            hub.raise(alert_with_notes(0, &format!("alert {n}")));
        }
        assert_eq!(hub.stats().without_notes.load(Ordering::Relaxed), 2);
        let mut received = Vec::new();
        for _ in 0..3 {
            let alert = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("every alert goes out")
                .expect("an alert");
            received.push((alert.title, alert.solved_before, alert.notes.len()));
        }
        assert_eq!(
            received,
            [
                ("alert 1".to_owned(), false, 0),
                ("alert 2".to_owned(), false, 0),
                ("alert 0".to_owned(), true, 1),
            ]
        );
        assert!(hub.close(Duration::from_secs(5)).await);
    }

    #[test]
    fn slack_messages_stay_within_slacks_limits_and_escape_markup() {
        let title = "<script> & 'quotes' | pipes ".repeat(400);
        let payload = slack_payload(&alert_with_notes(100, &title));
        assert!(payload["text"].as_str().unwrap().chars().count() <= SLACK_TEXT_CHARS);
        let blocks = payload["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 6, "{}", blocks.len());
        for block in blocks {
            if block["type"] == "section" {
                let text = block["text"]["text"].as_str().unwrap();
                assert!(text.chars().count() <= SLACK_SECTION_CHARS);
                assert!(!text.contains("<script>"), "{text}");
                assert!(text.contains("&lt;script&gt; &amp;"), "{text}");
            }
        }
        let quiet = slack_payload(&alert_with_notes(0, "Card declined"));
        let text = quiet["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(
            text,
            "No note yet: <https://omegi.example.com/#/issue/shop/abc?new-note=1|write one>"
        );
    }

    #[test]
    fn links_are_encoded_and_times_read_as_utc() {
        let k = AlertKnowledge::new("http://127.0.0.1:7700");
        assert_eq!(
            k.issue_url("my project", "a/b"),
            "http://127.0.0.1:7700/#/issue/my%20project/a%2Fb"
        );
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(
            utc_minute(1_764_619_440 * 1_000_000_000),
            "2025-12-01 20:04 UTC"
        );
        assert_eq!(
            utc_minute(951_782_400 * 1_000_000_000),
            "2000-02-29 00:00 UTC"
        );
    }

    #[test]
    fn excerpts_are_one_bounded_line_without_front_matter() {
        let body = "---\ntags: [db]\n---\n# Pool\n\nRaise   the\npool size.";
        assert_eq!(excerpt(body, 200), "# Pool Raise the pool size.");
        assert_eq!(excerpt(body, 10), "# Pool Ra…");
        assert_eq!(excerpt(body, 10).chars().count(), 10);
        assert_eq!(excerpt("é".repeat(50).as_str(), 5), "éééé…");
        assert_eq!(excerpt("short", 0), "");
        assert_eq!(excerpt("short", 5), "short");
    }

    const T0: u64 = 1_700_000_000 * 1_000_000_000;

    fn at(minute: u64, second: u64) -> u64 {
        T0 - T0 % MINUTE_NS + minute * MINUTE_NS + second * 1_000_000_000
    }

    #[test]
    fn steady_rate_does_not_spike_and_a_burst_does() {
        let mut d = SpikeDetector::new(SpikeConfig::default());
        for minute in 0..10 {
            assert_eq!(d.observe("p", "f", at(minute, 1), 4), None);
        }
        // 19 is below 5 x 4.
        assert_eq!(d.observe("p", "f", at(10, 1), 19), None);
        let spike = d.observe("p", "f", at(10, 2), 2).expect("21 > 20");
        assert_eq!(spike.last_minute, 21);
        assert!((spike.average_per_minute - 4.0).abs() < 1e-9);
        // Cool-down: no second alert in the same window.
        assert_eq!(d.observe("p", "f", at(11, 0), 500), None);
        assert!(d.observe("p", "f", at(21, 0), 500).is_some());
    }

    #[test]
    fn new_issue_and_small_counts_do_not_spike() {
        let mut d = SpikeDetector::new(SpikeConfig::default());
        // First minute of a new issue: never a spike.
        assert_eq!(d.observe("p", "new", at(0, 0), 1000), None);
        // Rare issue: one occurrence, then 9 (below min_count).
        let mut d = SpikeDetector::new(SpikeConfig::default());
        d.observe("p", "rare", at(0, 0), 1);
        assert_eq!(d.observe("p", "rare", at(5, 0), 9), None);
        assert!(d.observe("p", "rare", at(5, 1), 1).is_some());
        // Issues are tracked per project.
        assert_eq!(d.observe("q", "rare", at(5, 2), 100), None);
    }

    #[test]
    fn tracking_is_bounded() {
        let config = SpikeConfig {
            max_issues: 100,
            ..SpikeConfig::default()
        };
        let mut d = SpikeDetector::new(config);
        for i in 0..1000u64 {
            d.observe("p", &i.to_string(), at(i / 10, 0), 1);
        }
        assert!(d.tracked() <= 100, "{}", d.tracked());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(4), Duration::from_millis(700));
        assert_eq!(p.backoff(40), Duration::from_millis(700));
    }
}
