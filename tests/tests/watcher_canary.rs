//! Issue 10's canary grant through the compiled grant-watcher, in moto
//! (which evaluates no alarms: what is tested is what the alarms read).
//! A heartbeat starts the day's round trip on the canary key (a real
//! CreateGrant and RetireGrant in moto's KMS) and books it in the ledger;
//! the two CloudTrail events are `info`, never alerted, and complete the
//! run on the next heartbeat (`CanaryCompleted`); a leg never seen shows
//! as missed once the bound has passed (`CanaryMissed`), with what is
//! missing; a person's grant on the canary key still alerts.

use aws_sdk_dynamodb::types::AttributeValue;
use grantwatch_e2e::runtime_api::{function_binary, Function};
use grantwatch_e2e::watcher_world::{fixture, World};
use serde_json::{json, Value};

const WATCHER_ROLE: &str = "arn:aws:iam::123456789012:role/grantwatch-WatcherRole-CANARY1";

struct Canary {
    world: World,
    function: Function,
    key_arn: String,
    run_id: String,
}

impl Canary {
    /// The stack in moto, a canary key, and the watcher configured with it.
    async fn new() -> Canary {
        let world = World::new(&[]).await;
        let key = world
            .moto
            .kms()
            .await
            .create_key()
            .description("grantwatch canary")
            .send()
            .await
            .unwrap();
        let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
        let config = world
            .config
            .clone()
            .env("CANARY_KEY_ARN", &key_arn)
            .env("CANARY_PRINCIPAL_ARN", WATCHER_ROLE);
        let function = Function::start(&function_binary("grant-watcher"), config)
            .await
            .expect("start grant-watcher");
        Canary {
            world,
            function,
            key_arn,
            run_id: String::new(),
        }
    }

    async fn heartbeat(&self, n: u32) -> Value {
        let outcome = self
            .function
            .invoke(json!({
                "version": "0",
                "id": format!("canary-heartbeat-{n}"),
                "detail-type": "grantwatch heartbeat",
                "source": "grantwatch.heartbeat",
                "account": "123456789012",
                "time": "2026-11-29T00:00:00Z",
                "region": "us-east-1",
                "resources": [],
                "detail": {"stack": "grantwatch"},
            }))
            .await
            .unwrap();
        assert_eq!(outcome["outcome"], "heartbeat", "{outcome}");
        // Its log line follows its metrics on stdout (read in the background).
        let logged = format!("heartbeat:canary-heartbeat-{n}");
        assert!(
            self.function.wait_for_stdout(&logged).await,
            "{logged} logged"
        );
        outcome
    }

    async fn run(&self) -> std::collections::HashMap<String, AttributeValue> {
        self.world
            .item("CANARY", &format!("RUN#{}", self.run_id))
            .await
            .expect("the run is booked")
    }

    async fn grant_id(&self) -> String {
        text(&self.run().await, "grant_id").expect("the run names its grant")
    }

    /// A CloudTrail event on the canary key, as EventBridge delivers it.
    fn leg(&self, fixture_name: &str, grant_id: &str, event_id: &str, by: &str) -> Value {
        let mut event = fixture(fixture_name);
        let detail = &mut event["detail"];
        detail["eventID"] = event_id.into();
        detail["userIdentity"] = json!({
            "type": "AssumedRole",
            "arn": by,
            "accountId": "123456789012",
        });
        detail["requestParameters"]["keyId"] = self.key_arn.clone().into();
        detail["resources"] = json!([{"ARN": self.key_arn, "type": "AWS::KMS::Key"}]);
        if fixture_name == "manual-cross-account-grant" {
            detail["responseElements"]["keyId"] = self.key_arn.clone().into();
            detail["responseElements"]["grantId"] = grant_id.into();
        } else {
            detail["requestParameters"]["grantId"] = grant_id.into();
        }
        event
    }

    fn created(&self, grant_id: &str, event_id: &str) -> Value {
        self.leg(
            "manual-cross-account-grant",
            grant_id,
            event_id,
            "arn:aws:sts::123456789012:assumed-role/grantwatch-WatcherRole-CANARY1/grantwatch-WatcherFunction",
        )
    }

    fn retired(&self, grant_id: &str, event_id: &str) -> Value {
        self.leg(
            "manual-retire-grant",
            grant_id,
            event_id,
            "arn:aws:sts::123456789012:assumed-role/grantwatch-WatcherRole-CANARY1/grantwatch-WatcherFunction",
        )
    }
}

fn text(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_round_trip_is_booked_its_events_are_info_and_complete_it() {
    let mut canary = Canary::new().await;

    let first = canary.heartbeat(1).await;
    let today = time::OffsetDateTime::now_utc().date();
    canary.run_id = first["canary"]["started"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The run of the day (or of the day before, across midnight UTC).
    assert!(
        canary.run_id == format!("watcher-{today}")
            || canary.run_id == format!("watcher-{}", today.previous_day().unwrap()),
        "{first}"
    );
    assert_eq!(
        first["canary"]["started"],
        canary.run_id.as_str(),
        "{first}"
    );
    assert_eq!(canary.function.metric_sum("CanaryStarted"), 1.0);
    let grant_id = canary.grant_id().await;
    // The grant was made and retired again in KMS.
    let grants = canary
        .world
        .moto
        .kms()
        .await
        .list_grants()
        .key_id(&canary.key_arn)
        .send()
        .await
        .unwrap();
    assert!(
        grants
            .grants()
            .iter()
            .all(|g| g.grant_id() != Some(grant_id.as_str())),
        "the canary grant is retired: {grants:?}"
    );
    let second = canary.heartbeat(2).await;
    assert!(
        second["canary"].get("started").is_none(),
        "one run a day: {second}"
    );

    for leg in [
        canary.created(&grant_id, "canary-ct-create"),
        canary.retired(&grant_id, "canary-ct-retire"),
    ] {
        let outcome = canary.function.invoke(leg).await.unwrap();
        assert_eq!(outcome["outcome"], "watched", "{outcome}");
        assert_eq!(outcome["severity"], "info", "{outcome}");
        assert_eq!(outcome["alert"], false, "{outcome}");
    }
    let run = canary.run().await;
    assert!(run.contains_key("created_seen_at") && run.contains_key("retired_seen_at"));

    let third = canary.heartbeat(3).await;
    assert_eq!(
        third["canary"]["completed"],
        json!([canary.run_id]),
        "{third}"
    );
    assert_eq!(canary.function.metric_sum("CanaryCompleted"), 1.0);
    assert_eq!(canary.function.metric_sum("CanaryMissed"), 0.0);
    assert_eq!(
        text(&canary.run().await, "settled").as_deref(),
        Some("completed")
    );
    assert_eq!(canary.function.metric_sum("Heartbeats"), 3.0);

    assert!(
        canary.world.inbox.receive().await.is_empty(),
        "the canary never alerts"
    );
    assert!(canary.world.slack.accepted().is_empty());

    // A person's own grant on the canary key is judged as any grant.
    let person = canary.leg(
        "manual-cross-account-grant",
        "persons-grant-on-the-canary-key",
        "canary-ct-person",
        "arn:aws:sts::123456789012:assumed-role/Admin/mallory",
    );
    let outcome = canary.function.invoke(person).await.unwrap();
    assert_eq!(outcome["alert"], true, "{outcome}");
    assert_eq!(canary.world.inbox.receive().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_never_seen_shows_as_missed_in_the_bookkeeping_once() {
    let mut canary = Canary::new().await;
    let first = canary.heartbeat(1).await;
    canary.run_id = first["canary"]["started"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let grant_id = canary.grant_id().await;
    let created = canary
        .function
        .invoke(canary.created(&grant_id, "canary-ct-create-only"))
        .await
        .unwrap();
    assert_eq!(created["severity"], "info", "{created}");

    // Within the bound: nothing to say yet.
    let early = canary.heartbeat(2).await;
    assert!(
        early.get("canary").is_none() || early["canary"] == json!({}),
        "{early}"
    );
    assert_eq!(canary.function.metric_sum("CanaryMissed"), 0.0);

    // The run started 40 minutes ago (bound: 30) and its RetireGrant never came.
    let started = canary.run().await["started_at"]
        .as_n()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    canary
        .world
        .moto
        .dynamodb()
        .await
        .update_item()
        .table_name(&canary.world.table)
        .key("pk", AttributeValue::S("CANARY".into()))
        .key("sk", AttributeValue::S(format!("RUN#{}", canary.run_id)))
        .update_expression("SET started_at = :t")
        .expression_attribute_values(":t", AttributeValue::N((started - 40 * 60).to_string()))
        .send()
        .await
        .unwrap();

    let late = canary.heartbeat(3).await;
    let missed = &late["canary"]["missed"];
    assert_eq!(missed[0][0], canary.run_id.as_str(), "{late}");
    let why = missed[0][1].as_str().unwrap();
    assert!(
        why.starts_with(&format!(
            "RetireGrant of grant {grant_id} not seen by the watcher within 30 minutes"
        )),
        "{why}"
    );
    assert_eq!(canary.function.metric_sum("CanaryMissed"), 1.0);
    let run = canary.run().await;
    assert_eq!(text(&run, "settled").as_deref(), Some("missed"));
    assert_eq!(text(&run, "settled_why").as_deref(), Some(why));

    canary.heartbeat(4).await;
    assert_eq!(
        canary.function.metric_sum("CanaryMissed"),
        1.0,
        "a missed run is counted once"
    );
    assert!(canary.world.inbox.receive().await.is_empty());
}
