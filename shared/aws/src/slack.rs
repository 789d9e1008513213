//! Slack incoming-webhook notifier (reqwest + rustls).
//!
//! - 200: delivered.
//! - 429: wait `Retry-After` (default 1 s) and try again, if the wait fits
//!   before the invocation's deadline; else a transient failure.
//! - 5xx, timeouts, connection errors: retry with exponential backoff
//!   (0.5 s, 1 s, 2 s, ... capped at 8 s) while it fits before the
//!   deadline, at most [`SlackPolicy::max_attempts`] tries; then transient.
//! - other 4xx (404 `no_service`, 403 `invalid_token`, 400 `invalid_payload`,
//!   410 `channel_is_archived`): a configuration error, permanent, not retried.
//!
//! The webhook URL is a credential: it comes from a [`SecretSource`], lives
//! in a [`Secret`] (redacted in Debug/Display), and errors are built with
//! `reqwest::Error::without_url`, so it never reaches a log or an error.

use grantwatch_core::app::watch::Clock;
use grantwatch_core::ports::notify::{Notice, Notifier, SecretSource};
use grantwatch_core::ports::PortError;
use grantwatch_core::render::slack;
use std::time::Duration;

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

pub struct SlackNotifier<S, C> {
    http: reqwest::Client,
    secrets: S,
    clock: C,
    policy: SlackPolicy,
}

/// The webhook payload for a notice (rendering lives in `render::slack`).
pub fn render(notice: Notice<'_>) -> serde_json::Value {
    match notice {
        Notice::Alert(verdict) => slack::alert(verdict),
        Notice::Digest(digest) => slack::digest(&digest.alerts, &digest.window_words()),
    }
}

impl<S: SecretSource, C: Clock> SlackNotifier<S, C> {
    pub fn new(http: reqwest::Client, secrets: S, clock: C, policy: SlackPolicy) -> Self {
        SlackNotifier {
            http,
            secrets,
            clock,
            policy,
        }
    }

    /// Milliseconds left before the deadline, less the reserve.
    fn time_left(&self, deadline_ms: i64) -> i64 {
        deadline_ms - self.clock.now_ms() - self.policy.deadline_reserve.as_millis() as i64
    }
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    RetryAfter(Duration, String),
    Backoff(String),
    Rejected(String),
}

impl<S: SecretSource, C: Clock> Notifier for SlackNotifier<S, C> {
    fn channel(&self) -> &str {
        "slack"
    }

    async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
        self.post(&render(notice), deadline_ms).await
    }
}

impl<S: SecretSource, C: Clock> SlackNotifier<S, C> {
    /// Post a Block Kit payload (alerts, digests, the report's summary):
    /// honours 429 `Retry-After`, retries 5xx and connection errors with
    /// backoff until `deadline_ms` (epoch ms), never retries other 4xx.
    pub async fn post(
        &self,
        payload: &serde_json::Value,
        deadline_ms: i64,
    ) -> Result<(), PortError> {
        let url = self.secrets.slack_webhook_url().await?;
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
                Attempt::Rejected(why) => {
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
        429 => Attempt::RetryAfter(
            Duration::from_secs(retry_after.unwrap_or(1)),
            format!("Slack answered HTTP 429 {body}"),
        ),
        500..=599 => Attempt::Backoff(format!("Slack answered HTTP {status} {body}")),
        _ => Attempt::Rejected(format!("Slack answered HTTP {status} {body}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::SystemClock;
    use grantwatch_core::ports::notify::{Secret, StaticSecret};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A webhook that answers each connection with the next scripted
    /// (status, headers) and counts requests.
    async fn webhook(replies: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<usize>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(Mutex::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            let mut replies = replies.into_iter();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = vec![0; 65536];
                let mut read = 0;
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
                            break;
                        }
                    }
                }
                *seen.lock().unwrap() += 1;
                let (status, extra) = replies.next().unwrap_or((200, ""));
                let body = if status == 200 { "ok" } else { "error" };
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        (format!("http://{addr}/services/T0/B0/SECRETTOKEN"), count)
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

    #[tokio::test]
    async fn connection_errors_are_transient_and_never_show_the_url() {
        // Bind then drop: nothing listens on this port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/services/T0/B0/SECRETTOKEN");
        let verdict = crate::sns::sample_verdict();
        let error = notifier(&url)
            .send(Notice::Alert(&verdict), deadline_in(5_000))
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert!(!error.to_string().contains("SECRETTOKEN"), "{error}");
    }
}
