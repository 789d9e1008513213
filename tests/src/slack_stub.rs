//! slack_stub
