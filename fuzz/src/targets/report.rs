//! The report writers (JSON, CSV, HTML, Markdown, the Slack and SNS
//! summaries) and the diff, fed any report a previous run could have
//! stored (`report.json` is read back for the next run's diff).

use grantwatch_core::render::report::{self as render_report, ReportNotice};
use grantwatch_core::render::tests_support::{assert_slack_limits, assert_sns_rules};
use grantwatch_core::render::{chatbot, sns};
use grantwatch_core::report::model::Report;
use grantwatch_core::report::to_json;
use grantwatch_core::report::{csv as report_csv, diff, html, markdown, render_files, summary};
use std::collections::BTreeSet;

const LINK: &str = "https://example.com/reports/2026-11-29/report.html";

/// Every writer succeeds; grants.csv is RFC 4180 with one row per grant in
/// order; report.json reads back equal; the HTML's embedded JSON cannot
/// close its script element; a report diffed with itself has no change,
/// and against an empty one every grant is new.
pub fn report(data: &[u8]) {
    let Ok(report) = Report::from_json(data) else {
        return;
    };
    check_csv(&report);

    let json = to_json(&report).unwrap_or_else(|e| panic!("report.json: {e}"));
    let back = Report::from_json(&json).unwrap_or_else(|e| panic!("report.json reads back: {e}"));
    assert_eq!(back, report, "report.json does not read back equal");

    let embedded = html::script_json(&report).unwrap_or_else(|e| panic!("script JSON: {e}"));
    assert!(!embedded.contains('<'), "a '<' in the HTML's script JSON");
    let from_html = Report::from_json(embedded.as_bytes())
        .unwrap_or_else(|e| panic!("the HTML's script JSON reads back: {e}"));
    assert_eq!(from_html, report);
    render_files(&report).unwrap_or_else(|e| panic!("render_files: {e}"));
    markdown::write(&report);
    assert_slack_limits(&summary::slack(&report, LINK));
    assert_sns_rules(&summary::sns(&report, LINK));
    // The report's Q Developer notification and machine SNS form: within
    // their services' limits and valid JSON whatever the report holds.
    let notice = ReportNotice {
        report: &report,
        link: LINK,
    };
    let notification = serde_json::to_vec(&render_report::chatbot(&notice)).expect("JSON");
    assert!(notification.len() <= chatbot::MAX_NOTIFICATION_BYTES);
    let structured = render_report::structured_sns(&notice);
    assert!(structured.message.len() <= sns::MAX_MESSAGE_BYTES);
    assert!(serde_json::from_str::<serde_json::Value>(&structured.message).is_ok());

    check_diff(&report);
}

fn check_csv(report: &Report) {
    let text = report_csv::write(report);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .unwrap_or_else(|e| panic!("grants.csv header: {e}"))
        .clone();
    assert_eq!(header.iter().collect::<Vec<_>>(), report_csv::HEADER);
    let grant_id_column = column(&header, "grant_id");
    let key_arn_column = column(&header, "key_arn");
    let mut rows = 0usize;
    for ((key, grant), record) in report.grants().zip(reader.records()) {
        let record = record.unwrap_or_else(|e| panic!("grants.csv row {rows}: {e}"));
        assert_eq!(record.len(), report_csv::HEADER.len(), "row {rows}");
        assert_eq!(
            &record[grant_id_column],
            report_csv::neutralise(&grant.grant_id)
        );
        assert_eq!(
            &record[key_arn_column],
            report_csv::neutralise(&key.key_arn)
        );
        rows += 1;
    }
    assert_eq!(rows, report.grants().count(), "grants.csv rows");
    assert!(
        reader.records().next().is_none(),
        "grants.csv has more rows than grants"
    );
}

fn column(header: &csv::StringRecord, name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("grants.csv has no {name} column"))
}

fn check_diff(report: &Report) {
    let same = diff::diff(report, report);
    assert!(
        same.new_grants.is_empty()
            && same.removed_grants.is_empty()
            && same.severity_changes.is_empty(),
        "a report diffed with itself: {same:?}"
    );
    let mut empty = report.clone();
    empty.keys.clear();
    let distinct: BTreeSet<(&str, &str)> = report
        .grants()
        .map(|(k, g)| (k.key_arn.as_str(), g.grant_id.as_str()))
        .collect();
    let all_new = diff::diff(&empty, report);
    assert_eq!(all_new.new_grants.len(), distinct.len(), "new grants");
    assert!(all_new.removed_grants.is_empty() && all_new.severity_changes.is_empty());
    let all_removed = diff::diff(report, &empty);
    assert!(all_removed.new_grants.is_empty() && all_removed.severity_changes.is_empty());
    assert!(all_removed.removed_grants.len() <= distinct.len());
}
