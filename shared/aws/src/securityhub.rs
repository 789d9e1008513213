//! AWS Security Hub: verdicts imported as ASFF findings
//! (`render::asff`) with `BatchImportFindings`, by the watcher (a
//! best-effort channel, [`SecurityHubNotifier`]) and by the weekly report
//! ([`import_report_findings`]). docs/alerts.md, "Security Hub".
//!
//! The call is signed with SigV4 (`aws-sigv4`) and sent with the no-redirect
//! reqwest client, not with `aws-sdk-securityhub`: that crate models every
//! ASFF resource type and would add megabytes to each Lambda (issue #13).
//! Each finding goes to the region of its `ProductArn` (the key's region),
//! or to `AWS_ENDPOINT_URL_SECURITYHUB` / `AWS_ENDPOINT_URL` when one is set
//! (emulators, as the SDK clients honour them).
//!
//! `BatchImportFindings` answers HTTP 200 with `FailedCount` and
//! `FailedFindings` when it refuses findings: those are failures, like an
//! error status. Throttling, 5xx and connection trouble are transient and
//! retried ([`ATTEMPTS`] times, then left to the caller's retry); anything
//! else is permanent.

use crate::sdk::{self, SystemClock, ATTEMPT_TIMEOUT};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use grantwatch_core::ports::clock::Clock;
use grantwatch_core::ports::notify::{ChannelClass, Notice, Notifier};
use grantwatch_core::ports::PortError;
use grantwatch_core::render::asff::{self, MAX_BATCH};
use grantwatch_core::render::describe::is_removal;
use grantwatch_core::render::links::LinkSettings;
use grantwatch_core::report::model::GrantRef;
use grantwatch_core::verdict::{ActorView, Severity, Verdict};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tries of one batch before a transient failure is returned.
pub const ATTEMPTS: u32 = 3;
/// Pause before the second try (doubled for each later one).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Error codes a retry can fix (status 429 and 5xx are retried too).
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "TooManyRequestsException",
    "LimitExceededException",
    "InternalException",
    "InternalFailure",
    "ServiceUnavailable",
];
const SERVICE: &str = "securityhub";

/// One finding Security Hub refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub id: String,
    pub code: String,
    pub message: String,
}

/// What an import did: findings accepted, and those refused (in a 200
/// answer, or by [`asff::validate`] before sending).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub accepted: usize,
    pub refused: Vec<Refused>,
}

impl Imported {
    /// The refusals as one error: transient when every code can be retried.
    pub fn into_result(self) -> Result<usize, PortError> {
        if self.refused.is_empty() {
            return Ok(self.accepted);
        }
        let mut codes: Vec<&str> = self.refused.iter().map(|r| r.code.as_str()).collect();
        codes.dedup();
        let text = format!(
            "BatchImportFindings: {} of {} findings refused ({}; first: {}: {})",
            self.refused.len(),
            self.accepted + self.refused.len(),
            codes.join(", "),
            self.refused[0].id,
            self.refused[0].message
        );
        if codes.iter().all(|c| TRANSIENT_CODES.contains(c)) {
            Err(PortError::Transient(text))
        } else {
            Err(PortError::Permanent(text))
        }
    }
}

/// `BatchImportFindings` over SigV4-signed HTTPS.
#[derive(Clone)]
pub struct SecurityHub {
    http: reqwest::Client,
    credentials: Option<SharedCredentialsProvider>,
    /// `AWS_ENDPOINT_URL_SECURITYHUB` or `AWS_ENDPOINT_URL`: every call goes
    /// there (signed for the finding's region).
    endpoint: Option<String>,
}

impl std::fmt::Debug for SecurityHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityHub")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SecurityHub {
    /// Credentials and endpoint from the process's SDK configuration (and
    /// `AWS_ENDPOINT_URL_SECURITYHUB`, which the SDK's own clients would
    /// read for this service).
    pub fn new(config: &aws_config::SdkConfig) -> Result<SecurityHub, PortError> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL_SECURITYHUB")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| config.endpoint_url().map(str::to_string));
        Ok(SecurityHub {
            http: crate::slack::http_client()?,
            credentials: config.credentials_provider(),
            endpoint: endpoint.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// The regional endpoint of a `ProductArn`'s region and partition.
    fn url(&self, partition: &str, region: &str) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{endpoint}/findings/import"),
            None => {
                let domain = if partition == "aws-cn" {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                format!("https://securityhub.{region}.{domain}/findings/import")
            }
        }
    }

    /// Import `findings` (each checked with [`asff::validate`] first), in
    /// batches of at most [`MAX_BATCH`] per region, before `deadline_ms`.
    /// `Err` only when a batch could not be delivered at all (after
    /// [`ATTEMPTS`] for a transient failure); refusals are in [`Imported`].
    pub async fn import(
        &self,
        findings: &[Value],
        deadline_ms: i64,
    ) -> Result<Imported, PortError> {
        let mut imported = Imported::default();
        let mut by_region: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
        for finding in findings {
            let target = asff::validate(finding).and_then(|()| product_region(finding));
            match target {
                Ok(target) => by_region.entry(target).or_default().push(finding),
                Err(problem) => imported.refused.push(Refused {
                    id: finding["Id"].as_str().unwrap_or("(no id)").to_string(),
                    code: "InvalidAsff".to_string(),
                    message: problem,
                }),
            }
        }
        for ((partition, region), findings) in &by_region {
            for batch in findings.chunks(MAX_BATCH) {
                let answer = self.batch(partition, region, batch, deadline_ms).await?;
                imported.accepted += answer.accepted;
                imported.refused.extend(answer.refused);
            }
        }
        Ok(imported)
    }

    /// One batch, tried up to [`ATTEMPTS`] times while the failure is transient.
    async fn batch(
        &self,
        partition: &str,
        region: &str,
        batch: &[&Value],
        deadline_ms: i64,
    ) -> Result<Imported, PortError> {
        let body = serde_json::to_vec(&json!({ "Findings": batch }))
            .map_err(|e| PortError::Permanent(format!("BatchImportFindings: {e}")))?;
        let url = self.url(partition, region);
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let now = SystemClock.now_ms();
            let result = sdk::before_deadline(
                "BatchImportFindings",
                deadline_ms,
                now,
                self.post(&url, region, &body, deadline_ms, now),
            )
            .await;
            match result {
                Err(PortError::Transient(text)) if attempt < ATTEMPTS => {
                    tracing::warn!(channel = "securityhub", attempt, problem = %text, "retrying");
                    let left = sdk::time_left("BatchImportFindings", deadline_ms, now)?;
                    if left <= backoff {
                        return Err(PortError::Transient(text));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn post(
        &self,
        url: &str,
        region: &str,
        body: &[u8],
        deadline_ms: i64,
        now_ms: i64,
    ) -> Result<Imported, PortError> {
        let timeout =
            ATTEMPT_TIMEOUT.min(sdk::time_left("BatchImportFindings", deadline_ms, now_ms)?);
        let headers = self.signed_headers(url, region, body).await?;
        let mut request = self
            .http
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            // reqwest's text names the URL, which holds nothing secret here.
            PortError::Transient(format!(
                "BatchImportFindings: cannot reach Security Hub: {e}"
            ))
        })?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        let text = response.text().await.map_err(|e| {
            PortError::Transient(format!("BatchImportFindings: unreadable answer: {e}"))
        })?;
        answer(status, error_type.as_deref(), &text)
    }

    /// SigV4 headers for a POST of `body` to `url`, for `region`.
    async fn signed_headers(
        &self,
        url: &str,
        region: &str,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, PortError> {
        let provider = self.credentials.as_ref().ok_or_else(|| {
            PortError::Permanent("BatchImportFindings: no AWS credentials configured".to_string())
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            PortError::Transient(format!("BatchImportFindings: no credentials: {e}"))
        })?;
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| PortError::Permanent(format!("BatchImportFindings: signing: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url,
            [("content-type", "application/json")].into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| PortError::Permanent(format!("BatchImportFindings: signing: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| PortError::Permanent(format!("BatchImportFindings: signing: {e}")))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect())
    }
}

/// The partition and region of a finding's `ProductArn`.
fn product_region(finding: &Value) -> Result<(String, String), String> {
    let arn = finding["ProductArn"].as_str().unwrap_or_default();
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "securityhub", region, ..] if !region.is_empty() => {
            Ok((partition.to_string(), region.to_string()))
        }
        _ => Err(format!("ProductArn {arn:?} names no region")),
    }
}

/// Read one `BatchImportFindings` answer.
fn answer(status: u16, error_type: Option<&str>, text: &str) -> Result<Imported, PortError> {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let code = error_type
            .or_else(|| body["__type"].as_str())
            .or_else(|| body["Code"].as_str())
            .unwrap_or("Unknown");
        let code = code.rsplit('#').next().unwrap_or(code);
        let message = body["Message"]
            .as_str()
            .or_else(|| body["message"].as_str())
            .unwrap_or("");
        let text = format!("BatchImportFindings: HTTP {status}: {code}: {message}");
        return if status == 429 || status >= 500 || TRANSIENT_CODES.contains(&code) {
            Err(PortError::Transient(text))
        } else {
            Err(PortError::Permanent(text))
        };
    }
    let accepted = body["SuccessCount"].as_u64().ok_or_else(|| {
        PortError::Transient("BatchImportFindings: an answer without SuccessCount".to_string())
    })? as usize;
    let mut refused: Vec<Refused> = body["FailedFindings"]
        .as_array()
        .map(|failed| {
            failed
                .iter()
                .map(|f| Refused {
                    id: f["Id"].as_str().unwrap_or("(no id)").to_string(),
                    code: f["ErrorCode"].as_str().unwrap_or("Unknown").to_string(),
                    message: f["ErrorMessage"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    // Counted in FailedCount but not listed: refused all the same.
    let failed_count = body["FailedCount"].as_u64().unwrap_or(0) as usize;
    let unlisted = failed_count.saturating_sub(refused.len());
    refused.extend(std::iter::repeat_n(
        Refused {
            id: "(not listed)".to_string(),
            code: "Unknown".to_string(),
            message: "counted in FailedCount".to_string(),
        },
        unlisted,
    ));
    Ok(Imported { accepted, refused })
}

/// Now, as ASFF's `UpdatedAt`.
fn rfc3339_now() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.replace_nanosecond(0)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Render each verdict, setting aside (logged) those that are not about a
/// key and so cannot be an ASFF finding. `archive` forces `RecordState:
/// ARCHIVED` (the report's removed grants).
fn render(verdicts: &[&Verdict], archive: bool, now: &str, links: &LinkSettings) -> Vec<Value> {
    verdicts
        .iter()
        .filter_map(|v| match asff::finding(v, now, links) {
            Ok(mut finding) => {
                if archive {
                    finding["RecordState"] = Value::String("ARCHIVED".to_string());
                }
                Some(finding)
            }
            Err(problem) => {
                tracing::warn!(channel = "securityhub", event_id = %v.event_id, %problem, "not a finding about a key: not imported");
                None
            }
        })
        .collect()
}

/// The watcher's Security Hub channel (best effort): each alert at or
/// above `min_severity`, and each grant removal (which archives the
/// grant's finding), imported as one ASFF finding.
pub struct SecurityHubNotifier {
    hub: SecurityHub,
    min_severity: Severity,
    links: LinkSettings,
}

impl SecurityHubNotifier {
    pub fn new(hub: SecurityHub, min_severity: Severity) -> Self {
        SecurityHubNotifier {
            hub,
            min_severity,
            links: LinkSettings::default(),
        }
    }

    /// The deployment's link settings (the runbook in `Remediation`).
    pub fn with_links(mut self, links: LinkSettings) -> Self {
        self.links = links;
        self
    }

    /// The verdicts of a notice this channel imports.
    fn verdicts<'a>(&self, notice: Notice<'a>) -> Vec<&'a Verdict> {
        let all: Vec<&Verdict> = match notice {
            Notice::Alert(v) => vec![v],
            Notice::Digest(d) => {
                let uncarried = d.tally.total.saturating_sub(d.alerts.len() as u64);
                if uncarried > 0 {
                    tracing::warn!(
                        channel = "securityhub",
                        uncarried,
                        "storm digest: only the alerts it carries are imported; the weekly report imports the rest"
                    );
                }
                d.alerts.iter().collect()
            }
            // The report imports through `import_report_findings`.
            Notice::Report(_) => Vec::new(),
        };
        all.into_iter()
            .filter(|v| v.severity >= self.min_severity || is_removal(v))
            .collect()
    }
}

impl Notifier for SecurityHubNotifier {
    fn channel(&self) -> &str {
        "securityhub"
    }

    fn class(&self) -> ChannelClass {
        ChannelClass::BestEffort
    }

    async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
        let findings = render(&self.verdicts(notice), false, &rfc3339_now(), &self.links);
        if findings.is_empty() {
            return Ok(());
        }
        self.hub
            .import(&findings, deadline_ms)
            .await?
            .into_result()?;
        Ok(())
    }
}

/// A grant the weekly report no longer finds (`Diff::removed_grants`), as
/// the verdict whose finding it archives: the same `Id` as the watcher's
/// and the report's finding for that grant.
fn removed_grant(r: &GrantRef, generated_at: &str) -> Verdict {
    Verdict {
        event_id: format!("report/{generated_at}/{}", r.grant_id),
        event_name: "CreateGrant".to_string(),
        event_time: None,
        account: Some(r.account.clone()),
        region: Some(r.region.clone()),
        key: None,
        key_arn: Some(r.key_arn.clone()),
        key_alias: None,
        grant_id: Some(r.grant_id.clone()),
        grant_name: r.name.clone(),
        actor: ActorView {
            arn: None,
            identity_type: None,
            account: None,
            invoked_by: None,
        },
        source_ip: None,
        user_agent: None,
        grantee: r.grantee.clone(),
        retiring_principal: None,
        operations: Vec::new(),
        constraints: None,
        origin: r.origin,
        service: r.service.clone(),
        evidence: Vec::new(),
        severity: r.severity,
        alert: false,
        findings: Vec::new(),
        suppressed_by: None,
        rule_notes: Vec::new(),
        error_code: None,
        dry_run: false,
        removed_grant: None,
    }
}

/// The weekly report's import: `standing` is
/// `render::standing::asff_findings(&report, min_severity, &links)` (every
/// judged standing grant at or above the threshold, ACTIVE), and each of
/// `removed` (`report.diff`'s `removed_grants`) archives its grant's
/// finding, whatever its severity. A standing grant that cannot be a
/// finding is returned as refused (`NotAFinding`), never dropped. Refusals
/// are returned, not raised: the caller logs them at error level and counts
/// them (`DeliveriesRejected`, `Channel=securityhub`).
pub async fn import_report_findings(
    hub: &SecurityHub,
    standing: Vec<Result<Value, asff::AsffError>>,
    removed: &[GrantRef],
    generated_at: &str,
    links: &LinkSettings,
    deadline_ms: i64,
) -> Result<Imported, PortError> {
    let mut not_findings = Vec::new();
    let mut findings: Vec<Value> = standing
        .into_iter()
        .filter_map(|f| {
            f.map_err(|problem| {
                not_findings.push(Refused {
                    id: String::new(),
                    code: "NotAFinding".to_string(),
                    message: problem.to_string(),
                })
            })
            .ok()
        })
        .collect();
    let removed: Vec<Verdict> = removed
        .iter()
        .map(|r| removed_grant(r, generated_at))
        .collect();
    let removed: Vec<&Verdict> = removed.iter().collect();
    findings.extend(render(&removed, true, generated_at, links));
    let mut imported = hub.import(&findings, deadline_ms).await?;
    imported.refused.extend(not_findings);
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::stand_in::{self, Reply};
    use crate::sns::sample_verdict;
    use aws_credential_types::Credentials;

    fn in_ms(ms: i64) -> i64 {
        SystemClock.now_ms() + ms
    }

    fn hub(url: &str) -> SecurityHub {
        SecurityHub {
            http: crate::slack::http_client().unwrap(),
            credentials: Some(SharedCredentialsProvider::new(Credentials::for_tests())),
            endpoint: Some(url.to_string()),
        }
    }

    fn accepted(n: usize) -> Reply {
        Reply {
            status: 200,
            headers: "Content-Type: application/json\r\n".to_string(),
            body: format!(r#"{{"FailedCount":0,"SuccessCount":{n},"FailedFindings":[]}}"#),
        }
    }

    fn findings_sent(received: &[stand_in::Received]) -> Vec<Vec<Value>> {
        received
            .iter()
            .map(|r| {
                let body: Value = serde_json::from_str(&r.body).unwrap();
                body["Findings"].as_array().unwrap().clone()
            })
            .collect()
    }

    #[tokio::test]
    async fn an_alert_is_one_signed_valid_finding_sent_to_its_region() {
        let server = stand_in::serve(vec![accepted(1)]).await;
        let verdict = sample_verdict();
        let notifier = SecurityHubNotifier::new(hub(&server.url), Severity::Medium);
        notifier
            .send(Notice::Alert(&verdict), in_ms(10_000))
            .await
            .unwrap();
        let received = server.received.lock().unwrap().clone();
        assert_eq!(received.len(), 1);
        let head = received[0].head.to_ascii_lowercase();
        assert!(head.starts_with("post /findings/import "), "{head}");
        let region = asff::finding(&verdict, "2026-11-30T00:00:00Z", &LinkSettings::default())
            .unwrap()["ProductArn"]
            .as_str()
            .unwrap()
            .split(':')
            .nth(3)
            .unwrap()
            .to_string();
        assert!(
            head.contains(&format!("/{region}/securityhub/aws4_request")),
            "signed for the finding's region: {head}"
        );
        let sent = findings_sent(&received);
        assert_eq!(sent[0].len(), 1);
        asff::validate(&sent[0][0]).unwrap();
        assert_eq!(sent[0][0]["Id"], asff::finding_id(&verdict).unwrap());
        assert_eq!(sent[0][0]["RecordState"], "ACTIVE");
    }

    #[tokio::test]
    async fn below_the_threshold_nothing_is_sent_but_a_removal_archives() {
        let server = stand_in::serve(vec![accepted(1)]).await;
        let mut verdict = sample_verdict();
        verdict.severity = Severity::Low;
        let notifier = SecurityHubNotifier::new(hub(&server.url), Severity::High);
        notifier
            .send(Notice::Alert(&verdict), in_ms(10_000))
            .await
            .unwrap();
        assert_eq!(*server.count.lock().unwrap(), 0);
        verdict.event_name = "RevokeGrant".to_string();
        notifier
            .send(Notice::Alert(&verdict), in_ms(10_000))
            .await
            .unwrap();
        let sent = findings_sent(&server.received.lock().unwrap());
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0][0]["RecordState"], "ARCHIVED");
    }

    #[tokio::test]
    async fn findings_refused_inside_a_200_answer_are_a_failure() {
        let server = stand_in::serve(vec![Reply {
            status: 200,
            headers: String::new(),
            body: r#"{"FailedCount":1,"SuccessCount":0,"FailedFindings":[{"Id":"x","ErrorCode":"InvalidInput","ErrorMessage":"Finding is invalid"}]}"#.to_string(),
        }])
        .await;
        let verdict = sample_verdict();
        let error = SecurityHubNotifier::new(hub(&server.url), Severity::Info)
            .send(Notice::Alert(&verdict), in_ms(10_000))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, PortError::Permanent(text) if text.contains("1 of 1 findings refused (InvalidInput")),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_transient_error_is_retried_and_a_permanent_one_is_not() {
        let busy = Reply {
            status: 503,
            headers: String::new(),
            body: String::new(),
        };
        let server = stand_in::serve(vec![busy, accepted(1)]).await;
        let verdict = sample_verdict();
        SecurityHubNotifier::new(hub(&server.url), Severity::Info)
            .send(Notice::Alert(&verdict), in_ms(10_000))
            .await
            .unwrap();
        assert_eq!(*server.count.lock().unwrap(), 2);

        let denied = Reply {
            status: 403,
            headers: "x-amzn-ErrorType: AccessDeniedException:http://internal.amazon.com/\r\n"
                .to_string(),
            body: r#"{"Message":"not authorized to perform securityhub:BatchImportFindings"}"#
                .to_string(),
        };
        let server = stand_in::serve(vec![denied]).await;
        let error = SecurityHubNotifier::new(hub(&server.url), Severity::Info)
            .send(Notice::Alert(&verdict), in_ms(10_000))
            .await
            .unwrap_err();
        assert_eq!(*server.count.lock().unwrap(), 1);
        assert!(
            matches!(&error, PortError::Permanent(text) if text.contains("AccessDeniedException")),
            "{error:?}"
        );

        let server = stand_in::serve(
            (0..ATTEMPTS)
                .map(|_| Reply {
                    status: 429,
                    headers: String::new(),
                    body: r#"{"__type":"TooManyRequestsException"}"#.to_string(),
                })
                .collect(),
        )
        .await;
        let error = SecurityHubNotifier::new(hub(&server.url), Severity::Info)
            .send(Notice::Alert(&verdict), in_ms(10_000))
            .await
            .unwrap_err();
        assert_eq!(*server.count.lock().unwrap(), ATTEMPTS as usize);
        assert!(matches!(error, PortError::Transient(_)), "{error:?}");
    }

    #[test]
    fn answers_are_read_as_security_hub_gives_them() {
        let throttled = answer(
            200,
            None,
            r#"{"FailedCount":2,"SuccessCount":3,"FailedFindings":[{"Id":"a","ErrorCode":"ThrottlingException","ErrorMessage":"slow down"}]}"#,
        )
        .unwrap();
        assert_eq!(throttled.accepted, 3);
        assert_eq!(
            throttled.refused.len(),
            2,
            "FailedCount counts unlisted ones"
        );
        assert!(matches!(
            throttled.into_result(),
            Err(PortError::Permanent(_))
        ));
        let only_throttled = answer(
            200,
            None,
            r#"{"FailedCount":1,"SuccessCount":0,"FailedFindings":[{"Id":"a","ErrorCode":"ThrottlingException","ErrorMessage":""}]}"#,
        )
        .unwrap();
        assert!(matches!(
            only_throttled.into_result(),
            Err(PortError::Transient(_))
        ));
        assert_eq!(
            answer(
                200,
                None,
                r#"{"FailedCount":0,"SuccessCount":4,"FailedFindings":[]}"#
            )
            .unwrap()
            .into_result(),
            Ok(4)
        );
        assert!(matches!(
            answer(200, None, "<html>"),
            Err(PortError::Transient(_))
        ));
        assert!(matches!(
            answer(400, None, r#"{"__type":"InvalidInputException","Message":"bad"}"#),
            Err(PortError::Permanent(text)) if text.contains("InvalidInputException: bad")
        ));
    }

    #[tokio::test]
    async fn the_report_imports_in_batches_of_100_and_archives_removed_grants() {
        let server = stand_in::serve(vec![accepted(100), accepted(100), accepted(51)]).await;
        let base = sample_verdict();
        const NOW: &str = "2026-11-30T07:00:00Z";
        let standing: Vec<Result<Value, asff::AsffError>> = (0..250)
            .map(|i| {
                let mut v = base.clone();
                v.grant_id = Some(format!("grant-{i:03}"));
                asff::finding(&v, NOW, &LinkSettings::default())
            })
            .chain(std::iter::once({
                let mut no_key = base.clone();
                no_key.key = None;
                no_key.key_arn = None;
                asff::finding(&no_key, NOW, &LinkSettings::default())
            }))
            .collect();
        let gone = GrantRef {
            account: base.account.clone().unwrap(),
            region: base.region.clone().unwrap(),
            key_arn: base.key_arn.clone().unwrap(),
            grant_id: "gone".to_string(),
            name: None,
            grantee: base.grantee.clone(),
            origin: base.origin,
            service: None,
            severity: Severity::Info,
        };
        let imported = import_report_findings(
            &hub(&server.url),
            standing,
            &[gone],
            NOW,
            &LinkSettings::default(),
            in_ms(30_000),
        )
        .await
        .unwrap();
        assert_eq!(imported.accepted, 251);
        assert_eq!(imported.refused.len(), 1, "the grant with no key is named");
        assert_eq!(imported.refused[0].code, "NotAFinding");
        let sent = findings_sent(&server.received.lock().unwrap());
        let sizes: Vec<usize> = sent.iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 51]);
        let all: Vec<&Value> = sent.iter().flatten().collect();
        assert!(all.iter().all(|f| asff::validate(f).is_ok()));
        let archived: Vec<&&Value> = all
            .iter()
            .filter(|f| f["RecordState"] == "ARCHIVED")
            .collect();
        assert_eq!(archived.len(), 1);
        let mut removed = base.clone();
        removed.grant_id = Some("gone".to_string());
        assert_eq!(archived[0]["Id"], asff::finding_id(&removed).unwrap());
    }
}
