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

// ----------------------------------------------------------- correlation

use self::correlation::{CopyRole, CORRELATION_UNAVAILABLE, SECOND_COPY_UNCHECKED};
use crate::correlate::CorrelationSettings;
use crate::ports::fakes::{CrashSignal, Fault, FaultyLedger};

fn grant_event(payload: &Value) -> GrantEvent {
    match event::parse_eventbridge_event(payload).unwrap() {
        Parsed::Grant(event) => *event,
        other => panic!("{other:?}"),
    }
}

/// Judge and record `payload` as the watcher does, with correlation.
async fn judged<L: GrantLedger>(ledger: &L, payload: &Value) -> Recorded {
    let policy = policy(&WatchConfig::default(), START_MS);
    record_correlated(
        ledger,
        &grant_event(payload),
        &policy,
        Some(&CorrelationSettings::default()),
    )
    .await
    .unwrap()
}

fn codes(verdict: &Verdict) -> Vec<FindingCode> {
    verdict.findings.iter().map(|f| f.code).collect()
}

/// The person's risky grant at `time` (same key, grantee and operations
/// as every other `manual_grant`).
fn manual_grant_at(n: usize, time: &str) -> Value {
    let mut event = manual_grant(n);
    event["detail"]["eventTime"] = time.into();
    event
}

/// Lambda's routine grant on the same key, as the `n`th distinct event.
fn lambda_grant(n: usize) -> Value {
    let mut event = fixture("lambda-create-grant");
    event["detail"]["eventID"] = format!("lambda-{n:04}").into();
    event["detail"]["responseElements"]["grantId"] = format!("lambda-grant-{n:04}").into();
    event
}

#[tokio::test]
async fn a_persons_duplicate_and_burst_are_found_in_real_time() {
    let ledger = MemoryLedger::new();
    let first = judged(&ledger, &manual_grant(1)).await.verdict;
    assert!(!codes(&first).contains(&FindingCode::DuplicateGrant));
    let second = judged(&ledger, &manual_grant(2)).await.verdict;
    assert!(
        codes(&second).contains(&FindingCode::DuplicateGrant),
        "{second:?}"
    );
    assert!(!codes(&second).contains(&FindingCode::GrantBurst));
    for n in 3..=5 {
        let verdict = judged(&ledger, &manual_grant(n)).await.verdict;
        assert!(!codes(&verdict).contains(&FindingCode::GrantBurst), "{n}");
    }
    // The sixth within ten minutes is more than five: a burst.
    let sixth = judged(&ledger, &manual_grant(6)).await;
    assert!(codes(&sixth.verdict).contains(&FindingCode::GrantBurst));
    assert!(!sixth.correlation_unavailable);
    // A retry of the same event is not its own duplicate or burst member.
    let again = judged(&ledger, &manual_grant(6)).await.verdict;
    assert_eq!(codes(&again), codes(&sixth.verdict));
    // An hour later: no burst (the window is ten minutes), still a duplicate.
    let later = judged(&ledger, &manual_grant_at(7, "2026-11-05T03:00:00Z")).await;
    assert!(!codes(&later.verdict).contains(&FindingCode::GrantBurst));
    assert!(codes(&later.verdict).contains(&FindingCode::DuplicateGrant));
}

#[tokio::test]
async fn a_grant_recreated_within_a_day_of_its_removal_persists() {
    let ledger = MemoryLedger::new();
    judged(&ledger, &manual_grant(1)).await;
    let mut revoke = fixture("manual-retire-grant");
    revoke["detail"]["eventName"] = "RevokeGrant".into();
    revoke["detail"]["eventTime"] = "2026-11-05T04:00:00Z".into();
    revoke["detail"]["requestParameters"]["grantId"] = "grant-0001".into();
    let removed = judged(&ledger, &revoke).await.verdict;
    assert_eq!(removed.event_name, "RevokeGrant");
    let back = judged(&ledger, &manual_grant_at(2, "2026-11-05T05:00:00Z")).await;
    assert!(
        codes(&back.verdict).contains(&FindingCode::GrantPersistence),
        "{:?}",
        back.verdict
    );
    assert!(
        !codes(&back.verdict).contains(&FindingCode::DuplicateGrant),
        "the removed grant is no duplicate"
    );
    let days_later = judged(&ledger, &manual_grant_at(3, "2026-11-07T05:00:00Z")).await;
    assert!(!codes(&days_later.verdict).contains(&FindingCode::GrantPersistence));
}

/// A watcher over a ledger whose correlation reads and copy records fail
/// as planned.
fn faulty() -> (
    WatchDeps<FaultyLedger<MemoryLedger>, FakeClock>,
    Arc<RecordingNotifier>,
) {
    let sns = Arc::new(RecordingNotifier::with_class(
        "sns",
        ChannelClass::Mandatory,
    ));
    let deps = WatchDeps {
        ledger: FaultyLedger::new(MemoryLedger::new(), CrashSignal::new()),
        notifiers: vec![Box::new(sns.clone())],
        clock: FakeClock(AtomicI64::new(START_MS)),
        config: WatchConfig::default(),
    };
    (deps, sns)
}

async fn watch_with<L: EventLedger + GrantLedger + StormLedger>(
    deps: &WatchDeps<L, FakeClock>,
    payload: &Value,
) -> WatchOutcome {
    let invocation = Invocation {
        request_id: "req-1",
        deadline_ms: FAR_DEADLINE,
    };
    watch_event(payload, deps, &invocation).await.unwrap()
}

#[tokio::test]
async fn a_services_grant_stream_pays_no_correlation_read_and_raises_nothing() {
    let (deps, sns) = faulty();
    for n in 1..=10 {
        deps.ledger
            .faults
            .add("grants_to_grantee", n, Fault::Transient);
    }
    for n in 1..=8 {
        let outcome = watch_with(&deps, &lambda_grant(n)).await;
        let metrics = outcome.metrics();
        assert_eq!(
            (metrics.alerts, metrics.correlation_unavailable),
            (0, 0),
            "{outcome:?}"
        );
    }
    assert_eq!(deps.ledger.faults.calls().get("grants_to_grantee"), None);
    let verdict = judged(&deps.ledger.inner, &lambda_grant(9)).await.verdict;
    assert!(
        !codes(&verdict).iter().any(|c| matches!(
            c,
            FindingCode::DuplicateGrant | FindingCode::GrantBurst | FindingCode::GrantPersistence
        )),
        "{verdict:?}"
    );
    assert_eq!(sns.count(), 0);
}

#[tokio::test]
async fn a_failed_correlation_read_still_alerts_says_so_and_is_counted() {
    let (deps, sns) = faulty();
    deps.ledger
        .faults
        .add("grants_to_grantee", 1, Fault::Transient);
    deps.ledger
        .faults
        .add("grants_to_grantee", 2, Fault::Permanent);
    let outcome = watch_with(&deps, &manual_grant(1)).await;
    let metrics = outcome.metrics();
    assert_eq!((metrics.alerts, metrics.correlation_unavailable), (1, 1));
    assert_eq!(
        metrics.emf("grant-watcher", START_MS)["CorrelationUnavailable"],
        1
    );
    assert_eq!(sns.count(), 1, "the alert is not blocked");
    // The grant is still recorded, and the verdict says what was missed.
    let recorded = judged(&deps.ledger, &manual_grant(2)).await;
    assert!(recorded.correlation_unavailable);
    assert!(
        recorded.verdict.evidence[0].starts_with(CORRELATION_UNAVAILABLE),
        "{:?}",
        recorded.verdict.evidence
    );
    assert_eq!(
        deps.ledger
            .inner
            .grants_of_key(KEY_ARN)
            .await
            .unwrap()
            .len(),
        2
    );
    // Read again: the duplicate is found.
    let third = judged(&deps.ledger, &manual_grant(3)).await;
    assert!(!third.correlation_unavailable);
    assert!(codes(&third.verdict).contains(&FindingCode::DuplicateGrant));
}

const KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const SHARED_EVENT_ID: &str = "57f5dbee-16da-413e-979f-2c4c6663475e";

/// The key of another account (444455556666, outside the trust zone).
const FOREIGN_KEY_ARN: &str =
    "arn:aws:kms:us-east-1:444455556666:key/0000abcd-12ab-34cd-56ef-1234567890ab";

/// Only account 123456789012 is trusted.
fn zoned() -> WatchConfig {
    WatchConfig {
        trust_zone: crate::trust::TrustZone::from_accounts(["123456789012"]),
        ..WatchConfig::default()
    }
}

/// One copy of a cross-account CreateGrant: a role of account
/// 123456789012 grants a role of its own account the use of a key of
/// account 444455556666 (how KMS ransomware starts); CloudTrail writes it
/// into `recipient` as `event_id`.
fn cross_account_copy(event_id: &str, recipient: &str) -> Value {
    let mut event = fixture("manual-cross-account-grant");
    let detail = &mut event["detail"];
    detail["eventID"] = event_id.into();
    detail["sharedEventID"] = SHARED_EVENT_ID.into();
    detail["recipientAccountId"] = recipient.into();
    detail["userIdentity"] = serde_json::json!({
        "type": "AssumedRole",
        "arn": "arn:aws:sts::123456789012:assumed-role/ops/mallory",
        "accountId": "123456789012",
        "sessionContext": {"sessionIssuer": {
            "type": "Role", "arn": "arn:aws:iam::123456789012:role/ops", "accountId": "123456789012"
        }}
    });
    detail["requestParameters"]["keyId"] = FOREIGN_KEY_ARN.into();
    detail["requestParameters"]["granteePrincipal"] = "arn:aws:iam::123456789012:role/app".into();
    detail["responseElements"]["keyId"] = FOREIGN_KEY_ARN.into();
    detail["resources"] = serde_json::json!([{
        "accountId": "444455556666", "type": "AWS::KMS::Key", "ARN": FOREIGN_KEY_ARN
    }]);
    event["account"] = recipient.into();
    event
}

fn copy_role(outcome: &WatchOutcome) -> Option<CopyRole> {
    match outcome {
        WatchOutcome::Watched {
            cross_account_copy, ..
        } => *cross_account_copy,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_copies_of_a_cross_account_call_are_judged_differently() {
    // The premise of the next tests: the caller's account sees a foreign
    // key (worse), the key owner's account does not.
    let p = policy(&zoned(), START_MS);
    let owner = judge_event(
        &grant_event(&cross_account_copy("copy-owner", "444455556666")),
        None,
        &p,
    );
    let caller = judge_event(
        &grant_event(&cross_account_copy("copy-caller", "123456789012")),
        None,
        &p,
    );
    assert!(codes(&caller).contains(&FindingCode::ForeignKey));
    assert!(!codes(&owner).contains(&FindingCode::ForeignKey));
    assert_eq!(
        (owner.severity, caller.severity),
        (Severity::High, Severity::Critical)
    );
    assert!(owner.alert && caller.alert);
}

#[tokio::test]
async fn the_second_copy_of_a_cross_account_call_only_enriches_the_ledger() {
    let f = Fixture::new(zoned());
    let first = f
        .watch(&cross_account_copy("copy-caller", "123456789012"))
        .await
        .unwrap();
    assert_eq!(copy_role(&first), Some(CopyRole::First));
    let second = f
        .watch(&cross_account_copy("copy-owner", "444455556666"))
        .await
        .unwrap();
    assert_eq!(copy_role(&second), Some(CopyRole::Recorded));
    let WatchOutcome::Watched { alert, .. } = second else {
        unreachable!()
    };
    assert!(!alert);
    assert_eq!(second.metrics().second_copies_recorded, 1);
    assert_eq!(f.sns().count(), 1, "one alert for one call");
    // A retry of the first copy is still the first (and already delivered).
    let retry = f
        .watch_as(
            &cross_account_copy("copy-caller", "123456789012"),
            "req-2",
            FAR_DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(copy_role(&retry), Some(CopyRole::First));
    assert_eq!(f.sns().count(), 1);
}

#[tokio::test]
async fn a_second_copy_that_raises_the_severity_sends_exactly_one_follow_up() {
    let f = Fixture::new(zoned());
    let first = f
        .watch(&cross_account_copy("copy-owner", "444455556666"))
        .await
        .unwrap();
    assert_eq!(copy_role(&first), Some(CopyRole::First));
    let follow_up = cross_account_copy("copy-caller", "123456789012");
    let second = f.watch(&follow_up).await.unwrap();
    assert_eq!(copy_role(&second), Some(CopyRole::FollowUp));
    assert_eq!(second.metrics().second_copy_follow_ups, 1);
    // Retried (a lost reply): still one follow-up.
    let retry = f.watch_as(&follow_up, "req-2", FAR_DEADLINE).await.unwrap();
    assert_eq!(copy_role(&retry), Some(CopyRole::FollowUp));
    assert_eq!(
        f.sns().sent(),
        [
            vec!["copy-owner".to_string()],
            vec!["copy-caller".to_string()]
        ]
    );
    // The follow-up says what it follows.
    let mut verdict = judge_event(
        &grant_event(&follow_up),
        None,
        &policy(&f.deps.config, START_MS),
    );
    let role =
        correlation::settle_copy(&f.deps.ledger, &grant_event(&follow_up), &mut verdict, 1).await;
    assert_eq!(role, Some(CopyRole::FollowUp));
    assert!(
        verdict.evidence[0].starts_with("follow-up: "),
        "{:?}",
        verdict.evidence
    );
    assert!(verdict.evidence[0].contains("copy-owner"));
}

#[tokio::test]
async fn when_the_copies_cannot_be_compared_the_copy_alerts_marked_and_counted() {
    let (deps, sns) = faulty();
    let first = watch_with(&deps, &cross_account_copy("copy-caller", "123456789012")).await;
    assert_eq!(copy_role(&first), Some(CopyRole::First));
    // The second copy cannot be checked: it alerts (a possible duplicate).
    deps.ledger.faults.add("record_copy", 2, Fault::Permanent);
    let second = watch_with(&deps, &cross_account_copy("copy-owner", "444455556666")).await;
    assert_eq!(copy_role(&second), Some(CopyRole::Unchecked));
    assert_eq!(second.metrics().second_copy_unchecked, 1);
    assert_eq!(sns.count(), 2);
    let event = grant_event(&cross_account_copy("copy-owner", "444455556666"));
    let mut verdict = judge_event(&event, None, &policy(&deps.config, START_MS));
    deps.ledger.faults.add("record_copy", 3, Fault::Transient);
    correlation::settle_copy(&deps.ledger, &event, &mut verdict, 1).await;
    assert!(verdict.evidence[0].starts_with(SECOND_COPY_UNCHECKED));
    assert!(verdict.alert);
}
