use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn identity(name: &str, spec: serde_json::Value) -> Identity {
    let mut spec = spec;
    spec["username"] = json!(name);
    Identity::new(name, serde_json::from_value(spec).unwrap())
}

fn role(ns: &str, name: &str, entitlements: &[(&str, &str)]) -> Arc<Role> {
    let list: Vec<_> = entitlements
        .iter()
        .map(|(c, n)| json!({"connector": c, "name": n}))
        .collect();
    let mut r = Role::new(
        name,
        serde_json::from_value(json!({"entitlements": list})).unwrap(),
    );
    r.metadata.namespace = Some(ns.into());
    Arc::new(r)
}

fn binding(ns: &str, name: &str, spec: serde_json::Value) -> Arc<RoleBinding> {
    let mut b = RoleBinding::new(name, serde_json::from_value(spec).unwrap());
    b.metadata.namespace = Some(ns.into());
    Arc::new(b)
}

fn connector(ns: &str, name: &str) -> Arc<Connector> {
    let mut c = Connector::new(
        name,
        serde_json::from_value(json!({"kubernetes": {}})).unwrap(),
    );
    c.metadata.namespace = Some(ns.into());
    Arc::new(c)
}

fn catalog(bindings: &[Arc<RoleBinding>]) -> Catalog {
    Catalog::new(
        &[
            role("acme", "eng", &[("scim", "engineers"), ("pg", "readonly")]),
            role("acme", "all", &[("scim", "all-staff")]),
            role("acme", "ghost", &[("missing", "x")]),
        ],
        bindings,
        &[connector("acme", "scim"), connector("acme", "pg")],
    )
}

fn entitlements(r: &Resolution, connector: &str) -> Vec<String> {
    r.accounts
        .get(&ConnectorKey::new("acme", connector))
        .map(|a| a.entitlements.iter().cloned().collect())
        .unwrap_or_default()
}

const NOW: &str = "2027-03-01T12:00:00Z";

#[test]
fn bindings_add_up_per_connector() {
    let cat = catalog(&[
        binding(
            "acme",
            "eng",
            json!({"role": "eng", "subjects": {"expression": "identity.attributes.department == \"eng\""}}),
        ),
        binding(
            "acme",
            "all",
            json!({"role": "all", "subjects": {"expression": "identity.kind == \"Person\""}}),
        ),
    ]);
    let ada = identity(
        "ada",
        json!({"attributes": {"department": "eng"}, "displayName": "Ada"}),
    );
    let r = resolve(&ada, &cat, at(NOW));
    assert_eq!(r.effective, Effective::Active);
    assert_eq!(entitlements(&r, "scim"), ["all-staff", "engineers"]);
    assert_eq!(entitlements(&r, "pg"), ["readonly"]);
    let account = &r.accounts[&ConnectorKey::new("acme", "scim")];
    assert!(account.active);
    assert_eq!(account.attributes.display_name.as_deref(), Some("Ada"));
    // Each entitlement knows the binding and Role that give it: the audit's cause.
    let grantors = &r.grantors[&ConnectorKey::new("acme", "scim")];
    let by = |e: &str| -> Vec<(String, String)> {
        grantors[e]
            .iter()
            .map(|g| (g.role_binding.clone(), g.role.clone()))
            .collect()
    };
    assert_eq!(by("engineers"), [("acme/eng".to_owned(), "eng".to_owned())]);
    assert_eq!(by("all-staff"), [("acme/all".to_owned(), "all".to_owned())]);
}

#[test]
fn no_binding_no_account() {
    let cat = catalog(&[binding(
        "acme",
        "eng",
        json!({"role": "eng", "subjects": {"identities": ["bob"]}}),
    )]);
    let r = resolve(&identity("ada", json!({})), &cat, at(NOW));
    assert!(r.accounts.is_empty());
}

#[test]
fn unknown_roles_missing_connectors_and_bad_expressions_grant_nothing() {
    let cat = catalog(&[
        binding(
            "acme",
            "a",
            json!({"role": "nope", "subjects": {"identities": ["ada"]}}),
        ),
        binding(
            "acme",
            "b",
            json!({"role": "ghost", "subjects": {"identities": ["ada"]}}),
        ),
        binding(
            "acme",
            "c",
            json!({"role": "eng", "subjects": {"expression": "identity.("}}),
        ),
        binding(
            "other",
            "d",
            json!({"role": "eng", "subjects": {"identities": ["ada"]}}),
        ),
    ]);
    let r = resolve(&identity("ada", json!({})), &cat, at(NOW));
    assert!(r.accounts.is_empty(), "{r:?}");
}

#[test]
fn suspended_keeps_entitlements_on_a_disabled_account() {
    let cat = catalog(&[binding(
        "acme",
        "eng",
        json!({"role": "eng", "subjects": {"identities": ["ada"]}}),
    )]);
    let r = resolve(
        &identity("ada", json!({"state": "Suspended"})),
        &cat,
        at(NOW),
    );
    assert_eq!(r.effective, Effective::Suspended);
    let account = &r.accounts[&ConnectorKey::new("acme", "scim")];
    assert!(!account.active);
    assert_eq!(account.entitlements.len(), 1);
}

#[test]
fn terminated_or_expired_or_not_started_identities_get_nothing() {
    let cat = catalog(&[binding(
        "acme",
        "eng",
        json!({"role": "eng", "subjects": {"identities": ["ada"]}}),
    )]);
    for spec in [
        json!({"state": "Terminated"}),
        json!({"validUntil": "2027-03-01T11:59:59Z"}),
        json!({"validFrom": "2027-03-02T00:00:00Z"}),
    ] {
        let r = resolve(&identity("ada", spec.clone()), &cat, at(NOW));
        assert!(r.accounts.is_empty(), "{spec}: {r:?}");
        assert_ne!(r.effective, Effective::Active);
    }
    let not_started = resolve(
        &identity("ada", json!({"validFrom": "2027-03-02T00:00:00Z"})),
        &cat,
        at(NOW),
    );
    assert_eq!(not_started.next_change, Some(at("2027-03-02T00:00:00Z")));
}

#[test]
fn time_bound_bindings_apply_inside_their_window_and_requeue_at_its_edges() {
    let cat = catalog(&[binding(
        "acme",
        "temp",
        json!({"role": "eng", "subjects": {"identities": ["ada"]},
            "validFrom": "2027-03-01T00:00:00Z", "validUntil": "2027-03-01T18:00:00Z"}),
    )]);
    let ada = identity("ada", json!({"validUntil": "2027-12-31T00:00:00Z"}));
    let inside = resolve(&ada, &cat, at(NOW));
    assert_eq!(entitlements(&inside, "scim"), ["engineers"]);
    assert_eq!(
        inside.next_change,
        Some(at("2027-03-01T18:00:00Z")),
        "the binding ends before the identity"
    );
    let after = resolve(&ada, &cat, at("2027-03-01T18:00:00Z"));
    assert!(after.accounts.is_empty());
    assert_eq!(after.next_change, Some(at("2027-12-31T00:00:00Z")));
    let before = resolve(&ada, &cat, at("2027-02-28T00:00:00Z"));
    assert!(before.accounts.is_empty());
    assert_eq!(before.next_change, Some(at("2027-03-01T00:00:00Z")));
}

#[test]
fn managed_lists_every_entitlement_roles_name_on_a_connector() {
    let cat = catalog(&[]);
    let managed = cat.managed(&ConnectorKey::new("acme", "scim"));
    assert_eq!(
        managed.names.iter().collect::<Vec<_>>(),
        ["all-staff", "engineers"]
    );
    assert!(managed.authoritative.is_empty(), "Additive is the default");
    assert!(
        cat.managed(&ConnectorKey::new("acme", "missing"))
            .names
            .is_empty()
    );
}

#[test]
fn membership_authority_comes_from_the_connector_unless_a_role_says_otherwise() {
    let role_with = |name: &str, list: serde_json::Value| {
        let mut r = Role::new(
            name,
            serde_json::from_value(json!({"entitlements": list})).unwrap(),
        );
        r.metadata.namespace = Some("acme".into());
        Arc::new(r)
    };
    let mut strict = Connector::new(
        "strict",
        serde_json::from_value(json!({"kubernetes": {}, "membership": "Authoritative"})).unwrap(),
    );
    strict.metadata.namespace = Some("acme".into());
    let cat = Catalog::new(
        &[
            role_with(
                "a",
                json!([{"connector": "strict", "name": "inherits"},
                    {"connector": "strict", "name": "opted-out", "membership": "Additive"},
                    {"connector": "scim", "name": "opted-in", "membership": "Authoritative"},
                    {"connector": "scim", "name": "disputed", "membership": "Authoritative"}]),
            ),
            role_with(
                "b",
                json!([{"connector": "scim", "name": "disputed", "membership": "Additive"}]),
            ),
        ],
        &[],
        &[Arc::new(strict), connector("acme", "scim")],
    );
    let strict = cat.managed(&ConnectorKey::new("acme", "strict"));
    assert_eq!(
        strict.authoritative.iter().collect::<Vec<_>>(),
        ["inherits"]
    );
    let scim = cat.managed(&ConnectorKey::new("acme", "scim"));
    assert_eq!(
        scim.authoritative.iter().collect::<Vec<_>>(),
        ["opted-in"],
        "Additive wins a disagreement"
    );
}

#[test]
fn connector_keys_round_trip() {
    let k = ConnectorKey::new("acme", "scim");
    assert_eq!(ConnectorKey::parse(&k.to_string()), Some(k));
    assert_eq!(ConnectorKey::parse("no-slash"), None);
    assert_eq!(ConnectorKey::parse("a/b/c"), None);
    assert_eq!(ConnectorKey::parse("/b"), None);
}

#[test]
fn feeds_count_the_roles_and_bindings_behind_each_connector() {
    let cat = catalog(&[
        binding(
            "acme",
            "eng",
            json!({"role": "eng", "subjects": {"identities": ["ada"]}}),
        ),
        binding(
            "acme",
            "eng-2",
            json!({"role": "eng", "subjects": {"identities": ["bob"]}}),
        ),
        binding(
            "acme",
            "nobody",
            json!({"role": "no-such-role", "subjects": {"identities": ["x"]}}),
        ),
        binding(
            "other",
            "eng",
            json!({"role": "eng", "subjects": {"identities": ["x"]}}),
        ),
    ]);
    let scim = cat.feeds(&ConnectorKey::new("acme", "scim"));
    assert_eq!(
        (scim.roles, scim.bindings),
        (2, 2),
        "eng and all; two bind eng"
    );
    let pg = cat.feeds(&ConnectorKey::new("acme", "pg"));
    assert_eq!((pg.roles, pg.bindings), (1, 2));
    assert_eq!(
        catalog(&[])
            .feeds(&ConnectorKey::new("acme", "scim"))
            .bindings,
        0,
        "an emptied namespace feeds nothing"
    );
    assert_eq!(cat.feeds(&ConnectorKey::new("acme", "missing")).roles, 0);
}

#[test]
fn two_bindings_with_one_expression_grant_both_roles() {
    let expr = json!({"expression": "identity.username.startsWith(\"em.\")"});
    let cat = Catalog::new(
        &[
            role("acme", "staff", &[("scim", "staff")]),
            role("acme", "extra", &[("scim", "extra")]),
        ],
        &[
            binding("acme", "staff", json!({"role": "staff", "subjects": expr})),
            binding("acme", "extra", json!({"role": "extra", "subjects": expr})),
        ],
        &[connector("acme", "scim")],
    );
    let em = identity("em.0", json!({}));
    assert_eq!(
        entitlements(&resolve(&em, &cat, at(NOW)), "scim"),
        ["extra", "staff"]
    );
}

#[test]
fn a_leaver_is_looked_for_wherever_its_bindings_would_give_it_an_account() {
    let cat = catalog(&[binding(
        "acme",
        "eng",
        json!({"role": "eng", "subjects": {"identities": ["ada"]}}),
    )]);
    let gone = identity(
        "ada",
        json!({"state": "Terminated", "validUntil": "2020-01-01T00:00:00Z"}),
    );
    assert!(
        resolve(&gone, &cat, at(NOW)).accounts.is_empty(),
        "a leaver gets nothing"
    );
    let keys: Vec<String> = reachable(&gone, &cat, at(NOW))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(keys, ["acme/pg", "acme/scim"]);
    let stranger = identity("bob", json!({"state": "Terminated"}));
    assert!(reachable(&stranger, &cat, at(NOW)).is_empty());
}

#[test]
fn entitlements_outside_a_connectors_bounds_are_granted_to_no_one_and_not_managed() {
    let mut pg = (*connector("acme", "pg")).clone();
    pg.spec.allowed_entitlements = vec!["app_*".into()];
    let cat = Catalog::new(
        &[role(
            "acme",
            "eng",
            &[
                ("pg", "app_read"),
                ("pg", "postgres"),
                ("scim", "engineers"),
            ],
        )],
        &[binding(
            "acme",
            "eng",
            json!({"role": "eng", "subjects": {"identities": ["ada"]}}),
        )],
        &[connector("acme", "scim"), Arc::new(pg)],
    );
    let r = resolve(&identity("ada", json!({})), &cat, at(NOW));
    assert_eq!(entitlements(&r, "pg"), ["app_read"]);
    assert_eq!(
        entitlements(&r, "scim"),
        ["engineers"],
        "no bounds: anything"
    );
    let managed = cat.managed(&ConnectorKey::new("acme", "pg"));
    assert!(!managed.names.contains("postgres"), "{managed:?}");
}
