//! The deletion budget: how many accounts one Connector may see removed (disabled or
//! deleted) in a sliding window before Roster stops removing there. A bad commit that
//! turns everyone into a leaver trips it after a few accounts, not after all of them.
//! Pure.

use std::collections::BTreeSet;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::DeletionBudget;

/// One account removal: when, and which account (the Identity's name).
pub type Removal = (Timestamp, String);

/// Why removals are held on a connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trip {
    /// When the breaker tripped.
    pub since: Timestamp,
    /// Accounts counted in the window when it tripped, the refused one included.
    pub planned: usize,
    /// What a person reads.
    pub message: String,
}

/// The accounts removed that count at `now`: removals inside the window and after the
/// last approval, each account once (a disable and the later deletion are one account).
pub fn counted<'a>(
    removals: &'a [Removal],
    budget: &DeletionBudget,
    approved_at: Option<Timestamp>,
    now: Timestamp,
) -> BTreeSet<&'a str> {
    let start = now
        .checked_sub(SignedDuration::from_secs(budget.window_seconds.max(0)))
        .unwrap_or(Timestamp::MIN);
    removals
        .iter()
        .filter(|(t, _)| *t > start && approved_at.is_none_or(|a| *t > a))
        .map(|(_, who)| who.as_str())
        .collect()
}

/// Whether `extra` more accounts fit, given `already` counted ones and `managed` accounts
/// on the connector. Over `maxRemovals` trips it; so does going over `maxPercent` of the
/// managed accounts, except that one account per window is always allowed (a lone leaver
/// on a small app is not held).
pub fn fits(
    budget: &DeletionBudget,
    already: usize,
    extra: usize,
    managed: usize,
) -> Result<(), String> {
    let total = already + extra;
    let max = usize::try_from(budget.max_removals.max(0)).unwrap_or(0);
    if total > max {
        return Err(format!(
            "{total} accounts removed in {}s would exceed maxRemovals {max}",
            budget.window_seconds
        ));
    }
    let percent = usize::try_from(budget.max_percent.clamp(0, 100)).unwrap_or(0);
    if total > 1 && total * 100 > percent * managed.max(1) {
        return Err(format!(
            "{total} accounts removed in {}s would exceed maxPercent {percent}% of {managed} managed accounts",
            budget.window_seconds
        ));
    }
    Ok(())
}

/// Whether an approval (the Connector's `roster.dev/approve-removals` time) lifts a trip.
pub fn approved(trip: &Trip, approved_at: Option<Timestamp>) -> bool {
    approved_at.is_some_and(|a| a >= trip.since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_removals: i32, max_percent: i32) -> DeletionBudget {
        DeletionBudget {
            max_removals,
            max_percent,
            window_seconds: 3600,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn accounts_removed_in_the_window_and_after_approval_count_once_each() {
        let r = |t: i64, who: &str| (at(t), who.to_owned());
        let removals = [
            r(0, "a"),
            r(5_000, "b"),
            r(6_000, "c"),
            r(7_000, "d"),
            r(7_100, "d"),
        ];
        let b = budget(10, 100);
        assert_eq!(
            counted(&removals, &b, None, at(7_200)).len(),
            3,
            "a is outside the hour; d once"
        );
        assert_eq!(
            counted(&removals, &b, Some(at(6_000)), at(7_200)).len(),
            1,
            "approval resets it"
        );
    }

    #[test]
    fn count_and_percent_limits() {
        assert!(fits(&budget(3, 100), 2, 1, 100).is_ok());
        assert!(
            fits(&budget(3, 100), 3, 1, 100)
                .unwrap_err()
                .contains("maxRemovals 3")
        );
        assert!(fits(&budget(100, 10), 9, 1, 100).is_ok());
        assert!(
            fits(&budget(100, 10), 10, 1, 100)
                .unwrap_err()
                .contains("maxPercent 10%")
        );
        assert!(
            fits(&budget(100, 10), 0, 1, 3).is_ok(),
            "a lone leaver on a small app"
        );
        assert!(fits(&budget(100, 10), 1, 1, 3).is_err());
        assert!(
            fits(&budget(0, 100), 0, 1, 10).is_err(),
            "a zero budget holds every removal"
        );
        assert!(
            fits(&budget(1, 10), 1, 0, 3).is_ok(),
            "an account already counted costs nothing"
        );
    }

    #[test]
    fn approval_must_come_after_the_trip() {
        let trip = Trip {
            since: at(100),
            planned: 12,
            message: String::new(),
        };
        assert!(!approved(&trip, None));
        assert!(!approved(&trip, Some(at(99))));
        assert!(approved(&trip, Some(at(100))));
    }
}
