//! `summary.md`: the report's headline in Markdown (for a wiki page, a
//! pull request, a ticket). Untrusted values are escaped so they can
//! neither format the page nor inject HTML.

use super::model::{GrantRef, Report, UnreadPart};
use std::collections::BTreeMap;
use std::fmt::Write;

/// At most this many grants per list; the rest is in report.html / CSV.
pub const MAX_LISTED: usize = 25;

pub fn write(report: &Report) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "# KMS grant report {}", esc(report.date()));
    let _ = writeln!(out);
    let _ = writeln!(out, "Generated {}.", esc(&report.generated_at));
    if report.partial {
        let _ = writeln!(
            out,
            "\n**Partial report**: {} part(s) could not be read (see Coverage).",
            s.coverage_gaps
        );
    }
    pipeline_sections(&mut out, report);
    let _ = writeln!(out, "\n## Summary\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| Accounts × regions | {} × {} |",
        report.scope.accounts.len(),
        report.scope.regions.len()
    );
    let _ = writeln!(
        out,
        "| Keys | {} ({} customer managed, {} AWS managed) |",
        s.keys, s.keys_customer_managed, s.keys_aws_managed
    );
    let _ = writeln!(out, "| Grants | {} |", s.grants);
    let _ = writeln!(out, "| Risky grants (medium+) | {} |", s.risky);
    if s.risky_keys > 0 {
        let _ = writeln!(out, "| Keys open to CreateGrant | {} |", s.risky_keys);
    }
    let counts = |m: &std::collections::BTreeMap<String, usize>| {
        m.iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{} {n}", esc(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "| By origin | {} |", counts(&s.by_origin));
    let _ = writeln!(out, "| By severity | {} |", counts(&s.by_severity));
    let _ = writeln!(out, "| By service | {} |", counts(&s.by_service));
    match (
        &report.diff,
        s.new_grants,
        s.removed_grants,
        s.severity_changes,
    ) {
        (Some(d), Some(new), Some(removed), Some(changed)) => {
            let _ = writeln!(
                out,
                "| Since {} | {new} new, {removed} removed, {changed} severity changes |",
                esc(&d.previous_generated_at)
            );
        }
        _ => {
            let _ = writeln!(out, "| Since last report | first report |");
        }
    }

    // The key's description and tags, where known, after its ARN.
    let details: BTreeMap<&str, String> = report
        .keys
        .iter()
        .filter_map(|k| Some((k.key_arn.as_str(), k.details_line()?)))
        .collect();
    let risky: Vec<GrantRef> = report
        .grants()
        .filter(|(_, g)| g.is_risky())
        .map(|(k, g)| GrantRef::of(k, g))
        .collect();
    list(&mut out, "Risky grants", &risky, &details);
    key_posture(&mut out, report);
    if let Some(d) = &report.diff {
        list(&mut out, "New grants", &d.new_grants, &details);
        list(&mut out, "Removed grants", &d.removed_grants, &details);
        if !d.severity_changes.is_empty() {
            let _ = writeln!(out, "\n## Severity changes\n");
            for c in d.severity_changes.iter().take(MAX_LISTED) {
                let _ = writeln!(
                    out,
                    "- {} → {}: {}",
                    c.from,
                    c.to,
                    describe(&c.grant, &details)
                );
            }
        }
    }
    if !report.expiring_rules.is_empty() {
        let _ = writeln!(
            out,
            "\n## Rules expiring within 14 days ({})\n",
            report.expiring_rules.len()
        );
        for r in &report.expiring_rules {
            let _ = writeln!(
                out,
                "- `{}` expires {}: {}",
                esc(&r.id),
                esc(&r.expires),
                esc(&crate::render::plain::one_line(&r.reason, 200))
            );
        }
    }
    if !report.coverage.gaps.is_empty() {
        let _ = writeln!(out, "\n## Coverage gaps\n");
        for g in report.coverage.gaps.iter().take(MAX_LISTED) {
            let part = match g.unread {
                UnreadPart::Grants => "",
                UnreadPart::KeyPolicy => " key policy",
                UnreadPart::Tags => " tags",
            };
            let _ = writeln!(
                out,
                "- {}/{} {}{part}: {} ({})",
                esc(&g.account),
                esc(&g.region),
                g.key_arn
                    .as_deref()
                    .map(esc)
                    .unwrap_or_else(|| "whole account-region".into()),
                g.reason.as_str(),
                esc(&g.detail)
            );
        }
        more(&mut out, report.coverage.gaps.len());
    }
    out
}

/// Pipeline integrity (tampered stored reports) and reconciliation (the
/// watcher's misses), first: they say whether the rest can be trusted.
fn pipeline_sections(out: &mut String, report: &Report) {
    if let Some(integrity) = &report.integrity {
        if !integrity.findings.is_empty() || integrity.unverified.is_some() {
            let _ = writeln!(out, "\n## Pipeline integrity\n");
            for f in &integrity.findings {
                let _ = writeln!(
                    out,
                    "- **{}** `{}`: {}",
                    f.severity,
                    f.code.as_str(),
                    esc(&f.message)
                );
            }
            if let Some(problem) = &integrity.unverified {
                let _ = writeln!(out, "- not verified: {}", esc(problem));
            }
        }
    }
    let Some(r) = &report.reconciliation else {
        return;
    };
    if let Some(problem) = &r.unchecked {
        let _ = writeln!(out, "\n## Reconciliation\n\nNot checked: {}", esc(problem));
        return;
    }
    if r.unseen_by_watcher > 0 {
        let _ = writeln!(
            out,
            "\n**Unseen by the watcher**: {} standing grant(s) created after the deployment \
             ({}) have no ledger record (`unseen-by-watcher`, listed with the risky grants).",
            r.unseen_by_watcher,
            esc(&r.deployed_at)
        );
    }
    if !r.silent_account_regions.is_empty() {
        let _ = writeln!(
            out,
            "\n## Silent account-regions\n\nGrants created between {} and {}, and no ledger event:\n",
            esc(&r.period_start),
            esc(&r.period_end)
        );
        for s in r.silent_account_regions.iter().take(MAX_LISTED) {
            let _ = writeln!(
                out,
                "- {}/{}: {} grant(s) created",
                esc(&s.account),
                esc(&s.region),
                s.grants_created
            );
        }
        more(out, r.silent_account_regions.len());
    }
}

fn list(out: &mut String, title: &str, grants: &[GrantRef], details: &BTreeMap<&str, String>) {
    if grants.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## {title} ({})\n", grants.len());
    for g in grants.iter().take(MAX_LISTED) {
        let _ = writeln!(out, "- {}", describe(g, details));
    }
    more(out, grants.len());
}

/// Keys whose own findings (their policy: `create-grant-open`) are risky,
/// and how many more a rule suppressed.
fn key_posture(out: &mut String, report: &Report) {
    let open: Vec<_> = report.keys.iter().filter(|k| k.is_risky()).collect();
    let suppressed = report
        .keys
        .iter()
        .filter(|k| k.suppressed_by.is_some())
        .count();
    if open.is_empty() && suppressed == 0 {
        return;
    }
    let _ = writeln!(out, "\n## Key posture ({})\n", open.len());
    for k in open.iter().take(MAX_LISTED) {
        let details = k
            .details_line()
            .map(|d| format!(" ({})", esc(&d)))
            .unwrap_or_default();
        for f in &k.findings {
            let _ = writeln!(
                out,
                "- **{}** key {}{details}: `{}` {}",
                k.severity,
                esc(&k.key_arn),
                f.code.as_str(),
                esc(&f.message)
            );
        }
    }
    more(out, open.len());
    if suppressed > 0 {
        let _ = writeln!(
            out,
            "- {suppressed} more key(s) with findings suppressed by rules"
        );
    }
}

fn more(out: &mut String, total: usize) {
    if total > MAX_LISTED {
        let _ = writeln!(out, "- … and {} more (see report.html)", total - MAX_LISTED);
    }
}

fn describe(g: &GrantRef, details: &BTreeMap<&str, String>) -> String {
    format!(
        "**{}** {} grant {} on {}{} to {}{}",
        g.severity,
        g.origin,
        esc(g.name.as_deref().unwrap_or(&g.grant_id)),
        esc(&g.key_arn),
        details
            .get(g.key_arn.as_str())
            .map(|d| format!(" ({})", esc(d)))
            .unwrap_or_default(),
        esc(g.grantee.as_deref().unwrap_or("(none)")),
        g.service
            .as_deref()
            .map(|s| format!(" ({})", esc(s)))
            .unwrap_or_default()
    )
}

/// Escape Markdown and HTML metacharacters, and flatten line breaks, so an
/// untrusted value stays one plain run of text.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' | '\n' | '\u{2028}' | '\u{2029}' => out.push(' '),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::{grant, key, report};
    use crate::verdict::Severity;

    #[test]
    fn hostile_names_cannot_format_or_inject() {
        let mut g = grant("g1", Severity::High);
        g.name = Some("<img src=x onerror=alert(1)>\n# heading | [link](http://x)".into());
        let md = write(&report(vec![key("k1", vec![g])]));
        assert!(!md.contains("<img"));
        assert!(md.contains("&lt;img"));
        assert!(!md.contains("\n# heading"));
        assert!(md.contains("\\[link\\]\\(http://x\\)"));
        assert!(md.contains("## Risky grants (1)"));
    }

    #[test]
    fn key_details_posture_and_expiring_rules_are_listed_escaped_and_cut() {
        use crate::report::ExpiringRule;
        use crate::verdict::{Finding, FindingCode};
        let mut k = key("k1", vec![grant("g1", Severity::High)]);
        k.description = Some(format!("Payments <b>DB</b>\n# x {}", "y".repeat(200)));
        k.tags.insert("env".into(), "prod|eu".into());
        k.findings = vec![Finding {
            code: FindingCode::CreateGrantOpen,
            severity: Severity::Medium,
            message: "the key policy lets \"role/ci\" call CreateGrant".into(),
        }];
        k.severity = Severity::Medium;
        let mut quiet = key("k2", vec![]);
        quiet.findings = k.findings.clone();
        quiet.severity = Severity::Medium;
        quiet.suppressed_by = Some("ci-keys".into());
        let mut r = report(vec![k, quiet]);
        r.summary = crate::report::summarise(&r.keys, &r.coverage);
        r.expiring_rules = vec![ExpiringRule {
            id: "old_migration".into(),
            expires: "2026-12-05".into(),
            reason: "migration".into(),
        }];
        let md = write(&r);
        assert!(md.contains("| Keys open to CreateGrant | 1 |"), "{md}");
        assert!(md.contains("## Key posture (1)"), "{md}");
        assert!(md.contains("`create-grant-open`"));
        assert!(md.contains("1 more key(s) with findings suppressed by rules"));
        // The description: escaped, on one line, cut; the tags after it.
        assert!(md.contains("Payments &lt;b&gt;DB&lt;/b&gt; \\# x"), "{md}");
        assert!(!md.contains(&"y".repeat(100)));
        assert!(md.contains("env=prod\\|eu"), "{md}");
        assert!(md.contains("## Rules expiring within 14 days (1)"));
        assert!(
            md.contains("`old\\_migration` expires 2026\\-12\\-05: migration"),
            "{md}"
        );
    }
}
