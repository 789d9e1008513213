//! Links an alert offers as buttons: the key in the KMS console, the event
//! in CloudTrail's event history, and the runbook of the worst finding.
//!
//! Every part of a URL that came from an event is percent-encoded, and a
//! region that is not a plain region name gives no console link at all: a
//! hostile event cannot point a button elsewhere.

use crate::verdict::{FindingCode, Verdict};

/// Where the runbook pages live in the grantwatch source.
pub const RUNBOOK_DOCS_PATH: &str = "docs/findings";

/// No default host: grantwatch has no public URL of its own, and a link to
/// a made-up host would send a responder nowhere. Unset (this empty value),
/// alerts give no runbook button or URL and name the page's path in the
/// grantwatch source instead ([`LinkSettings::runbook`]); a deployment
/// links them with `RUNBOOK_BASE_URL`.
pub const DEFAULT_RUNBOOK_BASE_URL: &str = "";

/// The settings links depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// Base URL of the runbook pages, without a trailing slash: the page of
    /// a code is `<base>/<code>.md`. Empty: not set (no link).
    pub runbook_base_url: String,
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            runbook_base_url: DEFAULT_RUNBOOK_BASE_URL.to_string(),
        }
    }
}

impl LinkSettings {
    /// Settings with a runbook base URL (a trailing `/` is dropped); an
    /// empty or non-http(s) value keeps the default (no link).
    pub fn with_runbook_base(base: &str) -> Self {
        let base = base.trim().trim_end_matches('/');
        if (base.starts_with("https://") || base.starts_with("http://"))
            && !base.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            LinkSettings {
                runbook_base_url: base.to_string(),
            }
        } else {
            LinkSettings::default()
        }
    }

    /// The runbook page's URL, when the deployment set a base URL.
    pub fn runbook_url(&self, code: FindingCode) -> Option<String> {
        (!self.runbook_base_url.is_empty())
            .then(|| format!("{}/{}.md", self.runbook_base_url, code.as_str()))
    }

    /// The runbook page: its URL, or without a base URL its path in the
    /// grantwatch source (`docs/findings/<code>.md`).
    pub fn runbook(&self, code: FindingCode) -> String {
        self.runbook_url(code)
            .unwrap_or_else(|| format!("{RUNBOOK_DOCS_PATH}/{}.md", code.as_str()))
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A region name as AWS writes them (`eu-west-1`), else `None`.
fn plain_region(r: &str) -> Option<&str> {
    let ok = !r.is_empty()
        && r.len() <= 25
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(r)
}

/// The partition of the key's ARN (`aws` when unknown).
fn partition(v: &Verdict) -> &str {
    v.key_arn
        .as_deref()
        .and_then(|arn| arn.strip_prefix("arn:"))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or("aws")
}

/// Console host for the region, in the commercial partition only (GovCloud
/// and China have other consoles: no link rather than a wrong one).
fn console(v: &Verdict) -> Option<(String, &str)> {
    if partition(v) != "aws" {
        return None;
    }
    let region = plain_region(super::describe::region(v)?)?;
    Some((format!("https://{region}.console.aws.amazon.com"), region))
}

/// The key id: the part after `key/` of the key ARN, else the key as the
/// event gave it (an id, or an alias: the console needs the id).
fn key_id(v: &Verdict) -> Option<&str> {
    if let Some(id) = v
        .key_arn
        .as_deref()
        .and_then(|arn| arn.rsplit_once(":key/"))
        .map(|(_, id)| id)
    {
        return Some(id).filter(|id| !id.is_empty());
    }
    v.key
        .as_deref()
        .map(|k| k.rsplit_once(":key/").map(|(_, id)| id).unwrap_or(k))
        .filter(|k| !k.is_empty() && !k.starts_with("alias/") && !k.starts_with("arn:"))
}

/// The key's page in the KMS console.
pub fn kms_key_console(v: &Verdict) -> Option<String> {
    let (host, region) = console(v)?;
    let id = key_id(v)?;
    Some(format!(
        "{host}/kms/home?region={region}#/kms/keys/{}",
        percent_encode(id)
    ))
}

/// The event in CloudTrail's event history (90 days of management events).
pub fn cloudtrail_event(v: &Verdict) -> Option<String> {
    let (host, region) = console(v)?;
    if v.event_id.trim().is_empty() {
        return None;
    }
    Some(format!(
        "{host}/cloudtrailv2/home?region={region}#/events/{}",
        percent_encode(&v.event_id)
    ))
}

/// The most severe finding's code (ties: the first), if any.
pub fn worst_finding(v: &Verdict) -> Option<FindingCode> {
    v.findings
        .iter()
        .fold(None::<&crate::verdict::Finding>, |worst, f| match worst {
            Some(w) if w.severity >= f.severity => Some(w),
            _ => Some(f),
        })
        .map(|f| f.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::manual_grant;

    #[test]
    fn console_links_name_region_key_and_event() {
        let v = manual_grant();
        assert_eq!(
            kms_key_console(&v).as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/kms/home?region=eu-west-1#/kms/keys/1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert_eq!(
            cloudtrail_event(&v).as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1#/events/11111111-2222-3333-4444-555555555555")
        );
    }

    #[test]
    fn hostile_values_are_encoded_or_give_no_link() {
        let mut v = manual_grant();
        v.event_id = "x\"><script>/../evil".into();
        let url = cloudtrail_event(&v).expect("link");
        assert!(
            url.ends_with("#/events/x%22%3E%3Cscript%3E%2F..%2Fevil"),
            "{url}"
        );
        v.region = Some("evil.example/".into());
        assert_eq!(cloudtrail_event(&v), None);
        assert_eq!(kms_key_console(&v), None);
        let mut gov = manual_grant();
        gov.key_arn = Some("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/k".into());
        assert_eq!(kms_key_console(&gov), None);
    }

    #[test]
    fn runbook_base_is_a_setting_and_unset_links_nowhere() {
        let s = LinkSettings::with_runbook_base("https://wiki.example.com/runbooks/");
        assert_eq!(
            s.runbook_url(FindingCode::ManualGrant).as_deref(),
            Some("https://wiki.example.com/runbooks/manual-grant.md")
        );
        assert_eq!(
            s.runbook(FindingCode::ManualGrant),
            "https://wiki.example.com/runbooks/manual-grant.md"
        );
        for bad in ["", "javascript:alert(1)", "https://a b"] {
            assert_eq!(
                LinkSettings::with_runbook_base(bad),
                LinkSettings::default()
            );
        }
        let unset = LinkSettings::default();
        assert_eq!(unset.runbook_url(FindingCode::ManualGrant), None);
        assert_eq!(
            unset.runbook(FindingCode::ManualGrant),
            "docs/findings/manual-grant.md"
        );
        assert_eq!(
            worst_finding(&manual_grant()),
            Some(FindingCode::CrossAccountGrantee)
        );
    }
}
