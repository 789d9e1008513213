//! Value parsers shared by the subcommands' flags (one wording each).

use grantwatch_aws::config::{resolve_trust_zone, Env};
use grantwatch_aws::directory::AwsDirectory;
use grantwatch_core::assess::DEFAULT_GRANT_COUNT_THRESHOLD;
use grantwatch_core::ports::inventory::AccountDirectory;
use grantwatch_core::rules::RuleSet;
use grantwatch_core::trust::{TrustSetting, TrustZone};
use grantwatch_core::verdict::Severity;
use std::path::PathBuf;

/// `--min-severity` and the like: `info`, `low`, `medium`, `high`, `critical`.
pub fn severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

/// `--since`, `--until`, `--today`: `YYYY-MM-DD`.
pub fn date(s: &str) -> Result<time::Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format).map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

/// `--trusted-accounts` / `TRUSTED_ACCOUNTS`: account ids or `ORG`.
pub fn trusted_accounts(s: &str) -> Result<TrustSetting, String> {
    TrustSetting::parse(s).map_err(|e| e.to_string())
}

/// How every command that judges grants judges them: the same flags and
/// variables as the Lambdas' settings (docs/classify.md), so the watcher,
/// the report and each command agree on one grant.
#[derive(clap::Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Suppression / re-rating rules (TOML, see docs/classify.md).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Alert threshold: grants at or above it get `alert: true`.
    #[arg(long, env = "MIN_ALERT_SEVERITY", value_name = "SEVERITY", default_value = "medium", value_parser = severity)]
    pub min_severity: Severity,
    /// The trust zone: account ids (comma-separated) whose cross-account
    /// grants and keys rate lower, others higher; or `ORG`, the
    /// organization's accounts (needs Organizations read access: the
    /// management or a delegated-admin account; elsewhere the zone is unset).
    #[arg(long, env = "TRUSTED_ACCOUNTS", value_name = "ACCOUNTS|ORG", default_value = "", value_parser = trusted_accounts)]
    pub trusted_accounts: TrustSetting,
    /// `grant-count-high` from this many grants on one key (quota: 50,000).
    #[arg(long, env = "GRANT_COUNT_THRESHOLD", value_name = "N", default_value_t = DEFAULT_GRANT_COUNT_THRESHOLD, value_parser = grant_count)]
    pub grant_count_threshold: usize,
}

/// `--grant-count-threshold`: read as the Lambdas read
/// `GRANT_COUNT_THRESHOLD` (from 1 to the 50,000 grants a key may hold).
fn grant_count(s: &str) -> Result<usize, String> {
    Env::new(|_: &str| Some(s.to_string()))
        .grant_count_threshold()
        .map_err(|e| e.problem)
}

impl PolicyArgs {
    /// The rules file, parsed; none given → no rules. The error names the
    /// file and the rule at fault (the caller exits 2).
    pub fn rules(&self) -> Result<RuleSet, String> {
        let Some(path) = &self.rules else {
            return Ok(RuleSet::default());
        };
        std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| RuleSet::parse_toml(&text).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The trust zone without AWS (classify): `ORG` cannot be listed
    /// offline, so it is unset, with a warning on stderr.
    pub fn offline_trust_zone(&self, command: &str) -> TrustZone {
        match &self.trusted_accounts {
            TrustSetting::Unset => TrustZone::Unset,
            TrustSetting::Accounts(accounts) => TrustZone::Accounts(accounts.clone()),
            TrustSetting::Org => {
                eprintln!("{command}: TRUSTED_ACCOUNTS=ORG needs AWS Organizations, which {command} does not read: judging without a trust zone (list the account ids instead)");
                TrustZone::Unset
            }
        }
    }

    /// The trust zone, `ORG` listed through `directory` once; when it
    /// cannot be listed the zone is unset (default severities) and stderr
    /// says why.
    pub async fn trust_zone(&self, command: &str, directory: &impl AccountDirectory) -> TrustZone {
        let (zone, error) = resolve_trust_zone(&self.trusted_accounts, directory).await;
        if let Some(error) = error {
            eprintln!("{command}: {error}");
        }
        zone
    }

    /// [`Self::trust_zone`] with the caller's credentials (`ORG`: AWS
    /// Organizations `ListAccounts`).
    pub async fn aws_trust_zone(&self, command: &str, config: &aws_config::SdkConfig) -> TrustZone {
        let directory = AwsDirectory::new(
            aws_sdk_sts::Client::new(config),
            aws_sdk_organizations::Client::new(config),
        );
        self.trust_zone(command, &directory).await
    }
}
