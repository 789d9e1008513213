//! `grantwatch redrive`: send the events kept on a failure queue back
//! through the watcher's judgement and delivery (the same code, the same
//! ledger, so what was already delivered is not sent again).
//!
//! It reads both kinds of message the watcher's failures leave: an
//! EventBridge dead-letter message (the raw event) and a Lambda on-failure
//! destination record (the event in `requestPayload`). A message is
//! deleted only after its event was handled; a message kept (or any, in a
//! dry run) is made visible again when the run ends. One line per message
//! on stdout. Exit status: 0 every message redriven (or none waiting), 1 some
//! kept on the queue, 2 error (settings, the queue unreadable).

use crate::replay::{self, Deps, WatcherArgs};
use grantwatch_aws::{sdk, trail};
use grantwatch_core::event::{self, Parsed};
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
    #[command(flatten)]
    watcher: WatcherArgs,
}

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

async fn redrive(args: Args) -> Result<Tally, String> {
    let config = sdk::load_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let deps = if args.dry_run {
        None
    } else {
        Some(replay::watcher_deps(&args.watcher, &config).await?)
    };
    let mut tally = Tally::default();
    let mut seen = 0;
    // Messages read but not deleted (kept, or any in a dry run): visible
    // again once the run ends, so the queue is as it was for them (hidden
    // meanwhile, so one run never reads a message twice).
    let mut not_deleted: Vec<String> = Vec::new();
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
                not_deleted.extend(message.receipt_handle.clone());
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
    for receipt in &not_deleted {
        if let Err(e) = sqs
            .change_message_visibility()
            .queue_url(&args.queue)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
        {
            // Still on the queue: it shows again when its 120 s run out.
            eprintln!(
                "grantwatch redrive: a kept message stays hidden for up to 120 s ({})",
                sdk::classify("ChangeMessageVisibility", &e)
            );
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
    match trail::replay_event(&payload, deps, &format!("redrive-{id}")).await {
        Ok(outcome) => Handled {
            line: format!("{id} redriven: {}", trail::describe_outcome(&outcome)),
            done: true,
        },
        Err(error) => Handled {
            line: format!("{id} kept: {}: {error}", error.error_type()),
            done: false,
        },
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
