//! Use cases, generic over the ports: watch one event; build a report;
//! find what the watcher missed (reconcile).

pub mod fanout;
pub mod reconcile;
pub mod report;
pub mod watch;
