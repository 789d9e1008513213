//! Hand-built verdicts for the renderers' tests (the classifier is tested
//! on its own; these fix the renderers' input).

use crate::grant::{Constraints, Operation};
use crate::verdict::{ActorView, Finding, FindingCode, Origin, RemovedGrant, Severity, Verdict};
use std::collections::BTreeMap;

pub const KEY_ARN: &str =
    "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
pub const GRANT_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const EVENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const ALICE: &str = "arn:aws:sts::111122223333:assumed-role/Admin/alice";
pub const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:111122223333:function:payments-api";

fn finding(code: FindingCode, severity: Severity, message: &str) -> Finding {
    Finding {
        code,
        severity,
        message: message.to_string(),
    }
}

/// alice (Admin role) gives account 444455556666's root Decrypt,
/// GenerateDataKey and CreateGrant on alias/payments, unconstrained.
pub fn manual_grant() -> Verdict {
    Verdict {
        event_id: EVENT_ID.into(),
        event_name: "CreateGrant".into(),
        event_time: Some("2026-11-28T18:40:12Z".into()),
        account: Some("111122223333".into()),
        region: Some("eu-west-1".into()),
        key: Some("alias/payments".into()),
        key_arn: Some(KEY_ARN.into()),
        key_alias: Some("alias/payments".into()),
        grant_id: Some(GRANT_ID.into()),
        grant_name: Some("temporary-access".into()),
        actor: ActorView {
            arn: Some(ALICE.into()),
            identity_type: Some("AssumedRole".into()),
            account: Some("111122223333".into()),
            invoked_by: None,
        },
        source_ip: Some("203.0.113.7".into()),
        user_agent: Some("aws-cli/2.15.0 Python/3.11.6 Linux/6.1".into()),
        grantee: Some("arn:aws:iam::444455556666:root".into()),
        retiring_principal: None,
        operations: vec![
            Operation::Decrypt,
            Operation::GenerateDataKey,
            Operation::CreateGrant,
        ],
        constraints: None,
        origin: Origin::Manual,
        service: None,
        evidence: vec![
            "userIdentity.invokedBy absent".into(),
            "source IP 203.0.113.7 is not a service".into(),
            "user agent aws-cli/2.15.0 is a person's tool".into(),
        ],
        severity: Severity::High,
        alert: true,
        findings: vec![
            finding(
                FindingCode::ManualGrant,
                Severity::Medium,
                "A person created this grant: access that no key policy or IAM policy shows.",
            ),
            finding(
                FindingCode::CrossAccountGrantee,
                Severity::High,
                "The grantee is in account 444455556666, not the key's account 111122223333.",
            ),
            finding(
                FindingCode::AccountRootGrantee,
                Severity::High,
                "The grantee is an account root: every principal that account allows may use the key.",
            ),
            finding(
                FindingCode::ReDelegation,
                Severity::High,
                "The grant includes CreateGrant: the grantee can give the key to others.",
            ),
            finding(
                FindingCode::Unconstrained,
                Severity::High,
                "Data operations without any encryption-context constraint.",
            ),
            finding(
                FindingCode::NoRetiringPrincipal,
                Severity::Low,
                "No retiring principal: only the key's account can remove it.",
            ),
        ],
        suppressed_by: None,
        rule_notes: Vec::new(),
        error_code: None,
        dry_run: false,
        removed_grant: None,
    }
}

/// The Lambda service's grant for payments-api, as the service makes it.
pub fn lambda_service_grant() -> Verdict {
    let mut v = manual_grant();
    v.actor = ActorView {
        arn: Some(ALICE.into()),
        identity_type: Some("AssumedRole".into()),
        account: Some("111122223333".into()),
        invoked_by: Some("lambda.amazonaws.com".into()),
    };
    v.source_ip = Some("lambda.amazonaws.com".into());
    v.user_agent = Some("lambda.amazonaws.com".into());
    v.grantee = Some("arn:aws:sts::111122223333:assumed-role/payments-role/payments-api".into());
    v.retiring_principal = Some("lambda.eu-west-1.amazonaws.com".into());
    v.operations = vec![Operation::Decrypt, Operation::RetireGrant];
    v.constraints = Some(Constraints {
        encryption_context_equals: Some(BTreeMap::from([(
            "aws:lambda:FunctionArn".to_string(),
            FUNCTION_ARN.to_string(),
        )])),
        ..Constraints::default()
    });
    v.origin = Origin::Service;
    v.service = Some("lambda".into());
    v.evidence = vec!["invokedBy lambda.amazonaws.com".into()];
    v.severity = Severity::Info;
    v.alert = false;
    v.findings = Vec::new();
    v
}

/// alice revokes the Lambda service's grant: payments-api will break.
pub fn removal_of_lambda_grant() -> Verdict {
    let mut v = manual_grant();
    v.event_id = "99999999-8888-7777-6666-555555555555".into();
    v.event_name = "RevokeGrant".into();
    v.key = Some("1234abcd-12ab-34cd-56ef-1234567890ab".into());
    v.key_alias = None;
    v.grant_name = None;
    v.grantee = None;
    v.operations = Vec::new();
    v.findings = vec![finding(
        FindingCode::ServiceGrantRemoved,
        Severity::High,
        "A person removed a grant the lambda service created.",
    )];
    v.evidence = vec!["user agent aws-cli/2.15.0 is a person's tool".into()];
    v.removed_grant = Some(RemovedGrant {
        origin: Origin::Service,
        service: Some("lambda".into()),
        created_by: Some(ALICE.into()),
        created_at: Some("2026-11-01T09:00:00Z".into()),
        created_event_id: Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into()),
        dependent_resource: Some(FUNCTION_ARN.into()),
        impact: Some(
            "The function will fail to decrypt its environment variables; update its configuration to recreate the grant."
                .into(),
        ),
    });
    v
}
