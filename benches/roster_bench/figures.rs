//! The figures a run produces, their summary statistics and how they print. Pure.

use std::time::Duration;

use serde::Serialize;

use crate::floor::{Cycle, Floor};

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

/// Cores each process used over a phase: its CPU-seconds then over the phase's length,
/// by command name (`roster` is the operator, `roster-bench` this process).
pub type Cores = std::collections::BTreeMap<String, f64>;

/// The cores each process used between two readings of everyone's CPU-seconds taken
/// `seconds` apart; a process seen only in the second counts from zero.
pub fn cores(before: &Cores, after: &Cores, seconds: f64) -> Cores {
    after
        .iter()
        .map(|(name, cpu)| {
            let used = cpu - before.get(name).copied().unwrap_or(0.0);
            (name.clone(), used.max(0.0) / seconds.max(f64::EPSILON))
        })
        .collect()
}

/// A phase's cores, the busiest first: `scim2-server 0.93, roster 0.41, …`; processes
/// below a hundredth of a core are left out.
pub fn cores_line(c: &Cores) -> String {
    let mut busy: Vec<(&String, &f64)> = c.iter().filter(|(_, v)| **v >= 0.01).collect();
    busy.sort_by(|a, b| b.1.total_cmp(a.1));
    let total: f64 = c.values().sum();
    let each: Vec<String> = busy.iter().map(|(n, v)| format!("{n} {v:.2}")).collect();
    format!("{total:.2} cores: {}", each.join(", "))
}

/// People made per CPU-second `server` spent on them: `people` in `seconds`, while it
/// used `cores`. On a shared machine the app gets less than its core while the others
/// run (the apiserver, the other apps, the operator); this takes that share out.
pub fn per_cpu_second(people: usize, seconds: f64, cores: &Cores, server: &str) -> Option<f64> {
    let cpu = seconds * cores.get(server)?;
    (cpu > 0.0).then(|| people as f64 / cpu)
}

/// What the operator process used.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Process {
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    pub cpu_seconds: f64,
}

/// A quiet window: nothing changes, and this is what everyone did meanwhile.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quiet {
    /// How long the operator still had Identities queued or running when the window
    /// was due (the joiners' last passes); the window opens after.
    pub settle_seconds: f64,
    pub seconds: f64,
    /// Downstream writes, summed over the Connectors.
    pub downstream_writes: f64,
    /// Per-identity downstream reads (`observe`), summed.
    pub per_identity_reads: f64,
    /// Listing requests (pages of accounts and entitlements), summed.
    pub list_requests: f64,
    /// Connector checks (one request each), summed.
    pub checks: f64,
    /// Inventory scans completed, summed over the Connectors.
    pub scans: f64,
    /// Identities those scans found drifted and sent to their fast path.
    pub scan_requeues: f64,
    /// Status writes the apiserver took on Roster's kinds, and by resource.
    pub status_writes: f64,
    pub status_writes_by_resource: std::collections::BTreeMap<String, f64>,
}

/// One Connector's drift scan beside the bare paged listing of the same app.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scan {
    pub connector: String,
    /// Mean seconds per scan over the quiet window.
    pub seconds: f64,
    /// Listing requests per scan.
    pub requests: f64,
    /// The bare client's listing of the same app.
    pub bare: Floor,
}

/// A restart with every Identity converged.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColdStart {
    /// From start to `/readyz` answering.
    pub ready_seconds: f64,
    /// From start until every Identity was reconciled once and no reconcile waited.
    pub settled_seconds: f64,
    pub downstream_writes: f64,
    pub per_identity_reads: f64,
    pub status_writes: f64,
}

/// Leavers timed while a backlog of joiners drains.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backlog {
    /// Joiners applied just before the first leaver.
    pub joiners: usize,
    /// Of them, Synced when the last leaver was read back gone.
    pub synced_when_leavers_done: usize,
    /// From the first apply to every joiner on every app.
    pub drained_seconds: f64,
    pub leavers: Option<Latency>,
}

/// The naive per-user reconciler beside Roster on SCIM, for the same outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Naive {
    /// Its cycles: the first provisions, each later one finds nothing to do (none:
    /// skipped).
    pub cycles: Vec<Cycle>,
    /// Roster's SCIM requests while the joiners were provisioned.
    pub roster_joiner_requests: f64,
    /// Roster's SCIM requests per scan interval once converged.
    pub roster_requests_per_interval: f64,
}

/// One Connector's operations of one kind over a phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operations {
    pub connector: String,
    pub operation: String,
    pub count: f64,
    /// The mean time the app took to answer one, once admitted.
    pub mean_seconds: f64,
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
    /// Where the joiners' time went at the apps: each Connector's operations, how many
    /// and how long each took once admitted.
    pub joiner_operations: Vec<Operations>,
    /// Cores each process used while the joiners were provisioned.
    pub joiner_cores: Cores,
    /// The operator's peak RSS while the joiners were provisioned, in MiB.
    pub joiner_peak_rss_mib: f64,
    /// Cores each process used while the bare client made its joiners (`None`: skipped).
    pub ceiling_cores: Option<Cores>,
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
    /// The bare client's joiner ceiling on SCIM, the slowest app (`None`: skipped).
    pub scim_ceiling: Option<Floor>,
    pub quiet: Quiet,
    pub scans: Vec<Scan>,
    pub naive: Naive,
    /// `None`: skipped.
    pub cold_start: Option<ColdStart>,
    pub backlog: Backlog,
    /// CPU-seconds of the components the benchmark started (the operator excluded).
    pub servers_cpu_seconds: std::collections::BTreeMap<String, f64>,
    /// The operator's RSS with this many more Identities that no binding matches.
    pub idle_identities: usize,
    pub idle_rss_mib: Option<f64>,
    /// Behind a SaaS-like write limit.
    pub saas: Option<crate::saas::Saas>,
    /// Leavers whose row left an HR export.
    pub hr: Option<crate::hr::HrLeavers>,
    /// Leavers HR deleted over SCIM.
    pub push: Option<crate::push::PushLeavers>,
}

fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

/// One row of the leaver latency table (also printed as each phase ends).
pub fn latency_row(name: &str, l: Option<&Latency>) -> String {
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
        &format!("  while {} joiners drain", r.backlog.joiners),
        r.backlog.leavers.as_ref(),
    ));
    out.push_str(&latency_row(
        "  while the policy lane is held",
        r.leaver_quarantined.as_ref(),
    ));
    out.push_str(&format!(
        "  the backlog: {} of {} joiners Synced when the last leaver was gone; drained in {}\n",
        r.backlog.synced_when_leavers_done,
        r.backlog.joiners,
        seconds(r.backlog.drained_seconds)
    ));
    if let Some(s) = &r.saas {
        out.push_str(&latency_row(
            &format!("  behind {} writes/min", s.writes_per_minute_limit),
            s.leavers.as_ref(),
        ));
        out.push_str(&format!(
            "    {} joiners drained in {} at {:.0} writes/min ({} requests/s Connector limit, reads included); \
             {} refused with 429; {} joiners on SCIM when the last leaver was gone\n",
            s.joiners,
            seconds(s.drained_seconds),
            s.achieved_writes_per_minute,
            s.connector_requests_per_second,
            s.refused,
            s.joiners_done_when_leavers_done
        ));
    }
    if let Some(h) = &r.hr {
        out.push_str(&latency_row(
            &format!("  from HR (export read every {} s)", h.poll_seconds),
            h.leavers.as_ref(),
        ));
        out.push_str(&latency_row(
            "    of which after the source's read",
            h.after_read.as_ref(),
        ));
        out.push_str(&format!(
            "    {} people joined from the export in {}; the wait for the read is up to {} s\n",
            h.people,
            seconds(h.joined_seconds),
            h.poll_seconds
        ));
    }
    if let Some(p) = &r.push {
        out.push_str(&latency_row(
            "  from HR over SCIM (a DELETE)",
            p.leavers.as_ref(),
        ));
        out.push_str(&format!(
            "    {} people pushed and joined in {}\n",
            p.people,
            seconds(p.joined_seconds)
        ));
    }
    out.push_str("  target: p99 ≤ 5 s idle, ≤ 10 s under load\n\n");
    out.push_str(&joiners(r));
    out.push_str(&steady(r));
    out.push_str(&format!(
        "  policy lane: {} removals held; {} of {} contractors still enabled on SCIM\n",
        r.held_policy_removals, r.contractors_still_enabled, r.contractors
    ));
    out.push_str(&format!(
        "  operator: RSS {:.1} MiB (peak {:.1} MiB), CPU {:.1} s ({:.2} s per 1k identities)\n",
        r.operator.rss_mib,
        r.operator.peak_rss_mib,
        r.operator.cpu_seconds,
        r.operator.cpu_seconds * 1000.0 / r.identities.max(1) as f64
    ));
    if let Some(rss) = r.idle_rss_mib {
        out.push_str(&format!(
            "  operator RSS with {} more idle Identities: {rss:.1} MiB (target ≤ 256 MiB at 100k)\n",
            r.idle_identities
        ));
    }
    let servers: Vec<String> = r
        .servers_cpu_seconds
        .iter()
        .map(|(name, cpu)| format!("{name} {cpu:.1} s"))
        .collect();
    out.push_str(&format!("  components' CPU: {}\n", servers.join(", ")));
    out
}

fn joiners(r: &Run) -> String {
    let rate = r.joiner_accounts as f64 / r.joiner_seconds.max(f64::EPSILON);
    let n = r.identities as f64;
    // The apps are provisioned concurrently and SCIM is the slowest: Roster's joiners
    // are done when SCIM is.
    let roster = n / r.joiner_seconds.max(f64::EPSILON);
    let mut out = format!(
        "  joiners: {} accounts on {} apps in {} ({rate:.1} accounts/s)\n",
        r.joiner_accounts,
        r.apps.len(),
        seconds(r.joiner_seconds)
    );
    out.push_str(&match &r.scim_ceiling {
        Some(ceiling) => {
            let bare = n / ceiling.seconds.max(f64::EPSILON);
            format!(
                "    {roster:.1} people/s on all four; a bare client's creates and grants on SCIM alone {bare:.1}/s ({} requests): {:.0} % of the ceiling (target ≥ 90 %)\n",
                ceiling.requests,
                100.0 * roster / bare.max(f64::EPSILON)
            )
        }
        None => format!("    {roster:.1} people/s on all four; the bare client: skipped\n"),
    });
    // Every process shares the machine: what the apps and the control plane took while
    // Roster provisioned four apps, against what the bare client's SCIM run took.
    out.push_str(&format!(
        "    cores during the joiners: {}\n",
        cores_line(&r.joiner_cores)
    ));
    if let Some(c) = &r.ceiling_cores {
        out.push_str(&format!(
            "    cores during the bare client: {}\n",
            cores_line(c)
        ));
    }
    let server = "scim2-server";
    let ours = per_cpu_second(r.identities, r.joiner_seconds, &r.joiner_cores, server);
    let bare = r
        .scim_ceiling
        .as_ref()
        .zip(r.ceiling_cores.as_ref())
        .and_then(|(f, c)| per_cpu_second(r.identities, f.seconds, c, server));
    if let (Some(ours), Some(bare)) = (ours, bare) {
        out.push_str(&format!(
            "    people per CPU-second of {server}: Roster {ours:.1}, the bare client {bare:.1}: {:.0} %\n",
            100.0 * ours / bare
        ));
    }
    out.push_str(&format!(
        "    the operator's peak RSS during the joiners: {:.1} MiB\n",
        r.joiner_peak_rss_mib
    ));
    for o in &r.joiner_operations {
        out.push_str(&format!(
            "    {:>5} {:10} {:>6.0} × {:>7.1} ms\n",
            o.connector,
            o.operation,
            o.count,
            o.mean_seconds * 1000.0
        ));
    }
    out.push_str(&naive(&r.naive));
    out
}

fn naive(naive: &Naive) -> String {
    let roster = format!(
        "    Roster on SCIM: provisioning {:.0} requests, each later scan interval {:.0}",
        naive.roster_joiner_requests, naive.roster_requests_per_interval,
    );
    let (Some(first), Some(later)) = (naive.cycles.first(), naive.cycles.get(1)) else {
        return format!("    naive per-user reconciler: skipped\n{roster}\n\n");
    };
    let cycle = (later.reads + later.writes) as f64;
    format!(
        "    naive per-user reconciler on SCIM: provisioning {} requests in {}, each later cycle {} requests in {}\n\
         {roster}: {:.0}× fewer per cycle (target ≥ 10×)\n\n",
        first.reads + first.writes,
        seconds(first.seconds),
        later.reads + later.writes,
        seconds(later.seconds),
        cycle / naive.roster_requests_per_interval.max(1.0)
    )
}

fn steady(r: &Run) -> String {
    let q = &r.quiet;
    let mut out = format!(
        "  steady state over {} (opened once no Identity was queued, {} later): {:.0} downstream writes, {:.0} per-identity reads, {:.0} status writes {:?} (target 0); \
         {:.0} scans in {:.0} list requests, {:.0} checks, {:.0} identities sent round for drift\n",
        seconds(q.seconds),
        seconds(q.settle_seconds),
        q.downstream_writes,
        q.per_identity_reads,
        q.status_writes,
        q.status_writes_by_resource,
        q.scans,
        q.list_requests,
        q.checks,
        q.scan_requeues
    );
    for s in &r.scans {
        out.push_str(&format!(
            "    drift scan {}: {} in {:.0} requests; bare paged list {} in {} requests\n",
            s.connector,
            seconds(s.seconds),
            s.requests,
            seconds(s.bare.seconds),
            s.bare.requests
        ));
    }
    if let Some(slowest) = r
        .scans
        .iter()
        .max_by(|a, b| a.bare.seconds.total_cmp(&b.bare.seconds))
    {
        let worst = r.scans.iter().map(|s| s.seconds).fold(0.0, f64::max);
        out.push_str(&format!(
            "    slowest scan {} against 1.2 × slowest bare list + 5 s = {} (target)\n",
            seconds(worst),
            seconds(1.2 * slowest.bare.seconds + 5.0)
        ));
    }
    out.push_str(&cold_start(r.identities, r.cold_start.as_ref()));
    out.push('\n');
    out
}

/// The cold start's line (also printed as the phase ends).
pub fn cold_start(identities: usize, c: Option<&ColdStart>) -> String {
    let Some(c) = c else {
        return format!("  cold start with {identities} converged: skipped\n");
    };
    format!(
        "  cold start with {identities} converged: ready in {}, settled in {}; {:.0} downstream writes, {:.0} status writes (target 0), {:.0} per-identity reads\n",
        seconds(c.ready_seconds),
        seconds(c.settled_seconds),
        c.downstream_writes,
        c.status_writes,
        c.per_identity_reads
    )
}

/// The pure parts' checks. A `harness = false` bench gets no `#[test]`s, so `cargo test`
/// runs the bench binary without `--bench`, and it runs these instead.
pub fn check() {
    nearest_rank_percentiles();
    cores_over_a_phase();
    people_per_cpu_second();
}

fn people_per_cpu_second() {
    let c: Cores = [("scim2-server".to_owned(), 0.5)].into_iter().collect();
    // 1,000 people in 100 s at half a core: 50 CPU-seconds, 20 people each.
    assert_eq!(per_cpu_second(1000, 100.0, &c, "scim2-server"), Some(20.0));
    assert_eq!(
        per_cpu_second(1000, 100.0, &c, "slapd"),
        None,
        "not measured"
    );
    let idle: Cores = [("scim2-server".to_owned(), 0.0)].into_iter().collect();
    assert_eq!(per_cpu_second(1000, 100.0, &idle, "scim2-server"), None);
}

fn cores_over_a_phase() {
    let reading =
        |v: &[(&str, f64)]| -> Cores { v.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect() };
    let before = reading(&[("scim2-server", 10.0), ("roster", 4.0)]);
    let after = reading(&[("scim2-server", 30.0), ("roster", 8.0), ("slapd", 0.16)]);
    let c = cores(&before, &after, 20.0);
    let shown: Vec<String> = c.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
    assert_eq!(shown, ["roster 0.200", "scim2-server 1.000", "slapd 0.008"]);
    // slapd counts in the total, below the hundredth a process needs to be named.
    assert_eq!(cores_line(&c), "1.21 cores: scim2-server 1.00, roster 0.20");
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
