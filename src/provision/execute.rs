//! Carrying out a plan. Changes run in the plan's order — removals before additions — and
//! stop at the first failure, so a half-done pass is one the next pass finishes: every
//! change is idempotent, and the next plan starts from a fresh observation.

use crate::{
    connector::{Connector, ConnectorError},
    lifecycle::{DesiredAccount, ObservedAccount, plan::Change},
};

/// What a pass did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Changes that succeeded, in order.
    pub applied: Vec<Change>,
    /// The change that failed, and why; nothing after it was tried.
    pub failed: Option<(Change, ConnectorError)>,
}

/// Applies `changes` to the account of `identity`. `observed` is the account as planned
/// from (`None` when the plan creates it).
pub async fn execute(
    backend: &dyn Connector,
    identity: &str,
    desired: Option<&DesiredAccount>,
    observed: Option<&ObservedAccount>,
    changes: &[Change],
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut account = observed.cloned();
    for change in changes {
        match apply(backend, identity, desired, &mut account, change).await {
            Ok(()) => {
                crate::crashpoint::reached(crate::crashpoint::after(change));
                outcome.applied.push(change.clone());
            }
            Err(e) => {
                outcome.failed = Some((change.clone(), e));
                break;
            }
        }
    }
    outcome
}

async fn apply(
    backend: &dyn Connector,
    identity: &str,
    desired: Option<&DesiredAccount>,
    account: &mut Option<ObservedAccount>,
    change: &Change,
) -> Result<(), ConnectorError> {
    if let Change::Create { active } = change {
        let desired = desired.ok_or_else(|| {
            ConnectorError::Config("a create was planned without a desired account".into())
        })?;
        let id = backend.create(identity, desired, *active).await?;
        *account = Some(ObservedAccount {
            id,
            username: desired.username.clone(),
            owner: Some(identity.to_owned()),
            active: *active,
            attributes: desired.attributes.clone(),
            entitlements: Default::default(),
            version: None,
        });
        return Ok(());
    }
    let Some(current) = account.as_ref() else {
        return Err(ConnectorError::Config(format!(
            "{change:?} was planned for an account that does not exist"
        )));
    };
    match change {
        Change::Create { .. } => Ok(()),
        Change::Adopt => backend.adopt(current, identity).await,
        Change::Update(_) => match desired {
            Some(d) => backend.update(current, &d.attributes).await,
            None => Ok(()),
        },
        Change::Enable => backend.set_active(current, true).await,
        Change::Disable => backend.set_active(current, false).await,
        Change::Grant(e) => backend.grant(&current.id, e).await,
        Change::Revoke(e) => backend.revoke(&current.id, e).await,
        Change::Delete => backend.delete(current).await,
    }
}

/// A short verb for logs and Events.
pub fn verb(change: &Change) -> &'static str {
    match change {
        Change::Create { .. } => "Created",
        Change::Adopt => "Adopted",
        Change::Update(_) => "Updated",
        Change::Enable => "Enabled",
        Change::Disable => "Disabled",
        Change::Grant(_) => "Granted",
        Change::Revoke(_) => "Revoked",
        Change::Delete => "Deleted",
    }
}

/// The change in words, e.g. `granted "engineers"`.
pub fn describe(change: &Change) -> String {
    match change {
        Change::Create { active: true } => "created the account".into(),
        Change::Create { active: false } => "created the account, disabled".into(),
        Change::Adopt => "adopted the existing account".into(),
        Change::Update(fields) => format!("updated {}", fields.join(", ")),
        Change::Enable => "enabled the account".into(),
        Change::Disable => "disabled the account".into(),
        Change::Grant(e) => format!("granted {e:?}"),
        Change::Revoke(e) => format!("revoked {e:?}"),
        Change::Delete => "deleted the account".into(),
    }
}

/// The change as an intent, e.g. `grant "engineers"`, for failure messages.
pub fn intent(change: &Change) -> String {
    match change {
        Change::Create { .. } => "create the account".into(),
        Change::Adopt => "adopt the existing account".into(),
        Change::Update(fields) => format!("update {}", fields.join(", ")),
        Change::Enable => "enable the account".into(),
        Change::Disable => "disable the account".into(),
        Change::Grant(e) => format!("grant {e:?}"),
        Change::Revoke(e) => format!("revoke {e:?}"),
        Change::Delete => "delete the account".into(),
    }
}
