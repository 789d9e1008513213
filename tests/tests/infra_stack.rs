//! `infra/template.yaml` (and `member-account.yaml`) deployed with
//! CloudFormation into a fresh moto_server, read back through the AWS APIs:
//! outputs, the functions' configuration and environment (every variable
//! points at a resource the stack created), the ledger's keys, the alert
//! topic's key, the event rules (and that they route exactly the KMS grant
//! events, forwarded ones included).
//!
//! moto accepts but does not create some types (Scheduler schedules, alarms,
//! EventInvokeConfig, bucket/queue/bus policies) and ignores some properties
//! (table TTL and PITR, Lambda Architectures and LoggingConfig): those are
//! checked in the template moto received, and by cfn-lint (infra_lint.rs).

use grantwatch_e2e::moto::Moto;
use grantwatch_e2e::stack::{self, DeployedStack, REPORT, WATCHER};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// The event pattern the issue specifies, exactly.
fn kms_grant_pattern() -> Value {
    json!({
        "source": ["aws.kms"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["kms.amazonaws.com"],
            "eventName": ["CreateGrant", "RetireGrant", "RevokeGrant"]
        }
    })
}

fn deploy(moto: &Moto, parameters: &[(&str, &str)]) -> DeployedStack {
    stack::deploy_template(moto.endpoint(), parameters)
        .unwrap_or_else(|e| panic!("deploy infra/template.yaml into moto: {e}"))
}

fn env_value<'a>(env: &'a HashMap<String, String>, name: &str) -> &'a str {
    env.get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("{name} missing from {env:?}"))
}

/// An EventBridge call through moto's JSON API (the tests crate has no
/// EventBridge SDK; moto routes on the credential scope's service name).
async fn eventbridge(moto: &Moto, operation: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(moto.endpoint())
        .header("X-Amz-Target", format!("AWSEvents.{operation}"))
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/events/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("EventBridge {operation}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "EventBridge {operation}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Swap a rule's targets for a new SQS queue: what the rule routes lands
/// there. (moto cannot invoke a Lambda target: PutEvents answers HTTP 500
/// when a matching rule has one, so the rule's own targets are removed.)
async fn tap_rule(moto: &Moto, bus: &str, rule: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = moto.sqs().await;
    let queue_url = sqs
        .create_queue()
        .queue_name(format!(
            "tap-{}",
            rule.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        ))
        .send()
        .await
        .expect("create tap queue")
        .queue_url
        .expect("queue url");
    let queue_arn = format!(
        "arn:aws:sqs:{}:{}:{}",
        stack::REGION,
        grantwatch_e2e::moto::ACCOUNT,
        queue_url.rsplit('/').next().expect("queue name")
    );
    let targets = eventbridge(
        moto,
        "ListTargetsByRule",
        json!({"Rule": rule, "EventBusName": bus}),
    )
    .await;
    let ids: Vec<Value> = targets["Targets"]
        .as_array()
        .map(|t| t.iter().map(|t| t["Id"].clone()).collect())
        .unwrap_or_default();
    if !ids.is_empty() {
        eventbridge(
            moto,
            "RemoveTargets",
            json!({"Rule": rule, "EventBusName": bus, "Ids": ids}),
        )
        .await;
    }
    eventbridge(
        moto,
        "PutTargets",
        json!({"Rule": rule, "EventBusName": bus, "Targets": [{"Id": "test-tap", "Arn": queue_arn}]}),
    )
    .await;
    (sqs, queue_url)
}

async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Value> {
    let mut bodies = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if batch.messages().is_empty() {
            return bodies;
        }
        for message in batch.messages() {
            bodies
                .push(serde_json::from_str(message.body().unwrap_or("null")).expect("event JSON"));
            sqs.delete_message()
                .queue_url(queue_url)
                .set_receipt_handle(message.receipt_handle().map(str::to_string))
                .send()
                .await
                .expect("delete");
        }
    }
}

/// A KMS call as EventBridge delivers it from CloudTrail (the shapes of
/// design-notes.md, trimmed to what routing looks at plus some context).
fn kms_call(event_name: &str, request_parameters: Value) -> Value {
    json!({
        "version": "0",
        "id": format!("event-{event_name}"),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.kms",
        "account": "123456789012",
        "time": "2026-11-05T03:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.11",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/admin/alice"},
            "eventSource": "kms.amazonaws.com",
            "eventName": event_name,
            "awsRegion": "us-east-1",
            "requestParameters": request_parameters,
            "eventType": "AwsApiCall",
            "managementEvent": true
        }
    })
}

fn create_grant() -> Value {
    kms_call(
        "CreateGrant",
        json!({
            "keyId": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "granteePrincipal": "arn:aws:iam::210987654321:role/partner",
            "operations": ["Decrypt", "CreateGrant"]
        }),
    )
}

/// RetireGrant by grant token: no request parameters at all.
fn retire_grant() -> Value {
    kms_call("RetireGrant", Value::Null)
}

fn decrypt() -> Value {
    kms_call(
        "Decrypt",
        json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
    )
}

/// Put events on a bus the way CloudTrail's integration would.
async fn put_events(moto: &Moto, bus: &str, events: &[Value]) {
    let entries: Vec<Value> = events
        .iter()
        .map(|event| {
            json!({
                "EventBusName": bus,
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": event["detail"].to_string(),
                "Resources": event["resources"],
            })
        })
        .collect();
    let answer = eventbridge(moto, "PutEvents", json!({ "Entries": entries })).await;
    assert_eq!(answer["FailedEntryCount"], 0, "PutEvents: {answer}");
}

fn event_names(delivered: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = delivered
        .iter()
        .map(|e| e["detail"]["eventName"].as_str().unwrap_or("?").to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn default_deploy_gives_both_functions_an_environment_of_created_resources() {
    let moto = Moto::start().await;
    let stack = deploy(&moto, &[]);

    let topic = stack
        .alert_topic_arn()
        .expect("AlertTopicArn output")
        .to_string();
    let table = stack
        .ledger_table()
        .expect("LedgerTableName output")
        .to_string();
    let bucket = stack
        .report_bucket()
        .expect("ReportBucketName output")
        .to_string();

    let watcher = stack.function_env(WATCHER);
    assert_eq!(env_value(&watcher, "ALERT_TOPIC_ARN"), topic);
    assert_eq!(env_value(&watcher, "LEDGER_TABLE"), table);
    assert_eq!(env_value(&watcher, "MIN_ALERT_SEVERITY"), "medium");
    assert_eq!(env_value(&watcher, "LEDGER_RETENTION_DAYS"), "90");
    for unset in [
        "SLACK_WEBHOOK_SECRET_ARN",
        "RULES_S3_URI",
        "STORM_THRESHOLD",
        "STORM_WINDOW_SECONDS",
    ] {
        assert!(
            !watcher.contains_key(unset),
            "{unset} set by default: {watcher:?}"
        );
    }

    let report = stack.function_env(REPORT);
    assert_eq!(env_value(&report, "REPORT_BUCKET"), bucket);
    assert_eq!(env_value(&report, "ALERT_TOPIC_ARN"), topic);
    assert_eq!(env_value(&report, "LEDGER_TABLE"), table);
    assert_eq!(
        env_value(&report, "MEMBER_ROLE_NAME"),
        "grantwatch-report-reader"
    );
    assert_eq!(env_value(&report, "REPORT_LINK_EXPIRY_SECONDS"), "604800");
    assert_eq!(env_value(&report, "LISTGRANTS_RATE_PER_SECOND"), "20");
    for unset in [
        "SLACK_WEBHOOK_SECRET_ARN",
        "RULES_S3_URI",
        "REPORT_REGIONS",
        "REPORT_ACCOUNTS",
        "MEMBER_ROLE_EXTERNAL_ID",
    ] {
        assert!(
            !report.contains_key(unset),
            "{unset} set by default: {report:?}"
        );
    }

    // The topic exists and is encrypted with the stack's key, which is usable.
    let attributes = moto
        .sns()
        .await
        .get_topic_attributes()
        .topic_arn(&topic)
        .send()
        .await
        .expect("the alert topic exists");
    let topic_key = attributes
        .attributes()
        .and_then(|a| a.get("KmsMasterKeyId"))
        .cloned()
        .expect("the alert topic is encrypted");
    let key_arn = stack.output("AlertKeyArn").expect("AlertKeyArn output");
    assert!(
        key_arn.ends_with(&topic_key),
        "topic key {topic_key} is not {key_arn}"
    );
    let kms = moto.kms().await;
    let key = kms
        .describe_key()
        .key_id(key_arn)
        .send()
        .await
        .expect("describe the alert key");
    assert!(key.key_metadata().is_some_and(|k| k.enabled()));
    // The key policy lets CloudWatch alarms and both functions (through SNS) use it.
    let policy = kms
        .get_key_policy()
        .key_id(key_arn)
        .policy_name("default")
        .send()
        .await
        .expect("key policy");
    let policy: Value =
        serde_json::from_str(policy.policy().unwrap_or("null")).expect("key policy JSON");
    let statements = policy["Statement"].as_array().expect("statements");
    // ...but not CloudWatch: alarms publish to the unencrypted alarm topic,
    // so disabling this key cannot silence them.
    assert!(!statements
        .iter()
        .any(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com"));
    let via_sns = statements
        .iter()
        .find(|s| s["Condition"]["StringEquals"]["kms:ViaService"] == "sns.us-east-1.amazonaws.com")
        .expect("a statement for the functions, through SNS");
    for function in [WATCHER, REPORT] {
        let role = &stack.function(function).expect("function").role;
        assert!(
            via_sns["Principal"]["AWS"]
                .as_array()
                .is_some_and(|p| p.iter().any(|r| r == role.as_str())),
            "{function}'s role {role} cannot publish to the encrypted topic: {via_sns}"
        );
    }

    // The ledger's keys, as the watcher and report code expect them.
    let described = moto
        .dynamodb()
        .await
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("the ledger table exists");
    let description = described.table().expect("table");
    let keys: Vec<(String, String)> = description
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                k.key_type().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("pk".to_string(), "HASH".to_string()),
            ("sk".to_string(), "RANGE".to_string())
        ]
    );
    for definition in description.attribute_definitions() {
        assert_eq!(definition.attribute_type().as_str(), "S", "{definition:?}");
    }
    assert_eq!(
        description
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );
    // moto ignores TTL, PITR and SSE on create: read them from the template it received.
    let ledger = &stack.template_resource("LedgerTable").expect("LedgerTable")["Properties"];
    assert_eq!(
        ledger["TimeToLiveSpecification"],
        json!({"AttributeName": "expires_at", "Enabled": true})
    );
    assert_eq!(
        ledger["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(ledger["SSESpecification"]["SSEEnabled"], true);

    // The report bucket exists and is encrypted.
    let s3 = moto.s3().await;
    s3.head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("the report bucket exists");
    let encryption = s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .expect("the report bucket is encrypted");
    assert!(encryption.server_side_encryption_configuration().is_some());

    // Both functions: the custom runtime with the bootstrap binary; the
    // architecture (ignored by moto) is the template's parameter, arm64 by default.
    for function in [WATCHER, REPORT] {
        let config = stack.function(function).expect("function");
        assert_eq!(config.runtime, "provided.al2023");
        assert_eq!(config.handler, "bootstrap");
        let properties = &stack.template_resource(function).expect("function")["Properties"];
        assert_eq!(
            properties["Architectures"],
            json!([{"Ref": "Architecture"}])
        );
        assert_eq!(properties["LoggingConfig"]["LogFormat"], "JSON");
    }
    assert_eq!(
        stack.template["Parameters"]["Architecture"]["Default"],
        "arm64"
    );
}

#[tokio::test]
async fn every_configured_option_reaches_the_functions() {
    let moto = Moto::start().await;
    let secret =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:grantwatch/slack-webhook-AbCdEf";
    let stack = deploy(
        &moto,
        &[
            ("SlackWebhookSecretArn", secret),
            ("RulesS3Uri", "s3://rules-bucket/grantwatch/rules.toml"),
            ("MinAlertSeverity", "high"),
            ("LedgerRetentionDays", "30"),
            ("StormThreshold", "25"),
            ("StormWindowSeconds", "120"),
            ("ReportRegions", "us-east-1,eu-west-1"),
            ("ReportAccounts", "ORG"),
            ("MemberRoleName", "gw-reader"),
            ("MemberRoleExternalId", "ext-123"),
            ("ListGrantsRatePerSecond", "10"),
            ("TrustedAccounts", "111122223333,444455556666"),
            ("GrantCountThreshold", "1000"),
            ("EventBusName", "security-bus"),
            ("EventBusMinSeverity", "high"),
            ("RedactEncryptionContext", "true"),
            ("RunbookBaseUrl", "https://wiki.example.com/grantwatch"),
            ("EnableQDeveloperTopic", "true"),
            ("CanaryBoundMinutes", "45"),
            ("ReconcileTrailBucket", "org-trail-logs"),
            ("ReconcileTrailPrefix", "o-abc123/AWSLogs/"),
        ],
    );
    let watcher = stack.function_env(WATCHER);
    assert_eq!(env_value(&watcher, "SLACK_WEBHOOK_SECRET_ARN"), secret);
    assert_eq!(
        env_value(&watcher, "RULES_S3_URI"),
        "s3://rules-bucket/grantwatch/rules.toml"
    );
    assert_eq!(env_value(&watcher, "MIN_ALERT_SEVERITY"), "high");
    assert_eq!(env_value(&watcher, "LEDGER_RETENTION_DAYS"), "30");
    assert_eq!(env_value(&watcher, "STORM_THRESHOLD"), "25");
    assert_eq!(env_value(&watcher, "STORM_WINDOW_SECONDS"), "120");
    assert_eq!(
        env_value(&watcher, "TRUSTED_ACCOUNTS"),
        "111122223333,444455556666"
    );
    assert_eq!(env_value(&watcher, "EVENT_BUS_NAME"), "security-bus");
    assert_eq!(env_value(&watcher, "EVENT_BUS_MIN_SEVERITY"), "high");
    assert_eq!(env_value(&watcher, "REDACT_ENCRYPTION_CONTEXT"), "true");
    assert_eq!(
        env_value(&watcher, "RUNBOOK_BASE_URL"),
        "https://wiki.example.com/grantwatch"
    );
    assert_eq!(env_value(&watcher, "CANARY_BOUND_MINUTES"), "45");
    assert!(env_value(&watcher, "CHATBOT_TOPIC_ARN").starts_with("arn:aws:sns:"));
    let report = stack.function_env(REPORT);
    assert_eq!(env_value(&report, "SLACK_WEBHOOK_SECRET_ARN"), secret);
    assert_eq!(env_value(&report, "REPORT_REGIONS"), "us-east-1,eu-west-1");
    assert_eq!(env_value(&report, "REPORT_ACCOUNTS"), "ORG");
    assert_eq!(env_value(&report, "MEMBER_ROLE_NAME"), "gw-reader");
    assert_eq!(env_value(&report, "MEMBER_ROLE_EXTERNAL_ID"), "ext-123");
    assert_eq!(env_value(&report, "LISTGRANTS_RATE_PER_SECOND"), "10");
    assert_eq!(env_value(&report, "MIN_ALERT_SEVERITY"), "high");
    assert_eq!(env_value(&report, "GRANT_COUNT_THRESHOLD"), "1000");
    assert_eq!(env_value(&report, "TRAIL_BUCKET"), "org-trail-logs");
    assert_eq!(env_value(&report, "TRAIL_PREFIX"), "o-abc123/AWSLogs/");

    // With every option set, the template sets exactly the variables each
    // function's code reads (Lambda's own AWS_* variables aside).
    for function in [WATCHER, REPORT] {
        let binary = stack.template_resource(function).expect("function")["Metadata"]
            ["BuildProperties"]["Binary"]
            .as_str()
            .expect("BuildProperties.Binary")
            .to_string();
        let mut read = variables_read_by(&binary);
        if function == WATCHER && !watcher_reads_own_resources() {
            // The watcher reads OWN_RESOURCES through core::tamper
            // (own_resources_from_env); until its settings call that, the
            // variable is expected here and checked by
            // own_resources_name_the_deployed_stacks_resources.
            read.extend(variables_in(&[tamper_module()]));
        }
        let set: BTreeSet<String> = stack.function_env(function).into_keys().collect();
        assert_eq!(
            set, read,
            "{function}: template variables vs variables functions/{binary} reads"
        );
    }
}

/// Environment variable names in a function crate's code: its upper-case
/// string literals (`required("LEDGER_TABLE")`), tests and Lambda's own
/// `AWS_*` variables left out. The shared settings module
/// (`grantwatch_aws::config`: `ALERT_TOPIC_ARN`, `MIN_ALERT_SEVERITY`,
/// `RULES_S3_URI`) counts when the function uses it.
fn variables_read_by(binary: &str) -> BTreeSet<String> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = workspace.join("functions").join(binary).join("src");
    let mut texts: Vec<String> = std::fs::read_dir(&src)
        .expect("function src")
        .filter_map(|e| e.ok())
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .collect();
    // The shared settings module reads a variable for a function when the
    // function names it, or calls the reader named after it
    // (`env.trusted_accounts()` reads TRUSTED_ACCOUNTS).
    let mut shared = BTreeSet::new();
    // The one channel builder (`ChannelSettings::from_env`): the watcher's
    // channels, and the report's summary and daily reconcile through them.
    let channels = texts
        .iter()
        .any(|t| t.contains("grantwatch_aws::channels"))
        .then(|| {
            std::fs::read_to_string(workspace.join("shared/aws/src/channels.rs"))
                .expect("channel settings")
        });
    if let Some(channels) = &channels {
        shared.extend(variables_in(std::slice::from_ref(channels)));
    }
    if texts.iter().any(|t| t.contains("grantwatch_aws::config")) {
        let config = std::fs::read_to_string(workspace.join("shared/aws/src/config.rs"))
            .expect("shared settings module");
        let code: String = texts.concat() + channels.as_deref().unwrap_or_default();
        shared.extend(
            variables_in(&[config])
                .into_iter()
                .filter(|name| code.contains(name.as_str()) || code.contains(&name.to_lowercase())),
        );
    }
    // An adapter module that reads its own settings (`CanarySettings::from_env`).
    if texts.iter().any(|t| t.contains("grantwatch_aws::canary")) {
        let canary = std::fs::read_to_string(workspace.join("shared/aws/src/canary.rs"))
            .expect("canary settings");
        shared.extend(variables_in(&[canary]));
    }
    if binary == "grant-watcher" && watcher_reads_own_resources() {
        texts.push(tamper_module());
    }
    let mut names = variables_in(&texts);
    names.extend(shared);
    assert!(
        !names.is_empty(),
        "functions/{binary} reads no variable: is the scan broken?"
    );
    names
}

/// `shared/core/src/tamper.rs`: the variables of grantwatch's own resources.
fn tamper_module() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/core/src/tamper.rs");
    std::fs::read_to_string(path).expect("shared/core/src/tamper.rs")
}

/// Does grant-watcher's code read OWN_RESOURCES (through core::tamper)?
fn watcher_reads_own_resources() -> bool {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../functions/grant-watcher/src");
    std::fs::read_dir(src)
        .expect("grant-watcher src")
        .filter_map(|e| e.ok())
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .any(|text| text.contains("own_resources_from_env") || text.contains("OWN_RESOURCES"))
}

/// Upper-case string literals that look like variable names, outside tests.
fn variables_in(texts: &[String]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for text in texts {
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for literal in code.split('"').skip(1).step_by(2) {
            let looks_like_variable = literal.len() > 3
                && literal.starts_with(|c: char| c.is_ascii_uppercase())
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && literal.contains('_');
            if looks_like_variable && !literal.starts_with("AWS_") {
                names.insert(literal.to_string());
            }
        }
    }
    names
}

#[tokio::test]
async fn the_rule_routes_exactly_the_kms_grant_events_to_the_watcher() {
    let moto = Moto::start().await;
    let stack = deploy(&moto, &[]);
    let rule = stack.rules.get("GrantEventsRule").expect("GrantEventsRule");
    assert_eq!(rule.event_bus_name, "default");
    assert_eq!(rule.state, "ENABLED");
    assert_eq!(rule.event_pattern, kms_grant_pattern());

    // Its one target is the watcher, with retries and the dead-letter queue.
    assert_eq!(rule.targets.len(), 1, "{:?}", rule.targets);
    let target = &rule.targets[0];
    let watcher = stack.function(WATCHER).expect("watcher");
    assert_eq!(target["Arn"], watcher.function_arn.as_str());
    assert!(target["RetryPolicy"]["MaximumRetryAttempts"]
        .as_u64()
        .is_some_and(|n| n > 0));
    let dlq_url = stack
        .output("EventDeadLetterQueueUrl")
        .expect("dead-letter queue output");
    let dlq_name = dlq_url.rsplit('/').next().expect("queue name");
    assert!(
        target["DeadLetterConfig"]["Arn"]
            .as_str()
            .is_some_and(|arn| arn.ends_with(dlq_name)),
        "{target}"
    );

    // Routing: grant events (a failed call included) reach the rule's
    // targets; other KMS calls and other sources do not.
    let (sqs, tap) = tap_rule(&moto, "default", &rule.name).await;
    let create = create_grant();
    let retire = retire_grant();
    let decrypt = decrypt();
    let mut failed_revoke = create.clone();
    failed_revoke["detail"]["eventName"] = json!("RevokeGrant");
    failed_revoke["detail"]["errorCode"] = json!("AccessDeniedException");
    let mut other_source = create.clone();
    other_source["source"] = json!("aws.s3");
    put_events(
        &moto,
        "default",
        &[create, retire, decrypt, failed_revoke, other_source],
    )
    .await;
    let delivered = drain(&sqs, &tap).await;
    assert_eq!(
        event_names(&delivered),
        ["CreateGrant", "RetireGrant", "RevokeGrant"]
    );
    assert!(delivered.iter().all(|e| e["source"] == "aws.kms"));
}

#[tokio::test]
async fn organization_events_are_forwarded_to_the_central_bus_and_the_watcher() {
    let moto = Moto::start().await;
    let central = deploy(&moto, &[("OrganizationId", "o-abcdef1234")]);
    let bus_arn = central
        .output("OrganizationEventBusArn")
        .expect("bus output")
        .to_string();
    let org_rule = central
        .rules
        .get("OrganizationGrantEventsRule")
        .expect("organization rule");
    assert_eq!(org_rule.event_pattern, kms_grant_pattern());
    assert_eq!(
        Some(org_rule.event_bus_name.as_str()),
        bus_arn.rsplit('/').next()
    );
    let watcher = central.function(WATCHER).expect("watcher");
    assert!(org_rule
        .targets
        .iter()
        .any(|t| t["Arn"] == watcher.function_arn.as_str()));

    // A member account's stack (here the same emulated account and region).
    let report_role = central.output("ReportRoleArn").expect("report role output");
    let member = stack::deploy_template_file(
        moto.endpoint(),
        &stack::member_template_path(),
        "grantwatch-member",
        &[
            ("CentralEventBusArn", &bus_arn),
            ("CentralReportRoleArn", report_role),
            ("ExternalId", "ext-123"),
            ("ReaderRoleRegion", stack::REGION),
        ],
    )
    .unwrap_or_else(|e| panic!("deploy member-account.yaml: {e}"));
    let forward = member
        .rules
        .get("ForwardGrantEventsRule")
        .expect("forwarding rule");
    assert_eq!(
        forward.event_pattern,
        kms_grant_pattern(),
        "member and central patterns differ"
    );
    assert_eq!(forward.targets.len(), 1);
    assert_eq!(forward.targets[0]["Arn"], bus_arn.as_str());
    assert!(forward.targets[0]["RoleArn"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(
        member.physical_id("ReportReaderRole"),
        Some("grantwatch-report-reader")
    );
    let reader = &member
        .template_resource("ReportReaderRole")
        .expect("reader role")["Properties"];
    let trust = &reader["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        trust["Principal"]["AWS"],
        json!({"Ref": "CentralReportRoleArn"})
    );
    assert_eq!(
        trust["Condition"]["StringEquals"]["sts:ExternalId"],
        json!({"Ref": "ExternalId"})
    );

    // A grant event on the member's default bus travels to the central bus
    // and matches the watcher's rule there; a Decrypt does not travel.
    let (sqs, tap) = tap_rule(&moto, &org_rule.event_bus_name, &org_rule.name).await;
    let default_rule = &central
        .rules
        .get("GrantEventsRule")
        .expect("default-bus rule")
        .name;
    let (_, local_tap) = tap_rule(&moto, "default", default_rule).await;
    put_events(&moto, "default", &[create_grant(), decrypt()]).await;
    let delivered = drain(&sqs, &tap).await;
    assert_eq!(event_names(&delivered), ["CreateGrant"]);
    // ...and the central account's own rule saw it on its default bus too.
    assert_eq!(event_names(&drain(&sqs, &local_tap).await), ["CreateGrant"]);

    // The member's forwarding alarms reach the central alarm path: an alarm
    // going to ALARM travels to the central bus and its alarms rule; another
    // stack's alarm and a return to OK do not.
    let alarms_rule = central
        .rules
        .get("OrganizationAlarmsRule")
        .expect("organization alarms rule");
    assert_eq!(alarms_rule.event_bus_name, org_rule.event_bus_name);
    let (_, alarm_tap) = tap_rule(&moto, &alarms_rule.event_bus_name, &alarms_rule.name).await;
    let alarm = |name: &str, state: &str| {
        json!({
            "source": "aws.cloudwatch",
            "detail-type": "CloudWatch Alarm State Change",
            "resources": [format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}")],
            "detail": {"alarmName": name, "state": {"value": state}}
        })
    };
    put_events(
        &moto,
        "default",
        &[
            alarm("grantwatch-member-ForwardDeadLetterQueueAlarm", "ALARM"),
            alarm("grantwatch-member-ForwardFailedInvocationsAlarm", "OK"),
            alarm("billing-high", "ALARM"),
        ],
    )
    .await;
    let forwarded: Vec<String> = drain(&sqs, &alarm_tap)
        .await
        .iter()
        .map(|e| e["detail"]["alarmName"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(forwarded, ["grantwatch-member-ForwardDeadLetterQueueAlarm"]);

    // A call that would blind the member's forwarding travels to the central
    // bus and its tamper rule (to the watcher); the same call on another rule
    // stays in the member account.
    let tamper_rule = central
        .rules
        .get("OrganizationTamperEventsRule")
        .expect("organization tamper rule");
    let (_, tamper_tap) = tap_rule(&moto, &tamper_rule.event_bus_name, &tamper_rule.name).await;
    let central_tamper = &central
        .rules
        .get("TamperEventsRule")
        .expect("tamper rule")
        .name;
    let (_, _central_tamper_tap) = tap_rule(&moto, "default", central_tamper).await;
    let forwarding_rule = forward.name.clone();
    assert!(
        forwarding_rule.starts_with("grantwatch-member-Forward"),
        "{forwarding_rule}"
    );
    let disable = |rule: &str| {
        api_call(
            "aws.events",
            "events.amazonaws.com",
            "DisableRule",
            json!({"name": rule}),
        )
    };
    put_events(
        &moto,
        "default",
        &[disable(&forwarding_rule), disable("nightly-batch")],
    )
    .await;
    let tampered: Vec<String> = drain(&sqs, &tamper_tap)
        .await
        .iter()
        .map(|e| {
            e["detail"]["requestParameters"]["name"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    assert_eq!(tampered, std::slice::from_ref(&forwarding_rule));
    // ...and the watcher takes it for one of grantwatch's own resources.
    let own = grantwatch_core::tamper::OwnResources::from_json(env_value(
        &central.function_env(WATCHER),
        grantwatch_core::tamper::OWN_RESOURCES_ENV,
    ))
    .expect("own resources");
    assert!(own.owns(&forwarding_rule));
    assert!(!own.owns("nightly-batch"));
}

#[test]
fn the_reader_role_is_created_in_one_region_only() {
    let parameters = [
        (
            "CentralReportRoleArn",
            "arn:aws:iam::111111111111:role/grantwatch-ReportRole-X",
        ),
        ("ReaderRoleRegion", "eu-west-1"),
    ];
    let elsewhere = stack::transformed_template(&stack::member_template_path(), &parameters)
        .expect("transform member-account.yaml");
    assert!(elsewhere["Resources"].get("ReportReaderRole").is_none());
    assert!(
        elsewhere["Resources"]
            .get("ForwardGrantEventsRule")
            .is_none(),
        "no central bus given: nothing to forward"
    );
}

/// The template's `Fn::FindInMap`s and parameter `Ref`s resolved (moto
/// creates no e-mail subscription, so the test applies its filter itself).
fn resolve_mappings(template: &Value, node: &Value, parameters: &HashMap<&str, &str>) -> Value {
    match node {
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::FindInMap") => {
            let args: Vec<Value> = map["Fn::FindInMap"]
                .as_array()
                .expect("FindInMap arguments")
                .iter()
                .map(|a| resolve_mappings(template, a, parameters))
                .collect();
            let key = |i: usize| args[i].as_str().expect("FindInMap key").to_string();
            template["Mappings"][key(0)][key(1)][key(2)].clone()
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
            let name = map["Ref"].as_str().expect("Ref name");
            json!(parameters
                .get(name)
                .unwrap_or_else(|| panic!("no value for {name}")))
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_mappings(template, v, parameters)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve_mappings(template, v, parameters))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[tokio::test]
async fn the_email_filter_passes_severe_alerts_and_alarm_notifications() {
    let moto = Moto::start().await;
    let default_stack = deploy(&moto, &[]);
    assert!(
        default_stack
            .template_resource("AlertEmailSubscription")
            .is_none(),
        "no e-mail subscription without AlertEmail"
    );
    moto.reset().await;

    let parameters: HashMap<&str, &str> = [
        ("AlertEmail", "security@example.com"),
        ("AlertEmailMinSeverity", "high"),
    ]
    .into_iter()
    .collect();
    let stack = deploy(
        &moto,
        &parameters.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
    );
    let subscription = &stack
        .template_resource("AlertEmailSubscription")
        .expect("e-mail subscription")["Properties"];
    assert_eq!(subscription["Protocol"], "email");
    assert_eq!(subscription["Endpoint"], json!({"Ref": "AlertEmail"}));
    let policy = resolve_mappings(&stack.template, &subscription["FilterPolicy"], &parameters);

    // The same filter on an SQS subscription of the deployed topic.
    let topic = stack.alert_topic_arn().expect("topic").to_string();
    let sqs = moto.sqs().await;
    let queue_url = sqs
        .create_queue()
        .queue_name("email-stand-in")
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("queue url");
    let queue_arn = format!(
        "arn:aws:sqs:{}:{}:email-stand-in",
        stack::REGION,
        grantwatch_e2e::moto::ACCOUNT
    );
    let sns = moto.sns().await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("FilterPolicy", policy.to_string())
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap_or_else(|e| panic!("subscribe with filter policy {policy}: {e:?}"));
    // A quiet week's report (kind report, severity info) still arrives.
    for (message, severity, kind) in [
        ("critical alert", Some("critical"), Some("alert")),
        ("high alert", Some("high"), Some("alert")),
        ("medium alert", Some("medium"), Some("alert")),
        ("info alert", Some("info"), Some("alert")),
        ("quiet weekly report", Some("info"), Some("report")),
        ("alarm notification", None, None),
    ] {
        let mut publish = sns.publish().topic_arn(&topic).message(message);
        for (name, value) in [("severity", severity), ("kind", kind)] {
            if let Some(value) = value {
                publish = publish.message_attributes(
                    name,
                    aws_sdk_sns::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .expect("attribute"),
                );
            }
        }
        publish.send().await.expect("publish");
    }
    let mut received = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if batch.messages().is_empty() {
            break;
        }
        for message in batch.messages() {
            received.push(message.body().unwrap_or_default().to_string());
            sqs.delete_message()
                .queue_url(&queue_url)
                .set_receipt_handle(message.receipt_handle().map(str::to_string))
                .send()
                .await
                .expect("delete");
        }
    }
    received.sort();
    assert_eq!(
        received,
        [
            "alarm notification",
            "critical alert",
            "high alert",
            "quiet weekly report"
        ]
    );
}

// ------------------------------------------------ issue 10: the alarm path

#[tokio::test]
async fn the_canary_is_on_by_default_alarmed_on_the_alarm_topic_and_can_be_turned_off() {
    let moto = Moto::start().await;
    let stack = deploy(&moto, &[]);
    let resource = |id: &str| stack.template_resource(id).cloned();
    let missed = resource("CanaryMissedAlarm").expect("CanaryMissedAlarm");
    let completed = resource("CanaryCompletedAlarm").expect("CanaryCompletedAlarm");
    for (alarm, metric) in [(&missed, "CanaryMissed"), (&completed, "CanaryCompleted")] {
        let p = &alarm["Properties"];
        assert_eq!(p["MetricName"], metric);
        assert_eq!(p["AlarmActions"], json!([{"Ref": "AlarmTopic"}]));
    }
    assert_eq!(missed["Properties"]["TreatMissingData"], "notBreaching");
    // No completed round trip for a day and more is the failure itself.
    let c = &completed["Properties"];
    assert_eq!(c["TreatMissingData"], "breaching");
    assert_eq!(c["ComparisonOperator"], "LessThanThreshold");
    let covered =
        c["Period"].as_u64().expect("period") * c["EvaluationPeriods"].as_u64().expect("n");
    assert!(covered > 86_400, "{covered} s");
    let watcher = stack.function_env(WATCHER);
    assert!(env_value(&watcher, "CANARY_KEY_ARN").contains(":key/"));
    assert!(env_value(&watcher, "CANARY_PRINCIPAL_ARN").contains(":role/"));
    // The watcher may make canary grants on the canary key only.
    let policy = stack
        .template_resource("WatcherPolicy")
        .expect("WatcherPolicy");
    let statements = policy["Properties"]["PolicyDocument"]["Statement"].to_string();
    assert!(statements.contains("CanaryGrant"), "{statements}");
    assert!(statements.contains("kms:GrantOperations"), "{statements}");
    moto.reset().await;

    let off = deploy(&moto, &[("CanaryEnabled", "false")]);
    for id in ["CanaryKey", "CanaryMissedAlarm", "CanaryCompletedAlarm"] {
        assert!(
            off.template_resource(id).is_none(),
            "{id} with the canary off"
        );
    }
    let watcher = off.function_env(WATCHER);
    assert!(!watcher.contains_key("CANARY_KEY_ARN"), "{watcher:?}");
    assert!(!watcher.contains_key("CANARY_PRINCIPAL_ARN"), "{watcher:?}");
}

/// The central template with every optional resource on (Slack, an
/// organization), as the deployer would send it.
fn full_template() -> Value {
    stack::transformed_template(
        &stack::template_path(),
        &[
            (
                "SlackWebhookSecretArn",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:gw-AbCdEf",
            ),
            ("OrganizationId", "o-abcdef1234"),
            ("RulesS3Uri", "s3://rules-bucket/grantwatch/rules.toml"),
            ("AlarmEmail", "oncall@example.com"),
            ("AlertEmail", "security@example.com"),
            ("ReportAccounts", "ORG"),
        ],
    )
    .expect("transform infra/template.yaml")
}

fn member_template() -> Value {
    stack::transformed_template(
        &stack::member_template_path(),
        &[(
            "CentralEventBusArn",
            "arn:aws:events:us-east-1:111111111111:event-bus/grantwatch-grant-events",
        )],
    )
    .expect("transform infra/member-account.yaml")
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    template["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

/// Every metric name an alarm watches (a single metric or metric math).
fn alarm_metric_names(alarm: &Value) -> Vec<String> {
    let properties = &alarm["Properties"];
    let mut names: Vec<String> = properties["MetricName"]
        .as_str()
        .map(str::to_string)
        .into_iter()
        .collect();
    for query in properties["Metrics"].as_array().into_iter().flatten() {
        if let Some(name) = query["MetricStat"]["Metric"]["MetricName"].as_str() {
            names.push(name.to_string());
        }
        if let Some(expression) = query["Expression"].as_str() {
            names.push(expression.to_string());
        }
    }
    names
}

/// An alarm's Dimensions as name -> value (values as template JSON).
fn dimensions(alarm: &Value) -> HashMap<String, Value> {
    alarm["Properties"]["Dimensions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["Name"].as_str().expect("name").to_string(),
                d["Value"].clone(),
            )
        })
        .collect()
}

#[test]
fn every_alarm_notifies_the_alarm_topic_and_none_the_alert_topic() {
    let template = full_template();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 10, "{} alarms", alarms.len());
    for (id, alarm) in &alarms {
        let properties = &alarm["Properties"];
        assert_eq!(
            properties["AlarmActions"],
            json!([{"Ref": "AlarmTopic"}]),
            "{id} must notify the alarm topic"
        );
        for actions in ["AlarmActions", "OKActions", "InsufficientDataActions"] {
            let text = properties[actions].to_string();
            assert!(
                !text.contains("AlertTopic"),
                "{id}.{actions} uses the alert topic: {text}"
            );
        }
    }
    // ...and nothing but alarms (and the member accounts' forwarded alarms)
    // publishes to the alarm topic.
    let policy = &template["Resources"]["AlarmTopicPolicy"]["Properties"]["PolicyDocument"];
    let publishers: Vec<&Value> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .map(|s| &s["Principal"]["Service"])
        .collect();
    assert_eq!(
        publishers,
        [
            &json!("cloudwatch.amazonaws.com"),
            &json!("events.amazonaws.com")
        ]
    );
    assert!(policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .any(|s| {
            s["Effect"] == "Deny" && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
        }));
}

#[test]
fn the_alarm_topic_does_not_use_the_alert_key() {
    let template = full_template();
    let topic = &template["Resources"]["AlarmTopic"];
    assert_eq!(topic["Type"], "AWS::SNS::Topic");
    assert!(
        topic["Properties"].get("KmsMasterKeyId").is_none(),
        "the alarm topic is deliberately unencrypted (docs/security.md): {topic}"
    );
    // The alert key no longer lets CloudWatch use it: no alarm depends on it.
    let key_policy = &template["Resources"]["AlertKey"]["Properties"]["KeyPolicy"];
    let key_policy: Value = match key_policy {
        Value::String(text) => serde_json::from_str(text).expect("key policy JSON"),
        other => other.clone(),
    };
    assert!(
        !key_policy.to_string().contains("cloudwatch.amazonaws.com"),
        "{key_policy}"
    );
}

#[test]
fn no_alarm_watches_messages_visible_and_each_queue_alarms_on_each_new_message() {
    for template in [full_template(), member_template()] {
        let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
        for (id, alarm) in &alarms {
            for name in alarm_metric_names(alarm) {
                assert!(
                    !name.contains("ApproximateNumberOfMessagesVisible"),
                    "{id} alarms on messages visible: it would stay in ALARM and hide later failures"
                );
            }
        }
        for (queue, _) in resources_of_type(&template, "AWS::SQS::Queue") {
            let on_queue = |metric: &str| {
                alarms
                    .iter()
                    .find(|(_, a)| {
                        a["Properties"]["MetricName"] == metric
                            && dimensions(a).get("QueueName")
                                == Some(&json!({"Fn::GetAtt": [queue, "QueueName"]}))
                    })
                    .map(|(_, a)| &a["Properties"])
                    .unwrap_or_else(|| panic!("no {metric} alarm on {queue}"))
            };
            let sent = on_queue("NumberOfMessagesSent");
            assert_eq!(sent["Namespace"], "AWS/SQS");
            assert_eq!(sent["Statistic"], "Sum");
            assert_eq!(sent["Period"], 60);
            assert_eq!(sent["Threshold"], 1);
            assert_eq!(sent["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
            assert_eq!(sent["TreatMissingData"], "notBreaching");
            let age = on_queue("ApproximateAgeOfOldestMessage");
            assert_eq!(age["Statistic"], "Maximum");
        }
    }
}

#[test]
fn the_watchers_own_metrics_raise_alarms() {
    let template = full_template();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    let watcher = json!({"Ref": "WatcherFunction"});
    let rejected: Vec<String> = alarms
        .iter()
        .filter(|(_, a)| a["Properties"]["MetricName"] == "DeliveriesRejected")
        .map(|(_, a)| {
            let properties = &a["Properties"];
            assert_eq!(properties["Namespace"], "grantwatch");
            assert_eq!(properties["Statistic"], "Sum");
            assert_eq!(properties["Threshold"], 1);
            let dims = dimensions(a);
            assert_eq!(dims.len(), 2, "{dims:?}");
            assert_eq!(dims["FunctionName"], watcher);
            dims["Channel"].as_str().expect("channel").to_string()
        })
        .collect();
    let mut rejected = rejected;
    rejected.sort();
    assert_eq!(rejected, ["slack", "sns"]);

    let latency = alarms
        .iter()
        .find(|(_, a)| a["Properties"]["MetricName"] == "AlertLatencyMs")
        .map(|(_, a)| &a["Properties"])
        .expect("an alert latency alarm");
    assert_eq!(latency["Namespace"], "grantwatch");
    assert_eq!(
        latency["Threshold"],
        json!({"Ref": "AlertLatencyThresholdMs"})
    );
    assert_eq!(latency["ComparisonOperator"], "GreaterThanThreshold");
    let source: Value = serde_yaml_default("AlertLatencyThresholdMs");
    assert_eq!(source, json!(300000), "5 minutes by default");

    // No Slack: no Slack alarm (it would never have data).
    let sns_only = stack::transformed_template(&stack::template_path(), &[]).expect("transform");
    let channels: Vec<&Value> = resources_of_type(&sns_only, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| a["Properties"]["MetricName"] == "DeliveriesRejected")
        .map(|(_, a)| &a["Properties"]["Dimensions"])
        .collect();
    assert_eq!(channels.len(), 1, "{channels:?}");

    // The watcher has reserved concurrency by default.
    let function = &sns_only["Resources"]["WatcherFunction"]["Properties"];
    assert_eq!(
        function["ReservedConcurrentExecutions"],
        json!({"Ref": "WatcherReservedConcurrency"})
    );
    assert_eq!(serde_yaml_default("WatcherReservedConcurrency"), json!("5"));
}

/// A parameter's default in `infra/template.yaml`.
fn serde_yaml_default(parameter: &str) -> Value {
    let template = stack::transformed_template(&stack::template_path(), &[]).expect("transform");
    template["Parameters"][parameter]["Default"].clone()
}

#[test]
fn the_member_stack_alarms_on_its_forwarding_and_sends_the_alarms_to_the_central_bus() {
    let template = member_template();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    let find = |id: &str| {
        alarms
            .iter()
            .find(|(name, _)| name.as_str() == id)
            .map(|(_, a)| &a["Properties"])
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    let dlq = find("ForwardDeadLetterQueueAlarm");
    assert_eq!(dlq["MetricName"], "NumberOfMessagesSent");
    assert_eq!(
        dlq["Dimensions"][0]["Value"],
        json!({"Fn::GetAtt": ["ForwardDeadLetterQueue", "QueueName"]})
    );
    let failed = find("ForwardFailedInvocationsAlarm");
    assert_eq!(failed["Namespace"], "AWS/Events");
    assert_eq!(failed["MetricName"], "FailedInvocations");
    assert_eq!(
        failed["Dimensions"][0],
        json!({"Name": "RuleName", "Value": {"Ref": "ForwardGrantEventsRule"}})
    );
    // Every alarm's name falls under the prefix the alarm-forwarding rule matches.
    let rule = &template["Resources"]["ForwardAlarmsRule"]["Properties"];
    assert_eq!(rule["EventPattern"]["source"], json!(["aws.cloudwatch"]));
    assert_eq!(
        rule["EventPattern"]["detail-type"],
        json!(["CloudWatch Alarm State Change"])
    );
    let prefix = rule["EventPattern"]["detail"]["alarmName"][0]["prefix"]["Fn::Sub"]
        .as_str()
        .expect("an alarm-name prefix");
    for (id, alarm) in &alarms {
        let name = alarm["Properties"]["AlarmName"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no AlarmName"));
        assert!(name.starts_with(prefix), "{id}: {name} vs {prefix}");
    }
    assert_eq!(
        rule["Targets"][0]["Arn"],
        json!({"Ref": "CentralEventBusArn"})
    );
    // The central stack hands forwarded alarms to its alarm topic.
    let central = full_template();
    let org_alarms = &central["Resources"]["OrganizationAlarmsRule"]["Properties"];
    assert_eq!(
        org_alarms["EventPattern"]["source"],
        json!(["aws.cloudwatch"])
    );
    assert_eq!(
        org_alarms["Targets"][0]["Arn"],
        json!({"Ref": "AlarmTopic"})
    );
}

// ------------------------------------------- issue 10: hardening the stack

#[test]
fn only_the_functions_publish_alerts_and_only_over_tls() {
    let template = full_template();
    let policy = &template["Resources"]["AlertTopicPolicy"]["Properties"];
    assert_eq!(policy["Topics"], json!([{"Ref": "AlertTopic"}]));
    let statements = policy["PolicyDocument"]["Statement"]
        .as_array()
        .expect("statements");
    let only_functions = statements
        .iter()
        .find(|s| s["Sid"] == "OnlyTheFunctionsPublish")
        .expect("a statement limiting Publish to the functions");
    assert_eq!(only_functions["Effect"], "Deny");
    assert_eq!(only_functions["Action"], "sns:Publish");
    assert_eq!(
        only_functions["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
        json!([
            {"Fn::GetAtt": ["WatcherRole", "Arn"]},
            {"Fn::GetAtt": ["ReportRole", "Arn"]}
        ])
    );
    assert!(
        statements
            .iter()
            .any(|s| s["Effect"] == "Deny"
                && s["Condition"]["Bool"]["aws:SecureTransport"] == "false")
    );
    // The functions' roles are the ones the functions run with.
    for (function, role) in [
        ("WatcherFunction", "WatcherRole"),
        ("ReportFunction", "ReportRole"),
    ] {
        assert_eq!(
            template["Resources"][function]["Properties"]["Role"],
            json!({"Fn::GetAtt": [role, "Arn"]})
        );
    }
}

#[tokio::test]
async fn the_report_bucket_is_versioned_under_sse_kms_and_the_ledger_protected() {
    let moto = Moto::start().await;
    let stack = deploy(&moto, &[]);
    let bucket = stack.report_bucket().expect("bucket").to_string();
    let s3 = moto.s3().await;
    // (moto answers GetBucketVersioning with a root element the SDK refuses:
    // versioning is read from the template moto received.)
    assert_eq!(
        stack.template["Resources"]["ReportBucket"]["Properties"]["VersioningConfiguration"],
        json!({"Status": "Enabled"})
    );
    let encryption = s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .expect("encryption");
    let rule = &encryption
        .server_side_encryption_configuration()
        .expect("configuration")
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .map(|d| d.sse_algorithm().as_str()),
        Some("aws:kms")
    );
    let resources = &stack.template["Resources"];
    assert_eq!(
        resources["ReportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"][0]
            ["NoncurrentVersionExpiration"]["NoncurrentDays"],
        json!({"Ref": "ReportRetentionDays"}),
        "old versions expire too"
    );
    assert_eq!(
        resources["LedgerTable"]["Properties"]["DeletionProtectionEnabled"],
        true
    );
    assert_eq!(resources["LedgerTable"]["DeletionPolicy"], "Retain");
}

#[test]
fn the_report_assumes_member_roles_of_the_organization_only() {
    let statement = |template: &Value| {
        template["Resources"]["ReportPolicy"]["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| s["Sid"] == "MemberAccounts")
            .cloned()
            .expect("MemberAccounts statement")
    };
    let with_org = statement(&full_template());
    assert_eq!(with_org["Action"], "sts:AssumeRole");
    assert_eq!(
        with_org["Condition"]["StringEquals"]["aws:ResourceOrgID"],
        json!({"Ref": "OrganizationId"})
    );
    // Listed accounts without an organization: no organization to limit to.
    let listed = stack::transformed_template(
        &stack::template_path(),
        &[("ReportAccounts", "111111111111,222222222222")],
    )
    .expect("transform");
    assert!(statement(&listed).get("Condition").is_none());
}

// ------------------------------------- issue 10: the tamper rule and its data

/// A CloudTrail call as EventBridge delivers it.
fn api_call(source: &str, event_source: &str, event_name: &str, request: Value) -> Value {
    let mut event = kms_call(event_name, request);
    event["source"] = json!(source);
    event["detail"]["eventSource"] = json!(event_source);
    event
}

#[test]
fn the_tamper_rule_routes_the_calls_core_tamper_judges() {
    use grantwatch_core::tamper::{HEARTBEAT_SOURCE, TAMPER_CALLS};
    let template = full_template();
    let rule = &template["Resources"]["TamperEventsRule"]["Properties"];
    assert_eq!(rule["State"], "ENABLED");
    assert_eq!(
        rule["Targets"][0]["Arn"],
        json!({"Fn::GetAtt": ["WatcherFunction", "Arn"]})
    );
    assert!(rule["Targets"][0]["DeadLetterConfig"]["Arn"].is_object());
    let branches = rule["EventPattern"]["$or"].as_array().expect("$or");
    assert!(branches
        .iter()
        .any(|b| b["source"] == json!([HEARTBEAT_SOURCE])));
    let mut routed: Vec<(String, Vec<String>)> = branches
        .iter()
        .filter(|b| b.get("detail").is_some())
        .map(|b| {
            assert_eq!(b["detail-type"], json!(["AWS API Call via CloudTrail"]));
            let source = b["detail"]["eventSource"][0]
                .as_str()
                .expect("eventSource")
                .to_string();
            let names = b["detail"]["eventName"]
                .as_array()
                .expect("eventName")
                .iter()
                .map(|n| {
                    n.as_str()
                        .or_else(|| n["prefix"].as_str())
                        .expect("a name or a prefix")
                        .to_string()
                })
                .collect();
            (source, names)
        })
        .collect();
    routed.sort();
    let mut judged: Vec<(String, Vec<String>)> = TAMPER_CALLS
        .iter()
        .map(|(source, names)| {
            (
                source.to_string(),
                names.iter().map(|n| n.to_string()).collect(),
            )
        })
        .collect();
    judged.sort();
    assert_eq!(
        routed, judged,
        "template rule vs core::tamper::TAMPER_CALLS"
    );
    // Lambda names are matched by prefix (CloudTrail adds API versions).
    let lambda = branches
        .iter()
        .find(|b| b["detail"]["eventSource"] == json!(["lambda.amazonaws.com"]))
        .expect("lambda branch");
    assert!(lambda["detail"]["eventName"]
        .as_array()
        .expect("names")
        .iter()
        .all(|n| n["prefix"].is_string()));
    // S3 data events: only the rules file's bucket, and none without rules.
    let s3 = branches
        .iter()
        .find(|b| b["detail"]["eventSource"] == json!(["s3.amazonaws.com"]))
        .expect("s3 branch");
    assert!(
        s3["detail"]["requestParameters"]["bucketName"].is_array(),
        "{s3}"
    );
    let no_rules = stack::transformed_template(&stack::template_path(), &[]).expect("transform");
    let pattern = &no_rules["Resources"]["TamperEventsRule"]["Properties"]["EventPattern"];
    assert!(
        !pattern.to_string().contains("s3.amazonaws.com"),
        "{pattern}"
    );
    // The heartbeat: every 15 minutes, a grantwatch.heartbeat event on the default bus.
    let schedule = &template["Resources"]["HeartbeatSchedule"]["Properties"];
    assert_eq!(schedule["ScheduleExpression"], "rate(15 minutes)");
    assert_eq!(
        schedule["Target"]["EventBridgeParameters"]["Source"],
        HEARTBEAT_SOURCE
    );
}

#[tokio::test]
async fn the_tamper_rule_routes_blinding_calls_key_lifecycle_and_the_heartbeat_in_moto() {
    let moto = Moto::start().await;
    let stack = deploy(
        &moto,
        &[("RulesS3Uri", "s3://rules-bucket/grantwatch/rules.toml")],
    );
    let rule = stack
        .rules
        .get("TamperEventsRule")
        .expect("TamperEventsRule");
    assert_eq!(rule.event_bus_name, "default");
    let watcher = stack.function(WATCHER).expect("watcher");
    assert_eq!(rule.targets.len(), 1);
    assert_eq!(rule.targets[0]["Arn"], watcher.function_arn.as_str());

    let (sqs, tap) = tap_rule(&moto, "default", &rule.name).await;
    // (The grant rule's Lambda target would make moto's PutEvents fail.)
    let grant_rule = &stack.rules.get("GrantEventsRule").expect("grant rule").name;
    let (_, grant_tap) = tap_rule(&moto, "default", grant_rule).await;
    let heartbeat = json!({
        "source": "grantwatch.heartbeat",
        "detail-type": "grantwatch heartbeat",
        "resources": [],
        "detail": {"stack": "grantwatch"}
    });
    put_events(
        &moto,
        "default",
        &[
            api_call(
                "aws.lambda",
                "lambda.amazonaws.com",
                "UpdateFunctionConfiguration20150331v2",
                json!({"functionName": "anything"}),
            ),
            api_call(
                "aws.lambda",
                "lambda.amazonaws.com",
                "Invoke",
                json!({"functionName": "anything"}),
            ),
            kms_call(
                "DisableKey",
                json!({"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}),
            ),
            create_grant(),
            decrypt(),
            api_call(
                "aws.cloudtrail",
                "cloudtrail.amazonaws.com",
                "StopLogging",
                json!({"name": "management-events"}),
            ),
            heartbeat,
            api_call(
                "aws.s3",
                "s3.amazonaws.com",
                "PutObject",
                json!({"bucketName": "rules-bucket", "key": "grantwatch/rules.toml"}),
            ),
            api_call(
                "aws.s3",
                "s3.amazonaws.com",
                "DeleteObject",
                json!({"bucketName": "photos", "key": "cat.png"}),
            ),
        ],
    )
    .await;
    let delivered = drain(&sqs, &tap).await;
    let mut names: Vec<String> = delivered
        .iter()
        .map(|e| {
            e["detail"]["eventName"]
                .as_str()
                .or_else(|| e["source"].as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "DisableKey",
            "PutObject",
            "StopLogging",
            "UpdateFunctionConfiguration20150331v2",
            "grantwatch.heartbeat"
        ]
    );
    // The grant rule still takes only the grant call.
    assert_eq!(event_names(&drain(&sqs, &grant_tap).await), ["CreateGrant"]);
}

#[tokio::test]
async fn own_resources_name_the_deployed_stacks_resources() {
    use grantwatch_core::tamper::{OwnResources, OWN_RESOURCES_ENV};
    let moto = Moto::start().await;
    let stack = deploy(
        &moto,
        &[
            (
                "SlackWebhookSecretArn",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:grantwatch/slack-AbCdEf",
            ),
            ("RulesS3Uri", "s3://rules-bucket/grantwatch/rules.toml"),
        ],
    );
    let env = stack.function_env(WATCHER);
    let own = OwnResources::from_json(env_value(&env, OWN_RESOURCES_ENV))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(own.stack_name, stack.stack_name);
    assert_eq!(own.stack_id.as_deref(), Some(stack.stack_id.as_str()));
    assert_eq!(
        own.rules_object.as_deref(),
        Some("s3://rules-bucket/grantwatch/rules.toml")
    );
    let watcher = stack.function(WATCHER).expect("watcher");
    let report = stack.function(REPORT).expect("report");
    let mut owned: Vec<String> = vec![
        watcher.function_name.clone(),
        watcher.function_arn.clone(),
        report.function_name.clone(),
        stack.alert_topic_arn().expect("topic").to_string(),
        stack
            .output("AlarmTopicArn")
            .expect("alarm topic")
            .to_string(),
        stack.output("AlertKeyArn").expect("key").to_string(),
        stack.ledger_table().expect("table").to_string(),
        "grantwatch/slack".to_string(),
    ];
    for rule in stack.rules.values() {
        owned.push(rule.name.clone());
    }
    assert!(owned.len() >= 10, "{owned:?}");
    for identifier in &owned {
        assert!(
            own.owns(identifier),
            "{identifier} not recognised as own: {own:?}"
        );
    }
    for other in [
        "payments",
        "arn:aws:sns:us-east-1:123456789012:billing",
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ] {
        assert!(!own.owns(other), "{other} taken for grantwatch's own");
    }
    // Without the optional settings, their empty values are dropped.
    moto.reset().await;
    let default = deploy(&moto, &[]);
    let own = OwnResources::from_json(env_value(&default.function_env(WATCHER), OWN_RESOURCES_ENV))
        .expect("own resources");
    assert!(own.rules_object.is_none());
    assert!(own.resources.iter().all(|r| !r.is_empty()));
}

/// The channel name an adapter reports (`fn channel(&self) -> &str { "sns" }`).
fn adapter_channels(file: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/aws/src")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("adapter source");
    let channels: Vec<String> = text
        .split("fn channel(&self) -> &str {")
        .skip(1)
        .map(|after| {
            after
                .split('"')
                .nth(1)
                .expect("a channel literal")
                .to_string()
        })
        .collect();
    assert!(!channels.is_empty(), "{file}: no fn channel");
    channels
}

#[test]
fn each_emf_alarm_watches_a_metric_the_watcher_emits() {
    use grantwatch_core::app::watch::{Metrics, METRICS_NAMESPACE};
    let channels: Vec<String> = ["sns.rs", "slack.rs", "eventbridge.rs"]
        .into_iter()
        .flat_map(adapter_channels)
        .collect();
    let metrics = Metrics {
        rejected_channels: channels,
        alert_latency_ms: Some(1),
        ..Metrics::default()
    };
    // (metric, dimension names, dimension values besides FunctionName)
    let mut emitted: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for line in metrics.emf_lines("grant-watcher", 0) {
        let definition = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(definition["Namespace"], METRICS_NAMESPACE);
        let mut names: Vec<String> = definition["Dimensions"][0]
            .as_array()
            .expect("dimensions")
            .iter()
            .map(|d| d.as_str().expect("name").to_string())
            .collect();
        let values: Vec<String> = names
            .iter()
            .filter(|n| n.as_str() != "FunctionName")
            .map(|n| {
                line[n.as_str()]
                    .as_str()
                    .expect("dimension value")
                    .to_string()
            })
            .collect();
        names.sort();
        for metric in definition["Metrics"].as_array().expect("metrics") {
            emitted.push((
                metric["Name"].as_str().expect("metric").to_string(),
                names.clone(),
                values.clone(),
            ));
        }
    }
    // The one metric the watcher's handler emits itself, outside `Metrics`:
    // a failed write of the deployment time (once per process).
    let handler = std::fs::read_to_string(
        stack::workspace_dir().join("functions/grant-watcher/src/handler.rs"),
    )
    .expect("grant-watcher's handler.rs");
    if handler.contains(r#"&[("DeployedRecordFailed", 1, "Count")]"#) {
        emitted.push((
            "DeployedRecordFailed".to_string(),
            vec!["FunctionName".to_string()],
            Vec::new(),
        ));
    }
    let template = full_template();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    // Metrics made from log lines by a metric filter are checked apart.
    let from_logs: Vec<&Value> = resources_of_type(&template, "AWS::Logs::MetricFilter")
        .into_iter()
        .flat_map(|(_, f)| {
            f["Properties"]["MetricTransformations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| &t["MetricName"])
        })
        .collect();
    let report = json!({"Ref": "ReportFunction"});
    let ours: Vec<_> = alarms
        .iter()
        .filter(|(_, a)| a["Properties"]["Namespace"] == METRICS_NAMESPACE)
        .filter(|(_, a)| !from_logs.contains(&&a["Properties"]["MetricName"]))
        // The report's own metrics: a_failed_or_partial_report_raises_an_alarm_from_its_metrics.
        .filter(|(_, a)| dimensions(a).get("FunctionName") != Some(&report))
        .collect();
    assert!(ours.len() >= 3, "{}", ours.len());
    for (id, alarm) in ours {
        let dims = dimensions(alarm);
        let mut names: Vec<String> = dims.keys().cloned().collect();
        names.sort();
        let values: Vec<String> = dims
            .iter()
            .filter(|(n, _)| n.as_str() != "FunctionName")
            .map(|(_, v)| v.as_str().expect("literal dimension value").to_string())
            .collect();
        let metric = alarm["Properties"]["MetricName"]
            .as_str()
            .expect("metric")
            .to_string();
        assert!(
            emitted.contains(&(metric.clone(), names.clone(), values.clone())),
            "{id}: {metric} {names:?} {values:?} is never emitted by the watcher: the alarm could never fire\n{emitted:?}"
        );
    }
}

/// The report's alarms watch the metrics of its own EMF line (one per run,
/// grant-report's `report_emf`), with its FunctionName.
#[test]
fn a_failed_or_partial_report_raises_an_alarm_from_its_metrics() {
    let template = full_template();
    let report = json!({"Ref": "ReportFunction"});
    let handler = std::fs::read_to_string(
        stack::workspace_dir().join("functions/grant-report/src/handler.rs"),
    )
    .expect("grant-report's handler.rs");
    let emitted_by_report = |metric: &str| handler.contains(&format!("\"{metric}\""));
    let alarm = |id: &str| template["Resources"][id]["Properties"].clone();

    let incomplete = alarm("ReportPartialOrFailedAlarm");
    let mut watched = Vec::new();
    for query in incomplete["Metrics"].as_array().expect("metric math") {
        let stat = &query["MetricStat"];
        if stat.is_null() {
            continue;
        }
        let metric = stat["Metric"]["MetricName"].as_str().expect("metric");
        assert_eq!(stat["Metric"]["Namespace"], "grantwatch");
        assert_eq!(
            stat["Metric"]["Dimensions"],
            json!([{"Name": "FunctionName", "Value": report}])
        );
        assert!(emitted_by_report(metric), "the report never emits {metric}");
        watched.push(metric.to_string());
    }
    watched.sort();
    assert_eq!(watched, ["Failed", "Partial"]);
    assert_eq!(incomplete["Threshold"], 1);
    assert_eq!(incomplete["AlarmActions"], json!([{"Ref": "AlarmTopic"}]));

    let rules = alarm("ReportRulesLoadFailedAlarm");
    assert_eq!(rules["MetricName"], "RulesLoadFailed");
    assert!(emitted_by_report("RulesLoadFailed"));
    assert_eq!(
        rules["Dimensions"],
        json!([{"Name": "FunctionName", "Value": report}])
    );
    assert_eq!(rules["AlarmActions"], json!([{"Ref": "AlarmTopic"}]));
    // The log-line filter it replaces is gone.
    assert!(resources_of_type(&template, "AWS::Logs::MetricFilter")
        .iter()
        .all(|(id, _)| id.as_str() != "ReportPartialMetricFilter"));
}

/// The Serverless Application Repository metadata names the workspace's
/// version and licence, and files that exist (sam publish uploads them).
#[test]
fn the_serverless_repo_metadata_matches_the_workspace() {
    let template = stack::transformed_template(&stack::template_path(), &[]).expect("transform");
    let app = &template["Metadata"]["AWS::ServerlessRepo::Application"];
    let workspace =
        std::fs::read_to_string(stack::workspace_dir().join("Cargo.toml")).expect("Cargo.toml");
    let field = |name: &str| {
        workspace
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == name).then(|| value.trim().trim_matches('"').to_string())
            })
            .unwrap_or_else(|| panic!("{name} missing from the workspace Cargo.toml"))
    };
    assert_eq!(app["SemanticVersion"], json!(field("version")));
    assert_eq!(app["SpdxLicenseId"], json!(field("license")));
    for file in ["LicenseUrl", "ReadmeUrl"] {
        let relative = app[file]
            .as_str()
            .unwrap_or_else(|| panic!("{file} missing"));
        let path = stack::workspace_dir().join("infra").join(relative);
        assert!(path.is_file(), "{file} {relative} does not exist");
    }
    let description = app["Description"].as_str().expect("Description");
    assert!(!description.is_empty() && description.len() <= 256);
    assert!(app["Name"].as_str().is_some_and(|n| !n.is_empty()));
}

/// Every state of a state machine definition, those inside a Map's
/// ItemProcessor included, by name.
fn states_of(machine: &Value, out: &mut Vec<(String, Value)>) {
    for (name, state) in machine["States"].as_object().expect("States") {
        out.push((name.clone(), state.clone()));
        if let Some(processor) = state.get("ItemProcessor") {
            states_of(processor, out);
        }
    }
}

/// The report fan-out (`ReportFanOut`, docs/fanout.md): off by default; on,
/// the schedule starts the state machine, every Task of which invokes the
/// report function in a mode grant-report takes, every `Next` exists, the
/// Map's failure is caught and still merges, and its role reaches nothing
/// else.
#[test]
fn the_report_fan_out_invokes_only_the_report_function_and_always_merges() {
    let off = full_template();
    assert!(
        off["Resources"].get("ReportFanOutStateMachine").is_none(),
        "off by default"
    );
    assert_eq!(
        off["Resources"]["ReportSchedule"]["Properties"]["Target"]["Arn"],
        json!({"Fn::GetAtt": ["ReportFunction", "Arn"]})
    );

    let on = stack::transformed_template(&stack::template_path(), &[("ReportFanOut", "true")])
        .expect("transform infra/template.yaml");
    let resources = &on["Resources"];
    assert_eq!(
        resources["ReportSchedule"]["Properties"]["Target"]["Arn"],
        json!({"Ref": "ReportFanOutStateMachine"}),
        "the schedule starts the state machine"
    );
    let machine = &resources["ReportFanOutStateMachine"]["Properties"];
    assert_eq!(
        machine["DefinitionSubstitutions"]["ReportFunctionArn"],
        json!({"Fn::GetAtt": ["ReportFunction", "Arn"]})
    );
    let definition = &machine["Definition"];
    let mut states = Vec::new();
    states_of(definition, &mut states);
    let names: BTreeSet<&str> = states.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(definition["StartAt"].as_str().expect("StartAt")));
    let handled = std::fs::read_to_string(
        stack::workspace_dir().join("functions/grant-report/src/fanout.rs"),
    )
    .expect("grant-report's fanout.rs");
    let mut modes = BTreeSet::new();
    for (name, state) in &states {
        let catches = state["Catch"].as_array().into_iter().flatten();
        for next in state
            .get("Next")
            .into_iter()
            .chain(catches.map(|c| &c["Next"]))
        {
            let next = next.as_str().expect("Next is a name");
            assert!(
                names.contains(next),
                "{name} goes to {next}, which does not exist"
            );
        }
        if state["Type"] == "Task" {
            assert_eq!(
                state["Resource"], "arn:aws:states:::lambda:invoke",
                "{name}"
            );
            assert_eq!(
                state["Parameters"]["FunctionName"], "${ReportFunctionArn}",
                "{name}"
            );
        }
        for payload in [&state["Parameters"]["Payload"], &state["ItemSelector"]] {
            if let Some(mode) = payload["mode"].as_str() {
                assert!(
                    handled.contains(&format!("\"{mode}\" =>")),
                    "grant-report does not take mode {mode}"
                );
                modes.insert(mode.to_string());
            }
        }
    }
    assert_eq!(
        modes,
        BTreeSet::from(["plan".into(), "inventory-shard".into(), "merge".into()])
    );
    let map = &definition["States"]["Shards"];
    assert_eq!(map["Type"], "Map");
    assert_eq!(
        map["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "DISTRIBUTED"
    );
    assert_eq!(
        map["ItemProcessor"]["ProcessorConfig"]["ExecutionType"], "STANDARD",
        "a shard may take 15 minutes"
    );
    assert_eq!(map["ToleratedFailurePercentage"], 0);
    assert_eq!(map["Next"], "Merge");
    assert_eq!(
        map["Catch"],
        json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.plan.shards_failed", "Next": "Merge"}]),
        "a failed shard still merges, and the merge is told why"
    );
    assert_eq!(
        definition["States"]["Merge"]["Parameters"]["Payload"]["shards_failed.$"],
        "$.plan.shards_failed"
    );

    // The role: the report function, the run files, its own child executions.
    let statements = resources["ReportFanOutRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_array()
        .expect("statements")
        .clone();
    let name = machine["StateMachineName"]["Fn::Sub"]
        .as_str()
        .expect("a fixed name");
    for statement in &statements {
        let resource = statement["Resource"].to_string();
        assert!(!resource.contains("\"*\""), "no Resource *: {statement}");
        match statement["Action"].as_str().unwrap_or_default() {
            "lambda:InvokeFunction" => assert!(resource.contains("ReportFunction")),
            "s3:GetObject" => assert!(
                resource.contains("${ReportBucket.Arn}/runs/*"),
                "{resource}"
            ),
            "states:StartExecution" => assert!(
                resource.ends_with(&format!(":stateMachine:{name}\"}}")),
                "{resource}"
            ),
            _ => assert_eq!(
                statement["Action"],
                json!(["states:DescribeExecution", "states:StopExecution"])
            ),
        }
    }
    assert_eq!(statements.len(), 4);
    let alarm = &resources["ReportFanOutFailedAlarm"]["Properties"];
    assert_eq!(alarm["AlarmActions"], json!([{"Ref": "AlarmTopic"}]));
}
