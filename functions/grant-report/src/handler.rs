//! One invocation: one report. The clients are built once per process
//! ([`init`]); [`handle`] runs `grantwatch_core::app::report` for each
//! scheduler event.

use crate::delivery::{Channel, SecurityHubImport};
use crate::settings::{request_for, Settings};
use grantwatch_aws::config::{bad, resolve_trust_zone, ConfigError};
use grantwatch_aws::directory::AwsDirectory;
use grantwatch_aws::inventory::{KmsInventory, RetryPolicy};
use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::rules_source::RulesSource;
use grantwatch_aws::scope::MemberKmsClients;
use grantwatch_aws::sdk;
use grantwatch_aws::securityhub::SecurityHub;
use grantwatch_aws::store::S3ReportStore;
use grantwatch_core::app::report::SummaryChannel;
use grantwatch_core::app::report::{
    run_report, DeadlineAt, Quiet, ReportDeps, ReportError, ReportOptions, ReportOutcome,
};
use grantwatch_core::emf;
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
    /// The report bucket's client, for the fan-out's run files (fanout.rs).
    s3: aws_sdk_s3::Client,
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
    let directory = AwsDirectory::new(
        aws_sdk_sts::Client::new(&config),
        aws_sdk_organizations::Client::new(&config),
    );
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
    // The watcher's channels, built the same way (redaction, runbook
    // links); the summary is one more notice for them.
    let mut channels: Vec<Channel> = settings
        .channels
        .build(&config)?
        .into_iter()
        .filter_map(Channel::notice)
        .collect();
    if let Some(min_severity) = settings.channels.security_hub_min_severity {
        channels.push(Channel::SecurityHub(SecurityHubImport {
            hub: SecurityHub::new(&config)
                .map_err(|e| bad("SECURITY_HUB_ENABLED", e.to_string()))?,
            min_severity,
            links: settings.channels.links.clone(),
            function_name: settings.function_name.clone(),
        }));
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
        channels = %channels.iter().map(|c| c.name()).collect::<Vec<_>>().join(","),
        listgrants_rate = settings.listgrants_rate,
        "grant-report configured"
    );
    Ok(Deps {
        inventory: KmsInventory::new(clients, settings.listgrants_rate, RetryPolicy::default()),
        directory,
        store: S3ReportStore::new(s3.clone(), &settings.report_bucket, settings.link_expiry),
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
        s3,
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One invocation's judgement and limits (the report and the fan-out
/// modes).
pub(crate) struct Invocation {
    pub(crate) generated_at: String,
    pub(crate) deadline: DeadlineAt,
    pub(crate) policy: Policy,
    pub(crate) options: ReportOptions,
    /// The rules file could not be (re)loaded: the last good rules (or
    /// none) judge this run. Counted (`RulesLoadFailed`).
    pub(crate) rules_load_failed: bool,
    pub(crate) started: Instant,
}

impl Deps {
    /// Rules reloaded, policy, options, and the deadline set on the
    /// inventory.
    pub(crate) async fn invocation(&self, context: &lambda_runtime::Context) -> Invocation {
        let started = Instant::now();
        let now = time::OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        // RFC 3339 cannot fail for a UTC time of this era; the fallback
        // still names the second.
        let generated_at = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| now.unix_timestamp().to_string());
        let deadline =
            DeadlineAt(started + Duration::from_millis(context.deadline.saturating_sub(now_ms())));
        let (rules, rules_load_failed) = match &self.rules {
            // RulesSource logs a file it cannot load; the last good rules
            // (or none) judge this report.
            Some(source) => {
                let current = source.current(started).await;
                ((*current.rules).clone(), current.failing)
            }
            None => (RuleSet::default(), false),
        };
        let policy = Policy {
            rules,
            min_alert_severity: self.settings.min_alert_severity,
            trust_zone: self.trust_zone.clone(),
            ..Policy::new(now.date())
        };
        // An input naming accounts outside the configuration is refused
        // (ScopeRefused) before anything is read.
        let options = ReportOptions {
            configured_accounts: Some(self.settings.accounts.clone()),
            grant_count_threshold: self.settings.grant_count_threshold,
            ..ReportOptions::default()
        };
        // Every KMS call ends before the deadline less the report's reserve
        // (a silent endpoint costs its account-region, not the report).
        self.inventory
            .set_deadline(Some(deadline.0), options.reserve);
        Invocation {
            generated_at,
            deadline,
            policy,
            options,
            rules_load_failed,
            started,
        }
    }

    /// Where the report learns what the watcher recorded (the ledger).
    pub(crate) fn provenance(&self) -> Option<StackProvenance<'_, DynamoLedger>> {
        self.ledger.as_ref().map(StackProvenance)
    }

    pub(crate) fn report_deps<'a>(
        &'a self,
        run: &'a Invocation,
        provenance: &'a Option<StackProvenance<'a, DynamoLedger>>,
    ) -> ReportDeps<
        'a,
        KmsInventory<MemberKmsClients>,
        Option<StackProvenance<'a, DynamoLedger>>,
        S3ReportStore,
        AwsDirectory,
    > {
        ReportDeps {
            inventory: &self.inventory,
            provenance,
            store: &self.store,
            directory: &self.directory,
            policy: &run.policy,
            options: &run.options,
            deadline: &run.deadline,
            progress: &Quiet,
        }
    }

    pub(crate) fn channels(&self) -> Vec<&Channel> {
        self.channels.iter().collect()
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }
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
    let run = deps.invocation(&event.context).await;
    let provenance = deps.provenance();
    let report_deps = deps.report_deps(&run, &provenance);
    let result = run_report(&request, &report_deps, &deps.channels(), &run.generated_at).await;
    finish(result, &run, &deps.settings.function_name)
}

/// Log the run, print its metrics (EMF) and map a failure to the Lambda's
/// error: the one ending of every report run (also the fan-out's merge).
pub(crate) fn finish(
    result: Result<ReportOutcome, ReportError>,
    run: &Invocation,
    function_name: &str,
) -> Result<ReportOutcome, Diagnostic> {
    let duration_ms = u64::try_from(run.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // EMF: its own stdout line, not inside a log record.
    println!(
        "{}",
        report_emf(
            &result,
            run.rules_load_failed,
            duration_ms,
            function_name,
            now_ms() as i64
        )
    );
    match result {
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
                rules_load_failed = run.rules_load_failed,
                duration_ms,
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

/// The report's metrics as one EMF object (namespace `grantwatch`,
/// dimension `FunctionName`): `Keys`, `Grants`, `RiskyGrants`,
/// `CoverageGaps` (a delivered run only), `Partial` and `Failed` (0/1:
/// the report alarm watches both), `DurationMs`, `RulesLoadFailed` (0/1).
fn report_emf(
    result: &Result<ReportOutcome, ReportError>,
    rules_load_failed: bool,
    duration_ms: u64,
    function_name: &str,
    now_ms: i64,
) -> Value {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let mut values = match result {
        Ok(o) => vec![
            ("Keys", count(o.keys), "Count"),
            ("Grants", count(o.grants), "Count"),
            ("RiskyGrants", count(o.risky), "Count"),
            ("CoverageGaps", count(o.coverage_gaps), "Count"),
            ("Partial", u64::from(o.partial), "Count"),
            ("Failed", 0, "Count"),
        ],
        Err(_) => vec![("Partial", 0, "Count"), ("Failed", 1, "Count")],
    };
    values.push(("DurationMs", duration_ms, "Milliseconds"));
    values.push(("RulesLoadFailed", u64::from(rules_load_failed), "Count"));
    emf::line(function_name, now_ms, &[], &values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(partial: bool) -> ReportOutcome {
        ReportOutcome {
            generated_at: "2026-11-30T02:00:00Z".into(),
            partial,
            keys: 3,
            grants: 17,
            risky: 2,
            coverage_gaps: 1,
            pipeline_tampered: 0,
            unseen_by_watcher: 0,
            silent_account_regions: 0,
            locations: vec![],
            link: String::new(),
            delivered: vec!["sns".into()],
        }
    }

    /// The metric names and units the line declares.
    fn declared(line: &Value) -> Vec<(String, String)> {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "grantwatch");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["FunctionName"]])
        );
        directive["Metrics"]
            .as_array()
            .expect("metric definitions")
            .iter()
            .map(|m| {
                (
                    m["Name"].as_str().unwrap_or("").to_string(),
                    m["Unit"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn a_delivered_report_counts_what_it_found_as_emf() {
        let line = report_emf(&Ok(outcome(true)), true, 1234, "grantwatch-report", 7);
        // The printed line parses back as EMF.
        let line: Value = serde_json::from_str(&line.to_string()).expect("one JSON object");
        assert_eq!(line["FunctionName"], "grantwatch-report");
        assert_eq!(line["_aws"]["Timestamp"], 7);
        for (name, value) in [
            ("Keys", 3),
            ("Grants", 17),
            ("RiskyGrants", 2),
            ("CoverageGaps", 1),
            ("Partial", 1),
            ("Failed", 0),
            ("DurationMs", 1234),
            ("RulesLoadFailed", 1),
        ] {
            assert_eq!(line[name], value, "{name}");
        }
        let declared = declared(&line);
        assert_eq!(declared.len(), 8, "{declared:?}");
        assert!(declared.contains(&("DurationMs".into(), "Milliseconds".into())));
        for (name, _) in &declared {
            assert!(line.get(name).is_some(), "{name} has a value");
        }
    }

    #[test]
    fn a_failed_report_counts_as_failed_without_counts() {
        let error = ReportError::Scope("no organization".into());
        let line = report_emf(&Err(error), false, 10, "grantwatch-report", 7);
        assert_eq!(line["Failed"], 1);
        assert_eq!(line["Partial"], 0);
        assert_eq!(line["RulesLoadFailed"], 0);
        assert!(line.get("Grants").is_none(), "nothing was counted");
        let names: Vec<String> = declared(&line).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["Partial", "Failed", "DurationMs", "RulesLoadFailed"]
        );
        let complete = report_emf(&Ok(outcome(false)), false, 10, "f", 7);
        assert_eq!(
            (complete["Partial"].clone(), complete["Failed"].clone()),
            (0.into(), 0.into())
        );
    }
}
