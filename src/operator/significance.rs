//! Which changes of an object can matter to other objects. Pure: no client required.
//!
//! A Connector's scan writes its status every interval; a Role's and an Identity's
//! controllers write theirs after each pass. Fanning each of those writes out re-queued
//! every Identity of the namespace — at every scan, 200 reconciles with downstream reads
//! for 200 people — and a leaver who arrived meanwhile waited behind them. Sending each
//! back to its own controller reconciled every Identity a second time after every pass,
//! re-reading every app to find nothing to do. Nothing a reconcile decides depends on
//! status: what does is the spec (the generation), the labels (selectors), the
//! annotations (approvals, abandoned connectors), the finalizers (kube's finalizer helper
//! waits for the event of adding one), the deletion, and the object going away.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
};

use kube::{Resource, ResourceExt};

/// What of one object other objects depend on.
#[derive(Hash)]
struct Mark<'a> {
    generation: Option<i64>,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    finalizers: &'a [String],
    deleting: bool,
}

impl Mark<'_> {
    /// The mark of `obj`, as a hash: kept for every object of a kind, the marks
    /// themselves (labels, annotations and finalizers copied twice) were about a fifth of
    /// the operator's memory per Identity. Two different marks of one object hashing
    /// alike (a chance of one in 2^64 per change) would lose that change's fan-out.
    fn of<K: Resource>(obj: &K) -> u64 {
        let mark = Mark {
            generation: obj.meta().generation,
            labels: obj.labels(),
            annotations: obj.annotations(),
            finalizers: obj.finalizers(),
            deleting: obj.meta().deletion_timestamp.is_some(),
        };
        let mut h = DefaultHasher::new();
        mark.hash(&mut h);
        h.finish()
    }
}

/// The marks of a kind's objects as last fanned out.
#[derive(Debug, Default)]
pub struct Significance {
    seen: HashMap<(Option<String>, String), u64>,
}

impl Significance {
    /// Whether this change of `obj` must fan out: it is new, gone (`present` is false),
    /// or changed in something besides its status.
    pub fn changed<K: Resource>(&mut self, obj: &K, present: bool) -> bool {
        let key = (obj.namespace(), obj.name_any());
        if !present {
            self.seen.remove(&key);
            return true;
        }
        let mark = Mark::of(obj);
        self.seen.insert(key, mark) != Some(mark)
    }
}

/// One watch's two filters: what fans out to the other controllers, and what goes back
/// to the kind's own. Each event is asked about once by each.
#[derive(Debug, Default)]
pub struct Filters {
    fan_out: Significance,
    own: Significance,
}

impl Filters {
    /// A change after the first listing (`present`: the cache still holds the object):
    /// whether it fans out.
    pub fn changed<K: Resource>(&mut self, obj: &K, present: bool) -> bool {
        if !present {
            self.own.changed(obj, false);
        }
        self.fan_out.changed(obj, present)
    }

    /// An object offered to the kind's own controller: whether it goes there. The
    /// fan-out learns its mark as well: a first listing's objects reach only their own
    /// controller, and had the fan-out not known them, each one's first status write
    /// after a start would have fanned out as new — every Connector's re-queueing all
    /// its holders, every binding's all its subjects, a second pass over everyone.
    pub fn reconcile<K: Resource>(&mut self, obj: &K) -> bool {
        self.fan_out.changed(obj, true);
        self.own.changed(obj, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Connector;

    fn connector(generation: i64, scanned: &str, annotation: Option<&str>) -> Connector {
        let mut c: Connector = serde_json::from_value(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Connector",
            "metadata": {"name": "scim", "namespace": "ns", "generation": generation},
            "spec": {"kubernetes": {}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": scanned,
                "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}
        }))
        .expect("connector");
        if let Some(a) = annotation {
            c.metadata.annotations =
                Some([("roster.dev/approve-removals".into(), a.into())].into());
        }
        c
    }

    #[test]
    fn status_writes_do_not_fan_out_spec_approvals_and_deletions_do() {
        let mut s = Significance::default();
        assert!(s.changed(&connector(1, "a", None), true), "first seen");
        assert!(!s.changed(&connector(1, "b", None), true), "status only");
        assert!(
            !s.changed(&connector(1, "c", None), true),
            "status only, again"
        );
        assert!(
            s.changed(&connector(2, "c", None), true),
            "the spec changed"
        );
        assert!(
            s.changed(&connector(2, "c", Some("t")), true),
            "an approval"
        );
        assert!(!s.changed(&connector(2, "d", Some("t")), true));
        let mut deleting = connector(2, "d", Some("t"));
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(s.changed(&deleting, true), "being deleted");
        assert!(s.changed(&deleting, false), "gone");
        assert!(s.changed(&connector(2, "d", Some("t")), true), "back again");
    }

    #[test]
    fn after_a_listing_a_status_write_reaches_no_one() {
        let mut f = Filters::default();
        // The first listing: each object goes to its own controller only.
        assert!(f.reconcile(&connector(1, "a", None)));
        // Its own controller writes its status: neither fans out nor comes back.
        assert!(!f.changed(&connector(1, "b", None), true));
        assert!(!f.reconcile(&connector(1, "b", None)));
        // A spec change does both.
        assert!(f.changed(&connector(2, "b", None), true));
        assert!(f.reconcile(&connector(2, "b", None)));
        // Gone, then back: new to both.
        assert!(f.changed(&connector(2, "b", None), false));
        assert!(f.reconcile(&connector(2, "b", None)));
    }
}
