//! Logging set-up and the Prometheus metrics the operator serves on `/metrics`.

use std::{io::IsTerminal, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

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

type HistogramFamily = Family<KindLabels, Histogram, fn() -> Histogram>;

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_seconds: HistogramFamily,
    status_writes: Family<KindLabels, Counter>,
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
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            status_writes,
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

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
