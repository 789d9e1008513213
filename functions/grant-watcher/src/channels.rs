//! The watcher's opt-in channels and what people see: their settings, and
//! the list of notifiers built from them (docs/watcher.md, "Reliability";
//! docs/alerts.md).
//!
//! - `EVENT_BUS_NAME` (unset: no EventBridge channel) and
//!   `EVENT_BUS_MIN_SEVERITY` (unset: every alert): verdicts put on a bus.
//! - `CHATBOT_TOPIC_ARN` (unset: off): an SNS topic for Amazon Q Developer
//!   in chat applications, which gets each alert and digest in its
//!   custom-notification format (a channel people read).
//! - `REDACT_ENCRYPTION_CONTEXT` (`true`/`false`, default `false`):
//!   encryption-context values redacted on the channels people read (the
//!   alert topic, Slack); the ledger, the report and the bus keep them.
//! - `RUNBOOK_BASE_URL` (default [`DEFAULT_RUNBOOK_BASE_URL`]): where the
//!   runbook pages (`<base>/<code>.md`) are published.

use grantwatch_aws::config::{bad, ConfigError, Env};
use grantwatch_aws::eventbridge::EventBridgeNotifier;
use grantwatch_aws::sns::{ChatbotNotifier, SnsNotifier};
use grantwatch_core::ports::notify::{ChannelClass, DynNotifier, Notifier, WithClass};
use grantwatch_core::render::links::{LinkSettings, DEFAULT_RUNBOOK_BASE_URL};
use grantwatch_core::render::redact::ForPeople;
use grantwatch_core::verdict::Severity;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSettings {
    /// `EVENT_BUS_NAME`: the bus verdicts are put on (name or ARN).
    pub event_bus_name: Option<String>,
    /// `EVENT_BUS_MIN_SEVERITY`: the least severe verdict put on the bus.
    pub event_bus_min_severity: Severity,
    /// `CHATBOT_TOPIC_ARN`: the Q Developer topic.
    pub chatbot_topic_arn: Option<String>,
    /// `REDACT_ENCRYPTION_CONTEXT`.
    pub redact_encryption_context: bool,
    /// `RUNBOOK_BASE_URL`.
    pub links: LinkSettings,
}

impl ChannelSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<ChannelSettings, ConfigError> {
        let event_bus_min_severity = match env.optional("EVENT_BUS_MIN_SEVERITY") {
            None => Severity::Info,
            Some(text) => {
                Severity::from_str(&text).map_err(|e| bad("EVENT_BUS_MIN_SEVERITY", e))?
            }
        };
        let redact_encryption_context = match env.optional("REDACT_ENCRYPTION_CONTEXT") {
            None => false,
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(bad(
                        "REDACT_ENCRYPTION_CONTEXT",
                        format!("{text:?}: expected true or false"),
                    ))
                }
            },
        };
        let links = match env.optional("RUNBOOK_BASE_URL") {
            None => LinkSettings::default(),
            Some(url) => {
                let links = LinkSettings::with_runbook_base(&url);
                // with_runbook_base falls back to the default on a bad URL;
                // a setting someone gave must not be dropped quietly.
                if links.runbook_base_url == DEFAULT_RUNBOOK_BASE_URL
                    && url.trim_end_matches('/') != DEFAULT_RUNBOOK_BASE_URL
                {
                    return Err(bad(
                        "RUNBOOK_BASE_URL",
                        format!("{url:?}: expected an http(s) URL without spaces"),
                    ));
                }
                links
            }
        };
        Ok(ChannelSettings {
            event_bus_name: env.optional("EVENT_BUS_NAME"),
            event_bus_min_severity,
            chatbot_topic_arn: env.optional("CHATBOT_TOPIC_ARN"),
            redact_encryption_context,
            links,
        })
    }

    /// A channel people read: redacted when the deployment asks for it.
    pub fn for_people<N: Notifier + 'static>(
        &self,
        notifier: N,
        class: ChannelClass,
    ) -> Box<dyn DynNotifier> {
        if self.redact_encryption_context {
            Box::new(WithClass(ForPeople(notifier), class))
        } else {
            Box::new(WithClass(notifier, class))
        }
    }

    /// The Q Developer topic, when configured (best effort, for people).
    pub fn chatbot_channel(&self, sns: aws_sdk_sns::Client) -> Option<Box<dyn DynNotifier>> {
        let topic = self.chatbot_topic_arn.as_ref()?;
        Some(self.for_people(
            ChatbotNotifier::new(SnsNotifier::new(sns, topic).with_links(self.links.clone())),
            ChannelClass::BestEffort,
        ))
    }

    /// The opt-in machine channels, in order (each best effort).
    pub fn machine_channels(
        &self,
        eventbridge: aws_sdk_eventbridge::Client,
    ) -> Vec<Box<dyn DynNotifier>> {
        let mut channels: Vec<Box<dyn DynNotifier>> = Vec::new();
        if let Some(bus) = &self.event_bus_name {
            channels.push(Box::new(WithClass(
                EventBridgeNotifier::new(eventbridge, bus, self.event_bus_min_severity)
                    .with_links(self.links.clone()),
                ChannelClass::BestEffort,
            )));
        }
        channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn channels(vars: &[(&str, &str)]) -> Result<ChannelSettings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ChannelSettings::from_env(&Env::new(|name: &str| vars.get(name).cloned()))
    }

    #[test]
    fn every_channel_is_opt_in() {
        let c = channels(&[]).unwrap();
        assert_eq!(c.event_bus_name, None);
        assert_eq!(c.chatbot_topic_arn, None);
        assert_eq!(c.event_bus_min_severity, Severity::Info);
        assert!(!c.redact_encryption_context);
        assert_eq!(c.links, LinkSettings::default());
        assert_eq!(
            channels(&[("EVENT_BUS_NAME", "")]).unwrap().event_bus_name,
            None
        );
    }

    #[test]
    fn given_settings_are_read() {
        let c = channels(&[
            ("EVENT_BUS_NAME", "security"),
            ("EVENT_BUS_MIN_SEVERITY", "high"),
            ("CHATBOT_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:q"),
            ("REDACT_ENCRYPTION_CONTEXT", "TRUE"),
            ("RUNBOOK_BASE_URL", "https://wiki.example.com/grantwatch/"),
        ])
        .unwrap();
        assert_eq!(c.event_bus_name.as_deref(), Some("security"));
        assert_eq!(c.event_bus_min_severity, Severity::High);
        assert_eq!(
            c.chatbot_topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:q")
        );
        assert!(c.redact_encryption_context);
        assert_eq!(
            c.links.runbook_base_url,
            "https://wiki.example.com/grantwatch"
        );
    }

    #[test]
    fn each_wrong_setting_is_named() {
        for (name, value) in [
            ("EVENT_BUS_MIN_SEVERITY", "loud"),
            ("REDACT_ENCRYPTION_CONTEXT", "yes please"),
            ("RUNBOOK_BASE_URL", "wiki/grantwatch"),
        ] {
            let error = channels(&[(name, value)]).unwrap_err();
            assert_eq!(error.name, name);
        }
    }
}
