//! The objects Roster keeps on a cluster — account records, ServiceAccounts, bindings —
//! built and read here, and the API's errors in the connector's terms.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::rbac::v1::{RoleRef, Subject},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use kube::api::{DeleteParams, Preconditions};

use super::names::{
    ACCOUNT_LABEL, ACTIVE_ANNOTATION, CONNECTOR_LABEL, ENTITLEMENT_ANNOTATION, Grant,
    IDENTITY_ANNOTATION, MANAGED_BY, USERNAME_ANNOTATION, account_key,
};
use crate::connector::{ConnectorError, truncate_body};

fn label<'m>(meta: &'m ObjectMeta, key: &str) -> Option<&'m str> {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Whether Roster made this object through the Connector `connector` (its key): it
/// carries the managed-by label and that Connector's label.
pub fn is_ours(meta: &ObjectMeta, connector: &str) -> bool {
    label(meta, MANAGED_BY.0) == Some(MANAGED_BY.1)
        && label(meta, CONNECTOR_LABEL) == Some(connector)
}

/// Whether Roster made this object through a Connector other than `connector`: neither
/// that Connector's account nor a stranger's that this one could adopt.
pub fn is_another_connectors(meta: &ObjectMeta, connector: &str) -> bool {
    label(meta, MANAGED_BY.0) == Some(MANAGED_BY.1)
        && label(meta, CONNECTOR_LABEL) != Some(connector)
}

/// An annotation's value.
pub fn annotation<'m>(meta: &'m ObjectMeta, key: &str) -> Option<&'m str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The owning Identity, when Roster made the object through the Connector `connector`.
pub fn owner(meta: &ObjectMeta, connector: &str) -> Option<String> {
    is_ours(meta, connector)
        .then(|| annotation(meta, IDENTITY_ANNOTATION).map(str::to_owned))
        .flatten()
}

/// Whether a record says the account is enabled.
pub fn record_active(meta: &ObjectMeta) -> bool {
    annotation(meta, ACTIVE_ANNOTATION) != Some("false")
}

/// Whose an object is: the Connector that makes it, the account and the Identity.
#[derive(Clone, Copy, Debug)]
pub struct Stamp<'a> {
    /// The Connector's key ([`super::names::connector_key`]).
    pub connector: &'a str,
    /// The account's username.
    pub username: &'a str,
    /// The Identity that owns the account.
    pub identity: &'a str,
}

/// Metadata for an object of the account `stamp` describes.
pub fn account_meta(
    name: String,
    namespace: Option<String>,
    stamp: Stamp<'_>,
    extra_labels: &[(&str, &str)],
    extra_annotations: &[(&str, String)],
) -> ObjectMeta {
    let Stamp {
        connector,
        username,
        identity,
    } = stamp;
    let mut labels: BTreeMap<String, String> = [
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (CONNECTOR_LABEL.to_owned(), connector.to_owned()),
        (ACCOUNT_LABEL.to_owned(), account_key(username)),
    ]
    .into();
    labels.extend(
        extra_labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let mut annotations: BTreeMap<String, String> = [
        (IDENTITY_ANNOTATION.to_owned(), identity.to_owned()),
        (USERNAME_ANNOTATION.to_owned(), username.to_owned()),
    ]
    .into();
    annotations.extend(
        extra_annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone())),
    );
    ObjectMeta {
        name: Some(name),
        namespace,
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

/// Deletion only of the object as it was read (its `version` and `uid`), never of one
/// replaced or relabelled since.
pub fn unchanged_since(version: Option<&String>, uid: Option<&String>) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: version.cloned(),
            uid: uid.cloned(),
        }),
        ..DeleteParams::default()
    }
}

/// The RBAC subject for an account: a `User`, or the `ServiceAccount` in `namespace`.
pub fn subject(username: &str, service_namespace: Option<&str>) -> Subject {
    match service_namespace {
        Some(ns) => Subject {
            kind: "ServiceAccount".into(),
            name: username.to_owned(),
            namespace: Some(ns.to_owned()),
            api_group: None,
        },
        None => Subject {
            kind: "User".into(),
            name: username.to_owned(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        },
    }
}

/// The `roleRef` a grant binds.
pub fn role_ref(grant: &Grant) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: grant.role_kind().into(),
        name: grant.role_name().to_owned(),
    }
}

/// The label selector for the objects the Connector `connector` made, optionally for
/// one account.
pub fn selector(connector: &str, username: Option<&str>) -> String {
    let mut s = format!(
        "{}={},{CONNECTOR_LABEL}={connector}",
        MANAGED_BY.0, MANAGED_BY.1
    );
    if let Some(u) = username {
        s.push_str(&format!(",{ACCOUNT_LABEL}={}", account_key(u)));
    }
    s
}

/// One of Roster's bindings, as read back.
#[derive(Clone, Debug)]
pub struct Binding {
    /// Its namespace; `None` for a ClusterRoleBinding.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// The account's username.
    pub username: Option<String>,
    /// The entitlement it grants.
    pub entitlement: Option<String>,
    /// Whether anyone is bound (a disabled account's bindings have no subjects).
    pub bound: bool,
    /// The version read: a change or deletion is made only if it is still this one, so
    /// an object relabelled or replaced since it was read as Roster's is left alone.
    pub version: Option<String>,
    /// Its uid, for the same reason.
    pub uid: Option<String>,
}

impl Binding {
    /// Reads a binding's metadata and subjects.
    pub fn read(meta: &ObjectMeta, subjects: Option<&Vec<Subject>>) -> Self {
        Self {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            username: annotation(meta, USERNAME_ANNOTATION).map(str::to_owned),
            entitlement: annotation(meta, ENTITLEMENT_ANNOTATION).map(str::to_owned),
            bound: subjects.is_some_and(|s| !s.is_empty()),
            version: meta.resource_version.clone(),
            uid: meta.uid.clone(),
        }
    }
}

/// Whether an account is enabled, from its record and its bindings. A pass interrupted
/// half-way reads as the state still to reach: a record marked disabled whose bindings
/// still bind someone reads as enabled (so the disable runs again), and a record marked
/// enabled with an emptied binding reads as disabled (so the enable does).
pub fn effective_active(record_active: bool, bindings: &[Binding]) -> bool {
    if record_active {
        bindings.iter().all(|b| b.bound)
    } else {
        bindings.iter().any(|b| b.bound)
    }
}

/// A Kubernetes API error in the connector's terms.
pub fn api_error(e: kube::Error) -> ConnectorError {
    match e {
        kube::Error::Api(s) => {
            let message = truncate_body(&s.message);
            match s.code {
                401 => ConnectorError::Unauthorized {
                    detail: format!("HTTP 401: {message}"),
                },
                403 => ConnectorError::Config(format!(
                    "Roster may not do this on the cluster; see the Kubernetes connector docs for the RBAC it needs: {message}"
                )),
                409 => ConnectorError::Conflict(message),
                400 | 422 => ConnectorError::Rejected(message),
                status => ConnectorError::Http {
                    status,
                    body: message,
                },
            }
        }
        other => ConnectorError::Unreachable {
            target: "the Kubernetes API".into(),
            reason: truncate_body(&other.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(bound: bool) -> Binding {
        Binding {
            namespace: None,
            name: "b".into(),
            username: Some("ada".into()),
            entitlement: Some("ClusterRole/view".into()),
            bound,
            version: None,
            uid: None,
        }
    }

    #[test]
    fn half_done_passes_read_as_the_state_still_to_reach() {
        assert!(effective_active(true, &[]));
        assert!(effective_active(true, &[binding(true), binding(true)]));
        assert!(!effective_active(true, &[binding(true), binding(false)]));
        assert!(!effective_active(false, &[]));
        assert!(!effective_active(false, &[binding(false)]));
        assert!(effective_active(false, &[binding(false), binding(true)]));
    }

    #[test]
    fn only_objects_labelled_for_this_connector_are_ours() {
        let stamp = Stamp {
            connector: "k1",
            username: "ada",
            identity: "ada-id",
        };
        let mine = account_meta("x".into(), None, stamp, &[], &[]);
        assert!(is_ours(&mine, "k1"));
        assert!(!is_another_connectors(&mine, "k1"));
        assert_eq!(owner(&mine, "k1").as_deref(), Some("ada-id"));
        assert!(!is_ours(&mine, "k2"), "another Connector's object");
        assert!(is_another_connectors(&mine, "k2"));
        assert_eq!(owner(&mine, "k2"), None);
        let mut theirs = mine.clone();
        theirs.labels = None;
        assert!(!is_ours(&theirs, "k1"));
        assert!(!is_another_connectors(&theirs, "k1"), "a stranger's");
        assert_eq!(owner(&theirs, "k1"), None, "an annotation alone is no mark");
        let mut unlabelled = mine;
        unlabelled
            .labels
            .as_mut()
            .map(|l| l.remove(CONNECTOR_LABEL));
        assert!(!is_ours(&unlabelled, "k1"), "managed-by alone is no mark");
    }
}
