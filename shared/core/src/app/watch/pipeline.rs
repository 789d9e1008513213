//! The watcher's second judgement, beside grants: the calls that blind or
//! weaken grantwatch and the key lifecycle calls ([`crate::tamper`]), routed
//! by the template's `TamperEventsRule`, and the scheduled heartbeat that
//! proves rule → target → watcher, and drives the canary grant (one round
//! trip a day, checked on every heartbeat: [`canary_heartbeat`]), whose
//! CloudTrail legs are recognised by [`canary_leg`].
//!
//! A pipeline verdict then takes the grant verdicts' path (ledger, storm
//! control, every channel), so tampering is alerted, deduplicated and
//! retried exactly like a grant.

use super::{WatchConfig, WatchDeps};
use crate::event::{GrantAction, GrantEvent};
use crate::judge::Policy;
use crate::ports::canary::{
    epoch_words, start_round_trip, Canary, CanaryCheck, CanaryLeg, CanaryRun, CanarySettled,
};
use crate::ports::ledger::GrantLedger;
use crate::tamper;
use crate::verdict::{Severity, Verdict};
use serde_json::Value;

/// What a non-grant event is to the watcher.
pub(super) enum Pipeline {
    /// The scheduled heartbeat (its EventBridge event id).
    Heartbeat(String),
    /// A call on grantwatch's own resources, or a key lifecycle call.
    Judged(Box<Verdict>),
    /// Nothing grantwatch watches: skipped with a log line.
    NotWatched,
}

/// Judge a non-grant event. Without `OWN_RESOURCES` (not deployed by the
/// template) only the heartbeat is recognised.
pub(super) async fn judge<L, C>(
    payload: &Value,
    deps: &WatchDeps<L, C>,
    policy: &Policy,
) -> Pipeline
where
    L: GrantLedger,
{
    if tamper::is_heartbeat(payload) {
        let id = payload
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| crate::event::record_hash(payload));
        return Pipeline::Heartbeat(id);
    }
    let Some(own) = &deps.config.own_resources else {
        return Pipeline::NotWatched;
    };
    let detail = payload.get("detail").unwrap_or(&Value::Null);
    if !tamper::is_pipeline_event(detail) {
        return Pipeline::NotWatched;
    }
    // The key's live grants name what breaks; if the ledger cannot say, the
    // call is still judged (and alerted) without them.
    let mut unknown_grants = None;
    let grants = match tamper::key_to_look_up(detail) {
        Some(key) => deps
            .ledger
            .grants_of_key(&key)
            .await
            .unwrap_or_else(|error| {
                unknown_grants = Some(error.to_string());
                Vec::new()
            }),
        None => Vec::new(),
    };
    match tamper::judge_pipeline_event(detail, own, &grants, policy) {
        Some(mut verdict) => {
            if let Some(why) = unknown_grants {
                verdict.evidence.push(format!(
                    "the key's grants are unknown: the ledger did not answer ({})",
                    crate::verdict::quote(&why)
                ));
            }
            Pipeline::Judged(Box::new(verdict))
        }
        None => Pipeline::NotWatched,
    }
}

/// A grant event on the canary key whose grant a canary run made: the run's
/// leg is marked seen, and the verdict becomes `info`, never alerted.
/// Anything else (a person's own grant on the canary key included) keeps
/// its verdict. If the book cannot answer, the event keeps its verdict too
/// (it may alert: never quiet), with a line saying so; the run then misses.
pub(super) async fn canary_leg(
    mut verdict: Verdict,
    event: &GrantEvent,
    config: &WatchConfig,
    now_ms: i64,
) -> Verdict {
    let Some(canary) = &config.canary else {
        return verdict;
    };
    let (Some(key_arn), Some(grant_id)) = (&event.key_arn, &event.grant_id) else {
        return verdict;
    };
    if key_arn != &canary.key_arn || !event.succeeded() || event.dry_run {
        return verdict;
    }
    let leg = match event.action {
        GrantAction::CreateGrant => CanaryLeg::Created,
        GrantAction::RetireGrant | GrantAction::RevokeGrant => CanaryLeg::Retired,
    };
    let marked = match canary.book.run_of_grant(key_arn, grant_id).await {
        Ok(Some(run)) => canary
            .book
            .mark_seen(&run.run_id, leg, now_ms.div_euclid(1000))
            .await
            .map(|()| Some(run)),
        Ok(None) => Ok(None),
        Err(error) => Err(error),
    };
    match marked {
        Ok(Some(run)) => {
            verdict.severity = Severity::Info;
            verdict.alert = false;
            verdict.findings.clear();
            verdict.evidence.insert(
                0,
                format!(
                    "grantwatch canary: the {} of run {} (started {}), expected and never alerted",
                    leg.as_str(),
                    run.run_id,
                    epoch_words(run.started_at)
                ),
            );
        }
        Ok(None) => {}
        Err(error) => verdict.evidence.push(format!(
            "on the canary key, but the canary bookkeeping did not answer ({}): judged as any grant",
            crate::verdict::quote(&error.to_string())
        )),
    }
    verdict
}

/// The canary on a heartbeat: start today's run if none did (the first
/// heartbeat of each UTC day wins; the book makes it once), then settle
/// every open run that completed or passed the bound. A book failure is
/// reported in the check (counted), and the next heartbeat tries again.
pub(super) async fn canary_heartbeat(canary: &Canary, now_ms: i64) -> CanaryCheck {
    let now = now_ms.div_euclid(1000);
    let mut check = CanaryCheck::default();
    let today = time::OffsetDateTime::from_unix_timestamp(now)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| now.div_euclid(86_400).to_string());
    let run = CanaryRun::new(format!("watcher-{today}"), &canary.key_arn, now);
    match start_round_trip(&*canary.book, &*canary.kms, &canary.principal, run).await {
        Ok(Some(run)) => check.started = Some(run.run_id),
        Ok(None) => {}
        Err(error) => check.problem = Some(format!("starting today's run: {error}")),
    }
    let open = match canary.book.open_runs().await {
        Ok(open) => open,
        Err(error) => {
            check.problem = Some(format!("reading the open runs: {error}"));
            return check;
        }
    };
    for run in open {
        let Some(settled) = run.verdict(now, canary.bound_seconds) else {
            continue;
        };
        match canary.book.settle(&run.run_id, &settled).await {
            Ok(true) => match settled {
                CanarySettled::Completed => check.completed.push(run.run_id),
                CanarySettled::Missed(why) => check.missed.push((run.run_id, why)),
            },
            Ok(false) => {}
            Err(error) => check.problem = Some(format!("settling run {}: {error}", run.run_id)),
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::super::{watch_event, Clock, Invocation, WatchOutcome};
    use super::*;
    use crate::ports::canary::{BoxFuture, CanaryKms, MemoryCanaryBook};
    use crate::ports::fakes::RecordingNotifier;
    use crate::ports::ledger::MemoryLedger;
    use crate::ports::notify::ChannelClass;
    use crate::ports::PortError;
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
    use std::sync::Arc;

    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const ROLE: &str = "arn:aws:iam::123456789012:role/grantwatch-WatcherRole-AbC";
    /// 2026-11-29T00:05:00Z.
    const T0_MS: i64 = 1_795_910_700_000;
    const BOUND: i64 = 1800;

    struct FixedClock(AtomicI64);

    impl Clock for FixedClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
        async fn sleep_ms(&self, ms: u64) {
            self.0.fetch_add(ms as i64, Ordering::SeqCst);
        }
    }

    /// KMS that hands out grant ids `canary-grant-<n>`.
    #[derive(Default)]
    struct Kms {
        created: AtomicUsize,
        retired: AtomicUsize,
    }

    impl CanaryKms for Kms {
        fn create_grant<'a>(
            &'a self,
            key_arn: &'a str,
            principal: &'a str,
            _name: &'a str,
        ) -> BoxFuture<'a, Result<String, PortError>> {
            assert_eq!((key_arn, principal), (KEY, ROLE));
            let n = self.created.fetch_add(1, Ordering::SeqCst);
            Box::pin(std::future::ready(Ok(format!("canary-grant-{n}"))))
        }
        fn retire_grant<'a>(
            &'a self,
            _key_arn: &'a str,
            _grant_id: &'a str,
        ) -> BoxFuture<'a, Result<(), PortError>> {
            self.retired.fetch_add(1, Ordering::SeqCst);
            Box::pin(std::future::ready(Ok(())))
        }
    }

    struct World {
        deps: WatchDeps<MemoryLedger, FixedClock>,
        sns: Arc<RecordingNotifier>,
        book: Arc<MemoryCanaryBook>,
        kms: Arc<Kms>,
    }

    fn world() -> World {
        let sns = Arc::new(RecordingNotifier::with_class(
            "sns",
            ChannelClass::Mandatory,
        ));
        let book = Arc::new(MemoryCanaryBook::default());
        let kms = Arc::new(Kms::default());
        let config = WatchConfig {
            canary: Some(Canary {
                key_arn: KEY.into(),
                principal: ROLE.into(),
                bound_seconds: BOUND,
                book: book.clone(),
                kms: kms.clone(),
            }),
            ..WatchConfig::default()
        };
        World {
            deps: WatchDeps {
                ledger: MemoryLedger::new(),
                notifiers: vec![Box::new(sns.clone())],
                clock: FixedClock(AtomicI64::new(T0_MS)),
                config,
            },
            sns,
            book,
            kms,
        }
    }

    impl World {
        async fn watch(&self, payload: &Value) -> WatchOutcome {
            let invocation = Invocation {
                request_id: "req",
                deadline_ms: i64::MAX,
            };
            watch_event(payload, &self.deps, &invocation)
                .await
                .expect("watched")
        }
        fn at(&self, ms: i64) {
            self.deps.clock.0.store(ms, Ordering::SeqCst);
        }
    }

    fn heartbeat(id: &str) -> Value {
        serde_json::json!({"id": id, "source": "grantwatch.heartbeat", "detail-type": "grantwatch heartbeat", "detail": {}})
    }

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../tests/fixtures/watcher/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    /// A CreateGrant on the canary key (a person's risky grant, as recorded).
    fn create_leg(grant_id: &str, event_id: &str) -> Value {
        let mut event = fixture("manual-cross-account-grant");
        event["detail"]["responseElements"]["grantId"] = grant_id.into();
        event["detail"]["eventID"] = event_id.into();
        event
    }

    fn retire_leg(grant_id: &str, event_id: &str) -> Value {
        let mut event = fixture("manual-retire-grant");
        event["detail"]["requestParameters"]["grantId"] = grant_id.into();
        event["detail"]["eventID"] = event_id.into();
        event
    }

    fn canary_of(outcome: &WatchOutcome) -> CanaryCheck {
        match outcome {
            WatchOutcome::Heartbeat {
                canary: Some(check),
                ..
            } => check.clone(),
            other => panic!("not a heartbeat with a canary check: {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_first_heartbeat_of_a_day_starts_one_round_trip_and_its_legs_complete_it_silently()
    {
        let w = world();
        let first = w.watch(&heartbeat("hb-1")).await;
        assert_eq!(
            canary_of(&first).started.as_deref(),
            Some("watcher-2026-11-29")
        );
        assert_eq!(first.metrics().canary_started, 1);
        let second = w.watch(&heartbeat("hb-2")).await;
        assert_eq!(canary_of(&second), CanaryCheck::default(), "one a day");
        assert_eq!(
            (
                w.kms.created.load(Ordering::SeqCst),
                w.kms.retired.load(Ordering::SeqCst)
            ),
            (1, 1)
        );

        for leg in [
            create_leg("canary-grant-0", "ct-create"),
            retire_leg("canary-grant-0", "ct-retire"),
        ] {
            match w.watch(&leg).await {
                WatchOutcome::Watched {
                    severity, alert, ..
                } => assert_eq!((severity, alert), (Severity::Info, false)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(w.sns.count(), 0, "canary legs never alert");
        w.at(T0_MS + 15 * 60_000);
        let check = canary_of(&w.watch(&heartbeat("hb-3")).await);
        assert_eq!(check.completed, vec!["watcher-2026-11-29".to_string()]);
        assert!(check.missed.is_empty());
        assert!(w.book.runs()[0].settled == Some(CanarySettled::Completed));
        // Counted once.
        let again = w.watch(&heartbeat("hb-4")).await;
        assert_eq!(again.metrics().canary_completed, 0);
        // The ledger still knows the canary grant and its removal.
        let record = w
            .deps
            .ledger
            .get_grant(KEY, "canary-grant-0")
            .await
            .unwrap();
        assert!(record.is_some_and(|r| r.removal.is_some()));
    }

    #[tokio::test]
    async fn a_persons_grant_on_the_canary_key_is_judged_like_any_other() {
        let w = world();
        w.watch(&heartbeat("hb-1")).await;
        match w
            .watch(&create_leg("someone-elses-grant", "ct-person"))
            .await
        {
            WatchOutcome::Watched {
                severity, alert, ..
            } => {
                assert!(alert);
                assert!(severity >= Severity::High, "{severity:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w.sns.count(), 1);
        assert!(w.book.runs()[0].created_seen_at.is_none());
    }

    #[tokio::test]
    async fn a_leg_unseen_past_the_bound_is_missed_once_with_what_is_missing() {
        let w = world();
        w.watch(&heartbeat("hb-1")).await;
        w.watch(&create_leg("canary-grant-0", "ct-create")).await;
        w.at(T0_MS + (BOUND - 60) * 1000);
        let early = canary_of(&w.watch(&heartbeat("hb-2")).await);
        assert!(
            early.missed.is_empty() && early.completed.is_empty(),
            "{early:?}"
        );
        w.at(T0_MS + (BOUND + 60) * 1000);
        let late = w.watch(&heartbeat("hb-3")).await;
        assert_eq!(late.metrics().canary_missed, 1);
        let line = late.metrics().emf("grant-watcher", T0_MS);
        assert_eq!(
            (
                line["CanaryMissed"].as_u64(),
                line["CanaryCompleted"].as_u64()
            ),
            (Some(1), Some(0))
        );
        let (run, why) = &canary_of(&late).missed[0];
        assert_eq!(run, "watcher-2026-11-29");
        assert!(
            why.starts_with("RetireGrant of grant canary-grant-0 not seen"),
            "{why}"
        );
        assert_eq!(
            w.watch(&heartbeat("hb-4")).await.metrics().canary_missed,
            0,
            "counted once"
        );
    }

    #[tokio::test]
    async fn without_a_canary_the_heartbeat_checks_nothing() {
        let mut w = world();
        w.deps.config.canary = None;
        match w.watch(&heartbeat("hb-1")).await {
            WatchOutcome::Heartbeat { canary, .. } => assert_eq!(canary, None),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.kms.created.load(Ordering::SeqCst), 0);
    }
}
