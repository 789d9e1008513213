//! [`Cloud`] through the AWS SDK: CloudFormation, CloudTrail, EventBridge,
//! SNS, SQS, CloudWatch and the report store.

use super::checks::{
    rule_location, AdvancedSelector, BasicSelector, Cloud, FieldSelector, FunctionMetric,
    RuleFacts, RuleLocation, Selectors, StackFacts, SubscriptionFacts, TrailFacts,
};
use aws_config::{Region, SdkConfig};
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_sdk_sqs::types::QueueAttributeName;
use grantwatch_aws::sdk::{classify, s3_client};
use grantwatch_aws::store::{S3ReportStore, REPORT_PREFIX};
use grantwatch_core::ports::inventory::ReportStore;
use grantwatch_core::ports::PortError;
use std::time::{Duration, SystemTime};
use time::{Date, OffsetDateTime};

pub struct SdkCloud {
    config: SdkConfig,
    events: aws_sdk_eventbridge::Client,
    sns: aws_sdk_sns::Client,
}

impl SdkCloud {
    pub fn new(config: SdkConfig) -> Self {
        SdkCloud {
            events: aws_sdk_eventbridge::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            config,
        }
    }

    fn cloudtrail(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        let config = aws_sdk_cloudtrail::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .build();
        aws_sdk_cloudtrail::Client::from_conf(config)
    }
}

/// One period per hour at most (GetMetricStatistics returns at most 1,440 points).
fn period_of(window: Duration) -> i32 {
    if window.as_secs() <= 3600 {
        60
    } else {
        3600
    }
}

impl Cloud for SdkCloud {
    async fn stack(&self, name: &str) -> Result<StackFacts, PortError> {
        let client = aws_sdk_cloudformation::Client::new(&self.config);
        let out = client
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| classify("DescribeStacks", &e))?;
        let stack = out
            .stacks()
            .first()
            .ok_or_else(|| PortError::Permanent(format!("DescribeStacks: no stack {name}")))?;
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect();
        let created = stack
            .creation_time()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
        Ok(StackFacts { outputs, created })
    }

    async fn trails(&self, region: &str) -> Result<Vec<TrailFacts>, PortError> {
        let client = self.cloudtrail(region);
        let out = client
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await
            .map_err(|e| classify("DescribeTrails", &e))?;
        let mut trails = Vec::new();
        for trail in out.trail_list() {
            let arn = trail
                .trail_arn()
                .or(trail.name())
                .unwrap_or_default()
                .to_string();
            let home_region = trail.home_region().unwrap_or(region).to_string();
            // A shadow trail's status is read by ARN in the region asked
            // about; its selectors (one set per trail) in its home region.
            let logging = client
                .get_trail_status()
                .name(&arn)
                .send()
                .await
                .map(|s| s.is_logging().unwrap_or(false))
                .map_err(|e| classify("GetTrailStatus", &e).to_string());
            let selectors = self
                .cloudtrail(&home_region)
                .get_event_selectors()
                .trail_name(&arn)
                .send()
                .await
                .map(|s| selectors_of(&s))
                .map_err(|e| classify("GetEventSelectors", &e).to_string());
            trails.push(TrailFacts {
                name: trail.name().unwrap_or(&arn).to_string(),
                arn,
                home_region,
                multi_region: trail.is_multi_region_trail().unwrap_or(false),
                organization: trail.is_organization_trail().unwrap_or(false),
                logging,
                selectors,
            });
        }
        Ok(trails)
    }

    async fn rule(&self, rule_arn: &str) -> Result<RuleFacts, PortError> {
        let client = &self.events;
        let RuleLocation { bus, name } = rule_location(rule_arn)
            .ok_or_else(|| PortError::Permanent(format!("{rule_arn:?} is not a rule ARN")))?;
        let described = client
            .describe_rule()
            .name(name)
            .set_event_bus_name(bus.map(str::to_string))
            .send()
            .await
            .map_err(|e| classify("DescribeRule", &e))?;
        let enabled = described
            .state()
            .is_some_and(|s| s.as_str().starts_with("ENABLED"));
        let mut target_arns = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_targets_by_rule()
                .rule(name)
                .set_event_bus_name(bus.map(str::to_string))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListTargetsByRule", &e))?;
            target_arns.extend(page.targets().iter().map(|t| t.arn().to_string()));
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(RuleFacts {
            name: name.to_string(),
            enabled,
            target_arns,
        })
    }

    async fn subscriptions(&self, topic_arn: &str) -> Result<Vec<SubscriptionFacts>, PortError> {
        let client = &self.sns;
        let mut subscriptions = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_subscriptions_by_topic()
                .topic_arn(topic_arn)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListSubscriptionsByTopic", &e))?;
            subscriptions.extend(page.subscriptions().iter().map(|s| {
                SubscriptionFacts {
                    protocol: s.protocol().unwrap_or_default().to_string(),
                    endpoint: s.endpoint().unwrap_or_default().to_string(),
                    confirmed: s
                        .subscription_arn()
                        .is_some_and(|arn| arn.starts_with("arn:")),
                }
            }));
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(subscriptions)
    }

    async fn queue_depth(&self, queue_url: &str) -> Result<u64, PortError> {
        let client = aws_sdk_sqs::Client::new(&self.config);
        let names = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ];
        let out = client
            .get_queue_attributes()
            .queue_url(queue_url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", &e))?;
        let attributes = out.attributes();
        let mut depth = 0;
        for name in &names {
            let value = attributes.and_then(|a| a.get(name)).ok_or_else(|| {
                PortError::Permanent(format!("GetQueueAttributes: no {}", name.as_str()))
            })?;
            depth += value.parse::<u64>().map_err(|_| {
                PortError::Permanent(format!(
                    "GetQueueAttributes: {} is not a count",
                    name.as_str()
                ))
            })?;
        }
        Ok(depth)
    }

    async fn metric_sum(
        &self,
        metric: FunctionMetric<'_>,
        window: Duration,
    ) -> Result<f64, PortError> {
        let client = aws_sdk_cloudwatch::Client::new(&self.config);
        let now = SystemTime::now();
        let start = now - window;
        // Up to a minute ahead: a datapoint of the current second (or
        // minute) is counted; nothing is ever dated in the future.
        let end = now + Duration::from_secs(60);
        let out = client
            .get_metric_statistics()
            .namespace(metric.namespace)
            .metric_name(metric.name)
            .dimensions(
                Dimension::builder()
                    .name("FunctionName")
                    .value(metric.function)
                    .build(),
            )
            .start_time(start.into())
            .end_time(end.into())
            .period(period_of(window))
            .statistics(Statistic::Sum)
            .send()
            .await
            .map_err(|e| classify("GetMetricStatistics", &e))?;
        Ok(out.datapoints().iter().filter_map(|d| d.sum()).sum())
    }

    async fn newest_report(&self, bucket: &str) -> Result<Option<Date>, PortError> {
        let store = S3ReportStore::new(s3_client(&self.config), bucket, Duration::from_secs(60));
        let newest = store.recent_reports(1).await?;
        newest
            .first()
            .map(|report| report_date(&report.location))
            .transpose()
    }
}

/// `reports/YYYY-MM-DD/report.json` → the date.
fn report_date(location: &str) -> Result<Date, PortError> {
    location
        .strip_prefix(REPORT_PREFIX)
        .and_then(|rest| rest.split('/').next())
        .and_then(|date| crate::args::date(date).ok())
        .ok_or_else(|| PortError::Permanent(format!("{location:?} is not in a dated folder")))
}

fn selectors_of(
    out: &aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput,
) -> Selectors {
    if !out.advanced_event_selectors().is_empty() {
        return Selectors::Advanced(
            out.advanced_event_selectors()
                .iter()
                .map(|s| AdvancedSelector {
                    fields: s
                        .field_selectors()
                        .iter()
                        .map(|f| FieldSelector {
                            field: f.field().to_string(),
                            equals: f.equals().to_vec(),
                            not_equals: f.not_equals().to_vec(),
                            starts_with: f.starts_with().to_vec(),
                            not_starts_with: f.not_starts_with().to_vec(),
                            ends_with: f.ends_with().to_vec(),
                            not_ends_with: f.not_ends_with().to_vec(),
                        })
                        .collect(),
                })
                .collect(),
        );
    }
    Selectors::Basic(
        out.event_selectors()
            .iter()
            .map(|s| BasicSelector {
                read_write_type: s.read_write_type().map(|t| t.as_str().to_string()),
                include_management_events: s.include_management_events(),
                exclude_management_event_sources: s.exclude_management_event_sources().to_vec(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    //! Paging, which moto never does: every page is read, and a pending
    //! subscription or the watcher's target on a later page still counts.
    use super::super::checks::block_on;
    use super::*;
    use aws_sdk_eventbridge::operation::describe_rule::DescribeRuleOutput;
    use aws_sdk_eventbridge::operation::list_targets_by_rule::ListTargetsByRuleOutput;
    use aws_sdk_eventbridge::types::{RuleState, Target};
    use aws_sdk_sns::operation::list_subscriptions_by_topic::ListSubscriptionsByTopicOutput;
    use aws_sdk_sns::types::Subscription;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:alerts";
    const WATCHER: &str = "arn:aws:lambda:us-east-1:111122223333:function:watcher";

    fn offline_config() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build()
    }

    fn subscription(arn: &str, endpoint: &str) -> Subscription {
        Subscription::builder()
            .subscription_arn(arn)
            .protocol("email")
            .endpoint(endpoint)
            .topic_arn(TOPIC)
            .build()
    }

    #[test]
    fn subscriptions_are_read_across_pages_and_a_pending_one_is_unconfirmed() {
        let first = mock!(aws_sdk_sns::Client::list_subscriptions_by_topic)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| {
                ListSubscriptionsByTopicOutput::builder()
                    .subscriptions(subscription(&format!("{TOPIC}:0a1b"), "a@example.com"))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(aws_sdk_sns::Client::list_subscriptions_by_topic)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(|| {
                ListSubscriptionsByTopicOutput::builder()
                    .subscriptions(subscription("PendingConfirmation", "b@example.com"))
                    .build()
            });
        let mut cloud = SdkCloud::new(offline_config());
        cloud.sns = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&first, &second]);
        let found = block_on(cloud.subscriptions(TOPIC)).unwrap_or_else(|e| panic!("{e}"));
        let seen: Vec<(&str, bool)> = found
            .iter()
            .map(|s| (s.endpoint.as_str(), s.confirmed))
            .collect();
        assert_eq!(seen, [("a@example.com", true), ("b@example.com", false)]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[test]
    fn a_rules_targets_are_read_across_pages_on_its_bus() {
        let described = mock!(aws_sdk_eventbridge::Client::describe_rule)
            .match_requests(|r| {
                r.name() == Some("grant-events") && r.event_bus_name() == Some("org-bus")
            })
            .then_output(|| {
                DescribeRuleOutput::builder()
                    .name("grant-events")
                    .state(RuleState::Enabled)
                    .build()
            });
        let target = |id: &str, arn: &str| Target::builder().id(id).arn(arn).build();
        let first = mock!(aws_sdk_eventbridge::Client::list_targets_by_rule)
            .match_requests(|r| r.next_token().is_none())
            .then_output(move || {
                ListTargetsByRuleOutput::builder()
                    .set_targets(
                        target("tap", "arn:aws:sqs:us-east-1:111122223333:tap")
                            .ok()
                            .map(|t| vec![t]),
                    )
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(aws_sdk_eventbridge::Client::list_targets_by_rule)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(move || {
                ListTargetsByRuleOutput::builder()
                    .set_targets(target("grant-watcher", WATCHER).ok().map(|t| vec![t]))
                    .build()
            });
        let mut cloud = SdkCloud::new(offline_config());
        cloud.events = mock_client!(
            aws_sdk_eventbridge,
            RuleMode::MatchAny,
            [&described, &first, &second]
        );
        let rule =
            block_on(cloud.rule("arn:aws:events:us-east-1:111122223333:rule/org-bus/grant-events"))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rule,
            RuleFacts {
                name: "grant-events".into(),
                enabled: true,
                target_arns: vec![
                    "arn:aws:sqs:us-east-1:111122223333:tap".into(),
                    WATCHER.into()
                ],
            }
        );
    }

    #[test]
    fn a_report_folder_gives_its_date() {
        assert_eq!(
            report_date("reports/2026-11-23/report.json").ok(),
            Some(time::macros::date!(2026 - 11 - 23))
        );
        assert!(report_date("elsewhere/report.json").is_err());
    }
}
