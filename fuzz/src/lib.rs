//! Fuzz targets for grantwatch, runnable on the stable toolchain.
//!
//! Each target is a `fn(&[u8])` that panics when a property of the code
//! under test does not hold (not only when the code itself panics). Three
//! drivers call the same functions:
//! - `cargo test -p grantwatch-fuzz` (so `make test`) replays every committed
//!   corpus file (`fuzz/corpus/<corpus>/`) and crash (`fuzz/crashes/<target>/`),
//!   then a bounded, seeded run of the stable mutation engine ([`engine`]);
//! - `grantwatch-fuzz run` runs the stable engine for a given time;
//! - `fuzz/libfuzzer` (its own workspace) runs them under libFuzzer,
//!   coverage-guided (`make fuzz`).
//!
//! See docs/fuzzing.md.

pub mod engine;
pub mod seed;
pub mod targets;

use std::path::{Path, PathBuf};

/// One fuzz target: its name, the corpus it reads and the function.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    /// The directory under `fuzz/corpus/` holding its inputs (targets that
    /// read the same kind of input share one).
    pub corpus: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the tools list them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "event_parser",
        corpus: "events",
        run: targets::events::event_parser,
    },
    Target {
        name: "event_gzip",
        corpus: "events",
        run: targets::events::event_gzip,
    },
    Target {
        name: "judgement",
        corpus: "events",
        run: targets::events::judgement,
    },
    Target {
        name: "renderers",
        corpus: "verdicts",
        run: targets::render::renderers,
    },
    Target {
        name: "report",
        corpus: "reports",
        run: targets::report::report,
    },
    Target {
        name: "rules",
        corpus: "rules",
        run: targets::rules::rules,
    },
    Target {
        name: "glob",
        corpus: "glob",
        run: targets::rules::glob,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// `fuzz/` of this checkout.
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Target {
    pub fn corpus_dir(&self) -> PathBuf {
        fuzz_dir().join("corpus").join(self.corpus)
    }

    pub fn crash_dir(&self) -> PathBuf {
        fuzz_dir().join("crashes").join(self.name)
    }
}

/// The files of `dir`, sorted by name, with their contents; none when the
/// directory does not exist.
pub fn read_inputs(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if path.is_file() && !hidden {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| std::fs::read(&path).map(|bytes| (path, bytes)))
        .collect()
}

/// A short content name: the first 16 hex digits of the SHA-256.
pub fn content_name(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
