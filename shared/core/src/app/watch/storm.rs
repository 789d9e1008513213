//! Storm control: beyond `storm_threshold` alerts in one window, alerts
//! join the window's digest instead of being sent one by one.
//!
//! Invariants (docs/watcher.md, "Reliability"):
//! - an alert is counted in a digest at most once (`add_to_digest` is
//!   idempotent per event) and only while the digest is open; one that
//!   finds it closed alerts alone;
//! - one leader per window, elected by a conditional put that the same
//!   event wins again on a retry, waits for the window to end and posts the
//!   digest; nobody else posts it before it is overdue;
//! - a digest not posted by window end + settle + [`OVERDUE_GRACE_MS`] is
//!   overdue: the next alert of any later window closes and posts it;
//! - the digest is summarised from the ledger's running tallies and its
//!   worst alerts, never by reading every member.

use super::deliver::{deliver, Delivered};
use super::{ledger_error, Invocation, WatchDeps, WatchError};
use crate::ports::clock::Clock;
use crate::ports::ledger::{AlertMode, Delivery, DigestEntry, EventLedger, StormLedger};
use crate::ports::notify::{Digest, Notice};
use crate::verdict::Verdict;

/// Time kept back from the deadline to deliver a digest after waiting.
pub const DIGEST_DELIVERY_RESERVE_MS: i64 = 10_000;
/// Wait past the window's end so joins still in flight land before the
/// digest closes (a ledger call's attempt may take up to 3 s); a join that
/// lands later finds the digest closed and is sent alone.
pub const DIGEST_SETTLE_MS: i64 = 5_000;
/// A digest not posted this long after its window settled is overdue.
pub const OVERDUE_GRACE_MS: i64 = 30_000;
/// Overdue digests one invocation takes over at most.
const OVERDUE_PER_INVOCATION: usize = 3;

/// Count this alert in its storm window and choose how to announce it.
pub async fn storm_mode<L, C>(deps: &WatchDeps<L, C>) -> Result<AlertMode, WatchError>
where
    L: StormLedger,
    C: Clock,
{
    let window = window_of(deps, deps.clock.now_ms());
    let count = deps
        .ledger
        .count_alert(window)
        .await
        .map_err(ledger_error)?;
    Ok(if count <= deps.config.storm_threshold {
        AlertMode::Individual
    } else {
        AlertMode::Digest { window }
    })
}

fn window_seconds<L, C>(deps: &WatchDeps<L, C>) -> i64 {
    deps.config.storm_window_seconds.max(1) as i64
}

/// The start (epoch second) of the window holding `ms`.
fn window_of<L, C>(deps: &WatchDeps<L, C>, ms: i64) -> i64 {
    let now_s = ms.div_euclid(1000);
    now_s - now_s.rem_euclid(window_seconds(deps))
}

/// What a digest alert did.
pub enum Joined {
    /// Counted in the digest; `posted` is the digest this invocation posted
    /// as leader (size, delivery).
    InDigest {
        leader: bool,
        posted: Option<(u64, Delivered)>,
    },
    /// The digest had closed first: the caller alerts alone.
    Closed,
}

/// Join the window's digest; as its leader, wait and post it.
pub async fn join_digest<L, C>(
    deps: &WatchDeps<L, C>,
    window: i64,
    verdict: &Verdict,
    invocation: &Invocation<'_>,
) -> Result<Joined, WatchError>
where
    L: EventLedger + StormLedger,
    C: Clock,
{
    let entry = deps
        .ledger
        .add_to_digest(window, verdict)
        .await
        .map_err(ledger_error)?;
    if entry == DigestEntry::Closed {
        return Ok(Joined::Closed);
    }
    let leader = deps
        .ledger
        .claim_leader(window, &verdict.event_id)
        .await
        .map_err(ledger_error)?;
    if !leader {
        return Ok(Joined::InDigest {
            leader,
            posted: None,
        });
    }
    let window_ms = window_seconds(deps) * 1000;
    let post_at = (window * 1000 + window_ms + DIGEST_SETTLE_MS)
        .min(invocation.deadline_ms - DIGEST_DELIVERY_RESERVE_MS);
    let now = deps.clock.now_ms();
    if post_at > now {
        deps.clock.sleep_ms((post_at - now) as u64).await;
    }
    let posted = post_digest(deps, window, invocation).await?;
    Ok(Joined::InDigest {
        leader,
        posted: Some(posted),
    })
}

/// Close the window's digest (idempotent) and post it on every channel
/// not yet delivered; once every channel is done, it is no longer pending.
pub async fn post_digest<L, C>(
    deps: &WatchDeps<L, C>,
    window: i64,
    invocation: &Invocation<'_>,
) -> Result<(u64, Delivered), WatchError>
where
    L: EventLedger + StormLedger,
    C: Clock,
{
    let summary = deps
        .ledger
        .close_digest(window)
        .await
        .map_err(ledger_error)?;
    let size = summary.tally.total;
    let digest = Digest {
        window_start: window,
        window_seconds: deps.config.storm_window_seconds,
        alerts: summary.worst,
        tally: summary.tally,
    };
    let delivered = deliver(
        deps,
        &Delivery::Digest(window),
        Notice::Digest(&digest),
        invocation,
    )
    .await;
    if delivered.channels.iter().all(|c| c.is_settled()) {
        // A failure here leaves it pending: the next alert checks it again.
        let _ = deps.ledger.finish_digest(window).await;
    }
    Ok((size, delivered))
}

/// Post the digests whose leader did not (overdue), oldest first.
pub async fn take_over_overdue<L, C>(
    deps: &WatchDeps<L, C>,
    invocation: &Invocation<'_>,
) -> Result<Vec<(i64, Delivered)>, WatchError>
where
    L: EventLedger + StormLedger,
    C: Clock,
{
    let now = deps.clock.now_ms();
    let overdue_before_ms = now - window_seconds(deps) * 1000 - DIGEST_SETTLE_MS - OVERDUE_GRACE_MS;
    let before = overdue_before_ms.div_euclid(1000);
    let windows = deps
        .ledger
        .pending_digests(before, OVERDUE_PER_INVOCATION)
        .await
        .map_err(ledger_error)?;
    let mut posted = Vec::new();
    for window in windows {
        let (_, delivered) = post_digest(deps, window, invocation).await?;
        posted.push((window, delivered));
    }
    Ok(posted)
}
