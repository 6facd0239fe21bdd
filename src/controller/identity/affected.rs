//! Which identities a change to a Role, RoleBinding or Connector affects: those a binding
//! of that namespace matches, and those holding an account on a connector of that
//! namespace (a mover or leaver whose access there must go). Pure.

use std::sync::Arc;

use kube::{ResourceExt, runtime::reflector::ObjectRef};

use crate::{
    api::{Identity, RoleBinding},
    lifecycle::{ConnectorKey, subjects::SubjectMatcher},
};

/// The identities to look at again after a change in `namespace`. `changed` is a binding
/// that changed or was deleted: its subjects count even when the cache no longer holds it.
pub fn in_namespace(
    namespace: &str,
    changed: Option<&RoleBinding>,
    bindings: &[Arc<RoleBinding>],
    identities: &[Arc<Identity>],
) -> Vec<ObjectRef<Identity>> {
    let matchers: Vec<SubjectMatcher> = bindings
        .iter()
        .map(Arc::as_ref)
        .filter(|b| b.namespace().as_deref() == Some(namespace))
        .chain(changed)
        .filter_map(|b| SubjectMatcher::new(&b.spec.subjects).ok())
        .collect();
    identities
        .iter()
        .filter(|i| {
            let holds_account = i.status.as_ref().is_some_and(|s| {
                s.accounts.iter().any(|a| {
                    ConnectorKey::parse(&a.connector).is_some_and(|k| k.namespace == namespace)
                })
            });
            holds_account || matchers.iter().any(|m| m.matches(i) == Ok(true))
        })
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

/// The identities a change of one binding affects: those its version `before` matched
/// and those `after` matches — a binding grants only to its own subjects. Without
/// `before` (the first change this process sees), everyone [`in_namespace`] affects.
pub fn of_binding(
    before: Option<&RoleBinding>,
    after: &RoleBinding,
    bindings: &[Arc<RoleBinding>],
    identities: &[Arc<Identity>],
) -> Vec<ObjectRef<Identity>> {
    let Some(before) = before else {
        let ns = after.namespace().unwrap_or_default();
        return in_namespace(&ns, Some(after), bindings, identities);
    };
    let matchers: Vec<SubjectMatcher> = [before, after]
        .into_iter()
        .filter_map(|b| SubjectMatcher::new(&b.spec.subjects).ok())
        .collect();
    identities
        .iter()
        .filter(|i| matchers.iter().any(|m| m.matches(i) == Ok(true)))
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
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

    #[test]
    fn matched_subjects_and_account_holders_of_the_namespace() {
        let mut b = RoleBinding::new(
            "b",
            serde_json::from_value(json!({"role": "r", "subjects": {"identities": ["ada"]}}))
                .unwrap(),
        );
        b.metadata.namespace = Some("acme".into());
        let all = [
            identity("ada", None),
            identity("bob", Some("acme/scim")),
            identity("carol", Some("other/scim")),
            identity("dave", None),
        ];
        let found: Vec<String> = in_namespace("acme", None, &[Arc::new(b.clone())], &all)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(found, ["ada", "bob"]);
        // A deleted binding is no longer cached, but its subjects are still affected.
        let found: Vec<String> = in_namespace("acme", Some(&b), &[], &all)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(found, ["ada", "bob"]);
    }

    #[test]
    fn a_binding_change_affects_its_old_and_new_subjects_only() {
        let binding = |who: &[&str]| {
            let mut b = RoleBinding::new(
                "b",
                serde_json::from_value(json!({"role": "r", "subjects": {"identities": who}}))
                    .unwrap(),
            );
            b.metadata.namespace = Some("acme".into());
            b
        };
        let all = [
            identity("ada", None),
            identity("bob", Some("acme/scim")),
            identity("carol", None),
            identity("dave", None),
        ];
        let names = |refs: Vec<ObjectRef<Identity>>| -> Vec<String> {
            refs.into_iter().map(|r| r.name).collect()
        };
        let (before, after) = (binding(&["ada"]), binding(&["carol"]));
        assert_eq!(
            names(of_binding(Some(&before), &after, &[], &all)),
            ["ada", "carol"],
            "bob holds an account in the namespace, but this binding never reached him"
        );
        assert_eq!(
            names(of_binding(None, &after, &[], &all)),
            ["bob", "carol"],
            "without the old version, everyone it could have reached"
        );
    }
}
