//! grant-report end to end: the compiled binary behind the Runtime API
//! harness, with the environment the SAM template gives it (deployed into
//! moto), against moto (KMS keys, aliases and grants; S3; SNS read back
//! through SQS; STS; Organizations) and the Slack stand-in.

mod report_support;

use aws_sdk_kms::types::{GrantConstraints, GrantOperation};
use grantwatch_e2e::moto::{Moto, SnsInbox};
use grantwatch_e2e::runtime_api::{function_binary, Function, FunctionConfig};
use grantwatch_e2e::securityhub;
use grantwatch_e2e::slack_stub::SlackStub;
use grantwatch_e2e::stack;
use serde_json::{json, Value};
use std::time::Duration;

const ACCOUNT: &str = "123456789012";
const HOSTILE: &str = "<script>alert(1)</script>=cmd|' /C calc'!A0";

struct World {
    moto: Moto,
    slack: SlackStub,
    inbox: SnsInbox,
    bucket: String,
    config: FunctionConfig,
}

impl World {
    async fn new() -> World {
        let moto = Moto::start().await;
        let slack = SlackStub::start().await;
        let secret = moto
            .secrets()
            .await
            .create_secret()
            .name("grantwatch/slack-webhook")
            .secret_string(json!({ "url": slack.url() }).to_string())
            .send()
            .await
            .unwrap();
        let secret_arn = secret.arn().unwrap().to_string();
        let endpoint = moto.endpoint().to_string();
        let deployed = tokio::task::spawn_blocking(move || {
            stack::deploy_template(&endpoint, &[("SlackWebhookSecretArn", secret_arn.as_str())])
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("deploying the template into moto failed: {e}"));
        let env = deployed.function_env(stack::REPORT);
        let bucket = env["REPORT_BUCKET"].clone();
        let inbox = moto.subscribe_queue(&env["ALERT_TOPIC_ARN"]).await;
        let config = FunctionConfig::new("grant-report")
            .envs(env)
            .envs(moto.lambda_env())
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .timeout(Duration::from_secs(120));
        World {
            moto,
            slack,
            inbox,
            bucket,
            config,
        }
    }

    async fn function(&self) -> Function {
        Function::start(&function_binary("grant-report"), self.config.clone())
            .await
            .expect("start grant-report")
    }

    async fn object(&self, key: &str) -> Vec<u8> {
        let out = self
            .moto
            .s3()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }

    /// A variable of the environment the template gives the function.
    fn config_env(&self, name: &str) -> String {
        self.config
            .env
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not in the report's environment"))
    }

    async fn report(&self, date: &str) -> Value {
        serde_json::from_slice(&self.object(&format!("reports/{date}/report.json")).await).unwrap()
    }
}

/// A key with an alias and the grants of the article: one made by Lambda
/// for a function, one made by hand (cross-account, re-delegating, no
/// constraints, a hostile name). Returns (key id, key ARN, grant ids).
async fn key_with_grants(
    kms: &aws_sdk_kms::Client,
    alias: &str,
    account: &str,
) -> (String, String, Vec<String>) {
    let key = kms
        .create_key()
        .description("payments")
        .send()
        .await
        .unwrap();
    let meta = key.key_metadata().unwrap();
    let (key_id, key_arn) = (meta.key_id().to_string(), meta.arn().unwrap().to_string());
    kms.create_alias()
        .alias_name(alias)
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    let lambda = kms
        .create_grant()
        .key_id(&key_id)
        .name("test/8135ba14-4a6f-495a-8b59-80730abb9fa2")
        .grantee_principal(format!(
            "arn:aws:sts::{account}:assumed-role/test-role-cu5o193j/test"
        ))
        .retiring_principal("lambda.us-east-1.amazonaws.com")
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::RetireGrant)
        .constraints(
            GrantConstraints::builder()
                .encryption_context_equals(
                    "aws:lambda:FunctionArn",
                    format!("arn:aws:lambda:us-east-1:{account}:function:test"),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let manual = kms
        .create_grant()
        .key_id(&key_id)
        .name(HOSTILE)
        .grantee_principal("arn:aws:iam::999988887777:root")
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::CreateGrant)
        .send()
        .await
        .unwrap();
    let ids = vec![
        lambda.grant_id().unwrap().to_string(),
        manual.grant_id().unwrap().to_string(),
    ];
    (key_id, key_arn, ids)
}

fn grants_of<'a>(report: &'a Value, key_arn: &str) -> Vec<&'a Value> {
    report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["key_arn"] == key_arn)
        .flat_map(|k| k["grants"].as_array().unwrap())
        .collect()
}

#[tokio::test]
async fn weekly_report_is_stored_diffed_and_announced() {
    let world = World::new().await;
    let kms = world.moto.kms().await;
    let (key_id, key_arn, grant_ids) = key_with_grants(&kms, "alias/payments", ACCOUNT).await;
    // Security Hub on: the report imports its standing grants.
    let function = Function::start(
        &function_binary("grant-report"),
        world
            .config
            .clone()
            .env("SECURITY_HUB_ENABLED", "true")
            .env("SECURITY_HUB_MIN_SEVERITY", "low"),
    )
    .await
    .expect("start grant-report");

    // Week 1.
    let first = function
        .invoke(json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", function.all_output()));
    let date = first["generated_at"].as_str().unwrap()[..10].to_string();
    assert_eq!(first["partial"], false, "{first}");
    let report = world.report(&date).await;
    assert_eq!(report_support::validate(&report), Vec::<String>::new());
    assert!(report["diff"].is_null());
    let grants = grants_of(&report, &key_arn);
    assert_eq!(grants.len(), 2);
    let key = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_arn"] == key_arn)
        .unwrap();
    assert_eq!(key["aliases"], json!(["alias/payments"]));
    assert_eq!(key["manager"], "CUSTOMER");
    let lambda = grants
        .iter()
        .find(|g| g["grant_id"] == grant_ids[0])
        .unwrap();
    assert_eq!(lambda["origin"], "service", "{lambda}");
    assert_eq!(lambda["service"], "lambda");
    let manual = grants
        .iter()
        .find(|g| g["grant_id"] == grant_ids[1])
        .unwrap();
    // No ledger record of its creation: the shape alone cannot tell who made it.
    assert_eq!(manual["origin"], "unknown", "{manual}");
    assert_eq!(manual["name"], HOSTILE);
    assert!(
        ["high", "critical"].contains(&manual["severity"].as_str().unwrap()),
        "{manual}"
    );

    // The grants this test created (the stack's own keys have none) are
    // every grant counted, every CSV row and every HTML row: counted
    // against what exists, not against the report's own summary.
    let total = grant_ids.len();
    assert_eq!(report["summary"]["grants"], total, "{}", report["summary"]);
    let csv = String::from_utf8(world.object(&format!("reports/{date}/grants.csv")).await).unwrap();
    assert_eq!(
        csv.split("\r\n").filter(|l| !l.is_empty()).count(),
        1 + total
    );
    for id in &grant_ids {
        assert!(csv.contains(id.as_str()), "{id} is not in the CSV");
    }
    assert!(csv.contains(&key_id));

    // The SNS summary, read back through SQS: the machine form of the
    // report notice (e-mail subscribers get the text; render::report's
    // tests check it), with a working presigned link.
    let deliveries = world.inbox.receive().await;
    let email = deliveries
        .iter()
        .find(|d| {
            d.subject
                .as_deref()
                .is_some_and(|s| s.starts_with("[grantwatch] KMS grant report"))
        })
        .unwrap_or_else(|| panic!("no report e-mail in {deliveries:?}"));
    assert_eq!(
        email.attributes.get("kind").map(String::as_str),
        Some("report")
    );
    let machine = email
        .machine
        .as_ref()
        .unwrap_or_else(|| panic!("the report notice's machine JSON: {}", email.message));
    assert_eq!(machine["kind"], "report");
    assert_eq!(machine["subject"].as_str(), email.subject.as_deref());
    assert_eq!(machine["summary"]["grants"], report["summary"]["grants"]);
    let link = machine["link"].as_str().expect("link").to_string();
    assert!(link.contains("X-Amz-Signature="), "{link}");
    assert!(link.contains(&format!("reports/{date}/report.html")));
    assert!(
        machine["needs_a_look_total"].as_u64() > Some(0),
        "the new grants need a look: {machine}"
    );
    let html = reqwest::get(&link).await.unwrap().text().await.unwrap();
    assert!(
        html.contains("<table id=\"grant-table\">"),
        "the link opens report.html"
    );

    // Slack: the Block Kit summary with the same link.
    let slack = world.slack.accepted();
    let summary = slack
        .iter()
        .find(|p| {
            p["blocks"][0]["text"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("KMS grant report"))
        })
        .unwrap_or_else(|| panic!("no report in Slack: {slack:?}"));
    assert_eq!(
        summary["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["url"],
        link.as_str()
    );
    assert!(!summary.to_string().contains("<script>"));

    // The page in headless Chromium: renders, every row, no script error.
    let dir = report_support::tempdir("e2e-html");
    let page = dir.join("report.html");
    std::fs::write(
        &page,
        world.object(&format!("reports/{date}/report.html")).await,
    )
    .unwrap();
    let dom = report_support::chromium_dump_dom(&page);
    assert!(dom.contains("data-ready=\"yes\""));
    assert!(!dom.contains("id=\"js-error\""));
    assert_eq!(dom.matches("<tr data-severity=").count(), total);
    if std::env::var_os("GRANTWATCH_SCREENSHOT").is_some() {
        let png =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images/report.png");
        std::fs::create_dir_all(png.parent().unwrap()).unwrap();
        report_support::chromium_screenshot(&page, &png);
    }
    let _ = std::fs::remove_dir_all(&dir);

    // Week 2: one grant added, one revoked; the diff says so.
    let added = kms
        .create_grant()
        .key_id(&key_id)
        .name("ops/temporary")
        .grantee_principal(format!("arn:aws:iam::{ACCOUNT}:user/alice"))
        .operations(GrantOperation::Decrypt)
        .send()
        .await
        .unwrap()
        .grant_id()
        .unwrap()
        .to_string();
    kms.revoke_grant()
        .key_id(&key_id)
        .grant_id(&grant_ids[1])
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = function
        .invoke(json!({"regions": ["us-east-1"]}))
        .await
        .unwrap();
    assert_ne!(second["generated_at"], first["generated_at"]);
    // The second run's own date: the two runs may fall on either side of
    // midnight UTC.
    let report = world
        .report(&second["generated_at"].as_str().unwrap()[..10])
        .await;
    assert_eq!(report_support::validate(&report), Vec::<String>::new());
    let diff = &report["diff"];
    assert_eq!(diff["previous_generated_at"], first["generated_at"]);
    let ids = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .map(|g| g["grant_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&diff["new_grants"]), vec![added.clone()]);
    assert_eq!(ids(&diff["removed_grants"]), vec![grant_ids[1].clone()]);
    assert_eq!(report["trend"].as_array().unwrap().len(), 2);

    // Security Hub: one finding per grant at or above low, under the
    // watcher's ids; the revoked grant's finding is archived, the others
    // stay active.
    let region = key_arn.split(':').nth(3).unwrap();
    let key_uuid = key_arn.rsplit('/').next().unwrap();
    let findings = securityhub::findings(world.moto.endpoint(), region).await;
    let state_of = |grant_id: &str| {
        let id = format!("grantwatch/{ACCOUNT}/{region}/{key_uuid}/{grant_id}");
        findings
            .iter()
            .find(|f| f["Id"] == id.as_str())
            .map(|f| f["RecordState"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no finding {id} in {findings:?}"))
    };
    assert_eq!(state_of(&grant_ids[1]), "ARCHIVED");
    assert_eq!(state_of(&added), "ACTIVE");
    assert!(function.all_output().contains("report findings imported"));
}

/// What this proves: with `accounts: ORG` every account of the
/// organization is in scope, and each member's keys and grants are read
/// with that member's credentials (moto files a key under the account of
/// the credentials that created it). What it cannot prove: moto checks
/// neither a role's trust policy nor its ExternalId, so a wrong trust or
/// ExternalId would pass here. That refusal is tested against a stand-in
/// that enforces the ExternalId (`shared/aws/src/scope.rs`,
/// `member_roles_are_assumed_once_with_the_external_id_and_refusals_are_access_denied`).
#[tokio::test]
async fn an_organization_report_covers_every_account_with_each_members_credentials() {
    let world = World::new().await;
    let config = world.moto.sdk_config().await;
    let org = aws_sdk_organizations::Client::new(&config);
    org.create_organization().send().await.unwrap();
    for name in ["workloads", "data"] {
        org.create_account()
            .account_name(name)
            .email(format!("{name}@example.com"))
            .send()
            .await
            .unwrap();
    }
    let accounts: Vec<String> = org
        .list_accounts()
        .send()
        .await
        .unwrap()
        .accounts()
        .iter()
        .filter_map(|a| a.id().map(str::to_string))
        .collect();
    let members: Vec<String> = accounts
        .iter()
        .filter(|a| a.as_str() != ACCOUNT)
        .cloned()
        .collect();
    assert_eq!(members.len(), 2, "{accounts:?}");

    // One key per member account, created with the member role's credentials.
    let sts = world.moto.sts().await;
    let mut member_keys = Vec::new();
    for member in &members {
        let creds = sts
            .assume_role()
            .role_arn(format!(
                "arn:aws:iam::{member}:role/grantwatch-report-reader"
            ))
            .role_session_name("setup")
            .send()
            .await
            .unwrap()
            .credentials
            .unwrap();
        let member_config = aws_sdk_kms::config::Builder::from(&config)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                creds.access_key_id(),
                creds.secret_access_key(),
                Some(creds.session_token().to_string()),
                None,
                "member",
            ))
            .build();
        let kms = aws_sdk_kms::Client::from_conf(member_config);
        let (_, key_arn, _) = key_with_grants(&kms, "alias/member", member).await;
        assert!(
            key_arn.contains(member.as_str()),
            "moto put the key in {key_arn}"
        );
        member_keys.push(key_arn);
    }

    // The organization is the configured scope: an input may narrow it,
    // never widen it (ScopeRefused).
    let function = Function::start(
        &function_binary("grant-report"),
        world.config.clone().env("REPORT_ACCOUNTS", "ORG"),
    )
    .await
    .expect("start grant-report");
    let outcome = function
        .invoke(json!({"accounts": "ORG"}))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", function.all_output()));
    let report = world
        .report(&outcome["generated_at"].as_str().unwrap()[..10])
        .await;
    assert_eq!(report_support::validate(&report), Vec::<String>::new());
    assert_eq!(report["scope"]["organization"], true);
    let mut scoped: Vec<String> = report["scope"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    scoped.sort();
    let mut expected = accounts.clone();
    expected.sort();
    assert_eq!(scoped, expected);
    assert_eq!(report["partial"], false, "{}", report["coverage"]);
    for (member, key_arn) in members.iter().zip(&member_keys) {
        let grants = grants_of(&report, key_arn);
        assert_eq!(grants.len(), 2, "{member}: {key_arn}");
        let key = report["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| &k["key_arn"] == key_arn)
            .unwrap();
        assert_eq!(&key["account"], member);
    }
}

/// A previous report planted in the bucket (or changed after it was
/// written) cannot hide a grant from the diff: the report records each
/// stored file's SHA-256 in the ledger, finds the mismatch, says
/// `pipeline-tampered` (critical) in the report and in the summary it
/// sends, and diffs against no unverified report. An input naming an
/// account outside the configured scope is refused before anything is read.
#[tokio::test]
async fn a_planted_previous_report_is_caught() {
    let world = World::new().await;
    let kms = world.moto.kms().await;
    let (_, key_arn, grant_ids) = key_with_grants(&kms, "alias/payments", ACCOUNT).await;
    let function = world.function().await;

    // Refused: nothing read, nothing stored, nothing sent.
    let refused = function
        .invoke(json!({"accounts": ["999999999999"]}))
        .await
        .unwrap_err();
    assert_eq!(refused.error_type, "ScopeRefused", "{refused}");
    assert!(refused.error_message.contains("999999999999"));
    let listed = world
        .moto
        .s3()
        .await
        .list_objects_v2()
        .bucket(&world.bucket)
        .prefix("reports/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "nothing stored");

    let first = function
        .invoke(json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", function.all_output()));
    let date = first["generated_at"].as_str().unwrap()[..10].to_string();
    let location = format!("reports/{date}/report.json");
    let stored = world.object(&location).await;

    // The ledger holds the deployment time and each stored file's hash.
    let table = world.config_env("LEDGER_TABLE");
    let dynamodb = world.moto.dynamodb().await;
    let item = |pk: &str, sk: &str| {
        dynamodb
            .get_item()
            .table_name(&table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
            .send()
    };
    let recorded = item("REPORT", &location).await.unwrap().item.unwrap();
    let sha = grantwatch_core::app::report::sha256_hex(&stored);
    assert_eq!(recorded["sha256"].as_s().unwrap(), &sha);
    assert!(item("STACK", "DEPLOYED").await.unwrap().item.is_some());

    // Someone rewrites last week's report so the manual grant looks old:
    // without the hash check the diff would not call it new.
    let mut planted: Value = serde_json::from_slice(&stored).unwrap();
    planted["generated_at"] = json!(format!("{date}T00:00:00Z"));
    world
        .moto
        .s3()
        .await
        .put_object()
        .bucket(&world.bucket)
        .key(&location)
        .body(serde_json::to_vec(&planted).unwrap().into())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let second = function
        .invoke(json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", function.all_output()));
    let report = world
        .report(&second["generated_at"].as_str().unwrap()[..10])
        .await;
    assert_eq!(report_support::validate(&report), Vec::<String>::new());
    let finding = &report["integrity"]["findings"][0];
    assert_eq!(
        finding["code"], "pipeline-tampered",
        "{}",
        report["integrity"]
    );
    assert_eq!(finding["severity"], "critical");
    assert!(finding["message"].as_str().unwrap().contains(&location));
    assert!(
        report["integrity"]["previous"].is_null(),
        "no verified report to diff against"
    );
    assert!(report["diff"].is_null());
    assert_eq!(report["summary"]["pipeline_tampered"], 1);
    assert_eq!(grants_of(&report, &key_arn).len(), grant_ids.len());

    // Alerted: the e-mail's subject and body, and Slack.
    let deliveries = world.inbox.receive().await;
    let email = deliveries
        .iter()
        .find(|d| {
            d.subject
                .as_deref()
                .is_some_and(|s| s.contains("PIPELINE TAMPERED"))
        })
        .unwrap_or_else(|| panic!("no tamper e-mail in {deliveries:?}"));
    let machine = email
        .machine
        .as_ref()
        .expect("the report notice's machine JSON");
    assert_eq!(machine["kind"], "report");
    assert_eq!(machine["summary"]["pipeline_tampered"], 1);
    assert_eq!(
        email.attributes.get("severity").map(String::as_str),
        Some("critical")
    );
    assert!(world
        .slack
        .accepted()
        .iter()
        .any(|p| p.to_string().contains("Pipeline tampered")));
}
