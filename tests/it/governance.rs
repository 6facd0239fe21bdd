//! The governance numbers of a small, known cluster (an apiserver of its own, so other
//! tests' identities do not count): one joiner in sync, one account Roster may not take
//! over, one verified leaver — as `roster report` prints them and as `/metrics` serves
//! them.

use std::time::Duration;

use k8s_openapi::{NamespaceResourceScope, api::core::v1::Secret};
use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
};
use roster::api::{Connector, Identity, Role, RoleBinding};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::harness::{isolated_control_plane, operator::Operator, roster_report, scim};

async fn apply<K>(api: Api<K>, obj: Value)
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
    api.patch(
        &name,
        &PatchParams::apply("it").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

fn namespaced<K>(client: &kube::Client, ns: &str) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(client.clone(), ns)
}

fn person(name: &str, username: &str, state: &str) -> Value {
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity", "metadata": {"name": name},
    "spec": {"username": username, "state": state}})
}

#[tokio::test]
async fn governance_numbers_in_the_report_and_on_metrics() {
    let cp = isolated_control_plane("governance");
    let client = cp.client().await;
    let ns = cp.namespace(&client, "gov").await;
    let base = scim::tenant("gov");
    let direct = scim::Direct::new(&base);
    direct.group("staff").await;
    // Someone's own account under a username an Identity will claim.
    direct.user("gov.clash").await;

    apply(
        namespaced::<Secret>(&client, &ns),
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "t"}, "stringData": {"token": scim::TOKEN}}),
    )
    .await;
    apply(
        namespaced::<Connector>(&client, &ns),
        json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "Connector", "metadata": {"name": "scim"},
        "spec": {"allowPlaintext": true, "scim": {"baseUrl": base, "tokenSecretRef": {"name": "t", "key": "token"}}}}),
    )
    .await;
    apply(
        namespaced::<Role>(&client, &ns),
        json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "Role", "metadata": {"name": "staff"},
        "spec": {"entitlements": [{"connector": "scim", "name": "staff"}]}}),
    )
    .await;
    apply(namespaced::<RoleBinding>(&client, &ns), json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "RoleBinding", "metadata": {"name": "staff"},
        "spec": {"role": "staff", "subjects": {"expression": "identity.username.startsWith(\"gov.\")"}}})).await;
    let identities: Api<Identity> = Api::all(client.clone());
    for (name, username) in [
        ("gov-ada", "gov.ada"),
        ("gov-clash", "gov.clash"),
        ("gov-leo", "gov.leo"),
    ] {
        apply(identities.clone(), person(name, username, "Active")).await;
    }

    let op = Operator::start(&cp.kubeconfig);
    let limit = Duration::from_secs(30);
    op.eventually("leo's account", limit, || async {
        direct.find_user("gov.leo").await.is_some()
    })
    .await;
    apply(
        identities.clone(),
        person("gov-leo", "gov.leo", "Terminated"),
    )
    .await;

    let report = || {
        serde_json::from_str::<Value>(&roster_report(&cp.kubeconfig, &["--output", "json"]))
            .expect("JSON report")
    };
    let scim_key = format!("{ns}/scim");
    let want = json!({
        "accuracy": {scim_key.clone(): {"inSync": 2, "drifted": 0, "failing": 0}},
        "deprovisioning": {"verified": 1, "pending": 0, "oldestPendingSeconds": null},
        "exceptions": {"conflict": 1, "deprovisioning-blocked": 0, "failing-account": 0,
                       "orphaned-account": 0, "protected-leaver": 0, "quarantined-connector": 0,
                       "unowned-member": 0, "leaver-wave": 0, "held-leaver": 0,
                       "leaver-unowned-access": 0},
        "held": [],
        "heldUnlisted": 0,
        "connectors": {scim_key.clone(): {"ready": true, "quarantined": false}}
    });
    let mut last = Value::Null;
    op.eventually("the report's figures", limit, || {
        last = report();
        let ok = last == want;
        async move { ok }
    })
    .await;

    let text = roster_report(&cp.kubeconfig, &[]);
    assert!(text.contains("Exceptions needing a person: 1"), "{text}");

    // The operator measures its own caches at each scrape; they follow the API a moment
    // behind, so this waits for them too.
    let metrics = format!("{}/metrics", op.probe);
    let lines = [
        format!("roster_entitlement_accuracy_ratio{{connector=\"{scim_key}\"}} 1.0"),
        "roster_leavers{state=\"verified\"} 1".to_owned(),
        "roster_deprovisioning_completion_ratio 1.0".to_owned(),
        "roster_exceptions{kind=\"conflict\"} 1".to_owned(),
        format!("roster_connector_ready{{connector=\"{scim_key}\"}} 1"),
        format!("roster_connector_quarantined{{connector=\"{scim_key}\"}} 0"),
        format!(
            "roster_downstream_requests_total{{connector=\"{scim_key}\",operation=\"observe\",outcome=\"ok\"}}"
        ),
        "roster_identity_queue_depth{lane=\"general\"}".to_owned(),
    ];
    op.eventually("the figures on /metrics", limit, || async {
        let body = reqwest::get(&metrics)
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body");
        lines.iter().all(|l| body.contains(l.as_str()))
    })
    .await;
}
