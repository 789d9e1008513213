//! Where the report's summary goes: the alert topic (an e-mail that
//! subscribers read) and, when configured, Slack. The words come from
//! `grantwatch_core::report::summary`; this only sends them.

use grantwatch_aws::sdk::classify;
use grantwatch_aws::secrets::SecretsManagerSource;
use grantwatch_core::app::report::SummaryChannel;
use grantwatch_core::ports::notify::SecretSource;
use grantwatch_core::ports::PortError;
use grantwatch_core::report::{summary, Report};
use std::time::Duration;

pub enum Channel {
    Sns {
        client: aws_sdk_sns::Client,
        topic_arn: String,
    },
    Slack {
        http: reqwest::Client,
        secrets: SecretsManagerSource,
    },
}

impl SummaryChannel for Channel {
    fn name(&self) -> &'static str {
        match self {
            Channel::Sns { .. } => "sns",
            Channel::Slack { .. } => "slack",
        }
    }

    async fn deliver(&self, report: &Report, link: &str) -> Result<(), PortError> {
        match self {
            Channel::Sns { client, topic_arn } => {
                let message = summary::sns(report, link);
                let mut publish = client
                    .publish()
                    .topic_arn(topic_arn)
                    .subject(&message.subject)
                    .message(&message.message);
                for (name, value) in &message.attributes {
                    let attribute = aws_sdk_sns::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .map_err(|e| PortError::Permanent(format!("attribute {name}: {e}")))?;
                    publish = publish.message_attributes(name, attribute);
                }
                publish.send().await.map_err(|e| classify("Publish", &e))?;
                Ok(())
            }
            Channel::Slack { http, secrets } => {
                let url = secrets.slack_webhook_url().await?;
                let response = http
                    .post(url.expose())
                    .timeout(Duration::from_secs(10))
                    .json(&summary::slack(report, link))
                    .send()
                    .await
                    // Never the URL: it is the secret.
                    .map_err(|e| PortError::Transient(format!("Slack: {}", e.without_url())))?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else if status.as_u16() == 429 || status.is_server_error() {
                    Err(PortError::Transient(format!(
                        "Slack answered HTTP {status}"
                    )))
                } else {
                    Err(PortError::Permanent(format!(
                        "Slack answered HTTP {status}"
                    )))
                }
            }
        }
    }
}
