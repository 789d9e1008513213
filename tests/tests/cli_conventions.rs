//! CLI conventions: `explain --output json` against moto, shell completions,
//! `-v`/`-q`, and one name per setting (`--ledger-table` everywhere, with
//! backfill's old `--table` kept as a hidden alias).

use grantwatch_e2e::moto::{Moto, ACCOUNT};
use grantwatch_e2e::runtime_api::function_binary;
use serde_json::Value;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(function_binary("grantwatch"))
        .args(args)
        .env_remove("LEDGER_TABLE")
        .output()
        .expect("run grantwatch")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_json_lists_the_allowing_grant_and_the_policy_when_none() {
    let moto = Moto::start().await;
    let kms = moto.kms().await;
    let key = kms.create_key().send().await.expect("key");
    let key_arn = key
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("arn")
        .to_string();
    let grantee = format!("arn:aws:iam::{ACCOUNT}:role/reader");
    let grant = kms
        .create_grant()
        .key_id(&key_arn)
        .grantee_principal(&grantee)
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .expect("grant");
    let grant_id = grant.grant_id().expect("grant id").to_string();
    let env = moto.lambda_env();
    let explain = |principal: String| {
        let env = env.clone();
        let key_arn = key_arn.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(function_binary("grantwatch"))
                .args(["explain", "--output", "json", "--key", &key_arn])
                .args(["--principal", &principal])
                .env_clear()
                .envs(env)
                .env_remove("LEDGER_TABLE")
                .output()
                .expect("run grantwatch")
        })
    };

    let allowed = explain(grantee.clone()).await.expect("task");
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed.stderr));
    let doc: Value = serde_json::from_slice(&allowed.stdout).expect("one JSON object");
    assert_eq!(doc["allowing"], 1);
    assert_eq!(doc["key_arn"], key_arn.as_str());
    assert_eq!(doc["grants"][0]["grant_id"], grant_id.as_str());
    assert_eq!(doc["key_policy_statements"], serde_json::json!([]));

    let none = explain(format!("arn:aws:iam::{ACCOUNT}:role/other"))
        .await
        .expect("task");
    assert_eq!(none.status.code(), Some(1), "{}", text(&none.stderr));
    let doc: Value = serde_json::from_slice(&none.stdout).expect("one JSON object");
    assert_eq!(doc["allowing"], 0);
    assert!(
        doc["key_policy_statements"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "the account's statement: {doc}"
    );

    // report --output json: the summary on stdout; the regions from
    // REPORT_REGIONS (the setting's one name).
    let out = std::env::temp_dir().join(format!("grantwatch-cli-conv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.display().to_string();
    let report = tokio::task::spawn_blocking(move || {
        Command::new(function_binary("grantwatch"))
            .args(["report", "--out", &out_arg, "--output", "json"])
            .env_clear()
            .envs(env)
            .env_remove("LEDGER_TABLE")
            .env("REPORT_REGIONS", "us-east-1")
            .output()
            .expect("run grantwatch")
    })
    .await
    .expect("task");
    assert_eq!(report.status.code(), Some(0), "{}", text(&report.stderr));
    let summary: Value = serde_json::from_slice(&report.stdout).expect("one JSON object");
    assert_eq!(summary["grants"], 1, "{summary}");
    assert_eq!(summary["keys"], 1, "{summary}");
    assert_eq!(summary["partial"], false);
    assert_eq!(
        summary["files"].as_array().map(Vec::len),
        Some(4),
        "{summary}"
    );
    assert!(out.join("report.html").is_file());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_grantwatch()"),
        ("zsh", "#compdef grantwatch"),
        ("fish", "complete -c grantwatch"),
    ] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in ["classify", "explain", "report", "backfill"] {
            assert!(script.contains(sub), "{shell}: {sub} missing");
        }
    }
    let bad = run(&["completions", "cmd.exe"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn verbose_and_quiet_are_global_and_exclusive() {
    let help = run(&["classify", "--help"]);
    let help = text(&help.stdout);
    assert!(
        help.contains("--verbose") && help.contains("--quiet"),
        "{help}"
    );
    let both = run(&["-v", "-q", "completions", "bash"]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
    let after = run(&["completions", "bash", "-vv"]);
    assert!(after.status.success(), "{}", text(&after.stderr));
}

#[test]
fn one_name_per_setting() {
    for (command, flags) in [
        ("classify", &["--min-severity", "--rules", "--output"][..]),
        ("explain", &["--ledger-table", "--output"][..]),
        ("report", &["--ledger-table", "--regions"][..]),
        (
            "backfill",
            &["--ledger-table", "--min-severity", "--rules"][..],
        ),
    ] {
        let help = text(&run(&[command, "--help"]).stdout);
        for flag in flags {
            assert!(help.contains(flag), "{command} lacks {flag}:\n{help}");
        }
        assert!(
            !help.contains("--table "),
            "{command}: --table is a hidden alias"
        );
    }
    // The old name still works (hidden alias): it is parsed, not rejected.
    let old = run(&[
        "backfill",
        "--table",
        "t",
        "--since",
        "2026-01-02",
        "--until",
        "2026-01-01",
        "x",
    ]);
    assert!(
        !text(&old.stderr).contains("unexpected argument"),
        "{}",
        text(&old.stderr)
    );
}
