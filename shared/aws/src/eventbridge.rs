//! EventBridge notifier: each verdict at or above a threshold put on a bus
//! as `source: grantwatch`, `detail-type: KMS grant verdict`
//! (`render::eventbridge`), so teams route it with rules they already have.
//!
//! Best effort (docs/watcher.md, "Reliability"). `PutEvents` answers HTTP
//! 200 with `FailedEntryCount` when entries are refused: those are
//! failures too, transient for throttling and internal errors, permanent
//! otherwise (logged at error level, with what to fix). A retry sends the
//! whole notice again, so a rule's target may see an entry twice:
//! `detail.verdict.event_id` identifies it.

use crate::sdk::{self, classify, SystemClock};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use grantwatch_core::ports::clock::Clock;
use grantwatch_core::ports::notify::{ChannelClass, Notice, Notifier};
use grantwatch_core::ports::PortError;
use grantwatch_core::render::eventbridge::{detail, resources, DETAIL_TYPE, SOURCE};
use grantwatch_core::render::links::LinkSettings;
use grantwatch_core::verdict::{Severity, Verdict};

/// PutEvents takes at most 10 entries per call.
pub const MAX_ENTRIES: usize = 10;
/// ... and 256 KB per call; entries are grouped to stay under this.
const MAX_CALL_BYTES: usize = 240 * 1024;
/// Entry error codes a retry can fix.
const TRANSIENT_ENTRY_CODES: &[&str] = &[
    "ThrottlingException",
    "InternalException",
    "InternalFailure",
    "ServiceUnavailable",
];

pub struct EventBridgeNotifier {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
    min_severity: Severity,
    links: LinkSettings,
}

impl EventBridgeNotifier {
    pub fn new(
        client: aws_sdk_eventbridge::Client,
        bus_name: impl Into<String>,
        min_severity: Severity,
    ) -> Self {
        EventBridgeNotifier {
            client,
            bus_name: bus_name.into(),
            min_severity,
            links: LinkSettings::default(),
        }
    }

    /// The deployment's link settings (runbook pages in the detail).
    pub fn with_links(mut self, links: LinkSettings) -> Self {
        self.links = links;
        self
    }

    fn entry(&self, v: &Verdict) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(detail(v, &self.links))
            .set_resources(Some(resources(v)).filter(|r| !r.is_empty()))
            .build()
    }

    /// The verdicts of a notice at or above the threshold.
    fn verdicts<'a>(&self, notice: Notice<'a>) -> Vec<&'a Verdict> {
        let all: Vec<&Verdict> = match notice {
            Notice::Alert(v) => vec![v],
            Notice::Digest(d) => {
                let uncarried = d.tally.total.saturating_sub(d.alerts.len() as u64);
                if uncarried > 0 {
                    // A digest carries the worst alerts of its window; the
                    // rest are in the ledger only.
                    tracing::warn!(
                        channel = "eventbridge",
                        uncarried,
                        "storm digest: only the alerts it carries are put on the bus; the rest are in the ledger"
                    );
                }
                d.alerts.iter().collect()
            }
            // The bus carries verdicts; the report is none.
            Notice::Report(_) => Vec::new(),
        };
        all.into_iter()
            .filter(|v| v.severity >= self.min_severity)
            .collect()
    }

    async fn put(
        &self,
        entries: Vec<PutEventsRequestEntry>,
        deadline_ms: i64,
    ) -> Result<(), PortError> {
        let now = SystemClock.now_ms();
        let timeouts = sdk::call_timeouts("PutEvents", deadline_ms, now)?;
        let call = async {
            let output = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .customize()
                .config_override(
                    aws_sdk_eventbridge::config::Builder::default().timeout_config(timeouts),
                )
                .send()
                .await
                .map_err(|e| classify("PutEvents", &e))?;
            refused_entries(&output)
        };
        sdk::before_deadline("PutEvents", deadline_ms, now, call).await
    }
}

/// `FailedEntryCount` > 0 in a 200 answer: the refused entries' codes,
/// transient when every one of them can be retried.
fn refused_entries(
    output: &aws_sdk_eventbridge::operation::put_events::PutEventsOutput,
) -> Result<(), PortError> {
    if output.failed_entry_count() == 0 {
        return Ok(());
    }
    let codes: Vec<&str> = output
        .entries()
        .iter()
        .filter_map(|e| e.error_code())
        .collect();
    let text = format!(
        "PutEvents: {} of {} entries refused ({})",
        output.failed_entry_count(),
        output.entries().len(),
        if codes.is_empty() {
            "no error code".to_string()
        } else {
            codes.join(", ")
        }
    );
    if !codes.is_empty() && codes.iter().all(|c| TRANSIENT_ENTRY_CODES.contains(c)) {
        Err(PortError::Transient(text))
    } else {
        Err(PortError::Permanent(text))
    }
}

/// Entries in calls of at most [`MAX_ENTRIES`] and [`MAX_CALL_BYTES`].
fn batches(entries: Vec<PutEventsRequestEntry>) -> Vec<Vec<PutEventsRequestEntry>> {
    let size = |e: &PutEventsRequestEntry| {
        e.detail().map_or(0, str::len)
            + e.detail_type().map_or(0, str::len)
            + e.source().map_or(0, str::len)
            + e.resources().iter().map(String::len).sum::<usize>()
    };
    let mut out: Vec<Vec<PutEventsRequestEntry>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let n = size(&entry);
        match out.last_mut() {
            Some(batch) if batch.len() < MAX_ENTRIES && bytes + n <= MAX_CALL_BYTES => {
                bytes += n;
                batch.push(entry);
            }
            _ => {
                bytes = n;
                out.push(vec![entry]);
            }
        }
    }
    out
}

impl Notifier for EventBridgeNotifier {
    fn channel(&self) -> &str {
        "eventbridge"
    }

    fn class(&self) -> ChannelClass {
        ChannelClass::BestEffort
    }

    /// Verdicts below the threshold are not this channel's to carry (the
    /// deployment chose the threshold): nothing is sent for them.
    async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
        let entries: Vec<PutEventsRequestEntry> = self
            .verdicts(notice)
            .into_iter()
            .map(|v| self.entry(v))
            .collect();
        for batch in batches(entries) {
            if let Err(error) = self.put(batch, deadline_ms).await {
                if !error.is_transient() {
                    tracing::error!(channel = "eventbridge", bus = %self.bus_name, problem = %error, "EventBridge refused the verdicts: check EVENT_BUS_NAME, the bus's policy and the function's events:PutEvents");
                }
                return Err(error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sns::sample_verdict;
    use aws_sdk_eventbridge::operation::put_events::{PutEventsError, PutEventsOutput};
    use aws_sdk_eventbridge::types::error::InternalException;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{mock, mock_client};

    fn in_ms(ms: i64) -> i64 {
        SystemClock.now_ms() + ms
    }

    fn accepted(n: usize) -> PutEventsOutput {
        PutEventsOutput::builder()
            .failed_entry_count(0)
            .set_entries(Some(
                (0..n)
                    .map(|i| {
                        PutEventsResultEntry::builder()
                            .event_id(format!("e-{i}"))
                            .build()
                    })
                    .collect(),
            ))
            .build()
    }

    #[tokio::test]
    async fn a_verdict_at_the_threshold_is_put_on_the_bus() {
        let verdict = sample_verdict();
        let event_id = verdict.event_id.clone();
        let rule = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(move |req| {
                let entries = req.entries();
                entries.len() == 1
                    && entries[0].source() == Some("grantwatch")
                    && entries[0].detail_type() == Some("KMS grant verdict")
                    && entries[0].event_bus_name() == Some("security")
                    && entries[0].detail().is_some_and(|d| {
                        serde_json::from_str::<serde_json::Value>(d)
                            .is_ok_and(|d| d["verdict"]["event_id"] == event_id.as_str())
                    })
            })
            .then_output(|| accepted(1));
        let client = mock_client!(aws_sdk_eventbridge, [&rule]);
        let notifier = EventBridgeNotifier::new(client, "security", verdict.severity);
        assert_eq!(notifier.class(), ChannelClass::BestEffort);
        notifier
            .send(Notice::Alert(&verdict), in_ms(20_000))
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_verdict_below_the_threshold_is_not_sent() {
        let mut verdict = sample_verdict();
        verdict.severity = Severity::Medium;
        let rule = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| accepted(1));
        let client = mock_client!(aws_sdk_eventbridge, [&rule]);
        EventBridgeNotifier::new(client, "security", Severity::High)
            .send(Notice::Alert(&verdict), in_ms(20_000))
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 0);
    }

    /// HTTP 200 with FailedEntryCount: refused, not sent.
    #[tokio::test]
    async fn refused_entries_are_failures_not_success() {
        let verdict = sample_verdict();
        for (code, transient) in [
            ("ThrottlingException", true),
            ("AccessDeniedException", false),
        ] {
            let rule = mock!(aws_sdk_eventbridge::Client::put_events).then_output(move || {
                PutEventsOutput::builder()
                    .failed_entry_count(1)
                    .entries(
                        PutEventsResultEntry::builder()
                            .error_code(code)
                            .error_message("refused")
                            .build(),
                    )
                    .build()
            });
            let client = mock_client!(aws_sdk_eventbridge, [&rule]);
            let error = EventBridgeNotifier::new(client, "security", Severity::Info)
                .send(Notice::Alert(&verdict), in_ms(20_000))
                .await
                .unwrap_err();
            assert_eq!(error.is_transient(), transient, "{code}: {error}");
            assert!(error.to_string().contains(code), "{error}");
        }
    }

    #[tokio::test]
    async fn a_service_error_is_classified() {
        let verdict = sample_verdict();
        let rule = mock!(aws_sdk_eventbridge::Client::put_events).then_error(|| {
            PutEventsError::InternalException(
                InternalException::builder()
                    .message("boom")
                    .meta(crate::sdk::tests::meta("InternalException"))
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_eventbridge, [&rule]);
        let error = EventBridgeNotifier::new(client, "security", Severity::Info)
            .send(Notice::Alert(&verdict), in_ms(20_000))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("PutEvents: InternalException"),
            "{error}"
        );
    }

    #[test]
    fn entries_go_ten_to_a_call() {
        let verdict = sample_verdict();
        let client = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::Config::builder()
                .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                .build(),
        );
        let notifier = EventBridgeNotifier::new(client, "b", Severity::Info);
        let entries: Vec<_> = (0..23).map(|_| notifier.entry(&verdict)).collect();
        let sizes: Vec<usize> = batches(entries).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);
    }
}
