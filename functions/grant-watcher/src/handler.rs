//! One invocation: watch the event, print its metrics (EMF), map errors to
//! stable Lambda error types, log rejections at error level. The first
//! invocation of a process also writes the stack's deployment time to the
//! ledger (write-once: the first cold start ever wins); the weekly report
//! flags grants created after it that the watcher never saw.

use grantwatch_aws::ledger::DynamoLedger;
use grantwatch_aws::rules_source::RulesSource;
use grantwatch_aws::sdk::SystemClock;
use grantwatch_core::app::watch::{
    watch_event, ChannelStatus, Clock, Invocation, WatchDeps, WatchOutcome,
};
use grantwatch_core::ports::ledger::StackLedger;
use grantwatch_core::ports::notify::ChannelClass;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once this process has the deployment time in the ledger.
static DEPLOYED_RECORDED: AtomicBool = AtomicBool::new(false);

pub type Deps = WatchDeps<DynamoLedger, SystemClock>;

pub async fn handle(
    event: LambdaEvent<Value>,
    deps: &Deps,
    rules: Option<&RulesSource>,
    function_name: &str,
) -> Result<WatchOutcome, Diagnostic> {
    let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
    let invocation = Invocation {
        request_id: &event.context.request_id,
        deadline_ms,
    };
    record_deployed_once(deps, function_name).await;
    // A changed rules file is in force from this event on; while it cannot
    // be loaded the last good rules judge (RulesSource logs why) and every
    // such invocation is counted (RulesLoadFailed, alarmed).
    let mut rules_load_failed = false;
    if let Some(source) = rules {
        let current = source.current(std::time::Instant::now()).await;
        rules_load_failed = current.failing;
        deps.config.rules.set(current.rules);
    }
    let result = watch_event(&event.payload, deps, &invocation).await;
    let mut metrics = match &result {
        Ok(outcome) => outcome.metrics(),
        Err(error) => error.metrics(),
    };
    metrics.rules_load_failed = u64::from(rules_load_failed);
    // EMF: each object on its own stdout line, not inside a log record.
    for line in metrics.emf_lines(function_name, deps.clock.now_ms()) {
        println!("{line}");
    }
    match result {
        Ok(outcome) => {
            log_outcome(&outcome);
            Ok(outcome)
        }
        Err(error) => {
            tracing::error!(error_type = error.error_type(), error = %error, "invocation failed");
            Err(Diagnostic {
                error_type: error.error_type().to_string(),
                error_message: error.to_string(),
            })
        }
    }
}

/// Write the deployment time once per process (not per event). A failure
/// never costs the event: it is logged, counted (`DeployedRecordFailed`)
/// and tried again on the next invocation.
async fn record_deployed_once(deps: &Deps, function_name: &str) {
    if DEPLOYED_RECORDED.load(Ordering::Relaxed) {
        return;
    }
    let now_ms = deps.clock.now_ms();
    match deps.ledger.record_deployed(now_ms).await {
        Ok(deployed_at_ms) => {
            DEPLOYED_RECORDED.store(true, Ordering::Relaxed);
            tracing::info!(deployed_at_ms, "deployment time in the ledger");
        }
        Err(error) => {
            tracing::error!(error = %error, "cannot record the deployment time in the ledger");
            println!("{}", deployed_record_failed_emf(function_name, now_ms));
        }
    }
}

/// The EMF line counting one failed write of the deployment time.
fn deployed_record_failed_emf(function_name: &str, now_ms: i64) -> Value {
    grantwatch_core::emf::line(
        function_name,
        now_ms,
        &[],
        &[("DeployedRecordFailed", 1, "Count")],
    )
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
        WatchOutcome::Heartbeat { event_id, canary } => {
            tracing::info!(event_id = %event_id, "heartbeat recorded");
            if let Some(check) = canary {
                grantwatch_aws::canary::log_check(check);
            }
        }
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
            unparseable,
            possible_duplicates,
            alert_latency_ms,
            correlation_unavailable,
            cross_account_copy,
        } => {
            // Judged without correlation: the alert went out, but say so
            // (counted: CorrelationUnavailable).
            if *correlation_unavailable {
                tracing::warn!(
                    event_id = %event_id,
                    "the ledger's records for correlation could not be read: judged without duplicate, burst and persistence"
                );
            }
            // A best-effort channel's rejection: the invocation succeeds, so
            // say it loudly (an alarm watches DeliveriesRejected too).
            for channel in channels {
                if let ChannelStatus::Rejected(why) = &channel.status {
                    if channel.class == ChannelClass::BestEffort {
                        tracing::error!(
                            event_id = %event_id,
                            channel = %channel.channel,
                            problem = %why,
                            "channel rejected the alert (best effort: not retried)"
                        );
                    }
                }
            }
            tracing::info!(
                event_id = %event_id,
                event_name = %event_name,
                severity = %severity,
                alert,
                suppressed_by = suppressed_by.as_deref().unwrap_or("none"),
                first_seen,
                mode = ?mode,
                channels = %serde_json::to_string(channels).unwrap_or_default(),
                digest_size = digest_size.unwrap_or(0),
                unparseable,
                possible_duplicates,
                alert_latency_ms = alert_latency_ms.unwrap_or(0),
                correlation_unavailable,
                cross_account_copy = ?cross_account_copy,
                "grant event watched"
            )
        }
    }
}
