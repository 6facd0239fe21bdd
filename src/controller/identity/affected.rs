//! Which identities a change to a Role, RoleBinding or Connector affects: only those
//! whose resolution it can change. A binding's old and new subjects; the subjects of a
//! Role's bindings; for a Connector, the subjects of the bindings of every Role naming
//! it and everyone holding an account on it (a mover or leaver whose access there must
//! go). Never a whole namespace: at 10,000 identities one RoleBinding edit that
//! re-queued everyone was 10,000 reconciles, each reading every app. Pure.

use std::sync::Arc;

use kube::{ResourceExt, runtime::reflector::ObjectRef};

use crate::{
    api::{Connector, Identity, Role, RoleBinding},
    lifecycle::{ConnectorKey, subjects::SubjectMatcher},
};

/// The identities any of `bindings` matches, or that `also` says are affected.
fn matched<'a>(
    bindings: impl IntoIterator<Item = &'a RoleBinding>,
    identities: &[Arc<Identity>],
    also: impl Fn(&Identity) -> bool,
) -> Vec<ObjectRef<Identity>> {
    let matchers: Vec<SubjectMatcher> = bindings
        .into_iter()
        .filter_map(|b| SubjectMatcher::new(&b.spec.subjects).ok())
        .collect();
    identities
        .iter()
        .filter(|i| also(i) || matchers.iter().any(|m| m.matches(i) == Ok(true)))
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

/// The identities a change of one binding affects: those its version `before` matched
/// (`None`: it is new) and those `after` matches — a binding grants only to its own
/// subjects.
pub fn of_binding(
    before: Option<&RoleBinding>,
    after: &RoleBinding,
    identities: &[Arc<Identity>],
) -> Vec<ObjectRef<Identity>> {
    matched(before.into_iter().chain([after]), identities, |_| false)
}

/// The identities a change of `role` affects: the subjects of the bindings naming it,
/// who hold what it grants or are about to.
pub fn of_role(
    role: &Role,
    bindings: &[Arc<RoleBinding>],
    identities: &[Arc<Identity>],
) -> Vec<ObjectRef<Identity>> {
    let (ns, name) = (role.namespace(), role.name_any());
    let naming = bindings
        .iter()
        .filter(|b| b.namespace() == ns && b.spec.role == name)
        .map(Arc::as_ref);
    matched(naming, identities, |_| false)
}

/// The identities a change of `connector` affects: the subjects of every binding of a
/// Role naming it, and everyone whose status holds an account on it.
pub fn of_connector(
    connector: &Connector,
    roles: &[Arc<Role>],
    bindings: &[Arc<RoleBinding>],
    identities: &[Arc<Identity>],
) -> Vec<ObjectRef<Identity>> {
    let (ns, name) = (connector.namespace(), connector.name_any());
    let key = ConnectorKey::new(ns.clone().unwrap_or_default(), name.clone()).to_string();
    let roles: Vec<String> = roles
        .iter()
        .filter(|r| r.namespace() == ns && r.spec.entitlements.iter().any(|e| e.connector == name))
        .map(|r| r.name_any())
        .collect();
    let feeding = bindings
        .iter()
        .filter(|b| b.namespace() == ns && roles.contains(&b.spec.role))
        .map(Arc::as_ref);
    let holds_account = |i: &Identity| {
        i.status
            .as_ref()
            .is_some_and(|s| s.accounts.iter().any(|a| a.connector == key))
    };
    matched(feeding, identities, holds_account)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::AccountStatus;

    fn identity(name: &str, account_on: Option<&str>) -> Arc<Identity> {
        let mut i = Identity::new(
            name,
            serde_json::from_value(json!({"username": name})).unwrap(),
        );
        if let Some(c) = account_on {
            i.status = Some(crate::api::IdentityStatus {
                accounts: vec![AccountStatus {
                    connector: c.into(),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        Arc::new(i)
    }

    fn binding(name: &str, role: &str, who: &[&str]) -> Arc<RoleBinding> {
        let mut b = RoleBinding::new(
            name,
            serde_json::from_value(json!({"role": role, "subjects": {"identities": who}})).unwrap(),
        );
        b.metadata.namespace = Some("acme".into());
        Arc::new(b)
    }

    fn role(name: &str, connector: &str) -> Arc<Role> {
        let mut r = Role::new(
            name,
            serde_json::from_value(
                json!({"entitlements": [{"connector": connector, "name": "eng"}]}),
            )
            .unwrap(),
        );
        r.metadata.namespace = Some("acme".into());
        Arc::new(r)
    }

    fn names(refs: Vec<ObjectRef<Identity>>) -> Vec<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    fn people() -> [Arc<Identity>; 5] {
        [
            identity("ada", None),
            identity("bob", Some("acme/scim")),
            identity("carol", None),
            identity("dave", None),
            identity("erin", Some("other/scim")),
        ]
    }

    #[test]
    fn a_binding_change_affects_its_old_and_new_subjects_only() {
        let (before, after) = (binding("b", "r", &["ada"]), binding("b", "r", &["carol"]));
        assert_eq!(
            names(of_binding(Some(&before), &after, &people())),
            ["ada", "carol"],
            "bob holds an account in the namespace, but this binding never reached him"
        );
        assert_eq!(
            names(of_binding(None, &after, &people())),
            ["carol"],
            "a new binding reaches only its own subjects"
        );
    }

    #[test]
    fn a_role_change_affects_the_subjects_of_its_bindings_only() {
        let bindings = [
            binding("eng", "eng", &["ada"]),
            binding("ops", "ops", &["dave"]),
        ];
        assert_eq!(
            names(of_role(&role("eng", "scim"), &bindings, &people())),
            ["ada"]
        );
        let mut elsewhere = (*role("eng", "scim")).clone();
        elsewhere.metadata.namespace = Some("other".into());
        assert!(
            of_role(&elsewhere, &bindings, &people()).is_empty(),
            "a Role of another namespace feeds none of these bindings"
        );
    }

    #[test]
    fn a_connector_change_affects_its_feeds_subjects_and_account_holders() {
        let mut scim = Connector::new(
            "scim",
            serde_json::from_value(json!({"type": "scim", "scim": {
                "baseUrl": "http://127.0.0.1:9/v2",
                "tokenSecretRef": {"name": "t", "key": "t"}}}))
            .unwrap(),
        );
        scim.metadata.namespace = Some("acme".into());
        let roles = [role("eng", "scim"), role("ops", "ldap")];
        let bindings = [
            binding("eng", "eng", &["ada"]),
            binding("ops", "ops", &["dave"]),
        ];
        assert_eq!(
            names(of_connector(&scim, &roles, &bindings, &people())),
            ["ada", "bob"],
            "ada is granted on it, bob holds an account there; dave's role is on ldap, \
             erin's account on another namespace's scim"
        );
    }
}
