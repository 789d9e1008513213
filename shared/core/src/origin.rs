//! Service vs manual vs unknown, with evidence.
//!
//! Service-created grants are not marked as such anywhere. CloudTrail gives
//! signals, and no single one is enough:
//!
//! * **call signals** (set by AWS, not by the caller): `userIdentity.invokedBy`
//!   naming a service, `userIdentity.type == AWSService`, a `sourceIPAddress`
//!   that is a service name; weaker: `AWS Internal` in those fields or in the
//!   user agent, and a user agent naming a service (the caller controls it).
//! * **grant-shape signals** (a person can type any of them): a service
//!   principal or `AWS Internal` as grantee, an `ec2-infrastructure` grantee,
//!   an `AWSServiceRoleFor*` role, a service retiring principal,
//!   encryption-context keys in an `aws:<service>:` namespace.
//! * **person signals**: a console session (whose calls show the user agent
//!   `AWS Internal`), a source IP address, an SDK/CLI user agent.
//!
//! A grant is `service` when a call signal set by AWS is corroborated by
//! another signal; `manual` when the call came from a person or workload
//! directly; `unknown` otherwise. Service-looking grant shapes in a person's
//! call are reported by [`OriginVerdict::shape_services`] (the assessor turns
//! them into `service-context-by-person`).

use crate::event::Caller;
use crate::grant::GrantFacts;
use crate::principal::{Principal, ServicePrincipal};
use crate::verdict::{quote, Origin};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginVerdict {
    pub origin: Origin,
    /// The service, when `origin` is `Service` (lambda, ebs, rds, ...).
    pub service: Option<String>,
    /// Each signal used, in words.
    pub evidence: Vec<String>,
    /// Services a grant's hand-typeable parts point at: encryption-context
    /// keys in an `aws:<service>:` namespace, and a service retiring
    /// principal on a grant whose grantee is not that service (a 2026
    /// grant *to* a service principal, retired by it, is not dressing up).
    /// Used to spot a person dressing a grant up as a service's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape_services: Vec<String>,
}

impl OriginVerdict {
    pub fn unknown() -> Self {
        OriginVerdict {
            origin: Origin::Unknown,
            service: None,
            evidence: Vec::new(),
            shape_services: Vec::new(),
        }
    }
}

/// What grantwatch knows about one AWS service that creates grants: one
/// table, one place. `name` is the stable short name used in verdicts and
/// rules.
#[derive(Debug)]
pub struct ServiceInfo {
    pub name: &'static str,
    /// Service-principal / DNS labels (`lambda` in `lambda.amazonaws.com`).
    pub labels: &'static [&'static str],
    /// Encryption-context key prefixes, lower case (`aws:lambda:`).
    pub context_prefixes: &'static [&'static str],
    /// Other encryption-context keys the service uses, lower case.
    pub context_keys: &'static [&'static str],
    /// Service-linked role names (`AWSServiceRoleForRDS`).
    pub service_linked_roles: &'static [&'static str],
    /// Context keys that name the resource depending on the grant, in order
    /// of preference.
    pub resource_keys: &'static [&'static str],
    /// What breaks when a person removes the service's grant, and the fix.
    pub impact: &'static str,
}

pub const SERVICES: &[ServiceInfo] = &[
    ServiceInfo {
        name: "lambda",
        labels: &["lambda"],
        context_prefixes: &["aws:lambda:"],
        context_keys: &[],
        service_linked_roles: &[],
        resource_keys: &["aws:lambda:FunctionArn"],
        impact: "the function will fail to decrypt its environment variables (every invocation fails before the code runs); update the function's configuration (e.g. save its environment variables again) to recreate the grant",
    },
    ServiceInfo {
        name: "ebs",
        labels: &["ec2", "ebs"],
        context_prefixes: &["aws:ebs:"],
        context_keys: &[],
        service_linked_roles: &[],
        resource_keys: &["aws:ebs:id"],
        impact: "the encrypted EBS volume or snapshot can no longer be decrypted for its instance: attaching, starting the instance or copying the snapshot fails; stop and start the instance, or detach and re-attach the volume, to recreate the grant",
    },
    ServiceInfo {
        name: "autoscaling",
        labels: &["autoscaling"],
        context_prefixes: &[],
        context_keys: &[],
        service_linked_roles: &["AWSServiceRoleForAutoScaling"],
        resource_keys: &[],
        impact: "Auto Scaling can no longer launch instances with volumes encrypted by this key; re-create the grant to the Auto Scaling service-linked role",
    },
    ServiceInfo {
        name: "rds",
        labels: &["rds"],
        context_prefixes: &["aws:rds:"],
        context_keys: &[],
        service_linked_roles: &["AWSServiceRoleForRDS"],
        resource_keys: &["aws:rds:db-id", "aws:rds:dbc-id", "aws:rds:cluster-id"],
        impact: "the DB instance or cluster loses access to its storage key and becomes inaccessible (inaccessible-encryption-credentials); restore access to the key, then start or restore the database",
    },
    ServiceInfo {
        name: "dynamodb",
        labels: &["dynamodb"],
        context_prefixes: &["aws:dynamodb:"],
        context_keys: &[],
        service_linked_roles: &[],
        resource_keys: &["aws:dynamodb:tableName"],
        impact: "DynamoDB can no longer use the key for the table; reads and writes fail and the table becomes inaccessible; DynamoDB recreates the grant when the key is usable again (or switch the table's key)",
    },
    ServiceInfo {
        name: "keyspaces",
        labels: &["cassandra", "keyspaces"],
        context_prefixes: &["aws:cassandra:"],
        context_keys: &[],
        service_linked_roles: &[],
        resource_keys: &["aws:cassandra:tableName", "aws:cassandra:keyspaceName"],
        impact: "Amazon Keyspaces can no longer use the key for the table, which becomes inaccessible; restore the grant by updating the table's encryption settings",
    },
    ServiceInfo {
        name: "mq",
        labels: &["mq"],
        context_prefixes: &["aws:mq:", "aws.mq."],
        context_keys: &[],
        service_linked_roles: &["AWSServiceRoleForAmazonMQ"],
        resource_keys: &["aws:mq:broker-id", "aws.mq.broker.id"],
        impact: "the Amazon MQ broker can no longer decrypt its data and fails to start or reboot; recreate the broker's grant (reboot after restoring key access)",
    },
    ServiceInfo {
        name: "secretsmanager",
        labels: &["secretsmanager"],
        context_prefixes: &["aws:secretsmanager:"],
        context_keys: &["secretarn", "secretversionid"],
        service_linked_roles: &[],
        resource_keys: &["SecretARN", "aws:secretsmanager:arn"],
        impact: "Secrets Manager can no longer decrypt the secret; applications reading it fail; re-save the secret's key setting to recreate access",
    },
    ServiceInfo {
        name: "managedblockchain",
        labels: &["managedblockchain"],
        context_prefixes: &["aws:managedblockchain:"],
        context_keys: &[],
        service_linked_roles: &[],
        resource_keys: &["aws:managedblockchain:network-id", "aws:managedblockchain:member-id", "aws:managedblockchain:node-id"],
        impact: "the Managed Blockchain network member or node can no longer decrypt its ledger data and becomes unavailable; restore the grant through the service",
    },
    ServiceInfo {
        name: "forecast",
        labels: &["forecast"],
        context_prefixes: &["aws:forecast:"],
        context_keys: &[],
        service_linked_roles: &[],
        resource_keys: &["aws:forecast:arn"],
        impact: "Amazon Forecast jobs using this key fail to read or write their encrypted data; re-run the job to recreate the grant",
    },
    ServiceInfo {
        name: "redshift",
        labels: &["redshift", "redshift-serverless"],
        context_prefixes: &["aws:redshift:"],
        context_keys: &[],
        service_linked_roles: &["AWSServiceRoleForRedshift"],
        resource_keys: &["aws:redshift:arn"],
        impact: "the Redshift cluster or workgroup loses access to its encryption key and cannot start or restore; restore access to the key",
    },
    ServiceInfo {
        name: "elasticfilesystem",
        labels: &["elasticfilesystem"],
        context_prefixes: &["aws:elasticfilesystem:"],
        context_keys: &[],
        service_linked_roles: &["AWSServiceRoleForAmazonElasticFileSystem"],
        resource_keys: &["aws:elasticfilesystem:filesystem:id"],
        impact: "the EFS file system can no longer be mounted or read; restore the grant by restoring key access",
    },
    ServiceInfo {
        name: "s3",
        labels: &["s3"],
        context_prefixes: &["aws:s3:"],
        context_keys: &[],
        service_linked_roles: &[],
        resource_keys: &["aws:s3:arn"],
        impact: "S3 can no longer decrypt objects protected by this grant; reads of those objects fail",
    },
    ServiceInfo {
        name: "workspaces",
        labels: &["workspaces"],
        context_prefixes: &["aws:workspaces:"],
        context_keys: &[],
        service_linked_roles: &["AWSServiceRoleForWorkSpaces"],
        resource_keys: &["aws:workspaces:workspace-id"],
        impact: "the WorkSpace's encrypted volumes can no longer be decrypted; it fails to start or rebuild; restore the grant by restoring key access",
    },
    ServiceInfo {
        name: "backup",
        labels: &["backup"],
        context_prefixes: &["aws:backup:"],
        context_keys: &[],
        service_linked_roles: &["AWSServiceRoleForBackup"],
        resource_keys: &[],
        impact: "AWS Backup jobs using this key fail; re-run the backup or restore job",
    },
    ServiceInfo {
        name: "fsx",
        labels: &["fsx"],
        context_prefixes: &["aws:fsx:"],
        context_keys: &[],
        service_linked_roles: &[],
        resource_keys: &["aws:fsx:filesystem-id"],
        impact: "the FSx file system can no longer read its storage; restore key access",
    },
];

/// The service a DNS label (`ec2`, `lambda`) or a service principal names.
pub fn service_by_label(label: &str) -> Option<&'static ServiceInfo> {
    SERVICES.iter().find(|s| s.labels.contains(&label))
}

/// A service by its short name (`lambda`, `ebs`).
pub fn service_by_name(name: &str) -> Option<&'static ServiceInfo> {
    SERVICES.iter().find(|s| s.name == name)
}

/// The service an encryption-context key belongs to (`aws:lambda:FunctionArn`
/// → lambda), ignoring the key's case as KMS does.
pub fn service_of_context_key(key: &str) -> Option<&'static ServiceInfo> {
    let lower = key.to_ascii_lowercase();
    SERVICES.iter().find(|s| {
        s.context_prefixes.iter().any(|p| lower.starts_with(p))
            || s.context_keys.contains(&lower.as_str())
    })
}

/// The short name for a service principal or DNS name; unknown services
/// keep their label (`glue.amazonaws.com` → `glue`).
pub fn service_name_of_principal(principal: &str) -> Option<String> {
    let sp = ServicePrincipal::parse(principal)?;
    let label = sp.service();
    Some(
        service_by_label(&label)
            .map(|s| s.name.to_string())
            .unwrap_or(label),
    )
}

/// Whether grantwatch has a profile for a service (its usual grants are
/// `info`); a service without one is `low`, recorded and not alerted.
pub fn is_profiled(service: &str) -> bool {
    service_by_name(service).is_some()
}

/// Front ends that act for a person at a console or shell: their name in
/// `invokedBy` is a person's call, not a service's.
const PERSON_FRONT_ENDS: &[&str] = &["signin", "console", "cloudshell"];

/// A service DNS name in `invokedBy` / `sourceIPAddress` that stands for an
/// AWS service acting (any `<svc>.amazonaws.com`, regional forms, internal
/// front ends such as `ec2-frontend-api`), but not a person's console.
fn acting_service(value: &str) -> Option<String> {
    let sp = ServicePrincipal::parse(value)?;
    let label = sp.service();
    if PERSON_FRONT_ENDS.contains(&label.as_str()) {
        return None;
    }
    Some(
        service_by_label(&label)
            .map(|s| s.name.to_string())
            .unwrap_or(label),
    )
}

/// The service a service-linked role belongs to.
fn service_of_linked_role(service: Option<&str>, name: &str) -> String {
    if let Some(info) = SERVICES
        .iter()
        .find(|s| s.service_linked_roles.contains(&name))
    {
        return info.name.to_string();
    }
    if let Some(name) = service.and_then(service_name_of_principal) {
        return name;
    }
    name.trim_start_matches("AWSServiceRoleFor")
        .to_ascii_lowercase()
}

const AWS_INTERNAL: &str = "AWS Internal";

/// Signals from the call itself.
#[derive(Default)]
struct CallSignals {
    /// Set by AWS: invokedBy naming a service, type AWSService, a service
    /// name as source IP. (service, evidence)
    strong: Vec<(Option<String>, String)>,
    /// `AWS Internal` (outside a console session) or a service-named user agent.
    weak: Vec<(Option<String>, String)>,
    /// A person or workload called directly.
    person: Vec<String>,
    /// A person at a console or the CLI (not a workload's SDK).
    interactive: bool,
    /// An IAM user's or the root user's own credentials, no invokedBy:
    /// services act through roles (or say so in invokedBy), never as a
    /// user, so such a call is the user's.
    long_term: bool,
}

fn call_signals(caller: &Caller) -> CallSignals {
    let mut s = CallSignals::default();
    let invoked_by = caller
        .invoked_by
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let source_ip = caller
        .source_ip
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let user_agent = caller
        .user_agent
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());

    if caller.identity_type.as_deref() == Some("AWSService") {
        let service = invoked_by.and_then(service_name_of_principal);
        s.strong
            .push((service, "userIdentity.type is AWSService".to_string()));
    }
    match invoked_by {
        Some(v) if v.eq_ignore_ascii_case(AWS_INTERNAL) => {
            s.weak.push((None, "invokedBy is AWS Internal".to_string()))
        }
        Some(v) => {
            if let Some(service) = acting_service(v) {
                s.strong
                    .push((Some(service), format!("invokedBy {}", quote(v))));
            } else if ServicePrincipal::parse(v).is_some() {
                s.person.push(format!(
                    "invokedBy {}: a person's console or shell",
                    quote(v)
                ));
            }
        }
        None => {}
    }
    match source_ip {
        Some(AWS_INTERNAL) if caller.from_console => {}
        Some(AWS_INTERNAL) => s.weak.push((None, "source IP is AWS Internal".to_string())),
        Some(v) if v.parse::<IpAddr>().is_ok() && invoked_by.is_none() => {
            s.person.push(format!("called from IP address {v}"));
        }
        Some(v) if v.parse::<IpAddr>().is_ok() => {}
        Some(v) => {
            if let Some(service) = acting_service(v) {
                s.strong
                    .push((Some(service), format!("source IP is {}", quote(v))));
            }
        }
        None => {}
    }
    match user_agent {
        Some(AWS_INTERNAL) if caller.from_console => s.person.push(
            "console session (sessionCredentialFromConsole) with user agent AWS Internal: a person's own call"
                .to_string(),
        ),
        Some(AWS_INTERNAL) => s.weak.push((None, "user agent is AWS Internal".to_string())),
        Some(v) => {
            if let Some(service) = service_name_of_principal(v) {
                s.weak.push((Some(service), format!("user agent {v}")));
            } else if invoked_by.is_none() && is_client_user_agent(v) {
                s.person.push(format!("client user agent {}", quote(v)));
            }
        }
        None => {}
    }
    s.long_term = invoked_by.is_none()
        && caller
            .identity_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("IAMUser") || t.eq_ignore_ascii_case("Root"));
    s.interactive = invoked_by.is_none()
        && (caller.from_console
            || user_agent.is_some_and(|ua| {
                let lower = ua.to_ascii_lowercase();
                [
                    "aws-cli",
                    "mozilla",
                    "console.amazonaws.com",
                    "aws-powershell",
                    "awspowershell",
                ]
                .iter()
                .any(|c| lower.contains(c))
            }));
    if caller.from_console
        && invoked_by.is_none()
        && !s.person.iter().any(|p| p.starts_with("console"))
    {
        s.person
            .push("console session (sessionCredentialFromConsole)".to_string());
    }
    s
}

/// User agents of the SDKs, the CLI, browsers and common tools.
fn is_client_user_agent(ua: &str) -> bool {
    const CLIENTS: &[&str] = &[
        "aws-cli",
        "boto",
        "botocore",
        "aws-sdk",
        "aws-internal/",
        "console.amazonaws.com",
        "mozilla",
        "terraform",
        "aws-cdk",
        "cloudformation",
        "pulumi",
        "aws-powershell",
        "awspowershell",
        "aws-toolkit",
        "s3console",
    ];
    let lower = ua.to_ascii_lowercase();
    CLIENTS.iter().any(|c| lower.contains(c))
}

/// Signals from the grant's shape.
#[derive(Default)]
struct ShapeSignals {
    /// A person cannot produce these: `AWS Internal` as grantee or
    /// retiring principal, an `ec2-infrastructure` grantee (old and new
    /// forms). (service, evidence)
    unforgeable: Vec<(Option<String>, String)>,
    /// A person can type these: service principals, service-linked roles,
    /// `aws:<service>:` context keys. (service, evidence)
    typed: Vec<(Option<String>, String)>,
    /// The grantee is a service principal (only that service can use it).
    grantee_service: Option<String>,
}

impl ShapeSignals {
    fn all(&self) -> Vec<(Option<String>, String)> {
        self.unforgeable
            .iter()
            .chain(&self.typed)
            .cloned()
            .collect()
    }
    fn len(&self) -> usize {
        self.unforgeable.len() + self.typed.len()
    }
}

fn is_aws_internal(s: &str) -> bool {
    s.trim().eq_ignore_ascii_case(AWS_INTERNAL)
}

fn shape_signals(facts: &GrantFacts) -> ShapeSignals {
    let mut out = ShapeSignals::default();
    if let Some(sp) = facts.grantee_service_principal.as_deref() {
        let service = service_name_of_principal(sp);
        out.grantee_service = service.clone();
        out.typed
            .push((service, format!("grantee service principal {}", quote(sp))));
    }
    if let Some(grantee) = facts.grantee.as_deref() {
        match Principal::parse(grantee) {
            Principal::Service(_) => {
                let service = service_name_of_principal(grantee);
                out.grantee_service = out.grantee_service.take().or(service.clone());
                out.typed.push((
                    service,
                    format!("grantee is service principal {}", quote(grantee)),
                ))
            }
            Principal::AwsInternal => out
                .unforgeable
                .push((None, "grantee is AWS Internal".to_string())),
            Principal::Ec2Infrastructure { .. } => out.unforgeable.push((
                Some("ebs".to_string()),
                "grantee is an ec2-infrastructure instance session".to_string(),
            )),
            Principal::ServiceLinkedRole { service, name, .. } => out.typed.push((
                Some(service_of_linked_role(service, name)),
                format!("grantee is service-linked role {}", quote(name)),
            )),
            _ => {}
        }
    }
    if let Some(rp) = facts.effective_retiring_principal() {
        if is_aws_internal(rp) {
            out.unforgeable
                .push((None, "retiring principal is AWS Internal".to_string()));
        } else if let Some(service) = service_name_of_principal(rp) {
            out.typed.push((
                Some(service),
                format!("retiring principal is {}", quote(rp)),
            ));
        }
    }
    let mut namespaces: Vec<&'static str> = Vec::new();
    for (key, _) in facts.constraints.iter().flat_map(|c| c.context_pairs()) {
        if let Some(info) = service_of_context_key(key) {
            if !namespaces.contains(&info.name) {
                namespaces.push(info.name);
                out.typed.push((
                    Some(info.name.to_string()),
                    format!("encryption context key {}", quote(key)),
                ));
            }
        }
    }
    out
}

fn service_lookalike(facts: &GrantFacts) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: String| {
        if !out.contains(&name) {
            out.push(name);
        }
    };
    for (key, _) in facts.constraints.iter().flat_map(|c| c.context_pairs()) {
        if let Some(info) = service_of_context_key(key) {
            add(info.name.to_string());
        }
    }
    let grantee_service = facts
        .effective_grantee()
        .and_then(service_name_of_principal);
    if let Some(retiring) = facts
        .effective_retiring_principal()
        .and_then(service_name_of_principal)
    {
        if grantee_service.as_ref() != Some(&retiring) {
            add(retiring);
        }
    }
    out
}

fn first_service(signals: &[(Option<String>, String)]) -> Option<String> {
    signals.iter().find_map(|(s, _)| s.clone())
}

fn distinct_services(signals: &[(Option<String>, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in signals.iter().filter_map(|(s, _)| s.clone()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Who made a grant: a service on someone's behalf, a person/workload, or
/// unknown. `caller` is `None` for a standing grant without provenance
/// (only the grant's shape is known).
///
/// By evidence, not by a table (the table only names and profiles):
/// 1. a call signal AWS sets (`invokedBy` a service DNS name, type
///    `AWSService`, a service DNS name as source) → `service`;
/// 2. a grant shape no person can produce (`AWS Internal` grantee or
///    retiring principal, an `ec2-infrastructure` grantee) → `service`;
/// 3. `AWS Internal` in the call, no person in sight, and a service-shaped
///    grant → `service`;
/// 4. a grant to a service principal: `service` without a person's
///    signals; with them, `unknown` (a service acting through the
///    customer's role looks like this; so does a person);
/// 5. a person's signals → `manual` (service shapes typed by hand are
///    reported as `service-context-by-person`);
/// 6. otherwise `unknown`.
pub fn classify_grant(facts: &GrantFacts, caller: Option<&Caller>) -> OriginVerdict {
    let shape = shape_signals(facts);
    let shape_services = service_lookalike(facts);
    let mut verdict = match caller {
        Some(caller) => decide(&call_signals(caller), &shape),
        None => decide_from_shape(&shape),
    };
    verdict.shape_services = shape_services;
    verdict
}

/// Who made a call (a RetireGrant / RevokeGrant): the call signals alone.
pub fn classify_call(caller: &Caller) -> OriginVerdict {
    decide(&call_signals(caller), &ShapeSignals::default())
}

fn evidence_of(groups: &[&[(Option<String>, String)]]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| g.iter().map(|(_, e)| e.clone()))
        .collect()
}

fn service_verdict(service: Option<String>, evidence: Vec<String>) -> OriginVerdict {
    OriginVerdict {
        origin: Origin::Service,
        service,
        evidence,
        shape_services: Vec::new(),
    }
}

fn decide(call: &CallSignals, shape: &ShapeSignals) -> OriginVerdict {
    let all_shape = shape.all();
    // 1. AWS itself says a service made the call (the caller cannot set these).
    if !call.strong.is_empty() {
        let service = first_service(&call.strong)
            .or_else(|| shape.grantee_service.clone())
            .or_else(|| first_service(&shape.unforgeable))
            .or_else(|| first_service(&shape.typed));
        let mut evidence = evidence_of(&[&call.strong, &call.weak, &all_shape]);
        evidence.extend(
            call.person
                .iter()
                .map(|p| format!("{p} (the service acted for this caller)")),
        );
        return service_verdict(service, evidence);
    }
    // 2. A grant no person can make.
    if !shape.unforgeable.is_empty() {
        let service = shape
            .grantee_service
            .clone()
            .or_else(|| first_service(&shape.typed))
            .or_else(|| first_service(&shape.unforgeable))
            .or_else(|| first_service(&call.weak));
        let mut evidence = evidence_of(&[&shape.unforgeable, &shape.typed, &call.weak]);
        if !call.person.is_empty() {
            evidence.push(
                "called through the customer's role or session: the service chose the grant"
                    .to_string(),
            );
        }
        return service_verdict(service, evidence);
    }
    // 3. Services that leave invokedBy out: AWS Internal call, no person in
    // sight, and a grant shaped like the service's.
    if call.person.is_empty() && !call.weak.is_empty() && shape.len() > 0 {
        let service = shape
            .grantee_service
            .clone()
            .or_else(|| first_service(&call.weak))
            .or_else(|| first_service(&all_shape));
        let mut evidence = evidence_of(&[&call.weak, &all_shape]);
        evidence.push("no invokedBy: some services leave it out".to_string());
        return service_verdict(service, evidence);
    }
    // 4. A grant to a service principal. A service may act through a role
    // the customer passed it (the role's session then shows a workload's
    // signals): unknown. Not through an IAM user's own credentials (rule 5).
    let user_own_call = call.long_term && !call.person.is_empty();
    if let Some(service) = shape
        .grantee_service
        .clone()
        .filter(|_| !call.interactive && !user_own_call)
    {
        if call.person.is_empty() {
            let mut evidence = evidence_of(&[&all_shape, &call.weak]);
            evidence.push(
                "the grantee is a service principal: only that service can use the grant"
                    .to_string(),
            );
            return service_verdict(Some(service), evidence);
        }
        let mut evidence = call.person.clone();
        evidence.extend(all_shape.iter().map(|(_, e)| e.clone()));
        evidence.push("a grant to a service principal from a person's or workload's session: a service acting through the customer's role, or a person".to_string());
        return OriginVerdict {
            origin: Origin::Unknown,
            service: None,
            evidence,
            shape_services: Vec::new(),
        };
    }
    // 5. A person or workload called directly.
    if !call.person.is_empty() {
        let mut evidence = call.person.clone();
        if user_own_call {
            evidence.push("an IAM user's own credentials: no service acts as a user".to_string());
        }
        evidence.extend(
            call.weak
                .iter()
                .chain(&all_shape)
                .map(|(_, e)| format!("{e} (not enough alone)")),
        );
        return OriginVerdict {
            origin: Origin::Manual,
            service: None,
            evidence,
            shape_services: Vec::new(),
        };
    }
    let mut evidence = evidence_of(&[&call.weak, &all_shape]);
    if evidence.is_empty() {
        evidence.push("no source IP, user agent or invokedBy to go on".to_string());
    } else {
        evidence.push("not enough signals agree".to_string());
    }
    OriginVerdict {
        origin: Origin::Unknown,
        service: None,
        evidence,
        shape_services: Vec::new(),
    }
}

/// A standing grant without a CloudTrail record: a shape no person can
/// make, a grant to a service principal, or two shape signals that agree
/// on one service make it a service grant; anything less is unknown.
fn decide_from_shape(shape: &ShapeSignals) -> OriginVerdict {
    let all = shape.all();
    let services = distinct_services(&all);
    let mut evidence = evidence_of(&[&all]);
    evidence
        .push("no CloudTrail record of its creation: judged from the grant's shape".to_string());
    if !shape.unforgeable.is_empty() || shape.grantee_service.is_some() {
        let service = shape
            .grantee_service
            .clone()
            .or_else(|| first_service(&shape.typed))
            .or_else(|| first_service(&shape.unforgeable));
        return service_verdict(service, evidence);
    }
    if all.len() >= 2 && services.len() == 1 {
        return service_verdict(services.into_iter().next(), evidence);
    }
    OriginVerdict {
        origin: Origin::Unknown,
        service: None,
        evidence,
        shape_services: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{Constraints, Operation};
    use std::collections::BTreeMap;

    fn lambda_grant() -> GrantFacts {
        GrantFacts {
            grantee: Some("arn:aws:sts::012345678901:assumed-role/test-role-cu5o193j/test".into()),
            retiring_principal: Some("lambda.ap-northeast-1.amazonaws.com".into()),
            operations: vec![Operation::Decrypt, Operation::RetireGrant],
            constraints: Some(Constraints {
                encryption_context_equals: Some(BTreeMap::from([(
                    "aws:lambda:FunctionArn".to_string(),
                    "arn:aws:lambda:ap-northeast-1:012345678901:function:test".to_string(),
                )])),
                ..Constraints::default()
            }),
            ..GrantFacts::default()
        }
    }

    fn fas_caller(service_dns: &str) -> Caller {
        Caller {
            arn: Some("arn:aws:sts::012345678901:assumed-role/Admin/alice".into()),
            identity_type: Some("AssumedRole".into()),
            account: Some("012345678901".into()),
            invoked_by: Some(service_dns.into()),
            source_ip: Some(service_dns.into()),
            user_agent: Some(service_dns.into()),
            ..Caller::default()
        }
    }

    fn cli_caller() -> Caller {
        Caller {
            arn: Some("arn:aws:iam::012345678901:user/alice".into()),
            identity_type: Some("IAMUser".into()),
            account: Some("012345678901".into()),
            source_ip: Some("198.51.100.7".into()),
            user_agent: Some("aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64".into()),
            ..Caller::default()
        }
    }

    #[test]
    fn lambda_service_grant_is_service() {
        let v = classify_grant(&lambda_grant(), Some(&fas_caller("lambda.amazonaws.com")));
        assert_eq!(v.origin, Origin::Service);
        assert_eq!(v.service.as_deref(), Some("lambda"));
        assert!(v
            .evidence
            .iter()
            .any(|e| e.contains("invokedBy lambda.amazonaws.com")));
    }

    #[test]
    fn ec2_names_ebs() {
        let v = classify_call(&fas_caller("ec2.amazonaws.com"));
        assert_eq!(v.origin, Origin::Service);
        assert_eq!(v.service.as_deref(), Some("ebs"));
    }

    #[test]
    fn an_iam_user_granting_to_a_service_principal_is_manual_a_role_session_unknown() {
        // The KMS guide's 2026 record: IAM user, IP, user agent AWS Internal.
        let grant = GrantFacts {
            grantee: Some("service-name.amazonaws.com".into()),
            operations: vec![Operation::Encrypt, Operation::RetireGrant],
            ..GrantFacts::default()
        };
        let user = Caller {
            user_agent: Some("AWS Internal".into()),
            source_ip: Some("192.0.2.0".into()),
            ..cli_caller()
        };
        let v = classify_grant(&grant, Some(&user));
        assert_eq!(v.origin, Origin::Manual, "{:?}", v.evidence);
        assert!(v
            .evidence
            .iter()
            .any(|e| e.contains("no service acts as a user")));
        // The same call from a role's session may be a service acting
        // through the role the customer passed it.
        let session = Caller {
            arn: Some("arn:aws:sts::012345678901:assumed-role/workflow/session".into()),
            identity_type: Some("AssumedRole".into()),
            ..user.clone()
        };
        assert_eq!(
            classify_grant(&grant, Some(&session)).origin,
            Origin::Unknown
        );
        // A service acting with the user's credentials says so (invokedBy).
        let forwarded = Caller {
            invoked_by: Some("secretsmanager.amazonaws.com".into()),
            ..user
        };
        assert_eq!(
            classify_grant(&grant, Some(&forwarded)).origin,
            Origin::Service
        );
    }

    #[test]
    fn person_typing_lambda_context_stays_manual() {
        let v = classify_grant(&lambda_grant(), Some(&cli_caller()));
        assert_eq!(v.origin, Origin::Manual);
        assert_eq!(v.shape_services, vec!["lambda".to_string()]);
    }

    #[test]
    fn console_aws_internal_user_agent_is_a_person() {
        let caller = Caller {
            user_agent: Some("AWS Internal".into()),
            source_ip: Some("AWS Internal".into()),
            from_console: true,
            ..cli_caller()
        };
        let v = classify_grant(&lambda_grant(), Some(&caller));
        assert_eq!(v.origin, Origin::Manual, "{:?}", v.evidence);
    }

    #[test]
    fn aws_internal_user_agent_alone_is_not_service_evidence() {
        let caller = Caller {
            user_agent: Some("AWS Internal".into()),
            ..cli_caller()
        };
        let facts = GrantFacts {
            grantee: Some("arn:aws:iam::012345678901:role/app".into()),
            operations: vec![Operation::Decrypt],
            ..GrantFacts::default()
        };
        assert_eq!(classify_grant(&facts, Some(&caller)).origin, Origin::Manual);
    }

    #[test]
    fn service_without_invoked_by_is_recognised_from_aws_internal_and_shape() {
        let caller = Caller {
            arn: Some("arn:aws:sts::012345678901:assumed-role/Admin/alice".into()),
            identity_type: Some("AssumedRole".into()),
            source_ip: Some("AWS Internal".into()),
            user_agent: Some("AWS Internal".into()),
            ..Caller::default()
        };
        let v = classify_grant(&lambda_grant(), Some(&caller));
        assert_eq!(v.origin, Origin::Service);
        assert_eq!(v.service.as_deref(), Some("lambda"));
    }

    #[test]
    fn invoked_by_a_service_is_enough_alone() {
        // The caller cannot set invokedBy: a service made the call.
        let caller = Caller {
            invoked_by: Some("lambda.amazonaws.com".into()),
            ..Caller::default()
        };
        let facts = GrantFacts {
            grantee: Some("arn:aws:iam::012345678901:role/app".into()),
            ..GrantFacts::default()
        };
        let v = classify_grant(&facts, Some(&caller));
        assert_eq!(v.origin, Origin::Service);
        assert_eq!(v.service.as_deref(), Some("lambda"));
        // Regional forms, odd case and internal front ends too; the name
        // comes from the evidence, not from a table.
        for (dns, name) in [
            ("m2.us-west-2.amazonaws.com", "m2"),
            ("apigateway.amazonAWS.com", "apigateway"),
            ("ec2-frontend-api.amazonaws.com", "ec2-frontend-api"),
            (" acm.amazonaws.com ", "acm"),
        ] {
            let caller = Caller {
                invoked_by: Some(dns.into()),
                ..cli_caller()
            };
            let v = classify_grant(&facts, Some(&caller));
            assert_eq!(v.origin, Origin::Service, "{dns}");
            assert_eq!(v.service.as_deref(), Some(name), "{dns}");
        }
        // A person's console front end is not a service.
        let console = Caller {
            invoked_by: Some("signin.amazonaws.com".into()),
            ..cli_caller()
        };
        assert_eq!(
            classify_grant(&facts, Some(&console)).origin,
            Origin::Manual
        );
    }

    #[test]
    fn grants_no_person_can_make_are_service() {
        // AWS Internal as grantee, through the customer's role, from an IP.
        for facts in [
            GrantFacts {
                grantee: Some("AWS Internal".into()),
                ..GrantFacts::default()
            },
            GrantFacts {
                grantee: Some("arn:aws:iam::012345678901:role/app".into()),
                retiring_principal: Some(" aws internal ".into()),
                ..GrantFacts::default()
            },
            GrantFacts {
                grantee: Some("012345678901:aws:ec2-infrastructure:i-81e2f56c".into()),
                ..GrantFacts::default()
            },
            GrantFacts {
                grantee: Some(
                    "arn:aws:sts::012345678901:assumed-role/aws:ec2-infrastructure/i-81e2f56c"
                        .into(),
                ),
                ..GrantFacts::default()
            },
        ] {
            let v = classify_grant(&facts, Some(&cli_caller()));
            assert_eq!(v.origin, Origin::Service, "{facts:?}: {:?}", v.evidence);
        }
    }

    #[test]
    fn a_grant_to_a_service_principal() {
        // No person in sight (a service acting through the customer's role).
        let facts = GrantFacts {
            grantee: Some("chimevoiceconnector.region.amazonaws.com".into()),
            retiring_principal: Some("chimevoiceconnector.region.amazonaws.com".into()),
            ..GrantFacts::default()
        };
        let quiet = Caller {
            arn: Some("arn:aws:sts::012345678901:assumed-role/Admin/x".into()),
            ..Caller::default()
        };
        let v = classify_grant(&facts, Some(&quiet));
        assert_eq!(v.origin, Origin::Service);
        assert_eq!(v.service.as_deref(), Some("chimevoiceconnector"));
        // From a workload's SDK session (a service's own workflow role looks
        // like this): unknown, never manual.
        let sdk = Caller {
            arn: Some("arn:aws:sts::012345678901:assumed-role/workflow/session".into()),
            identity_type: Some("AssumedRole".into()),
            user_agent: Some("aws-sdk-java/2.18.21 Linux/4.14 exec-env/AWS_Lambda_java11".into()),
            ..cli_caller()
        };
        assert_eq!(classify_grant(&facts, Some(&sdk)).origin, Origin::Unknown);
        // The same SDK call with an IAM user's own keys: the user's act.
        let user_sdk = Caller {
            user_agent: sdk.user_agent.clone(),
            ..cli_caller()
        };
        assert_eq!(
            classify_grant(&facts, Some(&user_sdk)).origin,
            Origin::Manual
        );
        // A person at the CLI granting a service principal: their own act.
        assert_eq!(
            classify_grant(&facts, Some(&cli_caller())).origin,
            Origin::Manual
        );
        // Forms: regional, placeholder, whitespace, odd case.
        for p in [
            "Bedrock.amazonaws.com",
            " geo.region.amazonaws.com",
            "aoss.us-east-1.amazonaws.com",
            "network-firewall.{{region}}.amazonaws.com",
        ] {
            assert!(service_name_of_principal(p).is_some(), "{p}");
        }
    }

    #[test]
    fn caller_controlled_fields_alone_never_make_a_service() {
        // A service named as retiring principal, a typed aws:<svc>: context
        // and a service user agent, from a person's session: manual.
        let caller = Caller {
            user_agent: Some("lambda.amazonaws.com".into()),
            ..cli_caller()
        };
        let v = classify_grant(&lambda_grant(), Some(&caller));
        assert_eq!(v.origin, Origin::Manual);
        assert_eq!(v.shape_services, vec!["lambda".to_string()]);
    }

    #[test]
    fn spoofed_service_user_agent_from_an_ip_is_manual() {
        let caller = Caller {
            user_agent: Some("lambda.amazonaws.com".into()),
            ..cli_caller()
        };
        let v = classify_grant(&lambda_grant(), Some(&caller));
        assert_eq!(v.origin, Origin::Manual, "{:?}", v.evidence);
    }

    #[test]
    fn standing_grant_shape_alone() {
        assert_eq!(
            classify_grant(&lambda_grant(), None).origin,
            Origin::Service
        );
        let lone = GrantFacts {
            grantee: Some("arn:aws:iam::012345678901:role/app".into()),
            retiring_principal: Some("lambda.amazonaws.com".into()),
            ..GrantFacts::default()
        };
        assert_eq!(classify_grant(&lone, None).origin, Origin::Unknown);
    }

    #[test]
    fn context_key_namespace_ignores_case() {
        assert_eq!(
            service_of_context_key("AWS:EBS:id").map(|s| s.name),
            Some("ebs")
        );
        assert!(service_of_context_key("aws:unknownsvc:x").is_none());
    }

    #[test]
    fn service_table_names_are_unique() {
        for (i, a) in SERVICES.iter().enumerate() {
            for b in &SERVICES[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(
                    a.labels.iter().all(|l| !b.labels.contains(l)),
                    "{} / {}",
                    a.name,
                    b.name
                );
            }
        }
    }
}

#[cfg(test)]
mod lookalike_tests {
    use super::*;

    #[test]
    fn a_grant_to_a_service_principal_retired_by_it_is_not_dressing_up() {
        let facts = GrantFacts {
            grantee_service_principal: Some("logs.us-east-1.amazonaws.com".into()),
            retiring_service_principal: Some("logs.us-east-1.amazonaws.com".into()),
            ..GrantFacts::default()
        };
        assert!(service_lookalike(&facts).is_empty());
        let dressed = GrantFacts {
            grantee: Some("arn:aws:iam::111122223333:role/app".into()),
            retiring_principal: Some("lambda.us-east-1.amazonaws.com".into()),
            ..GrantFacts::default()
        };
        assert_eq!(service_lookalike(&dressed), vec!["lambda".to_string()]);
    }
}
