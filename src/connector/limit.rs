//! A Connector's `rateLimit`: a token bucket in front of every downstream operation.

use std::{num::NonZeroU32, sync::Arc};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{Capabilities, Connector, ConnectorError, EntitlementMembers, Page};
use crate::{
    api::RateLimit,
    lifecycle::{AccountAttributes, DesiredAccount, ObservedAccount},
};

/// A backend whose every operation first waits for a token.
pub struct RateLimited {
    inner: Arc<dyn Connector>,
    limiter: DefaultDirectRateLimiter,
}

impl RateLimited {
    /// Wraps `inner` in the bucket `limit` describes (values below 1 count as 1).
    pub fn new(inner: Arc<dyn Connector>, limit: &RateLimit) -> Self {
        let positive = |v: i32| {
            NonZeroU32::new(u32::try_from(v).unwrap_or(1).max(1)).unwrap_or(NonZeroU32::MIN)
        };
        let quota = Quota::per_second(positive(limit.requests_per_second))
            .allow_burst(positive(limit.burst));
        Self {
            inner,
            limiter: RateLimiter::direct(quota),
        }
    }
}

#[async_trait]
impl Connector for RateLimited {
    fn mirrors_attributes(&self) -> bool {
        self.inner.mirrors_attributes()
    }
    async fn check(&self) -> Result<Capabilities, ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.check().await
    }
    async fn observe(&self, username: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.observe(username).await
    }
    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<ObservedAccount>, ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.list_accounts(cursor).await
    }
    async fn list_entitlements(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<EntitlementMembers>, ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.list_entitlements(cursor).await
    }
    async fn create(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<String, ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.create(identity, desired, active).await
    }
    async fn adopt(&self, account: &ObservedAccount, identity: &str) -> Result<(), ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.adopt(account, identity).await
    }
    async fn update(
        &self,
        account: &ObservedAccount,
        attributes: &AccountAttributes,
    ) -> Result<(), ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.update(account, attributes).await
    }
    async fn set_active(
        &self,
        account: &ObservedAccount,
        active: bool,
    ) -> Result<(), ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.set_active(account, active).await
    }
    async fn delete(&self, account: &ObservedAccount) -> Result<(), ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.delete(account).await
    }
    async fn grant(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.grant(account_id, entitlement).await
    }
    async fn revoke(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        self.limiter.until_ready().await;
        self.inner.revoke(account_id, entitlement).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait]
    impl Connector for Nothing {
        async fn check(&self) -> Result<Capabilities, ConnectorError> {
            Ok(Capabilities::default())
        }
        async fn observe(&self, _: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
            Ok(None)
        }
        async fn list_accounts(
            &self,
            _: Option<&str>,
        ) -> Result<Page<ObservedAccount>, ConnectorError> {
            Ok(Page {
                items: Vec::new(),
                next: None,
            })
        }
        async fn list_entitlements(
            &self,
            _: Option<&str>,
        ) -> Result<Page<EntitlementMembers>, ConnectorError> {
            Ok(Page::default())
        }
        async fn create(
            &self,
            _: &str,
            _: &DesiredAccount,
            _: bool,
        ) -> Result<String, ConnectorError> {
            Ok(String::new())
        }
        async fn adopt(&self, _: &ObservedAccount, _: &str) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn update(
            &self,
            _: &ObservedAccount,
            _: &AccountAttributes,
        ) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn set_active(&self, _: &ObservedAccount, _: bool) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn delete(&self, _: &ObservedAccount) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn grant(&self, _: &str, _: &str) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn revoke(&self, _: &str, _: &str) -> Result<(), ConnectorError> {
            Ok(())
        }
    }

    /// After the burst, the bucket has no token left: the next call would wait.
    #[tokio::test]
    async fn the_burst_is_spent_by_calls() {
        let limited = RateLimited::new(
            Arc::new(Nothing),
            &RateLimit {
                requests_per_second: 1,
                burst: 2,
            },
        );
        assert!(limited.limiter.check().is_ok(), "a fresh bucket has tokens");
        limited.observe("x").await.unwrap();
        assert!(
            limited.limiter.check().is_err(),
            "burst of 2 spent by one check and one call"
        );
    }

    #[test]
    fn nonsense_limits_become_one() {
        let limited = RateLimited::new(
            Arc::new(Nothing),
            &RateLimit {
                requests_per_second: 0,
                burst: -5,
            },
        );
        assert!(limited.limiter.check().is_ok());
        assert!(limited.limiter.check().is_err(), "a burst of one");
    }
}
