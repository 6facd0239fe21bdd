//! One identity on one connector, connector-agnostic: observe → plan → write (the one
//! path, with the breakers and the evidence) → read back → settle (pure).

use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;

use super::{outcome, report::AccountReport};
use crate::{
    api::{AccountState, AccountStatus, Connector, ConnectorMode, Identity},
    controller::{
        Context,
        hold::{self, Removing},
        status::truncate,
        write::{self, Subject, Write, Written},
    },
    lifecycle::{
        ConnectorKey, DesiredAccount, Managed, ObservedAccount,
        audit::Grounds,
        budget::{Cause, Feeds, breaker_for},
        held::{Recorded, removal_only},
        plan::{Ledger, Policy, plan},
    },
};

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
    /// Whether the Identity is leaving (Terminated, expired or being deleted).
    pub leaving: bool,
    /// What feeds the connector's desired state.
    pub feeds: Feeds,
    /// What the changes are grounded in, for the audit.
    pub grounds: Grounds,
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
    sync_on(ctx, input, &connector, backend.as_ref()).await
}

/// Syncs one account on `backend`, the app `connector` describes, and reports.
async fn sync_on(
    ctx: &Context,
    input: Input<'_>,
    connector: &Connector,
    backend: &dyn crate::connector::Connector,
) -> AccountReport {
    let key = input.key;
    let blanked = input
        .desired
        .filter(|_| !backend.mirrors_attributes())
        .map(DesiredAccount::without_attributes);
    let desired = blanked.as_ref().or(input.desired);
    let username = input.identity.spec.username.as_str();
    let identity = identity_name(input.identity);
    let ledger = ledger_of(input.previous);
    let policy = Policy::of(&connector.spec, username, input.now, backend.name_case());
    if let Some(report) = held_unread(ctx, &input, connector, desired, &ledger, &policy).await {
        return report;
    }
    let observed = if needs_no_read(ctx, &input, connector, backend) {
        None
    } else {
        match backend.observe(username).await {
            Ok(o) => o,
            Err(e) => return failed(&input, e.reason(), e.to_string()),
        }
    };
    let first = plan(
        &identity,
        desired,
        observed.as_ref(),
        &ledger,
        input.managed,
        &policy,
    );
    let enforce = connector.spec.mode == ConnectorMode::Enforce;
    let write = Write {
        connector,
        key,
        backend,
        subject: Subject::Identity(input.identity),
        removing: Removing {
            who: &identity,
            cause: input.cause,
            feeds: input.feeds,
            marked: 0,
        },
        desired,
        observed: observed.as_ref(),
        grounds: Some(&input.grounds),
        now: input.now,
    };
    let written = write::write(ctx, &write, first.changes.clone()).await;
    let mut error = written.held.clone().map(|held| (hold::HELD, held));
    if let Some(refused) = written.refused.clone() {
        error = error.or(Some(("OutsideConnectorBounds", refused)));
    }
    if let Some((_, e)) = &written.failed {
        error = error.or(Some((e.reason(), e.to_string())));
    }
    let (verified, read_back, unread) = read_back(ctx, &write, &written, backend, username).await;
    error = error.or(unread);
    let applied = written.applied;
    let failed = written.failed.as_ref().map(|(c, _)| c);
    outcome::settle(outcome::Facts {
        key,
        identity: &identity,
        leaving: input.leaving,
        desired,
        observed: observed.as_ref(),
        verified: verified.as_ref(),
        ledger: &ledger,
        managed: input.managed,
        policy: &policy,
        enforce,
        previous: input.previous,
        applied: &applied,
        failed,
        read_back,
        counted: &applied
            .iter()
            .filter_map(|c| breaker_for(c, input.cause))
            .collect::<Vec<_>>(),
        error,
        now: input.now,
    })
}

/// The account after `written`, as the app says it is: the answers to the writes when
/// they are its read-back, else a fresh read when anything was tried, else what was
/// observed before; whether it was read after the writes; and why a read failed. Records
/// the evidence of the writes either way.
async fn read_back(
    ctx: &Context,
    write: &Write<'_>,
    written: &Written,
    backend: &dyn crate::connector::Connector,
    username: &str,
) -> (
    Option<ObservedAccount>,
    bool,
    Option<(&'static str, String)>,
) {
    let observed = write.observed.cloned();
    if let Some(answer) = written.answered.clone() {
        // A joiner's create and grants, each answered by the app with its result: that
        // is the read-back, and a second read would double the joiner's cost at the app.
        write::record(ctx, write, written, Ok(Some(&answer))).await;
        return (Some(answer), true, None);
    }
    if !written.tried {
        if written.failed.is_some() {
            write::record(ctx, write, written, Ok(observed.as_ref())).await;
        }
        return (observed, true, None);
    }
    // Read back: status reports what the app says now, not what Roster asked for.
    match backend.observe(username).await {
        Ok(found) => {
            write::record(ctx, write, written, Ok(found.as_ref())).await;
            (found, true, None)
        }
        Err(e) => {
            let message = e.to_string();
            write::record(ctx, write, written, Err(message.clone())).await;
            (observed, false, Some((e.reason(), message)))
        }
    }
}

/// The report of a pass held before reading the account: a policy removal, by the
/// ledger nothing else, on an enabled account of Roster's, while a breaker it needs is
/// tripped (see [`crate::lifecycle::held`]). `None`: the pass reads as usual.
async fn held_unread(
    ctx: &Context,
    input: &Input<'_>,
    connector: &Connector,
    desired: Option<&DesiredAccount>,
    ledger: &Ledger,
    policy: &Policy,
) -> Option<AccountReport> {
    let previous = input.previous?;
    if input.leaving || connector.spec.mode != ConnectorMode::Enforce {
        return None;
    }
    let identity = identity_name(input.identity);
    let recorded = Recorded {
        identity: &identity,
        id: previous.external_id.as_deref()?,
        username: &input.identity.spec.username,
        active: previous.state == AccountState::Active,
    };
    let removal = removal_only(
        recorded,
        desired,
        ledger,
        input.managed,
        policy,
        input.cause,
    )?;
    let why = hold::held_before_read(
        ctx,
        connector,
        input.key,
        &identity,
        &removal.breakers,
        input.now,
    )
    .await?;
    let mut report = failed(input, hold::HELD, why);
    report.entry.drift = removal.drift;
    report.entry.drift.truncate(outcome::DRIFT_LINES);
    Some(report)
}

/// Whether the account is a joiner's first on an app that refuses duplicates, under a
/// name the app's last scan did not list: its create needs no read first (see
/// `controller::listed`). Never for a leaver, whose probe must find an account a crash
/// kept out of status, nor once status holds an entry here, a failed create's included.
fn needs_no_read(
    ctx: &Context,
    input: &Input<'_>,
    connector: &Connector,
    backend: &dyn crate::connector::Connector,
) -> bool {
    input.desired.is_some()
        && input.previous.is_none()
        && !input.leaving
        && backend.refuses_duplicates()
        && ctx.listed.unlisted(
            &input.key.to_string(),
            connector.metadata.generation,
            backend.name_case(),
            &input.identity.spec.username,
        )
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
        unowned_access: None,
        unfinished: false,
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

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
