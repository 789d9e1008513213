//! Suppression and re-rating rules (TOML).
//!
//! ```toml
//! [[rule]]
//! id = "backup-role"
//! reason = "The nightly backup job's role gets a Decrypt grant per run"
//! expires = 2026-12-31                # optional; afterwards the rule no longer matches
//! grantee = "arn:aws:sts::*:assumed-role/backup-*/*"
//! operations = ["Decrypt", "RetireGrant"]   # the grant's operations must be a subset
//!
//! [[rule]]
//! id = "sandbox-low"
//! reason = "Sandbox grants are reviewed weekly, not paged"
//! account = "444455556666"
//! severity = "low"                    # re-rate instead of suppressing
//! ```
//!
//! Matchers (all optional, all given must match; at least one required):
//! `grantee`, `key`, `account`, `region`, `caller` (globs with `*` and `?`;
//! `caller` matches the actor's ARN or its role, e.g. the IaC pipeline's),
//! `origin`, `service`, `operations` (subset), `constraint_keys` (each key
//! required, case-insensitive), `findings` (any of these finding codes),
//! `events` (event names), `key_tags` (an inline table of tag key → value
//! glob, e.g. `key_tags = { env = "prod*" }`; every listed tag must be on
//! the key and match). The first matching rule applies.
//!
//! `key_tags` is known only to the weekly report (and `explain`), which
//! read each key's tags: the watcher does not read tags, so a rule with
//! `key_tags` never matches there and never suppresses an alert.
//!
//! Guards: a rule matches a removal (`RetireGrant`/`RevokeGrant`) only when
//! its `events` names it (a rule written for a service's grants must not
//! silence "a person removed that service's grant"). A `critical` finding,
//! or a grantee outside the trust zone, is never suppressed or re-rated
//! below `high` unless the rule sets `allow_critical = true`.

use crate::grant::{Constraints, Operation};
use crate::principal;
use crate::verdict::{FindingCode, Origin, Severity};
use std::collections::BTreeMap;
use std::str::FromStr;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Report the event, never alert.
    Suppress,
    /// Give the event this severity instead of its findings' worst.
    Rerate(Severity),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matchers {
    pub grantee: Option<String>,
    pub key: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub origin: Option<Origin>,
    pub service: Option<String>,
    pub operations: Option<Vec<Operation>>,
    pub constraint_keys: Option<Vec<String>>,
    /// Glob on the caller's ARN (or its session issuer's role ARN).
    pub caller: Option<String>,
    /// Any of these finding codes.
    pub findings: Option<Vec<FindingCode>>,
    /// Event names (`CreateGrant`, `RetireGrant`, `RevokeGrant`). Required
    /// for a rule to match a removal.
    pub events: Option<Vec<String>>,
    /// Tag key → value glob; all must match. Only the report knows tags.
    pub key_tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub reason: String,
    pub expires: Option<time::Date>,
    pub action: RuleAction,
    pub matchers: Matchers,
    /// May suppress or re-rate below `high` a critical finding or a grantee
    /// outside the trust zone.
    pub allow_critical: bool,
}

/// A parsed rules file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

/// The rules in force in a running process, replaced when the rules file
/// changes (the Lambdas reload it: `grantwatch_aws::rules_source`). Clones
/// share one slot: the handler that reloads and the judgement that reads
/// see the same rules.
#[derive(Debug, Clone, Default)]
pub struct LiveRules(std::sync::Arc<std::sync::RwLock<std::sync::Arc<RuleSet>>>);

impl LiveRules {
    pub fn new(rules: RuleSet) -> LiveRules {
        LiveRules(std::sync::Arc::new(std::sync::RwLock::new(
            std::sync::Arc::new(rules),
        )))
    }

    /// The rules in force now.
    pub fn get(&self) -> std::sync::Arc<RuleSet> {
        // A writer that panicked left whole rules behind (a swap of one
        // pointer): they are still the last good ones.
        match self.0.read() {
            Ok(rules) => rules.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put `rules` in force from the next judgement on.
    pub fn set(&self, rules: std::sync::Arc<RuleSet>) {
        match self.0.write() {
            Ok(mut slot) => *slot = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
    }
}

/// What a rule is matched against: the grant (or removed grant) of one
/// event or standing grant.
#[derive(Debug, Clone, Copy)]
pub struct RuleSubject<'a> {
    pub grantee: Option<&'a str>,
    /// The key as given (id, ARN, alias).
    pub key: Option<&'a str>,
    pub key_arn: Option<&'a str>,
    pub key_alias: Option<&'a str>,
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    /// `None` for the key itself (its posture), which has no origin.
    pub origin: Option<Origin>,
    pub service: Option<&'a str>,
    pub operations: &'a [Operation],
    pub constraints: Option<&'a Constraints>,
    /// The event's name; `None` for a standing grant.
    pub event_name: Option<&'a str>,
    /// The caller's ARN and its session issuer's (role) ARN, when known.
    pub caller: Option<&'a str>,
    pub caller_role: Option<&'a str>,
    /// The codes of the subject's findings.
    pub findings: &'a [FindingCode],
    /// The key's tags: `None` where they are not read (the watcher).
    pub key_tags: Option<&'a BTreeMap<String, String>>,
}

/// The outcome of evaluating the rules for one subject.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleMatch<'r> {
    pub rule: Option<&'r Rule>,
    /// Why a rule that would have matched did not apply (expired).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("rules file is not valid TOML: {0}")]
    Syntax(String),
    #[error("rules file: {0}")]
    Structure(String),
    #[error("rule {rule}: {field}: {problem}")]
    Field {
        rule: String,
        field: String,
        problem: String,
    },
}

const FIELDS: &[&str] = &[
    "id",
    "reason",
    "expires",
    "action",
    "severity",
    "grantee",
    "key",
    "account",
    "region",
    "origin",
    "service",
    "operations",
    "constraint_keys",
    "caller",
    "findings",
    "events",
    "allow_critical",
    "key_tags",
];

impl RuleSet {
    /// Parse a TOML rules file. Errors name the rule and the field.
    pub fn parse_toml(text: &str) -> Result<RuleSet, RulesError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| RulesError::Syntax(e.to_string()))?;
        if let Some(other) = table.keys().find(|k| k.as_str() != "rule") {
            return Err(RulesError::Structure(format!(
                "unknown top-level key {other:?}: rules are [[rule]] tables"
            )));
        }
        let entries = match table.get("rule") {
            None => return Ok(RuleSet::default()),
            Some(toml::Value::Array(entries)) => entries,
            Some(_) => {
                return Err(RulesError::Structure(
                    "`rule` must be a list of [[rule]] tables".into(),
                ))
            }
        };
        let mut rules: Vec<Rule> = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let rule = parse_rule(index, entry)?;
            if rules.iter().any(|r| r.id == rule.id) {
                return Err(RulesError::Field {
                    rule: rule.id,
                    field: "id".into(),
                    problem: "used by an earlier rule; ids must be unique".into(),
                });
            }
            rules.push(rule);
        }
        Ok(RuleSet { rules })
    }

    /// The first non-expired rule matching `subject`, and notes about
    /// expired rules that would have matched.
    pub fn evaluate(&self, subject: &RuleSubject<'_>, today: time::Date) -> RuleMatch<'_> {
        let mut out = RuleMatch::default();
        for rule in &self.rules {
            if !rule.matches(subject) {
                continue;
            }
            match rule.expires {
                Some(expires) if expires < today => out.notes.push(format!(
                    "rule {} expired on {} and was not applied ({})",
                    rule.id,
                    format_date(expires),
                    rule.reason
                )),
                _ => {
                    out.rule = Some(rule);
                    break;
                }
            }
        }
        out
    }
}

fn parse_rule(index: usize, entry: &toml::Value) -> Result<Rule, RulesError> {
    let unnamed = format!("#{}", index + 1);
    let table = entry.as_table().ok_or_else(|| RulesError::Field {
        rule: unnamed.clone(),
        field: "rule".into(),
        problem: "must be a table ([[rule]])".into(),
    })?;
    let err = |rule: &str, field: &str, problem: String| RulesError::Field {
        rule: rule.to_string(),
        field: field.to_string(),
        problem,
    };
    let id = match table.get("id") {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(toml::Value::String(_)) => return Err(err(&unnamed, "id", "is empty".into())),
        Some(_) => return Err(err(&unnamed, "id", "must be a string".into())),
        None => return Err(err(&unnamed, "id", "is missing".into())),
    };
    let name = format!("{id:?}");
    if let Some(field) = table.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(err(
            &name,
            field,
            format!("unknown field; expected one of {}", FIELDS.join(", ")),
        ));
    }
    let string = |field: &str| -> Result<Option<String>, RulesError> {
        match table.get(field) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(err(&name, field, "must be a string".into())),
        }
    };
    let list = |field: &str| -> Result<Option<Vec<String>>, RulesError> {
        match table.get(field) {
            None => Ok(None),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| err(&name, field, "must be a list of strings".into()))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(err(&name, field, "must be a list of strings".into())),
        }
    };

    let reason = string("reason")?
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| {
            err(
                &name,
                "reason",
                "is missing: say why these grants are fine".into(),
            )
        })?;
    let expires = match table.get("expires") {
        None => None,
        Some(toml::Value::Datetime(dt)) => {
            Some(parse_date(&dt.to_string()).map_err(|p| err(&name, "expires", p))?)
        }
        Some(toml::Value::String(s)) => Some(parse_date(s).map_err(|p| err(&name, "expires", p))?),
        Some(_) => return Err(err(&name, "expires", "must be a date (YYYY-MM-DD)".into())),
    };
    let severity = string("severity")?
        .map(|s| Severity::from_str(&s).map_err(|p| err(&name, "severity", p)))
        .transpose()?;
    let action = match (string("action")?.as_deref(), severity) {
        (None | Some("suppress"), None) => RuleAction::Suppress,
        (None | Some("rerate"), Some(sev)) => RuleAction::Rerate(sev),
        (Some("rerate"), None) => {
            return Err(err(
                &name,
                "severity",
                "is required when action = \"rerate\"".into(),
            ))
        }
        (Some("suppress"), Some(_)) => {
            return Err(err(
                &name,
                "severity",
                "a suppress rule takes no severity (use action = \"rerate\")".into(),
            ))
        }
        (Some(other), _) => {
            return Err(err(
                &name,
                "action",
                format!("{other:?} is not one of \"suppress\", \"rerate\""),
            ))
        }
    };
    let origin = string("origin")?
        .map(|o| match o.as_str() {
            "service" => Ok(Origin::Service),
            "manual" => Ok(Origin::Manual),
            "unknown" => Ok(Origin::Unknown),
            other => Err(err(
                &name,
                "origin",
                format!("{other:?} is not one of service, manual, unknown"),
            )),
        })
        .transpose()?;
    let operations =
        list("operations")?.map(|ops| ops.iter().map(|o| Operation::parse(o)).collect());
    let matchers = Matchers {
        grantee: string("grantee")?,
        key: string("key")?,
        account: string("account")?,
        region: string("region")?,
        origin,
        service: string("service")?,
        operations,
        constraint_keys: list("constraint_keys")?,
        ..Matchers::default()
    };
    let findings = list("findings")?
        .map(|codes| {
            codes
                .iter()
                .map(|c| {
                    FindingCode::ALL
                        .into_iter()
                        .find(|k| k.as_str() == c.as_str())
                        .ok_or_else(|| {
                            err(&name, "findings", format!("{c:?} is not a finding code"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let events = list("events")?;
    if let Some(bad) = events
        .iter()
        .flatten()
        .find(|e| crate::event::GrantAction::from_event_name(e).is_none())
    {
        return Err(err(
            &name,
            "events",
            format!("{bad:?} is not one of CreateGrant, RetireGrant, RevokeGrant"),
        ));
    }
    let allow_critical = match table.get("allow_critical") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => return Err(err(&name, "allow_critical", "must be true or false".into())),
    };
    let key_tags =
        match table.get("key_tags") {
            None => None,
            Some(toml::Value::Table(tags)) if !tags.is_empty() => Some(
                tags.iter()
                    .map(|(k, v)| match v {
                        toml::Value::String(glob) => Ok((k.clone(), glob.clone())),
                        _ => Err(err(
                            &name,
                            "key_tags",
                            format!("{k:?} must be a string (a glob on the tag's value)"),
                        )),
                    })
                    .collect::<Result<BTreeMap<_, _>, _>>()?,
            ),
            Some(_) => return Err(err(
                &name,
                "key_tags",
                "must be a non-empty table of tag key = \"value glob\", e.g. { env = \"prod*\" }"
                    .into(),
            )),
        };
    let matchers = Matchers {
        caller: string("caller")?,
        findings,
        events,
        key_tags,
        ..matchers
    };
    if matchers == Matchers::default() {
        return Err(err(
            &name,
            "matchers",
            "none given: add grantee, key, account, region, caller, origin, service, operations, constraint_keys, findings, events or key_tags (grantee = \"*\" matches every grant)".into(),
        ));
    }
    Ok(Rule {
        id,
        reason,
        expires,
        action,
        matchers,
        allow_critical,
    })
}

fn parse_date(s: &str) -> Result<time::Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &format).map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

impl Rule {
    /// Every matcher given matches (expiry is checked by the caller).
    pub fn matches(&self, s: &RuleSubject<'_>) -> bool {
        let m = &self.matchers;
        let opt_glob = |pattern: &Option<String>, value: Option<&str>| {
            pattern
                .as_deref()
                .is_none_or(|p| value.is_some_and(|v| glob_match(p, v)))
        };
        // A removal matches only a rule that names it.
        let event_ok = match s.event_name {
            Some(name) => {
                let removal = crate::event::GrantAction::from_event_name(name)
                    .is_some_and(|a| a.is_removal());
                match &m.events {
                    Some(events) => events.iter().any(|e| e == name),
                    None => !removal,
                }
            }
            // A standing grant was created: `events` must allow CreateGrant.
            None => m
                .events
                .as_ref()
                .is_none_or(|events| events.iter().any(|e| e == "CreateGrant")),
        };
        event_ok
            && m.caller.as_deref().is_none_or(|p| {
                [s.caller, s.caller_role]
                    .into_iter()
                    .flatten()
                    .any(|c| glob_match(p, c))
            })
            && m.findings
                .as_ref()
                .is_none_or(|codes| s.findings.iter().any(|f| codes.contains(f)))
            && opt_glob(&m.grantee, s.grantee)
            && m.key.as_deref().is_none_or(|p| key_matches(p, s))
            && opt_glob(&m.account, s.account)
            && opt_glob(&m.region, s.region)
            && m.origin.is_none_or(|o| s.origin == Some(o))
            && opt_glob(&m.service, s.service)
            && m.operations.as_ref().is_none_or(|allowed| {
                !s.operations.is_empty() && s.operations.iter().all(|op| allowed.contains(op))
            })
            && m.constraint_keys.as_ref().is_none_or(|keys| {
                s.constraints
                    .is_some_and(|c| keys.iter().all(|k| c.context_value(k).is_some()))
            })
            && m.key_tags.as_ref().is_none_or(|wanted| {
                s.key_tags.is_some_and(|tags| {
                    wanted
                        .iter()
                        .all(|(k, glob)| tags.get(k).is_some_and(|v| glob_match(glob, v)))
                })
            })
    }

    /// The rule matches only where key tags are read (the report).
    pub fn needs_key_tags(&self) -> bool {
        self.matchers.key_tags.is_some()
    }

    /// The rule expires within `days` days of `today` (on or after today):
    /// `rules check` warns, and the weekly report lists it.
    pub fn expires_within(&self, today: time::Date, days: i64) -> bool {
        self.expires
            .is_some_and(|e| e >= today && e <= today + time::Duration::days(days))
    }
}

/// Rules that expire within this many days are listed by `rules check`
/// and by the weekly report.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

impl RuleSet {
    /// The rules that expire within [`EXPIRY_WARNING_DAYS`] of `today`.
    pub fn expiring_soon(&self, today: time::Date) -> impl Iterator<Item = &Rule> {
        self.rules
            .iter()
            .filter(move |r| r.expires_within(today, EXPIRY_WARNING_DAYS))
    }
}

/// A date as `YYYY-MM-DD`.
pub fn format_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A key pattern matches the key as given, its ARN, its id, or its alias
/// (alias name or alias ARN).
fn key_matches(pattern: &str, s: &RuleSubject<'_>) -> bool {
    let key_id = s.key_arn.or(s.key).and_then(principal::key_id_of);
    let alias = s.key_alias.or(s.key).and_then(principal::alias_name_of);
    let pattern_alias = principal::alias_name_of(pattern);
    [s.key, s.key_arn, key_id, alias]
        .into_iter()
        .flatten()
        .any(|candidate| {
            glob_match(pattern, candidate)
                || pattern_alias.is_some_and(|a| glob_match(a, candidate))
        })
}

/// Glob match: `*` any run of characters (including none), `?` one
/// character; everything else literal. Linear-time (no backtracking blowup).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        // `*` first: a `*` in the pattern facing a `*` in the text is a
        // wildcard (with a backtrack point), not a literal.
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;
    use time::macros::date;

    #[test]
    fn live_rules_are_shared_by_their_clones() {
        let live = LiveRules::default();
        let judge_side = live.clone();
        assert!(judge_side.get().rules.is_empty());
        let reloaded = RuleSet::parse_toml(
            "[[rule]]\nid = \"a\"\nreason = \"r\"\naccount = \"111122223333\"\n",
        )
        .unwrap();
        live.set(std::sync::Arc::new(reloaded.clone()));
        assert_eq!(*judge_side.get(), reloaded);
    }

    #[test]
    fn a_star_in_the_text_is_matched_by_a_star_in_the_pattern() {
        // Found by the fuzzer: `*` was taken as a literal against a `*`.
        assert!(glob_match("a*", "a*b"));
        assert!(glob_match("alias/dr-*", "alias/dr-*x"));
        assert!(glob_match("*", "*"));
        assert!(glob_match("a*b", "a*xb"));
        assert!(!glob_match("a*c", "a*b"));
    }

    fn subject<'a>(ops: &'a [Operation], constraints: Option<&'a Constraints>) -> RuleSubject<'a> {
        RuleSubject {
            grantee: Some("arn:aws:sts::111122223333:assumed-role/backup-role/run-42"),
            key: Some("1234abcd-12ab-34cd-56ef-1234567890ab"),
            key_arn: Some(
                "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
            key_alias: Some("alias/backups"),
            account: Some("111122223333"),
            region: Some("us-east-1"),
            origin: Some(Origin::Manual),
            service: None,
            operations: ops,
            constraints,
            event_name: Some("CreateGrant"),
            caller: Some("arn:aws:sts::111122223333:assumed-role/iac-pipeline/deploy-7"),
            caller_role: Some("arn:aws:iam::111122223333:role/iac-pipeline"),
            findings: &[FindingCode::ManualGrant],
            key_tags: None,
        }
    }

    #[test]
    fn key_tags_match_only_where_tags_are_known_and_every_listed_tag_matches() {
        let rules = RuleSet::parse_toml(
            "[[rule]]\nid = \"prod\"\nreason = \"r\"\nkey_tags = { env = \"prod*\", team = \"pay\" }\n",
        )
        .unwrap();
        let today = date!(2026 - 11 - 28);
        let ops = [Operation::Decrypt];
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let matched = |t: Option<&BTreeMap<String, String>>| {
            rules
                .evaluate(
                    &RuleSubject {
                        key_tags: t,
                        ..subject(&ops, None)
                    },
                    today,
                )
                .rule
                .is_some()
        };
        assert!(matched(Some(&tags(&[
            ("env", "prod-eu"),
            ("team", "pay"),
            ("x", "y")
        ]))));
        assert!(!matched(Some(&tags(&[
            ("env", "staging"),
            ("team", "pay")
        ]))));
        assert!(!matched(Some(&tags(&[("env", "prod")]))), "team missing");
        assert!(
            !matched(Some(&tags(&[("ENV", "prod"), ("team", "pay")]))),
            "tag keys are exact"
        );
        assert!(!matched(Some(&BTreeMap::new())));
        assert!(!matched(None), "the watcher knows no tags: never matches");
        assert!(rules.rules[0].needs_key_tags());
        for bad in [
            "key_tags = \"env\"",
            "key_tags = {}",
            "key_tags = { env = 1 }",
        ] {
            let e = RuleSet::parse_toml(&format!("[[rule]]\nid = \"a\"\nreason = \"r\"\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("key_tags"), "{bad}: {e}");
        }
    }

    #[test]
    fn rules_expiring_within_14_days_are_listed() {
        let rules = RuleSet::parse_toml(
            "[[rule]]\nid = \"soon\"\nreason = \"r\"\nexpires = 2026-12-12\naccount = \"1\"\n\
             [[rule]]\nid = \"later\"\nreason = \"r\"\nexpires = 2026-12-13\naccount = \"1\"\n\
             [[rule]]\nid = \"gone\"\nreason = \"r\"\nexpires = 2026-11-27\naccount = \"1\"\n\
             [[rule]]\nid = \"today\"\nreason = \"r\"\nexpires = 2026-11-28\naccount = \"1\"\n\
             [[rule]]\nid = \"never\"\nreason = \"r\"\naccount = \"1\"\n",
        )
        .unwrap();
        let ids: Vec<&str> = rules
            .expiring_soon(date!(2026 - 11 - 28))
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(ids, ["soon", "today"]);
    }

    #[test]
    fn new_matchers_and_removals() {
        let rules = RuleSet::parse_toml(
            r#"
[[rule]]
id = "iac"
reason = "the pipeline's grants"
caller = "arn:aws:iam::*:role/iac-*"

[[rule]]
id = "by-code"
reason = "r"
findings = ["unconstrained"]

[[rule]]
id = "lambda-removals"
reason = "r"
service = "lambda"
events = ["RetireGrant"]
"#,
        )
        .unwrap();
        let ops = [Operation::Decrypt];
        let today = date!(2026 - 11 - 28);
        let s = subject(&ops, None);
        assert_eq!(
            rules.evaluate(&s, today).rule.map(|r| r.id.as_str()),
            Some("iac")
        );
        let other = RuleSubject {
            caller: Some("arn:aws:iam::111122223333:user/alice"),
            caller_role: None,
            findings: &[FindingCode::Unconstrained],
            ..s
        };
        assert_eq!(
            rules.evaluate(&other, today).rule.map(|r| r.id.as_str()),
            Some("by-code")
        );
        // A removal: only a rule naming the event matches.
        let removal = RuleSubject {
            event_name: Some("RevokeGrant"),
            service: Some("lambda"),
            ..other
        };
        assert!(rules.evaluate(&removal, today).rule.is_none());
        let retire = RuleSubject {
            event_name: Some("RetireGrant"),
            ..removal
        };
        assert_eq!(
            rules.evaluate(&retire, today).rule.map(|r| r.id.as_str()),
            Some("lambda-removals")
        );
        assert!(RuleSet::parse_toml(
            "[[rule]]\nid = \"x\"\nreason = \"r\"\nfindings = [\"nope\"]\n"
        )
        .unwrap_err()
        .to_string()
        .contains("not a finding code"));
        assert!(RuleSet::parse_toml(
            "[[rule]]\nid = \"x\"\nreason = \"r\"\nevents = [\"Decrypt\"]\n"
        )
        .unwrap_err()
        .to_string()
        .contains("events"));
        let crit = RuleSet::parse_toml(
            "[[rule]]\nid = \"x\"\nreason = \"r\"\ngrantee = \"*\"\nallow_critical = true\n",
        )
        .unwrap();
        assert!(crit.rules[0].allow_critical);
    }

    #[test]
    fn globs() {
        assert!(glob_match(
            "arn:aws:sts::*:assumed-role/backup-*/*",
            "arn:aws:sts::1:assumed-role/backup-x/s"
        ));
        assert!(glob_match("us-?ast-1", "us-east-1"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "acd"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("abc", "abcd"));
        // No exponential blowup on adversarial patterns.
        assert!(!glob_match(&"*a".repeat(50), &"a".repeat(40)));
    }

    #[test]
    fn a_rule_matches_on_every_given_matcher() {
        let rules = RuleSet::parse_toml(
            r#"
[[rule]]
id = "backup"
reason = "backup job"
grantee = "arn:aws:sts::*:assumed-role/backup-*/*"
key = "alias/backups"
operations = ["Decrypt", "RetireGrant"]
constraint_keys = ["AWS:Backup:Vault"]
"#,
        )
        .unwrap();
        let ctx = Constraints {
            encryption_context_subset: Some(BTreeMap::from([(
                "aws:backup:vault".to_string(),
                "v".to_string(),
            )])),
            ..Constraints::default()
        };
        let today = date!(2026 - 11 - 28);
        let ok = subject(&[Operation::Decrypt], Some(&ctx));
        assert_eq!(
            rules.evaluate(&ok, today).rule.map(|r| r.id.as_str()),
            Some("backup")
        );
        let too_much = [Operation::Decrypt, Operation::Encrypt];
        assert!(rules
            .evaluate(&subject(&too_much, Some(&ctx)), today)
            .rule
            .is_none());
        assert!(rules
            .evaluate(&subject(&[Operation::Decrypt], None), today)
            .rule
            .is_none());
    }

    #[test]
    fn key_matches_arn_id_and_alias() {
        let today = date!(2026 - 11 - 28);
        for key in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/backups",
            "arn:aws:kms:us-east-1:111122223333:alias/backups",
        ] {
            let rules = RuleSet::parse_toml(&format!(
                "[[rule]]\nid = \"k\"\nreason = \"r\"\nkey = \"{key}\"\n"
            ))
            .unwrap();
            assert!(
                rules
                    .evaluate(&subject(&[Operation::Decrypt], None), today)
                    .rule
                    .is_some(),
                "{key}"
            );
        }
    }

    #[test]
    fn expired_rules_do_not_match_and_say_so() {
        let rules = RuleSet::parse_toml(
            "[[rule]]\nid = \"old\"\nreason = \"migration\"\nexpires = 2026-01-31\naccount = \"111122223333\"\n",
        )
        .unwrap();
        let m = rules.evaluate(&subject(&[Operation::Decrypt], None), date!(2026 - 11 - 28));
        assert!(m.rule.is_none());
        assert_eq!(m.notes.len(), 1);
        assert!(m.notes[0].contains("old") && m.notes[0].contains("2026-01-31"));
        let m = rules.evaluate(&subject(&[Operation::Decrypt], None), date!(2026 - 01 - 31));
        assert!(m.rule.is_some(), "a rule is valid on its expiry date");
    }

    #[test]
    fn rerate_rules() {
        let rules = RuleSet::parse_toml(
            "[[rule]]\nid = \"low\"\nreason = \"sandbox\"\nregion = \"us-*\"\nseverity = \"low\"\n",
        )
        .unwrap();
        assert_eq!(rules.rules[0].action, RuleAction::Rerate(Severity::Low));
    }

    #[test]
    fn errors_name_rule_and_field() {
        let cases = [
            ("[[rule]]\nreason = \"r\"\ngrantee = \"*\"\n", "rule #1: id"),
            ("[[rule]]\nid = \"a\"\ngrantee = \"*\"\n", "rule \"a\": reason"),
            ("[[rule]]\nid = \"a\"\nreason = \"r\"\ngrante = \"*\"\n", "rule \"a\": grante"),
            ("[[rule]]\nid = \"a\"\nreason = \"r\"\ngrantee = \"*\"\nexpires = \"soon\"\n", "rule \"a\": expires"),
            ("[[rule]]\nid = \"a\"\nreason = \"r\"\ngrantee = \"*\"\nseverity = \"huge\"\n", "rule \"a\": severity"),
            ("[[rule]]\nid = \"a\"\nreason = \"r\"\n", "rule \"a\": matchers"),
            ("[[rule]]\nid = \"a\"\nreason = \"r\"\norigin = \"robot\"\n", "rule \"a\": origin"),
            ("[[rule]]\nid = \"a\"\nreason = \"r\"\noperations = \"Decrypt\"\n", "rule \"a\": operations"),
            (
                "[[rule]]\nid = \"a\"\nreason = \"r\"\ngrantee = \"*\"\n[[rule]]\nid = \"a\"\nreason = \"r\"\ngrantee = \"*\"\n",
                "rule a: id",
            ),
            ("rules = 1\n", "unknown top-level key"),
            ("[[rule]\n", "not valid TOML"),
        ];
        for (text, expected) in cases {
            let e = RuleSet::parse_toml(text).unwrap_err().to_string();
            assert!(
                e.contains(expected),
                "{text:?} gave {e:?}, expected {expected:?}"
            );
        }
    }
}
