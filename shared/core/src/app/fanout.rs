//! The report beyond one invocation: the scope split into shards of a few
//! account-regions each (run by a Step Functions Distributed Map, one
//! Lambda invocation per shard), and the shards' results merged back into
//! the account-regions of one report. See docs/fanout.md.
//!
//! Pure and deterministic: [`split`] and [`merge`] know nothing of AWS.
//! The rule that matters: a shard that failed, or wrote no result, never
//! makes the report smaller. Each of its account-regions is merged as an
//! unread part naming the shard ([`ShardPart::missing`]), so the report is
//! partial and says where.

use crate::ports::inventory::AccountRegion;
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// Account-regions per shard unless the plan is told otherwise: small
/// enough that a shard of ordinary account-regions finishes well inside
/// one 15-minute invocation, large enough that 2,000 accounts x 17 regions
/// are 680 shards.
pub const DEFAULT_SHARD_SIZE: usize = 50;

/// The largest shard size the plan accepts (one shard must still fit one
/// invocation).
pub const MAX_SHARD_SIZE: usize = 1000;

/// One shard: the account-regions one invocation inventories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Stable within a run and across runs of the same scope: the shard's
    /// first account-region in sorted order (`<account>-<region>`), unique
    /// because shards never overlap. Safe in an S3 key.
    pub id: String,
    /// In the order the shard reads them (rotated: see [`split`]).
    pub targets: Vec<AccountRegion>,
}

/// Split the account-regions into shards of at most `shard_size`.
///
/// - Deterministic: the shards are cut from the sorted, de-duplicated
///   account-regions, so the same scope gives the same shards every week
///   (a shard's rotation then means something).
/// - An account's regions stay together where they fit (one AssumeRole per
///   account per shard), since sorted order groups them.
/// - Rotation-aware: `rotate` is applied to each shard's targets (the
///   single-invocation rule: start where the previous run was cut by its
///   deadline), and the shards are listed in the order `rotated` (the whole
///   scope, rotated the same way) first reaches them, so the Map starts the
///   shard that was cut last week first.
pub fn split(
    rotated: &[AccountRegion],
    shard_size: usize,
    rotate: impl Fn(&mut [AccountRegion]),
) -> Vec<Shard> {
    let sorted: Vec<AccountRegion> = rotated
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut shards: Vec<Shard> = sorted
        .chunks(shard_size.clamp(1, MAX_SHARD_SIZE))
        .map(|chunk| {
            let mut targets = chunk.to_vec();
            let id = shard_id(&targets[0]);
            rotate(&mut targets);
            Shard { id, targets }
        })
        .collect();
    let first_seen: BTreeMap<&AccountRegion, usize> = rotated
        .iter()
        .enumerate()
        .rev()
        .map(|(i, at)| (at, i))
        .collect();
    let entry = |shard: &Shard| {
        shard
            .targets
            .iter()
            .filter_map(|at| first_seen.get(at).copied())
            .min()
            .unwrap_or(usize::MAX)
    };
    shards.sort_by_cached_key(entry);
    shards
}

/// `<account>-<region>`, restricted to characters safe in an S3 key and a
/// Step Functions item (anything else becomes `_`).
fn shard_id(first: &AccountRegion) -> String {
    format!("{}-{}", first.account, first.region)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One account-region's result, as a shard writes it and the merge reads
/// it.
pub trait ShardPart: Sized {
    /// The account-region this part covers.
    fn account_region(&self) -> AccountRegion;
    /// The part for an account-region nobody read: unread, with a coverage
    /// gap carrying `detail`.
    fn missing(at: &AccountRegion, detail: String) -> Self;
}

/// What the merge found for one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardOutcome<T> {
    /// The shard's result file: its parts.
    Done(Vec<T>),
    /// No result: the shard failed (the Map's error, when known) or never
    /// wrote one.
    Failed(String),
}

/// The merged parts, in the order of the plan's shards, and what did not
/// fit the plan (to be logged: it is never silently used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged<T> {
    /// Exactly one part per planned account-region.
    pub parts: Vec<T>,
    /// Account-regions merged as missing, with the shard they belonged to.
    pub missing: Vec<(String, AccountRegion)>,
    /// Parts not in their shard's plan (or repeated), and results of
    /// shards the plan does not name: dropped, described.
    pub unexpected: Vec<String>,
}

/// Merge the shards' outcomes into one part per planned account-region.
///
/// A planned account-region without a part (a failed shard, a result that
/// lacks it) becomes [`ShardPart::missing`] naming the shard and why; so
/// `merge(split(x))` always covers exactly `x`, whatever the shards did.
pub fn merge<T: ShardPart>(
    shards: &[Shard],
    mut outcomes: BTreeMap<String, ShardOutcome<T>>,
) -> Merged<T> {
    let mut merged = Merged {
        parts: Vec::new(),
        missing: Vec::new(),
        unexpected: Vec::new(),
    };
    for shard in shards {
        let planned: BTreeSet<&AccountRegion> = shard.targets.iter().collect();
        let (mut found, why_missing) = match outcomes.remove(&shard.id) {
            Some(ShardOutcome::Done(parts)) => {
                let mut found: BTreeMap<AccountRegion, T> = BTreeMap::new();
                for part in parts {
                    let at = part.account_region();
                    if !planned.contains(&at) {
                        merged
                            .unexpected
                            .push(format!("shard {} returned {at}, not in its plan", shard.id));
                        continue;
                    }
                    match found.entry(at) {
                        Entry::Vacant(slot) => {
                            slot.insert(part);
                        }
                        Entry::Occupied(slot) => merged.unexpected.push(format!(
                            "shard {} returned {} twice",
                            shard.id,
                            slot.key()
                        )),
                    }
                }
                (
                    found,
                    format!("fan-out shard {} wrote no result for it", shard.id),
                )
            }
            Some(ShardOutcome::Failed(why)) => (
                BTreeMap::new(),
                format!("fan-out shard {} failed: {why}", shard.id),
            ),
            None => (
                BTreeMap::new(),
                format!("fan-out shard {} wrote no result", shard.id),
            ),
        };
        for at in &shard.targets {
            match found.remove(at) {
                Some(part) => merged.parts.push(part),
                None => {
                    merged.parts.push(T::missing(at, why_missing.clone()));
                    merged.missing.push((shard.id.clone(), at.clone()));
                }
            }
        }
    }
    for id in outcomes.keys() {
        merged.unexpected.push(format!(
            "a result for shard {id}, which the plan does not name"
        ));
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part that remembers whether it was read.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Part {
        at: AccountRegion,
        read: bool,
        detail: Option<String>,
    }

    impl ShardPart for Part {
        fn account_region(&self) -> AccountRegion {
            self.at.clone()
        }
        fn missing(at: &AccountRegion, detail: String) -> Self {
            Part {
                at: at.clone(),
                read: false,
                detail: Some(detail),
            }
        }
    }

    fn read(at: &AccountRegion) -> Part {
        Part {
            at: at.clone(),
            read: true,
            detail: None,
        }
    }

    /// `accounts` x `regions`, account ids 12 digits.
    fn organization(accounts: usize, regions: &[&str]) -> Vec<AccountRegion> {
        (0..accounts)
            .flat_map(|a| {
                regions
                    .iter()
                    .map(move |r| AccountRegion::new(format!("{:012}", 100_000_000_000 + a), *r))
            })
            .collect()
    }

    const REGIONS: [&str; 5] = [
        "eu-west-1",
        "us-east-1",
        "us-east-2",
        "ap-south-1",
        "sa-east-1",
    ];

    fn no_rotation(_: &mut [AccountRegion]) {}

    fn all_done(shards: &[Shard]) -> BTreeMap<String, ShardOutcome<Part>> {
        shards
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    ShardOutcome::Done(s.targets.iter().map(read).collect()),
                )
            })
            .collect()
    }

    fn covered(parts: &[Part]) -> Vec<AccountRegion> {
        let mut at: Vec<AccountRegion> = parts.iter().map(|p| p.at.clone()).collect();
        at.sort();
        at
    }

    #[test]
    fn merge_of_split_covers_exactly_the_scope_200_accounts_by_5_regions() {
        let scope = organization(200, &REGIONS);
        let shards = split(&scope, 7, no_rotation);
        assert_eq!(shards.len(), 1000usize.div_ceil(7));
        assert!(shards
            .iter()
            .all(|s| !s.targets.is_empty() && s.targets.len() <= 7));
        let ids: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), shards.len(), "shard ids are unique");

        let merged = merge(&shards, all_done(&shards));
        let mut expected = scope.clone();
        expected.sort();
        assert_eq!(covered(&merged.parts), expected, "each once, none extra");
        assert!(merged.parts.iter().all(|p| p.read));
        assert!(merged.missing.is_empty() && merged.unexpected.is_empty());
    }

    #[test]
    fn the_split_is_deterministic_and_keeps_an_accounts_regions_together() {
        let scope = organization(30, &REGIONS);
        let mut shuffled = scope.clone();
        shuffled.reverse();
        shuffled.extend(scope.iter().take(3).cloned());
        let a = split(&scope, 10, no_rotation);
        let b = split(&shuffled, 10, no_rotation);
        let ids = |s: &[Shard]| s.iter().map(|s| s.id.clone()).collect::<BTreeSet<_>>();
        assert_eq!(
            ids(&a),
            ids(&b),
            "same scope, same shards, duplicates dropped"
        );
        assert_eq!(a.iter().map(|s| s.targets.len()).sum::<usize>(), 150);
        // 10 per shard, 5 regions per account: every account in one shard.
        for shard in &a {
            let accounts: BTreeSet<&str> =
                shard.targets.iter().map(|t| t.account.as_str()).collect();
            assert_eq!(accounts.len(), 2, "{shard:?}");
        }
        assert_eq!(a[0].id, "100000000000-ap-south-1");
    }

    #[test]
    fn the_shard_cut_last_week_goes_first_and_starts_where_it_was_cut() {
        let scope = organization(10, &REGIONS);
        let mut sorted = scope.clone();
        sorted.sort();
        // Last week's run was cut at the 23rd account-region (in the third
        // shard of ten): the whole scope is rotated to start there.
        let cut_at = sorted[23].clone();
        let mut rotated = sorted.clone();
        rotated.rotate_left(23);
        let rotate = |targets: &mut [AccountRegion]| {
            if let Some(i) = targets.iter().position(|t| *t == cut_at) {
                targets.rotate_left(i);
            }
        };
        let shards = split(&rotated, 10, rotate);
        assert_eq!(
            shards[0].targets[0], cut_at,
            "the cut shard first, from the cut"
        );
        assert_eq!(
            shards[0].id,
            shard_id(&sorted[20]),
            "its id does not rotate"
        );
        assert_eq!(shards[1].id, shard_id(&sorted[30]));
        assert_eq!(shards[3].id, shard_id(&sorted[0]), "wrapping around");
        assert_eq!(shards[4].id, shard_id(&sorted[10]));
        let merged = merge(&shards, all_done(&shards));
        assert_eq!(covered(&merged.parts), sorted);
    }

    #[test]
    fn a_failed_shard_becomes_named_gaps_never_a_smaller_report() {
        let scope = organization(20, &REGIONS);
        let shards = split(&scope, 10, no_rotation);
        let mut outcomes = all_done(&shards);
        // One shard failed (the Map's Catch), one never wrote its result,
        // one wrote a result lacking an account-region and naming one
        // outside its plan, twice.
        outcomes.insert(
            shards[1].id.clone(),
            ShardOutcome::Failed("States.Timeout".into()),
        );
        outcomes.remove(&shards[2].id);
        let stranger = AccountRegion::new("999999999999", "eu-west-1");
        let lacking = shards[3].targets[4].clone();
        let mut parts: Vec<Part> = shards[3]
            .targets
            .iter()
            .filter(|t| **t != lacking)
            .map(read)
            .collect();
        parts.push(read(&stranger));
        parts.push(read(&shards[3].targets[0]));
        outcomes.insert(shards[3].id.clone(), ShardOutcome::Done(parts));
        outcomes.insert("not-planned".into(), ShardOutcome::Done(vec![]));

        let merged = merge(&shards, outcomes);
        let mut expected = scope.clone();
        expected.sort();
        assert_eq!(
            covered(&merged.parts),
            expected,
            "the report is not smaller"
        );
        assert_eq!(merged.missing.len(), 10 + 10 + 1);
        let detail = |at: &AccountRegion| {
            merged
                .parts
                .iter()
                .find(|p| p.at == *at)
                .and_then(|p| p.detail.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            detail(&shards[1].targets[3]),
            format!("fan-out shard {} failed: States.Timeout", shards[1].id)
        );
        assert_eq!(
            detail(&shards[2].targets[0]),
            format!("fan-out shard {} wrote no result", shards[2].id)
        );
        assert_eq!(
            detail(&lacking),
            format!("fan-out shard {} wrote no result for it", shards[3].id)
        );
        assert!(merged.parts.iter().filter(|p| p.read).count() == 100 - 21);
        assert_eq!(merged.unexpected.len(), 3, "{:?}", merged.unexpected);
        assert!(merged.unexpected.iter().any(|u| u.contains("999999999999")));
        assert!(merged.unexpected.iter().any(|u| u.contains("twice")));
        assert!(merged.unexpected.iter().any(|u| u.contains("not-planned")));
    }

    #[test]
    fn shard_ids_are_safe_in_an_s3_key_and_sizes_are_bounded() {
        let odd = [AccountRegion::new("1/../2", "eu west 1")];
        let shards = split(&odd, 0, no_rotation);
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].id, "1____2-eu_west_1");
        let big = organization(300, &REGIONS);
        assert_eq!(
            split(&big, usize::MAX, no_rotation).len(),
            2,
            "at most 1,000 a shard"
        );
        assert!(split(&[], 10, no_rotation).is_empty());
    }
}
