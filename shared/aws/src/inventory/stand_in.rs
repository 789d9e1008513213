//! KMS stand-ins (aws-smithy-mocks) for the inventory's tests and the
//! organization bench (`benches/organization.rs`, feature `stand-in`).
// A stand-in answers what the test set up; a broken setup panics (tests only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{KmsClients, KmsInventory, RetryPolicy, LIST_GRANTS_LIMIT, LIST_TAGS_LIMIT};
use aws_sdk_kms::operation::describe_key::DescribeKeyOutput;
use aws_sdk_kms::operation::get_key_policy::{GetKeyPolicyError, GetKeyPolicyOutput};
use aws_sdk_kms::operation::list_aliases::ListAliasesOutput;
use aws_sdk_kms::operation::list_grants::ListGrantsOutput;
use aws_sdk_kms::operation::list_keys::ListKeysOutput;
use aws_sdk_kms::operation::list_resource_tags::{ListResourceTagsError, ListResourceTagsOutput};
use aws_sdk_kms::types::{
    AliasListEntry, GrantConstraints, GrantListEntry, GrantOperation, KeyListEntry, KeyManagerType,
    KeyMetadata, KeyState, Tag,
};
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use grantwatch_core::ports::inventory::{AccountRegion, ReadError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "eu-west-1";

/// A page of `total` items of which this marker's page is returned.
pub fn page_of(
    marker: Option<&str>,
    total: usize,
    size: usize,
) -> (std::ops::Range<usize>, Option<String>) {
    let start: usize = marker
        .and_then(|m| m.strip_prefix("m"))
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let end = (start + size).min(total);
    (start..end, (end < total).then(|| format!("m{end}")))
}

/// The default key policy's statements (administrators, users, and
/// CreateGrant only for AWS resources): not `create-grant-open`.
pub const DEFAULT_KEY_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
  {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
   "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
  {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
   "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleUserRole"},
   "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
   "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
]}"#;

/// A policy that lets a role call CreateGrant for anyone:
/// `create-grant-open`.
pub const OPEN_KEY_POLICY: &str = r#"{"Statement": [
  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ci-deployer"},
   "Action": "kms:CreateGrant", "Resource": "*"}
]}"#;

fn access_denied(operation: &str, key: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("AccessDeniedException")
        .message(format!(
            "User is not authorized to perform kms:{operation} on {key}"
        ))
        .build()
}

/// GetKeyPolicy: `open` keys have [`OPEN_KEY_POLICY`], `denied` keys are
/// AccessDenied, the others [`DEFAULT_KEY_POLICY`].
pub fn key_policy_rule(
    open: &'static [&'static str],
    denied: &'static [&'static str],
) -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_kms::Client::get_key_policy).then_compute_response(move |req| {
        assert_eq!(req.policy_name(), Some("default"));
        let key = req.key_id().unwrap_or_default();
        if denied.contains(&key) {
            return MockResponse::Error(GetKeyPolicyError::generic(access_denied(
                "GetKeyPolicy",
                key,
            )));
        }
        let policy = if open.contains(&key) {
            OPEN_KEY_POLICY
        } else {
            DEFAULT_KEY_POLICY
        };
        MockResponse::Output(GetKeyPolicyOutput::builder().policy(policy).build())
    })
}

/// ListResourceTags: every key has `env = prod-<key>` and `n` more tags
/// `t<i> = v<i>`, [`LIST_TAGS_LIMIT`] per page; `denied` keys are
/// AccessDenied.
pub fn tags_rule(n: usize, denied: &'static [&'static str]) -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_kms::Client::list_resource_tags).then_compute_response(move |req| {
        assert_eq!(req.limit(), Some(LIST_TAGS_LIMIT));
        let key = req.key_id().unwrap_or_default().to_string();
        if denied.contains(&key.as_str()) {
            return MockResponse::Error(ListResourceTagsError::generic(access_denied(
                "ListResourceTags",
                &key,
            )));
        }
        let (range, next) = page_of(req.marker(), n + 1, LIST_TAGS_LIMIT as usize);
        let tags = range
            .map(|i| match i {
                0 => Tag::builder()
                    .tag_key("env")
                    .tag_value(format!("prod-{key}")),
                i => Tag::builder()
                    .tag_key(format!("t{i}"))
                    .tag_value(format!("v{i}")),
            })
            .map(|t| t.build().unwrap())
            .collect();
        MockResponse::Output(
            ListResourceTagsOutput::builder()
                .set_tags(Some(tags))
                .truncated(next.is_some())
                .set_next_marker(next)
                .build(),
        )
    })
}

pub fn grant_entry(key: &str, i: usize) -> GrantListEntry {
    GrantListEntry::builder()
        .key_id(key)
        .grant_id(format!("{key}-g{i:05}"))
        .grantee_principal(format!("arn:aws:iam::{ACCOUNT}:role/app-{i}"))
        .retiring_principal("lambda.eu-west-1.amazonaws.com")
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::RetireGrant)
        .constraints(
            GrantConstraints::builder()
                .encryption_context_equals(
                    "aws:lambda:FunctionArn",
                    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:f{i}"),
                )
                .build(),
        )
        .build()
}

/// An organization's KMS, one stand-in client per account-region: each
/// has `KEYS_PER_REGION` keys, every second with 150 grants (2 pages),
/// the others none, and one alias. Every call is counted by operation.
#[derive(Default)]
pub struct OrganizationKms {
    keys_per_region: usize,
    grants_on_odd_keys: usize,
    clients: Mutex<HashMap<AccountRegion, aws_sdk_kms::Client>>,
    list_keys: Arc<Mutex<Vec<AccountRegion>>>,
    pub list_aliases: Arc<AtomicUsize>,
    pub describe_key: Arc<AtomicUsize>,
    pub list_grants: Arc<AtomicUsize>,
    pub get_key_policy: Arc<AtomicUsize>,
    pub list_resource_tags: Arc<AtomicUsize>,
}

fn grants_of(key: usize, grants_on_odd_keys: usize) -> usize {
    if key % 2 == 1 {
        grants_on_odd_keys
    } else {
        0
    }
}

impl OrganizationKms {
    /// `keys_per_region` keys in every account-region; the odd ones have
    /// `grants_on_odd_keys` grants, the others none.
    pub fn new(keys_per_region: usize, grants_on_odd_keys: usize) -> OrganizationKms {
        OrganizationKms {
            keys_per_region,
            grants_on_odd_keys,
            ..OrganizationKms::default()
        }
    }

    pub fn grants_of(&self, key: usize) -> usize {
        grants_of(key, self.grants_on_odd_keys)
    }

    /// The account-regions ListKeys was called in, one entry per call.
    pub fn list_keys_calls(&self) -> Vec<AccountRegion> {
        self.list_keys.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn client_for(&self, at: &AccountRegion) -> aws_sdk_kms::Client {
        let arn = {
            let at = at.clone();
            move |i: usize| format!("arn:aws:kms:{}:{}:key/k{i:04}", at.region, at.account)
        };
        let (seen, here) = (self.list_keys.clone(), at.clone());
        let keys_per_region = self.keys_per_region;
        let keys_arn = arn.clone();
        let keys = mock!(aws_sdk_kms::Client::list_keys).then_compute_output(move |_| {
            seen.lock().unwrap().push(here.clone());
            ListKeysOutput::builder()
                .set_keys(Some(
                    (0..keys_per_region)
                        .map(|i| {
                            KeyListEntry::builder()
                                .key_id(format!("k{i:04}"))
                                .key_arn(keys_arn(i))
                                .build()
                        })
                        .collect(),
                ))
                .truncated(false)
                .build()
        });
        let count = self.describe_key.clone();
        let describe = mock!(aws_sdk_kms::Client::describe_key).then_compute_output(move |req| {
            count.fetch_add(1, Ordering::SeqCst);
            let id = req.key_id().unwrap_or_default().to_string();
            let i: usize = id.trim_start_matches('k').parse().unwrap_or(0);
            DescribeKeyOutput::builder()
                .key_metadata(
                    KeyMetadata::builder()
                        .key_id(&id)
                        .arn(arn(i))
                        .key_manager(KeyManagerType::Customer)
                        .key_state(KeyState::Enabled)
                        .build()
                        .unwrap(),
                )
                .build()
        });
        let count = self.list_aliases.clone();
        let aliases = mock!(aws_sdk_kms::Client::list_aliases).then_compute_output(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
            ListAliasesOutput::builder()
                .aliases(
                    AliasListEntry::builder()
                        .alias_name("alias/app")
                        .target_key_id("k0001")
                        .build(),
                )
                .truncated(false)
                .build()
        });
        let count = self.list_grants.clone();
        let grants_on_odd_keys = self.grants_on_odd_keys;
        let grants = mock!(aws_sdk_kms::Client::list_grants).then_compute_output(move |req| {
            count.fetch_add(1, Ordering::SeqCst);
            let key = req.key_id().unwrap_or_default().to_string();
            let i: usize = key.trim_start_matches('k').parse().unwrap_or(0);
            let (range, next) = page_of(
                req.marker(),
                grants_of(i, grants_on_odd_keys),
                LIST_GRANTS_LIMIT as usize,
            );
            ListGrantsOutput::builder()
                .set_grants(Some(range.map(|g| grant_entry(&key, g)).collect()))
                .truncated(next.is_some())
                .set_next_marker(next)
                .build()
        });
        let count = self.get_key_policy.clone();
        let policy = mock!(aws_sdk_kms::Client::get_key_policy).then_compute_output(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
            GetKeyPolicyOutput::builder()
                .policy(DEFAULT_KEY_POLICY)
                .build()
        });
        let count = self.list_resource_tags.clone();
        let tags = mock!(aws_sdk_kms::Client::list_resource_tags).then_compute_output(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
            ListResourceTagsOutput::builder()
                .tags(
                    Tag::builder()
                        .tag_key("env")
                        .tag_value("prod")
                        .build()
                        .unwrap(),
                )
                .truncated(false)
                .build()
        });
        mock_client!(
            aws_sdk_kms,
            RuleMode::MatchAny,
            &[&keys, &describe, &aliases, &grants, &policy, &tags],
            |c| c.retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        )
    }
}

impl KmsClients for Arc<OrganizationKms> {
    async fn kms(&self, at: &AccountRegion) -> Result<aws_sdk_kms::Client, ReadError> {
        let mut clients = self.clients.lock().unwrap();
        Ok(clients
            .entry(at.clone())
            .or_insert_with(|| self.client_for(at))
            .clone())
    }
}

/// The report of an organization of `accounts` accounts (ids from
/// 100000000000) over `regions`, every account-region answered by `org`
/// at once and no rate limit worth the name: what runs is the use case and
/// the adapter. Shared by the scaled-organization test and the bench.
pub async fn organization_report(
    org: Arc<OrganizationKms>,
    accounts: usize,
    regions: &[&str],
    retry: RetryPolicy,
) -> Result<grantwatch_core::report::Report, grantwatch_core::app::report::ReportError> {
    use grantwatch_core::app::report::{
        build_report, NoDeadline, Quiet, ReportDeps, ReportOptions, ReportRequest,
    };
    use grantwatch_core::ports::inventory::fake::{FakeDirectory, MemoryStore};
    use grantwatch_core::ports::inventory::{AccountSelection, NoProvenance};
    let inventory = KmsInventory::new(org, 10_000.0, retry);
    let ids: Vec<String> = (0..accounts)
        .map(|a| format!("{:012}", 100_000_000_000 + a))
        .collect();
    let policy = grantwatch_core::judge::Policy::new(time::macros::date!(2026 - 11 - 28));
    let options = ReportOptions::default();
    let directory = FakeDirectory {
        this_account: ids.first().cloned().unwrap_or_default(),
        organization: ids,
    };
    let store = MemoryStore::default();
    let deps = ReportDeps {
        inventory: &inventory,
        provenance: &NoProvenance,
        store: &store,
        directory: &directory,
        policy: &policy,
        options: &options,
        deadline: &NoDeadline,
        progress: &Quiet,
    };
    let request = ReportRequest {
        accounts: AccountSelection::Organization,
        regions: regions.iter().map(|r| r.to_string()).collect(),
    };
    build_report(&request, &deps, "2026-11-28T06:00:00Z").await
}
