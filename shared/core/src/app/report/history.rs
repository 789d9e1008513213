//! What the report knows from before: the previous stored report (its
//! hash checked against the ledger), the trend it carries, and the
//! reconciliation window against the ledger.

use crate::event::epoch_ms;
use crate::ports::inventory::{Provenance, ReportStore};
use crate::report::diff::PreviousReport;
use crate::report::model::{Integrity, Report, TrendPoint};
use crate::verdict::{Finding, FindingCode, Severity};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The trend: the previous report's own trend (its point last; just its
/// point if it has none), at most `past` points of it, then this report's.
pub fn trend_after(
    previous: Option<&PreviousReport>,
    report: &Report,
    past: usize,
) -> Vec<TrendPoint> {
    let mut trend: Vec<TrendPoint> = match previous {
        None => Vec::new(),
        Some(p) if p.trend.is_empty() => vec![p.trend_point()],
        Some(p) => p.trend.clone(),
    };
    if trend.len() > past {
        trend.drain(..trend.len() - past);
    }
    trend.push(report.trend_point());
    trend
}

/// Stored reports the diff may fall back to when newer ones fail their
/// hash check (read one at a time; the bound keeps the time flat).
pub const PREVIOUS_REPORTS_CHECKED: usize = 4;

/// A grant created this recently may still be on its way to the watcher
/// (CloudTrail delivers within about 5 minutes, EventBridge retries): not
/// yet `unseen-by-watcher`.
pub const UNSEEN_GRACE: Duration = Duration::from_secs(15 * 60);

/// Without a previous report, the period checked for silent
/// account-regions is the week before the report.
const DEFAULT_PERIOD: Duration = Duration::from_secs(7 * 86_400);

/// The SHA-256 of a stored file, lower-case hex (as the ledger keeps it).
pub fn sha256_hex(body: &[u8]) -> String {
    let mut hash = FileHash::default();
    hash.update(body);
    hash.hex()
}

/// The SHA-256 of a file taken while it streams by.
#[derive(Default)]
pub(super) struct FileHash(sha2::Sha256);

impl FileHash {
    pub(super) fn update(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    /// Lower-case hex, as the ledger keeps it.
    pub(super) fn hex(self) -> String {
        sha2::Digest::finalize(self.0)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The newest stored report older than this run whose SHA-256 matches the
/// ledger's record of it, and the check's findings: a report whose hash
/// differs, or that the ledger never recorded (while it holds records), is
/// `pipeline-tampered` and skipped. Without a ledger, or before the ledger
/// holds any hash (the first run of a version that records them), the
/// newest readable report is used unverified. Unreadable reports are
/// skipped (the trend has a hole, the diff uses the next one).
pub(super) async fn verified_previous<S: ReportStore, P: Provenance>(
    store: &S,
    provenance: &P,
    now: &str,
) -> (Option<PreviousReport>, Option<Integrity>) {
    let known = match provenance.report_files().await {
        Ok(known) => known,
        Err(e) => {
            let integrity = Integrity {
                unverified: Some(format!(
                    "the stored reports' hashes could not be read from the ledger ({e}): \
                     no previous report used"
                )),
                ..Integrity::default()
            };
            return (None, Some(integrity));
        }
    };
    let mut integrity = known.as_ref().map(|_| Integrity::default());
    let mut chosen = None;
    // One stored report in memory at a time.
    for index in 0..PREVIOUS_REPORTS_CHECKED {
        let Ok(Some(candidate)) = store.recent_report(index).await else {
            break;
        };
        let sha = sha256_hex(&candidate.body);
        let problem = match known.as_ref() {
            Some(known) => match known.get(&candidate.location) {
                Some(recorded) if *recorded == sha => None,
                Some(recorded) => Some(format!(
                    "stored report {} does not match the SHA-256 recorded when grantwatch \
                     stored it (recorded {recorded}, now {sha}): it was changed after it was \
                     written; not used for the diff",
                    candidate.location
                )),
                None if known.is_empty() => None,
                None => Some(format!(
                    "stored report {} (SHA-256 {sha}) was never recorded by grantwatch's \
                     report: it was planted; not used for the diff",
                    candidate.location
                )),
            },
            None => None,
        };
        if let Some(message) = problem {
            if let Some(integrity) = integrity.as_mut() {
                integrity.findings.push(Finding {
                    code: FindingCode::PipelineTampered,
                    severity: Severity::Critical,
                    message,
                });
            }
            continue;
        }
        // Only what the diff, the trend and the rotation need is parsed.
        let Ok(report) = PreviousReport::from_json(&candidate.body) else {
            continue;
        };
        if report.generated_at.as_str() < now {
            if let Some(integrity) = integrity.as_mut() {
                integrity.previous = Some(candidate.location.clone());
            }
            chosen = Some(report);
            break;
        }
    }
    (chosen, integrity)
}

/// The times the reconciliation checks against (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchWindow {
    pub deployed_ms: i64,
    /// Silent account-regions: grants created from here ...
    pub period_start_ms: i64,
    /// ... to here; and `unseen-by-watcher` only for grants created before it.
    pub cutoff_ms: i64,
}

impl WatchWindow {
    pub(super) fn new(deployed_ms: i64, previous: Option<&PreviousReport>, now_ms: i64) -> Self {
        let since = previous
            .and_then(|p| epoch_ms(&p.generated_at))
            .unwrap_or(now_ms - DEFAULT_PERIOD.as_millis() as i64);
        WatchWindow {
            deployed_ms,
            period_start_ms: since.max(deployed_ms),
            cutoff_ms: now_ms - UNSEEN_GRACE.as_millis() as i64,
        }
    }

    /// Created after the deployment, and long enough ago that the watcher
    /// must have seen it.
    pub(super) fn should_have_seen(&self, created_ms: i64) -> bool {
        created_ms >= self.deployed_ms && created_ms <= self.cutoff_ms
    }

    pub(super) fn in_period(&self, at_ms: i64) -> bool {
        at_ms >= self.period_start_ms && at_ms <= self.cutoff_ms
    }
}

/// The `unseen-by-watcher` finding of a grant the ledger has no record of.
pub(super) fn unseen_finding(created: &str, window: &WatchWindow) -> Finding {
    Finding {
        code: FindingCode::UnseenByWatcher,
        severity: Severity::High,
        message: format!(
            "created {created}, after grantwatch was deployed ({}), but the ledger has no \
             record of it: the watcher never saw its CreateGrant",
            rfc3339(window.deployed_ms)
        ),
    }
}

/// RFC 3339 (UTC, seconds) of epoch milliseconds.
pub(super) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
