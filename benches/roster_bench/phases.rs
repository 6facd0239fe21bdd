//! The phases measured from the processes' own counters: a quiet window, the drift scans
//! within it beside bare listings, a cold start, and leavers under a joiner backlog.

use std::{
    collections::HashSet,
    path::Path,
    time::{Duration, Instant},
};

use crate::{
    figures::{Backlog, ColdStart, Latency, Operations, Quiet, Scan},
    floor,
    harness::operator::Operator,
    leavers,
    scrape::{self, Samples, requests, status_writes, writes},
    world::{self, Person, World},
};

/// Listing operations: one request per page.
const LISTS: [&str; 2] = ["list_accounts", "list_entitlements"];

fn lists(s: &Samples, connector: Option<&str>) -> f64 {
    LISTS.iter().map(|op| requests(s, connector, op)).sum()
}

/// Each Connector's operations in `s` (a window), by kind, with their mean duration.
pub fn operations(s: &Samples, ns: &str, connectors: &[&str]) -> Vec<Operations> {
    let mut out = Vec::new();
    for name in connectors {
        let c = format!("connector=\"{ns}/{name}\"");
        for op in [
            "observe",
            "create",
            "grant",
            "revoke",
            "set_active",
            "update",
        ] {
            let o = format!("operation=\"{op}\"");
            let count = s.sum(
                "roster_downstream_request_duration_seconds_count",
                &[&c, &o],
            );
            if count > 0.0 {
                let total = s.sum("roster_downstream_request_duration_seconds_sum", &[&c, &o]);
                out.push(Operations {
                    connector: (*name).to_owned(),
                    operation: op.to_owned(),
                    count,
                    mean_seconds: total / count,
                });
            }
        }
    }
    out
}

/// Every request to `connector`, whatever the operation.
pub fn all_requests(s: &Samples, connector: &str) -> f64 {
    s.sum(
        "roster_downstream_requests_total",
        &[&format!("connector=\"{connector}\"")],
    )
}

/// Waits until the operator has had no Identity queued or reconciling for a second:
/// what the joiners' passes (and the scans' re-queues during them) left to do is done.
/// Returns the seconds it took; gives up after `limit`.
pub async fn settle(operator: &Operator, limit: Duration) -> Result<f64, String> {
    let started = Instant::now();
    let mut idle_since: Option<Instant> = None;
    while started.elapsed() < limit {
        let s = scrape::operator(&operator.probe).await?;
        if scrape::identity_work(&s) > 0.0 {
            idle_since = None;
        } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= Duration::from_secs(1) {
            return Ok(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "the operator still had Identities queued after {limit:?}"
    ))
}

/// The Connectors whose scans the quiet window times against a bare listing.
const SCANNED: [&str; 3] = ["scim", "ldap", "pg"];

/// Watches at least `seconds` in which nothing changes, and on until each of [`SCANNED`]
/// has finished a scan (a slow scan rests four times its length, which can outlast the
/// window): what the operator asked of the apps and of the apiserver, and each
/// Connector's scans. The window opens once the operator has settled (`settle`), so the
/// joiners' last passes are not counted as steady state.
pub async fn quiet(
    w: &World,
    operator: &Operator,
    seconds: u64,
    limit: Duration,
) -> Result<(Quiet, Vec<Scan>, f64), String> {
    let settle_seconds = settle(operator, limit).await?;
    let (op0, api0) = (
        scrape::operator(&operator.probe).await?,
        scrape::apiserver(&w.client).await?,
    );
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let scans_of = |op: &scrape::Samples, name: &str| {
        let label = format!("connector=\"{}/{name}\"", w.ns);
        op.sum("roster_inventory_scan_seconds_count", &[&label])
    };
    let op = loop {
        let op = scrape::operator(&operator.probe).await?.since(&op0);
        let unscanned: Vec<&str> = SCANNED
            .into_iter()
            .filter(|name| scans_of(&op, name) < 1.0)
            .collect();
        if unscanned.is_empty() {
            break op;
        }
        if opened.elapsed() > limit {
            return Err(format!("no scan of {unscanned:?} in {limit:?} of quiet"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let seconds = opened.elapsed().as_secs_f64();
    let api = scrape::apiserver(&w.client).await?.since(&api0);
    let quiet = Quiet {
        settle_seconds,
        seconds,
        downstream_writes: writes(&op, None),
        per_identity_reads: requests(&op, None, "observe"),
        list_requests: lists(&op, None),
        checks: requests(&op, None, "check"),
        scans: op.sum("roster_inventory_scan_seconds_count", &[]),
        scan_requeues: op.sum("roster_inventory_requeues_total", &[]),
        status_writes: status_writes(&api),
        status_writes_by_resource: scrape::status_writes_by_resource(&api),
    };
    let bare = [
        ("scim", floor::scim_list(&w.apps.scim).await),
        ("ldap", floor::ldap_list().await?),
        ("pg", floor::pg_list(&w.apps.pg).await?),
    ];
    let scans = bare
        .into_iter()
        .map(|(name, bare)| {
            let c = format!("{}/{name}", w.ns);
            let label = format!("connector=\"{c}\"");
            let n = scans_of(&op, name).max(1.0);
            Scan {
                connector: name.into(),
                seconds: op.sum("roster_inventory_scan_seconds_sum", &[&label]) / n,
                requests: lists(&op, Some(&c)) / n,
                bare,
            }
        })
        .collect();
    // Roster's SCIM requests per scan interval, for the naive comparison.
    let scim = format!("{}/scim", w.ns);
    let scim_scans = scans_of(&op, "scim").max(1.0);
    Ok((quiet, scans, all_requests(&op, &scim) / scim_scans))
}

/// Stops the operator and starts a new one with every Identity converged: how soon it
/// is ready, how soon every Identity has been reconciled once, and what it wrote.
pub async fn cold_start(
    w: &World,
    operator: &mut Operator,
    kubeconfig: &Path,
    identities: usize,
    limit: Duration,
) -> Result<ColdStart, String> {
    let api0 = scrape::apiserver(&w.client).await?;
    operator.terminate();
    let started = Instant::now();
    *operator = crate::start_operator(kubeconfig);
    crate::ready(operator).await?;
    let ready_seconds = started.elapsed().as_secs_f64();
    let settled = loop {
        let s = scrape::operator(&operator.probe).await?;
        let reconciled = s.sum("roster_reconciliations_total", &[r#"kind="Identity""#]);
        if reconciled >= identities as f64 && scrape::identity_work(&s) == 0.0 {
            break s;
        }
        if started.elapsed() > limit {
            return Err(format!(
                "cold start: {reconciled} of {identities} Identities reconciled after {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let settled_seconds = started.elapsed().as_secs_f64();
    let api = scrape::apiserver(&w.client).await?.since(&api0);
    Ok(ColdStart {
        ready_seconds,
        settled_seconds,
        downstream_writes: writes(&settled, None),
        per_identity_reads: requests(&settled, None, "observe"),
        status_writes: status_writes(&api),
    })
}

/// Applies `joiners` new staff and, while they drain, terminates `leaving` one after
/// another; then waits until every joiner is Synced.
pub async fn backlog(
    w: &World,
    joiners: &[Person],
    leaving: &[Person],
    limit: Duration,
) -> Result<Backlog, String> {
    let started = Instant::now();
    let applying = {
        let (client, joiners) = (w.client.clone(), joiners.to_vec());
        tokio::spawn(async move { world::apply_people(&client, &joiners).await })
    };
    let took = leavers::one_by_one(w, leaving, limit).await?;
    let names: HashSet<&str> = joiners.iter().map(|p| p.name.as_str()).collect();
    let synced_when_leavers_done = w.synced_among(|n| names.contains(n)).await?;
    applying
        .await
        .map_err(|e| format!("applying the backlog: {e}"))??;
    // The joiners' own statuses say when they are done: each is Synced once every app,
    // read back, holds its account as declared. (The apps' census would also count the
    // contractors the held policy lane left half done.)
    while w.synced_among(|n| names.contains(n)).await? < joiners.len() {
        if started.elapsed() > limit {
            return Err(format!(
                "the backlog of {} did not drain within {limit:?}",
                joiners.len()
            ));
        }
        tokio::time::sleep(world::poll_every(w.staff.len() + joiners.len())).await;
    }
    Ok(Backlog {
        joiners: joiners.len(),
        synced_when_leavers_done,
        drained_seconds: started.elapsed().as_secs_f64(),
        leavers: Latency::of(&took),
    })
}
