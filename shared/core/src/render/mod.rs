//! Rendering verdicts for people: Slack Block Kit, SNS (subject, e-mail
//! body, attributes) and terminal text. Escaping and limits live here, once.
//!
//! The stable API other crates call:
//! - [`slack::alert`]`(&Verdict) -> serde_json::Value` (or
//!   [`slack::alert_with`] and [`links::LinkSettings`] for the runbook base URL) and
//!   [`slack::digest`]`(&[Verdict], window: &str) -> Value`: webhook
//!   payloads `{text, blocks}`;
//! - [`sns::alert`]`(&Verdict) -> SnsMessage` and
//!   [`sns::digest`]`(&[Verdict], window: &str) -> SnsMessage`;
//! - [`report`]: the weekly report's summary as a notice
//!   ([`report::ReportNotice`]): e-mail, Slack and Q Developer;
//! - [`text::slack_payload_as_text`]`(&Value) -> String` and
//!   [`text::sns_as_text`]`(&SnsMessage) -> String` for terminals;
//! - [`describe`]: words for principals, operations, constraints, the
//!   headline and summary of a verdict; [`commands`]: the AWS CLI commands
//!   to inspect and revoke.
//!
//! `window` is a phrase that completes "N KMS grant alerts …", e.g.
//! `"in the last 60 s"` or `"between 18:40 and 18:41 UTC"`.

pub mod asff;
pub mod attack;
pub mod chatbot;
pub mod commands;
pub mod describe;
pub mod eventbridge;
pub mod links;
pub mod mrkdwn;
pub mod ocsf;
pub mod plain;
pub mod redact;
pub mod report;
pub mod slack;
pub mod sns;
pub mod standing;
pub mod tally;
pub mod text;

pub use sns::SnsMessage;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod runbooks;
#[cfg(test)]
pub(crate) mod testkit;
// The Block Kit and SNS checks, for the fuzz targets too (grantwatch-fuzz).
#[cfg(any(test, feature = "fakes"))]
pub mod tests_support;
