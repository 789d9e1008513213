//! Test fakes (feature `fakes`, and this crate's own tests): a recording
//! notifier, and fault injectors for the ledger and notifiers. Never in a
//! Lambda binary.

use crate::ports::notify::{ChannelClass, Notice, Notifier};
use crate::ports::PortError;
use std::sync::Mutex;

/// A notifier that records what it was asked to send, and fails as told.
#[derive(Debug)]
pub struct RecordingNotifier {
    channel: String,
    class: ChannelClass,
    sent: Mutex<Vec<Vec<String>>>,
    failures: Mutex<Vec<PortError>>,
}

impl RecordingNotifier {
    /// A best-effort channel.
    pub fn new(channel: &str) -> Self {
        Self::with_class(channel, ChannelClass::BestEffort)
    }

    pub fn with_class(channel: &str, class: ChannelClass) -> Self {
        RecordingNotifier {
            channel: channel.to_string(),
            class,
            sent: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// Fail the next sends with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = PortError>) {
        lock(&self.failures).extend(errors);
    }

    /// Event ids of each notice sent, one entry per message.
    pub fn sent(&self) -> Vec<Vec<String>> {
        lock(&self.sent).clone()
    }

    /// Number of messages sent.
    pub fn count(&self) -> usize {
        lock(&self.sent).len()
    }

    /// Record a notice as sent (fault injectors call this for "crashes":
    /// the effect happens, then the caller's future is dropped).
    pub fn record(&self, notice: Notice<'_>) {
        let ids = notice.event_ids().into_iter().map(str::to_string).collect();
        lock(&self.sent).push(ids);
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Notifier for RecordingNotifier {
    fn channel(&self) -> &str {
        &self.channel
    }

    fn class(&self) -> ChannelClass {
        self.class
    }

    async fn send(&self, notice: Notice<'_>, _deadline_ms: i64) -> Result<(), PortError> {
        {
            let mut failures = lock(&self.failures);
            if !failures.is_empty() {
                return Err(failures.remove(0));
            }
        }
        self.record(notice);
        Ok(())
    }
}

// ---------------------------------------------------------------------
// Fault injection

use crate::ports::ledger::{
    AlertMode, ChannelClaim, Delivery, DigestEntry, DigestSummary, EventCopy, EventLedger,
    EventState, GrantLedger, Lease, Marked, StormLedger,
};
use crate::record::{GrantRecord, Removal};
use crate::verdict::Verdict;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// What an injected fault does to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Fails before any effect, retryable (throttling, 5xx).
    Transient,
    /// Fails before any effect, not retryable (permissions, configuration).
    Permanent,
    /// The effect happens, then the reply is lost (a timeout after the
    /// write): a transient error.
    LostReply,
    /// The effect happens, then the process dies: the invocation's future
    /// is dropped (see [`CrashSignal`]).
    Crash,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::Transient,
        Fault::Permanent,
        Fault::LostReply,
        Fault::Crash,
    ];
}

/// Raised by a [`Fault::Crash`]; [`CrashSignal::run`] then drops the
/// invocation it runs, as a dead Lambda process would.
#[derive(Debug, Default)]
pub struct CrashSignal {
    crashed: AtomicBool,
    waker: futures::task::AtomicWaker,
}

impl CrashSignal {
    pub fn new() -> Arc<CrashSignal> {
        Arc::new(CrashSignal::default())
    }

    fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Run `invocation`; `None` when a crash dropped it. Resets the signal
    /// first.
    pub async fn run<F: Future>(&self, invocation: F) -> Option<F::Output> {
        self.crashed.store(false, Ordering::SeqCst);
        let crashed = Crashed(self);
        futures::pin_mut!(invocation);
        match futures::future::select(invocation, crashed).await {
            futures::future::Either::Left((output, _)) => Some(output),
            futures::future::Either::Right(((), _)) => None,
        }
    }
}

struct Crashed<'a>(&'a CrashSignal);

impl Future for Crashed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.waker.register(cx.waker());
        if self.0.crashed.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A schedule of faults: the `nth` call (1-based, counted over the
/// injector's life) of operation `op` fails with `fault`.
#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<Vec<(String, usize, Fault)>>,
    calls: Mutex<BTreeMap<String, usize>>,
    /// Faults injected so far (op, nth, fault).
    pub injected: Mutex<Vec<(String, usize, Fault)>>,
}

impl Faults {
    /// Fail the `nth` call of `op` with `fault`.
    pub fn add(&self, op: &str, nth: usize, fault: Fault) {
        lock(&self.plan).push((op.to_string(), nth, fault));
    }

    /// Calls made so far, by operation.
    pub fn calls(&self) -> BTreeMap<String, usize> {
        lock(&self.calls).clone()
    }

    fn next(&self, op: &str) -> Option<Fault> {
        let nth = {
            let mut calls = lock(&self.calls);
            let count = calls.entry(op.to_string()).or_default();
            *count += 1;
            *count
        };
        let fault = lock(&self.plan)
            .iter()
            .find(|(o, n, _)| o == op && *n == nth)
            .map(|(_, _, fault)| *fault)?;
        lock(&self.injected).push((op.to_string(), nth, fault));
        Some(fault)
    }

    async fn call<T>(
        &self,
        op: &str,
        signal: &CrashSignal,
        effect: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        match self.next(op) {
            None => effect.await,
            Some(Fault::Transient) => Err(PortError::Transient(format!("injected: {op}"))),
            Some(Fault::Permanent) => Err(PortError::Permanent(format!("injected: {op}"))),
            Some(Fault::LostReply) => {
                let _ = effect.await;
                Err(PortError::Transient(format!("injected: {op} reply lost")))
            }
            Some(Fault::Crash) => {
                let _ = effect.await;
                signal.crash();
                std::future::pending().await
            }
        }
    }
}

/// A ledger that fails the calls its [`Faults`] say, around a real one.
pub struct FaultyLedger<L> {
    pub inner: L,
    pub faults: Faults,
    pub signal: Arc<CrashSignal>,
}

impl<L> FaultyLedger<L> {
    pub fn new(inner: L, signal: Arc<CrashSignal>) -> Self {
        FaultyLedger {
            inner,
            faults: Faults::default(),
            signal,
        }
    }
}

impl<L: EventLedger> EventLedger for FaultyLedger<L> {
    async fn claim_event(&self, event_id: &str, now: i64) -> Result<EventState, PortError> {
        let effect = self.inner.claim_event(event_id, now);
        self.faults.call("claim_event", &self.signal, effect).await
    }

    async fn set_alert_mode(
        &self,
        event_id: &str,
        mode: AlertMode,
    ) -> Result<AlertMode, PortError> {
        let effect = self.inner.set_alert_mode(event_id, mode);
        self.faults
            .call("set_alert_mode", &self.signal, effect)
            .await
    }

    async fn claim_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        lease: &Lease,
    ) -> Result<ChannelClaim, PortError> {
        let effect = self.inner.claim_channel(delivery, channel, lease);
        self.faults
            .call("claim_channel", &self.signal, effect)
            .await
    }

    async fn mark_delivered(
        &self,
        delivery: &Delivery,
        channel: &str,
        owner: &str,
        now: i64,
    ) -> Result<Marked, PortError> {
        let effect = self.inner.mark_delivered(delivery, channel, owner, now);
        self.faults
            .call("mark_delivered", &self.signal, effect)
            .await
    }

    async fn release_channel(
        &self,
        delivery: &Delivery,
        channel: &str,
        owner: &str,
        failure: &str,
    ) -> Result<(), PortError> {
        let effect = self
            .inner
            .release_channel(delivery, channel, owner, failure);
        self.faults
            .call("release_channel", &self.signal, effect)
            .await
    }

    async fn record_copy(
        &self,
        shared_event_id: &str,
        copy: &EventCopy,
        now: i64,
    ) -> Result<EventCopy, PortError> {
        let effect = self.inner.record_copy(shared_event_id, copy, now);
        self.faults.call("record_copy", &self.signal, effect).await
    }
}

impl<L: GrantLedger> GrantLedger for FaultyLedger<L> {
    async fn record_grant(&self, record: &GrantRecord) -> Result<(), PortError> {
        let effect = self.inner.record_grant(record);
        self.faults.call("record_grant", &self.signal, effect).await
    }

    async fn record_removal(
        &self,
        key_arn: &str,
        grant_id: &str,
        removal: &Removal,
    ) -> Result<Option<GrantRecord>, PortError> {
        let effect = self.inner.record_removal(key_arn, grant_id, removal);
        self.faults
            .call("record_removal", &self.signal, effect)
            .await
    }

    async fn get_grant(
        &self,
        key_arn: &str,
        grant_id: &str,
    ) -> Result<Option<GrantRecord>, PortError> {
        let effect = self.inner.get_grant(key_arn, grant_id);
        self.faults.call("get_grant", &self.signal, effect).await
    }

    async fn grants_of_key(&self, key_arn: &str) -> Result<Vec<GrantRecord>, PortError> {
        let effect = self.inner.grants_of_key(key_arn);
        self.faults
            .call("grants_of_key", &self.signal, effect)
            .await
    }

    async fn grants_to_grantee(
        &self,
        key_arn: &str,
        grantee: &str,
        limit: usize,
    ) -> Result<Vec<GrantRecord>, PortError> {
        let effect = self.inner.grants_to_grantee(key_arn, grantee, limit);
        self.faults
            .call("grants_to_grantee", &self.signal, effect)
            .await
    }
}

impl<L: StormLedger> StormLedger for FaultyLedger<L> {
    async fn count_alert(&self, window: i64) -> Result<u64, PortError> {
        let effect = self.inner.count_alert(window);
        self.faults.call("count_alert", &self.signal, effect).await
    }

    async fn claim_leader(&self, window: i64, event_id: &str) -> Result<bool, PortError> {
        let effect = self.inner.claim_leader(window, event_id);
        self.faults.call("claim_leader", &self.signal, effect).await
    }

    async fn add_to_digest(
        &self,
        window: i64,
        verdict: &Verdict,
    ) -> Result<DigestEntry, PortError> {
        let effect = self.inner.add_to_digest(window, verdict);
        self.faults
            .call("add_to_digest", &self.signal, effect)
            .await
    }

    async fn close_digest(&self, window: i64) -> Result<DigestSummary, PortError> {
        let effect = self.inner.close_digest(window);
        self.faults.call("close_digest", &self.signal, effect).await
    }

    async fn pending_digests(&self, before: i64, limit: usize) -> Result<Vec<i64>, PortError> {
        let effect = self.inner.pending_digests(before, limit);
        self.faults
            .call("pending_digests", &self.signal, effect)
            .await
    }

    async fn finish_digest(&self, window: i64) -> Result<(), PortError> {
        let effect = self.inner.finish_digest(window);
        self.faults
            .call("finish_digest", &self.signal, effect)
            .await
    }
}

/// A recording notifier whose sends fail as its [`Faults`] say (op `send`).
pub struct FaultyNotifier {
    pub inner: RecordingNotifier,
    pub faults: Faults,
    pub signal: Arc<CrashSignal>,
}

impl FaultyNotifier {
    pub fn new(channel: &str, class: ChannelClass, signal: Arc<CrashSignal>) -> Self {
        FaultyNotifier {
            inner: RecordingNotifier::with_class(channel, class),
            faults: Faults::default(),
            signal,
        }
    }
}

impl Notifier for FaultyNotifier {
    fn channel(&self) -> &str {
        self.inner.channel()
    }

    fn class(&self) -> ChannelClass {
        self.inner.class()
    }

    async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
        let effect = self.inner.send(notice, deadline_ms);
        self.faults.call("send", &self.signal, effect).await
    }
}
