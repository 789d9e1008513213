//! Secrets Manager: the Slack webhook URL, fetched once per execution
//! environment and cached after the first success (a failure is not
//! cached, so the next invocation tries again). [`SecretsManagerSource::refetch`]
//! bypasses the cache: the Slack notifier calls it once when Slack refuses
//! the webhook (401/403/404/410), so a rotated webhook works without a cold
//! start.
//!
//! The secret's `SecretString` is either the URL itself or a JSON object
//! with the URL under `url` or `webhook_url`. Each GetSecretValue is bounded
//! by the watcher's attempt and operation timeouts.

use crate::sdk::{self, classify};
use grantwatch_core::ports::notify::{Secret, SecretSource};
use grantwatch_core::ports::PortError;
use tokio::sync::Mutex;

pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    cached: Mutex<Option<Secret>>,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource {
            client,
            secret_id: secret_id.into(),
            cached: Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<Secret, PortError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .customize()
            .config_override(
                aws_sdk_secretsmanager::config::Builder::default()
                    .timeout_config(sdk::watcher_timeouts()),
            )
            .send()
            .await
            .map_err(|e| classify("GetSecretValue", &e))?;
        let text = output.secret_string().ok_or_else(|| {
            PortError::Permanent(format!(
                "secret {} has no SecretString (binary secrets are not supported)",
                self.secret_id
            ))
        })?;
        webhook_url_from_secret(text).map_err(|problem| {
            PortError::Permanent(format!("secret {}: {problem}", self.secret_id))
        })
    }

    /// Fetch the secret again, bypassing the cache, and cache the new value
    /// (a failure keeps the old one).
    pub async fn refetch(&self) -> Result<Secret, PortError> {
        let mut cached = self.cached.lock().await;
        let fresh = self.fetch().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

impl SecretSource for SecretsManagerSource {
    async fn slack_webhook_url(&self) -> Result<Secret, PortError> {
        let mut cached = self.cached.lock().await;
        if let Some(secret) = cached.as_ref() {
            return Ok(secret.clone());
        }
        let fresh = self.fetch().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

/// The webhook URL in a secret string: the URL itself, or JSON
/// `{"url": ...}` / `{"webhook_url": ...}`. Errors never quote the value.
pub fn webhook_url_from_secret(text: &str) -> Result<Secret, String> {
    let text = text.trim();
    let url = if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| "the secret looks like JSON but does not parse".to_string())?;
        ["url", "webhook_url"]
            .iter()
            .find_map(|name| value.get(name).and_then(serde_json::Value::as_str))
            .ok_or_else(|| "the JSON secret has no string `url` or `webhook_url`".to_string())?
            .trim()
            .to_string()
    } else {
        text.to_string()
    };
    validate_webhook_url(&url)?;
    Ok(Secret::new(url))
}

/// `https://...`, or `http://` to a loopback address (local tests only):
/// the URL is a credential and must not travel in clear text.
fn validate_webhook_url(url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| "the webhook URL is not a URL".to_string())?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        scheme => Err(format!("the webhook URL must use https, not {scheme}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::{
        GetSecretValueError, GetSecretValueOutput,
    };
    use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
    use aws_smithy_mocks::{mock, mock_client};

    const URL: &str = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";

    #[test]
    fn plain_and_json_secrets_give_the_url() {
        for text in [
            URL.to_string(),
            format!("  {URL}\n"),
            format!(r#"{{"url": "{URL}"}}"#),
            format!(r#"{{"webhook_url": "{URL}", "channel": "sec"}}"#),
        ] {
            assert_eq!(webhook_url_from_secret(&text).unwrap().expose(), URL);
        }
    }

    #[test]
    fn bad_secrets_are_refused_without_quoting_them() {
        for text in [
            "http://hooks.slack.com/services/T000/B000/XXXXSECRET",
            "not a url XXXXSECRET",
            r#"{"token": "XXXXSECRET"}"#,
            r#"{"url": XXXXSECRET"#,
        ] {
            let problem = webhook_url_from_secret(text).unwrap_err();
            assert!(!problem.contains("XXXXSECRET"), "{problem}");
        }
        assert!(webhook_url_from_secret("http://127.0.0.1:9/hook").is_ok());
    }

    #[tokio::test]
    async fn the_secret_is_fetched_once_and_failures_are_not_cached() {
        let missing = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .sequence()
            .error(|| {
                GetSecretValueError::ResourceNotFoundException(
                    ResourceNotFoundException::builder().message("nope").build(),
                )
            })
            .output(|| GetSecretValueOutput::builder().secret_string(URL).build())
            .build();
        let client = mock_client!(aws_sdk_secretsmanager, [&missing]);
        let source = SecretsManagerSource::new(client, "slack");
        let error = source.slack_webhook_url().await.unwrap_err();
        assert!(!error.is_transient());
        for _ in 0..3 {
            assert_eq!(source.slack_webhook_url().await.unwrap().expose(), URL);
        }
        assert_eq!(missing.num_calls(), 2);
        assert_eq!(
            format!("{:?}", source.slack_webhook_url().await.unwrap()),
            "Secret(<redacted>)"
        );
    }

    #[tokio::test]
    async fn refetch_bypasses_the_cache_and_caches_the_rotated_url() {
        const ROTATED: &str = "https://hooks.slack.com/services/T000/B000/ROTATED";
        let values = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .sequence()
            .output(|| GetSecretValueOutput::builder().secret_string(URL).build())
            .error(|| {
                GetSecretValueError::ResourceNotFoundException(
                    ResourceNotFoundException::builder().message("gone").build(),
                )
            })
            .output(|| {
                GetSecretValueOutput::builder()
                    .secret_string(ROTATED)
                    .build()
            })
            .build();
        let client = mock_client!(aws_sdk_secretsmanager, [&values]);
        let source = SecretsManagerSource::new(client, "slack");
        assert_eq!(source.slack_webhook_url().await.unwrap().expose(), URL);
        assert!(source.refetch().await.is_err());
        assert_eq!(
            source.slack_webhook_url().await.unwrap().expose(),
            URL,
            "a failed refetch keeps the cached value"
        );
        assert_eq!(source.refetch().await.unwrap().expose(), ROTATED);
        assert_eq!(source.slack_webhook_url().await.unwrap().expose(), ROTATED);
        assert_eq!(values.num_calls(), 3);
    }
}
