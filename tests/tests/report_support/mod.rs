//! Shared by the report tests: a JSON Schema check of report.json against
//! `docs/report.schema.json`, and headless Chromium.
//!
//! The validator covers the keywords the schema uses (type, required,
//! properties, additionalProperties, items, enum, oneOf, minimum, $ref to
//! `#/$defs/...`); an unknown keyword fails the check, so the schema cannot
//! silently outgrow it. (The `jsonschema` crate would pull ~60 crates into
//! a 2-core build for this one file.)
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("report.schema.json is JSON")
}

/// Every violation, as `path: problem`.
pub fn validate(instance: &Value) -> Vec<String> {
    let root = schema();
    let mut errors = Vec::new();
    check(&root, &root, instance, "$", &mut errors);
    errors
}

const ANNOTATIONS: [&str; 5] = ["$schema", "$id", "title", "description", "$defs"];

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        errors.push(format!("{path}: schema is not an object"));
        return;
    };
    for (keyword, arg) in obj {
        match keyword.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => {
                let target = arg
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .and_then(|name| root["$defs"].get(name));
                match target {
                    Some(t) => check(root, t, v, path, errors),
                    None => errors.push(format!("{path}: unresolvable $ref {arg}")),
                }
            }
            "type" => {
                let ok = match arg {
                    Value::String(t) => type_matches(t, v),
                    Value::Array(ts) => ts
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|t| type_matches(t, v)),
                    _ => false,
                };
                if !ok {
                    errors.push(format!("{path}: expected type {arg}, got {v}"));
                }
            }
            "enum" => {
                if !arg.as_array().is_some_and(|a| a.contains(v)) {
                    errors.push(format!("{path}: {v} not in {arg}"));
                }
            }
            "minimum" => {
                if let (Some(n), Some(min)) = (v.as_f64(), arg.as_f64()) {
                    if n < min {
                        errors.push(format!("{path}: {n} < {min}"));
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for name in arg
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if !o.contains_key(name) {
                            errors.push(format!("{path}: missing required field {name}"));
                        }
                    }
                }
            }
            "properties" => {
                if let (Some(o), Some(props)) = (v.as_object(), arg.as_object()) {
                    for (name, sub) in props {
                        if let Some(value) = o.get(name) {
                            check(root, sub, value, &format!("{path}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known = obj.get("properties").and_then(Value::as_object);
                    for (name, value) in o {
                        if known.is_some_and(|k| k.contains_key(name)) {
                            continue;
                        }
                        check(root, arg, value, &format!("{path}.{name}"), errors);
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, item) in a.iter().enumerate() {
                        check(root, arg, item, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            "oneOf" => {
                let passing = arg
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        check(root, sub, v, path, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing != 1 {
                    errors.push(format!(
                        "{path}: matches {passing} of oneOf, expected exactly 1"
                    ));
                }
            }
            other => errors.push(format!("{path}: validator does not know keyword {other}")),
        }
    }
}

/// Open `html` in headless Chromium; the DOM after scripts ran. Panics
/// (test setup) when Chromium is missing.
pub fn chromium_dump_dom(html: &Path) -> String {
    let profile = tempdir("chromium-profile");
    let output = chromium(&profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}); `apt-get install chromium` (make test installs it)")
        });
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// A PNG screenshot of `html`.
pub fn chromium_screenshot(html: &Path, png: &Path) {
    let profile = tempdir("chromium-profile");
    let output = chromium(&profile)
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1400,1800")
        .arg("--hide-scrollbars")
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn chromium(profile: &Path) -> Command {
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    let mut command = Command::new(binary);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// A fresh directory under the system temp dir.
pub fn tempdir(label: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("grantwatch-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
