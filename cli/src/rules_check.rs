//! `grantwatch rules check FILE [INPUT...]`: validate a rules file and show
//! what it does to real events. For every rule: the verdicts of the inputs
//! it matches (every matching rule, not only the first), rules that match
//! nothing, and rules that have expired or expire within 14 days.
//!
//! Exit codes: 0 the file is valid (warnings are printed); 1 an input could
//! not be read; 2 the rules file is invalid or unreadable.

use grantwatch_core::event::{parse_document, Parsed};
use grantwatch_core::judge::{judge_event, Policy};
use grantwatch_core::rules::{Rule, RuleSet, RuleSubject, EXPIRY_WARNING_DAYS};
use grantwatch_core::verdict::{FindingCode, Verdict};
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Validate FILE; with INPUTs (CloudTrail records, log files), show which verdicts each rule matches.
    Check {
        /// The rules file (TOML).
        file: std::path::PathBuf,
        /// CloudTrail records, EventBridge events or log files to try the rules on.
        inputs: Vec<std::path::PathBuf>,
        /// The date expiry is checked against (YYYY-MM-DD); default today (UTC).
        #[arg(long, value_name = "DATE", value_parser = crate::args::date)]
        today: Option<time::Date>,
    },
}

pub fn run(args: Args) -> ExitCode {
    let Action::Check {
        file,
        inputs,
        today,
    } = args.action;
    let today = today.unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    let rules = match std::fs::read_to_string(&file)
        .map_err(|e| e.to_string())
        .and_then(|text| RuleSet::parse_toml(&text).map_err(|e| e.to_string()))
    {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("grantwatch rules check: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    println!("{}: {} rules, valid", file.display(), rules.rules.len());
    for line in expiry_warnings(&rules, today)
        .into_iter()
        .chain(key_tags_warnings(&rules))
    {
        println!("warning: {line}");
    }
    if inputs.is_empty() {
        return ExitCode::SUCCESS;
    }
    let mut bad = false;
    let mut verdicts = Vec::new();
    for input in &inputs {
        let parsed = std::fs::read(input)
            .map_err(|e| e.to_string())
            .and_then(|bytes| parse_document(&bytes).map_err(|e| e.to_string()));
        match parsed {
            Err(e) => {
                eprintln!("grantwatch rules check: {}: {e}", input.display());
                bad = true;
            }
            Ok(records) => {
                for record in records {
                    match record {
                        Ok(Parsed::Grant(event)) => {
                            // Judged without rules: the rules are tried one by one below.
                            let verdict = judge_event(&event, None, &Policy::new(today));
                            verdicts.push((verdict, event.caller.session_issuer_arn.clone()));
                        }
                        Ok(Parsed::NotAGrantEvent { .. }) => {}
                        Err(e) => {
                            eprintln!("grantwatch rules check: {}: {e}", input.display());
                            bad = true;
                        }
                    }
                }
            }
        }
    }
    for line in matches_report(&rules, &verdicts) {
        println!("{line}");
    }
    if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Rules that have expired, or expire within [`EXPIRY_WARNING_DAYS`].
pub fn expiry_warnings(rules: &RuleSet, today: time::Date) -> Vec<String> {
    rules
        .rules
        .iter()
        .filter_map(|rule| {
            let expires = rule.expires?;
            let days = (expires - today).whole_days();
            if days < 0 {
                Some(format!(
                    "rule {:?} expired on {expires}: it no longer matches",
                    rule.id
                ))
            } else if rule.expires_within(today, EXPIRY_WARNING_DAYS) {
                Some(format!(
                    "rule {:?} expires on {expires}, in {days} days",
                    rule.id
                ))
            } else {
                None
            }
        })
        .collect()
}

fn subject<'a>(
    v: &'a Verdict,
    caller_role: Option<&'a str>,
    codes: &'a [FindingCode],
) -> RuleSubject<'a> {
    RuleSubject {
        grantee: v.grantee.as_deref(),
        key: v.key.as_deref(),
        key_arn: v.key_arn.as_deref(),
        key_alias: v.key_alias.as_deref(),
        account: v.account.as_deref(),
        region: v.region.as_deref(),
        origin: Some(v.origin),
        service: v
            .removed_grant
            .as_ref()
            .and_then(|r| r.service.as_deref())
            .or(v.service.as_deref()),
        operations: &v.operations,
        constraints: v.constraints.as_ref(),
        event_name: Some(v.event_name.as_str()),
        caller: v.actor.arn.as_deref(),
        caller_role,
        findings: codes,
        // As in the watcher: events carry no key tags.
        key_tags: None,
    }
}

/// Rules with `key_tags`: only the weekly report (and `explain`) read key
/// tags, so such a rule never matches in the watcher and never suppresses
/// an alert.
pub fn key_tags_warnings(rules: &RuleSet) -> Vec<String> {
    rules
        .rules
        .iter()
        .filter(|r| r.needs_key_tags())
        .map(|r| {
            format!(
                "rule {:?} uses key_tags: it applies in the weekly report and explain only; the watcher reads no tags, so it never suppresses or re-rates an alert",
                r.id
            )
        })
        .collect()
}

/// For each rule, the verdicts it matches (by every matcher, expiry aside),
/// and the rules that match nothing.
pub fn matches_report(rules: &RuleSet, verdicts: &[(Verdict, Option<String>)]) -> Vec<String> {
    let mut matched: BTreeMap<&str, Vec<&Verdict>> = BTreeMap::new();
    for (v, role) in verdicts {
        let codes: Vec<FindingCode> = v.findings.iter().map(|f| f.code).collect();
        let s = subject(v, role.as_deref(), &codes);
        for rule in rules.rules.iter().filter(|r: &&Rule| r.matches(&s)) {
            matched.entry(rule.id.as_str()).or_default().push(v);
        }
    }
    let mut out = Vec::new();
    for rule in &rules.rules {
        match matched.get(rule.id.as_str()) {
            None => out.push(format!("rule {:?} matches nothing in the input", rule.id)),
            Some(vs) => {
                out.push(format!("rule {:?} matches {} verdicts:", rule.id, vs.len()));
                for v in vs {
                    out.push(format!(
                        "  {} {} {} {} {}",
                        v.event_id,
                        v.event_name,
                        v.severity,
                        v.grantee.as_deref().unwrap_or("-"),
                        v.findings
                            .iter()
                            .map(|f| f.code.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn rules() -> RuleSet {
        RuleSet::parse_toml(
            r#"
[[rule]]
id = "prod-keys"
reason = "prod keys' grants are reviewed in the report"
key_tags = { env = "prod*" }

[[rule]]
id = "soon"
reason = "migration"
expires = 2026-12-12
account = "111122223333"

[[rule]]
id = "later"
reason = "r"
expires = 2026-12-13
account = "111122223333"

[[rule]]
id = "gone"
reason = "r"
expires = 2026-11-01
account = "111122223333"
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_key_tags_rule_is_said_to_never_act_in_the_watcher() {
        let warnings = key_tags_warnings(&rules());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("\"prod-keys\""));
        assert!(warnings[0].contains("never suppresses or re-rates an alert"));
    }

    #[test]
    fn expiry_warnings_name_expired_rules_and_those_within_14_days() {
        let warnings = expiry_warnings(&rules(), date!(2026 - 11 - 28));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("\"soon\"") && warnings[0].contains("in 14 days"));
        assert!(warnings[1].contains("\"gone\"") && warnings[1].contains("no longer matches"));
    }

    #[test]
    fn a_key_tags_rule_matches_no_event_verdict() {
        let text = r#"{"eventName": "CreateGrant", "eventSource": "kms.amazonaws.com", "eventID": "e1",
            "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
            "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.22.0",
            "requestParameters": {"keyId": "alias/prod", "granteePrincipal": "arn:aws:iam::111122223333:role/app",
                                  "operations": ["Decrypt"]},
            "responseElements": {"grantId": "g1"}}"#;
        let event = match parse_document(text.as_bytes()).unwrap().remove(0) {
            Ok(Parsed::Grant(e)) => *e,
            other => panic!("{other:?}"),
        };
        let verdict = judge_event(&event, None, &Policy::new(date!(2026 - 11 - 28)));
        let report = matches_report(&rules(), &[(verdict, None)]);
        assert!(report.contains(&"rule \"prod-keys\" matches nothing in the input".to_string()));
        assert!(report.contains(&"rule \"soon\" matches 1 verdicts:".to_string()));
    }
}
