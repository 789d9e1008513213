//! grantwatch-aws: adapters that implement grantwatch-core's ports with the
//! AWS SDK and Slack's incoming webhook.

pub mod canary;
pub mod channels;
pub mod config;
pub mod directory;
pub mod eventbridge;
pub mod inventory;
pub mod ledger;
pub mod rules_source;
pub mod scope;
pub mod sdk;
pub mod secrets;
pub mod securityhub;
pub mod slack;
pub mod sns;
pub mod store;
pub mod trail;
