//! The watcher's channels are built by `grantwatch_aws::channels` (the
//! same code builds them for `grantwatch redrive`, `grantwatch reconcile`
//! and the report's daily reconcile); its settings and names are listed
//! there and in docs/alerts.md.

pub use grantwatch_aws::channels::ChannelSettings;

#[cfg(test)]
mod tests {
    use crate::settings::Settings;
    use grantwatch_aws::config::Env;
    use grantwatch_aws::trail::WatcherSettings;
    use std::collections::HashMap;

    #[test]
    fn the_watcher_and_the_replays_read_the_same_channels_from_the_same_environment() {
        let vars: HashMap<&str, &str> = HashMap::from([
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            ("LEDGER_TABLE", "ledger"),
            (
                "SLACK_WEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack",
            ),
            ("SLACK_ALLOWED_HOSTS", "relay.example.com"),
            ("CHATBOT_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:q"),
            ("EVENT_BUS_NAME", "security"),
            ("EVENT_BUS_MIN_SEVERITY", "high"),
            ("REDACT_ENCRYPTION_CONTEXT", "true"),
            ("SECURITY_HUB_ENABLED", "true"),
            ("SECURITY_HUB_MIN_SEVERITY", "high"),
            ("RUNBOOK_BASE_URL", "https://wiki.example.com/grantwatch"),
        ]);
        let get = |name: &str| vars.get(name).map(|v| v.to_string());
        let watcher = Settings::from_lookup(get).unwrap().channels;
        let replay = WatcherSettings::from_env(&Env::new(get)).unwrap().channels;
        assert_eq!(watcher, replay);
        assert_eq!(watcher.event_bus_name.as_deref(), Some("security"));
        assert!(watcher.redact_encryption_context);
        // Both build with ChannelSettings::build (main.rs, trail::watcher_deps).
    }
}
