//! `grantwatch redrive`: send the events kept on a failure queue back
//! through the watcher's judgement and delivery (the same code, the same
//! ledger, so what was already delivered is not sent again).
//!
//! It reads both kinds of message the watcher's failures leave: an
//! EventBridge dead-letter message (the raw event) and a Lambda on-failure
//! destination record (the event in `requestPayload`). A message is
//! deleted only after its event was handled; one line per message on
//! stdout. Exit status: 0 every message redriven (or none waiting), 1 some
//! kept on the queue, 2 error (settings, the queue unreadable).

use grantwatch_aws::config::Env;
use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::sdk::{self, SystemClock};
use grantwatch_aws::secrets::SecretsManagerSource;
use grantwatch_aws::slack::{SlackNotifier, SlackPolicy};
use grantwatch_aws::sns::SnsNotifier;
use grantwatch_core::app::watch::{
    watch_event, Clock, Invocation, WatchConfig, WatchDeps, WatchOutcome,
};
use grantwatch_core::event::{self, Parsed};
use grantwatch_core::ports::notify::{ChannelClass, DynNotifier, WithClass};
use grantwatch_core::rules::RuleSet;
use grantwatch_core::verdict::Severity;
use serde_json::Value;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The failure queue's URL (the watcher's on-failure destination or
    /// EventBridge dead-letter queue).
    #[arg(long)]
    queue: String,
    /// Read and judge, send nothing, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Handle at most this many messages.
    #[arg(long, default_value_t = 1000)]
    max: usize,
    /// The alert topic (as the watcher's ALERT_TOPIC_ARN).
    #[arg(long, env = "ALERT_TOPIC_ARN")]
    alert_topic_arn: Option<String>,
    /// The grant ledger table (as the watcher's LEDGER_TABLE).
    #[arg(long, env = "LEDGER_TABLE")]
    ledger_table: Option<String>,
    /// The Slack webhook secret (as the watcher's SLACK_WEBHOOK_SECRET_ARN).
    #[arg(long, env = "SLACK_WEBHOOK_SECRET_ARN")]
    slack_webhook_secret_arn: Option<String>,
    /// Alert threshold (as the watcher's MIN_ALERT_SEVERITY).
    #[arg(long, env = "MIN_ALERT_SEVERITY", value_name = "SEVERITY", default_value = "medium", value_parser = crate::args::severity)]
    min_severity: Severity,
    /// Suppression / re-rating rules: a TOML file or the watcher's
    /// `s3://` URI (RULES_S3_URI).
    #[arg(long, env = "RULES_S3_URI", value_name = "FILE|S3_URI")]
    rules: Option<String>,
    /// grantwatch's own resources as JSON (as the watcher's OWN_RESOURCES),
    /// so redriven tamper and key lifecycle events are judged, not skipped.
    #[arg(long, env = "OWN_RESOURCES", value_name = "JSON")]
    own_resources: Option<String>,
}

/// How long one redriven event may take (as a watcher invocation).
const INVOCATION_MS: i64 = 80_000;

pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("grantwatch redrive: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(redrive(args)) {
        Ok(Tally { kept: 0, .. }) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(problem) => {
            eprintln!("grantwatch redrive: {problem}");
            ExitCode::from(2)
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    redriven: usize,
    kept: usize,
}

/// The watcher's event in a failure-queue message body: a Lambda
/// on-failure record's `requestPayload`, or the body itself (an
/// EventBridge dead-letter message is the event).
pub fn payload_of(body: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("the message is not JSON: {e}"))?;
    let payload = match value.get("requestPayload") {
        Some(payload) => payload.clone(),
        None => value,
    };
    if !payload.is_object() {
        return Err("the message holds no event object".to_string());
    }
    Ok(payload)
}

fn required(value: Option<String>, flag: &str, env: &str) -> Result<String, String> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{flag} (or {env}) is required"))
}

async fn redrive(args: Args) -> Result<Tally, String> {
    let config = sdk::load_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let deps = if args.dry_run {
        None
    } else {
        let topic = required(
            args.alert_topic_arn.clone(),
            "--alert-topic-arn",
            "ALERT_TOPIC_ARN",
        )?;
        let table = required(args.ledger_table.clone(), "--ledger-table", "LEDGER_TABLE")?;
        // The same checks as the watcher's settings.
        Env::new(|name| (name == "ALERT_TOPIC_ARN").then(|| topic.clone()))
            .alert_topic_arn()
            .map_err(|e| e.to_string())?;
        let rules = match args.rules.as_deref().filter(|r| !r.is_empty()) {
            Some(uri) if uri.starts_with("s3://") => sdk::load_rules(&sdk::s3_client(&config), uri)
                .await
                .map_err(|e| format!("--rules {uri}: {e}"))?,
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| RuleSet::parse_toml(&text).map_err(|e| e.to_string()))
                .map_err(|e| format!("--rules {path}: {e}"))?,
            None => RuleSet::default(),
        };
        let mut notifiers: Vec<Box<dyn DynNotifier>> = vec![Box::new(WithClass(
            SnsNotifier::new(aws_sdk_sns::Client::new(&config), &topic),
            ChannelClass::Mandatory,
        ))];
        if let Some(secret) = args
            .slack_webhook_secret_arn
            .as_ref()
            .filter(|s| !s.is_empty())
        {
            let secrets =
                SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&config), secret);
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
        Some(WatchDeps {
            ledger: DynamoLedger::new(
                aws_sdk_dynamodb::Client::new(&config),
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
    };
    let mut tally = Tally::default();
    let mut seen = 0;
    while seen < args.max {
        let batch = (args.max - seen).min(10) as i32;
        let received = sqs
            .receive_message()
            .queue_url(&args.queue)
            .max_number_of_messages(batch)
            .wait_time_seconds(1)
            // Long enough to handle the batch; a message not deleted comes
            // back after it.
            .visibility_timeout(120)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot read {}: {}",
                    args.queue,
                    sdk::classify("ReceiveMessage", &e)
                )
            })?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            seen += 1;
            let id = message.message_id.clone().unwrap_or_else(|| "?".into());
            let body = message.body.as_deref().unwrap_or("");
            let handled = handle(&id, body, deps.as_ref()).await;
            println!("{}", handled.line);
            if !handled.done || args.dry_run {
                tally.kept += usize::from(!handled.done);
                continue;
            }
            let Some(receipt) = message.receipt_handle.as_deref() else {
                tally.kept += 1;
                continue;
            };
            match sqs
                .delete_message()
                .queue_url(&args.queue)
                .receipt_handle(receipt)
                .send()
                .await
            {
                Ok(_) => tally.redriven += 1,
                Err(e) => {
                    println!(
                        "{id} kept: handled, but not deleted ({}); a second run will find it delivered",
                        sdk::classify("DeleteMessage", &e)
                    );
                    tally.kept += 1;
                }
            }
        }
    }
    eprintln!(
        "grantwatch redrive: {} redriven, {} kept{}",
        tally.redriven,
        tally.kept,
        if args.dry_run { " (dry run)" } else { "" }
    );
    Ok(tally)
}

struct Handled {
    line: String,
    done: bool,
}

type Deps = WatchDeps<DynamoLedger, SystemClock>;

async fn handle(id: &str, body: &str, deps: Option<&Deps>) -> Handled {
    let payload = match payload_of(body) {
        Ok(payload) => payload,
        Err(problem) => {
            return Handled {
                line: format!("{id} kept: {problem}"),
                done: false,
            }
        }
    };
    let Some(deps) = deps else {
        // Dry run: say what it is.
        let what = match event::parse_eventbridge_event(&payload) {
            Ok(Parsed::Grant(event)) => format!("{} {}", event.action.as_str(), event.event_id),
            Ok(Parsed::NotAGrantEvent { event_name, .. }) => format!(
                "not a grant event ({})",
                event_name.as_deref().unwrap_or("unnamed")
            ),
            Err(error) => format!("unreadable: {error}"),
        };
        return Handled {
            line: format!("{id} would redrive: {what}"),
            done: true,
        };
    };
    let request_id = format!("redrive-{id}");
    let invocation = Invocation {
        request_id: &request_id,
        deadline_ms: deps.clock.now_ms() + INVOCATION_MS,
    };
    match watch_event(&payload, deps, &invocation).await {
        Ok(outcome) => Handled {
            line: format!("{id} redriven: {}", summary(&outcome)),
            done: true,
        },
        Err(error) => Handled {
            line: format!("{id} kept: {}: {error}", error.error_type()),
            done: false,
        },
    }
}

fn summary(outcome: &WatchOutcome) -> String {
    match outcome {
        WatchOutcome::Heartbeat { event_id } => format!("heartbeat ({event_id})"),
        WatchOutcome::Skipped { event_name, .. } => format!(
            "not a grant event ({})",
            event_name.as_deref().unwrap_or("unnamed")
        ),
        WatchOutcome::Watched {
            event_id,
            event_name,
            severity,
            alert,
            channels,
            ..
        } => {
            let channels: Vec<String> = channels
                .iter()
                .map(|c| {
                    let status = serde_json::to_value(&c.status)
                        .ok()
                        .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string))
                        .unwrap_or_default();
                    format!("{}={status}", c.channel)
                })
                .collect();
            format!(
                "{event_name} {event_id} {severity}{}{}",
                if *alert { " alert" } else { "" },
                if channels.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", channels.join(", "))
                }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eventbridge_dead_letter_message_is_the_event() {
        let body = r#"{"version":"0","detail-type":"AWS API Call via CloudTrail","source":"aws.kms","detail":{"eventName":"CreateGrant"}}"#;
        let payload = payload_of(body).unwrap();
        assert_eq!(payload["source"], "aws.kms");
    }

    #[test]
    fn a_lambda_on_failure_record_holds_the_event_in_request_payload() {
        // The shape of an asynchronous invocation record (AWS Lambda
        // Developer Guide, "Capturing records of Lambda asynchronous
        // invocations").
        let body = r#"{
            "version": "1.0",
            "timestamp": "2019-11-14T18:16:05.568Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
                "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:my-function:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": {"detail-type": "AWS API Call via CloudTrail", "source": "aws.kms", "detail": {"eventID": "e1"}},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "LedgerUnavailable", "errorMessage": "..."}
        }"#;
        let payload = payload_of(body).unwrap();
        assert_eq!(payload["detail"]["eventID"], "e1");
    }

    #[test]
    fn anything_else_is_kept_with_a_reason() {
        assert!(payload_of("not json").unwrap_err().contains("not JSON"));
        assert!(payload_of("[1]").unwrap_err().contains("no event"));
        assert!(payload_of(r#"{"requestPayload": "x"}"#)
            .unwrap_err()
            .contains("no event"));
    }
}
