//! Which account am I, and which accounts does the organization have: STS
//! GetCallerIdentity and Organizations ListAccounts (ACTIVE only). Its own
//! module so a function that only lists the organization (the watcher's
//! `TRUSTED_ACCOUNTS=ORG`) does not link the member-role code of `scope`.

use grantwatch_core::ports::inventory::AccountDirectory;
use grantwatch_core::ports::PortError;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// STS + Organizations. The names of the accounts the organization listed
/// are kept for the report (no call of their own).
pub struct AwsDirectory {
    sts: aws_sdk_sts::Client,
    organizations: aws_sdk_organizations::Client,
    names: Mutex<BTreeMap<String, String>>,
}

impl AwsDirectory {
    pub fn new(sts: aws_sdk_sts::Client, organizations: aws_sdk_organizations::Client) -> Self {
        AwsDirectory {
            sts,
            organizations,
            names: Mutex::new(BTreeMap::new()),
        }
    }
}

impl AccountDirectory for AwsDirectory {
    async fn this_account(&self) -> Result<String, PortError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| crate::sdk::classify("GetCallerIdentity", &e))?;
        out.account()
            .map(str::to_string)
            .ok_or_else(|| PortError::Permanent("GetCallerIdentity: no account".into()))
    }

    async fn organization_accounts(&self) -> Result<Vec<String>, PortError> {
        // The SDK's paginator: one ListAccounts per page, no deadline to check
        // between pages (an organization lists in a few calls).
        let pages = self
            .organizations
            .list_accounts()
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| crate::sdk::classify("ListAccounts", &e))?;
        let active: Vec<_> = pages
            .iter()
            .flat_map(|page| page.accounts())
            .filter(|a| is_active(a))
            .collect();
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        for account in &active {
            if let (Some(id), Some(name)) = (account.id(), account.name()) {
                names.insert(id.to_string(), name.to_string());
            }
        }
        Ok(active
            .iter()
            .filter_map(|a| a.id().map(str::to_string))
            .collect())
    }

    fn account_names(&self) -> BTreeMap<String, String> {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `State` (2025+) when given, else the older `Status`.
fn is_active(account: &aws_sdk_organizations::types::Account) -> bool {
    match account.state() {
        Some(state) => state.as_str() == "ACTIVE",
        None => account.status().is_some_and(|s| s.as_str() == "ACTIVE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_organizations::operation::list_accounts::ListAccountsOutput;
    use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn account(id: &str, state: Option<AccountState>, status: AccountStatus) -> Account {
        Account::builder()
            .id(id)
            .name(format!("name of {id}"))
            .set_state(state)
            .status(status)
            .build()
    }

    #[tokio::test]
    async fn organization_accounts_are_every_active_account_on_every_page() {
        let list =
            mock!(aws_sdk_organizations::Client::list_accounts).then_compute_output(
                |req| match req.next_token() {
                    None => ListAccountsOutput::builder()
                        .accounts(account("111111111111", None, AccountStatus::Active))
                        .accounts(account(
                            "222222222222",
                            Some(AccountState::Suspended),
                            AccountStatus::Suspended,
                        ))
                        .next_token("p2")
                        .build(),
                    Some(_) => ListAccountsOutput::builder()
                        .accounts(account(
                            "333333333333",
                            Some(AccountState::Active),
                            AccountStatus::Active,
                        ))
                        .accounts(account(
                            "444444444444",
                            Some(AccountState::PendingClosure),
                            AccountStatus::Active,
                        ))
                        .build(),
                },
            );
        let dir = AwsDirectory::new(
            mock_client!(
                aws_sdk_sts,
                RuleMode::MatchAny,
                &[] as &[&aws_smithy_mocks::Rule]
            ),
            mock_client!(aws_sdk_organizations, RuleMode::MatchAny, &[&list]),
        );
        assert!(
            dir.account_names().is_empty(),
            "nothing known before listing"
        );
        let accounts = dir.organization_accounts().await.unwrap();
        assert_eq!(
            accounts,
            vec!["111111111111".to_string(), "333333333333".to_string()]
        );
        assert_eq!(list.num_calls(), 2);
        // The active accounts' names, learnt on the way: no call of their own.
        assert_eq!(
            dir.account_names(),
            BTreeMap::from([
                (
                    "111111111111".to_string(),
                    "name of 111111111111".to_string()
                ),
                (
                    "333333333333".to_string(),
                    "name of 333333333333".to_string()
                ),
            ])
        );
        assert_eq!(list.num_calls(), 2);
    }
}
