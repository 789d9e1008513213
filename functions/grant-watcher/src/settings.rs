//! The watcher's settings, from its environment (see docs/watcher.md).

use grantwatch_aws::config::{ConfigError, Env};
use grantwatch_aws::ledger::DEFAULT_RETENTION_DAYS;
use grantwatch_aws::slack::AllowedHosts;
use grantwatch_core::app::watch::{DEFAULT_STORM_THRESHOLD, DEFAULT_STORM_WINDOW_SECONDS};
use grantwatch_core::correlate::{CorrelationSettings, CORRELATION_RECORDS};
use grantwatch_core::tamper::{OwnResources, OWN_RESOURCES_ENV};
use grantwatch_core::trust::TrustSetting;
use grantwatch_core::verdict::Severity;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub alert_topic_arn: String,
    pub ledger_table: String,
    pub slack_webhook_secret_arn: Option<String>,
    /// Webhook hosts besides hooks.slack.com (`SLACK_ALLOWED_HOSTS`).
    pub slack_allowed_hosts: AllowedHosts,
    pub min_alert_severity: Severity,
    pub rules_s3_uri: Option<String>,
    pub ledger_retention_days: u32,
    pub storm_threshold: u64,
    pub storm_window_seconds: u64,
    /// grantwatch's own resources (`OWN_RESOURCES`, set by the template):
    /// calls on them are tampering. Unset: only grants and the heartbeat.
    pub own_resources: Option<OwnResources>,
    /// The canary grant (`CANARY_KEY_ARN`, ...): unset, no canary.
    pub canary: Option<grantwatch_aws::canary::CanarySettings>,
    /// The trust zone (`TRUSTED_ACCOUNTS`: account ids or `ORG`).
    pub trusted_accounts: TrustSetting,
    /// Real-time correlation: `BURST_THRESHOLD` (a burst is more than this
    /// many grants to one grantee on one key...), `BURST_WINDOW_MINUTES`
    /// (...within this many minutes), `PERSISTENCE_HOURS` (a grant
    /// re-created within this many hours of its removal persists).
    pub correlation: CorrelationSettings,
    /// The opt-in channels, redaction and runbook links (channels.rs).
    pub channels: crate::channels::ChannelSettings,
    pub function_name: String,
}

impl Settings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let env = Env::new(get);
        Ok(Settings {
            alert_topic_arn: env.alert_topic_arn()?,
            ledger_table: env.required("LEDGER_TABLE")?,
            slack_webhook_secret_arn: env.optional("SLACK_WEBHOOK_SECRET_ARN"),
            slack_allowed_hosts: env.slack_allowed_hosts()?,
            min_alert_severity: env.min_alert_severity()?,
            rules_s3_uri: env.rules_s3_uri()?,
            ledger_retention_days: env.number(
                "LEDGER_RETENTION_DAYS",
                DEFAULT_RETENTION_DAYS.into(),
                1,
                3650,
            )? as u32,
            storm_threshold: env.number("STORM_THRESHOLD", DEFAULT_STORM_THRESHOLD, 1, 100_000)?,
            storm_window_seconds: env.number(
                "STORM_WINDOW_SECONDS",
                DEFAULT_STORM_WINDOW_SECONDS,
                1,
                600,
            )?,
            own_resources: match env.optional(OWN_RESOURCES_ENV) {
                None => None,
                Some(text) => {
                    Some(OwnResources::from_json(&text).map_err(|e| {
                        grantwatch_aws::config::bad(OWN_RESOURCES_ENV, e.to_string())
                    })?)
                }
            },
            trusted_accounts: env.trusted_accounts()?,
            correlation: correlation(&env)?,
            canary: grantwatch_aws::canary::CanarySettings::from_env(&env)?,
            channels: crate::channels::ChannelSettings::from_env(&env)?,
            function_name: env
                .optional("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| "grant-watcher".to_string()),
        })
    }
}

/// The correlation settings; defaults from [`CorrelationSettings`]. The
/// burst threshold stays below the records read per grant
/// ([`CORRELATION_RECORDS`]), or a burst could never be seen.
fn correlation(
    env: &Env<impl Fn(&str) -> Option<String>>,
) -> Result<CorrelationSettings, ConfigError> {
    let defaults = CorrelationSettings::default();
    let burst_count = env.number(
        "BURST_THRESHOLD",
        defaults.burst_count as u64,
        1,
        CORRELATION_RECORDS as u64 - 1,
    )?;
    let burst_minutes = env.number(
        "BURST_WINDOW_MINUTES",
        (defaults.burst_window_secs / 60) as u64,
        1,
        24 * 60,
    )?;
    let persistence_hours = env.number(
        "PERSISTENCE_HOURS",
        (defaults.persistence_window_secs / 3600) as u64,
        1,
        30 * 24,
    )?;
    // Bounded above, so these conversions cannot fail.
    Ok(CorrelationSettings {
        burst_count: burst_count as usize,
        burst_window_secs: burst_minutes as i64 * 60,
        persistence_window_secs: persistence_hours as i64 * 3600,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use grantwatch_core::app::watch::{DEFAULT_STORM_THRESHOLD, DEFAULT_STORM_WINDOW_SECONDS};
    use grantwatch_core::verdict::Severity;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    const TOPIC: (&str, &str) = (
        "ALERT_TOPIC_ARN",
        "arn:aws:sns:us-east-1:123456789012:alerts",
    );
    const TABLE: (&str, &str) = ("LEDGER_TABLE", "ledger");

    #[test]
    fn defaults_apply_when_only_the_required_settings_are_given() {
        let s = settings(&[TOPIC, TABLE]).unwrap();
        assert_eq!(s.min_alert_severity, Severity::Medium);
        assert_eq!(s.ledger_retention_days, 90);
        assert_eq!(s.storm_threshold, DEFAULT_STORM_THRESHOLD);
        assert_eq!(s.storm_window_seconds, DEFAULT_STORM_WINDOW_SECONDS);
        assert_eq!(s.slack_webhook_secret_arn, None, "unset means no Slack");
        assert_eq!(
            s.trusted_accounts,
            grantwatch_core::trust::TrustSetting::Unset
        );
        assert_eq!(
            settings(&[TOPIC, TABLE, ("TRUSTED_ACCOUNTS", "111122223333,x")])
                .unwrap_err()
                .name,
            "TRUSTED_ACCOUNTS"
        );
        assert_eq!(
            settings(&[TOPIC, TABLE, ("SLACK_WEBHOOK_SECRET_ARN", "")])
                .unwrap()
                .slack_webhook_secret_arn,
            None,
            "empty means no Slack"
        );
    }

    #[test]
    fn correlation_settings_have_defaults_and_bounds() {
        let s = settings(&[TOPIC, TABLE]).unwrap();
        assert_eq!(s.correlation, CorrelationSettings::default());
        let s = settings(&[
            TOPIC,
            TABLE,
            ("BURST_THRESHOLD", "8"),
            ("BURST_WINDOW_MINUTES", "30"),
            ("PERSISTENCE_HOURS", "72"),
        ])
        .unwrap();
        assert_eq!(
            s.correlation,
            CorrelationSettings {
                burst_count: 8,
                burst_window_secs: 30 * 60,
                persistence_window_secs: 72 * 3600,
            }
        );
        for (name, value) in [
            ("BURST_THRESHOLD", "0"),
            ("BURST_THRESHOLD", "50"),
            ("BURST_WINDOW_MINUTES", "ten"),
            ("PERSISTENCE_HOURS", "0"),
        ] {
            assert_eq!(
                settings(&[TOPIC, TABLE, (name, value)]).unwrap_err().name,
                name,
                "{name}={value}"
            );
        }
    }

    #[test]
    fn each_missing_or_wrong_setting_is_named() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[TABLE], "ALERT_TOPIC_ARN"),
            (&[TOPIC], "LEDGER_TABLE"),
            (&[("ALERT_TOPIC_ARN", "alerts"), TABLE], "ALERT_TOPIC_ARN"),
            (
                &[TOPIC, TABLE, ("MIN_ALERT_SEVERITY", "loud")],
                "MIN_ALERT_SEVERITY",
            ),
            (
                &[TOPIC, TABLE, ("LEDGER_RETENTION_DAYS", "-1")],
                "LEDGER_RETENTION_DAYS",
            ),
            (
                &[TOPIC, TABLE, ("STORM_WINDOW_SECONDS", "0")],
                "STORM_WINDOW_SECONDS",
            ),
            (
                &[TOPIC, TABLE, ("RULES_S3_URI", "rules.toml")],
                "RULES_S3_URI",
            ),
        ];
        for (vars, name) in cases {
            let error = settings(vars).unwrap_err();
            assert_eq!(error.name, name);
            assert!(error.to_string().starts_with(name), "{error}");
        }
    }
}
