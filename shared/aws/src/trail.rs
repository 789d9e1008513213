//! The trail's log files in S3 for [`grantwatch_core::logs`] (`grantwatch
//! reconcile`, the report's daily reconcile), and the ledger's event records
//! read for reconcile ([`SeenEvents`]).

use crate::sdk;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use grantwatch_core::app::reconcile::SeenEvents;
use grantwatch_core::logs::{self, LogSource, Options};
use grantwatch_core::ports::PortError;
use std::collections::{BTreeSet, HashMap};

/// Log files in S3 (`s3://bucket/prefix`), listed with the SDK's
/// paginator and kept when their layout day may hold events of
/// `options`' dates; read by the reader's threads through a runtime
/// handle.
pub struct S3Logs {
    client: aws_sdk_s3::Client,
    bucket: String,
    keys: Vec<String>,
    handle: tokio::runtime::Handle,
}

impl S3Logs {
    /// List `uri`; reads later block on `handle` (a runtime whose workers
    /// are not the reader's threads).
    pub async fn list(
        client: aws_sdk_s3::Client,
        uri: &str,
        options: &Options,
        handle: tokio::runtime::Handle,
    ) -> Result<S3Logs, String> {
        let (bucket, prefix) = sdk::parse_s3_uri(uri)?;
        let mut pages = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk::classify("ListObjectsV2", &e).to_string())?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key())
                    .filter(|key| {
                        logs::is_log_name(key)
                            && logs::file_may_hold(logs::layout_day(key), options)
                    })
                    .map(str::to_string),
            );
        }
        keys.sort();
        Ok(S3Logs {
            client,
            bucket,
            keys,
            handle,
        })
    }
}

impl LogSource for S3Logs {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn name(&self, index: usize) -> String {
        let key = self.keys.get(index).map_or("", String::as_str);
        format!("s3://{}/{key}", self.bucket)
    }

    fn read(&self, index: usize, buf: &mut Vec<u8>, limit: usize) -> Result<(), String> {
        let key = self.keys.get(index).ok_or("no such object")?;
        buf.clear();
        self.handle.block_on(async {
            let object = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| sdk::classify("GetObject", &e).to_string())?;
            let mut body = object.body;
            while let Some(chunk) = body.try_next().await.map_err(|e| e.to_string())? {
                buf.extend_from_slice(&chunk);
                if buf.len() > limit {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// The ledger table's event records (`pk = EVENT#<event id>`, `sk =
/// EVENT`, as [`crate::ledger::DynamoLedger`] writes them), read with
/// consistent BatchGetItem, 100 keys a call.
pub struct LedgerEvents {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl LedgerEvents {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        LedgerEvents {
            client,
            table: table.into(),
        }
    }
}

/// BatchGetItem's limit.
const BATCH_KEYS: usize = 100;
/// Rounds of unprocessed keys retried before giving up (transient).
const UNPROCESSED_ROUNDS: usize = 8;

fn event_key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(format!("EVENT#{id}"))),
        ("sk".to_string(), AttributeValue::S("EVENT".to_string())),
    ])
}

impl SeenEvents for LedgerEvents {
    async fn seen_events(&self, ids: &[String]) -> Result<BTreeSet<String>, PortError> {
        // DynamoDB refuses a batch naming one key twice.
        let unique: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let unique: Vec<&str> = unique.into_iter().collect();
        let mut seen = BTreeSet::new();
        for chunk in unique.chunks(BATCH_KEYS) {
            let mut keys: Vec<_> = chunk.iter().map(|id| event_key(id)).collect();
            let mut rounds = 0;
            while !keys.is_empty() {
                rounds += 1;
                if rounds > UNPROCESSED_ROUNDS {
                    return Err(PortError::Transient(format!(
                        "BatchGetItem: {} keys still unprocessed after {UNPROCESSED_ROUNDS} rounds",
                        keys.len()
                    )));
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .projection_expression("pk")
                    .build()
                    .map_err(|e| PortError::Permanent(format!("BatchGetItem: {e}")))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| sdk::classify("BatchGetItem", &e))?;
                let items = output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                seen.extend(items.iter().filter_map(|item| match item.get("pk") {
                    Some(AttributeValue::S(pk)) => pk.strip_prefix("EVENT#").map(str::to_string),
                    _ => None,
                }));
                keys = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn item(id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_string(), AttributeValue::S(format!("EVENT#{id}")))])
    }

    #[tokio::test]
    async fn unprocessed_keys_are_asked_again_and_batches_hold_100_keys() {
        let first = mock!(aws_sdk_dynamodb::Client::batch_get_item)
            .match_requests(|r| {
                r.request_items()
                    .and_then(|m| m.get("ledger"))
                    .is_some_and(|k| k.keys().len() == 100)
            })
            .then_output(|| {
                BatchGetItemOutput::builder()
                    .responses("ledger", vec![item("e0")])
                    .unprocessed_keys(
                        "ledger",
                        KeysAndAttributes::builder()
                            .keys(event_key("e1"))
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let retry = mock!(aws_sdk_dynamodb::Client::batch_get_item)
            .match_requests(|r| {
                r.request_items()
                    .and_then(|m| m.get("ledger"))
                    .is_some_and(|k| k.keys().len() == 1)
            })
            .then_output(|| {
                BatchGetItemOutput::builder()
                    .responses("ledger", vec![item("e1")])
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&first, &retry]);
        let events = LedgerEvents::new(client, "ledger");
        // 100 distinct ids (and a duplicate, sent once).
        let mut ids: Vec<String> = (0..100).map(|i| format!("e{i}")).collect();
        ids.push("e0".to_string());
        let seen = events.seen_events(&ids).await.unwrap();
        assert_eq!(seen, BTreeSet::from(["e0".to_string(), "e1".to_string()]));
        assert_eq!(first.num_calls(), 1);
        assert_eq!(retry.num_calls(), 1);
    }
}
