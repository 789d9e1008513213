//! The watcher's dependencies in the CLI, for `redrive` and `reconcile`:
//! one set of flags (the watcher's settings), one way to build the ledger
//! and notifiers. The channels are built by `grantwatch_aws::channels`, as
//! the watcher's are: the opt-in ones (`CHATBOT_TOPIC_ARN`,
//! `EVENT_BUS_NAME`, `SECURITY_HUB_ENABLED`, ...), redaction
//! (`REDACT_ENCRYPTION_CONTEXT`) and runbook links (`RUNBOOK_BASE_URL`) are
//! read from the environment under the watcher's names. Replaying an event
//! is [`grantwatch_aws::trail::replay_event`].

use grantwatch_aws::config::Env;
use grantwatch_aws::ledger::DynamoLedger;
use grantwatch_aws::sdk::{self, SystemClock};
use grantwatch_aws::trail::{self, WatcherSettings};
use grantwatch_core::app::watch::WatchDeps;
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
    /// The trust zone: account ids (comma-separated) or ORG (see docs/classify.md).
    #[arg(long, env = "TRUSTED_ACCOUNTS", value_name = "ACCOUNTS|ORG", default_value = "", value_parser = crate::args::trusted_accounts)]
    pub trusted_accounts: grantwatch_core::trust::TrustSetting,
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

/// The watcher's ledger, channels and judgement settings, from the flags
/// (or the watcher's environment names), checked as the watcher's are.
pub async fn watcher_deps(
    args: &WatcherArgs,
    config: &aws_config::SdkConfig,
) -> Result<Deps, String> {
    // Named by flag when missing (the shared check names the variable).
    required(
        args.alert_topic_arn.as_deref(),
        "--alert-topic-arn",
        "ALERT_TOPIC_ARN",
    )?;
    ledger_table(args)?;
    let severity = args.min_severity.to_string();
    let env = Env::new(|name| match name {
        "ALERT_TOPIC_ARN" => args.alert_topic_arn.clone(),
        "LEDGER_TABLE" => args.ledger_table.clone(),
        "SLACK_WEBHOOK_SECRET_ARN" => args.slack_webhook_secret_arn.clone(),
        "MIN_ALERT_SEVERITY" => Some(severity.clone()),
        "OWN_RESOURCES" => args.own_resources.clone(),
        other => std::env::var(other).ok(),
    });
    let mut settings = WatcherSettings::from_env(&env).map_err(|e| e.to_string())?;
    settings.trusted_accounts = args.trusted_accounts.clone();
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
    trail::watcher_deps(config, settings, rules)
        .await
        .map_err(|e| e.to_string())
}
