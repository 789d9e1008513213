//! The report model, its diff, and its writers (JSON, CSV, HTML, Markdown),
//! plus the SNS/Slack summaries of a report.
//!
//! Every writer treats grant names, grantees, encryption-context values and
//! AWS error texts as untrusted: each escapes for its own format.

pub mod csv;
pub mod diff;
pub mod html;
pub mod markdown;
pub mod model;
pub mod summary;

pub use model::*;

/// The files of one report, as stored.
pub const REPORT_JSON: &str = "report.json";
pub const GRANTS_CSV: &str = "grants.csv";
pub const REPORT_HTML: &str = "report.html";
pub const SUMMARY_MD: &str = "summary.md";

/// One rendered report file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The files of a report, in the order they are stored.
pub const FILE_NAMES: [&str; 4] = [REPORT_JSON, GRANTS_CSV, REPORT_HTML, SUMMARY_MD];

/// Render one file of the report (one of [`FILE_NAMES`]); storing them one
/// at a time keeps one body in memory, not four.
pub fn render_file(report: &Report, name: &str) -> Result<ReportFile, serde_json::Error> {
    Ok(match name {
        REPORT_JSON => ReportFile {
            name: REPORT_JSON,
            content_type: "application/json",
            body: to_json(report)?,
        },
        GRANTS_CSV => ReportFile {
            name: GRANTS_CSV,
            content_type: "text/csv; charset=utf-8",
            body: csv::write(report).into_bytes(),
        },
        REPORT_HTML => ReportFile {
            name: REPORT_HTML,
            content_type: "text/html; charset=utf-8",
            body: html::write(report)?.into_bytes(),
        },
        _ => ReportFile {
            name: SUMMARY_MD,
            content_type: "text/markdown; charset=utf-8",
            body: markdown::write(report).into_bytes(),
        },
    })
}

/// One report file rendered a piece at a time (`report.json` a key at a
/// time, `grants.csv` a key's rows at a time; the HTML and Markdown whole),
/// for [`ReportStore::put_chunks`](crate::ports::inventory::ReportStore::put_chunks).
pub struct FileChunks<'a> {
    pub name: &'static str,
    pub content_type: &'static str,
    pub chunks: Box<dyn Iterator<Item = Result<Vec<u8>, serde_json::Error>> + Send + 'a>,
}

/// Render one file of the report (one of [`FILE_NAMES`]) in pieces; the
/// bytes are those of [`render_file`]. `shell` is the report's
/// [`JsonShell`].
pub fn render_chunks<'a>(report: &'a Report, name: &str, shell: &'a JsonShell) -> FileChunks<'a> {
    let whole = |file: Result<String, serde_json::Error>| -> Box<dyn Iterator<Item = _> + Send> {
        Box::new(std::iter::once(file.map(String::into_bytes)))
    };
    match name {
        REPORT_JSON => FileChunks {
            name: REPORT_JSON,
            content_type: "application/json",
            chunks: Box::new(shell.chunks(report)),
        },
        GRANTS_CSV => FileChunks {
            name: GRANTS_CSV,
            content_type: "text/csv; charset=utf-8",
            chunks: Box::new(csv::chunks(report).map(|rows| Ok(rows.into_bytes()))),
        },
        REPORT_HTML => FileChunks {
            name: REPORT_HTML,
            content_type: "text/html; charset=utf-8",
            chunks: whole(html::write(report)),
        },
        _ => FileChunks {
            name: SUMMARY_MD,
            content_type: "text/markdown; charset=utf-8",
            chunks: whole(Ok(markdown::write(report))),
        },
    }
}

/// `report.json` around its keys: what [`to_json`] writes before and
/// after the `keys` array, so the keys can be written one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonShell {
    head: String,
    tail: String,
}

/// The `keys` field of a report without keys, as the pretty printer
/// writes it (a raw newline only ever comes from the printer: strings
/// escape theirs).
const EMPTY_KEYS: &str = "\n  \"keys\": []";

impl JsonShell {
    /// Render `report` without its keys (taken out for that, and put back).
    pub fn of(report: &mut Report) -> Result<JsonShell, serde_json::Error> {
        let keys = std::mem::take(&mut report.keys);
        let shell = serde_json::to_string_pretty(&*report);
        report.keys = keys;
        let shell = shell?;
        let (head, tail) = shell.split_once(EMPTY_KEYS).ok_or_else(|| {
            <serde_json::Error as serde::ser::Error>::custom("report.json has no keys field")
        })?;
        Ok(JsonShell {
            head: format!("{head}\n  \"keys\": "),
            tail: format!("{tail}\n"),
        })
    }

    /// `report.json` of `report` (the report the shell was made of): the
    /// head, each key pretty-printed at its depth, the tail.
    pub fn chunks<'a>(
        &'a self,
        report: &'a Report,
    ) -> impl Iterator<Item = Result<Vec<u8>, serde_json::Error>> + Send + 'a {
        let keys = &report.keys;
        let open = if keys.is_empty() { "[]" } else { "[" };
        let close = if keys.is_empty() { "" } else { "\n  ]" };
        let key_chunks = keys.iter().enumerate().map(|(i, key)| {
            let json = serde_json::to_string_pretty(key)?;
            let separator = if i == 0 { "\n    " } else { ",\n    " };
            Ok(format!("{separator}{}", json.replace('\n', "\n    ")).into_bytes())
        });
        std::iter::once(Ok(format!("{}{open}", self.head).into_bytes()))
            .chain(key_chunks)
            .chain(std::iter::once(Ok(
                format!("{close}{}", self.tail).into_bytes()
            )))
    }
}

/// Render every file of the report.
pub fn render_files(report: &Report) -> Result<Vec<ReportFile>, serde_json::Error> {
    FILE_NAMES
        .iter()
        .map(|name| render_file(report, name))
        .collect()
}

/// `report.json`: pretty-printed, stable field order.
pub fn to_json(report: &Report) -> Result<Vec<u8>, serde_json::Error> {
    let mut body = serde_json::to_vec_pretty(report)?;
    body.push(b'\n');
    Ok(body)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Small builders for report tests.
    use super::model::*;
    use crate::grant::{Constraints, Operation};
    use crate::ports::inventory::KeyManager;
    use crate::verdict::{Finding, FindingCode, Origin, Severity};

    pub fn grant(id: &str, severity: Severity) -> GrantReport {
        GrantReport {
            grant_id: id.to_string(),
            name: Some(format!("name-{id}")),
            grantee: Some("arn:aws:iam::111111111111:role/app".to_string()),
            retiring_principal: None,
            operations: vec![Operation::Decrypt],
            constraints: Some(Constraints::default()),
            created: Some("2026-11-01T00:00:00Z".to_string()),
            issuing_account: None,
            origin: Origin::Manual,
            service: None,
            evidence: vec![],
            severity,
            findings: vec![Finding {
                code: FindingCode::ManualGrant,
                severity,
                message: "made by hand".to_string(),
            }],
            suppressed_by: None,
            created_by: None,
        }
    }

    pub fn key(id: &str, grants: Vec<GrantReport>) -> KeyReport {
        KeyReport {
            account: "111111111111".to_string(),
            region: "eu-west-1".to_string(),
            key_id: id.to_string(),
            key_arn: format!("arn:aws:kms:eu-west-1:111111111111:key/{id}"),
            aliases: vec![format!("alias/{id}")],
            manager: Some(KeyManager::Customer),
            state: Some("Enabled".to_string()),
            key_spec: Some("SYMMETRIC_DEFAULT".to_string()),
            key_usage: Some("ENCRYPT_DECRYPT".to_string()),
            multi_region: Some(false),
            complete: true,
            grants,
            description: None,
            tags: Default::default(),
            findings: vec![],
            severity: Severity::Info,
            suppressed_by: None,
        }
    }

    pub fn report(keys: Vec<KeyReport>) -> Report {
        let coverage = Coverage {
            account_regions: vec![AccountRegionCoverage {
                account: "111111111111".to_string(),
                region: "eu-west-1".to_string(),
                status: CoverageStatus::Complete,
                keys_listed: keys.len(),
                keys_complete: keys.len(),
                grants: keys.iter().map(|k| k.grants.len()).sum(),
            }],
            gaps: vec![],
        };
        let summary = summarise(&keys, &coverage);
        Report {
            schema_version: SCHEMA_VERSION,
            generated_at: "2026-11-28T06:00:00Z".to_string(),
            partial: false,
            scope: ReportScope {
                accounts: vec!["111111111111".to_string()],
                regions: vec!["eu-west-1".to_string()],
                organization: false,
                account_names: Default::default(),
            },
            coverage,
            summary,
            keys,
            diff: None,
            trend: vec![],
            reconciliation: None,
            integrity: None,
            expiring_rules: vec![],
        }
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::test_support::{grant, key, report};
    use super::*;
    use crate::verdict::Severity;

    fn joined(mut report: Report, name: &str) -> Vec<u8> {
        let shell = JsonShell::of(&mut report).unwrap();
        let file = render_chunks(&report, name, &shell);
        let mut body = Vec::new();
        for chunk in file.chunks {
            body.extend(chunk.unwrap());
        }
        body
    }

    #[test]
    fn every_file_in_chunks_is_byte_for_byte_the_whole_file() {
        let mut r = report(vec![
            key(
                "k1",
                vec![grant("g1", Severity::Low), grant("g2", Severity::High)],
            ),
            key("k2", vec![]),
            key("k3", vec![grant("g\n\"3", Severity::Medium)]),
        ]);
        r.trend = vec![r.trend_point()];
        for name in FILE_NAMES {
            let whole = render_file(&r, name).unwrap();
            assert_eq!(
                String::from_utf8(joined(r.clone(), name)).unwrap(),
                String::from_utf8(whole.body).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_report_without_keys_in_chunks_is_the_whole_file() {
        let r = report(vec![]);
        assert_eq!(joined(r.clone(), REPORT_JSON), to_json(&r).unwrap());
    }

    #[test]
    fn the_shell_leaves_the_report_whole() {
        let mut r = report(vec![key("k1", vec![grant("g1", Severity::Low)])]);
        let before = r.clone();
        JsonShell::of(&mut r).unwrap();
        assert_eq!(r, before);
    }
}
