//! What a grant allows: the facts shared by a CloudTrail `CreateGrant`
//! request and a `ListGrants` entry.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A grant operation. Unknown values are kept verbatim, never rejected:
/// AWS adds operations over time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Decrypt,
    Encrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
    ReEncryptFrom,
    ReEncryptTo,
    Sign,
    Verify,
    GetPublicKey,
    GenerateMac,
    VerifyMac,
    DeriveSharedSecret,
    CreateGrant,
    RetireGrant,
    DescribeKey,
    Unknown(String),
}

impl Operation {
    pub const KNOWN: [Operation; 17] = [
        Operation::Decrypt,
        Operation::Encrypt,
        Operation::GenerateDataKey,
        Operation::GenerateDataKeyWithoutPlaintext,
        Operation::GenerateDataKeyPair,
        Operation::GenerateDataKeyPairWithoutPlaintext,
        Operation::ReEncryptFrom,
        Operation::ReEncryptTo,
        Operation::Sign,
        Operation::Verify,
        Operation::GetPublicKey,
        Operation::GenerateMac,
        Operation::VerifyMac,
        Operation::DeriveSharedSecret,
        Operation::CreateGrant,
        Operation::RetireGrant,
        Operation::DescribeKey,
    ];

    pub fn parse(name: &str) -> Operation {
        Operation::KNOWN
            .iter()
            .find(|op| op.as_str() == name)
            .cloned()
            .unwrap_or_else(|| Operation::Unknown(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Operation::Decrypt => "Decrypt",
            Operation::Encrypt => "Encrypt",
            Operation::GenerateDataKey => "GenerateDataKey",
            Operation::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            Operation::GenerateDataKeyPair => "GenerateDataKeyPair",
            Operation::GenerateDataKeyPairWithoutPlaintext => "GenerateDataKeyPairWithoutPlaintext",
            Operation::ReEncryptFrom => "ReEncryptFrom",
            Operation::ReEncryptTo => "ReEncryptTo",
            Operation::Sign => "Sign",
            Operation::Verify => "Verify",
            Operation::GetPublicKey => "GetPublicKey",
            Operation::GenerateMac => "GenerateMac",
            Operation::VerifyMac => "VerifyMac",
            Operation::DeriveSharedSecret => "DeriveSharedSecret",
            Operation::CreateGrant => "CreateGrant",
            Operation::RetireGrant => "RetireGrant",
            Operation::DescribeKey => "DescribeKey",
            Operation::Unknown(name) => name,
        }
    }

    /// Operations that touch key material or data (everything but
    /// CreateGrant, RetireGrant, DescribeKey and GetPublicKey).
    pub fn is_data_operation(&self) -> bool {
        !matches!(
            self,
            Operation::CreateGrant
                | Operation::RetireGrant
                | Operation::DescribeKey
                | Operation::GetPublicKey
        )
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Operation::Unknown(_))
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(Operation::parse(&name))
    }
}

/// Grant constraints, in the shape the AWS API uses. Constraint *keys* are
/// case-insensitive in KMS; values are case-sensitive. Keys are stored as
/// given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraints {
    #[serde(
        rename = "EncryptionContextEquals",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub encryption_context_equals: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "EncryptionContextSubset",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub encryption_context_subset: Option<BTreeMap<String, String>>,
    /// 2026: the ARN of the resource a service-principal grantee acts for.
    #[serde(rename = "SourceArn", default, skip_serializing_if = "Option::is_none")]
    pub source_arn: Option<String>,
}

impl Constraints {
    /// No constraint restricts anything (an empty map counts as nothing).
    pub fn is_empty(&self) -> bool {
        self.encryption_context_equals
            .as_ref()
            .is_none_or(|m| m.is_empty())
            && self
                .encryption_context_subset
                .as_ref()
                .is_none_or(|m| m.is_empty())
            && self.source_arn.as_deref().is_none_or(str::is_empty)
    }

    /// Every encryption-context pair the grant names, Equals first.
    pub fn context_pairs(&self) -> impl Iterator<Item = (&String, &String)> {
        self.encryption_context_equals
            .iter()
            .flatten()
            .chain(self.encryption_context_subset.iter().flatten())
    }

    /// Look up an encryption-context value by key, ignoring the key's case
    /// (as KMS does).
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context_pairs()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// What a grant is and allows: the same facts whether read from a
/// `CreateGrant` request or from `ListGrants`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantFacts {
    /// Grantee principal (ARN, account id, unique id, service principal or
    /// `AWS Internal`), as given.
    pub grantee: Option<String>,
    /// 2026 `GranteeServicePrincipal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantee_service_principal: Option<String>,
    pub retiring_principal: Option<String>,
    /// 2026 `RetiringServicePrincipal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_service_principal: Option<String>,
    pub operations: Vec<Operation>,
    /// `None`: no constraints given. `Some(c)` with `c.is_empty()`: an empty
    /// constraint map was given (a service habit, and a finding for a person).
    pub constraints: Option<Constraints>,
    pub name: Option<String>,
}

impl GrantFacts {
    /// The principal that receives the permissions: the service principal
    /// when one is given, else the grantee.
    pub fn effective_grantee(&self) -> Option<&str> {
        self.grantee_service_principal
            .as_deref()
            .or(self.grantee.as_deref())
    }

    pub fn effective_retiring_principal(&self) -> Option<&str> {
        self.retiring_service_principal
            .as_deref()
            .or(self.retiring_principal.as_deref())
    }

    pub fn has_operation(&self, op: &Operation) -> bool {
        self.operations.contains(op)
    }
}

/// A grant that exists now, as `ListGrants` shows it, with its key's
/// context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingGrant {
    pub account: String,
    pub region: String,
    pub key_arn: String,
    /// `SYMMETRIC_DEFAULT`, `RSA_2048`, `HMAC_256`, ... when known.
    pub key_spec: Option<String>,
    pub grant_id: String,
    /// `CreationDate` (moto leaves it out).
    pub created: Option<String>,
    /// `IssuingAccount` (moto leaves it out).
    pub issuing_account: Option<String>,
    pub facts: GrantFacts,
}

/// What is wrong with an `aws kms list-grants` document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListGrantsError {
    #[error("Grants[{index}]: {problem}")]
    BadGrant { index: usize, problem: String },
    #[error("Grants is not a list")]
    NotAList,
}

/// One `ListGrants` entry as the CLI prints it (`aws kms list-grants`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedGrant {
    key_id: Option<String>,
    grant_id: Option<String>,
    name: Option<String>,
    creation_date: Option<serde_json::Value>,
    grantee_principal: Option<String>,
    grantee_service_principal: Option<String>,
    retiring_principal: Option<String>,
    retiring_service_principal: Option<String>,
    issuing_account: Option<String>,
    #[serde(default)]
    operations: Vec<Operation>,
    constraints: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `aws kms list-grants` output (`{"Grants": [...]}`) → standing grants,
/// the key (and its account and region) taken from each entry's `KeyId`
/// ARN. `None` when the document is not list-grants output.
pub fn parse_list_grants(
    document: &serde_json::Value,
) -> Option<Result<Vec<StandingGrant>, ListGrantsError>> {
    let grants = document.as_object()?.get("Grants")?;
    let Some(items) = grants.as_array() else {
        return Some(Err(ListGrantsError::NotAList));
    };
    Some(
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let bad = |problem: String| ListGrantsError::BadGrant { index, problem };
                let g: ListedGrant =
                    serde_json::from_value(item.clone()).map_err(|e| bad(e.to_string()))?;
                let key_arn = g
                    .key_id
                    .filter(|k| crate::principal::is_key_arn(k))
                    .ok_or_else(|| {
                        bad(
                            "KeyId is missing or not a key ARN (list-grants prints the key ARN)"
                                .to_string(),
                        )
                    })?;
                let (account, region) = crate::principal::Arn::parse(&key_arn)
                    .map(|a| (a.account.to_string(), a.region.to_string()))
                    .unwrap_or_default();
                let constraints = g.constraints.map(|map| {
                    let context = |field: &str| {
                        map.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(field))
                            .and_then(|(_, v)| v.as_object())
                            .map(|pairs| {
                                pairs
                                    .iter()
                                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                    .collect::<BTreeMap<_, _>>()
                            })
                    };
                    Constraints {
                        encryption_context_equals: context("EncryptionContextEquals"),
                        encryption_context_subset: context("EncryptionContextSubset"),
                        source_arn: map
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("SourceArn"))
                            .and_then(|(_, v)| v.as_str())
                            .map(str::to_string),
                    }
                });
                Ok(StandingGrant {
                    account,
                    region,
                    key_arn,
                    key_spec: None,
                    grant_id: g
                        .grant_id
                        .ok_or_else(|| bad("GrantId is missing".to_string()))?,
                    created: g.creation_date.map(|d| match d {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    }),
                    issuing_account: g.issuing_account,
                    facts: GrantFacts {
                        grantee: g.grantee_principal,
                        grantee_service_principal: g.grantee_service_principal,
                        retiring_principal: g.retiring_principal,
                        retiring_service_principal: g.retiring_service_principal,
                        operations: g.operations,
                        constraints,
                        name: g.name,
                    },
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod list_grants_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_grants_output_becomes_standing_grants() {
        // The ACM example output (AWS Certificate Manager user guide).
        let doc = json!({"Grants": [{
            "Operations": ["Decrypt"],
            "KeyId": "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "Name": "IssuedThroughACM",
            "RetiringPrincipal": "acm.us-west-2.amazonaws.com",
            "GranteePrincipal": "tlsconnectionmanager.amazonaws.com",
            "GrantId": "f020fe75197b93991dc8491d6f19dd3cebb24ee62277a05914386724f3d48758",
            "IssuingAccount": "arn:aws:iam::111122223333:root",
            "CreationDate": "2023-02-06T23:30:50Z",
            "Constraints": {"encryptionContextEquals": {"aws:acm:arn": "x"}}
        }]});
        let grants = parse_list_grants(&doc).unwrap().unwrap();
        assert_eq!(grants[0].account, "111122223333");
        assert_eq!(grants[0].region, "us-west-2");
        assert_eq!(grants[0].facts.operations, vec![Operation::Decrypt]);
        assert_eq!(
            grants[0]
                .facts
                .constraints
                .as_ref()
                .unwrap()
                .context_value("AWS:ACM:ARN"),
            Some("x")
        );
        assert!(parse_list_grants(&json!({"Records": []})).is_none());
        assert_eq!(
            parse_list_grants(&json!({"Grants": 3}))
                .unwrap()
                .unwrap_err(),
            ListGrantsError::NotAList
        );
        let e = parse_list_grants(&json!({"Grants": [{"KeyId": "alias/x", "GrantId": "g"}]}))
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("Grants[0]: KeyId"), "{e}");
    }
}
