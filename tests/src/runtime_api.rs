//! A Lambda Runtime API (2018-06-01) in the test process, driving a compiled
//! function binary the way Lambda does: the binary long-polls
//! `GET /runtime/invocation/next`, then posts `/response` or `/error`; an
//! init failure posts `/runtime/init/error`.
//!
//! ```no_run
//! # async fn demo() {
//! use grantwatch_e2e::runtime_api::{Function, FunctionConfig};
//! let binary = grantwatch_e2e::runtime_api::function_binary("grant-watcher");
//! let config = FunctionConfig::new("grant-watcher").env("LEDGER_TABLE", "ledger");
//! let function = Function::start(&binary, config).await.expect("start");
//! let outcome = function.invoke(serde_json::json!({"detail": {}})).await;
//! println!("{outcome:?} {:?}", function.stdout_lines());
//! # }
//! ```
//!
//! One invocation at a time per [`Function`] (one execution environment);
//! start several for concurrency. The process is killed on drop.

pub mod http;

use http::{Request, Response};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, Notify};

/// The error a function (or its runtime) reported, as Lambda shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct LambdaError {
    #[serde(rename = "errorType", default)]
    pub error_type: String,
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
}

impl std::fmt::Display for LambdaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for LambdaError {}

/// Error types the harness itself reports (names as Lambda uses them).
pub const TIMED_OUT: &str = "Sandbox.Timedout";
pub const EXITED: &str = "Runtime.ExitError";

/// How to run a function: its name, environment and invocation deadline.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub name: String,
    pub region: String,
    pub account: String,
    pub memory_mb: u32,
    /// Default deadline of one invocation (Lambda's function timeout).
    pub timeout: Duration,
    /// Extra environment (config, AWS endpoint and credentials). The child
    /// gets only this plus the Lambda-provided variables, not the test's env.
    pub env: BTreeMap<String, String>,
}

impl FunctionConfig {
    pub fn new(name: &str) -> FunctionConfig {
        FunctionConfig {
            name: name.to_string(),
            region: "us-east-1".to_string(),
            account: "123456789012".to_string(),
            memory_mb: 128,
            timeout: Duration::from_secs(30),
            env: BTreeMap::new(),
        }
    }

    pub fn env(mut self, name: &str, value: impl Into<String>) -> FunctionConfig {
        self.env.insert(name.to_string(), value.into());
        self
    }

    pub fn envs<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> FunctionConfig {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> FunctionConfig {
        self.timeout = timeout;
        self
    }

    pub fn function_arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account, self.name
        )
    }
}

type Outcome = Result<Value, LambdaError>;

struct Pending {
    request_id: String,
    payload: Value,
    deadline_ms: u128,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Pending>,
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_error: Option<LambdaError>,
}

struct Shared {
    state: Mutex<State>,
    new_invocation: Notify,
    /// Woken on init error or process exit, so `invoke` stops waiting.
    failed: Notify,
    function_arn: String,
}

/// A function process behind its own Runtime API.
pub struct Function {
    shared: Arc<Shared>,
    child: Mutex<Child>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    config: FunctionConfig,
    serial: tokio::sync::Mutex<()>,
    _server: http::Server,
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(1);

impl Function {
    /// Start the Runtime API on a free port and spawn `binary` against it.
    pub async fn start(binary: &Path, config: FunctionConfig) -> std::io::Result<Function> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            new_invocation: Notify::new(),
            failed: Notify::new(),
            function_arn: config.function_arn(),
        });
        let handler_shared = shared.clone();
        let server = http::serve(Arc::new(move |request| {
            let shared = handler_shared.clone();
            Box::pin(async move { route(shared, request).await })
        }))
        .await?;

        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", server.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", config.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/28/[$LATEST]harness")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", &config.region)
            .env("AWS_DEFAULT_REGION", &config.region)
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_rust")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env("TZ", ":UTC")
            .envs(&config.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            capture(out, stdout.clone(), None);
        }
        if let Some(err) = child.stderr.take() {
            // stderr closing means the process is gone: wake any waiter.
            capture(err, stderr.clone(), Some(shared.clone()));
        }
        Ok(Function {
            shared,
            child: Mutex::new(child),
            stdout,
            stderr,
            config,
            serial: tokio::sync::Mutex::new(()),
            _server: server,
        })
    }

    pub fn config(&self) -> &FunctionConfig {
        &self.config
    }

    /// Invoke with the configured timeout.
    pub async fn invoke(&self, payload: Value) -> Result<Value, LambdaError> {
        self.invoke_with_timeout(payload, self.config.timeout).await
    }

    /// Invoke with this invocation's deadline `timeout` from now (sent in
    /// `Lambda-Runtime-Deadline-Ms`). No answer by then (plus a second of
    /// grace) gives `Sandbox.Timedout`; a process that exits gives
    /// `Runtime.ExitError`; an init error is returned as the function
    /// reported it.
    pub async fn invoke_with_timeout(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Result<Value, LambdaError> {
        let _one_at_a_time = self.serial.lock().await;
        let request_id = format!(
            "00000000-0000-4000-8000-{:012}",
            REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let deadline_ms = now_ms() + timeout.as_millis();
        let (sender, receiver) = oneshot::channel();
        {
            let mut state = lock(&self.shared.state);
            if let Some(error) = &state.init_error {
                return Err(error.clone());
            }
            if !self.is_running() {
                return Err(exited("the function process exited"));
            }
            state.waiting.insert(request_id.clone(), sender);
            state.queue.push_back(Pending {
                request_id: request_id.clone(),
                payload,
                deadline_ms,
            });
        }
        self.shared.new_invocation.notify_one();

        let failed = self.shared.failed.notified();
        tokio::pin!(failed);
        let outcome = tokio::select! {
            outcome = receiver => outcome.unwrap_or_else(|_| Err(exited("runtime dropped the invocation"))),
            _ = tokio::time::sleep(timeout + Duration::from_secs(1)) => Err(LambdaError {
                error_type: TIMED_OUT.to_string(),
                error_message: format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
            }),
            _ = &mut failed => {
                let state = lock(&self.shared.state);
                Err(state.init_error.clone().unwrap_or_else(|| exited("the function process exited")))
            }
        };
        let mut state = lock(&self.shared.state);
        state.waiting.remove(&request_id);
        state.queue.retain(|p| p.request_id != request_id);
        outcome
    }

    /// The init error the function posted, if any.
    pub fn init_error(&self) -> Option<LambdaError> {
        lock(&self.shared.state).init_error.clone()
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        matches!(lock(&self.child).try_wait(), Ok(None))
    }

    /// Wait (up to `timeout`) for the process to exit; its exit code.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = lock(&self.child).try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Wait until a stdout line contains `needle` (the output is read by
    /// a background thread, so a line written just before a response may
    /// land a moment after it); false if none does within 10 s.
    pub async fn wait_for_stdout(&self, needle: &str) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if lock(&self.stdout).iter().any(|line| line.contains(needle)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Every line the process wrote to stdout so far (JSON logs, EMF).
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        lock(&self.stderr).clone()
    }

    /// stdout then stderr, for "never in any log" assertions.
    pub fn all_output(&self) -> String {
        let mut all = self.stdout_lines();
        all.extend(self.stderr_lines());
        all.join("\n")
    }

    /// stdout lines that are JSON objects.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout_lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// CloudWatch Embedded Metric Format lines (objects with `_aws`).
    pub fn emf_lines(&self) -> Vec<Value> {
        self.json_lines()
            .into_iter()
            .filter(|line| line.get("_aws").is_some())
            .collect()
    }

    /// Sum of one EMF metric over every EMF line so far.
    pub fn metric_sum(&self, name: &str) -> f64 {
        self.emf_lines()
            .iter()
            .filter_map(|line| line.get(name).and_then(Value::as_f64))
            .sum()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let mut child = lock(&self.child);
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn exited(message: &str) -> LambdaError {
    LambdaError {
        error_type: EXITED.to_string(),
        error_message: message.to_string(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn capture(
    stream: impl std::io::Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
    on_close: Option<Arc<Shared>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(line) => lock(&lines).push(line),
                Err(_) => break,
            }
        }
        if let Some(shared) = on_close {
            shared.failed.notify_waiters();
            shared.failed.notify_one();
        }
    });
}

const PREFIX: &str = "/2018-06-01/runtime";

async fn route(shared: Arc<Shared>, request: Request) -> Response {
    let Some(path) = request.path.strip_prefix(PREFIX) else {
        return Response::new(404, "unknown path");
    };
    match (request.method.as_str(), path) {
        ("GET", "/invocation/next") => next_invocation(&shared).await,
        ("POST", "/init/error") => {
            let error = parse_error(&request);
            lock(&shared.state).init_error = Some(error);
            shared.failed.notify_waiters();
            shared.failed.notify_one();
            Response::json(202, &serde_json::json!({"status": "OK"}))
        }
        ("POST", path) => {
            let Some(rest) = path.strip_prefix("/invocation/") else {
                return Response::new(404, "unknown path");
            };
            let Some((request_id, kind)) = rest.split_once('/') else {
                return Response::new(404, "unknown path");
            };
            let outcome = match kind {
                "response" => Ok(serde_json::from_slice(&request.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&request.body).into_owned())
                })),
                "error" => Err(parse_error(&request)),
                _ => return Response::new(404, "unknown path"),
            };
            let sender = lock(&shared.state).waiting.remove(request_id);
            match sender {
                Some(sender) => {
                    let _ = sender.send(outcome);
                    Response::json(202, &serde_json::json!({"status": "OK"}))
                }
                None => Response::json(
                    400,
                    &serde_json::json!({"errorType": "InvalidRequestID", "errorMessage": "unknown or finished request id"}),
                ),
            }
        }
        _ => Response::new(404, "unknown path"),
    }
}

fn parse_error(request: &Request) -> LambdaError {
    let mut error: LambdaError =
        serde_json::from_slice(&request.body).unwrap_or_else(|_| LambdaError {
            error_type: String::new(),
            error_message: String::from_utf8_lossy(&request.body).into_owned(),
        });
    if error.error_type.is_empty() {
        error.error_type = request
            .header("lambda-runtime-function-error-type")
            .unwrap_or("Unhandled")
            .to_string();
    }
    error
}

async fn next_invocation(shared: &Shared) -> Response {
    loop {
        let notified = shared.new_invocation.notified();
        if let Some(pending) = lock(&shared.state).queue.pop_front() {
            let trace_id = format!(
                "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
                now_ms() / 1000,
                now_ms(),
                now_ms()
            );
            return Response::json(200, &pending.payload)
                .with_header("Lambda-Runtime-Aws-Request-Id", &pending.request_id)
                .with_header(
                    "Lambda-Runtime-Deadline-Ms",
                    &pending.deadline_ms.to_string(),
                )
                .with_header("Lambda-Runtime-Invoked-Function-Arn", &shared.function_arn)
                .with_header("Lambda-Runtime-Trace-Id", &trace_id);
        }
        notified.await;
    }
}

/// The target directory: `CARGO_TARGET_DIR`, else the workspace's `target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// Path of a workspace binary (`grant-watcher`, `grant-report`,
/// `grantwatch`), built (debug) once per test process with
/// `cargo build -p <package>` so tests always run the current code.
/// `GRANTWATCH_BIN_DIR` points at prebuilt binaries instead (no build).
pub fn function_binary(package: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("GRANTWATCH_BIN_DIR") {
        return PathBuf::from(dir).join(package);
    }
    static BUILT: OnceLock<Mutex<BTreeMap<String, Result<(), String>>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut built = lock(built);
    let result = built
        .entry(package.to_string())
        .or_insert_with(|| build(package))
        .clone();
    if let Err(problem) = result {
        panic!("cannot build {package}: {problem}");
    }
    target_dir().join("debug").join(package)
}

fn build(package: &str) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", package])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
