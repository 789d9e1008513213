//! Where the report's summary goes: the watcher's channels (the alert
//! topic, Slack, Q Developer where configured), built by
//! `grantwatch_aws::channels` with the same redaction and runbook links.
//! The summary is one more notice (`Notice::Report`), rendered by
//! `grantwatch_core::render::report` like alerts and digests. Channels that
//! carry verdicts (EventBridge, Security Hub) have nothing to send for it.

use grantwatch_aws::sdk::SystemClock;
use grantwatch_core::app::report::SummaryChannel;
use grantwatch_core::app::watch::Clock;
use grantwatch_core::ports::notify::{DynNotifier, Notice};
use grantwatch_core::ports::PortError;
use grantwatch_core::render::report::ReportNotice;
use grantwatch_core::report::Report;

/// How long one channel may keep retrying (Slack's 429/backoff). The report
/// keeps 60 s of its invocation for delivery, so this stays inside the
/// deadline.
const DELIVERY_BUDGET_MS: i64 = 45_000;

pub struct Channel {
    /// The notifier's name, kept for the life of the process (the channels
    /// are built once, at start).
    name: &'static str,
    notifier: Box<dyn DynNotifier>,
}

impl Channel {
    pub fn new(notifier: Box<dyn DynNotifier>) -> Channel {
        Channel {
            name: Box::leak(notifier.channel().to_string().into_boxed_str()),
            notifier,
        }
    }
}

impl SummaryChannel for Channel {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn deliver(&self, report: &Report, link: &str) -> Result<(), PortError> {
        let deadline_ms = SystemClock.now_ms() + DELIVERY_BUDGET_MS;
        self.notifier
            .send_boxed(Notice::Report(ReportNotice { report, link }), deadline_ms)
            .await
    }
}
