//! `grantwatch explain`: why can this principal use this key? Every grant
//! that lets the principal (or a session of that role: an assumed-role
//! session ARN matches its role, and a role matches its sessions) use the
//! key, with operations, constraints, origin and creator if known. When no
//! grant does, it says so and shows the key-policy statements that name the
//! principal or its account root (then IAM policies decide).
//!
//! The grants are judged as the weekly report judges them
//! (`judged_key_grants`: every grant of the key, so key-wide findings such
//! as `duplicate-grant` and `grant-count-high` count; the key's policy
//! posture `create-grant-open` and its tags for `key_tags` rules).
//!
//! Exit status: 0 a grant allows it, 1 none does, 2 error.

use grantwatch_aws::inventory::{key_description, KmsInventory, RetryPolicy, SingleClient};
use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::sdk;
use grantwatch_core::app::report::{judged_key_grants, read_key_context};
use grantwatch_core::grant::Operation;
use grantwatch_core::judge::{Policy, StandingGrant};
use grantwatch_core::ports::inventory::{AccountRegion, Inventory, LedgerProvenance, Provenance};
use grantwatch_core::principal::Principal;
use grantwatch_core::render::describe;
use serde_json::Value;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Key id, key ARN, alias name (alias/x) or alias ARN.
    #[arg(long)]
    key: String,
    /// The principal: role, user, assumed-role session, account root, or service principal.
    #[arg(long)]
    principal: String,
    /// Only grants that allow this operation (e.g. Decrypt).
    #[arg(long)]
    operation: Option<String>,
    /// Region of the key (default: the key ARN's, else the configured region).
    #[arg(long)]
    region: Option<String>,
    /// The grant ledger (DynamoDB table): who created each grant.
    #[arg(long, env = "LEDGER_TABLE")]
    ledger_table: Option<String>,
    /// text (default, for people) or json (one object: the key, the grants
    /// that allow it, and the key-policy statements when none does).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    output: ExplainOutput,
    /// Rules, alert threshold, trust zone, grant-count threshold: the grant
    /// is judged as the report judges it.
    #[command(flatten)]
    policy: crate::args::PolicyArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExplainOutput {
    Text,
    Json,
}

/// The role an assumed-role session belongs to, or the role itself:
/// `(account, role name)`.
fn role_of(p: &Principal<'_>) -> Option<(String, String)> {
    match p {
        Principal::Role { account, name } => Some((account.to_string(), name.to_string())),
        Principal::AssumedRole { account, role, .. } => {
            Some((account.to_string(), role.to_string()))
        }
        _ => None,
    }
}

/// Does a grant to `grantee` let `principal` use the key? The same
/// principal, or a role and its sessions (either way round).
pub fn grantee_covers(grantee: &str, principal: &str) -> bool {
    if grantee.trim() == principal.trim() {
        return true;
    }
    let (g, p) = (Principal::parse(grantee), Principal::parse(principal));
    match (role_of(&g), role_of(&p)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Does a key-policy statement's `Principal` name `principal`, its role,
/// its account root, or everyone?
fn statement_names(statement: &Value, principal: &str) -> bool {
    let p = Principal::parse(principal);
    let account = p.account().map(str::to_string);
    let mut names: Vec<String> = Vec::new();
    match &statement["Principal"] {
        Value::String(s) => names.push(s.clone()),
        Value::Object(map) => {
            for (kind, value) in map {
                if kind != "AWS" && kind != "Service" {
                    continue;
                }
                match value {
                    Value::String(s) => names.push(s.clone()),
                    Value::Array(a) => {
                        names.extend(a.iter().filter_map(Value::as_str).map(str::to_string))
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    names.iter().any(|n| {
        n == "*"
            || grantee_covers(n, principal)
            || account.as_deref().is_some_and(|a| {
                n == a
                    || Principal::parse(n).is_account_root()
                        && Principal::parse(n).account() == Some(a)
            })
    })
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("grantwatch explain: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(explain(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(problem) => {
            eprintln!("grantwatch explain: {problem}");
            ExitCode::from(2)
        }
    }
}

async fn explain(args: Args) -> Result<bool, String> {
    let rules = args.policy.rules()?;
    let config = sdk::load_config().await;
    let region = args
        .region
        .clone()
        .or_else(|| {
            args.key
                .starts_with("arn:")
                .then(|| args.key.split(':').nth(3).map(str::to_string))
                .flatten()
        })
        .or_else(|| config.region().map(|r| r.to_string()))
        .ok_or("no region: pass --region or set AWS_REGION")?;
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&config)
            .region(aws_sdk_kms::config::Region::new(region.clone()))
            .build(),
    );
    let described = kms
        .describe_key()
        .key_id(&args.key)
        .send()
        .await
        .map_err(|e| {
            format!(
                "DescribeKey {}: {}",
                args.key,
                sdk::classify("DescribeKey", &e)
            )
        })?;
    let meta = described.key_metadata().ok_or("DescribeKey: no metadata")?;
    let key_id = meta.key_id().to_string();
    let key_arn = meta.arn().unwrap_or_default().to_string();
    let account = meta.aws_account_id().unwrap_or_default().to_string();
    let description = key_description(meta);
    let operation = args.operation.as_deref().map(Operation::parse);

    let inventory = KmsInventory::new(SingleClient(kms.clone()), 20.0, RetryPolicy::default());
    let at = AccountRegion::new(account.clone(), region.clone());
    let mut grants = Vec::new();
    let mut marker = None;
    loop {
        let page = inventory
            .list_grants(&at, &key_id, marker.take())
            .await
            .map_err(|e| format!("ListGrants: {e}"))?;
        grants.extend(page.items);
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    let ledger = args.ledger_table.as_ref().map(|t| {
        DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&config),
            t,
            DEFAULT_RETENTION_DAYS,
        )
    });
    let provenance = ledger.as_ref().map(LedgerProvenance);
    let records = provenance.grant_records(&key_arn).await.unwrap_or_default();
    let policy = Policy {
        rules,
        min_alert_severity: args.policy.min_severity,
        trust_zone: args
            .policy
            .aws_trust_zone("grantwatch explain", &config)
            .await,
        ..Policy::new(time::OffsetDateTime::now_utc().date())
    };

    // The key's policy posture and tags, as the report reads them; what
    // cannot be read is said, not hidden.
    let (key_context, unread) =
        read_key_context(&inventory, &at, &key_arn, &description, || false).await;
    for gap in &unread {
        eprintln!(
            "grantwatch explain: not read: {} ({})",
            gap.detail,
            gap.reason.as_str()
        );
    }
    let total = grants.len();
    let standing: Vec<StandingGrant> = grants
        .into_iter()
        .map(|g| StandingGrant {
            account: account.clone(),
            region: region.clone(),
            key_arn: key_arn.clone(),
            key_spec: description.key_spec.clone(),
            grant_id: g.grant_id,
            created: g.created,
            issuing_account: g.issuing_account,
            facts: g.facts,
        })
        .collect();
    // Every grant of the key is judged, so key-wide findings count.
    let (key_judgement, judged) = judged_key_grants(
        &standing,
        &records,
        &key_context,
        &policy,
        args.policy.grant_count_threshold,
    );
    let allowing_grants: Vec<_> = standing
        .iter()
        .zip(judged)
        .filter(|(g, _)| {
            let covers = g
                .facts
                .effective_grantee()
                .is_some_and(|grantee| grantee_covers(grantee, &args.principal));
            covers
                && operation
                    .as_ref()
                    .is_none_or(|op| g.facts.has_operation(op))
        })
        .map(|(_, report)| report)
        .collect();
    let allowing = allowing_grants.len();
    let text = args.output == ExplainOutput::Text;
    let clean = |s: &str| grantwatch_core::render::plain::one_line(s, 500);
    if text {
        println!("Key {key_arn} ({total} grants)");
        if let Some(d) = description.description.as_deref().filter(|d| !d.is_empty()) {
            println!("Description {}", clean(d));
        }
        if let Some(tags) = key_context.tags.as_ref().filter(|t| !t.is_empty()) {
            let tags: Vec<String> = tags
                .iter()
                .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
                .collect();
            println!("Tags {}", tags.join(", "));
        }
        for f in &key_judgement.findings {
            println!(
                "Key posture: {} {}: {}{}",
                key_judgement.severity,
                f.code.as_str(),
                clean(&f.message),
                key_judgement
                    .suppressed_by
                    .as_deref()
                    .map(|r| format!(" (suppressed by rule {})", clean(r)))
                    .unwrap_or_default()
            );
        }
        println!("Principal {}", args.principal);
    }
    for judged in allowing_grants.iter().filter(|_| text) {
        println!();
        println!(
            "Grant {} ({})",
            clean(&judged.grant_id),
            clean(judged.name.as_deref().unwrap_or("no name"))
        );
        println!(
            "  grantee:     {}",
            clean(judged.grantee.as_deref().unwrap_or(""))
        );
        println!(
            "  operations:  {}",
            describe::operations(&judged.operations)
        );
        for line in describe::constraints(judged.constraints.as_ref()) {
            println!("  constraint:  {}", clean(&line));
        }
        println!(
            "  retiring:    {}",
            clean(judged.retiring_principal.as_deref().unwrap_or("(none)"))
        );
        println!(
            "  origin:      {}{}",
            judged.origin,
            judged
                .service
                .as_deref()
                .map(|s| format!(" ({})", clean(s)))
                .unwrap_or_default()
        );
        println!("  severity:    {}", judged.severity);
        if !judged.findings.is_empty() {
            let codes: Vec<&str> = judged.findings.iter().map(|f| f.code.as_str()).collect();
            println!("  findings:    {}", codes.join(", "));
        }
        if let Some(rule) = &judged.suppressed_by {
            println!("  suppressed:  by rule {}", clean(rule));
        }
        match &judged.created_by {
            Some(c) => println!(
                "  created by:  {} at {}",
                clean(c.arn.as_deref().unwrap_or("?")),
                clean(c.at.as_deref().unwrap_or("?"))
            ),
            None => println!("  created by:  unknown (the ledger has no record of it)"),
        }
        if let Some(created) = &judged.created {
            println!("  created:     {}", clean(created));
        }
    }
    let json = |statements: Vec<&Value>| {
        serde_json::json!({
            "key_arn": key_arn,
            "principal": args.principal,
            "operation": args.operation,
            "grants_on_key": total,
            "key_description": description.description,
            "key_tags": key_context.tags,
            "key_posture": key_judgement,
            "allowing": allowing,
            "grants": allowing_grants,
            "key_policy_statements": statements,
        })
    };
    if allowing > 0 {
        if text {
            println!("\n{allowing} grant(s) let this principal use the key.");
        } else {
            println!("{}", json(Vec::new()));
        }
        return Ok(true);
    }
    if text {
        println!(
            "\nNo grant lets this principal use the key{}.",
            args.operation
                .as_deref()
                .map(|o| format!(" for {o}"))
                .unwrap_or_default()
        );
    }
    let policy_text = inventory
        .key_policy(&at, &key_id)
        .await
        .map_err(|e| format!("GetKeyPolicy: {e}"))?;
    let document: Value =
        serde_json::from_str(&policy_text).map_err(|e| format!("key policy is not JSON: {e}"))?;
    let statements: Vec<&Value> = match &document["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => vec![],
    };
    let naming: Vec<&&Value> = statements
        .iter()
        .filter(|s| statement_names(s, &args.principal))
        .collect();
    if !text {
        println!("{}", json(naming.into_iter().copied().collect()));
    } else if naming.is_empty() {
        println!("No key-policy statement names this principal or its account: the key policy does not allow it.");
    } else {
        println!("Key-policy statements that name this principal or its account root (then IAM policies decide):");
        for s in naming {
            println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_session_matches_its_role_and_the_role_its_sessions() {
        let role = "arn:aws:iam::012345678901:role/test-role-cu5o193j";
        let session = "arn:aws:sts::012345678901:assumed-role/test-role-cu5o193j/test";
        assert!(grantee_covers(session, role));
        assert!(grantee_covers(role, session));
        assert!(grantee_covers(
            session,
            "arn:aws:sts::012345678901:assumed-role/test-role-cu5o193j/other"
        ));
        assert!(!grantee_covers(
            session,
            "arn:aws:iam::012345678901:role/another"
        ));
        assert!(!grantee_covers(
            session,
            "arn:aws:sts::999999999999:assumed-role/test-role-cu5o193j/test"
        ));
        assert!(grantee_covers(
            "lambda.amazonaws.com",
            "lambda.amazonaws.com"
        ));
    }

    #[test]
    fn key_policy_statements_naming_the_principal_or_its_account_root() {
        let session = "arn:aws:sts::012345678901:assumed-role/app/s1";
        assert!(statement_names(
            &json!({"Principal": {"AWS": "arn:aws:iam::012345678901:root"}}),
            session
        ));
        assert!(statement_names(
            &json!({"Principal": {"AWS": ["012345678901"]}}),
            session
        ));
        assert!(statement_names(
            &json!({"Principal": {"AWS": "arn:aws:iam::012345678901:role/app"}}),
            session
        ));
        assert!(statement_names(&json!({"Principal": "*"}), session));
        assert!(!statement_names(
            &json!({"Principal": {"AWS": "arn:aws:iam::012345678901:role/admin"}}),
            session
        ));
        assert!(!statement_names(
            &json!({"Principal": {"AWS": "arn:aws:iam::999999999999:root"}}),
            session
        ));
    }
}
