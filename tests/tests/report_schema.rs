//! report.json against docs/report.schema.json, and report.html in headless
//! Chromium, for a report built by the real use case over in-memory ports
//! (diff, coverage gaps, hostile grant names included).

mod report_support;

use grantwatch_core::app::report::{
    run_report, NoChannel, NoDeadline, Quiet, ReportDeps, ReportOptions, ReportRequest,
};
use grantwatch_core::grant::{Constraints, GrantFacts, Operation};
use grantwatch_core::judge::Policy;
use grantwatch_core::ports::inventory::fake::{
    FakeDirectory, FakeInventory, FakeRegion, MemoryStore,
};
use grantwatch_core::ports::inventory::{
    AccountRegion, AccountSelection, AliasEntry, KeyDescription, KeyManager, KeyTag, ListedGrant,
    NoProvenance, Provenance, ReadError, StackProvenance,
};
use grantwatch_core::ports::ledger::{MemoryLedger, StackLedger};
use grantwatch_core::report::Report;
use serde_json::Value;
use std::collections::BTreeMap;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";
const HOSTILE: &str =
    "</script><script>document.title='pwned'</script><img src=x onerror=alert(1)>";

fn key(id: &str, manager: KeyManager) -> KeyDescription {
    KeyDescription {
        key_id: id.into(),
        key_arn: format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}"),
        manager: Some(manager),
        state: Some("Enabled".into()),
        key_spec: Some("SYMMETRIC_DEFAULT".into()),
        key_usage: Some("ENCRYPT_DECRYPT".into()),
        multi_region: Some(false),
        description: None,
    }
}

fn lambda_grant(i: usize) -> ListedGrant {
    ListedGrant {
        grant_id: format!("lambda-{i}"),
        created: Some("2026-11-05T00:43:25Z".into()),
        issuing_account: Some(format!("arn:aws:iam::{ACCOUNT}:root")),
        facts: GrantFacts {
            grantee: Some(format!(
                "arn:aws:sts::{ACCOUNT}:assumed-role/fn-role-{i}/fn-{i}"
            )),
            retiring_principal: Some("lambda.eu-west-1.amazonaws.com".into()),
            operations: vec![Operation::Decrypt, Operation::RetireGrant],
            constraints: Some(Constraints {
                encryption_context_equals: Some(BTreeMap::from([(
                    "aws:lambda:FunctionArn".to_string(),
                    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn-{i}"),
                )])),
                ..Constraints::default()
            }),
            name: Some(format!("fn-{i}/8135ba14-4a6f-495a-8b59-80730abb9fa2")),
            ..GrantFacts::default()
        },
    }
}

fn manual_grant(id: &str, name: &str) -> ListedGrant {
    ListedGrant {
        grant_id: id.into(),
        created: Some("2026-11-20T10:00:00Z".into()),
        issuing_account: Some(format!("arn:aws:iam::{ACCOUNT}:root")),
        facts: GrantFacts {
            grantee: Some("arn:aws:iam::999988887777:root".into()),
            operations: vec![
                Operation::Decrypt,
                Operation::Encrypt,
                Operation::CreateGrant,
            ],
            name: Some(name.into()),
            ..GrantFacts::default()
        },
    }
}

fn inventory(extra_manual: bool) -> FakeInventory {
    let mut region = FakeRegion {
        keys: vec![
            key("app", KeyManager::Customer),
            key("aws-ebs", KeyManager::Aws),
            key("locked", KeyManager::Customer),
        ],
        aliases: vec![
            AliasEntry {
                alias_name: "alias/payments".into(),
                target_key_id: Some("app".into()),
            },
            AliasEntry {
                alias_name: "alias/aws/ebs".into(),
                target_key_id: Some("aws-ebs".into()),
            },
        ],
        ..FakeRegion::default()
    };
    let mut app: Vec<ListedGrant> = (0..5).map(lambda_grant).collect();
    app.push(manual_grant("hostile", HOSTILE));
    app.push(manual_grant("formula", "=HYPERLINK(\"http://x\",\"y\")"));
    if extra_manual {
        app.push(manual_grant("added-later", "ops/temporary"));
    }
    region.grants.insert("app".into(), app);
    region
        .grants
        .insert("aws-ebs".into(), vec![lambda_grant(9)]);
    // The app key: a hostile description and tag, and a policy that lets a
    // role create grants for anyone (create-grant-open).
    region.keys[0].description = Some(format!("Payments {HOSTILE}"));
    region.tags.insert(
        "app".into(),
        vec![
            KeyTag {
                key: "env".into(),
                value: "prod".into(),
            },
            KeyTag {
                key: "owner".into(),
                value: HOSTILE.into(),
            },
        ],
    );
    region.policies.insert(
        "app".into(),
        format!(r#"{{"Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:role/ci"}}, "Action": "kms:CreateGrant", "Resource": "*"}}]}}"#),
    );
    region.key_errors.insert(
        "locked".into(),
        ReadError::AccessDenied("not authorized to perform kms:DescribeKey".into()),
    );
    let mut inv = FakeInventory::new(2);
    inv.regions
        .insert(AccountRegion::new(ACCOUNT, REGION), region);
    inv
}

/// The grants the second run's inventory holds: what the report's rows
/// are counted against (never the report's own summary).
fn grants_created() -> usize {
    let inv = inventory(true);
    let created: usize = inv
        .regions
        .values()
        .flat_map(|region| region.grants.values())
        .map(Vec::len)
        .sum();
    assert_eq!(
        created, 9,
        "5 Lambda grants, 3 manual ones, 1 on the EBS key"
    );
    created
}

/// Two weekly runs into one store; the second report's files.
async fn two_runs(store: &MemoryStore) -> Report {
    two_runs_with(store, &NoProvenance, |_| {}).await
}

/// Two weekly runs with `provenance` as the ledger; `between` runs between
/// them.
async fn two_runs_with(
    store: &MemoryStore,
    provenance: &impl Provenance,
    between: impl Fn(&MemoryStore),
) -> Report {
    let policy = Policy {
        // Expires within 14 days: listed by the report.
        rules: grantwatch_core::rules::RuleSet::parse_toml(
            "[[rule]]\nid = \"migration\"\nreason = \"until the move\"\nexpires = 2026-12-05\naccount = \"000000000000\"\n",
        )
        .unwrap(),
        ..Policy::new(time::macros::date!(2026 - 11 - 28))
    };
    let options = ReportOptions::default();
    let dir = FakeDirectory {
        this_account: ACCOUNT.into(),
        organization: vec![],
    };
    let request = ReportRequest {
        accounts: AccountSelection::This,
        regions: vec![REGION.into()],
    };
    for (inv, at) in [
        (inventory(false), "2026-11-21T06:00:00Z"),
        (inventory(true), "2026-11-28T06:00:00Z"),
    ] {
        if at.starts_with("2026-11-28") {
            between(store);
        }
        let deps = ReportDeps {
            inventory: &inv,
            provenance,
            store,
            directory: &dir,
            policy: &policy,
            options: &options,
            deadline: &NoDeadline,
            progress: &Quiet,
        };
        run_report(&request, &deps, &[&NoChannel], at)
            .await
            .expect("report");
    }
    Report::from_json(&store.get("reports/2026-11-28/report.json").unwrap()).unwrap()
}

#[tokio::test]
async fn report_json_matches_its_schema() {
    let store = MemoryStore::default();
    let report = two_runs(&store).await;
    let json: Value =
        serde_json::from_slice(&store.get("reports/2026-11-28/report.json").unwrap()).unwrap();
    assert_eq!(report_support::validate(&json), Vec::<String>::new());
    // The first report (no diff) too.
    let first: Value =
        serde_json::from_slice(&store.get("reports/2026-11-21/report.json").unwrap()).unwrap();
    assert_eq!(report_support::validate(&first), Vec::<String>::new());
    assert!(first["diff"].is_null());
    // The report exercised what the schema describes.
    assert!(report.partial);
    assert_eq!(json["coverage"]["gaps"][0]["reason"], "access-denied");
    assert_eq!(report.diff.as_ref().unwrap().new_grants.len(), 1);
    assert_eq!(report.trend.len(), 2);
    let app = json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == "app")
        .unwrap();
    assert_eq!(app["findings"][0]["code"], "create-grant-open");
    assert_eq!(app["severity"], "medium");
    assert_eq!(app["tags"]["env"], "prod");
    assert!(app["description"].as_str().unwrap().starts_with("Payments"));
    assert_eq!(json["summary"]["risky_keys"], 1);
    assert_eq!(json["expiring_rules"][0]["id"], "migration");
    assert_eq!(json["expiring_rules"][0]["expires"], "2026-12-05");
    // Account names, when the organization listing gave them.
    let mut named = json.clone();
    named["scope"]["account_names"] = serde_json::json!({"111111111111": "payments-prod"});
    assert_eq!(report_support::validate(&named), Vec::<String>::new());
    named["scope"]["account_names"] = serde_json::json!({"111111111111": 7});
    assert_ne!(report_support::validate(&named), Vec::<String>::new());
}

#[tokio::test]
async fn report_json_with_a_ledger_and_a_planted_report_matches_its_schema() {
    let store = MemoryStore::default();
    let ledger = MemoryLedger::new();
    // Deployed 2026-11-01: the grants of 2026-11-05 the ledger never
    // recorded are unseen by the watcher.
    ledger.record_deployed(1_793_491_200_000).await.unwrap();
    let report = two_runs_with(&store, &StackProvenance(&ledger), |store| {
        let copy = store.get("reports/2026-11-21/report.json").unwrap();
        store
            .files
            .lock()
            .unwrap()
            .insert("reports/2026-11-27/report.json".into(), copy);
    })
    .await;
    let json: Value =
        serde_json::from_slice(&store.get("reports/2026-11-28/report.json").unwrap()).unwrap();
    assert_eq!(report_support::validate(&json), Vec::<String>::new());
    assert_eq!(
        json["integrity"]["findings"][0]["code"],
        "pipeline-tampered"
    );
    assert_eq!(
        json["integrity"]["previous"],
        "reports/2026-11-21/report.json"
    );
    assert!(report.reconciliation.as_ref().unwrap().unseen_by_watcher > 0);
    assert_eq!(json["summary"]["pipeline_tampered"], 1);
}

#[test]
fn the_schema_check_catches_a_broken_report() {
    let mut broken: Value = serde_json::json!({"schema_version": 1});
    let errors = report_support::validate(&broken);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("missing required field keys")),
        "{errors:?}"
    );
    broken = serde_json::json!({
        "schema_version": 1, "generated_at": "x", "partial": "no", "scope": {}, "coverage": {},
        "summary": {}, "keys": [{"grants": [{"severity": "severe"}]}], "diff": null, "trend": []
    });
    let errors = report_support::validate(&broken);
    assert!(
        errors.iter().any(|e| e.starts_with("$.partial")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("$.keys[0].grants[0].severity")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn csv_has_one_row_per_grant() {
    let store = MemoryStore::default();
    let report = two_runs(&store).await;
    let csv = String::from_utf8(store.get("reports/2026-11-28/grants.csv").unwrap()).unwrap();
    // No cell holds a line break here, so lines are rows.
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    let created = grants_created();
    assert_eq!(report.summary.grants, created);
    assert_eq!(rows.len(), 1 + created);
    assert!(
        csv.contains(",'=HYPERLINK(\"\"http://x\"\",\"\"y\"\"),") || csv.contains("\"'=HYPERLINK(")
    );
    assert!(!csv.contains(",=HYPERLINK"));
}

#[tokio::test]
async fn report_html_renders_in_headless_chromium_with_every_row_and_no_script_error() {
    let store = MemoryStore::default();
    let report = two_runs(&store).await;
    let dir = report_support::tempdir("report-html");
    let html = dir.join("report.html");
    std::fs::write(&html, store.get("reports/2026-11-28/report.html").unwrap()).unwrap();
    let dom = report_support::chromium_dump_dom(&html);
    assert!(
        dom.contains("data-ready=\"yes\""),
        "the page's script ran to the end"
    );
    assert!(
        !dom.contains("id=\"js-error\""),
        "script error: {}",
        dom.split("js-error").nth(1).unwrap_or("")
    );
    let created = grants_created();
    assert_eq!(report.summary.grants, created);
    assert_eq!(dom.matches("<tr data-severity=").count(), created);
    assert!(dom.contains(&format!("{created} of {created} grants shown")));
    assert!(
        !dom.contains("<title>pwned"),
        "the hostile grant name did not run"
    );
    assert!(
        !dom.contains("<img src=\"x\""),
        "the hostile grant name made no element"
    );
    assert!(
        dom.contains("&lt;/script&gt;&lt;script&gt;"),
        "it shows as text"
    );
    // The key's description and tags in the grants table and the posture
    // section (cut, as text), the expiring rule listed.
    assert!(dom.contains("<small class=\"keydesc\">Payments &lt;/script&gt;"));
    assert!(dom.contains("id=\"key-posture\""));
    assert!(dom.contains("create-grant-open"));
    assert!(dom.contains("id=\"expiring-rules\""));
    let _ = std::fs::remove_dir_all(&dir);
}
