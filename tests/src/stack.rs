//! The SAM stack of `infra/`, deployed into a moto_server: the tables,
//! topic, bucket, queues, rules, roles and functions the template creates,
//! with each function's resolved environment (real table name, topic ARN,
//! bucket). End-to-end tests and the demo run the real binaries with that
//! environment, so template and code cannot drift apart.
//!
//! ```ignore
//! # async fn demo() {
//! let moto = grantwatch_e2e::moto::Moto::start().await;
//! let stack = grantwatch_e2e::stack::deploy_template(moto.endpoint(), &[]).unwrap();
//! let env = stack.function_env(grantwatch_e2e::stack::WATCHER);
//! assert!(env.contains_key("LEDGER_TABLE"));
//! # }
//! ```
//!
//! The work is done by `tests/harness/deploy_stack.py` (samtranslator +
//! CloudFormation in moto), run with the venv's Python:
//! `$GRANTWATCH_VENV/bin/python` (the Makefile exports it), else
//! `<workspace>/.venv/bin/python`.

use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Logical id of grant-watcher in `infra/template.yaml`.
pub const WATCHER: &str = "WatcherFunction";
/// Logical id of grant-report in `infra/template.yaml`.
pub const REPORT: &str = "ReportFunction";
/// Region the stacks are deployed to (moto's default, as in `moto.rs`).
pub const REGION: &str = "us-east-1";
/// Stack name of [`deploy_template`].
pub const STACK_NAME: &str = "grantwatch";

/// One resource of the stack, as CloudFormation lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct StackResource {
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Name, ARN or URL, depending on the type (CloudFormation's `Ref`).
    pub physical_id: String,
}

/// A Lambda function of the stack, as Lambda describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct DeployedFunction {
    pub function_name: String,
    pub function_arn: String,
    pub role: String,
    pub runtime: String,
    pub handler: String,
    pub architectures: Vec<String>,
    pub memory_size: Option<u32>,
    pub timeout: Option<u32>,
    /// The function's environment variables, resolved (strings, as in Lambda).
    pub environment: HashMap<String, String>,
}

/// An EventBridge rule of the stack, as EventBridge describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct DeployedRule {
    pub name: String,
    pub arn: String,
    pub event_bus_name: String,
    pub state: String,
    pub event_pattern: Value,
    /// `ListTargetsByRule`'s targets (`Id`, `Arn`, `RoleArn`, `RetryPolicy`, `DeadLetterConfig`...).
    pub targets: Vec<Value>,
}

/// A stack created in moto.
#[derive(Debug, Clone, Deserialize)]
pub struct DeployedStack {
    pub stack_name: String,
    pub stack_id: String,
    pub region: String,
    /// Stack outputs by name.
    pub outputs: HashMap<String, String>,
    /// Created resources by logical id (moto omits the types it accepts but
    /// does not create: Scheduler schedules, alarms, EventInvokeConfig,
    /// bucket and queue policies).
    pub resources: HashMap<String, StackResource>,
    /// Functions by logical id.
    pub functions: HashMap<String, DeployedFunction>,
    /// EventBridge rules by logical id.
    pub rules: HashMap<String, DeployedRule>,
    /// The CloudFormation template moto received: SAM transformed,
    /// conditions resolved with the parameters.
    pub template: Value,
}

impl DeployedStack {
    /// A function by logical id (`WatcherFunction`) or function name.
    pub fn function(&self, id_or_name: &str) -> Option<&DeployedFunction> {
        self.functions.get(id_or_name).or_else(|| {
            self.functions
                .values()
                .find(|f| f.function_name == id_or_name)
        })
    }

    /// The environment variables of a function (logical id or function name).
    /// Panics (test setup) naming the stack's functions when there is no such function.
    pub fn function_env(&self, id_or_name: &str) -> HashMap<String, String> {
        match self.function(id_or_name) {
            Some(function) => function.environment.clone(),
            None => panic!(
                "stack {} has no function {id_or_name}; it has {:?}",
                self.stack_name,
                self.functions.keys().collect::<Vec<_>>()
            ),
        }
    }

    pub fn output(&self, name: &str) -> Option<&str> {
        self.outputs.get(name).map(String::as_str)
    }

    /// Physical id (name, ARN or URL) of a resource by logical id.
    pub fn physical_id(&self, logical_id: &str) -> Option<&str> {
        self.resources
            .get(logical_id)
            .map(|r| r.physical_id.as_str())
    }

    /// A resource's definition in the template moto received.
    pub fn template_resource(&self, logical_id: &str) -> Option<&Value> {
        self.template.get("Resources")?.get(logical_id)
    }

    pub fn ledger_table(&self) -> Option<&str> {
        self.output("LedgerTableName")
    }

    pub fn alert_topic_arn(&self) -> Option<&str> {
        self.output("AlertTopicArn")
    }

    pub fn report_bucket(&self) -> Option<&str> {
        self.output("ReportBucketName")
    }
}

/// `<workspace>/infra/template.yaml`.
pub fn template_path() -> PathBuf {
    workspace_dir().join("infra/template.yaml")
}

/// `<workspace>/infra/member-account.yaml`.
pub fn member_template_path() -> PathBuf {
    workspace_dir().join("infra/member-account.yaml")
}

/// The workspace root (this crate's parent).
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The project's Python venv: `$GRANTWATCH_VENV`, else `<workspace>/.venv`.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("GRANTWATCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join(".venv"))
}

/// Deploy `infra/template.yaml` as stack [`STACK_NAME`] into the moto_server
/// at `moto_endpoint`; `parameters` override the template's defaults.
pub fn deploy_template(
    moto_endpoint: &str,
    parameters: &[(&str, &str)],
) -> Result<DeployedStack, String> {
    deploy_template_file(moto_endpoint, &template_path(), STACK_NAME, parameters)
}

/// Deploy any template of `infra/` (e.g. [`member_template_path`]).
pub fn deploy_template_file(
    moto_endpoint: &str,
    template: &Path,
    stack_name: &str,
    parameters: &[(&str, &str)],
) -> Result<DeployedStack, String> {
    let mut command = deployer_command(template);
    command
        .args(["--endpoint", moto_endpoint, "--stack-name", stack_name])
        .args(["--region", REGION]);
    for (key, value) in parameters {
        command.arg("--parameter").arg(format!("{key}={value}"));
    }
    let stdout = run(command)?;
    serde_json::from_str(&stdout)
        .map_err(|e| format!("deploy_stack.py printed unexpected JSON: {e}"))
}

/// The CloudFormation template the deployer would send to moto for these
/// parameters (SAM transformed, conditions resolved), without deploying it.
pub fn transformed_template(template: &Path, parameters: &[(&str, &str)]) -> Result<Value, String> {
    let mut command = deployer_command(template);
    command
        .args(["--endpoint", "http://unused.invalid", "--print-template"])
        .args(["--region", REGION]);
    for (key, value) in parameters {
        command.arg("--parameter").arg(format!("{key}={value}"));
    }
    let stdout = run(command)?;
    serde_json::from_str(&stdout)
        .map_err(|e| format!("deploy_stack.py printed unexpected JSON: {e}"))
}

fn deployer_command(template: &Path) -> Command {
    let python = venv_dir().join("bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness/deploy_stack.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg("--template")
        .arg(template)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null());
    command
}

fn run(mut command: Command) -> Result<String, String> {
    let output = command.output().map_err(|e| {
        format!(
            "cannot run {:?} ({e}); run `make venv` first",
            command.get_program()
        )
    })?;
    if !output.status.success() {
        return Err(format!(
            "deploy_stack.py failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("deploy_stack.py printed non-UTF-8: {e}"))
}
