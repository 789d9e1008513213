//! Notifier and secret ports (SNS, Slack).
