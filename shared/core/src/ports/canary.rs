//! The canary grant: a real grant made and retired on a dedicated key, whose
//! two CloudTrail events (CreateGrant, RetireGrant) must reach the watcher
//! within a bound. It proves the whole path, trail included
//! (docs/watcher.md, "Canary").
//!
//! - [`CanaryKms`]: make and retire the canary grant (KMS);
//! - [`CanaryBook`]: the bookkeeping of each round trip ("run"): started,
//!   which legs the watcher saw, settled as completed or missed. The DynamoDB
//!   book lives in the ledger table (`grantwatch-aws`), [`MemoryCanaryBook`]
//!   here.
//!
//! Only a grant whose id a run recorded counts as the canary: a grant id is
//! KMS's random 64 hex digits, so a person's own grant on the canary key is
//! never taken for it and is judged like any other grant.

use crate::ports::PortError;
pub use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// How long the two legs may take to arrive by default (CloudTrail delivers
/// management events to EventBridge within minutes, best effort).
pub const DEFAULT_CANARY_BOUND_SECONDS: i64 = 30 * 60;

/// The prefix of every canary grant's name (`grantwatch-canary-<run id>`).
pub const CANARY_GRANT_PREFIX: &str = "grantwatch-canary-";

/// The two CloudTrail events of a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryLeg {
    /// CreateGrant.
    Created,
    /// RetireGrant (or RevokeGrant).
    Retired,
}

impl CanaryLeg {
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryLeg::Created => "CreateGrant",
            CanaryLeg::Retired => "RetireGrant",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "why", rename_all = "kebab-case")]
pub enum CanarySettled {
    /// Both legs were seen.
    Completed,
    /// A leg was not seen within the bound, or the round trip could not be
    /// made: why.
    Missed(String),
}

/// One round trip, as the book keeps it. Times are epoch seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryRun {
    /// `watcher-<YYYY-MM-DD>` (one a day) or `doctor-<epoch ms>`.
    pub run_id: String,
    pub key_arn: String,
    pub started_at: i64,
    /// The grant KMS made; `None` until CreateGrant answered (or if it failed).
    pub grant_id: Option<String>,
    /// Why the round trip could not be made (CreateGrant or RetireGrant
    /// failed), if it could not.
    pub problem: Option<String>,
    pub created_seen_at: Option<i64>,
    pub retired_seen_at: Option<i64>,
    pub settled: Option<CanarySettled>,
}

impl CanaryRun {
    pub fn new(run_id: impl Into<String>, key_arn: impl Into<String>, started_at: i64) -> Self {
        CanaryRun {
            run_id: run_id.into(),
            key_arn: key_arn.into(),
            started_at,
            grant_id: None,
            problem: None,
            created_seen_at: None,
            retired_seen_at: None,
            settled: None,
        }
    }

    /// The canary grant's name.
    pub fn grant_name(&self) -> String {
        format!("{CANARY_GRANT_PREFIX}{}", self.run_id)
    }

    pub fn seen(&self, leg: CanaryLeg) -> bool {
        match leg {
            CanaryLeg::Created => self.created_seen_at.is_some(),
            CanaryLeg::Retired => self.retired_seen_at.is_some(),
        }
    }

    /// The legs not seen yet.
    pub fn unseen(&self) -> Vec<CanaryLeg> {
        [CanaryLeg::Created, CanaryLeg::Retired]
            .into_iter()
            .filter(|leg| !self.seen(*leg))
            .collect()
    }

    /// How the run stands at `now` with `bound_seconds`: `None` while it may
    /// still complete. The one place the rule is written.
    pub fn verdict(&self, now: i64, bound_seconds: i64) -> Option<CanarySettled> {
        if let Some(problem) = &self.problem {
            return Some(CanarySettled::Missed(problem.clone()));
        }
        let unseen = self.unseen();
        if unseen.is_empty() {
            return Some(CanarySettled::Completed);
        }
        if now - self.started_at < bound_seconds {
            return None;
        }
        let legs: Vec<&str> = unseen.iter().map(|leg| leg.as_str()).collect();
        Some(CanarySettled::Missed(format!(
            "{} of grant {} not seen by the watcher within {} minutes of {}",
            legs.join(" and "),
            self.grant_id.as_deref().unwrap_or("(never created)"),
            bound_seconds / 60,
            epoch_words(self.started_at),
        )))
    }
}

/// Epoch seconds as RFC 3339 (UTC), or the number when out of range.
pub fn epoch_words(epoch: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| epoch.to_string())
}

/// The bookkeeping of canary runs. Every write is conditional where two
/// invocations could race, so each run starts once and settles once.
pub trait CanaryBook: Send + Sync {
    /// Record a new run (conditional create): `false` if the id exists.
    fn start_run<'a>(&'a self, run: &'a CanaryRun) -> BoxFuture<'a, Result<bool, PortError>>;

    /// What the KMS calls gave: the grant id, and why the round trip
    /// failed, if it did.
    fn set_grant<'a>(
        &'a self,
        run_id: &'a str,
        grant_id: Option<&'a str>,
        problem: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), PortError>>;

    /// The run that made `grant_id` on `key_arn`, if any.
    fn run_of_grant<'a>(
        &'a self,
        key_arn: &'a str,
        grant_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CanaryRun>, PortError>>;

    fn get_run<'a>(
        &'a self,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CanaryRun>, PortError>>;

    /// The watcher saw `leg` of the run at `at` (the first sighting is kept).
    fn mark_seen<'a>(
        &'a self,
        run_id: &'a str,
        leg: CanaryLeg,
        at: i64,
    ) -> BoxFuture<'a, Result<(), PortError>>;

    /// Runs not settled yet, oldest first.
    fn open_runs(&self) -> BoxFuture<'_, Result<Vec<CanaryRun>, PortError>>;

    /// Settle a run (conditional: first writer wins): `true` if this call
    /// settled it, so each run is counted once.
    fn settle<'a>(
        &'a self,
        run_id: &'a str,
        settled: &'a CanarySettled,
    ) -> BoxFuture<'a, Result<bool, PortError>>;
}

/// Make and retire the canary grant.
pub trait CanaryKms: Send + Sync {
    /// CreateGrant on `key_arn` for `principal` (grantee and retiring
    /// principal), one harmless operation (DescribeKey), named `name`: the
    /// grant id.
    fn create_grant<'a>(
        &'a self,
        key_arn: &'a str,
        principal: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, PortError>>;

    /// RetireGrant of `grant_id` on `key_arn` (as its retiring principal).
    fn retire_grant<'a>(
        &'a self,
        key_arn: &'a str,
        grant_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>>;
}

/// The watcher's canary (`CANARY_KEY_ARN` set): the key, who the grant is
/// for (the watcher's own role), the bound, and the two ports.
#[derive(Clone)]
pub struct Canary {
    pub key_arn: String,
    /// Grantee and retiring principal of the canary grant.
    pub principal: String,
    pub bound_seconds: i64,
    pub book: Arc<dyn CanaryBook>,
    pub kms: Arc<dyn CanaryKms>,
}

impl fmt::Debug for Canary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canary")
            .field("key_arn", &self.key_arn)
            .field("principal", &self.principal)
            .field("bound_seconds", &self.bound_seconds)
            .finish_non_exhaustive()
    }
}

/// What a heartbeat did with the canary: the run it started, the runs it
/// settled, and a bookkeeping failure, if any (part of the heartbeat's
/// outcome; counted as `CanaryStarted`, `CanaryCompleted`, `CanaryMissed`,
/// `CanaryCheckFailed`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CanaryCheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub completed: Vec<String>,
    /// Run id and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<(String, String)>,
    /// The book could not be read or written: checked again next heartbeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Start a run: record it, create the grant, record its id, retire it.
/// `Ok(None)` when the run id was already started (another invocation, or
/// a retry). A failed KMS call is recorded on the run (it then settles as
/// missed) and returned as the run's `problem`; only a book failure is
/// `Err`.
pub async fn start_round_trip(
    book: &dyn CanaryBook,
    kms: &dyn CanaryKms,
    principal: &str,
    run: CanaryRun,
) -> Result<Option<CanaryRun>, PortError> {
    if !book.start_run(&run).await? {
        return Ok(None);
    }
    let mut run = run;
    match kms
        .create_grant(&run.key_arn, principal, &run.grant_name())
        .await
    {
        Ok(grant_id) => {
            run.grant_id = Some(grant_id);
        }
        Err(error) => run.problem = Some(format!("CreateGrant failed: {error}")),
    }
    // Recorded before the retirement, so the CreateGrant leg (minutes later)
    // finds its run.
    book.set_grant(&run.run_id, run.grant_id.as_deref(), run.problem.as_deref())
        .await?;
    if let Some(grant_id) = run.grant_id.clone() {
        if let Err(error) = kms.retire_grant(&run.key_arn, &grant_id).await {
            run.problem = Some(format!(
                "RetireGrant of grant {grant_id} failed (the grant stays on the canary key until retired): {error}"
            ));
            book.set_grant(&run.run_id, Some(&grant_id), run.problem.as_deref())
                .await?;
        }
    }
    Ok(Some(run))
}

/// The in-memory book (tests, the CLI's dry runs).
#[derive(Debug, Default)]
pub struct MemoryCanaryBook {
    runs: Mutex<BTreeMap<String, CanaryRun>>,
}

impl MemoryCanaryBook {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, CanaryRun>) -> T,
    ) -> Result<T, PortError> {
        let mut runs = self
            .runs
            .lock()
            .map_err(|_| PortError::Permanent("canary book lock poisoned".into()))?;
        Ok(f(&mut runs))
    }

    /// Every run, settled or not (tests).
    pub fn runs(&self) -> Vec<CanaryRun> {
        self.with(|runs| runs.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T, PortError>) -> BoxFuture<'a, Result<T, PortError>> {
    Box::pin(std::future::ready(value))
}

fn unknown_run(run_id: &str) -> PortError {
    PortError::Permanent(format!("no canary run {run_id}"))
}

impl CanaryBook for MemoryCanaryBook {
    fn start_run<'a>(&'a self, run: &'a CanaryRun) -> BoxFuture<'a, Result<bool, PortError>> {
        ready(self.with(|runs| {
            if runs.contains_key(&run.run_id) {
                false
            } else {
                runs.insert(run.run_id.clone(), run.clone());
                true
            }
        }))
    }

    fn set_grant<'a>(
        &'a self,
        run_id: &'a str,
        grant_id: Option<&'a str>,
        problem: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        ready(
            self.with(|runs| match runs.get_mut(run_id) {
                Some(run) => {
                    run.grant_id = grant_id.map(str::to_string);
                    run.problem = problem.map(str::to_string);
                    Ok(())
                }
                None => Err(unknown_run(run_id)),
            })
            .and_then(|r| r),
        )
    }

    fn run_of_grant<'a>(
        &'a self,
        key_arn: &'a str,
        grant_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CanaryRun>, PortError>> {
        ready(self.with(|runs| {
            runs.values()
                .find(|run| run.key_arn == key_arn && run.grant_id.as_deref() == Some(grant_id))
                .cloned()
        }))
    }

    fn get_run<'a>(
        &'a self,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CanaryRun>, PortError>> {
        ready(self.with(|runs| runs.get(run_id).cloned()))
    }

    fn mark_seen<'a>(
        &'a self,
        run_id: &'a str,
        leg: CanaryLeg,
        at: i64,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        ready(
            self.with(|runs| match runs.get_mut(run_id) {
                Some(run) => {
                    let seen = match leg {
                        CanaryLeg::Created => &mut run.created_seen_at,
                        CanaryLeg::Retired => &mut run.retired_seen_at,
                    };
                    seen.get_or_insert(at);
                    Ok(())
                }
                None => Err(unknown_run(run_id)),
            })
            .and_then(|r| r),
        )
    }

    fn open_runs(&self) -> BoxFuture<'_, Result<Vec<CanaryRun>, PortError>> {
        ready(self.with(|runs| {
            let mut open: Vec<CanaryRun> = runs
                .values()
                .filter(|run| run.settled.is_none())
                .cloned()
                .collect();
            open.sort_by_key(|run| run.started_at);
            open
        }))
    }

    fn settle<'a>(
        &'a self,
        run_id: &'a str,
        settled: &'a CanarySettled,
    ) -> BoxFuture<'a, Result<bool, PortError>> {
        ready(
            self.with(|runs| match runs.get_mut(run_id) {
                Some(run) if run.settled.is_none() => {
                    run.settled = Some(settled.clone());
                    Ok(true)
                }
                Some(_) => Ok(false),
                None => Err(unknown_run(run_id)),
            })
            .and_then(|r| r),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/canary";
    const T0: i64 = 1_795_975_200; // 2026-11-29T18:00:00Z

    #[test]
    fn a_run_completes_when_both_legs_are_seen_and_misses_past_the_bound() {
        let mut run = CanaryRun::new("watcher-2026-11-29", KEY, T0);
        run.grant_id = Some("g1".into());
        assert_eq!(run.verdict(T0 + 60, 1800), None, "still in time");
        run.created_seen_at = Some(T0 + 300);
        let missed = run.verdict(T0 + 1800, 1800);
        match missed {
            Some(CanarySettled::Missed(why)) => {
                assert!(why.contains("RetireGrant of grant g1"), "{why}");
                assert!(!why.contains("CreateGrant"), "{why}");
                assert!(why.contains("30 minutes of 2026-11-29T18:00:00Z"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        run.retired_seen_at = Some(T0 + 310);
        assert_eq!(run.verdict(T0 + 1800, 1800), Some(CanarySettled::Completed));
    }

    #[test]
    fn a_run_that_could_not_be_made_misses_at_once() {
        let mut run = CanaryRun::new("watcher-2026-11-29", KEY, T0);
        run.problem = Some("CreateGrant failed: AccessDenied".into());
        assert_eq!(
            run.verdict(T0, 1800),
            Some(CanarySettled::Missed(
                "CreateGrant failed: AccessDenied".into()
            ))
        );
    }

    struct Kms {
        create: Result<String, PortError>,
        retire: Result<(), PortError>,
    }

    impl CanaryKms for Kms {
        fn create_grant<'a>(
            &'a self,
            _key_arn: &'a str,
            _principal: &'a str,
            name: &'a str,
        ) -> BoxFuture<'a, Result<String, PortError>> {
            assert!(name.starts_with(CANARY_GRANT_PREFIX));
            ready(self.create.clone())
        }

        fn retire_grant<'a>(
            &'a self,
            _key_arn: &'a str,
            _grant_id: &'a str,
        ) -> BoxFuture<'a, Result<(), PortError>> {
            ready(self.retire.clone())
        }
    }

    #[tokio::test]
    async fn a_round_trip_starts_once_and_records_its_grant_or_its_problem() {
        let book = MemoryCanaryBook::default();
        let kms = Kms {
            create: Ok("g1".into()),
            retire: Err(PortError::Permanent("AccessDeniedException".into())),
        };
        let run = CanaryRun::new("watcher-2026-11-29", KEY, T0);
        let started = start_round_trip(&book, &kms, "role", run.clone())
            .await
            .unwrap()
            .expect("started");
        assert_eq!(started.grant_id.as_deref(), Some("g1"));
        let problem = started.problem.expect("retire failed");
        assert!(
            problem.contains("RetireGrant of grant g1 failed"),
            "{problem}"
        );
        assert_eq!(book.runs()[0].problem.as_deref(), Some(problem.as_str()));
        assert_eq!(
            start_round_trip(&book, &kms, "role", run).await.unwrap(),
            None,
            "the same run id starts once"
        );
        assert_eq!(
            book.run_of_grant(KEY, "g1")
                .await
                .unwrap()
                .map(|r| r.run_id),
            Some("watcher-2026-11-29".to_string())
        );
        assert_eq!(book.run_of_grant("other-key", "g1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn each_run_settles_once_and_leaves_the_open_runs() {
        let book = MemoryCanaryBook::default();
        let run = CanaryRun::new("doctor-1", KEY, T0);
        assert!(book.start_run(&run).await.unwrap());
        book.mark_seen("doctor-1", CanaryLeg::Created, T0 + 5)
            .await
            .unwrap();
        book.mark_seen("doctor-1", CanaryLeg::Created, T0 + 9)
            .await
            .unwrap();
        assert_eq!(
            book.get_run("doctor-1")
                .await
                .unwrap()
                .unwrap()
                .created_seen_at,
            Some(T0 + 5),
            "the first sighting is kept"
        );
        assert_eq!(book.open_runs().await.unwrap().len(), 1);
        assert!(book
            .settle("doctor-1", &CanarySettled::Completed)
            .await
            .unwrap());
        assert!(!book
            .settle("doctor-1", &CanarySettled::Missed("late".into()))
            .await
            .unwrap());
        assert!(book.open_runs().await.unwrap().is_empty());
        assert!(book
            .mark_seen("nope", CanaryLeg::Retired, T0)
            .await
            .is_err());
    }
}
