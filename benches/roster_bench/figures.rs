//! The figures a run produces, their summary statistics and how they print. Pure.

use std::time::Duration;

use serde::Serialize;

/// A set of latency samples, summarised.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// How many samples.
    pub samples: usize,
    /// Percentiles and extremes, in seconds.
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// Summarises `samples` (nearest-rank percentiles); `None` without samples.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = (p / 100.0 * s.len() as f64).ceil() as usize;
            s[i.clamp(1, s.len()) - 1]
        };
        Some(Self {
            samples: s.len(),
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
        })
    }
}

/// What the operator process used.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Process {
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    pub cpu_seconds: f64,
}

/// One run's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub identities: usize,
    pub contractors: usize,
    pub apps: Vec<String>,
    /// Requests per second each Connector allows (its `rateLimit`).
    pub rate_limit: u32,
    /// Joiners: accounts created and granted on every app, and how long it took from the
    /// first Identity applied to the last account read back.
    pub joiner_accounts: usize,
    pub joiner_seconds: f64,
    /// Leaver latency from the Identity's change to the account read back disabled and
    /// stripped on every app, with nothing else going on.
    pub leaver_idle: Option<Latency>,
    /// The same while a bad policy commit is held in quarantine on every Connector.
    pub leaver_quarantined: Option<Latency>,
    /// Policy removals the breakers hold during the quarantined phase, summed over the
    /// Connectors, and the contractors still enabled on SCIM after it.
    pub held_policy_removals: usize,
    pub contractors_still_enabled: usize,
    pub operator: Process,
}

fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

fn latency_row(name: &str, l: Option<&Latency>) -> String {
    match l {
        Some(l) => format!(
            "  {name:34} {:>9} {:>9} {:>9} {:>9} {:>8}\n",
            seconds(l.p50),
            seconds(l.p95),
            seconds(l.p99),
            seconds(l.max),
            l.samples
        ),
        None => format!("  {name:34} (no samples)\n"),
    }
}

/// The table printed at the end of a run.
pub fn render(r: &Run) -> String {
    let mut out = format!(
        "roster-bench: {} identities ({} of them contractors) on {} ({} requests/s per Connector)\n\n",
        r.identities,
        r.contractors,
        r.apps.join(", "),
        r.rate_limit
    );
    out.push_str(&format!(
        "  {:34} {:>9} {:>9} {:>9} {:>9} {:>8}\n",
        "leaver latency (change → read back)", "p50", "p95", "p99", "max", "samples"
    ));
    out.push_str(&latency_row("  idle", r.leaver_idle.as_ref()));
    out.push_str(&latency_row(
        "  while the policy lane is held",
        r.leaver_quarantined.as_ref(),
    ));
    out.push_str("  target: p99 ≤ 5 s idle, ≤ 10 s under load (issue 11)\n\n");
    let rate = r.joiner_accounts as f64 / r.joiner_seconds.max(f64::EPSILON);
    out.push_str(&format!(
        "  joiners: {} accounts on {} apps in {} ({rate:.1} accounts/s)\n",
        r.joiner_accounts,
        r.apps.len(),
        seconds(r.joiner_seconds)
    ));
    out.push_str(&format!(
        "  policy lane: {} removals held; {} of {} contractors still enabled on SCIM\n",
        r.held_policy_removals, r.contractors_still_enabled, r.contractors
    ));
    out.push_str(&format!(
        "  operator: RSS {:.1} MiB (peak {:.1} MiB), CPU {:.1} s\n",
        r.operator.rss_mib, r.operator.peak_rss_mib, r.operator.cpu_seconds
    ));
    out
}

/// The pure parts' checks. A `harness = false` bench gets no `#[test]`s, so `cargo test`
/// runs the bench binary without `--bench`, and it runs these instead.
pub fn check() {
    nearest_rank_percentiles();
}

fn nearest_rank_percentiles() {
    let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    let l = Latency::of(&samples).expect("samples");
    assert_eq!((l.p50, l.p95, l.p99, l.max), (0.05, 0.095, 0.099, 0.1));
    assert_eq!(l.samples, 100);
    let one = Latency::of(&[Duration::from_secs(2)]).expect("one");
    assert_eq!((one.p50, one.p99), (2.0, 2.0));
    assert!(Latency::of(&[]).is_none());
}
