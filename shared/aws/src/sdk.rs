//! Shared SDK configuration (one per process; honours `AWS_ENDPOINT_URL`),
//! error classification, the system clock, and the Lambda init-error report.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use grantwatch_core::app::watch::Clock;
use grantwatch_core::ports::PortError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The process's SDK configuration: region, credentials and endpoint from
/// the environment (`AWS_ENDPOINT_URL` points every client at an emulator).
/// Load it once in `main` and build every client from it.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// An S3 client; path-style addressing when an endpoint URL is set (moto
/// and other emulators serve one host).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::config::Builder::from(config);
    let builder = if config.endpoint_url().is_some() {
        builder.force_path_style(true)
    } else {
        builder
    };
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Error codes a retry can fix, whatever the service.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "TransactionConflictException",
    "LimitExceededException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServiceErrorException",
    "KMSInternalException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "DependencyTimeoutException",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSInvalidStateException",
    "KMSThrottling",
    "KMSThrottlingException",
    "InternalErrorException",
];

/// Transient (throttling, 5xx, timeouts, connection trouble) or permanent
/// (access denied, missing resource, validation). The message names the
/// operation and the service's error code, never request data.
pub fn classify<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::TimeoutError(_) => PortError::Transient(format!("{operation}: timed out")),
        SdkError::DispatchFailure(failure) => PortError::Transient(format!(
            "{operation}: cannot reach the service ({failure:?})"
        )),
        SdkError::ResponseError(_) => {
            PortError::Transient(format!("{operation}: unreadable response"))
        }
        SdkError::ConstructionFailure(_) => {
            PortError::Permanent(format!("{operation}: cannot build the request"))
        }
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("Unknown");
            let message = err.message().unwrap_or("");
            let status = Some(service.raw().status().as_u16());
            let text = format!("{operation}: {code}: {message}");
            if TRANSIENT_CODES.contains(&code) || status.is_some_and(|s| s >= 500 || s == 429) {
                PortError::Transient(text)
            } else {
                PortError::Permanent(text)
            }
        }
        _ => PortError::Transient(format!("{operation}: {}", error_text(error))),
    }
}

fn error_text<E: std::error::Error + 'static, R: std::fmt::Debug>(
    error: &SdkError<E, R>,
) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The real clock (tokio timers).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Tell Lambda why initialisation failed (`POST /runtime/init/error`), so
/// the error type and message show in the invocation's error instead of a
/// bare exit. Best effort: without `AWS_LAMBDA_RUNTIME_API` it does nothing.
pub async fn report_init_error(error_type: &str, message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    let result = reqwest::Client::new()
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", error_type)
        .json(&body)
        .send()
        .await;
    if let Err(error) = result {
        tracing::error!(error = %error.without_url(), "cannot report the init error to the Runtime API");
    }
}

/// `s3://bucket/key` → (bucket, key).
pub fn parse_s3_uri(uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{uri:?} is not an s3://bucket/key URI"))?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(format!("{uri:?} is not an s3://bucket/key URI")),
    }
}

/// Load and parse the suppression rules file (TOML) at `s3://bucket/key`.
/// Read once at init by the functions that judge (`RULES_S3_URI`).
pub async fn load_rules(
    s3: &aws_sdk_s3::Client,
    uri: &str,
) -> Result<grantwatch_core::rules::RuleSet, String> {
    let (bucket, key) = parse_s3_uri(uri)?;
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| format!("cannot read {uri}: {}", classify("GetObject", &e)))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| format!("cannot read {uri}: {e}"))?
        .into_bytes();
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("{uri} is not UTF-8 text"))?;
    grantwatch_core::rules::RuleSet::parse_toml(text).map_err(|e| format!("{uri}: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_dynamodb::types::error::{
        InternalServerError, ProvisionedThroughputExceededException, ResourceNotFoundException,
    };
    use aws_smithy_mocks::{mock, mock_client};

    /// Real responses carry the error code in the metadata; so do these.
    pub(crate) fn meta(code: &str) -> aws_smithy_types::error::ErrorMetadata {
        aws_smithy_types::error::ErrorMetadata::builder()
            .code(code)
            .message("from a test")
            .build()
    }

    async fn get_item_error(error: impl Fn() -> GetItemError + Send + Sync + 'static) -> PortError {
        let rule = mock!(aws_sdk_dynamodb::Client::get_item).then_error(error);
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        let result = client.get_item().table_name("t").send().await;
        match result {
            Err(e) => classify("GetItem", &e),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[tokio::test]
    async fn throttling_and_server_errors_are_transient() {
        let throttled = get_item_error(|| {
            GetItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .meta(meta("ProvisionedThroughputExceededException"))
                    .build(),
            )
        })
        .await;
        assert!(throttled.is_transient(), "{throttled}");
        assert!(throttled
            .to_string()
            .contains("ProvisionedThroughputExceededException"));
        let internal = get_item_error(|| {
            GetItemError::InternalServerError(
                InternalServerError::builder()
                    .message("boom")
                    .meta(meta("InternalServerError"))
                    .build(),
            )
        })
        .await;
        assert!(internal.is_transient(), "{internal}");
    }

    #[test]
    fn s3_uris_name_a_bucket_and_a_key() {
        assert_eq!(
            parse_s3_uri("s3://config/grantwatch/rules.toml").unwrap(),
            ("config".to_string(), "grantwatch/rules.toml".to_string())
        );
        for bad in [
            "config/rules.toml",
            "s3://config",
            "s3:///rules.toml",
            "s3://config/",
        ] {
            assert!(parse_s3_uri(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn missing_resources_are_permanent() {
        let missing = get_item_error(|| {
            GetItemError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Requested resource not found")
                    .meta(meta("ResourceNotFoundException"))
                    .build(),
            )
        })
        .await;
        assert!(!missing.is_transient(), "{missing}");
        assert!(missing
            .to_string()
            .starts_with("permanent failure: GetItem: ResourceNotFoundException"));
    }
}
