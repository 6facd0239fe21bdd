//! The Connector loop: `check()` against the app drives `Ready` and the capabilities in
//! status; every `pollIntervalSeconds` an inventory scan finds drift and orphans. Secrets
//! are not watched; a fixed resync picks up a Secret created or rotated after the
//! Connector.

pub mod pace;
mod scan;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt, runtime::controller::Action};

use pace::LastScan;

use super::{Context, Error, instrumented, status};
use crate::{
    api::{
        Connector, ConnectorMode, ConnectorSpec, ConnectorStatus, LeaverWaveStatus,
        QuarantineStatus, TripStatus,
        conditions::{self, Desired},
    },
    connector::Capabilities,
    controller::budget::Snapshot,
    provision::ProvisionError,
    time::now,
};

const RESYNC: Duration = Duration::from_secs(60);

/// The backend a spec names, when it names exactly one (the schema enforces that).
pub fn backend(spec: &ConnectorSpec) -> Option<&'static str> {
    let named = [
        ("scim", spec.scim.is_some()),
        ("ldap", spec.ldap.is_some()),
        ("postgres", spec.postgres.is_some()),
        ("kubernetes", spec.kubernetes.is_some()),
    ];
    let mut set = named.iter().filter(|(_, on)| *on).map(|(name, _)| *name);
    match (set.next(), set.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// The Connector's `Ready` condition from the outcome of building and checking its
/// backend. Pure. Messages name Secrets and keys, never their content.
pub fn connector_ready(
    spec: &ConnectorSpec,
    checked: &Result<Capabilities, ProvisionError>,
) -> Desired {
    match checked {
        Ok(_) => {
            let mode = match spec.mode {
                ConnectorMode::Enforce => "enforcing",
                ConnectorMode::Observe => "observing only",
            };
            Desired::true_(
                conditions::READY,
                "Reachable",
                format!(
                    "the {} app answers; {mode}",
                    backend(spec).unwrap_or("downstream")
                ),
            )
        }
        Err(e) => Desired::false_(
            conditions::READY,
            e.reason(),
            status::truncate(&e.to_string(), 1024),
        ),
    }
}

/// `Quarantined` from the breakers' state and any unusable approval. Pure.
pub fn quarantine_condition(snapshot: &Snapshot, approval_problems: &[String]) -> Desired {
    let problems = if approval_problems.is_empty() {
        String::new()
    } else {
        format!("; approval refused: {}", approval_problems.join("; "))
    };
    match snapshot.trips.first() {
        Some((breaker, t)) => {
            let names: Vec<&str> = snapshot.trips.iter().map(|(b, _)| b.name()).collect();
            let reason = if approval_problems.is_empty() {
                "BudgetExceeded"
            } else {
                "ApprovalInvalid"
            };
            Desired::true_(
                conditions::QUARANTINED,
                reason,
                format!(
                    "{} held ({}): {}; {} waiting (status.quarantine.held); approve with the {} annotation{problems}",
                    names.join(", "),
                    breaker.name(),
                    t.message,
                    snapshot.held.len(),
                    super::budget::APPROVE_ANNOTATION
                ),
            )
        }
        None if !approval_problems.is_empty() => Desired::false_(
            conditions::QUARANTINED,
            "ApprovalInvalid",
            format!("removals proceed{problems}"),
        ),
        None => Desired::false_(conditions::QUARANTINED, "WithinBudget", "removals proceed"),
    }
}

/// The Connector's `status.quarantine` and `status.leaverWave` from the breakers. Pure.
pub fn quarantine_status(
    snapshot: &Snapshot,
) -> (Option<QuarantineStatus>, Option<LeaverWaveStatus>) {
    let wave = snapshot.wave.as_ref().map(|w| LeaverWaveStatus {
        since: Time(w.since),
        leavers: i32::try_from(w.planned).unwrap_or(i32::MAX),
        message: w.message.clone(),
    });
    let Some((_, first)) = snapshot.trips.iter().min_by_key(|(_, t)| t.since) else {
        return (None, wave);
    };
    let quarantine = QuarantineStatus {
        since: Time(first.since),
        planned_removals: i32::try_from(first.planned).unwrap_or(i32::MAX),
        message: first.message.clone(),
        trips: snapshot
            .trips
            .iter()
            .map(|(b, t)| TripStatus {
                budget: b.name().to_owned(),
                since: Time(t.since),
                planned: i32::try_from(t.planned).unwrap_or(i32::MAX),
                message: t.message.clone(),
            })
            .collect(),
        held: snapshot.held.iter().take(HELD_LISTED).cloned().collect(),
        held_count: i32::try_from(snapshot.held.len()).unwrap_or(i32::MAX),
    };
    (Some(quarantine), wave)
}

/// The most held removals listed in status (the CRD bounds the list at 64).
const HELD_LISTED: usize = 64;

/// `Synced` and `Drifted` from a scan's outcome. Pure.
pub fn scan_conditions(scanned: &Result<scan::Scanned, String>) -> Vec<Desired> {
    match scanned {
        Ok(s) if s.drift.is_empty() => vec![
            Desired::true_(
                conditions::SYNCED,
                "InSync",
                "the last inventory scan found nothing to fix",
            ),
            Desired::false_(
                conditions::DRIFTED,
                "NoDrift",
                "the last inventory scan matched the declared state",
            ),
        ],
        Ok(s) => vec![
            Desired::false_(conditions::SYNCED, "Drift", "see status.drift"),
            Desired::true_(
                conditions::DRIFTED,
                "Drift",
                status::truncate(&s.drift.join("; "), 1024),
            ),
        ],
        Err(e) => vec![Desired::false_(
            conditions::SYNCED,
            "ScanFailed",
            status::truncate(e, 1024),
        )],
    }
}

/// Reconciles one Connector: load → build → check → (scan when due) → status.
pub async fn reconcile(connector: Arc<Connector>, ctx: Arc<Context>) -> Result<Action, Error> {
    instrumented("Connector", &ctx, async {
        ctx.stores.wait_until_ready().await?;
        let ns = connector
            .namespace()
            .ok_or_else(|| Error::MissingNamespace(connector.name_any()))?;
        let key = format!("{ns}/{}", connector.name_any());
        let poll = Duration::from_secs(
            u64::try_from(connector.spec.poll_interval_seconds)
                .unwrap_or(300)
                .max(10),
        );
        let (checked, scanned) = match ctx.backends.get(&ctx.client, &connector).await {
            Err(e) => (Err(e), None),
            Ok(backend) => {
                let checked = backend.check().await.map_err(ProvisionError::from);
                // The first scan in a process waits one interval: start-up reconciles every
                // identity anyway, and a scan racing them would report drift being fixed.
                // Its first look only lists the names, for the joiners meanwhile.
                let (first, due) = ctx
                    .last_scans
                    .lock()
                    .map(|mut m| match m.get(&key) {
                        Some(last) => (false, last.due(poll, Instant::now())),
                        None => {
                            m.insert(key.clone(), LastScan::first_look(Instant::now()));
                            (true, false)
                        }
                    })
                    .unwrap_or((false, false));
                if checked.is_ok()
                    && first
                    && let Err(e) = scan::list_names(&ctx, &connector, backend.as_ref()).await
                {
                    // Joiners read before their create until the first scan: slower only.
                    tracing::warn!(connector = %key, error = %e, "cannot list the accounts' names");
                }
                let scanned = if checked.is_ok() && due {
                    let started = Instant::now();
                    let result = scan::scan(&ctx, &connector, backend.as_ref())
                        .await
                        .map_err(|e| e.to_string());
                    if let Ok(mut m) = ctx.last_scans.lock() {
                        let last = LastScan {
                            ended: Instant::now(),
                            took: started.elapsed(),
                        };
                        m.insert(key.clone(), last);
                    }
                    Some(result)
                } else {
                    None
                };
                (checked, scanned)
            }
        };
        let mut wanted = vec![connector_ready(&connector.spec, &checked)];
        if let Some(s) = &scanned {
            wanted.extend(scan_conditions(s));
        }
        let now = now();
        let snapshot = ctx.budgets.snapshot(&connector, now.0);
        let problems = super::budget::approval_problems(&connector, now.0);
        wanted.push(quarantine_condition(&snapshot, &problems));

        let current = connector.status.clone().unwrap_or_default();
        let generation = connector.metadata.generation;
        let mut desired = ConnectorStatus {
            observed_generation: generation,
            conditions: conditions::merge(&current.conditions, &wanted, generation, &now),
            capabilities: match &checked {
                Ok(caps) => caps.features.iter().cloned().collect(),
                Err(_) => current.capabilities.clone(),
            },
            ..current.clone()
        };
        // The breakers read their trips back from this status first: a restart never
        // lifts a quarantine.
        (desired.quarantine, desired.leaver_wave) = quarantine_status(&snapshot);
        if let Some(Ok(s)) = scanned {
            desired.inventory = Some(s.inventory);
            desired.drift = s.drift;
            desired.unowned_members = s.unowned_members;
        }
        // The scan time alone is not worth a write: record it only with a real change.
        let mut stamped = desired.clone();
        stamped.last_scan_time = Some(now);
        if desired != current {
            let api = Api::<Connector>::namespaced(ctx.client.clone(), &ns);
            status::apply_if_changed(
                &ctx,
                "Connector",
                &api,
                connector.as_ref(),
                connector.status.as_ref(),
                &stamped,
            )
            .await?;
        }
        status::warn_on_ready_change(
            &ctx.recorder,
            connector.as_ref(),
            &current.conditions,
            &desired.conditions,
        )
        .await;
        Ok(Action::requeue(poll.min(RESYNC)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{connector::ConnectorError, provision::secrets::SecretError};

    fn spec(v: serde_json::Value) -> ConnectorSpec {
        serde_json::from_value(v).unwrap()
    }

    fn scim() -> ConnectorSpec {
        spec(
            serde_json::json!({"allowPlaintext": true, "scim": {"baseUrl": "http://127.0.0.1:1/v2",
            "tokenSecretRef": {"name": "tok", "key": "token"}}}),
        )
    }

    #[test]
    fn backend_is_the_one_named() {
        assert_eq!(backend(&scim()), Some("scim"));
        assert_eq!(backend(&spec(serde_json::json!({}))), None);
        let two = spec(
            serde_json::json!({"kubernetes": {}, "scim": {"baseUrl": "http://x",
            "tokenSecretRef": {"name": "a", "key": "b"}}}),
        );
        assert_eq!(backend(&two), None);
    }

    #[test]
    fn each_problem_has_its_reason_and_no_secret_content() {
        let s = scim();
        let cases = [
            (
                ProvisionError::Secret {
                    field: "scim.tokenSecretRef",
                    source: SecretError::NotFound { name: "tok".into() },
                },
                "SecretNotFound",
            ),
            (
                ProvisionError::Secret {
                    field: "scim.tokenSecretRef",
                    source: SecretError::KeyMissing {
                        name: "tok".into(),
                        key: "token".into(),
                    },
                },
                "SecretKeyNotFound",
            ),
            (
                ProvisionError::Downstream(ConnectorError::Unauthorized {
                    detail: "HTTP 401".into(),
                }),
                "Unauthorized",
            ),
            (ProvisionError::NoBackend, "InvalidBackend"),
        ];
        for (err, reason) in cases {
            let d = connector_ready(&s, &Err(err));
            assert_eq!((d.status, d.reason.as_str()), ("False", reason));
        }
        let ok = connector_ready(&s, &Ok(Capabilities::default()));
        assert_eq!((ok.status, ok.reason.as_str()), ("True", "Reachable"));
    }
}
