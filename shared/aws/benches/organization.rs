//! The report's inventory over an organization of 2,000 accounts × 17
//! regions, against a KMS stand-in per account-region (no network, no
//! rate limit): how long the use case and the adapter take for 34,000
//! account-regions, and the calls made against the minimum.
//!
//! `cargo bench -p grantwatch-aws --features stand-in --bench organization`
//! (`GW_BENCH_ACCOUNTS` and `GW_BENCH_REGIONS` scale it down). Not run by
//! `cargo test`.

use grantwatch_aws::inventory::stand_in::{organization_report, OrganizationKms};
use grantwatch_aws::inventory::{RetryPolicy, LIST_GRANTS_LIMIT};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The 17 regions KMS is enabled in by default.
const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
];
const KEYS_PER_REGION: usize = 2;
const GRANTS_ON_ODD_KEYS: usize = 3;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let accounts = setting("GW_BENCH_ACCOUNTS", 2_000);
    let regions = setting("GW_BENCH_REGIONS", REGIONS.len()).min(REGIONS.len());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let org = Arc::new(OrganizationKms::new(KEYS_PER_REGION, GRANTS_ON_ODD_KEYS));
    let started = Instant::now();
    let report = runtime.block_on(organization_report(
        org.clone(),
        accounts,
        &REGIONS[..regions],
        RetryPolicy::default(),
    ))?;
    let elapsed = started.elapsed();

    let account_regions = accounts * regions;
    let grant_pages: usize = (0..KEYS_PER_REGION)
        .map(|k| org.grants_of(k).div_ceil(LIST_GRANTS_LIMIT as usize).max(1))
        .sum();
    let minimum = account_regions * (2 + KEYS_PER_REGION + grant_pages);
    let calls = org.list_keys_calls().len()
        + org.list_aliases.load(Ordering::SeqCst)
        + org.describe_key.load(Ordering::SeqCst)
        + org.list_grants.load(Ordering::SeqCst);
    let complete = report
        .coverage
        .account_regions
        .iter()
        .filter(|c| c.status == grantwatch_core::report::CoverageStatus::Complete)
        .count();
    println!("organization inventory (stand-in KMS, in-process)");
    println!("  accounts x regions      {accounts} x {regions} = {account_regions}");
    println!("  account-regions complete {complete}");
    println!(
        "  keys, grants            {}, {}",
        report.keys.len(),
        report.summary.grants
    );
    println!("  KMS calls / minimum     {calls} / {minimum}");
    println!("  time                    {:.2} s", elapsed.as_secs_f64());
    println!(
        "  account-regions per s   {:.0}",
        account_regions as f64 / elapsed.as_secs_f64()
    );
    if complete != account_regions || calls != minimum {
        return Err(format!(
            "{complete} of {account_regions} account-regions complete, {calls} calls for a minimum of {minimum}"
        )
        .into());
    }
    Ok(())
}
