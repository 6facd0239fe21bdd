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
    /// The account as the app's answers to the writes describe it, when the pass created
    /// an account, the app answered the create with it, and every other change was a
    /// grant that succeeded: those answers are the app's own read of the result.
    pub answered: Option<ObservedAccount>,
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
    let mut answered = true;
    for change in changes {
        match apply(backend, identity, desired, &mut account, change).await {
            Ok(said) => {
                crate::crashpoint::reached(crate::crashpoint::after(change));
                outcome.applied.push(change.clone());
                answered &= said;
            }
            Err(e) => {
                outcome.failed = Some((change.clone(), e));
                break;
            }
        }
    }
    let created = outcome
        .applied
        .iter()
        .any(|c| matches!(c, Change::Create { .. }));
    if answered && created && outcome.failed.is_none() {
        outcome.answered = account;
    }
    outcome
}

/// Applies one change to `account`; returns whether the app's answer shows the result
/// (a create answered with the created account, a grant that succeeded).
async fn apply(
    backend: &dyn Connector,
    identity: &str,
    desired: Option<&DesiredAccount>,
    account: &mut Option<ObservedAccount>,
    change: &Change,
) -> Result<bool, ConnectorError> {
    if let Change::Create { active } = change {
        let desired = desired.ok_or_else(|| {
            ConnectorError::Config("a create was planned without a desired account".into())
        })?;
        let (id, answer) = backend.create_answered(identity, desired, *active).await?;
        let said = answer.is_some();
        *account = Some(answer.unwrap_or_else(|| ObservedAccount {
            id,
            username: desired.username.clone(),
            owner: Some(identity.to_owned()),
            active: *active,
            attributes: desired.attributes.clone(),
            entitlements: Default::default(),
            version: None,
        }));
        return Ok(said);
    }
    let Some(current) = account.as_mut() else {
        return Err(ConnectorError::Config(format!(
            "{change:?} was planned for an account that does not exist"
        )));
    };
    match change {
        Change::Create { .. } => Ok(false),
        Change::Adopt => backend.adopt(current, identity).await.map(|()| false),
        Change::Update(_) => match desired {
            Some(d) => backend.update(current, &d.attributes).await.map(|()| false),
            None => Ok(false),
        },
        Change::Enable => backend.set_active(current, true).await.map(|()| false),
        Change::Disable => backend.set_active(current, false).await.map(|()| false),
        Change::Grant(e) => {
            backend.grant(&current.id, e).await?;
            current.entitlements.insert(e.clone());
            Ok(true)
        }
        Change::Revoke(e) => backend.revoke(&current.id, e).await.map(|()| false),
        Change::Delete => backend.delete(current).await.map(|()| false),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::testing::Nothing;

    fn desired() -> DesiredAccount {
        DesiredAccount {
            username: "ada".into(),
            kind: crate::api::IdentityKind::Person,
            attributes: Default::default(),
            active: true,
            entitlements: ["staff".to_owned(), "eng".to_owned()].into(),
        }
    }

    fn joiner() -> Vec<Change> {
        vec![
            Change::Create { active: true },
            Change::Grant("staff".into()),
            Change::Grant("eng".into()),
        ]
    }

    #[tokio::test]
    async fn a_joiner_answered_by_the_app_needs_no_second_read() {
        let app = Nothing {
            answer_creates: true,
            ..Nothing::default()
        };
        let d = desired();
        let out = execute(&app, "ada", Some(&d), None, &joiner()).await;
        let answer = out.answered.expect("the answers are the read-back");
        assert_eq!(answer.id, "created");
        assert_eq!(answer.owner.as_deref(), Some("ada"));
        let held: Vec<&str> = answer.entitlements.iter().map(String::as_str).collect();
        assert_eq!(held, ["eng", "staff"]);
    }

    /// Whatever else a pass does — a failed grant, a removal, an app whose create answer
    /// is not the account — it is read back.
    #[tokio::test]
    async fn anything_but_an_answered_joiner_is_read_back() {
        let d = desired();
        let quiet = Nothing::default();
        let out = execute(&quiet, "ada", Some(&d), None, &joiner()).await;
        assert!(out.answered.is_none(), "the create's answer was no account");

        let refusing = Nothing {
            answer_creates: true,
            refuse_grant: Some("eng".into()),
            ..Nothing::default()
        };
        let out = execute(&refusing, "ada", Some(&d), None, &joiner()).await;
        assert!(out.failed.is_some() && out.answered.is_none());

        let answering = Nothing {
            answer_creates: true,
            ..Nothing::default()
        };
        let mut mixed = joiner();
        mixed.push(Change::Revoke("old".into()));
        let out = execute(&answering, "ada", Some(&d), None, &mixed).await;
        assert!(out.answered.is_none(), "a revoke is read back");

        let existing = ObservedAccount {
            id: "7".into(),
            username: "ada".into(),
            owner: Some("ada".into()),
            active: true,
            attributes: Default::default(),
            entitlements: Default::default(),
            version: None,
        };
        let grants = [Change::Grant("eng".into())];
        let out = execute(&answering, "ada", Some(&d), Some(&existing), &grants).await;
        assert!(
            out.answered.is_none(),
            "only a pass that creates is answered"
        );
    }
}
