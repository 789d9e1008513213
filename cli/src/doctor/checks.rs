//! What `grantwatch doctor` checks, judged from facts read through the
//! [`Cloud`] port: each check ends as pass, fail (with the one command that
//! fixes it) or error (the facts could not be read).

use grantwatch_core::ports::PortError;
use std::collections::HashMap;
use std::time::Duration;
use time::{Date, OffsetDateTime};

/// The stack's outputs, by name (`AlertTopicArn`, ...), and when it was created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackFacts {
    pub outputs: HashMap<String, String>,
    pub created: Option<OffsetDateTime>,
}

/// One trail visible in a region (its own, a multi-region trail's shadow,
/// or an organization trail).
#[derive(Debug, Clone, PartialEq)]
pub struct TrailFacts {
    pub name: String,
    pub arn: String,
    pub home_region: String,
    pub multi_region: bool,
    pub organization: bool,
    /// `GetTrailStatus`'s `IsLogging`, or why it could not be read.
    pub logging: Result<bool, String>,
    /// `GetEventSelectors`, or why it could not be read.
    pub selectors: Result<Selectors, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Selectors {
    Basic(Vec<BasicSelector>),
    Advanced(Vec<AdvancedSelector>),
}

/// A basic event selector (the fields that decide management events).
#[derive(Debug, Clone, PartialEq)]
pub struct BasicSelector {
    /// `All`, `ReadOnly` or `WriteOnly`; absent means `All`.
    pub read_write_type: Option<String>,
    /// Absent means true.
    pub include_management_events: Option<bool>,
    pub exclude_management_event_sources: Vec<String>,
}

/// An advanced event selector: every field condition must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdvancedSelector {
    pub fields: Vec<FieldSelector>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    pub field: String,
    pub equals: Vec<String>,
    pub not_equals: Vec<String>,
    pub starts_with: Vec<String>,
    pub not_starts_with: Vec<String>,
    pub ends_with: Vec<String>,
    pub not_ends_with: Vec<String>,
}

/// An EventBridge rule's state and the ARNs of its targets.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFacts {
    pub name: String,
    pub enabled: bool,
    pub target_arns: Vec<String>,
}

/// One subscription of a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionFacts {
    pub protocol: String,
    pub endpoint: String,
    /// `false` while the subscription ARN is `PendingConfirmation`.
    pub confirmed: bool,
}

/// A CloudWatch metric of one function (dimension `FunctionName`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FunctionMetric<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub function: &'a str,
}

/// What doctor reads. The AWS implementation is `super::aws::SdkCloud`; the
/// tests use a double (moto cannot show an unconfirmed e-mail subscription).
pub trait Cloud {
    async fn stack(&self, name: &str) -> Result<StackFacts, PortError>;
    /// The trails that `DescribeTrails` shows in `region` (shadow trails
    /// included), each with its status and event selectors.
    async fn trails(&self, region: &str) -> Result<Vec<TrailFacts>, PortError>;
    async fn rule(&self, rule_arn: &str) -> Result<RuleFacts, PortError>;
    async fn subscriptions(&self, topic_arn: &str) -> Result<Vec<SubscriptionFacts>, PortError>;
    /// Messages waiting on the queue (visible and in flight).
    async fn queue_depth(&self, queue_url: &str) -> Result<u64, PortError>;
    /// The metric's sum over the last `window`.
    async fn metric_sum(
        &self,
        metric: FunctionMetric<'_>,
        window: Duration,
    ) -> Result<f64, PortError>;
    /// The date of the newest complete report in the bucket.
    async fn newest_report(&self, bucket: &str) -> Result<Option<Date>, PortError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// The check could not be answered (a call failed, an output is missing).
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The check's name (`trail`, `grant rule`, ...).
    pub check: &'static str,
    /// What it looked at (a region, a queue, a function).
    pub subject: String,
    pub status: Status,
    pub detail: String,
    /// The one command that fixes a failure.
    pub fix: Option<String>,
}

impl Finding {
    fn pass(check: &'static str, subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Finding {
            check,
            subject: subject.into(),
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(
        check: &'static str,
        subject: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            check,
            subject: subject.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn error(check: &'static str, subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Finding {
            check,
            subject: subject.into(),
            status: Status::Error,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// No heartbeat in this long is a failure (two of the schedule's 15-minute
/// periods, as the heartbeat alarm).
pub const HEARTBEAT_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Watcher errors are looked for this far back.
pub const WATCHER_ERRORS_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Report errors: one weekly run, and a day's slack.
pub const REPORT_ERRORS_WINDOW: Duration = Duration::from_secs(8 * 24 * 3600);
/// A newest report older than this many days is a failure.
pub const REPORT_MAX_AGE_DAYS: i64 = 8;
/// The metric namespace the watcher's EMF lines write (`Heartbeats`).
pub const GRANTWATCH_NAMESPACE: &str = "grantwatch";

/// What to check.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Regions where a trail must log management events.
    pub trail_regions: Vec<String>,
    /// The stack's outputs (from CloudFormation and `--resource`).
    pub outputs: HashMap<String, String>,
    /// When the stack was created, if known: no report is due in its first days.
    pub created: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
}

impl Plan {
    fn output(&self, name: &str) -> Result<&str, String> {
        self.outputs
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("the stack has no output {name} (pass --resource {name}=VALUE)"))
    }
}

/// Every check, in order.
pub async fn examine<C: Cloud>(cloud: &C, plan: &Plan) -> Vec<Finding> {
    let mut findings = Vec::new();
    for region in &plan.trail_regions {
        findings.push(trail(cloud, region).await);
    }
    for (check, output) in [
        ("grant rule", "GrantEventsRuleArn"),
        ("tamper rule", "TamperEventsRuleArn"),
    ] {
        findings.push(rule(cloud, plan, check, output).await);
    }
    for (check, output) in [
        ("alert topic", "AlertTopicArn"),
        ("alarm topic", "AlarmTopicArn"),
    ] {
        findings.push(topic(cloud, plan, check, output).await);
    }
    for output in ["EventDeadLetterQueueUrl", "FailedInvocationQueueUrl"] {
        findings.push(queue(cloud, plan, output).await);
    }
    for (output, window) in [
        ("WatcherFunctionName", WATCHER_ERRORS_WINDOW),
        ("ReportFunctionName", REPORT_ERRORS_WINDOW),
    ] {
        findings.push(invocations(cloud, plan, output, window).await);
    }
    findings.push(heartbeat(cloud, plan).await);
    findings.push(report(cloud, plan).await);
    findings
}

/// Why a trail does not deliver KMS grant calls (management, write events
/// of `kms.amazonaws.com`), or `None` when it does.
pub fn selectors_miss_grant_calls(selectors: &Selectors) -> Option<String> {
    match selectors {
        Selectors::Basic(basic) if basic.is_empty() => {
            Some("it has no event selectors".to_string())
        }
        Selectors::Basic(basic) => {
            if basic.iter().any(basic_logs_grant_calls) {
                None
            } else {
                Some(
                    "its event selectors leave out management write events of KMS \
                     (IncludeManagementEvents false, ReadWriteType ReadOnly, or kms.amazonaws.com excluded)"
                        .to_string(),
                )
            }
        }
        Selectors::Advanced(advanced) => {
            if advanced.iter().any(advanced_logs_grant_calls) {
                None
            } else {
                Some(
                    "no advanced event selector takes management write events of kms.amazonaws.com"
                        .to_string(),
                )
            }
        }
    }
}

fn basic_logs_grant_calls(selector: &BasicSelector) -> bool {
    selector.include_management_events.unwrap_or(true)
        && selector.read_write_type.as_deref().unwrap_or("All") != "ReadOnly"
        && !selector
            .exclude_management_event_sources
            .iter()
            .any(|source| source == "kms.amazonaws.com")
}

/// Does the selector match a CreateGrant call? Every field condition must
/// hold for the call's values; a field a management event does not carry
/// (`resources.type`, ...) matches nothing.
fn advanced_logs_grant_calls(selector: &AdvancedSelector) -> bool {
    let value_of = |field: &str| match field {
        "eventCategory" => Some("Management"),
        "readOnly" => Some("false"),
        "eventSource" => Some("kms.amazonaws.com"),
        "eventName" => Some("CreateGrant"),
        _ => None,
    };
    selector.fields.iter().all(|f| {
        let Some(value) = value_of(&f.field) else {
            return false;
        };
        let any = |list: &[String], test: &dyn Fn(&str) -> bool| list.iter().any(|v| test(v));
        (f.equals.is_empty() || any(&f.equals, &|v| v == value))
            && !any(&f.not_equals, &|v| v == value)
            && (f.starts_with.is_empty() || any(&f.starts_with, &|v| value.starts_with(v)))
            && !any(&f.not_starts_with, &|v| value.starts_with(v))
            && (f.ends_with.is_empty() || any(&f.ends_with, &|v| value.ends_with(v)))
            && !any(&f.not_ends_with, &|v| value.ends_with(v))
    }) && selector.fields.iter().any(|f| f.field == "eventCategory")
}

async fn trail<C: Cloud>(cloud: &C, region: &str) -> Finding {
    const CHECK: &str = "trail";
    let create = format!(
        "aws cloudtrail create-trail --region {region} --name management-events --is-multi-region-trail \
         --s3-bucket-name <a bucket CloudTrail may write to> && \
         aws cloudtrail start-logging --region {region} --name management-events"
    );
    let trails = match cloud.trails(region).await {
        Ok(trails) => trails,
        Err(e) => return Finding::error(CHECK, region, format!("cannot list trails: {e}")),
    };
    let applying: Vec<&TrailFacts> = trails
        .iter()
        .filter(|t| t.multi_region || t.home_region == region)
        .collect();
    if applying.is_empty() {
        return Finding::fail(CHECK, region, "no trail covers this region", create);
    }
    let mut problems = Vec::new();
    let mut unknown = false;
    let mut first_fix = None;
    for t in &applying {
        let kind = if t.organization {
            "organization trail"
        } else {
            "trail"
        };
        let label = format!("{kind} {}", t.name);
        match (&t.logging, &t.selectors) {
            (Ok(true), Ok(selectors)) => match selectors_miss_grant_calls(selectors) {
                None => {
                    return Finding::pass(
                        CHECK,
                        region,
                        format!("{label} logs management events (KMS grant calls included)"),
                    )
                }
                Some(why) => {
                    problems.push(format!("{label}: {why}"));
                    first_fix.get_or_insert_with(|| selectors_fix(t, selectors));
                }
            },
            (Ok(false), _) => {
                problems.push(format!("{label} is not logging"));
                first_fix.get_or_insert_with(|| {
                    format!(
                        "aws cloudtrail start-logging --region {} --name {}",
                        t.home_region, t.arn
                    )
                });
            }
            (Err(e), _) | (_, Err(e)) => {
                unknown = true;
                problems.push(format!("{label}: cannot read: {e}"));
            }
        }
    }
    let detail = problems.join("; ");
    match first_fix {
        Some(fix) => Finding::fail(CHECK, region, detail, fix),
        None if unknown => Finding::error(CHECK, region, detail),
        None => Finding::fail(CHECK, region, detail, create),
    }
}

/// Management events on, for a trail whose selectors leave them out. The
/// command replaces the trail's selectors: its data-event selectors must be
/// added to it (said in docs/doctor.md).
fn selectors_fix(trail: &TrailFacts, selectors: &Selectors) -> String {
    let (flag, value) = match selectors {
        Selectors::Basic(_) => (
            "--event-selectors",
            r#"'[{"ReadWriteType":"All","IncludeManagementEvents":true}]'"#,
        ),
        Selectors::Advanced(_) => (
            "--advanced-event-selectors",
            r#"'[{"Name":"Management events","FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]}]}]'"#,
        ),
    };
    format!(
        "aws cloudtrail put-event-selectors --region {} --trail-name {} {flag} {value}",
        trail.home_region, trail.arn
    )
}

async fn rule<C: Cloud>(cloud: &C, plan: &Plan, check: &'static str, output: &str) -> Finding {
    let (rule_arn, watcher_arn) = match (plan.output(output), plan.output("WatcherFunctionArn")) {
        (Ok(rule), Ok(watcher)) => (rule, watcher),
        (Err(e), _) | (_, Err(e)) => return Finding::error(check, output, e),
    };
    let facts = match cloud.rule(rule_arn).await {
        Ok(facts) => facts,
        Err(e) => return Finding::error(check, rule_arn, format!("cannot read the rule: {e}")),
    };
    let subject = facts.name.clone();
    let bus = bus_flag(rule_arn);
    if !facts.enabled {
        return Finding::fail(
            check,
            subject,
            "the rule is disabled: no event reaches grant-watcher",
            format!("aws events enable-rule --name {}{bus}", facts.name),
        );
    }
    // A target may name a version or alias of the function (ARN:qualifier).
    let targets_watcher = facts.target_arns.iter().any(|arn| {
        arn == watcher_arn
            || arn
                .strip_prefix(watcher_arn)
                .is_some_and(|rest| rest.starts_with(':'))
    });
    if !targets_watcher {
        return Finding::fail(
            check,
            subject,
            format!(
                "the rule is enabled but does not target grant-watcher ({} other target(s))",
                facts.target_arns.len()
            ),
            format!(
                "aws events put-targets --rule {}{bus} --targets Id=grant-watcher,Arn={watcher_arn}",
                facts.name
            ),
        );
    }
    Finding::pass(check, subject, "enabled, targets grant-watcher")
}

/// ` --event-bus-name BUS` for a rule on a bus other than the default.
fn bus_flag(rule_arn: &str) -> String {
    match rule_location(rule_arn) {
        Some(RuleLocation { bus: Some(bus), .. }) => format!(" --event-bus-name {bus}"),
        _ => String::new(),
    }
}

/// Where a rule lives, from its ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleLocation<'a> {
    /// `None`: the default bus.
    pub bus: Option<&'a str>,
    pub name: &'a str,
}

/// `arn:aws:events:REGION:ACCOUNT:rule/[BUS/]NAME`.
pub fn rule_location(rule_arn: &str) -> Option<RuleLocation<'_>> {
    let (_, path) = rule_arn.split_once(":rule/")?;
    Some(match path.split_once('/') {
        Some((bus, name)) => RuleLocation {
            bus: Some(bus),
            name,
        },
        None => RuleLocation {
            bus: None,
            name: path,
        },
    })
}

async fn topic<C: Cloud>(cloud: &C, plan: &Plan, check: &'static str, output: &str) -> Finding {
    let topic_arn = match plan.output(output) {
        Ok(arn) => arn,
        Err(e) => return Finding::error(check, output, e),
    };
    let subject = topic_arn
        .rsplit(':')
        .next()
        .unwrap_or(topic_arn)
        .to_string();
    let subscriptions = match cloud.subscriptions(topic_arn).await {
        Ok(s) => s,
        Err(e) => return Finding::error(check, subject, format!("cannot list subscriptions: {e}")),
    };
    let subscribe = |endpoint: &str| {
        format!(
            "aws sns subscribe --topic-arn {topic_arn} --protocol email --notification-endpoint {endpoint}"
        )
    };
    if subscriptions.is_empty() {
        return Finding::fail(
            check,
            subject,
            "no subscription: what reaches this topic goes nowhere",
            subscribe("<your address>"),
        );
    }
    if let Some(pending) = subscriptions.iter().find(|s| !s.confirmed) {
        return Finding::fail(
            check,
            subject,
            format!(
                "{} subscription {} is pending confirmation: nothing is delivered to it until its link is clicked",
                pending.protocol, pending.endpoint
            ),
            // Subscribing the same endpoint again re-sends the confirmation.
            if pending.protocol == "email" || pending.protocol == "email-json" {
                subscribe(&pending.endpoint)
            } else {
                format!(
                    "aws sns subscribe --topic-arn {topic_arn} --protocol {} --notification-endpoint {}",
                    pending.protocol, pending.endpoint
                )
            },
        );
    }
    let protocols: Vec<&str> = subscriptions.iter().map(|s| s.protocol.as_str()).collect();
    Finding::pass(
        check,
        subject,
        format!(
            "{} confirmed subscription(s): {}",
            subscriptions.len(),
            protocols.join(", ")
        ),
    )
}

async fn queue<C: Cloud>(cloud: &C, plan: &Plan, output: &str) -> Finding {
    const CHECK: &str = "failure queue";
    let url = match plan.output(output) {
        Ok(url) => url,
        Err(e) => return Finding::error(CHECK, output, e),
    };
    let subject = url.rsplit('/').next().unwrap_or(url).to_string();
    match cloud.queue_depth(url).await {
        Ok(0) => Finding::pass(CHECK, subject, "empty"),
        Ok(n) => {
            let mut fix = format!("grantwatch redrive --queue {url}");
            for (flag, name) in [
                ("--alert-topic-arn", "AlertTopicArn"),
                ("--ledger-table", "LedgerTableName"),
            ] {
                if let Ok(value) = plan.output(name) {
                    fix.push_str(&format!(" {flag} {value}"));
                }
            }
            Finding::fail(
                CHECK,
                subject,
                format!("{n} event(s) waiting: grant events that were never judged or delivered"),
                fix,
            )
        }
        Err(e) => Finding::error(CHECK, subject, format!("cannot read the queue: {e}")),
    }
}

async fn invocations<C: Cloud>(cloud: &C, plan: &Plan, output: &str, window: Duration) -> Finding {
    const CHECK: &str = "recent invocations";
    let function = match plan.output(output) {
        Ok(f) => f,
        Err(e) => return Finding::error(CHECK, output, e),
    };
    let hours = window.as_secs() / 3600;
    let metric = FunctionMetric {
        namespace: "AWS/Lambda",
        name: "Errors",
        function,
    };
    match cloud.metric_sum(metric, window).await {
        Ok(errors) if errors < 1.0 => {
            Finding::pass(CHECK, function, format!("no errors in the last {hours} h"))
        }
        Ok(errors) => Finding::fail(
            CHECK,
            function,
            format!("{errors} failed invocation(s) in the last {hours} h"),
            format!("aws logs tail /aws/lambda/{function} --since {hours}h --filter-pattern ERROR"),
        ),
        Err(e) => Finding::error(
            CHECK,
            function,
            format!("cannot read its Errors metric: {e}"),
        ),
    }
}

async fn heartbeat<C: Cloud>(cloud: &C, plan: &Plan) -> Finding {
    const CHECK: &str = "heartbeat";
    let function = match plan.output("WatcherFunctionName") {
        Ok(f) => f,
        Err(e) => return Finding::error(CHECK, "WatcherFunctionName", e),
    };
    let minutes = HEARTBEAT_WINDOW.as_secs() / 60;
    let metric = FunctionMetric {
        namespace: GRANTWATCH_NAMESPACE,
        name: "Heartbeats",
        function,
    };
    match cloud.metric_sum(metric, HEARTBEAT_WINDOW).await {
        Ok(beats) if beats >= 1.0 => Finding::pass(
            CHECK,
            function,
            format!("{beats} heartbeat(s) in the last {minutes} min"),
        ),
        Ok(_) => Finding::fail(
            CHECK,
            function,
            format!(
                "no heartbeat in the last {minutes} min: the schedule, the tamper rule or the watcher is broken"
            ),
            format!("aws logs tail /aws/lambda/{function} --since {minutes}m"),
        ),
        Err(e) => Finding::error(
            CHECK,
            function,
            format!("cannot read the Heartbeats metric: {e}"),
        ),
    }
}

async fn report<C: Cloud>(cloud: &C, plan: &Plan) -> Finding {
    const CHECK: &str = "report";
    let bucket = match plan.output("ReportBucketName") {
        Ok(b) => b,
        Err(e) => return Finding::error(CHECK, "ReportBucketName", e),
    };
    let run_now = match plan.output("ReportFunctionName") {
        Ok(function) => format!(
            "aws lambda invoke --function-name {function} --invocation-type Event /dev/null"
        ),
        Err(_) => "grantwatch report".to_string(),
    };
    let today = plan.now.date();
    match cloud.newest_report(bucket).await {
        Ok(Some(date)) => {
            let age = (today - date).whole_days();
            if age > REPORT_MAX_AGE_DAYS {
                Finding::fail(
                    CHECK,
                    bucket,
                    format!("the newest report is from {date}, {age} days ago (more than {REPORT_MAX_AGE_DAYS})"),
                    run_now,
                )
            } else {
                Finding::pass(CHECK, bucket, format!("the newest report is from {date}"))
            }
        }
        Ok(None) => match plan.created {
            Some(created) if (today - created.date()).whole_days() <= REPORT_MAX_AGE_DAYS => {
                Finding::pass(
                    CHECK,
                    bucket,
                    format!(
                        "no report yet; the stack is from {}, the first is due within a week",
                        created.date()
                    ),
                )
            }
            _ => Finding::fail(CHECK, bucket, "no report in the bucket", run_now),
        },
        Err(e) => Finding::error(CHECK, bucket, format!("cannot list the reports: {e}")),
    }
}

/// Run a test's future to its end (the doubles and mocks never wait).
#[cfg(test)]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => panic!("runtime: {e}"),
    }
}

#[cfg(test)]
mod tests;
