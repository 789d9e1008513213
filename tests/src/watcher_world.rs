//! The grant-watcher's world for end-to-end tests: moto with the SAM stack
//! deployed, the Slack stand-in behind a Secrets Manager secret, an SQS
//! inbox on the alert topic, and the function's environment as the
//! template resolves it; plus the watcher fixtures.

use crate::moto::{Moto, SnsDelivery, SnsInbox};
use crate::runtime_api::{function_binary, Function, FunctionConfig};
use crate::slack_stub::SlackStub;
use crate::stack;
use serde_json::Value;
use std::time::Duration;

pub const KEY_ARN: &str =
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
pub const LAMBDA_GRANT_ID: &str =
    "60f37ec4106eb161780bd5530a3564e62cb0935a831661372f93a7e8670299df";
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:test";
/// The secret-looking part of the Slack stub's URL (must never be logged).
pub const WEBHOOK_TOKEN: &str = "secretwebhooktoken";

pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/fixtures/watcher/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The risky manual grant as the `n`th distinct event and grant.
pub fn manual_grant(n: usize) -> Value {
    let mut event = fixture("manual-cross-account-grant");
    event["detail"]["eventID"] = format!("burst-{n:04}").into();
    event["detail"]["responseElements"]["grantId"] = format!("grant-{n:04}").into();
    event
}

/// Everything one test needs: moto with the stack, the Slack stub, the
/// SNS inbox, and the function's environment.
pub struct World {
    pub moto: Moto,
    pub slack: SlackStub,
    pub inbox: SnsInbox,
    pub table: String,
    /// The secret holding the webhook URL.
    pub secret_arn: String,
    /// The function's environment as the template resolves it, plus moto's.
    pub env: std::collections::HashMap<String, String>,
    pub config: FunctionConfig,
}

impl World {
    pub async fn new(parameters: &[(&str, &str)]) -> World {
        let moto = Moto::start().await;
        let slack = SlackStub::start().await;
        let secret = moto
            .secrets()
            .await
            .create_secret()
            .name("grantwatch/slack-webhook")
            .secret_string(serde_json::json!({ "url": slack.url() }).to_string())
            .send()
            .await
            .unwrap();
        let secret_arn = secret.arn().unwrap().to_string();
        let mut all = vec![("SlackWebhookSecretArn", secret_arn.as_str())];
        all.extend_from_slice(parameters);
        let endpoint = moto.endpoint().to_string();
        let owned: Vec<(String, String)> = all
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let deployed = tokio::task::spawn_blocking(move || {
            let borrowed: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            stack::deploy_template(&endpoint, &borrowed)
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("deploying the template into moto failed: {e}"));
        let env = deployed.function_env(stack::WATCHER);
        assert_eq!(env.get("SLACK_WEBHOOK_SECRET_ARN"), Some(&secret_arn));
        let table = env["LEDGER_TABLE"].clone();
        let inbox = moto.subscribe_queue(&env["ALERT_TOPIC_ARN"]).await;
        let config = FunctionConfig::new("grant-watcher")
            .envs(env.clone())
            .envs(moto.lambda_env())
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .timeout(Duration::from_secs(60));
        World {
            moto,
            slack,
            inbox,
            table,
            secret_arn,
            env,
            config,
        }
    }

    pub async fn function(&self) -> Function {
        Function::start(&function_binary("grant-watcher"), self.config.clone())
            .await
            .expect("start grant-watcher")
    }

    pub async fn item(
        &self,
        pk: &str,
        sk: &str,
    ) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.moto
            .dynamodb()
            .await
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .send()
            .await
            .unwrap()
            .item
    }

    /// Every `pk` in the ledger.
    pub async fn partition_keys(&self) -> Vec<String> {
        let client = self.moto.dynamodb().await;
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                if let Some(Ok(pk)) = item.get("pk").map(|v| v.as_s()) {
                    keys.push(pk.clone());
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return keys,
            }
        }
    }
}

pub fn attribute<'a>(message: &'a SnsDelivery, name: &str) -> &'a str {
    message
        .attributes
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no attribute {name} in {:?}", message.attributes))
}

pub fn slack_text(body: &Value) -> String {
    body.to_string()
}

/// Run futures concurrently on this task (no extra crates).
pub async fn futures_join<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// An endpoint that accepts every TCP connection and never answers (a
/// stalled AWS service). It stays bound while the returned guard lives.
pub struct SilentEndpoint {
    pub url: String,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentEndpoint {
    pub async fn start() -> SilentEndpoint {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the silent endpoint");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("silent endpoint address")
        );
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        SilentEndpoint {
            url,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for SilentEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}
