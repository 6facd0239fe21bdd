//! The Prometheus metrics the operator serves on `/metrics`.

use std::{
    sync::atomic::{AtomicI64, AtomicU64},
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::governance::Figures;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabels {
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StandingLabels {
    connector: String,
    standing: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExceptionLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    connector: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    connector: String,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabels {
    lane: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    connector: String,
    operation: &'static str,
    outcome: &'static str,
}

type HistogramFamily = Family<KindLabels, Histogram, fn() -> Histogram>;
type ConnectorHistograms = Family<ConnectorLabels, Histogram, fn() -> Histogram>;
type OperationHistograms = Family<OperationLabels, Histogram, fn() -> Histogram>;
type Ratio = Gauge<f64, AtomicU64>;

/// The governance numbers as gauges, set from a [`Figures`] at each scrape.
struct GovernanceGauges {
    accuracy: Family<ConnectorLabels, Ratio>,
    accounts: Family<StandingLabels, Gauge<i64, AtomicI64>>,
    leavers: Family<StateLabels, Gauge<i64, AtomicI64>>,
    completion: Ratio,
    oldest_pending: Gauge<i64, AtomicI64>,
    exceptions: Family<ExceptionLabels, Gauge<i64, AtomicI64>>,
    connector_ready: Family<ConnectorLabels, Gauge<i64, AtomicI64>>,
    connector_quarantined: Family<ConnectorLabels, Gauge<i64, AtomicI64>>,
}

/// One lane's occupancy ([`crate::controller::lanes`]): reconciles waiting for a turn and
/// reconciles holding one. Clones share the same gauges.
#[derive(Clone, Debug, Default)]
pub struct LaneGauges {
    /// Reconciles waiting for a turn: the queue depth.
    pub waiting: Gauge,
    /// Reconciles holding a turn.
    pub running: Gauge,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_seconds: HistogramFamily,
    status_writes: Family<KindLabels, Counter>,
    leaver_waves: Family<ConnectorLabels, Counter>,
    breaker_trips: Family<BreakerLabels, Counter>,
    downstream_changes: Family<ChangeLabels, Counter>,
    downstream_requests: Family<RequestLabels, Counter>,
    downstream_seconds: OperationHistograms,
    lane_waiting: Family<LaneLabels, Gauge>,
    lane_running: Family<LaneLabels, Gauge>,
    leaver_verified_seconds: ConnectorHistograms,
    scan_seconds: ConnectorHistograms,
    scan_requeues: Family<ConnectorLabels, Counter>,
    governance: GovernanceGauges,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    connector: String,
    budget: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `roster` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("roster");
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciles by kind and outcome",
            reconciles.clone(),
        );
        let reconcile_seconds: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_seconds.clone(),
        );
        let status_writes = Family::<KindLabels, Counter>::default();
        registry.register(
            "status_writes",
            "Status writes sent to the API server; zero while nothing changes",
            status_writes.clone(),
        );
        let leaver_waves = Family::<ConnectorLabels, Counter>::default();
        registry.register(
            "leaver_waves",
            "Waves of explicit leavers flagged per connector (more than spec.leaverWave allows in its window)",
            leaver_waves.clone(),
        );
        let breaker_trips = Family::<BreakerLabels, Counter>::default();
        registry.register(
            "breaker_trips",
            "Times a connector's budget tripped and started holding removals, by budget",
            breaker_trips.clone(),
        );
        let downstream_changes = Family::<ChangeLabels, Counter>::default();
        registry.register(
            "downstream_changes",
            "Changes written to downstream apps, by connector, operation and outcome",
            downstream_changes.clone(),
        );
        // From half a second to about a day: a leaver's access on one app, from Roster's
        // first sight of the leaver to reading it back gone.
        let downstream_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "downstream_requests",
            "Requests to downstream apps, reads included, by connector, operation and outcome (ok, or the error's reason)",
            downstream_requests.clone(),
        );
        let downstream_seconds: OperationHistograms =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        registry.register(
            "downstream_request_duration_seconds",
            "How long a downstream app took to answer, by connector and operation",
            downstream_seconds.clone(),
        );
        let lane_waiting = Family::<LaneLabels, Gauge>::default();
        registry.register(
            "identity_queue_depth",
            "Identity reconciles waiting for a turn, by lane (general, leavers)",
            lane_waiting.clone(),
        );
        let lane_running = Family::<LaneLabels, Gauge>::default();
        registry.register(
            "identity_reconciles_running",
            "Identity reconciles holding a turn, by lane (general, leavers)",
            lane_running.clone(),
        );
        let leaver_verified_seconds: ConnectorHistograms =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.5, 2.0, 18)));
        registry.register(
            "leaver_verified_seconds",
            "From a leaver first seen to its access on a connector read back gone",
            leaver_verified_seconds.clone(),
        );
        let scan_seconds: ConnectorHistograms =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.05, 2.0, 16)));
        registry.register(
            "inventory_scan_seconds",
            "How long a Connector's inventory scan took, every page listed and assessed",
            scan_seconds.clone(),
        );
        let scan_requeues = Family::<ConnectorLabels, Counter>::default();
        registry.register(
            "inventory_requeues",
            "Identities a Connector's inventory scan found drifted and sent to their fast path",
            scan_requeues.clone(),
        );
        let governance = GovernanceGauges {
            accuracy: Family::default(),
            accounts: Family::default(),
            leavers: Family::default(),
            completion: Ratio::default(),
            oldest_pending: Gauge::default(),
            exceptions: Family::default(),
            connector_ready: Family::default(),
            connector_quarantined: Family::default(),
        };
        registry.register(
            "entitlement_accuracy_ratio",
            "Share of a connector's managed accounts read back as declared",
            governance.accuracy.clone(),
        );
        registry.register(
            "managed_accounts",
            "Managed accounts by connector and standing (in_sync, drifted, failing)",
            governance.accounts.clone(),
        );
        registry.register(
            "leavers",
            "Leaving identities by deprovisioning state (verified, pending)",
            governance.leavers.clone(),
        );
        registry.register(
            "deprovisioning_completion_ratio",
            "Share of leavers whose access was read back gone everywhere (1 with no leavers)",
            governance.completion.clone(),
        );
        registry.register(
            "leaver_oldest_pending_seconds",
            "How long the longest-waiting leaver has waited for verified deprovisioning (0 with none)",
            governance.oldest_pending.clone(),
        );
        registry.register(
            "exceptions",
            "Situations Roster cannot resolve by itself and a person must, by kind",
            governance.exceptions.clone(),
        );
        registry.register(
            "connector_ready",
            "1 while a Connector's Ready condition is True, else 0 (not checked yet, unreachable, misconfigured)",
            governance.connector_ready.clone(),
        );
        registry.register(
            "connector_quarantined",
            "1 while a Connector's removals are stopped at its deletion budget, else 0",
            governance.connector_quarantined.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            status_writes,
            leaver_waves,
            breaker_trips,
            downstream_changes,
            downstream_requests,
            downstream_seconds,
            lane_waiting,
            lane_running,
            leaver_verified_seconds,
            scan_seconds,
            scan_requeues,
            governance,
        }
    }

    /// Replaces the governance gauges with `f`: label sets that are gone (a deleted
    /// Connector) disappear rather than report their last value forever.
    pub fn set_governance(&self, f: &Figures) {
        let g = &self.governance;
        g.accuracy.clear();
        g.accounts.clear();
        for (connector, a) in &f.accuracy {
            if let Some(r) = a.ratio() {
                g.accuracy
                    .get_or_create(&ConnectorLabels {
                        connector: connector.clone(),
                    })
                    .set(r);
            }
            for (standing, n) in [
                ("in_sync", a.in_sync),
                ("drifted", a.drifted),
                ("failing", a.failing),
            ] {
                g.accounts
                    .get_or_create(&StandingLabels {
                        connector: connector.clone(),
                        standing,
                    })
                    .set(saturating(n));
            }
        }
        let d = &f.deprovisioning;
        for (state, n) in [("verified", d.verified), ("pending", d.pending)] {
            g.leavers
                .get_or_create(&StateLabels { state })
                .set(saturating(n));
        }
        g.completion.set(d.ratio().unwrap_or(1.0));
        g.oldest_pending.set(d.oldest_pending_seconds.unwrap_or(0));
        g.exceptions.clear();
        for (kind, n) in &f.exceptions {
            g.exceptions
                .get_or_create(&ExceptionLabels { kind: kind.clone() })
                .set(saturating(n.to_owned()));
        }
        g.connector_ready.clear();
        g.connector_quarantined.clear();
        for (connector, h) in &f.connectors {
            let labels = ConnectorLabels {
                connector: connector.clone(),
            };
            g.connector_ready
                .get_or_create(&labels)
                .set(i64::from(h.ready));
            g.connector_quarantined
                .get_or_create(&labels)
                .set(i64::from(h.quarantined));
        }
    }

    /// The gauges of the Identity lane `lane` (`general` or `leavers`).
    pub fn lane(&self, lane: &'static str) -> LaneGauges {
        let labels = LaneLabels { lane };
        LaneGauges {
            waiting: self.lane_waiting.get_or_create(&labels).clone(),
            running: self.lane_running.get_or_create(&labels).clone(),
        }
    }

    /// Counts one request to `connector`'s app and records how long it took. `outcome`
    /// is `ok`, or the reason of the error it ended in.
    pub fn observe_downstream_request(
        &self,
        connector: &str,
        operation: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        self.downstream_requests
            .get_or_create(&RequestLabels {
                connector: connector.to_owned(),
                operation,
                outcome,
            })
            .inc();
        self.downstream_seconds
            .get_or_create(&OperationLabels {
                connector: connector.to_owned(),
                operation,
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one reconcile of `kind` and records how long it took.
    pub fn observe_reconcile(&self, kind: &'static str, took: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&OutcomeLabels { kind, outcome })
            .inc();
        self.reconcile_seconds
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    /// Counts one status write for `kind`.
    pub fn observe_status_write(&self, kind: &'static str) {
        self.status_writes.get_or_create(&KindLabels { kind }).inc();
    }

    /// Counts a wave of explicit leavers flagged on `connector`.
    pub fn observe_leaver_wave(&self, connector: &str) {
        self.leaver_waves
            .get_or_create(&ConnectorLabels {
                connector: connector.to_owned(),
            })
            .inc();
    }

    /// Counts a breaker of `connector` tripping.
    pub fn observe_breaker_trip(&self, connector: &str, budget: &'static str) {
        self.breaker_trips
            .get_or_create(&BreakerLabels {
                connector: connector.to_owned(),
                budget,
            })
            .inc();
    }

    /// Counts one change written to `connector`'s app: its `operation` (the audit verb,
    /// e.g. `Revoked`) and whether it was applied.
    pub fn observe_downstream_change(&self, connector: &str, operation: &'static str, ok: bool) {
        self.downstream_changes
            .get_or_create(&ChangeLabels {
                connector: connector.to_owned(),
                operation,
                outcome: if ok { "applied" } else { "failed" },
            })
            .inc();
    }

    /// Records how long a leaver's access on `connector` took to be read back gone.
    pub fn observe_leaver_verified(&self, connector: &str, seconds: f64) {
        self.leaver_verified_seconds
            .get_or_create(&ConnectorLabels {
                connector: connector.to_owned(),
            })
            .observe(seconds);
    }

    /// Records how long a completed inventory scan of `connector` took, and how many
    /// identities it sent to their fast path.
    pub fn observe_scan(&self, connector: &str, seconds: f64, requeued: usize) {
        let labels = ConnectorLabels {
            connector: connector.to_owned(),
        };
        self.scan_seconds.get_or_create(&labels).observe(seconds);
        self.scan_requeues
            .get_or_create(&labels)
            .inc_by(u64::try_from(requeued).unwrap_or(u64::MAX));
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
