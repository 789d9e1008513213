//! `infra/samconfig.py`, which `make deploy` runs: guided answers left empty
//! are dropped (SAM would resend them and reset a value set once), the
//! unattended deploy takes its parameters only from the committed file and
//! never asks, the build's architecture reaches the deploy, and a deploy
//! that would send both alert recipients empty is refused. `sam` is a
//! stand-in that records its arguments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/samconfig.py")
}

struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(label: &str, config: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!(
            "grantwatch-samconfig-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).expect("temp dir");
        std::fs::write(dir.join("samconfig.toml"), config).expect("config");
        let sam = dir.join("bin/sam");
        std::fs::write(
            &sam,
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$(dirname \"$0\")/../sam-args\"\n",
        )
        .expect("sam stand-in");
        Command::new("chmod")
            .arg("+x")
            .arg(&sam)
            .status()
            .expect("chmod");
        Sandbox { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("python3")
            .arg(script())
            .args(args)
            .arg("--config")
            .arg(self.dir.join("samconfig.toml"))
            .env("PATH", path)
            .output()
            .expect("python3")
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.dir.join("samconfig.toml")).expect("config")
    }

    fn sam_args(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("sam-args"))
            .expect("sam ran")
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const GUIDED: &str = r#"version = 0.1
[default.global.parameters]
stack_name = "grantwatch"
[default.deploy.parameters]
region = "eu-west-1"
capabilities = "CAPABILITY_IAM"
parameter_overrides = "Architecture=\"x86_64\" AlertEmail=\"\" SlackWebhookSecretArn=\"arn:aws:secretsmanager:eu-west-1:111122223333:secret:slack-AbCdEf\" ReportScheduleExpression=\"cron(0 7 ? * MON *)\" ReportRegions=\"\""
"#;

#[test]
fn empty_guided_answers_are_dropped_and_the_rest_kept() {
    let sandbox = Sandbox::new("strip", GUIDED);
    let out = sandbox.run(&["strip-empty"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = sandbox.config();
    assert!(!config.contains("AlertEmail"), "{config}");
    assert!(!config.contains("ReportRegions"), "{config}");
    assert!(config.contains("slack-AbCdEf") && config.contains("cron(0 7 ? * MON *)"));
    let arch = sandbox.run(&["get", "Architecture", "--default", "arm64"]);
    assert_eq!(String::from_utf8_lossy(&arch.stdout).trim(), "x86_64");
}

#[test]
fn unattended_deploy_never_asks_and_sends_no_empty_value() {
    let sandbox = Sandbox::new("unattended", GUIDED);
    let out = sandbox.run(&["deploy", "--unattended", "--arch", "x86_64"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = sandbox.sam_args();
    assert_eq!(args[..3], ["deploy", "--config-env", "default"]);
    for flag in ["--no-confirm-changeset", "--no-fail-on-empty-changeset"] {
        assert!(args.iter().any(|a| a == flag), "{args:?}");
    }
    assert!(!args.iter().any(|a| a == "--guided"), "{args:?}");
    let overrides = &args[args
        .iter()
        .position(|a| a == "--parameter-overrides")
        .expect("overrides")
        + 1];
    assert!(overrides.contains("Architecture=\"x86_64\""), "{overrides}");
    assert!(
        overrides.contains("ReportScheduleExpression=\"cron(0 7 ? * MON *)\""),
        "{overrides}"
    );
    assert!(
        !overrides.contains("AlertEmail"),
        "an empty value would reset it: {overrides}"
    );
}

#[test]
fn unattended_without_a_committed_target_fails_instead_of_prompting() {
    let sandbox = Sandbox::new("no-target", "version = 0.1\n");
    let out = sandbox.run(&["deploy", "--unattended"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs region and stack_name"));
    assert!(!sandbox.dir.join("sam-args").exists(), "sam never ran");
}

#[test]
fn a_deploy_sending_both_recipients_empty_is_refused() {
    let sandbox = Sandbox::new(
        "recipients",
        "version = 0.1\n[default.deploy.parameters]\nparameter_overrides = \"AlertEmail=\\\"\\\" SlackWebhookSecretArn=\\\"\\\"\"\n",
    );
    let out = sandbox.run(&["check-recipient"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("alerts would go nowhere"));
    let ok = Sandbox::new("recipients-ok", GUIDED).run(&["check-recipient"]);
    assert!(ok.status.success());
}
