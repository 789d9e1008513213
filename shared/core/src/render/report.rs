//! The weekly report's summary as a notice: the e-mail (SNS, with
//! `MessageStructure=json`: the text for e-mail, the summary as JSON for
//! machines, attribute `kind=report`), the Slack Block Kit message and the
//! Amazon Q Developer notification, each with the link to report.html.
//!
//! All lead with what needs a look ([`crate::report::summary::attention`]):
//! new grants that are risky or made by hand, then the other risky grants.
//! Escaping, truncation and the SNS and Block Kit limits are the ones
//! alerts and digests use (one place for each rule).

use super::chatbot;
use super::mrkdwn::{self, code, escape, fit_lines, truncate};
use super::plain::{ascii_line, one_line, truncate_bytes};
use super::slack::{severity_label, Blocks};
use super::sns::{structured, SnsMessage, StructuredMessage, MAX_BODY_BYTES, MAX_SUBJECT_CHARS};
use crate::report::model::Report;
use crate::report::summary::attention;
use crate::verdict::Severity;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Grants listed by name in the e-mail.
pub const EMAIL_TOP_ITEMS: usize = 25;
/// Grants listed by name in Slack.
pub const SLACK_TOP_ITEMS: usize = 10;
/// Grants and coverage gaps listed in the machine JSON (the rest are
/// counted; report.json has them all).
pub const MACHINE_TOP_ITEMS: usize = 50;
/// Slack's limit for a button's URL.
const MAX_BUTTON_URL: usize = 3000;
const MAX_VALUE: usize = 200;
/// The `eventType` of the report's Q Developer notification.
pub const REPORT_EVENT_TYPE: &str = "KMS grant report";

/// The report is ready: what it found and the link to report.html.
#[derive(Debug, Clone, Copy)]
pub struct ReportNotice<'a> {
    pub report: &'a Report,
    pub link: &'a str,
}

impl ReportNotice<'_> {
    /// The worst unsuppressed severity in the report (`pipeline-tampered`
    /// included): the `severity` attribute.
    pub fn worst(&self) -> Severity {
        worst(self.report)
    }
}

fn worst(report: &Report) -> Severity {
    let tampered = tampering(report).map(|f| f.severity);
    report
        .grants()
        .filter(|(_, g)| g.suppressed_by.is_none())
        .map(|(_, g)| g.severity)
        .chain(tampered)
        .max()
        .unwrap_or(Severity::Info)
}

/// The report's `pipeline-tampered` findings (stored reports changed or
/// planted).
fn tampering(report: &Report) -> impl Iterator<Item = &crate::verdict::Finding> {
    report.integrity.iter().flat_map(|i| i.findings.iter())
}

/// Silent account-regions, as `account/region (n new)`.
fn silent_lines(report: &Report) -> Vec<String> {
    report
        .reconciliation
        .iter()
        .flat_map(|r| r.silent_account_regions.iter())
        .map(|s| {
            format!(
                "{}/{} ({} grant(s) created, no ledger event)",
                one_line(&s.account, 20),
                one_line(&s.region, 30),
                s.grants_created
            )
        })
        .collect()
}

fn counts_line(m: &BTreeMap<String, usize>) -> String {
    let mut v: Vec<(&String, &usize)> = m.iter().filter(|(_, n)| **n > 0).collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn severity_line(m: &BTreeMap<String, usize>) -> String {
    Severity::ALL
        .iter()
        .rev()
        .map(|s| format!("{} {}", s.as_str(), m.get(s.as_str()).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn headline(report: &Report) -> String {
    let s = &report.summary;
    let mut h = String::new();
    if s.pipeline_tampered > 0 {
        let _ = write!(h, "PIPELINE TAMPERED ({}): ", s.pipeline_tampered);
    }
    let _ = write!(
        h,
        "{} grants on {} keys, {} risky",
        s.grants, s.keys, s.risky
    );
    if s.silent_account_regions > 0 {
        let _ = write!(h, ", {} silent account-region(s)", s.silent_account_regions);
    }
    if let (Some(new), Some(removed)) = (s.new_grants, s.removed_grants) {
        let _ = write!(h, ", {new} new, {removed} removed");
    }
    if report.partial {
        h.push_str(", PARTIAL");
    }
    h
}

/// The SNS message: an ASCII subject, an e-mail body, and attributes
/// `kind=report`, `severity` (worst unsuppressed), `partial`.
pub fn sns(notice: &ReportNotice<'_>) -> SnsMessage {
    let (report, link) = (notice.report, notice.link);
    let s = &report.summary;
    let subject = ascii_line(
        &format!(
            "[grantwatch] KMS grant report {}: {}",
            report.date(),
            headline(report)
        ),
        MAX_SUBJECT_CHARS,
    );
    let mut b = String::new();
    let _ = writeln!(
        b,
        "KMS grant report {} (generated {})",
        one_line(report.date(), 20),
        one_line(&report.generated_at, 40)
    );
    if report.partial {
        let _ = writeln!(
            b,
            "\nPARTIAL REPORT: {} part(s) could not be read; see Coverage below and in the report.",
            s.coverage_gaps
        );
    }
    let tampered: Vec<_> = tampering(report).collect();
    if !tampered.is_empty() {
        let _ = writeln!(
            b,
            "\nPIPELINE TAMPERED (critical): {} stored report(s) were changed or planted; \
             the diff used only a report whose SHA-256 matches the ledger (see docs/findings/pipeline-tampered.md):",
            tampered.len()
        );
        for f in tampered.iter().take(EMAIL_TOP_ITEMS) {
            let _ = writeln!(b, "- pipeline-tampered: {}", one_line(&f.message, 600));
        }
    }
    let silent = silent_lines(report);
    if !silent.is_empty() {
        let _ = writeln!(
            b,
            "\nSILENT ACCOUNT-REGIONS: grants were created there but the watcher recorded no event:"
        );
        for line in silent.iter().take(EMAIL_TOP_ITEMS) {
            let _ = writeln!(b, "- {line}");
        }
    }
    let _ = writeln!(b, "\nOpen the full report:\n{}\n", one_line(link, 4000));
    let _ = writeln!(
        b,
        "Scope:       {} account(s) x {} region(s){}",
        report.scope.accounts.len(),
        report.scope.regions.len(),
        if report.scope.organization {
            " (organization)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        b,
        "Keys:        {} ({} customer managed, {} AWS managed)",
        s.keys, s.keys_customer_managed, s.keys_aws_managed
    );
    let _ = writeln!(b, "Grants:      {}", s.grants);
    let _ = writeln!(
        b,
        "Risky:       {} (medium or above, not suppressed)",
        s.risky
    );
    let _ = writeln!(
        b,
        "Risky keys:  {} (the key policy lets others create grants)",
        s.risky_keys
    );
    let _ = writeln!(
        b,
        "By origin:   {}",
        one_line(&counts_line(&s.by_origin), 500)
    );
    let _ = writeln!(b, "By severity: {}", severity_line(&s.by_severity));
    let _ = writeln!(
        b,
        "By service:  {}",
        one_line(&counts_line(&s.by_service), 500)
    );
    match &report.diff {
        Some(d) => {
            let _ = writeln!(
                b,
                "Since {}: {} new, {} removed, {} severity change(s)",
                one_line(&d.previous_generated_at, 40),
                d.new_grants.len(),
                d.removed_grants.len(),
                d.severity_changes.len()
            );
        }
        None => {
            let _ = writeln!(b, "Since last report: this is the first report");
        }
    }

    let items = attention(report);
    if !items.is_empty() {
        let _ = writeln!(
            b,
            "\nNeeds a look ({}; new and risky manual grants first):",
            items.len()
        );
        for a in items.iter().take(EMAIL_TOP_ITEMS) {
            let g = &a.grant;
            let _ = writeln!(
                b,
                "\n- [{}]{} {} grant {} on key {}",
                severity_label(g.severity),
                if a.is_new { " NEW" } else { "" },
                g.origin,
                one_line(g.name.as_deref().unwrap_or(&g.grant_id), MAX_VALUE),
                one_line(
                    a.aliases.first().map(String::as_str).unwrap_or(&g.key_arn),
                    MAX_VALUE
                )
            );
            let _ = writeln!(b, "  key:        {}", one_line(&g.key_arn, MAX_VALUE));
            let _ = writeln!(
                b,
                "  grantee:    {}",
                one_line(g.grantee.as_deref().unwrap_or("(none)"), MAX_VALUE)
            );
            let _ = writeln!(
                b,
                "  operations: {}",
                one_line(&a.operations.join(", "), MAX_VALUE)
            );
            if !a.finding_codes.is_empty() {
                let _ = writeln!(b, "  findings:   {}", a.finding_codes.join(", "));
            }
        }
        if items.len() > EMAIL_TOP_ITEMS {
            let _ = writeln!(
                b,
                "\n...and {} more in the report.",
                items.len() - EMAIL_TOP_ITEMS
            );
        }
    }
    if let Some(d) = &report.diff {
        if !d.removed_grants.is_empty() {
            let _ = writeln!(
                b,
                "\nRemoved since the previous report ({}):",
                d.removed_grants.len()
            );
            for g in d.removed_grants.iter().take(EMAIL_TOP_ITEMS) {
                let _ = writeln!(
                    b,
                    "- {} grant {} on {} to {}",
                    g.origin,
                    one_line(g.name.as_deref().unwrap_or(&g.grant_id), MAX_VALUE),
                    one_line(&g.key_arn, MAX_VALUE),
                    one_line(g.grantee.as_deref().unwrap_or("(none)"), MAX_VALUE)
                );
            }
        }
    }
    if !report.expiring_rules.is_empty() {
        let _ = writeln!(
            b,
            "\nRules expiring within 14 days ({}): what they suppress will alert again:",
            report.expiring_rules.len()
        );
        for r in report.expiring_rules.iter().take(EMAIL_TOP_ITEMS) {
            let _ = writeln!(
                b,
                "- {} until {}: {}",
                one_line(&r.id, MAX_VALUE),
                one_line(&r.expires, 20),
                one_line(&r.reason, MAX_VALUE)
            );
        }
    }
    if !report.coverage.gaps.is_empty() {
        let _ = writeln!(b, "\nCoverage gaps ({}):", report.coverage.gaps.len());
        for g in report.coverage.gaps.iter().take(EMAIL_TOP_ITEMS) {
            let _ = writeln!(
                b,
                "- {}/{} {}: {}",
                one_line(&g.account, 20),
                one_line(&g.region, 30),
                one_line(
                    g.key_arn.as_deref().unwrap_or("whole account-region"),
                    MAX_VALUE
                ),
                g.reason.as_str()
            );
        }
    }
    let _ = writeln!(b, "\n-- grantwatch");

    let mut attributes = BTreeMap::new();
    attributes.insert("kind".to_string(), "report".to_string());
    attributes.insert("severity".to_string(), worst(report).as_str().to_string());
    attributes.insert("partial".to_string(), report.partial.to_string());
    SnsMessage {
        subject,
        message: truncate_bytes(&b, MAX_BODY_BYTES, "\n[cut to fit the SNS size limit]\n"),
        attributes,
    }
}

/// The Slack webhook payload `{text, blocks}`: headline counts, the top
/// items, coverage, and a button to the report.
pub fn slack(notice: &ReportNotice<'_>) -> Value {
    let (report, link) = (notice.report, notice.link);
    let s = &report.summary;
    let title = format!("KMS grant report {}", report.date());
    let mut blocks = Blocks::default();
    blocks.header(&title);
    if report.partial {
        blocks.section(&format!(
            ":warning: *Partial report*: {} part(s) could not be read (see Coverage in the report).",
            s.coverage_gaps
        ));
    }
    let tampered: Vec<_> = tampering(report).collect();
    if !tampered.is_empty() {
        let lines: Vec<String> = tampered
            .iter()
            .map(|f| format!("`pipeline-tampered` {}", escape(&f.message)))
            .collect();
        let text = format!(
            ":rotating_light: *Pipeline tampered* (critical): {} stored report(s) changed or planted\n",
            tampered.len()
        );
        let budget = mrkdwn::MAX_SECTION_TEXT.saturating_sub(mrkdwn::slack_len(&text));
        blocks.section(&(text + &fit_lines(&lines, budget, "findings")));
    }
    let silent = silent_lines(report);
    if !silent.is_empty() {
        let lines: Vec<String> = silent.iter().map(|l| escape(l)).collect();
        let text =
            ":mute: *Silent account-regions* (grants created, no ledger event)\n".to_string();
        let budget = mrkdwn::MAX_SECTION_TEXT.saturating_sub(mrkdwn::slack_len(&text));
        blocks.section(&(text + &fit_lines(&lines, budget, "account-regions")));
    }
    let diff_field = match (s.new_grants, s.removed_grants, s.severity_changes) {
        (Some(n), Some(r), Some(c)) => {
            format!("*Since last report*\n{n} new, {r} removed, {c} changed")
        }
        _ => "*Since last report*\nfirst report".to_string(),
    };
    blocks.fields(vec![
        format!("*Grants*\n{} on {} keys", s.grants, s.keys),
        format!("*Risky (medium+)*\n{}", s.risky),
        format!("*Risky keys*\n{}", s.risky_keys),
        format!("*By origin*\n{}", escape(&counts_line(&s.by_origin))),
        format!("*By severity*\n{}", severity_line(&s.by_severity)),
        diff_field,
        format!(
            "*Scope*\n{} account(s) × {} region(s)",
            report.scope.accounts.len(),
            report.scope.regions.len()
        ),
    ]);
    let items = attention(report);
    if !items.is_empty() {
        let lines: Vec<String> = items
            .iter()
            .take(SLACK_TOP_ITEMS)
            .map(|a| {
                let g = &a.grant;
                format!(
                    "*{}*{} {} grant {} on {} to {}",
                    severity_label(g.severity),
                    if a.is_new { " :new:" } else { "" },
                    g.origin,
                    code(g.name.as_deref().unwrap_or(&g.grant_id)),
                    code(a.aliases.first().map(String::as_str).unwrap_or(&g.key_arn)),
                    code(g.grantee.as_deref().unwrap_or("(none)"))
                )
            })
            .collect();
        let mut text = format!("*Needs a look* ({})\n", items.len());
        let budget = mrkdwn::MAX_SECTION_TEXT.saturating_sub(mrkdwn::slack_len(&text));
        text.push_str(&fit_lines(&lines, budget, "grants"));
        if items.len() > SLACK_TOP_ITEMS && mrkdwn::slack_len(&text) + 40 < mrkdwn::MAX_SECTION_TEXT
        {
            let _ = write!(
                text,
                "\n…and {} more in the report",
                items.len() - SLACK_TOP_ITEMS
            );
        }
        blocks.section(&text);
    }
    if !report.expiring_rules.is_empty() {
        blocks.section(&format!(
            ":hourglass: *{} rule(s) expire within 14 days*: what they suppress will alert again (see the report)",
            report.expiring_rules.len()
        ));
    }
    if !report.coverage.gaps.is_empty() {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for g in &report.coverage.gaps {
            *reasons.entry(g.reason.as_str()).or_default() += 1;
        }
        let text = reasons
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        blocks.section(&format!("*Coverage gaps*: {text}"));
    }
    if link.chars().count() <= MAX_BUTTON_URL && !link.is_empty() {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open report.html"},
                "url": link,
                "action_id": "open_report"
            }]
        }));
    } else {
        blocks.section("The report link is too long for Slack: see the e-mail.");
    }
    blocks.finish(&escape(&format!("{title}: {}", headline(report))))
}

/// [`sns`] for `MessageStructure=json`: e-mail gets the text; every other
/// protocol `{"kind": "report", "subject", "date", "generated_at",
/// "partial", "link", "summary": {...}, "needs_a_look": [...],
/// "needs_a_look_total", "coverage_gaps": [...], "coverage_gaps_total"}`
/// (at most [`MACHINE_TOP_ITEMS`] of each list; report.json has them all).
pub fn structured_sns(notice: &ReportNotice<'_>) -> StructuredMessage {
    let text = sns(notice);
    let report = notice.report;
    let items = attention(report);
    let needs_a_look: Vec<Value> = items
        .iter()
        .take(MACHINE_TOP_ITEMS)
        .map(|a| {
            json!({
                "grant": a.grant,
                "new": a.is_new,
                "aliases": a.aliases,
                "operations": a.operations,
                "finding_codes": a.finding_codes,
            })
        })
        .collect();
    let gaps: Vec<_> = report
        .coverage
        .gaps
        .iter()
        .take(MACHINE_TOP_ITEMS)
        .collect();
    structured(
        &text,
        &json!({
            "kind": "report",
            "subject": text.subject,
            "date": report.date(),
            "generated_at": report.generated_at,
            "partial": report.partial,
            "link": notice.link,
            "summary": report.summary,
            "needs_a_look": needs_a_look,
            "needs_a_look_total": items.len(),
            "coverage_gaps": gaps,
            "coverage_gaps_total": report.coverage.gaps.len(),
        }),
    )
}

/// The Amazon Q Developer custom notification: the headline as title, the
/// worst items, and the link as the next step; one thread for every
/// report. Within [`chatbot::MAX_NOTIFICATION_BYTES`] (the items are cut
/// shorter until it fits).
pub fn chatbot(notice: &ReportNotice<'_>) -> Value {
    for budget in [3000, 1200, 400] {
        let out = chatbot_with(notice, budget);
        if serde_json::to_vec(&out).map_or(usize::MAX, |b| b.len())
            <= chatbot::MAX_NOTIFICATION_BYTES
        {
            return out;
        }
    }
    chatbot_with(notice, 0)
}

fn chatbot_with(notice: &ReportNotice<'_>, budget: usize) -> Value {
    let report = notice.report;
    let title = truncate(
        &escape(&format!(
            "KMS grant report {}: {}",
            report.date(),
            headline(report)
        )),
        mrkdwn::MAX_HEADER_TEXT,
    );
    let items = attention(report);
    let mut lines: Vec<String> = Vec::new();
    if report.partial {
        lines.push(format!(
            ":warning: *Partial report*: {} part(s) could not be read",
            report.summary.coverage_gaps
        ));
    }
    lines.extend(items.iter().take(5).map(|a| {
        let g = &a.grant;
        format!(
            "• *{}*{} {} grant {} on {}",
            severity_label(g.severity),
            if a.is_new { " new" } else { "" },
            g.origin,
            code(&truncate(g.name.as_deref().unwrap_or(&g.grant_id), 80)),
            code(&truncate(
                a.aliases.first().map(String::as_str).unwrap_or(&g.key_arn),
                120
            ))
        )
    }));
    if items.len() > 5 {
        lines.push(format!("…and {} more in the report", items.len() - 5));
    }
    let link_step = if !notice.link.is_empty() && notice.link.len() <= 1000 {
        format!("Open the report: {}", notice.link)
    } else {
        "Open the report from the e-mail (its link is too long here)".to_string()
    };
    json!({
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": title,
            "description": fit_lines(&lines, budget, "lines"),
            "nextSteps": [link_step],
        },
        "metadata": {
            "threadId": "grantwatch-report",
            "summary": title,
            "eventType": REPORT_EVENT_TYPE,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::diff;
    use crate::report::test_support::{grant, key, report};
    use crate::verdict::Origin;

    fn hostile_report() -> Report {
        let previous = report(vec![key("k1", vec![grant("old", Severity::Low)])]);
        let mut g = grant("new-manual", Severity::High);
        g.name = Some("<!channel> & `rm -rf` \nSubject: fake".into());
        let mut quiet = grant("old", Severity::Low);
        quiet.origin = Origin::Service;
        quiet.findings.clear();
        let mut r = report(vec![key("k1", vec![quiet, g])]);
        diff::apply(&mut r, Some(&previous));
        r
    }

    #[test]
    fn sns_summary_leads_with_new_risky_manual_grants_and_cannot_be_forged() {
        let r = hostile_report();
        let m = sns(&ReportNotice {
            report: &r,
            link: "https://bucket.s3/report.html?X-Amz-Signature=abc&x=1",
        });
        assert!(m.subject.is_ascii() && m.subject.len() < 100 && !m.subject.contains('\n'));
        assert!(m.subject.contains("1 new"));
        assert!(m
            .message
            .contains("https://bucket.s3/report.html?X-Amz-Signature=abc&x=1"));
        let look = m.message.find("Needs a look").unwrap();
        assert!(m.message[look..].contains("[HIGH] NEW manual grant"));
        assert!(
            !m.message.contains("\nSubject: fake"),
            "a name cannot start a line"
        );
        assert_eq!(m.attributes.get("kind").map(String::as_str), Some("report"));
        assert_eq!(
            m.attributes.get("severity").map(String::as_str),
            Some("high")
        );
        assert!(m.message.contains("Risky keys:  0"), "{}", m.message);
        assert!(!m.message.contains("Rules expiring"));
    }

    #[test]
    fn expiring_rules_are_named_in_the_email_and_counted_in_slack() {
        let mut r = hostile_report();
        r.expiring_rules = vec![crate::report::model::ExpiringRule {
            id: "ci-role\nSubject: fake".into(),
            expires: "2026-12-05".into(),
            reason: "<!channel> migration".into(),
        }];
        let link = "https://example.invalid/report.html";
        let notice = ReportNotice { report: &r, link };
        let m = sns(&notice);
        assert!(
            m.message.contains("Rules expiring within 14 days (1)"),
            "{}",
            m.message
        );
        assert!(m.message.contains("until 2026-12-05"), "{}", m.message);
        assert!(
            !m.message.contains("\nSubject: fake"),
            "a rule id cannot start a line"
        );
        let v = slack(&notice);
        let text = v.to_string();
        assert!(text.contains("1 rule(s) expire within 14 days"), "{text}");
        assert!(!text.contains("<!channel>"));
    }

    #[test]
    fn slack_summary_escapes_and_stays_within_limits() {
        let mut r = hostile_report();
        for i in 0..200 {
            let mut g = grant(&format!("g{i:03}"), Severity::Medium);
            g.name = Some("x".repeat(500));
            r.keys[0].grants.push(g);
        }
        r.summary = crate::report::model::summarise(&r.keys, &r.coverage);
        let v = slack(&ReportNotice {
            report: &r,
            link: "https://example.invalid/report.html",
        });
        let text = v.to_string();
        assert!(!text.contains("<!channel>"));
        let blocks = v["blocks"].as_array().unwrap();
        assert!(blocks.len() <= mrkdwn::MAX_BLOCKS);
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(mrkdwn::slack_len(t) <= mrkdwn::MAX_SECTION_TEXT);
            }
        }
        assert_eq!(
            blocks.last().unwrap()["elements"][0]["url"],
            "https://example.invalid/report.html"
        );
        assert!(text.contains("more in the report"));
    }

    #[test]
    fn structured_report_gives_email_the_text_and_machines_the_summary() {
        let r = hostile_report();
        let notice = ReportNotice {
            report: &r,
            link: "https://bucket.s3/report.html?X-Amz-Signature=abc",
        };
        let m = structured_sns(&notice);
        let text = sns(&notice);
        assert_eq!(m.subject, text.subject);
        // The e-mail filter policy matches kind=report: a String.
        assert_eq!(
            m.attributes.get("kind"),
            Some(&crate::render::sns::Attribute::String("report".into()))
        );
        assert_eq!(
            m.attributes.get("severity"),
            Some(&crate::render::sns::Attribute::String("high".into()))
        );
        let doc: Value = serde_json::from_str(&m.message).expect("one body per protocol");
        assert_eq!(doc["email"].as_str(), Some(text.message.as_str()));
        let machine: Value =
            serde_json::from_str(doc["default"].as_str().expect("default")).expect("JSON");
        assert_eq!(machine["kind"], "report");
        assert_eq!(machine["link"], notice.link);
        assert_eq!(machine["summary"]["grants"], r.summary.grants);
        assert_eq!(machine["needs_a_look_total"], 1);
        assert_eq!(machine["needs_a_look"][0]["new"], true);
        assert_eq!(machine["needs_a_look"][0]["grant"]["severity"], "high");
        assert_eq!(notice.worst(), Severity::High);
    }

    #[test]
    fn chatbot_report_is_a_custom_notification_within_its_limit() {
        let mut r = hostile_report();
        for i in 0..50 {
            let mut g = grant(&format!("g{i:03}"), Severity::Medium);
            g.name = Some("<!here> ".repeat(60));
            r.keys[0].grants.push(g);
        }
        r.partial = true;
        let n = chatbot(&ReportNotice {
            report: &r,
            link: "https://example.invalid/report.html",
        });
        assert_eq!(n["version"], "1.0");
        assert_eq!(n["source"], "custom");
        assert_eq!(n["metadata"]["eventType"], REPORT_EVENT_TYPE);
        assert_eq!(n["metadata"]["threadId"], "grantwatch-report");
        assert!(serde_json::to_vec(&n).expect("json").len() <= chatbot::MAX_NOTIFICATION_BYTES);
        let text = n.to_string();
        assert!(
            !text.contains("<!here>") && !text.contains("<!channel>"),
            "{text}"
        );
        let description = n["content"]["description"].as_str().expect("description");
        assert!(
            description.starts_with(":warning: *Partial report*"),
            "{description}"
        );
        assert!(description.contains("more in the report"), "{description}");
        assert_eq!(
            n["content"]["nextSteps"][0],
            "Open the report: https://example.invalid/report.html"
        );
    }
}
