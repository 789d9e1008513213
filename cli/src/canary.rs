//! `grantwatch doctor --canary`: the watcher's daily canary round trip, on
//! demand. It makes a grant on the stack's canary key for the caller
//! (grantee and retiring principal: who runs the command), records the run
//! in the ledger's canary book (so the watcher takes its CloudTrail events
//! for the canary's: `info`, never alerted), retires it, then watches the
//! book until the watcher has seen both events or the bound passes.
//!
//! The watcher's heartbeat also settles the run (`CanaryCompleted` or
//! `CanaryMissed`), so a failed on-demand run shows in the alarms too.

use grantwatch_aws::canary::{DynamoCanaryBook, KmsCanary};
use grantwatch_aws::ledger::DEFAULT_RETENTION_DAYS;
use grantwatch_core::ports::canary::{
    start_round_trip, CanaryBook, CanaryKms, CanaryLeg, CanaryRun, DEFAULT_CANARY_BOUND_SECONDS,
};
use std::future::Future;
use std::time::Duration;

/// What the round trip needs (`--canary-key`, `--ledger-table`, `--bound`).
#[derive(Debug, Clone)]
pub struct CanaryOptions {
    /// The stack's canary key (output `CanaryKeyArn`).
    pub key_arn: String,
    /// The stack's ledger table (output `LedgerTableName`).
    pub ledger_table: String,
    /// How long both CloudTrail events may take to reach the watcher.
    pub bound: Duration,
    /// How often the book is read while waiting.
    pub poll_every: Duration,
}

impl CanaryOptions {
    pub fn new(key_arn: impl Into<String>, ledger_table: impl Into<String>) -> Self {
        CanaryOptions {
            key_arn: key_arn.into(),
            ledger_table: ledger_table.into(),
            bound: Duration::from_secs(DEFAULT_CANARY_BOUND_SECONDS as u64),
            poll_every: Duration::from_secs(15),
        }
    }
}

/// Pass or fail, what happened, and the one command that fixes a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryResult {
    pub passed: bool,
    pub message: String,
    /// `None` when passed.
    pub fix: Option<String>,
    /// The run's id in the ledger (`doctor-<epoch ms>`), when it started.
    pub run_id: Option<String>,
}

/// The round trip against AWS with `config` (the caller's credentials).
pub async fn round_trip(config: &aws_config::SdkConfig, options: &CanaryOptions) -> CanaryResult {
    let caller = match aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(identity) => identity.arn.unwrap_or_default(),
        Err(error) => {
            return failed(
                format!(
                    "who am I? sts:GetCallerIdentity failed: {}",
                    grantwatch_aws::sdk::classify("GetCallerIdentity", &error)
                ),
                "aws sso login   # or set AWS_PROFILE: the canary needs credentials".into(),
                None,
            )
        }
    };
    let book = DynamoCanaryBook::new(
        aws_sdk_dynamodb::Client::new(config),
        &options.ledger_table,
        DEFAULT_RETENTION_DAYS,
    );
    let kms = KmsCanary::new(aws_sdk_kms::Client::new(config));
    round_trip_with(&book, &kms, &caller, options, now_ms(), |wait| {
        tokio::time::sleep(wait)
    })
    .await
}

/// The round trip over any book and KMS; `sleep` waits between reads of
/// the book (tests pass one that lets the legs arrive).
pub async fn round_trip_with<S, F>(
    book: &dyn CanaryBook,
    kms: &dyn CanaryKms,
    caller: &str,
    options: &CanaryOptions,
    started_ms: i64,
    mut sleep: S,
) -> CanaryResult
where
    S: FnMut(Duration) -> F,
    F: Future<Output = ()>,
{
    let key = &options.key_arn;
    let run = CanaryRun::new(
        format!("doctor-{started_ms}"),
        key,
        started_ms.div_euclid(1000),
    );
    let run_id = run.run_id.clone();
    let table = &options.ledger_table;
    let run = match start_round_trip(book, kms, caller, run).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            return failed(
                format!("a canary run {run_id} already exists in {table}"),
                "grantwatch doctor --canary   # again: each run has its own id".into(),
                None,
            )
        }
        Err(error) => {
            return failed(
                format!("the ledger's canary book could not be written: {error}"),
                format!("aws dynamodb describe-table --table-name {table}   # the table must exist and let you UpdateItem/Query"),
                None,
            )
        }
    };
    if let Some(problem) = &run.problem {
        let fix = if run.grant_id.is_none() {
            format!("aws kms get-key-policy --key-id {key} --policy-name default   # the key policy must allow you kms:CreateGrant")
        } else {
            format!(
                "aws kms retire-grant --key-id {key} --grant-id {}",
                run.grant_id.as_deref().unwrap_or_default()
            )
        };
        return failed(problem.clone(), fix, Some(run_id));
    }
    let grant = run.grant_id.clone().unwrap_or_default();
    let polls = (options.bound.as_millis() / options.poll_every.as_millis().max(1)).max(1);
    let mut last = run;
    for poll in 0..=polls {
        match book.get_run(&run_id).await {
            Ok(Some(seen)) => last = seen,
            Ok(None) => {
                return failed(
                    format!("the canary run {run_id} disappeared from {table}"),
                    format!("aws dynamodb describe-table --table-name {table}"),
                    Some(run_id),
                )
            }
            // A failed read is retried until the bound.
            Err(_) => {}
        }
        if last.unseen().is_empty() {
            return CanaryResult {
                passed: true,
                message: format!(
                    "the watcher saw the CreateGrant and RetireGrant of canary grant {grant} on {key}"
                ),
                fix: None,
                run_id: Some(run_id),
            };
        }
        if poll < polls {
            sleep(options.poll_every).await;
        }
    }
    let unseen: Vec<&str> = last.unseen().into_iter().map(CanaryLeg::as_str).collect();
    failed(
        format!(
            "the watcher did not see the {} of canary grant {grant} on {key} within {} minutes: CloudTrail, the grant rule or the watcher is not delivering",
            unseen.join(" and "),
            options.bound.as_secs() / 60
        ),
        "grantwatch doctor   # without --canary: checks the trail, the rules and the watcher one by one".into(),
        Some(run_id),
    )
}

fn failed(message: String, fix: String, run_id: Option<String>) -> CanaryResult {
    CanaryResult {
        passed: false,
        message,
        fix: Some(fix),
        run_id,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use grantwatch_core::ports::canary::{BoxFuture, MemoryCanaryBook};
    use grantwatch_core::ports::PortError;

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/canary";
    const ME: &str = "arn:aws:sts::111122223333:assumed-role/Admin/alice";

    struct Kms(Result<String, PortError>);

    impl CanaryKms for Kms {
        fn create_grant<'a>(
            &'a self,
            key_arn: &'a str,
            principal: &'a str,
            _name: &'a str,
        ) -> BoxFuture<'a, Result<String, PortError>> {
            assert_eq!((key_arn, principal), (KEY, ME));
            Box::pin(std::future::ready(self.0.clone()))
        }
        fn retire_grant<'a>(
            &'a self,
            _key_arn: &'a str,
            _grant_id: &'a str,
        ) -> BoxFuture<'a, Result<(), PortError>> {
            Box::pin(std::future::ready(Ok(())))
        }
    }

    fn options() -> CanaryOptions {
        CanaryOptions {
            bound: Duration::from_secs(60),
            poll_every: Duration::from_secs(15),
            ..CanaryOptions::new(KEY, "ledger")
        }
    }

    #[tokio::test]
    async fn passes_once_the_watcher_has_seen_both_legs() {
        let book = MemoryCanaryBook::default();
        let kms = Kms(Ok("g1".into()));
        let mut polls = 0;
        let result = round_trip_with(&book, &kms, ME, &options(), 1_000, |_| {
            polls += 1;
            // The watcher marks one leg per poll, as CloudTrail delivers them.
            let leg = if polls == 1 {
                CanaryLeg::Created
            } else {
                CanaryLeg::Retired
            };
            let book = &book;
            async move {
                book.mark_seen("doctor-1000", leg, 2).await.unwrap();
            }
        })
        .await;
        assert!(result.passed, "{result:?}");
        assert_eq!(result.fix, None);
        assert_eq!(polls, 2);
        assert!(
            result.message.contains("canary grant g1"),
            "{}",
            result.message
        );
    }

    #[tokio::test]
    async fn fails_past_the_bound_naming_the_missing_leg_and_the_next_command() {
        let book = MemoryCanaryBook::default();
        let kms = Kms(Ok("g1".into()));
        let mut polls = 0;
        let result = round_trip_with(&book, &kms, ME, &options(), 1_000, |_| {
            polls += 1;
            let book = &book;
            let first = polls == 1;
            async move {
                if first {
                    book.mark_seen("doctor-1000", CanaryLeg::Created, 2)
                        .await
                        .unwrap();
                }
            }
        })
        .await;
        assert!(!result.passed);
        assert_eq!(polls, 4, "60 s bound, a read every 15 s");
        assert!(
            result
                .message
                .contains("did not see the RetireGrant of canary grant g1"),
            "{}",
            result.message
        );
        assert!(
            !result.message.contains("CreateGrant"),
            "{}",
            result.message
        );
        assert!(result.fix.unwrap().starts_with("grantwatch doctor"));
    }

    #[tokio::test]
    async fn a_refused_create_grant_fails_at_once_with_the_key_policy_to_check() {
        let book = MemoryCanaryBook::default();
        let kms = Kms(Err(PortError::Permanent(
            "CreateGrant: AccessDeniedException: not allowed".into(),
        )));
        let result = round_trip_with(&book, &kms, ME, &options(), 1_000, |_| async {
            panic!("no waiting when the grant could not be made")
        })
        .await;
        assert!(!result.passed);
        assert!(
            result.message.contains("AccessDeniedException"),
            "{}",
            result.message
        );
        assert!(result
            .fix
            .unwrap()
            .starts_with("aws kms get-key-policy --key-id"));
        // Recorded, so the watcher's next heartbeat counts it as missed.
        assert!(book.runs()[0].problem.is_some());
    }
}
