//! `roster-bench`: Roster's speed measured on the real components, each figure beside a
//! reference measured in the same run. It starts etcd, kube-apiserver, scim2-server,
//! slapd and PostgreSQL on loopback with the test harness, runs the release operator as
//! a separate process, and drives it through the apiserver:
//!
//! 1. joiners — first a bare client's creates and grants on SCIM (the ceiling), while the
//!    operator has nothing to do; then every Identity applied, until each app shows
//!    every account;
//! 2. a quiet window — what the operator asks of the apps and the apiserver when nothing
//!    changes, and each drift scan beside a bare paged listing of its app;
//! 3. the naive per-user reconciler on SCIM, for the same outcome;
//! 4. a cold start with everyone converged;
//! 5. leaver latency, idle — people terminated one after another, each timed from the
//!    change until every app, read directly, shows the account disabled and stripped;
//! 6. leaver latency while a bad policy commit (the contractors' binding deleted) is held
//!    in quarantine on every Connector;
//! 7. leaver latency while a backlog of joiners drains (the policy lane still held);
//! 8. optionally, the operator's memory with many more Identities.
//!
//! It prints a table and writes JSON under `target/bench/`. Run it with `hack/bench.sh`
//! (`cargo bench --bench roster-bench -- --help` for the flags). Under `cargo test` the
//! binary runs its pure checks only.

#[allow(dead_code, unused_imports)]
#[path = "../../tests/it/harness/mod.rs"]
mod harness;

mod figures;
mod floor;
mod hr;
mod leavers;
mod phases;
mod push;
mod saas;
mod scrape;
mod world;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;

use crate::{
    figures::{Latency, Naive, Process, Run},
    floor::Joiner,
    harness::{apps::Census, control_plane, operator::Operator},
    world::{CONNECTORS, Departments, Person, World},
};

/// Requests in flight per Connector: Roster's default `rateLimit.maxInFlight`, and the
/// bare client's and the naive reconciler's concurrency.
const IN_FLIGHT: usize = 8;

/// Measures Roster on the real components.
#[derive(Debug, Parser)]
#[command(name = "roster-bench")]
struct Args {
    /// Identities in all; a quarter of them are contractors.
    #[arg(long, default_value_t = 400)]
    identities: usize,
    /// Leavers timed in each phase (idle, joiner backlog, policy lane held).
    #[arg(long, default_value_t = 100)]
    leavers: usize,
    /// New joiners applied while the backlog phase's leavers are timed (default: as
    /// many as --identities).
    #[arg(long)]
    backlog: Option<usize>,
    /// Requests per second each Connector allows (its rateLimit; Roster's default is 20,
    /// which would measure the limit, not Roster).
    #[arg(long, default_value_t = 1000)]
    rate_limit: u32,
    /// Each Connector's inventory scan interval (pollIntervalSeconds).
    #[arg(long, default_value_t = 30)]
    poll_seconds: u32,
    /// The quiet window's shortest length, at least two scan intervals; it goes on
    /// until each Connector has finished a scan (a slow scan rests four times its length).
    #[arg(long, default_value_t = 75)]
    quiet_seconds: u64,
    /// Joiners applied, behind a SaaS-like limit of 180 writes a minute, while
    /// --saas-leavers people leave (0: skip the scenario).
    #[arg(long, default_value_t = 100)]
    saas_joiners: usize,
    /// Leavers timed in the SaaS-limited scenario.
    #[arg(long, default_value_t = 20)]
    saas_leavers: usize,
    /// Leavers timed from an HR export: twice as many people join from a CSV an
    /// IdentitySource reads, then this many leave by their rows (0: skip).
    #[arg(long, default_value_t = 20)]
    hr_leavers: usize,
    /// Leavers timed from a SCIM push: twice as many people are pushed to an
    /// IdentitySource's SCIM endpoint, then this many are deleted there (0: skip).
    #[arg(long, default_value_t = 20)]
    push_leavers: usize,
    /// Staff per department: each department has its own Role, label-selector binding and
    /// SCIM group (the contractors share one group).
    #[arg(long, default_value_t = 500)]
    department_size: usize,
    /// Identities no binding matches, applied at the end for the memory figure.
    #[arg(long, default_value_t = 0)]
    idle_identities: usize,
    /// Phases to leave out, comma-separated, where a run at scale cannot afford them
    /// (their figures print as skipped): `ceiling` (the bare client), `naive`,
    /// `cold-start`.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<Skip>,
    /// `cargo bench` passes this; without it the binary only runs its checks.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A phase `--skip` leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Skip {
    /// The bare client's joiner ceiling on SCIM.
    Ceiling,
    /// The naive per-user reconciler's cycles.
    Naive,
    /// The cold start with everyone converged.
    ColdStart,
}

impl Args {
    fn runs(&self, phase: Skip) -> bool {
        !self.skip.contains(&phase)
    }

    fn problem(&self) -> Option<String> {
        let staff = self.identities - self.identities / 4;
        if self.department_size == 0 {
            return Some("--department-size must be at least 1".to_owned());
        }
        if self.identities < 8 || 3 * self.leavers > staff {
            return Some(format!(
                "--leavers {} needs {} staff (three phases), and {} identities have {staff}",
                self.leavers,
                3 * self.leavers,
                self.identities
            ));
        }
        (self.quiet_seconds < 2 * u64::from(self.poll_seconds)).then(|| {
            format!(
                "--quiet-seconds {} is shorter than two scan intervals ({} s)",
                self.quiet_seconds,
                2 * self.poll_seconds
            )
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.bench {
        figures::check();
        scrape::check();
        saas::check();
        world::check();
        println!("roster-bench: checks passed; run the benchmark with hack/bench.sh");
        return ExitCode::SUCCESS;
    }
    if let Some(p) = args.problem() {
        eprintln!("roster-bench: {p}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roster-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(run) => {
            print!("{}", figures::render(&run));
            match write_json(&run) {
                Ok(path) => println!("  written to {}", path.display()),
                Err(e) => eprintln!("roster-bench: cannot write the figures: {e}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roster-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<Run, String> {
    let n = args.identities;
    let contractors = n / 4;
    let limit = Duration::from_secs(120);
    let long = Duration::from_secs(3600);
    eprintln!("starting the control plane, the four apps and the release operator");
    let cp = control_plane();
    let mut operator = start_operator(&cp.kubeconfig);
    let departments = Departments {
        size: args.department_size,
    };
    let backlog_size = args.backlog.unwrap_or(n);
    let staff = n - contractors;
    let world = World::new(
        n,
        contractors,
        staff + backlog_size,
        departments,
        args.rate_limit,
        args.poll_seconds,
    )
    .await;
    ready(&operator).await?;
    let scim = format!("{}/scim", world.ns);

    // The bare client first, while the operator has nothing to do: after the joiners,
    // Roster's scans of 10,000 people shared scim2-server (one process, one interpreter
    // lock) with it.
    let (scim_ceiling, ceiling_cores) = if args.runs(Skip::Ceiling) {
        let (bare, cores) = ceiling(n, staff, departments).await?;
        (Some(bare), Some(cores))
    } else {
        (None, None)
    };

    eprintln!("joiners: {n} identities");
    let before = scrape::operator(&operator.probe).await?;
    let cpu_before = scrape::children_cpu();
    let peak_before = operator
        .restart_peak()
        .map_err(|e| format!("cannot restart the operator's peak RSS: {e}"))?;
    let joined = world.join_everyone(long).await?;
    let joiner_cores = figures::cores(&cpu_before, &scrape::children_cpu(), joined.as_secs_f64());
    let joiner_peak = operator.usage().peak_rss;
    eprintln!("  joined in {:.1} s", joined.as_secs_f64());
    eprintln!("  {}", figures::cores_line(&joiner_cores));
    eprintln!(
        "  the operator's peak RSS meanwhile {:.1} MiB",
        mib(joiner_peak)
    );
    let window = scrape::operator(&operator.probe).await?.since(&before);
    let joined_requests = phases::all_requests(&window, &scim);
    let joiner_operations = phases::operations(&window, &world.ns, &CONNECTORS);

    eprintln!(
        "steady state: {} s with nothing changing",
        args.quiet_seconds
    );
    let (quiet, scans, per_interval) =
        phases::quiet(&world, &operator, args.quiet_seconds, long).await?;
    eprintln!(
        "  opened once no Identity was queued, {:.1} s later: {:.0} downstream writes, {:.0} per-identity reads, {:.0} status writes, {:.0} scans sending {:.0} round for drift",
        quiet.settle_seconds,
        quiet.downstream_writes,
        quiet.per_identity_reads,
        quiet.status_writes,
        quiet.scans,
        quiet.scan_requeues
    );
    let cycles = if args.runs(Skip::Naive) {
        eprintln!("the naive per-user reconciler on SCIM: two cycles of {n}");
        floor::naive(&bare_joiners(n, staff, departments), IN_FLIGHT, 2).await
    } else {
        Vec::new()
    };
    let naive = Naive {
        cycles,
        roster_joiner_requests: joined_requests,
        roster_requests_per_interval: per_interval,
    };

    // The cold start restarts the operator: what the first process used is counted here.
    let mut first = harness::operator::Usage::default();
    let cold_start = if args.runs(Skip::ColdStart) {
        eprintln!("cold start with {n} converged");
        first = operator.usage();
        let c = phases::cold_start(&world, &mut operator, &cp.kubeconfig, n, long).await?;
        eprint!("{}", figures::cold_start(n, Some(&c)));
        Some(c)
    } else {
        None
    };

    let l = args.leavers;
    eprintln!("leavers, idle: {l}");
    let idle = leavers::one_by_one(&world, &world.staff[..l], limit).await?;
    eprint!(
        "{}",
        figures::latency_row("  idle", Latency::of(&idle).as_ref())
    );
    // Every binding and entry counted, not only the leavers' own: nobody else lost access.
    let census = world.apps.census(world::STEM).await;
    if census != Census::all(n - l) {
        return Err(format!("after the idle leavers the apps show {census:?}"));
    }

    eprintln!("the bad commit: the contractors' binding deleted");
    // The breakers trip once the contractors' passes reach their budgets, which at
    // 10,000 took 89–119 s: two minutes is no bound there.
    let trip_limit = limit.max(Duration::from_secs(n as u64 / 40));
    let held_after = world.bad_commit(trip_limit).await?;
    eprintln!("  every Connector Quarantined after {held_after:?}");
    eprintln!("leavers, policy lane held: {l}");
    let quarantined = leavers::one_by_one(&world, &world.staff[l..2 * l], limit).await?;
    eprint!(
        "{}",
        figures::latency_row("  policy lane held", Latency::of(&quarantined).as_ref())
    );
    let (held_policy_removals, contractors_still_enabled) =
        (world.held().await, world.contractors_enabled().await);

    // Last: a backlog this size after the joiners would lift the removal budget's share
    // above what the bad commit removes, and it would no longer trip.
    let joiners: Vec<Person> = (0..backlog_size)
        .map(|i| Person::staff(world.staff.len() + i, departments))
        .collect();
    eprintln!("leavers while {} joiners drain: {l}", joiners.len());
    let backlog = phases::backlog(&world, &joiners, &world.staff[2 * l..3 * l], long).await?;
    eprint!(
        "{}",
        figures::latency_row("  joiners draining", backlog.leavers.as_ref())
    );

    let saas = if args.saas_joiners > 0 {
        eprintln!(
            "behind a limit of {} writes a minute: {} leavers while {} joiners drain",
            saas::WRITES_PER_MINUTE,
            args.saas_leavers,
            args.saas_joiners
        );
        Some(saas::scenario(&world.client, args.saas_leavers, args.saas_joiners, long).await?)
    } else {
        None
    };
    let hr = if args.hr_leavers > 0 {
        let people = args.hr_leavers * 2;
        eprintln!(
            "from HR: {people} people in an export, then {} leave by their rows",
            args.hr_leavers
        );
        Some(hr::scenario(&world, people, args.hr_leavers, long).await?)
    } else {
        None
    };
    let push = if args.push_leavers > 0 {
        let people = args.push_leavers * 2;
        eprintln!(
            "from HR over SCIM: {people} people pushed, then {} deleted",
            args.push_leavers
        );
        let endpoint = format!("http://{}", scim_addr());
        Some(push::scenario(&world, &endpoint, people, args.push_leavers, long).await?)
    } else {
        None
    };
    let idle_rss_mib = idle_memory(&operator, &world, args.idle_identities).await?;
    let second = operator.usage();
    Ok(Run {
        identities: n,
        contractors,
        apps: CONNECTORS.iter().map(|c| (*c).to_owned()).collect(),
        rate_limit: args.rate_limit,
        joiner_accounts: n * CONNECTORS.len(),
        joiner_seconds: joined.as_secs_f64(),
        joiner_operations,
        joiner_cores,
        joiner_peak_rss_mib: mib(joiner_peak),
        ceiling_cores,
        leaver_idle: Latency::of(&idle),
        leaver_quarantined: Latency::of(&quarantined),
        held_policy_removals,
        contractors_still_enabled,
        operator: Process {
            rss_mib: mib(second.rss),
            peak_rss_mib: mib(peak_before.max(first.peak_rss).max(second.peak_rss)),
            cpu_seconds: first.cpu_seconds + second.cpu_seconds,
        },
        scim_ceiling,
        quiet,
        scans,
        naive,
        cold_start,
        backlog,
        servers_cpu_seconds: scrape::children_cpu()
            .into_iter()
            .filter(|(name, _)| name != "roster" && name != "roster-bench")
            .collect(),
        idle_identities: args.idle_identities,
        idle_rss_mib,
        saas,
        hr,
        push,
    })
}

/// Bytes as MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The users the bare client and the naive reconciler make: as many as Roster's joiners,
/// in the same spread over groups (staff by department, then contractors).
fn bare_joiners(n: usize, staff: usize, departments: Departments) -> Vec<Joiner> {
    (0..n)
        .map(|i| Joiner {
            name: format!("floor.{i:06}"),
            group: departments.group(i, staff),
        })
        .collect()
}

/// The bare client's ceiling on SCIM, and the cores each process used meanwhile.
async fn ceiling(
    n: usize,
    staff: usize,
    departments: Departments,
) -> Result<(floor::Floor, figures::Cores), String> {
    eprintln!("the bare client's ceiling on SCIM: {n} creates and grants");
    let joiners = bare_joiners(n, staff, departments);
    let cpu_before = scrape::children_cpu();
    let ceiling = floor::scim_ceiling(&joiners, IN_FLIGHT).await?;
    let cores = figures::cores(&cpu_before, &scrape::children_cpu(), ceiling.seconds);
    eprintln!(
        "  {:.1} s in {} requests",
        ceiling.seconds, ceiling.requests
    );
    eprintln!("  {}", figures::cores_line(&cores));
    Ok((ceiling, cores))
}

/// Where the operator serves its SCIM push endpoint: one loopback port for the run, so a
/// restarted operator serves it at the same place.
fn scim_addr() -> &'static str {
    static ADDR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ADDR.get_or_init(|| format!("127.0.0.1:{}", harness::process::free_port()))
}

/// The release operator, serving the SCIM push endpoint in plain HTTP on loopback.
pub fn start_operator(kubeconfig: &std::path::Path) -> Operator {
    // `ROSTER_BENCH_LOG` raises the operator's log level for an investigation; the
    // default keeps logging out of the figures.
    let filter = std::env::var("ROSTER_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned());
    Operator::start_with(
        kubeconfig,
        &filter,
        &[
            ("ROSTER_SCIM_ADDR", scim_addr()),
            ("ROSTER_SCIM_PLAINTEXT", "true"),
        ],
    )
}

/// Applies `count` Identities no binding matches and waits until the operator has
/// reconciled them all; its RSS then, in MiB.
async fn idle_memory(
    operator: &Operator,
    world: &World,
    count: usize,
) -> Result<Option<f64>, String> {
    if count == 0 {
        return Ok(None);
    }
    eprintln!("memory: {count} more Identities that no binding matches");
    let people = (0..count).map(|i| (format!("idle-{i:06}"), format!("idle.{i:06}")));
    let reconciled =
        |s: &scrape::Samples| s.sum("roster_reconciliations_total", &[r#"kind="Identity""#]);
    let before = scrape::operator(&operator.probe).await?;
    world::apply_pairs(&world.client, people).await?;
    eprintln!("  applied; RSS {:.1} MiB", mib(operator.usage().rss));
    let want = reconciled(&before) + count as f64;
    let mut shown = reconciled(&before);
    // Bounded: an hour.
    for _ in 0..36_000 {
        let s = scrape::operator(&operator.probe).await?;
        if scrape::identity_work(&s) == 0.0 && reconciled(&s) >= want {
            break;
        }
        if reconciled(&s) >= shown + 10_000.0 {
            shown = reconciled(&s);
            eprintln!(
                "  {shown} reconciled, RSS {:.1} MiB",
                mib(operator.usage().rss)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Some(mib(operator.usage().rss)))
}

/// Waits for the operator's /readyz.
pub async fn ready(operator: &Operator) -> Result<(), String> {
    let url = format!("{}/readyz", operator.probe);
    for _ in 0..600 {
        if reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("the operator is not ready:\n{}", operator.log()))
}

/// Writes the figures to `target/bench/roster-bench-<unix time>.json` and
/// `target/bench/latest.json`.
fn write_json(run: &Run) -> std::io::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("bench");
    std::fs::create_dir_all(&dir)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let json = serde_json::to_string_pretty(run).map_err(std::io::Error::other)? + "\n";
    let path = dir.join(format!("roster-bench-{secs}.json"));
    std::fs::write(&path, &json)?;
    std::fs::write(dir.join("latest.json"), &json)?;
    Ok(path)
}
