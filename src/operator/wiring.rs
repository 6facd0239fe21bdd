//! One watch per kind, shared by every controller.
//!
//! Each kind's watch feeds a cache (`reflector`), and only then its events fan out: to
//! the kind's own controller, and — mapped to the objects they affect — to the other
//! controllers. A controller triggered by a change therefore always reads a cache that
//! already holds that change, deletions included. (Separate watches per controller would
//! race: a reconcile could read a cache that has not seen the change yet, and a joiner
//! would wait for its next change.) The mapping — CEL expressions evaluated for every
//! identity — runs in [`FanOut`], so a watch task only ever reads its watch.

use std::{
    collections::HashMap,
    fmt::Debug,
    sync::{Arc, Mutex},
};

use futures::{Stream, StreamExt};
use kube::{
    Api, Client, Resource,
    runtime::{
        Controller, Predicate, WatchStreamExt, controller, predicates,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    fan_out::FanOut,
    relay::{Relay, Step},
    significance::Filters,
};
use crate::{
    api::{Connector, Identity, IdentitySource, Role, RoleBinding, ScimUser},
    controller::{Stores, identity, lanes::Wakers, role, role_binding},
};

type Triggers<K> = mpsc::UnboundedSender<ObjectRef<K>>;

/// The last version of each binding the cache took.
type Versions = HashMap<ObjectRef<RoleBinding>, RoleBinding>;

fn lock(versions: &Mutex<Versions>) -> std::sync::MutexGuard<'_, Versions> {
    // Each use is one insert or removal: a panic elsewhere cannot tear the map.
    versions.lock().unwrap_or_else(|p| p.into_inner())
}

/// kube's own bound on Identity reconciles at once: none. The bound lives in
/// `controller::lanes`, which is fair where kube's is not; kube still never runs one
/// object twice at once.
const IDENTITY_CONCURRENCY: u16 = 0;
/// Connectors checked or scanned at once; a scan lists a whole app.
const CONNECTOR_CONCURRENCY: u16 = 4;

/// One controller per kind.
pub struct Controllers {
    /// The Identity controller.
    pub identities: Controller<Identity>,
    /// The Role controller.
    pub roles: Controller<Role>,
    /// The RoleBinding controller.
    pub bindings: Controller<RoleBinding>,
    /// The Connector controller.
    pub connectors: Controller<Connector>,
    /// The IdentitySource controller.
    pub sources: Controller<IdentitySource>,
}

/// The controllers, built on the shared watches, and the tasks driving those watches.
pub struct Wiring {
    /// Every kind's cache.
    pub stores: Stores,
    /// The controllers.
    pub controllers: Controllers,
    /// The watch tasks; abort them on shutdown.
    pub tasks: Vec<JoinHandle<()>>,
    /// Sends identities to the Identity controller.
    pub identity_triggers: Triggers<Identity>,
    /// Sends Connectors to the Connector controller.
    pub connector_triggers: Triggers<Connector>,
}

/// A stream over a channel's items.
fn stream_of<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Sends refs, ignoring a closed channel (the controller has stopped: shutdown).
fn send_all<K: Resource>(tx: &Triggers<K>, refs: impl IntoIterator<Item = ObjectRef<K>>) {
    for r in refs {
        let _ = tx.send(r);
    }
}

/// What `kubectl apply` keeps on an object: a copy of the whole object as last applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a watched object what no controller reads and what costs the cache most:
/// the managed fields (one entry per field manager, each listing every field it set) and
/// `kubectl apply`'s copy of the object. At 30,000 identities they were most of what the
/// cache held. Writes are server-side applies of our own fields, which never send them.
fn slim<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(annotations) = obj.meta_mut().annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Drives the watch of `K` into its cache; forwards objects to `own` once the cache holds
/// them and calls `on_change` for every change after the first listing (that listing
/// reconciles everything anyway), including what a re-list finds changed or gone. Writes
/// to status alone go to neither: a status is the record of the pass that wrote it, and
/// nothing needs reconciling because one changed. `remember` sees every version the
/// cache takes, the first listing's included, after `on_change` saw it.
fn watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    reader: reflector::Store<K>,
    own: mpsc::UnboundedSender<Result<K, watcher::Error>>,
    on_change: impl Fn(&K) + Send + 'static,
    remember: impl Fn(&K) + Send + 'static,
) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let events = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(slim),
    );
    tokio::spawn(async move {
        futures::pin_mut!(events);
        let mut relay = Relay::default();
        let mut filters = Filters::default();
        while let Some(event) = events.next().await {
            let steps = match event {
                Ok(event) => relay.on_event(event, || reader.state()),
                Err(err) => {
                    if own.send(Err(err)).is_err() {
                        return;
                    }
                    continue;
                }
            };
            for step in steps {
                match step {
                    Step::Changed(obj) => {
                        let present = reader.get(&ObjectRef::from_obj(&obj)).is_some();
                        if filters.changed(&obj, present) {
                            on_change(&obj);
                        }
                    }
                    Step::Reconcile(obj) => {
                        remember(&obj);
                        if filters.reconcile(&obj) && own.send(Ok(obj)).is_err() {
                            return; // the controller is gone: shutting down
                        }
                    }
                }
            }
        }
    })
}

/// The IdentitySource controller, on a watch of its own (no other kind reads sources),
/// and the task driving that watch. Only a new generation or an annotation (an
/// approval) triggers a read; status writes do not, and the read repeats every
/// `pollSeconds` by requeue. The watch runs in its own task, as the shared ones do: a
/// controller waits for its cache's first list, and a cache filled only when the
/// controller polls its stream would never finish one once a shutdown stops the polling.
///
/// With the SCIM endpoint on, the users pushed to a source (`ScimUser`s) are watched too:
/// a push, on whichever replica took it, triggers its source's read at once.
fn sources(client: &Client, scim: bool) -> (Controller<IdentitySource>, JoinHandle<()>) {
    let (reader, writer) = reflector::store::<IdentitySource>();
    let changes = reflector::reflector(
        writer,
        watcher(Api::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(slim),
    )
    .applied_objects()
    .predicate_filter(
        predicates::generation.combine(predicates::annotations),
        Default::default(),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        futures::pin_mut!(changes);
        while let Some(change) = changes.next().await {
            if tx.send(change).is_err() {
                return; // the controller is gone: shutting down
            }
        }
    });
    let controller = Controller::for_stream(stream_of(rx), reader);
    if !scim {
        return (controller, task);
    }
    let pushed = watcher(
        Api::<ScimUser>::all(client.clone()),
        watcher::Config::default().labels(crate::lifecycle::source::SOURCE_LABEL),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(|user| async move {
        let user = user
            .inspect_err(|e| tracing::warn!(error = %e, "cannot watch pushed SCIM users; retrying"))
            .ok()?;
        let ns = kube::ResourceExt::namespace(&user)?;
        Some(ObjectRef::<IdentitySource>::new(&user.spec.source).within(&ns))
    });
    (controller.reconcile_on(pushed), task)
}

/// Builds the four controllers on four shared watches, and the IdentitySource one (which
/// watches pushed SCIM users too when `scim`). `wakers` learn of every Identity's change.
pub fn wire(client: &Client, scim: bool, wakers: Wakers) -> Wiring {
    let (identity_reader, identity_writer) = reflector::store::<Identity>();
    let (role_reader, role_writer) = reflector::store::<Role>();
    let (binding_reader, binding_writer) = reflector::store::<RoleBinding>();
    let (connector_reader, connector_writer) = reflector::store::<Connector>();
    let stores = Stores {
        identities: identity_reader,
        roles: role_reader,
        bindings: binding_reader,
        connectors: connector_reader,
        catalog: Default::default(),
    };

    let (identity_own, identity_own_rx) = mpsc::unbounded_channel();
    let (role_own, role_own_rx) = mpsc::unbounded_channel();
    let (binding_own, binding_own_rx) = mpsc::unbounded_channel();
    let (connector_own, connector_own_rx) = mpsc::unbounded_channel();
    let (to_identities, identity_triggers) = mpsc::unbounded_channel::<ObjectRef<Identity>>();
    let (to_roles, role_triggers) = mpsc::unbounded_channel::<ObjectRef<Role>>();
    let (to_bindings, binding_triggers) = mpsc::unbounded_channel::<ObjectRef<RoleBinding>>();
    let (to_connectors, connector_triggers) = mpsc::unbounded_channel::<ObjectRef<Connector>>();

    let (fan, fan_task) = FanOut::start();
    let (sources, sources_task) = sources(client, scim);
    let mut tasks = vec![fan_task, sources_task];
    // An owner's change re-checks the Service identities it owns; any change wakes the
    // Identity's own request if one waits for a turn.
    tasks.push(watch(
        Api::all(client.clone()),
        identity_writer,
        stores.identities.clone(),
        identity_own,
        {
            let (fan, all, tx) = (
                fan.clone(),
                stores.identities.clone(),
                to_identities.clone(),
            );
            move |owner: &Identity| {
                // A request of it waiting for a turn looks whether it now leaves.
                wakers.wake(&kube::ResourceExt::name_any(owner));
                let (owner, all, tx) = (owner.clone(), all.clone(), tx.clone());
                fan.run(move || send_all(&tx, identity::owned_services(&owner, &all.state())));
            }
        },
        |_| {},
    ));
    // A Role's change re-checks its bindings and their subjects.
    tasks.push(watch(
        Api::all(client.clone()),
        role_writer,
        stores.roles.clone(),
        role_own,
        {
            let (fan, s) = (fan.clone(), stores.clone());
            let (to_b, to_i) = (to_bindings.clone(), to_identities.clone());
            move |r: &Role| {
                let (r, s, to_b, to_i) = (r.clone(), s.clone(), to_b.clone(), to_i.clone());
                fan.run(move || {
                    let bindings = s.bindings.state();
                    send_all(&to_b, role_binding::bindings_of(&r, &bindings));
                    let refs = identity::affected::of_role(&r, &bindings, &s.identities.state());
                    send_all(&to_i, refs);
                });
            }
        },
        |_| {},
    ));
    // A binding's change re-checks the identities it matched or matches: every version
    // the cache takes is kept to know whom it matched before a change, from the first
    // listing on (without it, a binding's first change after a start could only re-check
    // everyone).
    let before: Arc<Mutex<Versions>> = Arc::default();
    tasks.push(watch(
        Api::all(client.clone()),
        binding_writer,
        stores.bindings.clone(),
        binding_own,
        {
            let (fan, s, to_i) = (fan.clone(), stores.clone(), to_identities.clone());
            let before = before.clone();
            move |b: &RoleBinding| {
                let key = ObjectRef::from_obj(b);
                let old = if s.bindings.get(&key).is_some() {
                    lock(&before).insert(key, b.clone())
                } else {
                    lock(&before).remove(&key)
                };
                let (b, s, to_i) = (b.clone(), s.clone(), to_i.clone());
                fan.run(move || {
                    let refs =
                        identity::affected::of_binding(old.as_ref(), &b, &s.identities.state());
                    send_all(&to_i, refs);
                });
            }
        },
        move |b: &RoleBinding| {
            lock(&before).insert(ObjectRef::from_obj(b), b.clone());
        },
    ));
    // A Connector's change re-checks the Roles naming it, the subjects of their bindings and
    // its account holders.
    tasks.push(watch(
        Api::all(client.clone()),
        connector_writer,
        stores.connectors.clone(),
        connector_own,
        {
            let (fan, s) = (fan.clone(), stores.clone());
            let (to_r, to_i) = (to_roles, to_identities.clone());
            move |c: &Connector| {
                let (c, s, to_r, to_i) = (c.clone(), s.clone(), to_r.clone(), to_i.clone());
                fan.run(move || {
                    let roles = s.roles.state();
                    send_all(&to_r, role::roles_naming(&c, &roles));
                    let refs = identity::affected::of_connector(
                        &c,
                        &roles,
                        &s.bindings.state(),
                        &s.identities.state(),
                    );
                    send_all(&to_i, refs);
                });
            }
        },
        |_| {},
    ));

    let controllers = Controllers {
        identities: Controller::for_stream(stream_of(identity_own_rx), stores.identities.clone())
            .with_config(controller::Config::default().concurrency(IDENTITY_CONCURRENCY))
            .reconcile_on(stream_of(identity_triggers)),
        roles: Controller::for_stream(stream_of(role_own_rx), stores.roles.clone())
            .reconcile_on(stream_of(role_triggers)),
        bindings: Controller::for_stream(stream_of(binding_own_rx), stores.bindings.clone())
            .reconcile_on(stream_of(binding_triggers)),
        connectors: Controller::for_stream(stream_of(connector_own_rx), stores.connectors.clone())
            .with_config(controller::Config::default().concurrency(CONNECTOR_CONCURRENCY))
            .reconcile_on(stream_of(connector_triggers)),
        sources,
    };
    Wiring {
        controllers,
        stores,
        tasks,
        identity_triggers: to_identities,
        connector_triggers: to_connectors,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use kube::ResourceExt;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_cache_keeps_no_managed_fields_nor_last_applied_copy() {
        let mut i = Identity::new(
            "ada",
            serde_json::from_value(json!({"username": "ada"})).unwrap(),
        );
        i.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        i.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_string(), "{}".to_string()),
                ("roster.dev/approve".to_string(), "yes".to_string()),
            ]
            .into(),
        );
        slim(&mut i);
        assert_eq!(i.metadata.managed_fields, None);
        assert_eq!(
            i.annotations().keys().collect::<Vec<_>>(),
            ["roster.dev/approve"],
            "annotations the controllers read stay"
        );
    }
}
