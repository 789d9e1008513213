//! `grantwatch-fuzz`: seed the corpora, list the targets, or run the stable
//! engine for a while (what `make fuzz` falls back to without libFuzzer).

use clap::{Parser, Subcommand};
use grantwatch_fuzz::engine::{self, Budget};
use grantwatch_fuzz::{read_inputs, seed, Target, TARGETS};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "grantwatch's fuzz targets on the stable toolchain (docs/fuzzing.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the targets and the corpus each reads.
    List,
    /// Rewrite the corpora's seeds from tests/fixtures and the docs.
    Seed,
    /// Mutate each target's corpus and crashes for a while; inputs that fail
    /// are saved under fuzz/crashes/<target>/. Exit 1 when one did, 2 when
    /// the run could not start.
    Run {
        /// Targets to run (all when none).
        targets: Vec<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Random seed (default: from the clock, printed).
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::List => {
            for t in TARGETS {
                println!("{:<14} fuzz/corpus/{}", t.name, t.corpus);
            }
            ExitCode::SUCCESS
        }
        Command::Seed => match seed::seed_all() {
            Ok(written) => {
                for (corpus, n) in written {
                    println!("seed: fuzz/corpus/{corpus}: {n} seeds written");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("seed: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            targets,
            seconds,
            seed,
        } => run(&targets, seconds, seed),
    }
}

fn run(names: &[String], seconds: u64, seed: Option<u64>) -> ExitCode {
    if cfg!(panic = "abort") {
        eprintln!("run: built with panic = \"abort\": a failing input would end the process unsaved; build with panic = \"unwind\"");
        return ExitCode::from(2);
    }
    let mut chosen: Vec<&Target> = Vec::new();
    for name in names {
        match grantwatch_fuzz::target(name) {
            Some(t) => chosen.push(t),
            None => {
                eprintln!("run: no target {name:?} (grantwatch-fuzz list)");
                return ExitCode::from(2);
            }
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().collect();
    }
    let seed = seed.unwrap_or_else(clock_seed);
    println!("run: stable engine (random mutation, not coverage-guided), seed {seed}, {seconds} s per target");
    let mut failed = false;
    for target in chosen {
        let inputs = match (
            read_inputs(&target.corpus_dir()),
            read_inputs(&target.crash_dir()),
        ) {
            (Ok(corpus), Ok(crashes)) => corpus
                .into_iter()
                .chain(crashes)
                .map(|(_, b)| b)
                .collect::<Vec<_>>(),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("run: {}: cannot read its inputs: {e}", target.name);
                return ExitCode::from(2);
            }
        };
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let stats = engine::run(target, &inputs, Budget::Until(deadline), seed);
        println!(
            "run: {:<14} {} inputs from {} seeds",
            target.name,
            stats.executions,
            inputs.len()
        );
        if let Some(path) = &stats.crash {
            println!(
                "run: {}: FAILING input saved to {}",
                target.name,
                path.display()
            );
        }
        failed |= stats.crash.is_some();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
