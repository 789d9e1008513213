//! Slack incoming-webhook notifier (reqwest + rustls).
//!
//! - 200: delivered.
//! - 429: wait `Retry-After` (default 1 s) and try again, if the wait fits
//!   before the invocation's deadline; else a transient failure.
//! - 5xx, timeouts, connection errors: retry with exponential backoff
//!   (0.5 s, 1 s, 2 s, ... capped at 8 s) while it fits before the
//!   deadline, at most [`SlackPolicy::max_attempts`] tries; then transient.
//! - 401/403/404/410 (`invalid_token`, `no_service`, `channel_is_archived`):
//!   the webhook may have been rotated, so the secret is read again once,
//!   bypassing the cache ([`WebhookSource::refetch_webhook_url`]); a new URL
//!   is tried once, an unchanged one is a permanent failure.
//! - other 4xx (400 `invalid_payload`...) and 3xx: a configuration error,
//!   permanent, not retried. Redirects are never followed ([`http_client`]).
//!
//! The webhook URL is a credential: it comes from a [`SecretSource`], lives
//! in a [`Secret`] (redacted in Debug/Display), and errors are built with
//! `reqwest::Error::without_url`, so it never reaches a log or an error.
//! Before any request its host is checked against [`AllowedHosts`] (Slack's
//! `hooks.slack.com`, what `SLACK_ALLOWED_HOSTS` adds, and loopback for
//! tests and the demo): a URL elsewhere is a permanent configuration error
//! that names the host, never the URL.

use crate::sdk;
use crate::secrets::SecretsManagerSource;
use grantwatch_core::ports::clock::Clock;
use grantwatch_core::ports::notify::{Notice, Notifier, Secret, SecretSource, StaticSecret};
use grantwatch_core::ports::PortError;
use grantwatch_core::render::slack;
use std::future::Future;
use std::time::Duration;

/// Slack's incoming-webhook host, the only one allowed by default.
pub const SLACK_WEBHOOK_HOST: &str = "hooks.slack.com";

/// Retry settings (tests shorten the backoff).
#[derive(Debug, Clone)]
pub struct SlackPolicy {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest single request.
    pub request_timeout: Duration,
    /// Kept free before the deadline (to record the outcome).
    pub deadline_reserve: Duration,
}

impl Default for SlackPolicy {
    fn default() -> Self {
        SlackPolicy {
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            request_timeout: Duration::from_secs(10),
            deadline_reserve: Duration::from_secs(2),
        }
    }
}

/// The hosts a webhook URL may point at: `hooks.slack.com` plus any added
/// (`SLACK_ALLOWED_HOSTS`, e.g. a Slack-compatible relay), over https; and
/// loopback (`127.0.0.0/8`, `::1`, `localhost`) over http or https, for
/// tests and the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    hosts: Vec<String>,
}

impl Default for AllowedHosts {
    fn default() -> Self {
        AllowedHosts {
            hosts: vec![SLACK_WEBHOOK_HOST.to_string()],
        }
    }
}

impl AllowedHosts {
    /// Slack's host plus the comma- or space-separated host names in
    /// `list` (an empty list adds nothing). Each must be a DNS name.
    pub fn widened_by(list: &str) -> Result<AllowedHosts, String> {
        let mut allowed = AllowedHosts::default();
        for host in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|h| !h.is_empty())
        {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let dns_name = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !dns_name {
                return Err(format!("{host:?} is not a host name"));
            }
            if !allowed.hosts.contains(&host) {
                allowed.hosts.push(host);
            }
        }
        Ok(allowed)
    }

    /// The allowed host names (loopback aside).
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Whether `url` may be posted to. The problem names the host, never
    /// the URL (its path is the credential).
    pub fn check(&self, url: &str) -> Result<(), String> {
        let parsed =
            reqwest::Url::parse(url).map_err(|_| "the webhook URL is not a URL".to_string())?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("the webhook URL must not carry a user name or password".to_string());
        }
        let host = parsed
            .host_str()
            .unwrap_or("")
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        match parsed.scheme() {
            "http" | "https" if loopback => Ok(()),
            "https" if self.hosts.contains(&host) => Ok(()),
            "https" => Err(format!(
                "the webhook host {host:?} is not allowed (allowed: {}; SLACK_ALLOWED_HOSTS adds more)",
                self.hosts.join(", ")
            )),
            scheme => Err(format!("the webhook URL must use https, not {scheme}")),
        }
    }
}

/// The HTTP client for webhooks: redirects are never followed (a redirect
/// could send alerts, or the next request, to another host).
pub fn http_client() -> Result<reqwest::Client, PortError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PortError::Permanent(format!("cannot build the HTTP client: {e}")))
}

/// Where the webhook URL comes from, able to read it again past any cache
/// (after Slack refuses the webhook, in case it was rotated).
pub trait WebhookSource: SecretSource {
    fn refetch_webhook_url(&self) -> impl Future<Output = Result<Secret, PortError>> + Send;
}

impl WebhookSource for SecretsManagerSource {
    async fn refetch_webhook_url(&self) -> Result<Secret, PortError> {
        self.refetch().await
    }
}

impl WebhookSource for StaticSecret {
    async fn refetch_webhook_url(&self) -> Result<Secret, PortError> {
        Ok(self.0.clone())
    }
}

pub struct SlackNotifier<S, C> {
    http: reqwest::Client,
    secrets: S,
    clock: C,
    policy: SlackPolicy,
    hosts: AllowedHosts,
}

/// The webhook payload for a notice (rendering lives in `render::slack`).
pub fn render(notice: Notice<'_>) -> serde_json::Value {
    match notice {
        Notice::Alert(verdict) => slack::alert(verdict),
        Notice::Digest(digest) => slack::digest_notice(digest),
        Notice::Report(r) => grantwatch_core::render::report::slack(&r),
    }
}

impl<S: WebhookSource, C: Clock> SlackNotifier<S, C> {
    /// A notifier over `http`, which should come from [`http_client`] (no
    /// redirects); webhook hosts limited to Slack's (and loopback).
    pub fn new(http: reqwest::Client, secrets: S, clock: C, policy: SlackPolicy) -> Self {
        SlackNotifier {
            http,
            secrets,
            clock,
            policy,
            hosts: AllowedHosts::default(),
        }
    }

    /// The notifier with its own no-redirect client and these hosts.
    pub fn pinned(
        secrets: S,
        clock: C,
        policy: SlackPolicy,
        hosts: AllowedHosts,
    ) -> Result<Self, PortError> {
        Ok(SlackNotifier::new(http_client()?, secrets, clock, policy).with_allowed_hosts(hosts))
    }

    /// Allow these webhook hosts (see [`AllowedHosts`]).
    pub fn with_allowed_hosts(mut self, hosts: AllowedHosts) -> Self {
        self.hosts = hosts;
        self
    }

    /// Milliseconds left before the deadline, less the reserve.
    fn time_left(&self, deadline_ms: i64) -> i64 {
        deadline_ms - self.clock.now_ms() - self.policy.deadline_reserve.as_millis() as i64
    }

    /// The URL from `fetch`, bounded by the deadline and checked against
    /// the allowed hosts (a refused URL is logged by host, never quoted).
    async fn webhook_url(
        &self,
        fetch: impl Future<Output = Result<Secret, PortError>>,
        deadline_ms: i64,
    ) -> Result<Secret, PortError> {
        let url =
            sdk::before_deadline("GetSecretValue", deadline_ms, self.clock.now_ms(), fetch).await?;
        if let Err(problem) = self.hosts.check(url.expose()) {
            tracing::error!(channel = "slack", problem = %problem, "the Slack webhook URL is refused: check the webhook secret");
            return Err(PortError::Permanent(problem));
        }
        Ok(url)
    }
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    RetryAfter(Duration, String),
    Backoff(String),
    /// Refused; the HTTP status (0 when there was none).
    Rejected(u16, String),
}

impl<S: WebhookSource, C: Clock> Notifier for SlackNotifier<S, C> {
    fn channel(&self) -> &str {
        "slack"
    }

    async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
        self.post(&render(notice), deadline_ms).await
    }
}

impl<S: WebhookSource, C: Clock> SlackNotifier<S, C> {
    /// Post a Block Kit payload (alerts, digests, the report's summary):
    /// honours 429 `Retry-After`, retries 5xx and connection errors with
    /// backoff until `deadline_ms` (epoch ms), re-reads a refused webhook's
    /// secret once, never retries other 4xx.
    pub async fn post(
        &self,
        payload: &serde_json::Value,
        deadline_ms: i64,
    ) -> Result<(), PortError> {
        let mut url = self
            .webhook_url(self.secrets.slack_webhook_url(), deadline_ms)
            .await?;
        let mut refetched = false;
        let mut backoff = self.policy.first_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let left = self.time_left(deadline_ms);
            if left <= 0 {
                return Err(PortError::Transient(
                    "no time left before the invocation's deadline".to_string(),
                ));
            }
            let timeout = self
                .policy
                .request_timeout
                .min(Duration::from_millis(left as u64));
            let outcome = match self
                .http
                .post(url.expose())
                .timeout(timeout)
                .json(payload)
                .send()
                .await
            {
                Err(error) => Attempt::Backoff(format!("request failed: {}", error.without_url())),
                Ok(response) => classify_response(response).await,
            };
            let (wait, why) = match outcome {
                Attempt::Delivered => return Ok(()),
                Attempt::Rejected(status, why) if !refetched && is_revoked(status) => {
                    refetched = true;
                    let fresh = self
                        .webhook_url(self.secrets.refetch_webhook_url(), deadline_ms)
                        .await;
                    match fresh {
                        Ok(fresh) if fresh != url => {
                            tracing::warn!(channel = "slack", problem = %why, "Slack refused the webhook and its secret has changed: retrying with the new webhook");
                            url = fresh;
                            continue;
                        }
                        Ok(_) => {
                            let why = format!("{why}; the webhook secret is unchanged");
                            tracing::error!(channel = "slack", problem = %why, "Slack refused the message: check the webhook secret");
                            return Err(PortError::Permanent(why));
                        }
                        Err(error) => {
                            let why =
                                format!("{why}; reading the webhook secret again failed: {error}");
                            tracing::error!(channel = "slack", problem = %why, "Slack refused the message: check the webhook secret");
                            return Err(if error.is_transient() {
                                PortError::Transient(why)
                            } else {
                                PortError::Permanent(why)
                            });
                        }
                    }
                }
                Attempt::Rejected(_, why) => {
                    tracing::error!(channel = "slack", problem = %why, "Slack refused the message: check the webhook secret");
                    return Err(PortError::Permanent(why));
                }
                Attempt::RetryAfter(wait, why) => (wait, why),
                Attempt::Backoff(why) => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                    (wait, why)
                }
            };
            if attempt >= self.policy.max_attempts {
                return Err(PortError::Transient(format!(
                    "{why} (after {attempt} attempts)"
                )));
            }
            if wait.as_millis() as i64 >= self.time_left(deadline_ms) {
                return Err(PortError::Transient(format!(
                    "{why}; waiting {} ms more would pass the invocation's deadline",
                    wait.as_millis()
                )));
            }
            tracing::warn!(channel = "slack", problem = %why, wait_ms = wait.as_millis() as u64, attempt, "Slack delivery will be retried");
            self.clock.sleep_ms(wait.as_millis() as u64).await;
        }
    }
}

/// Statuses Slack gives a revoked, rotated or archived webhook.
fn is_revoked(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 410)
}

async fn classify_response(response: reqwest::Response) -> Attempt {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Slack's error bodies are short codes (`no_service`); keep them short.
    let body: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    match status {
        200..=299 => Attempt::Delivered,
        300..=399 => Attempt::Rejected(
            status,
            format!("Slack answered a redirect (HTTP {status}); redirects are not followed"),
        ),
        429 => Attempt::RetryAfter(
            Duration::from_secs(retry_after.unwrap_or(1)),
            format!("Slack answered HTTP 429 {body}"),
        ),
        500..=599 => Attempt::Backoff(format!("Slack answered HTTP {status} {body}")),
        _ => Attempt::Rejected(status, format!("Slack answered HTTP {status} {body}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::SystemClock;
    use grantwatch_core::ports::notify::{Secret, StaticSecret};
    use std::sync::{Arc, Mutex};

    /// A webhook that answers each connection with the next scripted
    /// (status, headers) and counts requests.
    async fn webhook(replies: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<usize>>) {
        let replies = replies
            .into_iter()
            .map(|(status, headers)| stand_in::Reply {
                status,
                headers: headers.to_string(),
                body: if status == 200 { "ok" } else { "error" }.to_string(),
            })
            .collect();
        let server = stand_in::serve(replies).await;
        (
            format!("{}/services/T0/B0/SECRETTOKEN", server.url),
            server.count,
        )
    }

    fn notifier(url: &str) -> SlackNotifier<StaticSecret, SystemClock> {
        SlackNotifier::new(
            reqwest::Client::new(),
            StaticSecret(Secret::new(url)),
            SystemClock,
            SlackPolicy {
                first_backoff: Duration::from_millis(10),
                deadline_reserve: Duration::from_millis(100),
                ..SlackPolicy::default()
            },
        )
    }

    fn deadline_in(ms: i64) -> i64 {
        SystemClock.now_ms() + ms
    }

    #[tokio::test]
    async fn honours_retry_after_then_delivers() {
        let (url, count) = webhook(vec![(429, "Retry-After: 1\r\n"), (200, "")]).await;
        let verdict = crate::sns::sample_verdict();
        let started = std::time::Instant::now();
        notifier(&url)
            .send(Notice::Alert(&verdict), deadline_in(20_000))
            .await
            .unwrap();
        assert_eq!(*count.lock().unwrap(), 2);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "waited for Retry-After"
        );
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_deadline_is_a_transient_failure_without_waiting() {
        let (url, count) = webhook(vec![(429, "Retry-After: 30\r\n")]).await;
        let verdict = crate::sns::sample_verdict();
        let error = notifier(&url)
            .send(Notice::Alert(&verdict), deadline_in(3_000))
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert_eq!(*count.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_reported_transient_without_the_url() {
        let (url, count) = webhook(vec![(500, ""); 10]).await;
        let verdict = crate::sns::sample_verdict();
        let error = notifier(&url)
            .send(Notice::Alert(&verdict), deadline_in(20_000))
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert_eq!(*count.lock().unwrap(), 5, "max_attempts");
        assert!(!error.to_string().contains("SECRETTOKEN"), "{error}");
    }

    #[tokio::test]
    async fn other_client_errors_are_permanent_and_not_retried() {
        let (url, count) = webhook(vec![(404, ""), (200, "")]).await;
        let verdict = crate::sns::sample_verdict();
        let error = notifier(&url)
            .send(Notice::Alert(&verdict), deadline_in(20_000))
            .await
            .unwrap_err();
        assert!(!error.is_transient());
        assert!(error.to_string().contains("404"));
        assert_eq!(*count.lock().unwrap(), 1);
    }

    /// A server that accepts each connection and closes it unanswered
    /// (it stays bound: no port is freed and reused).
    async fn hang_up() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        format!("http://{addr}/services/T0/B0/SECRETTOKEN")
    }

    #[tokio::test]
    async fn connection_errors_are_transient_and_never_show_the_url() {
        let url = hang_up().await;
        let verdict = crate::sns::sample_verdict();
        let error = notifier(&url)
            .send(Notice::Alert(&verdict), deadline_in(5_000))
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert!(!error.to_string().contains("SECRETTOKEN"), "{error}");
    }

    /// A secret source that hands out `urls` in turn: the first on
    /// `slack_webhook_url`, the next on each refetch.
    struct Rotating {
        urls: Vec<String>,
        refetches: Mutex<usize>,
    }

    impl Rotating {
        fn new(urls: &[&str]) -> Rotating {
            Rotating {
                urls: urls.iter().map(|u| u.to_string()).collect(),
                refetches: Mutex::new(0),
            }
        }

        fn refetches(&self) -> usize {
            *self.refetches.lock().unwrap()
        }
    }

    impl SecretSource for Rotating {
        async fn slack_webhook_url(&self) -> Result<Secret, PortError> {
            Ok(Secret::new(&self.urls[0]))
        }
    }

    impl WebhookSource for Rotating {
        async fn refetch_webhook_url(&self) -> Result<Secret, PortError> {
            let mut n = self.refetches.lock().unwrap();
            *n += 1;
            let url = &self.urls[(*n).min(self.urls.len() - 1)];
            Ok(Secret::new(url))
        }
    }

    fn rotating_notifier(source: Rotating) -> SlackNotifier<Rotating, SystemClock> {
        SlackNotifier::pinned(
            source,
            SystemClock,
            SlackPolicy {
                first_backoff: Duration::from_millis(10),
                deadline_reserve: Duration::from_millis(100),
                ..SlackPolicy::default()
            },
            AllowedHosts::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_refused_webhook_is_read_again_and_the_rotated_one_delivers() {
        for status in [401, 403, 404, 410] {
            let (old, old_count) = webhook(vec![(status, "")]).await;
            let (new, new_count) = webhook(vec![(200, "")]).await;
            let notifier = rotating_notifier(Rotating::new(&[&old, &new]));
            let verdict = crate::sns::sample_verdict();
            notifier
                .send(Notice::Alert(&verdict), deadline_in(20_000))
                .await
                .unwrap_or_else(|e| panic!("{status}: {e}"));
            assert_eq!(*old_count.lock().unwrap(), 1, "{status}");
            assert_eq!(*new_count.lock().unwrap(), 1, "{status}");
            assert_eq!(notifier.secrets.refetches(), 1, "{status}");
        }
    }

    #[tokio::test]
    async fn an_unchanged_refused_webhook_is_permanent_after_one_reread() {
        let (url, count) = webhook(vec![(404, ""), (200, "")]).await;
        let notifier = rotating_notifier(Rotating::new(&[&url, &url]));
        let verdict = crate::sns::sample_verdict();
        let error = notifier
            .send(Notice::Alert(&verdict), deadline_in(20_000))
            .await
            .unwrap_err();
        assert!(!error.is_transient(), "{error}");
        assert!(error.to_string().contains("unchanged"), "{error}");
        assert!(!error.to_string().contains("SECRETTOKEN"), "{error}");
        assert_eq!(*count.lock().unwrap(), 1, "the same URL is not retried");
        assert_eq!(notifier.secrets.refetches(), 1);
    }

    #[tokio::test]
    async fn a_rotated_webhook_that_is_refused_too_is_permanent_after_one_reread() {
        let (old, old_count) = webhook(vec![(403, "")]).await;
        let (new, new_count) = webhook(vec![(404, "")]).await;
        let third = "http://127.0.0.1:9/never";
        let notifier = rotating_notifier(Rotating::new(&[&old, &new, third]));
        let verdict = crate::sns::sample_verdict();
        let error = notifier
            .send(Notice::Alert(&verdict), deadline_in(20_000))
            .await
            .unwrap_err();
        assert!(!error.is_transient(), "{error}");
        assert!(error.to_string().contains("404"), "{error}");
        assert_eq!(*old_count.lock().unwrap(), 1);
        assert_eq!(*new_count.lock().unwrap(), 1);
        assert_eq!(notifier.secrets.refetches(), 1, "read again once only");
    }

    #[tokio::test]
    async fn a_bad_payload_is_not_a_reason_to_read_the_secret_again() {
        let (url, count) = webhook(vec![(400, "")]).await;
        let notifier = rotating_notifier(Rotating::new(&[&url, &url]));
        let verdict = crate::sns::sample_verdict();
        let error = notifier
            .send(Notice::Alert(&verdict), deadline_in(20_000))
            .await
            .unwrap_err();
        assert!(!error.is_transient(), "{error}");
        assert_eq!(*count.lock().unwrap(), 1);
        assert_eq!(notifier.secrets.refetches(), 0);
    }

    #[tokio::test]
    async fn redirects_are_refused_and_never_followed() {
        let (elsewhere, elsewhere_count) = webhook(vec![(200, ""); 3]).await;
        let location: &'static str =
            Box::leak(format!("Location: {elsewhere}\r\n").into_boxed_str());
        let (url, count) = webhook(vec![(302, location), (307, location)]).await;
        let notifier = rotating_notifier(Rotating::new(&[&url]));
        let verdict = crate::sns::sample_verdict();
        let error = notifier
            .send(Notice::Alert(&verdict), deadline_in(20_000))
            .await
            .unwrap_err();
        assert!(!error.is_transient(), "{error}");
        assert!(error.to_string().contains("redirect"), "{error}");
        assert_eq!(*count.lock().unwrap(), 1);
        assert_eq!(
            *elsewhere_count.lock().unwrap(),
            0,
            "the redirect was not followed"
        );
    }

    #[test]
    fn webhook_hosts_are_pinned_to_slack_and_loopback() {
        let slack = AllowedHosts::default();
        for good in [
            "https://hooks.slack.com/services/T0/B0/SECRETTOKEN",
            "https://HOOKS.slack.com./services/T0/B0/SECRETTOKEN",
            "http://127.0.0.1:9/services/T0/B0/SECRETTOKEN",
            "http://127.8.0.1:9/x",
            "http://localhost:9/x",
            "http://[::1]:9/x",
        ] {
            assert_eq!(slack.check(good), Ok(()), "{good}");
        }
        for bad in [
            "https://hooks.slack.com.evil.example/services/T0/B0/SECRETTOKEN",
            "https://evil.example/services/T0/B0/SECRETTOKEN",
            "https://slack.com/services/T0/B0/SECRETTOKEN",
            "http://hooks.slack.com/services/T0/B0/SECRETTOKEN",
            "https://user:SECRETTOKEN@hooks.slack.com/services/T0/B0/x",
            "ftp://127.0.0.1/SECRETTOKEN",
            "hooks.slack.com/services/T0/B0/SECRETTOKEN",
        ] {
            let problem = slack.check(bad).unwrap_err();
            assert!(!problem.contains("SECRETTOKEN"), "{problem}");
        }
        assert!(slack
            .check("https://evil.example/services/SECRETTOKEN")
            .unwrap_err()
            .contains("\"evil.example\" is not allowed"));

        let widened = AllowedHosts::widened_by("relay.example.com, Hooks.Example.org.").unwrap();
        assert_eq!(
            widened.hosts(),
            ["hooks.slack.com", "relay.example.com", "hooks.example.org"]
        );
        assert_eq!(widened.check("https://relay.example.com/hook"), Ok(()));
        assert_eq!(widened.check("https://hooks.slack.com/services/x"), Ok(()));
        assert!(widened.check("https://example.com/hook").is_err());
        assert_eq!(AllowedHosts::widened_by(" ").unwrap(), slack);
        for bad in [
            "https://relay.example.com",
            "relay_example.com",
            "a..b",
            "-a.com",
            "*.example.com",
        ] {
            assert!(AllowedHosts::widened_by(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_webhook_on_another_host_is_permanent_and_nothing_is_sent() {
        let (elsewhere, count) = webhook(vec![(200, "")]).await;
        // The stand-in is on loopback; only Slack's host is allowed here, so
        // name it by a non-loopback host that resolves to nothing we reach.
        let url = elsewhere.replace("http://127.0.0.1", "https://grantwatch-test.invalid");
        let notifier = rotating_notifier(Rotating::new(&[&url]));
        let verdict = crate::sns::sample_verdict();
        let error = notifier
            .send(Notice::Alert(&verdict), deadline_in(20_000))
            .await
            .unwrap_err();
        assert!(!error.is_transient(), "{error}");
        assert!(
            error.to_string().contains("grantwatch-test.invalid"),
            "{error}"
        );
        assert!(!error.to_string().contains("SECRETTOKEN"), "{error}");
        assert_eq!(*count.lock().unwrap(), 0);
    }

    /// Secrets Manager accepting the connection and never answering: the
    /// post ends before the invocation's deadline with a transient error.
    #[tokio::test]
    async fn a_silent_secrets_manager_ends_the_post_before_the_deadline_as_transient() {
        let (endpoint, accepted) = crate::sdk::tests::silent_endpoint().await;
        let config = crate::sdk::tests::client_config(&endpoint).await;
        let source =
            SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&config), "slack");
        let notifier = SlackNotifier::pinned(
            source,
            SystemClock,
            SlackPolicy::default(),
            AllowedHosts::default(),
        )
        .unwrap();
        let verdict = crate::sns::sample_verdict();
        let deadline = deadline_in(2_500);
        let error = notifier
            .send(Notice::Alert(&verdict), deadline)
            .await
            .unwrap_err();
        assert!(SystemClock.now_ms() < deadline, "ended before the deadline");
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().contains("GetSecretValue"), "{error}");
        assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    }
}

/// An HTTP server on loopback for adapter tests (Slack's webhook, Security
/// Hub): answers each request with the next scripted reply (then `200 ok`)
/// and keeps what it was sent.
#[cfg(test)]
pub(crate) mod stand_in {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub(crate) struct Reply {
        pub status: u16,
        /// Extra header lines, each ending in `\r\n`.
        pub headers: String,
        pub body: String,
    }

    /// One request received: its head (request line and headers) and body.
    #[derive(Debug, Clone)]
    pub(crate) struct Received {
        pub head: String,
        pub body: String,
    }

    pub(crate) struct Server {
        /// `http://127.0.0.1:<port>`.
        pub url: String,
        pub count: Arc<Mutex<usize>>,
        pub received: Arc<Mutex<Vec<Received>>>,
    }

    pub(crate) async fn serve(replies: Vec<Reply>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(Mutex::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (seen, kept) = (count.clone(), received.clone());
        tokio::spawn(async move {
            let mut replies = replies.into_iter();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = vec![0; 1 << 20];
                let mut read = 0;
                let mut request = None;
                // Read headers and body (Content-Length) of one request.
                loop {
                    let n = stream.read(&mut buffer[read..]).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if read >= end + 4 + length {
                            request = Some(Received {
                                head: text[..end].to_string(),
                                body: text[end + 4..].to_string(),
                            });
                            break;
                        }
                    }
                }
                *seen.lock().unwrap() += 1;
                kept.lock().unwrap().extend(request);
                let reply = replies.next().unwrap_or(Reply {
                    status: 200,
                    headers: String::new(),
                    body: "ok".to_string(),
                });
                let response = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{}",
                    reply.status,
                    reply.body.len(),
                    reply.headers,
                    reply.body
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        Server {
            url: format!("http://{addr}"),
            count,
            received,
        }
    }
}
