//! The trust zone: the accounts a cross-account grant or a foreign key may
//! belong to without being an intruder. Set with `TRUSTED_ACCOUNTS` (the
//! same name for the watcher, the report and the CLI): a comma- or
//! space-separated list of account ids, or `ORG` (the organization's
//! accounts, listed by the adapter that can read AWS Organizations; from an
//! account that is neither the management nor a delegated-admin account
//! the list cannot be read, and the zone stays unset: cross-account
//! findings keep their default severity).

use crate::principal::is_account_id;
use std::collections::BTreeSet;

/// Which accounts are trusted. `Unset` (the default) judges every other
/// account as "not known to be trusted" without calling it hostile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrustZone {
    #[default]
    Unset,
    /// These accounts (the organization's, once resolved, or a list).
    Accounts(BTreeSet<String>),
}

/// What `TRUSTED_ACCOUNTS` says, before `ORG` is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustSetting {
    Unset,
    Org,
    Accounts(BTreeSet<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("TRUSTED_ACCOUNTS: {0:?} is not a 12-digit account id (use account ids or ORG)")]
    NotAnAccount(String),
}

impl TrustSetting {
    /// Parse `TRUSTED_ACCOUNTS`: empty → unset, `ORG` (any case) → the
    /// organization, else account ids separated by commas or spaces.
    pub fn parse(value: &str) -> Result<TrustSetting, TrustError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(TrustSetting::Unset);
        }
        if value.eq_ignore_ascii_case("org") {
            return Ok(TrustSetting::Org);
        }
        let mut accounts = BTreeSet::new();
        for item in value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            if !is_account_id(item) {
                return Err(TrustError::NotAnAccount(item.to_string()));
            }
            accounts.insert(item.to_string());
        }
        Ok(TrustSetting::Accounts(accounts))
    }
}

/// Where an account sits relative to the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Inside,
    Outside,
    /// No zone configured.
    Unknown,
}

impl TrustZone {
    pub fn from_accounts<I: IntoIterator<Item = S>, S: Into<String>>(accounts: I) -> TrustZone {
        TrustZone::Accounts(accounts.into_iter().map(Into::into).collect())
    }

    pub fn membership(&self, account: &str) -> Membership {
        match self {
            TrustZone::Unset => Membership::Unknown,
            TrustZone::Accounts(set) if set.contains(account) => Membership::Inside,
            TrustZone::Accounts(_) => Membership::Outside,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_the_setting() {
        assert_eq!(TrustSetting::parse(" ").unwrap(), TrustSetting::Unset);
        assert_eq!(TrustSetting::parse("org").unwrap(), TrustSetting::Org);
        assert_eq!(
            TrustSetting::parse("111122223333, 444455556666 ").unwrap(),
            TrustSetting::Accounts(["111122223333".to_string(), "444455556666".to_string()].into())
        );
        assert!(matches!(
            TrustSetting::parse("111122223333,acme"),
            Err(TrustError::NotAnAccount(a)) if a == "acme"
        ));
    }

    #[test]
    fn membership() {
        let zone = TrustZone::from_accounts(["111122223333"]);
        assert_eq!(zone.membership("111122223333"), Membership::Inside);
        assert_eq!(zone.membership("444455556666"), Membership::Outside);
        assert_eq!(
            TrustZone::Unset.membership("444455556666"),
            Membership::Unknown
        );
    }
}
