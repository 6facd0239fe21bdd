//! Controllers: thin loops that load an object, validate it against the others, and write
//! its status. The checks themselves are pure functions in each kind's module; this
//! module holds what every loop shares — the context, the error type, the driver that
//! logs one line per reconcile outcome.

pub mod budget;
pub mod catalog;
pub mod connector;
pub mod hold;
pub mod identity;
pub mod lanes;
pub mod listed;
pub mod role;
pub mod role_binding;
pub mod source;
pub mod status;
pub mod write;

use std::{future::Future, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use kube::{
    Client, Resource,
    runtime::{
        controller::{self, Action},
        events::Recorder,
        reflector::{ObjectRef, Store},
        watcher,
    },
};

use crate::{
    api::{Connector, Identity, Role, RoleBinding},
    telemetry::Metrics,
};

/// The name Roster reports Events and field ownership under.
pub const MANAGER: &str = "roster";

/// How long to wait before retrying after a transient error.
const ERROR_REQUEUE: Duration = Duration::from_secs(15);

/// Errors of the controller layer. A spec problem is not an error here: it becomes a
/// condition and an Event. These are the failures worth a retry with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// A watch stopped before its first list completed; nothing may act on such a cache.
    #[error("the {0} cache stopped before its first list completed")]
    CacheNotReady(&'static str),
    /// A namespaced object arrived without a namespace.
    #[error("{0} has no namespace")]
    MissingNamespace(String),
    /// Adding or removing a finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A deleted Identity still has access somewhere; it is held until that is gone.
    #[error(
        "Identity {0:?} still has access downstream; deletion waits for deprovisioning (see its Ready condition)"
    )]
    Deprovisioning(String),
}

/// The caches of every Roster kind, read by the reconcilers of the others.
#[derive(Clone)]
pub struct Stores {
    /// All Identities.
    pub identities: Store<Identity>,
    /// All Roles.
    pub roles: Store<Role>,
    /// All RoleBindings.
    pub bindings: Store<RoleBinding>,
    /// All Connectors.
    pub connectors: Store<Connector>,
    /// The catalog built from the three policy caches, shared until their specs change.
    pub catalog: Arc<catalog::SharedCatalog>,
}

impl Stores {
    /// Resolves once every cache has completed its first list (safety invariant 3: no
    /// action on a cache that has not finished its initial list).
    pub async fn wait_until_ready(&self) -> Result<(), Error> {
        ready(&self.identities, "Identity").await?;
        ready(&self.roles, "Role").await?;
        ready(&self.bindings, "RoleBinding").await?;
        ready(&self.connectors, "Connector").await
    }

    /// What resolve reads besides the identity, for the caches as they are now.
    pub fn catalog(&self) -> Arc<crate::lifecycle::resolve::Catalog> {
        self.catalog.get(
            &self.roles.state(),
            &self.bindings.state(),
            &self.connectors.state(),
        )
    }
}

/// How often a wait for a cache re-polls it; see [`ready`].
const READY_POLL: Duration = Duration::from_millis(100);

/// Waits for one cache's first list. kube's store readiness sits behind a oneshot
/// channel that wakes only the most recent poller, so with several waiters (the
/// controller's own runner, the probe, reconciles) some are never woken. Re-polling on a
/// short timeout makes every waiter see it; once ready, each call returns at once.
async fn ready<K>(store: &Store<K>, kind: &'static str) -> Result<(), Error>
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    loop {
        match tokio::time::timeout(READY_POLL, store.wait_until_ready()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) => return Err(Error::CacheNotReady(kind)),
            Err(_elapsed) => continue,
        }
    }
}

/// What every reconciler gets.
pub struct Context {
    /// Asks the Identity controller to look at an identity again (the inventory scan uses
    /// it for the identities whose accounts drifted).
    pub identity_triggers: tokio::sync::mpsc::UnboundedSender<ObjectRef<Identity>>,
    /// Asks the Connector controller to look at a Connector again (a budget tripped).
    pub connector_triggers: tokio::sync::mpsc::UnboundedSender<ObjectRef<Connector>>,
    /// Deletion budgets, shared by every reconcile.
    pub budgets: budget::Budgets,
    /// Turns for Identity reconciles, first come first served, leavers in a lane of
    /// their own.
    pub lanes: lanes::Lanes,
    /// Live backends, one per Connector, shared by every reconcile.
    pub backends: crate::provision::Backends,
    /// When each Connector (`namespace/name`) was last scanned in this process, and how
    /// long that took (the next scan rests in proportion).
    pub last_scans: std::sync::Mutex<std::collections::HashMap<String, connector::pace::LastScan>>,
    /// The usernames each Connector's last scan listed.
    pub listed: listed::Listed,
    /// The Kubernetes client.
    pub client: Client,
    /// Publishes Events as [`MANAGER`].
    pub recorder: Recorder,
    /// Reconcile counters and timings.
    pub metrics: Arc<Metrics>,
    /// Every kind's cache.
    pub stores: Stores,
    /// How long a Service identity keeps its access after its owner left
    /// ([`crate::lifecycle::owner`]).
    pub owner_grace: k8s_openapi::jiff::SignedDuration,
    /// Leavers each IdentitySource applied in this process.
    pub source_removals: source::Recent,
}

/// The retry policy for a failed reconcile: a fixed, short delay. Spec errors never get
/// here (they end in a condition), so this only sees API hiccups.
pub fn error_policy<K>(_obj: Arc<K>, _err: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(ERROR_REQUEUE)
}

/// Times a reconcile and counts its outcome under `kind`.
pub async fn instrumented<F>(kind: &'static str, ctx: &Context, fut: F) -> Result<Action, Error>
where
    F: Future<Output = Result<Action, Error>>,
{
    let started = std::time::Instant::now();
    let result = fut.await;
    ctx.metrics
        .observe_reconcile(kind, started.elapsed(), result.is_ok());
    result
}

/// Drives a controller's stream to its end, logging one line per reconcile outcome.
pub async fn drive<K, S>(kind: &'static str, stream: S)
where
    K: Resource,
    S: Stream<Item = Result<(ObjectRef<K>, Action), controller::Error<Error, watcher::Error>>>,
{
    stream
        .for_each(|outcome| async move {
            match outcome {
                Ok((obj, action)) => tracing::info!(
                    kind,
                    name = %obj.name,
                    namespace = obj.namespace.as_deref().unwrap_or(""),
                    outcome = "ok",
                    ?action,
                    "reconciled"
                ),
                Err(controller::Error::ReconcilerFailed(err, obj)) => tracing::warn!(
                    kind,
                    name = %obj.name,
                    namespace = obj.namespace.as_deref().unwrap_or(""),
                    outcome = "error",
                    error = %err,
                    "reconcile failed"
                ),
                Err(err) => {
                    tracing::warn!(kind, outcome = "error", error = %err, "controller error")
                }
            }
        })
        .await;
}

/// A context for unit tests with empty caches, whose client reaches nothing.
#[cfg(test)]
fn empty_test_context() -> Context {
    use kube::runtime::reflector::store;
    test_context(Stores {
        identities: store::<Identity>().0,
        roles: store::<Role>().0,
        bindings: store::<RoleBinding>().0,
        connectors: store::<Connector>().0,
        catalog: Default::default(),
    })
}

/// A context over `stores` whose client points at an apiserver that is not there
/// (Events are dropped with a warning): for unit tests.
#[cfg(test)]
fn test_context(stores: Stores) -> Context {
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
    let client = Client::try_from(config).expect("client");
    let (identity_triggers, _) = tokio::sync::mpsc::unbounded_channel();
    let (connector_triggers, _) = tokio::sync::mpsc::unbounded_channel();
    Context {
        identity_triggers,
        connector_triggers,
        budgets: Default::default(),
        lanes: Default::default(),
        backends: Default::default(),
        last_scans: Default::default(),
        listed: Default::default(),
        recorder: kube::runtime::events::Recorder::new(client.clone(), MANAGER.into()),
        client,
        metrics: Arc::new(Metrics::new()),
        stores,
        owner_grace: k8s_openapi::jiff::SignedDuration::from_hours(24),
        source_removals: Default::default(),
    }
}

#[cfg(test)]
#[path = "sync_gate_tests.rs"]
mod sync_gate_tests;
#[cfg(test)]
#[path = "write_tests.rs"]
mod write_tests;
