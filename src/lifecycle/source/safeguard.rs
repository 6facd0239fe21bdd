//! The import safeguard: whether one read's leavers may be applied. The classic outage
//! is a broken export — an empty file, a filter that matches nobody — read as "everyone
//! left". A source may make at most N leavers, or P % of its active Identities, in a
//! sliding window; past that, or when it is empty while it owns Identities, it holds
//! every leaver of the read until a person approves. All or nothing per read: a read
//! whose leavers do not all fit applies none of them, so a bad export removes no one
//! rather than the first few. Pure.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use crate::{
    api::{ImportSafeguard, SourceQuarantine},
    lifecycle::budget::{Limits, Removal, counted},
};

/// How many held names a quarantine lists.
const LISTED: usize = 64;

/// What the safeguard judges.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The source's limits.
    pub safeguard: &'a ImportSafeguard,
    /// Rows in the export read.
    pub rows: usize,
    /// Identities the source owns that are not leaving.
    pub active: usize,
    /// The Identities this read would make leavers, by name.
    pub planned: &'a [&'a str],
    /// Leavers already counted, from the Identities' `roster.dev/source-removed-at`.
    pub recorded: &'a [Removal],
    /// The source's approval annotation, when usable.
    pub approved_at: Option<Timestamp>,
    /// The quarantine the source's status records.
    pub quarantine: Option<&'a SourceQuarantine>,
    /// The instant of the read.
    pub now: Timestamp,
}

/// The safeguard's decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Apply the leavers, counted at this time: now, or the approval's time when an
    /// approval released them (so that what a person approved does not count against the
    /// next window).
    Release(Timestamp),
    /// Hold every leaver of the read.
    Hold(SourceQuarantine),
}

/// The limits of `safeguard`, as the Connector's budget counts them.
pub fn limits(safeguard: &ImportSafeguard) -> Limits {
    let count = |n: i32| usize::try_from(n.max(0)).unwrap_or(0);
    Limits::Budget {
        max: count(safeguard.max_removals),
        percent: count(safeguard.max_percent.min(100)),
        window: safeguard.window_seconds,
        what: "leavers from this source",
    }
}

/// Whether the read's leavers may be applied.
pub fn judge(input: &Inputs<'_>) -> Verdict {
    let planned = input.planned;
    if planned.is_empty() {
        return Verdict::Release(input.now);
    }
    if let (Some(q), Some(approved)) = (input.quarantine, input.approved_at)
        && approved >= q.since.0
        && planned.len() <= usize::try_from(q.held_count).unwrap_or(0)
    {
        return Verdict::Release(approved);
    }
    let limits = limits(input.safeguard);
    let reason = if input.rows == 0 && input.active > 0 {
        Some(format!(
            "the export has no rows while this source owns {} active Identities: an empty source is held, never read as everyone leaving",
            input.active
        ))
    } else {
        let mut total = counted(
            input.recorded,
            limits.window(),
            input.approved_at,
            input.now,
        );
        total.extend(planned.iter().copied());
        limits.exceeded(total.len(), input.active)
    };
    let Some(reason) = reason else {
        return Verdict::Release(input.now);
    };
    let held_count = i32::try_from(planned.len()).unwrap_or(i32::MAX);
    // An approval covers what was held when it was given: when more are held now, the
    // quarantine starts again and needs a new one.
    let since = match input.quarantine {
        Some(q) if held_count <= q.held_count => q.since.clone(),
        _ => Time(input.now),
    };
    let mut held: Vec<String> = planned.iter().map(|n| (*n).to_owned()).collect();
    held.sort();
    held.truncate(LISTED);
    Verdict::Hold(SourceQuarantine {
        since,
        message: format!(
            "{reason}; {held_count} leavers held: approve with the annotation roster.dev/approve-removals set to the current time (RFC 3339)"
        ),
        held_count,
        held,
    })
}

#[cfg(test)]
#[path = "safeguard_tests.rs"]
mod tests;
