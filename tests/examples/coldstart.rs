//! Cold start bench (issue 13, `make bench`): from process spawn to the
//! first response behind the Runtime API harness, for one service-grant
//! event with the ledger on moto, the release grant-watcher against the
//! Python/boto3 handler `bench/coldstart_baseline.py` making the same AWS
//! calls. Runs alternate (Rust, Python, Rust, ...) so both see the same
//! load; prints the median of each, its peak RSS (VmHWM) and the AWS calls
//! each made for the event (moto's request recorder), as Markdown rows.
//!
//! ```text
//! cargo run -p grantwatch-e2e --example coldstart -- \
//!     [--runs 11] [--watcher target/release/grant-watcher] \
//!     [--baseline bench/coldstart_baseline.py]
//! ```
//!
//! A measurement, not a test: nothing here asserts a time.

use grantwatch_e2e::runtime_api::{Function, FunctionConfig};
use grantwatch_e2e::watcher_world::{fixture, World};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Options {
    runs: usize,
    watcher: PathBuf,
    baseline: PathBuf,
}

fn options() -> Result<Options, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = Options {
        runs: 11,
        watcher: root.join("target/release/grant-watcher"),
        baseline: root.join("bench/coldstart_baseline.py"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => {
                options.runs = value
                    .parse()
                    .ok()
                    .filter(|runs| *runs > 0)
                    .ok_or(format!("--runs {value}: a positive number"))?
            }
            "--watcher" => options.watcher = value.into(),
            "--baseline" => options.baseline = value.into(),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    for path in [&options.watcher, &options.baseline] {
        if !path.is_file() {
            return Err(format!("{} does not exist", path.display()));
        }
    }
    Ok(options)
}

/// One cold start: its time to the first response and the process's peak RSS.
struct Sample {
    elapsed: Duration,
    peak_rss_kib: u64,
}

/// The service-grant event (a grant Lambda made for a function), made
/// unique per run so the ledger claims a new event every time.
fn service_grant(run: usize) -> Value {
    let mut event = fixture("lambda-create-grant");
    event["detail"]["eventID"] = format!("coldstart-{run:04}").into();
    event["detail"]["responseElements"]["grantId"] = format!("coldstart-grant-{run:04}").into();
    event
}

async fn cold_start(binary: &Path, config: &FunctionConfig, run: usize) -> Result<Sample, String> {
    let start = Instant::now();
    let function = Function::start(binary, config.clone())
        .await
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let outcome = function.invoke(service_grant(run)).await;
    let elapsed = start.elapsed();
    outcome.map_err(|e| {
        format!(
            "{} failed: {e}\n{}",
            binary.display(),
            function.all_output()
        )
    })?;
    let peak_rss_kib = peak_rss_kib(binary).ok_or(format!(
        "no VmHWM for {} (not a child of this process?)",
        binary.display()
    ))?;
    Ok(Sample {
        elapsed,
        peak_rss_kib,
    })
}

/// VmHWM of this process's live child whose command line names `program`
/// (the harness spawns it; a script keeps its path in the interpreter's).
fn peak_rss_kib(program: &Path) -> Option<u64> {
    let me = std::process::id().to_string();
    let name = program.to_string_lossy();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let dir = entry.path();
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
            if ppid != me || !String::from_utf8_lossy(&cmdline).contains(name.as_ref()) {
                return None;
            }
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
}

/// The AWS calls one cold start made, from moto's request recorder:
/// `service Operation` (JSON protocols name it in X-Amz-Target; the
/// others by method and path) with a count.
async fn recorded_calls(
    world: &World,
    binary: &Path,
    config: &FunctionConfig,
    run: usize,
) -> Result<BTreeMap<String, usize>, String> {
    let http = reqwest::Client::new();
    let recorder = |action: &str| format!("{}/moto-api/recorder/{action}", world.moto.endpoint());
    for action in ["reset-recording", "start-recording"] {
        http.post(recorder(action))
            .send()
            .await
            .map_err(|e| format!("moto recorder {action}: {e}"))?;
    }
    let sample = cold_start(binary, config, run).await;
    http.post(recorder("stop-recording"))
        .send()
        .await
        .map_err(|e| format!("moto recorder: {e}"))?;
    sample?;
    let recording = http
        .get(recorder("download-recording"))
        .send()
        .await
        .map_err(|e| format!("moto recorder: {e}"))?
        .text()
        .await
        .map_err(|e| format!("moto recorder: {e}"))?;
    let mut calls = BTreeMap::new();
    for line in recording.lines().filter(|line| !line.trim().is_empty()) {
        let entry: Value =
            serde_json::from_str(line).map_err(|e| format!("moto recording: {e}: {line}"))?;
        *calls.entry(call_name(&entry)).or_insert(0) += 1;
    }
    Ok(calls)
}

fn call_name(entry: &Value) -> String {
    let header = |name: &str| {
        entry["headers"]
            .as_object()
            .and_then(|headers| {
                headers
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
            })
            .and_then(|(_, value)| value.as_str())
            .unwrap_or("")
    };
    // SigV4: Credential=AKID/date/region/SERVICE/aws4_request
    let service = header("Authorization")
        .split("Credential=")
        .nth(1)
        .and_then(|credential| credential.split('/').nth(3))
        .unwrap_or("unsigned");
    match header("X-Amz-Target").rsplit_once('.') {
        Some((_, operation)) => format!("{service} {operation}"),
        None => format!(
            "{service} {} {}",
            entry["method"].as_str().unwrap_or("?"),
            entry["url"]
                .as_str()
                .unwrap_or("?")
                .split('?')
                .next()
                .unwrap_or("?")
        ),
    }
}

fn median(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> f64 {
    let mut values: Vec<f64> = samples.iter().map(value).collect();
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn describe(calls: &BTreeMap<String, usize>) -> String {
    calls
        .iter()
        .map(|(call, count)| format!("{count}x {call}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn bench(options: Options) -> Result<(), String> {
    let world = World::new(&[]).await;
    let rust = world.config.clone();
    // The script's `#!/usr/bin/env python3` finds the venv's Python (boto3).
    let venv = std::env::var("GRANTWATCH_VENV")
        .unwrap_or_else(|_| format!("{}/../.venv", env!("CARGO_MANIFEST_DIR")));
    let python = world
        .config
        .clone()
        .env("PATH", format!("{venv}/bin:/usr/bin:/bin"));

    let rust_calls = recorded_calls(&world, &options.watcher, &rust, 0).await?;
    let python_calls = recorded_calls(&world, &options.baseline, &python, 1).await?;

    let (mut rust_samples, mut python_samples) = (Vec::new(), Vec::new());
    for run in 0..options.runs {
        let id = 10 + 2 * run;
        rust_samples.push(cold_start(&options.watcher, &rust, id).await?);
        python_samples.push(cold_start(&options.baseline, &python, id + 1).await?);
    }
    let ms = |s: &Sample| s.elapsed.as_secs_f64() * 1000.0;
    let mib = |s: &Sample| s.peak_rss_kib as f64 / 1024.0;
    let (rust_ms, python_ms) = (median(&rust_samples, ms), median(&python_samples, ms));
    let (rust_mib, python_mib) = (median(&rust_samples, mib), median(&python_samples, mib));
    let runs = options.runs;
    println!(
        "| cold start, one service-grant event, ledger on moto (median of {runs}) | Rust {rust_ms:.0} ms / Python+boto3 {python_ms:.0} ms | Rust {:.1}x faster (target >= 20x) |",
        python_ms / rust_ms
    );
    println!(
        "| cold start peak RSS (VmHWM) | Rust {rust_mib:.1} MiB / Python+boto3 {python_mib:.1} MiB | Rust {:.1}x less (target >= 3x) |",
        python_mib / rust_mib
    );
    println!(
        "| AWS calls for the event, cold | Rust: {} / Python: {} | {} |",
        describe(&rust_calls),
        describe(&python_calls),
        if rust_calls == python_calls {
            "the same calls"
        } else {
            "DIFFERENT calls: the baseline is not comparable"
        }
    );
    Ok(())
}

fn main() {
    let recording = std::env::temp_dir().join(format!("coldstart-{}.moto", std::process::id()));
    // moto_server (a child) writes its request recording here, not in the checkout.
    std::env::set_var("MOTO_RECORDER_FILEPATH", &recording);
    let result = options().and_then(|options| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio: {e}"))?
            .block_on(bench(options))
    });
    let _ = std::fs::remove_file(&recording);
    if let Err(problem) = result {
        eprintln!("coldstart: {problem}");
        std::process::exit(1);
    }
}
