//! grant-report: the scheduled Lambda. Reads its configuration once,
//! builds its clients once, then runs `grantwatch_core::app::report` for
//! each invocation. Nothing else lives here.
//!
//! The scheduler's `Input` is the raw event (EventBridge Scheduler passes
//! it without an envelope). Every field is optional and overrides the
//! environment for that run:
//!
//! ```json
//! {"regions": ["eu-west-1", "us-east-1"], "accounts": ["111111111111", "222222222222"]}
//! {"accounts": "ORG"}
//! {}
//! ```
//!
//! See docs/report.md for the environment variables.

mod delivery;

use delivery::Channel;
use grantwatch_aws::config::{bad, ConfigError, Env};
use grantwatch_aws::inventory::{KmsInventory, RetryPolicy, DEFAULT_LISTGRANTS_RATE};
use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::scope::{AwsDirectory, MemberKmsClients, DEFAULT_MEMBER_ROLE};
use grantwatch_aws::sdk::{self, SystemClock};
use grantwatch_aws::secrets::SecretsManagerSource;
use grantwatch_aws::slack::{SlackNotifier, SlackPolicy};
use grantwatch_aws::sns::SnsNotifier;
use grantwatch_aws::store::S3ReportStore;
use grantwatch_core::app::report::{
    run_report, DeadlineAt, Quiet, ReportDeps, ReportOptions, ReportOutcome, ReportRequest,
};
use grantwatch_core::judge::Policy;
use grantwatch_core::ports::inventory::{AccountDirectory, AccountSelection, LedgerProvenance};
use grantwatch_core::rules::RuleSet;
use grantwatch_core::verdict::Severity;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The function's settings, from its environment (see docs/report.md).
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    report_bucket: String,
    alert_topic_arn: String,
    ledger_table: Option<String>,
    slack_webhook_secret_arn: Option<String>,
    rules_s3_uri: Option<String>,
    min_alert_severity: Severity,
    regions: Vec<String>,
    accounts: AccountSelection,
    member_role_name: String,
    member_role_external_id: Option<String>,
    link_expiry: Duration,
    listgrants_rate: f64,
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
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let env = Env::new(get);
        let optional = |name: &str| env.optional(name);
        let alert_topic_arn = env.alert_topic_arn()?;
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
            alert_topic_arn,
            ledger_table: optional("LEDGER_TABLE"),
            slack_webhook_secret_arn: optional("SLACK_WEBHOOK_SECRET_ARN"),
            rules_s3_uri,
            min_alert_severity,
            regions,
            accounts,
            member_role_name: optional("MEMBER_ROLE_NAME")
                .unwrap_or_else(|| DEFAULT_MEMBER_ROLE.to_string()),
            member_role_external_id: optional("MEMBER_ROLE_EXTERNAL_ID"),
            link_expiry: Duration::from_secs(link_expiry),
            listgrants_rate,
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
fn request_for(payload: &Value, settings: &Settings) -> Result<ReportRequest, ConfigError> {
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

/// Clients and settings: built once per process.
struct Deps {
    settings: Settings,
    inventory: KmsInventory<MemberKmsClients>,
    directory: AwsDirectory,
    store: S3ReportStore,
    ledger: Option<DynamoLedger>,
    channels: Vec<Channel>,
    rules: RuleSet,
}

async fn init() -> Result<Deps, ConfigError> {
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let config = sdk::load_config().await;
    let s3 = sdk::s3_client(&config);
    let rules = match &settings.rules_s3_uri {
        Some(uri) => sdk::load_rules(&s3, uri)
            .await
            .map_err(|e| bad("RULES_S3_URI", e))?,
        None => RuleSet::default(),
    };
    let directory = AwsDirectory {
        sts: aws_sdk_sts::Client::new(&config),
        organizations: aws_sdk_organizations::Client::new(&config),
    };
    let home_account = directory.this_account().await.map_err(|e| {
        bad(
            "credentials",
            format!("cannot tell which account this is: {e}"),
        )
    })?;
    let mut channels = vec![Channel::Sns(SnsNotifier::new(
        aws_sdk_sns::Client::new(&config),
        settings.alert_topic_arn.clone(),
    ))];
    if let Some(secret) = &settings.slack_webhook_secret_arn {
        let http = reqwest::Client::builder().build().map_err(|e| {
            bad(
                "SLACK_WEBHOOK_SECRET_ARN",
                format!("cannot build the HTTP client: {e}"),
            )
        })?;
        channels.push(Channel::Slack(SlackNotifier::new(
            http,
            SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&config), secret),
            SystemClock,
            SlackPolicy::default(),
        )));
    }
    let clients = MemberKmsClients::new(
        config.clone(),
        aws_sdk_sts::Client::new(&config),
        home_account.clone(),
        settings.member_role_name.clone(),
        settings.member_role_external_id.clone(),
    );
    tracing::info!(
        home_account = %home_account,
        bucket = %settings.report_bucket,
        regions = %settings.regions.join(","),
        accounts = ?settings.accounts,
        ledger = settings.ledger_table.is_some(),
        slack = settings.slack_webhook_secret_arn.is_some(),
        listgrants_rate = settings.listgrants_rate,
        rules = rules.rules.len(),
        "grant-report configured"
    );
    Ok(Deps {
        inventory: KmsInventory::new(clients, settings.listgrants_rate, RetryPolicy::default()),
        directory,
        store: S3ReportStore::new(s3, &settings.report_bucket, settings.link_expiry),
        ledger: settings.ledger_table.as_ref().map(|table| {
            DynamoLedger::new(
                aws_sdk_dynamodb::Client::new(&config),
                table,
                DEFAULT_RETENTION_DAYS,
            )
        }),
        channels,
        rules,
        settings,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = match init().await {
        Ok(deps) => deps,
        Err(error) => {
            tracing::error!(setting = error.name, problem = %error.problem, "invalid configuration");
            sdk::report_init_error("InvalidConfiguration", &error.to_string()).await;
            return Err(error.into());
        }
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(event, deps).await
    }))
    .await
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One invocation: one report.
async fn handle(event: LambdaEvent<Value>, deps: &Deps) -> Result<ReportOutcome, Diagnostic> {
    let request = request_for(&event.payload, &deps.settings).map_err(|e| {
        tracing::error!(problem = %e, "invalid scheduler input");
        Diagnostic {
            error_type: "InvalidInput".to_string(),
            error_message: e.to_string(),
        }
    })?;
    let now = time::OffsetDateTime::now_utc();
    let generated_at = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let deadline = DeadlineAt(
        Instant::now() + Duration::from_millis(event.context.deadline.saturating_sub(now_ms())),
    );
    let policy = Policy {
        rules: deps.rules.clone(),
        min_alert_severity: deps.settings.min_alert_severity,
        today: now.date(),
    };
    let options = ReportOptions::default();
    // Every KMS call ends before the deadline less the report's reserve
    // (a silent endpoint costs its account-region, not the report).
    deps.inventory.set_deadline(Some(deadline.0), options.reserve);
    let provenance = deps.ledger.as_ref().map(LedgerProvenance);
    let report_deps = ReportDeps {
        inventory: &deps.inventory,
        provenance: &provenance,
        store: &deps.store,
        directory: &deps.directory,
        policy: &policy,
        options: &options,
        deadline: &deadline,
        progress: &Quiet,
    };
    let channels: Vec<&Channel> = deps.channels.iter().collect();
    match run_report(&request, &report_deps, &channels, &generated_at).await {
        Ok(outcome) => {
            tracing::info!(
                generated_at = %outcome.generated_at,
                partial = outcome.partial,
                keys = outcome.keys,
                grants = outcome.grants,
                risky = outcome.risky,
                coverage_gaps = outcome.coverage_gaps,
                delivered = %outcome.delivered.join(","),
                "report delivered"
            );
            Ok(outcome)
        }
        Err(error) => {
            tracing::error!(error_type = error.error_type(), error = %error, "report failed");
            Err(Diagnostic {
                error_type: error.error_type().to_string(),
                error_message: error.to_string(),
            })
        }
    }
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
