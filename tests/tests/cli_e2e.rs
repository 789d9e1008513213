//! The `grantwatch` CLI against moto: `explain` answers the article's
//! question (exit 0 when a grant allows it, 1 when none does, with the key
//! policy), and `report --out` writes the report files from a terminal.

use grantwatch_e2e::moto::{Moto, ACCOUNT};
use grantwatch_e2e::runtime_api::function_binary;
use serde_json::Value;
use std::process::Output;

async fn grantwatch(moto: &Moto, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env = moto.lambda_env();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(function_binary("grantwatch"))
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .expect("run grantwatch")
    })
    .await
    .expect("grantwatch task")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The article's key: Lambda's grant to the function role's session.
async fn article_key(moto: &Moto) -> (String, String) {
    let kms = moto.kms().await;
    let key = kms.create_key().send().await.expect("key");
    let key_arn = key
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("arn")
        .to_string();
    kms.create_alias()
        .alias_name("alias/lambda-env")
        .target_key_id(&key_arn)
        .send()
        .await
        .expect("alias");
    let grant = kms
        .create_grant()
        .key_id(&key_arn)
        .grantee_principal(format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/test-role-cu5o193j/test"
        ))
        .retiring_principal("lambda.us-east-1.amazonaws.com")
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .operations(aws_sdk_kms::types::GrantOperation::RetireGrant)
        .constraints(
            aws_sdk_kms::types::GrantConstraints::builder()
                .encryption_context_equals(
                    "aws:lambda:FunctionArn",
                    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:test"),
                )
                .build(),
        )
        .send()
        .await
        .expect("grant");
    (key_arn, grant.grant_id().expect("grant id").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_finds_the_grant_behind_a_roles_access_and_says_when_there_is_none() {
    let moto = Moto::start().await;
    let (_key_arn, grant_id) = article_key(&moto).await;
    let role = format!("arn:aws:iam::{ACCOUNT}:role/test-role-cu5o193j");

    // The role itself: its session holds the grant.
    let allowed = grantwatch(
        &moto,
        &[
            "explain",
            "--key",
            "alias/lambda-env",
            "--principal",
            &role,
            "--operation",
            "Decrypt",
        ],
    )
    .await;
    let stdout = text(&allowed.stdout);
    assert_eq!(
        allowed.status.code(),
        Some(0),
        "{stdout}{}",
        text(&allowed.stderr)
    );
    assert!(stdout.contains(&grant_id), "{stdout}");
    assert!(stdout.contains("aws:lambda:FunctionArn"), "{stdout}");

    // An operation the grant does not allow.
    let encrypt = grantwatch(
        &moto,
        &[
            "explain",
            "--key",
            "alias/lambda-env",
            "--principal",
            &role,
            "--operation",
            "Encrypt",
        ],
    )
    .await;
    assert_eq!(encrypt.status.code(), Some(1), "{}", text(&encrypt.stdout));

    // Another role: no grant; the key policy's statements on the account decide.
    let other = format!("arn:aws:iam::{ACCOUNT}:role/someone-else");
    let none = grantwatch(
        &moto,
        &[
            "explain",
            "--key",
            "alias/lambda-env",
            "--principal",
            &other,
        ],
    )
    .await;
    let stdout = text(&none.stdout);
    assert_eq!(
        none.status.code(),
        Some(1),
        "{stdout}{}",
        text(&none.stderr)
    );
    assert!(!stdout.contains(&grant_id), "{stdout}");
    assert!(
        stdout.contains(&format!("arn:aws:iam::{ACCOUNT}:root")),
        "the key policy's account statement: {stdout}"
    );

    // A key that does not exist: an error, not a panic.
    let missing = grantwatch(
        &moto,
        &["explain", "--key", "alias/nope", "--principal", &role],
    )
    .await;
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stdout));
    assert!(!text(&missing.stderr).contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_from_a_terminal_writes_the_four_files() {
    let moto = Moto::start().await;
    let (key_arn, grant_id) = article_key(&moto).await;
    let out = std::env::temp_dir().join(format!("grantwatch-cli-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.display().to_string();

    let run = grantwatch(
        &moto,
        &["report", "--out", &out_arg, "--regions", "us-east-1"],
    )
    .await;
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    assert!(
        text(&run.stderr).contains("us-east-1"),
        "progress per account-region on the terminal"
    );
    for file in ["report.json", "grants.csv", "report.html", "summary.md"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("read"))
            .expect("json");
    let key = report["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k.to_string().contains(&key_arn))
        .expect("the key is in the report");
    assert_eq!(key["grants"].as_array().map(Vec::len), Some(1));
    assert_eq!(key["grants"][0]["grant_id"], grant_id.as_str());
    let csv = std::fs::read_to_string(out.join("grants.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 2, "a header and one grant: {csv}");
    let _ = std::fs::remove_dir_all(&out);
}
