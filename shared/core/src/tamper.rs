//! Self-protection: the calls that blind or weaken grantwatch, and the key
//! lifecycle calls that break every resource holding a grant on a key.
//!
//! The template's second EventBridge rule (`TamperEventsRule`) routes those
//! CloudTrail records to the watcher. Routing matches on the call only; this
//! module decides, from the record and the names and ARNs the template passes
//! in [`OWN_RESOURCES_ENV`], whether the call touched one of grantwatch's own
//! resources:
//!
//! - a call on an own resource: [`FindingCode::PipelineTampered`], critical
//!   (high when the call failed: an attempt, nothing changed);
//! - the same call made by CloudFormation (`invokedBy`) while deploying
//!   grantwatch's own stack: [`FindingCode::PipelineChangedByDeploy`], low;
//! - a key lifecycle call on someone else's key: [`FindingCode::KeyDisabled`],
//!   [`FindingCode::KeyPolicyChanged`] or [`FindingCode::KeyRecovered`], with
//!   the severities of `docs/security.md` and the resources that depend on
//!   the key's live grants (from the ledger);
//! - anything else: `None` (not a pipeline event).
//!
//! Pure: no I/O. The verdicts have the shape of grant verdicts, so they use
//! the same rendering, rules and ledger.

use crate::judge::Policy;
use crate::record::GrantRecord;
use crate::verdict::{quote, ActorView, Finding, FindingCode, Origin, Severity, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The watcher's environment variable holding [`OwnResources`] as JSON.
pub const OWN_RESOURCES_ENV: &str = "OWN_RESOURCES";

/// The EventBridge `source` of the scheduled heartbeat (EventBridge refuses
/// `aws.*` sources from callers).
pub const HEARTBEAT_SOURCE: &str = "grantwatch.heartbeat";

/// CloudFormation's `invokedBy` when it changes a resource while deploying.
const CLOUDFORMATION: &str = "cloudformation.amazonaws.com";

/// grantwatch's own resources, as the template passes them
/// (`OWN_RESOURCES`, JSON). Generated names are matched by prefix:
/// CloudFormation names a resource `<stack>-<LogicalId>-<suffix>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OwnResources {
    /// `AWS::StackName`.
    pub stack_name: String,
    /// `AWS::StackId`.
    pub stack_id: Option<String>,
    /// Logical ids of the stack's resources whose physical names
    /// CloudFormation generates (rules, functions, alarms, queues, ...).
    pub logical_ids: Vec<String>,
    /// Exact names and ARNs (topics, keys, table, secret, functions).
    pub resources: Vec<String>,
    /// Logical ids of the member stacks' resources (infra/member-account.yaml,
    /// any stack name): `<member stack>-<LogicalId>[-<suffix>]`. Their
    /// forwarding rule sends only calls on these.
    pub member_logical_ids: Vec<String>,
    /// `s3://bucket/key` of the suppression rules, when configured.
    pub rules_object: Option<String>,
    /// Trails whose changes blind grantwatch (names or ARNs); empty: every
    /// trail counts, as any of them may carry the events grantwatch reads.
    pub trails: Vec<String>,
}

/// `OWN_RESOURCES` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OwnResourcesError {
    #[error("{OWN_RESOURCES_ENV} is not set: the watcher cannot tell its own resources apart")]
    Missing,
    #[error("{OWN_RESOURCES_ENV} is not valid JSON of grantwatch's resources: {0}")]
    Invalid(String),
    #[error("{OWN_RESOURCES_ENV} names no stack (stack_name is empty)")]
    NoStack,
}

impl OwnResources {
    /// Parse the JSON of [`OWN_RESOURCES_ENV`]. Empty strings (a parameter
    /// left empty in the template) are dropped.
    pub fn from_json(text: &str) -> Result<OwnResources, OwnResourcesError> {
        let mut own: OwnResources =
            serde_json::from_str(text).map_err(|e| OwnResourcesError::Invalid(e.to_string()))?;
        if own.stack_name.trim().is_empty() {
            return Err(OwnResourcesError::NoStack);
        }
        own.logical_ids.retain(|s| !s.trim().is_empty());
        own.member_logical_ids.retain(|s| !s.trim().is_empty());
        own.resources.retain(|s| !s.trim().is_empty());
        own.trails.retain(|s| !s.trim().is_empty());
        own.rules_object = own.rules_object.filter(|s| !s.trim().is_empty());
        own.stack_id = own.stack_id.filter(|s| !s.trim().is_empty());
        Ok(own)
    }

    /// Is this name or ARN one of grantwatch's own resources? Compares
    /// whole ARNs, the last path segment of an ARN (a name given where an
    /// ARN is known, or the reverse), and generated-name prefixes.
    pub fn owns(&self, identifier: &str) -> bool {
        let identifier = identifier.trim();
        if identifier.is_empty() {
            return false;
        }
        let name = last_segment(identifier);
        let by_exact = self.resources.iter().any(|own| {
            own == identifier
                || last_segment(own) == name
                // Secrets Manager: an ARN ends in the name plus "-" and 6 characters.
                || secret_name(own).is_some_and(|n| n == name || Some(n) == secret_name(identifier))
                // SNS: a subscription ARN is its topic's ARN plus ":<id>".
                || identifier.strip_prefix(own.as_str()).is_some_and(|rest| rest.starts_with(':'))
        });
        by_exact
            || self.logical_ids.iter().any(|logical_id| {
                let prefix = format!("{}-{}-", self.stack_name, logical_id);
                name.starts_with(&prefix)
            })
            || self.member_logical_ids.iter().any(|logical_id| {
                let infix = format!("-{logical_id}");
                name.match_indices(&infix).any(|(at, _)| {
                    let rest = &name[at + infix.len()..];
                    at > 0 && (rest.is_empty() || rest.starts_with('-'))
                })
            })
    }

    fn owns_trail(&self, trail: &str) -> bool {
        self.trails.is_empty()
            || self
                .trails
                .iter()
                .any(|t| t == trail || last_segment(t) == last_segment(trail))
    }
}

/// Read [`OwnResources`] from an environment (`|name| std::env::var(name).ok()`).
pub fn own_resources_from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<OwnResources, OwnResourcesError> {
    let text = get(OWN_RESOURCES_ENV).ok_or(OwnResourcesError::Missing)?;
    OwnResources::from_json(&text)
}

/// The last segment of an ARN (`...:function:name`, `.../key-id`), a Lambda
/// qualifier (`name:alias`) dropped; a plain name is itself.
fn last_segment(identifier: &str) -> &str {
    if identifier.starts_with("https://") {
        // An SQS queue URL: https://sqs.<region>.amazonaws.com/<account>/<name>
        return identifier.rsplit('/').next().unwrap_or(identifier);
    }
    if !identifier.starts_with("arn:") {
        return identifier;
    }
    let parts: Vec<&str> = identifier.splitn(6, ':').collect();
    let resource = parts.get(5).copied().unwrap_or(identifier);
    // function:name[:qualifier], alarm:name, secret:name, table/name, key/id, trail/name, rule/[bus/]name
    let resource = resource
        .split_once(':')
        .map(|(_, rest)| rest.split(':').next().unwrap_or(rest))
        .unwrap_or(resource);
    resource.rsplit('/').next().unwrap_or(resource)
}

/// A Secrets Manager ARN's secret name (without the random suffix).
fn secret_name(identifier: &str) -> Option<&str> {
    let rest = identifier.split_once(":secret:")?.1;
    match rest.rsplit_once('-') {
        Some((name, suffix)) if suffix.len() == 6 => Some(name),
        _ => Some(rest),
    }
}

/// What a key lifecycle call does to a key's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyCall {
    /// DisableKey, ScheduleKeyDeletion, DeleteImportedKeyMaterial.
    Disables,
    /// PutKeyPolicy.
    PolicyChanged,
    /// EnableKey, CancelKeyDeletion, ImportKeyMaterial.
    Recovers,
}

fn key_call(event_name: &str) -> Option<KeyCall> {
    match event_name {
        "DisableKey" | "ScheduleKeyDeletion" | "DeleteImportedKeyMaterial" => {
            Some(KeyCall::Disables)
        }
        "PutKeyPolicy" => Some(KeyCall::PolicyChanged),
        "EnableKey" | "CancelKeyDeletion" | "ImportKeyMaterial" => Some(KeyCall::Recovers),
        _ => None,
    }
}

/// The event names the template's tamper rule routes, per event source
/// (Lambda names are prefixes: CloudTrail adds API version suffixes such as
/// `UpdateFunctionConfiguration20150331v2`). The template test keeps the
/// rule's pattern and this list equal.
pub const TAMPER_CALLS: &[(&str, &[&str])] = &[
    (
        "events.amazonaws.com",
        &[
            "DisableRule",
            "DeleteRule",
            "RemoveTargets",
            "PutRule",
            "PutTargets",
        ],
    ),
    (
        "lambda.amazonaws.com",
        &[
            "UpdateFunctionConfiguration",
            "UpdateFunctionCode",
            "PutFunctionConcurrency",
            "DeleteFunctionConcurrency",
            "DeleteFunction",
            "RemovePermission",
            "PutFunctionEventInvokeConfig",
            "UpdateFunctionEventInvokeConfig",
            "DeleteFunctionEventInvokeConfig",
        ],
    ),
    (
        "sns.amazonaws.com",
        &[
            "DeleteTopic",
            "SetTopicAttributes",
            "Unsubscribe",
            "SetSubscriptionAttributes",
        ],
    ),
    (
        "kms.amazonaws.com",
        &[
            "DisableKey",
            "ScheduleKeyDeletion",
            "PutKeyPolicy",
            "EnableKey",
            "CancelKeyDeletion",
            "ImportKeyMaterial",
            "DeleteImportedKeyMaterial",
        ],
    ),
    (
        "monitoring.amazonaws.com",
        &["DeleteAlarms", "DisableAlarmActions"],
    ),
    (
        "secretsmanager.amazonaws.com",
        &["PutSecretValue", "UpdateSecret", "DeleteSecret"],
    ),
    ("s3.amazonaws.com", &["PutObject", "DeleteObject"]),
    (
        "cloudtrail.amazonaws.com",
        &[
            "StopLogging",
            "DeleteTrail",
            "UpdateTrail",
            "PutEventSelectors",
        ],
    ),
    ("dynamodb.amazonaws.com", &["DeleteTable", "UpdateTable"]),
    (
        "scheduler.amazonaws.com",
        &["DeleteSchedule", "UpdateSchedule"],
    ),
    (
        "sqs.amazonaws.com",
        &["DeleteQueue", "PurgeQueue", "SetQueueAttributes"],
    ),
];

/// The known call a (possibly version-suffixed) event name stands for.
fn known_call(event_source: &str, event_name: &str) -> Option<&'static str> {
    TAMPER_CALLS
        .iter()
        .find(|(source, _)| *source == event_source)
        .and_then(|(_, names)| {
            names.iter().copied().find(|call| {
                event_name == *call
                    || event_name
                        .strip_prefix(call)
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
        })
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// The resources a call acts on, from its request parameters (and
/// `resources[]`), per service.
fn targets(source: &str, call: &str, detail: &Value) -> Vec<String> {
    let request = |field: &str| text(detail, &format!("/requestParameters/{field}"));
    let mut out: Vec<String> = Vec::new();
    let mut push = |v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push(v.to_string());
        }
    };
    match source {
        "events.amazonaws.com" => {
            push(request("name"));
            push(request("rule"));
        }
        "lambda.amazonaws.com" => push(request("functionName")),
        "sns.amazonaws.com" => {
            push(request("topicArn"));
            push(request("subscriptionArn"));
        }
        "kms.amazonaws.com" => {
            push(request("keyId"));
            push(text(detail, "/responseElements/keyId"));
        }
        "monitoring.amazonaws.com" => {
            for name in detail
                .pointer("/requestParameters/alarmNames")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                push(name.as_str());
            }
        }
        "secretsmanager.amazonaws.com" => push(request("secretId")),
        "s3.amazonaws.com" => {
            if let (Some(bucket), Some(key)) = (request("bucketName"), request("key")) {
                push(Some(&format!("s3://{bucket}/{key}")));
            }
        }
        "cloudtrail.amazonaws.com" => {
            push(request("name"));
            push(request("trailName"));
        }
        "dynamodb.amazonaws.com" => push(request("tableName")),
        "scheduler.amazonaws.com" => push(request("name")),
        "sqs.amazonaws.com" => push(request("queueUrl")),
        _ => {}
    }
    let _ = call;
    for resource in detail
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(resource.get("ARN").and_then(Value::as_str));
    }
    out
}

/// Is this EventBridge event (the whole envelope) the scheduled heartbeat?
pub fn is_heartbeat(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some(HEARTBEAT_SOURCE)
}

/// Is this CloudTrail record (`detail`) one of the calls the tamper rule
/// routes (version suffixes included)? The watcher's cheap test before it
/// looks anything up.
pub fn is_pipeline_event(detail: &Value) -> bool {
    match (text(detail, "/eventSource"), text(detail, "/eventName")) {
        (Some(source), Some(name)) => known_call(source, name).is_some(),
        _ => false,
    }
}

/// For a key lifecycle call: the key whose live grants the watcher should
/// read from the ledger before [`judge_pipeline_event`] (the key ARN when
/// the record has one, else the key id as given). `None` for other calls.
pub fn key_to_look_up(detail: &Value) -> Option<String> {
    if text(detail, "/eventSource") != Some("kms.amazonaws.com") {
        return None;
    }
    key_call(text(detail, "/eventName")?)?;
    let arn = text(detail, "/responseElements/keyId")
        .filter(|k| k.starts_with("arn:"))
        .map(str::to_string)
        .or_else(|| {
            detail
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("ARN").and_then(Value::as_str))
                .find(|arn| arn.contains(":key/"))
                .map(str::to_string)
        });
    arn.or_else(|| text(detail, "/requestParameters/keyId").map(str::to_string))
}

/// The judgement of a call that may blind grantwatch, or of a key
/// lifecycle call. `detail` is the EventBridge event's `detail` (the
/// CloudTrail record); `key_grants` the ledger's records of grants on the
/// key the call names (only consulted for key lifecycle calls; removed
/// grants are ignored). `None`: not a pipeline event, or a call on someone
/// else's resource that is not a key lifecycle call.
pub fn judge_pipeline_event(
    detail: &Value,
    own: &OwnResources,
    key_grants: &[GrantRecord],
    policy: &Policy,
) -> Option<Verdict> {
    let source = text(detail, "/eventSource")?;
    let event_name = text(detail, "/eventName")?;
    let call = known_call(source, event_name)?;
    let targets = targets(source, call, detail);
    let failed = detail
        .get("errorCode")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    let actor = actor(detail);
    let who = actor
        .arn
        .clone()
        .or_else(|| actor.invoked_by.clone())
        .unwrap_or_else(|| "an unknown caller".to_string());

    let own_target = match source {
        "s3.amazonaws.com" => targets
            .iter()
            .find(|t| own.rules_object.as_deref() == Some(t.as_str()))
            .cloned(),
        "cloudtrail.amazonaws.com" => targets.iter().find(|t| own.owns_trail(t)).cloned(),
        _ => targets.iter().find(|t| own.owns(t)).cloned(),
    };

    let mut verdict = base_verdict(detail, event_name, actor, source == "kms.amazonaws.com");
    if let Some(target) = own_target {
        let by_deploy = verdict.actor.invoked_by.as_deref() == Some(CLOUDFORMATION);
        let (code, severity, message) = if by_deploy && failed.is_none() {
            (
                FindingCode::PipelineChangedByDeploy,
                Severity::Low,
                format!(
                    "CloudFormation ({call}) changed grantwatch's {} while deploying stack {}",
                    quote(&target),
                    quote(&own.stack_name)
                ),
            )
        } else if let Some(error) = failed {
            (
                FindingCode::PipelineTampered,
                Severity::High,
                format!(
                    "{} tried {call} on grantwatch's own {} and failed ({}): an attempt to blind grantwatch",
                    quote(&who),
                    quote(&target),
                    quote(error)
                ),
            )
        } else {
            (
                FindingCode::PipelineTampered,
                Severity::Critical,
                format!(
                    "{} called {call} on grantwatch's own {}: grantwatch may be blinded or weakened",
                    quote(&who),
                    quote(&target)
                ),
            )
        };
        verdict
            .evidence
            .push(format!("resource: {}", quote(&target)));
        verdict
            .evidence
            .push(format!("stack: {}", quote(&own.stack_name)));
        return Some(finish(verdict, code, severity, message, policy));
    }

    // Someone else's resource: only key lifecycle calls matter.
    let kind = key_call(call).filter(|_| source == "kms.amazonaws.com")?;
    if failed.is_some() {
        return None;
    }
    let key = verdict
        .key_arn
        .clone()
        .or_else(|| verdict.key.clone())
        .unwrap_or_else(|| "a key".to_string());
    let live: Vec<&GrantRecord> = key_grants
        .iter()
        .filter(|g| g.removal.is_none())
        .filter(|g| same_key(&g.key_arn, &key))
        .collect();
    let service_grants: Vec<&GrantRecord> = live
        .iter()
        .copied()
        .filter(|g| g.origin == Origin::Service)
        .collect();
    let dependents: Vec<String> = service_grants
        .iter()
        .filter_map(|g| crate::assess::removed_grant(g).dependent_resource)
        .collect();
    let named = if dependents.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            dependents
                .iter()
                .map(|d| quote(d))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for record in &service_grants {
        let removed = crate::assess::removed_grant(record);
        verdict.evidence.push(format!(
            "live grant {} for {}{}",
            quote(&record.grant_id),
            quote(record.service.as_deref().unwrap_or("a service")),
            removed
                .dependent_resource
                .map(|d| format!(" on {}", quote(&d)))
                .unwrap_or_default()
        ));
    }
    let (code, severity, message) = match kind {
        KeyCall::Disables if !service_grants.is_empty() => (
            FindingCode::KeyDisabled,
            Severity::High,
            format!(
                "{} called {call} on {} with {} live service grant(s): the resources that use it{named} can no longer decrypt; {}",
                quote(&who),
                quote(&key),
                service_grants.len(),
                repair(call)
            ),
        ),
        KeyCall::Disables => (
            FindingCode::KeyDisabled,
            Severity::Medium,
            format!(
                "{} called {call} on {} (no live service grants known): whatever uses the key stops working; {}",
                quote(&who),
                quote(&key),
                repair(call)
            ),
        ),
        KeyCall::PolicyChanged if !service_grants.is_empty() => (
            FindingCode::KeyPolicyChanged,
            Severity::Medium,
            format!(
                "{} replaced the key policy of {}, which has {} live service grant(s){named}: check that the services still have access",
                quote(&who),
                quote(&key),
                service_grants.len()
            ),
        ),
        KeyCall::PolicyChanged => (
            FindingCode::KeyPolicyChanged,
            Severity::Low,
            format!(
                "{} replaced the key policy of {}",
                quote(&who),
                quote(&key)
            ),
        ),
        KeyCall::Recovers => (
            FindingCode::KeyRecovered,
            Severity::Low,
            format!(
                "{} called {call} on {}: the key is usable again{}",
                quote(&who),
                quote(&key),
                if named.is_empty() {
                    String::new()
                } else {
                    format!(" for{named}")
                }
            ),
        ),
    };
    Some(finish(verdict, code, severity, message, policy))
}

fn repair(call: &str) -> &'static str {
    match call {
        "ScheduleKeyDeletion" => {
            "cancel it with CancelKeyDeletion and EnableKey before the waiting period ends"
        }
        "DeleteImportedKeyMaterial" => "import the same key material again (ImportKeyMaterial)",
        _ => "enable the key again (EnableKey) if this was not intended",
    }
}

/// Two key identifiers name the same key (ARN or bare id).
fn same_key(a: &str, b: &str) -> bool {
    a == b || last_segment(a) == last_segment(b)
}

fn actor(detail: &Value) -> ActorView {
    let identity = detail.get("userIdentity").cloned().unwrap_or(Value::Null);
    let field = |name: &str| {
        identity
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    ActorView {
        arn: field("arn"),
        identity_type: field("type"),
        account: field("accountId"),
        invoked_by: field("invokedBy"),
    }
}

fn base_verdict(detail: &Value, event_name: &str, actor: ActorView, is_kms: bool) -> Verdict {
    let field = |pointer: &str| text(detail, pointer).map(str::to_string);
    let key = if is_kms {
        field("/requestParameters/keyId")
    } else {
        None
    };
    let key_arn = if is_kms {
        field("/responseElements/keyId")
            .filter(|k| k.starts_with("arn:"))
            .or_else(|| {
                detail
                    .get("resources")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.get("ARN").and_then(Value::as_str))
                    .find(|arn| arn.contains(":key/"))
                    .map(str::to_string)
            })
            .or_else(|| {
                key.clone()
                    .filter(|k| k.starts_with("arn:") && k.contains(":key/"))
            })
    } else {
        None
    };
    let origin = if actor.invoked_by.as_deref() == Some(CLOUDFORMATION) {
        Origin::Service
    } else if actor.arn.is_some() {
        Origin::Manual
    } else {
        Origin::Unknown
    };
    Verdict {
        event_id: field("/eventID").unwrap_or_default(),
        event_name: event_name.to_string(),
        event_time: field("/eventTime"),
        account: field("/recipientAccountId").or_else(|| actor.account.clone()),
        region: field("/awsRegion"),
        key,
        key_arn,
        key_alias: None,
        grant_id: None,
        grant_name: None,
        actor,
        source_ip: field("/sourceIPAddress"),
        user_agent: field("/userAgent"),
        grantee: None,
        retiring_principal: None,
        operations: Vec::new(),
        constraints: None,
        origin,
        service: None,
        evidence: Vec::new(),
        severity: Severity::Info,
        alert: false,
        findings: Vec::new(),
        suppressed_by: None,
        rule_notes: Vec::new(),
        error_code: field("/errorCode"),
        dry_run: false,
        removed_grant: None,
    }
}

fn finish(
    mut verdict: Verdict,
    code: FindingCode,
    severity: Severity,
    message: String,
    policy: &Policy,
) -> Verdict {
    verdict.findings.push(Finding {
        code,
        severity,
        message,
    });
    verdict.severity = severity;
    verdict.alert = severity >= policy.min_alert_severity;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Caller, GrantAction};
    use crate::grant::{Constraints, GrantFacts, Operation};
    use crate::record::Removal;
    use serde_json::json;
    use std::collections::BTreeMap;

    const ACCOUNT: &str = "111122223333";
    const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
    const OWN_KEY: &str =
        "arn:aws:kms:us-east-1:111122223333:key/0000aaaa-12ab-34cd-56ef-1234567890ab";
    const OWN_TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:grantwatch-AlertTopic-AbC123";
    const OWN_SECRET: &str =
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:grantwatch/slack-AbCdEf";
    const FUNCTION_ARN: &str = "arn:aws:lambda:us-west-2:111122223333:function:payments";

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../tests/fixtures/tamper/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn own() -> OwnResources {
        OwnResources::from_json(
            &json!({
                "stack_name": "grantwatch",
                "stack_id": "arn:aws:cloudformation:us-east-1:111122223333:stack/grantwatch/abc",
                "logical_ids": ["WatcherFunction", "GrantEventsRule", "TamperEventsRule", "WatcherErrorsAlarm", "LedgerTable", "FailedInvocationQueue", "HeartbeatSchedule"],
                "resources": [OWN_KEY, OWN_TOPIC, OWN_SECRET, "", "grantwatch-LedgerTable-1ABCDEF"],
                "member_logical_ids": ["ForwardGrantEventsRule", "ForwardDeadLetterQueueAlarm"],
                "rules_object": "s3://grantwatch-config/rules.toml",
                "trails": ["arn:aws:cloudtrail:us-east-1:111122223333:trail/management-events"]
            })
            .to_string(),
        )
        .expect("own resources")
    }

    fn policy() -> Policy {
        Policy::new(time::macros::date!(2026 - 11 - 29))
    }

    fn judge(detail: &Value) -> Option<Verdict> {
        judge_pipeline_event(detail, &own(), &[], &policy())
    }

    fn only_finding(verdict: &Verdict) -> (FindingCode, Severity) {
        assert_eq!(verdict.findings.len(), 1, "{verdict:#?}");
        let finding = &verdict.findings[0];
        assert_eq!(finding.severity, verdict.severity);
        (finding.code, finding.severity)
    }

    /// The fixture with its resource swapped for grantwatch's own.
    fn on_own(mut detail: Value, pointer: &str, value: &str) -> Value {
        *detail.pointer_mut(pointer).expect(pointer) = json!(value);
        detail
    }

    #[test]
    fn own_resources_parse_and_refuse_garbage() {
        let own = own();
        assert_eq!(own.resources.len(), 4, "empty strings dropped");
        assert_eq!(
            OwnResources::from_json("{"),
            Err(OwnResourcesError::Invalid(
                "EOF while parsing an object at line 1 column 1".into()
            ))
        );
        assert_eq!(
            OwnResources::from_json(r#"{"stack_name": " "}"#),
            Err(OwnResourcesError::NoStack)
        );
        assert_eq!(
            own_resources_from_env(|_| None),
            Err(OwnResourcesError::Missing)
        );
        let read = own_resources_from_env(|name| {
            (name == OWN_RESOURCES_ENV).then(|| r#"{"stack_name":"gw"}"#.to_string())
        })
        .expect("read");
        assert_eq!(read.stack_name, "gw");
    }

    #[test]
    fn ownership_by_arn_name_prefix_subscription_and_secret_name() {
        let own = own();
        assert!(own.owns(OWN_TOPIC));
        assert!(own.owns(&format!("{OWN_TOPIC}:5f3c9a3e-1111-2222-3333-444455556666")));
        assert!(own.owns("grantwatch-WatcherFunction-Xy12Ab34"));
        assert!(own.owns(
            "arn:aws:lambda:us-east-1:111122223333:function:grantwatch-WatcherFunction-Xy12Ab34:$LATEST"
        ));
        assert!(own.owns("grantwatch/slack"));
        assert!(own.owns(OWN_SECRET));
        assert!(
            own.owns("0000aaaa-12ab-34cd-56ef-1234567890ab"),
            "bare key id"
        );
        assert!(own
            .owns("arn:aws:dynamodb:us-east-1:111122223333:table/grantwatch-LedgerTable-1ABCDEF"));
        // Not ours: another stack, another topic, a lookalike prefix.
        assert!(!own.owns("grantwatch-test-WatcherFunction-Xy12Ab34"));
        assert!(!own.owns("arn:aws:sns:us-east-1:111122223333:grantwatch-AlertTopic-AbC1234"));
        assert!(!own.owns("payments"));
        assert!(!own.owns(""));
        // A member account's forwarding resources, whatever the member stack's name.
        assert!(own.owns("StackSet-gw-members-1a2b-ForwardGrantEventsRule-Q1W2E3"));
        assert!(own.owns("StackSet-gw-members-1a2b-ForwardDeadLetterQueueAlarm"));
        assert!(!own.owns("ForwardGrantEventsRule"));
        assert!(!own.owns("team-ForwardGrantEventsRuleCopy"));
    }

    #[test]
    fn version_suffixed_lambda_names_are_recognised() {
        assert_eq!(
            known_call(
                "lambda.amazonaws.com",
                "UpdateFunctionConfiguration20150331v2"
            ),
            Some("UpdateFunctionConfiguration")
        );
        assert_eq!(
            known_call("lambda.amazonaws.com", "PutFunctionConcurrency20171031"),
            Some("PutFunctionConcurrency")
        );
        assert_eq!(
            known_call("lambda.amazonaws.com", "UpdateFunctionConfigurationX"),
            None
        );
        assert_eq!(known_call("lambda.amazonaws.com", "Invoke"), None);
        assert_eq!(known_call("kms.amazonaws.com", "CreateGrant"), None);
    }

    /// Each call family: on grantwatch's own resource a critical
    /// `pipeline-tampered` naming the resource and the caller; the same
    /// published record on someone else's resource: nothing.
    #[test]
    fn each_call_family_on_own_resource_is_critical_and_on_another_is_nothing() {
        let cases: &[(&str, &str, &str)] = &[
            ("lambda-update-function-configuration", "/requestParameters/functionName", "grantwatch-WatcherFunction-Xy12Ab34"),
            ("lambda-put-function-concurrency", "/requestParameters/functionName", "arn:aws:lambda:us-east-1:111122223333:function:grantwatch-WatcherFunction-Xy12Ab34"),
            ("events-disable-rule", "/requestParameters/name", "grantwatch-GrantEventsRule-1A2B3C4D"),
            ("events-remove-targets", "/requestParameters/rule", "grantwatch-TamperEventsRule-1A2B3C4D"),
            ("sns-unsubscribe", "/requestParameters/subscriptionArn", "arn:aws:sns:us-east-1:111122223333:grantwatch-AlertTopic-AbC123:5f3c9a3e-1111-2222-3333-444455556666"),
            ("sns-delete-topic", "/requestParameters/topicArn", OWN_TOPIC),
            ("cloudwatch-delete-alarms", "/requestParameters/alarmNames/0", "grantwatch-WatcherErrorsAlarm-ABCDEF123"),
            ("secretsmanager-put-secret-value", "/requestParameters/secretId", "grantwatch/slack"),
            ("s3-put-object", "/requestParameters/key", "rules.toml"),
            ("cloudtrail-stop-logging", "/requestParameters/name", "arn:aws:cloudtrail:us-east-1:111122223333:trail/management-events"),
            ("dynamodb-delete-table", "/requestParameters/tableName", "grantwatch-LedgerTable-1ABCDEF"),
            ("sqs-purge-queue", "/requestParameters/queueUrl", "https://sqs.us-east-1.amazonaws.com/111122223333/grantwatch-FailedInvocationQueue-AbCdEf123"),
            ("scheduler-update-schedule", "/requestParameters/name", "grantwatch-HeartbeatSchedule-AbCdEf123"),
        ];
        for (name, pointer, own_value) in cases {
            let published = fixture(name);
            assert_eq!(judge(&published), None, "{name} on another resource");
            let mut tampered = on_own(published, pointer, own_value);
            if *name == "s3-put-object" {
                tampered["requestParameters"]["bucketName"] = json!("grantwatch-config");
            }
            let verdict = judge(&tampered).unwrap_or_else(|| panic!("{name}: no verdict"));
            assert_eq!(
                only_finding(&verdict),
                (FindingCode::PipelineTampered, Severity::Critical),
                "{name}"
            );
            assert!(verdict.alert, "{name}");
            let message = &verdict.findings[0].message;
            let who = verdict.actor.arn.clone().expect("an actor");
            assert!(message.contains(&who), "{name}: {message}");
            assert!(
                verdict.evidence.iter().any(|e| e.starts_with("resource: ")),
                "{name}: {:?}",
                verdict.evidence
            );
        }
    }

    #[test]
    fn a_failed_attempt_on_an_own_resource_is_high() {
        let mut detail = on_own(
            fixture("events-disable-rule"),
            "/requestParameters/name",
            "grantwatch-GrantEventsRule-1A2B3C4D",
        );
        detail["errorCode"] = json!("AccessDenied");
        let verdict = judge(&detail).expect("verdict");
        assert_eq!(
            only_finding(&verdict),
            (FindingCode::PipelineTampered, Severity::High)
        );
        assert!(verdict.findings[0].message.contains("tried"));
        assert_eq!(verdict.error_code.as_deref(), Some("AccessDenied"));
    }

    #[test]
    fn cloudformation_deploying_the_stack_is_low_and_does_not_alert() {
        let mut detail = on_own(
            fixture("lambda-update-function-configuration"),
            "/requestParameters/functionName",
            "grantwatch-WatcherFunction-Xy12Ab34",
        );
        detail["userIdentity"]["invokedBy"] = json!("cloudformation.amazonaws.com");
        let verdict = judge(&detail).expect("verdict");
        assert_eq!(
            only_finding(&verdict),
            (FindingCode::PipelineChangedByDeploy, Severity::Low)
        );
        assert!(!verdict.alert);
        // The same change by a person pages.
        detail["userIdentity"]
            .as_object_mut()
            .expect("identity")
            .remove("invokedBy");
        assert_eq!(
            only_finding(&judge(&detail).expect("verdict")),
            (FindingCode::PipelineTampered, Severity::Critical)
        );
    }

    fn lambda_grant(key_arn: &str, removed: bool) -> GrantRecord {
        let mut context = BTreeMap::new();
        context.insert(
            "aws:lambda:FunctionArn".to_string(),
            FUNCTION_ARN.to_string(),
        );
        GrantRecord {
            key_arn: key_arn.to_string(),
            grant_id: "0123456789abcdef0123456789abcdef01234567".to_string(),
            account: Some(ACCOUNT.to_string()),
            region: Some("us-west-2".to_string()),
            created_event_id: "created-1".to_string(),
            created_at: Some("2026-11-01T00:00:00Z".to_string()),
            created_by: Caller::default(),
            origin: Origin::Service,
            service: Some("lambda".to_string()),
            grant: GrantFacts {
                grantee: Some("arn:aws:iam::111122223333:role/payments-role".to_string()),
                grantee_service_principal: None,
                retiring_principal: None,
                retiring_service_principal: None,
                operations: vec![Operation::Decrypt],
                constraints: Some(Constraints {
                    encryption_context_equals: Some(context),
                    ..Constraints::default()
                }),
                name: None,
            },
            removal: removed.then(|| Removal {
                action: GrantAction::RetireGrant,
                event_id: "retired-1".to_string(),
                at: None,
                by: Caller::default(),
                origin: Origin::Manual,
            }),
        }
    }

    #[test]
    fn disabling_a_key_with_a_live_lambda_grant_is_high_and_names_the_function() {
        let detail = fixture("kms-disable-key");
        let key_arn = format!("arn:aws:kms:us-west-2:{ACCOUNT}:key/{KEY_ID}");
        let grants = [lambda_grant(&key_arn, false)];
        let verdict = judge_pipeline_event(&detail, &own(), &grants, &policy()).expect("verdict");
        assert_eq!(
            only_finding(&verdict),
            (FindingCode::KeyDisabled, Severity::High)
        );
        assert_eq!(verdict.key_arn.as_deref(), Some(key_arn.as_str()));
        assert!(
            verdict.findings[0].message.contains(FUNCTION_ARN),
            "{}",
            verdict.findings[0].message
        );
        assert!(verdict.evidence.iter().any(|e| e.contains(FUNCTION_ARN)));

        // A grant the ledger knows as removed does not count: medium.
        let removed = [lambda_grant(&key_arn, true)];
        let verdict = judge_pipeline_event(&detail, &own(), &removed, &policy()).expect("verdict");
        assert_eq!(
            only_finding(&verdict),
            (FindingCode::KeyDisabled, Severity::Medium)
        );
        // ...nor a grant on another key.
        let other = [lambda_grant(
            "arn:aws:kms:us-west-2:111122223333:key/ffffffff-12ab-34cd-56ef-1234567890ab",
            false,
        )];
        let verdict = judge_pipeline_event(&detail, &own(), &other, &policy()).expect("verdict");
        assert_eq!(verdict.severity, Severity::Medium);
    }

    #[test]
    fn scheduling_deletion_with_no_grants_known_is_medium_with_the_repair() {
        let verdict = judge(&fixture("kms-schedule-key-deletion")).expect("verdict");
        assert_eq!(
            only_finding(&verdict),
            (FindingCode::KeyDisabled, Severity::Medium)
        );
        assert!(verdict.findings[0].message.contains("CancelKeyDeletion"));
    }

    #[test]
    fn key_lifecycle_on_grantwatchs_own_key_is_critical() {
        for name in [
            "kms-disable-key",
            "kms-schedule-key-deletion",
            "kms-put-key-policy",
            "kms-enable-key",
        ] {
            let mut detail = fixture(name);
            detail["requestParameters"]["keyId"] = json!(OWN_KEY);
            if let Some(elements) = detail
                .get_mut("responseElements")
                .and_then(Value::as_object_mut)
            {
                elements.insert("keyId".into(), json!(OWN_KEY));
            }
            if let Some(resources) = detail.get_mut("resources").and_then(Value::as_array_mut) {
                for r in resources {
                    r["ARN"] = json!(OWN_KEY);
                }
            }
            assert_eq!(
                only_finding(&judge(&detail).expect("verdict")),
                (FindingCode::PipelineTampered, Severity::Critical),
                "{name}"
            );
        }
    }

    #[test]
    fn recovery_is_a_low_notice_and_a_policy_change_is_low_or_medium() {
        let verdict = judge(&fixture("kms-enable-key")).expect("verdict");
        assert_eq!(
            only_finding(&verdict),
            (FindingCode::KeyRecovered, Severity::Low)
        );
        assert!(
            !verdict.alert,
            "below the default minimum: recorded, reported"
        );
        let verdict = judge(&fixture("kms-cancel-key-deletion")).expect("verdict");
        assert_eq!(verdict.findings[0].code, FindingCode::KeyRecovered);

        let detail = fixture("kms-put-key-policy");
        assert_eq!(
            only_finding(&judge(&detail).expect("verdict")),
            (FindingCode::KeyPolicyChanged, Severity::Low)
        );
        let key = detail["resources"][0]["ARN"].as_str().expect("key ARN");
        let verdict = judge_pipeline_event(&detail, &own(), &[lambda_grant(key, false)], &policy())
            .expect("verdict");
        assert_eq!(
            only_finding(&verdict),
            (FindingCode::KeyPolicyChanged, Severity::Medium)
        );
    }

    #[test]
    fn failed_key_calls_on_other_keys_and_unrelated_events_give_nothing() {
        let mut detail = fixture("kms-disable-key");
        detail["errorCode"] = json!("AccessDeniedException");
        assert_eq!(judge(&detail), None);
        let mut grant = fixture("kms-disable-key");
        grant["eventName"] = json!("CreateGrant");
        assert_eq!(judge(&grant), None);
        assert_eq!(judge(&json!({})), None);
        assert_eq!(judge(&json!({"eventSource": 3, "eventName": null})), None);
    }

    #[test]
    fn helpers_for_the_watcher() {
        assert!(is_heartbeat(
            &json!({"source": "grantwatch.heartbeat", "detail": {}})
        ));
        assert!(!is_heartbeat(&json!({"source": "aws.kms"})));
        assert!(is_pipeline_event(&fixture(
            "lambda-update-function-configuration"
        )));
        assert!(is_pipeline_event(&fixture("kms-disable-key")));
        let mut grant = fixture("kms-disable-key");
        grant["eventName"] = json!("CreateGrant");
        assert!(!is_pipeline_event(&grant));
        assert!(!is_pipeline_event(&json!({"eventName": "DisableKey"})));
        assert_eq!(
            key_to_look_up(&fixture("kms-disable-key")).as_deref(),
            Some("arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        let mut bare = fixture("kms-disable-key");
        bare["responseElements"] = Value::Null;
        bare.as_object_mut().expect("record").remove("resources");
        assert_eq!(key_to_look_up(&bare).as_deref(), Some(KEY_ID));
        assert_eq!(key_to_look_up(&fixture("events-disable-rule")), None);
        assert_eq!(key_to_look_up(&grant), None);
    }

    #[test]
    fn untrusted_names_are_quoted_in_one_line() {
        let detail = on_own(
            fixture("events-disable-rule"),
            "/userIdentity/arn",
            &format!("arn:aws:iam::111122223333:user/evil\n{}", "x".repeat(500)),
        );
        let detail = on_own(
            detail,
            "/requestParameters/name",
            "grantwatch-GrantEventsRule-1",
        );
        let verdict = judge(&detail).expect("verdict");
        let message = &verdict.findings[0].message;
        assert!(!message.contains('\n'));
        assert!(message.chars().count() < 600, "{}", message.len());
    }
}
