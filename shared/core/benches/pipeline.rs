//! What the watcher does per event, step by step: parse → judge → render
//! (Slack + SNS), on representative CloudTrail records from the fixture
//! corpus, next to a **baseline** measured in the same run: parsing the
//! same bytes into a `serde_json::Value`, the least any JSON consumer must
//! do. Figures are printed as ratios against that baseline, so they
//! compare across machines (`make bench`).
//!
//! Also: a storm digest of 500 alerting verdicts for both channels.

use criterion::{black_box, BenchmarkId, Criterion};
use grantwatch_core::app::watch::grant_record;
use grantwatch_core::event::{parse_eventbridge_event, GrantEvent, Parsed};
use grantwatch_core::judge::{judge_event, Policy};
use grantwatch_core::record::GrantRecord;
use grantwatch_core::render::{slack, sns};
use grantwatch_core::verdict::Verdict;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/events");
const GROUP: &str = "pipeline";
const DIGEST_GROUP: &str = "digest";
const DIGEST_SIZE: usize = 500;

/// The events measured: (name, fixture).
const EVENTS: [(&str, &str); 3] = [
    ("lambda_create", "lambda-create-grant.json"),
    (
        "risky_manual_create",
        "manual-sdk-cross-account-critical.json",
    ),
    ("retire_service_grant", "retire-null-params.json"),
];

/// The steps measured per event; the first is the baseline.
const STEPS: [&str; 7] = [
    "baseline_json",
    "parse",
    "judge",
    "render_slack",
    "render_sns",
    "pipeline",
    "pipeline_serialised",
];

struct Sample {
    name: &'static str,
    bytes: Vec<u8>,
    event: GrantEvent,
    known: Option<GrantRecord>,
    verdict: Verdict,
}

fn policy() -> Policy {
    Policy::new(time::macros::date!(2026 - 11 - 28))
}

fn parse(bytes: &[u8]) -> Option<GrantEvent> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    match parse_eventbridge_event(&value) {
        Ok(Parsed::Grant(event)) => Some(*event),
        _ => None,
    }
}

fn load(policy: &Policy) -> Vec<Sample> {
    let lambda = EVENTS[0].1;
    let lambda_event = std::fs::read(format!("{FIXTURES}/{lambda}"))
        .ok()
        .and_then(|b| parse(&b));
    let mut samples = Vec::new();
    for (name, file) in EVENTS {
        let path = format!("{FIXTURES}/{file}");
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("skipping {name}: cannot read {path}");
            continue;
        };
        let Some(event) = parse(&bytes) else {
            eprintln!("skipping {name}: {path} is not a grant event");
            continue;
        };
        // A removal is judged with the ledger's record of the grant: the
        // Lambda service's grant, as the watcher would have recorded it.
        let known = match (&lambda_event, &event.key_arn, &event.grant_id) {
            (Some(created), Some(key), Some(grant)) if event.action.is_removal() => {
                let verdict = judge_event(created, None, policy);
                Some(grant_record(created, &verdict, key, grant))
            }
            _ => None,
        };
        let verdict = judge_event(&event, known.as_ref(), policy);
        samples.push(Sample {
            name,
            bytes,
            event,
            known,
            verdict,
        });
    }
    samples
}

fn bench_events(c: &mut Criterion, samples: &[Sample], policy: &Policy) {
    let mut group = c.benchmark_group(GROUP);
    for s in samples {
        let bytes = s.bytes.as_slice();
        group.bench_with_input(BenchmarkId::new(STEPS[0], s.name), bytes, |b, bytes| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(bytes)))
        });
        group.bench_with_input(BenchmarkId::new(STEPS[1], s.name), bytes, |b, bytes| {
            b.iter(|| parse(black_box(bytes)))
        });
        group.bench_with_input(BenchmarkId::new(STEPS[2], s.name), &s.event, |b, event| {
            b.iter(|| judge_event(black_box(event), s.known.as_ref(), policy))
        });
        group.bench_with_input(BenchmarkId::new(STEPS[3], s.name), &s.verdict, |b, v| {
            b.iter(|| slack::alert(black_box(v)))
        });
        group.bench_with_input(BenchmarkId::new(STEPS[4], s.name), &s.verdict, |b, v| {
            b.iter(|| sns::alert(black_box(v)))
        });
        group.bench_with_input(BenchmarkId::new(STEPS[5], s.name), bytes, |b, bytes| {
            b.iter(|| {
                let event = parse(black_box(bytes))?;
                let verdict = judge_event(&event, s.known.as_ref(), policy);
                Some((slack::alert(&verdict), sns::alert(&verdict)))
            })
        });
        // What the watcher really does: the Slack payload goes out as bytes.
        group.bench_with_input(BenchmarkId::new(STEPS[6], s.name), bytes, |b, bytes| {
            b.iter(|| {
                let event = parse(black_box(bytes))?;
                let verdict = judge_event(&event, s.known.as_ref(), policy);
                let payload = serde_json::to_vec(&slack::alert(&verdict)).ok()?;
                Some((payload, sns::alert(&verdict)))
            })
        });
    }
    group.finish();
}

fn bench_digest(c: &mut Criterion, samples: &[Sample]) {
    let Some(risky) = samples.iter().find(|s| s.name == EVENTS[1].0) else {
        return;
    };
    let verdicts: Vec<Verdict> = (0..DIGEST_SIZE)
        .map(|i| {
            let mut v = risky.verdict.clone();
            v.event_id = format!("{}-{i}", v.event_id);
            v
        })
        .collect();
    let all_bytes: Vec<&[u8]> = vec![risky.bytes.as_slice(); DIGEST_SIZE];
    let mut group = c.benchmark_group(DIGEST_GROUP);
    group.bench_function(BenchmarkId::new("baseline_json", DIGEST_SIZE), |b| {
        b.iter(|| {
            all_bytes
                .iter()
                .filter_map(|bytes| serde_json::from_slice::<Value>(black_box(bytes)).ok())
                .count()
        })
    });
    group.bench_function(BenchmarkId::new("slack", DIGEST_SIZE), |b| {
        b.iter(|| slack::digest(black_box(&verdicts), "in the last 60 s"))
    });
    group.bench_function(BenchmarkId::new("sns", DIGEST_SIZE), |b| {
        b.iter(|| sns::digest(black_box(&verdicts), "in the last 60 s"))
    });
    group.finish();
}

/// Where criterion writes its results (criterion's own order of choice).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/criterion"
    ))
}

/// Mean time in nanoseconds of one benchmark, from criterion's
/// `estimates.json`.
fn mean_ns(group: &str, function: &str, parameter: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(function)
        .join(parameter)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value["mean"]["point_estimate"].as_f64()
}

fn human(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn print_ratios(samples: &[Sample]) {
    println!("\nRatios against the baseline (serde_json::from_slice::<Value> of the same bytes), mean times:");
    print!("{:<22}", "step");
    for s in samples {
        print!("{:>26}", s.name);
    }
    println!();
    for step in STEPS {
        print!("{step:<22}");
        for s in samples {
            let cell = match (
                mean_ns(GROUP, step, s.name),
                mean_ns(GROUP, STEPS[0], s.name),
            ) {
                (Some(t), Some(base)) if base > 0.0 => {
                    format!("{:.2}x ({})", t / base, human(t))
                }
                _ => "n/a".to_string(),
            };
            print!("{cell:>26}");
        }
        println!();
    }
    print!("{:<22}", "input bytes");
    for s in samples {
        print!("{:>26}", s.bytes.len());
    }
    println!();
    print!("{:<22}", "slack payload bytes");
    for s in samples {
        let size = serde_json::to_vec(&slack::alert(&s.verdict)).map_or(0, |v| v.len());
        print!("{size:>26}");
    }
    println!();
    print!("{:<22}", "sns message bytes");
    for s in samples {
        print!("{:>26}", sns::alert(&s.verdict).message.len());
    }
    println!();

    let n = DIGEST_SIZE.to_string();
    if let Some(base) = mean_ns(DIGEST_GROUP, "baseline_json", &n) {
        println!(
            "\nDigest of {DIGEST_SIZE} verdicts, against parsing the {DIGEST_SIZE} events' JSON:"
        );
        for step in ["slack", "sns"] {
            if let Some(t) = mean_ns(DIGEST_GROUP, step, &n) {
                println!(
                    "{step:<22}{:>26}",
                    format!("{:.2}x ({})", t / base, human(t))
                );
            }
        }
    }
}

fn main() {
    let policy = policy();
    let samples = load(&policy);
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_events(&mut c, &samples, &policy);
    bench_digest(&mut c, &samples);
    c.final_summary();
    // `cargo test --benches` runs each benchmark once, without `--bench`:
    // no fresh figures to compare then.
    if std::env::args().any(|a| a == "--bench") {
        print_ratios(&samples);
    }
}
