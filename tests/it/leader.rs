//! Two replicas on the real apiserver: one leads and alone writes; killed, the standby
//! takes over, with no duplicate and no lost change.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use roster::api::Identity;
use serde_json::{Value, json};

use crate::harness::{self, apps, isolated_control_plane, operator::Operator, scim};

const LIMIT: Duration = Duration::from_secs(90);

/// The Lease's holder, if any.
async fn holder(client: &kube::Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), "default")
        .get_opt("roster-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

/// (enabled userNames, disabled userNames) in the tenant, each as often as it appears.
async fn accounts(direct: &scim::Direct) -> (Vec<String>, Vec<String>) {
    let list = direct.get("/Users?count=1000").await;
    let mut out = (Vec::new(), Vec::new());
    for u in list["Resources"].as_array().into_iter().flatten() {
        let name = u["userName"].as_str().unwrap_or_default().to_owned();
        if u["active"] == false {
            out.1.push(name);
        } else {
            out.0.push(name);
        }
    }
    out.0.sort();
    out.1.sort();
    out
}

fn writes(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("downstream change"))
        .count()
}

#[tokio::test]
async fn two_replicas_have_one_writer_and_the_standby_takes_over() {
    let cp = isolated_control_plane("leader");
    let (client, ns, direct) = apps::scim_staff(cp, "le").await;
    let apply = |obj: Value| {
        let (client, ns) = (client.clone(), ns.clone());
        async move { harness::apply(&client, &ns, obj).await }
    };
    let person = |i: usize| {
        json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity", "metadata": {"name": format!("le-{i:02}")},
            "spec": {"username": format!("le.{i:02}")}})
    };

    let mut a = Operator::start(&cp.kubeconfig);
    a.eventually("a leads", LIMIT, || async {
        holder(&client).await.is_some()
    })
    .await;
    let mut b = Operator::start(&cp.kubeconfig);
    b.eventually("b waits as a ready standby", LIMIT, || async {
        reqwest::get(format!("{}/readyz", b.probe))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    for i in 0..10 {
        apply(person(i)).await;
    }
    let first: Vec<String> = (0..10).map(|i| format!("le.{i:02}")).collect();
    a.eventually("the first ten provisioned", LIMIT, || async {
        accounts(&direct).await.0 == first
    })
    .await;
    assert_eq!(writes(&b.log()), 0, "the standby wrote:\n{}", b.log());
    assert!(
        !b.log().contains("reconciled kind="),
        "the standby reconciled:\n{}",
        b.log()
    );

    // The leader dies without a word; changes keep coming.
    a.kill();
    let terminated = ["le-00", "le-01", "le-02"];
    for name in terminated {
        Api::<Identity>::all(client.clone())
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"state": "Terminated"}})),
            )
            .await
            .expect("terminate");
    }
    for i in 10..15 {
        apply(person(i)).await;
    }
    let enabled: Vec<String> = (3..15).map(|i| format!("le.{i:02}")).collect();
    let disabled: Vec<String> = (0..3).map(|i| format!("le.{i:02}")).collect();
    b.eventually(
        "b took over: joiners created once, leavers disabled",
        LIMIT,
        || async { accounts(&direct).await == (enabled.clone(), disabled.clone()) },
    )
    .await;
    assert!(b.log().contains("leading"), "{}", b.log());
    let b_holds = holder(&client).await.expect("a holder");
    assert!(
        b.log().contains(&b_holds),
        "the Lease names b ({b_holds}):\n{}",
        b.log()
    );

    // A graceful stop hands the Lease back at once.
    let status = b.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(holder(&client).await, None, "released on SIGTERM");
}
