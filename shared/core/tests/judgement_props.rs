//! Property tests: no input makes the parser or the classifier panic, and
//! every verdict keeps its invariants (severity = worst finding unless a
//! rule re-rated it; alert = not suppressed and at or above the threshold).

use grantwatch_core::event::{parse_document, parse_eventbridge_event, Parsed};
use grantwatch_core::grant::{Constraints, GrantFacts, Operation};
use grantwatch_core::judge::{judge_event, judge_key, judge_standing, Policy, StandingGrant};
use grantwatch_core::origin::{classify_call, classify_grant};
use grantwatch_core::principal::{key_arn_for, Principal};
use grantwatch_core::rules::{glob_match, RuleSet};
use grantwatch_core::trust::TrustZone;
use grantwatch_core::verdict::{FindingCode, Severity};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn today() -> time::Date {
    time::macros::date!(2026 - 11 - 28)
}

fn policy() -> Policy {
    let rules = RuleSet::parse_toml(
        r#"
[[rule]]
id = "some-role"
reason = "props"
grantee = "arn:aws:iam::*:role/a*"
operations = ["Decrypt", "Encrypt"]

[[rule]]
id = "rerate-b"
reason = "props"
key = "alias/b*"
severity = "low"

[[rule]]
id = "expired"
reason = "props"
expires = 2020-01-01
origin = "manual"
"#,
    )
    .expect("rules");
    Policy {
        rules,
        ..Policy::new(today())
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Strings the classifier looks at closely.
fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("AWS Internal".to_string()),
        Just("lambda.amazonaws.com".to_string()),
        Just("ec2.us-east-1.amazonaws.com".to_string()),
        Just("x.amazonaws.com.cn".to_string()),
        Just("arn:aws:iam::111122223333:root".to_string()),
        Just("arn:aws:iam::111122223333:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS".to_string()),
        Just("arn:aws:sts::111122223333:assumed-role/a/b".to_string()),
        Just("111122223333:aws:ec2-infrastructure:i-1".to_string()),
        Just("AROAEXAMPLEROLEID0001".to_string()),
        Just("111122223333".to_string()),
        Just("1234abcd-12ab-34cd-56ef-1234567890ab".to_string()),
        Just("alias/b-key".to_string()),
        Just("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab".to_string()),
        Just("arn:".to_string()),
        Just("arn:aws:iam::".to_string()),
        Just("aws:lambda:FunctionArn".to_string()),
        Just("198.51.100.7".to_string()),
        Just("true".to_string()),
        "[A-Z]{4}[A-Z0-9]{0,30}",
        "arn:[a-z-]{0,6}:[a-z]{0,6}:[a-z0-9-]{0,12}:[0-9]{0,12}:.{0,20}",
        "\\PC{0,12}",
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("keyId".to_string()),
        Just("grantId".to_string()),
        Just("operations".to_string()),
        Just("constraints".to_string()),
        Just("encryptionContextEquals".to_string()),
        Just("EncryptionContextSubset".to_string()),
        Just("sourceArn".to_string()),
        Just("granteePrincipal".to_string()),
        Just("granteeServicePrincipal".to_string()),
        Just("retiringPrincipal".to_string()),
        Just("dryRun".to_string()),
        Just("grantTokens".to_string()),
        Just("Records".to_string()),
        Just("detail".to_string()),
        Just("detail-type".to_string()),
        Just("type".to_string()),
        Just("arn".to_string()),
        Just("invokedBy".to_string()),
        "[a-zA-Z:]{1,12}",
    ]
}

fn operation_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(Operation::KNOWN.to_vec()).prop_map(|op| json!(op.as_str())),
        "[A-Za-z]{1,20}".prop_map(Value::String),
        any_json(),
    ]
}

/// A record shaped like a CloudTrail grant record, with every part
/// possibly wrong.
fn record_like() -> impl Strategy<Value = Value> {
    let event_name = prop_oneof![
        Just(json!("CreateGrant")),
        Just(json!("RetireGrant")),
        Just(json!("RevokeGrant")),
        Just(json!("Decrypt")),
        any_json(),
    ];
    let identity = prop_oneof![
        any_json(),
        (
            prop::option::of(interesting_string()),
            prop::option::of(prop::sample::select(vec![
                "IAMUser",
                "AssumedRole",
                "AWSService",
                "Root",
                "X"
            ])),
            prop::option::of(interesting_string()),
            prop::option::of(interesting_string()),
        )
            .prop_map(|(arn, t, account, invoked_by)| json!({
                "arn": arn, "type": t, "accountId": account, "invokedBy": invoked_by
            })),
    ];
    let constraints = prop_oneof![
        any_json(),
        prop::collection::btree_map(interesting_string(), interesting_string(), 0..4)
            .prop_map(|m| json!({"encryptionContextSubset": m})),
        Just(json!({})),
    ];
    let request = prop_oneof![
        any_json(),
        (
            prop::option::of(interesting_string()),
            prop::option::of(interesting_string()),
            prop::option::of(interesting_string()),
            prop::collection::vec(operation_value(), 0..5),
            prop::option::of(constraints),
            any::<bool>(),
        )
            .prop_map(|(key, grantee, retiring, ops, constraints, dry)| json!({
                "keyId": key, "granteePrincipal": grantee, "retiringPrincipal": retiring,
                "operations": ops, "constraints": constraints, "dryRun": dry, "grantId": "g"
            })),
    ];
    (
        event_name,
        prop::option::of(Just(json!("kms.amazonaws.com"))),
        prop::option::of("[a-f0-9-]{1,36}"),
        identity,
        prop::option::of(interesting_string()),
        prop::option::of(interesting_string()),
        request,
        any_json(),
        prop::option::of(prop::sample::select(vec![
            "AccessDenied",
            "DryRunOperationException",
            "X",
        ])),
        prop::option::of(any_json()),
    )
        .prop_map(
            |(name, source, id, identity, ip, ua, request, response, error, resources)| {
                let mut m = Map::new();
                m.insert("eventName".into(), name);
                if let Some(s) = source {
                    m.insert("eventSource".into(), s);
                }
                if let Some(id) = id {
                    m.insert("eventID".into(), json!(id));
                }
                m.insert("userIdentity".into(), identity);
                m.insert("sourceIPAddress".into(), json!(ip));
                m.insert("userAgent".into(), json!(ua));
                m.insert("requestParameters".into(), request);
                m.insert("responseElements".into(), response);
                m.insert("errorCode".into(), json!(error));
                m.insert("awsRegion".into(), json!("us-east-1"));
                m.insert("recipientAccountId".into(), json!("111122223333"));
                if let Some(r) = resources {
                    m.insert("resources".into(), r);
                }
                Value::Object(m)
            },
        )
}

fn check_every_verdict(records: Vec<Result<Parsed, grantwatch_core::event::ParseError>>) {
    let policy = policy();
    for record in records {
        if let Ok(Parsed::Grant(event)) = record {
            let v = judge_event(&event, None, &policy);
            let worst = v
                .findings
                .iter()
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Info);
            let rerated = v.rule_notes.iter().any(|n| n.contains("re-rated"));
            if !rerated {
                assert_eq!(v.severity, worst);
            }
            assert_eq!(
                v.alert,
                v.suppressed_by.is_none() && v.severity >= policy.min_alert_severity
            );
            assert!(serde_json::to_string(&v).is_ok());
            // Messages and evidence are bounded one-liners, whatever the event holds.
            for line in v.findings.iter().map(|f| &f.message).chain(&v.evidence) {
                assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
                assert!(
                    line.chars().count() <= 1500,
                    "{} chars",
                    line.chars().count()
                );
            }
            if !event.succeeded()
                && event.action == grantwatch_core::event::GrantAction::CreateGrant
            {
                assert_eq!(v.grant_id, None);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(records) = parse_document(&bytes) {
            check_every_verdict(records);
        }
        let mut gz = vec![0x1f, 0x8b];
        gz.extend_from_slice(&bytes);
        let _ = parse_document(&gz);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let _ = parse_eventbridge_event(&value);
        if let Ok(records) = parse_document(value.to_string().as_bytes()) {
            check_every_verdict(records);
        }
    }

    #[test]
    fn record_shaped_json_never_panics(record in record_like(), wrap in 0u8..3) {
        let document = match wrap {
            0 => record.clone(),
            1 => json!({"Records": [record.clone(), record.clone()]}),
            _ => json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.kms", "detail": record.clone()}),
        };
        if let Ok(records) = parse_document(document.to_string().as_bytes()) {
            check_every_verdict(records);
        }
        if wrap == 2 {
            let _ = parse_eventbridge_event(&document);
        }
    }

    #[test]
    fn standing_grants_never_panic(
        grantee in prop::option::of(interesting_string()),
        retiring in prop::option::of(interesting_string()),
        ops in prop::collection::vec("[A-Za-z]{1,16}", 0..5),
        context in prop::option::of(prop::collection::btree_map(interesting_string(), interesting_string(), 0..3)),
        key_spec in prop::option::of(prop::sample::select(vec!["SYMMETRIC_DEFAULT", "RSA_2048", "HMAC_256"])),
        issuing in prop::option::of(interesting_string()),
        zone in 0u8..3,
    ) {
        // The trust zone comes with the policy: unset, this account, or
        // this account and a partner's.
        let policy = Policy {
            trust_zone: match zone {
                0 => TrustZone::Unset,
                1 => TrustZone::from_accounts(["111122223333"]),
                _ => TrustZone::from_accounts(["111122223333", "444455556666"]),
            },
            ..policy()
        };
        let facts = GrantFacts {
            grantee,
            retiring_principal: retiring,
            operations: ops.iter().map(|o| Operation::parse(o)).collect(),
            constraints: context.map(|m: BTreeMap<String, String>| Constraints {
                encryption_context_equals: Some(m),
                ..Constraints::default()
            }),
            ..GrantFacts::default()
        };
        let grant = StandingGrant {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            key_arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            key_spec: key_spec.map(str::to_string),
            grant_id: "g".into(),
            created: None,
            issuing_account: issuing,
            facts: facts.clone(),
        };
        let j = judge_standing(&grant, None, &policy);
        prop_assert!(j.findings.iter().all(|f| f.severity <= Severity::Critical));
        let _ = classify_grant(&facts, None);
        // One judgement everywhere: the report (judge_key, per key) and
        // explain (judge_standing, one grant) agree on a grant alone on its key.
        let by_key = judge_key(std::slice::from_ref(&grant), |_| None, &policy, 40_000);
        prop_assert_eq!(&by_key[0], &j);
        // With a duplicate on the key, the duplicate's judgement is the lone
        // grant's plus duplicate-grant, counted before the rules: a rule that
        // suppresses the grant suppresses its duplicate too.
        let mut twin = grant.clone();
        twin.grant_id = "h".into();
        let pair = judge_key(&[grant.clone(), twin], |_| None, &policy, 40_000);
        prop_assert_eq!(&pair[0], &j);
        prop_assert!(pair[1].findings.iter().any(|f| f.code == FindingCode::DuplicateGrant));
        prop_assert_eq!(&pair[1].suppressed_by, &j.suppressed_by);
        prop_assert!(pair[1].severity >= j.severity);
    }

    /// Issue 11: caller-controlled fields never make a grant `service` on
    /// their own. A person's direct call (an IP as source, no invokedBy)
    /// granting an IAM role stays non-service whatever user agent, retiring
    /// principal, encryption context or grant name it types.
    #[test]
    fn caller_controlled_fields_never_make_a_service_grant(
        user_agent in interesting_string(),
        retiring in prop::option::of(interesting_string()),
        context in prop::option::of(prop::collection::btree_map(interesting_string(), interesting_string(), 0..3)),
        name in prop::option::of(interesting_string()),
        console in any::<bool>(),
    ) {
        let facts = GrantFacts {
            grantee: Some("arn:aws:iam::111122223333:role/app".into()),
            retiring_principal: retiring.filter(|r| !r.trim().eq_ignore_ascii_case("AWS Internal")),
            operations: vec![Operation::Decrypt],
            constraints: context.map(|m: BTreeMap<String, String>| Constraints {
                encryption_context_subset: Some(m),
                ..Constraints::default()
            }),
            name,
            ..GrantFacts::default()
        };
        let caller = grantwatch_core::event::Caller {
            arn: Some("arn:aws:iam::111122223333:user/mallory".into()),
            identity_type: Some("IAMUser".into()),
            account: Some("111122223333".into()),
            source_ip: Some("198.51.100.7".into()),
            user_agent: Some(user_agent),
            from_console: console,
            ..Default::default()
        };
        let v = classify_grant(&facts, Some(&caller));
        prop_assert_ne!(v.origin, grantwatch_core::verdict::Origin::Service, "{:?}", v.evidence);
    }

    #[test]
    fn principals_and_globs_never_panic(s in "\\PC{0,64}", p in "[a-z*?:/]{0,16}") {
        let principal = Principal::parse(&s);
        let _ = principal.account();
        let _ = key_arn_for(&s, Some("us-east-1"), Some("111122223333"), None);
        let _ = glob_match(&p, &s);
        let caller = grantwatch_core::event::Caller {
            source_ip: Some(s.clone()),
            user_agent: Some(s.clone()),
            invoked_by: Some(s.clone()),
            ..Default::default()
        };
        let _ = classify_call(&caller);
    }
}

/// The record strategy really reaches the classifier (not only parse errors).
#[test]
fn record_strategy_produces_grant_events() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = record_like();
    let mut grants = 0;
    for _ in 0..300 {
        let record = strategy.new_tree(&mut runner).expect("value").current();
        if let Ok(records) = parse_document(record.to_string().as_bytes()) {
            grants += records
                .iter()
                .filter(|r| matches!(r, Ok(Parsed::Grant(_))))
                .count();
        }
    }
    assert!(
        grants >= 30,
        "only {grants} of 300 generated records were grant events"
    );
}

/// Huge and multi-line values in an event end up quoted, not pasted.
#[test]
fn huge_values_are_quoted_in_messages() {
    let huge = format!("Evil\n{}", "A".repeat(1_000_000));
    let record = json!({
        "eventName": "CreateGrant", "eventSource": "kms.amazonaws.com", "eventID": "e",
        "recipientAccountId": huge, "awsRegion": "us-east-1",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/a", "accountId": huge,
                         "invokedBy": format!("{}.amazonaws.com", "a".repeat(100_000))},
        "sourceIPAddress": "198.51.100.7", "userAgent": huge,
        "errorCode": huge, "errorMessage": huge,
        "requestParameters": {"keyId": huge, "granteePrincipal": format!("arn:aws:iam::{huge}:role/x"),
                              "operations": [huge, "Decrypt"]}
    });
    let records = parse_document(record.to_string().as_bytes()).expect("document");
    assert!(matches!(records[0], Ok(Parsed::Grant(_))));
    check_every_verdict(records);
}

/// The weekly report and `explain` judge a key's grants through the same
/// path; this runs the real report (`build_report` over an in-memory
/// inventory) and what `explain` calls (`read_key_context` +
/// `judged_key_grants`) on the same key.
mod report_and_explain {
    use super::*;
    use futures::executor::block_on;
    use grantwatch_core::app::report::{
        build_report, judged_key_grants, read_key_context, NoDeadline, Quiet, ReportDeps,
        ReportOptions, ReportRequest,
    };
    use grantwatch_core::ports::inventory::fake::{
        FakeDirectory, FakeInventory, FakeRegion, MemoryStore,
    };
    use grantwatch_core::ports::inventory::{
        AccountRegion, AccountSelection, KeyDescription, KeyManager, KeyTag, ListedGrant,
        NoProvenance,
    };

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";
    const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/k";

    /// Rules that only key-wide findings and key tags can trigger.
    fn rules() -> RuleSet {
        RuleSet::parse_toml(
            r#"
[[rule]]
id = "prod-duplicates"
reason = "props: duplicates on prod keys are the deploy tool's"
key_tags = { env = "prod*" }
findings = ["duplicate-grant"]

[[rule]]
id = "platform-policy"
reason = "props: the platform team's keys let CI create grants"
key_tags = { team = "platform" }
findings = ["create-grant-open"]
"#,
        )
        .unwrap()
    }

    const OPEN: &str = r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ci"}, "Action": "kms:CreateGrant", "Resource": "*"}}"#;

    fn grant(i: usize, grantee: &str, ops: &[Operation]) -> ListedGrant {
        ListedGrant {
            grant_id: format!("g{i}"),
            created: None,
            issuing_account: None,
            facts: GrantFacts {
                grantee: Some(grantee.to_string()),
                operations: ops.to_vec(),
                ..GrantFacts::default()
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_report_and_explain_agree_on_every_grant_and_on_the_key(
            grantees in prop::collection::vec(prop::sample::select(vec![
                "arn:aws:iam::111122223333:role/app",
                "arn:aws:sts::111122223333:assumed-role/app/s1",
                "arn:aws:iam::444455556666:role/partner",
                "lambda.amazonaws.com",
            ]), 1..7),
            decrypt_only in prop::collection::vec(any::<bool>(), 7),
            open in any::<bool>(),
            env in prop::sample::select(vec!["prod-eu", "staging", ""]),
            team in prop::sample::select(vec!["platform", "payments", ""]),
            count_threshold in 2usize..6,
        ) {
            let listed: Vec<ListedGrant> = grantees
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let ops: &[Operation] = if decrypt_only[i] {
                        &[Operation::Decrypt]
                    } else {
                        &[Operation::Decrypt, Operation::Encrypt]
                    };
                    grant(i, g, ops)
                })
                .collect();
            let tags: Vec<KeyTag> = [("env", env), ("team", team)]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| KeyTag { key: k.into(), value: v.into() })
                .collect();
            let description = KeyDescription {
                key_id: "k".into(),
                key_arn: KEY_ARN.into(),
                manager: Some(KeyManager::Customer),
                state: Some("Enabled".into()),
                key_spec: Some("SYMMETRIC_DEFAULT".into()),
                description: Some("props key".into()),
                ..KeyDescription::default()
            };
            let at = AccountRegion::new(ACCOUNT, REGION);
            let mut region = FakeRegion {
                keys: vec![description.clone()],
                ..FakeRegion::default()
            };
            region.grants.insert("k".into(), listed.clone());
            region.tags.insert("k".into(), tags);
            if open {
                region.policies.insert("k".into(), OPEN.into());
            }
            let mut inventory = FakeInventory::new(100);
            inventory.regions.insert(at.clone(), region);
            let policy = Policy { rules: rules(), ..super::policy() };
            let options = ReportOptions {
                grant_count_threshold: count_threshold,
                ..ReportOptions::default()
            };
            let directory = FakeDirectory { this_account: ACCOUNT.into(), organization: vec![] };
            let store = MemoryStore::default();
            let deps = ReportDeps {
                inventory: &inventory,
                provenance: &NoProvenance,
                store: &store,
                directory: &directory,
                policy: &policy,
                options: &options,
                deadline: &NoDeadline,
                progress: &Quiet,
            };
            let request = ReportRequest {
                accounts: AccountSelection::This,
                regions: vec![REGION.into()],
            };
            let report = block_on(build_report(&request, &deps, "2026-11-28T06:00:00Z")).unwrap();
            prop_assert!(!report.partial, "{:?}", report.coverage.gaps);
            let key = &report.keys[0];

            // What explain does for the same key.
            let (context, unread) =
                block_on(read_key_context(&inventory, &at, KEY_ARN, &description, || false));
            prop_assert!(unread.is_empty());
            let standing: Vec<StandingGrant> = listed
                .iter()
                .map(|g| StandingGrant {
                    account: ACCOUNT.into(),
                    region: REGION.into(),
                    key_arn: KEY_ARN.into(),
                    key_spec: description.key_spec.clone(),
                    grant_id: g.grant_id.clone(),
                    created: None,
                    issuing_account: None,
                    facts: g.facts.clone(),
                })
                .collect();
            let (key_judgement, explained) =
                judged_key_grants(&standing, &[], &context, &policy, count_threshold);

            for e in &explained {
                let r = key.grants.iter().find(|g| g.grant_id == e.grant_id).unwrap();
                prop_assert_eq!(r, e);
            }
            prop_assert_eq!(&key.findings, &key_judgement.findings);
            prop_assert_eq!(key.severity, key_judgement.severity);
            prop_assert_eq!(&key.suppressed_by, &key_judgement.suppressed_by);

            // The key-wide findings are really there (so agreeing means
            // something): duplicates, the grant count, the posture, and the
            // rules that only key tags and those findings can trigger.
            let has = |id: &str, code: FindingCode| {
                explained.iter().any(|g| g.grant_id == id && g.findings.iter().any(|f| f.code == code))
            };
            let shape = |i: usize| (grantees[i], decrypt_only[i]);
            for i in 1..grantees.len() {
                let duplicate = (0..i).any(|j| shape(j) == shape(i));
                prop_assert_eq!(has(&format!("g{i}"), FindingCode::DuplicateGrant), duplicate);
            }
            prop_assert_eq!(
                has("g0", FindingCode::GrantCountHigh),
                grantees.len() >= count_threshold
            );
            prop_assert_eq!(
                key_judgement.findings.iter().any(|f| f.code == FindingCode::CreateGrantOpen),
                open
            );
            let posture_suppressed = open && team == "platform";
            prop_assert_eq!(key_judgement.suppressed_by.is_some(), posture_suppressed);
            for e in &explained {
                let duplicate_only = e.findings.iter().any(|f| f.code == FindingCode::DuplicateGrant);
                if e.suppressed_by.as_deref() == Some("prod-duplicates") {
                    prop_assert!(duplicate_only && env.starts_with("prod"));
                }
            }
        }
    }
}
