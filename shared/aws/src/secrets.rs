//! Secrets Manager: the Slack webhook URL, fetched once per process.
