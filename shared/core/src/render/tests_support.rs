//! Checks every test of a rendered message applies: Block Kit limits and
//! escaping (Slack), SNS rules.

use super::mrkdwn::{
    slack_len, MAX_BLOCKS, MAX_CONTEXT_ELEMENTS, MAX_CONTEXT_TEXT, MAX_FALLBACK_TEXT, MAX_FIELDS,
    MAX_FIELD_TEXT, MAX_HEADER_TEXT, MAX_SECTION_TEXT,
};
use super::slack::{
    payload_bytes, MAX_ACTION_ELEMENTS, MAX_ALERT_BLOCKS, MAX_ALERT_BYTES, MAX_ALERT_FIELDS,
    MAX_BUTTON_TEXT, MAX_BUTTON_URL,
};
use super::sns::{SnsMessage, MAX_ATTRIBUTES, MAX_MESSAGE_BYTES, MAX_SUBJECT_CHARS};
use serde_json::Value;

/// Panics (test failure) unless `text` is safely escaped: once the
/// entities `&amp;` `&lt;` `&gt;` are removed, no `<`, `>` or `&` is left.
pub fn assert_escaped(text: &str) {
    let rest = text
        .replace("&amp;", "")
        .replace("&lt;", "")
        .replace("&gt;", "");
    assert!(
        !rest.contains(['<', '>', '&']),
        "unescaped <, > or & in {text:?}"
    );
}

fn text_object(v: &Value, max: usize, what: &str) {
    let kind = v["type"].as_str().unwrap_or("");
    assert!(
        kind == "mrkdwn" || kind == "plain_text",
        "{what}: text type {kind:?}"
    );
    let text = v["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: text is not a string: {v}"));
    assert!(!text.trim().is_empty(), "{what}: empty text");
    assert!(
        slack_len(text) <= max,
        "{what}: {} > {max}",
        slack_len(text)
    );
    assert_escaped(text);
}

/// Panics unless `payload` is a webhook payload within every Block Kit
/// limit, with every text escaped.
pub fn assert_slack_limits(payload: &Value) {
    let fallback = payload["text"].as_str().expect("text is a string");
    assert!(slack_len(fallback) <= MAX_FALLBACK_TEXT);
    assert_escaped(fallback);
    let blocks = payload["blocks"].as_array().expect("blocks is an array");
    assert!(
        !blocks.is_empty() && blocks.len() <= MAX_BLOCKS,
        "{} blocks",
        blocks.len()
    );
    for block in blocks {
        match block["type"].as_str() {
            Some("header") => {
                assert_eq!(block["text"]["type"], "plain_text");
                text_object(&block["text"], MAX_HEADER_TEXT, "header");
            }
            Some("section") => {
                let text = block.get("text");
                let fields = block.get("fields").and_then(Value::as_array);
                assert!(text.is_some() || fields.is_some(), "empty section");
                if let Some(text) = text {
                    text_object(text, MAX_SECTION_TEXT, "section");
                }
                if let Some(fields) = fields {
                    assert!(!fields.is_empty() && fields.len() <= MAX_FIELDS);
                    for f in fields {
                        text_object(f, MAX_FIELD_TEXT, "field");
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"].as_array().expect("context elements");
                assert!(!elements.is_empty() && elements.len() <= MAX_CONTEXT_ELEMENTS);
                for e in elements {
                    text_object(e, MAX_CONTEXT_TEXT, "context");
                }
            }
            Some("actions") => {
                let elements = block["elements"].as_array().expect("actions elements");
                assert!(!elements.is_empty() && elements.len() <= MAX_ACTION_ELEMENTS);
                for e in elements {
                    assert_eq!(e["type"], "button");
                    text_object(&e["text"], MAX_BUTTON_TEXT, "button");
                    let url = e["url"].as_str().expect("button url");
                    assert!(
                        url.starts_with("https://") && url.len() <= MAX_BUTTON_URL,
                        "{url}"
                    );
                    assert!(
                        !url.contains(|c: char| c.is_whitespace() || "<>\"`|".contains(c)),
                        "unencoded character in {url}"
                    );
                }
            }
            Some("divider") => {}
            other => panic!("unexpected block type {other:?}"),
        }
    }
}

/// Panics unless `payload` is an alert that scans: every Block Kit limit
/// ([`assert_slack_limits`]), at most 12 blocks, one header first of at most
/// 150 characters, at most 6 fields, at most 8 KB.
pub fn assert_alert_limits(payload: &Value) {
    assert_slack_limits(payload);
    let blocks = payload["blocks"].as_array().expect("blocks is an array");
    assert!(blocks.len() <= MAX_ALERT_BLOCKS, "{} blocks", blocks.len());
    assert_eq!(
        blocks[0]["type"], "header",
        "the alert starts with its header"
    );
    let fields: usize = blocks
        .iter()
        .filter_map(|b| b["fields"].as_array())
        .map(Vec::len)
        .sum();
    assert!(fields <= MAX_ALERT_FIELDS, "{fields} fields");
    let bytes = payload_bytes(payload);
    assert!(bytes <= MAX_ALERT_BYTES, "{bytes} bytes");
}

/// Panics unless `msg` follows the SNS rules: subject printable ASCII on
/// one line, non-empty, under 100 characters; 1–10 attributes, none empty;
/// the whole message under 256 KB.
pub fn assert_sns_rules(msg: &SnsMessage) {
    let s = &msg.subject;
    assert!(
        !s.is_empty() && s.len() <= MAX_SUBJECT_CHARS,
        "subject {s:?}"
    );
    assert!(
        s.chars().all(|c| c.is_ascii_graphic() || c == ' '),
        "subject {s:?}"
    );
    assert!(!msg.attributes.is_empty() && msg.attributes.len() <= MAX_ATTRIBUTES);
    for (k, v) in &msg.attributes {
        assert!(
            !k.is_empty() && !v.trim().is_empty(),
            "attribute {k:?}={v:?}"
        );
    }
    let size = s.len()
        + msg.message.len()
        + msg
            .attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + 16)
            .sum::<usize>();
    assert!(size < MAX_MESSAGE_BYTES, "{size} bytes");
}
