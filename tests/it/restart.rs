//! Killing the operator mid-run (SIGKILL, no shutdown path) and starting it again loses
//! nothing and duplicates nothing.

use std::time::Duration;

use kube::Api;
use roster::api::{Identity, conditions};
use serde_json::{Value, json};

use crate::harness::{self, apps, isolated_control_plane, operator::Operator, scim};

const PEOPLE: usize = 40;

#[tokio::test]
async fn a_killed_operator_restarts_and_converges_without_duplicates() {
    let cp = isolated_control_plane("restart");
    let (client, ns, direct) = apps::scim_staff(cp, "rs").await;
    let apply = |obj: Value| {
        let (client, ns) = (client.clone(), ns.clone());
        async move { harness::apply(&client, &ns, obj).await }
    };

    let mut first = Operator::start(&cp.kubeconfig);
    for i in 0..PEOPLE {
        apply(json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity", "metadata": {"name": format!("rs-{i:02}")},
            "spec": {"username": format!("rs.{i:02}")}}))
        .await;
    }
    first
        .eventually("the first accounts", Duration::from_secs(30), || async {
            users(&direct).await.len() >= 5
        })
        .await;
    first.kill();
    let at_kill = users(&direct).await.len();
    eprintln!("killed the operator with {at_kill} of {PEOPLE} accounts created");

    let second = Operator::start(&cp.kubeconfig);
    second
        .eventually(
            "every identity provisioned and in sync",
            Duration::from_secs(60),
            || async {
                let all = Api::<Identity>::all(client.clone())
                    .list(&Default::default())
                    .await
                    .expect("list");
                let synced = all
                    .items
                    .iter()
                    .filter(|i| i.spec.username.starts_with("rs."))
                    .filter(|i| {
                        i.status.as_ref().is_some_and(|s| {
                            conditions::find(&s.conditions, conditions::SYNCED)
                                .is_some_and(|c| c.status == "True")
                                && s.accounts.iter().any(|a| a.entitlements == ["staff"])
                        })
                    })
                    .count();
                synced == PEOPLE
            },
        )
        .await;

    let names = users(&direct).await;
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (names.len(), unique.len()),
        (PEOPLE, PEOPLE),
        "one account per identity: {names:?}"
    );
    let staff = direct.get("/Groups").await;
    let members: Vec<String> = staff["Resources"][0]["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str().map(str::to_owned))
        .collect();
    let mut unique_members = members.clone();
    unique_members.sort();
    unique_members.dedup();
    assert_eq!(
        (members.len(), unique_members.len()),
        (PEOPLE, PEOPLE),
        "each member once"
    );
}

/// Every userName in the tenant (it holds only this test's users).
async fn users(direct: &scim::Direct) -> Vec<String> {
    let list = direct.get("/Users?count=1000").await;
    list["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["userName"].as_str().map(str::to_owned))
        .collect()
}
