//! The watcher's metrics: counters of one invocation, printed as one
//! CloudWatch Embedded Metric Format (EMF) line, plus one line per rejected
//! channel (dimension `Channel`) so each channel can be alarmed on.

use super::correlation::CopyRole;
use super::{ChannelStatus, WatchError, WatchOutcome};
use crate::emf::line as emf_line;
pub use crate::emf::METRICS_NAMESPACE;
use crate::ports::ledger::AlertMode;
use crate::verdict::Severity;

/// Counters of one invocation (CloudWatch Embedded Metric Format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    pub events_seen: u64,
    pub not_grant_events: u64,
    /// The scheduled heartbeat reached the watcher.
    pub heartbeats: u64,
    /// Canary runs this heartbeat started, saw complete (both CloudTrail
    /// legs within the bound), or saw miss (a leg late or the round trip
    /// impossible); and a canary bookkeeping failure.
    pub canary_started: u64,
    pub canary_completed: u64,
    pub canary_missed: u64,
    pub canary_check_failed: u64,
    pub malformed_events: u64,
    pub unparseable_events: u64,
    pub duplicates: u64,
    pub alerts: u64,
    pub alert_severity: Option<Severity>,
    pub suppressed: u64,
    pub digested: u64,
    pub deliveries_failed: u64,
    /// Channels that rejected a delivery for good (by channel name).
    pub rejected_channels: Vec<String>,
    /// Sends that may have been duplicated: a lease taken over after its
    /// owner sent, or a send whose record failed.
    pub possible_duplicates: u64,
    pub ledger_errors: u64,
    /// Alerts sent (or possibly sent) while the ledger was down, per
    /// channel: each may be repeated once the ledger is back.
    pub dedup_unavailable: u64,
    /// Event time → alert sent, for an alert this invocation sent.
    pub alert_latency_ms: Option<u64>,
    /// The rules file could not be (re)loaded: the last good rules (or
    /// none) judged this event. Set by the Lambda, which loads the file.
    pub rules_load_failed: u64,
    /// Judged without correlation: the key's records could not be read.
    pub correlation_unavailable: u64,
    /// A second copy of a cross-account call only recorded (not announced
    /// again), or announced as a follow-up because it raised the severity.
    pub second_copies_recorded: u64,
    pub second_copy_follow_ups: u64,
    /// A copy of a cross-account call alerted without knowing whether the
    /// other copy had (the ledger failed): a possible duplicate.
    pub second_copy_unchecked: u64,
}

impl WatchOutcome {
    /// Metrics for this outcome (an EMF line is built from them).
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::default();
        match self {
            WatchOutcome::Skipped { .. } => m.not_grant_events = 1,
            WatchOutcome::Heartbeat { canary, .. } => {
                m.heartbeats = 1;
                if let Some(check) = canary {
                    m.canary_started = u64::from(check.started.is_some());
                    m.canary_completed = check.completed.len() as u64;
                    m.canary_missed = check.missed.len() as u64;
                    m.canary_check_failed = u64::from(check.problem.is_some());
                }
            }
            WatchOutcome::Watched {
                severity,
                alert,
                suppressed_by,
                mode,
                channels,
                first_seen,
                unparseable,
                possible_duplicates,
                alert_latency_ms,
                correlation_unavailable,
                cross_account_copy,
                ..
            } => {
                m.correlation_unavailable = u64::from(*correlation_unavailable);
                m.second_copies_recorded =
                    u64::from(*cross_account_copy == Some(CopyRole::Recorded));
                m.second_copy_follow_ups =
                    u64::from(*cross_account_copy == Some(CopyRole::FollowUp));
                m.second_copy_unchecked =
                    u64::from(*cross_account_copy == Some(CopyRole::Unchecked));
                m.events_seen = 1;
                m.unparseable_events = u64::from(*unparseable);
                m.duplicates = u64::from(!first_seen);
                if *alert {
                    m.alert_severity = Some(*severity);
                    m.alerts = 1;
                }
                m.suppressed = u64::from(suppressed_by.is_some());
                m.digested = u64::from(matches!(
                    mode,
                    Some(AlertMode::Digest { .. } | AlertMode::DigestLeader { .. })
                ));
                count_channels(&mut m, channels);
                m.possible_duplicates = *possible_duplicates;
                m.alert_latency_ms = *alert_latency_ms;
            }
        }
        m
    }
}

fn count_channels(m: &mut Metrics, channels: &[super::ChannelResult]) {
    for c in channels {
        match &c.status {
            ChannelStatus::Failed(_) | ChannelStatus::InProgress => m.deliveries_failed += 1,
            ChannelStatus::Rejected(_) => {
                m.deliveries_failed += 1;
                m.rejected_channels.push(c.channel.clone());
            }
            ChannelStatus::Sent | ChannelStatus::AlreadyDelivered => {}
        }
    }
}

impl WatchError {
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::default();
        match self {
            WatchError::MalformedEvent(_) => m.malformed_events = 1,
            WatchError::DeliveryFailed {
                channels,
                possible_duplicates,
            }
            | WatchError::ChannelRejected {
                channels,
                possible_duplicates,
            } => {
                m.events_seen = 1;
                count_channels(&mut m, channels);
                m.possible_duplicates = *possible_duplicates;
            }
            WatchError::LedgerUnavailable(_) | WatchError::LedgerMisconfigured(_) => {
                m.ledger_errors = 1
            }
            WatchError::LedgerDown { channels, .. } => {
                m.events_seen = 1;
                m.ledger_errors = 1;
                // Sent, or failed transiently (it may still have been sent).
                m.dedup_unavailable = channels
                    .iter()
                    .filter(|c| matches!(c.status, ChannelStatus::Sent | ChannelStatus::Failed(_)))
                    .count() as u64;
                count_channels(&mut m, channels);
            }
        }
        m
    }
}

impl Metrics {
    /// The EMF lines of this invocation (print each on its own stdout
    /// line): the function's counters, then one `DeliveriesRejected` line
    /// per rejected channel. Alerts are also counted per severity
    /// (`AlertsHigh`, ...), so alarms can watch high and critical alone.
    pub fn emf_lines(&self, function_name: &str, now_ms: i64) -> Vec<serde_json::Value> {
        let mut lines = vec![self.emf(function_name, now_ms)];
        for channel in &self.rejected_channels {
            lines.push(emf_line(
                function_name,
                now_ms,
                &[("Channel", channel)],
                &[("DeliveriesRejected", 1, "Count")],
            ));
        }
        lines
    }

    /// The function's counters as one EMF object.
    pub fn emf(&self, function_name: &str, now_ms: i64) -> serde_json::Value {
        let mut values: Vec<(String, u64, &str)> = vec![
            ("EventsSeen".into(), self.events_seen, "Count"),
            ("NotGrantEvents".into(), self.not_grant_events, "Count"),
            ("Heartbeats".into(), self.heartbeats, "Count"),
            ("CanaryStarted".into(), self.canary_started, "Count"),
            ("CanaryCompleted".into(), self.canary_completed, "Count"),
            ("CanaryMissed".into(), self.canary_missed, "Count"),
            (
                "CanaryCheckFailed".into(),
                self.canary_check_failed,
                "Count",
            ),
            ("MalformedEvents".into(), self.malformed_events, "Count"),
            ("UnparseableEvents".into(), self.unparseable_events, "Count"),
            ("DuplicateEvents".into(), self.duplicates, "Count"),
            ("Alerts".into(), self.alerts, "Count"),
            ("Suppressed".into(), self.suppressed, "Count"),
            ("Digested".into(), self.digested, "Count"),
            ("DeliveriesFailed".into(), self.deliveries_failed, "Count"),
            (
                "DeliveriesRejected".into(),
                self.rejected_channels.len() as u64,
                "Count",
            ),
            (
                "PossibleDuplicates".into(),
                self.possible_duplicates,
                "Count",
            ),
            ("LedgerErrors".into(), self.ledger_errors, "Count"),
            ("DedupUnavailable".into(), self.dedup_unavailable, "Count"),
            ("RulesLoadFailed".into(), self.rules_load_failed, "Count"),
            (
                "CorrelationUnavailable".into(),
                self.correlation_unavailable,
                "Count",
            ),
            (
                "SecondCopiesRecorded".into(),
                self.second_copies_recorded,
                "Count",
            ),
            (
                "SecondCopyFollowUps".into(),
                self.second_copy_follow_ups,
                "Count",
            ),
            (
                "SecondCopyUnchecked".into(),
                self.second_copy_unchecked,
                "Count",
            ),
        ];
        for severity in Severity::ALL {
            let count = u64::from(self.alert_severity == Some(severity) && self.alerts > 0);
            values.push((
                format!("Alerts{}", capitalised(severity.as_str())),
                count,
                "Count",
            ));
        }
        if let Some(latency) = self.alert_latency_ms {
            values.push(("AlertLatencyMs".into(), latency, "Milliseconds"));
        }
        let values: Vec<(&str, u64, &str)> = values
            .iter()
            .map(|(name, value, unit)| (name.as_str(), *value, *unit))
            .collect();
        emf_line(function_name, now_ms, &[], &values)
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Milliseconds from the event's time (CloudTrail `eventTime`, RFC 3339)
/// to `now_ms`; `None` when the time is missing or unreadable.
pub fn latency_ms(event_time: Option<&str>, now_ms: i64) -> Option<u64> {
    let at_ms = crate::event::epoch_ms(event_time?)?;
    u64::try_from(now_ms.saturating_sub(at_ms)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_become_one_emf_object() {
        let metrics = Metrics {
            events_seen: 1,
            alerts: 1,
            alert_severity: Some(Severity::High),
            alert_latency_ms: Some(1234),
            ..Metrics::default()
        };
        let line = metrics.emf("grant-watcher", 1_700_000_000_000);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "grantwatch"
        );
        assert_eq!(line["FunctionName"], "grant-watcher");
        assert_eq!(line["AlertsHigh"], 1);
        assert_eq!(line["AlertsLow"], 0);
        assert_eq!(line["EventsSeen"], 1);
        assert_eq!(line["AlertLatencyMs"], 1234);
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"AlertLatencyMs"));
        for name in names {
            assert!(line.get(name).is_some(), "{name} has a value");
        }
    }

    #[test]
    fn each_rejected_channel_gets_its_own_line_with_a_channel_dimension() {
        let metrics = Metrics {
            rejected_channels: vec!["slack".into()],
            ..Metrics::default()
        };
        let lines = metrics.emf_lines("grant-watcher", 1_700_000_000_000);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["DeliveriesRejected"], 1);
        assert_eq!(lines[1]["Channel"], "slack");
        assert_eq!(lines[1]["DeliveriesRejected"], 1);
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["FunctionName", "Channel"]])
        );
    }

    #[test]
    fn latency_is_measured_from_the_event_time() {
        // 2026-11-29T18:00:00Z = 1_795_975_200 s.
        let now = 1_795_975_200_000 + 2_500;
        assert_eq!(latency_ms(Some("2026-11-29T18:00:00Z"), now), Some(2_500));
        assert_eq!(latency_ms(Some("yesterday"), now), None);
        assert_eq!(latency_ms(None, now), None);
    }
}
