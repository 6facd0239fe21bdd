//! The one path every downstream write takes, whoever planned it (an Identity's pass or
//! the inventory scan): nothing in Observe mode; grants outside the Connector's bounds
//! are refused; the breakers next, which take out what does not fit; then execute; then
//! evidence — an Event on the object the change is about and a structured log line —
//! for every change tried.

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::{
    Context,
    hold::{self, Removing},
    status::publish,
};
use crate::{
    api::{Connector, ConnectorMode, Identity},
    connector::{Connector as Backend, ConnectorError},
    lifecycle::{ConnectorKey, DesiredAccount, ObservedAccount, bounds::Bounds, plan::Change},
    provision::execute,
};

/// What a write is about: where its evidence goes.
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    /// An Identity's own account: Events on the Identity.
    Identity(&'a Identity),
    /// A member of an authoritative entitlement whom no Identity claims (the scan's
    /// strays): Events on the Connector, naming the member.
    Member {
        /// Its downstream username.
        username: &'a str,
    },
}

/// One account's planned changes and everything needed to carry them out.
pub struct Write<'a> {
    /// The Connector the account lives on.
    pub connector: &'a Connector,
    /// Its key.
    pub key: &'a ConnectorKey,
    /// Its live backend.
    pub backend: &'a dyn Backend,
    /// Whom the changes are about.
    pub subject: Subject<'a>,
    /// The account's removals, as the breakers see them.
    pub removing: Removing<'a>,
    /// What the account should be (`None`: no account).
    pub desired: Option<&'a DesiredAccount>,
    /// The account as planned from (`None`: the plan creates it).
    pub observed: Option<&'a ObservedAccount>,
    /// Now.
    pub now: Timestamp,
}

/// What became of the planned changes.
#[derive(Debug, Default)]
pub struct Written {
    /// Whether anything was tried downstream (Enforce, with changes left after the
    /// breakers).
    pub tried: bool,
    /// Changes that succeeded, in order.
    pub applied: Vec<Change>,
    /// Why the breakers held some changes back, if they did.
    pub held: Option<String>,
    /// Why grants were refused as outside the Connector's bounds, if any were.
    pub refused: Option<String>,
    /// The change that failed, and why; nothing after it was tried.
    pub failed: Option<(Change, ConnectorError)>,
}

/// Carries out `changes` for one account through the breakers, execute and evidence.
pub async fn write(ctx: &Context, w: &Write<'_>, mut changes: Vec<Change>) -> Written {
    let mut written = Written::default();
    if w.connector.spec.mode != ConnectorMode::Enforce || changes.is_empty() {
        return written;
    }
    match refuse_out_of_bounds(w, &mut changes).await {
        Ok(None) => {}
        Ok(Some(why)) => {
            tracing::warn!(connector = %w.key, who = w.removing.who, reason = %why, "grant refused");
            publish_refusal(ctx, w, &why).await;
            written.refused = Some(why);
        }
        Err(failed) => {
            // The app could not say whether a grant is privileged: nothing is written.
            evidence(ctx, w, &failed.0, Some(&failed.1)).await;
            written.failed = Some(failed);
            return written;
        }
    }
    written.held = hold::hold(ctx, &w.removing, w.connector, w.key, &mut changes, w.now).await;
    if changes.is_empty() {
        return written;
    }
    written.tried = true;
    let outcome =
        execute::execute(w.backend, w.removing.who, w.desired, w.observed, &changes).await;
    for change in &outcome.applied {
        evidence(ctx, w, change, None).await;
    }
    if let Some((change, e)) = &outcome.failed {
        evidence(ctx, w, change, Some(e)).await;
    }
    written.applied = outcome.applied;
    written.failed = outcome.failed;
    written
}

/// Takes out of `changes` the grants the Connector may not make: outside its
/// `allowedEntitlements`, or privileged and not named there exactly. Returns why, if any
/// were; a failed privilege check is the failed change.
async fn refuse_out_of_bounds(
    w: &Write<'_>,
    changes: &mut Vec<Change>,
) -> Result<Option<String>, (Change, ConnectorError)> {
    let bounds = Bounds::new(&w.connector.spec.allowed_entitlements);
    let mut refused = Vec::new();
    for change in changes.iter() {
        let Change::Grant(e) = change else { continue };
        if !bounds.allows(e) {
            refused.push((e.clone(), format!("{e:?} is outside allowedEntitlements")));
        } else if w.backend.knows_privilege() && !bounds.names(e) {
            match w.backend.privilege(e).await {
                Ok(Some(why)) => refused.push((
                    e.clone(),
                    format!("{why}: privileged, so only granted when allowedEntitlements lists {e:?} by name"),
                )),
                Ok(None) => {}
                Err(err) => return Err((change.clone(), err)),
            }
        }
    }
    if refused.is_empty() {
        return Ok(None);
    }
    changes.retain(|c| !matches!(c, Change::Grant(e) if refused.iter().any(|(r, _)| r == e)));
    let why: Vec<String> = refused.into_iter().map(|(_, why)| why).collect();
    Ok(Some(format!("grant refused: {}", why.join("; "))))
}

/// A Warning Event for refused grants, on the object they were for.
async fn publish_refusal(ctx: &Context, w: &Write<'_>, why: &str) {
    let note = format!("{}: {why}", w.key);
    match w.subject {
        Subject::Identity(identity) => {
            publish(
                &ctx.recorder,
                identity,
                EventType::Warning,
                "GrantRefused",
                "Grant",
                &note,
            )
            .await;
        }
        Subject::Member { .. } => {
            publish(
                &ctx.recorder,
                w.connector,
                EventType::Warning,
                "GrantRefused",
                "Grant",
                &note,
            )
            .await;
        }
    }
}

/// An Event and a structured log line for one downstream change (design: every change
/// leaves evidence).
async fn evidence(ctx: &Context, w: &Write<'_>, change: &Change, error: Option<&ConnectorError>) {
    let key = w.key;
    match w.subject {
        Subject::Identity(identity) => {
            let name = w.removing.who;
            let what = match error {
                None => execute::describe(change),
                Some(_) => execute::intent(change),
            };
            match error {
                None => {
                    tracing::info!(identity = %name, connector = %key, change = %what, outcome = "ok", "downstream change")
                }
                Some(e) => {
                    tracing::warn!(identity = %name, connector = %key, change = %what, outcome = "error", error = %e, "downstream change")
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
            let action = execute::verb(change);
            publish(&ctx.recorder, identity, type_, reason, action, &note).await;
        }
        Subject::Member { username } => {
            let (type_, reason, note) = match error {
                None => (
                    EventType::Normal,
                    "RevokedStray",
                    format!(
                        "{} from {username:?}, a member Roster did not add (membership Authoritative)",
                        execute::describe(change)
                    ),
                ),
                Some(e) => (
                    EventType::Warning,
                    "DownstreamError",
                    format!(
                        "failed to {} from {username:?}: {e}",
                        execute::intent(change)
                    ),
                ),
            };
            match error {
                None => {
                    tracing::info!(connector = %key, account = %username, change = %note, outcome = "ok", "downstream change")
                }
                Some(e) => {
                    tracing::warn!(connector = %key, account = %username, change = %note, outcome = "error", error = %e, "downstream change")
                }
            }
            let action = execute::verb(change);
            publish(&ctx.recorder, w.connector, type_, reason, action, &note).await;
        }
    }
}
