//! CloudTrail / EventBridge / log-file input → [`GrantEvent`].
//!
//! Parsing is lenient: unknown fields, newer `eventVersion`s and unknown
//! operations are fine. A grant event missing what it needs is a
//! [`ParseError`] naming what is wrong; a record about something other than
//! grants is [`Parsed::NotAGrantEvent`], to be skipped and counted.

use crate::grant::GrantFacts;
use serde::{Deserialize, Serialize};

/// Which grant call this event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantAction {
    CreateGrant,
    RetireGrant,
    RevokeGrant,
}

impl GrantAction {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantAction::CreateGrant => "CreateGrant",
            GrantAction::RetireGrant => "RetireGrant",
            GrantAction::RevokeGrant => "RevokeGrant",
        }
    }

    pub fn from_event_name(name: &str) -> Option<GrantAction> {
        match name {
            "CreateGrant" => Some(GrantAction::CreateGrant),
            "RetireGrant" => Some(GrantAction::RetireGrant),
            "RevokeGrant" => Some(GrantAction::RevokeGrant),
            _ => None,
        }
    }

    pub fn is_removal(self) -> bool {
        !matches!(self, GrantAction::CreateGrant)
    }
}

/// Who made the call, and from where: CloudTrail's `userIdentity` plus the
/// request's source. The same shape is kept in the ledger as provenance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// `userIdentity.arn` (absent for some service identities).
    pub arn: Option<String>,
    /// `userIdentity.type`: IAMUser, AssumedRole, Root, AWSService, ...
    #[serde(rename = "type")]
    pub identity_type: Option<String>,
    /// `userIdentity.accountId`.
    pub account: Option<String>,
    /// `userIdentity.invokedBy`: a service DNS name or `AWS Internal`.
    pub invoked_by: Option<String>,
    /// `userIdentity.principalId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// For assumed roles: `sessionContext.sessionIssuer.arn` (the role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_issuer_arn: Option<String>,
    /// `sessionCredentialFromConsole == "true"`.
    #[serde(default)]
    pub from_console: bool,
    /// `sourceIPAddress`: an IP, a service DNS name, or `AWS Internal`.
    pub source_ip: Option<String>,
    /// `userAgent`, as given (untrusted).
    pub user_agent: Option<String>,
}

/// One grant call recorded by CloudTrail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEvent {
    /// CloudTrail `eventID` (idempotency key).
    pub event_id: String,
    pub action: GrantAction,
    /// `eventTime`, as given (RFC 3339).
    pub event_time: Option<String>,
    /// `recipientAccountId` (the key's account), else the caller's.
    pub account: Option<String>,
    pub region: Option<String>,
    /// `eventVersion`, as given.
    pub event_version: Option<String>,
    pub caller: Caller,
    /// The key as the request named it (key id, key ARN, alias name or
    /// alias ARN), else the response's or resources' key ARN.
    pub key: Option<String>,
    /// The key's ARN when known (response, resources) or derivable from a
    /// bare key id, region and account.
    pub key_arn: Option<String>,
    /// The grant id: response (CreateGrant), request (RevokeGrant, RetireGrant)
    /// or `additionalEventData.grantId` (RetireGrant by token). `None` when the
    /// call failed before a grant existed.
    pub grant_id: Option<String>,
    /// What the CreateGrant asked for. `None` for Retire/Revoke.
    pub grant: Option<GrantFacts>,
    /// `requestParameters.dryRun == true`.
    pub dry_run: bool,
    /// `errorCode` (AccessDenied, DryRunOperationException, ...).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// `requestParameters.grantTokens` was non-empty.
    pub used_grant_token: bool,
}

impl GrantEvent {
    pub fn succeeded(&self) -> bool {
        self.error_code.is_none()
    }
}

/// The outcome of parsing one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Grant(Box<GrantEvent>),
    /// A valid record about something else (e.g. `Decrypt`): skip it.
    NotAGrantEvent {
        event_name: Option<String>,
        event_source: Option<String>,
    },
}

/// What is wrong with an input. The message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("not a CloudTrail record, EventBridge event or CloudTrail log file: {0}")]
    UnrecognisedShape(String),
    #[error("{event_name} event {event_id}: {problem}")]
    BadGrantEvent {
        event_name: String,
        event_id: String,
        problem: String,
    },
    #[error("cannot read gzip input: {0}")]
    BadGzip(String),
    #[error("input too large: {0}")]
    TooLarge(String),
}
