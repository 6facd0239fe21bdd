//! Deletion budgets in this process: removal reservations per Connector, shared by every
//! reconcile so that concurrent leavers cannot overshoot together. The count survives a
//! restart without state of its own: it is seeded, once per Connector, from the removal
//! times the Identities' status records (`accounts[].disabledAt`, receipts' `deletedAt`).

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::{
    api::{Connector, Identity},
    lifecycle::budget::{Removal, Trip, approved, counted, fits},
};

/// Annotation on a Connector with which a person approves the removals that tripped its
/// budget: an RFC 3339 time; removals before it stop counting.
pub const APPROVE_ANNOTATION: &str = "roster.dev/approve-removals";

#[derive(Default)]
struct State {
    seeded: bool,
    removals: Vec<Removal>,
    trip: Option<Trip>,
    /// Identities whose removals were refused while tripped: an approval releases them.
    held: std::collections::BTreeSet<String>,
    /// Removals the last approval released, on top of the budget.
    allowance: usize,
}

/// Every Connector's budget state.
#[derive(Default)]
pub struct Budgets {
    inner: Mutex<HashMap<String, State>>,
}

/// The approval time on `connector`, if it carries a valid one.
pub fn approved_at(connector: &Connector) -> Option<Timestamp> {
    connector
        .annotations()
        .get(APPROVE_ANNOTATION)?
        .trim()
        .parse()
        .ok()
}

fn key(connector: &Connector) -> String {
    format!(
        "{}/{}",
        connector.namespace().unwrap_or_default(),
        connector.name_any()
    )
}

/// The removals the Identities' status records for the connector `key`.
pub fn recorded_removals(identities: &[std::sync::Arc<Identity>], key: &str) -> Vec<Removal> {
    let mut out = Vec::new();
    for identity in identities {
        let Some(status) = &identity.status else {
            continue;
        };
        let who = identity.name_any();
        for account in status.accounts.iter().filter(|a| a.connector == key) {
            out.extend(account.disabled_at.as_ref().map(|t| (t.0, who.clone())));
        }
        for receipt in status.deprovisioning.iter().flat_map(|r| &r.connectors) {
            if receipt.connector == key {
                out.extend(receipt.deleted_at.as_ref().map(|t| (t.0, who.clone())));
            }
        }
    }
    out
}

/// A refusal: the trip, and whether this call tripped it.
pub struct Refused {
    /// Why removals are held.
    pub trip: Trip,
    /// The breaker tripped just now (publish an Event, refresh the Connector's status).
    pub new: bool,
}

impl Budgets {
    /// Reserves the removal of `who`'s account on `connector` at `now`, or refuses.
    /// `managed` is how many accounts Roster manages there; `seed` yields the recorded
    /// removals, asked once. An approval releases what was held when it came, on top of
    /// the budget: it approves those removals, not a fresh round of the same size.
    pub fn reserve(
        &self,
        connector: &Connector,
        who: &str,
        managed: usize,
        now: Timestamp,
        seed: impl FnOnce() -> Vec<Removal>,
    ) -> Result<(), Refused> {
        let approval = approved_at(connector);
        let budget = &connector.spec.deletion_budget;
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let state = map.entry(key(connector)).or_default();
        if !state.seeded {
            state.removals = seed();
            state.seeded = true;
        }
        if let Some(trip) = &state.trip {
            if approved(trip, approval) {
                state.trip = None;
                state.allowance = std::mem::take(&mut state.held).len();
            } else {
                state.held.insert(who.to_owned());
                return Err(Refused {
                    trip: trip.clone(),
                    new: false,
                });
            }
        }
        let accounts = counted(&state.removals, budget, approval, now);
        // An account already counted in the window (its deletion after its disable)
        // costs nothing more.
        let extra = usize::from(!accounts.contains(who));
        let already = accounts.len().saturating_sub(state.allowance);
        match fits(budget, already, extra, managed) {
            Ok(()) => {
                state.removals.push((now, who.to_owned()));
                Ok(())
            }
            Err(message) => {
                let trip = Trip {
                    since: now,
                    planned: already + extra,
                    message,
                };
                state.trip = Some(trip.clone());
                state.held.insert(who.to_owned());
                Err(Refused { trip, new: true })
            }
        }
    }

    /// The connector's trip, if removals are held (an approval after it lifts it).
    pub fn trip(&self, connector: &Connector) -> Option<Trip> {
        let approval = approved_at(connector);
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let state = map.get_mut(&key(connector))?;
        if state.trip.as_ref().is_some_and(|t| approved(t, approval)) {
            state.trip = None;
            state.allowance = std::mem::take(&mut state.held).len();
        }
        state.trip.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn connector(max_removals: i32, approval: Option<&str>) -> Connector {
        let mut c = Connector::new(
            "scim",
            serde_json::from_value(json!({"kubernetes": {},
                "deletionBudget": {"maxRemovals": max_removals, "maxPercent": 100, "windowSeconds": 3600}}))
            .unwrap(),
        );
        c.metadata.namespace = Some("ns".into());
        if let Some(a) = approval {
            c.metadata.annotations = Some([(APPROVE_ANNOTATION.to_owned(), a.to_owned())].into());
        }
        c
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn trips_holds_everything_then_an_approval_releases_what_was_held() {
        let budgets = Budgets::default();
        let c = connector(2, None);
        assert!(budgets.reserve(&c, "a", 100, at(0), Vec::new).is_ok());
        assert!(budgets.reserve(&c, "b", 100, at(1), Vec::new).is_ok());
        let refused = budgets
            .reserve(&c, "c", 100, at(2), Vec::new)
            .expect_err("the third trips it");
        assert!(refused.new);
        assert_eq!(refused.trip.planned, 3);
        // Once tripped, even a removal that would fit is held; retries are one hold.
        for (who, t) in [("d", 3), ("e", 4), ("d", 5)] {
            let again = budgets
                .reserve(&c, who, 100, at(t), Vec::new)
                .expect_err("still held");
            assert!(!again.new);
        }
        assert!(budgets.trip(&c).is_some());

        // The approval releases the three held (c, d, e) on top of the budget of two...
        let approved = connector(2, Some(&at(10).to_string()));
        assert!(
            budgets.trip(&approved).is_none(),
            "approval after the trip lifts it"
        );
        for (i, who) in ["c", "d", "e", "f", "g"].into_iter().enumerate() {
            let t = at(11 + i64::try_from(i).unwrap());
            assert!(
                budgets.reserve(&approved, who, 100, t, Vec::new).is_ok(),
                "{who}"
            );
        }
        // ...and no more: the budget still guards what comes after.
        assert!(
            budgets
                .reserve(&approved, "h", 100, at(20), Vec::new)
                .is_err()
        );
    }

    #[test]
    fn seeded_from_status_once_and_counting_accounts_not_operations() {
        let budgets = Budgets::default();
        let c = connector(2, None);
        let recorded = || vec![(at(10), "a".to_owned()), (at(20), "b".to_owned())];
        assert!(
            budgets.reserve(&c, "c", 100, at(100), recorded).is_err(),
            "two recorded plus one"
        );
        let budgets = Budgets::default();
        let one = connector(1, None);
        assert!(
            budgets.reserve(&one, "a", 100, at(0), Vec::new).is_ok(),
            "a's disable"
        );
        assert!(
            budgets.reserve(&one, "a", 100, at(1), Vec::new).is_ok(),
            "a's deletion: same account"
        );
        assert!(budgets.reserve(&one, "b", 100, at(2), Vec::new).is_err());
    }
}
