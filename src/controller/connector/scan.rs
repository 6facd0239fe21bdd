//! The periodic inventory scan of one Connector: list every account and entitlement page
//! by page, assess them against every identity at once, send drifted identities to their
//! fast path, and — in `Enforce` — take authoritative entitlements away from accounts
//! Roster does not own (additive ones are only reported).

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use kube::{ResourceExt, runtime::reflector::ObjectRef};

use crate::{
    api::{Connector, ConnectorMode, Inventory, UnownedMember},
    connector::{Connector as Backend, ConnectorError, EntitlementMembers, Page},
    controller::{
        Context,
        hold::Removing,
        listed::name_hash,
        write::{self, Subject, Write},
    },
    lifecycle::{
        ConnectorKey, DesiredAccount, ObservedAccount,
        budget::{Cause, Feeds},
        inventory::{self, Assessment, Assessor, Claim, Held},
        plan::{Change, Ledger, Policy},
        resolve::resolve,
    },
};

/// The most pages one listing may take before the scan gives up (a runaway server).
const MAX_PAGES: usize = 100_000;
/// The most drift lines kept in status (the CRD bounds the list at 16).
const DRIFT_LINES: usize = 16;

/// What a scan reports into the Connector's status.
pub struct Scanned {
    /// Counts.
    pub inventory: Inventory,
    /// Differences still standing, in words.
    pub drift: Vec<String>,
    /// The first few memberships Roster did not grant and leaves in place.
    pub unowned_members: Vec<UnownedMember>,
}

/// The most unowned memberships listed in status (the CRD bounds the list at 32).
const UNOWNED_LISTED: usize = 32;

/// Hands every page of a listing to `sink` as it arrives, so that a scan holds one page
/// at a time, not the app's whole contents.
async fn each_page<T, F, Fut>(
    mut page: F,
    mut sink: impl FnMut(Vec<T>),
) -> Result<(), ConnectorError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, ConnectorError>>,
{
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let p = page(cursor).await?;
        sink(p.items);
        match p.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
    Err(ConnectorError::Malformed(format!(
        "listing did not end after {MAX_PAGES} pages"
    )))
}

/// Lists the accounts of `connector` and records their names without assessing them:
/// a process's first look at a Connector, whose drift scan waits an interval. Joiners
/// arriving meanwhile (a backlog at start-up, the first people of a new Connector) then
/// need no read before their create (`controller::listed`). Only where a create refuses
/// a duplicate: elsewhere the names are of no use.
pub async fn list_names(
    ctx: &Context,
    connector: &Connector,
    backend: &dyn Backend,
) -> Result<(), ConnectorError> {
    if !backend.refuses_duplicates() {
        return Ok(());
    }
    let mut listed = std::collections::HashSet::new();
    each_page(
        |c| async move { backend.list_accounts(c.as_deref()).await },
        |page: Vec<ObservedAccount>| {
            for account in page {
                listed.insert(name_hash(backend.name_case(), &account.username));
            }
        },
    )
    .await?;
    let key = ConnectorKey::new(
        connector.namespace().unwrap_or_default(),
        connector.name_any(),
    );
    ctx.listed
        .record(&key.to_string(), connector.metadata.generation, listed);
    Ok(())
}

/// Scans `connector` through `backend`.
pub async fn scan(
    ctx: &Context,
    connector: &Connector,
    backend: &dyn Backend,
) -> Result<Scanned, ConnectorError> {
    let key = ConnectorKey::new(
        connector.namespace().unwrap_or_default(),
        connector.name_any(),
    );
    let started = std::time::Instant::now();
    // What status says is taken before the app is listed: an identity whose status
    // changes during the listing is left to the pass that changed it (see `to_look_at`).
    let now = Timestamp::now();
    let catalog = ctx.stores.catalog();
    let identities = ctx.stores.identities.state();
    // Memberships first, folded by account; then accounts page by page, each assessed
    // as it comes and dropped.
    let mut held = Held::default();
    each_page(
        |c| async move { backend.list_entitlements(c.as_deref()).await },
        |page: Vec<EntitlementMembers>| page.iter().for_each(|e| held.add(e)),
    )
    .await?;

    let names: Vec<String> = identities.iter().map(|i| i.name_any()).collect();
    // Each identity's account here; the rest of its resolution is dropped at once. Held
    // whole until the listing ended (every Connector's account, each grant's grantors),
    // the resolutions were some 100 MiB a scan at 10,000 identities: the operator's peak.
    // Backends without attributes compare none (see `Connector::mirrors_attributes`).
    let desired: Vec<Option<DesiredAccount>> = identities
        .iter()
        .map(|i| {
            let d = resolve(i, &catalog, now).accounts.remove(&key)?;
            Some(if backend.mirrors_attributes() {
                d
            } else {
                d.without_attributes()
            })
        })
        .collect();
    let claims: Vec<Claim<'_>> = identities
        .iter()
        .zip(&desired)
        .zip(&names)
        .map(|((identity, desired), name)| Claim {
            identity: name,
            username: &identity.spec.username,
            desired: desired.as_ref(),
            ledger: ledger_of(identity, &key),
        })
        .collect();
    let managed = catalog.managed(&key);
    let protected: BTreeSet<String> = connector.spec.protected_accounts.iter().cloned().collect();
    // Protection is per account; `assess` applies it from `protected`.
    let policy = Policy::of(&connector.spec, "", now, backend.name_case());
    let mut assessor = Assessor::new(&claims, &managed, &protected, &policy);
    let mut listed = std::collections::HashSet::new();
    each_page(
        |c| async move { backend.list_accounts(c.as_deref()).await },
        |page: Vec<ObservedAccount>| {
            for mut account in page {
                held.fill(&mut account);
                assessor.add(&account);
                listed.insert(name_hash(backend.name_case(), &account.username));
            }
        },
    )
    .await?;
    ctx.listed
        .record(&key.to_string(), connector.metadata.generation, listed);
    let accounts = assessor.accounts();
    let assessment = assessor.finish();

    // The fast path fixes (Enforce) or reports (Observe) each drifted identity.
    let provisioned: std::collections::HashSet<&str> = identities
        .iter()
        .zip(&names)
        .filter(|(i, _)| holds_account(i, &key))
        .map(|(_, name)| name.as_str())
        .collect();
    let held: std::collections::HashSet<String> = ctx
        .budgets
        .snapshot(connector, now)
        .held
        .into_iter()
        .map(|h| h.identity)
        .collect();
    let versions: std::collections::HashMap<&str, Option<&str>> = names
        .iter()
        .zip(&identities)
        .map(|(name, i)| (name.as_str(), i.metadata.resource_version.as_deref()))
        .collect();
    let looks = to_look_at(
        &assessment,
        |n| provisioned.contains(n),
        |n| ctx.lanes.is_busy(n) || held.contains(n),
        |n| {
            let current = ctx.stores.identities.get(&ObjectRef::new(n));
            current.is_none_or(|i| {
                versions.get(n).copied().flatten() != i.metadata.resource_version.as_deref()
            })
        },
    );
    let requeued = looks.len();
    for name in looks {
        // Which difference sent whom round: the first thing to read when scans keep
        // finding drift no one made.
        tracing::debug!(connector = %key, identity = name,
            difference = assessment.drifted.get(name).map_or("", String::as_str), "drift re-queued");
        let _ = ctx.identity_triggers.send(ObjectRef::new(name));
    }
    let failed_strays = if connector.spec.mode == ConnectorMode::Enforce {
        // With no Identity claiming an account here, every member of an authoritative
        // group looks like a stranger: an empty list, held like any other.
        let feeds = Feeds {
            claimants: Some(desired.iter().flatten().count()),
            ..catalog.feeds(&key)
        };
        remove_strays(ctx, connector, &key, backend, &assessment, feeds, now).await
    } else {
        assessment.strays.clone()
    };
    tracing::info!(connector = %key, accounts, drifted = assessment.drifted.len(), requeued,
        orphaned = assessment.orphaned.len(), strays = assessment.strays.len(), "inventory scanned");
    ctx.metrics
        .observe_scan(&key.to_string(), started.elapsed().as_secs_f64(), requeued);
    Ok(Scanned {
        inventory: Inventory {
            managed: count(assessment.managed),
            drifted: count(assessment.drifted.len()),
            orphaned: count(assessment.orphaned.len()),
            unmanaged: count(assessment.unmanaged),
            unowned_members: count(assessment.unowned_members.len()),
        },
        drift: drift_lines(&assessment, &failed_strays, connector.spec.mode),
        unowned_members: assessment
            .unowned_members
            .iter()
            .take(UNOWNED_LISTED)
            .map(|m| UnownedMember {
                username: m.username.clone(),
                entitlement: m.entitlement.clone(),
            })
            .collect(),
    })
}

/// The drifted identities worth a reconcile. Not those a reconcile already waits for or
/// runs for (a pass in flight reads the apps itself), nor those whose removal a breaker
/// holds until its approval re-queues them (`busy`: at 2,000 identities a bad commit's
/// 500 held contractors were re-read on four apps at every scan, and the leavers beside
/// them slowed to 2 s). Nor those whose account is missing
/// because it was never made, whose status records none here (`provisioned` says no):
/// their first pass, queued or retrying on its own, makes it, and a scan that re-queued
/// every joiner of a backlog each poll interval only lengthened the queue they were in.
/// An account that existed and is gone (deleted downstream) is drift like any other.
/// Nor those whose Identity changed after the scan took what status said (`changed`):
/// a pass wrote it, having read the app itself while the scan listed it, so the scan
/// compared the app with an older ledger (at 10,000 identities a SCIM scan takes a
/// minute, and joiners provisioned in that minute went round again, read on every app).
/// Drift that is real and stays is found by the next scan. Pure.
pub fn to_look_at(
    assessment: &Assessment,
    provisioned: impl Fn(&str) -> bool,
    busy: impl Fn(&str) -> bool,
    changed: impl Fn(&str) -> bool,
) -> Vec<&str> {
    assessment
        .drifted
        .keys()
        .map(String::as_str)
        .filter(|name| !busy(name) && !changed(name))
        .filter(|name| !assessment.absent.contains(*name) || provisioned(name))
        .collect()
}

/// Whether `identity`'s status records an account on `key`, made or adopted.
fn holds_account(identity: &crate::api::Identity, key: &ConnectorKey) -> bool {
    identity.status.as_ref().is_some_and(|s| {
        s.accounts
            .iter()
            .any(|a| a.connector == key.to_string() && a.external_id.is_some())
    })
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn ledger_of(identity: &crate::api::Identity, key: &ConnectorKey) -> Ledger {
    let entry = identity
        .status
        .as_ref()
        .and_then(|s| s.accounts.iter().find(|a| a.connector == key.to_string()));
    entry.map_or_else(Ledger::default, |e| Ledger {
        granted: e.entitlements.iter().cloned().collect(),
        disabled_at: e.disabled_at.as_ref().map(|t| t.0),
    })
}

/// Revokes each stray membership in an authoritative entitlement through the one write
/// path, within the revocation budget; returns the ones not removed (failed or held).
async fn remove_strays(
    ctx: &Context,
    connector: &Connector,
    key: &ConnectorKey,
    backend: &dyn Backend,
    assessment: &Assessment,
    feeds: Feeds,
    now: Timestamp,
) -> Vec<inventory::Stray> {
    let mut failed = Vec::new();
    for stray in &assessment.strays {
        // A member is no Identity: it is counted under its downstream username.
        let who = format!("member:{}", stray.username);
        let account = ObservedAccount {
            id: stray.account_id.clone(),
            username: stray.username.clone(),
            owner: None,
            active: true,
            attributes: Default::default(),
            entitlements: [stray.entitlement.clone()].into(),
            version: None,
        };
        let write = Write {
            connector,
            key,
            backend,
            subject: Subject::Member {
                username: &stray.username,
            },
            removing: Removing {
                who: &who,
                cause: Cause::Policy,
                feeds,
                marked: assessment.managed + assessment.orphaned.len(),
            },
            desired: None,
            observed: Some(&account),
            grounds: None,
            now,
        };
        let changes = vec![Change::Revoke(stray.entitlement.clone())];
        let written = write::write(ctx, &write, changes).await;
        if written.tried || written.failed.is_some() {
            let read = backend.observe(&stray.username).await;
            let read_back = match &read {
                Ok(found) => Ok(found.as_ref()),
                Err(e) => Err(e.to_string()),
            };
            write::record(ctx, &write, &written, read_back).await;
        }
        if written.held.is_some() || written.failed.is_some() {
            failed.push(stray.clone());
        }
    }
    failed
}

/// The differences still standing after the scan, bounded.
fn drift_lines(a: &Assessment, strays: &[inventory::Stray], mode: ConnectorMode) -> Vec<String> {
    let observe = mode == ConnectorMode::Observe;
    let identities = a
        .drifted
        .iter()
        .map(|(identity, first)| format!("Identity {identity:?}: {first}"));
    let strays = strays.iter().map(|s| {
        format!(
            "{:?} holds {:?} but is not Roster's",
            s.username, s.entitlement
        )
    });
    let orphans = a
        .orphaned
        .iter()
        .map(|u| format!("{u:?} carries Roster's mark but no Identity claims it"));
    let mut lines: Vec<String> = identities
        .chain(strays)
        .chain(orphans)
        .take(DRIFT_LINES)
        .collect();
    if observe && !lines.is_empty() {
        lines.truncate(DRIFT_LINES - 1);
        lines.push("Observe mode: reported only, nothing changed".into());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_looks_again_at_drift_but_not_at_joiners_on_their_way() {
        let mut a = Assessment::default();
        for (who, why) in [
            ("ada", "missing group eng"),
            ("bob", "account does not exist"),
            ("carol", "account does not exist"),
            ("dave", "missing group eng"),
        ] {
            a.drifted.insert(who.into(), why.into());
        }
        a.absent = ["bob".into(), "carol".into()].into();
        // carol's account was made and is gone downstream: drift. bob's never was.
        let provisioned = |n: &str| ["ada", "carol", "dave"].contains(&n);
        let waiting = |n: &str| n == "dave";
        let unchanged = |_: &str| false;
        assert_eq!(
            to_look_at(&a, provisioned, waiting, unchanged),
            ["ada", "carol"]
        );
        assert_eq!(
            to_look_at(&a, |_| false, |_| false, unchanged),
            ["ada", "dave"],
            "an account that differs is drift whatever status says"
        );
        // ada's pass wrote her status while the scan listed the app: the scan's view
        // of her is the older one.
        assert_eq!(
            to_look_at(&a, provisioned, waiting, |n| n == "ada"),
            ["carol"]
        );
    }
}
