//! Where the report's summary goes: the watcher's channels (the alert
//! topic, Slack, Q Developer where configured), built by
//! `grantwatch_aws::channels` with the same redaction and runbook links.
//! The summary is one more notice (`Notice::Report`), rendered by
//! `grantwatch_core::render::report` like alerts and digests. Channels that
//! carry verdicts (EventBridge, Security Hub) have nothing to send for it
//! and are left out; Security Hub gets the report's own import instead
//! ([`SecurityHubImport`]: every standing grant at or above
//! `SECURITY_HUB_MIN_SEVERITY`, removed grants archived).

use grantwatch_aws::sdk::SystemClock;
use grantwatch_aws::securityhub::{import_report_findings, SecurityHub};
use grantwatch_core::app::report::SummaryChannel;
use grantwatch_core::app::watch::Clock;
use grantwatch_core::emf;
use grantwatch_core::ports::notify::{DynNotifier, Notice};
use grantwatch_core::ports::PortError;
use grantwatch_core::render::links::LinkSettings;
use grantwatch_core::render::report::ReportNotice;
use grantwatch_core::render::standing::asff_findings;
use grantwatch_core::report::Report;
use grantwatch_core::verdict::Severity;

/// How long one channel may keep retrying (Slack's 429/backoff). The report
/// keeps 60 s of its invocation for delivery, so this stays inside the
/// deadline.
const DELIVERY_BUDGET_MS: i64 = 45_000;

/// Channels that carry verdicts only: nothing to send for the summary.
const VERDICT_ONLY: [&str; 2] = ["eventbridge", "securityhub"];

pub enum Channel {
    /// The summary as `Notice::Report`.
    Notice(Box<dyn DynNotifier>),
    SecurityHub(SecurityHubImport),
}

impl Channel {
    /// The channel for a notifier; `None` for one that carries verdicts
    /// only.
    pub fn notice(notifier: Box<dyn DynNotifier>) -> Option<Channel> {
        if VERDICT_ONLY.contains(&notifier.channel()) {
            return None;
        }
        Some(Channel::Notice(notifier))
    }
}

/// The weekly report's Security Hub import (`SECURITY_HUB_ENABLED`): the
/// same finding ids as the watcher's, so each grant's finding is updated,
/// and removed grants' findings archived. Best effort like the watcher's
/// channel: findings Security Hub refuses are logged at error level and
/// counted (`DeliveriesRejected`, `Channel=securityhub`); a failed call
/// fails the delivery.
pub struct SecurityHubImport {
    pub hub: SecurityHub,
    pub min_severity: Severity,
    pub links: LinkSettings,
    /// The `FunctionName` of the count.
    pub function_name: String,
}

impl SecurityHubImport {
    async fn import(&self, report: &Report, deadline_ms: i64) -> Result<(), PortError> {
        let removed = report
            .diff
            .as_ref()
            .map(|d| d.removed_grants.as_slice())
            .unwrap_or(&[]);
        let imported = import_report_findings(
            &self.hub,
            asff_findings(report, self.min_severity, &self.links),
            removed,
            &report.generated_at,
            &self.links,
            deadline_ms,
        )
        .await?;
        tracing::info!(
            channel = "securityhub",
            accepted = imported.accepted,
            refused = imported.refused.len(),
            "report findings imported"
        );
        if !imported.refused.is_empty() {
            for r in &imported.refused {
                tracing::error!(channel = "securityhub", id = %r.id, code = %r.code, message = %r.message, "finding refused");
            }
            println!(
                "{}",
                emf::line(
                    &self.function_name,
                    SystemClock.now_ms(),
                    &[("Channel", "securityhub")],
                    &[("DeliveriesRejected", 1, "Count")],
                )
            );
        }
        Ok(())
    }
}

impl SummaryChannel for Channel {
    fn name(&self) -> &str {
        match self {
            Channel::Notice(notifier) => notifier.channel(),
            Channel::SecurityHub(_) => "securityhub",
        }
    }

    async fn deliver(&self, report: &Report, link: &str) -> Result<(), PortError> {
        let deadline_ms = SystemClock.now_ms() + DELIVERY_BUDGET_MS;
        match self {
            Channel::Notice(notifier) => {
                notifier
                    .send_boxed(Notice::Report(ReportNotice { report, link }), deadline_ms)
                    .await
            }
            Channel::SecurityHub(import) => import.import(report, deadline_ms).await,
        }
    }
}
