//! A policy removal a tripped breaker will hold, told from what status recorded, without
//! reading the account.
//!
//! A bad commit (a binding deleted) re-queues every subject the binding had. Once a
//! breaker has tripped, each of them is held, and reading each account on every app only
//! to find that out took the apps from the leavers: at 10,000 identities the 2,500
//! contractors' re-reads kept scim2-server answering in 1–2 s for eight minutes, and
//! leavers beside them waited up to 16 s. When the ledger alone says a pass would only
//! take access away from an enabled account Roster manages, the pass can be held as it
//! stands: nothing would be written in either case. What the pass cannot know without a
//! read (an attribute to update, a grant removed by hand downstream) waits for the
//! approval, which re-queues the held accounts and reads them as usual.

use std::collections::BTreeSet;

use super::{
    DesiredAccount, Managed, ObservedAccount,
    budget::{Breaker, Cause, breaker_for},
    plan::{Ledger, Policy, Standing, plan},
};

/// What one account was when status last recorded it.
#[derive(Clone, Copy, Debug)]
pub struct Recorded<'a> {
    /// The Identity's name: Roster's mark on the account.
    pub identity: &'a str,
    /// The app's id of the account.
    pub id: &'a str,
    /// The username.
    pub username: &'a str,
    /// The account was enabled.
    pub active: bool,
}

/// A pass that, by the ledger, only takes access away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovalOnly {
    /// The breakers its changes need; one tripped among them holds them all.
    pub breakers: BTreeSet<Breaker>,
    /// The drift, in the words a read would have given.
    pub drift: Vec<String>,
}

/// The removals a policy pass would make on the account `recorded`, when by its ledger
/// it would make nothing else; `None` when it might grant, enable, create or update, when
/// the Identity is an explicit leaver (whose account is always read), or when the account
/// is not an enabled one of Roster's. Pure.
pub fn removal_only(
    recorded: Recorded<'_>,
    desired: Option<&DesiredAccount>,
    ledger: &Ledger,
    managed: &Managed,
    policy: &Policy,
    cause: Cause,
) -> Option<RemovalOnly> {
    if cause != Cause::Policy || !recorded.active {
        return None;
    }
    // The account as the ledger knows it: enabled, holding what Roster granted, with the
    // attributes it should have (they are not recorded; see the module's note).
    let account = ObservedAccount {
        id: recorded.id.to_owned(),
        username: recorded.username.to_owned(),
        owner: Some(recorded.identity.to_owned()),
        active: true,
        attributes: desired.map(|d| d.attributes.clone()).unwrap_or_default(),
        entitlements: ledger.granted.clone(),
        version: None,
    };
    let expected = plan(
        recorded.identity,
        desired,
        Some(&account),
        ledger,
        managed,
        policy,
    );
    if expected.standing != Standing::Managed || expected.changes.is_empty() {
        return None;
    }
    let breakers = expected
        .changes
        .iter()
        .map(|c| breaker_for(c, cause))
        .collect::<Option<BTreeSet<Breaker>>>()?;
    Some(RemovalOnly {
        breakers,
        drift: expected.drift,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::{
        api::{AdoptionPolicy, IdentityKind},
        lifecycle::NameCase,
    };

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn desired(entitlements: &[&str], active: bool) -> DesiredAccount {
        DesiredAccount {
            username: "ada".into(),
            kind: IdentityKind::Person,
            attributes: Default::default(),
            active,
            entitlements: set(entitlements),
        }
    }

    fn policy(protected: bool) -> Policy {
        Policy {
            protected,
            adoption: AdoptionPolicy::Never,
            delete_after: None,
            now: Timestamp::UNIX_EPOCH,
            names: NameCase::Exact,
        }
    }

    fn recorded(active: bool) -> Recorded<'static> {
        Recorded {
            identity: "ada",
            id: "u1",
            username: "ada",
            active,
        }
    }

    fn check(
        active: bool,
        want: Option<&DesiredAccount>,
        granted: &[&str],
        protected: bool,
        cause: Cause,
    ) -> Option<RemovalOnly> {
        let ledger = Ledger {
            granted: set(granted),
            disabled_at: None,
        };
        let managed = Managed {
            names: set(&["staff", "contractors", "eng"]),
            authoritative: BTreeSet::new(),
        };
        removal_only(
            recorded(active),
            want,
            &ledger,
            &managed,
            &policy(protected),
            cause,
        )
    }

    #[test]
    fn a_lost_entitlement_needs_the_revocation_budget_only() {
        let staff = desired(&["staff"], true);
        let got = check(
            true,
            Some(&staff),
            &["staff", "contractors"],
            false,
            Cause::Policy,
        );
        let got = got.expect("removal only");
        assert_eq!(got.breakers, [Breaker::Revocations].into());
        assert_eq!(got.drift, ["holds \"contractors\", which it should not"]);
    }

    #[test]
    fn an_account_wanted_nowhere_needs_both_budgets() {
        let got = check(true, None, &["contractors"], false, Cause::Policy).expect("removal");
        assert_eq!(
            got.breakers,
            [Breaker::Removals, Breaker::Revocations].into()
        );
    }

    #[test]
    fn anything_but_a_removal_is_read_first() {
        let mover = desired(&["staff", "eng"], true);
        // A grant comes with the revoke: the account is read, and the grant goes.
        assert_eq!(
            check(
                true,
                Some(&mover),
                &["staff", "contractors"],
                false,
                Cause::Policy
            ),
            None
        );
        // In sync by the ledger: nothing to hold.
        let staff = desired(&["staff"], true);
        assert_eq!(
            check(true, Some(&staff), &["staff"], false, Cause::Policy),
            None
        );
        // A disabled account, a protected one, an explicit leaver: read as usual.
        assert_eq!(check(false, None, &["staff"], false, Cause::Policy), None);
        assert_eq!(check(true, None, &["staff"], true, Cause::Policy), None);
        assert_eq!(
            check(true, None, &["staff"], false, Cause::ExplicitLeaver),
            None
        );
    }
}
