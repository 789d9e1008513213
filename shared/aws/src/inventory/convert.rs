//! KMS answers as domain values.

use aws_sdk_kms::operation::list_aliases::ListAliasesOutput;
use aws_sdk_kms::operation::list_grants::ListGrantsOutput;
use aws_sdk_kms::operation::list_keys::ListKeysOutput;
use aws_sdk_kms::operation::list_resource_tags::ListResourceTagsOutput;
use grantwatch_core::grant::{Constraints, GrantFacts, Operation};
use grantwatch_core::ports::inventory::{
    AccountRegion, AliasEntry, KeyDescription, KeyManager, KeyTag, ListedGrant, ListedKey, Page,
};
use grantwatch_core::principal::partition_of_region;
use std::collections::{BTreeMap, HashMap};

fn to_rfc3339(t: &aws_smithy_types::DateTime) -> Option<String> {
    t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()
}

fn sorted(map: Option<&HashMap<String, String>>) -> Option<BTreeMap<String, String>> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// A ListGrants entry as domain facts.
pub fn listed_grant(entry: &aws_sdk_kms::types::GrantListEntry) -> ListedGrant {
    let constraints = entry.constraints().map(|c| Constraints {
        encryption_context_equals: sorted(c.encryption_context_equals()),
        encryption_context_subset: sorted(c.encryption_context_subset()),
        source_arn: c.source_arn().map(str::to_string),
    });
    ListedGrant {
        grant_id: entry.grant_id().unwrap_or_default().to_string(),
        created: entry.creation_date().and_then(to_rfc3339),
        issuing_account: entry.issuing_account().map(str::to_string),
        facts: GrantFacts {
            grantee: entry.grantee_principal().map(str::to_string),
            grantee_service_principal: entry.grantee_service_principal().map(str::to_string),
            retiring_principal: entry.retiring_principal().map(str::to_string),
            retiring_service_principal: entry.retiring_service_principal().map(str::to_string),
            operations: entry
                .operations()
                .iter()
                .map(|op| Operation::parse(op.as_str()))
                .collect(),
            constraints,
            name: entry.name().filter(|n| !n.is_empty()).map(str::to_string),
        },
    }
}

/// DescribeKey's metadata as a domain description.
pub fn key_description(m: &aws_sdk_kms::types::KeyMetadata) -> KeyDescription {
    KeyDescription {
        key_id: m.key_id().to_string(),
        key_arn: m.arn().unwrap_or_default().to_string(),
        manager: m.key_manager().and_then(|k| match k.as_str() {
            "AWS" => Some(KeyManager::Aws),
            "CUSTOMER" => Some(KeyManager::Customer),
            _ => None,
        }),
        state: m.key_state().map(|s| s.as_str().to_string()),
        key_spec: m.key_spec().map(|s| s.as_str().to_string()),
        key_usage: m.key_usage().map(|s| s.as_str().to_string()),
        multi_region: m.multi_region(),
        description: m.description().map(str::to_string),
    }
}

/// Where the next page starts: KMS sometimes answers the last page with
/// an empty marker, or with a marker and `Truncated: false`.
fn next_marker(truncated: bool, next: Option<&str>) -> Option<String> {
    next.filter(|m| truncated && !m.is_empty())
        .map(str::to_string)
}

/// A page of a KMS listing as domain values.
pub(super) trait IntoPage {
    type Item;
    fn into_page(self, at: &AccountRegion) -> Page<Self::Item>;
}

impl IntoPage for ListKeysOutput {
    type Item = ListedKey;

    fn into_page(self, at: &AccountRegion) -> Page<ListedKey> {
        let items = self
            .keys()
            .iter()
            .filter_map(|k| {
                let key_id = k.key_id()?.to_string();
                let key_arn = k.key_arn().map(str::to_string).unwrap_or_else(|| {
                    format!(
                        "arn:{}:kms:{}:{}:key/{key_id}",
                        partition_of_region(&at.region),
                        at.region,
                        at.account
                    )
                });
                Some(ListedKey { key_id, key_arn })
            })
            .collect();
        Page {
            items,
            next_marker: next_marker(self.truncated(), self.next_marker()),
        }
    }
}

impl IntoPage for ListAliasesOutput {
    type Item = AliasEntry;

    fn into_page(self, _at: &AccountRegion) -> Page<AliasEntry> {
        let items = self
            .aliases()
            .iter()
            .filter_map(|a| {
                Some(AliasEntry {
                    alias_name: a.alias_name()?.to_string(),
                    target_key_id: a.target_key_id().map(str::to_string),
                })
            })
            .collect();
        Page {
            items,
            next_marker: next_marker(self.truncated(), self.next_marker()),
        }
    }
}

impl IntoPage for ListGrantsOutput {
    type Item = ListedGrant;

    fn into_page(self, _at: &AccountRegion) -> Page<ListedGrant> {
        Page {
            items: self.grants().iter().map(listed_grant).collect(),
            next_marker: next_marker(self.truncated(), self.next_marker()),
        }
    }
}

impl IntoPage for ListResourceTagsOutput {
    type Item = KeyTag;

    fn into_page(self, _at: &AccountRegion) -> Page<KeyTag> {
        Page {
            items: self
                .tags()
                .iter()
                .map(|t| KeyTag {
                    key: t.tag_key().to_string(),
                    value: t.tag_value().to_string(),
                })
                .collect(),
            next_marker: next_marker(self.truncated(), self.next_marker()),
        }
    }
}
