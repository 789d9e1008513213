//! What the ledger adds to one grant event before it is announced:
//!
//! * correlation ([`crate::correlate`]): the key's records for the
//!   grantee (one bounded read), so `duplicate-grant`, `grant-burst` and
//!   `grant-persistence` fire in real time. A service's grants skip the
//!   read (none of these fires for a service's routine pattern). A failed
//!   read never blocks the alert: the event is judged without the records,
//!   says so in its evidence, and is counted (`CorrelationUnavailable`).
//! * the cross-account second copy ([`crate::correlate::second_copy`]):
//!   CloudTrail writes a cross-account call into both accounts with one
//!   `sharedEventID`. The first copy alerts; the second only enriches the
//!   ledger, unless it raises the severity: then it sends one follow-up.
//!   When the ledger cannot say which copy came first, the copy alerts
//!   (a possible duplicate, counted: `SecondCopyUnchecked`).

use crate::correlate::{self, CopyAction, CORRELATION_RECORDS};
use crate::event::{GrantAction, GrantEvent};
use crate::grant::GrantFacts;
use crate::ports::ledger::{EventCopy, EventLedger, GrantLedger};
use crate::record::GrantRecord;
use crate::verdict::{quote, Origin, Verdict};
use serde::Serialize;

/// The first evidence line of an event judged without the ledger's
/// records of its key and grantee.
pub const CORRELATION_UNAVAILABLE: &str =
    "correlation unavailable: the ledger's records of this key and grantee could not be read; duplicate, burst and persistence were not checked";

/// The first evidence line of a copy of a cross-account call alerted
/// without knowing whether the other copy alerted already.
pub const SECOND_COPY_UNCHECKED: &str =
    "possible duplicate: the other account's copy of this cross-account call could not be checked";

/// The ledger's records for correlating one event.
#[derive(Debug, Default)]
pub struct Correlation {
    /// The key's records for the event's grantee (newest first, bounded).
    pub records: Vec<GrantRecord>,
    /// The read failed (why): judged without them.
    pub unavailable: Option<String>,
}

/// Read the records that correlating `event` needs: only for a successful,
/// real (not dry-run) CreateGrant with a key and a grantee that a service
/// did not make.
pub async fn records_for<L: GrantLedger>(ledger: &L, event: &GrantEvent) -> Correlation {
    let Some((key_arn, grantee)) = needs_records(event) else {
        return Correlation::default();
    };
    match ledger
        .grants_to_grantee(key_arn, grantee, CORRELATION_RECORDS)
        .await
    {
        Ok(records) => Correlation {
            records,
            unavailable: None,
        },
        Err(error) => Correlation {
            records: Vec::new(),
            unavailable: Some(error.to_string()),
        },
    }
}

fn needs_records(event: &GrantEvent) -> Option<(&str, &str)> {
    if event.action != GrantAction::CreateGrant || !event.succeeded() || event.dry_run {
        return None;
    }
    let facts: &GrantFacts = event.grant.as_ref()?;
    // The same origin judge_event_with finds; a service's grants get no
    // correlation findings, so they do not pay the read.
    if crate::origin::classify_grant(facts, Some(&event.caller)).origin == Origin::Service {
        return None;
    }
    Some((
        event.key_arn.as_deref()?,
        correlate::correlation_grantee(facts)?,
    ))
}

/// Mark a verdict judged without its correlation records.
pub fn mark_unavailable(verdict: &mut Verdict, why: &str) {
    verdict
        .evidence
        .insert(0, format!("{CORRELATION_UNAVAILABLE} ({})", quote(why)));
}

/// Which copy of a cross-account call this event was, and what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyRole {
    /// The first copy to arrive (or a retry of it): alerted as usual.
    First,
    /// The second copy, not more severe: recorded in the ledger only.
    Recorded,
    /// The second copy raised the severity: one follow-up alert.
    FollowUp,
    /// The ledger could not say: alerted (a possible duplicate, counted).
    Unchecked,
}

/// Settle a copy of a cross-account call (`sharedEventID`): record it in
/// the ledger and adjust the verdict: a second copy that does not raise
/// the severity does not alert; one that does alerts as a follow-up. A
/// ledger failure alerts as usual, marked as a possible duplicate.
pub async fn settle_copy<L: EventLedger>(
    ledger: &L,
    event: &GrantEvent,
    verdict: &mut Verdict,
    now: i64,
) -> Option<CopyRole> {
    let shared = event.shared_event_id.as_deref()?;
    let copy = EventCopy {
        event_id: event.event_id.clone(),
        account: event.account.clone(),
        severity: verdict.severity,
    };
    let first = match ledger.record_copy(shared, &copy, now).await {
        Ok(first) => first,
        Err(error) => {
            if verdict.alert {
                verdict.evidence.insert(
                    0,
                    format!("{SECOND_COPY_UNCHECKED} ({})", quote(&error.to_string())),
                );
            }
            return Some(CopyRole::Unchecked);
        }
    };
    if first.event_id == copy.event_id {
        return Some(CopyRole::First);
    }
    let other = format!(
        "the copy of this cross-account call (sharedEventID {}) recorded in account {} as event {} was judged {}",
        quote(shared),
        quote(first.account.as_deref().unwrap_or("unknown")),
        quote(&first.event_id),
        first.severity
    );
    match correlate::second_copy(Some(first.severity), verdict.severity) {
        CopyAction::FollowUp if verdict.alert => {
            verdict.evidence.insert(
                0,
                format!(
                    "follow-up: {other}; this copy raises it to {}",
                    verdict.severity
                ),
            );
            Some(CopyRole::FollowUp)
        }
        _ => {
            verdict.alert = false;
            verdict.evidence.insert(
                0,
                format!("second copy: {other}; recorded in the ledger, not announced again"),
            );
            Some(CopyRole::Recorded)
        }
    }
}
