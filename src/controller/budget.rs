//! The breakers in this process: reservations per Connector and breaker, shared by every
//! reconcile so that concurrent removals cannot overshoot together.
//!
//! Nothing here is lost in a restart. The counts are seeded, once per Connector, from the
//! removal times the Identities' status records (`accounts[].budgetedAt`, receipts'
//! `deletedAt`); a tripped breaker and who it holds are read back from the Connector's
//! `status.quarantine`, which the Connector loop writes from [`Budgets::snapshot`].

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Mutex,
};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::{
    api::{Connector, HeldRemoval, Identity},
    lifecycle::{
        audit::Approval,
        budget::{Breaker, Cause, Limits, Removal, Trip, approval_problem, approved, counted},
    },
};

/// Annotation on a Connector with which a person approves everything its breakers hold:
/// an RFC 3339 time, normally now; removals before it stop counting.
pub const APPROVE_ANNOTATION: &str = "roster.dev/approve-removals";
/// Annotation that approves only the explicit leavers a wave holds (`holdLeaverWaves`).
pub const APPROVE_LEAVERS_ANNOTATION: &str = "roster.dev/approve-leavers";
/// Annotation on a Connector naming who set its approval: the admission policy
/// (`crds/admission.yaml`) admits an approval only when this is the requester's own
/// username, so the audit record's approver is the apiserver's word, not the approver's.
pub const APPROVED_BY_ANNOTATION: &str = "roster.dev/approved-by";

#[derive(Default)]
struct State {
    removals: Vec<Removal>,
    trip: Option<Trip>,
    /// Identities refused while tripped, and why they lose access: an approval releases
    /// them.
    held: BTreeMap<String, Cause>,
    /// Removals the last approval released, on top of the budget.
    allowance: usize,
    /// Who the last approval released, and that approval: their removals' evidence names
    /// it. The approver is taken with the time from the one Connector object that lifted
    /// the trip: a reconcile holding an older copy of the Connector, without the
    /// annotations, still names who released it.
    released: (BTreeSet<String>, Option<Approval>),
    /// When the current wave was first flagged (leavers only, without a hold).
    wave: Option<Trip>,
}

/// Every Connector's breakers.
#[derive(Default)]
pub struct Budgets {
    inner: Mutex<HashMap<String, Connectors>>,
}

#[derive(Default)]
struct Connectors {
    /// The removal counts were read from the Identities' status.
    counts_seeded: bool,
    /// The trips and holds were read from the Connector's status.
    trips_seeded: bool,
    breakers: BTreeMap<Breaker, State>,
}

/// The annotation that approves `breaker`'s holds, if any, when it carries a usable time.
pub fn approved_at(connector: &Connector, breaker: Breaker, now: Timestamp) -> Option<Timestamp> {
    let read = |name: &str| {
        let value = connector.annotations().get(name)?;
        if approval_problem(value, now).is_some() {
            return None;
        }
        value.trim().parse::<Timestamp>().ok()
    };
    let all = read(APPROVE_ANNOTATION);
    match breaker {
        Breaker::Leavers => all.max(read(APPROVE_LEAVERS_ANNOTATION)),
        Breaker::Removals | Breaker::Revocations => all,
    }
}

/// The approval of `breaker`'s holds the Connector carries at `now`, with who set it.
fn approval_of(connector: &Connector, breaker: Breaker, now: Timestamp) -> Option<Approval> {
    approved_at(connector, breaker, now).map(|at| Approval {
        at,
        by: connector.annotations().get(APPROVED_BY_ANNOTATION).cloned(),
    })
}

/// What is wrong with the Connector's approval annotations at `now`, if anything.
pub fn approval_problems(connector: &Connector, now: Timestamp) -> Vec<String> {
    [APPROVE_ANNOTATION, APPROVE_LEAVERS_ANNOTATION]
        .into_iter()
        .filter_map(|name| {
            let value = connector.annotations().get(name)?;
            approval_problem(value, now).map(|p| format!("{name}: {p}"))
        })
        .collect()
}

fn key(connector: &Connector) -> String {
    format!(
        "{}/{}",
        connector.namespace().unwrap_or_default(),
        connector.name_any()
    )
}

/// The removals the Identities' status records for the connector `key`, by breaker:
/// `accounts[].budgetedAt`, and for a status written before it existed, `disabledAt`
/// (as a removal) — with receipts' `deletedAt` (a removal, whoever left).
pub fn recorded_removals(
    identities: &[std::sync::Arc<Identity>],
    key: &str,
) -> BTreeMap<Breaker, Vec<Removal>> {
    let mut out: BTreeMap<Breaker, Vec<Removal>> = BTreeMap::new();
    for identity in identities {
        let Some(status) = &identity.status else {
            continue;
        };
        let who = identity.name_any();
        for account in status.accounts.iter().filter(|a| a.connector == key) {
            match &account.budgeted_at {
                Some(at) => {
                    for breaker in Breaker::ALL {
                        if let Some(t) = breaker.recorded(at) {
                            out.entry(breaker).or_default().push((t, who.clone()));
                        }
                    }
                }
                None => {
                    if let Some(t) = &account.disabled_at {
                        out.entry(Breaker::Removals)
                            .or_default()
                            .push((t.0, who.clone()));
                    }
                }
            }
        }
        for receipt in status.deprovisioning.iter().flat_map(|r| &r.connectors) {
            if let (true, Some(t)) = (receipt.connector == key, &receipt.deleted_at) {
                out.entry(Breaker::Removals)
                    .or_default()
                    .push((t.0, who.clone()));
            }
        }
    }
    out
}

/// A refusal: the trip, and whether this call tripped it.
#[derive(Debug)]
pub struct Refused {
    /// Why it is held.
    pub trip: Trip,
    /// The breaker tripped just now (publish an Event, refresh the Connector's status).
    pub new: bool,
    /// This account was not held before: the Connector's list of who is held grew.
    pub newly_held: bool,
}

/// A reservation that went through.
#[derive(Debug, Default)]
pub struct Reserved {
    /// A wave of explicit leavers was flagged just now (Event and metric; not held).
    pub new_wave: Option<Trip>,
    /// The account was held, and this approval released it.
    pub released_by: Option<Approval>,
}

/// What the Connector's status should say about its breakers.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The tripped breakers.
    pub trips: Vec<(Breaker, Trip)>,
    /// Who is held, explicit leavers first.
    pub held: Vec<HeldRemoval>,
    /// A flagged wave of explicit leavers in the current window.
    pub wave: Option<Trip>,
}

/// One reservation's request.
pub struct Request<'a> {
    /// The breaker asked.
    pub breaker: Breaker,
    /// The Identity whose account it is.
    pub who: &'a str,
    /// Why the account loses access.
    pub cause: Cause,
    /// How many accounts Roster manages on the connector.
    pub managed: usize,
    /// Why the source looks empty (see [`crate::lifecycle::budget::empty_feed`]): then
    /// the budget is zero, and only an approval releases what is held.
    pub empty: Option<&'a str>,
    /// Now.
    pub now: Timestamp,
}

impl Budgets {
    /// Reserves `req` on `connector`, or refuses. `seed` yields the recorded account
    /// removals by breaker, asked once per Connector. An approval releases what was held when it
    /// came, on top of the budget: it approves those removals, not a fresh round.
    pub fn reserve(
        &self,
        connector: &Connector,
        req: Request<'_>,
        seed: impl FnOnce() -> BTreeMap<Breaker, Vec<Removal>>,
    ) -> Result<Reserved, Refused> {
        let limits = Limits::of(&connector.spec, req.breaker);
        let approval = approval_of(connector, req.breaker, req.now);
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let conn = map.entry(key(connector)).or_default();
        conn.seed_trips(connector);
        if !conn.counts_seeded {
            conn.counts_seeded = true;
            for (breaker, removals) in seed() {
                conn.breakers.entry(breaker).or_default().removals = removals;
            }
        }
        conn.lift_approved(connector, req.now);
        let state = conn.breakers.entry(req.breaker).or_default();
        let released_by = state
            .released
            .0
            .remove(req.who)
            .then(|| state.released.1.clone())
            .flatten();
        if let Some(refused) = state.hold_if_tripped(req.who, req.cause) {
            return Err(refused);
        }
        let approved_at = approval.map(|a| a.at);
        let accounts = counted(&state.removals, limits.window(), approved_at, req.now);
        // An account already counted in the window costs nothing more.
        let extra = usize::from(!accounts.contains(req.who));
        let total = (accounts.len() + extra).saturating_sub(state.allowance);
        let exceeded = match req.empty {
            Some(why) => (total > 0).then(|| why.to_owned()),
            None => limits.exceeded(total, req.managed),
        };
        let Some(message) = exceeded else {
            state.removals.push((req.now, req.who.to_owned()));
            return Ok(Reserved {
                released_by,
                ..Reserved::default()
            });
        };
        let trip = Trip {
            since: req.now,
            planned: total,
            message,
        };
        if !limits.holds() {
            state.removals.push((req.now, req.who.to_owned()));
            let window = limits.window();
            let stale = state.wave.as_ref().is_none_or(|w| {
                counted(&[(w.since, String::new())], window, None, req.now).is_empty()
            });
            if stale {
                state.wave = Some(trip.clone());
                return Ok(Reserved {
                    new_wave: Some(trip),
                    released_by,
                });
            }
            if let Some(w) = &mut state.wave {
                w.planned = total;
            }
            return Ok(Reserved {
                released_by,
                ..Reserved::default()
            });
        }
        state.trip = Some(trip.clone());
        state.held.insert(req.who.to_owned(), req.cause);
        Err(Refused {
            trip,
            new: true,
            newly_held: true,
        })
    }

    /// Holds `who`'s removal when `breaker` is tripped on `connector` (approvals
    /// applied), as [`Budgets::reserve`] would refuse it; reserves nothing otherwise.
    pub fn hold_if_tripped(
        &self,
        connector: &Connector,
        breaker: Breaker,
        who: &str,
        cause: Cause,
        now: Timestamp,
    ) -> Option<Refused> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let conn = map.entry(key(connector)).or_default();
        conn.seed_trips(connector);
        conn.lift_approved(connector, now);
        conn.breakers.get_mut(&breaker)?.hold_if_tripped(who, cause)
    }

    /// Takes back a reservation [`Budgets::reserve`] made for `who` at `at`: another
    /// breaker refused the same account's removal, and a removal goes whole or not at all.
    pub fn unreserve(&self, connector: &Connector, breaker: Breaker, who: &str, at: Timestamp) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(state) = map
            .get_mut(&key(connector))
            .and_then(|c| c.breakers.get_mut(&breaker))
            && let Some(i) = state
                .removals
                .iter()
                .rposition(|(t, w)| *t == at && w == who)
        {
            state.removals.remove(i);
        }
    }

    /// The state of `connector`'s breakers for its status (approvals applied).
    pub fn snapshot(&self, connector: &Connector, now: Timestamp) -> Snapshot {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let conn = map.entry(key(connector)).or_default();
        conn.seed_trips(connector);
        let mut out = Snapshot::default();
        let mut held: BTreeMap<(bool, String), HeldRemoval> = BTreeMap::new();
        conn.lift_approved(connector, now);
        for (breaker, state) in &mut conn.breakers {
            if let Some(t) = &state.trip {
                out.trips.push((*breaker, t.clone()));
                for (who, cause) in &state.held {
                    // Explicit leavers sort first.
                    let key = (*cause != Cause::ExplicitLeaver, who.clone());
                    held.entry(key)
                        .or_insert_with(|| HeldRemoval {
                            identity: who.clone(),
                            cause: cause.name().to_owned(),
                            budgets: Vec::new(),
                        })
                        .budgets
                        .push(breaker.name().to_owned());
                }
            }
            let window = Limits::of(&connector.spec, *breaker).window();
            if let Some(w) = &state.wave {
                if counted(&[(w.since, String::new())], window, None, now).is_empty() {
                    state.wave = None;
                } else {
                    out.wave = Some(w.clone());
                }
            }
        }
        out.held = held.into_values().collect();
        out
    }
}

impl State {
    /// While tripped, holds `who` (listing it among the held) and says so.
    fn hold_if_tripped(&mut self, who: &str, cause: Cause) -> Option<Refused> {
        let trip = self.trip.clone()?;
        let before = self.held.insert(who.to_owned(), cause);
        Some(Refused {
            trip,
            new: false,
            newly_held: before != Some(cause),
        })
    }
}

impl Connectors {
    /// Lifts every trip the Connector's approvals at `now` approve. What they held is
    /// released under each breaker lifted together, not only the one that held it: a
    /// removal goes whole, and a pass held by one breaker was never asked by another
    /// that tripped a moment later (the approval of all five held accounts once let four
    /// through and held the fifth's revocations again, for no one to approve).
    fn lift_approved(&mut self, connector: &Connector, now: Timestamp) {
        let mut lifted = Vec::new();
        let mut released = BTreeSet::new();
        for (breaker, state) in &mut self.breakers {
            let approval = approval_of(connector, *breaker, now);
            if state
                .trip
                .as_ref()
                .is_some_and(|t| approved(t, approval.as_ref().map(|a| a.at)))
            {
                state.trip = None;
                released.extend(std::mem::take(&mut state.held).into_keys());
                lifted.push((*breaker, approval));
            }
        }
        for (breaker, approval) in lifted {
            if let Some(state) = self.breakers.get_mut(&breaker) {
                state.allowance = released.len();
                state.released = (released.clone(), approval);
            }
        }
    }

    /// Trips and holds from the Connector's status, once.
    fn seed_trips(&mut self, connector: &Connector) {
        if std::mem::replace(&mut self.trips_seeded, true) {
            return;
        }
        let Some(q) = connector
            .status
            .as_ref()
            .and_then(|s| s.quarantine.as_ref())
        else {
            return;
        };
        // A quarantine written before breakers were listed was the removal budget's.
        let legacy = q.trips.is_empty().then_some((
            Some(Breaker::Removals),
            &q.since,
            q.planned_removals,
            &q.message,
        ));
        let listed = q
            .trips
            .iter()
            .map(|t| (Breaker::parse(&t.budget), &t.since, t.planned, &t.message));
        for (breaker, since, planned, message) in legacy.into_iter().chain(listed) {
            let Some(breaker) = breaker else { continue };
            self.breakers.entry(breaker).or_default().trip = Some(Trip {
                since: since.0,
                planned: usize::try_from(planned).unwrap_or(0),
                message: message.clone(),
            });
        }
        for h in &q.held {
            let Some(cause) = Cause::parse(&h.cause) else {
                continue;
            };
            for breaker in h.budgets.iter().filter_map(|b| Breaker::parse(b)) {
                let state = self.breakers.entry(breaker).or_default();
                if state.trip.is_some() {
                    state.held.insert(h.identity.clone(), cause);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
