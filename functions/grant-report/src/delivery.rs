//! Where the report's summary goes: the alert topic (an e-mail that
//! subscribers read) and, when configured, Slack. The words come from
//! `grantwatch_core::report::summary`; sending is the watcher's adapters
//! (SNS attributes, Slack's 429/backoff handling and URL redaction).

use grantwatch_aws::sdk::SystemClock;
use grantwatch_aws::secrets::SecretsManagerSource;
use grantwatch_aws::slack::SlackNotifier;
use grantwatch_aws::sns::SnsNotifier;
use grantwatch_core::app::report::SummaryChannel;
use grantwatch_core::app::watch::Clock;
use grantwatch_core::ports::PortError;
use grantwatch_core::report::{summary, Report};

/// How long the Slack summary may keep retrying. The report keeps 60 s of
/// its invocation for delivery, so this stays inside the deadline.
const SLACK_DELIVERY_BUDGET_MS: i64 = 45_000;

pub enum Channel {
    Sns(SnsNotifier),
    Slack(SlackNotifier<SecretsManagerSource, SystemClock>),
}

impl SummaryChannel for Channel {
    fn name(&self) -> &'static str {
        match self {
            Channel::Sns(_) => "sns",
            Channel::Slack(_) => "slack",
        }
    }

    async fn deliver(&self, report: &Report, link: &str) -> Result<(), PortError> {
        match self {
            Channel::Sns(sns) => sns.publish(&summary::sns(report, link)).await,
            Channel::Slack(slack) => {
                let deadline_ms = SystemClock.now_ms() + SLACK_DELIVERY_BUDGET_MS;
                slack.post(&summary::slack(report, link), deadline_ms).await
            }
        }
    }
}
