//! Live backends, kept between reconciles: one per Connector, so that its rate limit is
//! shared by every identity and its HTTP connections are reused. An entry is rebuilt when
//! the Connector changes, and at least every [`REFRESH`] so that a rotated Secret is
//! picked up.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::{Client, ResourceExt};

use super::{ProvisionError, build, metered::Metered};
use crate::{
    api::Connector,
    connector::{self, limit::RateLimited, target::TargetPolicy},
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
    policy: TargetPolicy,
    metrics: Arc<Metrics>,
}

impl Backends {
    /// An empty cache whose backends reach only what `policy` allows and count their
    /// requests on `metrics`.
    pub fn new(policy: TargetPolicy, metrics: Arc<Metrics>) -> Self {
        Self {
            entries: Mutex::default(),
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
        let metered = Metered::new(
            build(client, connector, &self.policy).await?,
            key.clone(),
            self.metrics.clone(),
        );
        let backend: Arc<dyn connector::Connector> = Arc::new(RateLimited::new(
            Arc::new(metered),
            &connector.spec.rate_limit,
        ));
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
}
