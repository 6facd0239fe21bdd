//! Secrets never leak, on a real operator logging at debug level: every credential
//! Roster reads — the SCIM token, the LDAP and PostgreSQL passwords, a kubeconfig's
//! token, a CA bundle — is a canary, in Connectors that work (a joiner and a leaver on
//! all four apps) and in Connectors that fail (refused credentials, a malformed
//! kubeconfig, a malformed CA). None may appear in the operator's log, any Event, any
//! status, `/metrics` or `roster report`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::{Api, Client, api::ListParams};
use roster::api::{Connector, Identity, Role, RoleBinding};
use serde_json::{Value, json};

use crate::harness::{
    self, apps, isolated_control_plane, ldap, operator::Operator, postgres, roster_report, scim,
};

const LIMIT: Duration = Duration::from_secs(90);

/// Failing Connectors' credentials: each a value found nowhere else.
const BAD_TOKEN: &str = "canary-scim-token-7f3a9c";
const BAD_LDAP: &str = "canary-ldap-password-52e1d0";
const BAD_PG: &str = "canary-pg-password-9b44aa";
const KUBE_TOKEN: &str = "canary-kube-token-c0ffee";
const BAD_YAML: &str = "canary-kubeconfig-body-d15ea5e";
const BAD_CA: &str = "canary-ca-bundle-8badf00d";

fn connector(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": name}, "spec": spec})
}

/// A kubeconfig for the test apiserver whose user is `token`.
fn kubeconfig(server: &str, admin_kubeconfig: &std::path::Path, token: &str) -> String {
    let admin = std::fs::read_to_string(admin_kubeconfig).expect("kubeconfig");
    let ca_path = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority: "))
        .expect("the CA's path");
    let out = std::process::Command::new("base64")
        .args(["-w0", ca_path])
        .output()
        .expect("base64");
    let ca = String::from_utf8(out.stdout).expect("base64 text");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
    )
}

/// Everything a person or tool can read from the cluster about Roster's work, as text.
async fn readable(client: &Client) -> String {
    let lp = ListParams::default();
    let mut out = String::new();
    let events = Api::<Event>::all(client.clone())
        .list(&lp)
        .await
        .expect("events");
    out.push_str(&serde_json::to_string(&events.items).expect("json"));
    let statuses = [
        serde_json::to_string(
            &Api::<Identity>::all(client.clone())
                .list(&lp)
                .await
                .expect("list")
                .items,
        ),
        serde_json::to_string(
            &Api::<Connector>::all(client.clone())
                .list(&lp)
                .await
                .expect("list")
                .items,
        ),
        serde_json::to_string(
            &Api::<Role>::all(client.clone())
                .list(&lp)
                .await
                .expect("list")
                .items,
        ),
        serde_json::to_string(
            &Api::<RoleBinding>::all(client.clone())
                .list(&lp)
                .await
                .expect("list")
                .items,
        ),
    ];
    for s in statuses {
        out.push_str(&s.expect("json"));
    }
    out
}

#[tokio::test]
async fn no_credential_appears_in_logs_events_status_metrics_or_reports() {
    let cp = isolated_control_plane("canaries");
    let client = cp.client().await;
    let ns = cp.namespace(&client, "canary").await;
    let base = scim::tenant("canary");
    let direct = scim::Direct::new(&base);
    let apply = |obj: Value| {
        let (client, ns) = (client.clone(), ns.clone());
        async move { harness::apply(&client, &ns, obj).await }
    };
    let [token, scim_connector] = apps::scim_connector(&base, &json!({}));
    apply(token).await;
    apply(scim_connector).await;
    for obj in apps::other_three(&json!({})) {
        apply(obj).await;
    }
    let entitlements = apps::make_staff("canary", &direct, &client).await;
    apply(
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role", "metadata": {"name": "staff"},
        "spec": {"entitlements": entitlements}}),
    )
    .await;
    apply(json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding", "metadata": {"name": "staff"},
        "spec": {"role": "staff", "subjects": {"identities": ["canary-ada"]}}}))
    .await;

    // The failing ones, each with a canary credential.
    let bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"},
        "stringData": {"token": BAD_TOKEN, "ldap": BAD_LDAP, "pg": BAD_PG,
            "kubeconfig": kubeconfig(&cp.server, &cp.kubeconfig, KUBE_TOKEN),
            "garbled": format!("apiVersion: v1\nclusters: [{BAD_YAML}\n  users: {{"),
            "ca": format!("-----BEGIN CERTIFICATE-----\n{BAD_CA}\n-----END CERTIFICATE-----\n")}});
    apply(bad).await;
    let secret = |key: &str| json!({"name": "bad", "key": key});
    for (name, spec) in [
        (
            "bad-scim",
            json!({"allowPlaintext": true, "scim": {"baseUrl": base, "tokenSecretRef": secret("token")}}),
        ),
        (
            "bad-ldap",
            json!({"allowPlaintext": true, "ldap": {"url": ldap::server().url(), "bindDn": ldap::ROSTER_DN,
            "bindPasswordSecretRef": secret("ldap"), "usersDn": ldap::PEOPLE, "groupsDn": ldap::GROUPS,
            "disabledUsersDn": ldap::DISABLED}}),
        ),
        (
            "bad-pg",
            json!({"allowPlaintext": true, "postgres": {"host": "127.0.0.1", "port": postgres::server().port,
            "username": postgres::ADMIN, "passwordSecretRef": secret("pg"), "sslMode": "Disable"}}),
        ),
        (
            "bad-pg-ca",
            json!({"postgres": {"host": "127.0.0.1", "port": postgres::server().port,
            "username": postgres::ADMIN, "passwordSecretRef": secret("pg"), "caSecretRef": secret("ca")}}),
        ),
        (
            "bad-kube",
            json!({"kubernetes": {"kubeconfigSecretRef": secret("kubeconfig")}}),
        ),
        (
            "garbled-kube",
            json!({"kubernetes": {"kubeconfigSecretRef": secret("garbled")}}),
        ),
    ] {
        apply(connector(name, spec)).await;
    }

    let op = Operator::start_logging(&cp.kubeconfig, "debug");
    let person = |state: &str| {
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity", "metadata": {"name": "canary-ada"},
            "spec": {"username": "canary.ada", "state": state}})
    };
    // Success: a joiner on all four, then a leaver.
    apply(person("Active")).await;
    op.eventually("the joiner on SCIM", LIMIT, || async {
        direct
            .find_user("canary.ada")
            .await
            .is_some_and(|u| u["active"] == true)
    })
    .await;
    // Failure: every bad Connector reports why it is not Ready.
    let connectors = Api::<Connector>::namespaced(client.clone(), &ns);
    op.eventually(
        "every bad Connector not Ready, with a reason",
        LIMIT,
        || async {
            let list = connectors.list(&ListParams::default()).await.expect("list");
            list.items
                .iter()
                .filter(|c| {
                    c.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.contains("bad") || n.starts_with("garbled"))
                })
                .all(|c| {
                    c.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|k| k.type_ == "Ready" && k.status == "False")
                    })
                })
        },
    )
    .await;
    apply(person("Terminated")).await;
    op.eventually("the leaver disabled on SCIM", LIMIT, || async {
        direct
            .find_user("canary.ada")
            .await
            .is_some_and(|u| u["active"] == false)
    })
    .await;

    let metrics = reqwest::get(format!("{}/metrics", op.probe))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let places = [
        ("the operator's debug log", op.log()),
        ("Events and statuses", readable(&client).await),
        ("/metrics", metrics),
        ("roster report", roster_report(&cp.kubeconfig, &[])),
        (
            "roster report -o json",
            roster_report(&cp.kubeconfig, &["--output", "json"]),
        ),
    ];
    assert!(places[0].1.contains("DEBUG"), "the log is at debug level");
    // The operator's own credential, too.
    let admin = std::fs::read_to_string(&cp.kubeconfig).expect("kubeconfig");
    let own_token = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .expect("the admin token")
        .to_owned();
    let canaries = [
        own_token.as_str(),
        scim::TOKEN,
        ldap::ROSTER_PASSWORD,
        postgres::PASSWORD,
        BAD_TOKEN,
        BAD_LDAP,
        BAD_PG,
        KUBE_TOKEN,
        BAD_YAML,
        BAD_CA,
    ];
    let mut found = Vec::new();
    for (place, text) in &places {
        for canary in canaries {
            if let Some(at) = text.find(canary) {
                let from = at.saturating_sub(200);
                let context: String = text.get(from..).unwrap_or(text).chars().take(400).collect();
                found.push(format!("{canary} in {place}: …{context}…"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "credentials leaked:\n{}",
        found.join("\n\n")
    );
}
