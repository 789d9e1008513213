//! Notifier and secret ports (SNS, Slack). Test fakes are in
//! `ports::fakes` (feature `fakes`).

use crate::ports::ledger::DigestTally;
use crate::ports::PortError;
use crate::render::report::ReportNotice;
use crate::verdict::Verdict;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The alerts of one storm window, announced as one message per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Epoch second the window starts at.
    pub window_start: i64,
    pub window_seconds: u64,
    /// The worst alerts of the window beyond the storm threshold (at most
    /// `ledger::DIGEST_WORST`, most severe first); `tally` counts them all.
    pub alerts: Vec<Verdict>,
    /// Counts of every alert in the digest (total, by severity, actor, key).
    pub tally: DigestTally,
}

/// What to announce.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    Alert(&'a Verdict),
    Digest(&'a Digest),
    /// The weekly report is ready: its summary and the link to
    /// report.html (rendered by `render::report`). Channels that carry
    /// verdicts (EventBridge, Security Hub) have nothing to send for it.
    Report(ReportNotice<'a>),
}

impl Notice<'_> {
    /// Event ids the notice covers (for logs).
    pub fn event_ids(&self) -> Vec<&str> {
        match self {
            Notice::Alert(v) => vec![v.event_id.as_str()],
            Notice::Digest(d) => d.alerts.iter().map(|v| v.event_id.as_str()).collect(),
            Notice::Report(_) => Vec::new(),
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

/// Boxed send future of [`DynNotifier`].
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PortError>> + Send + 'a>>;

/// [`Notifier`] in a form that fits in a list (`Vec<Box<dyn DynNotifier>>`);
/// every notifier is one.
pub trait DynNotifier: Send + Sync {
    fn channel(&self) -> &str;
    fn class(&self) -> ChannelClass;
    fn send_boxed<'a>(&'a self, notice: Notice<'a>, deadline_ms: i64) -> SendFuture<'a>;
}

impl<N: Notifier> DynNotifier for N {
    fn channel(&self) -> &str {
        Notifier::channel(self)
    }

    fn class(&self) -> ChannelClass {
        Notifier::class(self)
    }

    fn send_boxed<'a>(&'a self, notice: Notice<'a>, deadline_ms: i64) -> SendFuture<'a> {
        Box::pin(self.send(notice, deadline_ms))
    }
}

/// A shared notifier is a notifier (tests keep a handle to inspect it).
impl<N: Notifier> Notifier for Arc<N> {
    fn channel(&self) -> &str {
        N::channel(self)
    }

    fn class(&self) -> ChannelClass {
        N::class(self)
    }

    fn send(
        &self,
        notice: Notice<'_>,
        deadline_ms: i64,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        N::send(self, notice, deadline_ms)
    }
}

/// A notifier with its class set by the wiring (e.g. SNS as mandatory,
/// whatever the adapter's default).
pub struct WithClass<N>(pub N, pub ChannelClass);

impl<N: Notifier> Notifier for WithClass<N> {
    fn channel(&self) -> &str {
        self.0.channel()
    }

    fn class(&self) -> ChannelClass {
        self.1
    }

    fn send(
        &self,
        notice: Notice<'_>,
        deadline_ms: i64,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.0.send(notice, deadline_ms)
    }
}
