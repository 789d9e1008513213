//! Member accounts: STS AssumeRole for the report's KMS reads (the
//! accounts themselves come from [`crate::directory`]).
//!
//! [`MemberKmsClients`] hands the inventory a KMS client per account-region:
//! the process's own credentials in its own account, and in any other
//! account the credentials of `arn:<partition>:iam::<account>:role/<role>`
//! (with the ExternalId when configured), through aws-config's
//! `AssumeRoleProvider`: assumed once per account, refreshed by the SDK.
//! A role that cannot be assumed makes that account's account-regions
//! `access-denied` in the report's coverage.

use crate::inventory::{read_error, KmsClients};
use aws_config::identity::IdentityCache;
use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::{Region, SharedIdentityCache};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_async::time::SharedTimeSource;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use grantwatch_core::ports::inventory::{AccountRegion, ReadError};
use grantwatch_core::ports::PortError;
use grantwatch_core::principal::partition_of_region;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Default name of the read-only role in member accounts.
pub const DEFAULT_MEMBER_ROLE: &str = "grantwatch-report-reader";
/// Session name seen in the member accounts' CloudTrail.
pub const SESSION_NAME: &str = "grantwatch-report";

/// KMS clients per account-region, assuming the member role where needed.
///
/// Each member account has its own [`AssumeRoleProvider`] and its own
/// identity cache, shared by that account's regional clients: the SDK
/// caches the credentials and assumes the role again
/// [`REFRESH_BEFORE_EXPIRY`] before they lapse. Accounts never wait for
/// each other; callers for the same account wait for its first AssumeRole.
pub struct MemberKmsClients {
    base: SdkConfig,
    home_account: String,
    role_name: String,
    external_id: Option<String>,
    members: std::sync::Mutex<HashMap<String, Arc<OnceCell<Member>>>>,
    clients: std::sync::Mutex<HashMap<AccountRegion, aws_sdk_kms::Client>>,
}

/// A member account's role (or the refusal to hand it out, remembered:
/// every account-region there is access-denied).
type Member = Result<MemberRole, ReadError>;

#[derive(Clone)]
struct MemberRole {
    credentials: SharedCredentialsProvider,
    cache: SharedIdentityCache,
}

/// Credentials this close to their expiry are assumed again (a warm
/// container keeps them across invocations; a report call must not start
/// with credentials about to lapse).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
/// How long assumed credentials last.
pub const SESSION_LENGTH: Duration = Duration::from_secs(3600);

impl MemberKmsClients {
    /// Member accounts' KMS clients through `role_name` (aws-config's
    /// [`AssumeRoleProvider`], one per account, its STS client from `base`).
    pub fn assuming(
        base: SdkConfig,
        home_account: impl Into<String>,
        role_name: impl Into<String>,
        external_id: Option<String>,
    ) -> Self {
        // AssumeRoleProvider needs a time source; a loaded config has one.
        let base = match base.time_source() {
            Some(_) => base,
            None => base
                .into_builder()
                .time_source(SharedTimeSource::default())
                .build(),
        };
        MemberKmsClients {
            base,
            home_account: home_account.into(),
            role_name: role_name.into(),
            external_id: external_id.filter(|x| !x.is_empty()),
            members: std::sync::Mutex::new(HashMap::new()),
            clients: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn role_arn(&self, at: &AccountRegion) -> String {
        format!(
            "arn:{}:iam::{}:role/{}",
            partition_of_region(&at.region),
            at.account,
            self.role_name
        )
    }

    /// The account's role, set up on first use. Its first credentials are
    /// fetched here so that a refusal is known before any KMS call (and
    /// remembered); they are handed to the SDK's cache, so this costs no
    /// extra AssumeRole. Transient failures are not remembered.
    async fn member(&self, at: &AccountRegion) -> Member {
        let cell = {
            let Ok(mut members) = self.members.lock() else {
                return Err(ReadError::Failed(PortError::Permanent(
                    "the member roles cache is poisoned".to_string(),
                )));
            };
            members.entry(at.account.clone()).or_default().clone()
        };
        let role_arn = self.role_arn(at);
        cell.get_or_try_init(|| async {
            let mut builder = AssumeRoleProvider::builder(role_arn.clone())
                .session_name(SESSION_NAME)
                .session_length(SESSION_LENGTH)
                .configure(&self.base);
            if let Some(external_id) = &self.external_id {
                builder = builder.external_id(external_id);
            }
            let provider = builder.build().await;
            match provider.provide_credentials().await {
                Ok(first) => Ok(Ok(MemberRole {
                    credentials: SharedCredentialsProvider::new(FirstThenAssume {
                        first: std::sync::Mutex::new(Some(first)),
                        role: provider,
                    }),
                    cache: IdentityCache::lazy()
                        .buffer_time(REFRESH_BEFORE_EXPIRY)
                        .build(),
                })),
                Err(e) => match assume_role_error(&role_arn, &e) {
                    refused @ ReadError::AccessDenied(_) => Ok(Err(refused)),
                    transient => Err(transient),
                },
            }
        })
        .await
        .and_then(|member| member.clone())
    }
}

/// The member role's provider: the credentials fetched when the account
/// was first used, then AssumeRole whenever the SDK's cache asks again.
#[derive(Debug)]
struct FirstThenAssume {
    first: std::sync::Mutex<Option<Credentials>>,
    role: AssumeRoleProvider,
}

impl ProvideCredentials for FirstThenAssume {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        match self.first.lock().ok().and_then(|mut first| first.take()) {
            Some(first) => future::ProvideCredentials::ready(Ok(first)),
            None => self.role.provide_credentials(),
        }
    }
}

/// Why AssumeRole gave no credentials: any refusal to hand out the role
/// is access denied for the report; throttling and transient failures
/// stay what they are (tried again on the next call).
fn assume_role_error(role_arn: &str, error: &CredentialsError) -> ReadError {
    let sts = std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>());
    let read = match (sts, error) {
        (Some(sts), _) => read_error("AssumeRole", sts),
        (None, CredentialsError::InvalidConfiguration(_)) => {
            ReadError::Failed(PortError::Permanent(DisplayErrorContext(error).to_string()))
        }
        (None, _) => {
            ReadError::Failed(PortError::Transient(DisplayErrorContext(error).to_string()))
        }
    };
    match read {
        ReadError::AccessDenied(why) => {
            ReadError::AccessDenied(format!("cannot assume {role_arn}: {why}"))
        }
        ReadError::Failed(p) if !p.is_transient() => {
            ReadError::AccessDenied(format!("cannot assume {role_arn}: {p}"))
        }
        other => other,
    }
}

impl KmsClients for MemberKmsClients {
    async fn kms(&self, at: &AccountRegion) -> Result<aws_sdk_kms::Client, ReadError> {
        let cached = self
            .clients
            .lock()
            .ok()
            .and_then(|clients| clients.get(at).cloned());
        if let Some(client) = cached {
            return Ok(client);
        }
        // Retries are the inventory's own (rate-limited, counted).
        let mut builder = aws_sdk_kms::config::Builder::from(&self.base)
            .region(Region::new(at.region.clone()))
            .retry_config(RetryConfig::disabled());
        if at.account != self.home_account {
            let role = self.member(at).await?;
            // `set_credentials_provider` keeps the provider's cache partition
            // (`credentials_provider` would wrap it in a new one per client).
            builder.set_credentials_provider(Some(role.credentials));
            builder.set_identity_cache(role.cache);
        }
        let client = aws_sdk_kms::Client::from_conf(builder.build());
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(at.clone(), client.clone());
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::http::{
        http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_types::body::SdkBody;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// STS and KMS behind one fake connection, through the real SDK
    /// clients: AssumeRole answers credentials lapsing `lifetime` from now
    /// (account 333333333333 refuses, as a role without the right trust or
    /// ExternalId does); KMS ListKeys answers no keys.
    #[derive(Debug, Clone, Default)]
    struct FakeAws {
        lifetime: Duration,
        assume_bodies: Arc<Mutex<Vec<String>>>,
        kms_calls: Arc<AtomicUsize>,
    }

    impl FakeAws {
        fn new(lifetime: Duration) -> FakeAws {
            FakeAws {
                lifetime,
                ..FakeAws::default()
            }
        }

        fn assume_calls(&self) -> usize {
            self.assume_bodies.lock().unwrap().len()
        }

        fn answer(&self, body: String) -> HttpResponse {
            if !body.contains("Action=AssumeRole") {
                self.kms_calls.fetch_add(1, Ordering::SeqCst);
                return response(
                    200,
                    "application/x-amz-json-1.1",
                    r#"{"Keys":[],"Truncated":false}"#.into(),
                );
            }
            let refused = body.contains("333333333333");
            let mut bodies = self.assume_bodies.lock().unwrap();
            // Account 555555555555: STS is briefly unavailable on the first try.
            let unavailable =
                body.contains("555555555555") && !bodies.iter().any(|b| b.contains("555555555555"));
            bodies.push(body);
            if unavailable {
                return response(
                    503,
                    "text/xml",
                    "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>\
                    <Message>try again</Message></Error><RequestId>r</RequestId></ErrorResponse>"
                        .into(),
                );
            }
            if refused {
                return response(403, "text/xml", "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
                    <Message>not authorized to perform sts:AssumeRole</Message></Error><RequestId>r</RequestId></ErrorResponse>".into());
            }
            let expiry =
                aws_smithy_types::DateTime::from(std::time::SystemTime::now() + self.lifetime)
                    .fmt(aws_smithy_types::date_time::Format::DateTime)
                    .unwrap();
            response(200, "text/xml", format!(
                "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>AKIAMEMBER</AccessKeyId>\
                 <SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken>\
                 <Expiration>{expiry}</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>"
            ))
        }

        fn config(&self) -> SdkConfig {
            let fake = self.clone();
            SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                // A failure reaches MemberKmsClients on the first try.
                .retry_config(RetryConfig::disabled())
                .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                    "AKIAHOME", "secret", None, None, "home",
                )))
                .http_client(http_client_fn(move |_, _| {
                    SharedHttpConnector::new(fake.clone())
                }))
                .build()
        }
    }

    fn response(status: u16, content_type: &str, body: String) -> HttpResponse {
        let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
        response
            .headers_mut()
            .insert("content-type", content_type.to_string());
        response
    }

    impl HttpConnector for FakeAws {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let body =
                String::from_utf8_lossy(request.body().bytes().unwrap_or_default()).into_owned();
            HttpConnectorFuture::ready(Ok(self.answer(body)))
        }
    }

    async fn list_keys(clients: &MemberKmsClients, account: &str, region: &str) {
        let kms = clients
            .kms(&AccountRegion::new(account, region))
            .await
            .unwrap();
        kms.list_keys().send().await.unwrap();
    }

    #[tokio::test]
    async fn member_credentials_about_to_expire_are_assumed_again_by_the_sdk_cache() {
        // Credentials that lapse in 2 minutes (inside REFRESH_BEFORE_EXPIRY).
        let aws = FakeAws::new(Duration::from_secs(120));
        let clients = MemberKmsClients::assuming(aws.config(), "111111111111", "reader", None);
        list_keys(&clients, "222222222222", "eu-west-1").await;
        assert_eq!(
            aws.assume_calls(),
            1,
            "the first credentials serve the first call"
        );
        list_keys(&clients, "222222222222", "eu-west-1").await;
        assert_eq!(aws.assume_calls(), 2, "not reused so close to expiry");
        // Another account has its own role and cache.
        list_keys(&clients, "444444444444", "eu-west-1").await;
        assert_eq!(aws.assume_calls(), 3);
        assert_eq!(aws.kms_calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn member_roles_are_assumed_once_with_the_external_id_and_refusals_are_access_denied() {
        let aws = FakeAws::new(Duration::from_secs(3600));
        let clients = MemberKmsClients::assuming(
            aws.config(),
            "111111111111",
            "reader",
            Some("ext-123".into()),
        );
        // Home account: no AssumeRole.
        list_keys(&clients, "111111111111", "eu-west-1").await;
        assert_eq!(aws.assume_calls(), 0);
        // A member account, two regions, several calls: one AssumeRole.
        for _ in 0..3 {
            for region in ["eu-west-1", "us-east-1"] {
                list_keys(&clients, "222222222222", region).await;
            }
        }
        assert_eq!(aws.assume_calls(), 1);
        assert_eq!(aws.kms_calls.load(Ordering::SeqCst), 7);
        let body = aws.assume_bodies.lock().unwrap()[0].clone();
        for field in [
            "RoleArn=arn%3Aaws%3Aiam%3A%3A222222222222%3Arole%2Freader",
            "ExternalId=ext-123",
            "RoleSessionName=grantwatch-report",
            "DurationSeconds=3600",
        ] {
            assert!(body.contains(field), "{field} not in {body}");
        }
        // A refusing account: access denied before any KMS call, remembered.
        for region in ["eu-west-1", "us-east-1"] {
            let err = clients
                .kms(&AccountRegion::new("333333333333", region))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, ReadError::AccessDenied(m) if m.contains("cannot assume arn:aws:iam::333333333333:role/reader")),
                "{err:?}"
            );
        }
        assert_eq!(aws.assume_calls(), 2);
        assert_eq!(aws.kms_calls.load(Ordering::SeqCst), 7);
        // A transient failure is not remembered: the next call assumes again.
        let unavailable = AccountRegion::new("555555555555", "eu-west-1");
        let err = clients.kms(&unavailable).await.unwrap_err();
        assert!(
            matches!(&err, ReadError::Failed(p) if p.is_transient()),
            "{err:?}"
        );
        list_keys(&clients, "555555555555", "eu-west-1").await;
        assert_eq!(aws.assume_calls(), 4);
        assert_eq!(
            clients.role_arn(&AccountRegion::new("444444444444", "cn-north-1")),
            "arn:aws-cn:iam::444444444444:role/reader"
        );
    }
}
