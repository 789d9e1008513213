//! `grantwatch doctor`: is a deployed stack working? It reads the stack's
//! outputs (CloudFormation `DescribeStacks`, or `--resource NAME=VALUE`)
//! and checks, in this order: a trail logging management events in each
//! `--region`; the grant and tamper rules enabled and targeting the
//! watcher; a confirmed subscription on the alert and alarm topics; both
//! failure queues empty; no failed watcher or report invocation lately; a
//! heartbeat in the last 30 minutes; a report no older than 8 days.
//!
//! One line per check: pass, fail (and the one command that fixes it) or
//! error (it could not be checked). Exit status: 0 all pass, 1 some check
//! fails, 2 error (no stack, no credentials, or a check could not be
//! answered while none failed). docs/doctor.md.

mod aws;
mod checks;

use checks::{examine, Cloud, Finding, Plan, Status};
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
        let cloud = aws::SdkCloud::new(config);
        match diagnose(&cloud, &args, &region, OffsetDateTime::now_utc()).await {
            Ok(findings) => {
                print(&args, &region, &findings);
                exit_code(&findings)
            }
            Err(problem) => {
                eprintln!("grantwatch doctor: {}", one_line(&problem, 2000));
                ExitCode::from(2)
            }
        }
    })
}

/// The stack's outputs (with `--resource` over them), then every check.
async fn diagnose<C: Cloud>(
    cloud: &C,
    args: &Args,
    region: &str,
    now: OffsetDateTime,
) -> Result<Vec<Finding>, String> {
    let (mut outputs, created) = if args.stack.trim().is_empty() {
        (HashMap::new(), None)
    } else {
        let stack = cloud.stack(&args.stack).await.map_err(|e| {
            format!(
                "cannot read stack {}: {e} (name it with --stack)",
                args.stack
            )
        })?;
        (stack.outputs, stack.created)
    };
    outputs.extend(args.resources.iter().cloned());
    let trail_regions = if args.regions.is_empty() {
        vec![region.to_string()]
    } else {
        args.regions.clone()
    };
    let plan = Plan {
        trail_regions,
        outputs,
        created,
        now,
    };
    Ok(examine(cloud, &plan).await)
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
