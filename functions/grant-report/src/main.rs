//! grant-report: the scheduled Lambda. Reads its configuration once,
//! builds its clients once, then runs `grantwatch_core::app::report` for
//! each invocation. Nothing else lives here.
//!
//! The scheduler's `Input` is the raw event (EventBridge Scheduler passes
//! it without an envelope). Every field is optional and overrides the
//! environment for that run:
//!
//! ```json
//! {"regions": ["eu-west-1", "us-east-1"], "accounts": ["111111111111", "222222222222"]}
//! {"accounts": "ORG"}
//! {}
//! ```
//!
//! See docs/report.md for the environment variables.
//!
//! `{"mode": "reconcile", "hours": 24}` runs the daily reconcile instead
//! (`reconcile.rs`, docs/reconcile.md); `{"mode": "plan" | "inventory-shard"
//! | "merge", ...}` are the report fan-out's steps (`fanout.rs`,
//! docs/fanout.md).
//!
//! `settings.rs` reads the configuration, `handler.rs` builds the clients
//! and runs one report per invocation, `delivery.rs` holds the channels.

mod delivery;
mod fanout;
mod handler;
mod reconcile;
mod settings;

use grantwatch_aws::sdk;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = match handler::init().await {
        Ok(deps) => deps,
        Err(error) => {
            tracing::error!(setting = error.name, problem = %error.problem, "invalid configuration");
            sdk::report_init_error("InvalidConfiguration", &error.to_string()).await;
            return Err(error.into());
        }
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The report fan-out's steps (docs/fanout.md), before the modes
        // reconcile::mode_of refuses.
        if let Some(step) = fanout::mode_of(&event.payload) {
            return fanout::handle(step, event, deps).await;
        }
        match reconcile::mode_of(&event.payload) {
            Ok(reconcile::Mode::Report) => handler::handle(event, deps).await.map(|outcome| {
                serde_json::to_value(outcome).unwrap_or_else(|e| Value::String(e.to_string()))
            }),
            Ok(reconcile::Mode::Reconcile { hours }) => {
                reconcile::handle(hours, &event.context.request_id).await
            }
            Err(problem) => {
                tracing::error!(%problem, "invalid scheduler input");
                Err(lambda_runtime::Diagnostic {
                    error_type: "InvalidInput".to_string(),
                    error_message: problem,
                })
            }
        }
    }))
    .await
}
