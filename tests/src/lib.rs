//! Test harness shared by the end-to-end tests and the demo: a moto server
//! on 127.0.0.1, a Lambda Runtime API that drives the compiled function
//! binaries, a stand-in for Slack's webhook, and the SAM stack deployed
//! into moto.

pub mod demo;
pub mod moto;
pub mod runtime_api;
pub mod securityhub;
pub mod slack_stub;
pub mod stack;
pub mod watcher_world;
