//! Slack incoming-webhook payloads (`{text, blocks}`, Block Kit): one alert
//! per verdict, and a digest for storm control.
//!
//! Every string from an event goes through [`super::mrkdwn`] (escaped,
//! backticks neutralised, cut), and every block goes through [`Blocks`],
//! which enforces the Block Kit limits, so no payload built here can be
//! rejected for its size or break out of its formatting.

use super::commands::{commands, Purpose};
use super::describe::{self, is_removal};
use super::links::LinkSettings;
use super::mrkdwn::{
    code, code_block, escape, fit_lines, prose, truncate, truncate_mrkdwn, MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS, MAX_CONTEXT_TEXT, MAX_FALLBACK_TEXT, MAX_FIELDS, MAX_FIELD_TEXT,
    MAX_HEADER_TEXT, MAX_SECTION_TEXT,
};
use super::tally::{tally, Tally};
use crate::verdict::{Origin, Severity, Verdict};
use serde_json::{json, Value};

/// A button's URL: at most 3000 characters.
pub const MAX_BUTTON_URL: usize = 3000;
/// At most 25 elements in an actions block.
pub const MAX_ACTION_ELEMENTS: usize = 25;
/// A button's text: at most 75 characters.
pub const MAX_BUTTON_TEXT: usize = 75;

/// How many events a digest lists one by one (the rest are counted).
pub const DIGEST_TOP_EVENTS: usize = 25;
/// How many actors / keys a digest names in its counts.
pub const DIGEST_TOP_NAMES: usize = 5;
/// Longest finding message or impact shown.
const MAX_MESSAGE_CHARS: usize = 500;

/// Largest webhook payload an alert may be (serialised JSON bytes): a
/// message that scans in two seconds is far smaller than Slack's limits.
pub const MAX_ALERT_BYTES: usize = 8 * 1024;
/// Most blocks an alert uses (Slack allows 50).
pub const MAX_ALERT_BLOCKS: usize = 12;
/// At most this many fields in an alert.
pub const MAX_ALERT_FIELDS: usize = 6;
/// The user agent is cut to this many characters in the context line.
pub const MAX_USER_AGENT_CHARS: usize = 80;
/// Findings listed one line each (the rest are counted).
const ALERT_TOP_FINDINGS: usize = 3;

/// The Slack message for one verdict, built to scan in two seconds:
/// - a header: severity emoji, severity and the one-line summary;
/// - six fields: who, grantee (for a removal: whose grant), key,
///   operations, constraints, origin, in words;
/// - the worst findings, one line each (and a removal's impact);
/// - the revoke command, when the grant exists;
/// - buttons: the key in the KMS console, the event in CloudTrail, the
///   runbook of the worst finding;
/// - a context line with the rest (event, time, account/region, source IP,
///   user agent cut to [`MAX_USER_AGENT_CHARS`], grant and event ids,
///   suppression notes).
///
/// At most [`MAX_ALERT_BLOCKS`] blocks and [`MAX_ALERT_BYTES`] bytes: values
/// are cut shorter until the payload fits. The e-mail body keeps every
/// detail. Without a runbook base URL ([`alert_with`]) there is no runbook
/// button: the findings name the page's path in the grantwatch source.
pub fn alert(v: &Verdict) -> Value {
    alert_with(v, &LinkSettings::default())
}

/// [`alert`] with the deployment's link settings (the runbook base URL).
pub fn alert_with(v: &Verdict, links: &LinkSettings) -> Value {
    // Longest value (UTF-16 units) shown per budget: generous first, then
    // shorter until the payload fits; the last step drops the extras.
    for budget in [300, 120, 48] {
        let payload = build_alert(v, links, budget, true);
        if payload_bytes(&payload) <= MAX_ALERT_BYTES {
            return payload;
        }
    }
    build_alert(v, links, 24, false)
}

/// Serialised size of a payload in bytes.
pub fn payload_bytes(payload: &Value) -> usize {
    serde_json::to_vec(payload).map_or(usize::MAX, |b| b.len())
}

/// A value as an inline code span of at most `n` units before escaping.
fn code_n(s: &str, n: usize) -> String {
    code(&truncate(s, n))
}

fn build_alert(v: &Verdict, links: &LinkSettings, n: usize, extras: bool) -> Value {
    let mut blocks = Blocks::default();
    blocks.header(&format!(
        "{} {} · {}",
        severity_emoji(v.severity),
        severity_label(v.severity),
        describe::summary(v)
    ));
    blocks.fields(alert_fields(v, n));
    let mut findings = findings_text(v, n);
    if let Some(code) = super::links::worst_finding(v) {
        if links.runbook_url(code).is_none() {
            // No runbook site configured: name the page, link nowhere.
            findings.push_str(&format!(
                "\n*Runbook*: {} in the grantwatch source",
                code_n(&links.runbook(code), n)
            ));
        }
    }
    blocks.section(&findings);
    if extras {
        if let Some(cmd) = revoke_command(v) {
            blocks.section(&cmd);
        }
    }
    blocks.actions(alert_buttons(v, links));
    let mut context = context_elements(v, n);
    if !extras {
        context.truncate(3);
    }
    blocks.context(context);
    blocks.finish(&truncate_mrkdwn(
        &format!(
            "[{}] {}",
            severity_label(v.severity),
            escape(&truncate(&describe::summary(v), n.max(120)))
        ),
        MAX_ALERT_FALLBACK,
    ))
}

/// The notification text of an alert (the summary).
const MAX_ALERT_FALLBACK: usize = 300;

/// 🔴 critical, 🟠 high, 🟡 medium, 🔵 low, ⚪ info.
pub fn severity_emoji(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "🔴",
        Severity::High => "🟠",
        Severity::Medium => "🟡",
        Severity::Low => "🔵",
        Severity::Info => "⚪",
    }
}

/// A principal in words; its exact form only when no words were found.
fn principal_words(p: Option<&str>, n: usize) -> String {
    match p.filter(|p| !p.trim().is_empty()) {
        Some(p) => {
            let words = describe::principal(p);
            if words == p.trim() {
                code_n(p, n)
            } else {
                prose(&words, n)
            }
        }
        None => "none".to_string(),
    }
}

fn origin_text(origin: Origin, service: Option<&str>, n: usize) -> String {
    match (origin, service) {
        (Origin::Service, Some(service)) => format!("service · {}", code_n(service, n)),
        (Origin::Manual, _) => "manual (a person or workload)".to_string(),
        _ => origin.as_str().to_string(),
    }
}

fn alert_fields(v: &Verdict, n: usize) -> Vec<String> {
    let mut who = match (&v.actor.arn, &v.actor.invoked_by) {
        (Some(arn), _) => principal_words(Some(arn), n),
        (None, Some(by)) => code_n(by, n),
        (None, None) => "unknown".to_string(),
    };
    if let (Some(_), Some(by)) = (&v.actor.arn, &v.actor.invoked_by) {
        who.push_str(&format!(" via {}", code_n(by, n)));
    }
    let second = if is_removal(v) && v.grantee.is_none() {
        let whose = match &v.removed_grant {
            Some(r) => {
                let by = principal_words(r.created_by.as_deref(), n);
                match (r.origin, r.service.as_deref()) {
                    (Origin::Service, Some(s)) => format!("{}'s, for {by}", code_n(s, n)),
                    (Origin::Manual, _) => format!("made by hand by {by}"),
                    _ => format!("made by {by}"),
                }
            }
            None => "unknown to the ledger".to_string(),
        };
        field("Removed grant", whose)
    } else {
        field("Grantee", principal_words(v.grantee.as_deref(), n))
    };
    let key = match v.key_alias.as_deref().filter(|a| !a.trim().is_empty()) {
        Some(alias) => code_n(alias, n),
        None => prose(&describe::key_label(v), n),
    };
    let ops = if v.operations.is_empty() {
        if is_removal(v) {
            "not in the event"
        } else {
            "none"
        }
        .to_string()
    } else {
        prose(&describe::operations_short(&v.operations, 4), n)
    };
    vec![
        field(if is_removal(v) { "Removed by" } else { "Who" }, who),
        second,
        field("Key", key),
        field("Operations", ops),
        field("Constraints", constraints_words(v, n)),
        field("Origin", origin_text(v.origin, v.service.as_deref(), n)),
    ]
}

/// The constraints in words: "none", or the first two items and a count.
fn constraints_words(v: &Verdict, n: usize) -> String {
    if let Some(absent) = describe::constraints_absent(v.constraints.as_ref()) {
        return absent.to_string();
    }
    let items = v
        .constraints
        .as_ref()
        .map(describe::constraint_items)
        .unwrap_or_default();
    let mut lines: Vec<String> = items
        .iter()
        .take(2)
        .map(|item| match item.key {
            Some(key) => format!(
                "{} {} = {}",
                item.kind,
                code_n(key, n / 2),
                code_n(item.value, n / 2)
            ),
            None => format!("{} = {}", item.kind, code_n(item.value, n)),
        })
        .collect();
    if items.len() > 2 {
        lines.push(format!("+{} more", items.len() - 2));
    }
    lines.join("\n")
}

fn findings_text(v: &Verdict, n: usize) -> String {
    let mut lines = Vec::new();
    if is_removal(v) {
        if let Some(impact) = v.removed_grant.as_ref().and_then(|r| r.impact.as_deref()) {
            lines.push(format!("*Impact*: {}", prose(impact, n.max(120))));
        }
    }
    if v.findings.is_empty() {
        lines.push("*Findings*: none".to_string());
        return lines.join("\n");
    }
    let mut findings: Vec<_> = v.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in findings.iter().take(ALERT_TOP_FINDINGS) {
        lines.push(format!(
            "• *{}* {} {}",
            severity_label(f.severity),
            code(f.code.as_str()),
            prose(&f.message, n.min(MAX_MESSAGE_CHARS))
        ));
    }
    if findings.len() > ALERT_TOP_FINDINGS {
        let more = findings.len() - ALERT_TOP_FINDINGS;
        lines.push(format!(
            "…and {more} more {} (in the e-mail and `grantwatch explain`)",
            plural(more, "finding", "findings")
        ));
    }
    // Room for the runbook line.
    fit_lines(&lines, MAX_SECTION_TEXT - 120, "findings")
}

/// The revoke command in a code block, when the grant exists and the
/// command is short enough to paste whole (a cut command would run with a
/// wrong value).
fn revoke_command(v: &Verdict) -> Option<String> {
    let cmd = commands(v)
        .into_iter()
        .find(|c| c.purpose == Purpose::Revoke)?;
    (cmd.command.len() <= 600).then(|| format!("*Revoke*\n{}", code_block(&[cmd.command])))
}

fn alert_buttons(v: &Verdict, links: &LinkSettings) -> Vec<(&'static str, String)> {
    let mut buttons = Vec::new();
    if let Some(url) = super::links::kms_key_console(v) {
        buttons.push(("Key in KMS console", url));
    }
    if let Some(url) = super::links::cloudtrail_event(v) {
        buttons.push(("CloudTrail event", url));
    }
    if let Some(url) = super::links::worst_finding(v).and_then(|code| links.runbook_url(code)) {
        buttons.push(("Runbook", url));
    }
    buttons
}

fn context_elements(v: &Verdict, n: usize) -> Vec<String> {
    let mut first = code_n(&v.event_name, n);
    if let Some(err) = &v.error_code {
        first.push_str(&format!(" failed: {}", code_n(err, n)));
    }
    if v.dry_run {
        first.push_str(" (dry run)");
    }
    if let Some(time) = &v.event_time {
        first.push_str(&format!(" at {}", code_n(time, n)));
    }
    let mut context = vec![first];
    let account = v.account.as_deref().map(|a| code_n(a, n));
    let region = v.region.as_deref().map(|r| code_n(r, n));
    match (account, region) {
        (Some(a), Some(r)) => context.push(format!("{a} / {r}")),
        (Some(x), None) | (None, Some(x)) => context.push(x),
        (None, None) => {}
    }
    if let Some(ip) = &v.source_ip {
        context.push(format!("from {}", code_n(ip, n)));
    }
    if let Some(ua) = &v.user_agent {
        context.push(format!("UA {}", code_n(ua, MAX_USER_AGENT_CHARS.min(n))));
    }
    if let Some(id) = &v.grant_id {
        let mut grant = format!("grant {}", code_n(id, n));
        if let Some(name) = &v.grant_name {
            grant.push_str(&format!(" name {}", code_n(name, n)));
        }
        context.push(grant);
    }
    context.push(format!("event {}", code_n(&v.event_id, n)));
    if let Some(rule) = &v.suppressed_by {
        context.push(format!("Suppressed by rule {}", code_n(rule, n)));
    }
    for note in &v.rule_notes {
        context.push(prose(note, n));
    }
    context.push("grantwatch".to_string());
    context
}

/// One message standing for many alerting verdicts (storm control):
/// counts by severity, event, actor and key, the most severe events one
/// line each, and how many more there were. `window` says when, in words
/// ("in the last 60 s", "between 18:40 and 18:41 UTC"). Within every limit
/// for any number of verdicts.
pub fn digest(verdicts: &[Verdict], window: &str) -> Value {
    digest_counted(verdicts, tally(verdicts, DIGEST_TOP_NAMES), window)
}

/// A storm window's digest as the watcher posts it: counted from the
/// ledger's tallies of every alert in the window, listing the most severe
/// it carries.
pub fn digest_notice(digest: &crate::ports::notify::Digest) -> Value {
    digest_counted(
        &digest.alerts,
        super::tally::tally_of_digest(digest, DIGEST_TOP_NAMES),
        &digest.window_words(),
    )
}

fn digest_counted(verdicts: &[Verdict], t: Tally, window: &str) -> Value {
    let mut blocks = Blocks::default();
    let worst = t.worst.map(severity_label).unwrap_or("INFO");
    blocks.header(&format!(
        "{worst} · {} KMS grant {}",
        t.total,
        plural(t.total, "alert", "alerts")
    ));
    blocks.section(&format!(
        "*{}* grant {} to report {}: one digest instead of one message each.",
        t.total,
        plural(t.total, "event", "events"),
        prose(window, 300)
    ));
    blocks.fields(digest_fields(&t));

    let mut order: Vec<&Verdict> = verdicts.iter().collect();
    order.sort_by_key(|v| std::cmp::Reverse(v.severity));
    let lines: Vec<String> = order
        .iter()
        .take(DIGEST_TOP_EVENTS)
        .map(|v| {
            format!(
                "• *{}* {} · {}",
                severity_label(v.severity),
                prose(&describe::summary(v), 300),
                code(&v.event_id)
            )
        })
        .collect();
    let mut listed = fit_lines(&lines, MAX_SECTION_TEXT - 60, "events");
    let unlisted = t.total.max(verdicts.len()).saturating_sub(lines.len());
    if unlisted > 0 {
        listed.push_str(&format!(
            "\n…and {unlisted} more {}",
            plural(unlisted, "event", "events")
        ));
    }
    blocks.section(&format!("*Most severe first*\n{listed}"));
    blocks.context(vec![
        "Each event is judged and recorded on its own; this message only replaces the individual Slack posts.".to_string(),
        "grantwatch".to_string(),
    ]);
    blocks.finish(&format!(
        "[{worst}] {} KMS grant {} {}",
        t.total,
        plural(t.total, "alert", "alerts"),
        escape(window)
    ))
}

/// `HIGH`, `MEDIUM`, ...
pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFO",
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn field(title: &str, body: String) -> String {
    format!("*{title}*\n{body}")
}

fn digest_fields(t: &Tally) -> Vec<String> {
    let by_severity = t
        .by_severity
        .iter()
        .rev()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{} {n}", severity_label(*s)))
        .collect::<Vec<_>>()
        .join("\n");
    let named = |names: &[(String, usize)], others: usize, noun: &str| {
        let mut lines: Vec<String> = names
            .iter()
            .map(|(name, n)| format!("{} {n}", code(name)))
            .collect();
        if others > 0 {
            lines.push(format!("…and {others} more {noun}"));
        }
        fit_lines(&lines, MAX_FIELD_TEXT - 40, noun)
    };
    vec![
        field("By severity", by_severity),
        field(
            "By event",
            named(&t.by_event, t.other_events, "event names"),
        ),
        field("By actor", named(&t.by_actor, t.other_actors, "actors")),
        field("By key", named(&t.by_key, t.other_keys, "keys")),
    ]
}

/// Blocks under construction; every method enforces its block's limits,
/// and empty texts (which Slack rejects) are skipped.
#[derive(Default)]
pub(crate) struct Blocks {
    blocks: Vec<Value>,
}

impl Blocks {
    /// `text` is plain text of our own making plus at most escaped words:
    /// escaped here (Slack decodes entities in `plain_text` too).
    pub(crate) fn header(&mut self, text: &str) {
        let text = truncate_mrkdwn(&escape(text), MAX_HEADER_TEXT);
        if !text.trim().is_empty() {
            self.blocks.push(json!({
                "type": "header",
                "text": {"type": "plain_text", "text": text, "emoji": true}
            }));
        }
    }

    /// `mrkdwn` is already escaped.
    pub(crate) fn section(&mut self, mrkdwn: &str) {
        let text = truncate_mrkdwn(mrkdwn, MAX_SECTION_TEXT);
        if !text.trim().is_empty() {
            self.blocks.push(json!({
                "type": "section",
                "text": {"type": "mrkdwn", "text": text}
            }));
        }
    }

    /// Fields (already escaped), as many sections of at most
    /// [`MAX_FIELDS`] as needed.
    pub(crate) fn fields(&mut self, fields: Vec<String>) {
        let fields: Vec<Value> = fields
            .iter()
            .map(|f| truncate_mrkdwn(f, MAX_FIELD_TEXT))
            .filter(|f| !f.trim().is_empty())
            .map(|f| json!({"type": "mrkdwn", "text": f}))
            .collect();
        for chunk in fields.chunks(MAX_FIELDS) {
            self.blocks
                .push(json!({"type": "section", "fields": chunk}));
        }
    }

    /// Buttons linking out (our own labels; URLs built in
    /// [`super::links`] with every event value percent-encoded). At most
    /// 25 elements; a URL over 3000 characters is left out.
    pub(crate) fn actions(&mut self, buttons: Vec<(&'static str, String)>) {
        let elements: Vec<Value> = buttons
            .into_iter()
            .filter(|(_, url)| url.len() <= MAX_BUTTON_URL && url.starts_with("https://"))
            .take(MAX_ACTION_ELEMENTS)
            .enumerate()
            .map(|(i, (label, url))| {
                json!({
                    "type": "button",
                    "action_id": format!("grantwatch-link-{i}"),
                    "text": {"type": "plain_text", "text": label, "emoji": true},
                    "url": url,
                })
            })
            .collect();
        if !elements.is_empty() {
            self.blocks
                .push(json!({"type": "actions", "elements": elements}));
        }
    }

    /// Context elements (already escaped): at most
    /// [`MAX_CONTEXT_ELEMENTS`]; the last kept one says how many were left.
    pub(crate) fn context(&mut self, elements: Vec<String>) {
        let mut elements: Vec<String> = elements
            .into_iter()
            .map(|e| truncate_mrkdwn(&e, MAX_CONTEXT_TEXT))
            .filter(|e| !e.trim().is_empty())
            .collect();
        if elements.len() > MAX_CONTEXT_ELEMENTS {
            let dropped = elements.len() - (MAX_CONTEXT_ELEMENTS - 1);
            elements.truncate(MAX_CONTEXT_ELEMENTS - 1);
            elements.push(format!("…and {dropped} more notes"));
        }
        if elements.is_empty() {
            return;
        }
        let elements: Vec<Value> = elements
            .into_iter()
            .map(|e| json!({"type": "mrkdwn", "text": e}))
            .collect();
        self.blocks
            .push(json!({"type": "context", "elements": elements}));
    }

    /// The payload: `fallback` (already escaped) cut to
    /// [`MAX_FALLBACK_TEXT`], at most [`MAX_BLOCKS`] blocks.
    /// A block the caller built whole from its own values (the report's
    /// link button, which may be a plain-http test endpoint).
    pub(crate) fn push(&mut self, block: Value) {
        self.blocks.push(block);
    }

    pub(crate) fn finish(mut self, fallback: &str) -> Value {
        if self.blocks.len() > MAX_BLOCKS {
            let dropped = self.blocks.len() - (MAX_BLOCKS - 1);
            self.blocks.truncate(MAX_BLOCKS - 1);
            self.section(&format!("…and {dropped} more blocks"));
        }
        json!({
            "text": truncate_mrkdwn(fallback, MAX_FALLBACK_TEXT),
            "blocks": self.blocks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::*;
    use crate::render::text::slack_payload_as_text;
    use crate::verdict::{Finding, FindingCode};

    fn texts(v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        collect_texts(v, &mut out);
        out
    }

    fn collect_texts(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, val) in map {
                    match (k.as_str(), val) {
                        ("text", Value::String(s)) => out.push(s.clone()),
                        _ => collect_texts(val, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect_texts(i, out)),
            _ => {}
        }
    }

    fn blocks_of<'a>(payload: &'a Value, kind: &str) -> Vec<&'a Value> {
        payload["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter(|b| b["type"] == kind)
            .collect()
    }

    #[test]
    fn manual_grant_alert_scans_in_two_seconds() {
        let payload = alert(&manual_grant());
        crate::render::tests_support::assert_alert_limits(&payload);
        let blocks = payload["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[0]["text"]["text"],
            "🟠 HIGH · Manual KMS grant by alice: 444455556666 root may Decrypt, GenerateDataKey +1 with alias/payments"
        );
        assert_eq!(
            payload["text"],
            "[HIGH] Manual KMS grant by alice: 444455556666 root may Decrypt, GenerateDataKey +1 with alias/payments"
        );
        let fields: Vec<String> = blocks_of(&payload, "section")
            .iter()
            .filter_map(|b| b["fields"].as_array())
            .flatten()
            .map(|f| f["text"].as_str().expect("field text").to_string())
            .collect();
        assert_eq!(
            fields,
            [
                "*Who*\nalice (Admin role, 111122223333)",
                "*Grantee*\n444455556666 root",
                "*Key*\n`alias/payments`",
                "*Operations*\nDecrypt, GenerateDataKey, CreateGrant",
                "*Constraints*\nnone",
                "*Origin*\nmanual (a person or workload)",
            ]
        );
        let all = texts(&payload).join("\n");
        for expected in [
            "• *HIGH* `cross-account-grantee` The grantee is in account 444455556666",
            "…and 3 more findings",
            "*Revoke*\n```\naws kms revoke-grant --key-id arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab --grant-id 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --region eu-west-1\n```",
            "`CreateGrant` at `2026-11-28T18:40:12Z`",
            "`111122223333` / `eu-west-1`",
            "from `203.0.113.7`",
            "UA `aws-cli/2.15.0 Python/3.11.6 Linux/6.1`",
            "event `11111111-2222-3333-4444-555555555555`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
        // No raw ARN of a principal: words only.
        assert!(!all.contains("assumed-role/Admin/alice"), "{all}");
        let buttons: Vec<(&str, &str)> = blocks_of(&payload, "actions")[0]["elements"]
            .as_array()
            .expect("buttons")
            .iter()
            .map(|b| {
                (
                    b["text"]["text"].as_str().unwrap_or(""),
                    b["url"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            buttons,
            [
                ("Key in KMS console", "https://eu-west-1.console.aws.amazon.com/kms/home?region=eu-west-1#/kms/keys/1234abcd-12ab-34cd-56ef-1234567890ab"),
                ("CloudTrail event", "https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1#/events/11111111-2222-3333-4444-555555555555"),
            ],
            "no RUNBOOK_BASE_URL: no runbook button"
        );
        let findings = blocks_of(&payload, "section")
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .find(|t| t.contains("*Runbook*"))
            .expect("the runbook is named");
        assert!(
            findings.contains("docs/findings/cross-account-grantee.md"),
            "{findings}"
        );
        assert!(
            !payload.to_string().contains("github.com"),
            "no made-up host"
        );
    }

    #[test]
    fn runbook_button_follows_the_setting() {
        let links = LinkSettings::with_runbook_base("https://wiki.example.com/kms");
        let payload = alert_with(&manual_grant(), &links);
        let urls: Vec<&str> = blocks_of(&payload, "actions")[0]["elements"]
            .as_array()
            .expect("buttons")
            .iter()
            .filter_map(|b| b["url"].as_str())
            .collect();
        assert!(
            urls.contains(&"https://wiki.example.com/kms/cross-account-grantee.md"),
            "{urls:?}"
        );
    }

    #[test]
    fn user_agent_is_cut_to_80_characters() {
        let mut v = manual_grant();
        v.user_agent = Some(format!("Boto3/1.34 {}", "x".repeat(300)));
        let all = texts(&alert(&v)).join("\n");
        let ua = all
            .split("UA `")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
            .expect("user agent in context");
        assert_eq!(ua.chars().count(), MAX_USER_AGENT_CHARS, "{ua}");
        assert!(ua.ends_with('…'));
    }

    #[test]
    fn removal_alert_says_what_will_break() {
        let payload = alert(&removal_of_lambda_grant());
        crate::render::tests_support::assert_alert_limits(&payload);
        assert_eq!(
            payload["blocks"][0]["text"]["text"],
            "🟠 HIGH · Service grant removed by a person: alice revoked a lambda grant on key 1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        let all = texts(&payload).join("\n");
        assert!(
            all.contains("*Removed by*\nalice (Admin role, 111122223333)"),
            "{all}"
        );
        assert!(
            all.contains("*Removed grant*\n`lambda`'s, for alice (Admin role, 111122223333)"),
            "{all}"
        );
        assert!(
            all.contains("*Impact*: The function will fail to decrypt its environment variables"),
            "{all}"
        );
        assert!(
            !all.contains("revoke-grant"),
            "no revoke for a removed grant"
        );
        assert!(
            !all.contains("*Grantee*"),
            "a removal event carries no grantee"
        );

        let mut unknown = removal_of_lambda_grant();
        unknown.removed_grant = None;
        let all = texts(&alert(&unknown)).join("\n");
        assert!(
            all.contains("*Removed grant*\nunknown to the ledger"),
            "{all}"
        );
    }

    #[test]
    fn suppression_and_rule_notes_show_in_context() {
        let mut v = manual_grant();
        v.suppressed_by = Some("partner-access".into());
        v.rule_notes = vec!["rule old-rule expired on 2026-01-01".into()];
        let payload = alert(&v);
        let context = blocks_of(&payload, "context")[0];
        let all = texts(context).join("\n");
        assert!(all.contains("Suppressed by rule `partner-access`"));
        assert!(all.contains("rule old-rule expired on 2026-01-01"));
    }

    #[test]
    fn hostile_event_strings_are_escaped_and_cannot_leave_code_spans() {
        let mut v = manual_grant();
        v.grant_name = Some("<!channel> & `rm -rf`".into());
        v.user_agent = Some("<https://evil.example|click me>".into());
        v.findings.push(Finding {
            code: FindingCode::UnknownOperation,
            severity: Severity::Critical,
            message: "unknown operation <@U123>".into(),
        });
        let payload = alert(&v);
        crate::render::tests_support::assert_alert_limits(&payload);
        let all = texts(&payload).join("\n");
        assert!(
            all.contains("name `&lt;!channel&gt; &amp; ˋrm -rfˋ`"),
            "{all}"
        );
        assert!(all.contains("`&lt;https://evil.example|click me&gt;`"));
        assert!(all.contains("unknown operation &lt;@U123&gt;"));
        assert!(!all.contains('<') && !all.contains('>'));
    }

    #[test]
    fn huge_values_shrink_until_the_payload_fits() {
        let mut v = manual_grant();
        let hostile = "<&>😀".repeat(2000);
        v.grant_name = Some(hostile.clone());
        v.user_agent = Some(hostile.clone());
        v.source_ip = Some(hostile.clone());
        v.actor.arn = Some(hostile.clone());
        v.grantee = Some(hostile.clone());
        v.key_alias = Some(hostile.clone());
        v.rule_notes = vec![hostile.clone(); 20];
        v.findings
            .iter_mut()
            .for_each(|f| f.message = hostile.clone());
        let payload = alert(&v);
        crate::render::tests_support::assert_alert_limits(&payload);
        assert!(payload_bytes(&payload) > 2000, "kept what fits");
    }

    #[test]
    fn many_findings_are_counted_not_dropped_silently() {
        let mut v = manual_grant();
        v.findings = (0..200)
            .map(|i| Finding {
                code: FindingCode::UnknownOperation,
                severity: Severity::Medium,
                message: format!("unknown operation number {i} {}", "x".repeat(100)),
            })
            .collect();
        let payload = alert(&v);
        let all = texts(&payload).join("\n");
        assert!(all.contains("…and 197 more findings"), "{all}");
        crate::render::tests_support::assert_alert_limits(&payload);
    }

    #[test]
    fn digest_counts_and_lists_the_worst_first() {
        let mut verdicts = vec![lambda_service_grant(); 3];
        for v in &mut verdicts {
            v.severity = Severity::Medium;
        }
        verdicts.push(manual_grant());
        verdicts.push(removal_of_lambda_grant());
        let payload = digest(&verdicts, "in the last 60 s");
        assert_eq!(
            payload["blocks"][0]["text"]["text"],
            "HIGH · 5 KMS grant alerts"
        );
        assert_eq!(
            payload["text"],
            "[HIGH] 5 KMS grant alerts in the last 60 s"
        );
        let all = texts(&payload).join("\n");
        assert!(all.contains("*By severity*\nHIGH 2\nMEDIUM 3"), "{all}");
        assert!(
            all.contains("*By event*\n`CreateGrant` 4\n`RevokeGrant` 1"),
            "{all}"
        );
        assert!(all.contains("*By actor*\n`alice` 5"), "{all}");
        let first = all.find("• *HIGH*").expect("high listed");
        let medium = all.find("• *MEDIUM*").expect("medium listed");
        assert!(first < medium);
    }

    #[test]
    fn digest_of_ten_thousand_stays_within_limits() {
        let verdicts: Vec<Verdict> = (0..10_000)
            .map(|i| {
                let mut v = manual_grant();
                v.event_id = format!("event-{i}");
                v.actor.arn = Some(format!(
                    "arn:aws:sts::111122223333:assumed-role/Admin/user{}",
                    i % 37
                ));
                v.key_arn = Some(format!(
                    "arn:aws:kms:eu-west-1:111122223333:key/k{}",
                    i % 101
                ));
                v.key_alias = None;
                v
            })
            .collect();
        let payload = digest(&verdicts, "in the last 60 s");
        crate::render::tests_support::assert_slack_limits(&payload);
        let all = texts(&payload).join("\n");
        assert!(all.contains("10000 KMS grant alerts"));
        assert!(all.contains("…and 32 more actors"), "{all}");
        assert!(all.contains("…and 96 more keys"), "{all}");
        assert!(
            all.contains(&format!("…and {} more events", 10_000 - DIGEST_TOP_EVENTS)),
            "{all}"
        );
        assert!(slack_payload_as_text(&payload).contains("HIGH · 10000 KMS grant alerts"));
    }

    #[test]
    fn digest_of_nothing_is_still_a_valid_message() {
        let payload = digest(&[], "in the last 60 s");
        crate::render::tests_support::assert_slack_limits(&payload);
        assert_eq!(
            payload["blocks"][0]["text"]["text"],
            "INFO · 0 KMS grant alerts"
        );
    }
}
