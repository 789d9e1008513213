//! A function's settings from its environment: the rules both Lambdas
//! share (what counts as unset, required, a bounded number, and the
//! settings both read), so each `main` states only what is its own.

use crate::sdk;
use grantwatch_core::verdict::Severity;
use std::str::FromStr;

/// A setting that is missing or wrong; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

pub fn bad(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

/// The environment, through a lookup (tests pass a map).
pub struct Env<F> {
    get: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(get: F) -> Self {
        Env { get }
    }

    /// Trimmed; empty counts as unset (the template passes "" for an
    /// unset optional parameter).
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| bad(name, "required, not set"))
    }

    /// A whole number from `min` to `max`, `default` when unset.
    pub fn number(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(text) => match text.parse::<u64>() {
                Ok(value) if (min..=max).contains(&value) => Ok(value),
                _ => Err(bad(
                    name,
                    format!("{text:?} is not a whole number from {min} to {max}"),
                )),
            },
        }
    }

    /// `ALERT_TOPIC_ARN`: required, an SNS topic ARN.
    pub fn alert_topic_arn(&self) -> Result<String, ConfigError> {
        let arn = self.required("ALERT_TOPIC_ARN")?;
        if arn.starts_with("arn:") && arn.contains(":sns:") {
            Ok(arn)
        } else {
            Err(bad(
                "ALERT_TOPIC_ARN",
                format!("{arn:?} is not an SNS topic ARN"),
            ))
        }
    }

    /// `MIN_ALERT_SEVERITY`: the alert threshold, `medium` when unset.
    pub fn min_alert_severity(&self) -> Result<Severity, ConfigError> {
        match self.optional("MIN_ALERT_SEVERITY") {
            None => Ok(Severity::Medium),
            Some(text) => Severity::from_str(&text).map_err(|e| bad("MIN_ALERT_SEVERITY", e)),
        }
    }

    /// `SLACK_ALLOWED_HOSTS`: host names a Slack webhook URL may point at
    /// besides `hooks.slack.com` (comma-separated; loopback is always
    /// allowed, for tests and the demo).
    pub fn slack_allowed_hosts(&self) -> Result<crate::slack::AllowedHosts, ConfigError> {
        crate::slack::AllowedHosts::widened_by(
            &self.optional("SLACK_ALLOWED_HOSTS").unwrap_or_default(),
        )
        .map_err(|e| bad("SLACK_ALLOWED_HOSTS", e))
    }

    /// `RULES_S3_URI`: optional, an `s3://bucket/key`.
    pub fn rules_s3_uri(&self) -> Result<Option<String>, ConfigError> {
        let uri = self.optional("RULES_S3_URI");
        if let Some(uri) = &uri {
            sdk::parse_s3_uri(uri).map_err(|e| bad("RULES_S3_URI", e))?;
        }
        Ok(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::new(move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn blank_is_unset_and_required_names_the_setting() {
        let e = env(&[("A", "  "), ("B", " x ")]);
        assert_eq!(e.optional("A"), None);
        assert_eq!(e.optional("B").as_deref(), Some("x"));
        assert_eq!(
            e.required("A").unwrap_err().to_string(),
            "A: required, not set"
        );
    }

    #[test]
    fn numbers_are_bounded() {
        let e = env(&[("N", "0"), ("M", "7"), ("X", "seven")]);
        assert!(e.number("N", 5, 1, 10).is_err());
        assert_eq!(e.number("M", 5, 1, 10).unwrap(), 7);
        assert_eq!(e.number("UNSET", 5, 1, 10).unwrap(), 5);
        assert!(e
            .number("X", 5, 1, 10)
            .unwrap_err()
            .to_string()
            .starts_with("X: "));
    }

    #[test]
    fn shared_settings_are_validated() {
        let good = env(&[
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            ("MIN_ALERT_SEVERITY", "HIGH"),
            ("RULES_S3_URI", "s3://bucket/rules.toml"),
        ]);
        assert!(good.alert_topic_arn().is_ok());
        assert_eq!(good.min_alert_severity().unwrap(), Severity::High);
        assert_eq!(
            good.rules_s3_uri().unwrap().as_deref(),
            Some("s3://bucket/rules.toml")
        );
        let bad_env = env(&[
            ("ALERT_TOPIC_ARN", "alerts"),
            ("MIN_ALERT_SEVERITY", "loud"),
            ("RULES_S3_URI", "https://example.com/rules"),
        ]);
        assert_eq!(
            bad_env.alert_topic_arn().unwrap_err().name,
            "ALERT_TOPIC_ARN"
        );
        assert_eq!(
            bad_env.min_alert_severity().unwrap_err().name,
            "MIN_ALERT_SEVERITY"
        );
        assert_eq!(bad_env.rules_s3_uri().unwrap_err().name, "RULES_S3_URI");
    }

    #[test]
    fn slack_hosts_default_to_slack_and_widen() {
        assert_eq!(
            env(&[]).slack_allowed_hosts().unwrap().hosts(),
            ["hooks.slack.com"]
        );
        assert_eq!(
            env(&[("SLACK_ALLOWED_HOSTS", "relay.example.com")])
                .slack_allowed_hosts()
                .unwrap()
                .hosts(),
            ["hooks.slack.com", "relay.example.com"]
        );
        assert_eq!(
            env(&[("SLACK_ALLOWED_HOSTS", "https://x")])
                .slack_allowed_hosts()
                .unwrap_err()
                .name,
            "SLACK_ALLOWED_HOSTS"
        );
    }
}
