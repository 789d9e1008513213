//! Reconcile: which grant events in the trail's log files the watcher never
//! saw, and their records, so they can be replayed through
//! [`crate::app::watch::watch_event`] (the watcher's judgement and
//! delivery, the same ledger: a replayed event is seen afterwards, so a
//! second reconcile sends nothing).
//!
//! "Seen" is the watcher's event record (`claim_event`), read without
//! writing through [`SeenEvents`]; a grant record written by `backfill`
//! does not count (backfill never alerts).

use crate::event::GrantEvent;
use crate::ports::ledger::MemoryLedger;
use crate::ports::PortError;
use serde_json::Value;
use std::collections::BTreeSet;
use std::future::Future;

/// Read-only view of the ledger's event records.
pub trait SeenEvents: Send + Sync {
    /// Which of `ids` the ledger holds an event record for.
    fn seen_events(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeSet<String>, PortError>> + Send;
}

impl SeenEvents for MemoryLedger {
    async fn seen_events(&self, ids: &[String]) -> Result<BTreeSet<String>, PortError> {
        if let Some(error) = self
            .fail_with
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
        {
            return Err(error);
        }
        let known: BTreeSet<String> = self.event_ids().into_iter().collect();
        Ok(ids
            .iter()
            .filter(|id| known.contains(*id))
            .cloned()
            .collect())
    }
}

/// The events of `events` (in their order) that the ledger never saw.
/// Duplicates within `events` are returned once.
pub async fn missed<'a, L: SeenEvents>(
    ledger: &L,
    events: &'a [GrantEvent],
) -> Result<Vec<&'a GrantEvent>, PortError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let seen = ledger.seen_events(&ids).await?;
    let mut returned = BTreeSet::new();
    Ok(events
        .iter()
        .filter(|e| !seen.contains(&e.event_id) && returned.insert(e.event_id.as_str()))
        .collect())
}

/// The records with these `eventID`s in one log file as stored (gzip or
/// plain JSON: a CloudTrail `{"Records": [...]}` file, a list, an
/// EventBridge event or a bare record), in file order: what the watcher
/// is given to replay them.
pub fn records_with_ids(bytes: &[u8], ids: &BTreeSet<String>) -> Result<Vec<Value>, String> {
    // Gzip inflated, bounded like every other read of log files.
    let text = crate::event::decompress(bytes).map_err(|e| e.to_string())?;
    let document: Value =
        serde_json::from_slice(&text).map_err(|e| format!("not a JSON log file: {e}"))?;
    let records = match document {
        Value::Object(mut object) if object.contains_key("Records") => {
            match object.remove("Records") {
                Some(Value::Array(records)) => records,
                _ => return Err("Records is not a list".to_string()),
            }
        }
        Value::Array(items) => items,
        other => vec![other],
    };
    Ok(records
        .into_iter()
        .filter(|record| {
            let detail = record.get("detail").unwrap_or(record);
            detail
                .get("eventID")
                .and_then(Value::as_str)
                .is_some_and(|id| ids.contains(id))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse_eventbridge_event, Parsed};
    use crate::ports::ledger::EventLedger;
    use serde_json::json;
    use std::io::Write;

    fn record(id: &str, name: &str) -> Value {
        json!({
            "eventVersion": "1.08",
            "eventID": id,
            "eventTime": "2026-11-28T10:00:00Z",
            "eventSource": "kms.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
            "requestParameters": {"keyId": "arn:aws:kms:us-east-1:111122223333:key/k1", "grantId": "g1"},
            "resources": [{"ARN": "arn:aws:kms:us-east-1:111122223333:key/k1", "type": "AWS::KMS::Key"}]
        })
    }

    fn event(id: &str) -> GrantEvent {
        match parse_eventbridge_event(&record(id, "RetireGrant")) {
            Ok(Parsed::Grant(event)) => *event,
            other => panic!("not a grant event: {other:?}"),
        }
    }

    fn ids(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn events_the_watcher_claimed_are_not_missed() {
        let ledger = MemoryLedger::new();
        ledger.claim_event("seen", 0).await.unwrap();
        let events = vec![
            event("seen"),
            event("new-1"),
            event("new-2"),
            event("new-1"),
        ];
        let missed: Vec<&str> = missed(&ledger, &events)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_id.as_str())
            .collect();
        assert_eq!(missed, ["new-1", "new-2"]);
    }

    #[tokio::test]
    async fn a_grant_record_alone_does_not_make_an_event_seen() {
        // backfill writes grant records, never event records: its events
        // were never alerted, so reconcile still replays them.
        use crate::app::watch::record_event;
        use crate::app::watch::{policy, WatchConfig};
        let ledger = MemoryLedger::new();
        let retire = event("backfilled");
        record_event(&ledger, &retire, &policy(&WatchConfig::default(), 0))
            .await
            .unwrap();
        let events = vec![retire];
        assert_eq!(missed(&ledger, &events).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_ledger_that_cannot_answer_is_an_error_not_all_seen() {
        let ledger = MemoryLedger::new();
        *ledger.fail_with.lock().unwrap() = Some(PortError::Transient("throttled".into()));
        let events = vec![event("e1")];
        assert_eq!(
            missed(&ledger, &events).await.unwrap_err(),
            PortError::Transient("throttled".into())
        );
    }

    #[test]
    fn records_are_found_by_id_in_gzip_log_files() {
        let file = json!({"Records": [record("a", "CreateGrant"), record("b", "RetireGrant"), record("c", "RetireGrant")]});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(file.to_string().as_bytes()).unwrap();
        let bytes = gz.finish().unwrap();
        let found = records_with_ids(&bytes, &ids(&["c", "a"])).unwrap();
        let found: Vec<&str> = found
            .iter()
            .map(|r| r["eventID"].as_str().unwrap())
            .collect();
        assert_eq!(found, ["a", "c"]);
    }

    #[test]
    fn records_are_found_in_eventbridge_events_and_lists() {
        let eb = json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.kms", "detail": record("x", "RetireGrant")});
        let found = records_with_ids(eb.to_string().as_bytes(), &ids(&["x"])).unwrap();
        assert_eq!(found, vec![eb.clone()]);
        let list = json!([record("y", "CreateGrant"), eb]);
        assert_eq!(
            records_with_ids(list.to_string().as_bytes(), &ids(&["y"]))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error() {
        assert!(records_with_ids(b"{\"Records\": [", &ids(&["a"]))
            .unwrap_err()
            .contains("not a JSON"));
        assert!(records_with_ids(&[0x1f, 0x8b, 0, 1, 2], &ids(&["a"]))
            .unwrap_err()
            .contains("gzip"));
        assert!(records_with_ids(br#"{"Records": 3}"#, &ids(&["a"]))
            .unwrap_err()
            .contains("not a list"));
    }
}
