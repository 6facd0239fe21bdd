//! Test doubles of [`Connector`], for the layers that wrap one.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::{Capabilities, Connector, ConnectorError, EntitlementMembers, Page};
use crate::lifecycle::{AccountAttributes, DesiredAccount, ObservedAccount};

/// Does nothing and succeeds; with a gate, `observe` counts itself in and waits to be
/// released; with `refuse_check`, `check` fails as Unreachable.
#[derive(Default)]
pub struct Nothing {
    /// Counts `observe` calls in and holds each until a permit is added.
    pub gate: Option<Arc<(AtomicUsize, Semaphore)>>,
    /// `check` fails as if the app refused the connection.
    pub refuse_check: bool,
    /// `create_answered` answers with the created account (id `created`), as SCIM does.
    pub answer_creates: bool,
    /// `grant` of this entitlement fails as if the app refused it.
    pub refuse_grant: Option<String>,
}

#[async_trait]
impl Connector for Nothing {
    async fn check(&self) -> Result<Capabilities, ConnectorError> {
        if self.refuse_check {
            return Err(ConnectorError::Unreachable {
                target: "the app".into(),
                reason: "refused".into(),
            });
        }
        Ok(Capabilities::default())
    }
    async fn observe(&self, _: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
        if let Some(gate) = &self.gate {
            gate.0.fetch_add(1, Ordering::SeqCst);
            gate.1.acquire().await.map(|p| p.forget()).ok();
        }
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
    async fn create(&self, _: &str, _: &DesiredAccount, _: bool) -> Result<String, ConnectorError> {
        Ok(String::new())
    }
    async fn create_answered(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<(String, Option<ObservedAccount>), ConnectorError> {
        if !self.answer_creates {
            return Ok((String::new(), None));
        }
        let account = ObservedAccount {
            id: "created".into(),
            username: desired.username.clone(),
            owner: Some(identity.to_owned()),
            active,
            attributes: desired.attributes.clone(),
            entitlements: Default::default(),
            version: Some("W/\"1\"".into()),
        };
        Ok((account.id.clone(), Some(account)))
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
    async fn grant(&self, _: &str, entitlement: &str) -> Result<(), ConnectorError> {
        match &self.refuse_grant {
            Some(refused) if refused == entitlement => {
                Err(ConnectorError::Rejected(format!("{entitlement} refused")))
            }
            _ => Ok(()),
        }
    }
    async fn revoke(&self, _: &str, _: &str) -> Result<(), ConnectorError> {
        Ok(())
    }
}
