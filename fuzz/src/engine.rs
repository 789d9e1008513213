//! The stable engine: mutates corpus inputs at random and runs a target on
//! each, saving any input that fails under `fuzz/crashes/<target>/`.
//!
//! Not coverage-guided (that needs compiler instrumentation: see
//! `fuzz/libfuzzer`), so it leans on structure instead: an input that is
//! JSON gets whole values replaced, removed or swapped (wrong types, empty,
//! huge, deeply nested, markup), besides byte-level flips, inserted tokens,
//! cuts, repeats and splices of two inputs. Seeded: the same seed makes the
//! same inputs, so `cargo test` is deterministic.

use crate::{content_name, Target};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// How long a run goes on.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Iterations(u64),
    Until(std::time::Instant),
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunStats {
    pub executions: u64,
    /// The input that failed, as saved.
    pub crash: Option<PathBuf>,
}

/// Byte strings worth inserting: JSON, CloudTrail, TOML and glob syntax.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "-0",
    "1e999",
    "18446744073709551616",
    "\\u0000",
    "\\ud800",
    "\\\"",
    "[[[[[[[[",
    "]]]]",
    "{\"a\":",
    "\"eventName\":\"CreateGrant\",",
    "\"eventName\":\"RevokeGrant\",",
    "\"eventSource\":\"kms.amazonaws.com\",",
    "\"Records\":[",
    "\"detail\":",
    "\"errorCode\":\"AccessDenied\",",
    "\"dryRun\":true,",
    "arn:aws:iam::111122223333:root",
    "AWS Internal",
    "<!channel>",
    "&lt;",
    "```",
    "\u{202e}",
    "\r\n",
    "[[rule]]\n",
    "id = \"r\"\n",
    "reason = \"r\"\n",
    "allow_critical = true\n",
    "severity = \"info\"\n",
    "expires = 2026-11-28\n",
    "*",
    "?",
    "\0",
];

/// Run `target` on `budget` mutations of `seeds`, stopping at the first
/// failing input (saved, as libFuzzer does: one bug at a time).
pub fn run(target: &Target, seeds: &[Vec<u8>], budget: Budget, seed: u64) -> RunStats {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stats = RunStats::default();
    let fallback = vec![Vec::new()];
    let seeds = if seeds.is_empty() { &fallback } else { seeds };
    loop {
        let more = match budget {
            Budget::Iterations(n) => stats.executions < n,
            Budget::Until(deadline) => std::time::Instant::now() < deadline,
        };
        if !more {
            return stats;
        }
        let input = mutate(&mut rng, seeds);
        stats.executions += 1;
        if let Err(path) = execute(target, &input) {
            stats.crash = Some(path);
            return stats;
        }
    }
}

/// Run `target` on `input`; on a panic, save the input under
/// `fuzz/crashes/<target>/` and return where.
pub fn execute(target: &Target, input: &[u8]) -> Result<(), PathBuf> {
    if passes(target, input) {
        return Ok(());
    }
    let dir = target.crash_dir();
    let path = dir.join(format!("crash-{}", content_name(input)));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        eprintln!("{}: cannot save {}: {e}", target.name, path.display());
    }
    Err(path)
}

/// Whether `target` runs on `input` without a panic (the panic's message
/// is printed by the panic hook).
pub fn passes(target: &Target, input: &[u8]) -> bool {
    let run = target.run;
    catch_unwind(AssertUnwindSafe(|| run(input))).is_ok()
}

/// One new input: a seed changed one to four times.
pub fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4u32) {
        data = if rng.random_bool(0.5) {
            mutate_json(rng, &data).unwrap_or_else(|| mutate_bytes(rng, data, seeds))
        } else {
            mutate_bytes(rng, data, seeds)
        };
    }
    data
}

fn mutate_bytes(rng: &mut StdRng, mut data: Vec<u8>, seeds: &[Vec<u8>]) -> Vec<u8> {
    let len = data.len();
    let at = |rng: &mut StdRng| rng.random_range(0..=len);
    match rng.random_range(0..7u32) {
        0 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] ^= 1 << rng.random_range(0..8u32);
        }
        1 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] = *pick(rng, b"\0\xff\"\\{}[],:\n*?=.<>&");
        }
        2 => {
            let i = at(rng);
            let token = pick(rng, TOKENS).as_bytes();
            data.splice(i..i, token.iter().copied());
        }
        3 if len > 0 => {
            let start = rng.random_range(0..len);
            let end = rng.random_range(start..=len.min(start + 64));
            data.drain(start..end);
        }
        4 if len > 0 => {
            let start = rng.random_range(0..len);
            let end = rng.random_range(start..=len.min(start + 256));
            let copy: Vec<u8> = data[start..end].to_vec();
            let i = at(rng);
            data.splice(i..i, copy);
        }
        5 => {
            let other = pick(rng, seeds);
            let cut = at(rng);
            let from = rng.random_range(0..=other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        _ => data.truncate(at(rng)),
    }
    data
}

/// A JSON input with one value replaced, removed or swapped; `None` when
/// `data` is not JSON.
fn mutate_json(rng: &mut StdRng, data: &[u8]) -> Option<Vec<u8>> {
    let mut doc: Value = serde_json::from_slice(data).ok()?;
    let nodes = count_nodes(&doc);
    let target = rng.random_range(0..nodes);
    let replacement = match rng.random_range(0..3u32) {
        // Another value of the same document (right shape, wrong place).
        0 => nth_node(&doc, rng.random_range(0..nodes)).cloned(),
        _ => Some(interesting_value(rng)),
    };
    let remove = rng.random_bool(0.2);
    edit_nth(&mut doc, target, &mut |parent, key| match key {
        Key::Field(name) => {
            if let Some(map) = parent.as_object_mut() {
                if remove {
                    map.remove(&name);
                } else if let Some(value) = replacement.clone() {
                    map.insert(name, value);
                }
            }
        }
        Key::Index(i) => {
            if let Some(list) = parent.as_array_mut() {
                if remove {
                    list.remove(i);
                } else if let Some(value) = replacement.clone() {
                    list[i] = value;
                }
            }
        }
    });
    if rng.random_bool(0.5) {
        serde_json::to_vec(&doc).ok()
    } else {
        serde_json::to_vec_pretty(&doc).ok()
    }
}

fn interesting_value(rng: &mut StdRng) -> Value {
    match rng.random_range(0..14u32) {
        0 => Value::Null,
        1 => Value::Bool(rng.random_bool(0.5)),
        2 => serde_json::json!(-1),
        3 => serde_json::json!(u64::MAX),
        4 => serde_json::json!(1.5e300),
        5 => serde_json::json!(""),
        6 => serde_json::json!([]),
        7 => serde_json::json!({}),
        8 => Value::String("A".repeat(rng.random_range(100..20_000))),
        9 => Value::String("<!channel> &amp; `x` ```*_~ \u{202e}\u{0}\n\t\u{1b}[31m é日😀".into()),
        10 => nested(rng.random_range(10..300)),
        11 => serde_json::json!(["Decrypt", "CreateGrant", "Frobnicate"]),
        12 => serde_json::json!("arn:aws:iam::444455556666:root"),
        _ => Value::String(pick(rng, TOKENS).to_string()),
    }
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(Value::Null, |inner, i| {
        if i % 2 == 0 {
            Value::Array(vec![inner])
        } else {
            serde_json::json!({ "a": inner })
        }
    })
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Values in document order, the root first.
fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn nth_node(v: &Value, n: usize) -> Option<&Value> {
    if n == 0 {
        return Some(v);
    }
    let mut skip = n - 1;
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return None,
    };
    for child in children {
        let size = count_nodes(child);
        if skip < size {
            return nth_node(child, skip);
        }
        skip -= size;
    }
    None
}

enum Key {
    Field(String),
    Index(usize),
}

/// Call `edit(parent, key)` for the `n`th value (not the root, which has
/// no parent: `n == 0` edits the first child).
fn edit_nth(v: &mut Value, n: usize, edit: &mut dyn FnMut(&mut Value, Key)) {
    let mut skip = n.saturating_sub(1);
    let keys: Vec<Key> = match v {
        Value::Array(items) => (0..items.len()).map(Key::Index).collect(),
        Value::Object(map) => map.keys().cloned().map(Key::Field).collect(),
        _ => return,
    };
    for key in keys {
        let child = match &key {
            Key::Index(i) => &v[*i],
            Key::Field(name) => &v[name.as_str()],
        };
        let size = count_nodes(child);
        if skip == 0 {
            edit(v, key);
            return;
        }
        if skip < size {
            let child = match &key {
                Key::Index(i) => &mut v[*i],
                Key::Field(name) => &mut v[name.as_str()],
            };
            edit_nth(child, skip, edit);
            return;
        }
        skip -= size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn always_fails(_: &[u8]) {
        panic!("engine self-test: this target always fails");
    }

    #[test]
    fn a_failing_input_is_saved_and_stops_the_run() {
        let target = Target {
            name: "engine-self-test",
            corpus: "none",
            run: always_fails,
        };
        let stats = run(&target, &[b"{}".to_vec()], Budget::Iterations(50), 1);
        let saved = stats.crash.expect("the failure is reported");
        let bytes = std::fs::read(&saved).expect("the input is saved");
        std::fs::remove_dir_all(target.crash_dir()).expect("clean up");
        assert_eq!(stats.executions, 1, "the run stops at the first failure");
        assert_eq!(
            saved.file_name().and_then(|n| n.to_str()),
            Some(format!("crash-{}", content_name(&bytes)).as_str())
        );
    }

    #[test]
    fn the_same_seed_makes_the_same_inputs() {
        let seeds = vec![
            br#"{"a":[1,{"b":"c"}],"d":null}"#.to_vec(),
            b"plain".to_vec(),
        ];
        let inputs = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| mutate(&mut rng, &seeds))
                .collect::<Vec<_>>()
        };
        assert_eq!(inputs(3), inputs(3));
        assert_ne!(inputs(3), inputs(4));
    }

    #[test]
    fn json_mutations_replace_remove_or_swap_one_value() {
        let seed = br#"{"a":[1,{"b":"c"}],"d":null,"e":"f"}"#;
        let original: Value = serde_json::from_slice(seed).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let mut changed = 0;
        for _ in 0..200 {
            let out = mutate_json(&mut rng, seed).expect("JSON in, JSON out");
            let doc: Value = match serde_json::from_slice(&out) {
                Ok(doc) => doc,
                // Nesting deeper than serde_json reads (on purpose: the
                // parsers must refuse it cleanly).
                Err(e) if e.to_string().contains("recursion limit") => {
                    changed += 1;
                    continue;
                }
                Err(e) => panic!("the output is not JSON: {e}"),
            };
            assert!(doc.is_object(), "the root is kept: {doc}");
            changed += usize::from(doc != original);
        }
        assert!(
            changed > 150,
            "only {changed} of 200 mutations changed the document"
        );
        assert_eq!(mutate_json(&mut rng, b"not json"), None);
    }

    #[test]
    fn nodes_are_numbered_in_document_order() {
        let doc = serde_json::json!({"a": [1, {"b": "c"}], "d": null});
        assert_eq!(count_nodes(&doc), 6);
        let nodes: Vec<Value> = (0..6).filter_map(|n| nth_node(&doc, n).cloned()).collect();
        assert_eq!(nodes[1], serde_json::json!([1, {"b": "c"}]));
        assert_eq!(nodes[3], serde_json::json!({"b": "c"}));
        assert_eq!(nodes[4], serde_json::json!("c"));
        assert_eq!(nodes[5], Value::Null);
        for n in 1..6 {
            let mut edited = doc.clone();
            edit_nth(&mut edited, n, &mut |parent, key| match key {
                Key::Field(name) => parent[name.as_str()] = serde_json::json!("X"),
                Key::Index(i) => parent[i] = serde_json::json!("X"),
            });
            assert_eq!(
                nth_node(&edited, n),
                Some(&serde_json::json!("X")),
                "node {n}"
            );
        }
    }
}
