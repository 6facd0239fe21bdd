//! Audit evidence: one record per downstream change, saying what caused it, what
//! changed, when, and what reading the account back found. Pure: the controller fills
//! in the facts and writes the record out (a JSON log line and an Event).

use std::collections::{BTreeMap, BTreeSet};

use super::{model::ObservedAccount, plan::Change, resolve::Effective};
use crate::api::LifecycleState;
use k8s_openapi::jiff::Timestamp;

/// A RoleBinding and the Role it names: why an identity holds an entitlement.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grantor {
    /// The RoleBinding, as `namespace/name`.
    pub role_binding: String,
    /// The Role it binds (in the same namespace).
    pub role: String,
}

/// What caused a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// RoleBindings give the access (a create, enable or grant).
    Granted {
        /// The bindings and Roles that give it.
        by: Vec<Grantor>,
    },
    /// The Identity's own lifecycle: it is `Suspended`, `Terminated`, past `validUntil`,
    /// not yet at `validFrom`, or its object is being deleted.
    Lifecycle {
        /// Which of those.
        state: String,
    },
    /// The Identity is active, but no RoleBinding gives this any longer: a Role,
    /// RoleBinding, binding window or the Identity's labels changed.
    NoLongerGranted,
    /// The Identity's attributes changed.
    Attributes,
    /// An account of the same username was taken under management
    /// (`adoption: AdoptByUsername`).
    Adoption,
    /// The inventory scan found a member Roster did not add in an authoritative
    /// entitlement.
    Scan,
}

/// A person's approval that released a held removal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The approval's time (the Connector's approval annotation).
    pub at: Timestamp,
    /// Who set it, as the apiserver recorded (`roster.dev/approved-by`); `None` when
    /// the annotation is missing.
    pub by: Option<String>,
}

/// What an identity's changes on one connector are grounded in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grounds {
    /// Not active, and why: see [`Cause::Lifecycle`]. `None` while the Identity is active.
    pub state: Option<String>,
    /// Entitlement → the bindings that give it, on this connector.
    pub grantors: BTreeMap<String, BTreeSet<Grantor>>,
}

/// Why an Identity is not active, in the audit's words ([`Cause::Lifecycle`]); `None`
/// while it is. `deleting`: its object is being deleted.
pub fn lifecycle_state(
    declared: LifecycleState,
    effective: Effective,
    deleting: bool,
) -> Option<String> {
    let state = match effective {
        _ if deleting => "being deleted",
        Effective::Active => return None,
        Effective::Suspended => "Suspended",
        Effective::NotStarted => "not yet started (validFrom is ahead)",
        Effective::Terminated if declared == LifecycleState::Terminated => "Terminated",
        Effective::Terminated => "expired (validUntil has passed)",
    };
    Some(state.to_owned())
}

impl Grounds {
    /// What caused `change` for an identity (the scan's changes are [`Cause::Scan`]).
    pub fn cause(&self, change: &Change) -> Cause {
        let lost = || match &self.state {
            Some(state) => Cause::Lifecycle {
                state: state.clone(),
            },
            None => Cause::NoLongerGranted,
        };
        match change {
            Change::Create { .. } | Change::Enable => Cause::Granted {
                by: self.all_grantors(),
            },
            Change::Grant(e) => Cause::Granted {
                by: self
                    .grantors
                    .get(e)
                    .map(|g| g.iter().cloned().collect())
                    .unwrap_or_default(),
            },
            Change::Disable | Change::Revoke(_) | Change::Delete => lost(),
            Change::Update(_) => Cause::Attributes,
            Change::Adopt => Cause::Adoption,
        }
    }

    fn all_grantors(&self) -> Vec<Grantor> {
        let all: BTreeSet<&Grantor> = self.grantors.values().flatten().collect();
        all.into_iter().cloned().collect()
    }
}

/// What reading the account back after the pass found, for one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadBack {
    /// The app shows the change made.
    Confirmed,
    /// The app does not show it.
    NotShown,
    /// The account could not be read back.
    Unread {
        /// Why.
        reason: String,
    },
}

impl ReadBack {
    /// Whether `change` shows in `account`, the account as read back (`None`: it does
    /// not exist).
    pub fn of(change: &Change, account: Option<&ObservedAccount>, identity: &str) -> Self {
        let shown = match (change, account) {
            (Change::Delete, a) => a.is_none(),
            (Change::Disable, a) => a.is_none_or(|a| !a.active),
            (Change::Revoke(e), a) => a.is_none_or(|a| !a.entitlements.contains(e)),
            (_, None) => false,
            (Change::Create { active }, Some(a)) => a.active == *active,
            (Change::Enable, Some(a)) => a.active,
            (Change::Grant(e), Some(a)) => a.entitlements.contains(e),
            (Change::Adopt, Some(a)) => a.owner.as_deref() == Some(identity),
            // Attributes are compared by the next plan; the account is there.
            (Change::Update(_), Some(_)) => true,
        };
        if shown {
            Self::Confirmed
        } else {
            Self::NotShown
        }
    }
}

/// Whether the change was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The app accepted it.
    Applied,
    /// The app refused it, or could not be reached.
    Failed {
        /// The error's reason (as in conditions).
        reason: String,
        /// The error.
        error: String,
    },
}

/// One downstream change, as evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// When the change was made.
    pub time: Timestamp,
    /// The Connector, as `namespace/name`.
    pub connector: String,
    /// The Identity whose account it is; `None` for a member no Identity claims.
    pub identity: Option<String>,
    /// The account's username downstream.
    pub account: String,
    /// What changed.
    pub change: Change,
    /// What caused it.
    pub cause: Cause,
    /// The approval that released it from a hold, if one did.
    pub approval: Option<Approval>,
    /// Whether it was made.
    pub outcome: Outcome,
    /// What reading back found.
    pub read_back: ReadBack,
}

/// What one account's pass did, for its records.
pub struct Facts<'a> {
    /// When.
    pub time: Timestamp,
    /// The Connector, as `namespace/name`.
    pub connector: &'a str,
    /// The Identity; `None` for a member the scan found.
    pub identity: Option<&'a str>,
    /// The account's username.
    pub account: &'a str,
    /// What the Identity's changes are grounded in; `None`: the scan's.
    pub grounds: Option<&'a Grounds>,
    /// The approval that released this account's held removals, if one did.
    pub approval: Option<&'a Approval>,
    /// The changes made, in order.
    pub applied: &'a [Change],
    /// The change that failed: its reason and error.
    pub failed: Option<(&'a Change, &'a str, String)>,
    /// The account as read back after the pass (`Ok(None)`: it does not exist), or why
    /// it could not be read.
    pub read_back: Result<Option<&'a ObservedAccount>, String>,
}

/// One record per change tried: those made, then the one that failed.
pub fn records(f: &Facts<'_>) -> Vec<Record> {
    let tried = f
        .applied
        .iter()
        .map(|c| (c, Outcome::Applied))
        .chain(f.failed.as_ref().map(|(c, reason, error)| {
            (
                *c,
                Outcome::Failed {
                    reason: (*reason).to_owned(),
                    error: error.clone(),
                },
            )
        }));
    tried
        .map(|(change, outcome)| Record {
            time: f.time,
            connector: f.connector.to_owned(),
            identity: f.identity.map(str::to_owned),
            account: f.account.to_owned(),
            change: change.clone(),
            cause: f.grounds.map_or(Cause::Scan, |g| g.cause(change)),
            approval: f
                .approval
                .filter(|_| matches!(change, Change::Disable | Change::Delete | Change::Revoke(_)))
                .cloned(),
            outcome,
            read_back: match &f.read_back {
                Ok(account) => ReadBack::of(change, *account, f.identity.unwrap_or_default()),
                Err(reason) => ReadBack::Unread {
                    reason: reason.clone(),
                },
            },
        })
        .collect()
}

/// The entitlement a change is about, if any.
pub fn entitlement(change: &Change) -> Option<&str> {
    match change {
        Change::Grant(e) | Change::Revoke(e) => Some(e),
        _ => None,
    }
}

impl Cause {
    /// The cause's kind, one word for log queries.
    pub fn kind(&self) -> &'static str {
        match self {
            Cause::Granted { .. } => "Granted",
            Cause::Lifecycle { .. } => "Lifecycle",
            Cause::NoLongerGranted => "NoLongerGranted",
            Cause::Attributes => "Attributes",
            Cause::Adoption => "Adoption",
            Cause::Scan => "Scan",
        }
    }

    /// The cause in words, for Events.
    pub fn describe(&self) -> String {
        match self {
            Cause::Granted { by } if by.is_empty() => "granted by a RoleBinding".into(),
            Cause::Granted { by } => {
                let by: Vec<String> = by
                    .iter()
                    .map(|g| format!("RoleBinding {} (Role {})", g.role_binding, g.role))
                    .collect();
                format!("granted by {}", by.join(", "))
            }
            Cause::Lifecycle { state } => format!("the Identity is {state}"),
            Cause::NoLongerGranted => "no RoleBinding grants it any longer".into(),
            Cause::Attributes => "the Identity's attributes changed".into(),
            Cause::Adoption => "adoption by username".into(),
            Cause::Scan => "a member Roster did not add (membership Authoritative)".into(),
        }
    }
}

impl ReadBack {
    /// The result, one word for log queries.
    pub fn name(&self) -> &'static str {
        match self {
            ReadBack::Confirmed => "confirmed",
            ReadBack::NotShown => "not-shown",
            ReadBack::Unread { .. } => "unread",
        }
    }

    /// The read-back in words, for Events.
    pub fn describe(&self) -> String {
        match self {
            ReadBack::Confirmed => "read back: confirmed".into(),
            ReadBack::NotShown => "read back: not shown yet".into(),
            ReadBack::Unread { reason } => format!("read back failed: {reason}"),
        }
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
