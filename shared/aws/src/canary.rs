//! The canary grant's adapters: its bookkeeping in the ledger table
//! ([`DynamoCanaryBook`]) and the KMS calls that make and retire it
//! ([`KmsCanary`]). See `grantwatch_core::ports::canary`.
//!
//! One item per run, in the ledger table beside the ledger's own items:
//!
//! | pk       | sk              | attributes |
//! |----------|-----------------|------------|
//! | `CANARY` | `RUN#<run id>`  | `key_arn`, `started_at`, `grant_id`, `problem`, `created_seen_at`, `retired_seen_at`, `settled` (`completed`/`missed`), `settled_why`, `expires_at` |
//!
//! Each attribute is written by its own conditional update, so the two legs
//! and the settlement never overwrite each other; a run settles once.

use crate::config::{bad, ConfigError, Env};
use crate::sdk::classify;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::types::GrantOperation;
use grantwatch_core::ports::canary::{
    BoxFuture, Canary, CanaryBook, CanaryCheck, CanaryKms, CanaryLeg, CanaryRun, CanarySettled,
    DEFAULT_CANARY_BOUND_SECONDS,
};
use grantwatch_core::ports::PortError;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// The watcher's canary settings: `CANARY_KEY_ARN` (unset or empty: no
/// canary), `CANARY_PRINCIPAL_ARN` (the watcher's own role: grantee and
/// retiring principal of the canary grant; required with the key) and
/// `CANARY_BOUND_MINUTES` (default 30).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanarySettings {
    pub key_arn: String,
    pub principal: String,
    pub bound_seconds: i64,
}

impl CanarySettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<Option<CanarySettings>, ConfigError> {
        let Some(key_arn) = env.optional("CANARY_KEY_ARN") else {
            return Ok(None);
        };
        if !(key_arn.starts_with("arn:") && key_arn.contains(":key/")) {
            return Err(bad(
                "CANARY_KEY_ARN",
                format!("{key_arn:?} is not a KMS key ARN"),
            ));
        }
        let principal = env.optional("CANARY_PRINCIPAL_ARN").ok_or_else(|| {
            bad(
                "CANARY_PRINCIPAL_ARN",
                "required with CANARY_KEY_ARN: the role the canary grant is for (the watcher's own)",
            )
        })?;
        if !principal.starts_with("arn:") {
            return Err(bad(
                "CANARY_PRINCIPAL_ARN",
                format!("{principal:?} is not an ARN"),
            ));
        }
        let default_minutes = (DEFAULT_CANARY_BOUND_SECONDS / 60) as u64;
        let minutes = env.number("CANARY_BOUND_MINUTES", default_minutes, 5, 1440)?;
        Ok(Some(CanarySettings {
            key_arn,
            principal,
            bound_seconds: minutes as i64 * 60,
        }))
    }

    /// The watcher's canary: the book in the ledger table, KMS calls with
    /// `config`'s timeouts (one client per process).
    pub fn canary(
        &self,
        config: &aws_config::SdkConfig,
        ledger_table: &str,
        retention_days: u32,
    ) -> Canary {
        Canary {
            key_arn: self.key_arn.clone(),
            principal: self.principal.clone(),
            bound_seconds: self.bound_seconds,
            book: std::sync::Arc::new(DynamoCanaryBook::new(
                aws_sdk_dynamodb::Client::new(config),
                ledger_table,
                retention_days,
            )),
            kms: std::sync::Arc::new(KmsCanary::new(aws_sdk_kms::Client::new(config))),
        }
    }
}

const PK: &str = "CANARY";

/// Log what a heartbeat did with the canary: a missed run or a bookkeeping
/// failure at error level (an alarm counts them too), the rest at info.
pub fn log_check(check: &CanaryCheck) {
    if let Some(run) = &check.started {
        tracing::info!(run = %run, "canary round trip started");
    }
    for run in &check.completed {
        tracing::info!(run = %run, "canary completed: both CloudTrail events reached the watcher");
    }
    for (run, why) in &check.missed {
        tracing::error!(run = %run, problem = %why, "canary missed: the grant events did not reach the watcher in time");
    }
    if let Some(problem) = &check.problem {
        tracing::error!(problem = %problem, "canary bookkeeping failed (checked again on the next heartbeat)");
    }
}

/// The canary bookkeeping in the ledger table.
pub struct DynamoCanaryBook {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention_seconds: i64,
}

impl DynamoCanaryBook {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        retention_days: u32,
    ) -> Self {
        DynamoCanaryBook {
            client,
            table: table.into(),
            retention_seconds: i64::from(retention_days) * 86_400,
        }
    }

    fn key(run_id: &str) -> (AttributeValue, AttributeValue) {
        (s(PK), s(format!("RUN#{run_id}")))
    }

    /// One conditional update of a run that must exist: `Ok(false)` when
    /// `condition` (beyond existence) failed.
    async fn update(
        &self,
        run_id: &str,
        expression: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, PortError> {
        let (pk, sk) = Self::key(run_id);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .update_expression(expression)
            .condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                // Which condition failed: the run's absence is an error.
                match self.get(run_id).await? {
                    Some(_) => Ok(false),
                    None => Err(PortError::Permanent(format!("no canary run {run_id}"))),
                }
            }
            Err(error) => Err(classify("UpdateItem", &error)),
        }
    }

    async fn get(&self, run_id: &str) -> Result<Option<CanaryRun>, PortError> {
        let (pk, sk) = Self::key(run_id);
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        output.item.as_ref().map(run_of).transpose()
    }

    /// Every run kept (one a day plus the doctor's, for the retention
    /// period: a few hundred small items at most).
    async fn all(&self) -> Result<Vec<CanaryRun>, PortError> {
        let mut runs = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(PK))
                .expression_attribute_values(":prefix", s("RUN#"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", &e))?;
            for item in output.items.unwrap_or_default() {
                runs.push(run_of(&item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        runs.sort_by_key(|run| run.started_at);
        Ok(runs)
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn run_of(item: &Item) -> Result<CanaryRun, PortError> {
    let corrupt = |what: &str| PortError::Permanent(format!("canary run item without {what}"));
    let run_id = text(item, "sk")
        .and_then(|sk| sk.strip_prefix("RUN#").map(str::to_string))
        .ok_or_else(|| corrupt("a RUN# sort key"))?;
    let settled = match text(item, "settled").as_deref() {
        None => None,
        Some("completed") => Some(CanarySettled::Completed),
        Some(_) => Some(CanarySettled::Missed(
            text(item, "settled_why").unwrap_or_default(),
        )),
    };
    Ok(CanaryRun {
        run_id,
        key_arn: text(item, "key_arn").ok_or_else(|| corrupt("key_arn"))?,
        started_at: number(item, "started_at").ok_or_else(|| corrupt("started_at"))?,
        grant_id: text(item, "grant_id"),
        problem: text(item, "problem"),
        created_seen_at: number(item, "created_seen_at"),
        retired_seen_at: number(item, "retired_seen_at"),
        settled,
    })
}

impl CanaryBook for DynamoCanaryBook {
    fn start_run<'a>(&'a self, run: &'a CanaryRun) -> BoxFuture<'a, Result<bool, PortError>> {
        Box::pin(async move {
            // UpdateItem creates the item (the watcher's role has no PutItem).
            let (pk, sk) = Self::key(&run.run_id);
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .update_expression(
                    "SET key_arn = :key, started_at = :started, expires_at = :expires",
                )
                .condition_expression("attribute_not_exists(pk)")
                .expression_attribute_values(":key", s(&run.key_arn))
                .expression_attribute_values(":started", n(run.started_at))
                .expression_attribute_values(":expires", n(run.started_at + self.retention_seconds))
                .send()
                .await;
            match result {
                Ok(_) => Ok(true),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
                {
                    Ok(false)
                }
                Err(error) => Err(classify("UpdateItem", &error)),
            }
        })
    }

    fn set_grant<'a>(
        &'a self,
        run_id: &'a str,
        grant_id: Option<&'a str>,
        problem: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let mut set = Vec::new();
            let mut remove = Vec::new();
            let mut values = Vec::new();
            for (name, placeholder, value) in [
                ("grant_id", ":grant", grant_id),
                ("problem", ":problem", problem),
            ] {
                match value {
                    Some(value) => {
                        set.push(format!("{name} = {placeholder}"));
                        values.push((placeholder, s(value)));
                    }
                    None => remove.push(name),
                }
            }
            let mut expression = String::new();
            if !set.is_empty() {
                expression.push_str(&format!("SET {}", set.join(", ")));
            }
            if !remove.is_empty() {
                expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
            }
            self.update(run_id, expression.trim(), "attribute_exists(pk)", values)
                .await
                .map(|_| ())
        })
    }

    fn run_of_grant<'a>(
        &'a self,
        key_arn: &'a str,
        grant_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CanaryRun>, PortError>> {
        Box::pin(async move {
            Ok(self
                .all()
                .await?
                .into_iter()
                .find(|run| run.key_arn == key_arn && run.grant_id.as_deref() == Some(grant_id)))
        })
    }

    fn get_run<'a>(
        &'a self,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CanaryRun>, PortError>> {
        Box::pin(self.get(run_id))
    }

    fn mark_seen<'a>(
        &'a self,
        run_id: &'a str,
        leg: CanaryLeg,
        at: i64,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        let expression = match leg {
            CanaryLeg::Created => "SET created_seen_at = if_not_exists(created_seen_at, :at)",
            CanaryLeg::Retired => "SET retired_seen_at = if_not_exists(retired_seen_at, :at)",
        };
        Box::pin(async move {
            self.update(
                run_id,
                expression,
                "attribute_exists(pk)",
                vec![(":at", n(at))],
            )
            .await
            .map(|_| ())
        })
    }

    fn open_runs(&self) -> BoxFuture<'_, Result<Vec<CanaryRun>, PortError>> {
        Box::pin(async move {
            let mut runs = self.all().await?;
            runs.retain(|run| run.settled.is_none());
            Ok(runs)
        })
    }

    fn settle<'a>(
        &'a self,
        run_id: &'a str,
        settled: &'a CanarySettled,
    ) -> BoxFuture<'a, Result<bool, PortError>> {
        Box::pin(async move {
            let (outcome, why) = match settled {
                CanarySettled::Completed => ("completed", String::new()),
                CanarySettled::Missed(why) => ("missed", why.clone()),
            };
            self.update(
                run_id,
                "SET settled = :outcome, settled_why = :why",
                "attribute_exists(pk) AND attribute_not_exists(settled)",
                vec![(":outcome", s(outcome)), (":why", s(why))],
            )
            .await
        })
    }
}

/// Makes and retires the canary grant with KMS.
pub struct KmsCanary {
    client: aws_sdk_kms::Client,
}

impl KmsCanary {
    pub fn new(client: aws_sdk_kms::Client) -> Self {
        KmsCanary { client }
    }
}

impl CanaryKms for KmsCanary {
    fn create_grant<'a>(
        &'a self,
        key_arn: &'a str,
        principal: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, PortError>> {
        Box::pin(async move {
            let output = self
                .client
                .create_grant()
                .key_id(key_arn)
                .grantee_principal(principal)
                .retiring_principal(principal)
                // One harmless operation: the grant only proves the path.
                .operations(GrantOperation::DescribeKey)
                .name(name)
                .send()
                .await
                .map_err(|e| classify("CreateGrant", &e))?;
            output.grant_id.ok_or_else(|| {
                PortError::Permanent("CreateGrant: the answer names no grant id".into())
            })
        })
    }

    fn retire_grant<'a>(
        &'a self,
        key_arn: &'a str,
        grant_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.client
                .retire_grant()
                .key_id(key_arn)
                .grant_id(grant_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("RetireGrant", &e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<CanarySettings>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CanarySettings::from_env(&Env::new(|name: &str| vars.get(name).cloned()))
    }

    const KEY: (&str, &str) = (
        "CANARY_KEY_ARN",
        "arn:aws:kms:us-east-1:111122223333:key/0000cccc-12ab-34cd-56ef-1234567890ab",
    );
    const ROLE: (&str, &str) = (
        "CANARY_PRINCIPAL_ARN",
        "arn:aws:iam::111122223333:role/grantwatch-WatcherRole-AbC",
    );

    #[test]
    fn the_canary_is_off_unless_its_key_is_set_and_then_needs_its_principal() {
        assert_eq!(settings(&[]).unwrap(), None);
        assert_eq!(settings(&[("CANARY_KEY_ARN", " ")]).unwrap(), None);
        let on = settings(&[KEY, ROLE]).unwrap().expect("on");
        assert_eq!(on.bound_seconds, 1800);
        assert_eq!(on.principal, ROLE.1);
        assert_eq!(
            settings(&[KEY, ROLE, ("CANARY_BOUND_MINUTES", "45")])
                .unwrap()
                .map(|s| s.bound_seconds),
            Some(2700)
        );
        for (vars, name) in [
            (vec![KEY], "CANARY_PRINCIPAL_ARN"),
            (
                vec![("CANARY_KEY_ARN", "alias/canary"), ROLE],
                "CANARY_KEY_ARN",
            ),
            (
                vec![KEY, ("CANARY_PRINCIPAL_ARN", "WatcherRole")],
                "CANARY_PRINCIPAL_ARN",
            ),
            (
                vec![KEY, ROLE, ("CANARY_BOUND_MINUTES", "1")],
                "CANARY_BOUND_MINUTES",
            ),
        ] {
            assert_eq!(settings(&vars).unwrap_err().name, name);
        }
    }
}
