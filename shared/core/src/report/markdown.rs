//! `summary.md`: the report's headline in Markdown (for a wiki page, a
//! pull request, a ticket). Untrusted values are escaped so they can
//! neither format the page nor inject HTML.

use super::model::{GrantRef, Report};
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

    let risky: Vec<GrantRef> = report
        .grants()
        .filter(|(_, g)| g.is_risky())
        .map(|(k, g)| GrantRef::of(k, g))
        .collect();
    list(&mut out, "Risky grants", &risky);
    if let Some(d) = &report.diff {
        list(&mut out, "New grants", &d.new_grants);
        list(&mut out, "Removed grants", &d.removed_grants);
        if !d.severity_changes.is_empty() {
            let _ = writeln!(out, "\n## Severity changes\n");
            for c in d.severity_changes.iter().take(MAX_LISTED) {
                let _ = writeln!(out, "- {} → {}: {}", c.from, c.to, describe(&c.grant));
            }
        }
    }
    if !report.coverage.gaps.is_empty() {
        let _ = writeln!(out, "\n## Coverage gaps\n");
        for g in report.coverage.gaps.iter().take(MAX_LISTED) {
            let _ = writeln!(
                out,
                "- {}/{} {}: {} ({})",
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

fn list(out: &mut String, title: &str, grants: &[GrantRef]) {
    if grants.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## {title} ({})\n", grants.len());
    for g in grants.iter().take(MAX_LISTED) {
        let _ = writeln!(out, "- {}", describe(g));
    }
    more(out, grants.len());
}

fn more(out: &mut String, total: usize) {
    if total > MAX_LISTED {
        let _ = writeln!(out, "- … and {} more (see report.html)", total - MAX_LISTED);
    }
}

fn describe(g: &GrantRef) -> String {
    format!(
        "**{}** {} grant {} on {} to {}{}",
        g.severity,
        g.origin,
        esc(g.name.as_deref().unwrap_or(&g.grant_id)),
        esc(&g.key_arn),
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
}
