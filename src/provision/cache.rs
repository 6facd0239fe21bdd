//! Live backends, kept between reconciles: one per Connector, so that its rate limit is
//! shared by every identity and its HTTP connections are reused. An entry is rebuilt when
//! the Connector changes, and at least every [`REFRESH`] so that a rotated Secret is
//! picked up; its rate limit's [`Gate`] is kept across rebuilds while `rateLimit` is
//! unchanged, so that calls still in flight on the old backend count against the new.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::{Client, ResourceExt};

use super::{ProvisionError, build, metered::Metered};
use crate::{
    api::{Connector, RateLimit},
    connector::{
        self,
        limit::{Gate, RateLimited},
        target::TargetPolicy,
    },
    telemetry::Metrics,
};

/// How long a built backend is used before its Secrets are read again.
pub const REFRESH: Duration = Duration::from_secs(60);

struct Entry {
    resource_version: Option<String>,
    built: Instant,
    backend: Arc<dyn connector::Connector>,
}

/// The cache.
#[derive(Default)]
pub struct Backends {
    entries: Mutex<HashMap<String, Entry>>,
    /// Each Connector's rate limit, kept apart from its entry so that two reconciles
    /// building the first backend at once still share one.
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    policy: TargetPolicy,
    metrics: Arc<Metrics>,
}

impl Backends {
    /// An empty cache whose backends reach only what `policy` allows and count their
    /// requests on `metrics`.
    pub fn new(policy: TargetPolicy, metrics: Arc<Metrics>) -> Self {
        Self {
            entries: Mutex::default(),
            gates: Mutex::default(),
            policy,
            metrics,
        }
    }

    /// What the backends may connect to; IdentitySources reach their directories under
    /// the same policy.
    pub fn policy(&self) -> &TargetPolicy {
        &self.policy
    }

    /// The backend for `connector`, built (metered, under its rate limit) if there is no
    /// fresh one.
    pub async fn get(
        &self,
        client: &Client,
        connector: &Connector,
    ) -> Result<Arc<dyn connector::Connector>, ProvisionError> {
        let key = format!(
            "{}/{}",
            connector.namespace().unwrap_or_default(),
            connector.name_any()
        );
        let version = connector.resource_version();
        if let Ok(entries) = self.entries.lock()
            && let Some(e) = entries.get(&key)
            && e.resource_version == version
            && e.built.elapsed() < REFRESH
        {
            return Ok(e.backend.clone());
        }
        let gate = self.gate(&key, &connector.spec.rate_limit);
        let metered = Metered::new(
            build(client, connector, &self.policy).await?,
            key.clone(),
            self.metrics.clone(),
        );
        let backend: Arc<dyn connector::Connector> =
            Arc::new(RateLimited::through(Arc::new(metered), gate.clone()));
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                key,
                Entry {
                    resource_version: version,
                    built: Instant::now(),
                    backend: backend.clone(),
                },
            );
        }
        Ok(backend)
    }

    /// The Connector `key`'s gate: the one it has while `limit` is unchanged, else a
    /// new one.
    fn gate(&self, key: &str, limit: &RateLimit) -> Arc<Gate> {
        // Each update is one insert: a panic elsewhere cannot tear the map.
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        match gates.get(key) {
            Some(gate) if gate.is_for(limit) => gate.clone(),
            _ => {
                let gate = Arc::new(Gate::new(limit));
                gates.insert(key.to_owned(), gate.clone());
                gate
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(resource_version: &str, max_in_flight: i32) -> Connector {
        let mut c = Connector::new(
            "k8s",
            serde_json::from_value(serde_json::json!({"kubernetes": {},
                "rateLimit": {"requestsPerSecond": 20, "burst": 20, "maxInFlight": max_in_flight}}))
            .expect("spec"),
        );
        c.metadata.namespace = Some("ns".into());
        c.metadata.resource_version = Some(resource_version.into());
        c
    }

    fn gate(backends: &Backends) -> Arc<Gate> {
        backends.gates.lock().expect("lock")["ns/k8s"].clone()
    }

    /// Seen failing before the gate was kept: each status write rebuilt the backend, and
    /// with it a fresh set of slots and a refilled burst.
    #[tokio::test]
    async fn a_rebuilt_backend_keeps_its_rate_limit_until_the_limit_changes() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let backends = Backends::default();
        let first = backends
            .get(&client, &connector("1", 8))
            .await
            .expect("built");
        let before = gate(&backends);
        let again = backends
            .get(&client, &connector("1", 8))
            .await
            .expect("kept");
        assert!(Arc::ptr_eq(&first, &again), "unchanged: the same backend");

        let rebuilt = backends
            .get(&client, &connector("2", 8))
            .await
            .expect("built");
        assert!(
            !Arc::ptr_eq(&first, &rebuilt),
            "a changed Connector is built again"
        );
        assert!(
            Arc::ptr_eq(&before, &gate(&backends)),
            "behind the same gate"
        );

        backends
            .get(&client, &connector("3", 4))
            .await
            .expect("built");
        assert!(
            !Arc::ptr_eq(&before, &gate(&backends)),
            "a new limit, a new gate"
        );
    }
}
