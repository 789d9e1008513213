//! grant-watcher: the real-time Lambda. Reads its configuration once,
//! builds its clients once, then hands each EventBridge event to
//! `grantwatch_core::app::watch::watch_event` (see handler.rs). Nothing
//! else lives here.

mod channels;
mod handler;
mod settings;

use grantwatch_aws::config::{bad, resolve_trust_zone, ConfigError};
use grantwatch_aws::directory::AwsDirectory;
use grantwatch_aws::ledger::DynamoLedger;
use grantwatch_aws::rules_source::RulesSource;
use grantwatch_aws::sdk::{self, SystemClock};
use grantwatch_core::app::watch::{WatchConfig, WatchDeps};
use grantwatch_core::rules::LiveRules;
use handler::Deps;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use settings::Settings;

/// Settings, rules and clients: everything built once per process.
async fn init() -> Result<(Deps, Option<RulesSource>, String), ConfigError> {
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    // Every AWS call bounded (attempt 3 s, operation 10 s): no stalled call
    // eats the invocation.
    let config = sdk::load_watcher_config().await;
    // The rules file is re-read when it changes (at most once a minute). One
    // that cannot be loaded at cold start means no rules, not a failed start:
    // the watcher alerts on everything rather than on nothing.
    let rules_source = match &settings.rules_s3_uri {
        Some(uri) => Some(
            RulesSource::new(sdk::s3_client(&config), uri).map_err(|e| bad("RULES_S3_URI", e))?,
        ),
        None => None,
    };
    let rules = match &rules_source {
        Some(source) => {
            LiveRules::new((*source.current(std::time::Instant::now()).await.rules).clone())
        }
        None => LiveRules::default(),
    };
    // TRUSTED_ACCOUNTS=ORG is listed once; where Organizations cannot be
    // read the zone stays unset (logged): cross-account findings keep their
    // default severity, nothing is silenced.
    let directory = AwsDirectory::new(
        aws_sdk_sts::Client::new(&config),
        aws_sdk_organizations::Client::new(&config),
    );
    let (trust_zone, unresolved) = resolve_trust_zone(&settings.trusted_accounts, &directory).await;
    if let Some(problem) = unresolved {
        tracing::error!(setting = problem.name, problem = %problem.problem, "trust zone not resolved: judging without one");
    }
    // Every channel, in order, each with its class (docs/watcher.md,
    // "Reliability"), built as the replays build them.
    let notifiers = settings.channels.build(&config)?;
    tracing::info!(
        ledger_table = %settings.ledger_table,
        channels = ?grantwatch_aws::channels::describe(&notifiers),
        min_alert_severity = %settings.min_alert_severity,
        rules = rules.get().rules.len(),
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
            trust_zone,
            correlation: settings.correlation,
        },
    };
    Ok((deps, rules_source, settings.function_name))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let (deps, rules_source, function_name) = match init().await {
        Ok(ready) => ready,
        Err(error) => {
            tracing::error!(setting = error.name, problem = %error.problem, "invalid configuration");
            sdk::report_init_error("InvalidConfiguration", &error.to_string()).await;
            return Err(error.into());
        }
    };
    let deps = &deps;
    let rules_source = rules_source.as_ref();
    let function_name = function_name.as_str();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler::handle(event, deps, rules_source, function_name).await
    }))
    .await
}
