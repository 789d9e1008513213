//! The event parser (plain and gzip) and the judgement of what it parses.

use grantwatch_core::assess::worst_severity;
use grantwatch_core::event::{parse_document, GrantAction, GrantEvent, ParseError, Parsed};
use grantwatch_core::judge::{judge_event, Policy};
use grantwatch_core::verdict::Severity;
use std::io::Write;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The day the judgement runs on (rule expiry), fixed so inputs replay.
pub const TODAY: time::Date = time::macros::date!(2026 - 11 - 29);

/// Any bytes: an error names what is wrong, and every grant event read
/// has an id and survives the JSON round trip the ledger and the CLI use.
pub fn event_parser(data: &[u8]) {
    for event in grant_events(data) {
        check_event(&event);
    }
}

/// The same input gzip-compressed parses exactly as the plain one does,
/// and a gzip stream cut short is an error, never fewer events.
pub fn event_gzip(data: &[u8]) {
    if data.starts_with(&GZIP_MAGIC) {
        return; // already compressed: event_parser reads it as such
    }
    let compressed = gzip(data);
    assert_eq!(
        parse_document(&compressed),
        parse_document(data),
        "gzip changes what is parsed"
    );
    let cut = &compressed[..compressed.len() - 1];
    let read = parse_document(cut);
    assert!(
        matches!(read, Err(ParseError::BadGzip(_))),
        "a truncated gzip stream reads as {read:?}"
    );
}

/// Every grant event parsed, judged with no rules: the verdict is about
/// that event, its severity is its worst finding's, it alerts iff that is
/// medium or worse, and its findings come worst first.
pub fn judgement(data: &[u8]) {
    let policy = Policy::new(TODAY);
    for event in grant_events(data) {
        let v = judge_event(&event, None, &policy);
        assert_eq!(v.event_id, event.event_id);
        assert_eq!(v.event_name, event.action.as_str());
        assert_eq!(v.severity, worst_severity(&v.findings), "{v:?}");
        assert_eq!(v.alert, v.severity >= Severity::Medium, "{v:?}");
        assert_eq!(v.suppressed_by, None);
        assert!(
            v.findings
                .windows(2)
                .all(|w| w[0].severity >= w[1].severity),
            "findings not worst first: {:?}",
            v.findings
        );
        if event.action == GrantAction::CreateGrant && !event.succeeded() {
            assert_eq!(v.grant_id, None, "a failed CreateGrant made no grant");
        }
    }
}

/// The grant events `data` holds, after checking every error names what
/// is wrong.
pub fn grant_events(data: &[u8]) -> Vec<GrantEvent> {
    let records = match parse_document(data) {
        Ok(records) => records,
        Err(e) => {
            check_error(&e);
            return Vec::new();
        }
    };
    let mut events = Vec::new();
    for record in records {
        match record {
            Ok(Parsed::Grant(event)) => events.push(*event),
            Ok(Parsed::NotAGrantEvent { .. }) => {}
            Err(e) => check_error(&e),
        }
    }
    events
}

fn check_error(e: &ParseError) {
    let message = e.to_string();
    assert!(
        !message.trim_end().ends_with(':'),
        "an error that says nothing: {e:?}"
    );
    if let ParseError::BadGrantEvent { event_name, .. } = e {
        assert!(!event_name.is_empty(), "{e:?}");
    }
}

fn check_event(event: &GrantEvent) {
    assert!(!event.event_id.is_empty(), "a grant event without an id");
    if event.action.is_removal() {
        assert_eq!(event.grant, None, "a removal carries no grant: {event:?}");
    }
    let json = serde_json::to_vec(event).unwrap_or_else(|e| panic!("{event:?}: {e}"));
    let back: GrantEvent =
        serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{event:?} reads back: {e}"));
    assert_eq!(&back, event, "the JSON round trip changes the event");
}

/// `data` gzip-compressed.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let written = encoder.write_all(data).and_then(|()| encoder.finish());
    written.unwrap_or_default()
}
