//! The probe and metrics endpoint: `/healthz`, `/readyz`, `/metrics`.

use std::{
    future::Future,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use tokio::net::TcpListener;

use crate::{controller::Stores, governance, telemetry::Metrics};

/// What the endpoint reads.
#[derive(Clone)]
pub struct Probes {
    /// Set once every cache has finished its first list.
    pub ready: Arc<AtomicBool>,
    /// Set while this process waits to lead: a healthy standby is ready too, or a
    /// rollout of two replicas would never finish.
    pub standby: Arc<AtomicBool>,
    /// The metrics served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The caches the governance figures are measured from at each scrape; set once
    /// this process leads.
    pub stores: Arc<OnceLock<Stores>>,
}

/// Serves the probes on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    probes: Probes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probes);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(p): State<Probes>) -> impl IntoResponse {
    if p.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok")
    } else if p.standby.load(Ordering::Acquire) {
        (StatusCode::OK, "standby: waiting to lead")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "caches have not finished their first list",
        )
    }
}

async fn metrics(State(p): State<Probes>) -> impl IntoResponse {
    // Measured at scrape time, so the figures are never staler than the caches; and only
    // once the caches are complete, so a half-listed cluster never shows as figures.
    if p.ready.load(Ordering::Acquire)
        && let Some(stores) = p.stores.get()
    {
        let identities = stores.identities.state();
        let connectors = stores.connectors.state();
        p.metrics.set_governance(&governance::measure(
            identities.iter().map(AsRef::as_ref),
            connectors.iter().map(AsRef::as_ref),
            crate::time::now().0,
        ));
    }
    match p.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}
