//! Leavers from HR: people an HR export declares, read by an IdentitySource, leave one
//! at a time by their row being taken out of the export; the clock runs from writing
//! the export to every app read back showing no access. The source reads the export
//! every `pollSeconds`, so the wait for the read is part of the figure; the time from the
//! read (as the source stamped it on the Identity) to gone is measured beside it.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use roster::{
    api::{Identity, IdentitySource, RoleBinding},
    lifecycle::source::REMOVED_AT_ANNOTATION,
};
use serde::Serialize;
use serde_json::json;

use crate::{
    figures::Latency,
    leavers::gone,
    world::{Person, World},
};

/// How often the source reads the export.
pub const POLL_SECONDS: i64 = 5;
const MANAGER: &str = "roster-bench";

/// What the HR phase measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HrLeavers {
    /// The people the export declared.
    pub people: usize,
    /// How often the source read it.
    pub poll_seconds: i64,
    /// From the export written to joined everywhere, for all of them.
    pub joined_seconds: f64,
    /// From a row taken out to the leaver read back gone on every app.
    pub leavers: Option<Latency>,
    /// Of that, from the source's read (the time it stamped on the Identity as
    /// `roster.dev/source-removed-at`) to gone: what follows the wait for the read.
    pub after_read: Option<Latency>,
}

fn export(people: &[Person]) -> String {
    let mut csv = "user,department\n".to_owned();
    for p in people {
        csv.push_str(&format!("{},hr\n", p.username));
    }
    csv
}

async fn write_export(w: &World, people: &[Person]) -> Result<(), String> {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hr"},
        "data": {"workers.csv": export(people)}});
    Api::<ConfigMap>::namespaced(w.client.clone(), &w.ns)
        .patch(
            "hr",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("write the HR export: {e}"))
}

/// `people` new people join from an export, then `leavers` of them leave one by one.
pub async fn scenario(
    w: &World,
    people: usize,
    leavers: usize,
    limit: Duration,
) -> Result<HrLeavers, String> {
    let everyone: Vec<Person> = (0..people).map(|i| Person::new('h', i)).collect();
    // The staff Role for the people from HR, as for the staff.
    let binding = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "RoleBinding",
        "metadata": {"name": "hr"},
        "spec": {"role": "staff",
            "subjects": {"expression": "identity.username.startsWith(\"bench.h\")"}}});
    Api::<RoleBinding>::namespaced(w.client.clone(), &w.ns)
        .patch(
            "hr",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&binding),
        )
        .await
        .map_err(|e| format!("apply the HR binding: {e}"))?;
    let started = Instant::now();
    write_export(w, &everyone).await?;
    // Limits that let every timed leaver through: this measures speed, the
    // integration tests the safeguard.
    let source = json!({"apiVersion": "roster.dev/v1alpha1", "kind": "IdentitySource",
        "metadata": {"name": "hr"},
        "spec": {"hrExport": {"configMap": {"name": "hr", "key": "workers.csv"}},
            "pollSeconds": POLL_SECONDS,
            "mapping": {"username": "user", "attributes": {"department": "department"}},
            "safeguard": {"maxRemovals": 100_000, "maxPercent": 100, "windowSeconds": 60}}});
    Api::<IdentitySource>::namespaced(w.client.clone(), &w.ns)
        .patch(
            "hr",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&source),
        )
        .await
        .map_err(|e| format!("apply the IdentitySource: {e}"))?;
    let from_hr = |n: &str| n.starts_with("bench.h");
    loop {
        if w.synced_among(from_hr).await? == people {
            break;
        }
        if started.elapsed() > limit {
            return Err(format!(
                "{people} people from HR not Synced after {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let joined_seconds = started.elapsed().as_secs_f64();
    let mut took = Vec::with_capacity(leavers);
    let mut after_read = Vec::with_capacity(leavers);
    let identities = Api::<Identity>::all(w.client.clone());
    for gone_so_far in 1..=leavers.min(people) {
        let leaver = &everyone[gone_so_far - 1];
        let started = Instant::now();
        write_export(w, &everyone[gone_so_far..]).await?;
        loop {
            if gone(w, &leaver.username).await {
                took.push(started.elapsed());
                let now = Timestamp::now();
                let read_at = identities
                    .get(&leaver.username)
                    .await
                    .ok()
                    .and_then(|i| i.annotations().get(REMOVED_AT_ANNOTATION).cloned())
                    .and_then(|t| t.parse::<Timestamp>().ok());
                if let Some(at) = read_at {
                    after_read.push(Duration::try_from(now - at).unwrap_or_default());
                }
                break;
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "{} still has access after {limit:?}",
                    leaver.username
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(HrLeavers {
        people,
        poll_seconds: POLL_SECONDS,
        joined_seconds,
        leavers: Latency::of(&took),
        after_read: Latency::of(&after_read),
    })
}
