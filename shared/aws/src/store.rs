//! S3 report store (dated prefixes, previous report, presigned links).
//!
//! Layout: `reports/YYYY-MM-DD/{report.json,grants.csv,report.html,summary.md}`.
//! The previous reports are found by listing the `reports/` prefix's dated
//! folders, newest first.

use crate::sdk::classify;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use grantwatch_core::ports::inventory::{ReportStore, StoredReport};
use grantwatch_core::ports::PortError;
use grantwatch_core::report::REPORT_JSON;
use std::time::Duration;

/// Where dated report folders live in the bucket.
pub const REPORT_PREFIX: &str = "reports/";
/// SigV4 presigned URLs live at most 7 days.
pub const MAX_LINK_EXPIRY: Duration = Duration::from_secs(604_800);
/// Multipart part size (S3: at least 5 MiB for every part but the last):
/// what a report file holds in memory while it is stored.
pub const PART_SIZE: usize = 8 << 20;

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

    /// Upload the parts of `key` (the first in hand) under `upload_id`.
    async fn upload_parts<C>(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        chunks: &mut std::iter::Peekable<C>,
    ) -> Result<Vec<CompletedPart>, PortError>
    where
        C: Iterator<Item = Result<Vec<u8>, PortError>> + Send,
    {
        let mut parts = Vec::new();
        let mut part = first;
        loop {
            let number = i32::try_from(parts.len() + 1)
                .map_err(|_| PortError::Permanent(format!("{key}: too many parts")))?;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(std::mem::take(&mut part)))
                .send()
                .await
                .map_err(|e| classify("UploadPart", &e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .part_number(number)
                    .build(),
            );
            if chunks.peek().is_none() {
                return Ok(parts);
            }
            part = next_part(chunks)?;
        }
    }

    /// Give up a multipart upload: its parts are deleted and no object is
    /// created. `error` (why) is returned, with the abort's own failure.
    async fn abort(&self, key: &str, upload_id: &str, error: PortError) -> PortError {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match aborted {
            Ok(_) => error,
            Err(e) => {
                let also = format!(
                    "; the multipart upload {upload_id} of {key} could not be aborted either: {}",
                    classify("AbortMultipartUpload", &e)
                );
                match error {
                    PortError::Transient(m) => PortError::Transient(m + &also),
                    PortError::Permanent(m) => PortError::Permanent(m + &also),
                }
            }
        }
    }

    /// `report.json` of one dated folder; `None` if it has none (an
    /// interrupted run).
    async fn report_in(&self, folder: &str) -> Result<Option<StoredReport>, PortError> {
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
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(classify("GetObject", &e)),
        };
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| PortError::Transient(format!("GetObject {key}: {e}")))?
            .into_bytes()
            .to_vec();
        Ok(Some(StoredReport {
            location: key,
            body,
        }))
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

/// `reports/YYYY-MM-DD/<file>`; refused if `date` is not `YYYY-MM-DD`.
fn file_key(date: &str, file_name: &str) -> Result<String, PortError> {
    if !is_dated_folder(&format!("{REPORT_PREFIX}{date}/")) {
        return Err(PortError::Permanent(format!(
            "report date {date:?} is not YYYY-MM-DD"
        )));
    }
    Ok(format!("{REPORT_PREFIX}{date}/{file_name}"))
}

/// The chunks of a file joined up to one multipart part (at least
/// [`PART_SIZE`] unless the file ends first).
fn next_part<C>(chunks: &mut C) -> Result<Vec<u8>, PortError>
where
    C: Iterator<Item = Result<Vec<u8>, PortError>>,
{
    let mut part = Vec::new();
    while part.len() < PART_SIZE {
        match chunks.next() {
            Some(chunk) if part.is_empty() => part = chunk?,
            Some(chunk) => part.extend_from_slice(&chunk?),
            None => break,
        }
    }
    Ok(part)
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
        let key = file_key(date, file_name)?;
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

    /// A file of one part is one PutObject; a larger one a multipart upload,
    /// [`PART_SIZE`] parts, aborted if a chunk or a part fails.
    async fn put_chunks<C>(
        &self,
        date: &str,
        file_name: &str,
        chunks: C,
        content_type: &str,
    ) -> Result<String, PortError>
    where
        C: Iterator<Item = Result<Vec<u8>, PortError>> + Send,
    {
        let key = file_key(date, file_name)?;
        let mut chunks = chunks.peekable();
        let first = next_part(&mut chunks)?;
        if chunks.peek().is_none() {
            return self.put(date, file_name, first, content_type).await;
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| classify("CreateMultipartUpload", &e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                PortError::Transient(format!("CreateMultipartUpload {key}: no upload id"))
            })?
            .to_string();
        let parts = match self
            .upload_parts(&key, &upload_id, first, &mut chunks)
            .await
        {
            Ok(parts) => parts,
            Err(e) => return Err(self.abort(&key, &upload_id, e).await),
        };
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match completed {
            Ok(_) => Ok(key),
            Err(e) => {
                let error = classify("CompleteMultipartUpload", &e);
                Err(self.abort(&key, &upload_id, error).await)
            }
        }
    }

    async fn recent_reports(&self, limit: usize) -> Result<Vec<StoredReport>, PortError> {
        let mut reports = Vec::new();
        for folder in self.dated_folders().await? {
            if reports.len() >= limit {
                break;
            }
            reports.extend(self.report_in(&folder).await?);
        }
        Ok(reports)
    }

    /// Reads the folders' report.json one at a time; the newer ones skipped
    /// are not kept.
    async fn recent_report(&self, index: usize) -> Result<Option<StoredReport>, PortError> {
        let mut found = 0;
        for folder in self.dated_folders().await? {
            let Some(report) = self.report_in(&folder).await? else {
                continue;
            };
            if found == index {
                return Ok(Some(report));
            }
            found += 1;
        }
        Ok(None)
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
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
    use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
    use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use aws_sdk_s3::operation::upload_part::{UploadPartError, UploadPartOutput};
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
        // One at a time: the second report.json found is the 2026-11-14 one.
        let second = s.recent_report(1).await.unwrap().unwrap();
        assert_eq!(second.location, "reports/2026-11-14/report.json");
        assert_eq!(second.body, b"reports/2026-11-14/report.json");
        let oldest = s.recent_report(2).await.unwrap().unwrap();
        assert_eq!(oldest.location, "reports/2026-11-07/report.json");
        assert!(s.recent_report(3).await.unwrap().is_none());
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

    fn mib(n: usize, byte: u8) -> Result<Vec<u8>, PortError> {
        Ok(vec![byte; n << 20])
    }

    fn create() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_s3::Client::create_multipart_upload)
            .match_requests(|r| {
                r.key() == Some("reports/2026-11-28/report.json")
                    && r.content_type() == Some("application/json")
            })
            .then_output(|| {
                CreateMultipartUploadOutput::builder()
                    .upload_id("upload-1")
                    .build()
            })
    }

    fn abort() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_s3::Client::abort_multipart_upload)
            .match_requests(|r| r.upload_id() == Some("upload-1"))
            .then_output(|| AbortMultipartUploadOutput::builder().build())
    }

    async fn put_json(
        s: &S3ReportStore,
        chunks: Vec<Result<Vec<u8>, PortError>>,
    ) -> Result<String, PortError> {
        s.put_chunks(
            "2026-11-28",
            "report.json",
            chunks.into_iter(),
            "application/json",
        )
        .await
    }

    #[tokio::test]
    async fn a_large_file_goes_up_in_parts_of_at_least_5_mib() {
        let create = create();
        let part = mock!(aws_sdk_s3::Client::upload_part)
            .match_requests(|r| r.upload_id() == Some("upload-1"))
            .then_compute_output(|r| {
                UploadPartOutput::builder()
                    .e_tag(format!("etag-{}", r.part_number().unwrap_or_default()))
                    .build()
            });
        let complete = mock!(aws_sdk_s3::Client::complete_multipart_upload)
            .match_requests(|r| {
                let parts: Vec<(Option<&str>, Option<i32>)> = r
                    .multipart_upload()
                    .map(|m| {
                        m.parts()
                            .iter()
                            .map(|p| (p.e_tag(), p.part_number()))
                            .collect()
                    })
                    .unwrap_or_default();
                r.upload_id() == Some("upload-1")
                    && parts == vec![(Some("etag-1"), Some(1)), (Some("etag-2"), Some(2))]
            })
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let put = mock!(aws_sdk_s3::Client::put_object)
            .then_output(|| PutObjectOutput::builder().build());
        let abort = abort();
        let s = store(&[&create, &part, &complete, &put, &abort]);
        // 6 + 6 MiB make the first part (>= 8 MiB), the last 6 MiB the second.
        let key = put_json(&s, vec![mib(6, b'a'), mib(6, b'b'), mib(6, b'c')])
            .await
            .unwrap();
        assert_eq!(key, "reports/2026-11-28/report.json");
        assert_eq!(
            (create.num_calls(), part.num_calls(), complete.num_calls()),
            (1, 2, 1)
        );
        assert_eq!((put.num_calls(), abort.num_calls()), (0, 0));
    }

    #[tokio::test]
    async fn a_file_of_one_part_is_one_put() {
        let put = mock!(aws_sdk_s3::Client::put_object)
            .match_requests(|r| r.key() == Some("reports/2026-11-28/report.json"))
            .then_output(|| PutObjectOutput::builder().build());
        let create = create();
        let s = store(&[&put, &create]);
        put_json(&s, vec![Ok(b"{".to_vec()), Ok(b"}".to_vec())])
            .await
            .unwrap();
        assert_eq!((put.num_calls(), create.num_calls()), (1, 0));
    }

    #[tokio::test]
    async fn a_failing_part_aborts_the_upload_and_the_error_surfaces() {
        let create = create();
        let part = mock!(aws_sdk_s3::Client::upload_part)
            .match_requests(|r| r.upload_id() == Some("upload-1"))
            .then_compute_response(|r| {
                if r.part_number() == Some(2) {
                    MockResponse::Error(UploadPartError::generic(
                        ErrorMetadata::builder()
                            .code("AccessDenied")
                            .message("denied on part 2")
                            .build(),
                    ))
                } else {
                    MockResponse::Output(UploadPartOutput::builder().e_tag("etag-1").build())
                }
            });
        let complete = mock!(aws_sdk_s3::Client::complete_multipart_upload)
            .match_requests(|r| r.upload_id() == Some("upload-1"))
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let abort = abort();
        let s = store(&[&create, &part, &complete, &abort]);
        let err = put_json(&s, vec![mib(8, b'a'), mib(8, b'b'), mib(1, b'c')])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("UploadPart"), "{err}");
        assert_eq!(part.num_calls(), 2);
        assert_eq!((abort.num_calls(), complete.num_calls()), (1, 0));
    }

    #[tokio::test]
    async fn a_chunk_that_cannot_be_rendered_aborts_the_upload() {
        let create = create();
        let part = mock!(aws_sdk_s3::Client::upload_part)
            .match_requests(|r| r.upload_id() == Some("upload-1"))
            .then_output(|| UploadPartOutput::builder().e_tag("etag-1").build());
        let complete = mock!(aws_sdk_s3::Client::complete_multipart_upload)
            .match_requests(|r| r.upload_id() == Some("upload-1"))
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let abort = abort();
        let s = store(&[&create, &part, &complete, &abort]);
        let broken = Err(PortError::Permanent("cannot render report.json".into()));
        let err = put_json(&s, vec![mib(8, b'a'), broken, mib(1, b'c')])
            .await
            .unwrap_err();
        assert_eq!(
            err,
            PortError::Permanent("cannot render report.json".into())
        );
        assert_eq!(part.num_calls(), 1);
        assert_eq!((abort.num_calls(), complete.num_calls()), (1, 0));
    }
}
