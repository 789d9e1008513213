//! ARNs, account ids, service principals, unique ids, key ids.
//!
//! Everything here reads strings that come from events (untrusted): no
//! function panics, whatever the input.

/// The parts of an ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Parse an ARN; `None` when the string is not one.
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = parts.next()?;
        let service = parts.next()?;
        let region = parts.next()?;
        let account = parts.next()?;
        let resource = parts.next()?;
        if partition.is_empty() || service.is_empty() {
            return None;
        }
        Some(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }
}

/// A 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The kind of IAM entity a unique id (`AROA…`, `AIDA…`) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueIdKind {
    Role,
    User,
    Group,
    /// Any other IAM unique-id prefix (AKIA, ASIA, ANPA, ...).
    Other,
}

/// Recognise an IAM unique id: a four-letter `A…` prefix, then upper-case
/// letters and digits (16–128 characters in all).
pub fn unique_id_kind(s: &str) -> Option<UniqueIdKind> {
    let len_ok = (16..=128).contains(&s.len());
    let chars_ok = s
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !len_ok || !chars_ok || !s.starts_with('A') {
        return None;
    }
    Some(match &s[..4] {
        "AROA" => UniqueIdKind::Role,
        "AIDA" => UniqueIdKind::User,
        "AGPA" => UniqueIdKind::Group,
        "ANPA" | "ANVA" | "AKIA" | "ASIA" | "APKA" | "ASCA" | "AIPA" | "ABIA" | "ACCA" => {
            UniqueIdKind::Other
        }
        _ => return None,
    })
}

/// A service principal (`lambda.amazonaws.com`,
/// `lambda.ap-northeast-1.amazonaws.com`, `x.amazonaws.com.cn`): the
/// service's DNS label and the region, when the principal is regional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipal<'a> {
    pub label: &'a str,
    pub region: Option<&'a str>,
}

impl<'a> ServicePrincipal<'a> {
    /// Lenient: stray whitespace, odd case (`apigateway.amazonAWS.com`),
    /// and the documentation placeholders `region` / `{{region}}` /
    /// `<region>` in the region position are accepted. The label keeps the
    /// case it was given: use [`ServicePrincipal::service`] for the name.
    pub fn parse(s: &'a str) -> Option<ServicePrincipal<'a>> {
        let s = s.trim();
        let host = strip_suffix_ignore_case(s, ".amazonaws.com.cn")
            .or_else(|| strip_suffix_ignore_case(s, ".amazonaws.com"))?;
        let mut labels = host.split('.');
        let label = labels.next()?;
        let region = labels.next();
        if labels.next().is_some() || label.is_empty() || !is_dns_label_any_case(label) {
            return None;
        }
        let region = match region {
            None => None,
            Some(r) if is_region_placeholder(r) => None,
            Some(r) if looks_like_region(&r.to_ascii_lowercase()) => Some(r),
            Some(_) => return None,
        };
        Some(ServicePrincipal { label, region })
    }

    /// The service's DNS label, lower case (`lambda`, `apigateway`).
    pub fn service(&self) -> String {
        self.label.to_ascii_lowercase()
    }
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..cut])
}

/// `region`, `{{region}}`, `<region>`, `` `region` ``: a documentation
/// placeholder left in a published record.
fn is_region_placeholder(r: &str) -> bool {
    r.trim_matches(|c| matches!(c, '{' | '}' | '<' | '>' | '`'))
        .eq_ignore_ascii_case("region")
}

fn is_dns_label_any_case(s: &str) -> bool {
    s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A DNS label: at most 63 lower-case letters, digits and dashes.
fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `ap-northeast-1`, `us-gov-west-1`, `cn-north-1`: letters and dashes,
/// ending in a digit.
pub fn looks_like_region(s: &str) -> bool {
    s.contains('-') && s.bytes().last().is_some_and(|b| b.is_ascii_digit()) && is_dns_label(s)
}

/// The partition a region belongs to.
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("eusc-") {
        "aws-eusc"
    } else {
        "aws"
    }
}

/// What a principal string names. Grantees, retiring principals and
/// callers all come through here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal<'a> {
    /// `arn:aws:iam::123456789012:root` or a bare account id.
    AccountRoot {
        account: &'a str,
    },
    /// An IAM role (`AWSServiceRoleFor*` roles are [`Principal::ServiceLinkedRole`]).
    Role {
        account: &'a str,
        name: &'a str,
    },
    /// `arn:aws:iam::<account>:role/aws-service-role/<service>/AWSServiceRoleFor<Name>`.
    ServiceLinkedRole {
        account: &'a str,
        /// The service principal in the role's path, when present.
        service: Option<&'a str>,
        name: &'a str,
    },
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    AssumedRole {
        account: &'a str,
        role: &'a str,
        session: &'a str,
    },
    User {
        account: &'a str,
        name: &'a str,
    },
    /// Any other IAM/STS ARN (federated user, group, ...).
    OtherArn(Arn<'a>),
    Service(ServicePrincipal<'a>),
    /// `AROA…`, `AIDA…`: an IAM entity by unique id, not by name.
    UniqueId {
        kind: UniqueIdKind,
        id: &'a str,
    },
    /// `<account>:aws:ec2-infrastructure:<instance>`: EBS's grantee for an
    /// attached volume.
    Ec2Infrastructure {
        account: &'a str,
        instance: &'a str,
    },
    /// The literal `AWS Internal`.
    AwsInternal,
    /// Anything else, kept as given.
    Unrecognised(&'a str),
}

impl<'a> Principal<'a> {
    pub fn parse(s: &'a str) -> Principal<'a> {
        let s = s.trim();
        if s == "AWS Internal" {
            return Principal::AwsInternal;
        }
        if is_account_id(s) {
            return Principal::AccountRoot { account: s };
        }
        if let Some(kind) = unique_id_kind(s) {
            return Principal::UniqueId { kind, id: s };
        }
        if let Some(sp) = ServicePrincipal::parse(s) {
            return Principal::Service(sp);
        }
        if let Some((account, instance)) = s
            .split_once(":aws:ec2-infrastructure:")
            .filter(|(account, _)| is_account_id(account))
        {
            return Principal::Ec2Infrastructure { account, instance };
        }
        match Arn::parse(s) {
            Some(arn) => Self::from_arn(arn),
            None => Principal::Unrecognised(s),
        }
    }

    fn from_arn(arn: Arn<'a>) -> Principal<'a> {
        let account = arn.account;
        match (arn.service, arn.resource) {
            ("iam", "root") => Principal::AccountRoot { account },
            ("iam", resource) if resource.starts_with("role/") => {
                let path_and_name = &resource["role/".len()..];
                let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
                if name.starts_with("AWSServiceRoleFor") {
                    // role/aws-service-role/<service principal>/<name>
                    let service = path_and_name
                        .strip_prefix("aws-service-role/")
                        .and_then(|rest| rest.split('/').next())
                        .filter(|svc| *svc != name);
                    Principal::ServiceLinkedRole {
                        account,
                        service,
                        name,
                    }
                } else {
                    Principal::Role { account, name }
                }
            }
            ("iam", resource) if resource.starts_with("user/") => {
                let name = resource.rsplit('/').next().unwrap_or(resource);
                Principal::User { account, name }
            }
            ("sts", resource) if resource.starts_with("assumed-role/") => {
                let mut parts = resource["assumed-role/".len()..].splitn(2, '/');
                let role = parts.next().unwrap_or_default();
                let session = parts.next().unwrap_or_default();
                if role == "aws:ec2-infrastructure" && is_account_id(account) {
                    return Principal::Ec2Infrastructure {
                        account,
                        instance: session,
                    };
                }
                Principal::AssumedRole {
                    account,
                    role,
                    session,
                }
            }
            _ => Principal::OtherArn(arn),
        }
    }

    /// The account the principal belongs to, when it names one.
    pub fn account(&self) -> Option<&'a str> {
        match self {
            Principal::AccountRoot { account }
            | Principal::Role { account, .. }
            | Principal::ServiceLinkedRole { account, .. }
            | Principal::AssumedRole { account, .. }
            | Principal::User { account, .. }
            | Principal::Ec2Infrastructure { account, .. } => Some(account),
            Principal::OtherArn(arn) if is_account_id(arn.account) => Some(arn.account),
            _ => None,
        }
    }

    pub fn is_account_root(&self) -> bool {
        matches!(self, Principal::AccountRoot { .. })
    }
}

/// The account of a principal string, when it names one.
pub fn principal_account(s: &str) -> Option<&str> {
    Principal::parse(s).account()
}

/// The partition of an ARN-shaped principal (`aws`, `aws-cn`, ...).
pub fn arn_partition(s: &str) -> Option<&str> {
    Arn::parse(s).map(|arn| arn.partition)
}

/// A KMS key id: a UUID, or a multi-Region key id `mrk-<32 hex>`.
pub fn is_key_id(s: &str) -> bool {
    if let Some(hex) = s.strip_prefix("mrk-") {
        return hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A key ARN: `arn:<p>:kms:<region>:<account>:key/<id>`.
pub fn is_key_arn(s: &str) -> bool {
    Arn::parse(s).is_some_and(|arn| arn.service == "kms" && arn.resource.starts_with("key/"))
}

/// An alias name (`alias/x`) or alias ARN (`arn:…:kms:…:alias/x`).
pub fn is_alias(s: &str) -> bool {
    s.starts_with("alias/")
        || Arn::parse(s)
            .is_some_and(|arn| arn.service == "kms" && arn.resource.starts_with("alias/"))
}

/// The key id inside a key ARN, or the id itself.
pub fn key_id_of(key: &str) -> Option<&str> {
    if is_key_id(key) {
        return Some(key);
    }
    Arn::parse(key)
        .filter(|arn| arn.service == "kms")
        .and_then(|arn| arn.resource.strip_prefix("key/"))
}

/// The alias name (`alias/x`) of an alias name or alias ARN.
pub fn alias_name_of(key: &str) -> Option<&str> {
    if key.starts_with("alias/") {
        return Some(key);
    }
    Arn::parse(key)
        .filter(|arn| arn.service == "kms" && arn.resource.starts_with("alias/"))
        .map(|arn| arn.resource)
}

/// The key ARN for a key given as an ARN or a bare key id (with the
/// region, account and partition to build it from). Aliases cannot be
/// resolved offline: `None`.
pub fn key_arn_for(
    key: &str,
    region: Option<&str>,
    account: Option<&str>,
    partition: Option<&str>,
) -> Option<String> {
    if is_key_arn(key) {
        return Some(key.to_string());
    }
    if !is_key_id(key) {
        return None;
    }
    let region = region.filter(|r| looks_like_region(r))?;
    let account = account.filter(|a| is_account_id(a))?;
    let partition = partition.unwrap_or_else(|| partition_of_region(region));
    Some(format!("arn:{partition}:kms:{region}:{account}:key/{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_parts() {
        let arn = Arn::parse("arn:aws:sts::012345678901:assumed-role/test-role/test").unwrap();
        assert_eq!(arn.partition, "aws");
        assert_eq!(arn.service, "sts");
        assert_eq!(arn.region, "");
        assert_eq!(arn.account, "012345678901");
        assert_eq!(arn.resource, "assumed-role/test-role/test");
        assert!(Arn::parse("arn:aws").is_none());
        assert!(Arn::parse("not an arn").is_none());
    }

    #[test]
    fn assumed_role_session() {
        assert_eq!(
            Principal::parse("arn:aws:sts::012345678901:assumed-role/test-role-cu5o193j/test"),
            Principal::AssumedRole {
                account: "012345678901",
                role: "test-role-cu5o193j",
                session: "test"
            }
        );
    }

    #[test]
    fn account_roots() {
        assert!(Principal::parse("arn:aws:iam::123456789012:root").is_account_root());
        assert!(Principal::parse("123456789012").is_account_root());
        assert!(!Principal::parse("12345678901").is_account_root());
    }

    #[test]
    fn service_principals_global_regional_and_china() {
        assert_eq!(
            ServicePrincipal::parse("lambda.amazonaws.com"),
            Some(ServicePrincipal {
                label: "lambda",
                region: None
            })
        );
        assert_eq!(
            ServicePrincipal::parse("lambda.ap-northeast-1.amazonaws.com"),
            Some(ServicePrincipal {
                label: "lambda",
                region: Some("ap-northeast-1")
            })
        );
        assert_eq!(
            ServicePrincipal::parse("ec2.cn-north-1.amazonaws.com.cn").map(|s| s.label),
            Some("ec2")
        );
        assert!(ServicePrincipal::parse("evil.example.com").is_none());
        assert!(ServicePrincipal::parse("a.b.c.amazonaws.com").is_none());
        assert!(ServicePrincipal::parse(".amazonaws.com").is_none());
    }

    #[test]
    fn unique_ids() {
        assert_eq!(
            unique_id_kind("AROAEXAMPLEID1234567"),
            Some(UniqueIdKind::Role)
        );
        assert_eq!(
            unique_id_kind("AIDAEXAMPLEID1234567"),
            Some(UniqueIdKind::User)
        );
        assert_eq!(
            unique_id_kind("AGPAEXAMPLEID1234567"),
            Some(UniqueIdKind::Group)
        );
        assert_eq!(unique_id_kind("AROA"), None);
        assert_eq!(unique_id_kind("ZZZZEXAMPLEID1234567"), None);
        assert_eq!(unique_id_kind("AROAexampleid1234567"), None);
    }

    #[test]
    fn ec2_infrastructure_grantee() {
        assert_eq!(
            Principal::parse("111122223333:aws:ec2-infrastructure:i-0123456789abcdef0"),
            Principal::Ec2Infrastructure {
                account: "111122223333",
                instance: "i-0123456789abcdef0"
            }
        );
    }

    #[test]
    fn service_linked_roles() {
        let p = Principal::parse(
            "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
        );
        assert_eq!(
            p,
            Principal::ServiceLinkedRole {
                account: "111122223333",
                service: Some("autoscaling.amazonaws.com"),
                name: "AWSServiceRoleForAutoScaling"
            }
        );
        assert_eq!(p.account(), Some("111122223333"));
        assert!(matches!(
            Principal::parse("arn:aws:iam::111122223333:role/AWSServiceRoleForRDS"),
            Principal::ServiceLinkedRole { service: None, .. }
        ));
    }

    #[test]
    fn key_helpers() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert!(is_key_id(id));
        assert!(is_key_id("mrk-1234abcd12ab34cd56ef1234567890ab"));
        assert!(!is_key_id("alias/x"));
        assert_eq!(
            key_arn_for(id, Some("cn-north-1"), Some("111122223333"), None).as_deref(),
            Some("arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert_eq!(
            key_arn_for(
                "alias/payments",
                Some("us-east-1"),
                Some("111122223333"),
                None
            ),
            None
        );
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(key_id_of(arn), Some(id));
        assert_eq!(key_arn_for(arn, None, None, None).as_deref(), Some(arn));
        assert!(is_alias(
            "arn:aws:kms:us-east-1:111122223333:alias/payments"
        ));
        assert_eq!(
            alias_name_of("arn:aws:kms:us-east-1:111122223333:alias/payments"),
            Some("alias/payments")
        );
    }
}
