//! The suppression rules file (`RULES_S3_URI`), kept fresh in a running
//! Lambda: checked at most once a minute with a conditional GetObject
//! (`If-None-Match` on the ETag of the rules in use), reloaded when it
//! changed. A file that cannot be read or does not parse never stops
//! alerting: the last good rules stay in force (at cold start: none, so
//! nothing is suppressed), and every failed check is reported to the
//! caller, which logs and counts it (`RulesLoadFailed`). A broken file is
//! read again at the next check, so the failure stays visible until fixed.

use crate::sdk::{classify, parse_s3_uri};
use grantwatch_core::rules::RuleSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the rules file is checked for a new version.
pub const RULES_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Why the rules file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesLoadError {
    #[error("cannot read {uri}: {problem}")]
    Read { uri: String, problem: String },
    #[error("{uri}: {problem}")]
    Invalid { uri: String, problem: String },
}

/// What one look at the rules file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesCheck {
    /// Checked less than [`RULES_CHECK_INTERVAL`] ago: not asked again.
    NotDue,
    /// S3 answered 304: the rules in use are the file's.
    Unchanged,
    /// A new version is in use; how many rules it holds.
    Reloaded { rules: usize },
    /// The file could not be loaded: the last good rules stay (none if
    /// none ever loaded). The caller logs and counts it.
    Failed(RulesLoadError),
}

/// The rules to judge with now, and what the check that chose them found.
#[derive(Debug, Clone)]
pub struct CurrentRules {
    pub rules: Arc<RuleSet>,
    pub check: RulesCheck,
    /// The last check failed: until a check succeeds, every judgement runs
    /// on the last good rules (or none), and the caller counts each one.
    pub failing: bool,
}

#[derive(Default)]
struct State {
    rules: Arc<RuleSet>,
    /// The ETag of the version in use; `None` until one loads.
    etag: Option<String>,
    checked_at: Option<Instant>,
    /// The last check could not load the file.
    failing: bool,
}

/// The rules file at an `s3://bucket/key`, with the last good version.
pub struct RulesSource {
    s3: aws_sdk_s3::Client,
    uri: String,
    bucket: String,
    key: String,
    interval: Duration,
    state: tokio::sync::Mutex<State>,
}

impl RulesSource {
    /// A source for `uri` (`s3://bucket/key`); nothing is read yet.
    pub fn new(s3: aws_sdk_s3::Client, uri: &str) -> Result<RulesSource, String> {
        let (bucket, key) = parse_s3_uri(uri)?;
        Ok(RulesSource {
            s3,
            uri: uri.to_string(),
            bucket,
            key,
            interval: RULES_CHECK_INTERVAL,
            state: tokio::sync::Mutex::new(State::default()),
        })
    }

    /// Check every `interval` instead of every minute.
    pub fn with_interval(mut self, interval: Duration) -> RulesSource {
        self.interval = interval;
        self
    }

    /// The rules to judge with at `now`: the file is checked first when
    /// the last check is at least the interval old (or none was made).
    pub async fn current(&self, now: Instant) -> CurrentRules {
        let mut state = self.state.lock().await;
        let due = state
            .checked_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.interval);
        if !due {
            return CurrentRules {
                rules: state.rules.clone(),
                check: RulesCheck::NotDue,
                failing: state.failing,
            };
        }
        state.checked_at = Some(now);
        let check = match self.fetch(state.etag.as_deref()).await {
            Ok(Fetched::NotModified) => RulesCheck::Unchanged,
            Ok(Fetched::Rules { rules, etag }) => {
                let count = rules.rules.len();
                state.rules = Arc::new(rules);
                state.etag = etag;
                tracing::info!(uri = %self.uri, rules = count, "rules loaded");
                RulesCheck::Reloaded { rules: count }
            }
            Err(error) => {
                tracing::error!(
                    uri = %self.uri,
                    error = %error,
                    rules_in_use = state.rules.rules.len(),
                    "rules file not loaded: keeping the last good rules"
                );
                RulesCheck::Failed(error)
            }
        };
        state.failing = matches!(check, RulesCheck::Failed(_));
        CurrentRules {
            rules: state.rules.clone(),
            check,
            failing: state.failing,
        }
    }

    async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, RulesLoadError> {
        let read = |problem: String| RulesLoadError::Read {
            uri: self.uri.clone(),
            problem,
        };
        let result = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_if_none_match(etag.map(str::to_string))
            .send()
            .await;
        let object = match result {
            Ok(object) => object,
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(304) => {
                return Ok(Fetched::NotModified)
            }
            Err(e) => return Err(read(classify("GetObject", &e).to_string())),
        };
        let etag = object.e_tag().map(str::to_string);
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| read(e.to_string()))?
            .into_bytes();
        let invalid = |problem: String| RulesLoadError::Invalid {
            uri: self.uri.clone(),
            problem,
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
        let rules = RuleSet::parse_toml(text).map_err(|e| invalid(e.to_string()))?;
        Ok(Fetched::Rules { rules, etag })
    }
}

enum Fetched {
    NotModified,
    Rules {
        rules: RuleSet,
        etag: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const URI: &str = "s3://config-bucket/grantwatch/rules.toml";
    const ONE_RULE: &str = "[[rule]]\nid = \"backup\"\nreason = \"nightly job\"\ngrantee = \"arn:aws:iam::111122223333:role/backup\"\n";
    const TWO_RULES: &str = "[[rule]]\nid = \"backup\"\nreason = \"nightly job\"\ngrantee = \"arn:aws:iam::111122223333:role/backup\"\n\n[[rule]]\nid = \"etl\"\nreason = \"migration\"\ngrantee = \"arn:aws:iam::111122223333:role/etl\"\n";

    fn object(body: &str, etag: &str) -> GetObjectOutput {
        GetObjectOutput::builder()
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .e_tag(etag)
            .build()
    }

    fn source(rules: &[&aws_smithy_mocks::Rule]) -> RulesSource {
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, rules);
        RulesSource::new(client, URI).unwrap()
    }

    fn ids(current: &CurrentRules) -> Vec<&str> {
        current.rules.rules.iter().map(|r| r.id.as_str()).collect()
    }

    #[tokio::test]
    async fn checked_at_most_once_a_minute_and_reloaded_when_the_etag_changes() {
        let first = mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|r| {
                r.bucket() == Some("config-bucket")
                    && r.key() == Some("grantwatch/rules.toml")
                    && r.if_none_match().is_none()
            })
            .then_output(|| object(ONE_RULE, "\"v1\""));
        // The next check sends the ETag in use: S3 answers 304.
        let unchanged = mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|r| r.if_none_match() == Some("\"v1\""))
            .sequence()
            .http_status(304, None)
            .build();
        let changed = mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|r| r.if_none_match() == Some("\"v1\""))
            .then_output(|| object(TWO_RULES, "\"v2\""));
        let s = source(&[&first, &unchanged, &changed]);
        let start = Instant::now();
        let now = s.current(start).await;
        assert_eq!(now.check, RulesCheck::Reloaded { rules: 1 });
        assert_eq!(ids(&now), ["backup"]);
        // Within the minute: no S3 call at all.
        let now = s.current(start + Duration::from_secs(59)).await;
        assert_eq!(now.check, RulesCheck::NotDue);
        assert_eq!(first.num_calls() + unchanged.num_calls(), 1);
        let now = s.current(start + Duration::from_secs(60)).await;
        assert_eq!(now.check, RulesCheck::Unchanged);
        assert_eq!(ids(&now), ["backup"]);
        assert_eq!(unchanged.num_calls(), 1);
        let now = s.current(start + Duration::from_secs(120)).await;
        assert_eq!(now.check, RulesCheck::Reloaded { rules: 2 });
        assert_eq!(ids(&now), ["backup", "etl"]);
    }

    #[tokio::test]
    async fn a_broken_file_keeps_the_last_good_rules_and_is_reported_at_every_check() {
        let good = mock!(aws_sdk_s3::Client::get_object).then_output(|| object(ONE_RULE, "\"v1\""));
        let broken = mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|r| r.if_none_match() == Some("\"v1\""))
            .sequence()
            .output(|| object("[[rule]]\nid = \"x\"\n", "\"v2\""))
            .times(2)
            .build();
        let s = source(&[&good, &broken]);
        let start = Instant::now();
        assert_eq!(
            s.current(start).await.check,
            RulesCheck::Reloaded { rules: 1 }
        );
        for minute in 1..=2 {
            let now = s.current(start + Duration::from_secs(60 * minute)).await;
            assert!(
                matches!(&now.check, RulesCheck::Failed(RulesLoadError::Invalid { uri, .. }) if uri == URI),
                "{:?}",
                now.check
            );
            assert_eq!(ids(&now), ["backup"], "the last good rules stay");
            assert!(now.failing);
        }
        // Between checks the source is still failing (each judgement counted).
        let between = s.current(start + Duration::from_secs(150)).await;
        assert_eq!(between.check, RulesCheck::NotDue);
        assert!(between.failing);
        // The bad version's ETag is not taken: it is read (and reported) again.
        assert_eq!(broken.num_calls(), 2);
    }

    #[tokio::test]
    async fn at_cold_start_an_unreadable_file_means_no_suppression_not_a_failed_start() {
        let missing = mock!(aws_sdk_s3::Client::get_object)
            .sequence()
            .error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()))
            .build();
        let later =
            mock!(aws_sdk_s3::Client::get_object).then_output(|| object(ONE_RULE, "\"v1\""));
        let s = source(&[&missing, &later]);
        let start = Instant::now();
        let now = s.current(start).await;
        assert!(
            matches!(&now.check, RulesCheck::Failed(RulesLoadError::Read { .. })),
            "{:?}",
            now.check
        );
        assert!(now.rules.rules.is_empty(), "nothing suppressed");
        // Fixed a minute later: picked up without a restart.
        let now = s.current(start + Duration::from_secs(60)).await;
        assert_eq!(now.check, RulesCheck::Reloaded { rules: 1 });
    }

    #[test]
    fn the_uri_must_name_a_bucket_and_key() {
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[]);
        assert!(RulesSource::new(client, "rules.toml").is_err());
    }
}
