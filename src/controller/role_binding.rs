//! The RoleBinding loop (`rolebindings.roster.dev`): a binding is ready when its Role
//! exists.

use std::sync::Arc;

use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, reflector::ObjectRef},
};

use super::{Context, Error, instrumented, status};
use crate::{
    api::{
        Identity, Role, RoleBinding, RoleBindingSpec, RoleBindingStatus,
        conditions::{self, Desired},
    },
    lifecycle::subjects::{SubjectError, SubjectMatcher},
    time::now,
};

const RESYNC: std::time::Duration = std::time::Duration::from_secs(300);

/// The binding's `Ready` condition, given whether its Role exists and whether its
/// subjects compile. Pure.
pub fn binding_ready(
    spec: &RoleBindingSpec,
    role_exists: bool,
    subjects: Result<(), &SubjectError>,
) -> Desired {
    if let Err(e) = subjects {
        return Desired::false_(
            conditions::READY,
            e.reason(),
            status::truncate(&format!("{e}; the binding grants nothing"), 1024),
        );
    }
    if role_exists {
        Desired::true_(
            conditions::READY,
            "Valid",
            format!("Role {:?} exists", spec.role),
        )
    } else {
        Desired::false_(
            conditions::READY,
            "RoleNotFound",
            format!(
                "no Role named {:?} in this namespace; the binding grants nothing",
                spec.role
            ),
        )
    }
}

/// How many identities `matcher` selects, and the first evaluation error, if any. Pure.
pub fn count_subjects(
    matcher: &SubjectMatcher,
    identities: &[Arc<Identity>],
) -> (i32, Option<String>) {
    let (mut count, mut first_error) = (0i32, None);
    for identity in identities {
        match matcher.matches(identity) {
            Ok(true) => count = count.saturating_add(1),
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert_with(|| format!("{}: {e}", identity.name_any()));
            }
        }
    }
    (count, first_error)
}

/// Reconciles one RoleBinding: load → validate → status.
pub async fn reconcile(binding: Arc<RoleBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    instrumented("RoleBinding", &ctx, async {
        ctx.stores.wait_until_ready().await?;
        let ns = binding
            .namespace()
            .ok_or_else(|| Error::MissingNamespace(binding.name_any()))?;
        let role_exists = ctx
            .stores
            .roles
            .get(&ObjectRef::<Role>::new(&binding.spec.role).within(&ns))
            .is_some();
        let matcher = SubjectMatcher::new(&binding.spec.subjects);
        let mut ready = binding_ready(&binding.spec, role_exists, matcher.as_ref().map(|_| ()));
        let subject_count = match &matcher {
            Ok(m) => {
                let (count, first_error) = count_subjects(m, &ctx.stores.identities.state());
                if let (Some(e), "True") = (first_error, ready.status) {
                    // Valid, but some identity could not be evaluated: say which.
                    ready.message = status::truncate(
                        &format!("{}; not evaluable for {e}", ready.message),
                        1024,
                    );
                }
                Some(count)
            }
            Err(_) => None,
        };
        let current = binding.status.clone().unwrap_or_default();
        let generation = binding.metadata.generation;
        let desired = RoleBindingStatus {
            observed_generation: generation,
            conditions: conditions::merge(&current.conditions, &[ready], generation, &now()),
            subject_count,
        };
        let api = Api::<RoleBinding>::namespaced(ctx.client.clone(), &ns);
        status::apply_if_changed(
            &ctx,
            "RoleBinding",
            &api,
            binding.as_ref(),
            binding.status.as_ref(),
            &desired,
        )
        .await?;
        status::warn_on_ready_change(
            &ctx.recorder,
            binding.as_ref(),
            &current.conditions,
            &desired.conditions,
        )
        .await;
        Ok(Action::requeue(RESYNC))
    })
    .await
}

/// The bindings of a Role's namespace that give it.
pub fn bindings_of(role: &Role, bindings: &[Arc<RoleBinding>]) -> Vec<ObjectRef<RoleBinding>> {
    let (name, ns) = (role.name_any(), role.namespace());
    bindings
        .iter()
        .filter(|b| b.namespace() == ns && b.spec.role == name)
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(role: &str) -> RoleBindingSpec {
        serde_json::from_value(
            serde_json::json!({"role": role, "subjects": {"identities": ["ada"]}}),
        )
        .unwrap()
    }

    #[test]
    fn ready_follows_the_role() {
        assert_eq!(binding_ready(&spec("eng"), true, Ok(())).status, "True");
        let d = binding_ready(&spec("eng"), false, Ok(()));
        assert_eq!((d.status, d.reason.as_str()), ("False", "RoleNotFound"));
        let bad = SubjectError::Expression(crate::lifecycle::expression::ExpressionError::Invalid(
            "Syntax error".into(),
        ));
        let d = binding_ready(&spec("eng"), true, Err(&bad));
        assert_eq!(
            (d.status, d.reason.as_str()),
            ("False", "InvalidExpression")
        );
    }

    #[test]
    fn bindings_of_matches_role_and_namespace() {
        let mut role = Role::new(
            "eng",
            serde_json::from_value(serde_json::json!({"entitlements": []})).unwrap(),
        );
        role.metadata.namespace = Some("a".into());
        let mk = |name: &str, ns: &str, r: &str| {
            let mut b = RoleBinding::new(name, spec(r));
            b.metadata.namespace = Some(ns.into());
            Arc::new(b)
        };
        let all = [
            mk("yes", "a", "eng"),
            mk("other-role", "a", "ops"),
            mk("other-ns", "b", "eng"),
        ];
        assert_eq!(
            bindings_of(&role, &all),
            vec![ObjectRef::new("yes").within("a")]
        );
    }
}
