//! Leaver latency: one person at a time is terminated, and the clock runs until every
//! app, read directly, shows the account disabled and holding nothing.

use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use ldap3::Scope;
use roster::{api::Identity, connector::kubernetes::names};
use serde_json::json;

use crate::{
    harness::{ldap, scim},
    world::{Person, World},
};

/// How often the apps are read while a leaver is pending.
const POLL: Duration = Duration::from_millis(20);
/// A leaver slower than this is named on stderr, to find what held it up.
const SLOW: Duration = Duration::from_secs(1);

/// Whether `user` has no access left on any app, read from each server.
pub async fn gone(w: &World, user: &str) -> bool {
    scim_gone(&w.apps.scim, user).await && ldap_gone(w, user).await && pg_gone(w, user).await && {
        // The bindings of one account carry its label (a disabled account's stay, with no
        // subjects); the census after each phase counts every binding's subjects.
        let selector = format!("{}={}", names::ACCOUNT_LABEL, names::account_key(user));
        Api::<ClusterRoleBinding>::all(w.client.clone())
            .list(&ListParams::default().labels(&selector))
            .await
            .is_ok_and(|l| {
                l.items
                    .iter()
                    .flat_map(|b| b.subjects.iter().flatten())
                    .all(|s| s.name != user)
            })
    }
}

/// Whether `user` is disabled and in no group on the SCIM tenant `app` (or absent).
pub async fn scim_gone(app: &scim::Direct, user: &str) -> bool {
    let Some(u) = app.find_user(user).await else {
        return true;
    };
    let id = u["id"].as_str().unwrap_or_default();
    u["active"] == false && app.groups_holding(id).await == Some(0)
}

async fn ldap_gone(w: &World, user: &str) -> bool {
    // A handle on the one connection the run keeps: no connect and bind per poll.
    let mut admin = w.ldap.clone();
    let uid = format!("(uid={})", ldap3::ldap_escape(user));
    let enabled = admin
        .search(ldap::PEOPLE, Scope::OneLevel, &uid, vec!["1.1"])
        .await
        .map_or(1, |r| r.0.len());
    let member = format!(
        "(member=uid={},{})",
        ldap3::ldap_escape(user),
        ldap::DISABLED
    );
    let groups = admin
        .search(ldap::GROUPS, Scope::OneLevel, &member, vec!["1.1"])
        .await
        .map_or(1, |r| r.0.len());
    enabled == 0 && groups == 0
}

async fn pg_gone(w: &World, user: &str) -> bool {
    let row = w
        .apps
        .pg
        .query_opt(
            "SELECT r.rolcanlogin OR EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid)
             FROM pg_roles r WHERE r.rolname = $1",
            &[&user],
        )
        .await;
    match row {
        Ok(None) => true,
        Ok(Some(r)) => !r.get::<_, bool>(0),
        Err(_) => false,
    }
}

/// Terminates `people` one after another; each one's time from the change to read back
/// gone everywhere.
pub async fn one_by_one(
    w: &World,
    people: &[Person],
    limit: Duration,
) -> Result<Vec<Duration>, String> {
    let api = Api::<Identity>::all(w.client.clone());
    let mut took = Vec::with_capacity(people.len());
    for (i, p) in people.iter().enumerate() {
        let started = Instant::now();
        api.patch(
            &p.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"state": "Terminated"}})),
        )
        .await
        .map_err(|e| format!("terminate {}: {e}", p.name))?;
        loop {
            if gone(w, &p.username).await {
                let t = started.elapsed();
                if t > SLOW {
                    eprintln!(
                        "  slow: leaver {} of {}, {}, took {t:?}",
                        i + 1,
                        people.len(),
                        p.username
                    );
                }
                took.push(t);
                break;
            }
            if started.elapsed() > limit {
                return Err(format!("{} still has access after {limit:?}", p.username));
            }
            tokio::time::sleep(POLL).await;
        }
        if (i + 1) % 25 == 0 {
            eprintln!("  {} of {} leavers gone", i + 1, people.len());
        }
    }
    Ok(took)
}
