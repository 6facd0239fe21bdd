//! Types more than one resource uses.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key in a Secret in the same namespace as the object that names it. Credentials only
/// ever travel by reference: they never appear in a spec, a status, an Event or a log line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretKeyRef {
    /// Name of the Secret, in the object's own namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's `data`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Condition types and the helpers that keep `metav1.Condition` lists tidy.
pub mod conditions {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    /// The object is usable: its references resolve and, for a Connector, the downstream
    /// answers.
    pub const READY: &str = "Ready";
    /// Downstream matches what is declared, as of the last observation.
    pub const SYNCED: &str = "Synced";
    /// Downstream differs from what is declared; details are in the status' drift lists.
    pub const DRIFTED: &str = "Drifted";
    /// A Connector stopped removing accounts because its deletion budget was exceeded.
    pub const QUARANTINED: &str = "Quarantined";

    /// A condition to set: its type, status, reason and message. `observed_generation` and
    /// the transition time are filled in by [`merge`].
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Desired {
        /// Condition type, e.g. [`READY`].
        pub type_: &'static str,
        /// `"True"`, `"False"` or `"Unknown"`.
        pub status: &'static str,
        /// A CamelCase reason, machine-readable.
        pub reason: String,
        /// A human-readable message.
        pub message: String,
    }

    impl Desired {
        /// A condition with status `True`.
        pub fn true_(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
            Self::new(type_, "True", reason, message)
        }

        /// A condition with status `False`.
        pub fn false_(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
            Self::new(type_, "False", reason, message)
        }

        /// A condition with status `Unknown`.
        pub fn unknown(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
            Self::new(type_, "Unknown", reason, message)
        }

        fn new(
            type_: &'static str,
            status: &'static str,
            reason: &str,
            message: impl Into<String>,
        ) -> Self {
            Self {
                type_,
                status,
                reason: reason.to_owned(),
                message: message.into(),
            }
        }
    }

    /// Merges `desired` into `current` and returns the new list. A condition whose status
    /// did not change keeps its `lastTransitionTime`, so that rewriting an unchanged list
    /// yields an identical list and no write. Conditions of other types are kept as they are.
    pub fn merge(
        current: &[Condition],
        desired: &[Desired],
        generation: Option<i64>,
        now: &Time,
    ) -> Vec<Condition> {
        let mut out: Vec<Condition> = current
            .iter()
            .filter(|c| !desired.iter().any(|d| d.type_ == c.type_))
            .cloned()
            .collect();
        for d in desired {
            let previous = current.iter().find(|c| c.type_ == d.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == d.status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            out.push(Condition {
                type_: d.type_.to_owned(),
                status: d.status.to_owned(),
                reason: d.reason.clone(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            });
        }
        out.sort_by(|a, b| a.type_.cmp(&b.type_));
        out
    }

    /// The condition of the given type, if present.
    pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
        conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
    use proptest::prelude::*;

    use super::conditions::{Desired, READY, SYNCED, merge};

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let first = merge(
            &[],
            &[Desired::true_(READY, "Valid", "ok")],
            Some(1),
            &at(100),
        );
        let again = merge(
            &first,
            &[Desired::true_(READY, "Valid", "ok")],
            Some(1),
            &at(200),
        );
        assert_eq!(
            first, again,
            "rewriting an unchanged condition must not change it"
        );
        let flipped = merge(
            &again,
            &[Desired::false_(READY, "Broken", "no")],
            Some(2),
            &at(300),
        );
        assert_eq!(flipped[0].last_transition_time, at(300));
        assert_eq!(flipped[0].observed_generation, Some(2));
    }

    #[test]
    fn other_condition_types_are_kept() {
        let both = merge(
            &[],
            &[
                Desired::true_(SYNCED, "InSync", ""),
                Desired::true_(READY, "Valid", ""),
            ],
            None,
            &at(1),
        );
        let only_ready = merge(&both, &[Desired::false_(READY, "Broken", "")], None, &at(2));
        let types: Vec<_> = only_ready
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(types, [("Ready", "False"), ("Synced", "True")]);
    }

    proptest! {
        /// Merging the same desired conditions twice, at any later time, changes nothing:
        /// this is what lets the status writer skip writes when only time moved.
        #[test]
        fn merge_is_idempotent(statuses in proptest::collection::vec(0usize..3, 1..4), t1 in 0i64..1_000_000, dt in 0i64..1_000_000) {
            let types = [READY, SYNCED, "Drifted"];
            let values = ["True", "False", "Unknown"];
            let desired: Vec<Desired> = statuses.iter().enumerate().map(|(i, s)| match values[*s] {
                "True" => Desired::true_(types[i % 3], "R", "m"),
                "False" => Desired::false_(types[i % 3], "R", "m"),
                _ => Desired::unknown(types[i % 3], "R", "m"),
            }).collect();
            // Later entries of the same type win; dedupe as a caller would.
            let mut unique: Vec<Desired> = Vec::new();
            for d in desired.into_iter().rev() {
                if !unique.iter().any(|u| u.type_ == d.type_) { unique.push(d); }
            }
            let once = merge(&[], &unique, Some(3), &at(t1));
            let twice = merge(&once, &unique, Some(3), &at(t1 + dt));
            prop_assert_eq!(once, twice);
        }
    }
}
