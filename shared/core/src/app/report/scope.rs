//! The report's scope: which accounts × regions, refused when outside
//! the configuration, and the order they are read in.

use super::{ReportError, ReportRequest};
use crate::ports::inventory::{AccountDirectory, AccountRegion, AccountSelection};
use crate::report::diff::PreviousReport;
use crate::report::model::{GapReason, ReportScope};
use std::collections::BTreeSet;

/// Resolve the request's accounts × regions.
pub async fn resolve_scope<D: AccountDirectory>(
    request: &ReportRequest,
    directory: &D,
) -> Result<ReportScope, ReportError> {
    let accounts = resolve_accounts(&request.accounts, directory).await?;
    let organization = request.accounts == AccountSelection::Organization;
    let mut regions: Vec<String> = request
        .regions
        .iter()
        .map(|r| r.trim().to_string())
        .collect();
    regions.retain(|r| !r.is_empty());
    regions.sort();
    regions.dedup();
    if accounts.is_empty() {
        return Err(ReportError::Scope("no accounts in scope".into()));
    }
    if regions.is_empty() {
        return Err(ReportError::Scope("no regions in scope".into()));
    }
    // Names only where the directory learnt them (listing the organization).
    let names = directory.account_names();
    let account_names = accounts
        .iter()
        .filter_map(|id| names.get(id).map(|name| (id.clone(), name.clone())))
        .collect();
    Ok(ReportScope {
        accounts,
        regions,
        organization,
        account_names,
    })
}

/// The accounts a selection names (trimmed, sorted, unique).
async fn resolve_accounts<D: AccountDirectory>(
    selection: &AccountSelection,
    directory: &D,
) -> Result<Vec<String>, ReportError> {
    let accounts = match selection {
        AccountSelection::This => vec![directory
            .this_account()
            .await
            .map_err(|e| ReportError::Scope(e.to_string()))?],
        AccountSelection::List(list) => list.clone(),
        AccountSelection::Organization => directory
            .organization_accounts()
            .await
            .map_err(|e| ReportError::Scope(e.to_string()))?,
    };
    let mut accounts: Vec<String> = accounts.into_iter().map(|a| a.trim().to_string()).collect();
    accounts.retain(|a| !a.is_empty());
    accounts.sort();
    accounts.dedup();
    Ok(accounts)
}

/// Rotate the account-regions so this run starts with the first one the
/// previous run was cut at by its deadline (where its cut block begins,
/// wrapping around): a scope too large for one run is then covered in
/// turns, and no account-region is cut every week. The cut ones are named
/// in the report's coverage (`deadline` gaps).
pub fn start_where_last_run_was_cut(
    targets: &mut [AccountRegion],
    previous: Option<&PreviousReport>,
) {
    let Some(previous) = previous else {
        return;
    };
    let cut = |at: &AccountRegion| {
        previous.coverage.gaps.iter().any(|g| {
            g.reason == GapReason::Deadline && g.account == at.account && g.region == at.region
        })
    };
    let n = targets.len();
    let block_start = (0..n).find(|&i| cut(&targets[i]) && !cut(&targets[(i + n - 1) % n]));
    if let Some(start) = block_start {
        targets.rotate_left(start);
    }
}

/// Refuse a request naming accounts outside the configured ones (the
/// directory answers for "this account" and the organization; KMS is not
/// called).
pub async fn refuse_out_of_scope<D: AccountDirectory>(
    request: &ReportRequest,
    configured: Option<&AccountSelection>,
    directory: &D,
) -> Result<(), ReportError> {
    let Some(configured) = configured else {
        return Ok(());
    };
    if request.accounts == *configured {
        return Ok(());
    }
    let allowed: BTreeSet<String> = resolve_accounts(configured, directory)
        .await?
        .into_iter()
        .collect();
    let outside: Vec<String> = resolve_accounts(&request.accounts, directory)
        .await?
        .into_iter()
        .filter(|a| !allowed.contains(a))
        .collect();
    if outside.is_empty() {
        Ok(())
    } else {
        Err(ReportError::ScopeRefused(outside))
    }
}
