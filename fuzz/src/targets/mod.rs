//! The targets. Each panics when a property does not hold; input that is
//! not of the target's kind (not UTF-8 for a text target, not a report for
//! the report writers) is returned from early: only the parsers are fed
//! everything.

pub mod events;
pub mod render;
pub mod report;
pub mod rules;
