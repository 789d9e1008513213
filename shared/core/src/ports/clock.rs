//! Time, as the use cases need it: a clock (a fake in tests) and the
//! invocation's deadline. Adapters import these from here, never from a
//! use case.

use std::future::Future;

/// Time, as the use case needs it (a fake in tests).
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    fn sleep_ms(&self, ms: u64) -> impl Future<Output = ()> + Send;
}

/// An invocation's deadline, epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub i64);

impl Deadline {
    /// Milliseconds left at `now_ms` (0 once passed).
    pub fn remaining_ms(self, now_ms: i64) -> u64 {
        u64::try_from(self.0.saturating_sub(now_ms)).unwrap_or(0)
    }

    /// Epoch second of the deadline (rounded down).
    pub fn epoch_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_time_never_goes_negative() {
        assert_eq!(Deadline(10_000).remaining_ms(4_000), 6_000);
        assert_eq!(Deadline(10_000).remaining_ms(12_000), 0);
        assert_eq!(Deadline(10_999).epoch_seconds(), 10);
    }
}
