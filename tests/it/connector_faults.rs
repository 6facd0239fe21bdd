//! Bad settings and downstream faults on the LDAP, PostgreSQL and Kubernetes Connectors,
//! through the operator: each gets a clear `Ready=False` reason, no secret in any message,
//! and what the directory refuses for one person shows on that Identity.

use k8s_openapi::api::core::v1::Secret;
use roster::api::{Connector, Role, conditions};
use serde_json::{Value, json};

use crate::{
    harness::{ldap, postgres, process},
    lifecycle::Scenario,
};

fn connector(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector",
    "metadata": {"name": name}, "spec": spec})
}

fn ldap_spec(url: String, disabled: &str) -> Value {
    json!({"allowPlaintext": true, "ldap": {"url": url, "bindDn": ldap::ROSTER_DN,
    "bindPasswordSecretRef": {"name": "creds", "key": "ldap"}, "usersDn": ldap::PEOPLE,
    "groupsDn": ldap::GROUPS, "disabledUsersDn": disabled}})
}

const WRONG: &str = "wrong-password-not-to-leak";

#[tokio::test]
async fn bad_connectors_say_what_is_wrong() {
    let s = Scenario::new("faults4", json!({})).await;
    let nowhere = process::free_port();
    let server = ldap::server();
    s.apply::<Secret>(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"ldap": ldap::ROSTER_PASSWORD, "wrong": WRONG,
        "garbage": "this is: [not a kubeconfig",
        "elsewhere": format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{nowhere}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n")}}))
        .await;
    let mut wrong_ldap = ldap_spec(server.url(), ldap::DISABLED);
    wrong_ldap["ldap"]["bindPasswordSecretRef"]["key"] = json!("wrong");
    let cases = [
        ("ldap-wrong-password", wrong_ldap, "Unauthorized"),
        (
            "ldap-unreachable",
            ldap_spec(format!("ldap://127.0.0.1:{nowhere}"), ldap::DISABLED),
            "Unreachable",
        ),
        (
            "ldap-missing-ou",
            ldap_spec(server.url(), &format!("ou=nowhere,{}", ldap::SUFFIX)),
            "InvalidConfig",
        ),
        (
            "pg-wrong-password",
            json!({"allowPlaintext": true, "postgres": {"host": "127.0.0.1", "port": postgres::server().port,
            "username": postgres::ADMIN, "passwordSecretRef": {"name": "creds", "key": "wrong"},
            "sslMode": "Disable"}}),
            "Unauthorized",
        ),
        (
            "k8s-unreachable",
            json!({"kubernetes": {"kubeconfigSecretRef": {"name": "creds", "key": "elsewhere"}}}),
            "Unreachable",
        ),
        (
            "k8s-bad-kubeconfig",
            json!({"kubernetes": {"kubeconfigSecretRef": {"name": "creds", "key": "garbage"}}}),
            "InvalidConfig",
        ),
    ];
    s.refused_connectors(&cases, WRONG).await;
}

#[tokio::test]
async fn what_the_directory_refuses_shows_on_the_identity() {
    ldap::make_group("faults4-staff").await;
    let s = Scenario::new("dirfaults", json!({})).await;
    s.apply::<Secret>(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"ldap": ldap::ROSTER_PASSWORD}}),
    )
    .await;
    s.apply::<Connector>(connector(
        "dir",
        ldap_spec(ldap::server().url(), ldap::DISABLED),
    ))
    .await;
    for (role, group) in [
        ("staff", "faults4-staff"),
        ("ghost", "faults4-no-such-group"),
    ] {
        s.apply::<Role>(json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
            "metadata": {"name": role}, "spec": {"entitlements": [{"connector": "dir", "name": group}]}}))
            .await;
    }
    s.binding(
        "staff",
        json!({"role": "staff", "subjects": {"identities": ["dirf-ivy", "dirf-ned"]}}),
    )
    .await;
    s.binding(
        "ghost",
        json!({"role": "ghost", "subjects": {"identities": ["dirf-ned"]}}),
    )
    .await;
    // `mail` is IA5 (ASCII) text: the server refuses this address.
    s.identity(
        "dirf-ivy",
        json!({"username": "dirf.ivy", "emails": ["ivý@example.com"]}),
    )
    .await;
    s.identity("dirf-ned", json!({"username": "dirf.ned"}))
        .await;
    for (identity, reason) in [
        ("dirf-ivy", "DownstreamRejected"),
        ("dirf-ned", "EntitlementNotFound"),
    ] {
        s.eventually(&format!("{identity}: Ready=False {reason}"), || async {
            let i = s.get(identity).await;
            i.status
                .and_then(|st| conditions::find(&st.conditions, conditions::READY).cloned())
                .is_some_and(|c| c.status == "False" && c.reason == reason)
        })
        .await;
    }
}
