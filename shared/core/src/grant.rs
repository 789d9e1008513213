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
