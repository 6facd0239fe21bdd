//! Every request to a downstream app, reads included, counted by operation and outcome
//! and timed: `roster_downstream_requests_total` and
//! `roster_downstream_request_duration_seconds`. It sits under the rate limit, so a
//! request is counted when it goes out and timed without its wait for a token.

use std::{future::Future, sync::Arc, time::Instant};

use async_trait::async_trait;

use crate::{
    connector::{Capabilities, Connector, ConnectorError, EntitlementMembers, Page},
    lifecycle::{AccountAttributes, DesiredAccount, NameCase, ObservedAccount},
    telemetry::Metrics,
};

/// A backend whose requests are counted on [`Metrics`] under its Connector's name.
pub struct Metered {
    inner: Arc<dyn Connector>,
    connector: String,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// Counts `inner`'s requests as `connector`'s (`namespace/name`).
    pub fn new(inner: Arc<dyn Connector>, connector: String, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            connector,
            metrics,
        }
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        let mut pending = Pending {
            meter: self,
            operation,
            started: Instant::now(),
            outcome: "Cancelled",
        };
        let result = request.await;
        pending.outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.reason(),
        };
        result
    }
}

/// One request on its way: recorded when it ends, and also when it is dropped unanswered
/// (the rate limit's deadline, a shutdown), as `Cancelled`.
struct Pending<'a> {
    meter: &'a Metered,
    operation: &'static str,
    started: Instant,
    outcome: &'static str,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.meter.metrics.observe_downstream_request(
            &self.meter.connector,
            self.operation,
            self.outcome,
            self.started.elapsed(),
        );
    }
}

#[async_trait]
impl Connector for Metered {
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
        self.call("check", self.inner.check()).await
    }
    async fn observe(&self, username: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
        self.call("observe", self.inner.observe(username)).await
    }
    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<ObservedAccount>, ConnectorError> {
        self.call("list_accounts", self.inner.list_accounts(cursor))
            .await
    }
    async fn list_entitlements(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<EntitlementMembers>, ConnectorError> {
        self.call("list_entitlements", self.inner.list_entitlements(cursor))
            .await
    }
    async fn create(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<String, ConnectorError> {
        self.call("create", self.inner.create(identity, desired, active))
            .await
    }
    async fn create_answered(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<(String, Option<ObservedAccount>), ConnectorError> {
        self.call(
            "create",
            self.inner.create_answered(identity, desired, active),
        )
        .await
    }
    async fn adopt(&self, account: &ObservedAccount, identity: &str) -> Result<(), ConnectorError> {
        self.call("adopt", self.inner.adopt(account, identity))
            .await
    }
    async fn update(
        &self,
        account: &ObservedAccount,
        attributes: &AccountAttributes,
    ) -> Result<(), ConnectorError> {
        self.call("update", self.inner.update(account, attributes))
            .await
    }
    async fn set_active(
        &self,
        account: &ObservedAccount,
        active: bool,
    ) -> Result<(), ConnectorError> {
        self.call("set_active", self.inner.set_active(account, active))
            .await
    }
    async fn delete(&self, account: &ObservedAccount) -> Result<(), ConnectorError> {
        self.call("delete", self.inner.delete(account)).await
    }
    async fn grant(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        self.call("grant", self.inner.grant(account_id, entitlement))
            .await
    }
    async fn revoke(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        self.call("revoke", self.inner.revoke(account_id, entitlement))
            .await
    }
    async fn privilege(&self, entitlement: &str) -> Result<Option<String>, ConnectorError> {
        self.call("privilege", self.inner.privilege(entitlement))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::AtomicUsize, time::Duration};

    use tokio::sync::Semaphore;

    use super::*;
    use crate::connector::testing::Nothing;

    #[tokio::test]
    async fn reads_writes_failures_and_abandoned_requests_are_all_counted() {
        let metrics = Arc::new(Metrics::new());
        let app = Nothing {
            refuse_check: true,
            ..Nothing::default()
        };
        let m = Metered::new(Arc::new(app), "ns/app".into(), metrics.clone());
        m.observe("ada").await.unwrap();
        m.observe("bob").await.unwrap();
        m.grant("1", "admins").await.unwrap();
        m.check().await.unwrap_err();
        // An app that never answers: its gate is never opened.
        let stuck = Nothing {
            gate: Some(Arc::new((AtomicUsize::new(0), Semaphore::new(0)))),
            ..Nothing::default()
        };
        let hung = Metered::new(Arc::new(stuck), "ns/app".into(), metrics.clone());
        let abandoned = tokio::time::timeout(Duration::from_millis(10), hung.observe("cy")).await;
        assert!(abandoned.is_err());
        let text = metrics.encode().unwrap();
        for line in [
            r#"roster_downstream_requests_total{connector="ns/app",operation="observe",outcome="ok"} 2"#,
            r#"roster_downstream_requests_total{connector="ns/app",operation="grant",outcome="ok"} 1"#,
            r#"roster_downstream_requests_total{connector="ns/app",operation="check",outcome="Unreachable"} 1"#,
            r#"roster_downstream_requests_total{connector="ns/app",operation="observe",outcome="Cancelled"} 1"#,
            r#"roster_downstream_request_duration_seconds_count{connector="ns/app",operation="observe"} 3"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
