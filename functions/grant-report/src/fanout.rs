//! The report fan-out's steps, each one invocation started by the state
//! machine (infra/template.yaml, `ReportFanOut`; docs/fanout.md):
//!
//! ```json
//! {"mode": "plan", "run_id": "<execution name>", "shard_size": 50, "request": {<schedule input>}}
//! {"mode": "inventory-shard", "run_id": "...", "shard": "<shard id>"}
//! {"mode": "merge", "run_id": "...", "shards_failed": {} | {"Error": "...", "Cause": "..."}}
//! ```
//!
//! The run's files live in `REPORT_BUCKET` under `runs/<run_id>/`
//! ([`S3RunStore`]); `grantwatch_core::app::fanout` does the work.

use crate::handler::{finish, Deps};
use crate::settings::request_for;
use aws_sdk_s3::primitives::ByteStream;
use grantwatch_aws::sdk::classify;
use grantwatch_core::app::fanout::{
    merge_run, plan_run, run_shard, FanOutError, RunStore, DEFAULT_SHARD_SIZE,
};
use grantwatch_core::ports::PortError;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;

/// A fan-out step, by the input's `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Plan,
    Shard,
    Merge,
}

/// The fan-out step an input asks for; `None` for any other input (the
/// report and reconcile modes, checked by `reconcile::mode_of`).
pub(crate) fn mode_of(payload: &Value) -> Option<Step> {
    match payload.get("mode").and_then(Value::as_str)? {
        "plan" => Some(Step::Plan),
        "inventory-shard" => Some(Step::Shard),
        "merge" => Some(Step::Merge),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanInput {
    #[allow(dead_code)]
    mode: String,
    run_id: String,
    #[serde(default)]
    shard_size: Option<usize>,
    /// The schedule's input: the same scope overrides as a single run.
    #[serde(default)]
    request: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardInput {
    #[allow(dead_code)]
    mode: String,
    run_id: String,
    shard: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeInput {
    #[allow(dead_code)]
    mode: String,
    run_id: String,
    /// The Map's error when it stopped (`{}` when it did not).
    #[serde(default)]
    shards_failed: Value,
}

/// The longest part of the Map's error the report repeats in each gap.
const FAILURE_DETAIL_CHARS: usize = 300;

/// `{"Error": "...", "Cause": "..."}` as one line; `None` for `{}`/null.
fn map_failure(value: &Value) -> Option<String> {
    let error = value.get("Error").and_then(Value::as_str);
    let cause = value.get("Cause").and_then(Value::as_str);
    let text = match (error, cause) {
        (None, None) => return None,
        (Some(e), None) => e.to_string(),
        (None, Some(c)) => c.to_string(),
        (Some(e), Some(c)) => format!("{e}: {c}"),
    };
    Some(text.chars().take(FAILURE_DETAIL_CHARS).collect())
}

fn invalid(problem: impl std::fmt::Display) -> Diagnostic {
    tracing::error!(%problem, "invalid fan-out input");
    Diagnostic {
        error_type: "InvalidInput".to_string(),
        error_message: problem.to_string(),
    }
}

fn failed(step: Step, error: FanOutError) -> Diagnostic {
    tracing::error!(?step, error_type = error.error_type(), error = %error, "fan-out step failed");
    Diagnostic {
        error_type: error.error_type().to_string(),
        error_message: error.to_string(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, Diagnostic> {
    serde_json::from_value(payload).map_err(invalid)
}

/// Run one fan-out step.
pub(crate) async fn handle(
    step: Step,
    event: LambdaEvent<Value>,
    deps: &Deps,
) -> Result<Value, Diagnostic> {
    let run = deps.invocation(&event.context).await;
    let provenance = deps.provenance();
    let report_deps = deps.report_deps(&run, &provenance);
    let runs = S3RunStore {
        client: deps.s3().clone(),
        bucket: deps.settings().report_bucket.clone(),
    };
    let output = match step {
        Step::Plan => {
            let input: PlanInput = parse(event.payload)?;
            let request = request_for(&input.request, deps.settings()).map_err(invalid)?;
            let planned = plan_run(
                &request,
                &report_deps,
                &runs,
                &input.run_id,
                &run.generated_at,
                input.shard_size.unwrap_or(DEFAULT_SHARD_SIZE),
            )
            .await
            .map_err(|e| failed(step, e))?;
            tracing::info!(run_id = %planned.run_id, shards = planned.shards, account_regions = planned.account_regions, "fan-out planned");
            let mut output = serde_json::to_value(&planned).map_err(invalid)?;
            output["bucket"] = Value::String(runs.bucket.clone());
            output
        }
        Step::Shard => {
            let input: ShardInput = parse(event.payload)?;
            let summary = run_shard(&input.run_id, &input.shard, &report_deps, &runs)
                .await
                .map_err(|e| failed(step, e))?;
            tracing::info!(run_id = %input.run_id, shard = %summary.shard, account_regions = summary.account_regions, keys = summary.keys, grants = summary.grants, gaps = summary.gaps, "fan-out shard inventoried");
            serde_json::to_value(&summary).map_err(invalid)?
        }
        Step::Merge => {
            let input: MergeInput = parse(event.payload)?;
            let shards_failed = map_failure(&input.shards_failed);
            if let Some(failure) = &shards_failed {
                tracing::error!(run_id = %input.run_id, %failure, "fan-out shards stopped: the merge names what they did not cover");
            }
            let function_name = &deps.settings().function_name;
            let merged = match merge_run(
                &input.run_id,
                shards_failed.as_deref(),
                &report_deps,
                &runs,
                &deps.channels(),
            )
            .await
            {
                Ok(merged) => merged,
                // The report's own failures end as a single run's do.
                Err(FanOutError::Report(error)) => {
                    return finish(Err(error), &run, function_name).map(|_| Value::Null)
                }
                Err(error) => return Err(failed(step, error)),
            };
            for problem in &merged.unexpected {
                tracing::warn!(run_id = %input.run_id, %problem, "fan-out result not in the plan: dropped");
            }
            if merged.missing_account_regions > 0 {
                tracing::error!(run_id = %input.run_id, missing = merged.missing_account_regions, "fan-out: account-regions without a shard result are coverage gaps in the report");
            }
            finish(Ok(merged.report.clone()), &run, function_name)?;
            serde_json::to_value(&merged).map_err(invalid)?
        }
    };
    Ok(output)
}

/// The run's files in the report bucket.
pub(crate) struct S3RunStore {
    pub(crate) client: aws_sdk_s3::Client,
    pub(crate) bucket: String,
}

impl RunStore for S3RunStore {
    async fn put_run_file(&self, key: &str, body: Vec<u8>) -> Result<(), PortError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify("PutObject", &e))?;
        Ok(())
    }

    async fn get_run_file(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(classify("GetObject", &e)),
        };
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| PortError::Transient(format!("GetObject {key}: {e}")))?;
        Ok(Some(body.into_bytes().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_fan_out_modes_are_taken() {
        assert_eq!(mode_of(&json!({"mode": "plan"})), Some(Step::Plan));
        assert_eq!(
            mode_of(&json!({"mode": "inventory-shard"})),
            Some(Step::Shard)
        );
        assert_eq!(mode_of(&json!({"mode": "merge"})), Some(Step::Merge));
        for other in [
            json!({}),
            json!({"mode": "report"}),
            json!({"mode": "reconcile"}),
            json!({"mode": 3}),
            json!({"accounts": "ORG"}),
        ] {
            assert_eq!(mode_of(&other), None, "{other}");
        }
    }

    #[test]
    fn the_maps_error_is_one_bounded_line() {
        assert_eq!(map_failure(&json!({})), None);
        assert_eq!(map_failure(&Value::Null), None);
        assert_eq!(
            map_failure(
                &json!({"Error": "States.ExceededToleratedFailureThreshold", "Cause": "1 of 3 failed"})
            ),
            Some("States.ExceededToleratedFailureThreshold: 1 of 3 failed".into())
        );
        let long = map_failure(&json!({"Cause": "x".repeat(5000)})).unwrap();
        assert_eq!(long.chars().count(), FAILURE_DETAIL_CHARS);
    }

    #[test]
    fn inputs_with_unknown_fields_are_refused() {
        let bad: Result<ShardInput, _> =
            parse(json!({"mode": "inventory-shard", "run_id": "r", "shard": "s", "targets": []}));
        assert_eq!(bad.unwrap_err().error_type, "InvalidInput");
        let ok: ShardInput =
            parse(json!({"mode": "inventory-shard", "run_id": "r", "shard": "s"})).unwrap();
        assert_eq!(ok.shard, "s");
    }
}
