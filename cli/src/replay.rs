//! The watcher's dependencies in the CLI, for `redrive` and `reconcile`:
//! one set of flags (the watcher's settings), one way to build the ledger
//! and notifiers. Replaying an event is [`grantwatch_aws::trail::replay_event`].

use grantwatch_aws::config::Env;
use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::sdk::{self, SystemClock};
use grantwatch_aws::secrets::SecretsManagerSource;
use grantwatch_aws::slack::{SlackNotifier, SlackPolicy};
use grantwatch_aws::sns::SnsNotifier;
use grantwatch_core::app::watch::{WatchConfig, WatchDeps};
use grantwatch_core::ports::notify::{ChannelClass, DynNotifier, WithClass};
use grantwatch_core::rules::RuleSet;
use grantwatch_core::verdict::Severity;

/// The watcher's settings, as flags (or the watcher's environment names).
#[derive(clap::Args, Debug, Clone)]
pub struct WatcherArgs {
    /// The alert topic (as the watcher's ALERT_TOPIC_ARN).
    #[arg(long, env = "ALERT_TOPIC_ARN")]
    pub alert_topic_arn: Option<String>,
    /// The grant ledger table (as the watcher's LEDGER_TABLE).
    #[arg(long, env = "LEDGER_TABLE")]
    pub ledger_table: Option<String>,
    /// The Slack webhook secret (as the watcher's SLACK_WEBHOOK_SECRET_ARN).
    #[arg(long, env = "SLACK_WEBHOOK_SECRET_ARN")]
    pub slack_webhook_secret_arn: Option<String>,
    /// Alert threshold (as the watcher's MIN_ALERT_SEVERITY).
    #[arg(long, env = "MIN_ALERT_SEVERITY", value_name = "SEVERITY", default_value = "medium", value_parser = crate::args::severity)]
    pub min_severity: Severity,
    /// Suppression / re-rating rules: a TOML file or the watcher's
    /// `s3://` URI (RULES_S3_URI).
    #[arg(long, env = "RULES_S3_URI", value_name = "FILE|S3_URI")]
    pub rules: Option<String>,
    /// grantwatch's own resources as JSON (as the watcher's OWN_RESOURCES),
    /// so tamper and key lifecycle events are judged, not skipped.
    #[arg(long, env = "OWN_RESOURCES", value_name = "JSON")]
    pub own_resources: Option<String>,
}

/// The watcher's dependencies as the CLI builds them.
pub type Deps = WatchDeps<DynamoLedger, SystemClock>;

pub fn required(value: Option<&str>, flag: &str, env: &str) -> Result<String, String> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("{flag} (or {env}) is required"))
}

/// The ledger table named by `--ledger-table`/LEDGER_TABLE.
pub fn ledger_table(args: &WatcherArgs) -> Result<String, String> {
    required(
        args.ledger_table.as_deref(),
        "--ledger-table",
        "LEDGER_TABLE",
    )
}

/// The watcher's ledger, SNS (mandatory) and Slack (best effort, pinned like
/// the watcher's) notifiers, rules and own resources, checked as the
/// watcher's settings are.
pub async fn watcher_deps(
    args: &WatcherArgs,
    config: &aws_config::SdkConfig,
) -> Result<Deps, String> {
    let topic = required(
        args.alert_topic_arn.as_deref(),
        "--alert-topic-arn",
        "ALERT_TOPIC_ARN",
    )?;
    let table = ledger_table(args)?;
    // The same checks as the watcher's settings.
    Env::new(|name| (name == "ALERT_TOPIC_ARN").then(|| topic.clone()))
        .alert_topic_arn()
        .map_err(|e| e.to_string())?;
    let rules = match args.rules.as_deref().filter(|r| !r.is_empty()) {
        Some(uri) if uri.starts_with("s3://") => sdk::load_rules(&sdk::s3_client(config), uri)
            .await
            .map_err(|e| format!("--rules {uri}: {e}"))?,
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| RuleSet::parse_toml(&text).map_err(|e| e.to_string()))
            .map_err(|e| format!("--rules {path}: {e}"))?,
        None => RuleSet::default(),
    };
    let mut notifiers: Vec<Box<dyn DynNotifier>> = vec![Box::new(WithClass(
        SnsNotifier::new(aws_sdk_sns::Client::new(config), &topic),
        ChannelClass::Mandatory,
    ))];
    if let Some(secret) = args
        .slack_webhook_secret_arn
        .as_ref()
        .filter(|s| !s.is_empty())
    {
        let secrets =
            SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(config), secret);
        // Pinned like the watcher's: hooks.slack.com (+ SLACK_ALLOWED_HOSTS), no redirects.
        let hosts = Env::new(|name| std::env::var(name).ok())
            .slack_allowed_hosts()
            .map_err(|e| e.to_string())?;
        let slack = SlackNotifier::pinned(secrets, SystemClock, SlackPolicy::default(), hosts)
            .map_err(|e| e.to_string())?;
        notifiers.push(Box::new(WithClass(slack, ChannelClass::BestEffort)));
    }
    let own_resources = match args
        .own_resources
        .as_deref()
        .filter(|o| !o.trim().is_empty())
    {
        Some(text) => Some(
            grantwatch_core::tamper::OwnResources::from_json(text)
                .map_err(|e| format!("--own-resources: {e}"))?,
        ),
        None => None,
    };
    Ok(WatchDeps {
        ledger: DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(config),
            &table,
            DEFAULT_RETENTION_DAYS,
        ),
        notifiers,
        clock: SystemClock,
        config: WatchConfig {
            rules,
            min_alert_severity: args.min_severity,
            own_resources,
            ..WatchConfig::default()
        },
    })
}
