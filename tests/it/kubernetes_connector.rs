//! The Kubernetes RBAC connector against the real test apiserver: the conformance suite,
//! access confirmed with SubjectAccessReviews before a grant, with it, while disabled and
//! after the revocation — for roles of the test's own and for the built-in, aggregated
//! `edit` and `view` — ServiceAccounts for Service identities, and bindings Roster did not
//! make left alone.

use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
    core::v1::ServiceAccount,
    rbac::v1::{ClusterRoleBinding, Role, RoleRef, Subject},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use roster::{
    api::IdentityKind,
    connector::{Connector, ConnectorError, kubernetes::KubernetesConnector},
    lifecycle::{AccountAttributes, DesiredAccount},
};

use crate::{
    conformance::{self, Fixture},
    harness::{
        apps::{make_cluster_role, pod_reader},
        control_plane,
    },
};

pub(crate) fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

struct K8sFixture {
    client: Client,
    namespace: String,
}

#[async_trait::async_trait]
impl Fixture for K8sFixture {
    fn entitlement(&self, name: &str) -> String {
        format!("ClusterRole/{name}")
    }
    async fn make_entitlement(&self, entitlement: &str) {
        let name = entitlement.trim_start_matches("ClusterRole/");
        make_cluster_role(&self.client, name).await;
    }
    async fn make_unowned_account(&self, username: &str) {
        // A ServiceAccount someone made by hand.
        Api::<ServiceAccount>::namespaced(self.client.clone(), &self.namespace)
            .create(
                &PostParams::default(),
                &ServiceAccount {
                    metadata: meta(username, None),
                    ..ServiceAccount::default()
                },
            )
            .await
            .expect("create ServiceAccount");
    }
}

async fn setup(prefix: &str) -> (Client, String, KubernetesConnector) {
    let cp = control_plane();
    let client = cp.client().await;
    let namespace = cp.namespace(&client, prefix).await;
    let c = KubernetesConnector::new(client.clone(), namespace.clone(), (&namespace, "rbac"));
    (client, namespace, c)
}

#[tokio::test]
async fn kubernetes_passes_the_conformance_suite() {
    let (client, namespace, c) = setup("k8sconf").await;
    let fixture = K8sFixture { client, namespace };
    conformance::run(&c, &fixture, "k8sconf").await;
}

pub(crate) fn desired(username: &str, kind: IdentityKind) -> DesiredAccount {
    DesiredAccount {
        username: username.into(),
        kind,
        attributes: AccountAttributes::default(),
        active: true,
        entitlements: Default::default(),
    }
}

/// An action on a resource: verb, API group, resource.
type Action = (&'static str, &'static str, &'static str);

const GET_PODS: Action = ("get", "", "pods");

/// Whether `user` may do `action` in `namespace`, as the apiserver's authorizer decides.
async fn may(
    client: &Client,
    user: &str,
    namespace: &str,
    (verb, group, resource): Action,
) -> bool {
    let review = SubjectAccessReview {
        metadata: ObjectMeta::default(),
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        status: None,
    };
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// Whether `user` may get pods in `namespace`.
pub(crate) async fn may_get_pods(client: &Client, user: &str, namespace: &str) -> bool {
    may(client, user, namespace, GET_PODS).await
}

/// Waits (up to 5 s) for the authorizer to reach `expected` on `action`: the apiserver's
/// RBAC authorizer reads bindings from an informer, so a change shows a moment later.
async fn expect_may(client: &Client, user: &str, namespace: &str, action: Action, expected: bool) {
    for _ in 0..100 {
        if may(client, user, namespace, action).await == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{user} may {action:?} in {namespace}: expected {expected}");
}

/// [`expect_may`] for getting pods.
pub(crate) async fn expect_access(client: &Client, user: &str, namespace: &str, expected: bool) {
    expect_may(client, user, namespace, GET_PODS, expected).await;
}

#[tokio::test]
async fn the_built_in_edit_and_view_give_real_access() {
    // The built-in roles hold no rules of their own: the controller manager's aggregation
    // fills them in. A grant of `edit` that gave nothing would pass every other test.
    const CREATE_DEPLOYMENTS: Action = ("create", "apps", "deployments");
    let (client, ns, c) = setup("k8sbuiltin").await;
    let elsewhere = control_plane().namespace(&client, "k8sbuiltin-other").await;
    let user = "builtin-ada@example.com";
    c.create("builtin-ada", &desired(user, IdentityKind::Person), true)
        .await
        .expect("create");
    let (view, edit) = (
        format!("ClusterRole/{ns}/view"),
        format!("ClusterRole/{ns}/edit"),
    );
    expect_may(&client, user, &ns, GET_PODS, false).await;

    c.grant(user, &view).await.expect("grant view");
    expect_may(&client, user, &ns, GET_PODS, true).await;
    expect_may(&client, user, &ns, CREATE_DEPLOYMENTS, false).await;

    c.grant(user, &edit).await.expect("grant edit");
    expect_may(&client, user, &ns, CREATE_DEPLOYMENTS, true).await;
    assert!(
        !may(&client, user, &elsewhere, CREATE_DEPLOYMENTS).await,
        "only in its namespace"
    );

    // A mover loses edit and keeps view.
    c.revoke(user, &edit).await.expect("revoke edit");
    expect_may(&client, user, &ns, CREATE_DEPLOYMENTS, false).await;
    expect_may(&client, user, &ns, GET_PODS, true).await;

    // A leaver loses the rest.
    let seen = c.observe(user).await.expect("observe").expect("exists");
    c.set_active(&seen, false).await.expect("disable");
    expect_may(&client, user, &ns, GET_PODS, false).await;
}

#[tokio::test]
async fn access_follows_grant_disable_and_revoke() {
    let (client, ns, c) = setup("k8ssar").await;
    c.check().await.expect("check");
    let user = "sar-ada@example.com";
    let cluster = "k8ssar-pod-reader".to_owned();
    make_cluster_role(&client, &cluster).await;
    // A Role in the namespace, for the namespaced form.
    Api::<Role>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta("pod-reader", None),
                rules: Some(pod_reader()),
            },
        )
        .await
        .expect("Role");
    let elsewhere = control_plane().namespace(&client, "k8ssar-other").await;

    c.create("sar-ada", &desired(user, IdentityKind::Person), true)
        .await
        .expect("create");
    assert!(
        !may_get_pods(&client, user, &ns).await,
        "no access before the grant"
    );

    let namespaced = format!("Role/{ns}/pod-reader");
    c.grant(user, &namespaced).await.expect("grant Role");
    expect_access(&client, user, &ns, true).await; // the Role grants access
    assert!(
        !may_get_pods(&client, user, &elsewhere).await,
        "only in its namespace"
    );

    let everywhere = format!("ClusterRole/{cluster}");
    c.grant(user, &everywhere).await.expect("grant ClusterRole");
    expect_access(&client, user, &elsewhere, true).await;
    let seen = c.observe(user).await.expect("observe").expect("exists");
    assert_eq!(
        seen.entitlements,
        [everywhere.clone(), namespaced.clone()].into()
    );

    // Disabled: no access anywhere, entitlements kept.
    c.set_active(&seen, false).await.expect("disable");
    expect_access(&client, user, &ns, false).await;
    expect_access(&client, user, &elsewhere, false).await;
    let seen = c.observe(user).await.expect("observe").expect("exists");
    assert!(!seen.active);
    assert_eq!(seen.entitlements.len(), 2);
    c.set_active(&seen, true).await.expect("enable");
    expect_access(&client, user, &elsewhere, true).await;

    c.revoke(user, &everywhere).await.expect("revoke");
    expect_access(&client, user, &elsewhere, false).await; // gone after the revoke
    assert!(
        may_get_pods(&client, user, &ns).await,
        "the other grant stays"
    );
    c.revoke(user, &namespaced).await.expect("revoke");
    expect_access(&client, user, &ns, false).await;
}

#[tokio::test]
async fn service_identities_get_service_accounts() {
    let (client, ns, c) = setup("k8ssvc").await;
    let cluster = "k8ssvc-pod-reader";
    make_cluster_role(&client, cluster).await;
    c.create("ci-bot", &desired("ci-bot", IdentityKind::Service), true)
        .await
        .expect("create");
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .get("ci-bot")
        .await
        .expect("the ServiceAccount exists");
    assert_eq!(
        sa.metadata
            .annotations
            .unwrap_or_default()
            .get("roster.dev/identity"),
        Some(&"ci-bot".to_owned())
    );
    let as_user = format!("system:serviceaccount:{ns}:ci-bot");
    expect_access(&client, &as_user, &ns, false).await;
    c.grant("ci-bot", &format!("ClusterRole/{cluster}"))
        .await
        .expect("grant");
    expect_access(&client, &as_user, &ns, true).await;
    let seen = c.observe("ci-bot").await.expect("observe").expect("exists");
    c.delete(&seen).await.expect("delete");
    expect_access(&client, &as_user, &ns, false).await;
    assert!(
        Api::<ServiceAccount>::namespaced(client.clone(), &ns)
            .get_opt("ci-bot")
            .await
            .expect("get")
            .is_none()
    );
    // A Service username that cannot name a ServiceAccount is refused, clearly.
    let err = c
        .create("Bad Bot", &desired("Bad Bot", IdentityKind::Service), true)
        .await
        .expect_err("invalid name");
    assert!(matches!(err, ConnectorError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn bindings_roster_did_not_make_are_left_alone() {
    let (client, ns, c) = setup("k8shand").await;
    let cluster = "k8shand-pod-reader";
    make_cluster_role(&client, cluster).await;
    let user = "hand-grace";
    // An admin's own binding for the same user and role.
    let hand = ClusterRoleBinding {
        metadata: meta("k8shand-by-hand", None),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: cluster.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }]),
    };
    let crbs = Api::<ClusterRoleBinding>::all(client.clone());
    crbs.create(&PostParams::default(), &hand)
        .await
        .expect("hand binding");

    c.create("hand-grace", &desired(user, IdentityKind::Person), true)
        .await
        .expect("create");
    let seen = c.observe(user).await.expect("observe").expect("exists");
    assert!(
        seen.entitlements.is_empty(),
        "the hand-made binding is not Roster's"
    );
    let ent = format!("ClusterRole/{cluster}");
    c.grant(user, &ent).await.expect("grant");
    c.revoke(user, &ent).await.expect("revoke");
    let seen = c.observe(user).await.expect("observe").expect("exists");
    c.set_active(&seen, false).await.expect("disable");
    c.delete(&seen).await.expect("delete");
    let still = crbs.get("k8shand-by-hand").await.expect("still there");
    assert_eq!(still.subjects, hand.subjects, "untouched");
    // Missing roles and malformed entitlement strings are clear errors.
    c.create("hand-grace", &desired(user, IdentityKind::Person), true)
        .await
        .expect("create again");
    assert!(matches!(
        c.grant(user, "ClusterRole/k8shand-no-such-role").await,
        Err(ConnectorError::EntitlementNotFound(_))
    ));
    assert!(matches!(
        c.grant(user, &format!("Role/{ns}/no-such-role")).await,
        Err(ConnectorError::EntitlementNotFound(_))
    ));
    let err = c.grant(user, "cluster-admin").await.expect_err("malformed");
    assert!(err.to_string().contains("ClusterRole/NAME"), "{err}");
}

#[tokio::test]
async fn credentials_without_rbac_rights_are_a_clear_error() {
    let cp = control_plane();
    let admin = cp.client().await;
    let ns = cp.namespace(&admin, "k8slimited").await;
    let c = KubernetesConnector::new(cp.limited_client().await, ns.clone(), (&ns, "rbac"));
    let err = c
        .check()
        .await
        .expect_err("the limited user may do nothing");
    assert!(
        matches!(&err, ConnectorError::Config(m) if m.contains("create clusterrolebindings")),
        "{err:?}"
    );
}
