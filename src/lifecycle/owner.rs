//! A Service identity answers to its owner. When the owner leaves (Terminated, past its
//! `validUntil`, being deleted) or its Identity is gone, the service keeps its access for
//! a grace period — time to hand it to someone — and then its accounts are disabled until
//! a new owner is set. Disabled, not deleted: setting an owner restores exactly what it
//! had. Pure.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::resolve::{Effective, Resolution, effective_state};
use crate::api::{Identity, IdentityKind, IdentitySpec};

/// Where a Service identity stands with its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// A Person, or a Service whose owner is present and has not left.
    Answered,
    /// The owner left or is gone (`why`) since `since`; access stays until `until`.
    Grace {
        /// Why: which owner, and what became of it.
        why: String,
        /// When Roster first found it so.
        since: Timestamp,
        /// When the service's access goes, unless a new owner is set.
        until: Timestamp,
    },
    /// The grace period is over: the service's accounts are disabled.
    Lapsed {
        /// Why.
        why: String,
        /// When Roster first found it so.
        since: Timestamp,
    },
}

impl Standing {
    /// When the owner was first found gone (for status), if it is.
    pub fn since(&self) -> Option<Timestamp> {
        match self {
            Standing::Answered => None,
            Standing::Grace { since, .. } | Standing::Lapsed { since, .. } => Some(*since),
        }
    }

    /// When the grace period ends, while it runs: the moment to look again.
    pub fn until(&self) -> Option<Timestamp> {
        match self {
            Standing::Grace { until, .. } => Some(*until),
            Standing::Answered | Standing::Lapsed { .. } => None,
        }
    }
}

/// How `spec`'s identity stands with its owner at `now`. `owner` is the owner's Identity
/// as the cache holds it (`None`: absent); `recorded` is when an earlier pass first found
/// the owner gone (the status field `ownerLostAt`), so a restart never restarts the
/// grace period.
pub fn standing(
    spec: &IdentitySpec,
    owner: Option<&Identity>,
    recorded: Option<Timestamp>,
    now: Timestamp,
    grace: SignedDuration,
) -> Standing {
    let Some(name) = spec
        .owner
        .as_deref()
        .filter(|_| spec.kind == IdentityKind::Service)
    else {
        return Standing::Answered;
    };
    let why = match owner {
        None => format!("its owner Identity {name:?} does not exist"),
        Some(o) if o.metadata.deletion_timestamp.is_some() => {
            format!("its owner Identity {name:?} is being deleted")
        }
        Some(o) if effective_state(o, now).0 == Effective::Terminated => {
            let left =
                format!("its owner Identity {name:?} has left (Terminated or past validUntil)");
            match o.spec.attributes.get("manager") {
                Some(m) => format!("{left}; {m:?}, their manager, could take it over"),
                None => left,
            }
        }
        Some(_) => return Standing::Answered,
    };
    // A record from the future (a skewed clock) counts from now.
    let since = recorded.filter(|t| *t <= now).unwrap_or(now);
    let until = since.saturating_add(grace).unwrap_or(since);
    if now >= until {
        Standing::Lapsed { why, since }
    } else {
        Standing::Grace { why, since, until }
    }
}

/// `resolution` as `standing` leaves it: a lapsed service's accounts disabled (it is
/// effectively Suspended); a service in its grace period looked at again when it ends.
/// Returns whether the owner's absence is what disables it (not the service's own state).
pub fn apply(standing: &Standing, resolution: &mut Resolution) -> bool {
    match standing {
        Standing::Answered => false,
        Standing::Grace { until, .. } => {
            if resolution.next_change.is_none_or(|n| *until < n) {
                resolution.next_change = Some(*until);
            }
            false
        }
        Standing::Lapsed { .. } => {
            if resolution.effective != Effective::Active {
                return false;
            }
            resolution.effective = Effective::Suspended;
            for account in resolution.accounts.values_mut() {
                account.active = false;
            }
            true
        }
    }
}

#[cfg(test)]
#[path = "owner_tests.rs"]
mod tests;
