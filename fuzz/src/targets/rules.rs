//! The rules parser, rules applied by the judgement, and glob matching
//! against a regex oracle.

use super::events::{grant_events, TODAY};
use grantwatch_core::event::GrantEvent;
use grantwatch_core::judge::{judge_event, Policy};
use grantwatch_core::rules::{glob_match, RuleAction, RuleSet};
use grantwatch_core::verdict::Severity;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Events every parsed rules file is applied to: a critical cross-account
/// grant, a person's grant, a service grant, a removal, a dry run.
const SAMPLE_EVENTS: [&[u8]; 5] = [
    include_bytes!("../../../tests/fixtures/events/manual-sdk-cross-account-critical.json"),
    include_bytes!("../../../tests/fixtures/events/manual-cli-create-grant.json"),
    include_bytes!("../../../tests/fixtures/events/lambda-create-grant.json"),
    include_bytes!("../../../tests/fixtures/events/revoke-bare-key-id.json"),
    include_bytes!("../../../tests/fixtures/events/dry-run.json"),
];

fn sample_events() -> &'static [GrantEvent] {
    static EVENTS: OnceLock<Vec<GrantEvent>> = OnceLock::new();
    EVENTS.get_or_init(|| SAMPLE_EVENTS.iter().flat_map(|e| grant_events(e)).collect())
}

/// Any text: a rules file is an error or a set of uniquely named rules;
/// applied to the sample events, a suppression names a suppressing rule, a
/// critical finding stays alerting at high or above unless a rule says
/// `allow_critical`, and an event no rule touched is judged as with no rules.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rules = match RuleSet::parse_toml(text) {
        Ok(rules) => rules,
        Err(e) => {
            assert!(!e.to_string().trim_end().ends_with(':'), "{e:?}");
            return;
        }
    };
    let ids: BTreeSet<&str> = rules.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), rules.rules.len(), "rule ids are not unique");
    assert!(rules.rules.iter().all(|r| !r.id.trim().is_empty()));
    let any_allow_critical = rules.rules.iter().any(|r| r.allow_critical);

    let plain = Policy::new(TODAY);
    let policy = Policy {
        rules: rules.clone(),
        ..Policy::new(TODAY)
    };
    assert_eq!(sample_events().len(), SAMPLE_EVENTS.len());
    for event in sample_events() {
        let base = judge_event(event, None, &plain);
        let v = judge_event(event, None, &policy);
        if let Some(id) = &v.suppressed_by {
            let rule = rules.rules.iter().find(|r| &r.id == id);
            assert!(
                rule.is_some_and(|r| r.action == RuleAction::Suppress),
                "suppressed by {id:?}, not a suppressing rule"
            );
            assert!(!v.alert);
        }
        let critical = base
            .findings
            .iter()
            .any(|f| f.severity >= Severity::Critical);
        if critical && !any_allow_critical {
            assert!(
                v.alert && v.severity >= Severity::High,
                "a critical finding silenced without allow_critical: {v:?}"
            );
        }
        if v.rule_notes.is_empty() {
            assert_eq!(
                (v.severity, v.alert, &v.suppressed_by),
                (base.severity, base.alert, &None),
                "no rule applied, yet the judgement changed"
            );
        }
    }
}

/// The longest pattern and text tried (the oracle compiles a regex).
const MAX_PATTERN_CHARS: usize = 64;
const MAX_TEXT_CHARS: usize = 256;

/// `pattern NUL text`: `glob_match` agrees with the regex the glob means
/// (`*` any run, `?` one character, the rest literal).
pub fn glob(data: &[u8]) {
    let (pattern, text) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let pattern: String = String::from_utf8_lossy(pattern)
        .chars()
        .take(MAX_PATTERN_CHARS)
        .collect();
    let text: String = String::from_utf8_lossy(text)
        .chars()
        .take(MAX_TEXT_CHARS)
        .collect();
    let oracle = regex_lite::Regex::new(&glob_regex(&pattern))
        .unwrap_or_else(|e| panic!("the oracle for {pattern:?}: {e}"));
    assert_eq!(
        glob_match(&pattern, &text),
        oracle.is_match(&text),
        "glob {pattern:?} on {text:?}"
    );
}

/// The regex a glob means, anchored, `.` matching line breaks too.
pub fn glob_regex(pattern: &str) -> String {
    let mut out = String::from("^(?s:");
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex_lite::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push_str(")$");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_means_what_the_glob_means() {
        assert_eq!(glob_regex("a*b?.("), r"^(?s:a.*b.\.\()$");
        let matches =
            |p: &str, t: &str| regex_lite::Regex::new(&glob_regex(p)).unwrap().is_match(t);
        assert!(matches(
            "arn:aws:iam::*:role/etl-*",
            "arn:aws:iam::1:role/etl-x"
        ));
        assert!(matches("a*", "a*b"));
        assert!(matches("?", "日"));
        assert!(matches("a*", "a\nb"));
        assert!(!matches("a?", "a"));
        assert!(!matches("a", "ba"), "anchored at the start");
        assert!(!matches("a", "ab"), "anchored at the end");
        assert!(!matches("a.c", "abc"), "regex syntax is literal");
    }

    #[test]
    fn every_sample_event_is_a_grant_event() {
        assert_eq!(sample_events().len(), SAMPLE_EVENTS.len());
        let critical = sample_events()
            .iter()
            .map(|e| judge_event(e, None, &Policy::new(TODAY)))
            .filter(|v| v.findings.iter().any(|f| f.severity >= Severity::Critical))
            .count();
        assert!(critical >= 1, "no sample event has a critical finding");
    }

    #[test]
    fn a_rule_silencing_a_critical_finding_needs_allow_critical() {
        // The property the rules target checks, on a rules file that tries it.
        rules(b"[[rule]]\nid = \"all\"\nreason = \"r\"\naccount = \"*\"\n");
    }
}
