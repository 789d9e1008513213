//! `moto_server` on 127.0.0.1 (a free port), SDK clients pointed at it, and
//! an SQS reader for what the functions publish to SNS.
//!
//! ```no_run
//! # async fn demo() {
//! let moto = grantwatch_e2e::moto::Moto::start().await;
//! let sns = moto.sns().await;
//! let topic = sns.create_topic().name("alerts").send().await.unwrap();
//! let inbox = moto.subscribe_queue(topic.topic_arn().unwrap()).await;
//! // ... run a function with `moto.lambda_env()` ...
//! let delivered = inbox.receive().await; // Vec<SnsDelivery>
//! # }
//! ```
//!
//! moto comes from the venv at `$GRANTWATCH_VENV` (the Makefile exports
//! it), else `<workspace>/.venv`; its python runs moto_server on a socket it
//! bound itself (no port is freed and reused). The server is
//! killed when the [`Moto`] is dropped.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::Credentials;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";
/// moto's default account id.
pub const ACCOUNT: &str = "123456789012";
const ACCESS_KEY: &str = "testing";
const SECRET_KEY: &str = "testing";

/// A running moto_server.
pub struct Moto {
    child: Child,
    endpoint: String,
    http: reqwest::Client,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where moto_server lives.
pub fn moto_server_path() -> PathBuf {
    let venv = std::env::var_os("GRANTWATCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    venv.join("bin/moto_server")
}

impl Moto {
    /// Start moto_server and wait until it answers. Panics (test setup)
    /// with the reason when it cannot start.
    ///
    /// The port is never "found free, then reused": the server's own
    /// process binds port 0, keeps that socket, reports the port on stdout,
    /// and serves on it (werkzeug's inherited-socket start).
    pub async fn start() -> Moto {
        let python = moto_python_path();
        let mut last_problem = String::new();
        for _attempt in 0..3 {
            let child = Command::new(&python)
                .args(["-c", SERVE_ON_OWN_SOCKET])
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match child {
                Ok(child) => child,
                Err(e) => panic!(
                    "cannot run {} ({e}); run `make venv` first",
                    python.display()
                ),
            };
            let port = match reported_port(&mut child) {
                Ok(port) => port,
                Err(problem) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_problem = problem;
                    continue;
                }
            };
            let mut moto = Moto {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::new(),
            };
            match moto.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => return moto,
                Err(problem) => last_problem = problem,
            }
        }
        panic!("moto_server did not start: {last_problem}");
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited with {status}"));
            }
            let probe = self
                .http
                .get(format!("{}/moto-api/data.json", self.endpoint))
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("no answer within 30 s".to_string())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Clear every resource (`POST /moto-api/reset`).
    pub async fn reset(&self) {
        let reset = self
            .http
            .post(format!("{}/moto-api/reset", self.endpoint))
            .send()
            .await;
        assert!(
            reset.is_ok_and(|r| r.status().is_success()),
            "moto reset failed"
        );
    }

    /// The environment a function needs to talk to this moto: endpoint,
    /// dummy credentials, region, no instance metadata.
    pub fn lambda_env(&self) -> BTreeMap<String, String> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// An SDK config for this moto (dummy credentials, `us-east-1`).
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "moto"))
            .load()
            .await
    }

    pub async fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.sdk_config().await)
    }

    pub async fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config().await)
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
    }

    pub async fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config().await)
    }

    pub async fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk_config().await)
    }

    /// S3 with path-style addressing (moto serves one host).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Create an SQS queue subscribed to `topic_arn` and return a reader.
    /// The subscription is NOT raw: each SQS body is SNS's JSON envelope,
    /// which keeps the Subject (raw delivery drops it) and the message
    /// attributes.
    pub async fn subscribe_queue(&self, topic_arn: &str) -> SnsInbox {
        let name = format!("inbox-{}", topic_arn.rsplit(':').next().unwrap_or("topic"));
        self.subscribe_queue_filtered(topic_arn, &name, None).await
    }

    /// [`Moto::subscribe_queue`] with a queue name of its own and, when
    /// given, a subscription filter policy (scope `MessageAttributes`);
    /// moto applies filter policies as SNS does.
    pub async fn subscribe_queue_filtered(
        &self,
        topic_arn: &str,
        name: &str,
        filter_policy: Option<&Value>,
    ) -> SnsInbox {
        let sqs = self.sqs().await;
        let queue_url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes");
        let queue_arn = attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .expect("queue arn");
        let mut subscribe = self
            .sns()
            .await
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn);
        if let Some(policy) = filter_policy {
            subscribe = subscribe.attributes("FilterPolicy", policy.to_string());
        }
        subscribe.send().await.expect("subscribe queue");
        SnsInbox { sqs, queue_url }
    }
}

/// Python that binds 127.0.0.1:0 itself, prints the port, and runs
/// moto_server on that very socket (werkzeug serves an inherited socket
/// when `WERKZEUG_RUN_MAIN` and `WERKZEUG_SERVER_FD` are set), with
/// moto's DynamoDB transactions made isolated and O(items named) rather
/// than O(table) (tests/tests/moto_transactions.rs).
const SERVE_ON_OWN_SOCKET: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(128)
s.set_inheritable(True)
port = s.getsockname()[1]
os.environ["MOTO_PORT"] = str(port)
os.environ["WERKZEUG_RUN_MAIN"] = "true"
os.environ["WERKZEUG_SERVER_FD"] = str(s.fileno())
print(port, flush=True)
# DynamoDB isolates transactions; moto (5.x) applies a TransactWriteItems
# item by item, so another request could see half of one, or have its
# write wiped when a cancelled one is rolled back. moto's DynamoDB
# therefore serves one request at a time (the concurrency under test is
# the watcher's, not the emulator's).
import copy, threading
from moto.dynamodb.responses import DynamoHandler
_dynamodb = threading.Lock()
_call_action = DynamoHandler.call_action
def _one_at_a_time(self, *args, **kwargs):
    with _dynamodb:
        return _call_action(self, *args, **kwargs)
DynamoHandler.call_action = _one_at_a_time
# moto backs up a transaction by deep-copying every table it names and
# restores the copy when it is cancelled: O(table size) per transaction
# (about 1 s at 8,000 items), and every DynamoDB call queues behind it.
# The 5,000-event burst then outlasted the watcher's 3 s attempt timeout.
# Instead: save just the items the transaction names, put them back if
# it fails, and let moto's own "copy" of a table be the table itself.
from moto.dynamodb import models as _models
from moto.dynamodb.models import DynamoDBBackend, DynamoType
from moto.dynamodb.models.table import Table
class _TablesNotCopied:
    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)
_models.copy = _TablesNotCopied
def _named_items(backend, transact_items):
    for entry in transact_items:
        for kind, op in entry.items():
            try:
                table = backend.tables[op["TableName"]]
                key = op["Item" if kind == "Put" else "Key"]
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = table.range_key_attr and DynamoType(key[table.range_key_attr])
            except Exception:
                continue  # malformed: moto rejects it before writing anything
            yield table, hash_value, range_value
def _item(table, hash_value, range_value):
    if range_value is None:
        return table.items.get(hash_value)
    return table.items.get(hash_value, {}).get(range_value)
def _put_back(table, hash_value, range_value, item):
    partition = table.items if range_value is None else table.items[hash_value]
    key = hash_value if range_value is None else range_value
    if item is None:
        partition.pop(key, None)
    else:
        partition[key] = item
_transact_write_items = DynamoDBBackend.transact_write_items
def _all_or_nothing(self, transact_items):
    saved = [
        (table, hash_value, range_value, copy.deepcopy(_item(table, hash_value, range_value)))
        for table, hash_value, range_value in _named_items(self, transact_items)
    ]
    try:
        return _transact_write_items(self, transact_items)
    except BaseException:
        for item in reversed(saved):
            _put_back(*item)
        raise
DynamoDBBackend.transact_write_items = _all_or_nothing
from moto.server import main
main(["-H", "127.0.0.1", "-p", str(port)])
"#;

/// The venv's python (next to moto_server).
fn moto_python_path() -> PathBuf {
    moto_server_path().with_file_name("python")
}

/// The port the child printed on its first stdout line (30 s at most);
/// the rest of its stdout is drained in the background.
fn reported_port(child: &mut Child) -> Result<u16, String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = sender.send(first);
        for _ in lines {}
    });
    match receiver.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(Ok(line))) => line
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("moto printed {line:?}, not a port")),
        Ok(_) => Err("moto exited before reporting its port".to_string()),
        Err(_) => Err("moto did not report its port within 30 s".to_string()),
    }
}

/// One SNS message as an SQS subscriber sees it. The watcher publishes
/// with `MessageStructure=json`, so its alerts and digests reach SQS as the
/// machine JSON (`{"kind", "subject", "summary", "verdict", "commands",
/// ...}`, docs/alerts.md); e-mail subscribers get the text body instead.
#[derive(Debug, Clone, PartialEq)]
pub struct SnsDelivery {
    pub subject: Option<String>,
    /// `Message` as delivered: the machine JSON text for alerts and
    /// digests, the text body for plain messages (the report's summary).
    pub message: String,
    /// `message` parsed, when it is the watcher's machine JSON (an object
    /// with a `kind`).
    pub machine: Option<Value>,
    /// Message attributes, by name, as SNS writes their `Value`: a
    /// `String.Array` is its JSON text (`["a","b"]`), a `Number` its digits.
    pub attributes: BTreeMap<String, String>,
    /// Each attribute's `Type` (`String`, `String.Array`, `Number`).
    pub attribute_types: BTreeMap<String, String>,
    /// The whole SNS envelope.
    pub envelope: Value,
}

impl SnsDelivery {
    /// The verdict of an alert's machine JSON.
    pub fn verdict(&self) -> Option<&Value> {
        self.machine.as_ref()?.get("verdict")
    }
}

/// An SQS queue subscribed to an SNS topic.
pub struct SnsInbox {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SnsInbox {
    /// Every message in the queue now (moto delivers during Publish, so
    /// after an invocation returns its messages are there), deleted once read.
    pub async fn receive(&self) -> Vec<SnsDelivery> {
        let mut delivered = Vec::new();
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive message");
            let messages = batch.messages();
            if messages.is_empty() {
                return delivered;
            }
            for message in messages {
                if let Some(body) = message.body() {
                    delivered.push(parse_envelope(body));
                }
                if let Some(handle) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete message");
                }
            }
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

fn parse_envelope(body: &str) -> SnsDelivery {
    let envelope: Value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    let text = |name: &str| {
        envelope
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let field = |field: &str| -> BTreeMap<String, String> {
        envelope
            .get("MessageAttributes")
            .and_then(Value::as_object)
            .map(|attributes| {
                attributes
                    .iter()
                    .filter_map(|(name, attribute)| {
                        let value = attribute.get(field)?;
                        let value = value
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| value.to_string());
                        Some((name.clone(), value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let message = text("Message").unwrap_or_default();
    let machine = serde_json::from_str::<Value>(&message)
        .ok()
        .filter(|m| m.get("kind").is_some());
    SnsDelivery {
        subject: text("Subject"),
        message,
        machine,
        attributes: field("Value"),
        attribute_types: field("Type"),
        envelope,
    }
}
