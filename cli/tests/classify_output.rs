//! `grantwatch classify --output asff|ocsf` on the fixture corpus: every
//! line is a valid ASFF finding (the format's required fields and types,
//! checked by `render::asff::validate`) or an OCSF Detection Finding, and
//! the formats and `--render` cannot be combined.

use grantwatch_core::render::asff;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/events")
        .join(name)
}

fn classify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantwatch"))
        .arg("classify")
        .args(["--today", "2026-11-28"])
        .args(args)
        .output()
        .expect("run grantwatch")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

const FILES: [&str; 4] = [
    "manual-sdk-cross-account-critical.json",
    "lambda-create-grant.json",
    "retire-null-params.json",
    "access-denied.json",
];

#[test]
fn asff_output_is_valid_security_hub_findings() {
    let paths: Vec<String> = FILES
        .iter()
        .map(|f| fixture(f).display().to_string())
        .collect();
    let mut args = vec!["--output", "asff"];
    args.extend(paths.iter().map(String::as_str));
    let out = classify(&args);
    let findings = json_lines(&out);
    let verdicts = json_lines(&classify(
        &paths.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(findings.len(), verdicts.len(), "one finding per verdict");
    for f in &findings {
        asff::validate(f).unwrap_or_else(|e| panic!("{e}: {f}"));
    }
    let critical = &findings[0];
    assert_eq!(critical["Severity"]["Label"], "CRITICAL");
    assert!(critical["Id"]
        .as_str()
        .is_some_and(|id| id.starts_with("grantwatch/")));
    assert!(
        findings.iter().any(|f| f["RecordState"] == "ARCHIVED"),
        "the retire archives"
    );
    assert!(findings
        .iter()
        .any(|f| f["Severity"]["Label"] == "INFORMATIONAL"));
}

#[test]
fn ocsf_output_is_detection_findings() {
    let path = fixture("manual-sdk-cross-account-critical.json");
    let out = classify(&["--output", "ocsf", &path.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = json_lines(&out);
    assert!(!findings.is_empty());
    for f in &findings {
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["type_uid"], 200401);
        assert_eq!(f["severity_id"], 5);
        assert!(f["finding_info"]["uid"].is_string() && f["finding_info"]["title"].is_string());
        assert!(f["time"].is_i64());
    }
}

#[test]
fn output_and_render_are_exclusive_and_formats_are_named() {
    let path = fixture("lambda-create-grant.json").display().to_string();
    let both = classify(&["--output", "asff", "--render", "slack", &path]);
    assert_eq!(both.status.code(), Some(2));
    let bad = classify(&["--output", "xml", &path]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("json, asff, ocsf"));
}
