//! The daily reconcile (optional, off by default): invoked with
//! `{"mode": "reconcile", "hours": 24}` (`hours` optional, 1 to 168), the
//! report Lambda reads the last `hours` of the trail's log files
//! (`TRAIL_BUCKET`, `TRAIL_PREFIX`), finds the grant events the watcher
//! never saw, and replays them through the watcher's judgement and delivery
//! ([`grantwatch_aws::trail::Reconcile`], as `grantwatch reconcile`).
//!
//! Its clients (ledger, SNS, Slack, S3) are built once per process, on the
//! first reconcile invocation only: a report-only deployment never needs
//! `TRAIL_BUCKET` nor the watcher's settings. A missing or wrong setting
//! fails the invocation (`InvalidConfiguration`); so does any missed event
//! not replayed or any log file not read (`ReconcileIncomplete`), so the
//! function's error alarm says so. See docs/reconcile.md.

use grantwatch_aws::config::{bad, ConfigError, Env};
use grantwatch_aws::ledger::DynamoLedger;
use grantwatch_aws::sdk::{self, SystemClock};
use grantwatch_aws::trail::{
    watcher_deps, LedgerEvents, Reconcile, ReconcileLine, ReconcileTotals, S3Client, S3Logs,
    WatcherSettings,
};
use grantwatch_core::app::watch::WatchDeps;
use grantwatch_core::logs::Options;
use grantwatch_core::rules::RuleSet;
use lambda_runtime::Diagnostic;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

/// Hours read when the input names none.
pub(crate) const DEFAULT_HOURS: u32 = 24;
/// At most a week per run (the Lambda's 15 minutes: docs/reconcile.md).
pub(crate) const MAX_HOURS: u32 = 168;

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The weekly report (any input without `mode`).
    Report,
    Reconcile {
        hours: u32,
    },
}

/// The mode of a scheduler input: `{"mode": "reconcile", "hours": N}`, or
/// no `mode` (or `"report"`) for the report.
pub(crate) fn mode_of(input: &Value) -> Result<Mode, String> {
    let mode = input.get("mode");
    match mode.and_then(Value::as_str) {
        None if mode.is_none_or(Value::is_null) => Ok(Mode::Report),
        Some("report") => Ok(Mode::Report),
        Some("reconcile") => {
            let hours = match input.get("hours") {
                None | Some(Value::Null) => DEFAULT_HOURS,
                Some(value) => value
                    .as_u64()
                    .filter(|h| (1..=u64::from(MAX_HOURS)).contains(h))
                    .map(|h| h as u32)
                    .ok_or_else(|| {
                        format!("hours: {value} is not a whole number from 1 to {MAX_HOURS}")
                    })?,
            };
            Ok(Mode::Reconcile { hours })
        }
        _ => Err(format!(
            "mode: {} is not \"report\" or \"reconcile\"",
            mode.map(Value::to_string).unwrap_or_default()
        )),
    }
}

/// Where the trail's log files are, and the watcher's settings.
#[derive(Debug, Clone)]
pub(crate) struct ReconcileSettings {
    /// `s3://TRAIL_BUCKET/TRAIL_PREFIX`.
    pub(crate) trail_uri: String,
    pub(crate) watcher: WatcherSettings,
    pub(crate) rules_s3_uri: Option<String>,
}

impl ReconcileSettings {
    pub(crate) fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<ReconcileSettings, ConfigError> {
        let env = Env::new(get);
        let bucket = env.optional("TRAIL_BUCKET").ok_or_else(|| {
            bad(
                "TRAIL_BUCKET",
                "required in reconcile mode (the trail's log bucket: the ReconcileTrailBucket parameter)",
            )
        })?;
        let prefix = env.optional("TRAIL_PREFIX").unwrap_or_default();
        let trail_uri = format!("s3://{bucket}/{}", prefix.trim_start_matches('/'));
        if bucket.contains('/') {
            return Err(bad(
                "TRAIL_BUCKET",
                format!("{bucket:?} is a bucket name, not a path (the path goes in TRAIL_PREFIX)"),
            ));
        }
        Ok(ReconcileSettings {
            trail_uri,
            watcher: WatcherSettings::from_env(&env)?,
            rules_s3_uri: env.rules_s3_uri()?,
        })
    }
}

struct ReconcileDeps {
    settings: ReconcileSettings,
    watch: WatchDeps<DynamoLedger, SystemClock>,
    seen: LedgerEvents,
    s3: S3Client,
}

/// Built on the first reconcile invocation, kept for the process.
static DEPS: OnceCell<ReconcileDeps> = OnceCell::const_new();

async fn deps() -> Result<&'static ReconcileDeps, ConfigError> {
    DEPS.get_or_try_init(|| async {
        let settings = ReconcileSettings::from_lookup(|name| std::env::var(name).ok())?;
        let config = sdk::load_config().await;
        let s3 = sdk::s3_client(&config);
        let rules = match &settings.rules_s3_uri {
            Some(uri) => sdk::load_rules(&s3, uri)
                .await
                .map_err(|e| bad("RULES_S3_URI", e))?,
            None => RuleSet::default(),
        };
        let watch = watcher_deps(&config, settings.watcher.clone(), rules).await?;
        let seen = LedgerEvents::new(
            aws_sdk_dynamodb::Client::new(&config),
            &settings.watcher.ledger_table,
        );
        Ok(ReconcileDeps {
            settings,
            watch,
            seen,
            s3,
        })
    })
    .await
}

/// Log files read at once. A trail's files are small (KBs to a few MB)
/// and each GetObject waits tens of milliseconds, so reading is bound by
/// S3's latency, not by the Lambda's one or two vCPUs; memory stays at
/// this many files in flight.
pub(crate) const READERS: usize = 16;

/// Days (UTC) of the last `hours` before `now`: the files to read.
pub(crate) fn options_for(hours: u32, now: time::OffsetDateTime) -> Options {
    let since = now - time::Duration::hours(i64::from(hours));
    Options {
        threads: READERS,
        since: Some(since.date()),
        until: Some(now.date()),
    }
}

/// The totals as the invocation's result (and the failure's message).
pub(crate) fn totals_json(hours: u32, uri: &str, totals: &ReconcileTotals) -> Value {
    json!({
        "mode": "reconcile",
        "hours": hours,
        "trail": uri,
        "files": totals.files,
        "events": totals.events,
        "seen": totals.seen,
        "missed": totals.missed,
        "replayed": totals.replayed,
        "failed": totals.failed,
        "problems": totals.problems,
    })
}

fn diagnostic(error_type: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_string(),
        error_message: message.into(),
    }
}

/// One reconcile invocation; `request_id` (the invocation's) names the
/// replays' leases, so two runs at once never both hold one.
pub(crate) async fn handle(hours: u32, request_id: &str) -> Result<Value, Diagnostic> {
    let deps = deps().await.map_err(|e| {
        tracing::error!(setting = e.name, problem = %e.problem, "invalid reconcile configuration");
        diagnostic("InvalidConfiguration", e.to_string())
    })?;
    let uri = deps.settings.trail_uri.clone();
    let options = options_for(hours, time::OffsetDateTime::now_utc());
    let handle = tokio::runtime::Handle::current();
    let logs = S3Logs::list(deps.s3.clone(), &uri, &options, handle.clone())
        .await
        .map_err(|e| {
            tracing::error!(trail = %uri, problem = %e, "cannot list the trail's log files");
            diagnostic("TrailUnreadable", format!("{uri}: {e}"))
        })?;
    // The reader's threads and the replays block on the runtime: off its workers.
    let owner = format!("reconcile-{request_id}");
    let run = tokio::task::spawn_blocking(move || {
        let mut run = Reconcile::new(&deps.seen, Some(&deps.watch), handle, owner);
        let result = run.run(&logs, &options, &mut |line| match line {
            ReconcileLine::Replayed(what) => tracing::info!(%what, "replayed a missed event"),
            ReconcileLine::Missed(what) => tracing::info!(%what, "missed"),
            ReconcileLine::Failed(what) => {
                tracing::error!(%what, "a missed event was not replayed")
            }
            ReconcileLine::Problem(what) => tracing::error!(%what, "a log file was not read"),
        });
        (run.totals, result)
    })
    .await
    .map_err(|e| {
        diagnostic(
            "ReconcileIncomplete",
            format!("the reconcile task stopped: {e}"),
        )
    })?;
    let (totals, result) = run;
    let summary = totals_json(hours, &uri, &totals);
    tracing::info!(%summary, "reconcile");
    if let Err(error) = result {
        return Err(diagnostic(
            "LedgerUnavailable",
            format!("the ledger could not be read: {error}; {summary}"),
        ));
    }
    if totals.failed > 0 || totals.problems > 0 {
        return Err(diagnostic("ReconcileIncomplete", summary.to_string()));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_mode_comes_from_the_input_and_the_report_is_the_default() {
        assert_eq!(mode_of(&json!({})), Ok(Mode::Report));
        assert_eq!(mode_of(&json!({"accounts": "ORG"})), Ok(Mode::Report));
        assert_eq!(mode_of(&json!({"mode": "report"})), Ok(Mode::Report));
        assert_eq!(
            mode_of(&json!({"mode": "reconcile"})),
            Ok(Mode::Reconcile { hours: 24 })
        );
        assert_eq!(
            mode_of(&json!({"mode": "reconcile", "hours": 6})),
            Ok(Mode::Reconcile { hours: 6 })
        );
    }

    #[test]
    fn a_wrong_mode_or_hours_is_refused_naming_it() {
        for (input, named) in [
            (json!({"mode": "reconcil"}), "mode"),
            (json!({"mode": 3}), "mode"),
            (json!({"mode": "reconcile", "hours": 0}), "hours"),
            (json!({"mode": "reconcile", "hours": 169}), "hours"),
            (json!({"mode": "reconcile", "hours": "24"}), "hours"),
            (json!({"mode": "reconcile", "hours": -1}), "hours"),
        ] {
            let problem = mode_of(&input).unwrap_err();
            assert!(problem.starts_with(named), "{input}: {problem}");
        }
    }

    fn settings(vars: &[(&str, &str)]) -> Result<ReconcileSettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ReconcileSettings::from_lookup(|name| map.get(name).cloned())
    }

    const WATCHER: [(&str, &str); 2] = [
        (
            "ALERT_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:grantwatch-alerts",
        ),
        ("LEDGER_TABLE", "grantwatch-ledger"),
    ];

    #[test]
    fn the_trail_is_the_bucket_and_prefix() {
        let mut vars = WATCHER.to_vec();
        vars.push(("TRAIL_BUCKET", "org-trail"));
        vars.push(("TRAIL_PREFIX", "/o-abc/AWSLogs/"));
        let s = settings(&vars).unwrap();
        assert_eq!(s.trail_uri, "s3://org-trail/o-abc/AWSLogs/");
        assert_eq!(s.watcher.ledger_table, "grantwatch-ledger");
        vars.pop();
        assert_eq!(settings(&vars).unwrap().trail_uri, "s3://org-trail/");
    }

    #[test]
    fn a_missing_trail_bucket_or_watcher_setting_is_a_configuration_error() {
        let missing_bucket = settings(&WATCHER).unwrap_err();
        assert_eq!(missing_bucket.name, "TRAIL_BUCKET");
        // The template passes "" for an unset parameter.
        let mut vars = WATCHER.to_vec();
        vars.push(("TRAIL_BUCKET", " "));
        assert_eq!(settings(&vars).unwrap_err().name, "TRAIL_BUCKET");
        vars.pop();
        vars.push(("TRAIL_BUCKET", "org-trail/AWSLogs"));
        assert_eq!(settings(&vars).unwrap_err().name, "TRAIL_BUCKET");
        let no_table = settings(&[WATCHER[0], ("TRAIL_BUCKET", "b")]).unwrap_err();
        assert_eq!(no_table.name, "LEDGER_TABLE");
        let no_topic = settings(&[WATCHER[1], ("TRAIL_BUCKET", "b")]).unwrap_err();
        assert_eq!(no_topic.name, "ALERT_TOPIC_ARN");
    }

    #[tokio::test]
    async fn an_invocation_without_the_trail_bucket_fails_as_a_configuration_error() {
        // The process environment of the unit tests has no TRAIL_BUCKET.
        if std::env::var_os("TRAIL_BUCKET").is_some() {
            return;
        }
        let failed = handle(24, "test").await.unwrap_err();
        assert_eq!(failed.error_type, "InvalidConfiguration");
        assert!(failed.error_message.contains("TRAIL_BUCKET"));
    }

    #[test]
    fn the_files_read_are_the_days_of_the_last_hours() {
        let now = time::macros::datetime!(2026-11-29 01:30 UTC);
        let options = options_for(24, now);
        assert_eq!(options.since, Some(time::macros::date!(2026 - 11 - 28)));
        assert_eq!(options.until, Some(time::macros::date!(2026 - 11 - 29)));
        let options = options_for(1, now);
        assert_eq!(options.since, Some(time::macros::date!(2026 - 11 - 29)));
    }

    #[test]
    fn the_result_counts_every_outcome() {
        let totals = ReconcileTotals {
            files: 3,
            events: 5,
            seen: 4,
            missed: 1,
            replayed: 1,
            failed: 0,
            problems: 0,
        };
        let value = totals_json(24, "s3://t/", &totals);
        assert_eq!(value["missed"], 1);
        assert_eq!(value["replayed"], 1);
        assert_eq!(value["trail"], "s3://t/");
    }
}
