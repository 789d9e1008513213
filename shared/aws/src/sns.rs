//! SNS notifier: publishes what `render::sns` makes of an alert or a digest
//! (subject, e-mail body, message attributes for subscription filters).

use crate::sdk::classify;
use aws_sdk_sns::types::MessageAttributeValue;
use grantwatch_core::ports::notify::{Notice, Notifier};
use grantwatch_core::ports::PortError;
use grantwatch_core::render::sns::{self, SnsMessage};

pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

/// The SNS message for a notice (rendering lives in `render::sns`).
pub fn render(notice: Notice<'_>) -> SnsMessage {
    match notice {
        Notice::Alert(verdict) => sns::alert(verdict),
        Notice::Digest(digest) => sns::digest(&digest.alerts, &digest.window_words()),
    }
}

impl Notifier for SnsNotifier {
    fn channel(&self) -> &str {
        "sns"
    }

    async fn send(&self, notice: Notice<'_>, _deadline_ms: i64) -> Result<(), PortError> {
        self.publish(&render(notice)).await
    }
}

impl SnsNotifier {
    /// Publish a rendered message (alerts, digests, the report's summary).
    pub async fn publish(&self, message: &SnsMessage) -> Result<(), PortError> {
        let mut publish = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&message.subject)
            .message(&message.message);
        for (name, value) in &message.attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| PortError::Permanent(format!("attribute {name}: {e}")))?;
            publish = publish.message_attributes(name, attribute);
        }
        publish.send().await.map_err(|e| classify("Publish", &e))?;
        Ok(())
    }
}

/// A real alerting verdict: the risky manual grant fixture, judged.
#[cfg(test)]
pub(crate) fn sample_verdict() -> grantwatch_core::verdict::Verdict {
    use grantwatch_core::event::{parse_eventbridge_event, Parsed};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/watcher/manual-cross-account-grant.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    let value: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    let Ok(Parsed::Grant(event)) = parse_eventbridge_event(&value) else {
        panic!("fixture is not a grant event")
    };
    let config = grantwatch_core::app::watch::WatchConfig::default();
    let policy = grantwatch_core::app::watch::policy(&config, 1_795_000_000_000);
    let verdict = grantwatch_core::judge::judge_event(&event, None, &policy);
    assert!(verdict.alert, "the fixture alerts");
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
    use aws_sdk_sns::types::error::{AuthorizationErrorException, KmsThrottlingException};
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn publishes_subject_body_and_every_attribute() {
        let verdict = sample_verdict();
        let expected = sns::alert(&verdict);
        let rule = mock!(aws_sdk_sns::Client::publish)
            .match_requests(move |req| {
                req.subject() == Some(expected.subject.as_str())
                    && req.message() == Some(expected.message.as_str())
                    && req.message_attributes().is_some_and(|a| {
                        a.len() == expected.attributes.len()
                            && expected.attributes.iter().all(|(k, v)| {
                                a.get(k).and_then(|x| x.string_value()) == Some(v.as_str())
                            })
                    })
            })
            .then_output(|| PublishOutput::builder().message_id("m-1").build());
        let client = mock_client!(aws_sdk_sns, [&rule]);
        let notifier = SnsNotifier::new(client, "arn:aws:sns:us-east-1:123456789012:alerts");
        notifier.send(Notice::Alert(&verdict), 0).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn throttling_is_transient_and_authorization_is_permanent() {
        let verdict = sample_verdict();
        let throttled = mock!(aws_sdk_sns::Client::publish).then_error(|| {
            PublishError::KmsThrottlingException(
                KmsThrottlingException::builder()
                    .message("slow")
                    .meta(crate::sdk::tests::meta("KMSThrottling"))
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sns, [&throttled]);
        let error = SnsNotifier::new(client, "t")
            .send(Notice::Alert(&verdict), 0)
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");

        let denied = mock!(aws_sdk_sns::Client::publish).then_error(|| {
            PublishError::AuthorizationErrorException(
                AuthorizationErrorException::builder()
                    .message("no")
                    .meta(crate::sdk::tests::meta("AuthorizationError"))
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sns, [&denied]);
        let error = SnsNotifier::new(client, "t")
            .send(Notice::Alert(&verdict), 0)
            .await
            .unwrap_err();
        assert!(!error.is_transient(), "{error}");
    }
}
