//! The trail's log files in S3 for [`grantwatch_core::logs`], the ledger's
//! event records read for reconcile ([`SeenEvents`]), and the reconcile run
//! itself ([`Reconcile`]: `grantwatch reconcile` and the report Lambda's
//! daily mode).

use crate::channels::ChannelSettings;
use crate::config::{bad, resolve_trust_zone, ConfigError, Env};
use crate::directory::AwsDirectory;
use crate::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use crate::sdk::{self, SystemClock};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use grantwatch_core::app::reconcile::{self, SeenEvents};
use grantwatch_core::app::watch::{
    watch_event, Clock, Invocation, WatchConfig, WatchDeps, WatchError, WatchOutcome,
};
use grantwatch_core::event::MAX_INPUT_BYTES;
use grantwatch_core::logs::{self, FileResult, LogSource, Options};
use grantwatch_core::ports::ledger::{EventLedger, GrantLedger, StormLedger};
use grantwatch_core::ports::PortError;
use grantwatch_core::rules::RuleSet;
use grantwatch_core::tamper::{OwnResources, OWN_RESOURCES_ENV};
use grantwatch_core::trust::TrustSetting;
use grantwatch_core::verdict::Severity;
use std::collections::{BTreeSet, HashMap, HashSet};

/// The S3 client [`S3Logs`] reads with (callers need not depend on the SDK).
pub use aws_sdk_s3::Client as S3Client;

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
        let (bucket, prefix) = bucket_and_prefix(uri)?;
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

/// `s3://bucket[/prefix]` → (bucket, prefix); the prefix may be empty
/// (the whole bucket).
pub fn bucket_and_prefix(uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{uri:?} is not an s3://bucket/prefix URI"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{uri:?} names no bucket"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
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

/// The watcher's settings that its judgement and delivery need outside
/// the watcher (`redrive`, `reconcile`, the report's daily reconcile), read
/// under the watcher's names.
#[derive(Debug, Clone)]
pub struct WatcherSettings {
    pub ledger_table: String,
    /// Every channel, as the watcher builds them.
    pub channels: ChannelSettings,
    pub min_alert_severity: Severity,
    /// `None` when `OWN_RESOURCES` is unset: tamper events are skipped.
    pub own_resources: Option<OwnResources>,
    /// `TRUSTED_ACCOUNTS`, resolved by [`watcher_deps`].
    pub trusted_accounts: TrustSetting,
}

impl WatcherSettings {
    /// `LEDGER_TABLE` (required), `MIN_ALERT_SEVERITY`, `OWN_RESOURCES`,
    /// `TRUSTED_ACCOUNTS`, and the channels' settings
    /// ([`ChannelSettings::from_env`]: `ALERT_TOPIC_ARN` required).
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<WatcherSettings, ConfigError> {
        let own_resources = match env.optional(OWN_RESOURCES_ENV) {
            Some(text) => Some(
                OwnResources::from_json(&text)
                    .map_err(|e| bad(OWN_RESOURCES_ENV, e.to_string()))?,
            ),
            None => None,
        };
        // The alert topic is named first when missing, as in the watcher.
        let channels = ChannelSettings::from_env(env)?;
        Ok(WatcherSettings {
            ledger_table: env.required("LEDGER_TABLE")?,
            channels,
            min_alert_severity: env.min_alert_severity()?,
            own_resources,
            trusted_accounts: env.trusted_accounts()?,
        })
    }
}

/// The watcher's ledger, every channel (built by
/// [`ChannelSettings::build`], as the watcher's), and its judgement
/// settings. A trust zone of `ORG` that cannot be listed stays unset
/// (default severities: nothing silenced) with a warning, as in every
/// command that judges.
pub async fn watcher_deps(
    config: &aws_config::SdkConfig,
    settings: WatcherSettings,
    rules: RuleSet,
) -> Result<WatchDeps<DynamoLedger, SystemClock>, ConfigError> {
    let notifiers = settings.channels.build(config)?;
    let directory = AwsDirectory::new(
        aws_sdk_sts::Client::new(config),
        aws_sdk_organizations::Client::new(config),
    );
    let (trust_zone, unresolved) = resolve_trust_zone(&settings.trusted_accounts, &directory).await;
    if let Some(problem) = unresolved {
        tracing::warn!(setting = problem.name, problem = %problem.problem, "trust zone unresolved");
    }
    Ok(WatchDeps {
        ledger: DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(config),
            &settings.ledger_table,
            DEFAULT_RETENTION_DAYS,
        ),
        notifiers,
        clock: SystemClock,
        config: WatchConfig {
            rules: grantwatch_core::rules::LiveRules::new(rules),
            min_alert_severity: settings.min_alert_severity,
            own_resources: settings.own_resources,
            trust_zone,
            ..WatchConfig::default()
        },
    })
}

/// How long one replayed event may take (as a watcher invocation).
const INVOCATION_MS: i64 = 80_000;

/// One event through the watcher's judgement and delivery, as one
/// invocation named `request_id` (the owner of the leases it takes):
/// `grantwatch redrive` and reconcile.
pub async fn replay_event<L, C>(
    payload: &serde_json::Value,
    deps: &WatchDeps<L, C>,
    request_id: &str,
) -> Result<WatchOutcome, WatchError>
where
    L: EventLedger + GrantLedger + StormLedger,
    C: Clock,
{
    let invocation = Invocation {
        request_id,
        deadline_ms: deps.clock.now_ms() + INVOCATION_MS,
    };
    watch_event(payload, deps, &invocation).await
}

/// What a reconcile run found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileTotals {
    pub files: usize,
    /// Distinct grant events in the logs (in the dates asked for).
    pub events: usize,
    /// Already in the ledger: the watcher saw them.
    pub seen: usize,
    /// Not in the ledger.
    pub missed: usize,
    /// Missed, then handled by the watcher's judgement and delivery.
    pub replayed: usize,
    /// Missed and not handled (a later run tries again).
    pub failed: usize,
    /// Files (or records) that could not be read.
    pub problems: usize,
}

/// One line of a run's account, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileLine {
    /// Missed, not replayed (dry run).
    Missed(String),
    Replayed(String),
    Failed(String),
    /// A file or record that could not be read.
    Problem(String),
}

/// One reconcile run: the events of the log files the ledger never saw,
/// replayed in log order through [`watch_event`] (the watcher's
/// judgement, ledger and channels), or only listed (`deps: None`, a dry
/// run). Blocks on `handle`: call it from a thread that is not one of the
/// runtime's workers (the CLI's main thread, `spawn_blocking`).
pub struct Reconcile<'a, S, L, C> {
    pub seen: &'a S,
    /// `None`: a dry run.
    pub deps: Option<&'a WatchDeps<L, C>>,
    pub handle: tokio::runtime::Handle,
    /// Names each replay's invocation (`<request_prefix>-<event id>`), the
    /// owner of the leases it takes: unique per run (two runs at once with
    /// one owner could both send).
    pub request_prefix: String,
    pub totals: ReconcileTotals,
    /// Event ids met in this run (a file read twice, a copied file).
    met: HashSet<String>,
}

impl<'a, S, L, C> Reconcile<'a, S, L, C>
where
    S: SeenEvents,
    L: EventLedger + GrantLedger + StormLedger,
    C: Clock,
{
    pub fn new(
        seen: &'a S,
        deps: Option<&'a WatchDeps<L, C>>,
        handle: tokio::runtime::Handle,
        request_prefix: impl Into<String>,
    ) -> Self {
        Reconcile {
            seen,
            deps,
            handle,
            request_prefix: request_prefix.into(),
            totals: ReconcileTotals::default(),
            met: HashSet::new(),
        }
    }

    /// Reconcile every file of `source`; stops at the first ledger read
    /// that fails (nothing can be said about the rest: a rerun is safe).
    pub fn run(
        &mut self,
        source: &dyn LogSource,
        options: &Options,
        on_line: &mut dyn FnMut(ReconcileLine),
    ) -> Result<(), PortError> {
        let mut stopped = None;
        logs::scan(source, options, |file| {
            match self.file(source, file, on_line) {
                Ok(()) => true,
                Err(error) => {
                    stopped = Some(error);
                    false
                }
            }
        });
        stopped.map_or(Ok(()), Err)
    }

    fn file(
        &mut self,
        source: &dyn LogSource,
        file: FileResult,
        on_line: &mut dyn FnMut(ReconcileLine),
    ) -> Result<(), PortError> {
        self.totals.files += 1;
        for problem in file.failed.iter().chain(&file.problems) {
            self.totals.problems += 1;
            on_line(ReconcileLine::Problem(format!("{}: {problem}", file.name)));
        }
        let events: Vec<_> = file
            .events
            .into_iter()
            .filter(|e| self.met.insert(e.event_id.clone()))
            .collect();
        self.totals.events += events.len();
        let missed = self
            .handle
            .block_on(reconcile::missed(self.seen, &events))?;
        self.totals.seen += events.len() - missed.len();
        self.totals.missed += missed.len();
        if missed.is_empty() {
            return Ok(());
        }
        let describe = |e: &grantwatch_core::event::GrantEvent| {
            format!(
                "{} {} {} at {}",
                e.event_id,
                e.action.as_str(),
                e.grant_id.as_deref().unwrap_or("(no grant id)"),
                e.event_time.as_deref().unwrap_or("?")
            )
        };
        let Some(deps) = self.deps else {
            for event in missed {
                on_line(ReconcileLine::Missed(describe(event)));
            }
            return Ok(());
        };
        // The records as the trail wrote them: what the watcher is given.
        let ids: BTreeSet<String> = missed.iter().map(|e| e.event_id.clone()).collect();
        let mut buf = Vec::new();
        let records = source
            .read(file.index, &mut buf, MAX_INPUT_BYTES + 1)
            .and_then(|()| reconcile::records_with_ids(&buf, &ids));
        let mut records: HashMap<String, serde_json::Value> = match records {
            Ok(records) => records
                .into_iter()
                .filter_map(|r| {
                    let detail = r.get("detail").unwrap_or(&r);
                    let id = detail.get("eventID")?.as_str()?.to_string();
                    Some((id, r))
                })
                .collect(),
            Err(problem) => {
                self.totals.problems += 1;
                on_line(ReconcileLine::Problem(format!(
                    "{}: read again to replay: {problem}",
                    file.name
                )));
                HashMap::new()
            }
        };
        for event in missed {
            let Some(record) = records.remove(&event.event_id) else {
                self.totals.failed += 1;
                on_line(ReconcileLine::Failed(format!(
                    "{}: its record was not found again in {}",
                    describe(event),
                    file.name
                )));
                continue;
            };
            let request_id = format!("{}-{}", self.request_prefix, event.event_id);
            match self
                .handle
                .block_on(replay_event(&record, deps, &request_id))
            {
                Ok(outcome) => {
                    self.totals.replayed += 1;
                    on_line(ReconcileLine::Replayed(format!(
                        "{}: {}",
                        event.event_id,
                        describe_outcome(&outcome)
                    )));
                }
                Err(error) => {
                    self.totals.failed += 1;
                    on_line(ReconcileLine::Failed(format!(
                        "{}: {}: {error}",
                        describe(event),
                        error.error_type()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// One line for a handled event: what it was, its severity, whether it
/// alerted, each channel's status (`redrive`, `reconcile`).
pub fn describe_outcome(outcome: &WatchOutcome) -> String {
    match outcome {
        WatchOutcome::Heartbeat { event_id, .. } => format!("heartbeat ({event_id})"),
        WatchOutcome::Skipped { event_name, .. } => format!(
            "not a grant event ({})",
            event_name.as_deref().unwrap_or("unnamed")
        ),
        WatchOutcome::Watched {
            event_id,
            event_name,
            severity,
            alert,
            channels,
            ..
        } => {
            let channels: Vec<String> = channels
                .iter()
                .map(|c| {
                    let status = serde_json::to_value(&c.status)
                        .ok()
                        .and_then(|v| {
                            v.get("status")
                                .and_then(serde_json::Value::as_str)
                                .map(str::to_string)
                        })
                        .unwrap_or_default();
                    format!("{}={status}", c.channel)
                })
                .collect();
            format!(
                "{event_name} {event_id} {severity}{}{}",
                if *alert { " alert" } else { "" },
                if channels.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", channels.join(", "))
                }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trail_uri_may_name_the_whole_bucket() {
        assert_eq!(
            bucket_and_prefix("s3://trail/AWSLogs/").unwrap(),
            ("trail".to_string(), "AWSLogs/".to_string())
        );
        assert_eq!(
            bucket_and_prefix("s3://trail").unwrap(),
            ("trail".to_string(), String::new())
        );
        assert!(bucket_and_prefix("s3:///x").is_err());
        assert!(bucket_and_prefix("trail/x").is_err());
    }
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
