//! Terminal rendering for people (the demo, the CLI): a Slack payload or
//! an SNS message shown as readable lines.
//!
//! What is printed came (partly) from events: control characters other
//! than line breaks and tabs are replaced, so an event cannot send escape
//! sequences to the terminal.

use super::mrkdwn::unescape;
use super::sns::SnsMessage;
use serde_json::Value;

/// A Block Kit payload back as lines: the header underlined, sections as
/// paragraphs, fields as `Title: value` lines, code blocks indented,
/// context lines joined with ` · `, mrkdwn entities decoded. A payload
/// without blocks shows its `text`.
pub fn slack_payload_as_text(payload: &Value) -> String {
    let mut out = String::new();
    let blocks = payload
        .get("blocks")
        .and_then(Value::as_array)
        .filter(|b| !b.is_empty());
    let Some(blocks) = blocks else {
        if let Some(text) = payload.get("text").and_then(Value::as_str) {
            out.push_str(&mrkdwn_as_text(text));
            out.push('\n');
        }
        return out;
    };
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("header") => {
                let text = mrkdwn_as_text(text_of(block.get("text")));
                out.push_str(&text);
                out.push('\n');
                out.push_str(&"=".repeat(text.chars().count().min(80)));
                out.push('\n');
            }
            Some("section") => {
                if let Some(text) = block.get("text") {
                    out.push('\n');
                    out.push_str(&mrkdwn_as_text(text_of(Some(text))));
                    out.push('\n');
                }
                if let Some(fields) = block.get("fields").and_then(Value::as_array) {
                    out.push('\n');
                    for field in fields {
                        out.push_str(&field_as_text(text_of(Some(field))));
                    }
                }
            }
            Some("context") => {
                let elements: Vec<String> = block
                    .get("elements")
                    .and_then(Value::as_array)
                    .map(|els| {
                        els.iter()
                            .map(|e| mrkdwn_as_text(text_of(Some(e))))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push('\n');
                out.push_str(&elements.join(" · "));
                out.push('\n');
            }
            Some("actions") => {
                out.push('\n');
                for button in block
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let label = mrkdwn_as_text(text_of(button.get("text")));
                    let url = button.get("url").and_then(Value::as_str).unwrap_or("");
                    out.push_str(&format!("  {label:<19} {}\n", terminal_safe(url)));
                }
            }
            Some("divider") => out.push_str("\n----------------------------------------\n"),
            _ => {}
        }
    }
    out
}

/// An SNS message as an e-mail: `Subject:`, the attributes, a blank line,
/// the body.
pub fn sns_as_text(message: &SnsMessage) -> String {
    let attributes = message
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "Subject: {}\nAttributes: {}\n\n{}",
        terminal_safe(&message.subject),
        terminal_safe(&attributes),
        terminal_safe(&message.message)
    )
}

fn text_of(v: Option<&Value>) -> &str {
    v.and_then(|t| t.get("text"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// mrkdwn for a terminal: code fences become an indented block, entities
/// are decoded, control characters replaced.
fn mrkdwn_as_text(mrkdwn: &str) -> String {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in mrkdwn.split('\n') {
        if line.trim() == "```" {
            in_code = !in_code;
            continue;
        }
        let line = terminal_safe(&unescape(line));
        if in_code {
            out.push(format!("    {line}"));
        } else {
            out.push(line);
        }
    }
    out.join("\n")
}

/// `*Title*\nvalue\nmore` → `  Title: value` with further lines aligned.
fn field_as_text(mrkdwn: &str) -> String {
    let text = mrkdwn_as_text(mrkdwn);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let title = first
        .strip_prefix('*')
        .and_then(|t| t.strip_suffix('*'))
        .unwrap_or(first);
    let rest: Vec<&str> = lines.collect();
    let mut out = format!("  {title:<19}");
    match rest.split_first() {
        Some((value, more)) => {
            out.push_str(&format!(" {value}\n"));
            for line in more {
                out.push_str(&format!("  {:<19} {line}\n", ""));
            }
        }
        None => out.push('\n'),
    }
    out
}

/// Line breaks and tabs kept, every other control character (ESC, BEL,
/// ...) shown as `�`.
fn terminal_safe(s: &str) -> String {
    s.replace("\r\n", "\n")
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::*;
    use crate::render::{slack, sns};
    use serde_json::json;

    #[test]
    fn slack_alert_reads_back_as_lines() {
        let text = slack_payload_as_text(&slack::alert(&manual_grant()));
        for expected in [
            "🟠 HIGH · Manual KMS grant by alice",
            "  Who                 alice (Admin role, 111122223333)\n",
            "  Grantee             444455556666 root\n",
            "  Key                 `alias/payments`\n",
            "*Revoke*\n    aws kms revoke-grant --key-id arn:",
            "  Key in KMS console  https://eu-west-1.console.aws.amazon.com/kms/home?region=eu-west-1#/kms/keys/1234abcd",
            "*Runbook*: `docs/findings/cross-account-grantee.md` in the grantwatch source",
            "event `11111111-2222-3333-4444-555555555555` · grantwatch",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("```"));
    }

    #[test]
    fn entities_are_decoded_and_escape_sequences_neutralised() {
        let payload = json!({"blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "a &lt;b&gt; &amp;amp; \u{1b}[31m"}}
        ]});
        assert_eq!(
            slack_payload_as_text(&payload),
            "\na <b> &amp; \u{fffd}[31m\n"
        );
        assert_eq!(
            slack_payload_as_text(&json!({"text": "x &amp; y"})),
            "x & y\n"
        );
        assert_eq!(slack_payload_as_text(&json!(42)), "");
    }

    #[test]
    fn sns_message_reads_as_an_email() {
        let text = sns_as_text(&sns::alert(&manual_grant()));
        assert!(text.starts_with(
            "Subject: [HIGH] Manual KMS grant by alice: 444455556666 root may Decrypt +2 with alias/payments\nAttributes: account=111122223333; event_name=CreateGrant; "
        ), "{text}");
        assert!(text.contains("\n\nHIGH - Manual KMS grant\n"));
    }
}
