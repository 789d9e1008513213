//! The grant ledger port (idempotency, removal context, provenance, storm
//! control), and an in-memory ledger for unit tests.
//!
//! Delivery is claimed per channel with a lease, so two concurrent
//! invocations with the same event never both send on a channel, and a
//! retry never resends on a channel already delivered.

use crate::ports::PortError;
use crate::record::{GrantRecord, Removal};
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;

/// What is being delivered: one event's alert, or one storm window's digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Delivery {
    Event(String),
    /// The digest of the storm window starting at this epoch second.
    Digest(i64),
}

/// How an alerting event is (or was) announced; stored with the event so a
/// retry makes the same choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum AlertMode {
    /// Its own message on each channel.
    Individual,
    /// Part of the digest of the window starting at `window`.
    Digest { window: i64 },
    /// Part of the digest, and the one invocation that posts it.
    DigestLeader { window: i64 },
}

/// The result of trying to take a channel for one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelClaim {
    /// Ours to send; call `delivered` or `release` after.
    Claimed,
    AlreadyDelivered,
    /// Another invocation holds the lease (until the given epoch second).
    InProgress {
        until: i64,
    },
}

/// The ledger's memory of one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventState {
    /// True when this call created the event's entry.
    pub first_seen: bool,
    pub mode: Option<AlertMode>,
    pub delivered: BTreeSet<String>,
}

/// A small async trait over the ledger table.
pub trait Ledger: Send + Sync {
    /// Record that `event_id` was seen (conditional create); its state.
    fn claim_event(
        &self,
        event_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<EventState, PortError>> + Send;

    /// Store how the event is announced (first writer wins); the stored mode.
    fn set_alert_mode(
        &self,
        event_id: &str,
        mode: AlertMode,
    ) -> impl Future<Output = Result<AlertMode, PortError>> + Send;

    /// Take `channel` for `delivery` until `lease_until` (epoch seconds),
    /// unless delivered already or leased by someone else.
    fn claim_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        now: i64,
        lease_until: i64,
    ) -> impl Future<Output = Result<ChannelClaim, PortError>> + Send;

    /// The channel delivered `delivery`: never send it again.
    fn mark_delivered(
        &self,
        delivery: &Delivery,
        channel: &str,
        now: i64,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Sending failed: give the lease back so a retry can send at once.
    /// `permanent` also records the failure for operators.
    fn release_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        failure: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Record a created grant (keeps a removal recorded earlier).
    fn record_grant(
        &self,
        record: &GrantRecord,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Record a grant's removal; the ledger's record of the grant before it,
    /// if its creation was known.
    fn record_removal(
        &self,
        key_arn: &str,
        grant_id: &str,
        removal: &Removal,
    ) -> impl Future<Output = Result<Option<GrantRecord>, PortError>> + Send;

    fn get_grant(
        &self,
        key_arn: &str,
        grant_id: &str,
    ) -> impl Future<Output = Result<Option<GrantRecord>, PortError>> + Send;

    /// Every record of one key (creations known to the ledger).
    fn grants_of_key(
        &self,
        key_arn: &str,
    ) -> impl Future<Output = Result<Vec<GrantRecord>, PortError>> + Send;

    /// Count one more alerting event in the storm window; the new count.
    fn count_alert(&self, window: i64) -> impl Future<Output = Result<u64, PortError>> + Send;

    /// Add an alert to the window's digest. `false` when the digest was
    /// already closed (the caller then alerts on its own).
    fn add_to_digest(
        &self,
        window: i64,
        verdict: &Verdict,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Close the window's digest (idempotent), then return every alert in it.
    fn close_digest(
        &self,
        window: i64,
    ) -> impl Future<Output = Result<Vec<Verdict>, PortError>> + Send;
}

/// The ledger in memory, with the same conditional semantics as the
/// DynamoDB one. For unit tests and the CLI's dry runs.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    state: Mutex<MemoryState>,
    /// Fail every call with this error (outage tests).
    pub fail_with: Mutex<Option<PortError>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    events: BTreeMap<String, EventState>,
    deliveries: BTreeMap<(Delivery, String), DeliveryState>,
    grants: BTreeMap<(String, String), StoredGrant>,
    storm_counts: BTreeMap<i64, u64>,
    digests: BTreeMap<i64, (bool, Vec<Verdict>)>,
}

#[derive(Debug, Default, Clone)]
struct DeliveryState {
    delivered: bool,
    lease_until: Option<i64>,
    last_failure: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct StoredGrant {
    created: Option<GrantRecord>,
    removal: Option<Removal>,
}

impl StoredGrant {
    fn record(&self) -> Option<GrantRecord> {
        self.created.clone().map(|mut record| {
            record.removal = self.removal.clone();
            record
        })
    }
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> Result<T, PortError> {
        if let Some(error) = lock(&self.fail_with).clone() {
            return Err(error);
        }
        Ok(f(&mut lock(&self.state)))
    }

    /// Test helper: ids of every event the ledger has seen.
    pub fn event_ids(&self) -> Vec<String> {
        lock(&self.state).events.keys().cloned().collect()
    }

    /// Test helper: the last failure recorded for a channel.
    pub fn last_failure(&self, delivery: &Delivery, channel: &str) -> Option<String> {
        lock(&self.state)
            .deliveries
            .get(&(delivery.clone(), channel.to_string()))
            .and_then(|d| d.last_failure.clone())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ledger for MemoryLedger {
    async fn claim_event(&self, event_id: &str, _now: i64) -> Result<EventState, PortError> {
        self.with(|s| {
            let mut first_seen = false;
            let event = s.events.entry(event_id.to_string()).or_insert_with(|| {
                first_seen = true;
                EventState::default()
            });
            let mut state = event.clone();
            state.first_seen = first_seen;
            state.delivered = s
                .deliveries
                .iter()
                .filter(|((d, _), st)| *d == Delivery::Event(event_id.to_string()) && st.delivered)
                .map(|((_, channel), _)| channel.clone())
                .collect();
            state
        })
    }

    async fn set_alert_mode(
        &self,
        event_id: &str,
        mode: AlertMode,
    ) -> Result<AlertMode, PortError> {
        self.with(|s| {
            let event = s.events.entry(event_id.to_string()).or_default();
            *event.mode.get_or_insert(mode)
        })
    }

    async fn claim_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<ChannelClaim, PortError> {
        self.with(|s| {
            let state = s
                .deliveries
                .entry((delivery.clone(), channel.to_string()))
                .or_default();
            if state.delivered {
                return ChannelClaim::AlreadyDelivered;
            }
            match state.lease_until {
                Some(until) if until > now => ChannelClaim::InProgress { until },
                _ => {
                    state.lease_until = Some(lease_until);
                    ChannelClaim::Claimed
                }
            }
        })
    }

    async fn mark_delivered(
        &self,
        delivery: &Delivery,
        channel: &str,
        _now: i64,
    ) -> Result<(), PortError> {
        self.with(|s| {
            let state = s
                .deliveries
                .entry((delivery.clone(), channel.to_string()))
                .or_default();
            state.delivered = true;
            state.lease_until = None;
        })
    }

    async fn release_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        failure: &str,
    ) -> Result<(), PortError> {
        self.with(|s| {
            let state = s
                .deliveries
                .entry((delivery.clone(), channel.to_string()))
                .or_default();
            state.lease_until = None;
            state.last_failure = Some(failure.to_string());
        })
    }

    async fn record_grant(&self, record: &GrantRecord) -> Result<(), PortError> {
        self.with(|s| {
            let stored = s
                .grants
                .entry((record.key_arn.clone(), record.grant_id.clone()))
                .or_default();
            let mut created = record.clone();
            created.removal = None;
            stored.created = Some(created);
        })
    }

    async fn record_removal(
        &self,
        key_arn: &str,
        grant_id: &str,
        removal: &Removal,
    ) -> Result<Option<GrantRecord>, PortError> {
        self.with(|s| {
            let stored = s
                .grants
                .entry((key_arn.to_string(), grant_id.to_string()))
                .or_default();
            let before = stored.record();
            stored.removal = Some(removal.clone());
            before
        })
    }

    async fn get_grant(
        &self,
        key_arn: &str,
        grant_id: &str,
    ) -> Result<Option<GrantRecord>, PortError> {
        self.with(|s| {
            s.grants
                .get(&(key_arn.to_string(), grant_id.to_string()))
                .and_then(StoredGrant::record)
        })
    }

    async fn grants_of_key(&self, key_arn: &str) -> Result<Vec<GrantRecord>, PortError> {
        self.with(|s| {
            s.grants
                .iter()
                .filter(|((key, _), _)| key == key_arn)
                .filter_map(|(_, stored)| stored.record())
                .collect()
        })
    }

    async fn count_alert(&self, window: i64) -> Result<u64, PortError> {
        self.with(|s| {
            let count = s.storm_counts.entry(window).or_default();
            *count += 1;
            *count
        })
    }

    async fn add_to_digest(&self, window: i64, verdict: &Verdict) -> Result<bool, PortError> {
        self.with(|s| {
            let (closed, alerts) = s.digests.entry(window).or_default();
            if *closed {
                return false;
            }
            if !alerts.iter().any(|v| v.event_id == verdict.event_id) {
                alerts.push(verdict.clone());
            }
            true
        })
    }

    async fn close_digest(&self, window: i64) -> Result<Vec<Verdict>, PortError> {
        self.with(|s| {
            let (closed, alerts) = s.digests.entry(window).or_default();
            *closed = true;
            alerts.clone()
        })
    }
}
