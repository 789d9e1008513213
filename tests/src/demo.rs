//! `make demo`: a scripted week in the life of an account, played through
//! the real binaries against moto, printed as a user would see it.
//!
//! The template is deployed into moto exactly as the end-to-end tests do,
//! keys and aliases are created, and each step first performs the real KMS
//! call in the emulator (so the grant really exists, or is really gone),
//! then hands the CloudTrail record of that call (from
//! `tests/fixtures/demo/`) to `grant-watcher` behind the Runtime API. At the
//! end `grant-report` writes the weekly report; everything the "users"
//! received is saved under the output directory.

use crate::moto::{Moto, SnsDelivery, SnsInbox, ACCOUNT, REGION};
use crate::runtime_api::{function_binary, Function, FunctionConfig};
use crate::slack_stub::SlackStub;
use crate::stack::{self, DeployedStack};
use grantwatch_core::render::text;
use grantwatch_core::render::SnsMessage;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to do, and where to write.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub out_dir: PathBuf,
    /// Render report.html and one Slack message to PNG with headless Chromium.
    pub screenshots: bool,
}

/// What the week produced, for the caller (and the demo's own test).
#[derive(Debug, Default)]
pub struct DemoOutcome {
    pub steps: Vec<StepOutcome>,
    /// Every SNS message, as received through the SQS subscription.
    pub sns: Vec<SnsDelivery>,
    /// Every webhook payload the Slack stand-in accepted.
    pub slack: Vec<Value>,
    /// Files written under the output directory.
    pub files: Vec<PathBuf>,
}

/// One step of the week and what it caused.
#[derive(Debug)]
pub struct StepOutcome {
    pub fixture: &'static str,
    pub title: &'static str,
    /// The watcher's answer (`Ok` payload or its error type).
    pub result: Result<Value, String>,
    pub sns: usize,
    pub slack: usize,
}

/// Which KMS call a step performs in the emulator before its event.
enum KmsCall {
    CreateGrant {
        grantee: &'static str,
        retiring: Option<&'static str>,
        operations: &'static [&'static str],
        /// (key, value) pairs of EncryptionContextEquals / Subset.
        equals: &'static [(&'static str, &'static str)],
        subset: &'static [(&'static str, &'static str)],
        name: Option<&'static str>,
    },
    /// Retire the grant an earlier step created (by its fixture name).
    RetireGrant { created_by: &'static str },
    /// A call that changes nothing (dry run, access denied).
    None,
}

struct Step {
    day: &'static str,
    time: &'static str,
    fixture: &'static str,
    key_alias: &'static str,
    title: &'static str,
    call: KmsCall,
}

// `{{ACCOUNT}}`/`{{REGION}}` in grantees are filled like the events.
const WEEK: &[Step] = &[
    Step {
        day: "Monday",
        time: "2026-11-23T09:12:04Z",
        fixture: "01-lambda-creates-grant",
        key_alias: "alias/lambda-env",
        title: "Dana saves an encrypted environment variable on the orders-api function; Lambda creates a grant for the function's role",
        call: KmsCall::CreateGrant {
            grantee: "arn:aws:sts::{{ACCOUNT}}:assumed-role/orders-api-role-cu5o193j/orders-api",
            retiring: Some("lambda.{{REGION}}.amazonaws.com"),
            operations: &["Decrypt", "RetireGrant"],
            equals: &[("aws:lambda:FunctionArn", "arn:aws:lambda:{{REGION}}:{{ACCOUNT}}:function:orders-api")],
            subset: &[],
            name: Some("orders-api/8135ba14-4a6f-495a-8b59-80730abb9fa2"),
        },
    },
    Step {
        day: "Monday",
        time: "2026-11-23T09:40:31Z",
        fixture: "02-person-retires-lambda-grant",
        key_alias: "alias/lambda-env",
        title: "Bob tidies up: `aws kms retire-grant` on that grant (the article's experiment)",
        call: KmsCall::RetireGrant { created_by: "01-lambda-creates-grant" },
    },
    Step {
        day: "Tuesday",
        time: "2026-11-24T10:05:12Z",
        fixture: "03-ebs-creates-grant",
        key_alias: "alias/ebs-volumes",
        title: "EC2 attaches an encrypted EBS volume",
        call: KmsCall::CreateGrant {
            grantee: "{{ACCOUNT}}:aws:ec2-infrastructure:vol-0a1b2c3d4e5f60718",
            retiring: None,
            operations: &["Decrypt"],
            equals: &[],
            subset: &[("aws:ebs:id", "vol-0a1b2c3d4e5f60718")],
            name: None,
        },
    },
    Step {
        day: "Tuesday",
        time: "2026-11-24T18:30:45Z",
        fixture: "04-ebs-retires-grant",
        key_alias: "alias/ebs-volumes",
        title: "The volume is detached; EC2 retires its grant",
        call: KmsCall::RetireGrant { created_by: "03-ebs-creates-grant" },
    },
    Step {
        day: "Tuesday",
        time: "2026-11-24T11:20:00Z",
        fixture: "05-rds-creates-grant",
        key_alias: "alias/rds-data",
        title: "RDS creates an encrypted database instance",
        call: KmsCall::CreateGrant {
            grantee: "rds.{{REGION}}.amazonaws.com",
            retiring: Some("rds.{{REGION}}.amazonaws.com"),
            operations: &[
                "Decrypt",
                "GenerateDataKeyWithoutPlaintext",
                "ReEncryptFrom",
                "ReEncryptTo",
                "CreateGrant",
                "RetireGrant",
                "DescribeKey",
            ],
            equals: &[],
            subset: &[("aws:rds:db-id", "db-ORDERSPRIMARY01")],
            name: None,
        },
    },
    Step {
        day: "Tuesday",
        time: "2026-11-24T11:42:10Z",
        fixture: "06-dynamodb-creates-grant",
        key_alias: "alias/dynamodb-data",
        title: "DynamoDB encrypts the orders table with a customer managed key",
        call: KmsCall::CreateGrant {
            grantee: "dynamodb.{{REGION}}.amazonaws.com",
            retiring: Some("dynamodb.{{REGION}}.amazonaws.com"),
            operations: &[
                "Decrypt",
                "Encrypt",
                "GenerateDataKey",
                "GenerateDataKeyWithoutPlaintext",
                "ReEncryptFrom",
                "ReEncryptTo",
                "DescribeKey",
                "CreateGrant",
                "RetireGrant",
            ],
            equals: &[],
            subset: &[
                ("aws:dynamodb:tableName", "orders"),
                ("aws:dynamodb:subscriberId", "{{ACCOUNT}}"),
            ],
            name: None,
        },
    },
    Step {
        day: "Wednesday",
        time: "2026-11-25T16:03:27Z",
        fixture: "07-person-grants-other-account",
        key_alias: "alias/payments",
        title: "Bob gives a partner account unconstrained, re-delegating access to the payments key",
        call: KmsCall::CreateGrant {
            grantee: "arn:aws:iam::444455556666:root",
            retiring: None,
            operations: &["Decrypt", "Encrypt", "GenerateDataKey", "CreateGrant"],
            equals: &[],
            subset: &[],
            name: Some("temp-access-for-<partner>&co"),
        },
    },
    Step {
        day: "Thursday",
        time: "2026-11-26T08:15:00Z",
        fixture: "08-dry-run-probe",
        key_alias: "alias/payments",
        title: "Carol probes with a dry-run CreateGrant",
        call: KmsCall::None,
    },
    Step {
        day: "Thursday",
        time: "2026-11-26T08:16:40Z",
        fixture: "09-denied-create-grant",
        key_alias: "alias/payments",
        title: "Mallory tries to grant herself Decrypt and is denied",
        call: KmsCall::None,
    },
];

const ALIASES: &[(&str, &str)] = &[
    ("alias/lambda-env", "Lambda environment variables"),
    ("alias/ebs-volumes", "EBS volumes"),
    ("alias/rds-data", "RDS databases"),
    ("alias/dynamodb-data", "DynamoDB tables"),
    ("alias/payments", "Payments data"),
];

/// Play the week. Every process started here stops when the returned
/// future completes or is dropped (e.g. on Ctrl-C).
pub async fn run(options: &DemoOptions) -> Result<DemoOutcome, String> {
    std::fs::create_dir_all(&options.out_dir)
        .map_err(|e| format!("cannot create {}: {e}", options.out_dir.display()))?;
    let mut outcome = DemoOutcome::default();

    say_section("Setting up an emulated AWS account (moto) and deploying infra/template.yaml");
    let moto = Moto::start().await;
    let slack = SlackStub::start().await;
    let secret_arn = create_slack_secret(&moto, &slack.url()).await?;
    let deployed = deploy(&moto, &secret_arn).await?;
    let topic = deployed
        .alert_topic_arn()
        .ok_or("the stack has no AlertTopicArn output")?
        .to_string();
    let inbox = moto.subscribe_queue(&topic).await;
    let keys = create_keys(&moto).await?;
    say(&format!(
        "  stack {} deployed: ledger table {}, alert topic {}, report bucket {}",
        deployed.stack_name,
        deployed.ledger_table().unwrap_or("?"),
        topic,
        deployed.report_bucket().unwrap_or("?")
    ));
    for (alias, key) in &keys {
        say(&format!("  key {alias:<20} {}", key.arn));
    }
    let legacy = create_legacy_grant(&moto, &keys).await?;
    say(&format!(
        "  a grant made long before grantwatch was deployed: {legacy} on alias/payments (the ledger never saw it)"
    ));

    let watcher = start_function(&moto, &deployed, stack::WATCHER, "grant-watcher").await?;

    let mut grant_ids: BTreeMap<&str, String> = BTreeMap::new();
    let mut day = "";
    for (index, step) in WEEK.iter().enumerate() {
        if step.day != day {
            day = step.day;
            say_section(day);
        }
        say(&format!("▶ {}", step.title));
        let key = keys
            .get(step.key_alias)
            .ok_or_else(|| format!("no key {}", step.key_alias))?;
        let grant_id = perform(&moto, key, &step.call, &grant_ids).await?;
        if matches!(step.call, KmsCall::CreateGrant { .. }) {
            grant_ids.insert(step.fixture, grant_id.clone());
        }
        let event = fill_event(step, key, &grant_id, index)?;
        let result = watcher
            .invoke(event)
            .await
            .map_err(|e| format!("{}: {}", e.error_type, e.error_message));
        if !watcher.is_running() {
            return Err(format!(
                "grant-watcher stopped ({}); its output:\n{}",
                watcher
                    .init_error()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "no init error reported".to_string()),
                tail(&watcher.all_output(), 40)
            ));
        }
        let delivered_sns = inbox_receive(&inbox).await;
        let delivered_slack = new_slack_payloads(&slack, outcome.slack.len());
        match &result {
            Ok(answer) if delivered_sns.is_empty() && delivered_slack.is_empty() => {
                say(&format!("  ✓ {}", quiet_step_summary(answer)))
            }
            Ok(_) => {}
            Err(e) => say(&format!("  ✗ the watcher failed: {e}")),
        }
        for message in &delivered_sns {
            print_sns(message);
        }
        for payload in &delivered_slack {
            print_slack(payload);
        }
        outcome.steps.push(StepOutcome {
            fixture: step.fixture,
            title: step.title,
            result,
            sns: delivered_sns.len(),
            slack: delivered_slack.len(),
        });
        outcome.sns.extend(delivered_sns);
        outcome.slack.extend(delivered_slack);
    }
    drop(watcher);

    say_section("Friday: the weekly report");
    let report = start_function(&moto, &deployed, stack::REPORT, "grant-report").await?;
    let input = report_input(&deployed);
    let answer = report
        .invoke_with_timeout(input, Duration::from_secs(120))
        .await
        .map_err(|e| {
            format!(
                "grant-report failed: {}: {}\n{}",
                e.error_type,
                e.error_message,
                tail(&report.all_output(), 40)
            )
        })?;
    say(&format!("  grant-report answered: {}", compact(&answer)));
    let summary_sns = inbox_receive(&inbox).await;
    let summary_slack = new_slack_payloads(&slack, outcome.slack.len());
    for message in &summary_sns {
        print_sns(message);
    }
    for payload in &summary_slack {
        print_slack(payload);
    }
    outcome.sns.extend(summary_sns);
    outcome.slack.extend(summary_slack);
    drop(report);

    let bucket = deployed
        .report_bucket()
        .ok_or("the stack has no ReportBucketName output")?;
    outcome
        .files
        .extend(download_report(&moto, bucket, &options.out_dir).await?);
    outcome.files.push(write_jsonl(
        &options.out_dir.join("sns.jsonl"),
        outcome.sns.iter().map(
            |m| json!({"subject": m.subject, "message": m.message, "attributes": m.attributes}),
        ),
    )?);
    outcome.files.push(write_jsonl(
        &options.out_dir.join("slack.jsonl"),
        outcome.slack.iter().cloned(),
    )?);

    if options.screenshots {
        outcome.files.extend(screenshots(options, &outcome.slack));
    }
    Ok(outcome)
}

struct DemoKey {
    arn: String,
    id: String,
}

async fn create_slack_secret(moto: &Moto, url: &str) -> Result<String, String> {
    let secret = moto
        .secrets()
        .await
        .create_secret()
        .name("grantwatch/slack-webhook")
        .secret_string(url)
        .send()
        .await
        .map_err(|e| format!("cannot create the Slack secret: {e}"))?;
    secret
        .arn()
        .map(str::to_string)
        .ok_or_else(|| "the Slack secret has no ARN".to_string())
}

async fn deploy(moto: &Moto, secret_arn: &str) -> Result<DeployedStack, String> {
    let endpoint = moto.endpoint().to_string();
    let secret_arn = secret_arn.to_string();
    // The deployer is a Python process: keep it off the async runtime.
    tokio::task::spawn_blocking(move || {
        stack::deploy_template(&endpoint, &[("SlackWebhookSecretArn", secret_arn.as_str())])
    })
    .await
    .map_err(|e| format!("deployer task failed: {e}"))?
    .map_err(|e| format!("cannot deploy infra/template.yaml into moto: {e}"))
}

async fn create_keys(moto: &Moto) -> Result<BTreeMap<&'static str, DemoKey>, String> {
    let kms = moto.kms().await;
    let mut keys = BTreeMap::new();
    for (alias, purpose) in ALIASES {
        let created = kms
            .create_key()
            .description(*purpose)
            .send()
            .await
            .map_err(|e| format!("cannot create a key: {e}"))?;
        let meta = created
            .key_metadata()
            .ok_or("CreateKey returned no metadata")?;
        let key = DemoKey {
            arn: meta.arn().unwrap_or_default().to_string(),
            id: meta.key_id().to_string(),
        };
        kms.create_alias()
            .alias_name(*alias)
            .target_key_id(&key.id)
            .send()
            .await
            .map_err(|e| format!("cannot create {alias}: {e}"))?;
        keys.insert(*alias, key);
    }
    Ok(keys)
}

async fn create_legacy_grant(
    moto: &Moto,
    keys: &BTreeMap<&'static str, DemoKey>,
) -> Result<String, String> {
    let key = keys.get("alias/payments").ok_or("no payments key")?;
    let call = KmsCall::CreateGrant {
        grantee: "arn:aws:iam::{{ACCOUNT}}:role/legacy-batch",
        retiring: None,
        operations: &["Decrypt"],
        equals: &[],
        subset: &[],
        name: Some("legacy-batch-2024"),
    };
    perform(moto, key, &call, &BTreeMap::new()).await
}

/// Perform a step's KMS call in moto; returns the grant id concerned.
async fn perform(
    moto: &Moto,
    key: &DemoKey,
    call: &KmsCall,
    grant_ids: &BTreeMap<&str, String>,
) -> Result<String, String> {
    use aws_sdk_kms::types::{GrantConstraints, GrantOperation};
    let kms = moto.kms().await;
    match call {
        KmsCall::CreateGrant {
            grantee,
            retiring,
            operations,
            equals,
            subset,
            name,
        } => {
            let mut request = kms
                .create_grant()
                .key_id(&key.arn)
                .grantee_principal(fill(grantee));
            for op in *operations {
                request = request.operations(GrantOperation::from(*op));
            }
            if let Some(retiring) = retiring {
                request = request.retiring_principal(fill(retiring));
            }
            if let Some(name) = name {
                request = request.name(*name);
            }
            if !equals.is_empty() || !subset.is_empty() {
                let mut constraints = GrantConstraints::builder();
                for (k, v) in *equals {
                    constraints = constraints.encryption_context_equals(*k, fill(v));
                }
                for (k, v) in *subset {
                    constraints = constraints.encryption_context_subset(*k, fill(v));
                }
                request = request.constraints(constraints.build());
            }
            let created = request
                .send()
                .await
                .map_err(|e| format!("CreateGrant failed in moto: {e}"))?;
            created
                .grant_id()
                .map(str::to_string)
                .ok_or_else(|| "CreateGrant returned no grant id".to_string())
        }
        KmsCall::RetireGrant { created_by } => {
            let grant_id = grant_ids
                .get(created_by)
                .ok_or_else(|| format!("no grant from step {created_by}"))?;
            kms.retire_grant()
                .key_id(&key.arn)
                .grant_id(grant_id)
                .send()
                .await
                .map_err(|e| format!("RetireGrant failed in moto: {e}"))?;
            Ok(grant_id.clone())
        }
        KmsCall::None => Ok(String::new()),
    }
}

fn fill(template: &str) -> String {
    template
        .replace("{{ACCOUNT}}", ACCOUNT)
        .replace("{{REGION}}", REGION)
}

/// The step's CloudTrail record with its placeholders filled.
fn fill_event(step: &Step, key: &DemoKey, grant_id: &str, index: usize) -> Result<Value, String> {
    let path = fixtures_dir().join(format!("{}.json", step.fixture));
    let raw = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let event_id = format!("d3m0{index:04}-0000-4000-8000-{:012x}", 0x5eed_0000 + index);
    let filled = fill(&raw)
        .replace("{{KEY_ARN}}", &key.arn)
        .replace("{{KEY_ID}}", &key.id)
        .replace("{{GRANT_ID}}", grant_id)
        .replace("{{EVENT_ID}}", &event_id)
        .replace("{{TIME}}", step.time);
    serde_json::from_str(&filled).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo")
}

async fn start_function(
    moto: &Moto,
    deployed: &DeployedStack,
    logical_id: &str,
    package: &str,
) -> Result<Function, String> {
    let deployed_function = deployed
        .function(logical_id)
        .ok_or_else(|| format!("the stack has no {logical_id}"))?;
    let timeout = Duration::from_secs(u64::from(deployed_function.timeout.unwrap_or(30)));
    let config = FunctionConfig::new(&deployed_function.function_name)
        .envs(deployed_function.environment.clone())
        .envs(moto.lambda_env())
        .timeout(timeout);
    let binary = tokio::task::spawn_blocking({
        let package = package.to_string();
        move || function_binary(&package)
    })
    .await
    .map_err(|e| format!("cannot build {package}: {e}"))?;
    Function::start(&binary, config)
        .await
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

/// The schedule's `Input`, as EventBridge Scheduler hands it over.
fn report_input(deployed: &DeployedStack) -> Value {
    deployed
        .template
        .pointer("/Parameters/ReportScheduleInput/Default")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| json!({}))
}

async fn inbox_receive(inbox: &SnsInbox) -> Vec<SnsDelivery> {
    inbox.receive().await
}

fn new_slack_payloads(slack: &SlackStub, already_seen: usize) -> Vec<Value> {
    slack.accepted().into_iter().skip(already_seen).collect()
}

async fn download_report(
    moto: &Moto,
    bucket: &str,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    let s3 = moto.s3().await;
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| format!("cannot list the report bucket: {e}"))?;
    let mut written = Vec::new();
    for object in listed.contents() {
        let Some(key) = object.key() else { continue };
        let Some(file_name) = key.rsplit('/').next().filter(|n| !n.is_empty()) else {
            continue;
        };
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("cannot read s3://{bucket}/{key}: {e}"))?
            .body
            .collect()
            .await
            .map_err(|e| format!("cannot read s3://{bucket}/{key}: {e}"))?
            .into_bytes();
        let path = out_dir.join(file_name);
        std::fs::write(&path, &body)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        say(&format!("  s3://{bucket}/{key} → {}", path.display()));
        written.push(path);
    }
    if written.is_empty() {
        return Err(format!("grant-report wrote nothing to s3://{bucket}"));
    }
    Ok(written)
}

fn write_jsonl(path: &Path, lines: impl Iterator<Item = Value>) -> Result<PathBuf, String> {
    let mut text = String::new();
    for line in lines {
        let _ = writeln!(text, "{line}");
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path.to_path_buf())
}

fn print_sns(message: &SnsDelivery) {
    let (title, body) = match &message.machine {
        Some(machine) => (
            "  ┌─ SNS to SQS: the verdict as JSON (e-mail gets the text) ───",
            machine_as_text(machine),
        ),
        None => (
            "  ┌─ SNS (e-mail and SQS alike) ───────────────────────────────",
            message.message.clone(),
        ),
    };
    let rendered = SnsMessage {
        subject: message.subject.clone().unwrap_or_default(),
        message: body,
        attributes: message.attributes.clone(),
    };
    say(title);
    for line in text::sns_as_text(&rendered).lines() {
        say(&format!("  │ {line}"));
    }
    say("  └────────────────────────────────────────────────────────────");
}

/// What a machine subscriber reads first in the watcher's JSON: the
/// summary, severity and findings, and the commands it offers.
fn machine_as_text(machine: &Value) -> String {
    let field = |v: &Value, name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut text = format!("kind: {}\n", field(machine, "kind"));
    if let Some(verdict) = machine.get("verdict") {
        let _ = writeln!(text, "summary: {}", field(machine, "summary"));
        let _ = writeln!(text, "verdict.severity: {}", field(verdict, "severity"));
        let codes: Vec<String> = verdict["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| field(f, "code"))
            .collect();
        let _ = writeln!(text, "verdict.findings: {}", codes.join(", "));
    }
    if let Some(count) = machine.get("count") {
        let _ = writeln!(text, "count: {count}");
    }
    for command in machine["commands"].as_array().into_iter().flatten() {
        let _ = writeln!(
            text,
            "{}: {}",
            field(command, "purpose"),
            field(command, "command")
        );
    }
    text
}

fn print_slack(payload: &Value) {
    say("  ┌─ Slack ────────────────────────────────────────────────────");
    for line in text::slack_payload_as_text(payload).lines() {
        say(&format!("  │ {line}"));
    }
    say("  └────────────────────────────────────────────────────────────");
}

/// Why a step raised no alert, from the watcher's answer.
fn quiet_step_summary(answer: &Value) -> String {
    let severity = answer
        .get("severity")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    match answer.get("outcome").and_then(Value::as_str) {
        Some("skipped") => "not a grant event: skipped".to_string(),
        _ if severity == "info" => {
            "recorded in the ledger; severity info (a service doing what it always does): no alert"
                .to_string()
        }
        _ => format!(
            "recorded in the ledger; severity {severity}, below the alert threshold: no alert"
        ),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

fn say(line: &str) {
    println!("{line}");
}

fn say_section(title: &str) {
    println!("\n══ {title} ══");
}

/// report.html and the first high-or-worse Slack alert as PNG, with
/// headless Chromium when it is installed. Missing Chromium is a warning.
fn screenshots(options: &DemoOptions, slack: &[Value]) -> Vec<PathBuf> {
    let Some(chromium) = find_chromium() else {
        say("  (no chromium on PATH: skipping the PNG renderings; `apt-get install chromium`)");
        return Vec::new();
    };
    let mut written = Vec::new();
    let report_html = options.out_dir.join("report.html");
    if report_html.exists() {
        let png = options.out_dir.join("report.png");
        if screenshot(&chromium, &report_html, &png, (1400, 1300)) {
            written.push(png);
        }
    }
    if let Some(payload) = slack
        .iter()
        .find(|p| is_alert_worth_showing(p))
        .or(slack.first())
    {
        let html = options.out_dir.join("slack-message.html");
        if std::fs::write(&html, slack_preview_html(payload)).is_ok() {
            let png = options.out_dir.join("slack-message.png");
            if screenshot(&chromium, &html, &png, (900, 1100)) {
                written.push(png);
            }
        }
    }
    written
}

fn is_alert_worth_showing(payload: &Value) -> bool {
    let header = payload
        .pointer("/blocks/0/text/text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    header.contains("CRITICAL")
}

fn find_chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .filter_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.is_file())
            })
        })
        .next()
}

fn screenshot(chromium: &Path, page: &Path, png: &Path, (width, height): (u32, u32)) -> bool {
    // Chromium needs absolute paths: `file://out/demo/x.html` is no URL.
    let Ok(page) = std::fs::canonicalize(page) else {
        say(&format!("  (cannot find {})", page.display()));
        return false;
    };
    let png = match png.parent().map(std::fs::canonicalize) {
        Some(Ok(dir)) => dir.join(png.file_name().unwrap_or_default()),
        _ => png.to_path_buf(),
    };
    let (page, png) = (page.as_path(), png.as_path());
    let profile =
        std::env::temp_dir().join(format!("grantwatch-demo-chromium-{}", std::process::id()));
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&profile);
    let ok = status.is_ok_and(|s| s.success()) && png.exists();
    if ok {
        say(&format!(
            "  rendered {} → {}",
            page.display(),
            png.display()
        ));
    } else {
        say(&format!(
            "  (could not render {} with chromium)",
            page.display()
        ));
    }
    ok
}

/// A Slack-like HTML page for one Block Kit payload. The payload's text is
/// already escaped for mrkdwn (`&amp;`, `&lt;`, `&gt;`), which is also valid
/// HTML, so it is inserted as is; only mrkdwn's markup is translated.
pub fn slack_preview_html(payload: &Value) -> String {
    let mut body = String::new();
    for block in payload
        .get("blocks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("header") => {
                let _ = write!(body, "<h1>{}</h1>", block_text(block.get("text")));
            }
            Some("section") => {
                if let Some(text) = block.get("text") {
                    let _ = write!(body, "<div class=section>{}</div>", block_text(Some(text)));
                }
                if let Some(fields) = block.get("fields").and_then(Value::as_array) {
                    body.push_str("<div class=fields>");
                    for field in fields {
                        let _ = write!(body, "<div>{}</div>", block_text(Some(field)));
                    }
                    body.push_str("</div>");
                }
            }
            Some("context") => {
                body.push_str("<div class=context>");
                for element in block
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let _ = write!(body, "<span>{}</span>", block_text(Some(element)));
                }
                body.push_str("</div>");
            }
            Some("divider") => body.push_str("<hr>"),
            _ => {}
        }
    }
    format!(
        "<!doctype html><html><head><meta charset=utf-8><style>\
         body{{font:15px/1.46 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;background:#fff;margin:0;padding:24px;color:#1d1c1d}}\
         .msg{{display:flex;gap:12px;max-width:820px}}.avatar{{width:40px;height:40px;border-radius:6px;background:#4a154b;color:#fff;font-weight:700;display:flex;align-items:center;justify-content:center}}\
         .name{{font-weight:900}}.app{{background:#ddd;border-radius:3px;font-size:10px;padding:1px 4px;margin-left:4px;color:#555}}\
         h1{{font-size:18px;margin:6px 0}}.section{{margin:6px 0;white-space:pre-wrap}}\
         .fields{{display:grid;grid-template-columns:1fr 1fr;gap:6px 16px;margin:8px 0}}\
         .context{{color:#616061;font-size:12px;margin:6px 0}}.context span{{margin-right:12px}}\
         code{{font:12px Monaco,Menlo,Consolas,monospace;background:#f6f6f6;border:1px solid #ddd;border-radius:3px;padding:1px 3px;color:#e01e5a}}\
         pre{{font:12px Monaco,Menlo,Consolas,monospace;background:#f8f8f8;border:1px solid #ddd;border-radius:4px;padding:8px;white-space:pre-wrap}}\
         hr{{border:0;border-top:1px solid #ddd}}</style></head><body>\
         <div class=msg><div class=avatar>gw</div><div><div><span class=name>grantwatch</span><span class=app>APP</span></div>{body}</div></div>\
         </body></html>"
    )
}

fn block_text(text: Option<&Value>) -> String {
    let Some(text) = text else {
        return String::new();
    };
    let raw = text.get("text").and_then(Value::as_str).unwrap_or_default();
    if text.get("type").and_then(Value::as_str) == Some("plain_text") {
        // plain_text is not escaped by Slack's rules: escape it for HTML.
        return raw
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
    }
    mrkdwn_to_html(raw)
}

/// The subset of mrkdwn the renderers produce: ```code blocks```,
/// `inline code`, *bold*, _italic_, and line breaks. Any stray `<`/`>`/`"`
/// left by a broken payload is neutralised so the preview cannot inject markup.
fn mrkdwn_to_html(text: &str) -> String {
    let safe = text
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let mut html = String::new();
    for (index, part) in safe.split("```").enumerate() {
        if index % 2 == 1 {
            let _ = write!(html, "<pre>{}</pre>", part.trim_matches('\n'));
        } else {
            html.push_str(&inline_mrkdwn(part));
        }
    }
    html
}

fn inline_mrkdwn(text: &str) -> String {
    let mut out = String::new();
    for (index, part) in text.split('`').enumerate() {
        if index % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(&wrap_pairs(&wrap_pairs(part, '*', "b"), '_', "i"));
        }
    }
    out.replace('\n', "<br>")
}

/// `*a*` → `<b>a</b>` for balanced markers on one line.
fn wrap_pairs(text: &str, marker: char, tag: &str) -> String {
    text.split('\n')
        .map(|line| {
            let parts: Vec<&str> = line.split(marker).collect();
            if parts.len() < 3 || parts.len().is_multiple_of(2) {
                return line.to_string();
            }
            let mut out = String::new();
            for (index, part) in parts.iter().enumerate() {
                if index % 2 == 1 {
                    let _ = write!(out, "<{tag}>{part}</{tag}>");
                } else {
                    out.push_str(part);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_names_an_existing_fixture_and_alias() {
        for step in WEEK {
            let path = fixtures_dir().join(format!("{}.json", step.fixture));
            assert!(path.exists(), "{} is missing", path.display());
            assert!(
                ALIASES.iter().any(|(alias, _)| *alias == step.key_alias),
                "{} uses unknown {}",
                step.fixture,
                step.key_alias
            );
        }
    }

    #[test]
    fn filled_events_are_valid_json_without_placeholders() {
        let key = DemoKey {
            arn: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
            id: "k".into(),
        };
        for (index, step) in WEEK.iter().enumerate() {
            let event = fill_event(step, &key, "g-1", index).expect("fills");
            let text = event.to_string();
            assert!(!text.contains("{{"), "{}: {text}", step.fixture);
            assert_eq!(event["detail"]["eventTime"], step.time);
        }
    }

    #[test]
    fn slack_preview_never_lets_markup_through() {
        let payload = json!({"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "<script>alert(1)</script>"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*bold* `a<b` <img src=x onerror=alert(1)>"}}
        ]});
        let html = slack_preview_html(&payload);
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<img"));
        assert!(html.contains("<b>bold</b>"));
    }
}
