//! Slack incoming-webhook payloads (`{text, blocks}`, Block Kit): one alert
//! per verdict, and a digest for storm control.
//!
//! Every string from an event goes through [`super::mrkdwn`] (escaped,
//! backticks neutralised, cut), and every block goes through [`Blocks`],
//! which enforces the Block Kit limits, so no payload built here can be
//! rejected for its size or break out of its formatting.

use super::commands::{commands, Purpose};
use super::describe::{self, is_removal};
use super::mrkdwn::{
    code, code_block, escape, fit_lines, prose, slack_len, truncate_mrkdwn, MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS, MAX_CONTEXT_TEXT, MAX_FALLBACK_TEXT, MAX_FIELDS, MAX_FIELD_TEXT,
    MAX_HEADER_TEXT, MAX_SECTION_TEXT,
};
use super::tally::{tally, Tally};
use crate::verdict::{Origin, Severity, Verdict};
use serde_json::{json, Value};

/// How many events a digest lists one by one (the rest are counted).
pub const DIGEST_TOP_EVENTS: usize = 25;
/// How many actors / keys a digest names in its counts.
pub const DIGEST_TOP_NAMES: usize = 5;
/// Longest finding message or impact shown.
const MAX_MESSAGE_CHARS: usize = 500;

/// The Slack message for one verdict: header (severity and what happened),
/// a one-line summary, fields (event, key and alias, actor, origin, grantee,
/// retiring principal, operations, account/region, source IP, user agent,
/// grant), constraints, findings, the removed grant's context for
/// removals, the origin evidence, the inspect/revoke commands in a code
/// block, and a context line with the event id, time and suppression.
pub fn alert(v: &Verdict) -> Value {
    let mut blocks = Blocks::default();
    blocks.header(&format!(
        "{} · {}",
        severity_label(v.severity),
        describe::headline(v)
    ));
    blocks.section(&prose(&describe::summary(v), MAX_SECTION_TEXT));
    blocks.fields(alert_fields(v));

    if !is_removal(v) || v.constraints.is_some() {
        blocks.section(&constraints_text(v));
    }
    blocks.section(&findings_text(v));
    if is_removal(v) {
        blocks.section(&removed_grant_text(v));
    }
    if !v.evidence.is_empty() {
        let lines: Vec<String> = v
            .evidence
            .iter()
            .map(|e| format!("• {}", prose(e, MAX_MESSAGE_CHARS)))
            .collect();
        blocks.section(&format!(
            "*Why origin is {}*\n{}",
            v.origin,
            fit_lines(&lines, MAX_SECTION_TEXT - 40, "signals")
        ));
    }
    blocks.section(&commands_text(v));

    let mut context = vec![format!(
        "Event {} · {}",
        code(&v.event_id),
        v.event_time
            .as_deref()
            .map(code)
            .unwrap_or_else(|| "time unknown".into())
    )];
    if let Some(rule) = &v.suppressed_by {
        context.push(format!("Suppressed by rule {}", code(rule)));
    }
    for note in &v.rule_notes {
        context.push(prose(note, MAX_MESSAGE_CHARS));
    }
    context.push("grantwatch".to_string());
    blocks.context(context);

    blocks.finish(&format!(
        "[{}] {}",
        severity_label(v.severity),
        escape(&describe::summary(v))
    ))
}

/// One message standing for many alerting verdicts (storm control):
/// counts by severity, event, actor and key, the most severe events one
/// line each, and how many more there were. `window` says when, in words
/// ("in the last 60 s", "between 18:40 and 18:41 UTC"). Within every limit
/// for any number of verdicts.
pub fn digest(verdicts: &[Verdict], window: &str) -> Value {
    let t = tally(verdicts, DIGEST_TOP_NAMES);
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
    let unlisted = verdicts.len().saturating_sub(lines.len());
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

/// A principal as words plus its exact form, or "none".
fn principal_field(p: Option<&str>) -> String {
    match p.filter(|p| !p.trim().is_empty()) {
        Some(p) => {
            let words = describe::principal(p);
            if words == p {
                code(p)
            } else {
                format!("{}\n{}", prose(&words, 300), code(p))
            }
        }
        None => "none".to_string(),
    }
}

fn optional_code(s: Option<&str>) -> String {
    s.map(code).unwrap_or_else(|| "unknown".to_string())
}

fn origin_text(origin: Origin, service: Option<&str>) -> String {
    match (origin, service) {
        (Origin::Service, Some(service)) => format!("service · {}", code(service)),
        _ => origin.as_str().to_string(),
    }
}

fn alert_fields(v: &Verdict) -> Vec<String> {
    let mut event = code(&v.event_name);
    if let Some(err) = &v.error_code {
        event.push_str(&format!("\nfailed: {}", code(err)));
    }
    if v.dry_run {
        event.push_str("\ndry run");
    }
    let mut key = String::new();
    if let Some(alias) = &v.key_alias {
        key.push_str(&code(alias));
        key.push('\n');
    }
    key.push_str(&optional_code(describe::key_for_command(v)));

    let actor = match &v.actor.arn {
        Some(arn) => {
            let mut s = principal_field(Some(arn));
            if let Some(by) = &v.actor.invoked_by {
                s.push_str(&format!("\ninvoked by {}", code(by)));
            }
            s
        }
        None => v
            .actor
            .invoked_by
            .as_deref()
            .map(|by| format!("invoked by {}", code(by)))
            .unwrap_or_else(|| "unknown".to_string()),
    };

    let mut fields = vec![
        field("Event", event),
        field("Key", key),
        field(if is_removal(v) { "Removed by" } else { "Actor" }, actor),
        field("Origin", origin_text(v.origin, v.service.as_deref())),
    ];
    if !is_removal(v) || v.grantee.is_some() {
        fields.push(field("Grantee", principal_field(v.grantee.as_deref())));
    }
    if !is_removal(v) || v.retiring_principal.is_some() {
        fields.push(field(
            "Retiring principal",
            principal_field(v.retiring_principal.as_deref()),
        ));
    }
    if !is_removal(v) || !v.operations.is_empty() {
        let ops = if v.operations.is_empty() {
            "none".to_string()
        } else {
            v.operations
                .iter()
                .map(|op| code(op.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        fields.push(field("Operations", ops));
    }
    fields.push(field(
        "Account / region",
        format!(
            "{} / {}",
            optional_code(v.account.as_deref()),
            optional_code(v.region.as_deref())
        ),
    ));
    fields.push(field("Source IP", optional_code(v.source_ip.as_deref())));
    fields.push(field("User agent", optional_code(v.user_agent.as_deref())));
    let mut grant = optional_code(v.grant_id.as_deref());
    if let Some(name) = &v.grant_name {
        grant.push_str(&format!("\nname {}", code(name)));
    }
    fields.push(field("Grant", grant));
    fields
}

fn constraints_text(v: &Verdict) -> String {
    if let Some(absent) = describe::constraints_absent(v.constraints.as_ref()) {
        return format!("*Constraints*: {absent}");
    }
    let lines: Vec<String> = v
        .constraints
        .as_ref()
        .map(|c| {
            describe::constraint_items(c)
                .into_iter()
                .map(|item| match item.key {
                    Some(key) => format!("• {} {} = {}", item.kind, code(key), code(item.value)),
                    None => format!("• {} = {}", item.kind, code(item.value)),
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "*Constraints*\n{}",
        fit_lines(&lines, MAX_SECTION_TEXT - 20, "constraints")
    )
}

fn findings_text(v: &Verdict) -> String {
    if v.findings.is_empty() {
        return "*Findings*: none".to_string();
    }
    let mut findings: Vec<_> = v.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let lines: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "• *{}* {} {}",
                severity_label(f.severity),
                code(f.code.as_str()),
                prose(&f.message, MAX_MESSAGE_CHARS)
            )
        })
        .collect();
    format!(
        "*Findings*\n{}",
        fit_lines(&lines, MAX_SECTION_TEXT - 20, "findings")
    )
}

fn removed_grant_text(v: &Verdict) -> String {
    let Some(r) = &v.removed_grant else {
        return "*Removed grant*: the ledger never saw this grant, so its origin and purpose are unknown."
            .to_string();
    };
    let creator = r
        .created_by
        .as_deref()
        .map(|p| prose(&describe::principal(p), 300))
        .unwrap_or_else(|| "an unknown principal".into());
    let how = match (r.origin, r.service.as_deref()) {
        (Origin::Service, Some(service)) => format!("by {} on behalf of {creator}", code(service)),
        (Origin::Service, None) => format!("by an AWS service on behalf of {creator}"),
        (Origin::Manual, _) => format!("by hand by {creator}"),
        (Origin::Unknown, _) => format!("by {creator} (origin unknown)"),
    };
    let mut lines = vec![format!(
        "Created {how} at {}",
        optional_code(r.created_at.as_deref())
    )];
    if let Some(id) = &r.created_event_id {
        lines.push(format!("Creating event {}", code(id)));
    }
    if let Some(resource) = &r.dependent_resource {
        lines.push(format!("Depends on it: {}", code(resource)));
    }
    if let Some(impact) = &r.impact {
        lines.push(format!("*Impact*: {}", prose(impact, MAX_MESSAGE_CHARS)));
    }
    format!(
        "*Removed grant*\n{}",
        fit_lines(&lines, MAX_SECTION_TEXT - 20, "lines")
    )
}

fn commands_text(v: &Verdict) -> String {
    let cmds = commands(v);
    if cmds.is_empty() {
        return "*Commands*: none (the event names no usable key or event id)".to_string();
    }
    let title = if cmds.iter().any(|c| c.purpose == Purpose::Revoke) {
        "*Inspect and revoke*"
    } else {
        "*Inspect*"
    };
    let lines: Vec<String> = cmds
        .iter()
        .flat_map(|c| [format!("# {}", c.purpose.label()), c.command.clone()])
        .collect();
    let text = format!("{title}\n{}", code_block(&lines));
    if slack_len(&text) > MAX_SECTION_TEXT {
        // A cut command is worse than none: it would run with a wrong value.
        return format!("{title}: the identifiers in this event are too long to print as commands");
    }
    text
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
struct Blocks {
    blocks: Vec<Value>,
}

impl Blocks {
    /// `text` is plain text of our own making plus at most escaped words:
    /// escaped here (Slack decodes entities in `plain_text` too).
    fn header(&mut self, text: &str) {
        let text = truncate_mrkdwn(&escape(text), MAX_HEADER_TEXT);
        if !text.trim().is_empty() {
            self.blocks.push(json!({
                "type": "header",
                "text": {"type": "plain_text", "text": text, "emoji": true}
            }));
        }
    }

    /// `mrkdwn` is already escaped.
    fn section(&mut self, mrkdwn: &str) {
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
    fn fields(&mut self, fields: Vec<String>) {
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

    /// Context elements (already escaped): at most
    /// [`MAX_CONTEXT_ELEMENTS`]; the last kept one says how many were left.
    fn context(&mut self, elements: Vec<String>) {
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
    fn finish(mut self, fallback: &str) -> Value {
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

    #[test]
    fn manual_grant_alert_has_everything_a_responder_needs() {
        let payload = alert(&manual_grant());
        let blocks = payload["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "HIGH · Manual KMS grant");
        assert_eq!(
            payload["text"],
            "[HIGH] Manual KMS grant by alice: 444455556666 root may Decrypt, GenerateDataKey +1 with alias/payments"
        );
        let all = texts(&payload).join("\n");
        for expected in [
            "*Key*\n`alias/payments`\n`arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab`",
            "*Actor*\nalice (Admin role, 111122223333)\n`arn:aws:sts::111122223333:assumed-role/Admin/alice`",
            "*Grantee*\n444455556666 root\n`arn:aws:iam::444455556666:root`",
            "*Retiring principal*\nnone",
            "*Operations*\n`Decrypt`, `GenerateDataKey`, `CreateGrant`",
            "*Account / region*\n`111122223333` / `eu-west-1`",
            "*Source IP*\n`203.0.113.7`",
            "*User agent*\n`aws-cli/2.15.0 Python/3.11.6 Linux/6.1`",
            "*Constraints*: none",
            "• *HIGH* `cross-account-grantee` The grantee is in account 444455556666",
            "• *LOW* `no-retiring-principal`",
            "*Why origin is manual*",
            "aws kms revoke-grant --key-id arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab --grant-id 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --region eu-west-1",
            "aws kms list-grants --key-id arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab --grant-id 0123456789abcdef",
            "Event `11111111-2222-3333-4444-555555555555` · `2026-11-28T18:40:12Z`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
        // Findings most severe first.
        let high = all.find("*HIGH* `cross-account").expect("high finding");
        let medium = all.find("*MEDIUM* `manual-grant`").expect("medium finding");
        assert!(high < medium);
    }

    #[test]
    fn removal_alert_says_what_will_break() {
        let payload = alert(&removal_of_lambda_grant());
        assert_eq!(
            payload["blocks"][0]["text"]["text"],
            "HIGH · Service grant removed by a person"
        );
        let all = texts(&payload).join("\n");
        assert!(all.contains("*Removed grant*\nCreated by `lambda` on behalf of alice (Admin role, 111122223333) at `2026-11-01T09:00:00Z`"), "{all}");
        assert!(all.contains(&format!("Depends on it: `{FUNCTION_ARN}`")));
        assert!(
            all.contains("*Impact*: The function will fail to decrypt its environment variables")
        );
        assert!(all.contains("*Removed by*"));
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
        assert!(all.contains("the ledger never saw this grant"));
    }

    #[test]
    fn suppression_and_rule_notes_show_in_context() {
        let mut v = manual_grant();
        v.suppressed_by = Some("partner-access".into());
        v.rule_notes = vec!["rule old-rule expired on 2026-01-01".into()];
        let payload = alert(&v);
        let context = payload["blocks"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["type"] == "context"))
            .expect("context block");
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
            severity: Severity::Medium,
            message: "unknown operation <@U123>".into(),
        });
        let payload = alert(&v);
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
        assert!(all.contains("more findings"), "{all}");
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
