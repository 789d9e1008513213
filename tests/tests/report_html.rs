//! report.html in headless Chromium at 1400×900: the grants table fits the
//! window with no horizontal scrolling (scrollWidth ≤ 1400), for a report
//! built by the real use case with long, unbreakable values (role paths,
//! grant names, encryption contexts). A control page with a forced-wide
//! table shows the measurement does catch overflow.

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
    NoProvenance,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "ap-southeast-2";
const WIDTH: u32 = 1400;

fn key(id: &str) -> KeyDescription {
    KeyDescription {
        key_id: id.into(),
        key_arn: format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}"),
        manager: Some(KeyManager::Customer),
        state: Some("Enabled".into()),
        key_spec: Some("SYMMETRIC_DEFAULT".into()),
        key_usage: Some("ENCRYPT_DECRYPT".into()),
        multi_region: Some(false),
        description: None,
    }
}

fn service_grant(i: usize) -> ListedGrant {
    let role = format!("very-long-application-role-name-for-service-number-{i}-in-production");
    ListedGrant {
        grant_id: format!("{i:0>64}"),
        created: Some("2026-11-05T00:43:25Z".into()),
        issuing_account: Some(format!("arn:aws:iam::{ACCOUNT}:root")),
        facts: GrantFacts {
            grantee: Some(format!(
                "arn:aws:sts::{ACCOUNT}:assumed-role/{role}/session-{i}-{}",
                "x".repeat(40)
            )),
            retiring_principal: Some(format!("lambda.{REGION}.amazonaws.com")),
            operations: vec![Operation::Decrypt, Operation::RetireGrant],
            constraints: Some(Constraints {
                encryption_context_equals: Some(BTreeMap::from([(
                    "aws:lambda:FunctionArn".to_string(),
                    format!(
                        "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}",
                        "function-name-without-any-break-".repeat(3)
                    ),
                )])),
                ..Constraints::default()
            }),
            name: Some(format!(
                "{}/8135ba14-4a6f-495a-8b59-80730abb9fa2",
                "n".repeat(60)
            )),
            ..GrantFacts::default()
        },
    }
}

fn manual_grant(i: usize) -> ListedGrant {
    ListedGrant {
        grant_id: format!("manual{i:0>58}"),
        created: Some("2026-11-20T10:00:00Z".into()),
        issuing_account: Some(format!("arn:aws:iam::{ACCOUNT}:root")),
        facts: GrantFacts {
            grantee: Some(format!(
                "arn:aws:iam::999988887777:role/{}/partner",
                "deep/path".repeat(12)
            )),
            operations: vec![
                Operation::Decrypt,
                Operation::Encrypt,
                Operation::GenerateDataKey,
                Operation::GenerateDataKeyWithoutPlaintext,
                Operation::ReEncryptFrom,
                Operation::ReEncryptTo,
                Operation::CreateGrant,
            ],
            constraints: Some(Constraints {
                encryption_context_subset: Some(
                    (0..4)
                        .map(|k| (format!("tenant-{k}-{}", "k".repeat(50)), "v".repeat(120)))
                        .collect(),
                ),
                ..Constraints::default()
            }),
            name: Some("N".repeat(300)),
            ..GrantFacts::default()
        },
    }
}

async fn report_html() -> String {
    let mut region = FakeRegion {
        keys: vec![key("1234abcd-12ab-34cd-56ef-1234567890ab")],
        aliases: vec![AliasEntry {
            alias_name: format!("alias/{}", "payments-".repeat(10)),
            target_key_id: Some("1234abcd-12ab-34cd-56ef-1234567890ab".into()),
        }],
        ..FakeRegion::default()
    };
    // A long description, long tags and an open key policy: the key's
    // details in the table and the posture section must fit too.
    const KEY: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
    region.keys[0].description = Some(format!(
        "Payments ledger key, EU, rotated yearly {}",
        "owner-team-payments-platform-".repeat(6)
    ));
    region.tags.insert(
        KEY.into(),
        (0..8)
            .map(|i| KeyTag {
                key: format!("cost-center-{i}"),
                value: "cc-0123456789".repeat(6),
            })
            .collect(),
    );
    region.policies.insert(
        KEY.into(),
        format!(r#"{{"Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:role/{}"}}, "Action": "kms:CreateGrant", "Resource": "*"}}]}}"#, "ci-deployer-".repeat(8)),
    );
    let mut grants: Vec<ListedGrant> = (0..6).map(service_grant).collect();
    grants.extend((0..4).map(manual_grant));
    region
        .grants
        .insert("1234abcd-12ab-34cd-56ef-1234567890ab".into(), grants);
    let mut inventory = FakeInventory::new(2);
    inventory
        .regions
        .insert(AccountRegion::new(ACCOUNT, REGION), region);
    let store = MemoryStore::default();
    let policy = Policy::new(time::macros::date!(2026 - 11 - 28));
    let options = ReportOptions::default();
    let directory = FakeDirectory {
        this_account: ACCOUNT.into(),
        organization: vec![],
    };
    let deps = ReportDeps {
        inventory: &inventory,
        provenance: &NoProvenance,
        store: &store,
        directory: &directory,
        policy: &policy,
        options: &options,
        deadline: &NoDeadline,
        progress: &Quiet,
    };
    let request = ReportRequest {
        accounts: AccountSelection::This,
        regions: vec![REGION.into()],
    };
    run_report(&request, &deps, &[&NoChannel], "2026-11-28T06:00:00Z")
        .await
        .expect("report");
    let bytes = store
        .get("reports/2026-11-28/report.html")
        .expect("report.html written");
    String::from_utf8(bytes).expect("UTF-8")
}

/// The page's widths once loaded, at 1400×900: the document's scrollWidth,
/// the table container's scrollWidth, and the window's innerWidth.
fn widths(html: &str) -> (u32, u32, u32) {
    let probe = "<script>window.addEventListener('load',function(){\
var t=document.getElementById('grant-table');\
document.body.setAttribute('data-widths',[document.documentElement.scrollWidth,t.parentNode.scrollWidth,window.innerWidth].join('x'));\
});</script></body>";
    assert!(html.contains("</body>"));
    let page = html.replacen("</body>", probe, 1);
    let dir = report_support::tempdir("report-html-width");
    let file = dir.join("report.html");
    std::fs::write(&file, page).expect("write page");
    let profile = dir.join("profile");
    let output = chromium(&profile, &file);
    let _ = std::fs::remove_dir_all(&dir);
    let dom = String::from_utf8_lossy(&output);
    let value = dom
        .split("data-widths=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the probe did not run:\n{dom}"));
    let parts: Vec<u32> = value
        .split('x')
        .map(|n| n.parse().expect("a width"))
        .collect();
    (parts[0], parts[1], parts[2])
}

fn chromium(profile: &Path, page: &Path) -> Vec<u8> {
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    let output = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
            "--window-size=1400,900",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}); `apt-get install chromium` (make test installs it)")
        });
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn grants_table_fits_1400_px_without_horizontal_scrolling() {
    let html = report_html().await;
    assert_eq!(html.matches("<tr data-severity=").count(), 10);
    assert!(html.contains("class=\"keydesc\"") && html.contains("id=\"key-posture\""));
    let (document, table, window) = widths(&html);
    assert_eq!(window, WIDTH, "the window is 1400 px wide");
    assert!(
        document <= WIDTH,
        "the page scrolls sideways: {document} px"
    );
    assert!(
        table <= WIDTH,
        "the grants table scrolls sideways: {table} px"
    );
}

#[tokio::test]
async fn the_measurement_catches_a_table_that_overflows() {
    let html = report_html().await.replacen(
        "<table id=\"grant-table\"",
        "<table style=\"min-width:2400px\" id=\"grant-table\"",
        1,
    );
    let (document, table, _) = widths(&html);
    assert!(
        document > WIDTH || table > WIDTH,
        "a 2400 px table went unnoticed: {document}/{table}"
    );
}
