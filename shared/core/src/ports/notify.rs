//! Notifier and secret ports (SNS, Slack), with in-memory fakes for tests.

use crate::ports::PortError;
use crate::verdict::Verdict;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;

/// The alerts of one storm window, announced as one message per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Epoch second the window starts at.
    pub window_start: i64,
    pub window_seconds: u64,
    /// Every alert of the window beyond the storm threshold.
    pub alerts: Vec<Verdict>,
}

/// What to announce.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    Alert(&'a Verdict),
    Digest(&'a Digest),
}

impl Notice<'_> {
    /// Event ids the notice covers (for logs).
    pub fn event_ids(&self) -> Vec<&str> {
        match self {
            Notice::Alert(v) => vec![v.event_id.as_str()],
            Notice::Digest(d) => d.alerts.iter().map(|v| v.event_id.as_str()).collect(),
        }
    }
}

/// How the watcher treats a channel's failures (docs/watcher.md,
/// "Reliability"). Every channel declares its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelClass {
    /// Must carry every alert: any failure, permanent or transient, fails
    /// the invocation (retried, then kept by the on-failure destination).
    Mandatory,
    /// A permanent rejection is logged at error level, counted
    /// (`DeliveriesRejected`) and alarmed, and the invocation succeeds; a
    /// transient failure is retried.
    BestEffort,
}

/// One alert channel. Each renders the notice its own way (with
/// `render::*`) and sends it before `deadline_ms` (epoch milliseconds).
pub trait Notifier: Send + Sync {
    /// Stable channel name (`sns`, `slack`): the ledger's delivery key.
    fn channel(&self) -> &str;

    /// The channel's class; best effort unless it says otherwise.
    fn class(&self) -> ChannelClass {
        ChannelClass::BestEffort
    }

    /// Send the notice. `PortError::Transient` when a retry can fix it,
    /// `Permanent` for configuration errors (not retried).
    fn send(
        &self,
        notice: Notice<'_>,
        deadline_ms: i64,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A secret value whose `Debug`/`Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the Slack webhook URL comes from (Secrets Manager).
pub trait SecretSource: Send + Sync {
    fn slack_webhook_url(&self) -> impl Future<Output = Result<Secret, PortError>> + Send;
}

/// A secret source holding a fixed value (tests).
#[derive(Debug, Clone)]
pub struct StaticSecret(pub Secret);

impl SecretSource for StaticSecret {
    async fn slack_webhook_url(&self) -> Result<Secret, PortError> {
        Ok(self.0.clone())
    }
}

/// A notifier that records what it was asked to send, and fails as told.
#[derive(Debug)]
pub struct RecordingNotifier {
    channel: String,
    sent: Mutex<Vec<Vec<String>>>,
    failures: Mutex<Vec<PortError>>,
}

impl RecordingNotifier {
    pub fn new(channel: &str) -> Self {
        RecordingNotifier {
            channel: channel.to_string(),
            sent: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// Fail the next sends with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = PortError>) {
        lock(&self.failures).extend(errors);
    }

    /// Event ids of each notice sent, one entry per message.
    pub fn sent(&self) -> Vec<Vec<String>> {
        lock(&self.sent).clone()
    }

    /// Number of messages sent.
    pub fn count(&self) -> usize {
        lock(&self.sent).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Notifier for RecordingNotifier {
    fn channel(&self) -> &str {
        &self.channel
    }

    async fn send(&self, notice: Notice<'_>, _deadline_ms: i64) -> Result<(), PortError> {
        {
            let mut failures = lock(&self.failures);
            if !failures.is_empty() {
                return Err(failures.remove(0));
            }
        }
        let ids = notice.event_ids().into_iter().map(str::to_string).collect();
        lock(&self.sent).push(ids);
        Ok(())
    }
}
