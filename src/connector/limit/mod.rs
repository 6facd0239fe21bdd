//! A Connector's `rateLimit`: a token bucket in front of every downstream operation, and
//! a bound on the operations in flight that a leaver's operations do not wait for (and
//! that other work does not start on while a leaver's operations run: [`precedence`]).
//!
//! Without the bound, 32 joiner reconciles had 32 requests queued at a single-threaded
//! app, and a leaver's requests waited behind them (seconds each at 1,000 accounts). The
//! caller says it is urgent with [`urgently`]; a task-local keeps the `Connector` trait
//! free of scheduling.
//!
//! Tokens are reserved the same way: other work draws from a second bucket of four fifths
//! of the rate as well as from the Connector's own, so however long the backlog, a fifth
//! of the rate stays free for leavers. (A single bucket has no priority: a leaver's call
//! waited behind every queued caller's token.)

use std::{future::Future, num::NonZeroU32, sync::Arc, time::Duration};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Capabilities, Connector, ConnectorError, EntitlementMembers, Page};
use crate::{
    api::RateLimit,
    lifecycle::{AccountAttributes, DesiredAccount, NameCase, ObservedAccount},
};

mod precedence;

pub use precedence::{GRACE, MAX_YIELD, urgently};
use precedence::{Precedence, Running, is_urgent};

/// One Connector's `rateLimit` as live state: its buckets, its slots and its leavers'
/// precedence. It outlives the backend built behind it: a backend is rebuilt when the
/// Connector changes (each status write) and every minute (for a rotated Secret), and
/// a gate per backend let the calls still in flight on the old one and the new one's
/// run side by side, past `maxInFlight`, with a refilled burst.
pub struct Gate {
    /// What it was made from: a changed `rateLimit` needs a new gate.
    limit: RateLimit,
    limiter: DefaultDirectRateLimiter,
    /// Four fifths of `limiter`'s rate and burst: what work other than leavers may use.
    others: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
    /// Leavers' operations running on the app, which other work waits for.
    precedence: Precedence,
}

impl Gate {
    /// The buckets and slots `limit` describes (values below 1 count as 1).
    pub fn new(limit: &RateLimit) -> Self {
        let positive = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        let count = |v: i32| u32::try_from(v).unwrap_or(1);
        let (rate, burst) = (count(limit.requests_per_second), count(limit.burst));
        let quota =
            |rate: u32, burst: u32| Quota::per_second(positive(rate)).allow_burst(positive(burst));
        let share = |v: u32| v.saturating_mul(OTHERS_FIFTHS) / 5;
        let slots = usize::try_from(limit.max_in_flight).unwrap_or(1).max(1);
        Self {
            limit: limit.clone(),
            limiter: RateLimiter::direct(quota(rate, burst)),
            others: RateLimiter::direct(quota(share(rate), share(burst))),
            in_flight: Arc::new(Semaphore::new(slots)),
            precedence: Precedence::default(),
        }
    }

    /// Whether this gate is what `limit` describes.
    pub fn is_for(&self, limit: &RateLimit) -> bool {
        self.limit == *limit
    }
}

/// A backend whose every operation first waits for a slot (unless urgent) and a token.
pub struct RateLimited {
    inner: Arc<dyn Connector>,
    gate: Arc<Gate>,
    /// How long one operation may take once admitted.
    deadline: Duration,
}

/// How long one downstream operation may take once admitted: long enough for a slow page
/// and the SCIM client's own retries, short enough that a stuck app fails the pass with a
/// reason and a retry instead of holding it (and its status write) forever.
pub const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// The share of a Connector's rate, in fifths, that work other than leavers may use.
const OTHERS_FIFTHS: u32 = 4;

impl RateLimited {
    /// Wraps `inner` in a gate of its own, as `limit` describes.
    pub fn new(inner: Arc<dyn Connector>, limit: &RateLimit) -> Self {
        Self::through(inner, Arc::new(Gate::new(limit)))
    }

    /// Wraps `inner` in `gate`, which other backends of the same Connector may share.
    pub fn through(inner: Arc<dyn Connector>, gate: Arc<Gate>) -> Self {
        Self {
            inner,
            gate,
            deadline: CALL_DEADLINE,
        }
    }

    /// The same, with another per-operation deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        tokio::time::timeout(self.deadline, call)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectorError::Unreachable {
                    target: format!("the app ({operation})"),
                    reason: format!("no answer within {} s", self.deadline.as_secs_f64()),
                })
            })
    }

    /// An urgent caller waits only for a token of the Connector's rate, and counts as
    /// running (from before that wait) until the value returned is dropped. Other work
    /// waits for a slot, for the app to be free of leavers, and for a token of the
    /// others' share, then of the Connector's; the slot is held while the operation runs.
    async fn admit(&self) -> Admitted<'_> {
        let gate = &self.gate;
        if is_urgent() {
            // Counted from before its token: other work starts nothing new meanwhile.
            let running = gate.precedence.enter();
            gate.limiter.until_ready().await;
            return Admitted {
                _urgent: Some(running),
                _slot: None,
            };
        }
        // The semaphore is never closed: acquiring fails only at shutdown.
        let slot = gate.in_flight.clone().acquire_owned().await.ok();
        gate.precedence.after_urgent().await;
        gate.others.until_ready().await;
        gate.limiter.until_ready().await;
        Admitted {
            _urgent: None,
            _slot: slot,
        }
    }
}

/// What an admitted operation holds while it runs: a leaver's count, or another's slot.
struct Admitted<'a> {
    _urgent: Option<Running<'a>>,
    _slot: Option<OwnedSemaphorePermit>,
}

#[async_trait]
impl Connector for RateLimited {
    fn mirrors_attributes(&self) -> bool {
        self.inner.mirrors_attributes()
    }
    fn name_case(&self) -> NameCase {
        self.inner.name_case()
    }
    fn knows_privilege(&self) -> bool {
        self.inner.knows_privilege()
    }
    fn refuses_duplicates(&self) -> bool {
        self.inner.refuses_duplicates()
    }
    async fn check(&self) -> Result<Capabilities, ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("check", self.inner.check()).await
    }
    async fn observe(&self, username: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("observe", self.inner.observe(username)).await
    }
    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<ObservedAccount>, ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("list_accounts", self.inner.list_accounts(cursor))
            .await
    }
    async fn list_entitlements(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<EntitlementMembers>, ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("list_entitlements", self.inner.list_entitlements(cursor))
            .await
    }
    async fn create(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<String, ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("create", self.inner.create(identity, desired, active))
            .await
    }
    async fn create_answered(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<(String, Option<ObservedAccount>), ConnectorError> {
        let _slot = self.admit().await;
        self.bounded(
            "create",
            self.inner.create_answered(identity, desired, active),
        )
        .await
    }
    async fn adopt(&self, account: &ObservedAccount, identity: &str) -> Result<(), ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("adopt", self.inner.adopt(account, identity))
            .await
    }
    async fn update(
        &self,
        account: &ObservedAccount,
        attributes: &AccountAttributes,
    ) -> Result<(), ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("update", self.inner.update(account, attributes))
            .await
    }
    async fn set_active(
        &self,
        account: &ObservedAccount,
        active: bool,
    ) -> Result<(), ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("set_active", self.inner.set_active(account, active))
            .await
    }
    async fn delete(&self, account: &ObservedAccount) -> Result<(), ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("delete", self.inner.delete(account)).await
    }
    async fn grant(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("grant", self.inner.grant(account_id, entitlement))
            .await
    }
    async fn revoke(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("revoke", self.inner.revoke(account_id, entitlement))
            .await
    }
    async fn privilege(&self, entitlement: &str) -> Result<Option<String>, ConnectorError> {
        let _slot = self.admit().await;
        self.bounded("privilege", self.inner.privilege(entitlement))
            .await
    }
}

#[cfg(test)]
mod tests;
