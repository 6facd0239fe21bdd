use serde_json::json;

use super::*;
use crate::api::{BudgetedAt, ConnectorStatus, QuarantineStatus, TripStatus};

fn connector(max_removals: i32, approval: Option<&str>) -> Connector {
    let mut c = Connector::new(
        "scim",
        serde_json::from_value(json!({"kubernetes": {},
            "deletionBudget": {"maxRemovals": max_removals, "maxPercent": 100, "windowSeconds": 3600},
            "leaverWave": {"minLeavers": 2, "maxPercent": 0, "windowSeconds": 3600}}))
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

fn req(breaker: Breaker, who: &str, cause: Cause, t: i64) -> Request<'_> {
    Request {
        breaker,
        who,
        cause,
        managed: 100,
        empty: None,
        now: at(t),
    }
}

fn removal(who: &str, t: i64) -> Request<'_> {
    req(Breaker::Removals, who, Cause::Policy, t)
}

#[test]
fn trips_holds_everything_then_an_approval_releases_what_was_held() {
    let budgets = Budgets::default();
    let c = connector(2, None);
    assert!(budgets.reserve(&c, removal("a", 0), BTreeMap::new).is_ok());
    assert!(budgets.reserve(&c, removal("b", 1), BTreeMap::new).is_ok());
    let refused = budgets
        .reserve(&c, removal("c", 2), BTreeMap::new)
        .expect_err("the third trips it");
    assert!(refused.new && refused.newly_held);
    assert_eq!(refused.trip.planned, 3);
    // Once tripped, even a removal that would fit is held; retries are one hold, and
    // only a newcomer to the list changes what the Connector's status should say.
    for (who, t, newcomer) in [("d", 3, true), ("e", 4, true), ("d", 5, false)] {
        let again = budgets
            .reserve(&c, removal(who, t), BTreeMap::new)
            .expect_err("still held");
        assert!(!again.new);
        assert_eq!(again.newly_held, newcomer, "{who}");
    }
    assert_eq!(budgets.snapshot(&c, at(6)).held.len(), 3);

    // The approval releases the three held (c, d, e) on top of the budget of two...
    let approved = connector(2, Some(&at(10).to_string()));
    assert!(
        budgets.snapshot(&approved, at(10)).trips.is_empty(),
        "approval after the trip lifts it"
    );
    for (i, who) in ["c", "d", "e", "f", "g"].into_iter().enumerate() {
        let t = 11 + i64::try_from(i).unwrap();
        let reserved = budgets
            .reserve(&approved, removal(who, t), BTreeMap::new)
            .expect(who);
        // The held ones' evidence names the approval; the others' names none.
        let held = ["c", "d", "e"].contains(&who);
        assert_eq!(
            reserved.released_by.map(|a| a.at),
            held.then(|| at(10)),
            "{who}"
        );
    }
    // ...and no more: the budget still guards what comes after.
    assert!(
        budgets
            .reserve(&approved, removal("h", 20), BTreeMap::new)
            .is_err()
    );
}

#[test]
fn a_release_names_its_approver_to_a_reconcile_holding_an_older_connector() {
    let budgets = Budgets::default();
    let before = connector(0, None);
    assert!(
        budgets
            .reserve(&before, removal("a", 0), BTreeMap::new)
            .is_err()
    );
    assert!(
        budgets
            .reserve(&before, removal("b", 1), BTreeMap::new)
            .is_err()
    );
    let mut approved = connector(0, Some(&at(10).to_string()));
    approved
        .annotations_mut()
        .insert(APPROVED_BY_ANNOTATION.into(), "alice".into());
    // The Connector loop sees the approval first and lifts the trip...
    assert!(budgets.snapshot(&approved, at(10)).trips.is_empty());
    // ...while two reconciles still hold the Connector as it was before it.
    for (who, t) in [("a", 11), ("b", 12)] {
        let reserved = budgets
            .reserve(&before, removal(who, t), BTreeMap::new)
            .expect(who);
        let approval = reserved.released_by.expect("released by the approval");
        assert_eq!(
            (approval.at, approval.by.as_deref()),
            (at(10), Some("alice"))
        );
    }
}

#[test]
fn an_approval_in_the_future_approves_nothing() {
    let budgets = Budgets::default();
    let c = connector(0, None);
    assert!(budgets.reserve(&c, removal("a", 0), BTreeMap::new).is_err());
    let future = connector(0, Some(&at(100_000).to_string()));
    assert_eq!(budgets.snapshot(&future, at(10)).trips.len(), 1);
    assert_eq!(approval_problems(&future, at(10)).len(), 1);
}

#[test]
fn seeded_from_status_once_and_counting_accounts_not_operations() {
    let budgets = Budgets::default();
    let c = connector(2, None);
    let recorded = || {
        BTreeMap::from([(
            Breaker::Removals,
            vec![(at(10), "a".to_owned()), (at(20), "b".to_owned())],
        )])
    };
    assert!(
        budgets.reserve(&c, removal("c", 100), recorded).is_err(),
        "two recorded plus one"
    );
    let budgets = Budgets::default();
    let one = connector(1, None);
    assert!(
        budgets
            .reserve(&one, removal("a", 0), BTreeMap::new)
            .is_ok()
    );
    assert!(
        budgets
            .reserve(&one, removal("a", 1), BTreeMap::new)
            .is_ok(),
        "a's deletion: same account"
    );
    assert!(
        budgets
            .reserve(&one, removal("b", 2), BTreeMap::new)
            .is_err()
    );
}

#[test]
fn a_restart_keeps_the_trip_and_who_it_holds() {
    let mut c = connector(100, None);
    c.status = Some(ConnectorStatus {
        quarantine: Some(QuarantineStatus {
            since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)),
            planned_removals: 3,
            message: "tripped".into(),
            trips: vec![TripStatus {
                budget: "revocations".into(),
                since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)),
                planned: 3,
                message: "tripped".into(),
            }],
            held: vec![HeldRemoval {
                identity: "x".into(),
                cause: "Policy".into(),
                budgets: vec!["revocations".into()],
            }],
            held_count: 1,
        }),
        ..Default::default()
    });
    let fresh = Budgets::default();
    let r = fresh.reserve(
        &c,
        req(Breaker::Revocations, "y", Cause::Policy, 5),
        BTreeMap::new,
    );
    assert!(r.is_err(), "the new process holds as the old one did");
    let snap = fresh.snapshot(&c, at(6));
    assert_eq!(snap.held.len(), 2, "{:?}", snap.held);
    assert!(
        fresh.reserve(&c, removal("z", 7), BTreeMap::new).is_ok(),
        "other breakers are not tripped"
    );
}

#[test]
fn a_wave_of_explicit_leavers_is_flagged_not_held_unless_asked() {
    let budgets = Budgets::default();
    let c = connector(100, None);
    let leaver = |who, t| req(Breaker::Leavers, who, Cause::ExplicitLeaver, t);
    assert!(
        budgets
            .reserve(&c, leaver("a", 0), BTreeMap::new)
            .unwrap()
            .new_wave
            .is_none()
    );
    assert!(
        budgets
            .reserve(&c, leaver("b", 1), BTreeMap::new)
            .unwrap()
            .new_wave
            .is_none()
    );
    let third = budgets.reserve(&c, leaver("c", 2), BTreeMap::new).unwrap();
    assert!(third.new_wave.is_some(), "flagged once");
    let fourth = budgets.reserve(&c, leaver("d", 3), BTreeMap::new).unwrap();
    assert!(fourth.new_wave.is_none(), "not flagged again in the window");
    assert!(budgets.snapshot(&c, at(4)).wave.is_some());
    assert!(budgets.snapshot(&c, at(4)).trips.is_empty());

    let mut holding = connector(100, None);
    holding.metadata.name = Some("holding".into());
    holding.spec.hold_leaver_waves = true;
    for (who, t) in [("a", 0), ("b", 1)] {
        assert!(
            budgets
                .reserve(&holding, leaver(who, t), BTreeMap::new)
                .is_ok()
        );
    }
    assert!(
        budgets
            .reserve(&holding, leaver("c", 2), BTreeMap::new)
            .is_err()
    );
    // Approving the leavers alone releases them.
    holding.metadata.annotations =
        Some([(APPROVE_LEAVERS_ANNOTATION.to_owned(), at(10).to_string())].into());
    assert!(
        budgets
            .reserve(&holding, leaver("c", 11), BTreeMap::new)
            .is_ok()
    );
}

#[test]
fn held_explicit_leavers_are_listed_first() {
    let budgets = Budgets::default();
    let c = connector(0, None);
    let _ = budgets.reserve(&c, removal("a-policy", 0), BTreeMap::new);
    let _ = budgets.reserve(
        &c,
        req(Breaker::Removals, "z-leaver", Cause::ExplicitLeaver, 1),
        BTreeMap::new,
    );
    let held = budgets.snapshot(&c, at(2)).held;
    assert_eq!(held[0].identity, "z-leaver");
    assert_eq!(held[1].identity, "a-policy");
}

#[test]
fn a_quarantine_from_before_breakers_were_listed_still_holds() {
    let mut c = connector(100, None);
    c.status = Some(
        serde_json::from_value(json!({"quarantine": {"since": at(0).to_string(),
            "plannedRemovals": 11, "message": "11 accounts removed"}}))
        .unwrap(),
    );
    let fresh = Budgets::default();
    assert!(fresh.reserve(&c, removal("a", 5), BTreeMap::new).is_err());
    assert_eq!(fresh.snapshot(&c, at(6)).trips[0].0, Breaker::Removals);
}

/// The leavers' breaker counts on its own while a bad commit holds the removal budget.
#[test]
fn a_wave_is_flagged_while_policy_removals_are_held() {
    let budgets = Budgets::default();
    let c = connector(2, None);
    assert!(budgets.reserve(&c, removal("a", 0), BTreeMap::new).is_ok());
    assert!(budgets.reserve(&c, removal("b", 1), BTreeMap::new).is_ok());
    assert!(budgets.reserve(&c, removal("c", 2), BTreeMap::new).is_err());
    let mut waves = Vec::new();
    for (i, who) in ["x1", "x2", "x3", "x4"].into_iter().enumerate() {
        let r = budgets
            .reserve(
                &c,
                req(Breaker::Leavers, who, Cause::ExplicitLeaver, 10 + i as i64),
                BTreeMap::new,
            )
            .expect("leavers go");
        waves.push(r.new_wave.is_some());
    }
    assert_eq!(waves, [false, false, true, false]);
}

#[test]
fn an_empty_source_holds_the_first_removal_and_an_approval_only_what_it_held() {
    let budgets = Budgets::default();
    let c = connector(50, None);
    let empty = |who, t| Request {
        empty: Some("no RoleBinding binds a Role naming this Connector"),
        ..req(Breaker::Revocations, who, Cause::Policy, t)
    };
    let refused = budgets
        .reserve(&c, empty("a", 0), BTreeMap::new)
        .expect_err("the first one, well inside the budget of 50");
    assert!(refused.new);
    assert!(refused.trip.message.starts_with("no RoleBinding"));
    assert!(budgets.reserve(&c, empty("b", 1), BTreeMap::new).is_err());

    let approved = connector(50, Some(&at(10).to_string()));
    for who in ["a", "b"] {
        assert!(
            budgets
                .reserve(&approved, empty(who, 11), BTreeMap::new)
                .is_ok(),
            "{who}"
        );
    }
    assert!(
        budgets
            .reserve(&approved, empty("c", 12), BTreeMap::new)
            .is_err(),
        "still empty: the approval released who was held, no one else"
    );
}

#[test]
fn a_restart_counts_revocations_and_leavers_as_before_it() {
    // Before the restart: two accounts stripped by policy, two explicit leavers.
    let mut identities = Vec::new();
    for (name, at_) in [
        (
            "a",
            BudgetedAt {
                revocations: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(10))),
                ..Default::default()
            },
        ),
        (
            "b",
            BudgetedAt {
                revocations: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(11))),
                leavers: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(11))),
                ..Default::default()
            },
        ),
        (
            "c",
            BudgetedAt {
                leavers: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(12))),
                ..Default::default()
            },
        ),
    ] {
        let mut i = Identity::new(
            name,
            serde_json::from_value(json!({"username": name})).unwrap(),
        );
        i.status = Some(crate::api::IdentityStatus {
            accounts: vec![crate::api::AccountStatus {
                connector: "ns/scim".into(),
                budgeted_at: Some(at_),
                ..Default::default()
            }],
            ..Default::default()
        });
        identities.push(std::sync::Arc::new(i));
    }
    let seeded = recorded_removals(&identities, "ns/scim");
    assert_eq!(seeded[&Breaker::Revocations].len(), 2);
    assert_eq!(seeded[&Breaker::Leavers].len(), 2);
    assert!(
        !seeded.contains_key(&Breaker::Removals),
        "a leaver's disable is no policy removal"
    );

    // A fresh process with a revocation budget of 2: the third account trips it.
    let mut c = connector(100, None);
    c.spec.revocation_budget.max_accounts = 2;
    c.spec.revocation_budget.max_percent = 100;
    let fresh = Budgets::default();
    let third = fresh.reserve(
        &c,
        req(Breaker::Revocations, "d", Cause::Policy, 20),
        || recorded_removals(&identities, "ns/scim"),
    );
    assert!(third.is_err(), "the restart granted no fresh budget");
}

#[test]
fn an_unreserved_removal_frees_its_place() {
    let budgets = Budgets::default();
    let c = connector(1, None);
    assert!(budgets.reserve(&c, removal("a", 0), BTreeMap::new).is_ok());
    // a's revocation was refused elsewhere: its removal is taken back, b fits.
    budgets.unreserve(&c, Breaker::Removals, "a", at(0));
    assert!(budgets.reserve(&c, removal("b", 1), BTreeMap::new).is_ok());
    assert!(budgets.reserve(&c, removal("c", 2), BTreeMap::new).is_err());
}

#[test]
fn a_tripped_breaker_holds_without_a_reservation_and_an_untripped_one_reserves_nothing() {
    let budgets = Budgets::default();
    let c = connector(1, None);
    let held = |who: &str, t: i64| {
        budgets.hold_if_tripped(&c, Breaker::Removals, who, Cause::Policy, at(t))
    };
    assert!(held("a", 0).is_none(), "not tripped: nothing held");
    assert!(budgets.reserve(&c, removal("a", 1), BTreeMap::new).is_ok());
    // Asking reserved nothing: the budget of one is still a's alone.
    assert!(held("b", 2).is_none());
    budgets
        .reserve(&c, removal("c", 3), BTreeMap::new)
        .expect_err("the second removal trips a budget of one");
    let b = held("b", 4).expect("tripped: held");
    assert!(!b.new && b.newly_held);
    assert!(!held("b", 5).expect("still held").newly_held);
    assert_eq!(budgets.snapshot(&c, at(6)).held.len(), 2, "c and b");
    // Another breaker's trip holds nothing of this one's.
    assert!(
        budgets
            .hold_if_tripped(&c, Breaker::Revocations, "d", Cause::Policy, at(7))
            .is_none()
    );
    // An approval lifts the trip: nothing is held any more.
    let approved = connector(1, Some(&at(10).to_string()));
    assert!(
        budgets
            .hold_if_tripped(&approved, Breaker::Removals, "e", Cause::Policy, at(11))
            .is_none()
    );
}

/// The CI run at d97d037 (`mass_removal::an_emptied_namespace_is_held_before_any_write`):
/// one pass tripped the removals breaker, then, a moment later, revocations; between the
/// two, another pass was held under removals only. The approval of all five held let four
/// through and tripped revocations anew on the fifth, which no one approved again.
#[test]
fn an_approval_releases_a_held_removal_under_every_breaker_it_approves() {
    let budgets = Budgets::default();
    let c = connector(50, None);
    let empty = |breaker, who, t| Request {
        empty: Some("no Role names an entitlement on this Connector"),
        ..req(breaker, who, Cause::Policy, t)
    };
    assert!(
        budgets
            .reserve(&c, empty(Breaker::Removals, "e4", 0), BTreeMap::new)
            .is_err()
    );
    // e3 is held before its read: removals is tripped, revocations not yet.
    assert!(
        budgets
            .hold_if_tripped(&c, Breaker::Removals, "e3", Cause::Policy, at(0))
            .is_some()
    );
    assert!(
        budgets
            .hold_if_tripped(&c, Breaker::Revocations, "e3", Cause::Policy, at(0))
            .is_none()
    );
    assert!(
        budgets
            .reserve(&c, empty(Breaker::Revocations, "e4", 1), BTreeMap::new)
            .is_err()
    );
    for who in ["e0", "e1", "e2"] {
        for breaker in [Breaker::Removals, Breaker::Revocations] {
            assert!(
                budgets
                    .hold_if_tripped(&c, breaker, who, Cause::Policy, at(2))
                    .is_some()
            );
        }
    }
    assert_eq!(budgets.snapshot(&c, at(3)).held.len(), 5);

    let approved = connector(50, Some(&at(10).to_string()));
    for who in ["e0", "e1", "e2", "e4", "e3"] {
        for breaker in [Breaker::Removals, Breaker::Revocations] {
            let reserved = budgets.reserve(&approved, empty(breaker, who, 11), BTreeMap::new);
            assert!(reserved.is_ok(), "{who}: {breaker:?} held again");
        }
    }
    assert!(
        budgets
            .reserve(
                &approved,
                empty(Breaker::Revocations, "e5", 12),
                BTreeMap::new
            )
            .is_err(),
        "no one else"
    );
}
