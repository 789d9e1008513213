//! DynamoDB grant ledger. One table, partition key `pk` (S), sort key `sk`
//! (S), TTL attribute `expires_at` (epoch seconds). Item kinds (every
//! attribute is documented in docs/watcher.md):
//!
//! | pk                  | sk                | what                                   |
//! |---------------------|-------------------|----------------------------------------|
//! | `GRANT#<key ARN>`   | `<grant id>`      | a grant: its creation, later its removal |
//! | `KEYGRANTEE#<key ARN>#<grantee>` | `<created at>#<grant id>` | the same record, indexed by key and grantee for correlation (newest first) |
//! | `SHARED#<sharedEventID>` | `COPIES`     | a cross-account call: its first copy (event id, account, severity) and its latest |
//! | `EVENT#<event id>`  | `EVENT`           | an event seen; per-channel delivery     |
//! | `STORM#<window>`    | `COUNT`           | alerts counted in a storm window        |
//! | `DIGEST#<window>`   | `DELIVERY`        | the digest: leader, closed_at, tallies (total, severity_*), delivery |
//! | `DIGEST#<window>`   | `EVENT#<event id>`| membership: an alert counted in the digest |
//! | `DIGEST#<window>`   | `WORST#<rank>#<event id>` | the alert's verdict, worst first |
//! | `DIGEST#<window>`   | `TALLY#actor#<arn>`, `TALLY#key#<arn>` | alerts per actor, per key |
//! | `STORM#PENDING`     | `WINDOWS`         | windows whose digest is not yet posted everywhere |
//! | `STACK`             | `DEPLOYED`        | `deployed_at_ms`: the first cold start's time (write-once) |
//! | `REPORT`            | `<S3 key>`        | a stored report file's `sha256` and `recorded_at` |
//!
//! Every write that decides who sends is conditional, so two concurrent
//! invocations with the same event never both send on a channel. Channel
//! leases carry their owner (`owner_<channel>`, the request id):
//! `mark_delivered` and `release_channel` are conditional on it, and a
//! lease is taken over only [`LEASE_TAKEOVER_GRACE_SECONDS`] after it ended.
//! Joining a digest is one transaction (membership once per event,
//! tallies only while open).

use crate::sdk::classify;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use grantwatch_core::ports::ledger::{
    AlertMode, ChannelClaim, Delivery, DigestEntry, DigestSummary, DigestTally, EventCopy,
    EventLedger, EventState, GrantLedger, Lease, Marked, StackLedger, StormLedger,
    DIGEST_TALLY_NAMES, DIGEST_WORST, LEASE_TAKEOVER_GRACE_SECONDS,
};
use grantwatch_core::ports::PortError;
use grantwatch_core::record::{GrantRecord, Removal};
use grantwatch_core::verdict::{Severity, Verdict};
use std::collections::{BTreeMap, BTreeSet, HashMap};

type Item = HashMap<String, AttributeValue>;

pub const DEFAULT_RETENTION_DAYS: u32 = 90;

pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention_seconds: i64,
}

impl DynamoLedger {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        retention_days: u32,
    ) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
            retention_seconds: i64::from(retention_days) * 86_400,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn expires(&self, now: i64) -> AttributeValue {
        n(now + self.retention_seconds)
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        Ok(output.item)
    }

    /// A consistent Query of `pk`, all of it or the sort keys starting
    /// with `sk_prefix`.
    fn query(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(pk));
        match sk_prefix {
            Some(prefix) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
            None => query.key_condition_expression("pk = :pk"),
        }
    }

    /// The first `limit` items of `pk` (whose sort key starts with
    /// `sk_prefix`), in sort-key order or, `newest_first`, the reverse
    /// (following pages until then).
    async fn query_page(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
        limit: i32,
        newest_first: bool,
    ) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let left = limit - items.len() as i32;
            let output = self
                .query(pk, sk_prefix)
                .scan_index_forward(!newest_first)
                .limit(left)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", &e))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() && (items.len() as i32) < limit => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    async fn query_all(&self, pk: String, sk_prefix: Option<&str>) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .query(&pk, sk_prefix)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", &e))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Channel names become attribute-name suffixes: keep them simple.
fn channel_attribute(prefix: &str, channel: &str) -> String {
    let clean: String = channel
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{clean}")
}

fn delivery_key(delivery: &Delivery) -> (String, &'static str) {
    match delivery {
        Delivery::Event(id) => (format!("EVENT#{id}"), "EVENT"),
        Delivery::Digest(window) => (format!("DIGEST#{window}"), "DELIVERY"),
    }
}

fn is_condition_failure(
    error: &aws_smithy_runtime_api::client::result::SdkError<
        UpdateItemError,
        aws_smithy_runtime_api::http::Response,
    >,
) -> bool {
    matches!(
        error.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

fn corrupt(what: &str, problem: impl std::fmt::Display) -> PortError {
    PortError::Permanent(format!("ledger item {what} is unreadable: {problem}"))
}

fn mode_attributes(mode: AlertMode) -> (&'static str, Option<i64>) {
    match mode {
        AlertMode::Individual => ("individual", None),
        AlertMode::Digest { window } => ("digest", Some(window)),
        AlertMode::DigestLeader { window } => ("digest-leader", Some(window)),
    }
}

fn mode_of(item: &Item) -> Option<AlertMode> {
    let window = get_n(item, "storm_window");
    match (get_s(item, "alert_mode")?, window) {
        ("individual", _) => Some(AlertMode::Individual),
        ("digest", Some(window)) => Some(AlertMode::Digest { window }),
        ("digest-leader", Some(window)) => Some(AlertMode::DigestLeader { window }),
        _ => None,
    }
}

/// The grant record in an item, if its creation is known.
fn record_of(item: &Item) -> Result<Option<GrantRecord>, PortError> {
    let Some(creation) = get_s(item, "creation") else {
        return Ok(None);
    };
    let mut record: GrantRecord =
        serde_json::from_str(creation).map_err(|e| corrupt("creation", e))?;
    record.removal = match get_s(item, "removal") {
        Some(removal) => Some(serde_json::from_str(removal).map_err(|e| corrupt("removal", e))?),
        None => None,
    };
    Ok(Some(record))
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl EventLedger for DynamoLedger {
    async fn claim_event(&self, event_id: &str, now: i64) -> Result<EventState, PortError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("EVENT#{event_id}")))
            .key("sk", s("EVENT"))
            .update_expression(
                "SET kind = :kind, event_id = :id, first_seen = if_not_exists(first_seen, :now), \
                 last_seen = :now, expires_at = if_not_exists(expires_at, :expires) ADD times_seen :one",
            )
            .expression_attribute_values(":kind", s("event"))
            .expression_attribute_values(":id", s(event_id))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", self.expires(now))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        let old = output.attributes.unwrap_or_default();
        let first_seen = get_s(&old, "first_seen").is_none() && get_n(&old, "first_seen").is_none();
        let delivered: BTreeSet<String> = old
            .keys()
            .filter_map(|name| name.strip_prefix("delivered_"))
            .map(str::to_string)
            .collect();
        Ok(EventState {
            first_seen,
            mode: mode_of(&old),
            delivered,
        })
    }

    async fn set_alert_mode(
        &self,
        event_id: &str,
        mode: AlertMode,
    ) -> Result<AlertMode, PortError> {
        let (name, window) = mode_attributes(mode);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("EVENT#{event_id}")))
            .key("sk", s("EVENT"))
            .expression_attribute_values(":mode", s(name))
            .return_values(ReturnValue::AllNew);
        update = match window {
            Some(window) => update
                .update_expression(
                    "SET alert_mode = if_not_exists(alert_mode, :mode), \
                     storm_window = if_not_exists(storm_window, :window)",
                )
                .expression_attribute_values(":window", n(window)),
            None => update.update_expression("SET alert_mode = if_not_exists(alert_mode, :mode)"),
        };
        let output = update
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        Ok(output.attributes.as_ref().and_then(mode_of).unwrap_or(mode))
    }

    async fn claim_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        lease: &Lease,
    ) -> Result<ChannelClaim, PortError> {
        let (pk, sk) = delivery_key(delivery);
        let delivered = channel_attribute("delivered", channel);
        let lease_attribute = channel_attribute("lease", channel);
        let owner = channel_attribute("owner", channel);
        // Free, ours already, or ended more than the takeover grace ago.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(sk))
            .update_expression(
                "SET #lease = :until, #owner = :owner, expires_at = if_not_exists(expires_at, :expires) \
                 ADD #attempts :one",
            )
            .condition_expression(
                "attribute_not_exists(#delivered) AND (attribute_not_exists(#lease) \
                 OR #owner = :owner OR #lease < :takeover)",
            )
            .expression_attribute_names("#lease", &lease_attribute)
            .expression_attribute_names("#owner", &owner)
            .expression_attribute_names("#delivered", &delivered)
            .expression_attribute_names("#attempts", channel_attribute("attempts", channel))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":until", n(lease.until))
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":takeover", n(lease.now - LEASE_TAKEOVER_GRACE_SECONDS))
            .expression_attribute_values(":expires", self.expires(lease.now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                // Earlier claims that recorded no delivery (kept in the
                // item, so crashed attempts count too).
                let old = output.attributes.unwrap_or_default();
                let attempts = get_n(&old, &channel_attribute("attempts", channel)).unwrap_or(0);
                if attempts > 0 {
                    Ok(ChannelClaim::Retried {
                        attempts: attempts as u64,
                    })
                } else {
                    Ok(ChannelClaim::Claimed)
                }
            }
            Err(error) if is_condition_failure(&error) => {
                let item = self.get(pk, sk).await?.unwrap_or_default();
                if item.contains_key(&delivered) {
                    Ok(ChannelClaim::AlreadyDelivered)
                } else {
                    Ok(ChannelClaim::InProgress {
                        until: get_n(&item, &lease_attribute).unwrap_or(lease.until),
                    })
                }
            }
            Err(error) => Err(classify("UpdateItem", &error)),
        }
    }

    async fn mark_delivered(
        &self,
        delivery: &Delivery,
        channel: &str,
        owner: &str,
        now: i64,
    ) -> Result<Marked, PortError> {
        let (pk, sk) = delivery_key(delivery);
        let delivered = channel_attribute("delivered", channel);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(sk))
            .update_expression("SET #delivered = :now REMOVE #lease, #owner, #failure")
            .condition_expression("#owner = :owner AND attribute_not_exists(#delivered)")
            .expression_attribute_names("#delivered", &delivered)
            .expression_attribute_names("#lease", channel_attribute("lease", channel))
            .expression_attribute_names("#owner", channel_attribute("owner", channel))
            .expression_attribute_names("#failure", channel_attribute("failure", channel))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Marked::Recorded),
            Err(error) if is_condition_failure(&error) => {
                // Our lease was taken over: it was still delivered (record
                // it), but the new owner may send too.
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .update_expression("SET #delivered = if_not_exists(#delivered, :now)")
                    .expression_attribute_names("#delivered", &delivered)
                    .expression_attribute_values(":now", n(now))
                    .send()
                    .await
                    .map_err(|e| classify("UpdateItem", &e))?;
                Ok(Marked::LeaseLost)
            }
            Err(error) => Err(classify("UpdateItem", &error)),
        }
    }

    async fn release_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        owner: &str,
        failure: &str,
    ) -> Result<(), PortError> {
        let (pk, sk) = delivery_key(delivery);
        let failure: String = failure.chars().take(1000).collect();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET #failure = :failure REMOVE #lease, #owner")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#failure", channel_attribute("failure", channel))
            .expression_attribute_names("#lease", channel_attribute("lease", channel))
            .expression_attribute_names("#owner", channel_attribute("owner", channel))
            .expression_attribute_values(":failure", s(failure))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not ours any more: leave the new owner's lease alone.
            Err(error) if is_condition_failure(&error) => Ok(()),
            Err(error) => Err(classify("UpdateItem", &error)),
        }
    }

    /// One UpdateItem: `first_*` only if not there yet (`if_not_exists`,
    /// atomic within the item), `latest_*` always; the stored first copy
    /// comes back (ALL_NEW). Idempotent on retry.
    async fn record_copy(
        &self,
        shared_event_id: &str,
        copy: &EventCopy,
        now: i64,
    ) -> Result<EventCopy, PortError> {
        let account = s(copy.account.as_deref().unwrap_or("unknown"));
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("SHARED#{shared_event_id}")))
            .key("sk", s("COPIES"))
            .update_expression(
                "SET kind = :kind, \
                 first_event_id = if_not_exists(first_event_id, :event), \
                 first_account = if_not_exists(first_account, :account), \
                 first_severity = if_not_exists(first_severity, :severity), \
                 latest_event_id = :event, latest_account = :account, \
                 latest_severity = :severity, expires_at = :expires",
            )
            .expression_attribute_values(":kind", s("shared-event"))
            .expression_attribute_values(":event", s(&copy.event_id))
            .expression_attribute_values(":account", account)
            .expression_attribute_values(":severity", s(copy.severity.as_str()))
            .expression_attribute_values(":expires", self.expires(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        let item = output.attributes.unwrap_or_default();
        let first = |name: &str| {
            get_s(&item, name).ok_or_else(|| corrupt("SHARED", format!("{name} is missing")))
        };
        Ok(EventCopy {
            event_id: first("first_event_id")?.to_string(),
            account: Some(first("first_account")?)
                .filter(|a| *a != "unknown")
                .map(str::to_string),
            severity: first("first_severity")?
                .parse()
                .map_err(|e| corrupt("SHARED", e))?,
        })
    }
}

impl GrantLedger for DynamoLedger {
    async fn record_grant(&self, record: &GrantRecord) -> Result<(), PortError> {
        let mut creation = record.clone();
        creation.removal = None;
        let json = serde_json::to_string(&creation)
            .map_err(|e| PortError::Permanent(format!("cannot encode the grant record: {e}")))?;
        // Readable copies of the main facts (console, report), then the
        // exact record in `creation`. A removal recorded earlier is kept.
        let mut sets = vec![
            ("kind", s("grant")),
            ("key_arn", s(&record.key_arn)),
            ("grant_id", s(&record.grant_id)),
            ("created_event_id", s(&record.created_event_id)),
            ("origin", s(record.origin.as_str())),
            ("creation", s(&json)),
        ];
        let optional = [
            ("account", record.account.as_deref()),
            ("region", record.region.as_deref()),
            ("created_at", record.created_at.as_deref()),
            ("created_by", record.created_by.arn.as_deref()),
            ("service", record.service.as_deref()),
            ("grantee", record.grant.effective_grantee()),
            (
                "retiring_principal",
                record.grant.effective_retiring_principal(),
            ),
            ("grant_name", record.grant.name.as_deref()),
        ];
        sets.extend(
            optional
                .into_iter()
                .filter_map(|(name, value)| value.filter(|v| !v.is_empty()).map(|v| (name, s(v)))),
        );
        let operations: Vec<AttributeValue> = record
            .grant
            .operations
            .iter()
            .map(|op| s(op.as_str()))
            .collect();
        sets.push(("operations", AttributeValue::L(operations)));
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("GRANT#{}", record.key_arn)))
            .key("sk", s(&record.grant_id));
        let stored = set_all(update, sets)
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?
            .attributes
            .unwrap_or_default();
        // The removal, if it arrived first, goes into the index item too.
        let removal = get_s(&stored, "removal");
        self.index_grant(
            &creation,
            Some(json.as_str()),
            removal,
            get_n(&stored, "expires_at"),
        )
        .await
    }

    async fn record_removal(
        &self,
        key_arn: &str,
        grant_id: &str,
        removal: &Removal,
    ) -> Result<Option<GrantRecord>, PortError> {
        let json = serde_json::to_string(removal)
            .map_err(|e| PortError::Permanent(format!("cannot encode the removal: {e}")))?;
        let now = now_epoch();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("GRANT#{key_arn}")))
            .key("sk", s(grant_id))
            .expression_attribute_values(":kind", s("grant"))
            .expression_attribute_values(":key", s(key_arn))
            .expression_attribute_values(":grant", s(grant_id))
            .expression_attribute_values(":removal", s(&json))
            .expression_attribute_values(":action", s(removal.action.as_str()))
            .expression_attribute_values(":event", s(&removal.event_id))
            .expression_attribute_values(":origin", s(removal.origin.as_str()))
            .expression_attribute_values(":expires", self.expires(now))
            .return_values(ReturnValue::AllOld);
        let mut expression = String::from(
            "SET kind = :kind, key_arn = :key, grant_id = :grant, removal = :removal, \
             removal_action = :action, removal_event_id = :event, removal_origin = :origin, \
             expires_at = :expires",
        );
        if let Some(at) = removal.at.as_deref() {
            expression.push_str(", removed_at = :at");
            update = update.expression_attribute_values(":at", s(at));
        }
        if let Some(by) = removal.by.arn.as_deref() {
            expression.push_str(", removed_by = :by");
            update = update.expression_attribute_values(":by", s(by));
        }
        let output = update
            .update_expression(expression)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        let before = record_of(&output.attributes.unwrap_or_default())?;
        if let Some(record) = &before {
            self.index_grant(
                record,
                None,
                Some(&json),
                Some(now + self.retention_seconds),
            )
            .await?;
        }
        Ok(before)
    }

    async fn get_grant(
        &self,
        key_arn: &str,
        grant_id: &str,
    ) -> Result<Option<GrantRecord>, PortError> {
        match self.get(format!("GRANT#{key_arn}"), grant_id).await? {
            Some(item) => record_of(&item),
            None => Ok(None),
        }
    }

    async fn grants_of_key(&self, key_arn: &str) -> Result<Vec<GrantRecord>, PortError> {
        let items = self.query_all(format!("GRANT#{key_arn}"), None).await?;
        records_of(&items)
    }

    async fn grants_to_grantee(
        &self,
        key_arn: &str,
        grantee: &str,
        limit: usize,
    ) -> Result<Vec<GrantRecord>, PortError> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let items = self
            .query_page(&grantee_pk(key_arn, grantee.trim()), None, limit, true)
            .await?;
        records_of(&items)
    }
}

/// `SET` each attribute (by placeholder names and values).
fn set_all(
    mut update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    sets: Vec<(&str, AttributeValue)>,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    let mut expression = Vec::new();
    for (i, (name, value)) in sets.into_iter().enumerate() {
        expression.push(format!("#a{i} = :v{i}"));
        update = update
            .expression_attribute_names(format!("#a{i}"), name)
            .expression_attribute_values(format!(":v{i}"), value);
    }
    update.update_expression(format!("SET {}", expression.join(", ")))
}

/// The records in `items` (items without a known creation are skipped).
fn records_of(items: &[Item]) -> Result<Vec<GrantRecord>, PortError> {
    let mut records = Vec::new();
    for item in items {
        if let Some(record) = record_of(item)? {
            records.push(record);
        }
    }
    Ok(records)
}

/// The partition of a key's grants to one grantee (the correlation index).
fn grantee_pk(key_arn: &str, grantee: &str) -> String {
    format!("KEYGRANTEE#{key_arn}#{grantee}")
}

impl DynamoLedger {
    /// Write (or complete) the correlation index item of a grant: under
    /// `KEYGRANTEE#<key>#<grantee>`, sorted by creation time, the record's
    /// `creation` (when given) and `removal` (when known), expiring with
    /// the grant item. A grant without a grantee is not indexed. Idempotent:
    /// a retry writes the same item.
    async fn index_grant(
        &self,
        record: &GrantRecord,
        creation: Option<&str>,
        removal: Option<&str>,
        expires_at: Option<i64>,
    ) -> Result<(), PortError> {
        let Some(grantee) = grantwatch_core::correlate::correlation_grantee(&record.grant) else {
            return Ok(());
        };
        let mut sets = vec![
            ("kind", s("grant-index")),
            ("key_arn", s(&record.key_arn)),
            ("grant_id", s(&record.grant_id)),
        ];
        sets.extend(creation.map(|json| ("creation", s(json))));
        sets.extend(removal.map(|json| ("removal", s(json))));
        sets.extend(expires_at.map(|at| ("expires_at", n(at))));
        let sort_key = format!(
            "{}#{}",
            record.created_at.as_deref().unwrap_or_default(),
            record.grant_id
        );
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(grantee_pk(&record.key_arn, grantee)))
            .key("sk", s(sort_key));
        set_all(update, sets)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        Ok(())
    }
}

/// Neither kind expires: the deployment time and the report hashes are
/// needed for as long as the stack runs.
impl StackLedger for DynamoLedger {
    async fn record_deployed(&self, at_ms: i64) -> Result<i64, PortError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("STACK"))
            .key("sk", s("DEPLOYED"))
            .update_expression(
                "SET kind = :kind, deployed_at_ms = if_not_exists(deployed_at_ms, :at)",
            )
            .expression_attribute_values(":kind", s("stack"))
            .expression_attribute_values(":at", n(at_ms))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        Ok(output
            .attributes
            .as_ref()
            .and_then(|item| get_n(item, "deployed_at_ms"))
            .unwrap_or(at_ms))
    }

    async fn deployed_at(&self) -> Result<Option<i64>, PortError> {
        let item = self.get("STACK".into(), "DEPLOYED").await?;
        match item {
            None => Ok(None),
            Some(item) => get_n(&item, "deployed_at_ms")
                .map(Some)
                .ok_or_else(|| corrupt("STACK/DEPLOYED", "no deployed_at_ms")),
        }
    }

    async fn record_report_file(&self, location: &str, sha256: &str) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("REPORT"))
            .key("sk", s(location))
            .update_expression("SET kind = :kind, sha256 = :sha, recorded_at = :now")
            .expression_attribute_values(":kind", s("report-file"))
            .expression_attribute_values(":sha", s(sha256))
            .expression_attribute_values(":now", n(now_epoch()))
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        Ok(())
    }

    async fn report_files(&self) -> Result<BTreeMap<String, String>, PortError> {
        let items = self.query_all("REPORT".into(), None).await?;
        let mut files = BTreeMap::new();
        for item in &items {
            let location = get_s(item, "sk").ok_or_else(|| corrupt("REPORT", "no sk"))?;
            let sha = get_s(item, "sha256")
                .ok_or_else(|| corrupt(&format!("REPORT/{location}"), "no sha256"))?;
            files.insert(location.to_string(), sha.to_string());
        }
        Ok(files)
    }
}

impl StormLedger for DynamoLedger {
    async fn count_alert(&self, window: i64) -> Result<u64, PortError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("STORM#{window}")))
            .key("sk", s("COUNT"))
            .update_expression("SET kind = :kind, expires_at = :expires ADD alerts :one")
            .expression_attribute_values(":kind", s("storm"))
            // Counters are only needed for their window: a day is plenty.
            .expression_attribute_values(":expires", n(window + 86_400))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        let count = output
            .attributes
            .as_ref()
            .and_then(|a| get_n(a, "alerts"))
            .ok_or_else(|| corrupt("storm counter", "no count returned"))?;
        Ok(count.max(0) as u64)
    }

    async fn claim_leader(&self, window: i64, event_id: &str) -> Result<bool, PortError> {
        let now = now_epoch();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("DIGEST#{window}")))
            .key("sk", s("DELIVERY"))
            .update_expression(
                "SET kind = :kind, leader = :leader, expires_at = if_not_exists(expires_at, :expires)",
            )
            .condition_expression("attribute_not_exists(leader) OR leader = :leader")
            .expression_attribute_values(":kind", s("digest"))
            .expression_attribute_values(":leader", s(event_id))
            .expression_attribute_values(":expires", self.expires(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failure(&error) => Ok(false),
            Err(error) => Err(classify("UpdateItem", &error)),
        }
    }

    async fn add_to_digest(
        &self,
        window: i64,
        verdict: &Verdict,
    ) -> Result<DigestEntry, PortError> {
        let json = serde_json::to_string(verdict)
            .map_err(|e| PortError::Permanent(format!("cannot encode the verdict: {e}")))?;
        let now = now_epoch();
        let pk = format!("DIGEST#{window}");
        let expires = self.expires(now);
        let build = |e: aws_smithy_types::error::operation::BuildError| {
            PortError::Permanent(format!("cannot build the digest transaction: {e}"))
        };
        // One transaction: the member (once per event), the tallies (only
        // while open), the worst-first index, the pending-window set.
        let member = Put::builder()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s(format!("EVENT#{}", verdict.event_id)))
            .item("kind", s("digest-entry"))
            .item("event_id", s(&verdict.event_id))
            .item("expires_at", expires.clone())
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build)?;
        let severity = verdict.severity.as_str();
        let tallies = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s("DELIVERY"))
            .update_expression(
                "SET kind = :kind, expires_at = if_not_exists(expires_at, :expires) \
                 ADD #total :one, #severity :one",
            )
            .condition_expression("attribute_not_exists(closed_at)")
            .expression_attribute_names("#total", "total")
            .expression_attribute_names("#severity", format!("severity_{severity}"))
            .expression_attribute_values(":kind", s("digest"))
            .expression_attribute_values(":expires", expires.clone())
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(build)?;
        let worst = Put::builder()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s(worst_key(verdict)))
            .item("kind", s("digest-worst"))
            .item("verdict", s(json))
            .item("expires_at", expires.clone())
            .build()
            .map_err(build)?;
        let pending = Update::builder()
            .table_name(&self.table)
            .key("pk", s("STORM#PENDING"))
            .key("sk", s("WINDOWS"))
            .update_expression("SET kind = :kind ADD windows :window")
            .expression_attribute_values(":kind", s("storm-pending"))
            .expression_attribute_values(":window", AttributeValue::Ns(vec![window.to_string()]))
            .build()
            .map_err(build)?;
        let actor = verdict.actor.arn.as_deref().unwrap_or("unknown");
        let key = verdict
            .key_arn
            .as_deref()
            .or(verdict.key.as_deref())
            .unwrap_or("unknown");
        // The verdict before the tallies: an emulator that applies the items
        // one by one (moto) never shows a counted alert missing from the
        // list. DynamoDB applies them atomically either way.
        let mut items = vec![
            TransactWriteItem::builder().put(member).build(),
            TransactWriteItem::builder().put(worst).build(),
            TransactWriteItem::builder().update(tallies).build(),
            TransactWriteItem::builder().update(pending).build(),
        ];
        for (kind, name) in [("actor", actor), ("key", key)] {
            let tally = Update::builder()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(tally_key(kind, name)))
                .update_expression(
                    "SET kind = :kind, #name = :name, expires_at = if_not_exists(expires_at, :expires) \
                     ADD alerts :one",
                )
                .expression_attribute_names("#name", "name")
                .expression_attribute_values(":kind", s("digest-tally"))
                .expression_attribute_values(":name", s(name))
                .expression_attribute_values(":expires", expires.clone())
                .expression_attribute_values(":one", n(1))
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().update(tally).build());
        }
        // Most joins after the close are late alerts: answer them without a
        // transaction that would only be cancelled (cheaper, and a cancelled
        // transaction is where emulators like moto roll back too much).
        if let Some(delivery) = self.get(pk.clone(), "DELIVERY").await? {
            if delivery.contains_key("closed_at") {
                let member = self
                    .get(pk.clone(), &format!("EVENT#{}", verdict.event_id))
                    .await?;
                return Ok(if member.is_some() {
                    DigestEntry::AlreadyIn
                } else {
                    DigestEntry::Closed
                });
            }
        }
        // Concurrent joins of one window conflict on its tallies: DynamoDB
        // cancels all but one; try again a few times before failing.
        let mut conflicts = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(DigestEntry::Added),
                Err(error) => error,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) =
                error.as_service_error()
            {
                let reason = |i: usize| {
                    canceled
                        .cancellation_reasons()
                        .get(i)
                        .and_then(|r| r.code())
                };
                if reason(0) == Some("ConditionalCheckFailed") {
                    return Ok(DigestEntry::AlreadyIn);
                }
                if reason(2) == Some("ConditionalCheckFailed") {
                    return Ok(DigestEntry::Closed);
                }
                let conflict = canceled
                    .cancellation_reasons()
                    .iter()
                    .any(|r| r.code() == Some("TransactionConflict"));
                if conflict && conflicts < TRANSACTION_CONFLICT_RETRIES {
                    conflicts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(
                        10 * u64::from(conflicts) + jitter_ms(),
                    ))
                    .await;
                    continue;
                }
            }
            let classified = classify("TransactWriteItems", &error);
            // Throttling, a 5xx, a dropped connection: the transaction is
            // all-or-nothing, so trying it again is safe.
            if classified.is_transient() && conflicts < TRANSACTION_CONFLICT_RETRIES {
                conflicts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(
                    10 * u64::from(conflicts) + jitter_ms(),
                ))
                .await;
                continue;
            }
            if matches!(
                error.as_service_error(),
                Some(TransactWriteItemsError::TransactionCanceledException(_))
                    | Some(TransactWriteItemsError::TransactionInProgressException(_))
            ) {
                return Err(PortError::Transient(format!(
                    "TransactWriteItems: {}",
                    classify("TransactWriteItems", &error)
                )));
            }
            return Err(classified);
        }
    }

    async fn close_digest(&self, window: i64) -> Result<DigestSummary, PortError> {
        let now = now_epoch();
        let pk = format!("DIGEST#{window}");
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s("DELIVERY"))
            .update_expression(
                "SET kind = :kind, closed_at = if_not_exists(closed_at, :now), \
                 expires_at = if_not_exists(expires_at, :expires)",
            )
            .expression_attribute_values(":kind", s("digest"))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", self.expires(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        let delivery = output.attributes.unwrap_or_default();
        let mut tally = DigestTally {
            total: get_n(&delivery, "total").unwrap_or(0).max(0) as u64,
            ..DigestTally::default()
        };
        for severity in Severity::ALL {
            if let Some(count) = get_n(&delivery, &format!("severity_{}", severity.as_str())) {
                tally.by_severity.insert(severity, count.max(0) as u64);
            }
        }
        let mut named = [0u64; 2];
        for (i, kind) in ["actor", "key"].into_iter().enumerate() {
            let items = self
                .query_page(
                    &pk,
                    Some(&format!("TALLY#{kind}#")),
                    DIGEST_TALLY_NAMES as i32,
                    false,
                )
                .await?;
            let map = if kind == "actor" {
                &mut tally.by_actor
            } else {
                &mut tally.by_key
            };
            for item in &items {
                if let (Some(name), Some(count)) = (get_s(item, "name"), get_n(item, "alerts")) {
                    map.insert(name.to_string(), count.max(0) as u64);
                    named[i] += count.max(0) as u64;
                }
            }
        }
        tally.others = tally
            .total
            .saturating_sub(named[0])
            .max(tally.total.saturating_sub(named[1]));
        let worst = self
            .query_page(&pk, Some("WORST#"), DIGEST_WORST as i32, false)
            .await?
            .iter()
            .map(|item| {
                let json =
                    get_s(item, "verdict").ok_or_else(|| corrupt("digest entry", "no verdict"))?;
                serde_json::from_str(json).map_err(|e| corrupt("digest entry", e))
            })
            .collect::<Result<Vec<Verdict>, PortError>>()?;
        Ok(DigestSummary { tally, worst })
    }

    async fn pending_digests(&self, before: i64, limit: usize) -> Result<Vec<i64>, PortError> {
        let item = self
            .get("STORM#PENDING".to_string(), "WINDOWS")
            .await?
            .unwrap_or_default();
        let mut windows: Vec<i64> = item
            .get("windows")
            .and_then(|v| v.as_ns().ok())
            .map(|ns| ns.iter().filter_map(|w| w.parse().ok()).collect())
            .unwrap_or_default();
        windows.retain(|w| *w < before);
        windows.sort_unstable();
        windows.truncate(limit);
        Ok(windows)
    }

    async fn finish_digest(&self, window: i64) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("STORM#PENDING"))
            .key("sk", s("WINDOWS"))
            .update_expression("DELETE windows :window")
            .expression_attribute_values(":window", AttributeValue::Ns(vec![window.to_string()]))
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        Ok(())
    }
}

/// Conflicting digest joins retried before the invocation fails.
const TRANSACTION_CONFLICT_RETRIES: u32 = 8;

/// A few milliseconds of jitter (from the clock's nanoseconds), so
/// conflicting writers do not retry in step.
fn jitter_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos() % 10))
        .unwrap_or(0)
}

/// Sort key of a digest's worst-first index: most severe first, then by
/// event id.
fn worst_key(verdict: &Verdict) -> String {
    let rank = Severity::ALL.len()
        - Severity::ALL
            .iter()
            .position(|s| *s == verdict.severity)
            .unwrap_or(0);
    format!("WORST#{rank}#{}", verdict.event_id)
}

/// Sort key of one named tally (names cut to stay within key limits).
fn tally_key(kind: &str, name: &str) -> String {
    let name: String = name.chars().take(512).collect();
    format!("TALLY#{kind}#{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn condition_failed() -> UpdateItemError {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .meta(crate::sdk::tests::meta("ConditionalCheckFailedException"))
                .build(),
        )
    }

    #[tokio::test]
    async fn a_lost_channel_race_reads_whether_the_winner_delivered() {
        let update = mock!(aws_sdk_dynamodb::Client::update_item).then_error(condition_failed);
        let delivered = mock!(aws_sdk_dynamodb::Client::get_item)
            .then_output(|| GetItemOutput::builder().item("delivered_sns", n(1)).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update, &delivered]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        let claim = ledger
            .claim_channel(&Delivery::Event("e1".into()), "sns", &lease())
            .await
            .unwrap();
        assert_eq!(claim, ChannelClaim::AlreadyDelivered);

        let leased = mock!(aws_sdk_dynamodb::Client::get_item)
            .then_output(|| GetItemOutput::builder().item("lease_sns", n(150)).build());
        let update = mock!(aws_sdk_dynamodb::Client::update_item).then_error(condition_failed);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update, &leased]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        let claim = ledger
            .claim_channel(&Delivery::Event("e1".into()), "sns", &lease())
            .await
            .unwrap();
        assert_eq!(claim, ChannelClaim::InProgress { until: 150 });
    }

    fn lease() -> Lease {
        Lease {
            owner: "req-1".into(),
            now: 100,
            until: 200,
        }
    }

    #[tokio::test]
    async fn a_lease_is_conditional_on_its_owner_and_on_the_takeover_grace() {
        let update = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                r.condition_expression().is_some_and(|c| {
                    c.contains("#owner = :owner") && c.contains("#lease < :takeover")
                }) && r.expression_attribute_values().is_some_and(|v| {
                    v.get(":takeover") == Some(&n(100 - LEASE_TAKEOVER_GRACE_SECONDS))
                        && v.get(":owner") == Some(&s("req-1"))
                })
            })
            .then_output(|| {
                aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        let claim = ledger
            .claim_channel(&Delivery::Event("e1".into()), "sns", &lease())
            .await
            .unwrap();
        assert_eq!(claim, ChannelClaim::Claimed);
        assert_eq!(update.num_calls(), 1);

        // Marking after a takeover: the conditional update fails, the
        // delivery is still recorded, and reported as a lost lease.
        let conditional = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| r.condition_expression().is_some())
            .then_error(condition_failed);
        let record = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| r.condition_expression().is_none())
            .then_output(|| {
                aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build()
            });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&conditional, &record]
        );
        let ledger = DynamoLedger::new(client, "ledger", 90);
        let marked = ledger
            .mark_delivered(&Delivery::Event("e1".into()), "sns", "req-1", 150)
            .await
            .unwrap();
        assert_eq!(marked, Marked::LeaseLost);
        assert_eq!(record.num_calls(), 1);
    }

    #[tokio::test]
    async fn joining_a_digest_reads_the_transactions_cancellation_reasons() {
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        use aws_sdk_dynamodb::types::CancellationReason;
        let canceled = |codes: [&'static str; 3]| {
            move || {
                let mut error = TransactionCanceledException::builder()
                    .message("Transaction cancelled")
                    .meta(crate::sdk::tests::meta("TransactionCanceledException"));
                for code in codes {
                    error = error
                        .cancellation_reasons(CancellationReason::builder().code(code).build());
                }
                TransactWriteItemsError::TransactionCanceledException(error.build())
            }
        };
        let verdict: Verdict = serde_json::from_value(serde_json::json!({
            "event_id": "e1", "event_name": "CreateGrant", "event_time": null,
            "account": null, "region": null, "key": null, "key_arn": null,
            "grant_id": null, "grant_name": null, "actor": {"arn": null, "type": null, "account": null, "invoked_by": null},
            "source_ip": null, "user_agent": null, "grantee": null, "retiring_principal": null,
            "operations": [], "constraints": null, "origin": "manual", "service": null,
            "evidence": [], "severity": "high", "alert": true, "findings": [],
            "suppressed_by": null, "error_code": null, "dry_run": false
        }))
        .unwrap();
        for (codes, expected) in [
            (
                ["ConditionalCheckFailed", "None", "None"],
                DigestEntry::AlreadyIn,
            ),
            (
                ["None", "None", "ConditionalCheckFailed"],
                DigestEntry::Closed,
            ),
        ] {
            let rule =
                mock!(aws_sdk_dynamodb::Client::transact_write_items).then_error(canceled(codes));
            // The digest is still open when read first.
            let open = mock!(aws_sdk_dynamodb::Client::get_item)
                .then_output(|| GetItemOutput::builder().item("total", n(3)).build());
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&open, &rule]);
            let ledger = DynamoLedger::new(client, "ledger", 90);
            assert_eq!(ledger.add_to_digest(60, &verdict).await.unwrap(), expected);
        }
        // Closed when read first: no transaction at all.
        let closed = mock!(aws_sdk_dynamodb::Client::get_item)
            .match_requests(|r| r.key().and_then(|k| k.get("sk")) == Some(&s("DELIVERY")))
            .then_output(|| GetItemOutput::builder().item("closed_at", n(90)).build());
        let not_member = mock!(aws_sdk_dynamodb::Client::get_item)
            .then_output(|| GetItemOutput::builder().build());
        let never = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .then_error(canceled(["None", "None", "None"]));
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&closed, &not_member, &never]
        );
        let ledger = DynamoLedger::new(client, "ledger", 90);
        assert_eq!(
            ledger.add_to_digest(60, &verdict).await.unwrap(),
            DigestEntry::Closed
        );
        assert_eq!(never.num_calls(), 0);
    }

    #[tokio::test]
    async fn grant_queries_follow_every_page() {
        let record = GrantRecord {
            key_arn: "k".into(),
            grant_id: "g".into(),
            account: None,
            region: None,
            created_event_id: "e".into(),
            created_at: None,
            created_by: Default::default(),
            origin: grantwatch_core::verdict::Origin::Manual,
            service: None,
            grant: Default::default(),
            removal: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        let page_json = json.clone();
        let pages = mock!(aws_sdk_dynamodb::Client::query)
            .sequence()
            .output(move || {
                QueryOutput::builder()
                    .items(HashMap::from([("creation".to_string(), s(&page_json))]))
                    .last_evaluated_key("pk", s("GRANT#k"))
                    .build()
            })
            .output(move || {
                QueryOutput::builder()
                    .items(HashMap::from([("creation".to_string(), s(&json))]))
                    .items(HashMap::from([(
                        "removal_action".to_string(),
                        s("RetireGrant"),
                    )]))
                    .build()
            })
            .build();
        let client = mock_client!(aws_sdk_dynamodb, [&pages]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        let records = ledger.grants_of_key("k").await.unwrap();
        assert_eq!(
            records.len(),
            2,
            "both pages, and the item without a creation skipped"
        );
        assert_eq!(pages.num_calls(), 2);
    }

    #[tokio::test]
    async fn the_deployment_time_is_written_once_and_the_stored_one_returned() {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
        // An earlier cold start wrote 1000: DynamoDB's if_not_exists keeps
        // it, and the ledger answers with it.
        let update = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                r.key().and_then(|k| k.get("pk")) == Some(&s("STACK"))
                    && r.update_expression()
                        == Some(
                            "SET kind = :kind, deployed_at_ms = if_not_exists(deployed_at_ms, :at)",
                        )
                    && r.expression_attribute_values().and_then(|v| v.get(":at")) == Some(&n(5000))
            })
            .then_output(|| {
                UpdateItemOutput::builder()
                    .attributes("deployed_at_ms", n(1000))
                    .build()
            });
        let get = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .item("deployed_at_ms", n(1000))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update, &get]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        assert_eq!(ledger.record_deployed(5000).await.unwrap(), 1000);
        assert_eq!(ledger.deployed_at().await.unwrap(), Some(1000));
        assert_eq!(update.num_calls(), 1);
    }

    #[tokio::test]
    async fn report_hashes_are_read_from_every_page_and_a_broken_item_is_an_error() {
        let item = |location: &str, sha: Option<&str>| {
            let mut item = HashMap::from([("sk".to_string(), s(location))]);
            if let Some(sha) = sha {
                item.insert("sha256".to_string(), s(sha));
            }
            item
        };
        let pages = mock!(aws_sdk_dynamodb::Client::query)
            .sequence()
            .output(move || {
                QueryOutput::builder()
                    .items(item("reports/2026-11-21/report.json", Some("aa")))
                    .last_evaluated_key("pk", s("REPORT"))
                    .build()
            })
            .output(move || {
                QueryOutput::builder()
                    .items(item("reports/2026-11-28/report.json", Some("bb")))
                    .build()
            })
            .output(move || {
                QueryOutput::builder()
                    .items(item("reports/2026-11-28/report.json", None))
                    .build()
            })
            .build();
        let client = mock_client!(aws_sdk_dynamodb, [&pages]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        let files = ledger.report_files().await.unwrap();
        assert_eq!(
            files,
            BTreeMap::from([
                (
                    "reports/2026-11-21/report.json".to_string(),
                    "aa".to_string()
                ),
                (
                    "reports/2026-11-28/report.json".to_string(),
                    "bb".to_string()
                ),
            ])
        );
        assert!(
            ledger.report_files().await.is_err(),
            "an item without a hash is not a match"
        );
    }

    fn record(grant_id: &str, grantee: &str, created_at: &str) -> GrantRecord {
        GrantRecord {
            key_arn: "k".into(),
            grant_id: grant_id.into(),
            account: None,
            region: None,
            created_event_id: format!("e-{grant_id}"),
            created_at: Some(created_at.into()),
            created_by: Default::default(),
            origin: grantwatch_core::verdict::Origin::Manual,
            service: None,
            grant: grantwatch_core::grant::GrantFacts {
                grantee: Some(grantee.into()),
                ..Default::default()
            },
            removal: None,
        }
    }

    fn pk_of(key: Option<&HashMap<String, AttributeValue>>) -> Option<String> {
        key.and_then(|k| k.get("pk"))
            .and_then(|v| v.as_s().ok())
            .cloned()
    }

    #[tokio::test]
    async fn a_grant_is_indexed_by_key_and_grantee_with_a_removal_that_came_first() {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
        let removal = r#"{"action":"RevokeGrant","event_id":"r1","at":"2026-11-28T10:05:00Z","by":{},"origin":"manual"}"#;
        let main = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| pk_of(r.key()).as_deref() == Some("GRANT#k"))
            .then_output(move || {
                UpdateItemOutput::builder()
                    .attributes("removal", s(removal))
                    .attributes("expires_at", n(99))
                    .build()
            });
        let index = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(move |r| {
                let values = r.expression_attribute_values().cloned().unwrap_or_default();
                pk_of(r.key()).as_deref() == Some("KEYGRANTEE#k#arn:aws:iam::111122223333:role/app")
                    && r.key().and_then(|k| k.get("sk")) == Some(&s("2026-11-28T10:00:00Z#g1"))
                    && values.values().any(|v| v == &s(removal))
                    && values.values().any(|v| v == &n(99))
                    && values.values().any(|v| {
                        v.as_s()
                            .is_ok_and(|t| t.contains("\"created_event_id\":\"e-g1\""))
                    })
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&main, &index]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        ledger
            .record_grant(&record(
                "g1",
                " arn:aws:iam::111122223333:role/app ",
                "2026-11-28T10:00:00Z",
            ))
            .await
            .unwrap();
        assert_eq!((main.num_calls(), index.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn grants_to_a_grantee_are_one_bounded_newest_first_query() {
        let json = serde_json::to_string(&record("g2", "app", "2026-11-28T10:02:00Z")).unwrap();
        let query = mock!(aws_sdk_dynamodb::Client::query)
            .match_requests(|r| {
                r.scan_index_forward() == Some(false)
                    && r.limit() == Some(2)
                    && r.consistent_read() == Some(true)
                    && r.expression_attribute_values().and_then(|v| v.get(":pk"))
                        == Some(&s("KEYGRANTEE#k#app"))
            })
            .then_output(move || {
                QueryOutput::builder()
                    .items(HashMap::from([("creation".to_string(), s(&json))]))
                    // An index item whose creation is not known yet.
                    .items(HashMap::from([("removal".to_string(), s("{}"))]))
                    .last_evaluated_key("pk", s("KEYGRANTEE#k#app"))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&query]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        let records = ledger.grants_to_grantee("k", " app", 2).await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].grant_id, "g2");
        assert_eq!(
            query.num_calls(),
            1,
            "more pages are not read past the limit"
        );
    }

    #[tokio::test]
    async fn a_copy_of_a_cross_account_call_gets_the_first_copy_back() {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
        let update = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                pk_of(r.key()).as_deref() == Some("SHARED#s1")
                    && r.update_expression().is_some_and(|e| {
                        e.contains("first_event_id = if_not_exists(first_event_id, :event)")
                            && e.contains("latest_event_id = :event")
                    })
            })
            .then_output(|| {
                UpdateItemOutput::builder()
                    .attributes("first_event_id", s("e1"))
                    .attributes("first_account", s("111122223333"))
                    .attributes("first_severity", s("high"))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        let copy = EventCopy {
            event_id: "e2".into(),
            account: Some("444455556666".into()),
            severity: Severity::Critical,
        };
        let first = ledger.record_copy("s1", &copy, 100).await.unwrap();
        assert_eq!(
            first,
            EventCopy {
                event_id: "e1".into(),
                account: Some("111122223333".into()),
                severity: Severity::High,
            }
        );
        // An item without a readable first copy is an error, not a guess.
        let broken = mock!(aws_sdk_dynamodb::Client::update_item).then_output(|| {
            UpdateItemOutput::builder()
                .attributes("first_event_id", s("e1"))
                .attributes("first_account", s("111122223333"))
                .attributes("first_severity", s("loud"))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&broken]);
        let ledger = DynamoLedger::new(client, "ledger", 90);
        assert!(ledger.record_copy("s1", &copy, 100).await.is_err());
    }
}
