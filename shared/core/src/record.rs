//! The ledger's record of a grant: who created it, and later who removed
//! it. Written by the watcher, read by the watcher (removal context) and
//! the report (provenance).

use crate::event::{Caller, GrantAction};
use crate::grant::GrantFacts;
use crate::verdict::Origin;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub key_arn: String,
    pub grant_id: String,
    pub account: Option<String>,
    pub region: Option<String>,
    /// The CreateGrant event that made it.
    pub created_event_id: String,
    pub created_at: Option<String>,
    pub created_by: Caller,
    pub origin: Origin,
    pub service: Option<String>,
    pub grant: GrantFacts,
    pub removal: Option<Removal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub action: GrantAction,
    pub event_id: String,
    pub at: Option<String>,
    pub by: Caller,
    pub origin: Origin,
}
