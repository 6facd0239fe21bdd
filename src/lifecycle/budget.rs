//! The breakers that bound removals on one Connector. A bad input — a wrong selector, a
//! deleted Role, an emptied file — turns many people into removals at once; a breaker
//! trips after a few and holds the rest for a person. Legitimate leavers are not
//! rationed: an explicit leaver is disabled at once, and only a wave of them is flagged
//! (or, by opt-in, held). Pure.

use std::collections::BTreeSet;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::plan::Change;
use crate::api::{BudgetedAt, ConnectorSpec, LeaverWave, RevocationBudget};

/// One counted removal: when, and which account (the Identity's name).
pub type Removal = (Timestamp, String);

/// Why an account loses access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The Identity itself left: `Suspended`, `Terminated` or past its own `validUntil`.
    /// A decision about this one person.
    ExplicitLeaver,
    /// A Role, RoleBinding, Connector or binding window changed, or the Identity object
    /// was deleted: a decision about many people at once.
    Policy,
}

impl Cause {
    /// The name status and Events use.
    pub fn name(self) -> &'static str {
        match self {
            Cause::ExplicitLeaver => "ExplicitLeaver",
            Cause::Policy => "Policy",
        }
    }

    /// Parses [`Cause::name`].
    pub fn parse(s: &str) -> Option<Self> {
        [Cause::ExplicitLeaver, Cause::Policy]
            .into_iter()
            .find(|c| c.name() == s)
    }
}

/// The three breakers of a Connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Breaker {
    /// Accounts disabled or deleted by policy, and explicit leavers' deletions.
    Removals,
    /// Accounts stripped of entitlements by policy (strays in authoritative groups too).
    Revocations,
    /// Explicit leavers' disables: a wave is flagged, and held only by opt-in.
    Leavers,
}

impl Breaker {
    /// Every breaker.
    pub const ALL: [Breaker; 3] = [Breaker::Removals, Breaker::Revocations, Breaker::Leavers];

    /// The name status uses.
    pub fn name(self) -> &'static str {
        match self {
            Breaker::Removals => "removals",
            Breaker::Revocations => "revocations",
            Breaker::Leavers => "leavers",
        }
    }

    /// Parses [`Breaker::name`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == s)
    }
}

/// What feeds one connector's desired state: an empty list of any of these while Roster
/// manages accounts there is a broken source (a failed sync, a pruned folder, a cache
/// gone wrong) far more often than a decision to remove everyone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Feeds {
    /// Roles naming an entitlement on the connector.
    pub roles: usize,
    /// RoleBindings binding such a Role.
    pub bindings: usize,
    /// Identities with an account wanted there, where the caller counted them (the
    /// inventory scan); `None` where a pass runs for one Identity.
    pub claimants: Option<usize>,
}

/// Why a policy removal on a connector fed by `feeds` is held outright — no budget, no
/// first few — when `managed` accounts are Roster's there; `None` when nothing is empty.
pub fn empty_feed(feeds: &Feeds, managed: usize) -> Option<String> {
    if managed == 0 {
        return None;
    }
    let empty = if feeds.roles == 0 {
        "no Role names an entitlement on this Connector"
    } else if feeds.bindings == 0 {
        "no RoleBinding binds a Role naming this Connector"
    } else if feeds.claimants == Some(0) {
        "no Identity has an account wanted on this Connector"
    } else {
        return None;
    };
    Some(format!(
        "{empty} while Roster manages {managed} accounts here: an empty list is held, never read as removing everyone"
    ))
}

impl Breaker {
    /// When this breaker last counted a removal on an account, as its status records.
    pub fn recorded(self, at: &BudgetedAt) -> Option<Timestamp> {
        let field = match self {
            Breaker::Removals => &at.removals,
            Breaker::Revocations => &at.revocations,
            Breaker::Leavers => &at.leavers,
        };
        field.as_ref().map(|t| t.0)
    }

    /// Records that this breaker counted a removal on an account `now`.
    pub fn record(self, at: &mut BudgetedAt, now: Timestamp) {
        let field = match self {
            Breaker::Removals => &mut at.removals,
            Breaker::Revocations => &mut at.revocations,
            Breaker::Leavers => &mut at.leavers,
        };
        *field = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
    }
}

/// The breaker that must let `change` through, for an account losing access by `cause`;
/// `None`: it is not a removal, or one that is never held (an explicit leaver's own
/// revocations: disable is reversible, and a leaver keeps nothing).
pub fn breaker_for(change: &Change, cause: Cause) -> Option<Breaker> {
    match (change, cause) {
        (Change::Delete, _) | (Change::Disable, Cause::Policy) => Some(Breaker::Removals),
        (Change::Disable, Cause::ExplicitLeaver) => Some(Breaker::Leavers),
        (Change::Revoke(_), Cause::Policy) => Some(Breaker::Revocations),
        _ => None,
    }
}

/// A breaker's limits, from the Connector's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limits {
    /// Trips past `max` accounts, or past `percent` of the managed accounts (one per
    /// window always fits the percentage).
    Budget {
        /// The most accounts per window.
        max: usize,
        /// The most accounts per window, as a percentage of the managed ones.
        percent: usize,
        /// The window, in seconds.
        window: i64,
        /// What is counted, for messages.
        what: &'static str,
    },
    /// A wave: more than the larger of `floor` and `percent` of the managed accounts.
    Wave {
        /// The least that counts as a wave.
        floor: usize,
        /// The share of the managed accounts that counts as a wave.
        percent: usize,
        /// The window, in seconds.
        window: i64,
        /// Whether a wave holds leavers (`holdLeaverWaves`) or only flags them.
        hold: bool,
    },
}

fn count(n: i32) -> usize {
    usize::try_from(n.max(0)).unwrap_or(0)
}

impl Limits {
    /// The limits `spec` sets for `breaker`.
    pub fn of(spec: &ConnectorSpec, breaker: Breaker) -> Self {
        match breaker {
            Breaker::Removals => Limits::Budget {
                max: count(spec.deletion_budget.max_removals),
                percent: count(spec.deletion_budget.max_percent.min(100)),
                window: spec.deletion_budget.window_seconds,
                what: "accounts removed",
            },
            Breaker::Revocations => {
                let RevocationBudget {
                    max_accounts,
                    max_percent,
                    window_seconds,
                } = &spec.revocation_budget;
                Limits::Budget {
                    max: count(*max_accounts),
                    percent: count((*max_percent).min(100)),
                    window: *window_seconds,
                    what: "accounts stripped of entitlements",
                }
            }
            Breaker::Leavers => {
                let LeaverWave {
                    min_leavers,
                    max_percent,
                    window_seconds,
                } = &spec.leaver_wave;
                Limits::Wave {
                    floor: count(*min_leavers),
                    percent: count((*max_percent).min(100)),
                    window: *window_seconds,
                    hold: spec.hold_leaver_waves,
                }
            }
        }
    }

    /// The window, in seconds.
    pub fn window(&self) -> i64 {
        match self {
            Limits::Budget { window, .. } | Limits::Wave { window, .. } => *window,
        }
    }

    /// Why `total` accounts in the window, with `managed` accounts on the connector, are
    /// too many; `None` when they fit.
    pub fn exceeded(&self, total: usize, managed: usize) -> Option<String> {
        match self {
            Limits::Budget {
                max,
                percent,
                window,
                what,
            } => {
                if total > *max {
                    return Some(format!(
                        "{total} {what} in {window}s would exceed the limit of {max}"
                    ));
                }
                (total > 1 && total * 100 > percent * managed.max(1)).then(|| {
                    format!(
                        "{total} {what} in {window}s would exceed {percent}% of {managed} managed accounts"
                    )
                })
            }
            Limits::Wave {
                floor,
                percent,
                window,
                ..
            } => {
                let threshold = (*floor).max(percent * managed / 100);
                (total > threshold).then(|| {
                    format!(
                        "{total} explicit leavers in {window}s: a wave (more than {threshold}, the larger of {floor} and {percent}% of {managed} managed accounts)"
                    )
                })
            }
        }
    }

    /// Whether exceeding the limits holds what comes next (a wave only flags, unless
    /// `holdLeaverWaves`).
    pub fn holds(&self) -> bool {
        match self {
            Limits::Budget { .. } => true,
            Limits::Wave { hold, .. } => *hold,
        }
    }
}

/// Why a breaker is tripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trip {
    /// When it tripped.
    pub since: Timestamp,
    /// Accounts counted in the window when it tripped, the refused one included.
    pub planned: usize,
    /// What a person reads.
    pub message: String,
}

/// The accounts that count at `now`: those inside the window of `window` seconds and
/// after the last approval, each account once (a disable and the later deletion are one).
pub fn counted(
    removals: &[Removal],
    window: i64,
    approved_at: Option<Timestamp>,
    now: Timestamp,
) -> BTreeSet<&str> {
    let start = now
        .checked_sub(SignedDuration::from_secs(window.max(0)))
        .unwrap_or(Timestamp::MIN);
    removals
        .iter()
        .filter(|(t, _)| *t > start && approved_at.is_none_or(|a| *t > a))
        .map(|(_, who)| who.as_str())
        .collect()
}

/// Whether an approval (an annotation's time) lifts `trip`.
pub fn approved(trip: &Trip, approved_at: Option<Timestamp>) -> bool {
    approved_at.is_some_and(|a| a >= trip.since)
}

/// How far ahead of the operator's clock an approval may be (clock skew between the
/// person's machine and the cluster).
pub const APPROVAL_SKEW: SignedDuration = SignedDuration::from_secs(120);

/// Why an approval annotation's value cannot be used at `now`; `None` when it can.
/// A time in the future would approve removals that have not happened yet.
pub fn approval_problem(value: &str, now: Timestamp) -> Option<String> {
    let at: Timestamp = match value.trim().parse() {
        Ok(t) => t,
        Err(_) => {
            return Some(format!(
                "{value:?} is not an RFC 3339 time such as 2026-12-01T12:00:00Z"
            ));
        }
    };
    let latest = now.checked_add(APPROVAL_SKEW).unwrap_or(Timestamp::MAX);
    (at > latest).then(|| {
        format!("{value} is in the future; an approval names a moment already passed, normally now")
    })
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
