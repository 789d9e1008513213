//! Watch one grant event: ledger, judgement, alerts.
//!
//! parse → claim the event id in the ledger → judge (with the ledger's
//! record of the grant, for removals) → record the grant or its removal →
//! for an alert, per channel not yet delivered: send (the notifier renders)
//! → mark delivered. Storm control turns the alerts beyond
//! `storm_threshold` in one window into one digest per channel, posted by
//! the first event over the threshold (the "leader") when the window ends.
//!
//! Channels are independent: every channel is tried; a failure a retry can
//! fix fails the invocation afterwards ([`WatchError::DeliveryFailed`]) and
//! the retry skips the channels already delivered. A configuration error
//! (e.g. Slack 404) is logged and counted, not retried.

use crate::event::{self, GrantAction, GrantEvent, ParseError, Parsed};
use crate::judge::{judge_event, Policy};
use crate::ports::ledger::{AlertMode, ChannelClaim, Delivery, EventState, Ledger};
use crate::ports::notify::{Digest, Notice, Notifier};
use crate::ports::PortError;
use crate::record::{GrantRecord, Removal};
use crate::rules::RuleSet;
use crate::verdict::{Severity, Verdict};
use serde::Serialize;
use std::future::Future;

/// Time, as the use case needs it (a fake in tests).
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    fn sleep_ms(&self, ms: u64) -> impl Future<Output = ()> + Send;
}

/// The watcher's settings (from the environment, validated by `main`).
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub rules: RuleSet,
    pub min_alert_severity: Severity,
    /// Alerts per window announced one by one; the rest go to a digest.
    pub storm_threshold: u64,
    pub storm_window_seconds: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            rules: RuleSet::default(),
            min_alert_severity: Severity::Medium,
            storm_threshold: DEFAULT_STORM_THRESHOLD,
            storm_window_seconds: DEFAULT_STORM_WINDOW_SECONDS,
        }
    }
}

pub const DEFAULT_STORM_THRESHOLD: u64 = 10;
pub const DEFAULT_STORM_WINDOW_SECONDS: u64 = 60;
/// Time kept back from the deadline to deliver a digest after waiting.
const DIGEST_DELIVERY_RESERVE_MS: i64 = 10_000;
/// Wait past the window's end so late writers' digest entries are in.
const DIGEST_SETTLE_MS: i64 = 1_000;
/// How long a channel lease outlives the invocation's deadline.
const LEASE_GRACE_SECONDS: i64 = 5;

/// What the watcher works with: the ledger, the channels (SNS always,
/// Slack when configured) and a clock.
pub struct WatchDeps<L, P, S, C> {
    pub ledger: L,
    pub sns: P,
    pub slack: Option<S>,
    pub clock: C,
    pub config: WatchConfig,
}

/// One channel's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelResult {
    pub channel: String,
    /// Serialized inline: `{"channel": "slack", "status": "rejected", "detail": "..."}`.
    #[serde(flatten)]
    pub status: ChannelStatus,
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
    /// Configuration error: logged and counted, not retried.
    Rejected(String),
}

/// How one event was handled (the handler's success response).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum WatchOutcome {
    /// Not a grant event: skipped.
    Skipped {
        event_name: Option<String>,
        event_source: Option<String>,
    },
    /// Judged and ledgered; `alerted` says whether it was announced
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
        digest_size: Option<usize>,
    },
}

impl WatchOutcome {
    /// Metrics for this outcome (an EMF line is built from them).
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::default();
        match self {
            WatchOutcome::Skipped { .. } => m.not_grant_events = 1,
            WatchOutcome::Watched {
                severity,
                alert,
                suppressed_by,
                mode,
                channels,
                first_seen,
                ..
            } => {
                m.events_seen = 1;
                m.duplicates = u64::from(!first_seen);
                if *alert {
                    m.alert_severity = Some(*severity);
                    m.alerts = 1;
                }
                m.suppressed = u64::from(suppressed_by.is_some());
                m.digested = u64::from(matches!(
                    mode,
                    Some(AlertMode::Digest { .. } | AlertMode::DigestLeader { .. })
                ));
                m.deliveries_failed = channels
                    .iter()
                    .filter(|c| {
                        matches!(
                            c.status,
                            ChannelStatus::Failed(_) | ChannelStatus::Rejected(_)
                        )
                    })
                    .count() as u64;
            }
        }
        m
    }
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
    /// At least one channel failed in a way a retry can fix; the others
    /// were tried and those delivered will not be resent.
    #[error("delivery failed on {}", describe_failures(.channels))]
    DeliveryFailed { channels: Vec<ChannelResult> },
}

impl WatchError {
    /// The Lambda error type (stable: alarms and DLQ tooling match on it).
    pub fn error_type(&self) -> &'static str {
        match self {
            WatchError::MalformedEvent(_) => "MalformedEvent",
            WatchError::LedgerUnavailable(_) => "LedgerUnavailable",
            WatchError::LedgerMisconfigured(_) => "LedgerMisconfigured",
            WatchError::DeliveryFailed { .. } => "DeliveryFailed",
        }
    }

    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::default();
        match self {
            WatchError::MalformedEvent(_) => m.malformed_events = 1,
            WatchError::DeliveryFailed { channels } => {
                m.events_seen = 1;
                m.deliveries_failed = channels
                    .iter()
                    .filter(|c| {
                        matches!(
                            c.status,
                            ChannelStatus::Failed(_)
                                | ChannelStatus::Rejected(_)
                                | ChannelStatus::InProgress
                        )
                    })
                    .count() as u64;
            }
            WatchError::LedgerUnavailable(_) | WatchError::LedgerMisconfigured(_) => {
                m.ledger_errors = 1
            }
        }
        m
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

fn ledger_error(error: PortError) -> WatchError {
    match error {
        PortError::Transient(why) => WatchError::LedgerUnavailable(why),
        PortError::Permanent(why) => WatchError::LedgerMisconfigured(why),
    }
}

/// Counters of one invocation (CloudWatch Embedded Metric Format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    pub events_seen: u64,
    pub not_grant_events: u64,
    pub malformed_events: u64,
    pub duplicates: u64,
    pub alerts: u64,
    pub alert_severity: Option<Severity>,
    pub suppressed: u64,
    pub digested: u64,
    pub deliveries_failed: u64,
    pub ledger_errors: u64,
}

/// The EMF namespace of every grantwatch metric.
pub const METRICS_NAMESPACE: &str = "grantwatch";

impl Metrics {
    /// One EMF object (print it as its own stdout line). Alerts are also
    /// counted per severity (`AlertsHigh`, ...), so alarms can watch high
    /// and critical alone.
    pub fn emf(&self, function_name: &str, now_ms: i64) -> serde_json::Value {
        let mut values: Vec<(String, u64)> = vec![
            ("EventsSeen".into(), self.events_seen),
            ("NotGrantEvents".into(), self.not_grant_events),
            ("MalformedEvents".into(), self.malformed_events),
            ("DuplicateEvents".into(), self.duplicates),
            ("Alerts".into(), self.alerts),
            ("Suppressed".into(), self.suppressed),
            ("Digested".into(), self.digested),
            ("DeliveriesFailed".into(), self.deliveries_failed),
            ("LedgerErrors".into(), self.ledger_errors),
        ];
        for severity in Severity::ALL {
            let count = u64::from(self.alert_severity == Some(severity) && self.alerts > 0);
            values.push((format!("Alerts{}", capitalised(severity.as_str())), count));
        }
        let definitions: Vec<serde_json::Value> = values
            .iter()
            .map(|(name, _)| serde_json::json!({ "Name": name, "Unit": "Count" }))
            .collect();
        let mut line = serde_json::json!({
            "_aws": {
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": METRICS_NAMESPACE,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": definitions,
                }],
            },
            "FunctionName": function_name,
        });
        if let Some(object) = line.as_object_mut() {
            for (name, value) in values {
                object.insert(name, value.into());
            }
        }
        line
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Watch one EventBridge event. `deadline_ms`: the invocation's deadline
/// (epoch milliseconds).
pub async fn watch_event<L, P, S, C>(
    payload: &serde_json::Value,
    deps: &WatchDeps<L, P, S, C>,
    deadline_ms: i64,
) -> Result<WatchOutcome, WatchError>
where
    L: Ledger,
    P: Notifier,
    S: Notifier,
    C: Clock,
{
    let event = match event::parse_eventbridge_event(payload)? {
        Parsed::Grant(event) => event,
        Parsed::NotAGrantEvent {
            event_name,
            event_source,
        } => {
            return Ok(WatchOutcome::Skipped {
                event_name,
                event_source,
            })
        }
    };
    let now_ms = deps.clock.now_ms();
    let state = deps
        .ledger
        .claim_event(&event.event_id, now_ms / 1000)
        .await
        .map_err(ledger_error)?;
    let verdict = record_event(&deps.ledger, &event, &policy(&deps.config, now_ms)).await?;

    let mut outcome = Outcome {
        mode: None,
        channels: Vec::new(),
        digest_size: None,
    };
    if verdict.alert {
        announce(&verdict, &state, deps, deadline_ms, &mut outcome).await?;
    }
    if outcome.channels.iter().any(|c| {
        matches!(
            c.status,
            ChannelStatus::Failed(_) | ChannelStatus::InProgress
        )
    }) {
        return Err(WatchError::DeliveryFailed {
            channels: outcome.channels,
        });
    }
    Ok(WatchOutcome::Watched {
        event_id: verdict.event_id,
        event_name: verdict.event_name,
        severity: verdict.severity,
        alert: verdict.alert,
        suppressed_by: verdict.suppressed_by,
        first_seen: state.first_seen,
        mode: outcome.mode,
        channels: outcome.channels,
        digest_size: outcome.digest_size,
    })
}

struct Outcome {
    mode: Option<AlertMode>,
    channels: Vec<ChannelResult>,
    digest_size: Option<usize>,
}

/// The judgement policy at `now_ms` (rules expire by date).
pub fn policy(config: &WatchConfig, now_ms: i64) -> Policy {
    let today = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    Policy {
        rules: config.rules.clone(),
        min_alert_severity: config.min_alert_severity,
        today,
    }
}

/// Judge one event with the ledger's record of its grant, and record the
/// grant (CreateGrant) or its removal (Retire/Revoke) in the ledger. Failed
/// and dry-run calls change nothing. Shared by the watcher and `backfill`.
pub async fn record_event<L: Ledger>(
    ledger: &L,
    event: &GrantEvent,
    policy: &Policy,
) -> Result<Verdict, WatchError> {
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
    let verdict = judge_event(event, known.as_ref(), policy);
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
    Ok(verdict)
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

async fn announce<L, P, S, C>(
    verdict: &Verdict,
    state: &EventState,
    deps: &WatchDeps<L, P, S, C>,
    deadline_ms: i64,
    outcome: &mut Outcome,
) -> Result<(), WatchError>
where
    L: Ledger,
    P: Notifier,
    S: Notifier,
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
    outcome.mode = Some(mode);
    let individual = Delivery::Event(verdict.event_id.clone());
    match mode {
        AlertMode::Individual => {
            outcome.channels =
                deliver(deps, &individual, Notice::Alert(verdict), deadline_ms).await?;
        }
        AlertMode::Digest { window } => {
            let in_digest = deps
                .ledger
                .add_to_digest(window, verdict)
                .await
                .map_err(ledger_error)?;
            if !in_digest {
                // The digest was already posted: announce this one alone.
                outcome.channels =
                    deliver(deps, &individual, Notice::Alert(verdict), deadline_ms).await?;
            }
        }
        AlertMode::DigestLeader { window } => {
            deps.ledger
                .add_to_digest(window, verdict)
                .await
                .map_err(ledger_error)?;
            let window_ms = deps.config.storm_window_seconds as i64 * 1000;
            let post_at = (window * 1000 + window_ms + DIGEST_SETTLE_MS)
                .min(deadline_ms - DIGEST_DELIVERY_RESERVE_MS);
            let now = deps.clock.now_ms();
            if post_at > now {
                deps.clock.sleep_ms((post_at - now) as u64).await;
            }
            let alerts = deps
                .ledger
                .close_digest(window)
                .await
                .map_err(ledger_error)?;
            outcome.digest_size = Some(alerts.len());
            let digest = Digest {
                window_start: window,
                window_seconds: deps.config.storm_window_seconds,
                alerts,
            };
            outcome.channels = deliver(
                deps,
                &Delivery::Digest(window),
                Notice::Digest(&digest),
                deadline_ms,
            )
            .await?;
        }
    }
    Ok(())
}

/// Count this alert in its storm window and choose how to announce it.
async fn storm_mode<L, P, S, C>(deps: &WatchDeps<L, P, S, C>) -> Result<AlertMode, WatchError>
where
    L: Ledger,
    C: Clock,
{
    let window_seconds = deps.config.storm_window_seconds.max(1) as i64;
    let now_s = deps.clock.now_ms().div_euclid(1000);
    let window = now_s - now_s.rem_euclid(window_seconds);
    let count = deps
        .ledger
        .count_alert(window)
        .await
        .map_err(ledger_error)?;
    let threshold = deps.config.storm_threshold;
    Ok(if count <= threshold {
        AlertMode::Individual
    } else if count == threshold + 1 {
        AlertMode::DigestLeader { window }
    } else {
        AlertMode::Digest { window }
    })
}

/// Try every channel; never stop at the first failure.
async fn deliver<L, P, S, C>(
    deps: &WatchDeps<L, P, S, C>,
    delivery: &Delivery,
    notice: Notice<'_>,
    deadline_ms: i64,
) -> Result<Vec<ChannelResult>, WatchError>
where
    L: Ledger,
    P: Notifier,
    S: Notifier,
    C: Clock,
{
    let mut results = vec![deliver_on(deps, &deps.sns, delivery, notice, deadline_ms).await?];
    if let Some(slack) = &deps.slack {
        results.push(deliver_on(deps, slack, delivery, notice, deadline_ms).await?);
    }
    Ok(results)
}

async fn deliver_on<L, P, S, C, N>(
    deps: &WatchDeps<L, P, S, C>,
    notifier: &N,
    delivery: &Delivery,
    notice: Notice<'_>,
    deadline_ms: i64,
) -> Result<ChannelResult, WatchError>
where
    L: Ledger,
    C: Clock,
    N: Notifier,
{
    let channel = notifier.channel().to_string();
    let now_s = deps.clock.now_ms().div_euclid(1000);
    let lease_until = deadline_ms.div_euclid(1000) + LEASE_GRACE_SECONDS;
    let claim = deps
        .ledger
        .claim_channel(delivery, &channel, now_s, lease_until)
        .await
        .map_err(ledger_error)?;
    let status = match claim {
        ChannelClaim::AlreadyDelivered => ChannelStatus::AlreadyDelivered,
        ChannelClaim::InProgress { .. } => ChannelStatus::InProgress,
        ChannelClaim::Claimed => match notifier.send(notice, deadline_ms).await {
            Ok(()) => {
                deps.ledger
                    .mark_delivered(delivery, &channel, deps.clock.now_ms().div_euclid(1000))
                    .await
                    .map_err(ledger_error)?;
                ChannelStatus::Sent
            }
            Err(error) => {
                let why = error.to_string();
                deps.ledger
                    .release_channel(delivery, &channel, &why)
                    .await
                    .map_err(ledger_error)?;
                match error {
                    PortError::Transient(why) => ChannelStatus::Failed(why),
                    PortError::Permanent(why) => ChannelStatus::Rejected(why),
                }
            }
        },
    };
    Ok(ChannelResult { channel, status })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ledger::MemoryLedger;
    use crate::ports::notify::RecordingNotifier;
    use crate::verdict::FindingCode;
    use serde_json::Value;
    use std::sync::atomic::{AtomicI64, Ordering};

    const START_MS: i64 = 1_795_000_000_000;
    const FAR_DEADLINE: i64 = START_MS + 600_000;

    struct FakeClock(AtomicI64);

    impl Clock for FakeClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
        /// Yields once (other tasks run "meanwhile"), then advances time.
        async fn sleep_ms(&self, ms: u64) {
            tokio::task::yield_now().await;
            self.0.fetch_add(ms as i64, Ordering::SeqCst);
        }
    }

    /// Yields once before sending, so concurrent calls interleave.
    struct Yielding(RecordingNotifier);

    impl Notifier for Yielding {
        fn channel(&self) -> &str {
            self.0.channel()
        }
        async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
            tokio::task::yield_now().await;
            self.0.send(notice, deadline_ms).await
        }
    }

    type Deps = WatchDeps<MemoryLedger, Yielding, Yielding, FakeClock>;

    fn deps(config: WatchConfig) -> Deps {
        WatchDeps {
            ledger: MemoryLedger::new(),
            sns: Yielding(RecordingNotifier::new("sns")),
            slack: Some(Yielding(RecordingNotifier::new("slack"))),
            clock: FakeClock(AtomicI64::new(START_MS)),
            config,
        }
    }

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../tests/fixtures/watcher/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    /// The risky manual grant, as the `n`th distinct event and grant.
    fn manual_grant(n: usize) -> Value {
        let mut event = fixture("manual-cross-account-grant");
        event["detail"]["eventID"] = format!("burst-{n:04}").into();
        event["detail"]["responseElements"]["grantId"] = format!("grant-{n:04}").into();
        event
    }

    fn sent(n: &Yielding) -> usize {
        n.0.count()
    }

    fn slack(deps: &Deps) -> &RecordingNotifier {
        &deps.slack.as_ref().unwrap().0
    }

    #[tokio::test]
    async fn the_articles_story_ledgers_the_service_grant_then_alerts_on_its_manual_retirement() {
        let deps = deps(WatchConfig::default());
        let created = watch_event(&fixture("lambda-create-grant"), &deps, FAR_DEADLINE)
            .await
            .unwrap();
        let WatchOutcome::Watched { alert, .. } = created else {
            panic!("not watched: {created:?}")
        };
        assert!(!alert, "a service-created grant is normal");
        assert_eq!(sent(&deps.sns), 0);
        let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let grant = "60f37ec4106eb161780bd5530a3564e62cb0935a831661372f93a7e8670299df";
        let record = deps.ledger.get_grant(key, grant).await.unwrap().unwrap();
        assert_eq!(record.origin, crate::verdict::Origin::Service);
        assert_eq!(record.service.as_deref(), Some("lambda"));

        let retired = fixture("manual-retire-grant");
        let event = match event::parse_eventbridge_event(&retired).unwrap() {
            Parsed::Grant(event) => event,
            other => panic!("{other:?}"),
        };
        let known = deps.ledger.get_grant(key, grant).await.unwrap();
        let verdict = judge_event(&event, known.as_ref(), &policy(&deps.config, START_MS));
        assert!(verdict
            .findings
            .iter()
            .any(|f| f.code == FindingCode::ServiceGrantRemoved && f.severity == Severity::High));
        let removed = verdict.removed_grant.as_ref().unwrap();
        assert_eq!(
            removed.dependent_resource.as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:test")
        );

        let outcome = watch_event(&retired, &deps, FAR_DEADLINE).await.unwrap();
        assert!(matches!(
            outcome,
            WatchOutcome::Watched {
                alert: true,
                severity: Severity::High,
                ..
            }
        ));
        assert_eq!(
            deps.sns.0.sent(),
            [vec!["e0000000-0000-4000-8000-00000000r001".to_string()]]
        );
        assert_eq!(slack(&deps).count(), 1);
        let after = deps.ledger.get_grant(key, grant).await.unwrap().unwrap();
        assert_eq!(
            after.removal.unwrap().event_id,
            "e0000000-0000-4000-8000-00000000r001"
        );
    }

    #[tokio::test]
    async fn a_risky_manual_grant_alerts_once_on_each_channel_even_when_delivered_twice() {
        let deps = deps(WatchConfig::default());
        let event = fixture("manual-cross-account-grant");
        let first = watch_event(&event, &deps, FAR_DEADLINE).await.unwrap();
        let second = watch_event(&event, &deps, FAR_DEADLINE).await.unwrap();
        assert_eq!(sent(&deps.sns), 1);
        assert_eq!(slack(&deps).count(), 1);
        let WatchOutcome::Watched {
            first_seen,
            channels,
            ..
        } = second
        else {
            panic!("{second:?}")
        };
        assert!(!first_seen);
        assert!(channels
            .iter()
            .all(|c| c.status == ChannelStatus::AlreadyDelivered));
        assert!(matches!(
            first,
            WatchOutcome::Watched {
                first_seen: true,
                alert: true,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn two_concurrent_invocations_with_the_same_event_send_once_per_channel() {
        let deps = deps(WatchConfig::default());
        let event = fixture("manual-cross-account-grant");
        let (a, b) = tokio::join!(
            watch_event(&event, &deps, FAR_DEADLINE),
            watch_event(&event, &deps, FAR_DEADLINE)
        );
        assert_eq!(sent(&deps.sns), 1);
        assert_eq!(slack(&deps).count(), 1);
        // The loser either saw the deliveries done or asked to be retried.
        for result in [a, b] {
            if let Err(error) = result {
                assert_eq!(error.error_type(), "DeliveryFailed");
            }
        }
    }

    #[tokio::test]
    async fn a_slack_outage_still_delivers_sns_and_the_retry_does_not_resend_sns() {
        let deps = deps(WatchConfig::default());
        slack(&deps).fail_next([PortError::Transient("HTTP 503".into())]);
        let event = fixture("manual-cross-account-grant");
        let error = watch_event(&event, &deps, FAR_DEADLINE).await.unwrap_err();
        assert_eq!(error.error_type(), "DeliveryFailed");
        assert!(error.to_string().contains("slack: HTTP 503"), "{error}");
        assert_eq!(sent(&deps.sns), 1);
        assert_eq!(slack(&deps).count(), 0);

        let retry = watch_event(&event, &deps, FAR_DEADLINE).await.unwrap();
        assert_eq!(sent(&deps.sns), 1, "SNS is not resent");
        assert_eq!(slack(&deps).count(), 1);
        let WatchOutcome::Watched { channels, .. } = retry else {
            panic!()
        };
        assert_eq!(channels[0].status, ChannelStatus::AlreadyDelivered);
        assert_eq!(channels[1].status, ChannelStatus::Sent);
    }

    #[tokio::test]
    async fn an_sns_outage_still_posts_to_slack() {
        let deps = deps(WatchConfig::default());
        deps.sns
            .0
            .fail_next([PortError::Transient("Throttling".into())]);
        let error = watch_event(&fixture("manual-cross-account-grant"), &deps, FAR_DEADLINE)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("sns: Throttling"));
        assert_eq!(slack(&deps).count(), 1);
    }

    #[tokio::test]
    async fn a_slack_configuration_error_is_counted_not_retried() {
        let deps = deps(WatchConfig::default());
        slack(&deps).fail_next([PortError::Permanent("HTTP 404 no_service".into())]);
        let outcome = watch_event(&fixture("manual-cross-account-grant"), &deps, FAR_DEADLINE)
            .await
            .unwrap();
        assert_eq!(sent(&deps.sns), 1);
        assert_eq!(outcome.metrics().deliveries_failed, 1);
        let WatchOutcome::Watched { channels, .. } = outcome else {
            panic!()
        };
        assert!(matches!(channels[1].status, ChannelStatus::Rejected(_)));
    }

    #[tokio::test]
    async fn a_malformed_event_is_an_error_and_a_non_grant_event_is_skipped() {
        let deps = deps(WatchConfig::default());
        let error = watch_event(&fixture("malformed-create-grant"), &deps, FAR_DEADLINE)
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "MalformedEvent");
        assert_eq!(error.metrics().malformed_events, 1);
        let error = watch_event(&Value::String("hello".into()), &deps, FAR_DEADLINE)
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "MalformedEvent");

        let skipped = watch_event(&fixture("decrypt-not-a-grant"), &deps, FAR_DEADLINE)
            .await
            .unwrap();
        assert!(
            matches!(skipped, WatchOutcome::Skipped { .. }),
            "{skipped:?}"
        );
        assert_eq!(sent(&deps.sns), 0);
        assert!(deps.ledger.event_ids().is_empty());
    }

    #[tokio::test]
    async fn a_ledger_outage_fails_before_anything_is_sent() {
        let deps = deps(WatchConfig::default());
        *deps.ledger.fail_with.lock().unwrap() = Some(PortError::Transient("503".into()));
        let error = watch_event(&fixture("manual-cross-account-grant"), &deps, FAR_DEADLINE)
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "LedgerUnavailable");
        assert_eq!(sent(&deps.sns), 0);
    }

    #[tokio::test]
    async fn a_storm_becomes_one_digest_per_channel_and_every_event_is_ledgered() {
        let config = WatchConfig {
            storm_threshold: 3,
            storm_window_seconds: 60,
            ..WatchConfig::default()
        };
        let deps = deps(config);
        // Start at the beginning of a window so all events share it.
        let window_start = START_MS - START_MS.rem_euclid(60_000);
        deps.clock.0.store(window_start, Ordering::SeqCst);
        let mut leader = None;
        for n in 0..12 {
            let outcome = watch_event(&manual_grant(n), &deps, FAR_DEADLINE)
                .await
                .unwrap();
            if let WatchOutcome::Watched {
                digest_size: Some(size),
                ..
            } = outcome
            {
                leader = Some((n, size));
                // The leader waited for the window to end; move the later
                // events back into the window as if they had run meanwhile.
                deps.clock.0.store(window_start + 1000, Ordering::SeqCst);
            }
        }
        // 3 alone, then the leader posts the digest of what it has seen.
        assert_eq!(leader, Some((3, 1)));
        // The leader closed the digest, so later events in the window alert
        // alone: nothing is lost.
        assert_eq!(sent(&deps.sns), 3 + 1 + 8);
        assert_eq!(deps.ledger.event_ids().len(), 12);
    }

    #[tokio::test]
    async fn concurrent_storm_events_join_the_leaders_digest() {
        let deps = deps(WatchConfig {
            storm_threshold: 2,
            storm_window_seconds: 60,
            ..WatchConfig::default()
        });
        let window_start = START_MS - START_MS.rem_euclid(60_000);
        deps.clock.0.store(window_start, Ordering::SeqCst);
        for n in 0..2 {
            watch_event(&manual_grant(n), &deps, FAR_DEADLINE)
                .await
                .unwrap();
        }
        // The third alert leads: it sleeps (yielding first, see FakeClock)
        // while the other invocations of the window add to its digest.
        let followers: Vec<Value> = (3..20).map(manual_grant).collect();
        let leader_event = manual_grant(2);
        let leader = watch_event(&leader_event, &deps, FAR_DEADLINE);
        let rest = async {
            let mut outcomes = Vec::new();
            for follower in &followers {
                outcomes.push(watch_event(follower, &deps, FAR_DEADLINE).await);
            }
            outcomes
        };
        let (leader, rest) = tokio::join!(leader, rest);
        let WatchOutcome::Watched {
            digest_size, mode, ..
        } = leader.unwrap()
        else {
            panic!()
        };
        assert_eq!(
            mode,
            Some(AlertMode::DigestLeader {
                window: window_start / 1000
            })
        );
        assert_eq!(digest_size, Some(1 + followers.len()));
        for outcome in rest {
            let Ok(WatchOutcome::Watched { channels, mode, .. }) = outcome else {
                panic!()
            };
            assert!(channels.is_empty(), "followers send nothing themselves");
            assert!(matches!(mode, Some(AlertMode::Digest { .. })));
        }
        // 2 alone + 1 digest per channel, holding every other alert.
        assert_eq!(sent(&deps.sns), 3);
        assert_eq!(deps.sns.0.sent()[2].len(), 1 + followers.len());
        assert_eq!(slack(&deps).count(), 3);
        assert_eq!(deps.ledger.event_ids().len(), 20);
        // A retry of the leader does not post the digest again.
        watch_event(&manual_grant(2), &deps, FAR_DEADLINE)
            .await
            .unwrap();
        assert_eq!(sent(&deps.sns), 3);
    }

    #[test]
    fn channel_results_read_flat_in_the_response() {
        let result = ChannelResult {
            channel: "slack".into(),
            status: ChannelStatus::Rejected("HTTP 404".into()),
        };
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({"channel": "slack", "status": "rejected", "detail": "HTTP 404"})
        );
        let sent = ChannelResult {
            channel: "sns".into(),
            status: ChannelStatus::Sent,
        };
        assert_eq!(
            serde_json::to_value(&sent).unwrap(),
            serde_json::json!({"channel": "sns", "status": "sent"})
        );
    }

    #[test]
    fn metrics_become_one_emf_object() {
        let metrics = Metrics {
            events_seen: 1,
            alerts: 1,
            alert_severity: Some(Severity::High),
            ..Metrics::default()
        };
        let line = metrics.emf("grant-watcher", 1_700_000_000_000);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "grantwatch"
        );
        assert_eq!(line["FunctionName"], "grant-watcher");
        assert_eq!(line["AlertsHigh"], 1);
        assert_eq!(line["AlertsLow"], 0);
        assert_eq!(line["EventsSeen"], 1);
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in names {
            assert!(line.get(name).is_some(), "{name} has a value");
        }
    }
}
