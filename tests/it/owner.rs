//! A Service identity answers to its owner, on a real operator and SCIM server: when the
//! owner leaves, the service keeps its access for the grace period, then its account is
//! disabled; a new owner restores it as it was. The same when the owner's Identity is
//! deleted.

use std::time::Duration;

use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use roster::api::{Connector, Identity};
use serde_json::{Value, json};

use crate::harness::{self, apps, isolated_control_plane, operator::Operator};

const LIMIT: Duration = Duration::from_secs(90);
/// Short, so that the test sees it pass; production's default is seven days.
const GRACE_SECONDS: &str = "3";

fn person(name: &str, state: &str) -> Value {
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity", "metadata": {"name": name},
        "spec": {"username": format!("ow.{name}"), "state": state}})
}

fn bot(owner: &str) -> Value {
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity", "metadata": {"name": "ow-bot"},
        "spec": {"username": "ow.bot", "kind": "Service", "owner": owner}})
}

#[tokio::test]
async fn a_service_loses_its_access_a_grace_period_after_its_owner_leaves() {
    let cp = isolated_control_plane("owner");
    let (client, ns, direct) = apps::scim_staff(cp, "ow").await;
    let op = Operator::start_with(
        &cp.kubeconfig,
        "info",
        &[("ROSTER_OWNER_GRACE_SECONDS", GRACE_SECONDS)],
    );
    let apply = |obj: Value| {
        let (client, ns) = (client.clone(), ns.clone());
        async move { harness::apply(&client, &ns, obj).await }
    };
    // Three accounts are few: without room in the deletion budget, deleting carol (a
    // policy removal) would trip it and hold the rest, as it should.
    Api::<Connector>::namespaced(client.clone(), &ns)
        .patch(
            "scim",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"deletionBudget": {"maxRemovals": 100, "maxPercent": 100}}}),
            ),
        )
        .await
        .expect("budget");
    let bot_state = || async {
        let user = direct.find_user("ow.bot").await?;
        let id = user["id"].as_str()?.to_owned();
        Some((user["active"] == true, direct.groups_holding(&id).await?))
    };
    apply(person("bob", "Active")).await;
    apply(person("carol", "Active")).await;
    apply(bot("bob")).await;
    op.eventually("the bot provisioned with its group", LIMIT, || async {
        bot_state().await == Some((true, 1))
    })
    .await;

    // Bob leaves: the bot's Ready says when its access goes, then it goes.
    apply(person("bob", "Terminated")).await;
    let identities = Api::<Identity>::all(client.clone());
    op.eventually("the bot disabled after the grace period", LIMIT, || async {
        bot_state().await == Some((false, 1))
    })
    .await;
    // Status is written just after the app is changed.
    op.eventually(
        "Ready says the access is gone until a new owner",
        LIMIT,
        || async {
            let status = identities
                .get("ow-bot")
                .await
                .ok()
                .and_then(|i| i.status)
                .unwrap_or_default();
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
            status.owner_lost_at.is_some()
                && ready.is_some_and(|c| {
                    c.reason == "OwnerTerminated" && c.message.contains("until a new owner is set")
                })
        },
    )
    .await;

    // Carol takes it over: enabled again, with what it had.
    apply(bot("carol")).await;
    op.eventually("the bot enabled under its new owner", LIMIT, || async {
        bot_state().await == Some((true, 1))
            && identities
                .get("ow-bot")
                .await
                .ok()
                .and_then(|i| i.status)
                .is_some_and(|s| s.owner_lost_at.is_none())
    })
    .await;

    // Carol's Identity is deleted outright: the same, from when it went.
    identities
        .delete("carol", &DeleteParams::default())
        .await
        .expect("delete carol");
    op.eventually("the bot disabled once carol is gone", LIMIT, || async {
        bot_state().await == Some((false, 1))
    })
    .await;
    // Each record is written after the read-back, a moment after the app shows the
    // account disabled.
    let disabled = |log: &str| {
        log.lines()
            .filter(|l| l.contains("roster::audit") && l.contains("identity=ow-bot"))
            .filter(|l| l.contains("action=\"Disabled\""))
            .map(str::to_owned)
            .collect::<Vec<String>>()
    };
    op.eventually("both disables recorded", LIMIT, || async {
        disabled(&op.log()).len() >= 2
    })
    .await;
    let disables = disabled(&op.log());
    assert_eq!(disables.len(), 2, "{disables:#?}");
    assert!(
        disables
            .iter()
            .all(|l| l.contains("without an owner past the grace period")),
        "the records say why: {disables:#?}"
    );
}
