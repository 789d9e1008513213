//! Shared SDK configuration (one per process; honours `AWS_ENDPOINT_URL`),
//! error classification, the system clock, and the Lambda init-error report.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::timeout::TimeoutConfig;
use grantwatch_core::ports::clock::Clock;
use grantwatch_core::ports::PortError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The process's SDK configuration: region, credentials and endpoint from
/// the environment (`AWS_ENDPOINT_URL` points every client at an emulator).
/// Load it once in `main` and build every client from it.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Longest single attempt of a watcher's AWS call.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest AWS call of the watcher, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Kept free before the invocation's deadline by every bounded call, so the
/// caller can still record the outcome and answer the Runtime API.
pub const DEADLINE_RESERVE: Duration = Duration::from_millis(500);

/// The watcher's SDK configuration: [`load_config`] with every client's
/// attempt capped at [`ATTEMPT_TIMEOUT`] and every operation (retries
/// included) at [`OPERATION_TIMEOUT`], so no call, at init or per event,
/// can eat the invocation. Per call, [`call_timeouts`] also caps both by the
/// time left before the deadline.
pub async fn load_watcher_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(watcher_timeouts())
        .load()
        .await
}

/// Attempt [`ATTEMPT_TIMEOUT`] (connect included), operation [`OPERATION_TIMEOUT`].
pub fn watcher_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(ATTEMPT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Milliseconds left for a call that must end before `deadline_ms` (epoch
/// ms), keeping [`DEADLINE_RESERVE`]; a transient error when none is left.
pub fn time_left(operation: &str, deadline_ms: i64, now_ms: i64) -> Result<Duration, PortError> {
    let left = deadline_ms
        .saturating_sub(now_ms)
        .saturating_sub(DEADLINE_RESERVE.as_millis() as i64);
    if left <= 0 {
        return Err(PortError::Transient(format!(
            "{operation}: no time left before the invocation's deadline"
        )));
    }
    Ok(Duration::from_millis(left as u64))
}

/// The timeouts of one call that must end before `deadline_ms`: the
/// watcher's attempt and operation timeouts, each capped by the time left
/// (less [`DEADLINE_RESERVE`]). Apply with
/// `.customize().config_override(<service>::config::Builder::default().timeout_config(t))`.
pub fn call_timeouts(
    operation: &str,
    deadline_ms: i64,
    now_ms: i64,
) -> Result<TimeoutConfig, PortError> {
    let left = time_left(operation, deadline_ms, now_ms)?;
    Ok(TimeoutConfig::builder()
        .connect_timeout(ATTEMPT_TIMEOUT.min(left))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT.min(left))
        .operation_timeout(OPERATION_TIMEOUT.min(left))
        .build())
}

/// Run `call` but give up when the invocation's deadline (less
/// [`DEADLINE_RESERVE`]) comes first: a transient error naming the
/// operation. The belt to [`call_timeouts`]' braces, and the bound for
/// calls whose own timeouts are not the watcher's (a cached secret's fetch).
pub async fn before_deadline<T>(
    operation: &str,
    deadline_ms: i64,
    now_ms: i64,
    call: impl std::future::Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    let left = time_left(operation, deadline_ms, now_ms)?;
    match tokio::time::timeout(left, call).await {
        Ok(result) => result,
        Err(_) => Err(PortError::Transient(format!(
            "{operation}: no answer before the invocation's deadline"
        ))),
    }
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

    /// An endpoint that accepts every connection, reads, and never
    /// answers; its URL and the number of connections accepted. The
    /// listener stays bound for the test's life (no port reuse).
    pub(crate) async fn silent_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>)
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        (url, accepted)
    }

    /// An SDK config for `endpoint`: test credentials, `us-east-1`, the
    /// watcher's timeouts (as `load_watcher_config` sets them).
    pub(crate) async fn client_config(endpoint: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .timeout_config(watcher_timeouts())
            .load()
            .await
    }

    #[test]
    fn call_timeouts_are_capped_by_the_time_left() {
        let now = 1_000_000;
        let far = call_timeouts("Op", now + 60_000, now).unwrap();
        assert_eq!(far.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(far.operation_timeout(), Some(OPERATION_TIMEOUT));
        let near = call_timeouts("Op", now + 2_000, now).unwrap();
        assert_eq!(
            near.operation_attempt_timeout(),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(near.operation_timeout(), Some(Duration::from_millis(1_500)));
        let gone = call_timeouts("Op", now + 400, now).unwrap_err();
        assert!(gone.is_transient(), "{gone}");
        assert!(gone.to_string().contains("Op: no time left"), "{gone}");
    }

    #[tokio::test]
    async fn before_deadline_stops_a_call_that_never_ends() {
        let now = SystemClock.now_ms();
        let error = before_deadline(
            "Stall",
            now + 700,
            now,
            std::future::pending::<Result<(), PortError>>(),
        )
        .await
        .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(
            error.to_string().contains("Stall: no answer before"),
            "{error}"
        );
        let done =
            before_deadline("Quick", now + 60_000, now, async { Ok::<_, PortError>(7) }).await;
        assert_eq!(done, Ok(7));
    }

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
