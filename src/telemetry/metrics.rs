//! Logging set-up and the Prometheus metrics the operator serves on `/metrics`.

use std::{
    io::IsTerminal,
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
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::governance::Figures;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Installs the global subscriber. The level comes from `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => {
            // Colour only for a person at a terminal, never in files or log pipelines.
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            registry
                .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
                .init()
        }
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

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
struct ChangeLabels {
    connector: String,
    operation: &'static str,
    outcome: &'static str,
}

type HistogramFamily = Family<KindLabels, Histogram, fn() -> Histogram>;
type ConnectorHistograms = Family<ConnectorLabels, Histogram, fn() -> Histogram>;
type Ratio = Gauge<f64, AtomicU64>;

/// The governance numbers as gauges, set from a [`Figures`] at each scrape.
struct GovernanceGauges {
    accuracy: Family<ConnectorLabels, Ratio>,
    accounts: Family<StandingLabels, Gauge<i64, AtomicI64>>,
    leavers: Family<StateLabels, Gauge<i64, AtomicI64>>,
    completion: Ratio,
    oldest_pending: Gauge<i64, AtomicI64>,
    exceptions: Family<ExceptionLabels, Gauge<i64, AtomicI64>>,
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
    leaver_verified_seconds: ConnectorHistograms,
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
        let leaver_verified_seconds: ConnectorHistograms =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.5, 2.0, 18)));
        registry.register(
            "leaver_verified_seconds",
            "From a leaver first seen to its access on a connector read back gone",
            leaver_verified_seconds.clone(),
        );
        let governance = GovernanceGauges {
            accuracy: Family::default(),
            accounts: Family::default(),
            leavers: Family::default(),
            completion: Ratio::default(),
            oldest_pending: Gauge::default(),
            exceptions: Family::default(),
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
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            status_writes,
            leaver_waves,
            breaker_trips,
            downstream_changes,
            leaver_verified_seconds,
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
mod tests {
    use super::*;

    #[test]
    fn governance_figures_become_gauges_and_stale_connectors_disappear() {
        let m = Metrics::new();
        let mut f = Figures::default();
        f.accuracy.insert(
            "ns/scim".into(),
            crate::governance::Accuracy {
                in_sync: 3,
                drifted: 1,
                failing: 0,
            },
        );
        f.exceptions.insert("conflict".into(), 2);
        f.deprovisioning.pending = 1;
        f.deprovisioning.oldest_pending_seconds = Some(42);
        m.set_governance(&f);
        let text = m.encode().unwrap();
        for line in [
            r#"roster_entitlement_accuracy_ratio{connector="ns/scim"} 0.75"#,
            r#"roster_managed_accounts{connector="ns/scim",standing="drifted"} 1"#,
            r#"roster_leavers{state="pending"} 1"#,
            "roster_deprovisioning_completion_ratio 0.0",
            "roster_leaver_oldest_pending_seconds 42",
            r#"roster_exceptions{kind="conflict"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        m.set_governance(&Figures::default());
        let text = m.encode().unwrap();
        assert!(!text.contains("ns/scim"), "{text}");
        assert!(
            text.contains("roster_deprovisioning_completion_ratio 1.0"),
            "{text}"
        );
    }

    #[test]
    fn downstream_changes_and_leaver_latency_are_exposed() {
        let m = Metrics::new();
        m.observe_downstream_change("ns/pg", "Revoked", true);
        m.observe_downstream_change("ns/pg", "Revoked", true);
        m.observe_downstream_change("ns/pg", "Disabled", false);
        m.observe_leaver_verified("ns/pg", 3.0);
        let text = m.encode().unwrap();
        for line in [
            r#"roster_downstream_changes_total{connector="ns/pg",operation="Revoked",outcome="applied"} 2"#,
            r#"roster_downstream_changes_total{connector="ns/pg",operation="Disabled",outcome="failed"} 1"#,
            r#"roster_leaver_verified_seconds_count{connector="ns/pg"} 1"#,
            r#"roster_leaver_verified_seconds_bucket{le="4.0",connector="ns/pg"} 1"#,
            r#"roster_leaver_verified_seconds_bucket{le="2.0",connector="ns/pg"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn reconciles_are_counted_by_kind_and_outcome() {
        let m = Metrics::new();
        m.observe_reconcile("Role", Duration::from_millis(3), true);
        m.observe_reconcile("Role", Duration::from_millis(3), false);
        m.observe_reconcile("Role", Duration::from_millis(3), true);
        let text = m.encode().unwrap();
        assert!(
            text.contains(r#"roster_reconciliations_total{kind="Role",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"roster_reconciliations_total{kind="Role",outcome="error"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("roster_reconcile_duration_seconds_count{kind=\"Role\"} 3"),
            "{text}"
        );
    }
}
