//! Retries: throttling and transient failures, with exponential backoff,
//! inside the deadline; errors mapped to the report's coverage reasons.

use super::{KmsClients, KmsInventory, RateLimiter};
use crate::sdk::classify;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use grantwatch_core::ports::inventory::ReadError;
use std::future::Future;
use std::time::Duration;

/// How throttling and transient failures are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl<C: KmsClients> KmsInventory<C> {
    /// Run `call` until it succeeds, fails for good, the attempts run out
    /// or the deadline comes; `limiter` (if any) is waited for before every
    /// attempt. `call` applies the config override it is given (the
    /// attempt's timeouts) with `.customize().config_override(..)`.
    pub(super) async fn with_retries<T, E, F, Fut>(
        &self,
        operation: &str,
        limiter: Option<&RateLimiter>,
        call: F,
    ) -> Result<T, ReadError>
    where
        F: Fn(aws_sdk_kms::config::Builder) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        loop {
            if let Some(limiter) = limiter {
                limiter.acquire(self.clock.as_ref()).await;
            }
            let timeouts = self.timeouts(operation)?;
            let config = aws_sdk_kms::config::Builder::default().timeout_config(timeouts);
            let error = match call(config).await {
                Ok(output) => return Ok(output),
                Err(e) => read_error(operation, &e),
            };
            let retryable = matches!(&error, ReadError::Throttled(_))
                || matches!(&error, ReadError::Failed(p) if p.is_transient());
            if !retryable || attempt >= self.retry.max_attempts {
                return Err(error);
            }
            tracing::debug!(operation, attempt, problem = %error, "retrying KMS call");
            let clock = self.clock.as_ref();
            clock.sleep_until(clock.now() + jitter(backoff)).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
            attempt += 1;
        }
    }
}

/// Between half and all of `d`, varied by the clock's nanoseconds (enough
/// to keep concurrent account-regions from retrying in step).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    d.mul_f64(fraction)
}

/// Map a KMS error to the coverage reason it stands for.
pub fn read_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> ReadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    };
    let text = || classify(operation, error).to_string();
    match code {
        Some("AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation") => {
            ReadError::AccessDenied(text())
        }
        Some(
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "LimitExceededException",
        ) => ReadError::Throttled(text()),
        Some("NotFoundException") => ReadError::NotFound(text()),
        Some("KMSInvalidStateException") => ReadError::InvalidState(text()),
        _ => ReadError::Failed(classify(operation, error)),
    }
}
