//! A Connector's `rateLimit`: a token bucket in front of every downstream operation, and
//! a bound on the operations in flight that a leaver's operations do not wait for.
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

tokio::task_local! {
    static URGENT: bool;
}

/// Runs `work` with its downstream operations marked urgent: they skip the in-flight
/// bound (a leaver's deprovisioning).
pub async fn urgently<F: Future>(work: F) -> F::Output {
    URGENT.scope(true, work).await
}

fn is_urgent() -> bool {
    URGENT.try_with(|u| *u).unwrap_or(false)
}

/// A backend whose every operation first waits for a slot (unless urgent) and a token.
pub struct RateLimited {
    inner: Arc<dyn Connector>,
    limiter: DefaultDirectRateLimiter,
    /// Four fifths of `limiter`'s rate and burst: what work other than leavers may use.
    others: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
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
    /// Wraps `inner` in the bucket `limit` describes (values below 1 count as 1).
    pub fn new(inner: Arc<dyn Connector>, limit: &RateLimit) -> Self {
        let positive = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        let count = |v: i32| u32::try_from(v).unwrap_or(1);
        let (rate, burst) = (count(limit.requests_per_second), count(limit.burst));
        let quota =
            |rate: u32, burst: u32| Quota::per_second(positive(rate)).allow_burst(positive(burst));
        let share = |v: u32| v.saturating_mul(OTHERS_FIFTHS) / 5;
        let slots = usize::try_from(limit.max_in_flight).unwrap_or(1).max(1);
        Self {
            inner,
            limiter: RateLimiter::direct(quota(rate, burst)),
            others: RateLimiter::direct(quota(share(rate), share(burst))),
            in_flight: Arc::new(Semaphore::new(slots)),
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

    /// Waits for a slot and a token of the others' share (urgent callers need neither),
    /// then a token of the Connector's rate; the slot is held while the operation runs.
    async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let slot = if is_urgent() {
            None
        } else {
            // The semaphore is never closed: acquiring fails only at shutdown.
            let slot = self.in_flight.clone().acquire_owned().await.ok();
            self.others.until_ready().await;
            slot
        };
        self.limiter.until_ready().await;
        slot
    }
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
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::connector::testing::Nothing;

    #[tokio::test]
    async fn an_operation_that_never_answers_fails_at_its_deadline() {
        let stuck = Arc::new((AtomicUsize::new(0), Semaphore::new(0)));
        let limited = RateLimited::new(
            Arc::new(Nothing {
                gate: Some(stuck),
                ..Nothing::default()
            }),
            &RateLimit {
                requests_per_second: 100,
                burst: 100,
                max_in_flight: 1,
            },
        )
        .with_deadline(Duration::from_millis(50));
        match limited.observe("x").await {
            Err(ConnectorError::Unreachable { reason, .. }) => {
                assert!(reason.starts_with("no answer within"), "{reason}");
            }
            other => panic!("expected a deadline error, got {other:?}"),
        }
        // The slot it held is free again: the next call is admitted.
        assert!(limited.in_flight.available_permits() == 1);
    }

    /// After the burst, the bucket has no token left: the next call would wait.
    #[tokio::test]
    async fn the_burst_is_spent_by_calls() {
        let limited = RateLimited::new(
            Arc::new(Nothing::default()),
            &RateLimit {
                requests_per_second: 1,
                burst: 2,
                max_in_flight: 1,
            },
        );
        assert!(limited.limiter.check().is_ok(), "a fresh bucket has tokens");
        limited.observe("x").await.unwrap();
        assert!(
            limited.limiter.check().is_err(),
            "burst of 2 spent by one check and one call"
        );
    }

    #[tokio::test]
    async fn a_leavers_operation_does_not_wait_for_the_busy_slots() {
        let gate = Arc::new((AtomicUsize::new(0), Semaphore::new(0)));
        let limited = Arc::new(RateLimited::new(
            Arc::new(Nothing {
                gate: Some(gate.clone()),
                ..Nothing::default()
            }),
            &RateLimit {
                requests_per_second: 10_000,
                burst: 10_000,
                max_in_flight: 2,
            },
        ));
        let entered = || gate.0.load(Ordering::SeqCst);
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(50));
        let mut calls = Vec::new();
        for _ in 0..3 {
            let l = limited.clone();
            calls.push(tokio::spawn(async move { l.observe("joiner").await }));
        }
        settle().await;
        assert_eq!(entered(), 2, "two slots: the third joiner waits");
        let l = limited.clone();
        calls.push(tokio::spawn(urgently(
            async move { l.observe("leaver").await },
        )));
        settle().await;
        assert_eq!(entered(), 3, "the leaver went in beside the busy slots");
        gate.1.add_permits(4);
        for call in calls {
            assert!(call.await.is_ok_and(|r| r.is_ok()));
        }
        assert_eq!(entered(), 4);
    }

    /// Other work spends its four fifths; the last fifth is still there for a leaver.
    #[tokio::test]
    async fn a_fifth_of_the_rate_stays_free_for_leavers() {
        let limited = RateLimited::new(
            Arc::new(Nothing::default()),
            &RateLimit {
                requests_per_second: 1,
                burst: 10,
                max_in_flight: 10,
            },
        );
        for _ in 0..8 {
            limited
                .observe("joiner")
                .await
                .expect("within the others' burst");
        }
        assert!(
            limited.others.check().is_err(),
            "the others' share is spent"
        );
        let leaver = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            urgently(limited.observe("leaver")),
        )
        .await;
        assert!(leaver.is_ok(), "the leaver's call takes a reserved token");
        let joiner =
            tokio::time::timeout(std::time::Duration::from_millis(200), limited.observe("j")).await;
        assert!(
            joiner.is_err(),
            "another joiner waits for the others' bucket"
        );
    }

    #[test]
    fn nonsense_limits_become_one() {
        let limited = RateLimited::new(
            Arc::new(Nothing::default()),
            &RateLimit {
                requests_per_second: 0,
                burst: -5,
                max_in_flight: 0,
            },
        );
        assert!(limited.limiter.check().is_ok());
        assert!(limited.limiter.check().is_err(), "a burst of one");
    }
}
