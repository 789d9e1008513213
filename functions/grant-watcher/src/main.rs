//! grant-watcher: the real-time Lambda. Reads its configuration once,
//! builds its clients once, then hands each EventBridge event to
//! `grantwatch_core::app::watch::watch_event` (see handler.rs). Nothing
//! else lives here.

mod channels;
mod handler;
mod settings;

use grantwatch_aws::config::{bad, ConfigError};
use grantwatch_aws::ledger::DynamoLedger;
use grantwatch_aws::sdk::{self, SystemClock};
use grantwatch_aws::secrets::SecretsManagerSource;
use grantwatch_aws::slack::{SlackNotifier, SlackPolicy};
use grantwatch_aws::sns::SnsNotifier;
use grantwatch_core::app::watch::{WatchConfig, WatchDeps};
use grantwatch_core::ports::notify::{ChannelClass, DynNotifier};
use handler::Deps;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use settings::Settings;

/// Settings, rules and clients: everything built once per process.
async fn init() -> Result<(Deps, String), ConfigError> {
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    // Every AWS call bounded (attempt 3 s, operation 10 s): no stalled call
    // eats the invocation.
    let config = sdk::load_watcher_config().await;
    let rules = match &settings.rules_s3_uri {
        Some(uri) => sdk::load_rules(&sdk::s3_client(&config), uri)
            .await
            .map_err(|e| bad("RULES_S3_URI", e))?,
        None => Default::default(),
    };
    // The channels, in order, each with its class (docs/watcher.md,
    // "Reliability"): SNS is mandatory; Slack, EventBridge best effort.
    let channels = &settings.channels;
    let mut notifiers: Vec<Box<dyn DynNotifier>> = vec![channels.for_people(
        SnsNotifier::new(aws_sdk_sns::Client::new(&config), &settings.alert_topic_arn)
            .with_links(channels.links.clone()),
        ChannelClass::Mandatory,
    )];
    if let Some(secret) = &settings.slack_webhook_secret_arn {
        let secrets =
            SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&config), secret);
        // Pinned to hooks.slack.com (+ SLACK_ALLOWED_HOSTS), no redirects.
        let slack = SlackNotifier::pinned(
            secrets,
            SystemClock,
            SlackPolicy::default(),
            settings.slack_allowed_hosts.clone(),
        )
        .map_err(|e| bad("SLACK_WEBHOOK_SECRET_ARN", e.to_string()))?;
        notifiers.push(channels.for_people(slack, ChannelClass::BestEffort));
    }
    notifiers.extend(channels.chatbot_channel(aws_sdk_sns::Client::new(&config)));
    notifiers.extend(channels.machine_channels(aws_sdk_eventbridge::Client::new(&config)));
    tracing::info!(
        ledger_table = %settings.ledger_table,
        channels = notifiers.len(),
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
        notifiers,
        clock: SystemClock,
        config: WatchConfig {
            rules,
            min_alert_severity: settings.min_alert_severity,
            storm_threshold: settings.storm_threshold,
            storm_window_seconds: settings.storm_window_seconds,
            own_resources: settings.own_resources,
            canary: settings.canary.as_ref().map(|canary| {
                canary.canary(
                    &config,
                    &settings.ledger_table,
                    settings.ledger_retention_days,
                )
            }),
            // TRUSTED_ACCOUNTS resolved here next (h8): until then, no zone.
            trust_zone: grantwatch_core::trust::TrustZone::Unset,
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
        handler::handle(event, deps, function_name).await
    }))
    .await
}
