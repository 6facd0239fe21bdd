//! Two `kubernetes` Connectors on one cluster, in two namespaces, granting the same
//! username the same role: each sees, changes and removes only the objects it made.
//! Before the Connector label, both derived one binding name and one revoked the other's
//! grant; a ServiceAccount one of them made could be adopted or deleted by the other.

use k8s_openapi::api::{core::v1::ServiceAccount, rbac::v1::ClusterRoleBinding};
use kube::{Api, Client, api::ListParams};
use roster::{
    api::IdentityKind,
    connector::{Connector, ConnectorError, kubernetes::KubernetesConnector},
};

use crate::{
    harness::{apps::make_cluster_role, control_plane},
    kubernetes_connector::{desired, expect_access},
};

/// How many of Roster's ClusterRoleBindings exist for `username`, across Connectors.
async fn roster_bindings_of(client: &Client, username: &str) -> usize {
    Api::<ClusterRoleBinding>::all(client.clone())
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=roster"))
        .await
        .expect("list bindings")
        .items
        .iter()
        .filter(|b| {
            b.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("roster.dev/username"))
                .is_some_and(|u| u == username)
        })
        .count()
}

async fn entitlements(c: &KubernetesConnector, username: &str) -> Vec<String> {
    let seen = c.observe(username).await.expect("observe").expect("exists");
    seen.entitlements.into_iter().collect()
}

#[tokio::test]
async fn two_connectors_keep_to_their_own_bindings() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns_a = cp.namespace(&client, "k8sten-a").await;
    let ns_b = cp.namespace(&client, "k8sten-b").await;
    let a = KubernetesConnector::new(client.clone(), ns_a.clone(), (&ns_a, "rbac"));
    let b = KubernetesConnector::new(client.clone(), ns_b.clone(), (&ns_b, "rbac"));
    let role = "k8sten-pod-reader";
    make_cluster_role(&client, role).await;
    let ent = format!("ClusterRole/{role}");
    let user = "tenant-ada@example.com";
    let probe_ns = ns_a.as_str();

    for c in [&a, &b] {
        c.create(user, &desired(user, IdentityKind::Person), true)
            .await
            .expect("create");
        c.grant(user, &ent).await.expect("grant");
    }
    assert_eq!(roster_bindings_of(&client, user).await, 2, "one each");
    let listed = a.list_entitlements(None).await.expect("list");
    assert_eq!(
        listed.items.iter().filter(|e| e.name == ent).count(),
        1,
        "A lists its own binding only: {:?}",
        listed.items
    );

    // A's revoke leaves B's grant, and the access it gives.
    a.revoke(user, &ent).await.expect("revoke");
    assert_eq!(entitlements(&b, user).await, vec![ent.clone()]);
    assert!(entitlements(&a, user).await.is_empty());
    expect_access(&client, user, probe_ns, true).await;

    // A leaver at A (disable, then delete) leaves B's binding bound.
    a.grant(user, &ent).await.expect("grant again");
    let at_a = a.observe(user).await.expect("observe").expect("exists");
    a.set_active(&at_a, false).await.expect("disable");
    a.delete(&at_a).await.expect("delete");
    assert_eq!(roster_bindings_of(&client, user).await, 1);
    expect_access(&client, user, probe_ns, true).await;

    // B's own disable is what takes the access away.
    let at_b = b.observe(user).await.expect("observe").expect("exists");
    b.set_active(&at_b, false).await.expect("disable");
    expect_access(&client, user, probe_ns, false).await;
    b.delete(&at_b).await.expect("delete");
    assert_eq!(roster_bindings_of(&client, user).await, 0);
}

#[tokio::test]
async fn another_connectors_service_account_is_not_an_account_here() {
    let cp = control_plane();
    let client = cp.client().await;
    // Both keep ServiceAccounts in one namespace (`serviceAccountNamespace`).
    let shared = cp.namespace(&client, "k8sten-sa").await;
    let a = KubernetesConnector::new(client.clone(), shared.clone(), ("team-a", "rbac"));
    let b = KubernetesConnector::new(client.clone(), shared.clone(), ("team-b", "rbac"));
    let role = "k8sten-sa-reader";
    make_cluster_role(&client, role).await;
    let bot = "tenant-bot";
    a.create("bot-a", &desired(bot, IdentityKind::Service), true)
        .await
        .expect("create");

    let listed = b.list_accounts(None).await.expect("list");
    let mut all = listed.items;
    if let Some(next) = listed.next {
        all.extend(b.list_accounts(Some(&next)).await.expect("list").items);
    }
    assert!(
        all.iter().all(|acc| acc.username != bot),
        "B does not list A's ServiceAccount: {all:?}"
    );
    let seen = b.observe(bot).await.expect("observe").expect("the SA");
    assert_eq!(seen.owner, None, "not B's");
    let refused = |r: Result<(), ConnectorError>, what: &str| {
        let err = r.expect_err(what);
        assert!(
            matches!(&err, ConnectorError::Conflict(m) if m.contains("another Roster Connector") || m.contains("not this Connector's")),
            "{what}: {err:?}"
        );
    };
    refused(b.adopt(&seen, "bot-b").await, "adopt");
    refused(b.grant(bot, &format!("ClusterRole/{role}")).await, "grant");
    refused(b.delete(&seen).await, "delete");

    let sa = Api::<ServiceAccount>::namespaced(client.clone(), &shared)
        .get(bot)
        .await
        .expect("A's ServiceAccount stays");
    let identity = sa
        .metadata
        .annotations
        .unwrap_or_default()
        .remove("roster.dev/identity");
    assert_eq!(identity.as_deref(), Some("bot-a"), "still A's, unchanged");
    assert_eq!(roster_bindings_of(&client, bot).await, 0);
    assert_eq!(
        a.observe(bot).await.expect("observe").and_then(|o| o.owner),
        Some("bot-a".to_owned())
    );
}
