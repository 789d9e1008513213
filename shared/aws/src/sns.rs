//! SNS notifier: publishes what `render::sns` makes of an alert or a digest
//! with `MessageStructure=json`: e-mail subscribers get the text body,
//! every other protocol (SQS, Lambda, HTTP/S, Firehose) the verdict as
//! JSON; `finding_codes` is a `String.Array` attribute and `count` a
//! `Number`, so filter policies can match one code or a range (the
//! contract is in docs/alerts.md). The report's summary is published as
//! plain text ([`SnsNotifier::publish`]).
//!
//! The alert topic is the watcher's **mandatory** channel: every failure is
//! an error. Permanent ones (the topic gone, no permission, a bad request,
//! the topic's KMS key disabled, missing, not allowed or not usable) are
//! [`PortError::Permanent`] with a message saying what to fix, and logged at
//! error level here; throttling, 5xx and timeouts are transient. Each
//! publish of an alert is bounded by the watcher's timeouts and the time
//! left before the invocation's deadline ([`sdk::call_timeouts`]).

use crate::sdk::{self, classify, SystemClock};
use aws_sdk_sns::error::SdkError;
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;
use grantwatch_core::ports::clock::Clock;
use grantwatch_core::ports::notify::{ChannelClass, Notice, Notifier};
use grantwatch_core::ports::PortError;
use grantwatch_core::render::links::LinkSettings;
use grantwatch_core::render::sns::{self, Attribute, SnsMessage, StructuredMessage};
use std::collections::BTreeMap;

pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    links: LinkSettings,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
            links: LinkSettings::default(),
        }
    }

    /// The deployment's link settings (runbook pages).
    pub fn with_links(mut self, links: LinkSettings) -> Self {
        self.links = links;
        self
    }

    /// The SNS message for a notice (rendering lives in `render::sns`).
    pub fn render(&self, notice: Notice<'_>) -> StructuredMessage {
        match notice {
            Notice::Alert(verdict) => sns::structured_alert_with(verdict, &self.links),
            Notice::Digest(digest) => sns::structured_digest_notice(digest),
            Notice::Report(r) => grantwatch_core::render::report::structured_sns(&r),
        }
    }
}

/// Amazon Q Developer in chat applications: an opt-in topic that gets each
/// notice in Q Developer's custom-notification format
/// (`render::chatbot`), the key ARN as thread id. Best effort.
pub struct ChatbotNotifier(SnsNotifier);

impl ChatbotNotifier {
    pub fn new(sns: SnsNotifier) -> Self {
        ChatbotNotifier(sns)
    }
}

impl Notifier for ChatbotNotifier {
    fn channel(&self) -> &str {
        "chatbot"
    }

    fn class(&self) -> ChannelClass {
        ChannelClass::BestEffort
    }

    async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
        use grantwatch_core::render::chatbot;
        let (kind, severity, body) = match notice {
            Notice::Alert(v) => (
                "alert",
                v.severity,
                chatbot::custom_notification(v, &self.0.links),
            ),
            Notice::Digest(d) => (
                "digest",
                d.alerts
                    .iter()
                    .map(|v| v.severity)
                    .max()
                    .unwrap_or(grantwatch_core::verdict::Severity::Info),
                chatbot::digest_notification(d),
            ),
            Notice::Report(r) => (
                "report",
                r.worst(),
                grantwatch_core::render::report::chatbot(&r),
            ),
        };
        let mut attributes = BTreeMap::new();
        attributes.insert("kind".to_string(), kind.to_string());
        attributes.insert("severity".to_string(), severity.as_str().to_string());
        let message = SnsMessage {
            subject: "grantwatch".to_string(),
            message: body.to_string(),
            attributes,
        };
        let now = SystemClock.now_ms();
        let timeouts = sdk::call_timeouts("Publish", deadline_ms, now)?;
        sdk::before_deadline(
            "Publish",
            deadline_ms,
            now,
            self.0.publish_with(&Plain(&message), Some(timeouts)),
        )
        .await
    }
}

/// One body for every protocol (`Message` as is, attributes all `String`).
struct Plain<'a>(&'a SnsMessage);

/// What `Publish` sends: subject, message, structure, typed attributes.
trait Publishable {
    fn subject(&self) -> &str;
    fn message(&self) -> &str;
    /// `Some("json")` when the message holds one body per protocol.
    fn structure(&self) -> Option<&'static str>;
    fn attributes(&self) -> Vec<(&str, &'static str, String)>;
}

impl Publishable for Plain<'_> {
    fn subject(&self) -> &str {
        &self.0.subject
    }
    fn message(&self) -> &str {
        &self.0.message
    }
    fn structure(&self) -> Option<&'static str> {
        None
    }
    fn attributes(&self) -> Vec<(&str, &'static str, String)> {
        self.0
            .attributes
            .iter()
            .map(|(name, value)| (name.as_str(), "String", value.clone()))
            .collect()
    }
}

impl Publishable for StructuredMessage {
    fn subject(&self) -> &str {
        &self.subject
    }
    fn message(&self) -> &str {
        &self.message
    }
    fn structure(&self) -> Option<&'static str> {
        Some("json")
    }
    fn attributes(&self) -> Vec<(&str, &'static str, String)> {
        typed_attributes(&self.attributes)
    }
}

fn typed_attributes(attributes: &BTreeMap<String, Attribute>) -> Vec<(&str, &'static str, String)> {
    attributes
        .iter()
        .map(|(name, value)| (name.as_str(), value.data_type(), value.string_value()))
        .collect()
}

impl Notifier for SnsNotifier {
    fn channel(&self) -> &str {
        "sns"
    }

    /// The alert topic must carry every alert (docs/watcher.md, "Reliability").
    fn class(&self) -> ChannelClass {
        ChannelClass::Mandatory
    }

    async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
        self.publish_before(&self.render(notice), deadline_ms).await
    }
}

impl SnsNotifier {
    /// Publish a plain message (one body for every protocol) with the
    /// client's own timeouts (the report's summary).
    pub async fn publish(&self, message: &SnsMessage) -> Result<(), PortError> {
        self.publish_with(&Plain(message), None).await
    }

    /// Publish a structured message, every attempt and the whole call
    /// ending before `deadline_ms` (epoch ms) less the reserve: a transient
    /// error if it cannot.
    pub async fn publish_before(
        &self,
        message: &StructuredMessage,
        deadline_ms: i64,
    ) -> Result<(), PortError> {
        let now = SystemClock.now_ms();
        let timeouts = sdk::call_timeouts("Publish", deadline_ms, now)?;
        sdk::before_deadline(
            "Publish",
            deadline_ms,
            now,
            self.publish_with(message, Some(timeouts)),
        )
        .await
    }

    async fn publish_with(
        &self,
        message: &(impl Publishable + Sync),
        timeouts: Option<aws_smithy_types::timeout::TimeoutConfig>,
    ) -> Result<(), PortError> {
        let mut publish = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(message.subject())
            .message(message.message())
            .set_message_structure(message.structure().map(str::to_string));
        for (name, data_type, value) in message.attributes() {
            let attribute = MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| PortError::Permanent(format!("attribute {name}: {e}")))?;
            publish = publish.message_attributes(name, attribute);
        }
        let result = match timeouts {
            Some(timeouts) => {
                publish
                    .customize()
                    .config_override(
                        aws_sdk_sns::config::Builder::default().timeout_config(timeouts),
                    )
                    .send()
                    .await
            }
            None => publish.send().await,
        };
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = publish_error(&error);
                if !error.is_transient() {
                    tracing::error!(channel = "sns", problem = %error, "SNS refused the alert: check the alert topic and its KMS key");
                }
                Err(error)
            }
        }
    }
}

/// Publish's failures, with what to fix for the permanent ones. Typed
/// variants first (they do not depend on the error metadata), then the
/// shared classification by code and HTTP status.
fn publish_error(
    error: &SdkError<PublishError, aws_smithy_runtime_api::http::Response>,
) -> PortError {
    let generic = classify("Publish", error);
    let Some(service) = error.as_service_error() else {
        return generic;
    };
    let fix = match service {
        PublishError::NotFoundException(_) => {
            "the alert topic does not exist: check ALERT_TOPIC_ARN"
        }
        PublishError::AuthorizationErrorException(_) => {
            "the function may not publish to the alert topic: check its role and the topic policy"
        }
        PublishError::InvalidParameterException(_)
        | PublishError::InvalidParameterValueException(_)
        | PublishError::ValidationException(_) => "SNS refused the message as invalid",
        PublishError::KmsDisabledException(_) => "the alert topic's KMS key is disabled",
        PublishError::KmsNotFoundException(_) => "the alert topic's KMS key does not exist",
        PublishError::KmsAccessDeniedException(_) => {
            "the function may not use the alert topic's KMS key (kms:GenerateDataKey*, kms:Decrypt)"
        }
        PublishError::KmsInvalidStateException(_) => {
            "the alert topic's KMS key cannot be used in its state (pending deletion or import)"
        }
        PublishError::KmsOptInRequired(_) => "the alert topic's KMS key needs an opt-in",
        PublishError::InvalidSecurityException(_) => "the request's credentials were refused",
        PublishError::EndpointDisabledException(_)
        | PublishError::PlatformApplicationDisabledException(_) => "the SNS endpoint is disabled",
        _ => return generic,
    };
    let code = service.meta().code().unwrap_or("error");
    PortError::Permanent(format!("Publish: {code}: {fix}"))
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

    fn in_ms(ms: i64) -> i64 {
        SystemClock.now_ms() + ms
    }

    #[tokio::test]
    async fn publishes_structured_with_typed_attributes() {
        let verdict = sample_verdict();
        let expected = sns::structured_alert(&verdict);
        let rule = mock!(aws_sdk_sns::Client::publish)
            .match_requests(move |req| {
                req.subject() == Some(expected.subject.as_str())
                    && req.message() == Some(expected.message.as_str())
                    && req.message_structure() == Some("json")
                    && req.message_attributes().is_some_and(|a| {
                        a.len() == expected.attributes.len()
                            && expected.attributes.iter().all(|(k, v)| {
                                a.get(k).is_some_and(|x| {
                                    x.data_type() == v.data_type()
                                        && x.string_value() == Some(v.string_value().as_str())
                                })
                            })
                            && a.get("finding_codes").map(|x| x.data_type()) == Some("String.Array")
                    })
            })
            .then_output(|| PublishOutput::builder().message_id("m-1").build());
        let client = mock_client!(aws_sdk_sns, [&rule]);
        let notifier = SnsNotifier::new(client, "arn:aws:sns:us-east-1:123456789012:alerts");
        assert_eq!(notifier.class(), ChannelClass::Mandatory);
        notifier
            .send(Notice::Alert(&verdict), in_ms(20_000))
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    /// The report's summary: one body for every protocol, `String`s only.
    #[tokio::test]
    async fn a_plain_message_is_published_without_structure() {
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("kind".to_string(), "report".to_string());
        let message = SnsMessage {
            subject: "Weekly KMS grant report".into(),
            message: "body".into(),
            attributes,
        };
        let rule = mock!(aws_sdk_sns::Client::publish)
            .match_requests(|req| {
                req.message_structure().is_none()
                    && req.message() == Some("body")
                    && req
                        .message_attributes()
                        .and_then(|a| a.get("kind"))
                        .is_some_and(|k| {
                            k.data_type() == "String" && k.string_value() == Some("report")
                        })
            })
            .then_output(|| PublishOutput::builder().message_id("m-2").build());
        let client = mock_client!(aws_sdk_sns, [&rule]);
        SnsNotifier::new(client, "t")
            .publish(&message)
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    /// The Q Developer topic gets the custom-notification JSON, plain.
    #[tokio::test]
    async fn the_chatbot_topic_gets_a_custom_notification() {
        let verdict = sample_verdict();
        let key = grantwatch_core::render::describe::key_for_command(&verdict)
            .unwrap_or("grantwatch")
            .to_string();
        let rule = mock!(aws_sdk_sns::Client::publish)
            .match_requests(move |req| {
                req.message_structure().is_none()
                    && req.message().is_some_and(|m| {
                        serde_json::from_str::<serde_json::Value>(m).is_ok_and(|n| {
                            n["source"] == "custom" && n["metadata"]["threadId"] == key.as_str()
                        })
                    })
            })
            .then_output(|| PublishOutput::builder().message_id("m-3").build());
        let client = mock_client!(aws_sdk_sns, [&rule]);
        let notifier = ChatbotNotifier::new(SnsNotifier::new(client, "t"));
        assert_eq!(notifier.class(), ChannelClass::BestEffort);
        notifier
            .send(Notice::Alert(&verdict), in_ms(20_000))
            .await
            .unwrap();
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
            .send(Notice::Alert(&verdict), in_ms(20_000))
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
            .send(Notice::Alert(&verdict), in_ms(20_000))
            .await
            .unwrap_err();
        assert!(!error.is_transient(), "{error}");
    }

    /// The permanent errors SNS documents for Publish, the topic's KMS key
    /// ones included (moto cannot make an encrypted topic fail): each is
    /// permanent and says what to fix, naming SNS's error code.
    #[tokio::test]
    async fn permanent_publish_errors_say_what_to_fix() {
        use aws_sdk_sns::types::error::*;
        type Make = fn() -> PublishError;
        let cases: [(&str, Make, &str); 8] = [
            (
                "NotFound",
                || {
                    PublishError::NotFoundException(
                        NotFoundException::builder()
                            .meta(crate::sdk::tests::meta("NotFound"))
                            .build(),
                    )
                },
                "topic does not exist",
            ),
            (
                "AuthorizationError",
                || {
                    PublishError::AuthorizationErrorException(
                        AuthorizationErrorException::builder()
                            .meta(crate::sdk::tests::meta("AuthorizationError"))
                            .build(),
                    )
                },
                "may not publish",
            ),
            (
                "InvalidParameter",
                || {
                    PublishError::InvalidParameterException(
                        InvalidParameterException::builder()
                            .meta(crate::sdk::tests::meta("InvalidParameter"))
                            .build(),
                    )
                },
                "invalid",
            ),
            (
                "KMSDisabled",
                || {
                    PublishError::KmsDisabledException(
                        KmsDisabledException::builder()
                            .meta(crate::sdk::tests::meta("KMSDisabled"))
                            .build(),
                    )
                },
                "KMS key is disabled",
            ),
            (
                "KMSAccessDenied",
                || {
                    PublishError::KmsAccessDeniedException(
                        KmsAccessDeniedException::builder()
                            .meta(crate::sdk::tests::meta("KMSAccessDenied"))
                            .build(),
                    )
                },
                "kms:GenerateDataKey",
            ),
            (
                "KMSNotFound",
                || {
                    PublishError::KmsNotFoundException(
                        KmsNotFoundException::builder()
                            .meta(crate::sdk::tests::meta("KMSNotFound"))
                            .build(),
                    )
                },
                "KMS key does not exist",
            ),
            (
                "KMSInvalidState",
                || {
                    PublishError::KmsInvalidStateException(
                        KmsInvalidStateException::builder()
                            .meta(crate::sdk::tests::meta("KMSInvalidState"))
                            .build(),
                    )
                },
                "pending deletion",
            ),
            (
                "KMSOptInRequired",
                || {
                    PublishError::KmsOptInRequired(
                        KmsOptInRequired::builder()
                            .meta(crate::sdk::tests::meta("KMSOptInRequired"))
                            .build(),
                    )
                },
                "opt-in",
            ),
        ];
        let verdict = sample_verdict();
        for (code, make, fix) in cases {
            let rule = mock!(aws_sdk_sns::Client::publish).then_error(make);
            let client = mock_client!(aws_sdk_sns, [&rule]);
            let error = SnsNotifier::new(client, "t")
                .send(Notice::Alert(&verdict), in_ms(20_000))
                .await
                .unwrap_err();
            assert!(!error.is_transient(), "{code}: {error}");
            let text = error.to_string();
            assert!(text.contains(&format!("Publish: {code}: ")), "{text}");
            assert!(text.contains(fix), "{code}: {text}");
            assert_eq!(rule.num_calls(), 1, "{code} is not retried");
        }
    }

    /// A topic that accepts the connection and never answers: the alert's
    /// publish ends before the invocation's deadline, transient.
    #[tokio::test]
    async fn a_silent_endpoint_ends_the_publish_before_the_deadline_as_transient() {
        let (endpoint, accepted) = crate::sdk::tests::silent_endpoint().await;
        let config = crate::sdk::tests::client_config(&endpoint).await;
        let notifier = SnsNotifier::new(
            aws_sdk_sns::Client::new(&config),
            "arn:aws:sns:us-east-1:123456789012:alerts",
        );
        let verdict = sample_verdict();
        let deadline = in_ms(2_500);
        let error = notifier
            .send(Notice::Alert(&verdict), deadline)
            .await
            .unwrap_err();
        assert!(SystemClock.now_ms() < deadline, "ended before the deadline");
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().contains("Publish"), "{error}");
        assert!(
            accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1,
            "the endpoint was reached"
        );
    }
}
