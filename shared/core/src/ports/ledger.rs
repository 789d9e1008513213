//! The grant ledger ports, split by concern so each use case takes only
//! what it needs, and an in-memory ledger (a real adapter: the CLI uses it).
//!
//! - [`EventLedger`]: events seen, their alert mode, and per-channel
//!   delivery leases that have an owner;
//! - [`GrantLedger`]: the record of each grant (creation, removal);
//! - [`StormLedger`]: storm windows, their digest leader and running tallies;
//! - [`StackLedger`]: grantwatch's own bookkeeping: when it was deployed,
//!   and the SHA-256 of every report file it stored.
//!
//! [`Ledger`] is all three (blanket-implemented), for the callers that use
//! every part.

use crate::ports::PortError;
use crate::record::{GrantRecord, Removal};
use crate::verdict::{Severity, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;

/// A lease may be taken from its owner only this long after it ran out, so
/// clocks up to this far apart never let two invocations send at once.
pub const LEASE_TAKEOVER_GRACE_SECONDS: i64 = 30;

/// The alerts a digest carries in full (the worst first); the others are
/// only counted in its tallies. Bounded, so a digest of any size costs the
/// same memory (a few MB at most); large enough that the renderers, which
/// still count the verdicts they are given, see every alert of any but
/// the largest storms (they should read `Digest::tally` for the totals).
pub const DIGEST_WORST: usize = 1000;

/// Distinct actors and keys a digest tallies by name; the rest are counted
/// under [`DigestTally::others`].
pub const DIGEST_TALLY_NAMES: usize = 50;

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
    /// Part of the digest, and the invocation elected to post it.
    DigestLeader { window: i64 },
}

/// A channel lease asked for: who, when, until when (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The invocation's request id.
    pub owner: String,
    pub now: i64,
    pub until: i64,
}

/// The result of trying to take a channel for one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelClaim {
    /// Ours to send; call `mark_delivered` or `release_channel` after.
    Claimed,
    /// Ours to send, after `attempts` earlier claims that did not record a
    /// delivery (a lease taken over, a failure released): each may have
    /// sent, so a send now is counted as that many possible duplicates.
    /// The count is kept in the ledger, so crashed attempts are counted too.
    Retried {
        attempts: u64,
    },
    AlreadyDelivered,
    /// Another invocation holds the lease (until the given epoch second).
    InProgress {
        until: i64,
    },
}

/// What `mark_delivered` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// We held the lease: recorded, and nobody else will send.
    Recorded,
    /// The lease had been taken over (we were past it): recorded, but the
    /// other owner may have sent too. A possible duplicate, counted.
    LeaseLost,
}

/// The ledger's memory of one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventState {
    /// True when this call created the event's entry.
    pub first_seen: bool,
    pub mode: Option<AlertMode>,
    pub delivered: BTreeSet<String>,
}

/// Where an alert stands with its window's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestEntry {
    /// Counted in the digest now.
    Added,
    /// Counted before (a retry or a duplicate delivery): nothing to do.
    AlreadyIn,
    /// The digest closed before this alert was counted: it alerts alone.
    Closed,
}

/// Running tallies of a digest, kept in the ledger as alerts join, so a
/// digest of any size is summarised without reading its members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestTally {
    pub total: u64,
    pub by_severity: BTreeMap<Severity, u64>,
    /// At most [`DIGEST_TALLY_NAMES`] names each.
    pub by_actor: BTreeMap<String, u64>,
    pub by_key: BTreeMap<String, u64>,
    /// Alerts whose actor or key did not fit the named tallies.
    pub others: u64,
}

impl DigestTally {
    /// Count one alert.
    pub fn add(&mut self, verdict: &Verdict) {
        self.total += 1;
        *self.by_severity.entry(verdict.severity).or_default() += 1;
        let actor = verdict
            .actor
            .arn
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let key = verdict
            .key_arn
            .clone()
            .or_else(|| verdict.key.clone())
            .unwrap_or_else(|| "unknown".into());
        let mut fitted = bump(&mut self.by_actor, actor);
        fitted &= bump(&mut self.by_key, key);
        if !fitted {
            self.others += 1;
        }
    }
}

fn bump(map: &mut BTreeMap<String, u64>, name: String) -> bool {
    if let Some(count) = map.get_mut(&name) {
        *count += 1;
        true
    } else if map.len() < DIGEST_TALLY_NAMES {
        map.insert(name, 1);
        true
    } else {
        false
    }
}

/// A closed digest: its tallies and its worst alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestSummary {
    pub tally: DigestTally,
    /// At most [`DIGEST_WORST`], most severe first.
    pub worst: Vec<Verdict>,
}

/// One copy of a cross-account call: CloudTrail writes it into both
/// accounts with the same `sharedEventID`, each copy with its own event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCopy {
    pub event_id: String,
    /// The account that received this copy (`recipientAccountId`).
    pub account: Option<String>,
    /// The severity this copy was judged at.
    pub severity: Severity,
}

/// Events, their alert mode, and per-channel delivery leases.
pub trait EventLedger: Send + Sync {
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

    /// Take `channel` for `delivery` for `lease.owner` until `lease.until`,
    /// unless delivered already or leased by another owner whose lease has
    /// not ended [`LEASE_TAKEOVER_GRACE_SECONDS`] ago. The same owner may
    /// claim again.
    fn claim_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        lease: &Lease,
    ) -> impl Future<Output = Result<ChannelClaim, PortError>> + Send;

    /// The channel delivered `delivery`: never send it again. Says whether
    /// `owner` still held the lease.
    fn mark_delivered(
        &self,
        delivery: &Delivery,
        channel: &str,
        owner: &str,
        now: i64,
    ) -> impl Future<Output = Result<Marked, PortError>> + Send;

    /// Sending failed: give the lease back (only if `owner` holds it) so a
    /// retry can send at once, and record the failure for operators.
    fn release_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        owner: &str,
        failure: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Record `copy` of the cross-account call `shared_event_id`: the first
    /// copy recorded stays the first (atomically: of two concurrent copies
    /// one wins; a retry of the first finds itself), and the latest copy is
    /// kept beside it. Returns the first copy.
    fn record_copy(
        &self,
        shared_event_id: &str,
        copy: &EventCopy,
        now: i64,
    ) -> impl Future<Output = Result<EventCopy, PortError>> + Send;
}

/// The record of each grant: the watcher writes it, the report and
/// `explain` read it.
pub trait GrantLedger: Send + Sync {
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

    /// The records of the grants to `grantee` (trimmed, as
    /// [`crate::correlate::correlation_grantee`]) on one key, live and
    /// removed, newest creation first, at most `limit`: the bounded read
    /// behind real-time correlation (duplicate, burst and persistence all
    /// need the same key and grantee).
    fn grants_to_grantee(
        &self,
        key_arn: &str,
        grantee: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<GrantRecord>, PortError>> + Send;
}

/// Storm windows: alert counts, the digest's leader, its tallies.
pub trait StormLedger: Send + Sync {
    /// Count one more alerting event in the storm window; the new count.
    /// (Not idempotent: the event's stored alert mode makes retries skip
    /// it; a crash between the two over-counts by one, which only moves
    /// alerts into the digest sooner.)
    fn count_alert(&self, window: i64) -> impl Future<Output = Result<u64, PortError>> + Send;

    /// Elect `event_id` to post the window's digest (conditional put): the
    /// same event wins again on a retry; `false` for any other.
    fn claim_leader(
        &self,
        window: i64,
        event_id: &str,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Count an alert in the window's digest, once per event, unless the
    /// digest is closed. Also marks the window as having a digest to post.
    fn add_to_digest(
        &self,
        window: i64,
        verdict: &Verdict,
    ) -> impl Future<Output = Result<DigestEntry, PortError>> + Send;

    /// Close the window's digest (idempotent); its tallies and worst alerts.
    fn close_digest(
        &self,
        window: i64,
    ) -> impl Future<Output = Result<DigestSummary, PortError>> + Send;

    /// Windows before `before` whose digest is not yet posted on every
    /// channel (at most `limit`, oldest first).
    fn pending_digests(
        &self,
        before: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<i64>, PortError>> + Send;

    /// The window's digest is posted on every channel: no longer pending.
    fn finish_digest(&self, window: i64) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// grantwatch's own bookkeeping: the deployment time (the report flags
/// grants created after it that the watcher never saw) and the SHA-256 of
/// each stored report file (the report's diff trusts a previous report only
/// if its hash matches). Not part of [`Ledger`]: only the watcher's cold
/// start and the report use it.
pub trait StackLedger: Send + Sync {
    /// Record the deployment time (epoch milliseconds) unless one is
    /// recorded already (conditional put: the first writer wins). Returns
    /// the time the ledger holds afterwards.
    fn record_deployed(&self, at_ms: i64) -> impl Future<Output = Result<i64, PortError>> + Send;

    /// The recorded deployment time, if any.
    fn deployed_at(&self) -> impl Future<Output = Result<Option<i64>, PortError>> + Send;

    /// Record a stored report file: its location (an S3 key) and the
    /// lower-case hex SHA-256 of its bytes. A later store at the same
    /// location replaces the record.
    fn record_report_file(
        &self,
        location: &str,
        sha256: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Every recorded report file: location → SHA-256.
    fn report_files(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, PortError>> + Send;
}

/// The whole ledger: events, grants and storm windows.
pub trait Ledger: EventLedger + GrantLedger + StormLedger {}

impl<T: EventLedger + GrantLedger + StormLedger> Ledger for T {}

/// The ledger in memory, with the same conditional semantics as the
/// DynamoDB one. For the CLI's dry runs and for tests.
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
    digests: BTreeMap<i64, MemoryDigest>,
    deployed_at: Option<i64>,
    report_files: BTreeMap<String, String>,
    /// Cross-account calls: (first copy, latest copy) by `sharedEventID`.
    copies: BTreeMap<String, (EventCopy, EventCopy)>,
}

#[derive(Debug, Default)]
struct MemoryDigest {
    leader: Option<String>,
    closed: bool,
    pending: bool,
    tally: DigestTally,
    members: BTreeSet<String>,
    worst: Vec<Verdict>,
}

#[derive(Debug, Default, Clone)]
struct DeliveryState {
    delivered: bool,
    lease: Option<(String, i64)>,
    /// Claims that took the lease.
    attempts: u64,
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

    /// Ids of every event the ledger has seen.
    pub fn event_ids(&self) -> Vec<String> {
        lock(&self.state).events.keys().cloned().collect()
    }

    /// The last failure recorded for a channel.
    pub fn last_failure(&self, delivery: &Delivery, channel: &str) -> Option<String> {
        lock(&self.state)
            .deliveries
            .get(&(delivery.clone(), channel.to_string()))
            .and_then(|d| d.last_failure.clone())
    }

    /// Whether `channel` is recorded as having delivered `delivery`.
    pub fn is_delivered(&self, delivery: &Delivery, channel: &str) -> bool {
        lock(&self.state)
            .deliveries
            .get(&(delivery.clone(), channel.to_string()))
            .is_some_and(|d| d.delivered)
    }

    /// Sends that may have repeated an earlier one, as the ledger keeps
    /// them: over every delivery and channel, claims beyond the first.
    pub fn possible_duplicates(&self) -> u64 {
        lock(&self.state)
            .deliveries
            .values()
            .map(|d| d.attempts.saturating_sub(1))
            .sum()
    }

    /// The owner and end of the channel's lease, if leased.
    pub fn lease(&self, delivery: &Delivery, channel: &str) -> Option<(String, i64)> {
        lock(&self.state)
            .deliveries
            .get(&(delivery.clone(), channel.to_string()))
            .and_then(|d| d.lease.clone())
    }

    /// The event ids counted in a window's digest (an audit view; the
    /// watcher itself only reads tallies).
    pub fn digest_members(&self, window: i64) -> BTreeSet<String> {
        lock(&self.state)
            .digests
            .get(&window)
            .map(|d| d.members.clone())
            .unwrap_or_default()
    }

    /// Every window with a digest, and whether it is closed.
    pub fn digest_windows(&self) -> Vec<(i64, bool)> {
        lock(&self.state)
            .digests
            .iter()
            .map(|(w, d)| (*w, d.closed))
            .collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EventLedger for MemoryLedger {
    async fn claim_event(&self, event_id: &str, _now: i64) -> Result<EventState, PortError> {
        self.with(|s| {
            let mut first_seen = false;
            let event = s.events.entry(event_id.to_string()).or_insert_with(|| {
                first_seen = true;
                EventState::default()
            });
            let mut state = event.clone();
            state.first_seen = first_seen;
            let delivery = Delivery::Event(event_id.to_string());
            state.delivered = s
                .deliveries
                .range((delivery.clone(), String::new())..)
                .take_while(|((d, _), _)| *d == delivery)
                .filter(|(_, st)| st.delivered)
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
        lease: &Lease,
    ) -> Result<ChannelClaim, PortError> {
        self.with(|s| {
            let state = s
                .deliveries
                .entry((delivery.clone(), channel.to_string()))
                .or_default();
            if state.delivered {
                return ChannelClaim::AlreadyDelivered;
            }
            match &state.lease {
                Some((owner, until))
                    if *owner != lease.owner
                        && lease.now <= until + LEASE_TAKEOVER_GRACE_SECONDS =>
                {
                    return ChannelClaim::InProgress { until: *until };
                }
                // The same owner again: not a new attempt.
                Some((owner, _)) if *owner == lease.owner => {}
                _ => state.attempts += 1,
            }
            state.lease = Some((lease.owner.clone(), lease.until));
            match state.attempts - 1 {
                0 => ChannelClaim::Claimed,
                attempts => ChannelClaim::Retried { attempts },
            }
        })
    }

    async fn mark_delivered(
        &self,
        delivery: &Delivery,
        channel: &str,
        owner: &str,
        _now: i64,
    ) -> Result<Marked, PortError> {
        self.with(|s| {
            let state = s
                .deliveries
                .entry((delivery.clone(), channel.to_string()))
                .or_default();
            let held = !state.delivered
                && state
                    .lease
                    .as_ref()
                    .is_some_and(|(holder, _)| holder == owner);
            state.delivered = true;
            if held {
                state.lease = None;
                Marked::Recorded
            } else {
                Marked::LeaseLost
            }
        })
    }

    async fn release_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        owner: &str,
        failure: &str,
    ) -> Result<(), PortError> {
        self.with(|s| {
            let state = s
                .deliveries
                .entry((delivery.clone(), channel.to_string()))
                .or_default();
            if state
                .lease
                .as_ref()
                .is_some_and(|(holder, _)| holder == owner)
            {
                state.lease = None;
                state.last_failure = Some(failure.to_string());
            }
        })
    }

    async fn record_copy(
        &self,
        shared_event_id: &str,
        copy: &EventCopy,
        _now: i64,
    ) -> Result<EventCopy, PortError> {
        self.with(|s| {
            let entry = s
                .copies
                .entry(shared_event_id.to_string())
                .or_insert_with(|| (copy.clone(), copy.clone()));
            entry.1 = copy.clone();
            entry.0.clone()
        })
    }
}

impl GrantLedger for MemoryLedger {
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

    async fn grants_to_grantee(
        &self,
        key_arn: &str,
        grantee: &str,
        limit: usize,
    ) -> Result<Vec<GrantRecord>, PortError> {
        let mut records: Vec<GrantRecord> = self
            .grants_of_key(key_arn)
            .await?
            .into_iter()
            .filter(|r| crate::correlate::correlation_grantee(&r.grant) == Some(grantee.trim()))
            .collect();
        // Newest creation first (RFC 3339 times in CloudTrail's one format
        // sort as text), as the DynamoDB ledger's index does.
        records.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.grant_id.cmp(&a.grant_id))
        });
        records.truncate(limit);
        Ok(records)
    }
}

impl StormLedger for MemoryLedger {
    async fn count_alert(&self, window: i64) -> Result<u64, PortError> {
        self.with(|s| {
            let count = s.storm_counts.entry(window).or_default();
            *count += 1;
            *count
        })
    }

    async fn claim_leader(&self, window: i64, event_id: &str) -> Result<bool, PortError> {
        self.with(|s| {
            let digest = s.digests.entry(window).or_default();
            digest.leader.get_or_insert_with(|| event_id.to_string()) == event_id
        })
    }

    async fn add_to_digest(
        &self,
        window: i64,
        verdict: &Verdict,
    ) -> Result<DigestEntry, PortError> {
        self.with(|s| {
            let digest = s.digests.entry(window).or_default();
            if digest.members.contains(&verdict.event_id) {
                return DigestEntry::AlreadyIn;
            }
            if digest.closed {
                return DigestEntry::Closed;
            }
            digest.members.insert(verdict.event_id.clone());
            digest.tally.add(verdict);
            digest.pending = true;
            keep_worst(&mut digest.worst, verdict);
            DigestEntry::Added
        })
    }

    async fn close_digest(&self, window: i64) -> Result<DigestSummary, PortError> {
        self.with(|s| {
            let digest = s.digests.entry(window).or_default();
            digest.closed = true;
            DigestSummary {
                tally: digest.tally.clone(),
                worst: digest.worst.clone(),
            }
        })
    }

    async fn pending_digests(&self, before: i64, limit: usize) -> Result<Vec<i64>, PortError> {
        self.with(|s| {
            s.digests
                .iter()
                .filter(|(window, d)| **window < before && d.pending)
                .map(|(window, _)| *window)
                .take(limit)
                .collect()
        })
    }

    async fn finish_digest(&self, window: i64) -> Result<(), PortError> {
        self.with(|s| {
            if let Some(digest) = s.digests.get_mut(&window) {
                digest.pending = false;
            }
        })
    }
}

impl StackLedger for MemoryLedger {
    async fn record_deployed(&self, at_ms: i64) -> Result<i64, PortError> {
        self.with(|s| *s.deployed_at.get_or_insert(at_ms))
    }

    async fn deployed_at(&self) -> Result<Option<i64>, PortError> {
        self.with(|s| s.deployed_at)
    }

    async fn record_report_file(&self, location: &str, sha256: &str) -> Result<(), PortError> {
        self.with(|s| {
            s.report_files
                .insert(location.to_string(), sha256.to_string());
        })
    }

    async fn report_files(&self) -> Result<BTreeMap<String, String>, PortError> {
        self.with(|s| s.report_files.clone())
    }
}

/// Keep the [`DIGEST_WORST`] most severe alerts, most severe first (ties:
/// the earlier event id first, so the choice is stable).
pub fn keep_worst(worst: &mut Vec<Verdict>, verdict: &Verdict) {
    let rank = |v: &Verdict| (std::cmp::Reverse(v.severity), v.event_id.clone());
    let at = worst.partition_point(|v| rank(v) < rank(verdict));
    if at < DIGEST_WORST {
        worst.insert(at, verdict.clone());
        worst.truncate(DIGEST_WORST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn the_first_deployment_time_recorded_is_kept() {
        let ledger = MemoryLedger::new();
        assert_eq!(block_on(ledger.deployed_at()).unwrap(), None);
        assert_eq!(block_on(ledger.record_deployed(2_000)).unwrap(), 2_000);
        // A later cold start (or the report) does not move it.
        assert_eq!(block_on(ledger.record_deployed(9_000)).unwrap(), 2_000);
        assert_eq!(block_on(ledger.deployed_at()).unwrap(), Some(2_000));
    }

    #[test]
    fn grants_to_one_grantee_are_read_newest_first_and_bounded() {
        use crate::grant::GrantFacts;
        let ledger = MemoryLedger::new();
        let record = |key: &str, id: &str, grantee: &str, at: &str| GrantRecord {
            key_arn: key.into(),
            grant_id: id.into(),
            account: None,
            region: None,
            created_event_id: format!("e-{id}"),
            created_at: Some(at.into()),
            created_by: Default::default(),
            origin: crate::verdict::Origin::Manual,
            service: None,
            grant: GrantFacts {
                grantee: Some(grantee.into()),
                ..GrantFacts::default()
            },
            removal: None,
        };
        for (key, id, grantee, at) in [
            ("k1", "a", "app", "2026-11-28T10:00:00Z"),
            ("k1", "b", " app ", "2026-11-28T10:02:00Z"),
            ("k1", "c", "app", "2026-11-28T10:01:00Z"),
            ("k1", "d", "other", "2026-11-28T10:03:00Z"),
            ("k2", "e", "app", "2026-11-28T10:04:00Z"),
        ] {
            block_on(ledger.record_grant(&record(key, id, grantee, at))).unwrap();
        }
        let removal = Removal {
            action: crate::event::GrantAction::RevokeGrant,
            event_id: "r".into(),
            at: Some("2026-11-28T11:00:00Z".into()),
            by: Default::default(),
            origin: crate::verdict::Origin::Manual,
        };
        block_on(ledger.record_removal("k1", "a", &removal)).unwrap();
        let ids = |records: Vec<GrantRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.grant_id).collect()
        };
        assert_eq!(
            ids(block_on(ledger.grants_to_grantee("k1", "app", 10)).unwrap()),
            ["b", "c", "a"],
            "same key and (trimmed) grantee, removed ones too, newest first"
        );
        assert_eq!(
            ids(block_on(ledger.grants_to_grantee("k1", "app", 2)).unwrap()),
            ["b", "c"]
        );
        let all = block_on(ledger.grants_to_grantee("k1", "app", 10)).unwrap();
        assert!(
            all[2].removal.is_some(),
            "the removal comes with the record"
        );
    }

    #[test]
    fn the_first_copy_of_a_cross_account_call_stays_first() {
        let ledger = MemoryLedger::new();
        let copy = |id: &str, severity| EventCopy {
            event_id: id.into(),
            account: Some("111122223333".into()),
            severity,
        };
        let first = copy("e1", Severity::High);
        assert_eq!(block_on(ledger.record_copy("s", &first, 1)).unwrap(), first);
        assert_eq!(
            block_on(ledger.record_copy("s", &copy("e2", Severity::Critical), 2)).unwrap(),
            first
        );
        // A retry of either copy finds the same first copy.
        assert_eq!(block_on(ledger.record_copy("s", &first, 3)).unwrap(), first);
        assert_eq!(
            block_on(ledger.record_copy("other", &copy("e2", Severity::Low), 3)).unwrap(),
            copy("e2", Severity::Low)
        );
    }

    #[test]
    fn report_files_are_recorded_by_location() {
        let ledger = MemoryLedger::new();
        block_on(ledger.record_report_file("reports/2026-11-21/report.json", "aa")).unwrap();
        block_on(ledger.record_report_file("reports/2026-11-28/report.json", "bb")).unwrap();
        block_on(ledger.record_report_file("reports/2026-11-28/report.json", "cc")).unwrap();
        let files = block_on(ledger.report_files()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files["reports/2026-11-28/report.json"], "cc");
    }
}
