//! Kubernetes, against the real apiserver: everything in a namespace of this test's own
//! (account records, ServiceAccounts, Roles, RoleBindings), and every ClusterRoleBinding
//! that carries this Connector's label or binds the ClusterRole made for it. Hostile
//! usernames become binding subjects and annotations; hostile entitlements must never
//! reach a URL path or a `roleRef`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::{
    core::v1::{ConfigMap, ServiceAccount},
    rbac::v1::{ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, ObjectMeta, PostParams},
};
use roster::{
    api::IdentityKind,
    connector::{
        Connector,
        kubernetes::{KubernetesConnector, names},
    },
};
use serde::Serialize;
use serde_json::Value;

use super::{Diff, Downstream, Snapshot, Tally};
use crate::harness::{
    apps::{make_cluster_role, pod_reader},
    control_plane,
};

struct Kube {
    c: KubernetesConnector,
    client: Client,
    namespace: String,
    /// The ClusterRole made for this test.
    cluster_role: String,
}

/// An object's labels, annotations and the fields that say what it grants.
fn flatten<K: Resource + Serialize>(obj: &K) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::<String, BTreeSet<String>>::new();
    for (k, v) in obj.labels() {
        out.insert(format!("label {k}"), [v.clone()].into());
    }
    for (k, v) in obj.annotations() {
        out.insert(format!("annotation {k}"), [v.clone()].into());
    }
    let json = serde_json::to_value(obj).expect("json");
    for field in ["data", "roleRef", "rules", "secrets"] {
        if let Some(v) = json.get(field) {
            out.insert(field.to_owned(), [v.to_string()].into());
        }
    }
    if let Some(Value::Array(subjects)) = json.get("subjects") {
        out.insert(
            "subjects".to_owned(),
            subjects.iter().map(Value::to_string).collect(),
        );
    }
    out
}

fn insert_all<K: Resource<DynamicType = ()> + Serialize>(out: &mut Snapshot, items: &[K]) {
    for obj in items {
        out.insert(format!("{}/{}", K::kind(&()), obj.name_any()), flatten(obj));
    }
}

impl Kube {
    async fn list<K>(&self, api: Api<K>) -> Vec<K>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        api.list(&ListParams::default()).await.expect("list").items
    }
}

#[async_trait::async_trait]
impl Downstream for Kube {
    fn connector(&self) -> &dyn Connector {
        &self.c
    }

    fn kind(&self, i: usize) -> IdentityKind {
        if i % 3 == 2 {
            IdentityKind::Service
        } else {
            IdentityKind::Person
        }
    }

    async fn snapshot(&self) -> Snapshot {
        let (c, ns) = (&self.client, self.namespace.as_str());
        let mut out = Snapshot::new();
        insert_all(
            &mut out,
            &self.list(Api::<ConfigMap>::namespaced(c.clone(), ns)).await,
        );
        insert_all(
            &mut out,
            &self
                .list(Api::<ServiceAccount>::namespaced(c.clone(), ns))
                .await,
        );
        insert_all(
            &mut out,
            &self.list(Api::<Role>::namespaced(c.clone(), ns)).await,
        );
        insert_all(
            &mut out,
            &self
                .list(Api::<RoleBinding>::namespaced(c.clone(), ns))
                .await,
        );
        let key = names::connector_key(ns, "hostile");
        let ours: Vec<ClusterRoleBinding> = self
            .list(Api::<ClusterRoleBinding>::all(c.clone()))
            .await
            .into_iter()
            .filter(|b| {
                b.labels().get(names::CONNECTOR_LABEL) == Some(&key)
                    || b.role_ref.name == self.cluster_role
            })
            .collect();
        insert_all(&mut out, &ours);
        out
    }

    async fn make_entitlement(&self, i: usize, hostile: &str) -> (String, bool) {
        let (ns, role) = (&self.namespace, &self.cluster_role);
        match i % 4 {
            0 => (format!("Role/{ns}/viewer"), true),
            2 => (format!("ClusterRole/{role}"), true),
            3 => (format!("ClusterRole/{ns}/{role}"), true),
            _ if i % 8 == 1 => (format!("Role/{ns}/{hostile}"), false),
            _ => (format!("ClusterRole/{hostile}"), false),
        }
    }

    fn is_the_grant(
        &self,
        before: &Snapshot,
        after: &Snapshot,
        _account: &str,
        username: &str,
        entitlement: &str,
    ) -> Result<(), String> {
        let diff = Diff::between(before, after);
        let [binding] = diff.added.as_slice() else {
            return Err(format!("one binding should be added: {diff:?}"));
        };
        if !diff.changed.is_empty() || !diff.removed.is_empty() {
            return Err(format!("a grant only adds its binding: {diff:?}"));
        }
        let b = &after[binding];
        let subjects: Vec<Value> = b["subjects"]
            .iter()
            .map(|s| serde_json::from_str(s).expect("json"))
            .collect();
        if subjects.len() != 1 || subjects[0]["name"] != username {
            return Err(format!(
                "{binding} should bind {username:?} alone: {subjects:?}"
            ));
        }
        let role_ref: Value = b["roleRef"]
            .first()
            .map(|r| serde_json::from_str(r).expect("json"))
            .unwrap_or_default();
        let role = entitlement.rsplit('/').next().unwrap_or_default();
        if role_ref["name"] != role {
            return Err(format!("{binding} should bind {role:?}: {role_ref}"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn hostile_names_change_only_their_own_objects_in_kubernetes() {
    let cp = control_plane();
    let client = cp.client().await;
    let namespace = cp.namespace(&client, "hostile").await;
    let cluster_role = format!("{namespace}-view");
    make_cluster_role(&client, &cluster_role).await;
    let viewer = Role {
        metadata: ObjectMeta {
            name: Some("viewer".into()),
            ..ObjectMeta::default()
        },
        rules: Some(pod_reader()),
    };
    Api::<Role>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &viewer)
        .await
        .expect("create the Role");
    let d = Kube {
        c: KubernetesConnector::new(client.clone(), namespace.clone(), (&namespace, "hostile")),
        client,
        namespace,
        cluster_role,
    };
    let Tally { made, granted } = super::run(&d, 32).await;
    assert!(
        made >= 14 && granted >= 10,
        "too few hostile names went through to test anything: {made} made, {granted} granted of 32"
    );
}
