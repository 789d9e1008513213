//! (Re)seeding the corpora from the project's fixtures and docs
//! (`grantwatch-fuzz seed`). Seeds are named after what they came from;
//! inputs a fuzzer adds are named by content.
//!
//! - `events`: every CloudTrail input under `tests/fixtures/` (events, the
//!   real-world set, the watcher's, the demo's, the tamper calls), and a
//!   gzip copy of the log files;
//! - `verdicts`: those events judged, as verdict JSON;
//! - `reports`: `demo-report.json` (kept: a report from the demo's run)
//!   and the same report with a diff against a changed copy of itself;
//! - `rules`: every TOML rules example in README.md and docs/;
//! - `glob`: each glob of those rules with a principal or key from the
//!   fixtures, `pattern NUL text`.

use crate::fuzz_dir;
use crate::targets::events::{grant_events, gzip, TODAY};
use grantwatch_core::judge::{judge_event, Policy};
use grantwatch_core::report::model::Report;
use grantwatch_core::report::{diff, to_json};
use grantwatch_core::rules::RuleSet;
use grantwatch_core::verdict::{Severity, Verdict};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The directories of event fixtures, relative to the repository.
const EVENT_DIRS: [&str; 5] = [
    "tests/fixtures/events",
    "tests/fixtures/events/real",
    "tests/fixtures/watcher",
    "tests/fixtures/demo",
    "tests/fixtures/tamper",
];
/// The report kept as the report corpus's seed.
pub const DEMO_REPORT: &str = "demo-report.json";
/// Glob seeds: at most this many.
const MAX_GLOB_SEEDS: usize = 60;

/// What seeding wrote, by corpus.
pub type Written = BTreeMap<&'static str, usize>;

/// Rewrite the seeds of every corpus; inputs added by fuzzing are kept.
pub fn seed_all() -> io::Result<Written> {
    let repo = fuzz_dir().join("..");
    let corpus = fuzz_dir().join("corpus");
    let mut written = Written::new();

    let mut events: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in EVENT_DIRS {
        let prefix = dir.trim_start_matches("tests/fixtures/").replace('/', "-");
        for (path, bytes) in crate::read_inputs(&repo.join(dir))? {
            let name = file_name(&path);
            if name.ends_with(".json") && !name.ends_with(".expected.json") {
                if name.starts_with("log-file") {
                    events.push((format!("{prefix}-{name}.gz"), gzip(&bytes)));
                }
                events.push((format!("{prefix}-{name}"), bytes));
            }
        }
    }
    written.insert("events", write_all(&corpus.join("events"), &events)?);

    let policy = Policy::new(TODAY);
    let mut verdicts: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, bytes) in &events {
        for event in grant_events(bytes) {
            let verdict = judge_event(&event, None, &policy);
            let json = to_vec(&verdict)?;
            if seen.insert(json.clone()) {
                let stem = name.trim_end_matches(".gz").trim_end_matches(".json");
                verdicts.push((format!("{stem}-{}.json", verdicts.len()), json));
            }
        }
    }
    written.insert("verdicts", write_all(&corpus.join("verdicts"), &verdicts)?);

    let reports_dir = corpus.join("reports");
    let demo = std::fs::read(reports_dir.join(DEMO_REPORT))?;
    let report = Report::from_json(&demo).map_err(invalid)?;
    let reports = vec![("demo-report-with-diff.json".to_string(), with_diff(report)?)];
    written.insert("reports", write_all(&reports_dir, &reports)?);

    let rules = rules_examples(&repo)?;
    written.insert("rules", write_all(&corpus.join("rules"), &rules)?);

    let globs = glob_pairs(&rules, &verdicts);
    written.insert("glob", write_all(&corpus.join("glob"), &globs)?);
    Ok(written)
}

/// The report diffed against a copy with one grant fewer, one more and one
/// re-rated: every list of the diff holds something.
fn with_diff(mut current: Report) -> io::Result<Vec<u8>> {
    let mut previous = current.clone();
    if let Some(key) = previous.keys.iter_mut().find(|k| !k.grants.is_empty()) {
        let mut gone = key.grants[0].clone();
        gone.grant_id = format!("{}-removed-since", gone.grant_id);
        key.grants[0].severity = match key.grants[0].severity {
            Severity::Critical => Severity::Low,
            _ => Severity::Critical,
        };
        key.grants.push(gone);
        if key.grants.len() > 2 {
            key.grants.remove(1);
        }
    }
    diff::apply(&mut current, Some(&previous));
    to_json(&current).map_err(invalid)
}

/// Every ```toml block holding `[[rule]]` in README.md and docs/**.md.
fn rules_examples(repo: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut docs = vec![repo.join("README.md")];
    for dir in ["docs", "docs/findings"] {
        for (path, _) in crate::read_inputs(&repo.join(dir))? {
            if path.extension().is_some_and(|e| e == "md") {
                docs.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for doc in docs {
        let text = std::fs::read_to_string(&doc)?;
        let stem = file_name(&doc).trim_end_matches(".md").to_lowercase();
        for (i, block) in text.split("```toml").skip(1).enumerate() {
            let body = block.split("```").next().unwrap_or_default();
            if body.contains("[[rule]]") {
                out.push((
                    format!("{stem}-{i}.toml"),
                    body.trim_start().as_bytes().to_vec(),
                ));
            }
        }
    }
    Ok(out)
}

/// Each glob of the rules examples with texts from the verdicts, one that
/// matches when there is one and one that does not.
fn glob_pairs(
    rules: &[(String, Vec<u8>)],
    verdicts: &[(String, Vec<u8>)],
) -> Vec<(String, Vec<u8>)> {
    let mut patterns: Vec<String> = Vec::new();
    for (_, text) in rules {
        let Ok(set) = RuleSet::parse_toml(&String::from_utf8_lossy(text)) else {
            continue;
        };
        for rule in set.rules {
            let m = rule.matchers;
            patterns.extend(
                [m.grantee, m.key, m.account, m.region, m.service, m.caller]
                    .into_iter()
                    .flatten(),
            );
        }
    }
    patterns.sort();
    patterns.dedup();
    let mut texts: Vec<String> = Vec::new();
    for (_, json) in verdicts {
        if let Ok(v) = serde_json::from_slice::<Verdict>(json) {
            texts.extend(
                [
                    v.actor.arn,
                    v.grantee,
                    v.key_arn,
                    v.key_alias,
                    v.account,
                    v.region,
                ]
                .into_iter()
                .flatten(),
            );
        }
    }
    texts.sort();
    texts.dedup();
    let mut out = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let matching = texts
            .iter()
            .find(|t| grantwatch_core::rules::glob_match(pattern, t));
        let other = texts.get(i % texts.len().max(1));
        for text in matching.into_iter().chain(other) {
            let mut bytes = pattern.as_bytes().to_vec();
            bytes.push(0);
            bytes.extend_from_slice(text.as_bytes());
            out.push((format!("pair-{}", out.len()), bytes));
        }
    }
    out.truncate(MAX_GLOB_SEEDS);
    out
}

fn to_vec(verdict: &Verdict) -> io::Result<Vec<u8>> {
    serde_json::to_vec(verdict).map_err(invalid)
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn write_all(dir: &PathBuf, files: &[(String, Vec<u8>)]) -> io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(files.len())
}
