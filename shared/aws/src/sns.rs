//! SNS notifier.
