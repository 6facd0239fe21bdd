//! `roster-bench`: Roster's speed measured on the real components. It starts etcd,
//! kube-apiserver, scim2-server, slapd and PostgreSQL on loopback with the test harness,
//! runs the release operator as a separate process, and drives it through the apiserver:
//!
//! 1. joiners — every Identity applied, until each app shows every account;
//! 2. leaver latency, idle — people terminated one after another, each timed from the
//!    change until every app, read directly, shows the account disabled and stripped;
//! 3. leaver latency while a bad policy commit (the contractors' binding deleted) is held
//!    in quarantine on every Connector.
//!
//! It prints a table and writes JSON under `target/bench/`. Run it with `hack/bench.sh`
//! (`cargo bench --bench roster-bench -- --help` for the flags). Under `cargo test` the
//! binary runs its pure checks only.

#[allow(dead_code, unused_imports)]
#[path = "../../tests/it/harness/mod.rs"]
mod harness;

mod figures;
mod leavers;
mod world;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;

use crate::{
    figures::{Latency, Process, Run},
    harness::{apps::Census, control_plane, operator::Operator},
    world::{CONNECTORS, World},
};

/// Measures Roster on the real components.
#[derive(Debug, Parser)]
#[command(name = "roster-bench")]
struct Args {
    /// Identities in all; a quarter of them are contractors.
    #[arg(long, default_value_t = 400)]
    identities: usize,
    /// Leavers timed in each phase (idle, policy lane held).
    #[arg(long, default_value_t = 100)]
    leavers: usize,
    /// Requests per second each Connector allows (its rateLimit; Roster's default is 20,
    /// which would measure the limit, not Roster).
    #[arg(long, default_value_t = 1000)]
    rate_limit: u32,
    /// `cargo bench` passes this; without it the binary only runs its checks.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn problem(&self) -> Option<String> {
        let staff = self.identities - self.identities / 4;
        (self.identities < 8 || 2 * self.leavers > staff).then(|| {
            format!(
                "--leavers {} needs {} staff, and {} identities have {staff}",
                self.leavers,
                2 * self.leavers,
                self.identities
            )
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.bench {
        figures::check();
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
    let contractors = args.identities / 4;
    eprintln!("starting the control plane, the four apps and the release operator");
    let cp = control_plane();
    let operator = Operator::start_logging(&cp.kubeconfig, "warn");
    let world = World::new(args.identities, contractors, args.rate_limit).await;
    ready(&operator).await?;

    eprintln!("joiners: {} identities", args.identities);
    let joined = world.join_everyone(Duration::from_secs(1800)).await?;

    let limit = Duration::from_secs(120);
    eprintln!("leavers, idle: {}", args.leavers);
    let idle = leavers::one_by_one(&world, &world.staff[..args.leavers], limit).await?;
    // Every binding and entry counted, not only the leavers' own: nobody else lost access.
    let census = world.apps.census(world::STEM).await;
    if census != Census::all(args.identities - args.leavers) {
        return Err(format!("after the idle leavers the apps show {census:?}"));
    }

    eprintln!("the bad commit: the contractors' binding deleted");
    let held_after = world.bad_commit(limit).await?;
    eprintln!("  every Connector Quarantined after {held_after:?}");
    eprintln!("leavers, policy lane held: {}", args.leavers);
    let second = &world.staff[args.leavers..2 * args.leavers];
    let quarantined = leavers::one_by_one(&world, second, limit).await?;

    let usage = operator.usage();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    Ok(Run {
        identities: args.identities,
        contractors,
        apps: CONNECTORS.iter().map(|c| (*c).to_owned()).collect(),
        rate_limit: args.rate_limit,
        joiner_accounts: args.identities * CONNECTORS.len(),
        joiner_seconds: joined.as_secs_f64(),
        leaver_idle: Latency::of(&idle),
        leaver_quarantined: Latency::of(&quarantined),
        held_policy_removals: world.held().await,
        contractors_still_enabled: world.contractors_enabled().await,
        operator: Process {
            rss_mib: mib(usage.rss),
            peak_rss_mib: mib(usage.peak_rss),
            cpu_seconds: usage.cpu_seconds,
        },
    })
}

/// Waits for the operator's /readyz.
async fn ready(operator: &Operator) -> Result<(), String> {
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
