//! `roster run`: the operator process. Connects, checks that the CRDs are installed,
//! starts one controller per kind and the probe endpoint, and stops cleanly on SIGTERM.

mod http;
mod relay;
pub mod report;
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

use crate::{
    api::{Connector, Identity, Role, RoleBinding},
    controller::{self, Context, connector, identity, role, role_binding},
    telemetry::Metrics,
};

/// Settings of `roster run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub probe_addr: SocketAddr,
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

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let wiring = wiring::wire(&client);
    let stores = wiring.stores.clone();
    let metrics = Arc::new(Metrics::new());
    let ctx = Arc::new(Context {
        identity_triggers: wiring.identity_triggers.clone(),
        connector_triggers: wiring.connector_triggers.clone(),
        budgets: Default::default(),
        lanes: Default::default(),
        last_scans: Default::default(),
        backends: Default::default(),
        client: client.clone(),
        recorder: Recorder::new(client.clone(), controller::MANAGER.into()),
        metrics: metrics.clone(),
        stores: stores.clone(),
    });

    let ready = Arc::new(AtomicBool::new(false));
    let http = tokio::spawn(http::serve(
        listener,
        http::Probes {
            ready: ready.clone(),
            metrics,
            stores: stores.clone(),
        },
        stopped(),
    ));
    tracing::info!(addr = %opts.probe_addr, "serving /healthz, /readyz and /metrics");

    let readiness = tokio::spawn({
        let stores = stores.clone();
        async move {
            match stores.wait_until_ready().await {
                Ok(()) => {
                    ready.store(true, Ordering::Release);
                    tracing::info!("every cache has finished its first list; ready");
                }
                Err(err) => tracing::error!(error = %err, "never became ready"),
            }
        }
    });

    let signals = tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    tokio::join!(
        controller::drive(
            "Identity",
            wiring.identities.graceful_shutdown_on(stopped()).run(
                identity::reconcile,
                controller::error_policy,
                ctx.clone()
            ),
        ),
        controller::drive(
            "Role",
            wiring.roles.graceful_shutdown_on(stopped()).run(
                role::reconcile,
                controller::error_policy,
                ctx.clone()
            ),
        ),
        controller::drive(
            "RoleBinding",
            wiring.bindings.graceful_shutdown_on(stopped()).run(
                role_binding::reconcile,
                controller::error_policy,
                ctx.clone()
            ),
        ),
        controller::drive(
            "Connector",
            wiring.connectors.graceful_shutdown_on(stopped()).run(
                connector::reconcile,
                controller::error_policy,
                ctx.clone()
            ),
        ),
    );
    readiness.abort();
    for task in &wiring.tasks {
        task.abort();
    }
    signals.abort();
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
