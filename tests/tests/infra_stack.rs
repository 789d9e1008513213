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
    assert!(statements
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
    let report = stack.function_env(REPORT);
    assert_eq!(env_value(&report, "SLACK_WEBHOOK_SECRET_ARN"), secret);
    assert_eq!(env_value(&report, "REPORT_REGIONS"), "us-east-1,eu-west-1");
    assert_eq!(env_value(&report, "REPORT_ACCOUNTS"), "ORG");
    assert_eq!(env_value(&report, "MEMBER_ROLE_NAME"), "gw-reader");
    assert_eq!(env_value(&report, "MEMBER_ROLE_EXTERNAL_ID"), "ext-123");
    assert_eq!(env_value(&report, "LISTGRANTS_RATE_PER_SECOND"), "10");
    assert_eq!(env_value(&report, "MIN_ALERT_SEVERITY"), "high");

    // With every option set, the template sets exactly the variables each
    // function's code reads (Lambda's own AWS_* variables aside).
    for function in [WATCHER, REPORT] {
        let binary = stack.template_resource(function).expect("function")["Metadata"]
            ["BuildProperties"]["Binary"]
            .as_str()
            .expect("BuildProperties.Binary")
            .to_string();
        let read = variables_read_by(&binary);
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
    if texts.iter().any(|t| t.contains("grantwatch_aws::config")) {
        texts.push(
            std::fs::read_to_string(workspace.join("shared/aws/src/config.rs"))
                .expect("shared settings module"),
        );
    }
    let mut names = BTreeSet::new();
    for text in &texts {
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
    assert!(
        !names.is_empty(),
        "functions/{binary} reads no variable: is the scan broken?"
    );
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
    for (message, severity) in [
        ("critical alert", Some("critical")),
        ("high alert", Some("high")),
        ("medium alert", Some("medium")),
        ("info alert", Some("info")),
        ("alarm notification", None),
    ] {
        let mut publish = sns.publish().topic_arn(&topic).message(message);
        if let Some(severity) = severity {
            publish = publish.message_attributes(
                "severity",
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(severity)
                    .build()
                    .expect("attribute"),
            );
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
        ["alarm notification", "critical alert", "high alert"]
    );
}
