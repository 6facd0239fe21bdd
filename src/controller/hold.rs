//! The breakers applied to a batch of planned changes, before execute: what does not fit
//! is taken out, with the reason; a breaker that trips, or a wave of leavers, gets its
//! Warning Event on the Connector, a metric, and a fresh look at the Connector's status.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::{events::EventType, reflector::ObjectRef};

use super::{
    Context,
    budget::{self, APPROVED_BY_ANNOTATION, Refused, Request},
    status::publish,
};
use crate::{
    api::{AccountState, Connector},
    lifecycle::{
        ConnectorKey,
        audit::Approval,
        budget::{Breaker, Cause, Feeds, breaker_for, empty_feed},
        plan::Change,
    },
};

/// The reason an account reports while a breaker holds its removal. Such an account is
/// not retried on a timer: the approval that releases it changes the Connector's
/// annotations, and that change re-queues the Connector's account holders.
pub const HELD: &str = "Quarantined";

/// How many accounts Roster manages on `key`, from the Identities' status.
pub fn managed_accounts(ctx: &Context, key: &ConnectorKey) -> usize {
    let key = key.to_string();
    ctx.stores
        .identities
        .state()
        .iter()
        .filter_map(|i| i.status.as_ref())
        .flat_map(|s| &s.accounts)
        .filter(|a| {
            a.connector == key && matches!(a.state, AccountState::Active | AccountState::Disabled)
        })
        .count()
}

/// One account's removals, as the breakers see them.
pub struct Removing<'a> {
    /// Whose account: the Identity's name (or `member:<username>` for a stray).
    pub who: &'a str,
    /// Why it loses access.
    pub cause: Cause,
    /// What feeds the connector's desired state: a policy removal from an empty source
    /// is held outright.
    pub feeds: Feeds,
    /// Accounts carrying Roster's mark as the caller saw them downstream (the scan), on
    /// top of what the Identities' status records.
    pub marked: usize,
}

/// What the breakers decided for one account's changes.
#[derive(Debug, Default)]
pub struct Decision {
    /// Why some changes were held, if any were.
    pub held: Option<String>,
    /// The account had been held, and this approval released it.
    pub released_by: Option<Approval>,
}

/// Takes out of `changes` what the account may not have now; says why, if anything was
/// held, and which approval released the rest if one did.
pub async fn hold(
    ctx: &Context,
    removing: &Removing<'_>,
    connector: &Connector,
    key: &ConnectorKey,
    changes: &mut Vec<Change>,
    now: Timestamp,
) -> Decision {
    let Removing {
        who,
        cause,
        feeds,
        marked,
    } = *removing;
    let breakers: BTreeSet<Breaker> = changes
        .iter()
        .filter_map(|c| breaker_for(c, cause))
        .collect();
    if breakers.is_empty() {
        return Decision::default();
    }
    let managed = managed_accounts(ctx, key).max(marked);
    let empty = if cause == Cause::Policy {
        empty_feed(&feeds, managed)
    } else {
        None
    };
    let mut held = Vec::new();
    let mut reserved = Vec::new();
    let mut released_by = None;
    for breaker in breakers {
        let req = Request {
            breaker,
            who,
            cause,
            managed,
            empty: empty.as_deref(),
            now,
        };
        let seed = || budget::recorded_removals(&ctx.stores.identities.state(), &key.to_string());
        match ctx.budgets.reserve(connector, req, seed) {
            Ok(ok) => {
                reserved.push(breaker);
                // Of two breakers' releases, the later approval is the one in force.
                released_by = [released_by, ok.released_by]
                    .into_iter()
                    .flatten()
                    .max_by_key(|a: &Approval| a.at);
                if let Some(wave) = ok.new_wave {
                    flag_wave(ctx, connector, key, &wave.message).await;
                }
            }
            Err(refused) => {
                held.push(refused_message(ctx, connector, key, breaker, &refused).await);
            }
        }
    }
    if held.is_empty() {
        return Decision {
            held: None,
            released_by,
        };
    }
    // A policy removal goes whole or not at all: an account stripped but left enabled,
    // or disabled but left in its groups, is a partial destructive action. (An explicit
    // leaver whose disable a wave holds is still stripped: its revokes need no breaker.)
    for breaker in reserved {
        ctx.budgets.unreserve(connector, breaker, who, now);
    }
    changes.retain(|c| breaker_for(c, cause).is_none());
    Decision {
        held: Some(held.join("; ")),
        released_by: None,
    }
}

/// Holds an account's removals, needing `breakers`, before anything is read, if one of
/// those breakers is tripped: says why, as [`hold`] would. `None`: none is tripped, and
/// nothing was reserved (the pass reads the account and goes through [`hold`]).
pub async fn held_before_read(
    ctx: &Context,
    connector: &Connector,
    key: &ConnectorKey,
    who: &str,
    breakers: &BTreeSet<Breaker>,
    now: Timestamp,
) -> Option<String> {
    let mut held = Vec::new();
    for &breaker in breakers {
        let refused = ctx
            .budgets
            .hold_if_tripped(connector, breaker, who, Cause::Policy, now);
        if let Some(refused) = refused {
            held.push(refused_message(ctx, connector, key, breaker, &refused).await);
        }
    }
    (!held.is_empty()).then(|| held.join("; "))
}

async fn flag_wave(ctx: &Context, connector: &Connector, key: &ConnectorKey, message: &str) {
    tracing::warn!(connector = %key, reason = %message, "wave of explicit leavers: disabling them all the same");
    ctx.metrics.observe_leaver_wave(&key.to_string());
    let note = format!(
        "{message}; they are disabled all the same (set holdLeaverWaves to hold such waves)"
    );
    publish(
        &ctx.recorder,
        connector,
        EventType::Warning,
        "LeaverWave",
        "Disable",
        &note,
    )
    .await;
    let _ = ctx.connector_triggers.send(ObjectRef::from_obj(connector));
}

async fn refused_message(
    ctx: &Context,
    connector: &Connector,
    key: &ConnectorKey,
    breaker: Breaker,
    refused: &Refused,
) -> String {
    let annotation = match breaker {
        Breaker::Leavers => budget::APPROVE_LEAVERS_ANNOTATION,
        Breaker::Removals | Breaker::Revocations => budget::APPROVE_ANNOTATION,
    };
    let message = format!(
        "{} on {key} are held: {}; approve with kubectl annotate connector -n {} {} --overwrite {annotation}=$(date -u +%FT%TZ) {APPROVED_BY_ANNOTATION}=$(kubectl auth whoami -o jsonpath='{{.status.userInfo.username}}')",
        what(breaker),
        refused.trip.message,
        key.namespace,
        key.name,
    );
    if refused.new {
        tracing::warn!(connector = %key, budget = breaker.name(), reason = %refused.trip.message, "budget exceeded: holding");
        ctx.metrics
            .observe_breaker_trip(&key.to_string(), breaker.name());
        publish(
            &ctx.recorder,
            connector,
            EventType::Warning,
            "Quarantined",
            "Hold",
            &message,
        )
        .await;
    }
    if refused.new || refused.newly_held {
        // The Connector's status lists who is held: it must learn of each newcomer.
        let _ = ctx.connector_triggers.send(ObjectRef::from_obj(connector));
    }
    message
}

fn what(breaker: Breaker) -> &'static str {
    match breaker {
        Breaker::Removals => "account removals",
        Breaker::Revocations => "revocations",
        Breaker::Leavers => "explicit leavers (a wave, held by holdLeaverWaves)",
    }
}
