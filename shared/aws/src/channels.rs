//! Every channel an alert goes to, from one set of settings, built in one
//! place: the watcher's `main` and the replays of `grantwatch redrive`,
//! `grantwatch reconcile` and the report's daily reconcile
//! ([`crate::trail::watcher_deps`]) get the same list, with the same
//! redaction and runbook links (docs/alerts.md; classes in
//! docs/watcher.md, "Reliability").
//!
//! - `ALERT_TOPIC_ARN` (required): the alert topic, mandatory.
//! - `SLACK_WEBHOOK_SECRET_ARN` (unset: no Slack), `SLACK_ALLOWED_HOSTS`:
//!   Slack's incoming webhook, best effort, pinned to Slack's host.
//! - `CHATBOT_TOPIC_ARN` (unset: off): an SNS topic for Amazon Q Developer
//!   in chat applications, in its custom-notification format (best effort,
//!   a channel people read).
//! - `EVENT_BUS_NAME` (unset: no EventBridge channel) and
//!   `EVENT_BUS_MIN_SEVERITY` (unset: every alert): verdicts put on a bus.
//! - `SECURITY_HUB_ENABLED` (`true`/`false`, default `false`) and
//!   `SECURITY_HUB_MIN_SEVERITY` (default `medium`): alerts imported into
//!   AWS Security Hub as ASFF findings (best effort, a machine channel).
//! - `REDACT_ENCRYPTION_CONTEXT` (`true`/`false`, default `false`):
//!   encryption-context values redacted on the channels people read (the
//!   alert topic, Slack, Q Developer); the ledger, the report and the
//!   machine channels keep them.
//! - `RUNBOOK_BASE_URL` (default [`DEFAULT_RUNBOOK_BASE_URL`]): where the
//!   runbook pages (`<base>/<code>.md`) are published.

use crate::config::{bad, ConfigError, Env};
use crate::eventbridge::EventBridgeNotifier;
use crate::sdk::SystemClock;
use crate::secrets::SecretsManagerSource;
use crate::securityhub::{SecurityHub, SecurityHubNotifier};
use crate::slack::{AllowedHosts, SlackNotifier, SlackPolicy};
use crate::sns::{ChatbotNotifier, SnsNotifier};
use grantwatch_core::ports::notify::{ChannelClass, DynNotifier, Notifier, WithClass};
use grantwatch_core::render::links::{LinkSettings, DEFAULT_RUNBOOK_BASE_URL};
use grantwatch_core::render::redact::ForPeople;
use grantwatch_core::verdict::Severity;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSettings {
    /// `ALERT_TOPIC_ARN`: the mandatory channel.
    pub alert_topic_arn: String,
    /// `SLACK_WEBHOOK_SECRET_ARN`.
    pub slack_webhook_secret_arn: Option<String>,
    /// `SLACK_ALLOWED_HOSTS`: webhook hosts besides hooks.slack.com.
    pub slack_allowed_hosts: AllowedHosts,
    /// `CHATBOT_TOPIC_ARN`: the Q Developer topic.
    pub chatbot_topic_arn: Option<String>,
    /// `EVENT_BUS_NAME`: the bus verdicts are put on (name or ARN).
    pub event_bus_name: Option<String>,
    /// `EVENT_BUS_MIN_SEVERITY`: the least severe verdict put on the bus.
    pub event_bus_min_severity: Severity,
    /// `SECURITY_HUB_MIN_SEVERITY` when `SECURITY_HUB_ENABLED=true`; `None`: off.
    pub security_hub_min_severity: Option<Severity>,
    /// `REDACT_ENCRYPTION_CONTEXT`.
    pub redact_encryption_context: bool,
    /// `RUNBOOK_BASE_URL`.
    pub links: LinkSettings,
}

/// An optional severity setting; `default` when unset.
pub(crate) fn severity_setting<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
    default: Severity,
) -> Result<Severity, ConfigError> {
    match env.optional(name) {
        None => Ok(default),
        Some(text) => Severity::from_str(&text).map_err(|e| bad(name, e)),
    }
}

/// An optional `true`/`false` setting (any case); `false` when unset.
pub(crate) fn flag_setting<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
) -> Result<bool, ConfigError> {
    match env.optional(name) {
        None => Ok(false),
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad(name, format!("{text:?}: expected true or false"))),
        },
    }
}

impl ChannelSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<ChannelSettings, ConfigError> {
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
            alert_topic_arn: env.alert_topic_arn()?,
            slack_webhook_secret_arn: env.optional("SLACK_WEBHOOK_SECRET_ARN"),
            slack_allowed_hosts: env.slack_allowed_hosts()?,
            chatbot_topic_arn: env.optional("CHATBOT_TOPIC_ARN"),
            event_bus_name: env.optional("EVENT_BUS_NAME"),
            event_bus_min_severity: severity_setting(
                env,
                "EVENT_BUS_MIN_SEVERITY",
                Severity::Info,
            )?,
            security_hub_min_severity: match flag_setting(env, "SECURITY_HUB_ENABLED")? {
                true => Some(severity_setting(
                    env,
                    "SECURITY_HUB_MIN_SEVERITY",
                    Severity::Medium,
                )?),
                false => None,
            },
            redact_encryption_context: flag_setting(env, "REDACT_ENCRYPTION_CONTEXT")?,
            links,
        })
    }

    /// A channel people read: redacted when the deployment asks for it.
    fn for_people<N: Notifier + 'static>(
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

    /// The channels, in order, each with its class: the alert topic
    /// (mandatory), then Slack, Q Developer, EventBridge and Security Hub
    /// (best effort)
    /// where configured. Clients come from `config` (one per process).
    pub fn build(
        &self,
        config: &aws_config::SdkConfig,
    ) -> Result<Vec<Box<dyn DynNotifier>>, ConfigError> {
        let sns = aws_sdk_sns::Client::new(config);
        let mut channels = vec![self.for_people(
            SnsNotifier::new(sns.clone(), &self.alert_topic_arn).with_links(self.links.clone()),
            ChannelClass::Mandatory,
        )];
        if let Some(secret) = &self.slack_webhook_secret_arn {
            let secrets =
                SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(config), secret);
            // Pinned to hooks.slack.com (+ SLACK_ALLOWED_HOSTS), no redirects.
            let slack = SlackNotifier::pinned(
                secrets,
                SystemClock,
                SlackPolicy::default(),
                self.slack_allowed_hosts.clone(),
            )
            .map_err(|e| bad("SLACK_WEBHOOK_SECRET_ARN", e.to_string()))?;
            channels.push(self.for_people(slack, ChannelClass::BestEffort));
        }
        if let Some(topic) = &self.chatbot_topic_arn {
            channels.push(self.for_people(
                ChatbotNotifier::new(SnsNotifier::new(sns, topic).with_links(self.links.clone())),
                ChannelClass::BestEffort,
            ));
        }
        if let Some(bus) = &self.event_bus_name {
            channels.push(Box::new(WithClass(
                EventBridgeNotifier::new(
                    aws_sdk_eventbridge::Client::new(config),
                    bus,
                    self.event_bus_min_severity,
                )
                .with_links(self.links.clone()),
                ChannelClass::BestEffort,
            )));
        }
        if let Some(min_severity) = self.security_hub_min_severity {
            let hub =
                SecurityHub::new(config).map_err(|e| bad("SECURITY_HUB_ENABLED", e.to_string()))?;
            channels.push(Box::new(WithClass(
                SecurityHubNotifier::new(hub, min_severity).with_links(self.links.clone()),
                ChannelClass::BestEffort,
            )));
        }
        Ok(channels)
    }
}

/// Each channel's name and class, in order (logs and tests).
pub fn describe(channels: &[Box<dyn DynNotifier>]) -> Vec<(String, ChannelClass)> {
    channels
        .iter()
        .map(|c| (c.channel().to_string(), c.class()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alerts";

    pub(crate) fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| vars.get(name).cloned()
    }

    fn channels(vars: &[(&str, &str)]) -> Result<ChannelSettings, ConfigError> {
        let mut all = vec![("ALERT_TOPIC_ARN", TOPIC)];
        all.extend_from_slice(vars);
        ChannelSettings::from_env(&Env::new(lookup(&all)))
    }

    /// An SDK configuration that makes no call when clients are built.
    pub(crate) fn offline_config() -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    }

    #[test]
    fn only_the_alert_topic_is_required_and_every_other_channel_is_opt_in() {
        let c = channels(&[]).unwrap();
        assert_eq!(c.alert_topic_arn, TOPIC);
        assert_eq!(c.slack_webhook_secret_arn, None);
        assert_eq!(c.event_bus_name, None);
        assert_eq!(c.chatbot_topic_arn, None);
        assert_eq!(c.event_bus_min_severity, Severity::Info);
        assert_eq!(c.security_hub_min_severity, None);
        assert!(!c.redact_encryption_context);
        assert_eq!(c.links, LinkSettings::default());
        assert_eq!(
            channels(&[("EVENT_BUS_NAME", "")]).unwrap().event_bus_name,
            None
        );
        let built = c.build(&offline_config()).unwrap();
        assert_eq!(
            describe(&built),
            [("sns".to_string(), ChannelClass::Mandatory)]
        );
        let missing = ChannelSettings::from_env(&Env::new(lookup(&[]))).unwrap_err();
        assert_eq!(missing.name, "ALERT_TOPIC_ARN");
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
    fn security_hub_is_off_unless_enabled_and_its_threshold_is_read() {
        let off = channels(&[("SECURITY_HUB_MIN_SEVERITY", "low")]).unwrap();
        assert_eq!(off.security_hub_min_severity, None);
        let on = channels(&[
            ("SECURITY_HUB_ENABLED", "true"),
            ("SECURITY_HUB_MIN_SEVERITY", "high"),
        ])
        .unwrap();
        assert_eq!(on.security_hub_min_severity, Some(Severity::High));
        let wrong = channels(&[
            ("SECURITY_HUB_ENABLED", "true"),
            ("SECURITY_HUB_MIN_SEVERITY", "loud"),
        ])
        .unwrap_err();
        assert_eq!(wrong.name, "SECURITY_HUB_MIN_SEVERITY");
    }

    #[test]
    fn each_wrong_setting_is_named() {
        for (name, value) in [
            ("EVENT_BUS_MIN_SEVERITY", "loud"),
            ("REDACT_ENCRYPTION_CONTEXT", "yes please"),
            ("SECURITY_HUB_ENABLED", "on"),
            ("RUNBOOK_BASE_URL", "wiki/grantwatch"),
            ("SLACK_ALLOWED_HOSTS", "not a host!"),
        ] {
            let error = channels(&[(name, value)]).unwrap_err();
            assert_eq!(error.name, name);
        }
    }

    #[test]
    fn every_configured_channel_is_built_in_order_with_its_class() {
        let c = channels(&[
            (
                "SLACK_WEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack",
            ),
            ("EVENT_BUS_NAME", "security"),
            ("CHATBOT_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:q"),
            ("REDACT_ENCRYPTION_CONTEXT", "true"),
            ("SECURITY_HUB_ENABLED", "true"),
        ])
        .unwrap();
        assert_eq!(c.security_hub_min_severity, Some(Severity::Medium));
        let built = c.build(&offline_config()).unwrap();
        assert_eq!(
            describe(&built),
            named(&[
                ("sns", ChannelClass::Mandatory),
                ("slack", ChannelClass::BestEffort),
                ("chatbot", ChannelClass::BestEffort),
                ("eventbridge", ChannelClass::BestEffort),
                ("securityhub", ChannelClass::BestEffort),
            ])
        );
    }

    pub(crate) fn named(list: &[(&str, ChannelClass)]) -> Vec<(String, ChannelClass)> {
        list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }
}
