//! The watcher's second judgement, beside grants: the calls that blind or
//! weaken grantwatch and the key lifecycle calls ([`crate::tamper`]), routed
//! by the template's `TamperEventsRule`, and the scheduled heartbeat that
//! proves rule → target → watcher.
//!
//! A pipeline verdict then takes the grant verdicts' path (ledger, storm
//! control, every channel), so tampering is alerted, deduplicated and
//! retried exactly like a grant.

use super::WatchDeps;
use crate::judge::Policy;
use crate::ports::ledger::GrantLedger;
use crate::tamper;
use crate::verdict::Verdict;
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
