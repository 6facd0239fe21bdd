//! The leaver lane on the real servers: people leaving one after another are disabled on
//! every app at once, under the default budgets, and never held; a Connector that opts
//! in to holding leaver waves holds them, says who, and releases them on approval.

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use roster::api::{Role, conditions};
use serde_json::{Value, json};

use crate::{
    four_connectors::{expect, look, the_other_three},
    harness::{
        apps::{Apps, Census, make_staff},
        control_plane, roster_report, scim,
    },
    lifecycle::{Scenario, condition},
};

const PEOPLE: usize = 200;
const LEAVERS: usize = 30;

async fn terminate(s: &Scenario, name: &str) {
    s.identities()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"state": "Terminated"}})),
        )
        .await
        .unwrap_or_else(|e| panic!("terminate {name}: {e}"));
}

/// Issue 13's scenario: 30 people leave one after another among 200 — three times the
/// policy budget, and more than a wave (the larger of 25 and 5 %). Every one is disabled
/// and stripped on all four apps, read back from each server; the wave is flagged on
/// every Connector and nothing is held.
#[tokio::test]
async fn thirty_leavers_among_two_hundred_are_disabled_on_all_four_apps() {
    // Policy budgets a third of the leavers, so only the leavers' own lane lets them
    // through; the default leaver wave (the larger of 25 and 5 %). A rate limit above the
    // default 20 requests a second only so that 800 accounts take seconds, not a minute.
    let spec = json!({"rateLimit": {"requestsPerSecond": 500, "burst": 500},
        "deletionBudget": {"maxRemovals": 10, "maxPercent": 100, "windowSeconds": 3600},
        "revocationBudget": {"maxAccounts": 10, "maxPercent": 100, "windowSeconds": 3600}});
    let s = Scenario::new("sweep", spec.clone()).await;
    let apps = Apps::new(scim::Direct::new(&s.scim.base), s.client.clone()).await;
    let entitlements = make_staff("sweep", &apps.scim, &s.client).await;
    the_other_three(&s, &spec).await;
    s.apply::<Role>(json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
        "metadata": {"name": "staff"}, "spec": {"entitlements": entitlements}}))
        .await;
    s.binding(
        "staff",
        json!({"role": "staff", "subjects": {"expression": "identity.username.startsWith(\"sweep.\")"}}),
    )
    .await;
    for i in 0..PEOPLE {
        s.identity(
            &format!("sweep-{i:03}"),
            json!({"username": format!("sweep.{i:03}")}),
        )
        .await;
    }
    // Each new count is printed, so a failure shows how far each app got.
    let last = std::sync::Mutex::new(String::new());
    let took = s
        .eventually_within(
            "200 people provisioned on all four apps",
            Duration::from_secs(180),
            || async {
                let seen = apps.census("sweep").await;
                let shown = format!("{seen:?}");
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if *last != shown {
                    eprintln!("provisioning: {shown}");
                    *last = shown;
                }
                seen == Census::all(PEOPLE)
            },
        )
        .await;
    eprintln!("{PEOPLE} people on four apps in {took:?}");

    let mut took = Vec::with_capacity(LEAVERS);
    for i in 0..LEAVERS {
        let started = Instant::now();
        terminate(&s, &format!("sweep-{i:03}")).await;
        let user = format!("sweep.{i:03}");
        s.eventually(
            &format!("{user} disabled and stripped on all four"),
            || async { look(&s, &apps.pg, &user).await == expect(false, &[]) },
        )
        .await;
        took.push(started.elapsed());
    }
    took.sort();
    eprintln!(
        "{LEAVERS} leavers, change to read-back on all four apps: median {:?}, slowest {:?}",
        took[LEAVERS / 2],
        took[LEAVERS - 1]
    );
    assert_eq!(apps.census("sweep").await, Census::all(PEOPLE - LEAVERS));

    for name in ["scim", "ldap", "pg", "k8s"] {
        s.eventually(
            &format!("{name}: the wave flagged, nothing held"),
            || async {
                let st = s.connector_status(name).await;
                st.leaver_wave.is_some()
                    && st.quarantine.is_none()
                    && conditions::find(&st.conditions, conditions::QUARANTINED)
                        .is_some_and(|c| c.status == "False")
            },
        )
        .await;
    }
}

/// `holdLeaverWaves`: past the wave threshold a leaver loses every entitlement at once
/// but keeps an enabled account until a person approves; status, the Identity's `Ready`
/// and `roster report` say who; `approve-leavers` releases them.
#[tokio::test]
async fn an_opted_in_wave_hold_holds_leavers_until_approved() {
    let s = Scenario::new(
        "wave-hold",
        json!({"holdLeaverWaves": true,
               "leaverWave": {"minLeavers": 2, "maxPercent": 0, "windowSeconds": 3600}}),
    )
    .await;
    s.groups(&["staff"]).await;
    s.role("staff", &["staff"]).await;
    s.binding("staff", json!({"role": "staff", "subjects": {"expression": "identity.username.startsWith(\"wh.\")"}}))
        .await;
    for i in 0..6 {
        s.identity(&format!("wh-{i}"), json!({"username": format!("wh.{i}")}))
            .await;
    }
    let s = &s;
    let state_of = |i: usize| async move {
        s.scim_user(&format!("wh.{i}"))
            .await
            .map(|(user, groups)| (user["active"] != false, groups.len()))
    };
    s.eventually("everyone provisioned", || async {
        let mut all = true;
        for i in 0..6 {
            all &= state_of(i).await == Some((true, 1));
        }
        all
    })
    .await;

    for i in 0..2 {
        terminate(s, &format!("wh-{i}")).await;
        s.eventually(
            &format!("wh-{i}, within the threshold, disabled"),
            || async { state_of(i).await == Some((false, 0)) },
        )
        .await;
    }
    for i in 2..4 {
        terminate(s, &format!("wh-{i}")).await;
        s.eventually(&format!("wh-{i} stripped, its disable held"), || async {
            state_of(i).await == Some((true, 0))
                && condition(&s.get(&format!("wh-{i}")).await, conditions::READY)
                    .is_some_and(|(st, reason)| st == "False" && reason == "Quarantined")
        })
        .await;
    }
    let held_here = |f: &Value| -> Vec<(String, String, String)> {
        f["held"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["connector"] == format!("{}/scim", s.ns))
            .map(|h| {
                let text = |k: &str| h[k].as_str().unwrap_or_default().to_owned();
                (text("identity"), text("cause"), h["budgets"].to_string())
            })
            .collect()
    };
    let want: Vec<(String, String, String)> = (2..4)
        .map(|i| {
            (
                format!("wh-{i}"),
                "ExplicitLeaver".to_owned(),
                r#"["leavers"]"#.to_owned(),
            )
        })
        .collect();
    s.eventually(
        "the Connector is Quarantined and roster report lists who",
        || async {
            let st = s.connector_status("scim").await;
            let listed = held_here(&report());
            conditions::find(&st.conditions, conditions::QUARANTINED)
                .is_some_and(|c| c.status == "True")
                && st.quarantine.is_some_and(|q| q.held_count == 2)
                && listed == want
        },
    )
    .await;

    s.approve("scim", "roster.dev/approve-leavers").await;
    s.eventually("both held leavers disabled after approval", || async {
        state_of(2).await == Some((false, 0)) && state_of(3).await == Some((false, 0))
    })
    .await;
    s.eventually("the quarantine lifted", || async {
        let st = s.connector_status("scim").await;
        st.quarantine.is_none() && held_here(&report()).is_empty()
    })
    .await;
    for i in 4..6 {
        assert_eq!(state_of(i).await, Some((true, 1)), "wh-{i} stays");
    }
}

/// `roster report --output json` for the shared cluster.
fn report() -> Value {
    serde_json::from_str(&roster_report(
        &control_plane().kubeconfig,
        &["--output", "json"],
    ))
    .expect("JSON report")
}
