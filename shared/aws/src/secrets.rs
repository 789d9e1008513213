//! Secrets Manager: the Slack webhook URL, fetched at most once per
//! execution environment (cached after the first success; a failure is not
//! cached, so the next invocation tries again).
//!
//! The secret's `SecretString` is either the URL itself or a JSON object
//! with the URL under `url` or `webhook_url`.

use crate::sdk::classify;
use grantwatch_core::ports::notify::{Secret, SecretSource};
use grantwatch_core::ports::PortError;
use tokio::sync::OnceCell;

pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    cached: OnceCell<Secret>,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource {
            client,
            secret_id: secret_id.into(),
            cached: OnceCell::new(),
        }
    }

    async fn fetch(&self) -> Result<Secret, PortError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
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
}

impl SecretSource for SecretsManagerSource {
    async fn slack_webhook_url(&self) -> Result<Secret, PortError> {
        self.cached.get_or_try_init(|| self.fetch()).await.cloned()
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
}
