//! Safety invariant 3: no reconciler acts before every watch has finished its first list.
//! An Identity reconciled against an empty Role cache would be stripped of everything.
//!
//! The client points at a port where nothing listens: a reconciler that acted would
//! fail (or finish) at once. Each must still be waiting while one cache is unlisted, and
//! go on as soon as it is listed.

use std::{sync::Arc, time::Duration};

use kube::runtime::{
    reflector::{self, store::Writer},
    watcher,
};

use super::*;
use crate::api::{IdentitySpec, RoleBindingSpec, RoleSpec};

fn listed<K>(writer: &mut Writer<K>)
where
    K: kube::Resource + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitDone);
}

/// A context whose RoleBinding cache has not finished its first list, and the writer
/// that finishes it.
fn unsynced() -> (Arc<Context>, Writer<RoleBinding>) {
    let (identities, mut iw) = reflector::store::<Identity>();
    let (roles, mut rw) = reflector::store::<Role>();
    let (bindings, bw) = reflector::store::<RoleBinding>();
    let (connectors, mut cw) = reflector::store::<Connector>();
    listed(&mut iw);
    listed(&mut rw);
    listed(&mut cw);
    let ctx = test_context(Stores {
        identities,
        roles,
        bindings,
        connectors,
        catalog: Default::default(),
    });
    (Arc::new(ctx), bw)
}

#[tokio::test]
async fn no_reconciler_acts_before_every_cache_is_listed() {
    let (ctx, mut bindings) = unsynced();
    let identity = Arc::new(Identity::new(
        "ada",
        serde_json::from_value::<IdentitySpec>(serde_json::json!({"username": "ada"}))
            .expect("spec"),
    ));
    let mut role = Role::new(
        "staff",
        serde_json::from_value::<RoleSpec>(
            serde_json::json!({"entitlements": [{"connector": "scim", "name": "staff"}]}),
        )
        .expect("spec"),
    );
    role.metadata.namespace = Some("ns".into());
    let binding = serde_json::from_value::<RoleBindingSpec>(
        serde_json::json!({"role": "staff", "subjects": {"identities": ["ada"]}}),
    )
    .expect("spec");
    let mut binding = RoleBinding::new("staff", binding);
    binding.metadata.namespace = Some("ns".into());
    let mut connector = Connector::new(
        "scim",
        serde_json::from_value(serde_json::json!({"kubernetes": {}})).expect("spec"),
    );
    connector.metadata.namespace = Some("ns".into());

    let runs = vec![
        tokio::spawn(identity::reconcile(identity, ctx.clone())),
        tokio::spawn(role::reconcile(Arc::new(role), ctx.clone())),
        tokio::spawn(role_binding::reconcile(Arc::new(binding), ctx.clone())),
        tokio::spawn(connector::reconcile(Arc::new(connector), ctx.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (kind, run) in ["Identity", "Role", "RoleBinding", "Connector"]
        .iter()
        .zip(&runs)
    {
        assert!(
            !run.is_finished(),
            "the {kind} reconciler went ahead before the RoleBinding cache was listed"
        );
    }

    listed(&mut bindings);
    for run in runs {
        // Listed: each goes on, and meets the dead API server.
        let done = tokio::time::timeout(Duration::from_secs(30), run).await;
        assert!(
            done.is_ok(),
            "a reconciler still waits after every cache is listed"
        );
    }
}

/// A reconcile waiting for its turn holds only a little: its pass's state is made on
/// the heap once the turn comes. Inline, it was 21 KB for every waiting Identity — most
/// of the operator's memory under a backlog of thousands.
#[tokio::test]
async fn a_waiting_reconcile_is_small() {
    let (ctx, _w) = unsynced();
    let spec: IdentitySpec = serde_json::from_value(serde_json::json!({"username": "a"})).unwrap();
    let waiting = identity::reconcile(Arc::new(Identity::new("a", spec)), ctx);
    let bytes = std::mem::size_of_val(&waiting);
    assert!(bytes < 4096, "a waiting reconcile takes {bytes} bytes");
}
