//! Words for people, shared by every renderer (Slack, SNS, terminal): a
//! short description of a principal, of operations and constraints, the
//! headline and one-line summary of a verdict.
//!
//! Everything here returns *plain, unescaped* text that may contain event
//! data: each renderer escapes it its own way (see [`super::mrkdwn`] and
//! [`super::plain`]).

use crate::grant::{Constraints, Operation};
use crate::verdict::{FindingCode, Origin, Verdict};

/// A principal (ARN, service principal, account id, unique id) in a few
/// words:
/// - `arn:aws:sts::111:assumed-role/Admin/alice` → `alice (Admin role, 111)`
/// - `arn:aws:sts::111:assumed-role/AWSReservedSSO_AdminAccess_0a1b/alice`
///   → `alice (AdminAccess SSO role, 111)`
/// - `arn:aws:iam::444455556666:root` → `444455556666 root`
/// - `arn:aws:iam::111:user/ops/bob` → `bob (IAM user, 111)`
/// - `arn:aws:iam::111:role/service-role/Name` → `Name role (111)`
/// - `111:aws:ec2-infrastructure:i-0abc` → `EC2 infrastructure i-0abc (111)`
/// - service principals, `AWS Internal`, unique ids: as given.
pub fn principal(p: &str) -> String {
    let p = p.trim();
    if let Some(arn) = Arn::parse(p) {
        let account = arn.account;
        let (kind, rest) = arn.resource.split_once('/').unwrap_or((arn.resource, ""));
        match (arn.service, kind) {
            ("iam", "root") | ("sts", "root") => return format!("{account} root"),
            ("sts", "assumed-role") => {
                if let Some((role, session)) = rest.split_once('/') {
                    return format!("{session} ({}, {account})", role_label(role));
                }
            }
            ("iam", "user") if !rest.is_empty() => {
                return format!("{} (IAM user, {account})", last_segment(rest));
            }
            ("iam", "role") if !rest.is_empty() => {
                return format!("{} ({account})", role_label(last_segment(rest)));
            }
            ("sts", "federated-user") if !rest.is_empty() => {
                return format!("{rest} (federated user, {account})");
            }
            _ => {}
        }
        return p.to_string();
    }
    // `<account>:aws:ec2-infrastructure:<instance>` (EBS/EC2 grants).
    let parts: Vec<&str> = p.split(':').collect();
    if let [account, "aws", "ec2-infrastructure", instance] = parts.as_slice() {
        return format!("EC2 infrastructure {instance} ({account})");
    }
    if is_account_id(p) {
        return format!("account {p}");
    }
    p.to_string()
}

/// The shortest useful name of a principal, for subjects and counts:
/// the session or user name, the role name, `<account> root`, or the
/// principal as given.
pub fn principal_name(p: &str) -> String {
    let p = p.trim();
    if let Some(arn) = Arn::parse(p) {
        let (kind, rest) = arn.resource.split_once('/').unwrap_or((arn.resource, ""));
        match (arn.service, kind) {
            ("iam", "root") | ("sts", "root") => return format!("{} root", arn.account),
            ("sts", "assumed-role") => {
                if let Some((_, session)) = rest.split_once('/') {
                    return session.to_string();
                }
            }
            ("iam", "user") | ("iam", "role") | ("sts", "federated-user") if !rest.is_empty() => {
                return last_segment(rest).to_string();
            }
            _ => {}
        }
        return p.to_string();
    }
    principal(p)
}

/// Who made the call, in a few words (see [`principal`]): the actor's ARN,
/// else the service that invoked the call, else "unknown caller".
pub fn actor(v: &Verdict) -> String {
    match (&v.actor.arn, &v.actor.invoked_by) {
        (Some(arn), _) if !arn.trim().is_empty() => principal(arn),
        (_, Some(by)) if !by.trim().is_empty() => by.clone(),
        _ => "unknown caller".to_string(),
    }
}

/// The actor's shortest name (see [`principal_name`]).
pub fn actor_name(v: &Verdict) -> String {
    match (&v.actor.arn, &v.actor.invoked_by) {
        (Some(arn), _) if !arn.trim().is_empty() => principal_name(arn),
        (_, Some(by)) if !by.trim().is_empty() => by.clone(),
        _ => "unknown caller".to_string(),
    }
}

/// Operations, comma-separated, in the order given; "no operations" when
/// the list is empty.
pub fn operations(ops: &[Operation]) -> String {
    if ops.is_empty() {
        return "no operations".to_string();
    }
    ops.iter()
        .map(Operation::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Operations for a subject line: the first `max` named, then "+N".
pub fn operations_short(ops: &[Operation], max: usize) -> String {
    if ops.is_empty() {
        return "nothing".to_string();
    }
    let shown: Vec<&str> = ops.iter().take(max.max(1)).map(Operation::as_str).collect();
    let rest = ops.len() - shown.len();
    if rest == 0 {
        shown.join(", ")
    } else {
        format!("{} +{rest}", shown.join(", "))
    }
}

/// One constraint of a grant, for renderers that lay them out themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintItem<'a> {
    /// `EncryptionContextEquals`, `EncryptionContextSubset` or `SourceArn`.
    pub kind: &'static str,
    /// The encryption-context key (`None` for `SourceArn`).
    pub key: Option<&'a str>,
    pub value: &'a str,
}

/// Every constraint, Equals first, then Subset, then SourceArn.
pub fn constraint_items(c: &Constraints) -> Vec<ConstraintItem<'_>> {
    let mut items = Vec::new();
    for (kind, map) in [
        ("EncryptionContextEquals", &c.encryption_context_equals),
        ("EncryptionContextSubset", &c.encryption_context_subset),
    ] {
        for (k, v) in map.iter().flatten() {
            items.push(ConstraintItem {
                kind,
                key: Some(k),
                value: v,
            });
        }
    }
    if let Some(arn) = c.source_arn.as_deref().filter(|a| !a.is_empty()) {
        items.push(ConstraintItem {
            kind: "SourceArn",
            key: None,
            value: arn,
        });
    }
    items
}

/// A sentence for when a grant has no constraint item: "none" (none
/// given) or "none (an empty constraint map)". `None` when there are items.
pub fn constraints_absent(c: Option<&Constraints>) -> Option<&'static str> {
    match c {
        None => Some("none"),
        Some(c) if constraint_items(c).is_empty() => Some("none (an empty constraint map)"),
        Some(_) => None,
    }
}

/// Constraints as plain text lines, e.g.
/// `EncryptionContextEquals aws:lambda:FunctionArn = arn:...`.
pub fn constraints(c: Option<&Constraints>) -> Vec<String> {
    if let Some(absent) = constraints_absent(c) {
        return vec![absent.to_string()];
    }
    c.map(|c| {
        constraint_items(c)
            .into_iter()
            .map(|item| match item.key {
                Some(key) => format!("{} {key} = {}", item.kind, item.value),
                None => format!("{} = {}", item.kind, item.value),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The key in a few words: its alias when known, else the key id from its
/// ARN, else the key as the event gave it.
pub fn key_label(v: &Verdict) -> String {
    if let Some(alias) = v.key_alias.as_deref().filter(|a| !a.trim().is_empty()) {
        return alias.to_string();
    }
    let key = v.key_arn.as_deref().or(v.key.as_deref()).unwrap_or("");
    if let Some(arn) = Arn::parse(key) {
        if let Some(id) = arn.resource.strip_prefix("key/") {
            return format!("key {id}");
        }
        return arn.resource.to_string();
    }
    if key.trim().is_empty() {
        "an unknown key".to_string()
    } else {
        format!("key {key}")
    }
}

/// [`key_label`], with a bare key id cut to its first 8 characters
/// (`key 1234abcd…`): enough to recognise it in a subject line.
pub fn key_label_short(v: &Verdict) -> String {
    let label = key_label(v);
    match label.strip_prefix("key ") {
        Some(id) if id.chars().count() > 12 => {
            format!("key {}…", id.chars().take(8).collect::<String>())
        }
        _ => label,
    }
}

/// The key to put in a CLI command: its ARN when known, else as given.
pub fn key_for_command(v: &Verdict) -> Option<&str> {
    v.key_arn
        .as_deref()
        .or(v.key.as_deref())
        .filter(|k| !k.trim().is_empty())
}

/// The region of the event, else of the key's ARN.
pub fn region(v: &Verdict) -> Option<&str> {
    v.region
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            v.key_arn
                .as_deref()
                .and_then(Arn::parse)
                .map(|a| a.region)
                .filter(|r| !r.is_empty())
        })
}

fn is_failed(v: &Verdict) -> bool {
    v.error_code.as_deref().is_some_and(|c| !c.is_empty())
}

fn is_dry_run(v: &Verdict) -> bool {
    v.dry_run
        || v.error_code.as_deref() == Some("DryRunOperationException")
        || v.findings.iter().any(|f| f.code == FindingCode::DryRun)
}

fn is_denied(v: &Verdict) -> bool {
    v.error_code
        .as_deref()
        .is_some_and(|c| c.starts_with("AccessDenied") || c == "UnauthorizedOperation")
        || v.findings
            .iter()
            .any(|f| f.code == FindingCode::AccessDenied)
}

fn has(v: &Verdict, code: FindingCode) -> bool {
    v.findings.iter().any(|f| f.code == code)
}

/// True for RetireGrant / RevokeGrant verdicts.
pub fn is_removal(v: &Verdict) -> bool {
    matches!(v.event_name.as_str(), "RetireGrant" | "RevokeGrant")
}

/// What happened, in a few words of our own (no event data except the
/// classifier's service name): "Manual KMS grant", "KMS grant by lambda",
/// "Service grant removed by a person", "Grant revoked", "Denied
/// CreateGrant attempt", "Dry-run CreateGrant", ...
pub fn headline(v: &Verdict) -> String {
    let call = match v.event_name.as_str() {
        name @ ("CreateGrant" | "RetireGrant" | "RevokeGrant") => name,
        _ => "grant call",
    };
    if is_dry_run(v) {
        return format!("Dry-run {call}");
    }
    if is_denied(v) {
        return format!("Denied {call} attempt");
    }
    if is_failed(v) {
        return format!("Failed {call}");
    }
    match v.event_name.as_str() {
        "CreateGrant" => match v.origin {
            Origin::Manual => "Manual KMS grant".to_string(),
            Origin::Service => match v.service.as_deref().filter(|s| is_plain_word(s)) {
                Some(service) => format!("KMS grant by {service}"),
                None => "KMS grant by an AWS service".to_string(),
            },
            Origin::Unknown => "KMS grant of unknown origin".to_string(),
        },
        "RetireGrant" | "RevokeGrant" => {
            let removed_service_grant = has(v, FindingCode::ServiceGrantRemoved)
                || (v.origin != Origin::Service
                    && v.removed_grant
                        .as_ref()
                        .is_some_and(|r| r.origin == Origin::Service));
            if removed_service_grant {
                "Service grant removed by a person".to_string()
            } else if has(v, FindingCode::UnknownGrantRemoved) {
                format!("Unknown grant {}", removal_verb(v))
            } else {
                format!("Grant {}", removal_verb(v))
            }
        }
        _ => "KMS grant event".to_string(),
    }
}

/// "retired" or "revoked".
pub fn removal_verb(v: &Verdict) -> &'static str {
    if v.event_name == "RevokeGrant" {
        "revoked"
    } else {
        "retired"
    }
}

/// One line saying what happened, in plain (unescaped) text; the SNS
/// subject and Slack's notification text are made from it:
/// - `Manual KMS grant by alice: 444455556666 root may Decrypt with alias/payments`
/// - `Service grant removed by a person: alice revoked a lambda grant on alias/app`
/// - `Denied CreateGrant attempt by bob on key 1234abcd-...`
pub fn summary(v: &Verdict) -> String {
    summary_naming(v, 2, KeyForm::Label)
}

/// How a summary names the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// [`key_label`]: the alias, else the key id.
    Label,
    /// [`key_label_short`]: the alias, else the start of the key id.
    Short,
    /// Not at all (for a CreateGrant summary that must be short).
    Omit,
}

/// [`summary`], naming at most `max_ops` operations (the rest as "+N")
/// and the key as `key_form` says: subjects shorten it this way to fit.
pub fn summary_naming(v: &Verdict, max_ops: usize, key_form: KeyForm) -> String {
    let head = headline(v);
    let who = actor_name(v);
    let key = match key_form {
        KeyForm::Label | KeyForm::Omit => key_label(v),
        KeyForm::Short => key_label_short(v),
    };
    if is_removal(v) {
        let whose = v
            .removed_grant
            .as_ref()
            .and_then(|r| r.service.as_deref())
            .or(v.service.as_deref().filter(|_| v.origin == Origin::Service))
            .filter(|s| is_plain_word(s))
            .map(|s| format!("a {s} grant"))
            .unwrap_or_else(|| "a grant".to_string());
        return format!("{head}: {who} {} {whose} on {key}", removal_verb(v));
    }
    if is_failed(v) || is_dry_run(v) {
        return format!("{head} by {who} on {key}");
    }
    let grantee = v
        .grantee
        .as_deref()
        .filter(|g| !g.trim().is_empty())
        .map(principal_name)
        .unwrap_or_else(|| "an unknown grantee".to_string());
    let ops = operations_short(&v.operations, max_ops);
    if key_form == KeyForm::Omit {
        return format!("{head} by {who}: {grantee} may {ops}");
    }
    format!("{head} by {who}: {grantee} may {ops} with {key}")
}

/// What a finding code means and why it matters, in a sentence: the
/// general explanation next to a finding's specific message (e-mail body,
/// docs).
pub fn finding_explanation(code: FindingCode) -> &'static str {
    // Matched on the stable string form, so a code added to the contract
    // later gets the generic sentence instead of breaking this match.
    match code.as_str() {
        "manual-grant" => "A person or workload created this grant directly. A grant opens access that no key policy or IAM policy shows: confirm it is intended.",
        "cross-account-grantee" => "The grantee belongs to another AWS account, which can now use this key for the granted operations.",
        "cross-account-caller" => "The call came from an account other than the key's.",
        "account-root-grantee" => "The grantee is an account root: every principal that account's IAM policies allow can use the key.",
        "re-delegation" => "The grant includes CreateGrant: the grantee can pass access on through further grants, with no policy change.",
        "unconstrained" => "Data operations are allowed without an encryption-context constraint: the grantee can use the key on any data.",
        "empty-constraint" => "The grant carries an empty constraint map: it looks constrained but restricts nothing.",
        "constraint-not-applicable" => "The constraint cannot apply to this key or these operations (asymmetric and HMAC keys, DescribeKey, RetireGrant), so it restricts nothing.",
        "no-retiring-principal" => "No retiring principal: only the grantee (with RetireGrant) or the key's account can remove the grant, so it tends to outlive its purpose.",
        "unique-id-grantee" => "The grantee is a unique id (AROA.../AIDA...) rather than an ARN: it hides who the grantee is and does not follow a re-created role or user.",
        "dry-run" => "A dry run: nothing was created, but someone checked whether they could create this grant.",
        "access-denied" => "The call was denied: someone tried to change grants on this key without permission.",
        "failed-call" => "The call failed and no grant changed; repeated failures can be probing.",
        "unknown-operation" => "The grant names an operation grantwatch does not know: review what it allows.",
        "service-context-by-person" => "A person used an encryption-context key in a service's namespace (aws:<service>:...), which makes a hand-made grant look like a service's.",
        "service-grant-removed" => "A person removed a grant an AWS service created for a resource: that resource cannot use the key until the grant is re-created.",
        "grant-removed" => "A person removed a grant: whoever relied on it has lost access.",
        "unknown-grant-removed" => "The ledger never saw this grant: its origin and purpose are unknown.",
        "duplicate-grant" => "Another grant on the same key gives the same grantee the same operations and constraints.",
        "grant-count-high" => "The key is close to its quota of grants (50,000 per key).",
        "unknown-origin" => "The signals are not enough to tell whether an AWS service or a person made this grant: check who the caller is.",
        _ => "See the finding's message.",
    }
}

/// `lambda`, `secretsmanager`, `ec2-infrastructure`: lowercase letters,
/// digits and dashes only (a classifier's service name, not free text).
fn is_plain_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path)
}

/// `Admin` → `Admin role`; IAM Identity Center's
/// `AWSReservedSSO_AdminAccess_0a1b2c3d` → `AdminAccess SSO role`.
fn role_label(role: &str) -> String {
    if let Some(rest) = role.strip_prefix("AWSReservedSSO_") {
        let set = rest.rsplit_once('_').map(|(set, _)| set).unwrap_or(rest);
        return format!("{set} SSO role");
    }
    format!("{role} role")
}

/// The parts of an ARN we read: `arn:<partition>:<service>:<region>:<account>:<resource>`.
struct Arn<'a> {
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

impl<'a> Arn<'a> {
    fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let _partition = parts.next()?;
        let service = parts.next()?;
        let region = parts.next()?;
        let account = parts.next()?;
        let resource = parts.next()?;
        Some(Arn {
            service,
            region,
            account,
            resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::{manual_grant, removal_of_lambda_grant};
    use crate::verdict::{Finding, Severity};
    use std::collections::BTreeMap;

    #[test]
    fn principals_in_a_few_words() {
        let cases = [
            ("arn:aws:sts::111122223333:assumed-role/Admin/alice", "alice (Admin role, 111122223333)"),
            (
                "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_AdminAccess_0a1b2c3d/alice@example.com",
                "alice@example.com (AdminAccess SSO role, 111122223333)",
            ),
            ("arn:aws:iam::444455556666:root", "444455556666 root"),
            ("arn:aws:iam::111122223333:user/ops/bob", "bob (IAM user, 111122223333)"),
            (
                "arn:aws:iam::111122223333:role/aws-service-role/lambda.amazonaws.com/AWSServiceRoleForLambda",
                "AWSServiceRoleForLambda role (111122223333)",
            ),
            ("arn:aws-cn:iam::111122223333:role/App", "App role (111122223333)"),
            ("arn:aws:sts::111122223333:federated-user/carol", "carol (federated user, 111122223333)"),
            ("lambda.eu-west-1.amazonaws.com", "lambda.eu-west-1.amazonaws.com"),
            ("AWS Internal", "AWS Internal"),
            ("AROAEXAMPLEID", "AROAEXAMPLEID"),
            ("111122223333", "account 111122223333"),
            ("111122223333:aws:ec2-infrastructure:i-0abc", "EC2 infrastructure i-0abc (111122223333)"),
            ("arn:aws:kms:eu-west-1:111122223333:key/k1", "arn:aws:kms:eu-west-1:111122223333:key/k1"),
            ("arn:aws:sts::111:assumed-role/NoSession", "arn:aws:sts::111:assumed-role/NoSession"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(principal(input), expected, "{input}");
        }
    }

    #[test]
    fn principal_names_are_short() {
        assert_eq!(
            principal_name("arn:aws:sts::111:assumed-role/Admin/alice"),
            "alice"
        );
        assert_eq!(
            principal_name("arn:aws:iam::444455556666:root"),
            "444455556666 root"
        );
        assert_eq!(principal_name("arn:aws:iam::111:user/bob"), "bob");
        assert_eq!(principal_name("arn:aws:iam::111:role/x/App"), "App");
        assert_eq!(principal_name("rds.amazonaws.com"), "rds.amazonaws.com");
    }

    #[test]
    fn operations_and_constraints_in_words() {
        let ops = vec![
            Operation::Decrypt,
            Operation::GenerateDataKey,
            Operation::Unknown("FutureOp".into()),
        ];
        assert_eq!(operations(&ops), "Decrypt, GenerateDataKey, FutureOp");
        assert_eq!(operations_short(&ops, 2), "Decrypt, GenerateDataKey +1");
        assert_eq!(operations(&[]), "no operations");

        assert_eq!(constraints(None), vec!["none"]);
        assert_eq!(
            constraints(Some(&Constraints::default())),
            vec!["none (an empty constraint map)"]
        );
        let c = Constraints {
            encryption_context_equals: Some(BTreeMap::from([(
                "aws:lambda:FunctionArn".to_string(),
                "arn:aws:lambda:eu-west-1:111:function:f".to_string(),
            )])),
            encryption_context_subset: Some(BTreeMap::from([("team".into(), "pay".into())])),
            source_arn: Some("arn:aws:s3:::b".into()),
        };
        assert_eq!(
            constraints(Some(&c)),
            vec![
                "EncryptionContextEquals aws:lambda:FunctionArn = arn:aws:lambda:eu-west-1:111:function:f",
                "EncryptionContextSubset team = pay",
                "SourceArn = arn:aws:s3:::b",
            ]
        );
    }

    #[test]
    fn headlines_say_what_happened() {
        let mut v = manual_grant();
        assert_eq!(headline(&v), "Manual KMS grant");
        v.origin = Origin::Service;
        v.service = Some("lambda".into());
        assert_eq!(headline(&v), "KMS grant by lambda");
        v.service = Some("<!here>".into());
        assert_eq!(headline(&v), "KMS grant by an AWS service");
        v.origin = Origin::Unknown;
        assert_eq!(headline(&v), "KMS grant of unknown origin");

        let mut denied = manual_grant();
        denied.error_code = Some("AccessDenied".into());
        assert_eq!(headline(&denied), "Denied CreateGrant attempt");
        let mut dry = manual_grant();
        dry.dry_run = true;
        dry.error_code = Some("DryRunOperationException".into());
        assert_eq!(headline(&dry), "Dry-run CreateGrant");
        let mut failed = manual_grant();
        failed.error_code = Some("ValidationException".into());
        assert_eq!(headline(&failed), "Failed CreateGrant");

        let removal = removal_of_lambda_grant();
        assert_eq!(headline(&removal), "Service grant removed by a person");
        let mut revoked = removal_of_lambda_grant();
        revoked.removed_grant = None;
        revoked.findings = vec![Finding {
            code: FindingCode::GrantRemoved,
            severity: Severity::Medium,
            message: "a person revoked a grant".into(),
        }];
        assert_eq!(headline(&revoked), "Grant revoked");
        revoked.event_name = "RetireGrant".into();
        assert_eq!(headline(&revoked), "Grant retired");
        revoked.findings[0].code = FindingCode::UnknownGrantRemoved;
        assert_eq!(headline(&revoked), "Unknown grant retired");
    }

    #[test]
    fn summaries_read_as_one_sentence() {
        assert_eq!(
            summary(&manual_grant()),
            "Manual KMS grant by alice: 444455556666 root may Decrypt, GenerateDataKey +1 with alias/payments"
        );
        assert_eq!(
            summary(&removal_of_lambda_grant()),
            "Service grant removed by a person: alice revoked a lambda grant on key 1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        let mut denied = manual_grant();
        denied.error_code = Some("AccessDenied".into());
        assert_eq!(
            summary(&denied),
            "Denied CreateGrant attempt by alice on alias/payments"
        );
    }

    #[test]
    fn key_label_and_region_fall_back() {
        let mut v = manual_grant();
        assert_eq!(key_label(&v), "alias/payments");
        v.key_alias = None;
        assert_eq!(key_label(&v), "key 1234abcd-12ab-34cd-56ef-1234567890ab");
        v.key_arn = None;
        v.key = Some("1234abcd".into());
        assert_eq!(key_label(&v), "key 1234abcd");
        v.key = None;
        assert_eq!(key_label(&v), "an unknown key");

        let mut v = manual_grant();
        v.region = None;
        assert_eq!(region(&v), Some("eu-west-1"));
    }
}
