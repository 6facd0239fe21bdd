use serde_json::{Value, json};

use super::*;

fn identity(name: &str, status: Value) -> Identity {
    serde_json::from_value(json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Identity",
        "metadata": {"name": name}, "spec": {"username": name}, "status": status
    }))
    .expect("identity")
}

fn connector(name: &str, status: Value) -> Connector {
    serde_json::from_value(json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Connector",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"allowPlaintext": true, "scim": {"baseUrl": "http://x", "tokenSecretRef": {"name": "t", "key": "k"}}},
        "status": status
    }))
    .expect("connector")
}

fn account(connector: &str, state: &str, extra: Value) -> Value {
    let mut a = json!({"connector": connector, "state": state});
    if let (Some(a), Some(extra)) = (a.as_object_mut(), extra.as_object()) {
        a.extend(extra.clone());
    }
    a
}

fn now() -> Timestamp {
    "2026-11-23T12:00:00Z".parse().expect("time")
}

#[test]
fn accuracy_counts_managed_accounts_by_how_they_stand() {
    let ids = [
        identity(
            "ada",
            json!({"accounts": [
                account("ns/scim", "Active", json!({})),
                account("ns/pg", "Active", json!({"drift": ["entitlements"]})),
            ]}),
        ),
        identity(
            "bob",
            json!({"accounts": [
                account("ns/scim", "Active", json!({"error": "HTTP 500"})),
                account("ns/pg", "Pending", json!({})),
                account("ns/ldap", "Deleted", json!({})),
            ]}),
        ),
        identity(
            "cy",
            json!({"accounts": [account("ns/scim", "Disabled", json!({}))]}),
        ),
        identity("new", Value::Null),
    ];
    let f = measure(&ids, &[], now());
    assert_eq!(
        f.accuracy["ns/scim"],
        Accuracy {
            in_sync: 2,
            drifted: 0,
            failing: 1
        }
    );
    assert_eq!(f.accuracy["ns/scim"].ratio(), Some(2.0 / 3.0));
    assert_eq!(
        f.accuracy["ns/pg"],
        Accuracy {
            in_sync: 0,
            drifted: 2,
            failing: 0
        }
    );
    assert!(
        !f.accuracy.contains_key("ns/ldap"),
        "deleted accounts are not managed"
    );
    assert_eq!(f.exceptions["failing-account"], 1);
    assert_eq!(Accuracy::default().ratio(), None);
}

#[test]
fn leavers_are_complete_only_when_every_connector_is_verified() {
    let receipt = |verified: &[bool]| {
        json!({"requestedAt": "2026-11-23T11:00:00Z", "connectors": verified.iter().enumerate().map(|(i, v)| {
            let mut c = json!({"connector": format!("ns/c{i}"), "revokedAt": "2026-11-23T11:00:01Z"});
            if *v { c["verifiedAt"] = json!("2026-11-23T11:00:02Z"); }
            c
        }).collect::<Vec<_>>()})
    };
    let ids = [
        identity("done", json!({"deprovisioning": receipt(&[true, true])})),
        identity("half", json!({"deprovisioning": receipt(&[true, false])})),
        identity(
            "nothing-to-remove",
            json!({"deprovisioning": {"requestedAt": "2026-11-23T11:30:00Z"}}),
        ),
        identity("staying", json!({})),
    ];
    let d = measure(&ids, &[], now()).deprovisioning;
    assert_eq!((d.verified, d.pending), (2, 1));
    assert_eq!(d.oldest_pending_seconds, Some(3600));
    assert_eq!(d.ratio(), Some(2.0 / 3.0));
}

#[test]
fn exceptions_needing_a_person_are_counted_by_kind() {
    let ids = [
        identity(
            "ada",
            json!({"accounts": [account("ns/scim", "Conflict", json!({}))]}),
        ),
        identity(
            "root",
            json!({"accounts": [account("ns/scim", "Protected", json!({}))]}),
        ),
        identity(
            "gone",
            json!({
                "accounts": [account("ns/scim", "Protected", json!({}))],
                "deprovisioning": {"requestedAt": "2026-11-23T11:00:00Z"},
                "conditions": [{"type": "Ready", "status": "False", "reason": "DeprovisioningBlocked",
                                "message": "", "lastTransitionTime": "2026-11-23T11:00:00Z"}]
            }),
        ),
        identity(
            "unmarked",
            json!({
                "deprovisioning": {"requestedAt": "2026-11-23T11:00:00Z", "connectors": [
                    {"connector": "ns/scim", "revokedAt": "2026-11-23T11:00:01Z",
                     "exception": "account \"x\" still has access and carries no mark of Roster's"},
                    {"connector": "ns/ldap", "verifiedAt": "2026-11-23T11:00:01Z"}]}
            }),
        ),
    ];
    let conns = [
        connector(
            "scim",
            json!({"inventory": {"managed": 3, "drifted": 0, "orphaned": 2, "unmanaged": 5, "unownedMembers": 4},
                   "leaverWave": {"since": "2026-11-23T11:00:00Z", "leavers": 30, "message": ""},
                   "quarantine": {"since": "2026-11-23T11:00:00Z", "plannedRemovals": 3, "message": "",
                                  "held": [{"identity": "a", "cause": "ExplicitLeaver", "budgets": ["removals"]},
                                           {"identity": "b", "cause": "Policy", "budgets": ["removals"]}]},
                   "conditions": [{"type": "Quarantined", "status": "True", "reason": "DeletionBudgetExceeded",
                                   "message": "", "lastTransitionTime": "2026-11-23T11:00:00Z"}]}),
        ),
        connector("quiet", Value::Null),
    ];
    let e = measure(&ids, &conns, now()).exceptions;
    let expected: BTreeMap<String, u64> = [
        ("conflict", 1),
        ("failing-account", 0),
        ("protected-leaver", 1),
        ("deprovisioning-blocked", 1),
        ("quarantined-connector", 1),
        ("orphaned-account", 2),
        ("unowned-member", 4),
        ("leaver-wave", 1),
        ("held-leaver", 1),
        ("leaver-unowned-access", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        e, expected,
        "a protected account of someone staying is policy, not an exception"
    );
}

#[test]
fn every_connector_reports_whether_it_is_ready_and_whether_it_is_quarantined() {
    let condition = |kind: &str, status: &str| {
        json!({"type": kind, "status": status, "reason": "R", "message": "",
               "lastTransitionTime": "2026-11-23T11:00:00Z"})
    };
    let at = |generation: i64, mut c: Connector| {
        c.metadata.generation = Some(generation);
        c
    };
    let conns = [
        at(
            2,
            connector(
                "ok",
                json!({"observedGeneration": 2, "conditions": [condition("Ready", "True")]}),
            ),
        ),
        at(
            3,
            connector(
                "edited",
                json!({"observedGeneration": 2, "conditions": [condition("Ready", "True")]}),
            ),
        ),
        at(
            1,
            connector(
                "down",
                json!({"observedGeneration": 1, "conditions": [condition("Ready", "False")]}),
            ),
        ),
        at(1, connector("new", Value::Null)),
        at(
            1,
            connector(
                "held",
                json!({"observedGeneration": 1,
            "conditions": [condition("Ready", "True"), condition("Quarantined", "True")]}),
            ),
        ),
    ];
    let f = measure(&[], &conns, now());
    let got: Vec<(&str, bool, bool)> = f
        .connectors
        .iter()
        .map(|(k, h)| (k.as_str(), h.ready, h.quarantined))
        .collect();
    assert_eq!(
        got,
        [
            ("ns/down", false, false),
            ("ns/edited", false, false),
            ("ns/held", true, true),
            ("ns/new", false, false),
            ("ns/ok", true, false),
        ],
        "a Ready of an older generation, or none at all, is not ready"
    );
    assert_eq!(f.exceptions["quarantined-connector"], 1);
    let text = render(&f);
    assert!(
        text.contains(
            "Connectors: 5 (not ready 3: ns/down, ns/edited, ns/new; quarantined 1: ns/held)"
        ),
        "{text}"
    );
}

#[test]
fn the_report_shows_every_number() {
    let ids = [identity(
        "ada",
        json!({"accounts": [account("ns/scim", "Active", json!({})), account("ns/scim", "Conflict", json!({}))],
               "deprovisioning": {"requestedAt": "2026-11-23T11:59:00Z",
                                  "connectors": [{"connector": "ns/scim"}]}}),
    )];
    let text = render(&measure(&ids, &[], now()));
    for part in [
        "ns/scim",
        "100.0%",
        "Deprovisioning completion: 0.0% (0 verified, 1 pending; the oldest has waited 60 s)",
        "Exceptions needing a person: 1",
        "conflict",
    ] {
        assert!(text.contains(part), "{part:?} missing from\n{text}");
    }
}

#[test]
fn the_report_lists_who_is_held_explicit_leavers_first() {
    let quarantine = |held: Value, count: i32| {
        json!({"quarantine": {"since": "2026-11-23T11:00:00Z", "plannedRemovals": 3, "message": "",
                              "held": held, "heldCount": count}})
    };
    let conns = [
        connector(
            "a-pg",
            quarantine(
                json!([{"identity": "bob", "cause": "Policy", "budgets": ["revocations"]}]),
                3,
            ),
        ),
        connector(
            "z-scim",
            quarantine(
                json!([{"identity": "cy", "cause": "ExplicitLeaver", "budgets": ["leavers"]}]),
                1,
            ),
        ),
    ];
    let f = measure(&[], &conns, now());
    let order: Vec<(&str, &str)> = f
        .held
        .iter()
        .map(|h| (h.connector.as_str(), h.removal.identity.as_str()))
        .collect();
    assert_eq!(order, [("ns/z-scim", "cy"), ("ns/a-pg", "bob")]);
    assert_eq!(f.held_unlisted, 2, "a-pg holds 3 but lists 1");
    let text = render(&f);
    let leaver = text.find("ns/z-scim  cy").expect(&text);
    let policy = text.find("ns/a-pg    bob").expect(&text);
    assert!(leaver < policy, "explicit leavers first:\n{text}");
    for part in [
        "Held removals: 4",
        "ExplicitLeaver  leavers",
        "… and 2 more",
        "approve-leavers",
    ] {
        assert!(text.contains(part), "{part:?} missing from\n{text}");
    }
    assert!(render(&measure(&[], &[], now())).contains("Held removals: 0\n"));
}
