//! Crash points, for tests: where a crash is dangerous, a debug build aborts the process
//! when `ROSTER_CRASH_AT` names the point. Release builds compile the check away.
//!
//! The dangerous moments are between a downstream write and the status that records it:
//! after a create (the account exists, no ledger says it is Roster's), between a leaver's
//! revokes and the disable (still enabled), after a disable and after a grant (the status
//! still says otherwise). The `crash_points` integration test aborts at each, restarts,
//! and reads every downstream server directly.

use crate::lifecycle::plan::Change;

/// The environment variable naming the point to abort at.
pub const VARIABLE: &str = "ROSTER_CRASH_AT";

/// The point right after `change` was applied downstream: `after-create`,
/// `after-revoke`, `after-disable`, `after-grant`, …
pub fn after(change: &Change) -> &'static str {
    match change {
        Change::Create { .. } => "after-create",
        Change::Adopt => "after-adopt",
        Change::Update(_) => "after-update",
        Change::Enable => "after-enable",
        Change::Disable => "after-disable",
        Change::Revoke(_) => "after-revoke",
        Change::Grant(_) => "after-grant",
        Change::Delete => "after-delete",
    }
}

/// Aborts the process if this is a debug build and [`VARIABLE`] names `point`.
pub fn reached(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var(VARIABLE).is_ok_and(|p| p == point) {
        eprintln!("crash point {point}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_has_a_point_of_its_own() {
        let changes = [
            Change::Create { active: true },
            Change::Adopt,
            Change::Update(vec![]),
            Change::Enable,
            Change::Disable,
            Change::Revoke("x".into()),
            Change::Grant("x".into()),
            Change::Delete,
        ];
        let points: std::collections::BTreeSet<&str> = changes.iter().map(after).collect();
        assert_eq!(points.len(), changes.len());
        // Not named: nothing happens.
        reached("no-such-point");
    }
}
