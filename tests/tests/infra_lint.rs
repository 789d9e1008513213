//! Every template of `infra/` passes cfn-lint and `sam validate --lint`
//! (offline). They cover what moto accepts without creating: the Scheduler
//! schedule, alarms, EventInvokeConfig, bucket/queue/bus policies.
//! The tools come from the project's venv (`make deploy-tools`).

use grantwatch_e2e::stack;
use std::path::PathBuf;
use std::process::Command;

fn templates() -> Vec<PathBuf> {
    let infra = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra");
    let mut templates: Vec<PathBuf> = std::fs::read_dir(&infra)
        .expect("infra/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    templates.sort();
    for expected in ["template.yaml", "member-account.yaml"] {
        assert!(
            templates.iter().any(|t| t.ends_with(expected)),
            "infra/{expected} missing: {templates:?}"
        );
    }
    templates
}

fn tool(name: &str) -> PathBuf {
    let path = stack::venv_dir().join("bin").join(name);
    assert!(
        path.exists(),
        "{} missing: run `make deploy-tools` (installs SAM CLI and cfn-lint into the venv)",
        path.display()
    );
    path
}

fn run(mut command: Command) -> (bool, String) {
    let output = command.output().expect("run linter");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn cfn_lint_passes_on_every_template() {
    for template in templates() {
        let mut command = Command::new(tool("cfn-lint"));
        command.arg(&template);
        let (ok, text) = run(command);
        assert!(ok, "cfn-lint {}:\n{text}", template.display());
    }
}

#[test]
fn sam_validate_lint_passes_on_every_template() {
    for template in templates() {
        let mut command = Command::new(tool("sam"));
        command
            .args([
                "validate",
                "--lint",
                "--region",
                stack::REGION,
                "--template-file",
            ])
            .arg(&template)
            .env("SAM_CLI_TELEMETRY", "0");
        let (ok, text) = run(command);
        assert!(ok, "sam validate --lint {}:\n{text}", template.display());
        assert!(text.contains("is a valid SAM Template"), "{text}");
    }
}

#[test]
fn cfn_lint_catches_a_broken_template() {
    // The linters are not a rubber stamp: a rule targeting an unknown
    // resource and a bad runtime fail.
    let broken =
        std::env::temp_dir().join(format!("grantwatch-broken-{}.yaml", std::process::id()));
    let text = std::fs::read_to_string(stack::template_path())
        .expect("template")
        .replace("Runtime: provided.al2023", "Runtime: provided.al2099")
        .replace(
            "Arn: !GetAtt WatcherFunction.Arn",
            "Arn: !GetAtt NoSuchFunction.Arn",
        );
    std::fs::write(&broken, text).expect("write broken template");
    let mut command = Command::new(tool("cfn-lint"));
    command.arg(&broken);
    let (ok, output) = run(command);
    let _ = std::fs::remove_file(&broken);
    assert!(!ok, "cfn-lint accepted a broken template:\n{output}");
    assert!(output.contains("NoSuchFunction"), "{output}");
}

/// checkov (policy-as-code), from its own venv (`.venv/policy`, `make lint`).
fn checkov() -> Command {
    let path = stack::venv_dir().join("policy/bin/checkov");
    assert!(
        path.exists(),
        "{} missing: run `make lint` (installs checkov into .venv/policy)",
        path.display()
    );
    let mut command = Command::new(path);
    command.args([
        "--framework",
        "cloudformation",
        "--compact",
        "--quiet",
        "--skip-download",
    ]);
    command
}

#[test]
fn checkov_passes_with_every_suppression_justified() {
    let mut command = checkov();
    command
        .arg("--directory")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra"));
    let (ok, text) = run(command);
    assert!(ok, "checkov infra/:\n{text}");
    // Every suppression carries its reason.
    for template in templates() {
        let text = std::fs::read_to_string(&template).expect("template");
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim_start().starts_with("- id: CKV") {
                let comment = lines.peek().map(|l| l.trim_start()).unwrap_or_default();
                assert!(
                    comment.starts_with("comment: \"") && comment.len() > 40,
                    "{}: suppression without a reason: {line}",
                    template.display()
                );
            }
        }
    }
}

#[test]
fn checkov_catches_what_the_suppressions_hide() {
    // Without its suppressions the template fails: checkov is not a rubber stamp.
    let dir = std::env::temp_dir().join(format!("grantwatch-checkov-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let text = std::fs::read_to_string(stack::template_path())
        .expect("template")
        .replace("      checkov:\n", "      checkov-off:\n");
    std::fs::write(dir.join("template.yaml"), text).expect("write");
    let mut command = checkov();
    command.arg("--directory").arg(&dir);
    let (ok, output) = run(command);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!ok, "checkov accepted the unsuppressed template:\n{output}");
    assert!(output.contains("CKV_AWS_26"), "{output}");
}
