//! MITRE ATT&CK (Enterprise, cloud) techniques a finding code points at,
//! where one fits: tags for alerts, ASFF `Types`, OCSF `attacks` and the
//! runbooks. Codes about a grant's shape (no constraint, no retiring
//! principal) or about grantwatch itself have none: they are weaknesses or
//! facts, not an adversary's technique.

use crate::verdict::FindingCode;

/// One ATT&CK technique: id (`T1098`, `T1562.001`) and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Technique {
    pub id: &'static str,
    pub name: &'static str,
    /// The tactic it is listed under for this use.
    pub tactic: &'static str,
}

const ACCOUNT_MANIPULATION: Technique = Technique {
    id: "T1098",
    name: "Account Manipulation",
    tactic: "Persistence",
};
const TRANSFER_TO_CLOUD_ACCOUNT: Technique = Technique {
    id: "T1537",
    name: "Transfer Data to Cloud Account",
    tactic: "Exfiltration",
};
const CLOUD_ACCOUNTS: Technique = Technique {
    id: "T1078.004",
    name: "Valid Accounts: Cloud Accounts",
    tactic: "Initial Access",
};
const MASQUERADING: Technique = Technique {
    id: "T1036",
    name: "Masquerading",
    tactic: "Defense Evasion",
};
const ACCOUNT_ACCESS_REMOVAL: Technique = Technique {
    id: "T1531",
    name: "Account Access Removal",
    tactic: "Impact",
};
const DISABLE_TOOLS: Technique = Technique {
    id: "T1562.001",
    name: "Impair Defenses: Disable or Modify Tools",
    tactic: "Defense Evasion",
};
const DATA_DESTRUCTION: Technique = Technique {
    id: "T1485",
    name: "Data Destruction",
    tactic: "Impact",
};
const CLOUD_DISCOVERY: Technique = Technique {
    id: "T1580",
    name: "Cloud Infrastructure Discovery",
    tactic: "Discovery",
};

/// The techniques of a finding code (empty where none fits).
pub fn techniques(code: FindingCode) -> &'static [Technique] {
    use FindingCode::*;
    match code {
        ManualGrant | AccountRootGrantee | ReDelegation | SelfGrant | GrantBurst
        | GrantPersistence | KeyPolicyChanged => &[ACCOUNT_MANIPULATION],
        CrossAccountGrantee => &[ACCOUNT_MANIPULATION, TRANSFER_TO_CLOUD_ACCOUNT],
        CrossAccountCaller | AccessDenied => &[CLOUD_ACCOUNTS],
        DryRun => &[CLOUD_DISCOVERY],
        ServiceContextByPerson => &[MASQUERADING],
        ServiceGrantRemoved => &[ACCOUNT_ACCESS_REMOVAL],
        PipelineTampered => &[DISABLE_TOOLS],
        KeyDisabled => &[DATA_DESTRUCTION],
        // Shape of a grant, grantwatch's own state, or a code added later:
        // no adversary technique to name.
        _ => &[],
    }
}

/// The technique ids of a finding code: `["T1098", "T1537"]`.
pub fn technique_ids(code: FindingCode) -> Vec<&'static str> {
    techniques(code).iter().map(|t| t.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_and_the_risky_codes_have_one() {
        for code in FindingCode::ALL {
            for t in techniques(code) {
                let (base, sub) = t.id.split_once('.').unwrap_or((t.id, "000"));
                assert!(
                    base.len() == 5
                        && base.starts_with('T')
                        && base[1..].bytes().all(|b| b.is_ascii_digit())
                        && sub.len() == 3
                        && sub.bytes().all(|b| b.is_ascii_digit()),
                    "{code}: {}",
                    t.id
                );
            }
        }
        assert_eq!(
            technique_ids(FindingCode::CrossAccountGrantee),
            ["T1098", "T1537"]
        );
        assert_eq!(technique_ids(FindingCode::PipelineTampered), ["T1562.001"]);
        assert!(technique_ids(FindingCode::NoRetiringPrincipal).is_empty());
    }
}
