//! Use cases, generic over the ports: watch one event; build a report.

pub mod report;
pub mod watch;
