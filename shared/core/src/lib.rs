//! grantwatch-core: the pure domain of grantwatch.
//!
//! A CloudTrail grant event and a ListGrants entry both become the same
//! [`grant::GrantFacts`]; one classifier ([`origin`]) and one assessor
//! ([`assess`]) turn those facts into a verdict ([`judge`]). Nothing here
//! talks to AWS or needs an async runtime; adapters live in `grantwatch-aws`.

pub mod app;
pub mod assess;
pub mod correlate;
pub mod emf;
pub mod event;
pub mod grant;
pub mod judge;
pub mod logs;
pub mod origin;
pub mod ports;
pub mod posture;
pub mod principal;
pub mod record;
pub mod render;
pub mod report;
pub mod rules;
pub mod tamper;
pub mod trust;
pub mod verdict;
