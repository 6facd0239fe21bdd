//! The Identity loop: the event-driven fast path for joiners, movers and leavers.

mod account;
pub mod affected;
mod outcome;
mod ready;
pub mod report;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{
    Api, ResourceExt,
    runtime::{
        controller::Action,
        events::EventType,
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector::ObjectRef,
    },
};

use super::{Context, Error, hold, instrumented, lanes, status};
use crate::{
    api::{AccountState, Connector, Identity, IdentityStatus, conditions},
    connector,
    lifecycle::{
        ConnectorKey, Managed,
        audit::{self, Grounds},
        budget::Cause,
        owner::{self, Standing},
        resolve::{Effective, Resolution, reachable, resolve},
    },
    time::now,
};
pub use ready::identity_ready;

/// The finalizer that makes deleting an Identity deprovision it first.
pub const FINALIZER: &str = "roster.dev/deprovision";
/// Annotation listing connectors (`namespace/name`, comma-separated) that a deleted
/// Identity may be released from without deprovisioning there, e.g. because the
/// Connector is gone for good. Roster records the choice in an Event.
pub const ABANDON_ANNOTATION: &str = "roster.dev/abandon-connectors";
/// How soon to look again after a downstream error.
const RETRY: Duration = Duration::from_secs(20);

/// Reconciles one Identity: resolve → (per connector: observe → plan → execute → read
/// back) → status. Deletion runs the same pass with nothing desired, and holds the
/// Identity until every connector's access is verified gone.
pub async fn reconcile(identity: Arc<Identity>, ctx: Arc<Context>) -> Result<Action, Error> {
    instrumented("Identity", &ctx, async {
        ctx.stores.wait_until_ready().await?;
        let key = ObjectRef::from_obj(identity.as_ref());
        // Gone from the cache: its deletion was seen, and it leaves now.
        let until_leaving = || {
            let at = now().0;
            let cached = ctx.stores.identities.get(&key);
            let cached = cached.map_or(Some(Duration::ZERO), |c| lanes::until_leaving(&c, at));
            lanes::until_leaving(&identity, at)
                .into_iter()
                .chain(cached)
                .min()
        };
        let _turn = ctx.lanes.turn(&key.name, until_leaving).await;
        // The wait may have been long: act on the Identity as it is now, not as it was
        // when the request was made. Gone from the cache: its deletion was seen.
        let Some(identity) = ctx.stores.identities.get(&key) else {
            return Ok(Action::await_change());
        };
        let api = Api::<Identity>::all(ctx.client.clone());
        let leaver = lanes::leaving(&identity, now().0);
        // On the heap, made only now: every reconcile waiting for a turn held the whole
        // pass's state inline (21 KB; 4,000 waiting joiners were most of a 267 MiB RSS).
        let work = Box::pin(finalizer(&api, FINALIZER, identity, |event| async {
            match event {
                FinalizerEvent::Apply(i) => pass(&ctx, &i, false).await,
                FinalizerEvent::Cleanup(i) => pass(&ctx, &i, true).await,
            }
        }));
        // A leaver's downstream calls do not queue behind other work at the apps.
        let done = if leaver {
            connector::limit::urgently(work).await
        } else {
            work.await
        };
        done.map_err(|e| Error::Finalizer(Box::new(e)))
    })
    .await
}

async fn pass(ctx: &Context, identity: &Identity, deleting: bool) -> Result<Action, Error> {
    let now_time = now();
    let now = now_time.0;
    let catalog = ctx.stores.catalog();
    let previous = identity.status.clone().unwrap_or_default();
    let owner = identity
        .spec
        .owner
        .as_deref()
        .and_then(|name| ctx.stores.identities.get(&ObjectRef::new(name)));
    let standing = if deleting {
        Standing::Answered
    } else {
        owner::standing(
            &identity.spec,
            owner.as_deref(),
            previous.owner_lost_at.as_ref().map(|t| t.0),
            now,
            ctx.owner_grace,
        )
    };
    let mut resolution = if deleting {
        Resolution {
            effective: Effective::Terminated,
            accounts: Default::default(),
            grantors: Default::default(),
            next_change: None,
        }
    } else {
        resolve(identity, &catalog, now)
    };
    let lapsed = owner::apply(&standing, &mut resolution);
    let leaving = deleting || resolution.effective == Effective::Terminated;
    // The Identity itself left: a decision about this one person. Deleting the object is
    // not one: `kubectl delete identities --all` and a pruned GitOps folder look the same.
    let cause = if !deleting
        && !lapsed
        && matches!(
            resolution.effective,
            Effective::Suspended | Effective::Terminated
        ) {
        Cause::ExplicitLeaver
    } else {
        Cause::Policy
    };
    let state = match &standing {
        Standing::Lapsed { why, .. } if lapsed => {
            Some(format!("without an owner past the grace period ({why})"))
        }
        _ => audit::lifecycle_state(identity.spec.state, resolution.effective, deleting),
    };
    let abandoned = abandoned(identity);

    let mut keys: BTreeSet<ConnectorKey> = resolution.accounts.keys().cloned().collect();
    for entry in &previous.accounts {
        // A deleted account that is not wanted needs no more looking at.
        let settled = entry.state == AccountState::Deleted && entry.entitlements.is_empty();
        if let (Some(key), false) = (ConnectorKey::parse(&entry.connector), settled) {
            keys.insert(key);
        }
    }
    // A leaver's accounts are looked for wherever its bindings would give it one, not
    // only where status recorded one: a crash between a create and its status write
    // leaves an account no status knows about, and it must not keep its access.
    let probed: BTreeSet<ConnectorKey> = if leaving {
        reachable(identity, &catalog, now)
            .into_iter()
            .filter(|k| !keys.contains(k))
            .collect()
    } else {
        BTreeSet::new()
    };
    keys.extend(probed.iter().cloned());
    // Each connector is its own app: one slow or stuck app must not hold up the others,
    // and a leaver's access goes everywhere at once.
    let work: Vec<(&ConnectorKey, Managed)> = keys
        .iter()
        .filter(|key| !(deleting && abandoned.contains(*key)))
        .map(|key| (key, catalog.managed(key)))
        .collect();
    let reports = futures::future::join_all(work.iter().map(|(key, managed)| {
        let input = account::Input {
            identity,
            key,
            desired: resolution.accounts.get(*key),
            previous: previous
                .accounts
                .iter()
                .find(|a| a.connector == key.to_string()),
            managed,
            cause,
            leaving,
            feeds: catalog.feeds(key),
            grounds: Grounds {
                state: state.clone(),
                grantors: resolution.grantors.get(*key).cloned().unwrap_or_default(),
            },
            now,
        };
        account::sync(ctx, input)
    }))
    .await;
    // A probe that found no account leaves no trace in status.
    let reports: Vec<report::AccountReport> = reports
        .into_iter()
        .filter(|r| {
            !(probed.contains(&r.key) && r.entry.external_id.is_none() && r.error.is_none())
        })
        .collect();

    let mut desired_conditions = report::conditions(
        identity_ready(&identity.spec, owner.as_deref(), &standing),
        &reports,
    );
    if deleting && let Some(blocked) = report::blocked(&reports) {
        desired_conditions.retain(|c| c.type_ != conditions::READY);
        desired_conditions.push(blocked);
    }
    let generation = identity.metadata.generation;
    let desired = IdentityStatus {
        observed_generation: generation,
        conditions: conditions::merge(
            &previous.conditions,
            &desired_conditions,
            generation,
            &now_time,
        ),
        accounts: report::accounts(&reports),
        deprovisioning: report::receipt(
            previous.deprovisioning.as_ref(),
            leaving,
            &reports,
            &now_time,
        ),
        owner_lost_at: standing
            .since()
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
    };
    if !same_but_for_timestamps(&previous, &desired) {
        let api = Api::<Identity>::all(ctx.client.clone());
        status::apply_if_changed(
            ctx,
            "Identity",
            &api,
            identity,
            identity.status.as_ref(),
            &desired,
        )
        .await?;
        let verified = report::newly_verified(
            previous.deprovisioning.as_ref(),
            desired.deprovisioning.as_ref(),
        );
        for (connector, seconds) in verified {
            ctx.metrics.observe_leaver_verified(&connector, seconds);
        }
        // Read your own write: the next pass starts from the cache, and a cache that
        // has not seen this status yet would plan from the old ledger — under Additive
        // membership a leaver right after a grant would keep the group, and the new
        // ledger would forget it.
        cached_status(ctx, identity, &desired).await;
    }
    status::warn_on_ready_change(
        &ctx.recorder,
        identity,
        &previous.conditions,
        &desired.conditions,
    )
    .await;

    if deleting {
        if !report::deprovisioned(&reports) {
            return Err(Error::Deprovisioning(identity.name_any()));
        }
        for key in abandoned.iter().filter(|k| keys.contains(*k)) {
            let note = format!("{key}: released without deprovisioning ({ABANDON_ANNOTATION})");
            tracing::warn!(identity = %identity.name_any(), connector = %key, "released without deprovisioning (abandoned)");
            status::publish(
                &ctx.recorder,
                identity,
                EventType::Warning,
                "Abandoned",
                "Deprovision",
                &note,
            )
            .await;
        }
        return Ok(Action::await_change());
    }
    let deadlines: Vec<Timestamp> = resolution
        .next_change
        .into_iter()
        .chain(standing.until())
        .collect();
    Ok(
        match next_look(&reports, &deadlines, &catalog_grace(ctx, &reports), now) {
            Some(wait) => Action::requeue(wait),
            None => Action::await_change(),
        },
    )
}

/// Waits (at most [`CACHE_CATCH_UP`]) until the cache holds `written` as the Identity's
/// status.
async fn cached_status(ctx: &Context, identity: &Identity, written: &IdentityStatus) {
    let key = ObjectRef::from_obj(identity);
    let written = as_stored(written);
    let start = std::time::Instant::now();
    while start.elapsed() < CACHE_CATCH_UP {
        let seen = ctx.stores.identities.get(&key);
        if seen.is_none_or(|i| i.status.as_ref() == Some(&written)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::debug!(identity = %identity.name_any(), "the cache has not caught up with a status write");
}

/// `status` as the apiserver stores it and the cache then holds it: times to the whole
/// second, as `Time` serializes. Compared unrounded, a status with a fresh timestamp never
/// matched its cached self, and every pass that wrote one held its turn for the whole
/// [`CACHE_CATCH_UP`] (joiners ran at 32 turns per 5 s). Pure.
fn as_stored(status: &IdentityStatus) -> IdentityStatus {
    serde_json::to_value(status)
        .and_then(serde_json::from_value)
        // A derived status always round-trips; were it not to, the wait is only longer.
        .unwrap_or_else(|_| status.clone())
}

/// How long a pass waits for the cache to show its own status write.
const CACHE_CATCH_UP: Duration = Duration::from_secs(5);

/// The connectors the abandon annotation names.
fn abandoned(identity: &Identity) -> BTreeSet<ConnectorKey> {
    identity
        .annotations()
        .get(ABANDON_ANNOTATION)
        .map(|v| {
            v.split(',')
                .filter_map(|k| ConnectorKey::parse(k.trim()))
                .collect()
        })
        .unwrap_or_default()
}

/// Each connector's deletion grace, for accounts waiting to be deleted.
fn catalog_grace(
    ctx: &Context,
    reports: &[report::AccountReport],
) -> Vec<(Timestamp, Option<i64>)> {
    reports
        .iter()
        .filter_map(|r| {
            let since = r.entry.disabled_at.as_ref()?.0;
            let c = ctx
                .stores
                .connectors
                .get(&ObjectRef::<Connector>::new(&r.key.name).within(&r.key.namespace))?;
            Some((since, c.spec.deprovisioning.delete_after_seconds))
        })
        .collect()
}

/// When to look again: soon after an error, when the app did not keep a write, or while
/// access waits on a person; when a time bound (`deadlines`: validity, an owner's grace)
/// passes, and when a disabled account's grace period ends. Otherwise never (`None`):
/// the Identity's own changes and its policy's re-queue it, and each Connector's
/// inventory scan re-queues it when its account drifts downstream, so an Identity in
/// sync costs the apps nothing (a periodic look at every Identity was 10,000 reads on
/// every app every five minutes). A removal a breaker holds is no error to retry: its
/// approval re-queues it (every held account re-read every 20 s slowed the leavers beside
/// them). Pure.
pub fn next_look(
    reports: &[report::AccountReport],
    deadlines: &[Timestamp],
    grace: &[(Timestamp, Option<i64>)],
    now: Timestamp,
) -> Option<Duration> {
    let mut wait: Option<Duration> = None;
    let mut sooner = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
    let failed =
        |r: &report::AccountReport| r.error.as_ref().is_some_and(|(why, _)| *why != hold::HELD);
    // Access left through an account Roster does not own waits for a person, who acts
    // downstream where no watch sees it: look again as soon as after an error, so the
    // receipt completes soon after.
    if reports
        .iter()
        .any(|r| failed(r) || r.unfinished || r.unowned_access.is_some())
    {
        sooner(RETRY);
    }
    let deletions = grace
        .iter()
        .filter_map(|(since, secs)| since.checked_add(SignedDuration::from_secs((*secs)?)).ok());
    for at in deadlines.iter().copied().chain(deletions) {
        let until = at.duration_since(now);
        // A bound that just passed still gets a prompt look, not a busy loop.
        let until = Duration::try_from(until)
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1));
        sooner(until);
    }
    wait
}

/// Whether two statuses differ only in `lastVerified` times: such a change is not
/// worth a write.
fn same_but_for_timestamps(a: &IdentityStatus, b: &IdentityStatus) -> bool {
    let strip = |s: &IdentityStatus| {
        let mut s = s.clone();
        for account in &mut s.accounts {
            account.last_verified = None;
        }
        s
    };
    strip(a) == strip(b)
}

/// The Service identities an Identity owns: they are looked at again when it changes.
pub fn owned_services(owner: &Identity, all: &[Arc<Identity>]) -> Vec<ObjectRef<Identity>> {
    let name = owner.name_any();
    all.iter()
        .filter(|i| i.spec.owner.as_deref() == Some(name.as_str()))
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ready::tests::{identity, spec};
    use super::*;
    use crate::api::{IdentityKind, LifecycleState};

    #[test]
    fn a_held_removal_waits_for_its_approval_and_an_error_is_retried() {
        let report = |error: Option<(&'static str, String)>| report::AccountReport {
            key: ConnectorKey::parse("ns/scim").expect("key"),
            entry: Default::default(),
            error,
            access_gone: false,
            managed: true,
            unowned_access: None,
            unfinished: false,
            removed_now: false,
            deleted_now: false,
        };
        let now = Timestamp::UNIX_EPOCH;
        let held = [report(Some((hold::HELD, "over budget".into())))];
        assert_eq!(next_look(&held, &[], &[], now), None);
        let failing = [
            report(Some((hold::HELD, "over budget".into()))),
            report(Some(("Unavailable", "HTTP 503".into()))),
        ];
        assert_eq!(next_look(&failing, &[], &[], now), Some(RETRY));
        assert_eq!(
            next_look(&[report(None)], &[], &[], now),
            None,
            "in sync: no periodic look (the inventory scan finds drift)"
        );
        let mut unowned = report(None);
        unowned.unowned_access = Some("account \"ada\" still has access".into());
        assert_eq!(next_look(&[unowned], &[], &[], now), Some(RETRY));
        let mut lost = report(None);
        lost.unfinished = true;
        assert_eq!(
            next_look(&[lost], &[], &[], now),
            Some(RETRY),
            "the app lost a write: look again soon"
        );
    }

    #[test]
    fn time_bounds_and_grace_periods_bring_the_next_look() {
        let now = Timestamp::UNIX_EPOCH;
        let at = |secs: i64| now.checked_add(SignedDuration::from_secs(secs)).unwrap();
        // The sooner of a validity bound and an owner's grace period.
        assert_eq!(
            next_look(&[], &[at(600), at(90)], &[], now),
            Some(Duration::from_secs(90))
        );
        // A disabled account's deletion grace; a connector that never deletes, none.
        assert_eq!(
            next_look(&[], &[], &[(at(-10), Some(40)), (now, None)], now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(next_look(&[], &[], &[(now, None)], now), None);
        // A bound just passed: promptly, not in a busy loop.
        assert_eq!(
            next_look(&[], &[at(-5)], &[], now),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_written_status_is_compared_as_the_cache_will_hold_it() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let at = Timestamp::from_nanosecond(1_700_000_000_123_456_789).unwrap();
        let written = IdentityStatus {
            owner_lost_at: Some(Time(at)),
            ..Default::default()
        };
        let cached: IdentityStatus =
            serde_json::from_value(serde_json::to_value(&written).unwrap()).unwrap();
        assert_ne!(cached, written, "the apiserver keeps whole seconds");
        assert_eq!(as_stored(&written), cached);
    }

    #[test]
    fn owned_services_finds_only_the_owners_services() {
        let ada = identity("ada", LifecycleState::Active);
        let mut bot = Identity::new("bot", spec(IdentityKind::Service, Some("ada")));
        bot.metadata.name = Some("bot".into());
        let other = Identity::new("other", spec(IdentityKind::Service, Some("bob")));
        let found = owned_services(
            &ada,
            &[Arc::new(bot), Arc::new(other), Arc::new(ada.clone())],
        );
        assert_eq!(found, vec![ObjectRef::new("bot")]);
    }
}
