//! Accounts x regions: STS AssumeRole into member accounts, AWS Organizations listing.
//!
//! [`AwsDirectory`] answers "which account am I" (GetCallerIdentity) and
//! "which accounts does the organization have" (ListAccounts, ACTIVE only).
//! [`MemberKmsClients`] hands the inventory a KMS client per account-region:
//! the process's own credentials in its own account, and in any other
//! account the credentials of `arn:<partition>:iam::<account>:role/<role>`
//! (with the ExternalId when configured), assumed once per account.
//! A role that cannot be assumed makes that account's account-regions
//! `access-denied` in the report's coverage.

use crate::inventory::{read_error, KmsClients};
use aws_config::SdkConfig;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::{Credentials, Region};
use grantwatch_core::ports::inventory::{AccountDirectory, AccountRegion, ReadError};
use grantwatch_core::ports::PortError;
use grantwatch_core::principal::partition_of_region;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// Default name of the read-only role in member accounts.
pub const DEFAULT_MEMBER_ROLE: &str = "grantwatch-report-reader";
/// Session name seen in the member accounts' CloudTrail.
pub const SESSION_NAME: &str = "grantwatch-report";

/// STS + Organizations.
pub struct AwsDirectory {
    pub sts: aws_sdk_sts::Client,
    pub organizations: aws_sdk_organizations::Client,
}

impl AccountDirectory for AwsDirectory {
    async fn this_account(&self) -> Result<String, PortError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| crate::sdk::classify("GetCallerIdentity", &e))?;
        out.account()
            .map(str::to_string)
            .ok_or_else(|| PortError::Permanent("GetCallerIdentity: no account".into()))
    }

    async fn organization_accounts(&self) -> Result<Vec<String>, PortError> {
        let mut accounts = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .organizations
                .list_accounts()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| crate::sdk::classify("ListAccounts", &e))?;
            accounts.extend(
                out.accounts()
                    .iter()
                    .filter(|a| is_active(a))
                    .filter_map(|a| a.id().map(str::to_string)),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(accounts)
    }
}

/// `State` (2025+) when given, else the older `Status`.
fn is_active(account: &aws_sdk_organizations::types::Account) -> bool {
    match account.state() {
        Some(state) => state.as_str() == "ACTIVE",
        None => account.status().is_some_and(|s| s.as_str() == "ACTIVE"),
    }
}

/// KMS clients per account-region, assuming the member role where needed.
pub struct MemberKmsClients {
    base: SdkConfig,
    sts: aws_sdk_sts::Client,
    home_account: String,
    role_name: String,
    external_id: Option<String>,
    /// One cell per account: accounts are assumed in parallel, and the
    /// callers of one account wait for its single AssumeRole.
    credentials: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<Assumed>>>>>,
    /// Clients with the expiry of the credentials baked in (none: home).
    clients: std::sync::Mutex<HashMap<AccountRegion, (aws_sdk_kms::Client, Option<SystemTime>)>>,
}

/// What AssumeRole gave for an account (a refusal is remembered too).
type Assumed = Result<Credentials, ReadError>;

/// Credentials this close to their expiry are assumed again (a warm
/// container keeps them across invocations; a report call must not start
/// with credentials about to lapse).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

fn fresh(expiry: Option<SystemTime>) -> bool {
    expiry.is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
}

impl MemberKmsClients {
    pub fn new(
        base: SdkConfig,
        sts: aws_sdk_sts::Client,
        home_account: impl Into<String>,
        role_name: impl Into<String>,
        external_id: Option<String>,
    ) -> Self {
        MemberKmsClients {
            base,
            sts,
            home_account: home_account.into(),
            role_name: role_name.into(),
            external_id: external_id.filter(|x| !x.is_empty()),
            credentials: std::sync::Mutex::new(HashMap::new()),
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

    /// The member role's credentials, assumed once per account and again
    /// shortly before they expire (a refusal is remembered too: every
    /// account-region there is access-denied). Only callers for the same
    /// account wait for each other.
    async fn member_credentials(&self, at: &AccountRegion) -> Result<Credentials, ReadError> {
        let cell = {
            let Ok(mut cells) = self.credentials.lock() else {
                return Err(ReadError::Failed(PortError::Permanent(
                    "the credentials cache is poisoned".to_string(),
                )));
            };
            cells.entry(at.account.clone()).or_default().clone()
        };
        let mut cache = cell.lock().await;
        match cache.as_ref() {
            Some(Ok(known)) if fresh(known.expiry()) => return Ok(known.clone()),
            Some(Err(refused)) => return Err(refused.clone()),
            _ => {}
        }
        let role_arn = self.role_arn(at);
        let result = self
            .sts
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(SESSION_NAME)
            .set_external_id(self.external_id.clone())
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|e| match read_error("AssumeRole", &e) {
                // Any refusal to hand out the role is access denied for the report.
                ReadError::Failed(p) if !p.is_transient() => {
                    ReadError::AccessDenied(format!("cannot assume {role_arn}: {p}"))
                }
                other => other,
            })
            .and_then(|out| {
                let c = out.credentials().ok_or_else(|| {
                    ReadError::AccessDenied(format!("AssumeRole {role_arn}: no credentials"))
                })?;
                let expiry = u64::try_from(c.expiration().secs())
                    .ok()
                    .map(|s| UNIX_EPOCH + Duration::from_secs(s));
                Ok(Credentials::new(
                    c.access_key_id(),
                    c.secret_access_key(),
                    Some(c.session_token().to_string()),
                    expiry,
                    "grantwatch-assume-role",
                ))
            });
        // Transient failures are not remembered: the next call tries again.
        if !matches!(
            &result,
            Err(ReadError::Failed(_)) | Err(ReadError::Throttled(_))
        ) {
            *cache = Some(result.clone());
        }
        result
    }
}

impl KmsClients for MemberKmsClients {
    async fn kms(&self, at: &AccountRegion) -> Result<aws_sdk_kms::Client, ReadError> {
        let cached = self
            .clients
            .lock()
            .ok()
            .and_then(|clients| clients.get(at).cloned());
        if let Some((client, expiry)) = cached {
            if fresh(expiry) {
                return Ok(client);
            }
        }
        // Retries are the inventory's own (rate-limited, counted).
        let mut builder = aws_sdk_kms::config::Builder::from(&self.base)
            .region(Region::new(at.region.clone()))
            .retry_config(RetryConfig::disabled());
        let mut expiry = None;
        if at.account != self.home_account {
            let credentials = self.member_credentials(at).await?;
            expiry = credentials.expiry();
            builder = builder.credentials_provider(credentials);
        }
        let client = aws_sdk_kms::Client::from_conf(builder.build());
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(at.clone(), (client.clone(), expiry));
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_organizations::operation::list_accounts::ListAccountsOutput;
    use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};
    use aws_sdk_sts::operation::assume_role::{AssumeRoleError, AssumeRoleOutput};
    use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    fn account(id: &str, state: Option<AccountState>, status: AccountStatus) -> Account {
        Account::builder()
            .id(id)
            .set_state(state)
            .status(status)
            .build()
    }

    #[tokio::test]
    async fn organization_accounts_are_every_active_account_on_every_page() {
        let list =
            mock!(aws_sdk_organizations::Client::list_accounts).then_compute_output(
                |req| match req.next_token() {
                    None => ListAccountsOutput::builder()
                        .accounts(account("111111111111", None, AccountStatus::Active))
                        .accounts(account(
                            "222222222222",
                            Some(AccountState::Suspended),
                            AccountStatus::Suspended,
                        ))
                        .next_token("p2")
                        .build(),
                    Some(_) => ListAccountsOutput::builder()
                        .accounts(account(
                            "333333333333",
                            Some(AccountState::Active),
                            AccountStatus::Active,
                        ))
                        .accounts(account(
                            "444444444444",
                            Some(AccountState::PendingClosure),
                            AccountStatus::Active,
                        ))
                        .build(),
                },
            );
        let dir = AwsDirectory {
            sts: mock_client!(
                aws_sdk_sts,
                RuleMode::MatchAny,
                &[] as &[&aws_smithy_mocks::Rule]
            ),
            organizations: mock_client!(aws_sdk_organizations, RuleMode::MatchAny, &[&list]),
        };
        let accounts = dir.organization_accounts().await.unwrap();
        assert_eq!(
            accounts,
            vec!["111111111111".to_string(), "333333333333".to_string()]
        );
        assert_eq!(list.num_calls(), 2);
    }

    #[tokio::test]
    async fn member_credentials_about_to_expire_are_assumed_again_per_account() {
        // Credentials that lapse in 2 minutes (inside REFRESH_BEFORE_EXPIRY).
        let soon = SystemTime::now() + Duration::from_secs(120);
        let soon = soon.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let assume = mock!(aws_sdk_sts::Client::assume_role).then_compute_response(move |_| {
            MockResponse::Output(
                AssumeRoleOutput::builder()
                    .credentials(
                        aws_sdk_sts::types::Credentials::builder()
                            .access_key_id("AKIA")
                            .secret_access_key("secret")
                            .session_token("token")
                            .expiration(aws_smithy_types::DateTime::from_secs(soon))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
        });
        let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[&assume]);
        let base = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        let clients = MemberKmsClients::new(base, sts, "111111111111", "reader", None);
        let member = AccountRegion::new("222222222222", "eu-west-1");
        clients.kms(&member).await.unwrap();
        clients.kms(&member).await.unwrap();
        assert_eq!(assume.num_calls(), 2, "not reused so close to expiry");
        // Each account has its own cell: another account is its own call.
        clients
            .kms(&AccountRegion::new("333333333333", "eu-west-1"))
            .await
            .unwrap();
        assert_eq!(assume.num_calls(), 3);
    }

    #[tokio::test]
    async fn member_roles_are_assumed_once_with_the_external_id_and_refusals_are_access_denied() {
        let assume = mock!(aws_sdk_sts::Client::assume_role).then_compute_response(|req| {
            assert_eq!(req.external_id(), Some("ext-123"));
            assert_eq!(req.role_session_name(), Some(SESSION_NAME));
            if req.role_arn() == Some("arn:aws:iam::333333333333:role/reader") {
                return MockResponse::Error(AssumeRoleError::generic(
                    ErrorMetadata::builder()
                        .code("AccessDenied")
                        .message("not authorized to perform sts:AssumeRole")
                        .build(),
                ));
            }
            MockResponse::Output(
                AssumeRoleOutput::builder()
                    .credentials(
                        aws_sdk_sts::types::Credentials::builder()
                            .access_key_id("AKIA")
                            .secret_access_key("secret")
                            .session_token("token")
                            .expiration(aws_smithy_types::DateTime::from_secs(4_000_000_000))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
        });
        let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[&assume]);
        let base = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        let clients =
            MemberKmsClients::new(base, sts, "111111111111", "reader", Some("ext-123".into()));
        // Home account: no AssumeRole.
        clients
            .kms(&AccountRegion::new("111111111111", "eu-west-1"))
            .await
            .unwrap();
        assert_eq!(assume.num_calls(), 0);
        // A member account, two regions: one AssumeRole.
        clients
            .kms(&AccountRegion::new("222222222222", "eu-west-1"))
            .await
            .unwrap();
        clients
            .kms(&AccountRegion::new("222222222222", "us-east-1"))
            .await
            .unwrap();
        assert_eq!(assume.num_calls(), 1);
        // A refusing account: access denied, remembered.
        for region in ["eu-west-1", "us-east-1"] {
            let err = clients
                .kms(&AccountRegion::new("333333333333", region))
                .await
                .unwrap_err();
            assert!(matches!(err, ReadError::AccessDenied(_)), "{err:?}");
        }
        assert_eq!(assume.num_calls(), 2);
        assert_eq!(
            clients.role_arn(&AccountRegion::new("444444444444", "cn-north-1")),
            "arn:aws-cn:iam::444444444444:role/reader"
        );
    }
}
