//! A leaver's Service identities, under `policy.ownedServices: ReassignToManager`: handed
//! to the leaver's manager (from HR's manager column) and kept working; put back by Git,
//! left alone, with the manager named in the service's status.

use k8s_openapi::api::core::v1::Event;
use kube::{Api, ResourceExt, api::ListParams};
use roster::api::{LifecycleState, conditions};
use serde_json::json;

use super::{active_downstream, export, scim_scenario, source, status};

const HEADER: &str = "user,department,manager\n";
const ADA: &str = "hrown.ada,engineering,hrown.grace\n";
const GRACE: &str = "hrown.grace,engineering,\n";

fn owner_of(i: &roster::api::Identity) -> Option<String> {
    i.spec.owner.clone()
}

#[tokio::test]
async fn a_leavers_service_goes_to_their_manager_once() {
    let s = scim_scenario("hrown").await;
    export(&s, "hr", &format!("{HEADER}{ADA}{GRACE}")).await;
    let mapping = json!({"username": "user", "manager": "manager",
        "attributes": {"department": "department"}});
    let policy = json!({"policy": {"missing": "Terminate", "ownedServices": "ReassignToManager"},
        "safeguard": {"maxRemovals": 100, "maxPercent": 100, "windowSeconds": 3600}});
    source(&s, "hr", mapping, policy).await;
    s.eventually("ada joins", || active_downstream(&s, "hrown.ada"))
        .await;
    // The bot is Git's: written by the test, not the source.
    let bot = |owner: &str| {
        json!({"username": "hrown.bot", "kind": "Service", "owner": owner,
            "attributes": {"department": "engineering"}})
    };
    s.identity("hrown-bot", bot("hrown.ada")).await;
    s.eventually("the bot is provisioned", || {
        active_downstream(&s, "hrown.bot")
    })
    .await;

    // Ada leaves HR: the bot is handed to her manager, and keeps working.
    export(&s, "hr", &format!("{HEADER}{GRACE}")).await;
    s.eventually("ada is terminated", || async {
        s.get("hrown.ada").await.spec.state == LifecycleState::Terminated
    })
    .await;
    s.eventually("the bot is handed to grace", || async {
        owner_of(&s.get("hrown-bot").await).as_deref() == Some("hrown.grace")
    })
    .await;
    let handed = s.get("hrown-bot").await;
    assert_eq!(
        handed
            .annotations()
            .get("roster.dev/owner-reassigned-from")
            .map(String::as_str),
        Some("hrown.ada")
    );
    assert!(active_downstream(&s, "hrown.bot").await);
    let events = Api::<Event>::all(s.client.clone())
        .list(&ListParams::default().fields("involvedObject.name=hrown-bot"))
        .await
        .expect("list events");
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("OwnerReassigned")),
        "no OwnerReassigned Event"
    );

    // Git puts ada back: the source leaves it (two more reads), and the bot's status
    // names the manager for whoever keeps spec.owner.
    s.identity("hrown-bot", bot("hrown.ada")).await;
    for read in 1..=2 {
        let before = status(&s, "hr").await.last_sync_time;
        s.eventually(&format!("read {read} after the put-back"), || async {
            status(&s, "hr").await.last_sync_time != before
        })
        .await;
    }
    assert_eq!(
        owner_of(&s.get("hrown-bot").await).as_deref(),
        Some("hrown.ada"),
        "handed over twice"
    );
    s.eventually("the bot's status names ada's manager", || async {
        s.get("hrown-bot").await.status.is_some_and(|st| {
            st.conditions.iter().any(|c| {
                c.type_ == conditions::READY && c.message.contains("\"hrown.grace\", their manager")
            })
        })
    })
    .await;
}
