//! The checks against a double of the cloud: cases moto cannot show (an
//! unconfirmed e-mail subscription, advanced selectors, shadow and
//! organization trails, errors while reading).

use super::*;
use std::cell::RefCell;

const WATCHER_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:gw-watcher";
const GRANT_RULE: &str = "arn:aws:events:us-east-1:123456789012:rule/gw-grant-events";
const TAMPER_RULE: &str = "arn:aws:events:us-east-1:123456789012:rule/gw-tamper-events";
const ALERT_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:gw-alerts";
const ALARM_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:gw-alarms";
const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/gw-dlq";
const FAILED: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/gw-failed";

/// A healthy stack; each test breaks one thing.
struct Double {
    trails: Result<Vec<TrailFacts>, PortError>,
    rules: HashMap<String, RuleFacts>,
    subscriptions: HashMap<String, Vec<SubscriptionFacts>>,
    depths: HashMap<String, u64>,
    /// (metric name, function) → sum
    metrics: HashMap<(String, String), f64>,
    newest_report: Option<Date>,
    /// Regions asked for trails, in order.
    asked: RefCell<Vec<String>>,
}

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-11-29 21:00 UTC)
}

fn logging_trail(name: &str, home: &str, multi_region: bool) -> TrailFacts {
    TrailFacts {
        name: name.into(),
        arn: format!("arn:aws:cloudtrail:{home}:123456789012:trail/{name}"),
        home_region: home.into(),
        multi_region,
        organization: false,
        logging: Ok(true),
        selectors: Ok(Selectors::Basic(vec![BasicSelector {
            read_write_type: Some("All".into()),
            include_management_events: Some(true),
            exclude_management_event_sources: vec![],
        }])),
    }
}

fn rule(name: &str, enabled: bool, targets: &[&str]) -> RuleFacts {
    RuleFacts {
        name: name.into(),
        enabled,
        target_arns: targets.iter().map(|t| t.to_string()).collect(),
    }
}

fn email(confirmed: bool) -> SubscriptionFacts {
    SubscriptionFacts {
        protocol: "email".into(),
        endpoint: "secops@example.com".into(),
        confirmed,
    }
}

impl Double {
    fn healthy() -> Self {
        Double {
            trails: Ok(vec![logging_trail("management-events", "us-east-1", true)]),
            rules: HashMap::from([
                (
                    GRANT_RULE.to_string(),
                    rule("gw-grant-events", true, &[WATCHER_ARN]),
                ),
                (
                    TAMPER_RULE.to_string(),
                    rule("gw-tamper-events", true, &[WATCHER_ARN]),
                ),
            ]),
            subscriptions: HashMap::from([
                (ALERT_TOPIC.to_string(), vec![email(true)]),
                (ALARM_TOPIC.to_string(), vec![email(true)]),
            ]),
            depths: HashMap::from([(DLQ.to_string(), 0), (FAILED.to_string(), 0)]),
            metrics: HashMap::from([(("Heartbeats".to_string(), "gw-watcher".to_string()), 2.0)]),
            newest_report: Some(time::macros::date!(2026 - 11 - 23)),
            asked: RefCell::new(Vec::new()),
        }
    }
}

fn missing(what: &str) -> PortError {
    PortError::Permanent(format!("no {what}"))
}

impl Cloud for Double {
    async fn stack(&self, _name: &str) -> Result<StackFacts, PortError> {
        Ok(StackFacts {
            outputs: outputs(),
            created: None,
        })
    }
    async fn trails(&self, region: &str) -> Result<Vec<TrailFacts>, PortError> {
        self.asked.borrow_mut().push(region.to_string());
        self.trails.clone()
    }
    async fn rule(&self, rule_arn: &str) -> Result<RuleFacts, PortError> {
        self.rules
            .get(rule_arn)
            .cloned()
            .ok_or_else(|| missing(rule_arn))
    }
    async fn subscriptions(&self, topic_arn: &str) -> Result<Vec<SubscriptionFacts>, PortError> {
        self.subscriptions
            .get(topic_arn)
            .cloned()
            .ok_or_else(|| missing(topic_arn))
    }
    async fn queue_depth(&self, queue_url: &str) -> Result<u64, PortError> {
        self.depths
            .get(queue_url)
            .copied()
            .ok_or_else(|| missing(queue_url))
    }
    async fn metric_sum(
        &self,
        metric: FunctionMetric<'_>,
        _window: Duration,
    ) -> Result<f64, PortError> {
        Ok(self
            .metrics
            .get(&(metric.name.to_string(), metric.function.to_string()))
            .copied()
            .unwrap_or(0.0))
    }
    async fn newest_report(&self, _bucket: &str) -> Result<Option<Date>, PortError> {
        Ok(self.newest_report)
    }
}

fn outputs() -> HashMap<String, String> {
    [
        ("WatcherFunctionArn", WATCHER_ARN),
        ("WatcherFunctionName", "gw-watcher"),
        ("ReportFunctionName", "gw-report"),
        ("GrantEventsRuleArn", GRANT_RULE),
        ("TamperEventsRuleArn", TAMPER_RULE),
        ("AlertTopicArn", ALERT_TOPIC),
        ("AlarmTopicArn", ALARM_TOPIC),
        ("EventDeadLetterQueueUrl", DLQ),
        ("FailedInvocationQueueUrl", FAILED),
        ("LedgerTableName", "gw-ledger"),
        ("ReportBucketName", "gw-reports"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn plan(regions: &[&str]) -> Plan {
    Plan {
        trail_regions: regions.iter().map(|r| r.to_string()).collect(),
        outputs: outputs(),
        created: None,
        now: now(),
    }
}

fn run(double: &Double, plan: &Plan) -> Vec<Finding> {
    block_on(examine(double, plan))
}

fn only(findings: &[Finding], check: &str) -> Finding {
    let matching: Vec<&Finding> = findings.iter().filter(|f| f.check == check).collect();
    assert_eq!(matching.len(), 1, "{check}: {findings:#?}");
    matching[0].clone()
}

fn not_passing(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.status != Status::Pass)
        .collect()
}

#[test]
fn a_healthy_stack_passes_every_check() {
    let findings = run(&Double::healthy(), &plan(&["us-east-1"]));
    assert_eq!(not_passing(&findings), Vec::<&Finding>::new());
    let checks: Vec<&str> = findings.iter().map(|f| f.check).collect();
    assert_eq!(
        checks,
        [
            "trail",
            "grant rule",
            "tamper rule",
            "alert topic",
            "alarm topic",
            "failure queue",
            "failure queue",
            "recent invocations",
            "recent invocations",
            "heartbeat",
            "report"
        ]
    );
}

#[test]
fn an_unconfirmed_email_subscription_fails_and_the_fix_resends_the_confirmation() {
    let mut double = Double::healthy();
    double
        .subscriptions
        .insert(ALERT_TOPIC.into(), vec![email(false)]);
    let findings = run(&double, &plan(&["us-east-1"]));
    let topic = only(&findings, "alert topic");
    assert_eq!(topic.status, Status::Fail);
    assert!(topic.detail.contains("pending confirmation"), "{topic:?}");
    assert_eq!(
        topic.fix.as_deref(),
        Some(
            "aws sns subscribe --topic-arn arn:aws:sns:us-east-1:123456789012:gw-alerts \
             --protocol email --notification-endpoint secops@example.com"
        )
    );
    assert_eq!(only(&findings, "alarm topic").status, Status::Pass);
}

#[test]
fn a_confirmed_subscription_does_not_hide_a_pending_one() {
    let mut double = Double::healthy();
    double
        .subscriptions
        .insert(ALARM_TOPIC.into(), vec![email(true), email(false)]);
    let findings = run(&double, &plan(&["us-east-1"]));
    assert_eq!(only(&findings, "alarm topic").status, Status::Fail);
}

#[test]
fn a_topic_without_subscription_fails() {
    let mut double = Double::healthy();
    double.subscriptions.insert(ALERT_TOPIC.into(), vec![]);
    let topic = only(&run(&double, &plan(&["us-east-1"])), "alert topic");
    assert_eq!(topic.status, Status::Fail);
    assert!(topic
        .fix
        .is_some_and(|f| f.starts_with("aws sns subscribe")));
}

#[test]
fn each_region_needs_a_trail_and_a_multi_region_trail_covers_others() {
    let mut double = Double::healthy();
    double.trails = Ok(vec![logging_trail("local", "us-east-1", false)]);
    let findings = run(&double, &plan(&["us-east-1", "eu-west-1"]));
    assert_eq!(*double.asked.borrow(), ["us-east-1", "eu-west-1"]);
    let trails: Vec<&Finding> = findings.iter().filter(|f| f.check == "trail").collect();
    assert_eq!(trails[0].status, Status::Pass);
    assert_eq!(trails[1].status, Status::Fail);
    assert_eq!(trails[1].subject, "eu-west-1");
    assert!(trails[1]
        .fix
        .as_deref()
        .is_some_and(|f| f.contains("create-trail --region eu-west-1")));

    double.trails = Ok(vec![logging_trail("everywhere", "us-east-1", true)]);
    let findings = run(&double, &plan(&["us-east-1", "eu-west-1"]));
    assert!(findings
        .iter()
        .filter(|f| f.check == "trail")
        .all(|f| f.status == Status::Pass));
}

#[test]
fn an_organization_trail_counts() {
    let mut double = Double::healthy();
    let mut org = logging_trail("org", "us-east-1", true);
    org.organization = true;
    double.trails = Ok(vec![org]);
    let trail = only(&run(&double, &plan(&["us-east-1"])), "trail");
    assert_eq!(trail.status, Status::Pass);
    assert!(trail.detail.contains("organization trail org"), "{trail:?}");
}

#[test]
fn a_stopped_trail_fails_with_start_logging() {
    let mut double = Double::healthy();
    let mut stopped = logging_trail("management-events", "us-east-1", true);
    stopped.logging = Ok(false);
    double.trails = Ok(vec![stopped]);
    let trail = only(&run(&double, &plan(&["us-east-1"])), "trail");
    assert_eq!(trail.status, Status::Fail);
    assert_eq!(
        trail.fix.as_deref(),
        Some(
            "aws cloudtrail start-logging --region us-east-1 \
             --name arn:aws:cloudtrail:us-east-1:123456789012:trail/management-events"
        )
    );
}

#[test]
fn a_trail_that_cannot_be_read_is_an_error_not_a_pass() {
    let mut double = Double::healthy();
    let mut hidden = logging_trail("org", "us-east-1", true);
    hidden.logging = Err("GetTrailStatus: AccessDeniedException".into());
    double.trails = Ok(vec![hidden]);
    let trail = only(&run(&double, &plan(&["us-east-1"])), "trail");
    assert_eq!(trail.status, Status::Error);
    assert!(trail.detail.contains("AccessDenied"));

    double.trails = Err(PortError::Transient("DescribeTrails: Throttling".into()));
    assert_eq!(
        only(&run(&double, &plan(&["us-east-1"])), "trail").status,
        Status::Error
    );
}

fn basic(read_write: &str, management: bool, excluded: &[&str]) -> Selectors {
    Selectors::Basic(vec![BasicSelector {
        read_write_type: Some(read_write.into()),
        include_management_events: Some(management),
        exclude_management_event_sources: excluded.iter().map(|s| s.to_string()).collect(),
    }])
}

fn field(name: &str, equals: &[&str], not_equals: &[&str]) -> FieldSelector {
    FieldSelector {
        field: name.into(),
        equals: equals.iter().map(|s| s.to_string()).collect(),
        not_equals: not_equals.iter().map(|s| s.to_string()).collect(),
        ..FieldSelector::default()
    }
}

fn advanced(fields: Vec<FieldSelector>) -> Selectors {
    Selectors::Advanced(vec![AdvancedSelector { fields }])
}

#[test]
fn basic_selectors_must_take_kms_management_writes() {
    assert_eq!(selectors_miss_grant_calls(&basic("All", true, &[])), None);
    assert_eq!(
        selectors_miss_grant_calls(&basic("WriteOnly", true, &[])),
        None
    );
    assert!(selectors_miss_grant_calls(&basic("ReadOnly", true, &[])).is_some());
    assert!(selectors_miss_grant_calls(&basic("All", false, &[])).is_some());
    assert!(selectors_miss_grant_calls(&basic("All", true, &["kms.amazonaws.com"])).is_some());
    assert_eq!(
        selectors_miss_grant_calls(&basic("All", true, &["rdsdata.amazonaws.com"])),
        None
    );
    assert!(selectors_miss_grant_calls(&Selectors::Basic(vec![])).is_some());
}

#[test]
fn advanced_selectors_are_evaluated_for_a_kms_write() {
    let management = field("eventCategory", &["Management"], &[]);
    assert_eq!(
        selectors_miss_grant_calls(&advanced(vec![management.clone()])),
        None
    );
    assert_eq!(
        selectors_miss_grant_calls(&advanced(vec![
            management.clone(),
            field("readOnly", &["false"], &[])
        ])),
        None
    );
    assert!(selectors_miss_grant_calls(&advanced(vec![
        management.clone(),
        field("readOnly", &["true"], &[])
    ]))
    .is_some());
    assert!(selectors_miss_grant_calls(&advanced(vec![
        management.clone(),
        field("eventSource", &[], &["kms.amazonaws.com"])
    ]))
    .is_some());
    // Data events only.
    assert!(selectors_miss_grant_calls(&advanced(vec![
        field("eventCategory", &["Data"], &[]),
        field("resources.type", &["AWS::S3::Object"], &[])
    ]))
    .is_some());
    // A selector without eventCategory is not a management selector.
    assert!(
        selectors_miss_grant_calls(&advanced(vec![field("readOnly", &["false"], &[])])).is_some()
    );
}

#[test]
fn a_trail_missing_kms_events_fails_with_the_selector_fix() {
    let mut double = Double::healthy();
    let mut trail = logging_trail("management-events", "us-east-1", true);
    trail.selectors = Ok(advanced(vec![
        field("eventCategory", &["Management"], &[]),
        field("eventSource", &[], &["kms.amazonaws.com"]),
    ]));
    double.trails = Ok(vec![trail]);
    let found = only(&run(&double, &plan(&["us-east-1"])), "trail");
    assert_eq!(found.status, Status::Fail);
    assert!(found.fix.as_deref().is_some_and(
        |f| f.contains("put-event-selectors") && f.contains("--advanced-event-selectors")
    ));
}

#[test]
fn a_disabled_rule_and_a_rule_without_the_watcher_fail() {
    let mut double = Double::healthy();
    double.rules.insert(
        GRANT_RULE.into(),
        rule("gw-grant-events", false, &[WATCHER_ARN]),
    );
    double.rules.insert(
        TAMPER_RULE.into(),
        rule("gw-tamper-events", true, &["arn:aws:sqs:x"]),
    );
    let findings = run(&double, &plan(&["us-east-1"]));
    let grant = only(&findings, "grant rule");
    assert_eq!(grant.status, Status::Fail);
    assert_eq!(
        grant.fix.as_deref(),
        Some("aws events enable-rule --name gw-grant-events")
    );
    let tamper = only(&findings, "tamper rule");
    assert_eq!(tamper.status, Status::Fail);
    assert_eq!(
        tamper.fix.as_deref(),
        Some(&*format!(
            "aws events put-targets --rule gw-tamper-events --targets Id=grant-watcher,Arn={WATCHER_ARN}"
        ))
    );
}

#[test]
fn a_rule_on_a_custom_bus_names_its_bus_and_a_qualified_target_counts() {
    let mut double = Double::healthy();
    let on_bus = "arn:aws:events:us-east-1:123456789012:rule/gw-bus/gw-grant-events";
    double.rules.insert(
        on_bus.into(),
        rule("gw-grant-events", false, &[&format!("{WATCHER_ARN}:live")]),
    );
    let mut plan = plan(&["us-east-1"]);
    plan.outputs
        .insert("GrantEventsRuleArn".into(), on_bus.into());
    let grant = only(&run(&double, &plan), "grant rule");
    assert_eq!(
        grant.fix.as_deref(),
        Some("aws events enable-rule --name gw-grant-events --event-bus-name gw-bus")
    );
    double.rules.insert(
        on_bus.into(),
        rule("gw-grant-events", true, &[&format!("{WATCHER_ARN}:live")]),
    );
    assert_eq!(
        only(&run(&double, &plan), "grant rule").status,
        Status::Pass
    );
    // Another function whose name starts like the watcher's is not it.
    double.rules.insert(
        on_bus.into(),
        rule("gw-grant-events", true, &[&format!("{WATCHER_ARN}-old")]),
    );
    assert_eq!(
        only(&run(&double, &plan), "grant rule").status,
        Status::Fail
    );
}

#[test]
fn a_waiting_failure_queue_fails_with_the_redrive_command() {
    let mut double = Double::healthy();
    double.depths.insert(FAILED.into(), 3);
    let findings = run(&double, &plan(&["us-east-1"]));
    let queues: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.check == "failure queue")
        .collect();
    assert_eq!(queues[0].status, Status::Pass);
    assert_eq!(queues[1].status, Status::Fail);
    assert!(queues[1].detail.starts_with("3 event(s) waiting"));
    assert_eq!(
        queues[1].fix.as_deref(),
        Some(&*format!(
            "grantwatch redrive --queue {FAILED} --alert-topic-arn {ALERT_TOPIC} --ledger-table gw-ledger"
        ))
    );
}

#[test]
fn watcher_errors_and_a_missing_heartbeat_fail() {
    let mut double = Double::healthy();
    double.metrics.clear();
    double
        .metrics
        .insert(("Errors".into(), "gw-watcher".into()), 2.0);
    let findings = run(&double, &plan(&["us-east-1"]));
    let invocations: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.check == "recent invocations")
        .collect();
    assert_eq!(invocations[0].subject, "gw-watcher");
    assert_eq!(invocations[0].status, Status::Fail);
    assert_eq!(invocations[1].status, Status::Pass);
    let heartbeat = only(&findings, "heartbeat");
    assert_eq!(heartbeat.status, Status::Fail);
    assert!(heartbeat.detail.contains("no heartbeat in the last 30 min"));
}

#[test]
fn a_report_older_than_eight_days_fails_and_none_is_due_in_the_first_week() {
    let mut double = Double::healthy();
    double.newest_report = Some(time::macros::date!(2026 - 11 - 21));
    assert_eq!(
        only(&run(&double, &plan(&["us-east-1"])), "report").status,
        Status::Pass
    );
    double.newest_report = Some(time::macros::date!(2026 - 11 - 20));
    let report = only(&run(&double, &plan(&["us-east-1"])), "report");
    assert_eq!(report.status, Status::Fail);
    assert_eq!(
        report.fix.as_deref(),
        Some("aws lambda invoke --function-name gw-report --invocation-type Event /dev/null")
    );

    double.newest_report = None;
    let mut young = plan(&["us-east-1"]);
    young.created = Some(now() - time::Duration::days(3));
    assert_eq!(only(&run(&double, &young), "report").status, Status::Pass);
    young.created = Some(now() - time::Duration::days(30));
    assert_eq!(only(&run(&double, &young), "report").status, Status::Fail);
}

#[test]
fn a_missing_output_is_an_error_that_names_the_flag() {
    let mut plan = plan(&["us-east-1"]);
    plan.outputs.remove("AlarmTopicArn");
    let alarm = only(&run(&Double::healthy(), &plan), "alarm topic");
    assert_eq!(alarm.status, Status::Error);
    assert!(alarm.detail.contains("--resource AlarmTopicArn=VALUE"));
}
