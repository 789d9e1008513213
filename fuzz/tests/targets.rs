//! Every fuzz target under `cargo test` (stable): the committed corpus and
//! every saved crash replayed, then a bounded, seeded run of the stable
//! engine. A failing input names its file (replays) or is saved under
//! fuzz/crashes/<target>/ (mutations) so the next run replays it too.
//!
//! GRANTWATCH_FUZZ_ITERATIONS sets the mutations per target (default 1000).

use grantwatch_fuzz::engine::{self, Budget};
use grantwatch_fuzz::{read_inputs, Target};
use std::path::Path;

const DEFAULT_ITERATIONS: u64 = 1000;

fn target(name: &str) -> &'static Target {
    grantwatch_fuzz::target(name).unwrap_or_else(|| panic!("no target {name}"))
}

fn inputs(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    read_inputs(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Replays `dir`; fails naming every input that fails.
fn replay(target: &Target, dir: &Path) -> usize {
    let inputs = inputs(dir);
    let failing: Vec<String> = inputs
        .iter()
        .filter(|(_, bytes)| !engine::passes(target, bytes))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failing.is_empty(),
        "{}: {} of {} inputs fail: {failing:#?}",
        target.name,
        failing.len(),
        inputs.len()
    );
    inputs.len()
}

fn corpus(name: &str) {
    let target = target(name);
    let replayed = replay(target, &target.corpus_dir());
    assert!(
        replayed > 0,
        "{name}: empty corpus {}",
        target.corpus_dir().display()
    );
}

fn crashes(name: &str) {
    let target = target(name);
    replay(target, &target.crash_dir());
}

fn mutations(name: &str) {
    let target = target(name);
    let seeds: Vec<Vec<u8>> = inputs(&target.corpus_dir())
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    let iterations = std::env::var("GRANTWATCH_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    // One fixed seed per target: the same inputs on every run.
    let seed = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let stats = engine::run(target, &seeds, Budget::Iterations(iterations), seed);
    assert_eq!(
        stats.crash, None,
        "{name}: a failing input, saved (replayed by crashes::{name} from now on)"
    );
    assert_eq!(stats.executions, iterations);
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        mod corpus {
            $(#[test] fn $name() { super::corpus(stringify!($name)) })*
        }
        mod mutations {
            $(#[test] fn $name() { super::mutations(stringify!($name)) })*
        }
    };
}

/// The crash replays, one per target; a crash that shows a bug not yet
/// fixed is `#[ignore = "bug: ..."]` until it is.
macro_rules! crash_tests {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod crashes {
            $($(#[$attr])* #[test] fn $name() { super::crashes(stringify!($name)) })*
        }
    };
}

fuzz_tests!(
    event_parser,
    event_gzip,
    judgement,
    renderers,
    report,
    rules,
    glob
);
crash_tests!(
    event_parser,
    event_gzip,
    judgement,
    renderers,
    report,
    rules,
    glob,
);

/// Every target has its three tests above.
#[test]
fn every_target_is_tested() {
    let tested = [
        "event_parser",
        "event_gzip",
        "judgement",
        "renderers",
        "report",
        "rules",
        "glob",
    ];
    let names: Vec<&str> = grantwatch_fuzz::TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names, tested);
}

/// The typed corpora still read as what they seed: a model change that made
/// them unreadable would leave their targets returning early on every
/// input. Reseed with `cargo run -p grantwatch-fuzz -- seed`
/// (`demo-report.json` comes from the demo's run: docs/fuzzing.md).
#[test]
fn typed_corpora_still_parse() {
    use grantwatch_core::report::model::Report;
    use grantwatch_core::rules::RuleSet;
    use grantwatch_core::verdict::Verdict;
    let corpus = |name: &str| inputs(&grantwatch_fuzz::fuzz_dir().join("corpus").join(name));
    for (path, bytes) in corpus("reports") {
        Report::from_json(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    for (path, bytes) in corpus("verdicts") {
        serde_json::from_slice::<Verdict>(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    for (path, bytes) in corpus("rules") {
        let text = String::from_utf8(bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        RuleSet::parse_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let events = corpus("events");
    let with_grant_events = events
        .iter()
        .filter(|(_, bytes)| !grantwatch_fuzz::targets::events::grant_events(bytes).is_empty())
        .count();
    assert!(
        with_grant_events * 4 >= events.len() * 3,
        "only {with_grant_events} of {} event inputs hold a grant event",
        events.len()
    );
}
