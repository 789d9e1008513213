//! Small async traits the use cases depend on; the AWS adapters implement
//! them in `grantwatch-aws`, in-memory fakes implement them for tests.

pub mod canary;
pub mod clock;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod inventory;
pub mod ledger;
pub mod notify;

/// A port failure, classified so the caller knows whether a retry can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Throttling, a 5xx, a timeout, a dropped connection: try again.
    #[error("transient failure: {0}")]
    Transient(String),
    /// Configuration or permission problem: retrying will not help.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl PortError {
    pub fn is_transient(&self) -> bool {
        matches!(self, PortError::Transient(_))
    }
}
