//! The weekly report at 100,000 grants (1,000 keys x 100 grants), run after
//! a previous report of the same size: peak RSS of the run (`VmHWM`, reset
//! after the previous report is made), against the 512 MB function and the
//! issue's 400 MB target. Only the newest previous report is read (it
//! carries the trend), so 12 earlier reports cost nothing here.
//! `cargo bench -p grantwatch-core --bench report_memory` (make bench).

use futures::executor::block_on;
use grantwatch_core::app::report::{
    run_report, NoChannel, NoDeadline, Quiet, ReportDeps, ReportOptions, ReportRequest,
};
use grantwatch_core::grant::{Constraints, GrantFacts, Operation};
use grantwatch_core::judge::Policy;
use grantwatch_core::ports::inventory::fake::{
    FakeDirectory, FakeInventory, FakeRegion, MemoryStore,
};
use grantwatch_core::ports::inventory::{
    AccountRegion, AccountSelection, KeyDescription, KeyManager, ListedGrant, NoProvenance,
    ReportStore, StoredReport,
};
use grantwatch_core::ports::PortError;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What S3 does for the run measured: hands back the previous report.json
/// (once), and takes each file away (the upload), keeping only its size.
struct S3Like {
    previous: Mutex<Option<StoredReport>>,
    stored: Mutex<Vec<(String, usize)>>,
}

impl ReportStore for S3Like {
    async fn put(
        &self,
        date: &str,
        file_name: &str,
        body: Vec<u8>,
        _content_type: &str,
    ) -> Result<String, PortError> {
        let location = format!("reports/{date}/{file_name}");
        if let Ok(mut stored) = self.stored.lock() {
            stored.push((location.clone(), body.len()));
        }
        Ok(location)
    }

    /// As S3's multipart upload: 8 MiB parts leave one at a time.
    async fn put_chunks<C>(
        &self,
        date: &str,
        file_name: &str,
        chunks: C,
        _content_type: &str,
    ) -> Result<String, PortError>
    where
        C: Iterator<Item = Result<Vec<u8>, PortError>> + Send,
    {
        let location = format!("reports/{date}/{file_name}");
        let mut part = Vec::new();
        let mut size = 0;
        for chunk in chunks {
            part.extend(chunk?);
            if part.len() >= PART {
                size += part.len();
                part = Vec::new();
            }
        }
        size += part.len();
        if let Ok(mut stored) = self.stored.lock() {
            stored.push((location.clone(), size));
        }
        Ok(location)
    }

    async fn recent_reports(&self, _limit: usize) -> Result<Vec<StoredReport>, PortError> {
        Ok(self
            .previous
            .lock()
            .ok()
            .and_then(|mut p| p.take())
            .into_iter()
            .collect())
    }

    async fn link(&self, location: &str) -> Result<String, PortError> {
        Ok(format!("s3://bucket/{location}"))
    }
}

/// The S3 store's multipart part size.
const PART: usize = 8 << 20;
const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";
const KEYS: usize = 1_000;
const GRANTS_PER_KEY: usize = 100;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn inventory(week: usize) -> FakeInventory {
    let mut region = FakeRegion::default();
    for k in 0..KEYS {
        let id = format!("key-{k:05}");
        region.keys.push(KeyDescription {
            key_id: id.clone(),
            key_arn: format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}"),
            manager: Some(KeyManager::Customer),
            state: Some("Enabled".into()),
            key_spec: Some("SYMMETRIC_DEFAULT".into()),
            key_usage: Some("ENCRYPT_DECRYPT".into()),
            multi_region: Some(false),
            description: None,
        });
        let grants = (0..GRANTS_PER_KEY)
            .map(|g| {
                // One grant in ten changes every week (the diff has work).
                let n = if g % 10 == 0 { g + 1000 * week } else { g };
                ListedGrant {
                    grant_id: format!("{k:05}-{n:08}-8135ba144a6f495a8b5980730abb9fa2"),
                    created: Some("2026-11-05T00:43:25Z".into()),
                    issuing_account: Some(format!("arn:aws:iam::{ACCOUNT}:root")),
                    facts: GrantFacts {
                        grantee: Some(format!(
                            "arn:aws:sts::{ACCOUNT}:assumed-role/fn-role-{n}/fn-{n}"
                        )),
                        retiring_principal: Some("lambda.eu-west-1.amazonaws.com".into()),
                        operations: vec![Operation::Decrypt, Operation::RetireGrant],
                        constraints: Some(Constraints {
                            encryption_context_equals: Some(BTreeMap::from([(
                                "aws:lambda:FunctionArn".to_string(),
                                format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn-{n}"),
                            )])),
                            ..Constraints::default()
                        }),
                        name: Some(format!("fn-{n}/8135ba14-4a6f-495a-8b59-80730abb9fa2")),
                        ..GrantFacts::default()
                    },
                }
            })
            .collect();
        region.grants.insert(id, grants);
    }
    let mut inv = FakeInventory::new(100);
    inv.regions
        .insert(AccountRegion::new(ACCOUNT, REGION), region);
    inv
}

fn run<S: ReportStore>(store: &S, week: usize, at: &str) {
    let inv = inventory(week);
    let policy = Policy::new(time::macros::date!(2026 - 11 - 28));
    let options = ReportOptions::default();
    let dir = FakeDirectory {
        this_account: ACCOUNT.into(),
        organization: vec![],
    };
    let deps = ReportDeps {
        inventory: &inv,
        provenance: &NoProvenance,
        store,
        directory: &dir,
        policy: &policy,
        options: &options,
        deadline: &NoDeadline,
        progress: &Quiet,
    };
    let request = ReportRequest {
        accounts: AccountSelection::This,
        regions: vec![REGION.into()],
    };
    if let Err(e) = block_on(run_report(&request, &deps, &[&NoChannel], at)) {
        eprintln!("report_memory: the report failed: {e}");
        std::process::exit(2);
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` (make test)
    // runs this in a debug build without it: nothing to measure there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("report_memory: run with `cargo bench` (release); skipped");
        return;
    }
    let previous = MemoryStore::default();
    run(&previous, 0, "2026-11-21T06:00:00Z");
    let store = S3Like {
        previous: Mutex::new(previous.get("reports/2026-11-21/report.json").map(|body| {
            StoredReport {
                location: "reports/2026-11-21/report.json".into(),
                body,
            }
        })),
        stored: Mutex::new(Vec::new()),
    };
    let previous_mib = previous
        .files
        .lock()
        .map(|f| f.values().map(Vec::len).sum::<usize>() as f64 / 1048576.0)
        .unwrap_or(0.0);
    drop(previous);
    // Reset the peak (Linux >= 4.0); without it the figure includes week 1.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = peak_rss_kib();
    run(&store, 1, "2026-11-28T06:00:00Z");
    let after = peak_rss_kib();
    let files_mib = store
        .stored
        .lock()
        .map(|f| f.iter().map(|(_, n)| n).sum::<usize>() as f64 / 1048576.0)
        .unwrap_or(0.0);
    println!(
        "| report at {} grants ({KEYS} keys), after a report of the same size ({previous_mib:.0} MiB of files) | peak RSS {} MiB{} | {files_mib:.0} MiB of files uploaded in 8 MiB parts |",
        KEYS * GRANTS_PER_KEY,
        after.map_or("?".into(), |k| (k / 1024).to_string()),
        if reset {
            String::new()
        } else {
            format!(" (peak not reset; {} MiB before)", before.unwrap_or(0) / 1024)
        },
    );
}
