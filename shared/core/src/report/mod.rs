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
            },
            coverage,
            summary,
            keys,
            diff: None,
            trend: vec![],
            reconciliation: None,
            integrity: None,
        }
    }
}
