//! Liveness: every Identity of a burst is reconciled, while others keep being re-queued
//! (downstream work, status writes, a scan every ten seconds). A burst of 1,000 once left
//! 276 Identities without a status for good (see `controller::lanes`, `operator::relay`).

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use roster::api::{Connector, Identity, Role, RoleBinding};
use serde_json::json;

use crate::harness::{isolated_control_plane, operator::Operator, scim};

const BURST: usize = 1000;
/// Of the burst, these get a SCIM account too (downstream work that re-queues them).
const WITH_ACCOUNTS: usize = 100;

#[tokio::test]
async fn every_identity_of_a_burst_of_1000_is_reconciled() {
    let cp = isolated_control_plane("liveness");
    let client = cp.client().await;
    let ns = cp.namespace(&client, "liveness").await;
    let base = scim::tenant("liveness");
    scim::Direct::new(&base).group("staff").await;
    let pp = PatchParams::apply("it").force();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(
            "t",
            &pp,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "t"}, "stringData": {"token": scim::TOKEN}})),
        )
        .await
        .expect("secret");
    Api::<Connector>::namespaced(client.clone(), &ns)
        .patch("scim", &pp, &Patch::Apply(json!({"apiVersion": "roster.dev/v1alpha1",
            "kind": "Connector", "metadata": {"name": "scim"},
            "spec": {"allowPlaintext": true, "scim": {"baseUrl": base, "tokenSecretRef": {"name": "t", "key": "token"}},
                "pollIntervalSeconds": 10, "rateLimit": {"requestsPerSecond": 500, "burst": 500}}})))
        .await
        .expect("connector");
    Api::<Role>::namespaced(client.clone(), &ns)
        .patch(
            "staff",
            &pp,
            &Patch::Apply(json!({"apiVersion": "roster.dev/v1alpha1",
            "kind": "Role", "metadata": {"name": "staff"},
            "spec": {"entitlements": [{"connector": "scim", "name": "staff"}]}})),
        )
        .await
        .expect("role");
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .patch("staff", &pp, &Patch::Apply(json!({"apiVersion": "roster.dev/v1alpha1",
            "kind": "RoleBinding", "metadata": {"name": "staff"},
            "spec": {"role": "staff", "subjects": {"selector": {"matchLabels": {"liveness/account": "yes"}}}}})))
        .await
        .expect("binding");

    let operator = Operator::start(&cp.kubeconfig);
    let identities = Api::<Identity>::all(client.clone());
    let started = Instant::now();
    stream::iter(0..BURST)
        .for_each_concurrent(32, |i| {
            let (identities, pp) = (identities.clone(), pp.clone());
            async move {
                let account = if i < WITH_ACCOUNTS { "yes" } else { "no" };
                let obj = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity",
                    "metadata": {"name": format!("lv-{i:04}"), "labels": {"liveness/account": account}},
                    "spec": {"username": format!("lv.{i:04}")}});
                identities
                    .patch(&format!("lv-{i:04}"), &pp, &Patch::Apply(&obj))
                    .await
                    .unwrap_or_else(|e| panic!("apply lv-{i:04}: {e}"));
            }
        })
        .await;
    eprintln!(
        "liveness: {BURST} Identities applied in {:?}",
        started.elapsed()
    );

    // Eventual, with a generous bound: the figure is not a timing, only "every one".
    let limit = Duration::from_secs(600);
    let mut missing = Vec::new();
    while started.elapsed() < limit {
        let list = identities
            .list(&ListParams::default().labels("liveness/account"))
            .await
            .expect("list");
        missing = list
            .items
            .iter()
            .filter(|i| {
                i.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .is_none_or(|g| Some(g) != i.metadata.generation)
            })
            .filter_map(|i| i.metadata.name.clone())
            .collect();
        if list.items.len() == BURST && missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let log = operator.log();
    assert!(
        missing.is_empty(),
        "{} of {BURST} Identities have no status after {limit:?}, e.g. {:?}; operator log tail:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        &log[log.len().saturating_sub(4000)..]
    );
    eprintln!(
        "liveness: every Identity reconciled {:?} after the burst began",
        started.elapsed()
    );
    let accounts = scim::Direct::new(&base).users_named("lv.").await;
    assert_eq!(
        accounts, WITH_ACCOUNTS,
        "every bound Identity got its account"
    );
}
