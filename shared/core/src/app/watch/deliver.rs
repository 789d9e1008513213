//! Delivery of one notice (an alert or a digest) on every channel.
//!
//! Invariant: every channel is tried, whatever happened on the others (a
//! send failure, a ledger error). Per channel: claim the lease (owned by
//! this invocation's request id) → send → mark delivered, or release the
//! lease on failure. The caller turns the results into the invocation's
//! result by channel class (see `mod.rs`, [`super::finish`]).

use super::{ChannelResult, ChannelStatus, Invocation, WatchDeps};
use crate::ports::clock::Clock;
use crate::ports::ledger::{ChannelClaim, Delivery, EventLedger, Lease, Marked};
use crate::ports::notify::{DynNotifier, Notice};
use crate::ports::PortError;

/// How long a channel lease outlives the invocation's deadline.
pub const LEASE_GRACE_SECONDS: i64 = 5;

/// What delivering one notice did.
#[derive(Debug, Default)]
pub struct Delivered {
    pub channels: Vec<ChannelResult>,
    /// Sends that may have been duplicated (counted in `PossibleDuplicates`).
    pub possible_duplicates: u64,
    /// When the first channel sent it (epoch ms), for `AlertLatencyMs`.
    pub first_sent_ms: Option<i64>,
}

/// Try every channel; never stop at the first failure.
pub async fn deliver<L, C>(
    deps: &WatchDeps<L, C>,
    delivery: &Delivery,
    notice: Notice<'_>,
    invocation: &Invocation<'_>,
) -> Delivered
where
    L: EventLedger,
    C: Clock,
{
    let mut delivered = Delivered::default();
    for notifier in &deps.notifiers {
        let status = deliver_on(deps, notifier.as_ref(), delivery, notice, invocation).await;
        if matches_sent(&status) && delivered.first_sent_ms.is_none() {
            delivered.first_sent_ms = Some(deps.clock.now_ms());
        }
        let (status, duplicate) = status.split();
        delivered.possible_duplicates += duplicate;
        delivered.channels.push(ChannelResult {
            channel: notifier.channel().to_string(),
            class: notifier.class(),
            status,
        });
    }
    delivered
}

/// A channel's status, with whether the send may be a duplicate.
enum Status {
    Sent { possible_duplicates: u64 },
    Other(ChannelStatus),
}

impl Status {
    fn split(self) -> (ChannelStatus, u64) {
        match self {
            Status::Sent {
                possible_duplicates,
            } => (ChannelStatus::Sent, possible_duplicates),
            Status::Other(status) => (status, 0),
        }
    }
}

fn matches_sent(status: &Status) -> bool {
    matches!(status, Status::Sent { .. })
}

async fn deliver_on<L, C>(
    deps: &WatchDeps<L, C>,
    notifier: &dyn DynNotifier,
    delivery: &Delivery,
    notice: Notice<'_>,
    invocation: &Invocation<'_>,
) -> Status
where
    L: EventLedger,
    C: Clock,
{
    let channel = notifier.channel();
    let lease = Lease {
        owner: invocation.request_id.to_string(),
        now: deps.clock.now_ms().div_euclid(1000),
        until: invocation.deadline_ms.div_euclid(1000) + LEASE_GRACE_SECONDS,
    };
    let claim = match deps.ledger.claim_channel(delivery, channel, &lease).await {
        Ok(claim) => claim,
        Err(error) => return Status::Other(ChannelStatus::Failed(ledger_problem(&error))),
    };
    match claim {
        ChannelClaim::AlreadyDelivered => Status::Other(ChannelStatus::AlreadyDelivered),
        ChannelClaim::InProgress { .. } => Status::Other(ChannelStatus::InProgress),
        ChannelClaim::Claimed | ChannelClaim::Retried { .. } => {
            match notifier.send_boxed(notice, invocation.deadline_ms).await {
                Ok(()) => {
                    let earlier = match claim {
                        ChannelClaim::Retried { attempts } => attempts,
                        _ => 0,
                    };
                    let now_s = deps.clock.now_ms().div_euclid(1000);
                    match deps
                        .ledger
                        .mark_delivered(delivery, channel, invocation.request_id, now_s)
                        .await
                    {
                        Ok(Marked::Recorded) => Status::Sent {
                            possible_duplicates: earlier,
                        },
                        // Another owner took the lease over and may send too.
                        Ok(Marked::LeaseLost) => Status::Sent {
                            possible_duplicates: earlier + 1,
                        },
                        // Sent, but not recorded: the next claim counts it.
                        Err(_) => Status::Sent {
                            possible_duplicates: earlier,
                        },
                    }
                }
                Err(error) => {
                    let why = error.to_string();
                    // A failed release only delays a retry until the lease ends.
                    let _ = deps
                        .ledger
                        .release_channel(delivery, channel, invocation.request_id, &why)
                        .await;
                    match error {
                        PortError::Transient(why) => Status::Other(ChannelStatus::Failed(why)),
                        PortError::Permanent(why) => Status::Other(ChannelStatus::Rejected(why)),
                    }
                }
            }
        }
    }
}

fn ledger_problem(error: &PortError) -> String {
    format!("ledger: {error}")
}
