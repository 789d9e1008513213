//! Watch one grant event: ledger, judgement, alerts.
//!
//! parse (an unreadable KMS grant event still alerts, see
//! [`unparseable`]) → claim the event id in the ledger → judge (with the
//! ledger's record of the grant, for removals, and the key's records for
//! the grantee, for correlation: see [`correlation`]) → record the grant
//! or its removal → settle a cross-account copy (`sharedEventID`) → for an
//! alert, deliver on every channel not yet delivered ([`deliver`]), alone
//! or inside its storm window's digest ([`storm`]).
//!
//! The invocation's result follows each channel's class
//! ([`ChannelClass`]): a mandatory channel that failed or rejected the
//! alert fails the invocation (`DeliveryFailed`, `ChannelRejected`) so it
//! is retried, then kept by the on-failure destination; a best-effort
//! channel's rejection is counted (`DeliveriesRejected`, dimension
//! `Channel`) and the invocation succeeds; a transient failure on any
//! channel fails it. Retries skip the channels already delivered.

pub mod correlation;
pub mod deliver;
pub mod metrics;
mod pipeline;
pub mod storm;
#[cfg(test)]
mod tests;
pub mod unparseable;

pub use self::metrics::{Metrics, METRICS_NAMESPACE};
pub use self::storm::{DIGEST_DELIVERY_RESERVE_MS, DIGEST_SETTLE_MS, OVERDUE_GRACE_MS};
pub use crate::ports::clock::Clock;

use self::correlation::CopyRole;
use self::deliver::{deliver, Delivered};
use self::pipeline::Pipeline;
use self::storm::{join_digest, storm_mode, take_over_overdue, Joined};
use crate::correlate::CorrelationSettings;
use crate::event::{self, GrantAction, GrantEvent, ParseError, Parsed};
use crate::judge::{judge_event, judge_event_with, Policy};
use crate::ports::ledger::{AlertMode, Delivery, EventLedger, GrantLedger, StormLedger};
use crate::ports::notify::{ChannelClass, Digest, DynNotifier, Notice};
use crate::ports::PortError;
use crate::record::{GrantRecord, Removal};
use crate::verdict::{Severity, Verdict};
use serde::Serialize;

/// The watcher's settings (from the environment, validated by `main`).
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The rules in force, replaced when the rules file changes.
    pub rules: crate::rules::LiveRules,
    pub min_alert_severity: Severity,
    /// Alerts per window announced one by one; the rest go to a digest.
    pub storm_threshold: u64,
    pub storm_window_seconds: u64,
    /// grantwatch's own resources (`OWN_RESOURCES`): calls on them are
    /// tampering. `None`: only grant events and the heartbeat are judged.
    pub own_resources: Option<crate::tamper::OwnResources>,
    /// The canary grant (`CANARY_KEY_ARN`), checked on each heartbeat.
    pub canary: Option<crate::ports::canary::Canary>,
    /// The trust zone (`TRUSTED_ACCOUNTS`, resolved once per process).
    pub trust_zone: crate::trust::TrustZone,
    /// Real-time correlation (`BURST_THRESHOLD`, `BURST_WINDOW_MINUTES`,
    /// `PERSISTENCE_HOURS`).
    pub correlation: CorrelationSettings,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            rules: crate::rules::LiveRules::default(),
            min_alert_severity: Severity::Medium,
            storm_threshold: DEFAULT_STORM_THRESHOLD,
            storm_window_seconds: DEFAULT_STORM_WINDOW_SECONDS,
            own_resources: None,
            canary: None,
            trust_zone: crate::trust::TrustZone::Unset,
            correlation: CorrelationSettings::default(),
        }
    }
}

pub const DEFAULT_STORM_THRESHOLD: u64 = 10;
pub const DEFAULT_STORM_WINDOW_SECONDS: u64 = 60;

/// What the watcher works with: the ledger, the channels (each with its
/// class: SNS mandatory, Slack and later ones best effort) and a clock.
pub struct WatchDeps<L, C> {
    pub ledger: L,
    /// Tried in this order on every alert.
    pub notifiers: Vec<Box<dyn DynNotifier>>,
    pub clock: C,
    pub config: WatchConfig,
}

/// One invocation: its request id (the owner of the leases it takes) and
/// its deadline (epoch milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    pub request_id: &'a str,
    pub deadline_ms: i64,
}

/// One channel's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelResult {
    pub channel: String,
    pub class: ChannelClass,
    /// Serialized inline: `{"channel": "slack", "status": "rejected", "detail": "..."}`.
    #[serde(flatten)]
    pub status: ChannelStatus,
}

impl ChannelResult {
    /// Nothing more will be tried on this channel: delivered, or rejected
    /// for good on a best-effort channel.
    pub fn is_settled(&self) -> bool {
        match self.status {
            ChannelStatus::Sent | ChannelStatus::AlreadyDelivered => true,
            ChannelStatus::Rejected(_) => self.class == ChannelClass::BestEffort,
            ChannelStatus::Failed(_) | ChannelStatus::InProgress => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "detail")]
pub enum ChannelStatus {
    Sent,
    AlreadyDelivered,
    /// Another invocation holds the channel's lease.
    InProgress,
    /// A retry may fix it.
    Failed(String),
    /// The channel refused it for good (configuration, permissions).
    Rejected(String),
}

/// How one event was handled (the handler's success response).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum WatchOutcome {
    /// Not a grant event, nor one grantwatch watches: skipped.
    Skipped {
        event_name: Option<String>,
        event_source: Option<String>,
    },
    /// The scheduled heartbeat: recorded (`Heartbeats`), proving that the
    /// rule, its target and the watcher work.
    Heartbeat {
        event_id: String,
        /// The canary bookkeeping, when the canary is on.
        #[serde(skip_serializing_if = "Option::is_none")]
        canary: Option<crate::ports::canary::CanaryCheck>,
    },
    /// Judged and ledgered; `alert` says whether it was announced
    /// (individually, as a digest entry, or as the digest's leader).
    Watched {
        event_id: String,
        event_name: String,
        severity: Severity,
        alert: bool,
        suppressed_by: Option<String>,
        first_seen: bool,
        mode: Option<AlertMode>,
        channels: Vec<ChannelResult>,
        /// Alerts in the digest this invocation posted, if it did.
        digest_size: Option<u64>,
        /// A KMS grant event the parser could not read, alerted as such.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        unparseable: bool,
        /// Sends that may have been duplicated (counted).
        #[serde(skip_serializing_if = "is_zero")]
        possible_duplicates: u64,
        /// Event time → first channel sent, when this invocation sent it.
        #[serde(skip_serializing_if = "Option::is_none")]
        alert_latency_ms: Option<u64>,
        /// The key's records for correlation could not be read: judged
        /// without them (counted: `CorrelationUnavailable`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        correlation_unavailable: bool,
        /// A copy of a cross-account call (`sharedEventID`): which one.
        #[serde(skip_serializing_if = "Option::is_none")]
        cross_account_copy: Option<CopyRole>,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The failures of one invocation, with stable Lambda error types.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WatchError {
    #[error("malformed event: {0}")]
    MalformedEvent(#[from] ParseError),
    #[error("the ledger is unavailable (retry): {0}")]
    LedgerUnavailable(String),
    #[error("the ledger rejected the request (configuration or permissions): {0}")]
    LedgerMisconfigured(String),
    /// The ledger is unavailable; the alert (if any) was sent without
    /// deduplication on `channels`. Error type `LedgerUnavailable`.
    #[error("the ledger is unavailable (retry; alert sent without deduplication): {problem}")]
    LedgerDown {
        problem: String,
        channels: Vec<ChannelResult>,
    },
    /// A mandatory channel refused the alert for good (e.g. SNS
    /// `AuthorizationError`, a disabled topic key). Retried, then kept by
    /// the on-failure destination; other channels were tried.
    #[error("a mandatory channel rejected the alert: {}", describe_failures(.channels))]
    ChannelRejected {
        channels: Vec<ChannelResult>,
        possible_duplicates: u64,
    },
    /// At least one channel failed in a way a retry can fix; the others
    /// were tried and those delivered will not be resent.
    #[error("delivery failed on {}", describe_failures(.channels))]
    DeliveryFailed {
        channels: Vec<ChannelResult>,
        possible_duplicates: u64,
    },
}

impl WatchError {
    /// The Lambda error type (stable: alarms and DLQ tooling match on it).
    pub fn error_type(&self) -> &'static str {
        match self {
            WatchError::MalformedEvent(_) => "MalformedEvent",
            WatchError::LedgerUnavailable(_) | WatchError::LedgerDown { .. } => "LedgerUnavailable",
            WatchError::LedgerMisconfigured(_) => "LedgerMisconfigured",
            WatchError::ChannelRejected { .. } => "ChannelRejected",
            WatchError::DeliveryFailed { .. } => "DeliveryFailed",
        }
    }
}

fn describe_failures(channels: &[ChannelResult]) -> String {
    channels
        .iter()
        .filter_map(|c| match &c.status {
            ChannelStatus::Failed(why) | ChannelStatus::Rejected(why) => {
                Some(format!("{}: {why}", c.channel))
            }
            ChannelStatus::InProgress => Some(format!(
                "{}: another invocation is delivering this event",
                c.channel
            )),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn ledger_error(error: PortError) -> WatchError {
    match error {
        PortError::Transient(why) => WatchError::LedgerUnavailable(why),
        PortError::Permanent(why) => WatchError::LedgerMisconfigured(why),
    }
}

/// What the parser made of the input.
enum Input {
    Event(Box<GrantEvent>),
    /// A KMS grant event the parser could not read: its alert.
    Unparseable(Box<Verdict>),
    /// A call on grantwatch's own resources or a key lifecycle call,
    /// judged by [`pipeline`].
    Pipeline(Box<Verdict>),
}

/// Watch one EventBridge event.
pub async fn watch_event<L, C>(
    payload: &serde_json::Value,
    deps: &WatchDeps<L, C>,
    invocation: &Invocation<'_>,
) -> Result<WatchOutcome, WatchError>
where
    L: EventLedger + GrantLedger + StormLedger,
    C: Clock,
{
    let input = match event::parse_eventbridge_event(payload) {
        Ok(Parsed::Grant(event)) => Input::Event(event),
        Ok(Parsed::NotAGrantEvent {
            event_name,
            event_source,
        }) => {
            // The one place a non-grant event is judged: pipeline tamper, key
            // lifecycle, the heartbeat; anything else is skipped.
            let policy = policy(&deps.config, deps.clock.now_ms());
            match pipeline::judge(payload, deps, &policy).await {
                Pipeline::Judged(verdict) => Input::Pipeline(verdict),
                Pipeline::Heartbeat(id) => return heartbeat(id, deps).await,
                Pipeline::NotWatched => {
                    return Ok(WatchOutcome::Skipped {
                        event_name,
                        event_source,
                    })
                }
            }
        }
        Err(error) => match unparseable::verdict(payload, &error) {
            Some(verdict) => Input::Unparseable(Box::new(verdict)),
            None => return Err(WatchError::MalformedEvent(error)),
        },
    };
    let now_ms = deps.clock.now_ms();
    let event_id = match &input {
        Input::Event(event) => &event.event_id,
        Input::Unparseable(verdict) | Input::Pipeline(verdict) => &verdict.event_id,
    };
    let claimed = deps
        .ledger
        .claim_event(event_id, now_ms.div_euclid(1000))
        .await;
    let state = match claimed {
        Ok(state) => state,
        Err(PortError::Transient(why)) => return degraded(input, why, deps, invocation).await,
        Err(error) => return Err(ledger_error(error)),
    };
    let mut correlation_unavailable = false;
    let mut cross_account_copy = None;
    let (verdict, unparseable) = match input {
        Input::Event(event) => {
            let policy = policy(&deps.config, now_ms);
            let recorded = record_correlated(
                &deps.ledger,
                &event,
                &policy,
                Some(&deps.config.correlation),
            )
            .await;
            match recorded {
                Ok(recorded) => {
                    correlation_unavailable = recorded.correlation_unavailable;
                    let mut verdict =
                        pipeline::canary_leg(recorded.verdict, &event, &deps.config, now_ms).await;
                    cross_account_copy = correlation::settle_copy(
                        &deps.ledger,
                        &event,
                        &mut verdict,
                        now_ms.div_euclid(1000),
                    )
                    .await;
                    (verdict, false)
                }
                Err(WatchError::LedgerUnavailable(why)) => {
                    return degraded(Input::Event(event), why, deps, invocation).await
                }
                Err(error) => return Err(error),
            }
        }
        Input::Unparseable(verdict) => (*verdict, true),
        Input::Pipeline(verdict) => (*verdict, false),
    };

    let mut announced = Announced::default();
    if verdict.alert {
        announce(&verdict, &state, deps, invocation, &mut announced).await?;
    }
    let alert_latency_ms = announced
        .delivered
        .first_sent_ms
        .and_then(|sent| metrics::latency_ms(verdict.event_time.as_deref(), sent));
    finish(&announced.delivered)?;
    Ok(WatchOutcome::Watched {
        event_id: verdict.event_id,
        event_name: verdict.event_name,
        severity: verdict.severity,
        alert: verdict.alert,
        suppressed_by: verdict.suppressed_by,
        first_seen: state.first_seen,
        mode: announced.mode,
        channels: announced.delivered.channels,
        digest_size: announced.digest_size,
        unparseable,
        possible_duplicates: announced.delivered.possible_duplicates,
        alert_latency_ms,
        correlation_unavailable,
        cross_account_copy,
    })
}

/// Record the heartbeat in the ledger (its event item, kept for the
/// retention period): the `Heartbeats` metric and its alarm say whether
/// the path works.
async fn heartbeat<L, C>(id: String, deps: &WatchDeps<L, C>) -> Result<WatchOutcome, WatchError>
where
    L: EventLedger,
    C: Clock,
{
    let event_id = format!("heartbeat:{id}");
    deps.ledger
        .claim_event(&event_id, deps.clock.now_ms().div_euclid(1000))
        .await
        .map_err(ledger_error)?;
    let canary = match &deps.config.canary {
        Some(canary) => Some(pipeline::canary_heartbeat(canary, deps.clock.now_ms()).await),
        None => None,
    };
    Ok(WatchOutcome::Heartbeat { event_id, canary })
}

/// The first evidence line of an alert sent while the ledger is down.
pub const DEDUP_UNAVAILABLE: &str = "possible duplicate: deduplication unavailable";

/// The ledger is unavailable (transient): judge without it (no removal
/// context), send an alert straight to every channel marked
/// [`DEDUP_UNAVAILABLE`], and still fail the invocation, so Lambda's
/// retries and then the on-failure destination keep the event until the
/// ledger records it. Each such send is counted (`DedupUnavailable`).
async fn degraded<L, C>(
    input: Input,
    problem: String,
    deps: &WatchDeps<L, C>,
    invocation: &Invocation<'_>,
) -> Result<WatchOutcome, WatchError>
where
    C: Clock,
{
    let mut verdict = match input {
        Input::Event(event) => {
            judge_event(&event, None, &policy(&deps.config, deps.clock.now_ms()))
        }
        Input::Unparseable(verdict) | Input::Pipeline(verdict) => *verdict,
    };
    let mut channels = Vec::new();
    if verdict.alert {
        verdict.evidence.insert(0, DEDUP_UNAVAILABLE.to_string());
        for notifier in &deps.notifiers {
            let status = match notifier
                .send_boxed(Notice::Alert(&verdict), invocation.deadline_ms)
                .await
            {
                Ok(()) => ChannelStatus::Sent,
                Err(PortError::Transient(why)) => ChannelStatus::Failed(why),
                Err(PortError::Permanent(why)) => ChannelStatus::Rejected(why),
            };
            channels.push(ChannelResult {
                channel: notifier.channel().to_string(),
                class: notifier.class(),
                status,
            });
        }
    }
    Err(WatchError::LedgerDown { problem, channels })
}

/// The invocation's result from its channels' results, by class: a
/// mandatory rejection → `ChannelRejected`; any transient failure or lease
/// held elsewhere → `DeliveryFailed`; a best-effort rejection alone is Ok
/// (counted).
pub fn finish(delivered: &Delivered) -> Result<(), WatchError> {
    let channels = &delivered.channels;
    let possible_duplicates = delivered.possible_duplicates;
    let mandatory_rejected = channels.iter().any(|c| {
        c.class == ChannelClass::Mandatory && matches!(c.status, ChannelStatus::Rejected(_))
    });
    if mandatory_rejected {
        return Err(WatchError::ChannelRejected {
            channels: channels.clone(),
            possible_duplicates,
        });
    }
    if channels.iter().any(|c| {
        matches!(
            c.status,
            ChannelStatus::Failed(_) | ChannelStatus::InProgress
        )
    }) {
        return Err(WatchError::DeliveryFailed {
            channels: channels.clone(),
            possible_duplicates,
        });
    }
    Ok(())
}

#[derive(Default)]
struct Announced {
    mode: Option<AlertMode>,
    delivered: Delivered,
    digest_size: Option<u64>,
}

impl Announced {
    fn absorb(&mut self, delivered: Delivered) {
        self.delivered.channels.extend(delivered.channels);
        self.delivered.possible_duplicates += delivered.possible_duplicates;
        if self.delivered.first_sent_ms.is_none() {
            self.delivered.first_sent_ms = delivered.first_sent_ms;
        }
    }
}

/// Announce an alert: alone, or in its window's digest (posting it as the
/// leader); then post any overdue digest of an earlier window.
async fn announce<L, C>(
    verdict: &Verdict,
    state: &crate::ports::ledger::EventState,
    deps: &WatchDeps<L, C>,
    invocation: &Invocation<'_>,
    announced: &mut Announced,
) -> Result<(), WatchError>
where
    L: EventLedger + StormLedger,
    C: Clock,
{
    let mode = match state.mode {
        Some(mode) => mode,
        None => {
            let mode = storm_mode(deps).await?;
            deps.ledger
                .set_alert_mode(&verdict.event_id, mode)
                .await
                .map_err(ledger_error)?
        }
    };
    announced.mode = Some(mode);
    let alone = Delivery::Event(verdict.event_id.clone());
    match mode {
        AlertMode::Individual => {
            announced.absorb(deliver(deps, &alone, Notice::Alert(verdict), invocation).await);
        }
        AlertMode::Digest { window } | AlertMode::DigestLeader { window } => {
            match join_digest(deps, window, verdict, invocation).await? {
                Joined::Closed => {
                    // The digest was posted before this alert joined it:
                    // announced alone (and not counted as `Digested`).
                    announced.mode = Some(AlertMode::Individual);
                    announced
                        .absorb(deliver(deps, &alone, Notice::Alert(verdict), invocation).await);
                }
                Joined::InDigest { leader, posted } => {
                    if leader {
                        announced.mode = Some(AlertMode::DigestLeader { window });
                    }
                    if let Some((size, delivered)) = posted {
                        announced.digest_size = Some(size);
                        announced.absorb(delivered);
                    }
                }
            }
        }
    }
    // Best effort: a ledger error here leaves the overdue digest pending
    // for the next alert (its leader's own failure is already visible),
    // and must not hide what this invocation sent.
    if let Ok(posted) = take_over_overdue(deps, invocation).await {
        for (_, delivered) in posted {
            announced.absorb(delivered);
        }
    }
    Ok(())
}

/// The judgement policy at `now_ms` (rules expire by date).
pub fn policy(config: &WatchConfig, now_ms: i64) -> Policy {
    let today = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    Policy {
        rules: (*config.rules.get()).clone(),
        min_alert_severity: config.min_alert_severity,
        trust_zone: config.trust_zone.clone(),
        ..Policy::new(today)
    }
}

/// Judge one event with the ledger's record of its grant, and record the
/// grant (CreateGrant) or its removal (Retire/Revoke) in the ledger. Failed
/// and dry-run calls change nothing. Shared by the watcher and `backfill`.
pub async fn record_event<L: GrantLedger>(
    ledger: &L,
    event: &GrantEvent,
    policy: &Policy,
) -> Result<Verdict, WatchError> {
    Ok(record_correlated(ledger, event, policy, None)
        .await?
        .verdict)
}

/// What [`record_correlated`] judged, and whether correlation was missed.
#[derive(Debug)]
pub struct Recorded {
    pub verdict: Verdict,
    /// The key's records for the grantee could not be read: judged without
    /// them (the verdict's first evidence line says so).
    pub correlation_unavailable: bool,
}

/// [`record_event`] with real-time correlation when `correlation` is
/// given: one bounded read of the key's records for the grantee (none for
/// a service's grants). A failed read is not a failure of the event.
pub async fn record_correlated<L: GrantLedger>(
    ledger: &L,
    event: &GrantEvent,
    policy: &Policy,
    correlation: Option<&CorrelationSettings>,
) -> Result<Recorded, WatchError> {
    let grant_ref = match (&event.key_arn, &event.grant_id) {
        (Some(key_arn), Some(grant_id)) if event.succeeded() && !event.dry_run => {
            Some((key_arn.as_str(), grant_id.as_str()))
        }
        _ => None,
    };
    let known = match (event.action.is_removal(), grant_ref) {
        (true, Some((key_arn, grant_id))) => ledger
            .get_grant(key_arn, grant_id)
            .await
            .map_err(ledger_error)?,
        _ => None,
    };
    let read = match correlation {
        Some(_) => correlation::records_for(ledger, event).await,
        None => correlation::Correlation::default(),
    };
    let mut verdict = judge_event_with(
        event,
        known.as_ref(),
        &read.records,
        policy,
        &correlation.copied().unwrap_or_default(),
    );
    if let Some(why) = &read.unavailable {
        correlation::mark_unavailable(&mut verdict, why);
    }
    if let Some((key_arn, grant_id)) = grant_ref {
        match event.action {
            GrantAction::CreateGrant => ledger
                .record_grant(&grant_record(event, &verdict, key_arn, grant_id))
                .await
                .map_err(ledger_error)?,
            GrantAction::RetireGrant | GrantAction::RevokeGrant => {
                ledger
                    .record_removal(key_arn, grant_id, &removal(event, &verdict))
                    .await
                    .map_err(ledger_error)?;
            }
        }
    }
    Ok(Recorded {
        verdict,
        correlation_unavailable: read.unavailable.is_some(),
    })
}

/// The ledger's record of a grant created by `event`.
pub fn grant_record(
    event: &GrantEvent,
    verdict: &Verdict,
    key_arn: &str,
    grant_id: &str,
) -> GrantRecord {
    GrantRecord {
        key_arn: key_arn.to_string(),
        grant_id: grant_id.to_string(),
        account: event.account.clone(),
        region: event.region.clone(),
        created_event_id: event.event_id.clone(),
        created_at: event.event_time.clone(),
        created_by: event.caller.clone(),
        origin: verdict.origin,
        service: verdict.service.clone(),
        grant: event.grant.clone().unwrap_or_default(),
        removal: None,
    }
}

/// The ledger's record of a removal by `event`.
pub fn removal(event: &GrantEvent, verdict: &Verdict) -> Removal {
    Removal {
        action: event.action,
        event_id: event.event_id.clone(),
        at: event.event_time.clone(),
        by: event.caller.clone(),
        origin: verdict.origin,
    }
}

impl Digest {
    /// The window in words, for the renderers.
    pub fn window_words(&self) -> String {
        let format = |epoch: i64| {
            time::OffsetDateTime::from_unix_timestamp(epoch)
                .ok()
                .and_then(|t| {
                    t.format(time::macros::format_description!(
                        "[hour]:[minute]:[second]"
                    ))
                    .ok()
                })
                .unwrap_or_else(|| epoch.to_string())
        };
        format!(
            "between {} and {} UTC",
            format(self.window_start),
            format(self.window_start + self.window_seconds as i64)
        )
    }
}
