//! The runbook pages (`docs/findings/<code>.md`) checked against the code:
//! every finding code has its page with the four sections, its ATT&CK ids
//! match [`super::attack`], and every rules-file snippet in them parses.

use super::attack::techniques;
use crate::rules::RuleSet;
use crate::verdict::FindingCode;

const FINDINGS_DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/findings");

fn page(code: FindingCode) -> String {
    let path = format!("{FINDINGS_DOCS}/{}.md", code.as_str());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The ```` ```toml ```` blocks of a page.
fn toml_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let Some(end) = body.find("```") else { break };
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

#[test]
fn every_finding_code_has_a_runbook_with_its_sections_and_attack_ids() {
    for code in FindingCode::ALL {
        let text = page(code);
        assert!(
            text.starts_with(&format!("# `{}`", code.as_str())),
            "{code}: title"
        );
        for section in [
            "## What it means",
            "## How to investigate",
            "## Known benign cases",
            "## How to respond",
            "## MITRE ATT&CK",
        ] {
            assert!(text.contains(section), "{code}: missing {section}");
        }
        let attack = text.split("## MITRE ATT&CK").nth(1).unwrap_or("");
        for t in techniques(code) {
            assert!(attack.contains(t.id), "{code}: {} not listed", t.id);
        }
        let listed = attack.matches("attack.mitre.org/techniques/").count();
        assert_eq!(listed, techniques(code).len(), "{code}: ATT&CK ids differ");
    }
}

#[test]
fn every_rules_snippet_in_the_runbooks_parses() {
    let mut snippets = 0;
    for code in FindingCode::ALL {
        for block in toml_blocks(&page(code)) {
            let rules = RuleSet::parse_toml(&block)
                .unwrap_or_else(|e| panic!("{code}: the snippet does not parse: {e}\n{block}"));
            assert_eq!(rules.rules.len(), 1, "{code}: one rule per snippet");
            snippets += 1;
        }
    }
    assert!(
        snippets >= 10,
        "only {snippets} snippets: is the extraction broken?"
    );
}
