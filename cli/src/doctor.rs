//! `grantwatch doctor`: is a deployed stack working? It reads the stack's
//! outputs (CloudFormation `DescribeStacks`, or `--resource NAME=VALUE`)
//! and checks, in this order: a trail logging management events in each
//! `--region`; the grant and tamper rules enabled and targeting the
//! watcher; a confirmed subscription on the alert and alarm topics; both
//! failure queues empty; no failed watcher or report invocation lately; a
//! heartbeat in the last 30 minutes; a report no older than 8 days.
//!
//! `--canary` adds the canary round trip (cli/src/canary.rs): a grant on
//! the stack's canary key, retired, and both CloudTrail events seen by the
//! watcher within `--bound` minutes.
//!
//! One line per check: pass, fail (and the one command that fixes it) or
//! error (it could not be checked). Exit status: 0 all pass, 1 some check
//! fails, 2 error (no stack, no credentials, or a check could not be
//! answered while none failed). docs/doctor.md.

mod aws;
mod checks;

use crate::canary::{self, CanaryOptions, CanaryResult};
use checks::{examine, Cloud, Finding, Plan, StackFacts, Status};
use grantwatch_aws::sdk;
use grantwatch_core::render::plain::one_line;
use serde_json::json;
use std::collections::HashMap;
use std::process::ExitCode;
use time::OffsetDateTime;

#[derive(clap::Args)]
pub struct Args {
    /// The CloudFormation stack whose outputs name the resources to check;
    /// empty: only --resource.
    #[arg(long, env = "GRANTWATCH_STACK", default_value = "grantwatch")]
    stack: String,
    /// A region where a trail must log management events (repeat for each
    /// watched region; default: the configured region, where the stack is).
    #[arg(long = "region", value_name = "REGION")]
    regions: Vec<String>,
    /// A stack output given by hand (e.g. AlertTopicArn=arn:aws:sns:...);
    /// replaces the stack's output of that name. Repeatable.
    #[arg(long = "resource", value_name = "OUTPUT=VALUE", value_parser = resource)]
    resources: Vec<(String, String)>,
    /// text (default, for people) or json (one object: every check).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    output: DoctorOutput,
    /// Also run the canary round trip: a grant on the canary key for you,
    /// retired, then wait (up to --bound minutes) until the watcher has seen
    /// both CloudTrail events. Needs kms:CreateGrant on the key and the
    /// ledger's UpdateItem/GetItem/Query.
    #[arg(long)]
    canary: bool,
    /// The canary key (default: the stack output CanaryKeyArn).
    #[arg(long, value_name = "ARN", requires = "canary")]
    canary_key: Option<String>,
    /// The grant ledger (default: the stack output LedgerTableName).
    #[arg(long, env = "LEDGER_TABLE", value_name = "TABLE")]
    ledger_table: Option<String>,
    /// Minutes the canary's CloudTrail events may take to reach the watcher.
    #[arg(long, value_name = "MINUTES", default_value_t = 30)]
    bound: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DoctorOutput {
    Text,
    Json,
}

fn resource(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err(format!("{s:?} is not OUTPUT=VALUE")),
    }
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("grantwatch doctor: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let config = sdk::load_config().await;
        let Some(region) = config.region().map(|r| r.to_string()) else {
            eprintln!(
                "grantwatch doctor: no region configured (set AWS_REGION or a profile's region)"
            );
            return ExitCode::from(2);
        };
        let cloud = aws::SdkCloud::new(config.clone());
        let stack = match stack_of(&cloud, &args).await {
            Ok(stack) => stack,
            Err(problem) => {
                eprintln!("grantwatch doctor: {}", one_line(&problem, 2000));
                return ExitCode::from(2);
            }
        };
        let mut findings = diagnose(
            &cloud,
            &args,
            &region,
            stack.clone(),
            OffsetDateTime::now_utc(),
        )
        .await;
        if args.canary {
            findings.push(match canary_options(&args, &stack.outputs) {
                Ok(options) => {
                    let result = canary::round_trip(&config, &options).await;
                    canary_finding(&options, result)
                }
                Err(problem) => Finding {
                    check: CANARY,
                    subject: "CanaryKeyArn".into(),
                    status: Status::Error,
                    detail: problem.to_string(),
                    fix: None,
                },
            });
        }
        print(&args, &region, &findings);
        exit_code(&findings)
    })
}

/// The stack's outputs, with `--resource` and `--ledger-table` over them.
async fn stack_of<C: Cloud>(cloud: &C, args: &Args) -> Result<StackFacts, String> {
    let mut stack = if args.stack.trim().is_empty() {
        StackFacts::default()
    } else {
        cloud.stack(&args.stack).await.map_err(|e| {
            format!(
                "cannot read stack {}: {e} (name it with --stack)",
                args.stack
            )
        })?
    };
    stack.outputs.extend(args.resources.iter().cloned());
    if let Some(table) = &args.ledger_table {
        stack
            .outputs
            .insert("LedgerTableName".into(), table.clone());
    }
    Ok(stack)
}

/// Every check of the stack.
async fn diagnose<C: Cloud>(
    cloud: &C,
    args: &Args,
    region: &str,
    stack: StackFacts,
    now: OffsetDateTime,
) -> Vec<Finding> {
    let trail_regions = if args.regions.is_empty() {
        vec![region.to_string()]
    } else {
        args.regions.clone()
    };
    let plan = Plan {
        trail_regions,
        outputs: stack.outputs,
        created: stack.created,
        now,
    };
    examine(cloud, &plan).await
}

const CANARY: &str = "canary round trip";

fn canary_options(
    args: &Args,
    outputs: &HashMap<String, String>,
) -> Result<CanaryOptions, &'static str> {
    let key = args
        .canary_key
        .as_ref()
        .or_else(|| outputs.get("CanaryKeyArn"))
        .filter(|k| !k.trim().is_empty())
        .ok_or("the stack has no output CanaryKeyArn (pass --canary-key ARN)")?;
    let table = outputs
        .get("LedgerTableName")
        .filter(|t| !t.trim().is_empty())
        .ok_or("the stack has no output LedgerTableName (pass --ledger-table TABLE)")?;
    let mut options = CanaryOptions::new(key, table);
    options.bound = std::time::Duration::from_secs(args.bound.saturating_mul(60));
    Ok(options)
}

fn canary_finding(options: &CanaryOptions, result: CanaryResult) -> Finding {
    Finding {
        check: CANARY,
        subject: options.key_arn.clone(),
        status: if result.passed {
            Status::Pass
        } else {
            Status::Fail
        },
        detail: match result.run_id {
            Some(run) => format!("{} (run {run})", result.message),
            None => result.message,
        },
        fix: result.fix,
    }
}

/// 1 when a check fails; else 2 when one could not be answered; else 0.
fn exit_code(findings: &[Finding]) -> ExitCode {
    if findings.iter().any(|f| f.status == Status::Fail) {
        ExitCode::from(1)
    } else if findings.iter().any(|f| f.status == Status::Error) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn count(findings: &[Finding], status: Status) -> usize {
    findings.iter().filter(|f| f.status == status).count()
}

fn print(args: &Args, region: &str, findings: &[Finding]) {
    match args.output {
        DoctorOutput::Json => {
            let checks: Vec<_> = findings
                .iter()
                .map(|f| {
                    json!({
                        "check": f.check,
                        "subject": f.subject,
                        "status": f.status.as_str(),
                        "detail": f.detail,
                        "fix": f.fix,
                    })
                })
                .collect();
            let doc = json!({
                "stack": args.stack,
                "region": region,
                "passed": count(findings, Status::Pass),
                "failed": count(findings, Status::Fail),
                "errors": count(findings, Status::Error),
                "checks": checks,
            });
            println!("{doc}");
        }
        DoctorOutput::Text => {
            // Names and details come from the account (trail names, e-mail
            // addresses): one line each, no control characters.
            for f in findings {
                println!(
                    "{:<5} {} ({}): {}",
                    f.status.as_str().to_uppercase(),
                    f.check,
                    one_line(&f.subject, 200),
                    one_line(&f.detail, 1000)
                );
                if let Some(fix) = &f.fix {
                    println!("      fix: {}", one_line(fix, 2000));
                }
            }
            println!(
                "{} pass, {} fail, {} error",
                count(findings, Status::Pass),
                count(findings, Status::Fail),
                count(findings, Status::Error)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(flags: &[&str]) -> Args {
        match Cli::try_parse_from(std::iter::once("doctor").chain(flags.iter().copied())) {
            Ok(cli) => cli.args,
            Err(e) => panic!("{e}"),
        }
    }

    fn outputs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_canary_takes_the_stack_outputs_and_the_flags_win() {
        let stack = outputs(&[
            ("CanaryKeyArn", "arn:key/out"),
            ("LedgerTableName", "ledger"),
        ]);
        let options = canary_options(&args(&["--canary", "--bound", "5"]), &stack)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (options.key_arn.as_str(), options.ledger_table.as_str()),
            ("arn:key/out", "ledger")
        );
        assert_eq!(options.bound, std::time::Duration::from_secs(300));
        let flagged = canary_options(&args(&["--canary", "--canary-key", "arn:key/flag"]), &stack)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(flagged.key_arn, "arn:key/flag");
        assert_eq!(flagged.bound, std::time::Duration::from_secs(30 * 60));
    }

    #[test]
    fn a_canary_without_key_or_ledger_names_the_flag() {
        let no_key = canary_options(&args(&["--canary"]), &outputs(&[("LedgerTableName", "l")]));
        assert!(no_key.is_err_and(|e| e.contains("--canary-key ARN")));
        let no_ledger = canary_options(&args(&["--canary"]), &outputs(&[("CanaryKeyArn", "k")]));
        assert!(no_ledger.is_err_and(|e| e.contains("--ledger-table TABLE")));
    }

    #[test]
    fn a_canary_result_becomes_a_check() {
        let options = CanaryOptions::new("arn:key/k", "ledger");
        let failed = canary_finding(
            &options,
            CanaryResult {
                passed: false,
                message: "not seen".into(),
                fix: Some("grantwatch doctor".into()),
                run_id: Some("doctor-1".into()),
            },
        );
        assert_eq!(failed.status, Status::Fail);
        assert_eq!(failed.detail, "not seen (run doctor-1)");
        assert_eq!(failed.fix.as_deref(), Some("grantwatch doctor"));
        let passed = canary_finding(
            &options,
            CanaryResult {
                passed: true,
                message: "seen".into(),
                fix: None,
                run_id: None,
            },
        );
        assert_eq!(
            (passed.status, passed.detail.as_str()),
            (Status::Pass, "seen")
        );
    }

    #[test]
    fn exit_status_is_1_on_a_failure_else_2_on_an_error() {
        let finding = |status| Finding {
            check: "x",
            subject: String::new(),
            status,
            detail: String::new(),
            fix: None,
        };
        let code = |s: &[Status]| {
            format!(
                "{:?}",
                exit_code(&s.iter().map(|&s| finding(s)).collect::<Vec<_>>())
            )
        };
        assert_eq!(code(&[Status::Pass]), format!("{:?}", ExitCode::SUCCESS));
        assert_eq!(
            code(&[Status::Pass, Status::Error]),
            format!("{:?}", ExitCode::from(2))
        );
        assert_eq!(
            code(&[Status::Error, Status::Fail]),
            format!("{:?}", ExitCode::from(1))
        );
    }
}
