//! What an IdentitySource's status says after a read: pure, from what the read found and
//! what applying it did.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{
        IdentitySourceStatus, SourceClash,
        conditions::{self, Desired},
    },
    lifecycle::source::{plan::Plan, safeguard::Verdict},
};

/// How many row problems status lists.
const ROW_ERRORS_LISTED: usize = 16;
/// How many clashes status lists.
const CLASHES_LISTED: usize = 32;

/// A read that could not be applied at all: the export is missing or malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The condition reason.
    pub reason: &'static str,
    /// What a person reads.
    pub message: String,
}

/// What one read did.
#[derive(Clone, Debug)]
pub struct Applied<'a> {
    /// Rows in the export.
    pub rows: usize,
    /// The plan of the read.
    pub plan: &'a Plan,
    /// The safeguard's decision on its leavers.
    pub verdict: &'a Verdict,
    /// Writes the apiserver refused, by Identity: (name, why).
    pub failures: &'a [(String, String)],
    /// Why the approval annotation cannot be used, if it is set and cannot.
    pub approval_problem: Option<String>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The status after a read that was refused: what the last good read found stays, so a
/// broken export changes nothing but the `Synced` condition.
pub fn refused(
    current: &IdentitySourceStatus,
    generation: Option<i64>,
    refused: &Refused,
    now: &Time,
) -> IdentitySourceStatus {
    let synced = Desired::false_(conditions::SYNCED, refused.reason, refused.message.clone());
    IdentitySourceStatus {
        observed_generation: generation,
        conditions: conditions::merge(&current.conditions, &[synced], generation, now),
        ..current.clone()
    }
}

/// The status after a read that was applied, as far as the safeguard let it.
pub fn applied(
    current: &IdentitySourceStatus,
    generation: Option<i64>,
    read: &Applied<'_>,
    now: &Time,
) -> IdentitySourceStatus {
    let plan = read.plan;
    let released = matches!(read.verdict, Verdict::Release(_));
    let created = plan.writes.iter().filter(|w| w.create).count();
    let mut owned = plan.owned + created;
    owned = owned.saturating_sub(
        read.failures
            .iter()
            .filter(|(n, _)| plan.writes.iter().any(|w| w.create && &w.name == n))
            .count(),
    );
    let quarantine = match read.verdict {
        Verdict::Hold(q) => Some(q.clone()),
        Verdict::Release(_) => None,
    };
    let conditions = conditions::merge(
        &current.conditions,
        &[synced(read, created, released), quarantined(read)],
        generation,
        now,
    );
    IdentitySourceStatus {
        observed_generation: generation,
        conditions,
        last_sync_time: Some(now.clone()),
        rows: count(read.rows),
        identities: count(owned),
        row_errors: plan
            .problems
            .iter()
            .take(ROW_ERRORS_LISTED)
            .map(|p| p.message.clone())
            .collect(),
        row_error_count: count(plan.problems.len()),
        clashes: plan
            .clashes
            .iter()
            .take(CLASHES_LISTED)
            .map(|(identity, reason)| SourceClash {
                identity: identity.clone(),
                reason: reason.clone(),
            })
            .collect(),
        clash_count: count(plan.clashes.len()),
        quarantine,
    }
}

fn synced(read: &Applied<'_>, created: usize, released: bool) -> Desired {
    let plan = read.plan;
    if let Some((name, why)) = read.failures.first() {
        return Desired::false_(
            conditions::SYNCED,
            "ApplyFailed",
            format!(
                "{} of the read's writes failed; the first, Identity {name:?}: {why}",
                read.failures.len()
            ),
        );
    }
    if plan.unplaced > 0 {
        return Desired::false_(
            conditions::SYNCED,
            "RowsWithoutUsername",
            format!(
                "a row has no username, so whose row is missing cannot be known: {} Identities absent from the export are left as they are",
                plan.unplaced
            ),
        );
    }
    let leavers = if released { plan.removals.len() } else { 0 };
    let updated = plan.writes.len() - created;
    let mut message = format!(
        "{} rows read: {created} created, {updated} updated, {leavers} made leavers",
        read.rows
    );
    if !plan.problems.is_empty() {
        message.push_str(&format!(
            "; {} rows unusable and left as they were (status.rowErrors)",
            plan.problems.len()
        ));
    }
    if !plan.clashes.is_empty() {
        message.push_str(&format!(
            "; {} Identities clash (status.clashes)",
            plan.clashes.len()
        ));
    }
    Desired::true_(conditions::SYNCED, "Applied", message)
}

fn quarantined(read: &Applied<'_>) -> Desired {
    match read.verdict {
        Verdict::Hold(q) => {
            let mut message = q.message.clone();
            if let Some(problem) = &read.approval_problem {
                message.push_str(&format!("; the approval cannot be used: {problem}"));
            }
            let reason = if read.rows == 0 {
                "EmptySource"
            } else {
                "SafeguardTripped"
            };
            Desired::true_(conditions::QUARANTINED, reason, message)
        }
        Verdict::Release(_) => Desired::false_(
            conditions::QUARANTINED,
            "WithinSafeguard",
            "the source's leavers are within its safeguard",
        ),
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
