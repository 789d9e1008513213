//! Suppression and re-rating rules (TOML).

/// A parsed rules file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {}
