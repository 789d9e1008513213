//! `report.html`: one self-contained page for a reviewer (inline CSS, JS
//! and SVG; no network). Summary cards, charts by origin, service and
//! severity, the trend over past reports, a sortable and filterable table
//! of grants (each key with its description and tags), the keys' posture
//! (`create-grant-open`), rules expiring within 14 days, the diff, and
//! coverage.
//!
//! Every value is HTML-escaped ([`escape`]); the data the script reads is
//! JSON made safe inside `<script>` ([`script_json`]). The script writes
//! `#js-error` into the page on any error, so a headless browser test can
//! see a broken page in the dumped DOM.

use super::model::{GrantRef, GrantReport, KeyReport, Report, TrendPoint, UnreadPart};
use crate::verdict::Severity;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The table holds at most this many grants (highest severity first); the
/// CSV and JSON hold all of them.
pub const MAX_TABLE_ROWS: usize = 20_000;
/// Diff lists show at most this many entries each.
pub const MAX_DIFF_ROWS: usize = 500;

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that cannot end a `<script>` element or start a comment in it, and
/// that JavaScript parsers older than ES2019 accept (U+2028/U+2029).
pub fn script_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(value)?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// What the page's script reads.
#[derive(Serialize)]
struct PageData<'a> {
    schema_version: u32,
    generated_at: &'a str,
    grants_total: usize,
    table_rows: usize,
    trend: &'a [TrendPoint],
}

pub fn write(report: &Report) -> Result<String, serde_json::Error> {
    let mut rows: Vec<(&KeyReport, &GrantReport)> = report.grants().collect();
    rows.sort_by_key(|(_, g)| std::cmp::Reverse(g.severity));
    rows.truncate(MAX_TABLE_ROWS);
    let data = PageData {
        schema_version: report.schema_version,
        generated_at: &report.generated_at,
        grants_total: report.summary.grants,
        table_rows: rows.len(),
        trend: &report.trend,
    };
    let data_json = script_json(&data)?;

    let mut h = String::with_capacity(4096 + rows.len() * 600);
    let title = format!("KMS grant report {}", report.date());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
<title>{}</title><style>{CSS}</style></head><body>\n",
        escape(&title)
    );
    let _ = write!(
        h,
        "<header><h1>{}</h1><p>Generated {}",
        escape(&title),
        escape(&report.generated_at)
    );
    let _ = write!(
        h,
        " · {} account(s) × {} region(s){}</p>",
        report.scope.accounts.len(),
        report.scope.regions.len(),
        if report.scope.organization {
            " (organization)"
        } else {
            ""
        }
    );
    if report.partial {
        let _ = write!(
            h,
            "<p class=\"partial\" id=\"partial\">Partial report: {} part(s) could not be read. See <a href=\"#coverage\">coverage</a>.</p>",
            report.coverage.gaps.len()
        );
    }
    h.push_str("</header>\n");

    pipeline_section(&mut h, report);
    cards(&mut h, report);
    charts(&mut h, report);
    table(&mut h, report, &rows);
    posture_section(&mut h, report);
    expiring_rules_section(&mut h, report);
    diff_section(&mut h, report);
    coverage_section(&mut h, report);

    let _ = write!(
        h,
        "<script type=\"application/json\" id=\"report-data\">{data_json}</script>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    Ok(h)
}

fn cards(h: &mut String, report: &Report) {
    let s = &report.summary;
    let diff_card = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_else(|| "–".into());
    let high = s.by_severity.get("high").copied().unwrap_or(0)
        + s.by_severity.get("critical").copied().unwrap_or(0);
    let items = [
        (
            "Keys",
            s.keys.to_string(),
            format!(
                "{} customer · {} AWS",
                s.keys_customer_managed, s.keys_aws_managed
            ),
        ),
        (
            "Grants",
            s.grants.to_string(),
            format!("{} manual", s.by_origin.get("manual").copied().unwrap_or(0)),
        ),
        (
            "Risky",
            s.risky.to_string(),
            format!("{high} high or critical"),
        ),
        (
            "New",
            diff_card(s.new_grants),
            "since last report".to_string(),
        ),
        (
            "Removed",
            diff_card(s.removed_grants),
            "since last report".to_string(),
        ),
        (
            "Severity changes",
            diff_card(s.severity_changes),
            "since last report".to_string(),
        ),
        (
            "Coverage gaps",
            s.coverage_gaps.to_string(),
            if report.partial {
                "partial report".into()
            } else {
                "complete".into()
            },
        ),
    ];
    h.push_str("<section class=\"cards\">");
    for (label, value, note) in items {
        let _ = write!(
            h,
            "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"note\">{}</div></div>",
            escape(label),
            escape(&value),
            escape(&note)
        );
    }
    h.push_str("</section>\n");
}

fn charts(h: &mut String, report: &Report) {
    let s = &report.summary;
    h.push_str("<section class=\"charts\">");
    let severity: Vec<(String, usize)> = Severity::ALL
        .iter()
        .rev()
        .map(|sev| {
            (
                sev.as_str().to_string(),
                s.by_severity.get(sev.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    bar_chart(h, "Grants by severity", &severity, true);
    bar_chart(
        h,
        "Grants by origin",
        &sorted_counts(&s.by_origin, 10),
        false,
    );
    bar_chart(
        h,
        "Grants by service",
        &sorted_counts(&s.by_service, 12),
        false,
    );
    // A trend needs two points; one point is a dot, not a trend.
    if report.trend.len() >= 2 {
        trend_chart(h, &report.trend);
    }
    h.push_str("</section>\n");
}

fn sorted_counts(counts: &BTreeMap<String, usize>, top: usize) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if v.len() > top {
        let rest: usize = v[top - 1..].iter().map(|(_, n)| n).sum();
        v.truncate(top - 1);
        v.push(("other".into(), rest));
    }
    v
}

fn bar_chart(h: &mut String, title: &str, bars: &[(String, usize)], by_severity: bool) {
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let row_h = 22;
    let height = (bars.len().max(1) * row_h) as u32 + 8;
    let _ = write!(
        h,
        "<figure class=\"chart\"><figcaption>{}</figcaption><svg role=\"img\" aria-label=\"{}\" viewBox=\"0 0 360 {height}\" width=\"360\" height=\"{height}\">",
        escape(title),
        escape(title)
    );
    for (i, (label, n)) in bars.iter().enumerate() {
        let y = i * row_h + 4;
        let w = (*n as f64 / max as f64 * 180.0).round() as u32;
        let class = if by_severity {
            format!("sev-{}", escape(label))
        } else {
            "bar".to_string()
        };
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\" class=\"axis\">{}</text><rect x=\"130\" y=\"{y}\" width=\"{w}\" height=\"16\" class=\"{class}\"><title>{}: {n}</title></rect><text x=\"{}\" y=\"{}\" class=\"count\">{n}</text>",
            y + 13,
            escape(&shorten(label, 20)),
            escape(label),
            134 + w,
            y + 13
        );
    }
    h.push_str("</svg></figure>");
}

fn trend_chart(h: &mut String, trend: &[TrendPoint]) {
    let (w, ht, pad) = (360.0_f64, 160.0_f64, 30.0_f64);
    let _ = write!(
        h,
        "<figure class=\"chart\"><figcaption>Trend (grants; risky dashed)</figcaption><svg role=\"img\" aria-label=\"Trend\" viewBox=\"0 0 {w} {ht}\" width=\"{w}\" height=\"{ht}\">"
    );
    if trend.is_empty() {
        h.push_str("<text x=\"10\" y=\"80\" class=\"axis\">no history yet</text>");
    } else {
        let max = trend.iter().map(|t| t.grants).max().unwrap_or(0).max(1) as f64;
        let step = if trend.len() > 1 {
            (w - 2.0 * pad) / (trend.len() - 1) as f64
        } else {
            0.0
        };
        let point = |i: usize, v: usize| {
            let x = pad + step * i as f64;
            let y = ht - pad - (v as f64 / max) * (ht - 2.0 * pad);
            (x, y)
        };
        let line = |f: &dyn Fn(&TrendPoint) -> usize| {
            trend
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let (x, y) = point(i, f(t));
                    format!("{x:.1},{y:.1}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = write!(
            h,
            "<polyline class=\"trend\" points=\"{}\"/><polyline class=\"trend risky\" points=\"{}\"/>",
            line(&|t| t.grants),
            line(&|t| t.risky)
        );
        for (i, t) in trend.iter().enumerate() {
            let (x, y) = point(i, t.grants);
            let _ = write!(
                h,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\"><title>{}: {} grants, {} risky{}</title></circle>",
                escape(&t.generated_at),
                t.grants,
                t.risky,
                if t.partial { " (partial)" } else { "" }
            );
        }
        let _ = write!(
            h,
            "<text x=\"{pad}\" y=\"{}\" class=\"axis\">{}</text><text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">{}</text><text x=\"2\" y=\"{pad}\" class=\"axis\">{}</text>",
            ht - 8.0,
            escape(trend.first().map(|t| t.generated_at.get(..10).unwrap_or("")).unwrap_or("")),
            w - pad,
            ht - 8.0,
            escape(trend.last().map(|t| t.generated_at.get(..10).unwrap_or("")).unwrap_or("")),
            max as usize
        );
    }
    h.push_str("</svg></figure>");
}

fn table(h: &mut String, report: &Report, rows: &[(&KeyReport, &GrantReport)]) {
    h.push_str("<section id=\"grants\"><h2>Grants</h2>");
    h.push_str(
        "<div class=\"filters\"><input id=\"filter-text\" type=\"search\" placeholder=\"Filter: any text (key, grantee, name, finding...)\" aria-label=\"Filter grants\">\
<select id=\"filter-severity\" aria-label=\"Minimum severity\"><option value=\"0\">any severity</option><option value=\"1\">low+</option><option value=\"2\">medium+</option><option value=\"3\">high+</option><option value=\"4\">critical</option></select>\
<select id=\"filter-origin\" aria-label=\"Origin\"><option value=\"\">any origin</option><option>service</option><option>manual</option><option>unknown</option></select>\
<span id=\"table-status\" aria-live=\"polite\"></span></div>",
    );
    if report.summary.grants > rows.len() {
        let _ = write!(
            h,
            "<p class=\"note\">The table shows the {} highest-severity grants of {}; grants.csv and report.json hold all of them.</p>",
            rows.len(),
            report.summary.grants
        );
    }
    h.push_str("<div class=\"scroll\"><table id=\"grant-table\"><thead><tr>");
    for (i, col) in [
        "Severity",
        "Origin",
        "Service",
        "Where",
        "Key",
        "Grant",
        "Grantee",
        "Operations",
        "Constraints",
        "Findings",
        "Created",
        "Created by",
    ]
    .iter()
    .enumerate()
    {
        let _ = write!(
            h,
            "<th data-col=\"{i}\" tabindex=\"0\" aria-sort=\"none\">{col}</th>"
        );
    }
    h.push_str("</tr></thead><tbody>\n");
    for (key, g) in rows {
        let key_label = key
            .aliases
            .first()
            .cloned()
            .unwrap_or_else(|| key.key_id.clone());
        let manager = key.manager.map(|m| m.as_str()).unwrap_or("?");
        let details = key
            .details_line()
            .map(|d| format!("<br><small class=\"keydesc\">{}</small>", escape(&d)))
            .unwrap_or_default();
        // In words, as in the alerts; one line each.
        let constraints = crate::render::describe::constraints(g.constraints.as_ref())
            .iter()
            .map(|line| escape(line))
            .collect::<Vec<_>>()
            .join("<br>");
        let findings = g
            .findings
            .iter()
            .map(|f| {
                format!(
                    "<span class=\"finding sev-{}\" title=\"{}\">{}</span>",
                    f.severity,
                    escape(&f.message),
                    f.code
                )
            })
            .collect::<String>();
        let suppressed = g
            .suppressed_by
            .as_deref()
            .map(|r| {
                format!(
                    "<span class=\"suppressed\" title=\"suppressed by rule\">suppressed: {}</span>",
                    escape(r)
                )
            })
            .unwrap_or_default();
        let created_by = g
            .created_by
            .as_ref()
            .and_then(|c| c.arn.as_deref())
            .unwrap_or("");
        let words = |p: &str| {
            if p.trim().is_empty() {
                String::new()
            } else {
                crate::render::describe::principal(p)
            }
        };
        let grantee = g.grantee.as_deref().unwrap_or("");
        let service = match g.service.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => escape(s),
            None => "none (manual/unknown)".to_string(),
        };
        let _ = write!(
            h,
            "<tr data-severity=\"{sev_rank}\" data-origin=\"{origin}\"><td data-v=\"{sev_rank}\"><span class=\"sev sev-{sev}\">{sev}</span></td><td>{origin}</td><td>{service}</td><td>{account}<br>{region}</td><td title=\"{key_arn}\">{key_label} <small>{manager}</small>{details}</td><td title=\"{grant_id}\">{name}</td><td title=\"{grantee_arn}\">{grantee}</td><td>{ops}</td><td>{constraints}</td><td>{findings}{suppressed}</td><td>{created}</td><td title=\"{created_by_arn}\">{created_by}</td></tr>",
            sev_rank = severity_rank(g.severity),
            sev = g.severity,
            origin = g.origin,
            service = service,
            account = account_label(report, &key.account),
            region = escape(&key.region),
            key_arn = escape(&key.key_arn),
            key_label = escape(&key_label),
            details = details,
            grant_id = escape(&g.grant_id),
            name = escape(g.name.as_deref().unwrap_or(&g.grant_id)),
            grantee = escape(&words(grantee)),
            grantee_arn = escape(grantee),
            ops = escape(&g.operations.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(", ")),
            constraints = constraints,
            created = escape(g.created.as_deref().unwrap_or("")),
            created_by = escape(&words(created_by)),
            created_by_arn = escape(created_by),
        );
        h.push('\n');
    }
    h.push_str("</tbody></table></div></section>\n");
}

/// Keys with findings of their own (their policy: `create-grant-open`),
/// worst first; suppressed ones say by which rule.
fn posture_section(h: &mut String, report: &Report) {
    let mut keys: Vec<&KeyReport> = report
        .keys
        .iter()
        .filter(|k| !k.findings.is_empty())
        .collect();
    if keys.is_empty() {
        return;
    }
    keys.sort_by_key(|k| std::cmp::Reverse(k.severity));
    let _ = write!(
        h,
        "<section id=\"key-posture\"><h2>Key posture ({} risky)</h2><p class=\"note\">Keys whose policy lets principals other than the key's administrators call CreateGrant without kms:GrantIsForAWSResource: who can make the grants this report lists.</p><table class=\"small\"><thead><tr><th>Severity</th><th>Key</th><th>Description and tags</th><th>Finding</th></tr></thead><tbody>",
        report.summary.risky_keys
    );
    for k in keys.iter().take(MAX_DIFF_ROWS) {
        let findings = k
            .findings
            .iter()
            .map(|f| format!("<b>{}</b> {}", f.code, escape(&shorten(&f.message, 300))))
            .collect::<Vec<_>>()
            .join("<br>");
        let suppressed = k
            .suppressed_by
            .as_deref()
            .map(|r| {
                format!(
                    "<br><span class=\"suppressed\">suppressed: {}</span>",
                    escape(r)
                )
            })
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td><span class=\"sev sev-{sev}\">{sev}</span></td><td class=\"arn\">{arn}</td><td>{details}</td><td>{findings}{suppressed}</td></tr>",
            sev = k.severity,
            arn = escape(&k.key_arn),
            details = escape(&k.details_line().unwrap_or_default()),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// Rules that stop matching within 14 days: renew or remove them.
fn expiring_rules_section(h: &mut String, report: &Report) {
    if report.expiring_rules.is_empty() {
        return;
    }
    h.push_str("<section id=\"expiring-rules\"><h2>Rules expiring within 14 days</h2><table class=\"small\"><thead><tr><th>Rule</th><th>Expires</th><th>Reason</th></tr></thead><tbody>");
    for r in &report.expiring_rules {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.id),
            escape(&r.expires),
            escape(&shorten(&r.reason, 300))
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn severity_rank(s: Severity) -> usize {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

fn diff_section(h: &mut String, report: &Report) {
    h.push_str("<section id=\"diff\"><h2>Since the previous report</h2>");
    let Some(d) = &report.diff else {
        h.push_str("<p>First report: nothing to compare with.</p></section>\n");
        return;
    };
    let _ = write!(
        h,
        "<p>Compared with the report of {}{}.</p>",
        escape(&d.previous_generated_at),
        if d.previous_partial {
            " (which was partial)"
        } else {
            ""
        }
    );
    diff_list(h, "New grants", "diff-new", &d.new_grants, |_| {
        String::new()
    });
    diff_list(
        h,
        "Removed grants",
        "diff-removed",
        &d.removed_grants,
        |_| String::new(),
    );
    let changed: Vec<GrantRef> = d.severity_changes.iter().map(|c| c.grant.clone()).collect();
    let transitions: Vec<String> = d
        .severity_changes
        .iter()
        .map(|c| format!("{} → {}", c.from, c.to))
        .collect();
    diff_list(h, "Severity changes", "diff-changed", &changed, |i| {
        transitions.get(i).cloned().unwrap_or_default()
    });
    h.push_str("</section>\n");
}

fn diff_list(
    h: &mut String,
    title: &str,
    id: &str,
    grants: &[GrantRef],
    extra: impl Fn(usize) -> String,
) {
    let _ = write!(h, "<h3>{} ({})</h3>", escape(title), grants.len());
    if grants.is_empty() {
        h.push_str("<p class=\"note\">None.</p>");
        return;
    }
    let _ = write!(h, "<ul id=\"{id}\">");
    for (i, g) in grants.iter().take(MAX_DIFF_ROWS).enumerate() {
        let _ = write!(
            h,
            "<li><span class=\"sev sev-{}\">{}</span> {} {} <span class=\"mono\">{}</span> on <span class=\"mono\">{}</span> to <span class=\"mono\">{}</span></li>",
            g.severity,
            escape(&extra(i)),
            g.origin,
            escape(g.service.as_deref().unwrap_or("")),
            escape(g.name.as_deref().unwrap_or(&g.grant_id)),
            escape(&g.key_arn),
            escape(g.grantee.as_deref().unwrap_or("(none)"))
        );
    }
    if grants.len() > MAX_DIFF_ROWS {
        let _ = write!(
            h,
            "<li>… and {} more (report.json)</li>",
            grants.len() - MAX_DIFF_ROWS
        );
    }
    h.push_str("</ul>");
}

/// Tampered stored reports and the watcher's misses: first, since they
/// say whether the rest can be trusted.
fn pipeline_section(h: &mut String, report: &Report) {
    let findings = report.integrity.iter().flat_map(|i| i.findings.iter());
    let unverified = report
        .integrity
        .as_ref()
        .and_then(|i| i.unverified.as_ref());
    let reconciliation = report.reconciliation.as_ref();
    let silent = reconciliation.map_or(&[][..], |r| &r.silent_account_regions[..]);
    let unchecked = reconciliation.and_then(|r| r.unchecked.as_ref());
    if report.summary.pipeline_tampered == 0
        && unverified.is_none()
        && silent.is_empty()
        && unchecked.is_none()
    {
        return;
    }
    h.push_str("<section id=\"pipeline\"><h2>grantwatch itself</h2>");
    for f in findings {
        let _ = write!(
            h,
            "<p class=\"partial\"><strong>{}</strong> <code>{}</code>: {}</p>",
            escape(f.severity.as_str()),
            escape(f.code.as_str()),
            escape(&shorten(&f.message, 600))
        );
    }
    for problem in unverified.into_iter().chain(unchecked) {
        let _ = write!(
            h,
            "<p class=\"partial\">Not verified: {}</p>",
            escape(&shorten(problem, 600))
        );
    }
    if let (Some(r), false) = (reconciliation, silent.is_empty()) {
        let _ = write!(
            h,
            "<h3>Silent account-regions</h3><p>Grants created between {} and {}, and no ledger event from there:</p>\
<table class=\"small\" id=\"silent\"><thead><tr><th>Account</th><th>Region</th><th>Grants created</th></tr></thead><tbody>",
            escape(&r.period_start),
            escape(&r.period_end)
        );
        for s in silent {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.account),
                escape(&s.region),
                s.grants_created
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>\n");
}

fn coverage_section(h: &mut String, report: &Report) {
    h.push_str("<section id=\"coverage\"><h2>Coverage</h2><table class=\"small\"><thead><tr><th>Account</th><th>Region</th><th>Status</th><th>Keys listed</th><th>Keys complete</th><th>Grants</th></tr></thead><tbody>");
    for c in &report.coverage.account_regions {
        let status = serde_json::to_value(c.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr class=\"cov-{status}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            account_label(report, &c.account),
            escape(&c.region),
            escape(&status),
            c.keys_listed,
            c.keys_complete,
            c.grants
        );
    }
    h.push_str("</tbody></table>");
    if report.coverage.gaps.is_empty() {
        h.push_str("<p>Every key in scope was read completely.</p>");
    } else {
        h.push_str("<h3>Not read</h3><table class=\"small\" id=\"gaps\"><thead><tr><th>Account</th><th>Region</th><th>Key</th><th>Reason</th><th>Detail</th></tr></thead><tbody>");
        for g in &report.coverage.gaps {
            let part = match g.unread {
                UnreadPart::Grants => "",
                UnreadPart::KeyPolicy => " (key policy)",
                UnreadPart::Tags => " (tags)",
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"arn\">{}</td><td>{}{part}</td><td>{}</td></tr>",
                escape(&g.account),
                escape(&g.region),
                escape(g.key_arn.as_deref().unwrap_or("(whole account-region)")),
                g.reason.as_str(),
                escape(&shorten(&g.detail, 300))
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>\n");
}

/// The account id, under its name where the organization gave one (cut:
/// account owners choose names).
fn account_label(report: &Report, account: &str) -> String {
    match report.scope.account_name(account) {
        Some(name) => format!(
            "{}<br><small>{}</small>",
            escape(&shorten(name, ACCOUNT_NAME_CHARS)),
            escape(account)
        ),
        None => escape(account),
    }
}

/// An account name's room in the tables (Organizations allows 50).
const ACCOUNT_NAME_CHARS: usize = 24;

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

const CSS: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 24px 40px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px}
header p{margin:2px 0;color:#555}.partial{color:#9a3412;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px 14px;min-width:130px}
.card .label{color:#555;font-size:12px;text-transform:uppercase;letter-spacing:.04em}.card .value{font-size:26px;font-weight:700}.card .note{font-size:12px;color:#777}
.charts{display:flex;flex-wrap:wrap;gap:16px;margin-top:16px}
.chart{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:8px 12px;margin:0}
figcaption{font-weight:600;margin-bottom:4px}.axis,.count{font-size:11px;fill:#333}.bar{fill:#3b82f6}
.trend{fill:none;stroke:#3b82f6;stroke-width:2}.trend.risky{stroke:#dc2626;stroke-dasharray:4 3}circle{fill:#1d4ed8}
.sev-critical{fill:#7f1d1d;background:#7f1d1d;color:#fff}.sev-high{fill:#dc2626;background:#dc2626;color:#fff}
.sev-medium{fill:#f59e0b;background:#f59e0b}.sev-low{fill:#84cc16;background:#d9f99d}.sev-info{fill:#94a3b8;background:#e2e8f0}
.sev,.finding{display:inline-block;border-radius:4px;padding:0 5px;margin:1px;font-size:12px;overflow-wrap:anywhere}
.suppressed{font-size:12px;color:#555;font-style:italic}
.filters{display:flex;gap:8px;align-items:center;margin:6px 0}.filters input{flex:1;max-width:420px;padding:5px}
.scroll{overflow-x:auto}table{border-collapse:collapse;background:#fff;width:100%}
#grant-table{table-layout:fixed}#grant-table td{overflow-wrap:anywhere;font-size:13px}
#grant-table th:nth-child(1){width:5.5em}#grant-table th:nth-child(2){width:5em}#grant-table th:nth-child(3){width:7em}
#grant-table th:nth-child(4){width:7.5em}#grant-table th:nth-child(11){width:6.5em}
th,td{border:1px solid #e3e6ea;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f1f3f6;cursor:pointer;user-select:none;overflow-wrap:anywhere}th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
.arn,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.note{color:#666}.cov-unread td{background:#fee2e2}.cov-partial td{background:#fef3c7}
#js-error{background:#fee2e2;border:1px solid #dc2626;padding:8px;margin:8px 0}
"#;

const SCRIPT: &str = r#"
(function(){
  function fail(msg){
    var box=document.getElementById('js-error');
    if(!box){box=document.createElement('div');box.id='js-error';document.body.insertBefore(box,document.body.firstChild);}
    box.textContent='Report script error: '+msg;
  }
  window.onerror=function(message,source,line){fail(String(message)+' (line '+line+')');return false;};
  window.addEventListener('unhandledrejection',function(e){fail(String(e.reason));});
  var data=JSON.parse(document.getElementById('report-data').textContent);
  var table=document.getElementById('grant-table');
  var body=table.tBodies[0];
  var rows=Array.prototype.slice.call(body.rows);
  if(rows.length!==data.table_rows){fail('table holds '+rows.length+' rows, expected '+data.table_rows);}
  var text=document.getElementById('filter-text'),sev=document.getElementById('filter-severity'),origin=document.getElementById('filter-origin');
  var status=document.getElementById('table-status');
  function apply(){
    var q=text.value.trim().toLowerCase(),min=parseInt(sev.value,10)||0,o=origin.value,shown=0;
    rows.forEach(function(r){
      var ok=(parseInt(r.getAttribute('data-severity'),10)>=min)&&(!o||r.getAttribute('data-origin')===o)&&(!q||r.textContent.toLowerCase().indexOf(q)>=0);
      r.hidden=!ok;if(ok)shown++;
    });
    status.textContent=shown+' of '+data.grants_total+' grants shown';
  }
  [text,sev,origin].forEach(function(el){el.addEventListener('input',apply);el.addEventListener('change',apply);});
  function value(r,i){var c=r.cells[i];var v=c.getAttribute('data-v');return v!==null?parseFloat(v):c.textContent.trim().toLowerCase();}
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
    function sort(){
      var dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
      Array.prototype.forEach.call(table.tHead.rows[0].cells,function(o){o.setAttribute('aria-sort','none');});
      th.setAttribute('aria-sort',dir===1?'ascending':'descending');
      rows.sort(function(a,b){var x=value(a,i),y=value(b,i);return x<y?-dir:x>y?dir:0;});
      rows.forEach(function(r){body.appendChild(r);});
    }
    th.addEventListener('click',sort);
    th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();sort();}});
  });
  apply();
  document.body.setAttribute('data-ready','yes');
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::{grant, key, report};

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        let s = script_json(&"</script><!-- & \u{2028}\u{2029}").unwrap();
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        assert!(!s.contains('\u{2028}') && !s.contains('\u{2029}'));
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "</script><!-- & \u{2028}\u{2029}");
    }

    #[test]
    fn account_names_from_the_organization_are_shown_escaped_and_cut() {
        let mut r = report(vec![key("k1", vec![grant("g1", Severity::High)])]);
        let account = r.keys[0].account.clone();
        let html = write(&r).unwrap();
        assert!(!html.contains("<br><small>"), "no name known, the id alone");
        r.scope.account_names.insert(
            account.clone(),
            "<b>Payments</b> production account with a long name".into(),
        );
        let html = write(&r).unwrap();
        let label = format!("&lt;b&gt;Payments&lt;/b&gt; product…<br><small>{account}</small>");
        // In the grants table and in coverage.
        assert_eq!(html.matches(&label).count(), 2, "{html}");
        assert!(!html.contains("<b>Payments"));
    }

    #[test]
    fn hostile_values_are_escaped_everywhere() {
        let mut g = grant("g1", Severity::High);
        g.name = Some("<script>alert(1)</script>".into());
        g.grantee = Some("\"><img src=x onerror=alert(2)>".into());
        let mut r = report(vec![key("k1", vec![g, grant("g2", Severity::Low)])]);
        r.generated_at = "2026-11-28T06:00:00Z</script><script>alert(3)//".into();
        r.trend = vec![r.trend_point()];
        let html = write(&r).unwrap();
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<img"));
        assert_eq!(
            html.matches("<script").count(),
            2,
            "only the page's own scripts"
        );
        assert_eq!(html.matches("</script>").count(), 2);
        assert_eq!(html.matches("<tr data-severity=").count(), 2);
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no network"
        );
    }

    #[test]
    fn key_details_posture_and_expiring_rules_are_shown_escaped() {
        use crate::verdict::{Finding, FindingCode};
        let mut k = key("k1", vec![grant("g1", Severity::High)]);
        k.description = Some(format!("<img src=x onerror=alert(1)> {}", "d".repeat(300)));
        k.tags
            .insert("env".into(), "\"><script>alert(2)</script>".into());
        k.findings = vec![Finding {
            code: FindingCode::CreateGrantOpen,
            severity: Severity::Medium,
            message: "the key policy lets <role/ci> call CreateGrant".into(),
        }];
        k.severity = Severity::Medium;
        let mut r = report(vec![k]);
        r.summary = crate::report::summarise(&r.keys, &r.coverage);
        r.expiring_rules = vec![crate::report::ExpiringRule {
            id: "<b>soon</b>".into(),
            expires: "2026-12-05".into(),
            reason: "migration".into(),
        }];
        let html = write(&r).unwrap();
        assert!(!html.contains("<img") && !html.contains("<script>alert"));
        assert!(
            html.contains("<small class=\"keydesc\">&lt;img src=x"),
            "in the grants table"
        );
        assert!(!html.contains(&"d".repeat(100)), "cut");
        assert!(html.contains("env=&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("<section id=\"key-posture\"><h2>Key posture (1 risky)</h2>"));
        assert!(html.contains("<b>create-grant-open</b> the key policy lets &lt;role/ci&gt;"));
        assert!(html.contains("<td>&lt;b&gt;soon&lt;/b&gt;</td><td>2026-12-05</td>"));
        // Without any, no sections.
        let plain = write(&report(vec![key("k2", vec![])])).unwrap();
        assert!(!plain.contains("key-posture") && !plain.contains("expiring-rules"));
    }

    #[test]
    fn grants_read_in_words_and_the_trend_needs_two_points() {
        let mut service = grant("svc", Severity::Info);
        service.service = Some("lambda".into());
        service.grantee = Some("arn:aws:sts::111111111111:assumed-role/fn-role/fn".into());
        service.constraints = Some(crate::grant::Constraints {
            encryption_context_equals: Some(std::collections::BTreeMap::from([(
                "aws:lambda:FunctionArn".to_string(),
                "arn:aws:lambda:eu-west-1:111111111111:function:fn".to_string(),
            )])),
            ..crate::grant::Constraints::default()
        });
        let manual = grant("man", Severity::High);
        let mut r = report(vec![key("k1", vec![service, manual])]);
        r.trend = vec![r.trend_point()];
        let html = write(&r).expect("html");
        assert!(
            html.contains("<td>none (manual/unknown)</td>"),
            "no service"
        );
        assert!(html.contains("<td>lambda</td>"));
        assert!(
            html.contains(
                "title=\"arn:aws:iam::111111111111:role/app\">app role (111111111111)</td>"
            ),
            "grantee in words, ARN on hover"
        );
        assert!(
            html.contains("EncryptionContextEquals aws:lambda:FunctionArn = arn:aws:lambda:eu-west-1:111111111111:function:fn"),
            "constraints in words"
        );
        assert!(!html.contains("encryption_context_equals"), "no raw JSON");
        assert!(
            !html.contains("aria-label=\"Trend\""),
            "one point: no trend"
        );
        r.trend.push(r.trend_point());
        let html = write(&r).expect("html");
        assert!(html.contains("aria-label=\"Trend\""), "two points: a trend");
    }
}
