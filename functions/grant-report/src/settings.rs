//! grant-report's settings: the environment (read once per process) and
//! the scheduler's input (per run), as typed values. See docs/report.md.

use grantwatch_aws::channels::ChannelSettings;
use grantwatch_aws::config::{bad, ConfigError, Env};
use grantwatch_aws::inventory::DEFAULT_LISTGRANTS_RATE;
use grantwatch_aws::scope::DEFAULT_MEMBER_ROLE;
use grantwatch_core::app::report::ReportRequest;
use grantwatch_core::ports::inventory::AccountSelection;
use grantwatch_core::trust::TrustSetting;
use grantwatch_core::verdict::Severity;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// The function's settings, from its environment (see docs/report.md).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) report_bucket: String,
    /// Where the summary goes: the alert topic, Slack, Q Developer (the
    /// watcher's channel settings, `grantwatch_aws::channels`).
    pub(crate) channels: ChannelSettings,
    pub(crate) ledger_table: Option<String>,
    pub(crate) rules_s3_uri: Option<String>,
    pub(crate) min_alert_severity: Severity,
    pub(crate) regions: Vec<String>,
    pub(crate) accounts: AccountSelection,
    pub(crate) member_role_name: String,
    pub(crate) member_role_external_id: Option<String>,
    pub(crate) link_expiry: Duration,
    pub(crate) listgrants_rate: f64,
    /// The trust zone (`TRUSTED_ACCOUNTS`: account ids or `ORG`).
    pub(crate) trusted_accounts: TrustSetting,
    /// `grant-count-high` from this many grants on one key.
    pub(crate) grant_count_threshold: usize,
    /// The `FunctionName` dimension of the report's metrics.
    pub(crate) function_name: String,
}

/// `a, b,,c` → `[a, b, c]`.
fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `ORG`, a comma list of 12-digit ids, or nothing (this account).
fn accounts_from(name: &'static str, values: Vec<String>) -> Result<AccountSelection, ConfigError> {
    if values.is_empty() {
        return Ok(AccountSelection::This);
    }
    if values.len() == 1 && values[0].eq_ignore_ascii_case("ORG") {
        return Ok(AccountSelection::Organization);
    }
    for v in &values {
        if !grantwatch_core::principal::is_account_id(v) {
            return Err(bad(
                name,
                format!("{v:?} is not a 12-digit account id (or ORG alone)"),
            ));
        }
    }
    Ok(AccountSelection::List(values))
}

fn regions_from(name: &'static str, values: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for r in &values {
        if !grantwatch_core::principal::looks_like_region(r) {
            return Err(bad(name, format!("{r:?} is not a region name")));
        }
    }
    Ok(values)
}

impl Settings {
    pub(crate) fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let env = Env::new(get);
        let optional = |name: &str| env.optional(name);
        let min_alert_severity = env.min_alert_severity()?;
        let rules_s3_uri = env.rules_s3_uri()?;
        let regions = match optional("REPORT_REGIONS") {
            Some(list) => regions_from("REPORT_REGIONS", comma_list(&list))?,
            None => optional("AWS_REGION").into_iter().collect(),
        };
        if regions.is_empty() {
            return Err(bad(
                "REPORT_REGIONS",
                "no regions: set REPORT_REGIONS or AWS_REGION",
            ));
        }
        let accounts = accounts_from(
            "REPORT_ACCOUNTS",
            comma_list(&optional("REPORT_ACCOUNTS").unwrap_or_default()),
        )?;
        let link_expiry = match optional("REPORT_LINK_EXPIRY_SECONDS") {
            None => 604_800,
            Some(text) => match text.parse::<u64>() {
                Ok(v) if (60..=604_800).contains(&v) => v,
                _ => {
                    return Err(bad(
                        "REPORT_LINK_EXPIRY_SECONDS",
                        format!("{text:?} is not a whole number from 60 to 604800 (7 days)"),
                    ))
                }
            },
        };
        let listgrants_rate = match optional("LISTGRANTS_RATE_PER_SECOND") {
            None => DEFAULT_LISTGRANTS_RATE,
            Some(text) => match text.parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => v,
                _ => {
                    return Err(bad(
                        "LISTGRANTS_RATE_PER_SECOND",
                        format!("{text:?} is not a number above 0 and at most 100 (the KMS quota)"),
                    ))
                }
            },
        };
        Ok(Settings {
            report_bucket: env.required("REPORT_BUCKET")?,
            channels: ChannelSettings::from_env(&env)?,
            ledger_table: optional("LEDGER_TABLE"),
            rules_s3_uri,
            min_alert_severity,
            regions,
            accounts,
            member_role_name: optional("MEMBER_ROLE_NAME")
                .unwrap_or_else(|| DEFAULT_MEMBER_ROLE.to_string()),
            member_role_external_id: optional("MEMBER_ROLE_EXTERNAL_ID"),
            link_expiry: Duration::from_secs(link_expiry),
            listgrants_rate,
            trusted_accounts: env.trusted_accounts()?,
            grant_count_threshold: env.grant_count_threshold()?,
            function_name: optional("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| "grant-report".to_string()),
        })
    }
}

/// The scheduler's `Input`: every field optional, none other allowed (a
/// typo, or an EventBridge envelope, is a clear error rather than a report
/// on the wrong scope).
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ScheduleInput {
    #[serde(default)]
    regions: Option<Vec<String>>,
    /// A list of account ids, `"ORG"`, or `["ORG"]`.
    #[serde(default)]
    accounts: Option<OneOrMany>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The run's scope: the input's fields over the environment's.
pub(crate) fn request_for(
    payload: &Value,
    settings: &Settings,
) -> Result<ReportRequest, ConfigError> {
    let input: ScheduleInput = match payload {
        Value::Null => ScheduleInput::default(),
        other => serde_json::from_value(other.clone()).map_err(|e| {
            bad(
                "input",
                format!("{e}; expected {{\"regions\": [...], \"accounts\": [...] or \"ORG\"}}"),
            )
        })?,
    };
    let regions = match input.regions {
        Some(r) if !r.is_empty() => regions_from("input.regions", r)?,
        _ => settings.regions.clone(),
    };
    let accounts = match input.accounts {
        None => settings.accounts.clone(),
        Some(OneOrMany::One(one)) => accounts_from("input.accounts", comma_list(&one))?,
        Some(OneOrMany::Many(many)) if many.is_empty() => settings.accounts.clone(),
        Some(OneOrMany::Many(many)) => accounts_from("input.accounts", many)?,
    };
    Ok(ReportRequest { accounts, regions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
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
        "arn:aws:sns:eu-west-1:111111111111:alerts",
    );
    const BUCKET: (&str, &str) = ("REPORT_BUCKET", "reports");
    const REGION: (&str, &str) = ("AWS_REGION", "eu-west-1");

    #[test]
    fn defaults_apply() {
        let s = settings(&[TOPIC, BUCKET, REGION]).unwrap();
        assert_eq!(s.regions, vec!["eu-west-1".to_string()]);
        assert_eq!(s.accounts, AccountSelection::This);
        assert_eq!(s.member_role_name, "grantwatch-report-reader");
        assert_eq!(s.link_expiry, Duration::from_secs(604_800));
        assert_eq!(s.listgrants_rate, 20.0);
        assert_eq!(s.ledger_table, None);
        assert_eq!(s.trusted_accounts, TrustSetting::Unset);
        assert_eq!(s.grant_count_threshold, 40_000);
        assert_eq!(s.function_name, "grant-report");
        let zone = settings(&[
            TOPIC,
            BUCKET,
            REGION,
            ("TRUSTED_ACCOUNTS", "ORG"),
            ("GRANT_COUNT_THRESHOLD", "100"),
        ])
        .unwrap();
        assert_eq!(
            (zone.trusted_accounts, zone.grant_count_threshold),
            (TrustSetting::Org, 100)
        );
        let org = settings(&[TOPIC, BUCKET, REGION, ("REPORT_ACCOUNTS", "org")]).unwrap();
        assert_eq!(org.accounts, AccountSelection::Organization);
    }

    #[test]
    fn each_wrong_setting_is_named() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[BUCKET, REGION], "ALERT_TOPIC_ARN"),
            (&[TOPIC, REGION], "REPORT_BUCKET"),
            (&[TOPIC, BUCKET], "REPORT_REGIONS"),
            (
                &[TOPIC, BUCKET, REGION, ("REPORT_ACCOUNTS", "123,ORG")],
                "REPORT_ACCOUNTS",
            ),
            (
                &[
                    TOPIC,
                    BUCKET,
                    REGION,
                    ("REPORT_LINK_EXPIRY_SECONDS", "9999999"),
                ],
                "REPORT_LINK_EXPIRY_SECONDS",
            ),
            (
                &[TOPIC, BUCKET, REGION, ("LISTGRANTS_RATE_PER_SECOND", "500")],
                "LISTGRANTS_RATE_PER_SECOND",
            ),
            (
                &[TOPIC, BUCKET, ("REPORT_REGIONS", "eu-west-1,../x")],
                "REPORT_REGIONS",
            ),
        ];
        for (vars, name) in cases {
            let error = settings(vars).unwrap_err();
            assert_eq!(error.name, name, "{error}");
        }
    }

    #[test]
    fn the_input_overrides_the_environment() {
        let s = settings(&[TOPIC, BUCKET, REGION, ("REPORT_ACCOUNTS", "111111111111")]).unwrap();
        let same = request_for(&json!({}), &s).unwrap();
        assert_eq!(same.regions, vec!["eu-west-1".to_string()]);
        assert_eq!(
            same.accounts,
            AccountSelection::List(vec!["111111111111".into()])
        );
        assert_eq!(request_for(&Value::Null, &s).unwrap(), same);
        let r = request_for(
            &json!({"regions": ["us-east-1", "ap-northeast-1"], "accounts": "ORG"}),
            &s,
        )
        .unwrap();
        assert_eq!(
            r.regions,
            vec!["us-east-1".to_string(), "ap-northeast-1".to_string()]
        );
        assert_eq!(r.accounts, AccountSelection::Organization);
        let r = request_for(&json!({"accounts": ["222222222222", "333333333333"]}), &s).unwrap();
        assert_eq!(
            r.accounts,
            AccountSelection::List(vec!["222222222222".into(), "333333333333".into()])
        );
    }

    #[test]
    fn a_wrong_input_is_a_clear_error() {
        let s = settings(&[TOPIC, BUCKET, REGION]).unwrap();
        let envelope = json!({"version": "0", "detail-type": "Scheduled Event", "detail": {}});
        assert!(request_for(&envelope, &s)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        assert_eq!(
            request_for(&json!({"accounts": ["12"]}), &s)
                .unwrap_err()
                .name,
            "input.accounts"
        );
        assert_eq!(
            request_for(&json!({"regions": ["not a region"]}), &s)
                .unwrap_err()
                .name,
            "input.regions"
        );
        assert!(request_for(&json!([1, 2]), &s).is_err());
    }
}
