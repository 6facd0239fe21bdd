use std::collections::BTreeSet;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::lifecycle::model::{AccountAttributes, NameCase};

const ME: &str = "ada";

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A managed set whose every entitlement is authoritative (Roster alone decides).
fn auth(items: &[&str]) -> Managed {
    Managed {
        names: set(items),
        authoritative: set(items),
    }
}

/// A managed set under additive membership (the default).
fn additive(items: &[&str]) -> Managed {
    Managed {
        names: set(items),
        authoritative: BTreeSet::new(),
    }
}

fn now() -> Timestamp {
    "2027-03-01T12:00:00Z".parse().unwrap()
}

fn policy() -> Policy {
    Policy {
        protected: false,
        adoption: AdoptionPolicy::Never,
        delete_after: Some(SignedDuration::from_hours(24)),
        now: now(),
        names: NameCase::Exact,
    }
}

fn attrs(name: &str) -> AccountAttributes {
    AccountAttributes {
        display_name: Some(name.into()),
        ..Default::default()
    }
}

fn desired(active: bool, entitlements: &[&str]) -> DesiredAccount {
    DesiredAccount {
        username: "ada".into(),
        kind: Default::default(),
        attributes: attrs("Ada"),
        active,
        entitlements: set(entitlements),
    }
}

fn observed(owner: Option<&str>, active: bool, entitlements: &[&str]) -> ObservedAccount {
    ObservedAccount {
        id: "1".into(),
        username: "ada".into(),
        owner: owner.map(str::to_owned),
        active,
        attributes: attrs("Ada"),
        entitlements: set(entitlements),
        version: None,
    }
}

fn ledger(granted: &[&str]) -> Ledger {
    Ledger {
        granted: set(granted),
        disabled_at: None,
    }
}

#[test]
fn joiner_is_created_then_granted() {
    let p = plan(
        ME,
        Some(&desired(true, &["eng", "all"])),
        None,
        &Ledger::default(),
        &auth(&[]),
        &policy(),
    );
    assert_eq!(
        p.changes,
        [
            Change::Create { active: true },
            Change::Grant("all".into()),
            Change::Grant("eng".into())
        ]
    );
    assert_eq!(p.standing, Standing::Managed);
}

#[test]
fn in_sync_plans_nothing() {
    let p = plan(
        ME,
        Some(&desired(true, &["eng"])),
        Some(&observed(Some(ME), true, &["eng"])),
        &ledger(&["eng"]),
        &auth(&["eng"]),
        &policy(),
    );
    assert!(p.changes.is_empty() && p.drift.is_empty(), "{p:?}");
}

#[test]
fn mover_revokes_old_before_granting_new_and_updates_attributes() {
    let mut d = desired(true, &["finance"]);
    d.attributes = attrs("Ada L.");
    let p = plan(
        ME,
        Some(&d),
        Some(&observed(Some(ME), true, &["eng"])),
        &ledger(&["eng"]),
        &auth(&["eng", "finance"]),
        &policy(),
    );
    assert_eq!(
        p.changes,
        [
            Change::Revoke("eng".into()),
            Change::Update(vec!["displayName"]),
            Change::Grant("finance".into())
        ]
    );
}

#[test]
fn memberships_roster_neither_granted_nor_manages_are_left_alone() {
    let p = plan(
        ME,
        Some(&desired(true, &["eng"])),
        Some(&observed(Some(ME), true, &["eng", "book-club"])),
        &ledger(&["eng"]),
        &auth(&["eng"]),
        &policy(),
    );
    assert!(p.changes.is_empty(), "{p:?}");
}

#[test]
fn additive_membership_leaves_a_grant_roster_did_not_make_and_reports_it() {
    let p = plan(
        ME,
        Some(&desired(true, &["eng"])),
        Some(&observed(Some(ME), true, &["eng", "admins"])),
        &ledger(&["eng"]),
        &additive(&["eng", "admins"]),
        &policy(),
    );
    assert!(p.changes.is_empty(), "{p:?}");
    assert!(
        p.drift[0].contains("granted outside Roster"),
        "{:?}",
        p.drift
    );
    // What Roster granted it still takes back.
    let p = plan(
        ME,
        Some(&desired(true, &[])),
        Some(&observed(Some(ME), true, &["eng", "admins"])),
        &ledger(&["eng"]),
        &additive(&["eng", "admins"]),
        &policy(),
    );
    assert_eq!(p.changes, [Change::Revoke("eng".into())]);
}

#[test]
fn an_authoritative_group_joined_out_of_band_is_revoked() {
    let p = plan(
        ME,
        Some(&desired(true, &["eng"])),
        Some(&observed(Some(ME), true, &["eng", "admins"])),
        &ledger(&["eng"]),
        &auth(&["eng", "admins"]),
        &policy(),
    );
    assert_eq!(p.changes, [Change::Revoke("admins".into())]);
}

#[test]
fn suspend_disables_and_resume_enables() {
    let p = plan(
        ME,
        Some(&desired(false, &["eng"])),
        Some(&observed(Some(ME), true, &["eng"])),
        &ledger(&["eng"]),
        &auth(&["eng"]),
        &policy(),
    );
    assert_eq!(p.changes, [Change::Disable]);
    let p = plan(
        ME,
        Some(&desired(true, &["eng"])),
        Some(&observed(Some(ME), false, &["eng"])),
        &ledger(&["eng"]),
        &auth(&["eng"]),
        &policy(),
    );
    assert_eq!(p.changes, [Change::Enable]);
}

#[test]
fn leaver_is_stripped_and_disabled_at_once_then_deleted_after_grace() {
    let p = plan(
        ME,
        None,
        Some(&observed(Some(ME), true, &["eng", "all"])),
        &ledger(&["eng", "all"]),
        &auth(&["eng", "all"]),
        &policy(),
    );
    assert_eq!(
        p.changes,
        [
            Change::Revoke("all".into()),
            Change::Revoke("eng".into()),
            Change::Disable
        ]
    );

    let stripped = observed(Some(ME), false, &[]);
    let mut l = Ledger {
        granted: set(&[]),
        disabled_at: Some(now() - SignedDuration::from_hours(1)),
    };
    assert!(
        plan(ME, None, Some(&stripped), &l, &auth(&[]), &policy())
            .changes
            .is_empty(),
        "grace not over"
    );
    l.disabled_at = Some(now() - SignedDuration::from_hours(25));
    assert_eq!(
        plan(ME, None, Some(&stripped), &l, &auth(&[]), &policy()).changes,
        [Change::Delete]
    );
    let keep = Policy {
        delete_after: None,
        ..policy()
    };
    assert!(
        plan(ME, None, Some(&stripped), &l, &auth(&[]), &keep)
            .changes
            .is_empty(),
        "never delete"
    );
}

#[test]
fn unowned_accounts_are_conflicts_unless_adoption_allows() {
    let theirs = observed(None, true, &["eng"]);
    let p = plan(
        ME,
        Some(&desired(true, &["eng"])),
        Some(&theirs),
        &Ledger::default(),
        &auth(&["eng"]),
        &policy(),
    );
    assert_eq!((p.standing, p.changes.len()), (Standing::Conflict, 0));
    let adopt = Policy {
        adoption: AdoptionPolicy::AdoptByUsername,
        ..policy()
    };
    let p = plan(
        ME,
        Some(&desired(true, &["eng"])),
        Some(&theirs),
        &Ledger::default(),
        &auth(&["eng"]),
        &adopt,
    );
    assert_eq!(p.changes, [Change::Adopt]);
    // Not wanted and not ours: not even reported.
    let p = plan(
        ME,
        None,
        Some(&theirs),
        &Ledger::default(),
        &auth(&["eng"]),
        &policy(),
    );
    assert_eq!(p, Plan::standing(Standing::Absent, vec![]));
    // Another identity's account is a conflict whatever the policy.
    let p = plan(
        ME,
        Some(&desired(true, &[])),
        Some(&observed(Some("bob"), true, &[])),
        &Ledger::default(),
        &auth(&[]),
        &adopt,
    );
    assert_eq!((p.standing, p.changes.len()), (Standing::Conflict, 0));
}

#[test]
fn protected_accounts_are_never_touched() {
    let protect = Policy {
        protected: true,
        ..policy()
    };
    for (d, o) in [
        (Some(desired(true, &["eng"])), None),
        (None, Some(observed(Some(ME), true, &["eng"]))),
        (
            Some(desired(false, &[])),
            Some(observed(Some(ME), true, &["eng"])),
        ),
    ] {
        let p = plan(
            ME,
            d.as_ref(),
            o.as_ref(),
            &ledger(&["eng"]),
            &auth(&["eng"]),
            &protect,
        );
        assert_eq!((p.standing, p.changes.len()), (Standing::Protected, 0));
    }
}

#[test]
fn ledger_keeps_what_roster_granted_and_starts_the_grace_clock_once() {
    let d = desired(true, &["eng"]);
    let l = ledger_after(
        Some(&d),
        Some(&observed(Some(ME), true, &["eng", "book-club"])),
        &ledger(&[]),
        now(),
    );
    assert_eq!(l, ledger(&["eng"]));
    let gone = ledger_after(None, Some(&observed(Some(ME), false, &[])), &l, now());
    assert_eq!(gone.disabled_at, Some(now()));
    let later = ledger_after(
        None,
        Some(&observed(Some(ME), false, &[])),
        &gone,
        now() + SignedDuration::from_hours(2),
    );
    assert_eq!(later.disabled_at, Some(now()), "the clock does not restart");
    assert_eq!(ledger_after(None, None, &later, now()), Ledger::default());
}

// ---- properties -------------------------------------------------------------------------

/// Applies changes to an observed account the way a faithful downstream would.
fn apply(
    changes: &[Change],
    desired: Option<&DesiredAccount>,
    observed: Option<ObservedAccount>,
) -> Option<ObservedAccount> {
    let mut account = observed;
    for change in changes {
        match change {
            Change::Create { active } => {
                let d = desired.expect("create needs a desired account");
                account = Some(ObservedAccount {
                    id: "new".into(),
                    username: d.username.clone(),
                    owner: Some(ME.into()),
                    active: *active,
                    attributes: d.attributes.clone(),
                    entitlements: BTreeSet::new(),
                    version: None,
                });
            }
            Change::Delete => account = None,
            other => {
                let a = account.as_mut().expect("change on an existing account");
                match other {
                    Change::Adopt => a.owner = Some(ME.into()),
                    Change::Update(_) => a.attributes = desired.expect("update").attributes.clone(),
                    Change::Enable => a.active = true,
                    Change::Disable => a.active = false,
                    Change::Grant(e) => {
                        a.entitlements.insert(e.clone());
                    }
                    Change::Revoke(e) => {
                        a.entitlements.remove(e);
                    }
                    Change::Create { .. } | Change::Delete => unreachable!(),
                }
            }
        }
    }
    account
}

const UNIVERSE: [&str; 5] = ["eng", "all", "admins", "finance", "book-club"];

fn subset() -> impl Strategy<Value = BTreeSet<String>> {
    proptest::collection::btree_set(
        proptest::sample::select(&UNIVERSE[..]).prop_map(str::to_owned),
        0..5,
    )
}

fn arb_managed() -> impl Strategy<Value = Managed> {
    (subset(), subset()).prop_map(|(names, authoritative)| Managed {
        authoritative: authoritative.intersection(&names).cloned().collect(),
        names,
    })
}

fn arb_desired() -> impl Strategy<Value = Option<DesiredAccount>> {
    proptest::option::of(
        (
            any::<bool>(),
            subset(),
            prop_oneof![Just("Ada"), Just("Ada L.")],
        )
            .prop_map(|(active, entitlements, name)| DesiredAccount {
                username: "ada".into(),
                kind: Default::default(),
                attributes: attrs(name),
                active,
                entitlements,
            }),
    )
}

fn arb_observed() -> impl Strategy<Value = Option<ObservedAccount>> {
    proptest::option::of(
        (
            prop_oneof![
                Just(None),
                Just(Some(ME.to_owned())),
                Just(Some("bob".to_owned()))
            ],
            any::<bool>(),
            subset(),
            prop_oneof![Just("Ada"), Just("Ada L.")],
        )
            .prop_map(|(owner, active, entitlements, name)| ObservedAccount {
                id: "1".into(),
                username: "ada".into(),
                owner,
                active,
                attributes: attrs(name),
                entitlements,
                version: None,
            }),
    )
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (any::<bool>(), any::<bool>(), proptest::option::of(0i64..48)).prop_map(
        |(protected, adopt, hours)| Policy {
            protected,
            adoption: if adopt {
                AdoptionPolicy::AdoptByUsername
            } else {
                AdoptionPolicy::Never
            },
            delete_after: hours.map(SignedDuration::from_hours),
            now: now(),
            names: NameCase::Exact,
        },
    )
}

proptest! {
    /// Applying a plan and planning again leaves nothing to do (deletion aside, which
    /// waits for the grace period and so for a later pass by design).
    #[test]
    fn applying_a_plan_converges(d in arb_desired(), o in arb_observed(), granted in subset(), managed in arb_managed(), pol in arb_policy()) {
        let l = Ledger { granted, disabled_at: None };
        let first = plan(ME, d.as_ref(), o.as_ref(), &l, &managed, &pol);
        let after = apply(&first.changes, d.as_ref(), o.clone());
        let next_ledger = ledger_after(d.as_ref(), after.as_ref(), &l, pol.now);
        let second = plan(ME, d.as_ref(), after.as_ref(), &next_ledger, &managed, &pol);
        let remaining: Vec<_> = second.changes.iter().filter(|c| **c != Change::Delete).collect();
        prop_assert!(remaining.is_empty(), "first {:?} then {:?}", first.changes, second.changes);
    }

    /// A plan never revokes what Roster neither granted nor manages, and never changes an
    /// account it does not own (unless adopting it by policy) or a protected one.
    #[test]
    fn never_touches_what_roster_does_not_own(d in arb_desired(), o in arb_observed(), granted in subset(), managed in arb_managed(), pol in arb_policy()) {
        let l = Ledger { granted: granted.clone(), disabled_at: Some(now() - SignedDuration::from_hours(100)) };
        let p = plan(ME, d.as_ref(), o.as_ref(), &l, &managed, &pol);
        if pol.protected {
            prop_assert!(p.changes.is_empty());
        }
        for c in &p.changes {
            if let Change::Revoke(e) = c {
                prop_assert!(granted.contains(e) || managed.authoritative.contains(e), "revoked unowned {e}");
            }
        }
        let ours = o.as_ref().is_some_and(|o| o.owner.as_deref() == Some(ME));
        let adopting = p.changes.first() == Some(&Change::Adopt);
        if o.is_some() && !ours && !adopting {
            prop_assert!(p.changes.is_empty(), "changed an unowned account: {:?}", p.changes);
        }
        if adopting {
            prop_assert!(d.is_some() && pol.adoption == AdoptionPolicy::AdoptByUsername);
        }
    }
}

#[test]
fn protected_accounts_match_as_the_app_compares_names() {
    let spec: crate::api::ConnectorSpec = serde_json::from_value(serde_json::json!({
        "type": "Scim",
        "protectedAccounts": ["Break-Glass"],
    }))
    .expect("spec");
    let folded = Policy::of(&spec, "break-glass", now(), NameCase::Folded);
    assert!(folded.protected, "LDAP uid and SCIM userName ignore case");
    let exact = Policy::of(&spec, "break-glass", now(), NameCase::Exact);
    assert!(!exact.protected, "PostgreSQL role names do not");
}
