//! The Identity loop. For now it validates references (a Service's owner); the
//! provisioning pipeline (resolve → observe → plan → execute) hangs off this loop.

use std::sync::Arc;

use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, reflector::ObjectRef},
};

use super::{Context, Error, instrumented, status};
use crate::{
    api::{
        Identity, IdentityKind, IdentitySpec, IdentityStatus, LifecycleState,
        conditions::{self, Desired},
    },
    time::now,
};

/// How often an Identity is looked at again when nothing changes.
const RESYNC: std::time::Duration = std::time::Duration::from_secs(300);

/// The Identity's `Ready` condition, given its owner as the cache holds it. Pure.
pub fn identity_ready(spec: &IdentitySpec, owner: Option<&Identity>) -> Desired {
    let Some(owner_name) = spec.owner.as_deref() else {
        return match spec.kind {
            // The schema already refuses this; a stale object could still carry it.
            IdentityKind::Service => Desired::false_(
                conditions::READY,
                "OwnerMissing",
                "a Service identity needs spec.owner",
            ),
            IdentityKind::Person => {
                Desired::true_(conditions::READY, "Valid", "references resolve")
            }
        };
    };
    match owner {
        None => Desired::false_(
            conditions::READY,
            "OwnerNotFound",
            format!("owner Identity {owner_name:?} does not exist"),
        ),
        Some(o) if o.spec.state == LifecycleState::Terminated => Desired::false_(
            conditions::READY,
            "OwnerTerminated",
            format!("owner Identity {owner_name:?} is Terminated; assign a new owner"),
        ),
        Some(_) => Desired::true_(conditions::READY, "Valid", "references resolve"),
    }
}

/// Reconciles one Identity: load → validate → status.
pub async fn reconcile(identity: Arc<Identity>, ctx: Arc<Context>) -> Result<Action, Error> {
    instrumented("Identity", &ctx, async {
        ctx.stores.wait_until_ready().await?;
        let owner = identity
            .spec
            .owner
            .as_deref()
            .and_then(|name| ctx.stores.identities.get(&ObjectRef::new(name)));
        let ready = identity_ready(&identity.spec, owner.as_deref());

        let current = identity.status.clone().unwrap_or_default();
        let generation = identity.metadata.generation;
        let desired = IdentityStatus {
            observed_generation: generation,
            conditions: conditions::merge(&current.conditions, &[ready], generation, &now()),
            ..current.clone()
        };
        let api = Api::<Identity>::all(ctx.client.clone());
        status::apply_if_changed(
            &ctx,
            "Identity",
            &api,
            identity.as_ref(),
            identity.status.as_ref(),
            &desired,
        )
        .await?;
        status::warn_on_ready_change(
            &ctx.recorder,
            identity.as_ref(),
            &current.conditions,
            &desired.conditions,
        )
        .await;
        Ok(Action::requeue(RESYNC))
    })
    .await
}

/// The Service identities an Identity owns: they are looked at again when it changes.
pub fn owned_services(owner: &Identity, all: &[Arc<Identity>]) -> Vec<ObjectRef<Identity>> {
    let name = owner.name_any();
    all.iter()
        .filter(|i| i.spec.owner.as_deref() == Some(name.as_str()))
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: IdentityKind, owner: Option<&str>) -> IdentitySpec {
        IdentitySpec {
            kind,
            username: "bot".into(),
            owner: owner.map(str::to_owned),
            display_name: None,
            given_name: None,
            family_name: None,
            emails: vec![],
            attributes: Default::default(),
            state: LifecycleState::Active,
            valid_from: None,
            valid_until: None,
        }
    }

    fn identity(name: &str, state: LifecycleState) -> Identity {
        let mut s = spec(IdentityKind::Person, None);
        s.state = state;
        Identity::new(name, s)
    }

    #[test]
    fn person_without_owner_is_ready() {
        let d = identity_ready(&spec(IdentityKind::Person, None), None);
        assert_eq!((d.status, d.reason.as_str()), ("True", "Valid"));
    }

    #[test]
    fn service_owner_must_exist_and_be_active() {
        let s = spec(IdentityKind::Service, Some("ada"));
        assert_eq!(identity_ready(&s, None).reason, "OwnerNotFound");
        let gone = identity("ada", LifecycleState::Terminated);
        assert_eq!(identity_ready(&s, Some(&gone)).reason, "OwnerTerminated");
        let ada = identity("ada", LifecycleState::Active);
        assert_eq!(identity_ready(&s, Some(&ada)).status, "True");
        assert_eq!(
            identity_ready(&spec(IdentityKind::Service, None), None).status,
            "False"
        );
    }

    #[test]
    fn owned_services_finds_only_the_owners_services() {
        let ada = identity("ada", LifecycleState::Active);
        let mut bot = Identity::new("bot", spec(IdentityKind::Service, Some("ada")));
        bot.metadata.name = Some("bot".into());
        let other = Identity::new("other", spec(IdentityKind::Service, Some("bob")));
        let found = owned_services(
            &ada,
            &[Arc::new(bot), Arc::new(other), Arc::new(ada.clone())],
        );
        assert_eq!(found, vec![ObjectRef::new("bot")]);
    }
}
