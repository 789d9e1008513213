//! Service vs manual vs unknown, with evidence.

use crate::verdict::Origin;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginVerdict {
    pub origin: Origin,
    /// The service, when `origin` is `Service` (lambda, ebs, rds, ...).
    pub service: Option<String>,
    /// Each signal used, in words.
    pub evidence: Vec<String>,
}

impl OriginVerdict {
    pub fn unknown() -> Self {
        OriginVerdict {
            origin: Origin::Unknown,
            service: None,
            evidence: Vec::new(),
        }
    }
}
