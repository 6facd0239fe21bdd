use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::lifecycle::{ConnectorKey, DesiredAccount, resolve::Effective};

const GRACE: SignedDuration = SignedDuration::from_hours(24);

fn at(hours: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + hours * 3600).expect("a time")
}

fn identity(name: &str, spec: serde_json::Value) -> Identity {
    Identity::new(name, serde_json::from_value(spec).expect("a spec"))
}

fn bot() -> Identity {
    identity(
        "ci-bot",
        json!({"username": "ci-bot", "kind": "Service", "owner": "bob"}),
    )
}

fn bob(state: &str) -> Identity {
    identity("bob", json!({"username": "bob", "state": state}))
}

#[test]
fn an_owner_present_and_active_is_answered() {
    let spec = &bot().spec;
    for state in ["Active", "Suspended"] {
        let owner = bob(state);
        assert_eq!(
            standing(spec, Some(&owner), None, at(0), GRACE),
            Standing::Answered,
            "{state}: a suspended owner may come back"
        );
    }
    // A person answers to no one, whatever `owner` says.
    let person = identity("ada", json!({"username": "ada", "owner": "bob"}));
    assert_eq!(
        standing(&person.spec, None, None, at(0), GRACE),
        Standing::Answered
    );
}

#[test]
fn an_owner_gone_gives_a_grace_period_counted_from_when_it_was_first_seen() {
    let spec = &bot().spec;
    let left = bob("Terminated");
    let mut deleting = bob("Active");
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)));
    let mut expired = bob("Active");
    expired.spec.valid_until = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(-1)));
    for (owner, words) in [
        (None, "does not exist"),
        (Some(&left), "has left"),
        (Some(&deleting), "being deleted"),
        (Some(&expired), "has left"),
    ] {
        let Standing::Grace { why, since, until } = standing(spec, owner, None, at(0), GRACE)
        else {
            panic!("{words}: a grace period first");
        };
        assert!(why.contains(words) && why.contains("bob"), "{why}");
        assert_eq!((since, until), (at(0), at(24)));
    }
    // Recorded an hour ago: 23 hours left; recorded a day ago: lapsed.
    let g = standing(spec, Some(&left), Some(at(-1)), at(0), GRACE);
    assert!(matches!(g, Standing::Grace { until, .. } if until == at(23)));
    let l = standing(spec, Some(&left), Some(at(-24)), at(0), GRACE);
    assert!(matches!(l, Standing::Lapsed { since, .. } if since == at(-24)));
    // A record from the future counts from now.
    let f = standing(spec, None, Some(at(5)), at(0), GRACE);
    assert_eq!(f.since(), Some(at(0)));
}

fn resolution() -> Resolution {
    let account = DesiredAccount {
        username: "ci-bot".into(),
        kind: IdentityKind::Service,
        attributes: Default::default(),
        active: true,
        entitlements: ["deploy".to_owned()].into(),
    };
    Resolution {
        effective: Effective::Active,
        accounts: [(ConnectorKey::new("ns", "scim"), account)].into(),
        grantors: BTreeMap::new(),
        next_change: Some(at(48)),
    }
}

#[test]
fn a_lapsed_service_is_disabled_and_keeps_its_entitlements() {
    let mut r = resolution();
    let lapsed = Standing::Lapsed {
        why: "gone".into(),
        since: at(0),
    };
    assert!(apply(&lapsed, &mut r), "the owner's absence disables it");
    assert_eq!(r.effective, Effective::Suspended);
    // A service suspended of its own accord stays so for its own reason.
    let mut own = resolution();
    own.effective = Effective::Suspended;
    assert!(!apply(&lapsed, &mut own));
    let account = &r.accounts[&ConnectorKey::new("ns", "scim")];
    assert!(!account.active, "disabled");
    assert_eq!(
        account.entitlements.len(),
        1,
        "restored as it was on a new owner"
    );

    let mut r = resolution();
    let grace = Standing::Grace {
        why: "gone".into(),
        since: at(0),
        until: at(24),
    };
    assert!(!apply(&grace, &mut r));
    assert_eq!(
        r.effective,
        Effective::Active,
        "access stays in the grace period"
    );
    assert_eq!(r.next_change, Some(at(24)), "looked at again when it ends");
    let mut untouched = resolution();
    assert!(!apply(&Standing::Answered, &mut untouched));
    assert_eq!(untouched, resolution());
}

#[test]
fn a_leavers_manager_is_named_as_who_could_take_the_service_over() {
    let mut left = bob("Terminated");
    left.spec
        .attributes
        .insert("manager".into(), "grace".into());
    let Standing::Grace { why, .. } = standing(&bot().spec, Some(&left), None, at(0), GRACE) else {
        panic!("a grace period");
    };
    assert!(why.contains("\"grace\", their manager"), "{why}");
}
