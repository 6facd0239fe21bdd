//! The one path every downstream write takes, whoever planned it (an Identity's pass or
//! the inventory scan): nothing in Observe mode; grants outside the Connector's bounds
//! are refused; the breakers next, which take out what does not fit; then execute. Once
//! the caller has read the account back, [`record`] leaves the evidence: for every
//! change tried, one audit record — a structured log line and an Event on the object the
//! change is about — saying what caused it, what changed, when, and what reading back
//! found.

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::{
    Context,
    hold::{self, Removing},
    status::{publish, publish_record},
};
use crate::{
    api::{Connector, ConnectorMode, Identity},
    connector::{Connector as Backend, ConnectorError},
    lifecycle::{
        ConnectorKey, DesiredAccount, ObservedAccount,
        audit::{self, Approval, Facts, Grounds, Outcome},
        bounds::Bounds,
        plan::Change,
    },
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
    /// What an Identity's changes are grounded in, for the audit; `None` for the scan's.
    pub grounds: Option<&'a Grounds>,
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
    /// The approval that released this account's held removals, if one did.
    pub approval: Option<Approval>,
    /// The account as the app's answers showed it, when they are its read-back
    /// ([`execute::Outcome::answered`]).
    pub answered: Option<ObservedAccount>,
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
            written.failed = Some(failed);
            return written;
        }
    }
    let decision = hold::hold(ctx, &w.removing, w.connector, w.key, &mut changes, w.now).await;
    written.held = decision.held;
    written.approval = decision.released_by;
    if changes.is_empty() {
        return written;
    }
    written.tried = true;
    let outcome =
        execute::execute(w.backend, w.removing.who, w.desired, w.observed, &changes).await;
    written.applied = outcome.applied;
    written.answered = outcome.answered;
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

/// The evidence for what `written` tried: one audit record per change, as a log line
/// (target `roster::audit`) and an Event. `read_back` is the account as read after the
/// pass (`Ok(None)`: it does not exist), or why it could not be read.
pub async fn record(
    ctx: &Context,
    w: &Write<'_>,
    written: &Written,
    read_back: Result<Option<&ObservedAccount>, String>,
) {
    let (identity, account) = match w.subject {
        Subject::Identity(identity) => (Some(w.removing.who), identity.spec.username.as_str()),
        Subject::Member { username } => (None, username),
    };
    let connector = w.key.to_string();
    let failed = written
        .failed
        .as_ref()
        .map(|(c, e)| (c, e.reason(), e.to_string()));
    let facts = Facts {
        time: w.now,
        connector: &connector,
        identity,
        account,
        grounds: w.grounds,
        approval: written.approval.as_ref(),
        applied: &written.applied,
        failed,
        read_back,
    };
    for r in audit::records(&facts) {
        log(&r);
        let applied = matches!(r.outcome, Outcome::Applied);
        ctx.metrics
            .observe_downstream_change(&connector, execute::verb(&r.change), applied);
        let (type_, reason) = match &r.outcome {
            Outcome::Applied if r.identity.is_none() => (EventType::Normal, "RevokedStray"),
            Outcome::Applied => (EventType::Normal, execute::verb(&r.change)),
            Outcome::Failed { .. } => (EventType::Warning, "DownstreamError"),
        };
        let note = note(&r);
        let action = execute::verb(&r.change);
        match w.subject {
            Subject::Identity(identity) => {
                publish_record(&ctx.client, identity, type_, reason, action, &note).await;
            }
            Subject::Member { .. } => {
                publish_record(&ctx.client, w.connector, type_, reason, action, &note).await;
            }
        }
    }
}

/// The record as one structured log line: with `--log-format json`, one JSON object
/// whose fields are the record's.
fn log(r: &audit::Record) {
    let granted_by = match &r.cause {
        audit::Cause::Granted { by } => Some(
            by.iter()
                .map(|g| format!("{} (Role {})", g.role_binding, g.role))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    };
    let state = match &r.cause {
        audit::Cause::Lifecycle { state } => Some(state.as_str()),
        _ => None,
    };
    let (outcome, reason, error) = match &r.outcome {
        Outcome::Applied => ("ok", None, None),
        Outcome::Failed { reason, error } => ("error", Some(reason.as_str()), Some(error.as_str())),
    };
    let read_back_error = match &r.read_back {
        audit::ReadBack::Unread { reason } => Some(reason.as_str()),
        _ => None,
    };
    // Failures at WARN, as before: what filters warnings still sees them.
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "roster::audit",
                time = %r.time,
                connector = %r.connector,
                identity = r.identity.as_deref().map(tracing::field::display),
                account = %r.account,
                change = %execute::describe(&r.change),
                action = execute::verb(&r.change),
                entitlement = audit::entitlement(&r.change),
                cause = r.cause.kind(),
                granted_by,
                state,
                approved_at = r.approval.as_ref().map(|a| tracing::field::display(a.at)),
                approved_by = r.approval.as_ref().and_then(|a| a.by.as_deref()),
                outcome,
                reason,
                error,
                read_back = r.read_back.name(),
                read_back_error,
                "downstream change"
            )
        };
    }
    match &r.outcome {
        Outcome::Applied => line!(info),
        Outcome::Failed { .. } => line!(warn),
    }
}

/// The record in words, for its Event.
fn note(r: &audit::Record) -> String {
    let what = match &r.outcome {
        Outcome::Applied => execute::describe(&r.change),
        Outcome::Failed { error, .. } => {
            format!("failed to {}: {error}", execute::intent(&r.change))
        }
    };
    let whom = match &r.identity {
        Some(_) => String::new(),
        None => format!(" from {:?}", r.account),
    };
    let approval = r.approval.as_ref().map_or_else(String::new, |a| {
        format!(
            "; released by the approval of {} at {}",
            a.by.as_deref().unwrap_or("an unrecorded approver"),
            a.at
        )
    });
    format!(
        "{}: {what}{whom} ({}{approval}); {}",
        r.connector,
        r.cause.describe(),
        r.read_back.describe()
    )
}
