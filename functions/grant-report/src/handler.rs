//! One invocation: one report. The clients are built once per process
//! ([`init`]); [`handle`] runs `grantwatch_core::app::report` for each
//! scheduler event.

use crate::delivery::Channel;
use crate::settings::{request_for, Settings};
use grantwatch_aws::config::{bad, resolve_trust_zone, ConfigError};
use grantwatch_aws::directory::AwsDirectory;
use grantwatch_aws::inventory::{KmsInventory, RetryPolicy};
use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::rules_source::RulesSource;
use grantwatch_aws::scope::MemberKmsClients;
use grantwatch_aws::sdk::{self, SystemClock};
use grantwatch_aws::secrets::SecretsManagerSource;
use grantwatch_aws::slack::{SlackNotifier, SlackPolicy};
use grantwatch_aws::sns::SnsNotifier;
use grantwatch_aws::store::S3ReportStore;
use grantwatch_core::app::report::{
    run_report, DeadlineAt, Quiet, ReportDeps, ReportOptions, ReportOutcome,
};
use grantwatch_core::judge::Policy;
use grantwatch_core::ports::inventory::{AccountDirectory, StackProvenance};
use grantwatch_core::rules::RuleSet;
use grantwatch_core::trust::TrustZone;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Clients and settings: built once per process.
pub(crate) struct Deps {
    settings: Settings,
    inventory: KmsInventory<MemberKmsClients>,
    directory: AwsDirectory,
    store: S3ReportStore,
    ledger: Option<DynamoLedger>,
    channels: Vec<Channel>,
    /// The rules file, read again when it changed (a warm container).
    rules: Option<RulesSource>,
    /// `TRUSTED_ACCOUNTS`, resolved once per process.
    trust_zone: TrustZone,
}

pub(crate) async fn init() -> Result<Deps, ConfigError> {
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let config = sdk::load_config().await;
    let s3 = sdk::s3_client(&config);
    // A rules file that cannot be loaded is logged at each run and the
    // report judges without it: never a failed start.
    let rules = match &settings.rules_s3_uri {
        Some(uri) => Some(RulesSource::new(s3.clone(), uri).map_err(|e| bad("RULES_S3_URI", e))?),
        None => None,
    };
    let directory = AwsDirectory {
        sts: aws_sdk_sts::Client::new(&config),
        organizations: aws_sdk_organizations::Client::new(&config),
    };
    let (trust_zone, unresolved) = resolve_trust_zone(&settings.trusted_accounts, &directory).await;
    if let Some(problem) = unresolved {
        tracing::error!(setting = problem.name, problem = %problem.problem, "trust zone not resolved: judging without one");
    }
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
        // Pinned to Slack's host (and SLACK_ALLOWED_HOSTS), no redirects.
        let slack = SlackNotifier::pinned(
            SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&config), secret),
            SystemClock,
            SlackPolicy::default(),
            settings.slack_allowed_hosts.clone(),
        )
        .map_err(|e| bad("SLACK_WEBHOOK_SECRET_ARN", e.to_string()))?;
        channels.push(Channel::Slack(slack));
    }
    let clients = MemberKmsClients::assuming(
        config.clone(),
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
        trust_zone,
        settings,
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One invocation: one report.
pub(crate) async fn handle(
    event: LambdaEvent<Value>,
    deps: &Deps,
) -> Result<ReportOutcome, Diagnostic> {
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
    let rules = match &deps.rules {
        Some(source) => {
            // RulesSource logs a file it cannot load; the last good rules
            // (or none) judge this report.
            (*source.current(Instant::now()).await.rules).clone()
        }
        None => RuleSet::default(),
    };
    let policy = Policy {
        rules,
        min_alert_severity: deps.settings.min_alert_severity,
        trust_zone: deps.trust_zone.clone(),
        ..Policy::new(now.date())
    };
    // An input naming accounts outside the configuration is refused
    // (ScopeRefused) before anything is read.
    let options = ReportOptions {
        configured_accounts: Some(deps.settings.accounts.clone()),
        grant_count_threshold: deps.settings.grant_count_threshold,
        ..ReportOptions::default()
    };
    // Every KMS call ends before the deadline less the report's reserve
    // (a silent endpoint costs its account-region, not the report).
    deps.inventory
        .set_deadline(Some(deadline.0), options.reserve);
    let provenance = deps.ledger.as_ref().map(StackProvenance);
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
            if outcome.pipeline_tampered > 0 {
                tracing::error!(
                    pipeline_tampered = outcome.pipeline_tampered,
                    "stored reports were changed or planted: pipeline-tampered (see the report)"
                );
            }
            tracing::info!(
                generated_at = %outcome.generated_at,
                partial = outcome.partial,
                keys = outcome.keys,
                grants = outcome.grants,
                risky = outcome.risky,
                coverage_gaps = outcome.coverage_gaps,
                pipeline_tampered = outcome.pipeline_tampered,
                unseen_by_watcher = outcome.unseen_by_watcher,
                silent_account_regions = outcome.silent_account_regions,
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
