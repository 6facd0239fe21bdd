//! `roster run`: the operator process. Connects, checks that the CRDs are installed,
//! starts one controller per kind and the probe endpoint, and stops cleanly on SIGTERM.

mod fan_out;
mod http;
mod leader;
mod relay;
pub mod report;
pub mod scim;
mod significance;
mod wiring;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use kube::{Api, Client, CustomResourceExt, Resource, api::ListParams, runtime::events::Recorder};
use serde::de::DeserializeOwned;
use tokio::{net::TcpListener, sync::watch};

pub use self::leader::{LeaderOptions, Timing};
use crate::{
    api::{Connector, Identity, IdentitySource, Role, RoleBinding, ScimUser},
    controller::{self, Context, connector, identity, role, role_binding, source},
    telemetry::Metrics,
};

/// Settings of `roster run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub probe_addr: SocketAddr,
    /// The leader election to win before acting; `None`: act at once, alone.
    pub leader: Option<LeaderOptions>,
    /// What downstream addresses may be connected to.
    pub targets: crate::connector::target::TargetPolicy,
    /// How long a Service identity keeps its access after its owner left.
    pub owner_grace: k8s_openapi::jiff::SignedDuration,
    /// How the SCIM push endpoint is served; `None`: not at all.
    pub scim: Option<scim::Options>,
}

/// This process's identity in a leader election: the Pod's name in a cluster (a
/// restarted container is the same holder), else host name and process id.
pub fn process_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| "roster".into());
    format!("{host}-{}", std::process::id())
}

/// Why the operator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("cannot load a kubeconfig or in-cluster configuration: {0}")]
    Config(#[source] kube::Error),
    /// Roster's CRDs are not in the cluster.
    #[error(
        "Roster's CustomResourceDefinitions are not installed in this cluster (missing: {}).\n\
         Install them first, then start the operator again:\n  \
         roster crds | kubectl apply --server-side -f -\n\
         or from a checkout of Roster: kubectl apply --server-side -f crds/",
        .0.join(", ")
    )]
    CrdsMissing(Vec<String>),
    /// The API server could not be asked whether the CRDs are installed.
    #[error("cannot check whether {crd} is installed: {source}")]
    CrdCheck {
        /// The CRD asked about.
        crd: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// The probe address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The probe endpoint failed.
    #[error("probe endpoint failed: {0}")]
    Serve(#[source] std::io::Error),
    /// Roster's objects could not be listed.
    #[error("cannot list Roster's objects: {0}")]
    List(#[source] kube::Error),
    /// The SCIM endpoint's certificate or key cannot be used.
    #[error(transparent)]
    ScimTls(#[from] scim::tls::TlsError),
    /// Another replica leads now, or the Lease could not be renewed in time.
    #[error("leadership lost; stopping so that the new leader acts alone")]
    LeadershipLost,
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(opts: RunOptions) -> Result<(), Error> {
    let client = Client::try_default().await.map_err(Error::Config)?;
    ensure_crds(&client).await?;
    let listener = TcpListener::bind(opts.probe_addr)
        .await
        .map_err(|source| Error::Bind {
            addr: opts.probe_addr,
            source,
        })?;

    let stop = Stop::on_signals();
    let stopped = || stop.wait();

    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let standby = Arc::new(AtomicBool::new(opts.leader.is_some()));
    let served_stores = Arc::new(std::sync::OnceLock::new());
    let http = tokio::spawn(http::serve(
        listener,
        http::Probes {
            ready: ready.clone(),
            standby: standby.clone(),
            metrics: metrics.clone(),
            stores: served_stores.clone(),
        },
        stopped(),
    ));
    tracing::info!(addr = %opts.probe_addr, "serving /healthz, /readyz and /metrics");
    // Every replica takes pushes: they are kept in the apiserver, where the leader's
    // source loop sees them.
    let scim = match opts.scim {
        None => None,
        Some(scim) => Some(serve_scim(&client, scim, stopped()).await?),
    };

    // A standby watches nothing and writes nothing until it leads.
    let leadership = match opts.leader {
        None => None,
        Some(leader) => match leader::acquire(&client, leader, stopped()).await {
            Some(held) => Some(held),
            None => {
                stop.signals.abort();
                return finish(http).await;
            }
        },
    };
    standby.store(false, Ordering::Release);

    let lanes = controller::lanes::Lanes::metered(&metrics);
    let wiring = wiring::wire(&client, scim.is_some(), lanes.wakers());
    let stores = wiring.stores.clone();
    let _ = served_stores.set(stores.clone());
    let ctx = Arc::new(Context {
        identity_triggers: wiring.identity_triggers.clone(),
        connector_triggers: wiring.connector_triggers.clone(),
        budgets: Default::default(),
        lanes,
        last_scans: Default::default(),
        listed: Default::default(),
        backends: crate::provision::Backends::new(opts.targets.clone(), metrics.clone()),
        owner_grace: opts.owner_grace,
        source_removals: Default::default(),
        client: client.clone(),
        recorder: Recorder::new(client.clone(), controller::MANAGER.into()),
        metrics,
        stores: stores.clone(),
    });

    let readiness = tokio::spawn(mark_ready_when_listed(stores.clone(), ready));

    let controllers = run_controllers(wiring.controllers, ctx, &stop);
    let lost = async {
        match &leadership {
            Some(held) => held.lost().await,
            None => std::future::pending().await,
        }
    };
    // Lost leadership ends everything at once, mid-reconcile: the new leader must be the
    // only writer. A stop signal lets reconciles finish, then frees the Lease.
    tokio::select! {
        _ = controllers => {}
        () = lost => return Err(Error::LeadershipLost),
    }
    if let Some(held) = leadership {
        held.release().await;
    }
    readiness.abort();
    for task in &wiring.tasks {
        task.abort();
    }
    stop.signals.abort();
    finish(http).await
}

/// Starts the SCIM push endpoint: its store's CRD served, its TLS usable, its address
/// bound, or the operator does not start.
async fn serve_scim(
    client: &Client,
    scim: scim::Options,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>, Error> {
    let mut missing = Vec::new();
    check_served::<ScimUser>(client, &mut missing).await?;
    if !missing.is_empty() {
        return Err(Error::CrdsMissing(missing));
    }
    let tls = match &scim.tls {
        Some((cert, key)) => Some(scim::tls::acceptor(cert, key)?),
        None => None,
    };
    let addr = scim.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    tracing::info!(%addr, tls = tls.is_some(), "serving the SCIM push endpoint for IdentitySources");
    Ok(tokio::spawn(scim::serve(
        listener,
        client.clone(),
        tls,
        stop,
    )))
}

/// Sets `ready` once every cache has finished its first list.
async fn mark_ready_when_listed(stores: controller::Stores, ready: Arc<AtomicBool>) {
    match stores.wait_until_ready().await {
        Ok(()) => {
            ready.store(true, Ordering::Release);
            tracing::info!("every cache has finished its first list; ready");
        }
        Err(err) => tracing::error!(error = %err, "never became ready"),
    }
}

/// Stops the operator: set on SIGTERM or SIGINT.
struct Stop {
    rx: watch::Receiver<bool>,
    signals: tokio::task::JoinHandle<()>,
}

impl Stop {
    fn on_signals() -> Self {
        let (tx, rx) = watch::channel(false);
        let signals = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = tx.send(true);
        });
        Self { rx, signals }
    }

    /// Resolves once the operator is to stop.
    fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.rx.clone();
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// Runs every controller until `stop`, letting reconciles in flight finish.
async fn run_controllers(controllers: wiring::Controllers, ctx: Arc<Context>, stop: &Stop) {
    let wiring::Controllers {
        identities,
        roles,
        bindings,
        connectors,
        sources,
    } = controllers;
    tokio::join!(
        controller::drive(
            "Identity",
            identities.graceful_shutdown_on(stop.wait()).run(
                identity::reconcile,
                controller::error_policy,
                ctx.clone()
            ),
        ),
        controller::drive(
            "Role",
            roles.graceful_shutdown_on(stop.wait()).run(
                role::reconcile,
                controller::error_policy,
                ctx.clone()
            ),
        ),
        controller::drive(
            "RoleBinding",
            bindings.graceful_shutdown_on(stop.wait()).run(
                role_binding::reconcile,
                controller::error_policy,
                ctx.clone()
            ),
        ),
        controller::drive(
            "Connector",
            connectors.graceful_shutdown_on(stop.wait()).run(
                connector::reconcile,
                controller::error_policy,
                ctx.clone()
            ),
        ),
        controller::drive(
            "IdentitySource",
            sources.graceful_shutdown_on(stop.wait()).run(
                source::reconcile,
                controller::error_policy,
                ctx
            ),
        ),
    );
}

/// Waits for the probe endpoint to stop.
async fn finish(http: tokio::task::JoinHandle<std::io::Result<()>>) -> Result<(), Error> {
    let served = http.await;
    tracing::info!("stopped");
    match served {
        Ok(result) => result.map_err(Error::Serve),
        // The server task cannot panic short of a bug in axum; treat it as a clean stop.
        Err(_) => Ok(()),
    }
}

/// Fails with [`Error::CrdsMissing`] naming every Roster CRD the server does not serve.
async fn ensure_crds(client: &Client) -> Result<(), Error> {
    let mut missing = Vec::new();
    check_served::<Identity>(client, &mut missing).await?;
    check_served::<Role>(client, &mut missing).await?;
    check_served::<RoleBinding>(client, &mut missing).await?;
    check_served::<Connector>(client, &mut missing).await?;
    check_served::<IdentitySource>(client, &mut missing).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::CrdsMissing(missing))
    }
}

/// Lists one object of kind `K`: a 404 means its CRD is not installed. Asking this way
/// needs no permission beyond the list the operator does anyway.
async fn check_served<K>(client: &Client, missing: &mut Vec<String>) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + CustomResourceExt + Clone + DeserializeOwned + std::fmt::Debug,
{
    let crd = K::crd_name().to_owned();
    match Api::<K>::all(client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            missing.push(crd);
            Ok(())
        }
        Err(source) => Err(Error::CrdCheck { crd, source }),
    }
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
