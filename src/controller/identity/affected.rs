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
}
