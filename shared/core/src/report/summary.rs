//! The report's summary for people: an SNS plain-text e-mail and a Slack
//! Block Kit message.
