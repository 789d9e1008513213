//! grant-watcher: the real-time Lambda. Reads its configuration once,
//! builds its clients once, then hands each EventBridge event to
//! `grantwatch_core::app::watch::watch_event`. Nothing else lives here.

use grantwatch_aws::config::{bad, ConfigError, Env};
use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::sdk::{self, SystemClock};
use grantwatch_aws::secrets::SecretsManagerSource;
use grantwatch_aws::slack::{SlackNotifier, SlackPolicy};
use grantwatch_aws::sns::SnsNotifier;
use grantwatch_core::app::watch::{
    watch_event, Clock, WatchConfig, WatchDeps, WatchError, WatchOutcome, DEFAULT_STORM_THRESHOLD,
    DEFAULT_STORM_WINDOW_SECONDS,
};
use grantwatch_core::verdict::Severity;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

type Slack = SlackNotifier<SecretsManagerSource, SystemClock>;
type Deps = WatchDeps<DynamoLedger, SnsNotifier, Slack, SystemClock>;

/// The function's settings, from its environment (see docs/watcher.md).
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    alert_topic_arn: String,
    ledger_table: String,
    slack_webhook_secret_arn: Option<String>,
    min_alert_severity: Severity,
    rules_s3_uri: Option<String>,
    ledger_retention_days: u32,
    storm_threshold: u64,
    storm_window_seconds: u64,
    function_name: String,
}

impl Settings {
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let env = Env::new(get);
        Ok(Settings {
            alert_topic_arn: env.alert_topic_arn()?,
            ledger_table: env.required("LEDGER_TABLE")?,
            slack_webhook_secret_arn: env.optional("SLACK_WEBHOOK_SECRET_ARN"),
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
            function_name: env
                .optional("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| "grant-watcher".to_string()),
        })
    }
}

/// Settings, rules and clients: everything built once per process.
async fn init() -> Result<(Deps, String), ConfigError> {
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let config = sdk::load_config().await;
    let rules = match &settings.rules_s3_uri {
        Some(uri) => sdk::load_rules(&sdk::s3_client(&config), uri)
            .await
            .map_err(|e| bad("RULES_S3_URI", e))?,
        None => Default::default(),
    };
    let slack = match &settings.slack_webhook_secret_arn {
        Some(secret) => {
            let http = reqwest::Client::builder().build().map_err(|e| {
                bad(
                    "SLACK_WEBHOOK_SECRET_ARN",
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
            let secrets =
                SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&config), secret);
            Some(SlackNotifier::new(
                http,
                secrets,
                SystemClock,
                SlackPolicy::default(),
            ))
        }
        None => None,
    };
    tracing::info!(
        ledger_table = %settings.ledger_table,
        slack = slack.is_some(),
        min_alert_severity = %settings.min_alert_severity,
        rules = rules.rules.len(),
        storm_threshold = settings.storm_threshold,
        storm_window_seconds = settings.storm_window_seconds,
        "grant-watcher configured"
    );
    let deps = WatchDeps {
        ledger: DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&config),
            &settings.ledger_table,
            settings.ledger_retention_days,
        ),
        sns: SnsNotifier::new(aws_sdk_sns::Client::new(&config), &settings.alert_topic_arn),
        slack,
        clock: SystemClock,
        config: WatchConfig {
            rules,
            min_alert_severity: settings.min_alert_severity,
            storm_threshold: settings.storm_threshold,
            storm_window_seconds: settings.storm_window_seconds,
        },
    };
    Ok((deps, settings.function_name))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let (deps, function_name) = match init().await {
        Ok(ready) => ready,
        Err(error) => {
            tracing::error!(setting = error.name, problem = %error.problem, "invalid configuration");
            sdk::report_init_error("InvalidConfiguration", &error.to_string()).await;
            return Err(error.into());
        }
    };
    let deps = &deps;
    let function_name = function_name.as_str();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(event, deps, function_name).await
    }))
    .await
}

/// One invocation: watch the event, print its metrics, map errors to
/// stable Lambda error types.
async fn handle(
    event: LambdaEvent<Value>,
    deps: &Deps,
    function_name: &str,
) -> Result<WatchOutcome, Diagnostic> {
    let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
    let result = watch_event(&event.payload, deps, deadline_ms).await;
    let metrics = match &result {
        Ok(outcome) => outcome.metrics(),
        Err(error) => error.metrics(),
    };
    // EMF: its own stdout line, not inside a log record.
    println!("{}", metrics.emf(function_name, deps.clock.now_ms()));
    match result {
        Ok(outcome) => {
            log_outcome(&outcome);
            Ok(outcome)
        }
        Err(error) => {
            log_error(&error);
            Err(Diagnostic {
                error_type: error.error_type().to_string(),
                error_message: error.to_string(),
            })
        }
    }
}

fn log_outcome(outcome: &WatchOutcome) {
    match outcome {
        WatchOutcome::Skipped {
            event_name,
            event_source,
        } => tracing::info!(
            event_name = event_name.as_deref().unwrap_or("none"),
            event_source = event_source.as_deref().unwrap_or("none"),
            "not a grant event: skipped"
        ),
        WatchOutcome::Watched {
            event_id,
            event_name,
            severity,
            alert,
            suppressed_by,
            first_seen,
            mode,
            channels,
            digest_size,
        } => tracing::info!(
            event_id = %event_id,
            event_name = %event_name,
            severity = %severity,
            alert,
            suppressed_by = suppressed_by.as_deref().unwrap_or("none"),
            first_seen,
            mode = ?mode,
            channels = %serde_json::to_string(channels).unwrap_or_default(),
            digest_size = digest_size.unwrap_or(0),
            "grant event watched"
        ),
    }
}

fn log_error(error: &WatchError) {
    tracing::error!(error_type = error.error_type(), error = %error, "invocation failed");
}

#[cfg(test)]
mod tests {
    use super::*;
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
            settings(&[TOPIC, TABLE, ("SLACK_WEBHOOK_SECRET_ARN", "")])
                .unwrap()
                .slack_webhook_secret_arn,
            None,
            "empty means no Slack"
        );
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
