//! The harness itself: moto with an SNS → SQS read-back, and the Slack
//! stand-in's scripting. (The Runtime API is exercised by watcher_e2e.)

use aws_sdk_sns::types::MessageAttributeValue;
use grantwatch_e2e::moto::Moto;
use grantwatch_e2e::slack_stub::{Reply, SlackStub};

#[tokio::test]
async fn sns_messages_are_read_back_with_subject_and_attributes() {
    let moto = Moto::start().await;
    let sns = moto.sns().await;
    let topic = sns.create_topic().name("alerts").send().await.unwrap();
    let topic_arn = topic.topic_arn().unwrap();
    let inbox = moto.subscribe_queue(topic_arn).await;

    sns.publish()
        .topic_arn(topic_arn)
        .subject("[HIGH] test subject")
        .message("body")
        .message_attributes(
            "severity",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("high")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let delivered = inbox.receive().await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].subject.as_deref(), Some("[HIGH] test subject"));
    assert_eq!(delivered[0].message, "body");
    assert_eq!(
        delivered[0].attributes.get("severity").map(String::as_str),
        Some("high")
    );
    assert!(
        inbox.receive().await.is_empty(),
        "read messages are deleted"
    );

    moto.reset().await;
    assert!(sns.list_topics().send().await.unwrap().topics().is_empty());
}

#[tokio::test]
async fn slack_stub_answers_as_scripted_and_records_every_post() {
    let slack = SlackStub::start().await;
    slack.script([
        Reply::TooManyRequests {
            retry_after_secs: 2,
        },
        Reply::ServerError,
    ]);
    let http = reqwest::Client::new();
    let post = |text: &str| {
        http.post(slack.url())
            .json(&serde_json::json!({ "text": text }))
            .send()
    };
    let throttled = post("one").await.unwrap();
    assert_eq!(throttled.status().as_u16(), 429);
    assert_eq!(throttled.headers()["retry-after"], "2");
    assert_eq!(post("two").await.unwrap().status().as_u16(), 500);
    let ok = post("three").await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "ok");
    slack.set_fallback(Reply::NotFound);
    assert_eq!(post("four").await.unwrap().status().as_u16(), 404);

    let statuses: Vec<u16> = slack.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 500, 200, 404]);
    assert_eq!(slack.accepted(), [serde_json::json!({ "text": "three" })]);
}
