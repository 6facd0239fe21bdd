//! Identity sources: an HR export read → the Identities it declares, with the marks that
//! say which source owns them and the safeguard that bounds its leavers. Pure.
//!
//! - [`export`]: the file → records, whole or not at all.
//! - [`computed`]: CEL over a record → the values of computed fields.
//! - [`mapping`]: a record → the worker's Identity fields.
//! - [`plan`]: workers vs Identities → creations, updates, leavers and clashes.
//! - [`safeguard`]: whether the leavers may be applied.
//! - [`scim`]: users pushed over SCIM 2.0 → records.
//! - [`succession`]: a leaver's Service identities → their manager, by policy.

pub mod computed;
pub mod export;
pub mod mapping;
pub mod plan;
pub mod safeguard;
pub mod scim;
pub mod succession;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::Identity;

/// Annotation naming the source that created an Identity, as `namespace/name`: the mark
/// of ownership. A source writes only Identities that carry its own.
pub const SOURCE_ANNOTATION: &str = "roster.dev/source";
/// Label naming the source, for `kubectl get identities -l roster.dev/source=…`: the key
/// with `/` as `.`, shortened with a hash when too long for a label.
pub const SOURCE_LABEL: &str = "roster.dev/source";
/// Annotation holding the digest of what the source last applied.
pub const DIGEST_ANNOTATION: &str = "roster.dev/source-digest";
/// Annotation holding when the safeguard counted the Identity as a leaver: a restarted
/// operator counts the window from these, so a restart never grants a fresh one.
pub const REMOVED_AT_ANNOTATION: &str = "roster.dev/source-removed-at";

/// The longest label value Kubernetes takes.
const LABEL_MAX: usize = 63;

/// The label value for the source `key` (`namespace/name`).
pub fn label_value(key: &str) -> String {
    let value = key.replace('/', ".");
    if value.len() <= LABEL_MAX {
        return value;
    }
    let hash = plan::digest_str(key);
    let keep = LABEL_MAX - hash.len() - 1;
    let mut cut = keep;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = value[..cut].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}")
}

/// An Identity as the planner sees it.
pub fn current_of(identity: &Identity) -> plan::Current {
    let annotations = identity.annotations();
    plan::Current {
        spec: identity.spec.clone(),
        source: annotations.get(SOURCE_ANNOTATION).cloned(),
        digest: annotations.get(DIGEST_ANNOTATION).cloned(),
        removed_at: annotations
            .get(REMOVED_AT_ANNOTATION)
            .and_then(|v| v.parse::<Timestamp>().ok()),
    }
}

/// The server-side apply body for `write` by the source `key`: the mapped fields, the
/// marks of ownership, and when it was counted as a leaver.
pub fn object(write: &plan::Write, key: &str) -> serde_json::Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert(SOURCE_ANNOTATION.into(), key.into());
    annotations.insert(DIGEST_ANNOTATION.into(), write.digest.clone().into());
    if let Some(at) = write.removed_at {
        annotations.insert(REMOVED_AT_ANNOTATION.into(), at.to_string().into());
    }
    serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1",
        "kind": "Identity",
        "metadata": {
            "name": write.name,
            "labels": { SOURCE_LABEL: label_value(key) },
            "annotations": annotations,
        },
        "spec": write.spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_fit_a_label() {
        assert_eq!(label_value("hr/workday"), "hr.workday");
        let long = format!("{}/{}", "n".repeat(60), "s".repeat(60));
        let v = label_value(&long);
        assert!(v.len() <= LABEL_MAX, "{v}");
        assert_ne!(
            v,
            label_value(&format!("{long}x")),
            "distinct keys stay distinct"
        );
    }

    #[test]
    fn the_apply_body_carries_the_marks() {
        let spec: crate::api::IdentitySpec =
            serde_json::from_value(serde_json::json!({"username": "ada"})).unwrap();
        let write = plan::Write {
            name: "ada".into(),
            digest: plan::digest(&spec),
            spec,
            create: true,
            removed_at: Some("2027-01-01T00:00:00Z".parse().unwrap()),
        };
        let body = object(&write, "hr/workday");
        let identity: Identity = serde_json::from_value(body).unwrap();
        let current = current_of(&identity);
        assert_eq!(current.source.as_deref(), Some("hr/workday"));
        assert_eq!(current.digest, Some(write.digest.clone()));
        assert_eq!(current.removed_at, write.removed_at);
        assert_eq!(identity.labels()[SOURCE_LABEL], "hr.workday");
    }
}
