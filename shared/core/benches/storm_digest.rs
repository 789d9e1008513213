//! A storm of 50,000 alerts in one window through the watcher's use case
//! (in-memory ledger, recording notifiers): one digest per channel, and the
//! process's peak RSS (`VmHWM`), which must stay far under the 128 MB
//! function. The digest is built from the ledger's running tallies and its
//! 25 worst alerts, so the leader never holds the members. `make bench`
//! prints the figures; set `STORM_ALERTS` to change the size.

use grantwatch_core::app::watch::{watch_event, Clock, Invocation, WatchConfig, WatchDeps};
use grantwatch_core::ports::fakes::RecordingNotifier;
use grantwatch_core::ports::ledger::{MemoryLedger, StormLedger};
use grantwatch_core::ports::notify::ChannelClass;
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const START_MS: i64 = 1_795_000_020_000;
const THRESHOLD: u64 = 10;

/// Time stands still (every alert in one window) until the leader sleeps.
struct StillClock(AtomicI64);

impl Clock for StillClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    async fn sleep_ms(&self, ms: u64) {
        self.0.fetch_add(ms as i64, Ordering::SeqCst);
    }
}

/// Peak resident set of this process, in KiB (Linux), if known.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    // `cargo bench` passes --bench: the full 50,000. `cargo test
    // --all-targets` (make test) runs this debug build without it: a
    // 1,000-alert smoke run of the same code.
    let measuring = std::env::args().any(|a| a == "--bench");
    let alerts: usize = std::env::var("STORM_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 50_000 } else { 1_000 });
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/watcher/manual-cross-account-grant.json"
    );
    let template: Value = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(value) => value,
        Err(problem) => {
            eprintln!("{path}: {problem}");
            std::process::exit(2);
        }
    };
    let sns = Arc::new(RecordingNotifier::with_class(
        "sns",
        ChannelClass::Mandatory,
    ));
    let slack = Arc::new(RecordingNotifier::new("slack"));
    let deps = WatchDeps {
        ledger: MemoryLedger::new(),
        notifiers: vec![Box::new(sns.clone()), Box::new(slack.clone())],
        clock: StillClock(AtomicI64::new(START_MS - START_MS.rem_euclid(60_000))),
        config: WatchConfig {
            storm_threshold: THRESHOLD,
            storm_window_seconds: 60,
            ..WatchConfig::default()
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(2);
        }
    };
    let window_ms = START_MS - START_MS.rem_euclid(60_000);
    let last = format!("storm-{:06}", alerts - 1);
    let started = Instant::now();
    let mut leader_rss = None;
    runtime.block_on(async {
        // The last event leads (elected before the others run): every other
        // alert joins first, then the leader posts the digest. The worst case
        // for the leader: the whole window behind it.
        if let Err(error) = deps.ledger.claim_leader(window_ms / 1000, &last).await {
            eprintln!("{error}");
            std::process::exit(1);
        }
        for n in 0..alerts {
            let mut event = template.clone();
            event["detail"]["eventID"] = format!("storm-{n:06}").into();
            event["detail"]["responseElements"]["grantId"] = format!("grant-{n:06}").into();
            let request = format!("req-{n}");
            let invocation = Invocation {
                request_id: &request,
                deadline_ms: START_MS + 90_000,
            };
            if n + 1 == alerts {
                // Reset the peak (Linux): what follows is the leader alone.
                let _ = std::fs::write("/proc/self/clear_refs", "5");
                leader_rss = Some(peak_rss_kib());
            }
            if let Err(error) = watch_event(&event, &deps, &invocation).await {
                eprintln!("event {n}: {error}");
                std::process::exit(1);
            }
        }
    });
    let elapsed = started.elapsed();
    let mib = |k: Option<u64>| k.map_or("?".into(), |k| (k / 1024).to_string());
    println!(
        "storm_digest: {alerts} alerts in one window, threshold {THRESHOLD}: {} SNS and {} Slack messages ({} alone + 1 digest each), digest of {} alerts",
        sns.count(),
        slack.count(),
        THRESHOLD,
        sns.sent().last().map_or(0, Vec::len),
    );
    println!(
        "storm_digest: {:.1} s ({:.0} alerts/s); peak RSS {} MiB for the whole run (the in-memory ledger included, which a Lambda does not hold); {} MiB resident before the leader, peak {} MiB while it closed and posted the digest",
        elapsed.as_secs_f64(),
        alerts as f64 / elapsed.as_secs_f64().max(1e-9),
        mib(peak_rss_kib()),
        mib(leader_rss.flatten()),
        mib(peak_rss_kib()),
    );
}
