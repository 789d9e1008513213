//! A function's settings from its environment: the rules both Lambdas
//! share (what counts as unset, required, a bounded number, and the
//! settings both read), so each `main` states only what is its own.

use crate::sdk;
use grantwatch_core::assess::DEFAULT_GRANT_COUNT_THRESHOLD;
use grantwatch_core::ports::inventory::AccountDirectory;
use grantwatch_core::trust::{TrustSetting, TrustZone};
use grantwatch_core::verdict::Severity;
use std::str::FromStr;

/// The trust zone's setting, one name for the watcher, the report and the
/// CLI: account ids, or `ORG`.
pub const TRUSTED_ACCOUNTS: &str = "TRUSTED_ACCOUNTS";
/// `grant-count-high` from this many grants on one key (report and CLI).
pub const GRANT_COUNT_THRESHOLD: &str = "GRANT_COUNT_THRESHOLD";
/// KMS's quota of grants per key: a threshold above it never fires.
pub const GRANTS_PER_KEY_QUOTA: u64 = 50_000;

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

    /// `TRUSTED_ACCOUNTS`: unset, `ORG`, or account ids (comma- or
    /// space-separated). `ORG` is resolved by [`resolve_trust_zone`].
    pub fn trusted_accounts(&self) -> Result<TrustSetting, ConfigError> {
        TrustSetting::parse(&self.optional(TRUSTED_ACCOUNTS).unwrap_or_default())
            .map_err(|e| bad(TRUSTED_ACCOUNTS, e.to_string()))
    }

    /// `GRANT_COUNT_THRESHOLD`: 40,000 when unset, from 1 to the quota
    /// (50,000 grants per key).
    pub fn grant_count_threshold(&self) -> Result<usize, ConfigError> {
        let n = self.number(
            GRANT_COUNT_THRESHOLD,
            DEFAULT_GRANT_COUNT_THRESHOLD as u64,
            1,
            GRANTS_PER_KEY_QUOTA,
        )?;
        Ok(n as usize)
    }
}

/// The trust zone a setting names, resolved once per process. `ORG` lists
/// the organization's active accounts, which only the management account
/// or a delegated administrator may do. When the list cannot be read the
/// zone stays unset (never empty: an empty zone would call every account
/// "outside"; unset keeps the default severities, so nothing is silenced),
/// and the returned error says why, for the caller to log and count.
pub async fn resolve_trust_zone(
    setting: &TrustSetting,
    directory: &impl AccountDirectory,
) -> (TrustZone, Option<ConfigError>) {
    match setting {
        TrustSetting::Unset => (TrustZone::Unset, None),
        TrustSetting::Accounts(accounts) => (TrustZone::Accounts(accounts.clone()), None),
        TrustSetting::Org => match directory.organization_accounts().await {
            Ok(accounts) if !accounts.is_empty() => (TrustZone::from_accounts(accounts), None),
            Ok(_) => (
                TrustZone::Unset,
                Some(bad(
                    TRUSTED_ACCOUNTS,
                    "ORG: the organization lists no active account; judging without a trust zone",
                )),
            ),
            Err(e) => (
                TrustZone::Unset,
                Some(bad(
                    TRUSTED_ACCOUNTS,
                    format!("ORG: cannot list the organization's accounts ({e}): only the management account or a delegated administrator can; judging without a trust zone (cross-account findings keep their default severity); list the account ids instead"),
                )),
            ),
        },
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
    fn trusted_accounts_and_grant_count_threshold() {
        assert_eq!(env(&[]).trusted_accounts().unwrap(), TrustSetting::Unset);
        assert_eq!(
            env(&[("TRUSTED_ACCOUNTS", " org ")])
                .trusted_accounts()
                .unwrap(),
            TrustSetting::Org
        );
        assert_eq!(
            env(&[("TRUSTED_ACCOUNTS", "111122223333,444455556666")])
                .trusted_accounts()
                .unwrap(),
            TrustSetting::Accounts(["111122223333".into(), "444455556666".into()].into())
        );
        let error = env(&[("TRUSTED_ACCOUNTS", "111122223333,prod")])
            .trusted_accounts()
            .unwrap_err();
        assert_eq!(error.name, "TRUSTED_ACCOUNTS");
        assert!(error.problem.contains("\"prod\""), "{error}");
        assert_eq!(env(&[]).grant_count_threshold().unwrap(), 40_000);
        assert_eq!(
            env(&[("GRANT_COUNT_THRESHOLD", "1000")])
                .grant_count_threshold()
                .unwrap(),
            1000
        );
        let wrong: [&'static [(&'static str, &'static str)]; 3] = [
            &[("GRANT_COUNT_THRESHOLD", "0")],
            &[("GRANT_COUNT_THRESHOLD", "50001")],
            &[("GRANT_COUNT_THRESHOLD", "many")],
        ];
        for vars in wrong {
            assert_eq!(
                env(vars).grant_count_threshold().unwrap_err().name,
                "GRANT_COUNT_THRESHOLD"
            );
        }
    }

    /// An organization as the report's directory sees it.
    struct Directory(Result<Vec<String>, grantwatch_core::ports::PortError>);

    impl AccountDirectory for Directory {
        async fn this_account(&self) -> Result<String, grantwatch_core::ports::PortError> {
            Ok("111122223333".into())
        }
        async fn organization_accounts(
            &self,
        ) -> Result<Vec<String>, grantwatch_core::ports::PortError> {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn org_resolves_to_the_organization_or_stays_unset_with_an_error() {
        let org = Directory(Ok(vec!["111122223333".into(), "444455556666".into()]));
        let (zone, error) = resolve_trust_zone(&TrustSetting::Org, &org).await;
        assert_eq!(
            zone,
            TrustZone::from_accounts(["111122223333", "444455556666"])
        );
        assert!(error.is_none());
        // Not the management account: AccessDenied. The zone stays unset
        // (default severities), and the error says why.
        let member = Directory(Err(grantwatch_core::ports::PortError::Permanent(
            "ListAccounts: AccessDeniedException".into(),
        )));
        let (zone, error) = resolve_trust_zone(&TrustSetting::Org, &member).await;
        assert_eq!(zone, TrustZone::Unset);
        let error = error.unwrap();
        assert_eq!(error.name, "TRUSTED_ACCOUNTS");
        assert!(error.problem.contains("AccessDenied"), "{error}");
        // A list needs no directory call.
        let listed = TrustSetting::parse("444455556666").unwrap();
        let (zone, error) = resolve_trust_zone(&listed, &member).await;
        assert_eq!(zone, TrustZone::from_accounts(["444455556666"]));
        assert!(error.is_none());
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
