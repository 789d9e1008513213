//! One CloudTrail log reader, for `grantwatch backfill`, `reconcile` and the
//! tests.
//!
//! Input is CloudTrail log files as CloudTrail writes them (`.json.gz` in
//! `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`), plain `.json`
//! files, or anything [`parse_document`] reads (EventBridge events, bare
//! records, JSON lists). Where they come from is a [`LogSource`]: local
//! files ([`LocalFiles`]) or, in the CLI, S3 objects.
//!
//! How it reads:
//! - files are spread over worker threads (`Options::threads`), each with
//!   its own reused buffers, and handed back **in source order**;
//! - gzip is inflated by zlib-rs (flate2's `zlib-rs` backend);
//! - `{"Records": [...]}` is split into borrowed raw records without
//!   building a value for any of them; a record whose text cannot name a
//!   grant operation (no `Grant` in it) is dropped at once, the rest are
//!   peeked at (`eventSource`, `eventName` only) and only grant records are
//!   parsed fully, by [`crate::event`];
//! - memory is bounded by the files in flight (threads x file size), not by
//!   the input: 10 times more files use the same buffers;
//! - a corrupt or truncated file is reported by name in its
//!   [`FileResult`], and the other files are still read.

use crate::event::{
    parse_document, parse_eventbridge_event, GrantAction, GrantEvent, Parsed, MAX_INPUT_BYTES,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// Where log files come from, by index (`0..len()`), in replay order.
pub trait LogSource: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The file's name in reports (path, `s3://bucket/key`).
    fn name(&self, index: usize) -> String;
    /// Read file `index` as stored (gzip or plain) into `buf`, replacing
    /// its contents. At most `limit` bytes are needed: reading one more
    /// lets the reader say "too large".
    fn read(&self, index: usize, buf: &mut Vec<u8>, limit: usize) -> Result<(), String>;
}

/// Which records to keep, and how many threads read.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Keep grant events at or after this day (UTC), by `eventTime`.
    pub since: Option<time::Date>,
    /// Keep grant events on or before this day (UTC), by `eventTime`.
    pub until: Option<time::Date>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            since: None,
            until: None,
        }
    }
}

/// What one file held.
#[derive(Debug, Default)]
pub struct FileResult {
    /// Position in the source.
    pub index: usize,
    pub name: String,
    /// Bytes as stored (compressed).
    pub bytes: u64,
    /// Records read (grant or not).
    pub records: u64,
    /// Grant events kept, oldest first (unknown times last).
    pub events: Vec<GrantEvent>,
    /// Grant events dropped by `since`/`until`.
    pub out_of_range: u64,
    /// Bad records in an otherwise readable file, one line each.
    pub problems: Vec<String>,
    /// Why the file could not be read at all (corrupt, truncated, too
    /// large, not a log file).
    pub failed: Option<String>,
}

impl FileResult {
    /// Records that were not grant events.
    pub fn other_records(&self) -> u64 {
        self.records
            .saturating_sub(self.events.len() as u64 + self.out_of_range)
            .saturating_sub(self.problems.len() as u64)
    }
}

/// Read every file of `source`, on `options.threads` threads, and give
/// each file's result to `each` in source order. `each` returns `false` to
/// stop early (e.g. the output was closed).
pub fn scan<S: LogSource + ?Sized>(
    source: &S,
    options: &Options,
    mut each: impl FnMut(FileResult) -> bool,
) {
    let threads = options.threads.clamp(1, source.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<FileResult>(threads * 2);
        for _ in 0..threads {
            let sender = sender.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                let mut buffers = Buffers::default();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= source.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let result = read_one(source, index, options, &mut buffers);
                    if sender.send(result).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        // Hand results over in source order.
        let mut waiting = BTreeMap::new();
        let mut expected = 0usize;
        'receive: for result in receiver.iter() {
            waiting.insert(result.index, result);
            while let Some(result) = waiting.remove(&expected) {
                expected += 1;
                if !each(result) {
                    stop.store(true, Ordering::Relaxed);
                    break 'receive;
                }
            }
        }
        // Dropping the receiver here ends workers blocked on a full channel.
    });
}

/// Per-thread buffers, reused from file to file.
#[derive(Default)]
struct Buffers {
    stored: Vec<u8>,
    inflated: Vec<u8>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn read_one<S: LogSource + ?Sized>(
    source: &S,
    index: usize,
    options: &Options,
    buffers: &mut Buffers,
) -> FileResult {
    let mut result = FileResult {
        index,
        name: source.name(index),
        ..FileResult::default()
    };
    if let Err(e) = source.read(index, &mut buffers.stored, MAX_INPUT_BYTES) {
        result.failed = Some(format!("cannot read: {e}"));
        return result;
    }
    result.bytes = buffers.stored.len() as u64;
    if buffers.stored.len() > MAX_INPUT_BYTES {
        result.failed = Some(format!(
            "input too large: more than the {} MiB limit",
            MAX_INPUT_BYTES / (1024 * 1024)
        ));
        return result;
    }
    let data: &[u8] = if buffers.stored.starts_with(&GZIP_MAGIC) {
        buffers.inflated.clear();
        let inflated = flate2::read::MultiGzDecoder::new(&buffers.stored[..])
            .take(MAX_INPUT_BYTES as u64 + 1)
            .read_to_end(&mut buffers.inflated);
        if let Err(e) = inflated {
            result.failed = Some(format!("cannot read gzip input: {e}"));
            return result;
        }
        if buffers.inflated.len() > MAX_INPUT_BYTES {
            result.failed = Some(format!(
                "input too large: decompresses to more than the {} MiB limit",
                MAX_INPUT_BYTES / (1024 * 1024)
            ));
            return result;
        }
        &buffers.inflated
    } else {
        &buffers.stored
    };
    read_records(data, options, &mut result);
    result
        .events
        .sort_by(|a, b| time_order(a).cmp(&time_order(b)));
    result
}

fn time_order(event: &GrantEvent) -> (bool, Option<&str>, &str) {
    (
        event.event_time.is_none(),
        event.event_time.as_deref(),
        &event.event_id,
    )
}

/// A CloudTrail log file: its records as raw text, nothing built.
#[derive(Deserialize)]
struct LogFileDocument<'a> {
    #[serde(borrow, rename = "Records")]
    records: Option<Vec<&'a RawValue>>,
}

/// Just enough of a record to tell a grant event.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, rename = "eventSource", default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventName", default)]
    name: Option<Cow<'a, str>>,
}

fn read_records(data: &[u8], options: &Options, result: &mut FileResult) {
    let mut reader = serde_json::Deserializer::from_slice(data);
    let fast = LogFileDocument::deserialize(&mut reader)
        .ok()
        .filter(|_| reader.end().is_ok())
        .and_then(|document| document.records);
    let Some(records) = fast else {
        // Not a plain log file: EventBridge events, bare records, a list,
        // several documents, or broken JSON. The general parser says which.
        return read_any_document(data, options, result);
    };
    result.records = records.len() as u64;
    for (i, raw) in records.into_iter().enumerate() {
        let text = raw.get().as_bytes();
        // Every grant operation's name contains "Grant"; CloudTrail writes
        // names plainly, and a record with \u escapes is peeked at anyway.
        if memchr::memmem::find(text, b"Grant").is_none()
            && memchr::memmem::find(text, b"\\u").is_none()
        {
            continue;
        }
        let maybe_grant = match serde_json::from_str::<Peek>(raw.get()) {
            Ok(peek) => {
                let named = peek
                    .name
                    .as_deref()
                    .and_then(GrantAction::from_event_name)
                    .is_some();
                let from_kms = peek.source.as_deref().is_none_or(|s| s.starts_with("kms."));
                // Neither field: the full parser reports the bad record.
                (named && from_kms) || (peek.name.is_none() && peek.source.is_none())
            }
            Err(_) => true,
        };
        if !maybe_grant {
            continue;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(raw.get())
            .map_err(|e| format!("record {i}: not valid JSON: {e}"))
            .and_then(|value| {
                parse_eventbridge_event(&value).map_err(|e| format!("record {i}: {e}"))
            });
        match parsed {
            Ok(Parsed::Grant(event)) => keep(*event, options, result),
            Ok(Parsed::NotAGrantEvent { .. }) => {}
            Err(problem) => result.problems.push(problem),
        }
    }
}

fn read_any_document(data: &[u8], options: &Options, result: &mut FileResult) {
    match parse_document(data) {
        Err(e) => result.failed = Some(e.to_string()),
        Ok(records) => {
            result.records = records.len() as u64;
            for record in records {
                match record {
                    Ok(Parsed::Grant(event)) => keep(*event, options, result),
                    Ok(Parsed::NotAGrantEvent { .. }) => {}
                    Err(e) => result.problems.push(e.to_string()),
                }
            }
        }
    }
}

fn keep(event: GrantEvent, options: &Options, result: &mut FileResult) {
    if in_range(event.event_time.as_deref(), options) {
        result.events.push(event);
    } else {
        result.out_of_range += 1;
    }
}

/// Events without a readable time are kept: dropping them would hide them.
fn in_range(event_time: Option<&str>, options: &Options) -> bool {
    let Some(day) = event_time.and_then(day_of) else {
        return true;
    };
    options.since.is_none_or(|since| day >= since) && options.until.is_none_or(|until| day <= until)
}

fn day_of(timestamp: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(timestamp.get(..10)?, &format).ok()
}

/// The day in a CloudTrail S3 layout path
/// (`.../CloudTrail/<region>/YYYY/MM/DD/...`), if it has one.
pub fn layout_day(path: &str) -> Option<time::Date> {
    let parts: Vec<&str> = path.split(['/', '\\']).collect();
    let at = parts.iter().position(|p| *p == "CloudTrail")?;
    let year: i32 = parts.get(at + 2)?.parse().ok()?;
    let month: u8 = parts.get(at + 3)?.parse().ok()?;
    let day: u8 = parts.get(at + 4)?.parse().ok()?;
    time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

/// Whether a file dated `day` by its path can hold events in the range: a
/// record reaches a file of its own day or a later one (delivery runs
/// minutes behind), never an earlier one.
pub fn file_may_hold(day: Option<time::Date>, options: &Options) -> bool {
    let Some(day) = day else {
        return true;
    };
    let until_delivered = options.until.map(|until| until.next_day().unwrap_or(until));
    options.since.is_none_or(|since| day >= since) && until_delivered.is_none_or(|last| day <= last)
}

/// Whether a name found in a directory or bucket is a log file to read:
/// `.json` or `.json.gz`, and not a digest (`CloudTrail-Digest/`).
pub fn is_log_name(name: &str) -> bool {
    (name.ends_with(".json") || name.ends_with(".json.gz")) && !name.contains("CloudTrail-Digest")
}

/// Local log files: the paths given, directories walked in sorted order
/// (CloudTrail's layout and file names then replay each account-region
/// oldest first). Symlinks are followed, but a directory already walked is
/// not walked again (no loops).
#[derive(Debug, Default)]
pub struct LocalFiles {
    files: Vec<PathBuf>,
}

impl LocalFiles {
    /// The files under `paths` that may hold events in the range; also
    /// what could not be walked, one line each.
    pub fn discover(paths: &[PathBuf], options: &Options) -> (LocalFiles, Vec<String>) {
        let mut walk = Walk {
            files: Vec::new(),
            problems: Vec::new(),
            seen_dirs: HashSet::new(),
            options,
        };
        for path in paths {
            walk.visit(path, true);
        }
        (LocalFiles { files: walk.files }, walk.problems)
    }

    pub fn from_files(files: Vec<PathBuf>) -> LocalFiles {
        LocalFiles { files }
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

struct Walk<'a> {
    files: Vec<PathBuf>,
    problems: Vec<String>,
    seen_dirs: HashSet<PathBuf>,
    options: &'a Options,
}

impl Walk<'_> {
    fn visit(&mut self, path: &Path, given: bool) {
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) => {
                self.problems.push(format!("{}: {e}", path.display()));
                return;
            }
        };
        if metadata.is_dir() {
            let Ok(real) = std::fs::canonicalize(path) else {
                self.problems
                    .push(format!("{}: cannot resolve the directory", path.display()));
                return;
            };
            if !self.seen_dirs.insert(real) {
                return; // walked already: a symlink loop or a repeated path
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !given && name == "CloudTrail-Digest" {
                return;
            }
            let mut children: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => {
                    self.problems.push(format!("{}: {e}", path.display()));
                    return;
                }
            };
            children.sort();
            for child in children {
                self.visit(&child, false);
            }
            return;
        }
        let text = path.to_string_lossy();
        let wanted = given || is_log_name(&text);
        if wanted && (given || file_may_hold(layout_day(&text), self.options)) {
            self.files.push(path.to_path_buf());
        }
    }
}

impl LogSource for LocalFiles {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn name(&self, index: usize) -> String {
        self.files
            .get(index)
            .map_or_else(String::new, |p| p.display().to_string())
    }

    fn read(&self, index: usize, buf: &mut Vec<u8>, limit: usize) -> Result<(), String> {
        let path = self.files.get(index).ok_or("no such file")?;
        buf.clear();
        std::fs::File::open(path)
            .and_then(|f| f.take(limit as u64 + 1).read_to_end(buf))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Log files in memory, for tests.
    struct Memory(Vec<(String, Vec<u8>)>);

    impl LogSource for Memory {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn name(&self, index: usize) -> String {
            self.0[index].0.clone()
        }
        fn read(&self, index: usize, buf: &mut Vec<u8>, _limit: usize) -> Result<(), String> {
            buf.clear();
            buf.extend_from_slice(&self.0[index].1);
            Ok(())
        }
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    fn create(id: &str, time: &str) -> serde_json::Value {
        serde_json::json!({
            "eventVersion": "1.08", "eventID": id, "eventTime": time,
            "eventSource": "kms.amazonaws.com", "eventName": "CreateGrant",
            "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice"},
            "requestParameters": {
                "keyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "granteePrincipal": "arn:aws:iam::111122223333:role/app",
                "operations": ["Decrypt"]
            },
            "responseElements": {"grantId": format!("g-{id}"), "keyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
        })
    }

    fn other(name: &str, source: &str) -> serde_json::Value {
        serde_json::json!({"eventID": "x", "eventTime": "2026-01-01T00:00:00Z",
            "eventSource": source, "eventName": name, "requestParameters": {"bucketName": "b"}})
    }

    fn log(records: Vec<serde_json::Value>) -> String {
        serde_json::json!({ "Records": records }).to_string()
    }

    fn run(source: &Memory, options: &Options) -> Vec<FileResult> {
        let mut out = Vec::new();
        scan(source, options, |r| {
            out.push(r);
            true
        });
        out
    }

    fn ids(result: &FileResult) -> Vec<&str> {
        result.events.iter().map(|e| e.event_id.as_str()).collect()
    }

    #[test]
    fn keeps_grant_events_skips_the_rest_and_sorts_by_time() {
        let text = log(vec![
            create("b", "2026-01-02T00:00:00Z"),
            other("GetObject", "s3.amazonaws.com"),
            other("Decrypt", "kms.amazonaws.com"),
            // Named like a grant operation, from another service.
            other("CreateGrant", "example.amazonaws.com"),
            other("ListGrants", "kms.amazonaws.com"),
            create("a", "2026-01-01T00:00:00Z"),
        ]);
        let source = Memory(vec![("f.json.gz".into(), gzip(&text))]);
        let results = run(&source, &Options::default());
        assert_eq!(results.len(), 1);
        assert_eq!(ids(&results[0]), ["a", "b"]);
        assert_eq!(results[0].records, 6);
        assert_eq!(results[0].other_records(), 4);
        assert!(results[0].failed.is_none() && results[0].problems.is_empty());
    }

    #[test]
    fn results_come_in_source_order_on_many_threads() {
        let files: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| {
                let id = format!("e{i:02}");
                let body = log(vec![create(&id, "2026-01-01T00:00:00Z")]);
                let bytes = if i % 2 == 0 {
                    gzip(&body)
                } else {
                    body.into_bytes()
                };
                (format!("f{i:02}"), bytes)
            })
            .collect();
        let source = Memory(files);
        let options = Options {
            threads: 4,
            ..Options::default()
        };
        let results = run(&source, &options);
        let names: Vec<String> = results.iter().map(|r| r.name.clone()).collect();
        let expected: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
        assert_eq!(names, expected);
        assert!(results.iter().all(|r| r.events.len() == 1));
    }

    #[test]
    fn a_truncated_or_corrupt_file_is_named_and_the_rest_are_read() {
        let good = gzip(&log(vec![create("ok", "2026-01-01T00:00:00Z")]));
        let truncated = good[..good.len() / 2].to_vec();
        let source = Memory(vec![
            ("truncated.json.gz".into(), truncated),
            (
                "garbage.json".into(),
                b"{\"Records\": [{\"eventName\": ".to_vec(),
            ),
            ("good.json.gz".into(), good),
        ]);
        let results = run(&source, &Options::default());
        assert!(results[0].failed.as_deref().unwrap().contains("gzip"));
        assert!(results[1].failed.as_deref().unwrap().contains("JSON"));
        assert_eq!(ids(&results[2]), ["ok"]);
    }

    #[test]
    fn a_bad_grant_record_is_a_problem_and_its_neighbours_are_kept() {
        let mut bad = create("bad", "2026-01-01T00:00:00Z");
        bad["requestParameters"]["operations"] = serde_json::json!("Decrypt");
        let source = Memory(vec![(
            "f.json".into(),
            log(vec![bad, create("good", "2026-01-01T00:00:00Z")]).into_bytes(),
        )]);
        let results = run(&source, &Options::default());
        assert_eq!(ids(&results[0]), ["good"]);
        assert_eq!(results[0].problems.len(), 1, "{:?}", results[0].problems);
        assert!(results[0].problems[0].contains("operations"));
    }

    #[test]
    fn other_document_shapes_go_through_the_general_parser() {
        let eventbridge = serde_json::json!({
            "detail-type": "AWS API Call via CloudTrail", "source": "aws.kms",
            "account": "111122223333", "region": "us-east-1",
            "detail": create("eb", "2026-01-01T00:00:00Z")
        });
        let source = Memory(vec![(
            "e.json".into(),
            eventbridge.to_string().into_bytes(),
        )]);
        let results = run(&source, &Options::default());
        assert_eq!(ids(&results[0]), ["eb"]);
    }

    #[test]
    fn since_and_until_keep_the_days_between() {
        let text = log(vec![
            create("before", "2026-01-01T23:59:59Z"),
            create("first", "2026-01-02T00:00:00Z"),
            create("last", "2026-01-03T23:59:59Z"),
            create("after", "2026-01-04T00:00:00Z"),
        ]);
        let source = Memory(vec![("f.json".into(), text.into_bytes())]);
        let day = |d| time::Date::from_calendar_date(2026, time::Month::January, d).unwrap();
        let options = Options {
            threads: 1,
            since: Some(day(2)),
            until: Some(day(3)),
        };
        let results = run(&source, &options);
        assert_eq!(ids(&results[0]), ["first", "last"]);
        assert_eq!(results[0].out_of_range, 2);
        // Files: a record reaches its own day's file or a later one.
        assert!(!file_may_hold(Some(day(1)), &options));
        assert!(file_may_hold(Some(day(4)), &options));
        assert!(!file_may_hold(Some(day(5)), &options));
        assert!(file_may_hold(None, &options));
    }

    #[test]
    fn layout_days_and_log_names() {
        assert_eq!(
            layout_day("AWSLogs/111122223333/CloudTrail/eu-west-1/2026/02/28/x.json.gz"),
            time::Date::from_calendar_date(2026, time::Month::February, 28).ok()
        );
        assert_eq!(layout_day("logs/x.json.gz"), None);
        assert!(is_log_name("a/b.json.gz") && is_log_name("b.json"));
        assert!(!is_log_name("notes.txt"));
        assert!(!is_log_name(
            "AWSLogs/1/CloudTrail-Digest/us-east-1/2026/01/01/d.json.gz"
        ));
    }

    #[test]
    fn stopping_early_ends_the_scan() {
        let files = (0..50)
            .map(|i| (format!("f{i}"), log(vec![]).into_bytes()))
            .collect();
        let source = Memory(files);
        let mut seen = 0;
        scan(
            &source,
            &Options {
                threads: 2,
                ..Options::default()
            },
            |_| {
                seen += 1;
                seen < 3
            },
        );
        assert_eq!(seen, 3);
    }

    #[cfg(unix)]
    #[test]
    fn directories_are_walked_sorted_without_following_symlink_loops() {
        let dir = std::env::temp_dir().join(format!("grantwatch-logs-{}", std::process::id()));
        let day = dir.join("AWSLogs/1/CloudTrail/us-east-1/2026/01/02");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::create_dir_all(dir.join("AWSLogs/1/CloudTrail-Digest")).unwrap();
        std::fs::write(day.join("b.json.gz"), b"").unwrap();
        std::fs::write(day.join("a.json"), b"").unwrap();
        std::fs::write(day.join("notes.txt"), b"").unwrap();
        std::fs::write(dir.join("AWSLogs/1/CloudTrail-Digest/d.json.gz"), b"").unwrap();
        std::os::unix::fs::symlink(&dir, day.join("loop")).unwrap();
        let (files, problems) =
            LocalFiles::discover(std::slice::from_ref(&dir), &Options::default());
        assert!(problems.is_empty(), "{problems:?}");
        let names: Vec<_> = files
            .files()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.json", "b.json.gz"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
