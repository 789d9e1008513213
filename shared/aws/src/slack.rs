//! Slack incoming-webhook notifier (reqwest + rustls).
