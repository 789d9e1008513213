//! S3 report store (dated prefixes, previous report, presigned links).
//!
//! Layout: `reports/YYYY-MM-DD/{report.json,grants.csv,report.html,summary.md}`.
//! The previous reports are found by listing the `reports/` prefix's dated
//! folders, newest first.

use crate::sdk::classify;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use grantwatch_core::ports::inventory::{ReportStore, StoredReport};
use grantwatch_core::ports::PortError;
use grantwatch_core::report::REPORT_JSON;
use std::time::Duration;

/// Where dated report folders live in the bucket.
pub const REPORT_PREFIX: &str = "reports/";
/// SigV4 presigned URLs live at most 7 days.
pub const MAX_LINK_EXPIRY: Duration = Duration::from_secs(604_800);

pub struct S3ReportStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    link_expiry: Duration,
}

impl S3ReportStore {
    /// `link_expiry` is capped at [`MAX_LINK_EXPIRY`].
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        link_expiry: Duration,
    ) -> Self {
        S3ReportStore {
            client,
            bucket: bucket.into(),
            link_expiry: link_expiry.min(MAX_LINK_EXPIRY),
        }
    }

    /// Dated folders under `reports/`, newest first.
    async fn dated_folders(&self) -> Result<Vec<String>, PortError> {
        let mut folders = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(REPORT_PREFIX)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListObjectsV2", &e))?;
            folders.extend(
                out.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .filter(|p| is_dated_folder(p))
                    .map(str::to_string),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        folders.sort_by(|a, b| b.cmp(a));
        Ok(folders)
    }
}

/// `reports/YYYY-MM-DD/`.
fn is_dated_folder(prefix: &str) -> bool {
    prefix
        .strip_prefix(REPORT_PREFIX)
        .and_then(|rest| rest.strip_suffix('/'))
        .is_some_and(|date| {
            date.len() == 10
                && date.chars().enumerate().all(|(i, c)| {
                    if i == 4 || i == 7 {
                        c == '-'
                    } else {
                        c.is_ascii_digit()
                    }
                })
        })
}

impl ReportStore for S3ReportStore {
    async fn put(
        &self,
        date: &str,
        file_name: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<String, PortError> {
        let key = format!("{REPORT_PREFIX}{date}/{file_name}");
        if !is_dated_folder(&format!("{REPORT_PREFIX}{date}/")) {
            return Err(PortError::Permanent(format!(
                "report date {date:?} is not YYYY-MM-DD"
            )));
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify("PutObject", &e))?;
        Ok(key)
    }

    async fn recent_reports(&self, limit: usize) -> Result<Vec<StoredReport>, PortError> {
        let mut reports = Vec::new();
        for folder in self.dated_folders().await? {
            if reports.len() >= limit {
                break;
            }
            let key = format!("{folder}{REPORT_JSON}");
            let object = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(object) => object,
                // A folder without report.json (an interrupted run): skip it.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => continue,
                Err(e) => return Err(classify("GetObject", &e)),
            };
            let body = object
                .body
                .collect()
                .await
                .map_err(|e| PortError::Transient(format!("GetObject {key}: {e}")))?
                .into_bytes()
                .to_vec();
            reports.push(StoredReport {
                location: key,
                body,
            });
        }
        Ok(reports)
    }

    async fn link(&self, location: &str) -> Result<String, PortError> {
        let config = PresigningConfig::expires_in(self.link_expiry)
            .map_err(|e| PortError::Permanent(format!("presigning config: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(location)
            .presigned(config)
            .await
            .map_err(|e| classify("GetObject (presign)", &e))?;
        Ok(request.uri().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_sdk_s3::types::CommonPrefix;
    use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};

    fn store(rules: &[&aws_smithy_mocks::Rule]) -> S3ReportStore {
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, rules);
        S3ReportStore::new(client, "reports-bucket", Duration::from_secs(3600))
    }

    #[test]
    fn only_dated_folders_count() {
        assert!(is_dated_folder("reports/2026-11-28/"));
        assert!(!is_dated_folder("reports/latest/"));
        assert!(!is_dated_folder("reports/2026-11-28"));
        assert!(!is_dated_folder("other/2026-11-28/"));
    }

    #[tokio::test]
    async fn files_go_under_the_dated_prefix() {
        let put = mock!(aws_sdk_s3::Client::put_object)
            .match_requests(|r| {
                r.bucket() == Some("reports-bucket")
                    && r.key() == Some("reports/2026-11-28/grants.csv")
                    && r.content_type() == Some("text/csv; charset=utf-8")
            })
            .then_output(|| PutObjectOutput::builder().build());
        let s = store(&[&put]);
        let key = s
            .put(
                "2026-11-28",
                "grants.csv",
                b"a,b\r\n".to_vec(),
                "text/csv; charset=utf-8",
            )
            .await
            .unwrap();
        assert_eq!(key, "reports/2026-11-28/grants.csv");
        assert_eq!(put.num_calls(), 1);
        assert!(s
            .put("../x", "grants.csv", vec![], "text/csv")
            .await
            .is_err());
    }

    #[tokio::test]
    async fn recent_reports_are_newest_first_across_pages_and_skip_incomplete_folders() {
        let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(|req| {
            let prefixes = |names: &[&str]| {
                names
                    .iter()
                    .map(|n| {
                        CommonPrefix::builder()
                            .prefix(format!("reports/{n}/"))
                            .build()
                    })
                    .collect::<Vec<_>>()
            };
            match req.continuation_token() {
                None => ListObjectsV2Output::builder()
                    .set_common_prefixes(Some(prefixes(&["2026-11-07", "2026-11-14"])))
                    .is_truncated(true)
                    .next_continuation_token("t2")
                    .build(),
                Some(_) => ListObjectsV2Output::builder()
                    .set_common_prefixes(Some(prefixes(&[
                        "2026-11-21",
                        "2026-11-28",
                        "not-a-date",
                    ])))
                    .is_truncated(false)
                    .build(),
            }
        });
        let get = mock!(aws_sdk_s3::Client::get_object).then_compute_response(|req| {
            let key = req.key().unwrap_or_default().to_string();
            if key.contains("2026-11-21") {
                return MockResponse::Error(GetObjectError::NoSuchKey(
                    NoSuchKey::builder().build(),
                ));
            }
            MockResponse::Output(
                GetObjectOutput::builder()
                    .body(ByteStream::from(key.into_bytes()))
                    .build(),
            )
        });
        let s = store(&[&list, &get]);
        let recent = s.recent_reports(2).await.unwrap();
        let locations: Vec<&str> = recent.iter().map(|r| r.location.as_str()).collect();
        assert_eq!(
            locations,
            vec![
                "reports/2026-11-28/report.json",
                "reports/2026-11-14/report.json"
            ]
        );
        assert_eq!(recent[0].body, b"reports/2026-11-28/report.json");
        assert_eq!(list.num_calls(), 2);
    }

    /// Presigning sends nothing: a real client with static credentials.
    fn offline_client() -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    #[tokio::test]
    async fn the_link_is_a_presigned_get_with_the_configured_expiry() {
        let s = S3ReportStore::new(
            offline_client(),
            "reports-bucket",
            Duration::from_secs(3600),
        );
        let link = s.link("reports/2026-11-28/report.html").await.unwrap();
        assert!(link.contains("reports-bucket"), "{link}");
        assert!(link.contains("reports/2026-11-28/report.html"), "{link}");
        assert!(link.contains("X-Amz-Expires=3600"), "{link}");
        assert!(link.contains("X-Amz-Signature="), "{link}");
        let capped = S3ReportStore::new(offline_client(), "b", Duration::from_secs(30 * 86_400));
        assert!(capped
            .link("k")
            .await
            .unwrap()
            .contains("X-Amz-Expires=604800"));
    }
}
