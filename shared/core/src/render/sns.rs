//! SNS messages: a subject that says what happened, a body that reads well
//! as an e-mail, and message attributes for subscription filter policies.
//!
//! SNS rules respected here: the subject is printable ASCII on one line,
//! under 100 characters; at most 10 attributes (what reaches an SQS
//! subscription with raw delivery), none empty; subject + body + attributes
//! under 256 KB. Event strings lose their line breaks and control
//! characters ([`super::plain`]) so they cannot forge lines of the e-mail.

use super::commands::commands;
use super::describe::{self, is_removal, KeyForm};
use super::links::LinkSettings;
use super::plain::{ascii_line, one_line, truncate_bytes};
use super::slack::severity_label;
use super::tally::tally;
use crate::verdict::{Origin, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Subjects are under 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// At most 10 message attributes reach an SQS subscription.
pub const MAX_ATTRIBUTES: usize = 10;
/// SNS's limit for a whole message: body, subject and attributes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// An attribute value, at most (ASCII).
pub const MAX_ATTRIBUTE_VALUE: usize = 512;
/// The body, at most: the rest of [`MAX_MESSAGE_BYTES`] is kept for the
/// subject and the attributes (10 × (name + value) fits easily).
pub const MAX_BODY_BYTES: usize = MAX_MESSAGE_BYTES - 16 * 1024;
/// Longest single value written in the body.
const MAX_VALUE_CHARS: usize = 1000;
/// How many actors / keys / event names a digest counts by name.
const DIGEST_TOP_NAMES: usize = 10;
/// Ends a body that had to be cut.
const CUT_NOTE: &str = "\n\n[message cut to fit the SNS size limit]\n";

/// What the watcher publishes to SNS. Attribute values are SNS `String`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnsMessage {
    pub subject: String,
    pub message: String,
    pub attributes: BTreeMap<String, String>,
}

/// The e-mail for one verdict: what, who, when, from where, key and alias,
/// grantee, operations, constraints, each finding explained, the removed
/// grant's context for removals, suppression, and the commands to inspect
/// and revoke. Attributes: `kind` (`alert`), `severity`, `origin`,
/// `service` (`none` when null), `event_name`, `account`, `region`,
/// `finding_codes` (sorted, comma-joined, `none` when empty).
pub fn alert(v: &Verdict) -> SnsMessage {
    alert_with(v, &LinkSettings::default())
}

/// [`alert`] with the deployment's link settings: each finding's runbook
/// (`<base>/<code>.md`) under its explanation.
pub fn alert_with(v: &Verdict, links: &LinkSettings) -> SnsMessage {
    let subject = alert_subject(v);
    let mut body = Body::default();
    body.line(&format!(
        "{} - {}",
        severity_label(v.severity),
        describe::headline(v)
    ));
    body.blank();
    body.line(&one_line(&describe::summary(v), MAX_VALUE_CHARS));

    body.heading("WHAT HAPPENED");
    body.pair("Event", &v.event_name);
    if let Some(err) = &v.error_code {
        body.pair("Failed with", err);
    }
    if v.dry_run {
        body.pair("Dry run", "yes: nothing was changed");
    }
    body.pair("When", v.event_time.as_deref().unwrap_or("unknown"));
    body.principal(
        if is_removal(v) { "Removed by" } else { "Who" },
        v.actor.arn.as_deref(),
    );
    if let Some(t) = &v.actor.identity_type {
        body.pair("Identity type", t);
    }
    if let Some(by) = &v.actor.invoked_by {
        body.pair("Invoked by", by);
    }
    body.pair("From", v.source_ip.as_deref().unwrap_or("unknown"));
    body.pair("User agent", v.user_agent.as_deref().unwrap_or("unknown"));
    body.pair("Origin", &origin_text(v.origin, v.service.as_deref()));
    body.pair(
        "Account / region",
        &format!(
            "{} / {}",
            v.account.as_deref().unwrap_or("unknown"),
            v.region.as_deref().unwrap_or("unknown")
        ),
    );

    body.heading(if is_removal(v) {
        "THE REMOVED GRANT"
    } else {
        "THE GRANT"
    });
    if let Some(alias) = &v.key_alias {
        body.pair("Key alias", alias);
    }
    body.pair("Key", describe::key_for_command(v).unwrap_or("unknown"));
    body.pair("Grant id", v.grant_id.as_deref().unwrap_or("none"));
    if let Some(name) = &v.grant_name {
        body.pair("Grant name", name);
    }
    if !is_removal(v) || v.grantee.is_some() {
        body.principal("Grantee", v.grantee.as_deref());
    }
    if !is_removal(v) || v.retiring_principal.is_some() {
        body.principal("Retiring principal", v.retiring_principal.as_deref());
    }
    if !is_removal(v) || !v.operations.is_empty() {
        body.pair("Operations", &describe::operations(&v.operations));
    }
    if !is_removal(v) || v.constraints.is_some() {
        let lines = describe::constraints(v.constraints.as_ref());
        for (i, line) in lines.iter().enumerate() {
            body.pair(if i == 0 { "Constraints" } else { "" }, line);
        }
    }
    if is_removal(v) {
        removed_grant(&mut body, v);
    }

    let mut findings: Vec<_> = v.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    body.heading(&format!("FINDINGS ({})", findings.len()));
    if findings.is_empty() {
        body.line("  none");
    }
    for f in findings {
        body.line(&format!(
            "  [{}] {}: {}",
            severity_label(f.severity),
            f.code,
            one_line(&f.message, MAX_VALUE_CHARS)
        ));
        body.line(&format!("      {}", describe::finding_explanation(f.code)));
        body.line(&format!(
            "      Runbook: {}{}",
            links.runbook(f.code),
            if links.runbook_url(f.code).is_none() {
                " (in the grantwatch source)"
            } else {
                ""
            }
        ));
    }

    if !v.evidence.is_empty() {
        body.heading(&format!(
            "WHY ORIGIN IS {}",
            v.origin.as_str().to_uppercase()
        ));
        for e in &v.evidence {
            body.line(&format!("  - {}", one_line(e, MAX_VALUE_CHARS)));
        }
    }

    if v.suppressed_by.is_some() || !v.rule_notes.is_empty() {
        body.heading("SUPPRESSION RULES");
        if let Some(rule) = &v.suppressed_by {
            body.line(&format!(
                "  Suppressed by rule {} (reported for the record).",
                one_line(rule, MAX_VALUE_CHARS)
            ));
        }
        for note in &v.rule_notes {
            body.line(&format!("  {}", one_line(note, MAX_VALUE_CHARS)));
        }
    }

    let cmds = commands(v);
    if !cmds.is_empty() {
        body.heading("COMMANDS");
        for c in cmds {
            body.line(&format!("  {}:", c.purpose.label()));
            // Quoted by `commands`; a line break cannot occur in a usable value.
            body.line(&format!("    {}", c.command));
        }
    }
    body.blank();
    body.line(&format!(
        "-- grantwatch · event {}",
        one_line(&v.event_id, MAX_VALUE_CHARS)
    ));

    SnsMessage {
        subject,
        message: body.finish(),
        attributes: alert_attributes(v),
    }
}

/// One message standing for many alerting verdicts (storm control). The
/// body lists every event one per line, most severe first, as far as the
/// size limit allows, then says how many were left out. `window` says
/// when, in words ("in the last 60 s"). Attributes as for [`alert`], with
/// `kind` = `digest`, `severity` the worst, a single value or `mixed` for
/// origin, service, event name, account and region, every finding code,
/// and `count`.
pub fn digest(verdicts: &[Verdict], window: &str) -> SnsMessage {
    digest_counted(verdicts, tally(verdicts, DIGEST_TOP_NAMES), window)
}

/// A storm window's digest as the watcher publishes it: counted from the
/// ledger's tallies of every alert in the window, listing the most severe
/// it carries.
pub fn digest_notice(digest: &crate::ports::notify::Digest) -> SnsMessage {
    digest_counted(
        &digest.alerts,
        super::tally::tally_of_digest(digest, DIGEST_TOP_NAMES),
        &digest.window_words(),
    )
}

fn digest_counted(verdicts: &[Verdict], t: super::tally::Tally, window: &str) -> SnsMessage {
    let worst = t.worst.map(severity_label).unwrap_or("INFO");
    let noun = if t.total == 1 { "alert" } else { "alerts" };
    let window_line = one_line(window, 200);
    let subject = subject(&format!(
        "[{worst}] {} KMS grant {noun} {window_line}",
        t.total
    ));

    let mut body = Body::default();
    body.line(&format!(
        "{} KMS grant {noun} {window_line}: one digest instead of one message each.",
        t.total
    ));
    body.heading("BY SEVERITY");
    for (sev, n) in t.by_severity.iter().rev().filter(|(_, n)| *n > 0) {
        body.pair(severity_label(*sev), &n.to_string());
    }
    for (title, names, others, noun) in [
        ("BY EVENT", &t.by_event, t.other_events, "event names"),
        ("BY ACTOR", &t.by_actor, t.other_actors, "actors"),
        ("BY KEY", &t.by_key, t.other_keys, "keys"),
    ] {
        body.heading(title);
        for (name, n) in names {
            body.line(&format!("  {:>6}  {}", n, one_line(name, 200)));
        }
        if others > 0 {
            body.line(&format!("  ...and {others} more {noun}"));
        }
    }

    body.heading("EVENTS (most severe first)");
    let mut order: Vec<&Verdict> = verdicts.iter().collect();
    order.sort_by_key(|v| std::cmp::Reverse(v.severity));
    // Keep room for the closing lines below.
    let budget = MAX_BODY_BYTES - 512;
    let mut listed = 0;
    for v in &order {
        let entry = format!(
            "  [{}] {}\n      event {} at {} - key {} - grant {}\n",
            severity_label(v.severity),
            one_line(&describe::summary(v), 300),
            one_line(&v.event_id, 200),
            one_line(v.event_time.as_deref().unwrap_or("unknown"), 100),
            one_line(describe::key_for_command(v).unwrap_or("unknown"), 300),
            one_line(v.grant_id.as_deref().unwrap_or("none"), 200),
        );
        if body.text.len() + entry.len() > budget {
            break;
        }
        body.text.push_str(&entry);
        listed += 1;
    }
    let all = t.total.max(order.len());
    if listed < all {
        body.line(&format!(
            "  ...and {} more events not listed here (each is in the grant ledger)",
            all - listed
        ));
    }
    body.blank();
    body.line("-- grantwatch");

    let mut attributes = BTreeMap::new();
    attributes.insert("kind".into(), "digest".into());
    attributes.insert(
        "severity".into(),
        t.worst.map(|s| s.as_str()).unwrap_or("info").into(),
    );
    attributes.insert("origin".into(), single_or_mixed(&t.origins, "none"));
    attributes.insert("service".into(), single_or_mixed(&t.services, "none"));
    let event_names: BTreeSet<String> = verdicts.iter().map(|v| v.event_name.clone()).collect();
    attributes.insert("event_name".into(), single_or_mixed(&event_names, "none"));
    attributes.insert("account".into(), single_or_mixed(&t.accounts, "unknown"));
    attributes.insert("region".into(), single_or_mixed(&t.regions, "unknown"));
    attributes.insert(
        "finding_codes".into(),
        joined_or_none(t.finding_codes.iter()),
    );
    attributes.insert("count".into(), t.total.to_string());

    SnsMessage {
        subject,
        message: body.finish(),
        attributes: clean_attributes(attributes),
    }
}

/// `[SEVERITY] summary`, naming fewer operations, then a shorter key id,
/// then no key, until it fits whole; cut with "..." otherwise.
fn alert_subject(v: &Verdict) -> String {
    let severity = severity_label(v.severity);
    let candidates: Vec<String> = [
        (3, KeyForm::Label),
        (2, KeyForm::Label),
        (1, KeyForm::Label),
        (1, KeyForm::Short),
        (1, KeyForm::Omit),
    ]
    .into_iter()
    .map(|(ops, key_form)| {
        format!(
            "[{severity}] {}",
            describe::summary_naming(v, ops, key_form)
        )
    })
    .collect();
    candidates
        .iter()
        .find(|c| ascii_line(c, usize::MAX).len() <= MAX_SUBJECT_CHARS)
        .or(candidates.last())
        .map(|c| subject(c))
        .unwrap_or_else(|| subject(""))
}

fn subject(text: &str) -> String {
    let s = ascii_line(text, MAX_SUBJECT_CHARS);
    if s.is_empty() {
        "grantwatch alert".to_string()
    } else {
        s
    }
}

fn origin_text(origin: Origin, service: Option<&str>) -> String {
    match (origin, service) {
        (Origin::Service, Some(service)) => format!("service ({service})"),
        (Origin::Manual, _) => "manual (a person or workload, directly)".to_string(),
        _ => origin.as_str().to_string(),
    }
}

fn removed_grant(body: &mut Body, v: &Verdict) {
    let Some(r) = &v.removed_grant else {
        body.line("  The ledger never saw this grant: its origin and purpose are unknown.");
        return;
    };
    body.principal("Created by", r.created_by.as_deref());
    body.pair("Created at", r.created_at.as_deref().unwrap_or("unknown"));
    if let Some(id) = &r.created_event_id {
        body.pair("Creating event", id);
    }
    body.pair("Created as", &origin_text(r.origin, r.service.as_deref()));
    if let Some(resource) = &r.dependent_resource {
        body.pair("Depends on it", resource);
    }
    if let Some(impact) = &r.impact {
        body.pair("Impact", impact);
    }
}

fn alert_attributes(v: &Verdict) -> BTreeMap<String, String> {
    let mut attributes = BTreeMap::new();
    attributes.insert("kind".into(), "alert".into());
    attributes.insert("severity".into(), v.severity.as_str().into());
    attributes.insert("origin".into(), v.origin.as_str().into());
    attributes.insert(
        "service".into(),
        v.service.clone().unwrap_or_else(|| "none".into()),
    );
    attributes.insert("event_name".into(), v.event_name.clone());
    attributes.insert(
        "account".into(),
        v.account.clone().unwrap_or_else(|| "unknown".into()),
    );
    attributes.insert(
        "region".into(),
        v.region.clone().unwrap_or_else(|| "unknown".into()),
    );
    let codes: BTreeSet<&str> = v.findings.iter().map(|f| f.code.as_str()).collect();
    attributes.insert("finding_codes".into(), joined_or_none(codes.iter()));
    clean_attributes(attributes)
}

fn joined_or_none<T: AsRef<str>>(items: impl Iterator<Item = T>) -> String {
    let joined = items
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(",");
    if joined.is_empty() {
        "none".into()
    } else {
        joined
    }
}

fn single_or_mixed(values: &BTreeSet<String>, empty: &str) -> String {
    match values.len() {
        0 => empty.to_string(),
        1 => values.iter().next().cloned().unwrap_or_default(),
        _ => "mixed".to_string(),
    }
}

/// SNS rejects empty attribute values: every value becomes printable
/// ASCII on one line, cut to [`MAX_ATTRIBUTE_VALUE`], and `unknown` when
/// nothing is left. At most [`MAX_ATTRIBUTES`] are kept.
fn clean_attributes(attributes: BTreeMap<String, String>) -> BTreeMap<String, String> {
    attributes
        .into_iter()
        .take(MAX_ATTRIBUTES)
        .map(|(k, v)| {
            let v = ascii_line(&v, MAX_ATTRIBUTE_VALUE);
            (k, if v.is_empty() { "unknown".into() } else { v })
        })
        .collect()
}

/// An e-mail body under construction: aligned "name  value" pairs under
/// headings; every value is made a single line.
#[derive(Default)]
struct Body {
    text: String,
}

impl Body {
    fn line(&mut self, s: &str) {
        self.text.push_str(s);
        self.text.push('\n');
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }

    fn heading(&mut self, title: &str) {
        self.blank();
        self.line(title);
    }

    fn pair(&mut self, name: &str, value: &str) {
        let _ = writeln!(
            self.text,
            "  {:<19} {}",
            name,
            one_line(value, MAX_VALUE_CHARS)
        );
    }

    /// A principal in words, with its exact form on the next line.
    fn principal(&mut self, name: &str, p: Option<&str>) {
        match p.filter(|p| !p.trim().is_empty()) {
            Some(p) => {
                let words = describe::principal(p);
                self.pair(name, &words);
                if words != p {
                    self.pair("", p);
                }
            }
            None => self.pair(name, "none"),
        }
    }

    fn finish(self) -> String {
        if self.text.len() <= MAX_BODY_BYTES {
            return self.text;
        }
        truncate_bytes(&self.text, MAX_BODY_BYTES, CUT_NOTE)
    }
}

/// One SNS message attribute for `Publish`: its `DataType` and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "DataType", content = "Value")]
pub enum Attribute {
    #[serde(rename = "String")]
    String(String),
    /// A filter policy matches any one element.
    #[serde(rename = "String.Array")]
    StringArray(Vec<String>),
    #[serde(rename = "Number")]
    Number(u64),
}

impl Attribute {
    /// `String`, `String.Array` or `Number`.
    pub fn data_type(&self) -> &'static str {
        match self {
            Attribute::String(_) => "String",
            Attribute::StringArray(_) => "String.Array",
            Attribute::Number(_) => "Number",
        }
    }

    /// The `StringValue` to send: the string, the JSON array text
    /// (`["manual-grant","re-delegation"]`), or the decimal number.
    pub fn string_value(&self) -> String {
        match self {
            Attribute::String(s) => s.clone(),
            Attribute::StringArray(items) => {
                serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string())
            }
            Attribute::Number(n) => n.to_string(),
        }
    }
}

/// What the watcher publishes with `MessageStructure=json`: `message` is a
/// JSON object with one body per protocol. `email` is the e-mail text;
/// `default` (every other protocol: SQS, Lambda, HTTP/S, Firehose,
/// `email-json`) is the verdict (or the digest) as JSON text, so machines
/// subscribe to data and people to words; `sms` is the subject. Each body
/// is written once, so the 256 KB hold as much as possible. Attributes:
/// `finding_codes` is a `String.Array` (a filter policy can match one
/// code), `count` a `Number`, the rest `String`s as in [`SnsMessage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructuredMessage {
    pub subject: String,
    /// The JSON object text for `Message`.
    pub message: String,
    pub attributes: BTreeMap<String, Attribute>,
}

/// A digest's machine form lists at most this many verdicts (most severe
/// first); `omitted` counts the rest.
pub const MAX_DIGEST_VERDICTS: usize = 50;

/// [`alert`] for `MessageStructure=json`; the machine form is
/// `{"kind": "alert", "subject", "summary", "verdict": {...}, "commands":
/// [{"purpose", "command"}], "runbooks": {code: url}}` (the verdict is the
/// `grantwatch classify` JSON).
pub fn structured_alert(v: &Verdict) -> StructuredMessage {
    structured_alert_with(v, &LinkSettings::default())
}

/// [`structured_alert`] with the deployment's link settings.
pub fn structured_alert_with(v: &Verdict, links: &LinkSettings) -> StructuredMessage {
    structured(&alert_with(v, links), &machine_alert(v, links))
}

/// An alert for machines (SNS's JSON subscribers, the EventBridge
/// detail): `{"kind": "alert", "subject", "summary", "verdict",
/// "commands": [{"purpose", "command"}], "runbooks": {code: url}}`.
pub fn machine_alert(v: &Verdict, links: &LinkSettings) -> serde_json::Value {
    let commands: Vec<serde_json::Value> = commands(v)
        .into_iter()
        .map(|c| serde_json::json!({"purpose": c.purpose.label(), "command": c.command}))
        .collect();
    let runbooks: BTreeMap<&str, String> = v
        .findings
        .iter()
        .map(|f| (f.code.as_str(), links.runbook(f.code)))
        .collect();
    serde_json::json!({
        "kind": "alert",
        "subject": alert_subject(v),
        "summary": describe::summary(v),
        "verdict": v,
        "commands": commands,
        "runbooks": runbooks,
    })
}

/// [`digest`] for `MessageStructure=json`; the machine form is
/// `{"kind": "digest", "subject", "window", "count", "verdicts": [...],
/// "omitted"}`.
pub fn structured_digest(verdicts: &[Verdict], window: &str) -> StructuredMessage {
    digest_machine(&digest(verdicts, window), verdicts, window, verdicts.len())
}

/// A storm window's digest as the watcher publishes it with
/// `MessageStructure=json`: `count` is every alert of the window (the
/// ledger's tallies), `verdicts` the most severe it carries.
pub fn structured_digest_notice(d: &crate::ports::notify::Digest) -> StructuredMessage {
    let total = usize::try_from(d.tally.total)
        .unwrap_or(usize::MAX)
        .max(d.alerts.len());
    digest_machine(&digest_notice(d), &d.alerts, &d.window_words(), total)
}

fn digest_machine(
    text: &SnsMessage,
    verdicts: &[Verdict],
    window: &str,
    total: usize,
) -> StructuredMessage {
    let mut order: Vec<&Verdict> = verdicts.iter().collect();
    order.sort_by_key(|v| std::cmp::Reverse(v.severity));
    let listed: Vec<&Verdict> = order.into_iter().take(MAX_DIGEST_VERDICTS).collect();
    structured(
        text,
        &serde_json::json!({
            "kind": "digest",
            "subject": text.subject,
            "window": window,
            "count": total,
            "verdicts": listed,
            "omitted": total.saturating_sub(listed.len()),
        }),
    )
}

/// The structured form of a rendered message and its machine JSON, within
/// SNS's 256 KB: the machine JSON is replaced by a short stand-in (kind,
/// attributes, `"truncated": true`) and the body halved until it fits.
pub fn structured(msg: &SnsMessage, machine: &serde_json::Value) -> StructuredMessage {
    let attributes: BTreeMap<String, Attribute> = msg
        .attributes
        .iter()
        .map(|(k, v)| {
            let value = match k.as_str() {
                "finding_codes" => Attribute::StringArray(
                    v.split(',')
                        .filter(|c| !c.is_empty())
                        .map(String::from)
                        .collect(),
                ),
                "count" => v
                    .parse()
                    .map(Attribute::Number)
                    .unwrap_or_else(|_| Attribute::String(v.clone())),
                _ => Attribute::String(v.clone()),
            };
            (k.clone(), value)
        })
        .collect();
    let attributes_bytes: usize = attributes
        .iter()
        .map(|(k, v)| k.len() + v.data_type().len() + v.string_value().len())
        .sum();
    let budget = MAX_MESSAGE_BYTES - 1024 - msg.subject.len() - attributes_bytes;
    let mut body = msg.message.clone();
    let mut machine_text = machine.to_string();
    loop {
        let message = serde_json::json!({
            "default": machine_text,
            "email": body,
            "sms": msg.subject,
        })
        .to_string();
        if message.len() <= budget {
            return StructuredMessage {
                subject: msg.subject.clone(),
                message,
                attributes,
            };
        }
        // Shrink the larger of the two: machines keep their verdicts while
        // the e-mail is the long one.
        if machine_text.len() > 4096 && machine_text.len() >= body.len() {
            machine_text = serde_json::json!({
                "kind": msg.attributes.get("kind"),
                "subject": msg.subject,
                "truncated": true,
                "attributes": msg.attributes,
                "note": "too large for SNS: the full record is in the grant ledger",
            })
            .to_string();
        } else {
            body = truncate_bytes(&body, body.len() / 2, CUT_NOTE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::*;
    use crate::verdict::Severity;

    #[test]
    fn manual_grant_subject_says_what_happened() {
        let msg = alert(&manual_grant());
        assert_eq!(
            msg.subject,
            "[HIGH] Manual KMS grant by alice: 444455556666 root may Decrypt +2 with alias/payments"
        );
        assert!(msg.subject.len() < 100);
    }

    #[test]
    fn manual_grant_body_reads_as_an_email() {
        let body = alert(&manual_grant()).message;
        for expected in [
            "HIGH - Manual KMS grant\n",
            "  Who                 alice (Admin role, 111122223333)\n                      arn:aws:sts::111122223333:assumed-role/Admin/alice\n",
            "  When                2026-11-28T18:40:12Z\n",
            "  From                203.0.113.7\n",
            "  User agent          aws-cli/2.15.0 Python/3.11.6 Linux/6.1\n",
            "  Key alias           alias/payments\n",
            "  Grantee             444455556666 root\n",
            "  Retiring principal  none\n",
            "  Operations          Decrypt, GenerateDataKey, CreateGrant\n",
            "  Constraints         none\n",
            "FINDINGS (6)\n  [HIGH] cross-account-grantee: The grantee is in account 444455556666",
            "      The grant includes CreateGrant: the grantee can pass access on",
            "  Revoke:\n    aws kms revoke-grant --key-id arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab --grant-id 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --region eu-west-1\n",
            "  Inspect:\n    aws kms list-grants --key-id ",
        ] {
            assert!(body.contains(expected), "missing {expected:?} in\n{body}");
        }
    }

    #[test]
    fn subject_shortens_operations_then_the_key_id_to_fit() {
        let mut v = manual_grant();
        v.key_alias = None;
        v.actor.arn = Some("arn:aws:sts::111122223333:assumed-role/automation/bot-7".into());
        assert_eq!(
            alert(&v).subject,
            "[HIGH] Manual KMS grant by bot-7: 444455556666 root may Decrypt +2 with key 1234abcd..."
        );
    }

    #[test]
    fn subject_drops_the_key_before_cutting() {
        let mut v = manual_grant();
        v.key_alias = None;
        v.actor.arn =
            Some("arn:aws:sts::111122223333:assumed-role/automation/i-0fedcba9876543210".into());
        assert_eq!(
            alert(&v).subject,
            "[HIGH] Manual KMS grant by i-0fedcba9876543210: 444455556666 root may Decrypt +2"
        );
    }

    #[test]
    fn attributes_allow_filter_policies() {
        let msg = alert(&manual_grant());
        let expected: BTreeMap<String, String> = [
            ("kind", "alert"),
            ("severity", "high"),
            ("origin", "manual"),
            ("service", "none"),
            ("event_name", "CreateGrant"),
            ("account", "111122223333"),
            ("region", "eu-west-1"),
            (
                "finding_codes",
                "account-root-grantee,cross-account-grantee,manual-grant,no-retiring-principal,re-delegation,unconstrained",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // Codes sorted, each once.
        assert_eq!(msg.attributes, expected);

        let service = alert(&lambda_service_grant());
        assert_eq!(service.attributes["service"], "lambda");
        assert_eq!(service.attributes["finding_codes"], "none");
    }

    #[test]
    fn serialises_as_subject_message_attributes() {
        let json = serde_json::to_value(alert(&manual_grant())).expect("serialise");
        // Key order depends on serde_json's `preserve_order`, which another
        // crate may enable in a workspace build: compare the set of keys.
        let mut keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(keys, vec!["attributes", "message", "subject"]);
    }

    #[test]
    fn removal_email_explains_the_impact() {
        let msg = alert(&removal_of_lambda_grant());
        assert_eq!(
            msg.subject,
            "[HIGH] Service grant removed by a person: alice revoked a lambda grant on key 1234abcd..."
        );
        let body = &msg.message;
        assert!(body.contains("THE REMOVED GRANT"));
        assert!(body.contains(&format!("  Depends on it       {FUNCTION_ARN}\n")));
        assert!(body.contains("  Impact              The function will fail to decrypt"));
        assert!(body.contains("  Created as          service (lambda)\n"));
        assert!(!body.contains("revoke-grant"));
        assert_eq!(msg.attributes["finding_codes"], "service-grant-removed");
    }

    #[test]
    fn event_strings_cannot_forge_email_lines_or_break_the_subject() {
        let mut v = manual_grant();
        v.grant_name = Some("x\nFINDINGS (0)\n  none\r\n".into());
        v.actor.arn = Some("arn:aws:sts::1:assumed-role/R/\u{1b}[2Jévil\nname".into());
        v.account = Some("".into());
        v.region = Some("\n".into());
        let msg = alert(&v);
        assert!(!msg.message.contains("\nFINDINGS (0)"));
        assert!(!msg.message.contains('\u{1b}'));
        assert!(msg.subject.is_ascii());
        assert!(!msg.subject.contains('\n'));
        assert!(msg.subject.contains("by [2Jevil name"), "{}", msg.subject);
        assert_eq!(msg.attributes["account"], "unknown");
        assert_eq!(msg.attributes["region"], "unknown");
    }

    #[test]
    fn huge_values_keep_the_message_under_the_limit() {
        let mut v = manual_grant();
        v.evidence = vec!["e".repeat(10_000); 1000];
        let msg = alert(&v);
        let size = msg.subject.len()
            + msg.message.len()
            + msg
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        assert!(size < MAX_MESSAGE_BYTES);
        assert!(msg.message.ends_with(CUT_NOTE));
    }

    #[test]
    fn digest_lists_events_until_the_limit_and_counts_the_rest() {
        let verdicts: Vec<Verdict> = (0..10_000)
            .map(|i| {
                let mut v = manual_grant();
                v.event_id = format!("event-{i:05}");
                if i % 2 == 0 {
                    v.severity = Severity::Medium;
                }
                v
            })
            .collect();
        let msg = digest(&verdicts, "in the last 60 s");
        assert_eq!(
            msg.subject,
            "[HIGH] 10000 KMS grant alerts in the last 60 s"
        );
        assert!(msg.message.len() <= MAX_BODY_BYTES);
        assert!(msg
            .message
            .contains("  HIGH                5000\n  MEDIUM              5000\n"));
        assert!(msg.message.contains("more events not listed here"));
        let listed = msg.message.matches("      event event-").count();
        assert!(listed > 100, "{listed}");
        assert!(msg.message.contains(&format!(
            "...and {} more events not listed",
            10_000 - listed
        )));
        assert_eq!(msg.attributes["kind"], "digest");
        assert_eq!(msg.attributes["severity"], "high");
        assert_eq!(msg.attributes["count"], "10000");
        assert_eq!(msg.attributes["event_name"], "CreateGrant");
        assert!(msg.attributes.len() <= MAX_ATTRIBUTES);

        let mixed = digest(
            &[
                manual_grant(),
                removal_of_lambda_grant(),
                lambda_service_grant(),
            ],
            "now",
        );
        assert_eq!(mixed.attributes["event_name"], "mixed");
        assert_eq!(mixed.attributes["origin"], "mixed");
        assert_eq!(mixed.attributes["service"], "lambda");
    }

    fn parsed(m: &StructuredMessage) -> serde_json::Value {
        serde_json::from_str(&m.message).expect("the message is a JSON object")
    }

    #[test]
    fn structured_alert_gives_people_text_and_machines_the_verdict() {
        let v = manual_grant();
        let m = structured_alert(&v);
        let doc = parsed(&m);
        let text = alert(&v);
        assert_eq!(doc["email"], text.message.as_str());
        assert_eq!(doc["sms"], text.subject.as_str());
        let machine: serde_json::Value =
            serde_json::from_str(doc["default"].as_str().expect("JSON text"))
                .expect("machine JSON");
        assert_eq!(machine["kind"], "alert");
        assert_eq!(machine["subject"], text.subject.as_str());
        let back: Verdict = serde_json::from_value(machine["verdict"].clone()).expect("a verdict");
        assert_eq!(back, v);
        let commands = machine["commands"].as_array().expect("commands");
        assert!(
            commands.iter().any(|c| c["purpose"] == "Revoke"
                && c["command"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("aws kms revoke-grant --key-id "))),
            "{commands:?}"
        );
        assert_eq!(
            machine["runbooks"]["manual-grant"],
            LinkSettings::default().runbook(crate::verdict::FindingCode::ManualGrant)
        );
        assert_eq!(
            doc.as_object().map(|o| o.len()),
            Some(3),
            "one body per audience, each written once: {doc}"
        );
        assert_eq!(m.subject, text.subject);
        assert!(text.message.contains(
            "Runbook: docs/findings/cross-account-grantee.md (in the grantwatch source)"
        ));
    }

    #[test]
    fn finding_codes_are_a_string_array_and_counts_numbers() {
        let m = structured_alert(&manual_grant());
        let codes = &m.attributes["finding_codes"];
        assert_eq!(codes.data_type(), "String.Array");
        let listed: Vec<String> =
            serde_json::from_str(&codes.string_value()).expect("a JSON array");
        assert!(listed.contains(&"manual-grant".to_string()), "{listed:?}");
        assert_eq!(m.attributes["severity"], Attribute::String("high".into()));

        let vs = vec![
            manual_grant(),
            removal_of_lambda_grant(),
            lambda_service_grant(),
        ];
        let d = structured_digest(&vs, "in the last 60 s");
        assert_eq!(d.attributes["count"], Attribute::Number(3));
        assert_eq!(d.attributes["count"].string_value(), "3");
        let machine: serde_json::Value =
            serde_json::from_str(parsed(&d)["default"].as_str().expect("text")).expect("json");
        assert_eq!(machine["count"], 3);
        assert_eq!(machine["verdicts"][0]["severity"], "high");

        let mut quiet = lambda_service_grant();
        quiet.findings.clear();
        let q = structured_alert(&quiet);
        assert_eq!(q.attributes["finding_codes"].string_value(), r#"["none"]"#);
    }

    #[test]
    fn structured_messages_stay_under_the_sns_limit() {
        let mut v = manual_grant();
        v.evidence = vec!["e\u{1b}\"".repeat(20_000); 10];
        let m = structured_alert(&v);
        let attributes: usize = m
            .attributes
            .iter()
            .map(|(k, a)| k.len() + a.string_value().len() + a.data_type().len())
            .sum();
        assert!(m.subject.len() + m.message.len() + attributes < MAX_MESSAGE_BYTES);
        let doc = parsed(&m);
        let machine: serde_json::Value =
            serde_json::from_str(doc["default"].as_str().expect("text")).expect("json");
        assert_eq!(machine["truncated"], true);
        assert!(doc["email"]
            .as_str()
            .expect("body")
            .contains("HIGH - Manual KMS grant"));

        let many: Vec<Verdict> = (0..2000).map(|_| manual_grant()).collect();
        let d = structured_digest(&many, "in the last 60 s");
        assert!(d.message.len() < MAX_MESSAGE_BYTES);
        assert_eq!(d.attributes["count"], Attribute::Number(2000));
    }
}

#[cfg(test)]
mod digest_notice_tests {
    use super::*;
    use crate::ports::ledger::DigestTally;
    use crate::ports::notify::Digest;
    use crate::render::testkit::manual_grant;

    /// A window of 4,002 alerts whose digest carries only the 2 worst.
    fn big_window() -> Digest {
        let carried = vec![manual_grant(), manual_grant()];
        let mut tally = DigestTally::default();
        for _ in 0..4_002 {
            tally.add(&carried[0]);
        }
        Digest {
            window_start: 1_795_000_000,
            window_seconds: 60,
            alerts: carried,
            tally,
        }
    }

    #[test]
    fn the_e_mail_and_slack_digests_count_every_alert_of_the_window() {
        let digest = big_window();
        let email = digest_notice(&digest);
        assert_eq!(email.attributes["count"], "4002");
        assert!(email.subject.contains("4002"), "{}", email.subject);
        assert!(
            email.message.contains("...and 4000 more events"),
            "{}",
            email.message
        );
        let slack = crate::render::slack::digest_notice(&digest);
        let text = slack.to_string();
        assert!(text.contains("4002 KMS grant alerts"), "{text}");
        assert!(text.contains("4000 more events"), "{text}");
    }

    #[test]
    fn the_machine_digest_counts_every_alert_and_carries_the_worst() {
        let digest = big_window();
        let m = structured_digest_notice(&digest);
        assert_eq!(m.attributes["count"], Attribute::Number(4002));
        let doc: serde_json::Value = serde_json::from_str(&m.message).expect("JSON");
        let machine: serde_json::Value =
            serde_json::from_str(doc["default"].as_str().expect("text")).expect("JSON");
        assert_eq!(machine["kind"], "digest");
        assert_eq!(machine["count"], 4002);
        assert_eq!(machine["verdicts"].as_array().map(Vec::len), Some(2));
        assert_eq!(machine["omitted"], 4000);
        assert!(doc["email"]
            .as_str()
            .is_some_and(|e| e.contains("...and 4000 more events")));
    }

    /// A digest whose e-mail lists thousands of events: the e-mail is cut
    /// before the machines lose their verdicts.
    #[test]
    fn a_long_digest_cuts_the_e_mail_before_the_machine_verdicts() {
        let many: Vec<Verdict> = (0..3000).map(|_| manual_grant()).collect();
        let m = structured_digest(&many, "in the last 60 s");
        assert!(m.message.len() < MAX_MESSAGE_BYTES);
        let doc: serde_json::Value = serde_json::from_str(&m.message).expect("JSON");
        let machine: serde_json::Value =
            serde_json::from_str(doc["default"].as_str().expect("text")).expect("JSON");
        assert_eq!(
            machine["verdicts"].as_array().map(Vec::len),
            Some(MAX_DIGEST_VERDICTS),
            "{machine}"
        );
        assert!(doc["email"]
            .as_str()
            .is_some_and(|e| e.contains(CUT_NOTE.trim())));
    }
}
