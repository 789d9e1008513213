//! The harness's moto keeps DynamoDB's transaction semantics although it
//! no longer copies whole tables to roll one back (tests/src/moto.rs,
//! `SERVE_ON_OWN_SOCKET`): a cancelled TransactWriteItems leaves nothing of
//! itself behind, a committed one writes every item, and no other request
//! sees half of one or loses its write to a rollback.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement,
    KeyType, Put, ScalarAttributeType, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use grantwatch_e2e::moto::Moto;
use std::collections::{BTreeMap, HashMap};

const TABLE: &str = "ledger";
type Item = HashMap<String, AttributeValue>;

async fn table(moto: &Moto) -> Client {
    let dynamodb = moto.dynamodb().await;
    let mut create = dynamodb
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in [("pk", KeyType::Hash), ("sk", KeyType::Range)] {
        create = create
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            );
    }
    create.send().await.expect("create table");
    dynamodb
}

fn key(pk: &str, sk: &str) -> Item {
    [("pk", pk), ("sk", sk)]
        .into_iter()
        .map(|(name, value)| (name.to_string(), AttributeValue::S(value.to_string())))
        .collect()
}

fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

async fn put(dynamodb: &Client, pk: &str, sk: &str, extra: &[(&str, AttributeValue)]) {
    let mut item = key(pk, sk);
    item.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    dynamodb
        .put_item()
        .table_name(TABLE)
        .set_item(Some(item))
        .send()
        .await
        .expect("put item");
}

/// Every item in the table, by (pk, sk), each without its key.
async fn contents(dynamodb: &Client) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let scan = dynamodb
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .expect("scan");
    let text = |value: &AttributeValue| match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        other => format!("{other:?}"),
    };
    scan.items()
        .iter()
        .map(|item| {
            let pk = text(&item["pk"]);
            let sk = text(&item["sk"]);
            let rest = item
                .iter()
                .filter(|(name, _)| *name != "pk" && *name != "sk")
                .map(|(name, value)| (name.clone(), text(value)))
                .collect();
            ((pk, sk), rest)
        })
        .collect()
}

fn add_one(pk: &str, sk: &str, by: i64) -> TransactWriteItem {
    let update = Update::builder()
        .table_name(TABLE)
        .set_key(Some(key(pk, sk)))
        .update_expression("ADD n :by")
        .expression_attribute_values(":by", number(by))
        .build()
        .unwrap();
    TransactWriteItem::builder().update(update).build()
}

/// A check that fails: the item `pk`/`sk` does not exist.
fn exists(pk: &str, sk: &str) -> TransactWriteItem {
    let check = ConditionCheck::builder()
        .table_name(TABLE)
        .set_key(Some(key(pk, sk)))
        .condition_expression("attribute_exists(pk)")
        .build()
        .unwrap();
    TransactWriteItem::builder().condition_check(check).build()
}

/// Writes of every kind moto applies one by one: a new item in a new
/// partition, an update, a new item beside an existing one, a delete.
fn writes() -> Vec<TransactWriteItem> {
    let mut new_item = key("A", "1");
    new_item.insert("x".into(), AttributeValue::S("new".into()));
    let new_partition = Put::builder()
        .table_name(TABLE)
        .set_item(Some(new_item))
        .build()
        .unwrap();
    let beside = Put::builder()
        .table_name(TABLE)
        .set_item(Some(key("B", "2")))
        .build()
        .unwrap();
    let delete = Delete::builder()
        .table_name(TABLE)
        .set_key(Some(key("E", "1")))
        .build()
        .unwrap();
    vec![
        TransactWriteItem::builder().put(new_partition).build(),
        add_one("B", "1", 1),
        TransactWriteItem::builder().put(beside).build(),
        TransactWriteItem::builder().delete(delete).build(),
    ]
}

async fn seed(dynamodb: &Client) {
    put(dynamodb, "B", "1", &[("n", number(1))]).await;
    put(
        dynamodb,
        "E",
        "1",
        &[("v", AttributeValue::S("keep".into()))],
    )
    .await;
}

fn cancellation_codes(
    error: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
) -> Vec<String> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => canceled
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("").to_string())
            .collect(),
        _ => panic!("not a cancelled transaction: {error:?}"),
    }
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_nothing_of_itself() {
    let moto = Moto::start().await;
    let dynamodb = table(&moto).await;
    seed(&dynamodb).await;
    let before = contents(&dynamodb).await;

    let mut items = writes();
    items.push(exists("D", "1"));
    let error = dynamodb
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
        .expect_err("the last check fails");

    assert_eq!(
        cancellation_codes(&error),
        ["None", "None", "None", "None", "ConditionalCheckFailed"]
    );
    assert_eq!(contents(&dynamodb).await, before);
}

#[tokio::test]
async fn a_committed_transaction_writes_every_item() {
    let moto = Moto::start().await;
    let dynamodb = table(&moto).await;
    seed(&dynamodb).await;

    dynamodb
        .transact_write_items()
        .set_transact_items(Some(writes()))
        .send()
        .await
        .expect("transaction");

    let after = contents(&dynamodb).await;
    let keys: Vec<_> = after.keys().cloned().collect();
    let pair = |pk: &str, sk: &str| (pk.to_string(), sk.to_string());
    assert_eq!(keys, [pair("A", "1"), pair("B", "1"), pair("B", "2")]);
    assert_eq!(after[&pair("A", "1")]["x"], "new");
    assert_eq!(after[&pair("B", "1")]["n"], "2");
}

/// Plain updates of a counter race transactions that add 1,000 to it and
/// are then cancelled: every plain update survives the rollbacks, and no
/// read sees a cancelled transaction's write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollbacks_neither_show_nor_undo_other_writes() {
    const UPDATES: i64 = 200;
    const CANCELLED: usize = 50;
    let moto = Moto::start().await;
    let dynamodb = table(&moto).await;
    put(&dynamodb, "X", "1", &[("n", number(0))]).await;

    let mut tasks = Vec::new();
    for _ in 0..UPDATES {
        let dynamodb = dynamodb.clone();
        tasks.push(tokio::spawn(async move {
            dynamodb
                .update_item()
                .table_name(TABLE)
                .set_key(Some(key("X", "1")))
                .update_expression("ADD n :one")
                .expression_attribute_values(":one", number(1))
                .send()
                .await
                .map(|_| None)
                .map_err(|e| format!("{e:?}"))
        }));
    }
    for _ in 0..CANCELLED {
        let writer = dynamodb.clone();
        tasks.push(tokio::spawn(async move {
            let cancelled = writer
                .transact_write_items()
                .transact_items(add_one("X", "1", 1000))
                .transact_items(exists("D", "1"))
                .send()
                .await;
            match cancelled {
                Err(e)
                    if cancellation_codes(&e).last().map(String::as_str)
                        == Some("ConditionalCheckFailed") =>
                {
                    Ok(None)
                }
                other => Err(format!("not cancelled by its check: {other:?}")),
            }
        }));
        let reader = dynamodb.clone();
        tasks.push(tokio::spawn(async move {
            let read = reader
                .get_item()
                .table_name(TABLE)
                .set_key(Some(key("X", "1")))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            match read.item().and_then(|item| item.get("n")) {
                Some(AttributeValue::N(n)) => Ok(n.parse::<i64>().ok()),
                other => Err(format!("no counter: {other:?}")),
            }
        }));
    }
    let mut reads = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(Some(read)) => reads.push(read),
            Ok(None) => {}
            Err(problem) => panic!("{problem}"),
        }
    }

    let seen_cancelled: Vec<_> = reads.iter().filter(|n| **n >= 1000).collect();
    assert!(
        seen_cancelled.is_empty(),
        "reads saw a cancelled transaction's write: {seen_cancelled:?}"
    );
    let after = contents(&dynamodb).await;
    assert_eq!(after[&("X".into(), "1".into())]["n"], UPDATES.to_string());
}
