//! Key posture: who can make the grants grantwatch watches. The report
//! flags a key whose policy lets principals other than the key's
//! administrators call `kms:CreateGrant` without the condition
//! `kms:GrantIsForAWSResource` (which limits them to grants an AWS service
//! makes for them).

use crate::verdict::{quote, Finding, FindingCode, Severity};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostureError {
    #[error("the key policy is not valid JSON: {0}")]
    NotJson(String),
    #[error("the key policy has no Statement list")]
    NoStatements,
}

fn as_list(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// An IAM action pattern (`kms:*`, `kms:Create*`, `*`) covers `action`.
fn covers(pattern: &str, action: &str) -> bool {
    crate::rules::glob_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

fn allows(statement: &Value, action: &str) -> bool {
    as_list(statement.get("Action"))
        .iter()
        .any(|p| covers(p, action))
}

/// `"kms:GrantIsForAWSResource": "true"` under any Bool-like operator.
fn limited_to_aws_resources(statement: &Value) -> bool {
    statement
        .get("Condition")
        .and_then(Value::as_object)
        .is_some_and(|ops| {
            ops.values().filter_map(Value::as_object).any(|keys| {
                keys.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("kms:GrantIsForAWSResource")
                        && match v {
                            Value::Bool(b) => *b,
                            Value::String(s) => s.eq_ignore_ascii_case("true"),
                            Value::Array(items) => items.iter().any(|i| {
                                i.as_bool() == Some(true)
                                    || i.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
                            }),
                            _ => false,
                        }
                })
            })
        })
}

fn principals(statement: &Value) -> Vec<String> {
    match statement.get("Principal") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Object(map)) => map
            .values()
            .flat_map(|v| as_list(Some(v)))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// `create-grant-open` for a key policy (JSON text), or `None` when only
/// the key's administrators (statements that may also `kms:PutKeyPolicy`)
/// can create grants freely.
pub fn create_grant_open(policy: &str) -> Result<Option<Finding>, PostureError> {
    let doc: Value =
        serde_json::from_str(policy).map_err(|e| PostureError::NotJson(e.to_string()))?;
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err(PostureError::NoStatements),
    };
    let mut open: Vec<String> = Vec::new();
    for s in statements {
        let allow = s
            .get("Effect")
            .and_then(Value::as_str)
            .is_some_and(|e| e.eq_ignore_ascii_case("allow"));
        if !allow || !allows(s, "kms:CreateGrant") || allows(s, "kms:PutKeyPolicy") {
            continue;
        }
        if limited_to_aws_resources(s) {
            continue;
        }
        for p in principals(s) {
            if !open.contains(&p) {
                open.push(p);
            }
        }
    }
    if open.is_empty() {
        return Ok(None);
    }
    Ok(Some(Finding {
        code: FindingCode::CreateGrantOpen,
        severity: Severity::Medium,
        message: format!(
            "the key policy lets {} call CreateGrant without kms:GrantIsForAWSResource: they can grant this key to anyone",
            quote(&open.join(", "))
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default key policy's statements (AWS KMS developer guide,
    /// "Default key policy"): administrators, users, and the grant
    /// statement limited to AWS resources.
    const DEFAULT: &str = r#"{"Version": "2012-10-17", "Statement": [
      {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
       "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
      {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
       "Principal": {"AWS": "arn:aws:iam::111122223333:role/KMSAdminRole"},
       "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                  "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
                  "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"], "Resource": "*"},
      {"Sid": "Allow use of the key", "Effect": "Allow",
       "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleUserRole"},
       "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*"},
      {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
       "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleUserRole"},
       "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
       "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
    ]}"#;

    #[test]
    fn the_default_key_policy_is_not_open() {
        assert_eq!(create_grant_open(DEFAULT).unwrap(), None);
    }

    #[test]
    fn create_grant_without_the_condition_is_open() {
        let open = DEFAULT.replace(
            r#""Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}"#,
            r#""Condition": {}"#,
        );
        let f = create_grant_open(&open).unwrap().unwrap();
        assert_eq!(f.code, FindingCode::CreateGrantOpen);
        assert!(f.message.contains("ExampleUserRole"), "{}", f.message);
        let star =
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:Create*"}}"#;
        assert!(create_grant_open(star).unwrap().is_some());
        assert!(matches!(
            create_grant_open("nope"),
            Err(PostureError::NotJson(_))
        ));
        assert_eq!(create_grant_open("{}"), Err(PostureError::NoStatements));
    }
}
