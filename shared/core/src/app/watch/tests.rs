//! The watcher's use case over the in-memory ledger and recording
//! notifiers: the articles' story, duplicates, channel classes, leases
//! with owners and skewed clocks, storms and their digests.

use super::*;
use crate::ports::fakes::RecordingNotifier;
use crate::ports::ledger::{
    ChannelClaim, Lease, Marked, MemoryLedger, LEASE_TAKEOVER_GRACE_SECONDS,
};
use crate::ports::notify::Notifier;
use crate::verdict::FindingCode;
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

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
        Notifier::channel(&self.0)
    }
    fn class(&self) -> ChannelClass {
        Notifier::class(&self.0)
    }
    async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
        tokio::task::yield_now().await;
        self.0.send(notice, deadline_ms).await
    }
}

struct Fixture {
    deps: WatchDeps<MemoryLedger, FakeClock>,
    sns: Arc<Yielding>,
    slack: Arc<Yielding>,
}

impl Fixture {
    fn new(config: WatchConfig) -> Fixture {
        let sns = Arc::new(Yielding(RecordingNotifier::with_class(
            "sns",
            ChannelClass::Mandatory,
        )));
        let slack = Arc::new(Yielding(RecordingNotifier::new("slack")));
        Fixture {
            deps: WatchDeps {
                ledger: MemoryLedger::new(),
                notifiers: vec![Box::new(sns.clone()), Box::new(slack.clone())],
                clock: FakeClock(AtomicI64::new(START_MS)),
                config,
            },
            sns,
            slack,
        }
    }

    fn sns(&self) -> &RecordingNotifier {
        &self.sns.0
    }

    fn slack(&self) -> &RecordingNotifier {
        &self.slack.0
    }

    async fn watch(&self, payload: &Value) -> Result<WatchOutcome, WatchError> {
        self.watch_as(payload, "req-1", FAR_DEADLINE).await
    }

    async fn watch_as(
        &self,
        payload: &Value,
        request_id: &str,
        deadline_ms: i64,
    ) -> Result<WatchOutcome, WatchError> {
        let invocation = Invocation {
            request_id,
            deadline_ms,
        };
        watch_event(payload, &self.deps, &invocation).await
    }

    fn set_now(&self, ms: i64) {
        self.deps.clock.0.store(ms, Ordering::SeqCst);
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

fn channels_of(outcome: &WatchOutcome) -> Vec<ChannelResult> {
    match outcome {
        WatchOutcome::Watched { channels, .. } => channels.clone(),
        other => panic!("not watched: {other:?}"),
    }
}

#[tokio::test]
async fn the_articles_story_ledgers_the_service_grant_then_alerts_on_its_manual_retirement() {
    let f = Fixture::new(WatchConfig::default());
    let created = f.watch(&fixture("lambda-create-grant")).await.unwrap();
    let WatchOutcome::Watched { alert, .. } = created else {
        panic!("not watched: {created:?}")
    };
    assert!(!alert, "a service-created grant is normal");
    assert_eq!(f.sns().count(), 0);
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let grant = "60f37ec4106eb161780bd5530a3564e62cb0935a831661372f93a7e8670299df";
    let record = f.deps.ledger.get_grant(key, grant).await.unwrap().unwrap();
    assert_eq!(record.origin, crate::verdict::Origin::Service);
    assert_eq!(record.service.as_deref(), Some("lambda"));

    let retired = fixture("manual-retire-grant");
    let event = match event::parse_eventbridge_event(&retired).unwrap() {
        Parsed::Grant(event) => event,
        other => panic!("{other:?}"),
    };
    let known = f.deps.ledger.get_grant(key, grant).await.unwrap();
    let verdict = judge_event(&event, known.as_ref(), &policy(&f.deps.config, START_MS));
    assert!(verdict
        .findings
        .iter()
        .any(|f| f.code == FindingCode::ServiceGrantRemoved && f.severity == Severity::High));
    let removed = verdict.removed_grant.as_ref().unwrap();
    assert_eq!(
        removed.dependent_resource.as_deref(),
        Some("arn:aws:lambda:us-east-1:123456789012:function:test")
    );

    let outcome = f.watch(&retired).await.unwrap();
    assert!(matches!(
        outcome,
        WatchOutcome::Watched {
            alert: true,
            severity: Severity::High,
            ..
        }
    ));
    assert_eq!(
        f.sns().sent(),
        [vec!["e0000000-0000-4000-8000-00000000r001".to_string()]]
    );
    assert_eq!(f.slack().count(), 1);
    let after = f.deps.ledger.get_grant(key, grant).await.unwrap().unwrap();
    assert_eq!(
        after.removal.unwrap().event_id,
        "e0000000-0000-4000-8000-00000000r001"
    );
}

#[tokio::test]
async fn a_risky_manual_grant_alerts_once_on_each_channel_even_when_delivered_twice() {
    let f = Fixture::new(WatchConfig::default());
    let event = fixture("manual-cross-account-grant");
    let first = f.watch_as(&event, "req-1", FAR_DEADLINE).await.unwrap();
    let second = f.watch_as(&event, "req-2", FAR_DEADLINE).await.unwrap();
    assert_eq!(f.sns().count(), 1);
    assert_eq!(f.slack().count(), 1);
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
    let f = Fixture::new(WatchConfig::default());
    let event = fixture("manual-cross-account-grant");
    let (a, b) = tokio::join!(
        f.watch_as(&event, "req-a", FAR_DEADLINE),
        f.watch_as(&event, "req-b", FAR_DEADLINE)
    );
    assert_eq!(f.sns().count(), 1);
    assert_eq!(f.slack().count(), 1);
    // The loser either saw the deliveries done or asked to be retried.
    let failed: Vec<_> = [a, b].into_iter().filter_map(Result::err).collect();
    for error in &failed {
        assert_eq!(error.error_type(), "DeliveryFailed");
    }
    // Its retry finds both channels delivered.
    let retry = f.watch_as(&event, "req-c", FAR_DEADLINE).await.unwrap();
    assert!(channels_of(&retry)
        .iter()
        .all(|c| c.status == ChannelStatus::AlreadyDelivered));
    assert_eq!(f.sns().count(), 1);
}

#[tokio::test]
async fn a_slack_outage_still_delivers_sns_and_the_retry_does_not_resend_sns() {
    let f = Fixture::new(WatchConfig::default());
    f.slack()
        .fail_next([PortError::Transient("HTTP 503".into())]);
    let event = fixture("manual-cross-account-grant");
    let error = f.watch(&event).await.unwrap_err();
    assert_eq!(error.error_type(), "DeliveryFailed");
    assert!(error.to_string().contains("slack: HTTP 503"), "{error}");
    assert_eq!(f.sns().count(), 1);
    assert_eq!(f.slack().count(), 0);

    let retry = f.watch_as(&event, "req-2", FAR_DEADLINE).await.unwrap();
    assert_eq!(f.sns().count(), 1, "SNS is not resent");
    assert_eq!(f.slack().count(), 1);
    let channels = channels_of(&retry);
    assert_eq!(channels[0].status, ChannelStatus::AlreadyDelivered);
    assert_eq!(channels[1].status, ChannelStatus::Sent);
}

#[tokio::test]
async fn an_sns_outage_still_posts_to_slack() {
    let f = Fixture::new(WatchConfig::default());
    f.sns()
        .fail_next([PortError::Transient("Throttling".into())]);
    let error = f
        .watch(&fixture("manual-cross-account-grant"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "DeliveryFailed");
    assert!(error.to_string().contains("sns: Throttling"));
    assert_eq!(f.slack().count(), 1);
}

#[tokio::test]
async fn a_best_effort_rejection_succeeds_but_is_counted_per_channel() {
    let f = Fixture::new(WatchConfig::default());
    f.slack()
        .fail_next([PortError::Permanent("HTTP 404 no_service".into())]);
    let outcome = f
        .watch(&fixture("manual-cross-account-grant"))
        .await
        .unwrap();
    assert_eq!(f.sns().count(), 1);
    let metrics = outcome.metrics();
    assert_eq!(metrics.deliveries_failed, 1);
    assert_eq!(metrics.rejected_channels, ["slack"]);
    let lines = metrics.emf_lines("grant-watcher", START_MS);
    assert_eq!(lines[1]["Channel"], "slack");
    let channels = channels_of(&outcome);
    assert!(matches!(channels[1].status, ChannelStatus::Rejected(_)));
}

#[tokio::test]
async fn a_mandatory_rejection_fails_the_invocation_and_the_retry_skips_what_was_delivered() {
    let f = Fixture::new(WatchConfig::default());
    f.sns()
        .fail_next([PortError::Permanent("AuthorizationError".into())]);
    let event = fixture("manual-cross-account-grant");
    let error = f.watch(&event).await.unwrap_err();
    assert_eq!(error.error_type(), "ChannelRejected");
    assert!(error.to_string().contains("sns: "), "{error}");
    assert_eq!(error.metrics().rejected_channels, ["sns"]);
    assert_eq!(f.slack().count(), 1, "Slack was still tried");
    assert_eq!(f.sns().count(), 0);

    // The retry (the permissions fixed) sends SNS only.
    let retry = f.watch_as(&event, "req-2", FAR_DEADLINE).await.unwrap();
    let channels = channels_of(&retry);
    assert_eq!(channels[0].status, ChannelStatus::Sent);
    assert_eq!(channels[1].status, ChannelStatus::AlreadyDelivered);
    assert_eq!((f.sns().count(), f.slack().count()), (1, 1));
}

#[tokio::test]
async fn a_ledger_error_on_one_channel_does_not_stop_the_other() {
    use crate::ports::fakes::{CrashSignal, Fault, FaultyLedger};
    let signal = CrashSignal::new();
    let sns = Arc::new(RecordingNotifier::with_class(
        "sns",
        ChannelClass::Mandatory,
    ));
    let slack = Arc::new(RecordingNotifier::new("slack"));
    let deps = WatchDeps {
        ledger: FaultyLedger::new(MemoryLedger::new(), signal.clone()),
        notifiers: vec![Box::new(sns.clone()), Box::new(slack.clone())],
        clock: FakeClock(AtomicI64::new(START_MS)),
        config: WatchConfig::default(),
    };
    // The first claim_channel (SNS's) fails.
    deps.ledger.faults.add("claim_channel", 1, Fault::Transient);
    let invocation = Invocation {
        request_id: "req-1",
        deadline_ms: FAR_DEADLINE,
    };
    let event = fixture("manual-cross-account-grant");
    let error = watch_event(&event, &deps, &invocation).await.unwrap_err();
    assert_eq!(error.error_type(), "DeliveryFailed");
    assert!(error.to_string().contains("sns: ledger: "), "{error}");
    assert_eq!((sns.count(), slack.count()), (0, 1));
    let retry = Invocation {
        request_id: "req-2",
        ..invocation
    };
    watch_event(&event, &deps, &retry).await.unwrap();
    assert_eq!((sns.count(), slack.count()), (1, 1));
}

#[tokio::test]
async fn an_unreadable_kms_grant_event_alerts_high_and_junk_is_an_error() {
    let f = Fixture::new(WatchConfig::default());
    // A CreateGrant whose requestParameters is not an object.
    let outcome = f.watch(&fixture("malformed-create-grant")).await.unwrap();
    let WatchOutcome::Watched {
        event_id,
        severity,
        alert,
        unparseable,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(event_id, "e0000000-0000-4000-8000-00000000x001");
    assert_eq!(
        (*severity, *alert, *unparseable),
        (Severity::High, true, true)
    );
    assert_eq!(outcome.metrics().unparseable_events, 1);
    assert_eq!(
        f.sns().sent(),
        [vec!["e0000000-0000-4000-8000-00000000x001".to_string()]]
    );
    // Redelivered: not alerted again.
    f.watch_as(&fixture("malformed-create-grant"), "req-2", FAR_DEADLINE)
        .await
        .unwrap();
    assert_eq!(f.sns().count(), 1);

    let error = f.watch(&Value::String("hello".into())).await.unwrap_err();
    assert_eq!(error.error_type(), "MalformedEvent");
    assert_eq!(error.metrics().malformed_events, 1);
    let skipped = f.watch(&fixture("decrypt-not-a-grant")).await.unwrap();
    assert!(
        matches!(skipped, WatchOutcome::Skipped { .. }),
        "{skipped:?}"
    );
    assert_eq!(f.sns().count(), 1);
}

#[tokio::test]
async fn a_ledger_outage_still_alerts_marked_then_fails_so_the_event_is_kept() {
    let f = Fixture::new(WatchConfig::default());
    *f.deps.ledger.fail_with.lock().unwrap() = Some(PortError::Transient("503".into()));
    let event = fixture("manual-cross-account-grant");
    let error = f.watch(&event).await.unwrap_err();
    assert_eq!(error.error_type(), "LedgerUnavailable");
    assert!(
        error.to_string().contains("without deduplication"),
        "{error}"
    );
    assert_eq!((f.sns().count(), f.slack().count()), (1, 1));
    let metrics = error.metrics();
    assert_eq!((metrics.dedup_unavailable, metrics.ledger_errors), (2, 1));
    // A non-alerting event sends nothing, and still fails to be kept.
    let error = f.watch(&fixture("lambda-create-grant")).await.unwrap_err();
    assert_eq!(error.metrics().dedup_unavailable, 0);
    assert_eq!(f.sns().count(), 1);
    // A permission problem is not an outage: nothing sent, misconfigured.
    *f.deps.ledger.fail_with.lock().unwrap() = Some(PortError::Permanent("denied".into()));
    let error = f.watch(&event).await.unwrap_err();
    assert_eq!(error.error_type(), "LedgerMisconfigured");
    assert_eq!(f.sns().count(), 1);
    // Recovered: the retry records the event and alerts through the ledger.
    *f.deps.ledger.fail_with.lock().unwrap() = None;
    f.watch_as(&event, "req-2", FAR_DEADLINE).await.unwrap();
    assert_eq!(f.deps.ledger.event_ids().len(), 1);
    assert_eq!(f.sns().count(), 2);
}

#[tokio::test]
async fn the_alert_latency_runs_from_the_event_time_to_the_first_send() {
    let f = Fixture::new(WatchConfig::default());
    let mut event = fixture("manual-cross-account-grant");
    // START_MS is 2026-11-18T11:06:40Z; the event happened 90 s before.
    event["detail"]["eventTime"] = "2026-11-18T11:05:10Z".into();
    let outcome = f.watch(&event).await.unwrap();
    assert_eq!(outcome.metrics().alert_latency_ms, Some(90_000));
    // Nothing sent, nothing measured.
    let again = f.watch_as(&event, "req-2", FAR_DEADLINE).await.unwrap();
    assert_eq!(again.metrics().alert_latency_ms, None);
}

// ---------------------------------------------------------------- leases

/// One owner's lease, its deadline at `until`, seen from a clock `skew`
/// seconds off: nobody takes it before `until + grace` of *their* clock.
#[tokio::test]
async fn leases_have_an_owner_and_skewed_clocks_neither_double_send_nor_stick() {
    let ledger = MemoryLedger::new();
    let d = Delivery::Event("e1".into());
    let until = 1_000;
    let lease = |owner: &str, now: i64| Lease {
        owner: owner.into(),
        now,
        until: now + 95,
    };
    assert_eq!(
        ledger
            .claim_channel(
                &d,
                "sns",
                &Lease {
                    owner: "a".into(),
                    now: 905,
                    until
                }
            )
            .await
            .unwrap(),
        ChannelClaim::Claimed
    );
    for skew in [-20, 0, 20] {
        // While `a` may still be running (its deadline + grace, on a clock
        // up to 20 s fast), `b` waits.
        for real in [906, until, until + 10] {
            let claim = ledger
                .claim_channel(&d, "sns", &lease("b", real + skew))
                .await
                .unwrap();
            assert!(
                matches!(claim, ChannelClaim::InProgress { .. }),
                "skew {skew}, t {real}: {claim:?}"
            );
        }
    }
    // `a` may claim again (same owner), and a stranger cannot release it.
    assert_eq!(
        ledger
            .claim_channel(&d, "sns", &lease("a", 950))
            .await
            .unwrap(),
        ChannelClaim::Claimed
    );
    ledger.release_channel(&d, "sns", "b", "x").await.unwrap();
    assert_eq!(ledger.lease(&d, "sns").map(|(o, _)| o), Some("a".into()));
    // `a` died: after its lease + grace (+ the worst skew) `b` takes over.
    let a_until = 950 + 95;
    let late = a_until + LEASE_TAKEOVER_GRACE_SECONDS + 21;
    for skew in [-20, 0, 20] {
        let fresh = MemoryLedger::new();
        fresh
            .claim_channel(&d, "sns", &lease("a", 950))
            .await
            .unwrap();
        assert_eq!(
            fresh
                .claim_channel(&d, "sns", &lease("b", late + skew))
                .await
                .unwrap(),
            ChannelClaim::Retried { attempts: 1 },
            "skew {skew}: no stuck lease (a possible duplicate)"
        );
        // `a` comes back and marks: recorded, but as a possible duplicate.
        assert_eq!(
            fresh.mark_delivered(&d, "sns", "a", late).await.unwrap(),
            Marked::LeaseLost
        );
        assert!(fresh.is_delivered(&d, "sns"));
    }
    assert_eq!(
        ledger.mark_delivered(&d, "sns", "a", 960).await.unwrap(),
        Marked::Recorded
    );
    assert_eq!(
        ledger
            .claim_channel(&d, "sns", &lease("b", 5_000))
            .await
            .unwrap(),
        ChannelClaim::AlreadyDelivered
    );
}

#[tokio::test]
async fn a_retry_after_a_crash_waits_for_the_dead_lease_then_sends() {
    let f = Fixture::new(WatchConfig::default());
    let event = fixture("manual-cross-account-grant");
    // A crashed invocation left a lease on SNS (deadline START + 90 s).
    let d = match event::parse_eventbridge_event(&event).unwrap() {
        Parsed::Grant(e) => Delivery::Event(e.event_id),
        other => panic!("{other:?}"),
    };
    let dead_until = (START_MS + 90_000) / 1000 + deliver::LEASE_GRACE_SECONDS;
    f.deps
        .ledger
        .claim_channel(
            &d,
            "sns",
            &Lease {
                owner: "dead".into(),
                now: START_MS / 1000,
                until: dead_until,
            },
        )
        .await
        .unwrap();
    // Lambda's first retry, a minute later: still leased.
    f.set_now(START_MS + 60_000);
    let error = f
        .watch_as(&event, "retry-1", START_MS + 150_000)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "DeliveryFailed");
    assert_eq!((f.sns().count(), f.slack().count()), (0, 1));
    // The second, two minutes after that: the dead lease is taken over.
    f.set_now(START_MS + 180_000);
    f.watch_as(&event, "retry-2", START_MS + 270_000)
        .await
        .unwrap();
    assert_eq!((f.sns().count(), f.slack().count()), (1, 1));
}

// ---------------------------------------------------------------- storms

fn storm(threshold: u64) -> (Fixture, i64) {
    let f = Fixture::new(WatchConfig {
        storm_threshold: threshold,
        storm_window_seconds: 60,
        ..WatchConfig::default()
    });
    let window_start = START_MS - START_MS.rem_euclid(60_000);
    f.set_now(window_start);
    (f, window_start)
}

#[tokio::test]
async fn a_storm_becomes_one_digest_per_channel_and_every_event_is_ledgered() {
    let (f, window_start) = storm(3);
    let mut leader = None;
    for n in 0..12 {
        let outcome = f
            .watch_as(&manual_grant(n), &format!("req-{n}"), FAR_DEADLINE)
            .await
            .unwrap();
        if leader.is_some() {
            // Too late for the closed digest: sent alone, not `Digested`.
            assert_eq!(outcome.metrics().digested, 0, "event {n}");
        }
        if let WatchOutcome::Watched {
            digest_size: Some(size),
            ..
        } = outcome
        {
            leader = Some((n, size));
            // The leader waited for the window to end; move the later
            // events back into the window as if they had run meanwhile.
            f.set_now(window_start + 1000);
        }
    }
    // 3 alone, then the leader posts the digest of what it has seen.
    assert_eq!(leader, Some((3, 1)));
    // The leader closed the digest, so later events in the window alert
    // alone: nothing is lost.
    assert_eq!(f.sns().count(), 3 + 1 + 8);
    assert_eq!(f.deps.ledger.event_ids().len(), 12);
}

#[tokio::test]
async fn concurrent_storm_events_join_the_leaders_digest() {
    let (f, window_start) = storm(2);
    for n in 0..2 {
        f.watch_as(&manual_grant(n), &format!("req-{n}"), FAR_DEADLINE)
            .await
            .unwrap();
    }
    // The third alert leads: it sleeps (yielding first, see FakeClock)
    // while the other invocations of the window add to its digest.
    let followers: Vec<Value> = (3..20).map(manual_grant).collect();
    let leader_event = manual_grant(2);
    let leader = f.watch_as(&leader_event, "req-leader", FAR_DEADLINE);
    let rest = async {
        let mut outcomes = Vec::new();
        for (i, follower) in followers.iter().enumerate() {
            outcomes.push(
                f.watch_as(follower, &format!("req-f{i}"), FAR_DEADLINE)
                    .await,
            );
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
    assert_eq!(digest_size, Some(1 + followers.len() as u64));
    for outcome in rest {
        let Ok(WatchOutcome::Watched { channels, mode, .. }) = outcome else {
            panic!()
        };
        assert!(channels.is_empty(), "followers send nothing themselves");
        assert!(matches!(mode, Some(AlertMode::Digest { .. })));
    }
    // 2 alone + 1 digest per channel, holding every other alert.
    assert_eq!(f.sns().count(), 3);
    assert_eq!(f.sns().sent()[2].len(), 1 + followers.len());
    assert_eq!(f.slack().count(), 3);
    assert_eq!(f.deps.ledger.event_ids().len(), 20);
    assert_eq!(
        f.deps.ledger.digest_members(window_start / 1000).len(),
        1 + followers.len()
    );
    // A retry of the leader does not post the digest again, and a follower
    // redelivered after the digest closed is not alerted again alone.
    f.watch_as(&manual_grant(2), "req-retry", FAR_DEADLINE)
        .await
        .unwrap();
    f.watch_as(&manual_grant(5), "req-redelivered", FAR_DEADLINE)
        .await
        .unwrap();
    assert_eq!(f.sns().count(), 3);
}

#[tokio::test]
async fn the_leader_is_elected_once_per_window_and_wins_again_on_retry() {
    let (f, window_start) = storm(0);
    let window = window_start / 1000;
    assert!(f.deps.ledger.claim_leader(window, "a").await.unwrap());
    assert!(!f.deps.ledger.claim_leader(window, "b").await.unwrap());
    assert!(f.deps.ledger.claim_leader(window, "a").await.unwrap());
}

#[tokio::test]
async fn an_overdue_digest_is_posted_by_the_next_alert_of_a_later_window() {
    let (f, window_start) = storm(0);
    // The leader's invocation runs out of time before posting: its
    // deadline lets it wait no longer than now, and its send fails.
    f.sns()
        .fail_next([PortError::Transient("Throttling".into())]);
    let leader = f
        .watch_as(&manual_grant(0), "req-leader", window_start + 5_000)
        .await;
    assert!(leader.is_err(), "the leader's delivery failed: {leader:?}");
    // Slack got the digest; SNS did not.
    assert_eq!((f.sns().count(), f.slack().count()), (0, 1));
    // Much later, an alert of another window (no retry of the leader came):
    // it leads its own digest, then posts the overdue one on SNS only.
    f.set_now(window_start + 10 * 60_000);
    let later = f
        .watch_as(&manual_grant(1), "req-later", FAR_DEADLINE + 600_000)
        .await
        .unwrap();
    assert!(matches!(later, WatchOutcome::Watched { .. }));
    assert_eq!(
        f.sns().sent(),
        [
            vec!["burst-0001".to_string()],
            vec!["burst-0000".to_string()]
        ],
        "its own digest, then the overdue one"
    );
    assert_eq!(
        f.slack().count(),
        2,
        "the overdue digest is not resent on Slack"
    );
    assert!(f
        .deps
        .ledger
        .is_delivered(&Delivery::Digest(window_start / 1000), "sns"));
    // Nothing pending any more.
    assert!(f
        .deps
        .ledger
        .pending_digests(i64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn channel_results_read_flat_in_the_response() {
    let result = ChannelResult {
        channel: "slack".into(),
        class: ChannelClass::BestEffort,
        status: ChannelStatus::Rejected("HTTP 404".into()),
    };
    assert_eq!(
        serde_json::to_value(&result).unwrap(),
        serde_json::json!({"channel": "slack", "class": "best-effort", "status": "rejected", "detail": "HTTP 404"})
    );
    let sent = ChannelResult {
        channel: "sns".into(),
        class: ChannelClass::Mandatory,
        status: ChannelStatus::Sent,
    };
    assert_eq!(
        serde_json::to_value(&sent).unwrap(),
        serde_json::json!({"channel": "sns", "class": "mandatory", "status": "sent"})
    );
}

// ------------------------------------------------ the pipeline judgement (issue 10)

fn tamper_fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/tamper/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A CloudTrail record as EventBridge hands it to the watcher.
fn envelope(source: &str, detail: Value) -> Value {
    serde_json::json!({
        "version": "0",
        "id": format!("eb-{}", detail["eventID"].as_str().unwrap_or("none")),
        "detail-type": "AWS API Call via CloudTrail",
        "source": source,
        "account": "111122223333",
        "time": "2026-11-05T03:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    })
}

fn own_resources() -> crate::tamper::OwnResources {
    crate::tamper::OwnResources::from_json(
        &serde_json::json!({
            "stack_name": "grantwatch",
            "logical_ids": ["GrantEventsRule", "TamperEventsRule", "WatcherFunction"],
            "resources": ["arn:aws:sns:us-east-1:111122223333:grantwatch-AlertTopic-AbC123"],
        })
        .to_string(),
    )
    .unwrap()
}

fn guarded() -> Fixture {
    Fixture::new(WatchConfig {
        own_resources: Some(own_resources()),
        ..WatchConfig::default()
    })
}

fn disable_rule(name: &str) -> Value {
    let mut detail = tamper_fixture("events-disable-rule");
    detail["requestParameters"]["name"] = name.into();
    envelope("aws.events", detail)
}

#[tokio::test]
async fn disabling_grantwatchs_own_rule_alerts_critical_on_every_channel_once() {
    let f = guarded();
    let event = disable_rule("grantwatch-GrantEventsRule-1A2B3C4D");
    let outcome = f.watch(&event).await.unwrap();
    let WatchOutcome::Watched {
        severity, alert, ..
    } = &outcome
    else {
        panic!("not watched: {outcome:?}")
    };
    assert_eq!((*severity, *alert), (Severity::Critical, true));
    assert_eq!((f.sns().count(), f.slack().count()), (1, 1));
    // EventBridge delivers it again: the ledger keeps it to one alert.
    f.watch(&event).await.unwrap();
    assert_eq!((f.sns().count(), f.slack().count()), (1, 1));
}

#[tokio::test]
async fn the_same_call_on_someone_elses_rule_is_skipped() {
    let f = guarded();
    let outcome = f.watch(&disable_rule("nightly-batch")).await.unwrap();
    assert!(
        matches!(outcome, WatchOutcome::Skipped { .. }),
        "{outcome:?}"
    );
    assert_eq!(f.sns().count(), 0);
    assert_eq!(outcome.metrics().not_grant_events, 1);
}

#[tokio::test]
async fn without_own_resources_a_tamper_call_is_skipped() {
    let f = Fixture::new(WatchConfig::default());
    let outcome = f
        .watch(&disable_rule("grantwatch-GrantEventsRule-1A2B3C4D"))
        .await
        .unwrap();
    assert!(
        matches!(outcome, WatchOutcome::Skipped { .. }),
        "{outcome:?}"
    );
    assert_eq!(f.sns().count(), 0);
}

#[tokio::test]
async fn the_heartbeat_is_recorded_and_counted_and_never_alerts() {
    // As the template's schedule puts it on the bus.
    let heartbeat = serde_json::json!({
        "version": "0",
        "id": "hb-0001",
        "detail-type": "grantwatch heartbeat",
        "source": "grantwatch.heartbeat",
        "account": "111122223333",
        "time": "2026-11-05T03:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"stack": "grantwatch"},
    });
    for f in [guarded(), Fixture::new(WatchConfig::default())] {
        let outcome = f.watch(&heartbeat).await.unwrap();
        assert_eq!(
            outcome,
            WatchOutcome::Heartbeat {
                event_id: "heartbeat:hb-0001".into(),
                canary: None,
            }
        );
        let metrics = outcome.metrics();
        assert_eq!((metrics.heartbeats, metrics.not_grant_events), (1, 0));
        let line = metrics.emf("grant-watcher", START_MS);
        assert_eq!(line["Heartbeats"], 1);
        assert!(f
            .deps
            .ledger
            .event_ids()
            .contains(&"heartbeat:hb-0001".to_string()));
        assert_eq!(f.sns().count() + f.slack().count(), 0);
    }
}

#[tokio::test]
async fn disabling_a_key_that_holds_a_lambda_grant_names_the_function_that_breaks() {
    let f = guarded();
    // The article's grant: Lambda's, for function `test`, now in the ledger.
    f.watch(&fixture("lambda-create-grant")).await.unwrap();
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let mut detail = tamper_fixture("kms-disable-key");
    detail["requestParameters"]["keyId"] = key.into();
    detail["resources"] = serde_json::json!([{"ARN": key, "type": "AWS::KMS::Key"}]);
    if let Some(elements) = detail
        .get_mut("responseElements")
        .and_then(Value::as_object_mut)
    {
        elements.insert("keyId".into(), key.into());
    }
    let event = envelope("aws.kms", detail);
    // What the watcher judged: the finding names the function.
    let super::pipeline::Pipeline::Judged(verdict) =
        super::pipeline::judge(&event, &f.deps, &policy(&f.deps.config, START_MS)).await
    else {
        panic!("a key lifecycle call is judged")
    };
    assert!(
        verdict
            .findings
            .iter()
            .any(|finding| finding.code == FindingCode::KeyDisabled
                && finding
                    .message
                    .contains("arn:aws:lambda:us-east-1:123456789012:function:test")),
        "{:?}",
        verdict.findings
    );
    let outcome = f.watch(&event).await.unwrap();
    let WatchOutcome::Watched {
        severity, alert, ..
    } = &outcome
    else {
        panic!("not watched: {outcome:?}")
    };
    assert_eq!((*severity, *alert), (Severity::High, true));
    assert_eq!(
        f.sns().sent(),
        vec![vec![verdict.event_id.clone()]],
        "one alert, this call's"
    );
}
