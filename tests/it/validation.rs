//! The API server itself refuses invalid objects, with the CEL rule's message.

use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use roster::api::{Connector, Identity, Role, RoleBinding};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::harness::control_plane;

/// Creates `obj` and asserts a 422 whose message contains `message`.
async fn assert_refused<K>(api: &Api<K>, obj: Value, message: &str)
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(obj).expect("test object deserialises");
    match api.create(&PostParams::default(), &typed).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains(message),
                "expected {message:?} in {:?}",
                status.message
            );
        }
        other => panic!("expected a 422 containing {message:?}, got {other:?}"),
    }
}

fn identity(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn identity_rules() {
    let cp = control_plane();
    let api: Api<Identity> = Api::all(cp.client().await);

    assert_refused(
        &api,
        identity(
            "svc-no-owner",
            json!({"kind": "Service", "username": "svc-no-owner"}),
        ),
        "a Service identity needs spec.owner",
    )
    .await;
    assert_refused(
        &api,
        identity(
            "backwards",
            json!({"username": "backwards",
            "validFrom": "2027-01-02T00:00:00Z", "validUntil": "2027-01-01T00:00:00Z"}),
        ),
        "spec.validUntil must be after spec.validFrom",
    )
    .await;
    assert_refused(
        &api,
        identity("bad-name", json!({"username": "-leading-dash"})),
        "spec.username",
    )
    .await;

    // The username is immutable: a change is refused, the object keeps the old one.
    let created: Identity =
        serde_json::from_value(identity("immutable", json!({"username": "immutable"}))).unwrap();
    api.create(&PostParams::default(), &created)
        .await
        .expect("create");
    let patch = Patch::Merge(json!({"spec": {"username": "renamed"}}));
    match api
        .patch("immutable", &PatchParams::default(), &patch)
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message.contains("spec.username is immutable"),
                "{}",
                s.message
            );
        }
        other => panic!("rename accepted: {other:?}"),
    }
    assert_eq!(
        api.get("immutable").await.expect("get").spec.username,
        "immutable"
    );
}

async fn namespaced<K>(client: &Client, ns: &str) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(client.clone(), ns)
}

#[tokio::test]
async fn connector_names_exactly_one_backend() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = cp.namespace(&client, "connector-rules").await;
    let api: Api<Connector> = namespaced(&client, &ns).await;
    let connector = |name: &str, spec: Value| json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector", "metadata": {"name": name}, "spec": spec});
    let scim = json!({"baseUrl": "http://127.0.0.1:1/v2", "tokenSecretRef": {"name": "t", "key": "token"}});
    let message = "a Connector names exactly one backend";
    assert_refused(&api, connector("none", json!({"mode": "Observe"})), message).await;
    assert_refused(
        &api,
        connector("two", json!({"scim": scim, "kubernetes": {}})),
        message,
    )
    .await;
    assert_refused(
        &api,
        connector(
            "bad-url",
            json!({"allowPlaintext": true, "scim": {"baseUrl": "ftp://x", "tokenSecretRef": {"name": "t", "key": "k"}}}),
        ),
        "spec.scim.baseUrl",
    )
    .await;
    let ok: Connector = serde_json::from_value(connector("one", json!({"scim": scim}))).unwrap();
    let created = api
        .create(&PostParams::default(), &ok)
        .await
        .expect("one backend is accepted");
    // Defaults are applied by the server, so `kubectl get -o yaml` shows effective policy.
    assert_eq!(created.spec.poll_interval_seconds, 300);
    assert_eq!(created.spec.deletion_budget.max_removals, 100);
    assert_eq!(created.spec.revocation_budget.max_accounts, 100);
    assert_eq!(created.spec.leaver_wave.min_leavers, 25);
    assert!(!created.spec.hold_leaver_waves);
}

#[tokio::test]
async fn role_binding_needs_subjects_and_an_ordered_window() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = cp.namespace(&client, "binding-rules").await;
    let api: Api<RoleBinding> = namespaced(&client, &ns).await;
    let binding = |name: &str, spec: Value| json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding", "metadata": {"name": name}, "spec": spec});
    let message = "spec.subjects needs at least one of identities, selector or expression";
    assert_refused(
        &api,
        binding("empty", json!({"role": "r", "subjects": {}})),
        message,
    )
    .await;
    assert_refused(
        &api,
        binding(
            "empty-list",
            json!({"role": "r", "subjects": {"identities": []}}),
        ),
        message,
    )
    .await;
    assert_refused(
        &api,
        binding(
            "backwards",
            json!({"role": "r", "subjects": {"identities": ["ada"]},
            "validFrom": "2027-01-02T00:00:00Z", "validUntil": "2027-01-01T00:00:00Z"}),
        ),
        "spec.validUntil must be after spec.validFrom",
    )
    .await;
    for (name, subjects) in [
        ("by-name", json!({"identities": ["ada"]})),
        (
            "by-label",
            json!({"selector": {"matchLabels": {"team": "x"}}}),
        ),
        (
            "by-expression",
            json!({"expression": "identity.kind == \"Person\""}),
        ),
    ] {
        let ok: RoleBinding =
            serde_json::from_value(binding(name, json!({"role": "r", "subjects": subjects})))
                .unwrap();
        api.create(&PostParams::default(), &ok)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[tokio::test]
async fn role_lists_each_entitlement_once() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = cp.namespace(&client, "role-rules").await;
    let api: Api<Role> = namespaced(&client, &ns).await;
    let twice = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role", "metadata": {"name": "twice"},
        "spec": {"entitlements": [{"connector": "scim", "name": "eng"}, {"connector": "scim", "name": "eng"}]}});
    assert_refused(&api, twice, "Duplicate value").await;
    let none = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role", "metadata": {"name": "none"},
        "spec": {"entitlements": []}});
    assert_refused(&api, none, "spec.entitlements").await;
}

#[tokio::test]
async fn rbac_is_enforced_for_limited_users() {
    let cp = control_plane();
    let api: Api<Identity> = Api::all(cp.limited_client().await);
    match api.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("a user without grants listed identities: {other:?}"),
    }
}
