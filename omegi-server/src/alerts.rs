//! Alerts: new issues, regressed issues and spikes, delivered as
//! server-sent events and to webhooks.
//!
//! - [`Alert`]: what is delivered, as JSON (`kind` is `new_issue`,
//!   `regressed` or `spike`).
//! - [`SpikeDetector`]: decides when an issue spikes (see [`SpikeConfig`]).
//! - [`AlertHub`]: fans alerts out to the SSE subscribers (a broadcast
//!   channel) and to one background task per webhook URL, each with a
//!   bounded queue: a full queue drops the alert and counts it, the request
//!   that caused it never waits.
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

use omegi_store::{Issue, IssueStatus};
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
        }
    }
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

/// Fans alerts out to SSE subscribers and webhooks.
pub struct AlertHub {
    events: broadcast::Sender<Alert>,
    webhooks: std::sync::Mutex<Vec<Webhook>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    stats: Arc<WebhookStats>,
}

impl std::fmt::Debug for AlertHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertHub")
            .field("webhooks", &self.lock_webhooks().len())
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
        Self::with_client(webhook_urls, policy, client)
    }

    /// A hub delivering to these webhook URLs with `client` (which trusts
    /// a custom CA, say: [`crate::tls::trust_ca`]); each attempt is bounded
    /// by [`RetryPolicy::timeout`]. Spawns one task per URL on the current
    /// Tokio runtime.
    pub fn with_client(
        webhook_urls: &[String],
        policy: RetryPolicy,
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
                Arc::clone(&stats),
            )));
            webhooks.push(Webhook {
                shown: redacted_url(url),
                tx,
            });
        }
        AlertHub {
            events,
            webhooks: std::sync::Mutex::new(webhooks),
            tasks: std::sync::Mutex::new(tasks),
            stats,
        }
    }

    /// Sends an alert to every subscriber and webhook, never waiting.
    pub fn publish(&self, alert: Alert) {
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

    /// A new SSE subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<Alert> {
        self.events.subscribe()
    }

    /// Delivery counters.
    pub fn stats(&self) -> &WebhookStats {
        &self.stats
    }

    /// Stops taking alerts and waits up to `deadline` for the queued ones to
    /// be delivered; returns whether every queue was drained in time.
    pub async fn close(&self, deadline: Duration) -> bool {
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        // Dropping the senders closes the queues: each task delivers what
        // is queued, then ends.
        self.lock_webhooks().clear();
        let all = futures_util::future::join_all(tasks);
        tokio::time::timeout(deadline, all).await.is_ok()
    }
}

async fn deliver_loop(
    client: reqwest::Client,
    url: String,
    mut rx: mpsc::Receiver<Alert>,
    policy: RetryPolicy,
    stats: Arc<WebhookStats>,
) {
    while let Some(alert) = rx.recv().await {
        if deliver(&client, &url, &alert, &policy, &stats).await {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// POSTs one alert, retrying network errors, timeouts, 429 and 5xx.
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    alert: &Alert,
    policy: &RetryPolicy,
    stats: &WebhookStats,
) -> bool {
    let attempts = policy.max_attempts.max(1);
    let shown = redacted_url(url);
    for attempt in 1..=attempts {
        let result = client
            .post(url)
            .timeout(policy.timeout)
            .json(alert)
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
                tracing::warn!(url = %shown, error = %error_chain(&error), attempt,
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

/// An error with its sources, `: `-separated (a TLS failure is in a
/// source of reqwest's error).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
