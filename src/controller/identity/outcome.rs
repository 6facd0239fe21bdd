//! What one pass on one account comes to, settled from what the app said before and
//! after: the ledger, the drift, the state, and whether access is verified gone. Pure:
//! `account::sync` does the I/O and hands the facts here.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use super::report::AccountReport;
use crate::{
    api::{AccountState, AccountStatus, BudgetedAt},
    lifecycle::{
        ConnectorKey, DesiredAccount, Managed, ObservedAccount,
        budget::Breaker,
        plan::{Change, Ledger, Plan, Policy, Standing, ledger_after, plan},
    },
    text::truncate,
};

/// The most drift lines kept per account (the CRD bounds the list at 16).
pub(super) const DRIFT_LINES: usize = 16;

/// What a pass saw and did on one account.
pub struct Facts<'a> {
    /// The connector.
    pub key: &'a ConnectorKey,
    /// The Identity's name: the value of Roster's ownership mark.
    pub identity: &'a str,
    /// Whether the Identity is leaving (Terminated, expired or being deleted).
    pub leaving: bool,
    /// What the Identity should have there, as planned from.
    pub desired: Option<&'a DesiredAccount>,
    /// The account before the pass.
    pub observed: Option<&'a ObservedAccount>,
    /// The account as read back after the pass (the same as `observed` when nothing ran).
    pub verified: Option<&'a ObservedAccount>,
    /// The ledger before the pass.
    pub ledger: &'a Ledger,
    /// The connector's managed entitlements.
    pub managed: &'a Managed,
    /// The connector's policies for this account.
    pub policy: &'a Policy,
    /// Whether the connector is in Enforce mode (in Observe the ledger is not advanced).
    pub enforce: bool,
    /// The status entry before the pass.
    pub previous: Option<&'a AccountStatus>,
    /// The changes that succeeded.
    pub applied: &'a [Change],
    /// The change that failed, if one did: its outcome is unknown (a connection lost
    /// after the app acted looks the same as one lost before).
    pub failed: Option<&'a Change>,
    /// Whether `verified` was read after the writes; `false` when the app did not answer
    /// then, and `verified` is the account from before them.
    pub read_back: bool,
    /// The breakers that counted those changes (recorded for a restart to seed from).
    pub counted: &'a [Breaker],
    /// Why the pass failed or was held, if it did: (reason, message).
    pub error: Option<(&'static str, String)>,
    /// Now.
    pub now: Timestamp,
}

/// The report for one pass on one account.
pub fn settle(f: Facts<'_>) -> AccountReport {
    let next_ledger = if f.enforce {
        let mut ledger = ledger_after(f.desired, f.verified, f.ledger, f.now);
        if !f.read_back {
            ledger.granted.extend(attempted_grants(&f));
        }
        ledger
    } else {
        f.ledger.clone()
    };
    let remaining = plan(
        f.identity,
        f.desired,
        f.verified,
        &next_ledger,
        f.managed,
        f.policy,
    );
    let ours = |a: &ObservedAccount| a.owner.as_deref() == Some(f.identity);
    let was_managed = f.previous.is_some_and(|p| {
        matches!(
            p.state,
            AccountState::Active | AccountState::Disabled | AccountState::Deleted
        )
    });
    // Access is judged by the username, whoever owns the account: a mark removed or
    // edited downstream must not turn an enabled account into "access gone".
    let access_gone = !has_access(f.verified, &next_ledger, f.managed);
    let unowned = unowned_access(&f, &next_ledger, was_managed);
    let mut drift: Vec<String> = unowned.iter().cloned().collect();
    drift.extend(remaining.drift.iter().cloned());
    drift.truncate(DRIFT_LINES);
    if !f.enforce && !remaining.changes.is_empty() {
        drift.truncate(DRIFT_LINES - 1);
        drift.push(format!(
            "Observe mode: {} change(s) not made",
            remaining.changes.len()
        ));
    }
    let state = if unowned.is_some() {
        AccountState::Conflict
    } else {
        state(
            &remaining,
            f.verified,
            f.desired.is_some() || f.previous.is_some(),
        )
    };
    let entry = AccountStatus {
        connector: f.key.to_string(),
        external_id: f.verified.map(|a| a.id.clone()),
        state,
        entitlements: next_ledger.granted.iter().cloned().collect(),
        last_verified: if f.error.is_none() && drift.is_empty() {
            Some(Time(f.now))
        } else {
            f.previous.and_then(|p| p.last_verified.clone())
        },
        drift,
        disabled_at: next_ledger.disabled_at.map(Time),
        error: f.error.as_ref().map(|(_, m)| truncate(m, 512)),
        budgeted_at: budgeted_at(f.previous, f.counted, f.now),
    };
    let unfinished = f.enforce && f.error.is_none() && !remaining.changes.is_empty();
    AccountReport {
        key: f.key.clone(),
        entry,
        error: f.error,
        access_gone,
        managed: f.observed.is_some_and(ours) || f.verified.is_some_and(ours) || was_managed,
        unowned_access: unowned,
        unfinished,
        removed_now: f
            .applied
            .iter()
            .any(|c| matches!(c, Change::Revoke(_)) || c.is_removal()),
        deleted_now: f.applied.contains(&Change::Delete),
    }
}

/// The entitlements this pass granted or tried to. When the app did not answer the read
/// back, they may be held now: the ledger must not forget them, or the Identity, once it
/// leaves, would keep them (`Additive` revokes only what the ledger names). A claim the
/// app does not hold is dropped at the next read.
fn attempted_grants<'f>(f: &'f Facts<'_>) -> impl Iterator<Item = String> + 'f {
    f.applied.iter().chain(f.failed).filter_map(|c| match c {
        Change::Grant(e) => Some(e.clone()),
        _ => None,
    })
}

/// Whether the account gives access: it is enabled, or holds an entitlement Roster
/// granted or owns outright (`Authoritative`).
fn has_access(account: Option<&ObservedAccount>, ledger: &Ledger, managed: &Managed) -> bool {
    account.is_some_and(|a| {
        a.active
            || a.entitlements
                .iter()
                .any(|e| ledger.granted.contains(e) || managed.authoritative.contains(e))
    })
}

/// Access that remains through an account Roster does not own, where the Identity should
/// have none: for a leaver, or where the account was Roster's until its mark was removed
/// or changed. Roster must not touch such an account; a person must. `None` otherwise.
fn unowned_access(f: &Facts<'_>, ledger: &Ledger, was_managed: bool) -> Option<String> {
    let account = f.verified?;
    let theirs = account.owner.as_deref() != Some(f.identity);
    let wanted_nowhere = f.desired.is_none() && (f.leaving || was_managed);
    if !theirs
        || !wanted_nowhere
        || f.policy.protected
        || !has_access(Some(account), ledger, f.managed)
    {
        return None;
    }
    let whose = match account.owner.as_deref() {
        Some(other) => format!("is marked for Identity {other:?}"),
        None => "carries no mark of Roster's".to_owned(),
    };
    Some(format!(
        "account {:?} still has access and {whose}: Roster leaves it alone; a person must disable it",
        account.username
    ))
}

/// The times each breaker last counted a removal here, with this pass's.
fn budgeted_at(
    previous: Option<&AccountStatus>,
    counted: &[Breaker],
    now: Timestamp,
) -> Option<BudgetedAt> {
    let before = previous.and_then(|p| p.budgeted_at.clone());
    if counted.is_empty() {
        return before;
    }
    let mut at = before.unwrap_or_default();
    for breaker in counted {
        breaker.record(&mut at, now);
    }
    Some(at)
}

fn state(plan: &Plan, account: Option<&ObservedAccount>, known: bool) -> AccountState {
    match (plan.standing, account) {
        (Standing::Conflict, _) => AccountState::Conflict,
        (Standing::Protected, _) => AccountState::Protected,
        (_, Some(a)) if a.active => AccountState::Active,
        (_, Some(_)) => AccountState::Disabled,
        (_, None) if known && plan.changes.is_empty() => AccountState::Deleted,
        (_, None) => AccountState::Pending,
    }
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
