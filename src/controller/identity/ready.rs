//! The Identity's own `Ready` condition: its references, and for a Service, its owner.

use crate::{
    api::{
        Identity, IdentityKind, IdentitySpec, LifecycleState,
        conditions::{self, Desired},
    },
    lifecycle::owner::Standing,
};

/// The Identity's `Ready` condition, given its owner as the cache holds it. Pure.
pub fn identity_ready(
    spec: &IdentitySpec,
    owner: Option<&Identity>,
    standing: &Standing,
) -> Desired {
    let reason = if owner.is_some() {
        "OwnerTerminated"
    } else {
        "OwnerNotFound"
    };
    match standing {
        Standing::Answered => {}
        Standing::Grace { why, until, .. } => {
            return Desired::false_(
                conditions::READY,
                reason,
                format!("{why}: assign a new owner; its access is disabled at {until} otherwise"),
            );
        }
        Standing::Lapsed { why, .. } => {
            return Desired::false_(
                conditions::READY,
                reason,
                format!("{why}: its access is disabled until a new owner is set"),
            );
        }
    }
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

#[cfg(test)]
pub(super) mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    pub(crate) fn spec(kind: IdentityKind, owner: Option<&str>) -> IdentitySpec {
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

    pub(crate) fn identity(name: &str, state: LifecycleState) -> Identity {
        let mut s = spec(IdentityKind::Person, None);
        s.state = state;
        Identity::new(name, s)
    }

    #[test]
    fn person_without_owner_is_ready() {
        let d = identity_ready(&spec(IdentityKind::Person, None), None, &Standing::Answered);
        assert_eq!((d.status, d.reason.as_str()), ("True", "Valid"));
    }

    #[test]
    fn service_owner_must_exist_and_be_active() {
        let s = spec(IdentityKind::Service, Some("ada"));
        assert_eq!(
            identity_ready(&s, None, &Standing::Answered).reason,
            "OwnerNotFound"
        );
        let gone = identity("ada", LifecycleState::Terminated);
        assert_eq!(
            identity_ready(&s, Some(&gone), &Standing::Answered).reason,
            "OwnerTerminated"
        );
        let ada = identity("ada", LifecycleState::Active);
        assert_eq!(
            identity_ready(&s, Some(&ada), &Standing::Answered).status,
            "True"
        );
        assert_eq!(
            identity_ready(
                &spec(IdentityKind::Service, None),
                None,
                &Standing::Answered
            )
            .status,
            "False"
        );
    }

    #[test]
    fn a_service_without_an_owner_says_when_its_access_goes() {
        let s = spec(IdentityKind::Service, Some("ada"));
        let until: Timestamp = "2026-12-09T10:00:00Z".parse().expect("a time");
        let grace = Standing::Grace {
            why: "its owner Identity \"ada\" has left".into(),
            since: until,
            until,
        };
        let gone = identity("ada", LifecycleState::Terminated);
        let d = identity_ready(&s, Some(&gone), &grace);
        assert_eq!((d.status, d.reason.as_str()), ("False", "OwnerTerminated"));
        assert!(d.message.contains("2026-12-09T10:00:00Z"), "{}", d.message);
        let lapsed = Standing::Lapsed {
            why: "its owner Identity \"ada\" does not exist".into(),
            since: until,
        };
        let d = identity_ready(&s, None, &lapsed);
        assert_eq!(d.reason, "OwnerNotFound");
        assert!(
            d.message.contains("disabled until a new owner is set"),
            "{}",
            d.message
        );
    }
}
