//! One identity on one connector: observe → plan → execute → read back, with an Event
//! and a log line for every downstream change.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::runtime::{events::EventType, reflector::ObjectRef};

use super::report::AccountReport;
use crate::{
    api::{AccountState, AccountStatus, Connector, ConnectorMode, Identity},
    controller::{
        Context, hold,
        status::{publish, truncate},
    },
    lifecycle::{
        ConnectorKey, DesiredAccount, Managed, ObservedAccount,
        budget::Cause,
        plan::{Ledger, Plan, Policy, Standing, ledger_after, plan},
    },
    provision::execute,
};

/// The most drift lines kept per account (the CRD bounds the list at 16).
const DRIFT_LINES: usize = 16;

/// What the pass works from.
pub struct Input<'a> {
    /// The Identity.
    pub identity: &'a Identity,
    /// The connector.
    pub key: &'a ConnectorKey,
    /// What the identity should have there; `None`: nothing.
    pub desired: Option<&'a DesiredAccount>,
    /// The entry status had for this connector.
    pub previous: Option<&'a AccountStatus>,
    /// The entitlements Roles name on this connector, and their membership authority.
    pub managed: &'a Managed,
    /// Why the account would lose access, if it does.
    pub cause: Cause,
    /// Now.
    pub now: Timestamp,
}

/// Syncs one account and reports.
pub async fn sync(ctx: &Context, input: Input<'_>) -> AccountReport {
    let key = input.key;
    let Some(connector) = ctx
        .stores
        .connectors
        .get(&ObjectRef::<Connector>::new(&key.name).within(&key.namespace))
    else {
        return failed(
            &input,
            "ConnectorNotFound",
            format!("Connector {key} does not exist"),
        );
    };
    let backend = match ctx.backends.get(&ctx.client, &connector).await {
        Ok(b) => b,
        Err(e) => return failed(&input, e.reason(), e.to_string()),
    };
    let blanked = input
        .desired
        .filter(|_| !backend.mirrors_attributes())
        .map(DesiredAccount::without_attributes);
    let desired = blanked.as_ref().or(input.desired);
    let username = input.identity.spec.username.as_str();
    let observed = match backend.observe(username).await {
        Ok(o) => o,
        Err(e) => return failed(&input, e.reason(), e.to_string()),
    };
    let identity = identity_name(input.identity);
    let ledger = ledger_of(input.previous);
    let policy = Policy::of(&connector.spec, username, input.now);
    let first = plan(
        &identity,
        desired,
        observed.as_ref(),
        &ledger,
        input.managed,
        &policy,
    );
    let enforce = connector.spec.mode == ConnectorMode::Enforce;

    let (mut verified, mut error, mut removed_now, mut deleted_now) =
        (observed.clone(), None, false, false);
    let mut changes = first.changes.clone();
    if enforce
        && let Some(held) = hold::hold(
            ctx,
            &identity,
            input.cause,
            &connector,
            key,
            &mut changes,
            input.now,
        )
        .await
    {
        error = Some((hold::HELD, held));
    }
    if enforce && !changes.is_empty() {
        let outcome = execute::execute(
            backend.as_ref(),
            &identity,
            desired,
            observed.as_ref(),
            &changes,
        )
        .await;
        for change in &outcome.applied {
            removed_now |=
                matches!(change, crate::lifecycle::plan::Change::Revoke(_)) || change.is_removal();
            deleted_now |= *change == crate::lifecycle::plan::Change::Delete;
            evidence(ctx, input.identity, key, change, None).await;
        }
        if let Some((change, e)) = &outcome.failed {
            evidence(ctx, input.identity, key, change, Some(&e.to_string())).await;
            error = error.or(Some((e.reason(), e.to_string())));
        }
        // Read back: status reports what the app says now, not what Roster asked for.
        match backend.observe(username).await {
            Ok(o) => verified = o,
            Err(e) => error = error.or(Some((e.reason(), e.to_string()))),
        }
    }

    let next_ledger = if enforce {
        ledger_after(desired, verified.as_ref(), &ledger, input.now)
    } else {
        ledger.clone()
    };
    let remaining = plan(
        &identity,
        desired,
        verified.as_ref(),
        &next_ledger,
        input.managed,
        &policy,
    );
    // Only access through an account Roster owns is Roster's to remove: an account under
    // the same username that is not Roster's (a conflict) neither blocks deprovisioning
    // nor appears in the receipt.
    let ours = |a: &ObservedAccount| a.owner.as_deref() == Some(identity.as_str());
    let access_gone = match &verified {
        None => true,
        Some(a) if !ours(a) => true,
        Some(a) => {
            !a.active
                && a.entitlements.iter().all(|e| {
                    !next_ledger.granted.contains(e) && !input.managed.authoritative.contains(e)
                })
        }
    };
    let managed = observed.as_ref().is_some_and(ours)
        || verified.as_ref().is_some_and(ours)
        || input.previous.is_some_and(|p| {
            matches!(
                p.state,
                AccountState::Active | AccountState::Disabled | AccountState::Deleted
            )
        });
    let mut drift: Vec<String> = remaining.drift.iter().take(DRIFT_LINES).cloned().collect();
    if !enforce && !remaining.changes.is_empty() {
        drift.truncate(DRIFT_LINES - 1);
        drift.push(format!(
            "Observe mode: {} change(s) not made",
            remaining.changes.len()
        ));
    }
    let entry = AccountStatus {
        connector: key.to_string(),
        external_id: verified.as_ref().map(|a| a.id.clone()),
        state: state(
            &remaining,
            verified.as_ref(),
            desired.is_some() || input.previous.is_some(),
        ),
        entitlements: next_ledger.granted.iter().cloned().collect(),
        last_verified: if error.is_none() && drift.is_empty() {
            Some(Time(input.now))
        } else {
            input.previous.and_then(|p| p.last_verified.clone())
        },
        drift,
        disabled_at: next_ledger.disabled_at.map(Time),
        error: error.as_ref().map(|(_, m)| truncate(m, 512)),
    };
    AccountReport {
        key: key.clone(),
        entry,
        error,
        access_gone,
        managed,
        removed_now,
        deleted_now,
    }
}

/// The ownership mark's value: the Identity's name.
pub fn identity_name(identity: &Identity) -> String {
    kube::ResourceExt::name_any(identity)
}

fn ledger_of(previous: Option<&AccountStatus>) -> Ledger {
    previous.map_or_else(Ledger::default, |p| Ledger {
        granted: p.entitlements.iter().cloned().collect(),
        disabled_at: p.disabled_at.as_ref().map(|t| t.0),
    })
}

fn state(plan: &Plan, account: Option<&ObservedAccount>, known: bool) -> AccountState {
    match (plan.standing, account) {
        (Standing::Conflict, _) => AccountState::Conflict,
        (Standing::Protected, _) => AccountState::Protected,
        (_, Some(a)) if a.active => AccountState::Active,
        (_, Some(_)) => AccountState::Disabled,
        (_, None) if known && plan.changes.is_empty() => AccountState::Deleted,
        (_, None) => AccountState::Pending,
    }
}

/// A report for a pass that could not reach the app: the previous entry is kept (the
/// ledger must not be lost), with the error.
fn failed(input: &Input<'_>, reason: &'static str, message: String) -> AccountReport {
    let mut entry = input.previous.cloned().unwrap_or_else(|| AccountStatus {
        connector: input.key.to_string(),
        ..Default::default()
    });
    entry.error = Some(truncate(&message, 512));
    AccountReport {
        key: input.key.clone(),
        entry,
        error: Some((reason, message)),
        access_gone: false,
        managed: input.previous.is_some_and(|p| {
            matches!(
                p.state,
                AccountState::Active | AccountState::Disabled | AccountState::Deleted
            )
        }),
        removed_now: false,
        deleted_now: false,
    }
}

/// An Event and a structured log line for one downstream change (design: every change
/// leaves evidence).
async fn evidence(
    ctx: &Context,
    identity: &Identity,
    key: &ConnectorKey,
    change: &crate::lifecycle::plan::Change,
    error: Option<&str>,
) {
    let name = identity_name(identity);
    let what = match error {
        None => execute::describe(change),
        Some(_) => execute::intent(change),
    };
    match error {
        None => {
            tracing::info!(identity = %name, connector = %key, change = %what, outcome = "ok", "downstream change")
        }
        Some(e) => {
            tracing::warn!(identity = %name, connector = %key, change = %what, outcome = "error", error = e, "downstream change")
        }
    }
    let (type_, reason, note) = match error {
        None => (
            EventType::Normal,
            execute::verb(change),
            format!("{key}: {what}"),
        ),
        Some(e) => (
            EventType::Warning,
            "DownstreamError",
            format!("{key}: failed to {what}: {e}"),
        ),
    };
    publish(
        &ctx.recorder,
        identity,
        type_,
        reason,
        execute::verb(change),
        &note,
    )
    .await;
}
