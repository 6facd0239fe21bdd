//! `plan`: the changes that take one account from what is observed to what is desired,
//! through the ownership ledger and the Connector's policies — and the drift to report.
//!
//! What Roster owns on a connector: accounts carrying its mark for this identity, the
//! grants its ledger records, and — only where membership is `Authoritative` — every
//! membership of the entitlements its Roles name there. Nothing else is ever revoked,
//! disabled, updated or deleted. Under `Additive` membership (the default) a membership
//! Roster did not grant is reported and left in place.

use std::collections::BTreeSet;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::model::{DesiredAccount, Managed, NameCase, ObservedAccount};
use crate::api::AdoptionPolicy;

/// What status remembers about an account between reconciles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Entitlements Roster granted and still holds on the account.
    pub granted: BTreeSet<String>,
    /// When Roster found the account disabled after the identity lost access: the start of
    /// the grace period before deletion.
    pub disabled_at: Option<Timestamp>,
}

/// The Connector's policies as they bear on one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The username is a protected (break-glass) account: never touched.
    pub protected: bool,
    /// What to do with an existing account Roster does not own.
    pub adoption: AdoptionPolicy,
    /// Delete a disabled account this long after it was disabled; `None`: never.
    pub delete_after: Option<SignedDuration>,
    /// The instant the plan is made at.
    pub now: Timestamp,
    /// How the app compares usernames (protected accounts match the same way).
    pub names: NameCase,
}

impl Policy {
    /// The policy a Connector's spec sets for the account `username`, at `now`, on an
    /// app that compares names as `names` does.
    pub fn of(
        spec: &crate::api::ConnectorSpec,
        username: &str,
        now: Timestamp,
        names: NameCase,
    ) -> Self {
        Self {
            protected: spec
                .protected_accounts
                .iter()
                .any(|p| names.same(p, username)),
            adoption: spec.adoption,
            delete_after: spec
                .deprovisioning
                .delete_after_seconds
                .map(SignedDuration::from_secs),
            now,
            names,
        }
    }
}

/// One downstream change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Create the account with Roster's mark, enabled or not.
    Create {
        /// Whether it starts enabled.
        active: bool,
    },
    /// Put Roster's mark on an existing account (adoption policy).
    Adopt,
    /// Bring these attributes in line with the Identity.
    Update(Vec<&'static str>),
    /// Enable the account.
    Enable,
    /// Disable the account.
    Disable,
    /// Take an entitlement away.
    Revoke(String),
    /// Give an entitlement.
    Grant(String),
    /// Delete the account.
    Delete,
}

impl Change {
    /// Whether the change takes access away (what a deletion budget counts).
    pub fn is_removal(&self) -> bool {
        matches!(self, Change::Disable | Change::Delete)
    }
}

/// Where the account stands, for status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Roster manages it (or will create it).
    Managed,
    /// Neither wanted nor present.
    Absent,
    /// An account exists under the username that Roster does not own and may not adopt.
    Conflict,
    /// The username is protected on this connector.
    Protected,
}

/// The outcome of planning one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Changes in the order to apply them: removals before additions.
    pub changes: Vec<Change>,
    /// How observed differs from desired, in words; empty when in sync.
    pub drift: Vec<String>,
    /// Where the account stands.
    pub standing: Standing,
}

impl Plan {
    fn standing(standing: Standing, drift: Vec<String>) -> Self {
        Self {
            changes: Vec::new(),
            drift,
            standing,
        }
    }
}

/// Plans one identity's account on one connector. `identity` is the Identity's name, the
/// value of Roster's ownership mark; `managed` is the connector's managed set.
pub fn plan(
    identity: &str,
    desired: Option<&DesiredAccount>,
    observed: Option<&ObservedAccount>,
    ledger: &Ledger,
    managed: &Managed,
    policy: &Policy,
) -> Plan {
    let Some(observed) = observed else {
        let Some(desired) = desired else {
            return Plan::standing(Standing::Absent, Vec::new());
        };
        if policy.protected {
            return Plan::standing(
                Standing::Protected,
                vec!["protected account: left untouched".into()],
            );
        }
        let mut changes = vec![Change::Create {
            active: desired.active,
        }];
        changes.extend(desired.entitlements.iter().cloned().map(Change::Grant));
        return Plan {
            changes,
            drift: vec!["account does not exist".into()],
            standing: Standing::Managed,
        };
    };
    if policy.protected {
        return Plan::standing(
            Standing::Protected,
            vec!["protected account: left untouched".into()],
        );
    }
    let mut changes = Vec::new();
    let mut drift = Vec::new();
    match observed.owner.as_deref() {
        Some(owner) if owner == identity => {}
        Some(other) => {
            return Plan::standing(
                Standing::Conflict,
                vec![format!(
                    "account {:?} is managed for Identity {other:?}",
                    observed.username
                )],
            );
        }
        None if desired.is_none() => return Plan::standing(Standing::Absent, Vec::new()),
        None if policy.adoption == AdoptionPolicy::AdoptByUsername => {
            changes.push(Change::Adopt);
            drift.push("account exists without Roster's mark: adopting".into());
        }
        None => {
            return Plan::standing(
                Standing::Conflict,
                vec![format!(
                    "an account {:?} exists that Roster does not own; left untouched (adoption: Never)",
                    observed.username
                )],
            );
        }
    }

    let empty = BTreeSet::new();
    let wanted = desired.map_or(&empty, |d| &d.entitlements);
    let owned_grants: BTreeSet<&String> = ledger.granted.union(&managed.authoritative).collect();
    let (revokes, kept): (Vec<&String>, Vec<&String>) = observed
        .entitlements
        .difference(wanted)
        .filter(|e| managed.names.contains(*e) || ledger.granted.contains(*e))
        .partition(|e| owned_grants.contains(e));
    for e in &revokes {
        changes.push(Change::Revoke((*e).clone()));
        drift.push(format!("holds {e:?}, which it should not"));
    }
    for e in kept {
        drift.push(format!(
            "holds {e:?}, granted outside Roster: left in place (membership Additive)"
        ));
    }

    match desired {
        Some(desired) => {
            let differs = desired.attributes.differences(&observed.attributes);
            if !differs.is_empty() {
                drift.push(format!("attributes differ: {}", differs.join(", ")));
                changes.push(Change::Update(differs));
            }
            if desired.active && !observed.active {
                drift.push("account is disabled".into());
                changes.push(Change::Enable);
            } else if !desired.active && observed.active {
                drift.push("account is enabled".into());
                changes.push(Change::Disable);
            }
            for e in wanted.difference(&observed.entitlements) {
                drift.push(format!("lacks {e:?}"));
                changes.push(Change::Grant(e.clone()));
            }
        }
        None if observed.active => {
            drift.push("account is enabled but no longer granted anything".into());
            changes.push(Change::Disable);
        }
        None => {
            // Disabled and stripped in an earlier pass: delete once the grace period is over.
            let grace_over = match (ledger.disabled_at, policy.delete_after) {
                (Some(since), Some(grace)) => {
                    since.checked_add(grace).is_ok_and(|t| t <= policy.now)
                }
                _ => false,
            };
            if revokes.is_empty() && grace_over {
                changes.push(Change::Delete);
            }
        }
    }
    Plan {
        changes,
        drift,
        standing: Standing::Managed,
    }
}

/// The ledger after a pass, from the account as read back: the entitlements it holds that
/// Roster granted or was asked to, and when the grace period started.
pub fn ledger_after(
    desired: Option<&DesiredAccount>,
    verified: Option<&ObservedAccount>,
    previous: &Ledger,
    now: Timestamp,
) -> Ledger {
    let Some(account) = verified else {
        return Ledger::default();
    };
    let wanted = desired.map(|d| &d.entitlements);
    let granted = account
        .entitlements
        .iter()
        .filter(|e| previous.granted.contains(*e) || wanted.is_some_and(|w| w.contains(*e)))
        .cloned()
        .collect();
    let disabled_at =
        (desired.is_none() && !account.active).then(|| previous.disabled_at.unwrap_or(now));
    Ledger {
        granted,
        disabled_at,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
