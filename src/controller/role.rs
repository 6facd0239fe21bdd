//! The Role loop: a Role is ready when every entitlement names an existing Connector and
//! lies within its `allowedEntitlements`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, reflector::ObjectRef},
};

use super::{Context, Error, instrumented, status};
use crate::{
    api::{
        Connector, Role, RoleSpec, RoleStatus,
        conditions::{self, Desired},
    },
    lifecycle::bounds::Bounds,
    time::now,
};

const RESYNC: std::time::Duration = std::time::Duration::from_secs(300);
/// How many missing names a condition message lists before it says "and N more".
const LISTED: usize = 5;

/// The Role's `Ready` condition, given a way to look up a Connector's
/// `allowedEntitlements` by name (`None`: no such Connector). Pure.
pub fn role_ready<'c>(
    spec: &RoleSpec,
    connector: impl Fn(&str) -> Option<&'c [String]>,
) -> Desired {
    let missing: BTreeSet<&str> = spec
        .entitlements
        .iter()
        .map(|e| e.connector.as_str())
        .filter(|c| connector(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Desired::false_(
            conditions::READY,
            "ConnectorNotFound",
            format!("no Connector named {} in this namespace", list(&missing)),
        );
    }
    let outside: Vec<String> = spec
        .entitlements
        .iter()
        .filter(|e| connector(&e.connector).is_some_and(|a| !Bounds::new(a).allows(&e.name)))
        .map(|e| format!("{}/{}", e.connector, e.name))
        .collect();
    if !outside.is_empty() {
        let outside: BTreeSet<&str> = outside.iter().map(String::as_str).collect();
        return Desired::false_(
            conditions::READY,
            "OutsideConnectorBounds",
            format!(
                "{} outside the Connector's allowedEntitlements: granted to no one",
                list(&outside)
            ),
        );
    }
    Desired::true_(
        conditions::READY,
        "Valid",
        "every entitlement names an existing Connector, within its bounds",
    )
}

/// `a, b, c and 4 more`, quoted; bounded so that a condition message stays short.
pub(crate) fn list(names: &BTreeSet<&str>) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(LISTED)
        .map(|n| format!("{n:?}"))
        .collect();
    let rest = names.len().saturating_sub(LISTED);
    if rest == 0 {
        shown.join(", ")
    } else {
        format!("{} and {rest} more", shown.join(", "))
    }
}

/// Reconciles one Role: load → validate → status.
pub async fn reconcile(role: Arc<Role>, ctx: Arc<Context>) -> Result<Action, Error> {
    instrumented("Role", &ctx, async {
        ctx.stores.wait_until_ready().await?;
        let ns = role
            .namespace()
            .ok_or_else(|| Error::MissingNamespace(role.name_any()))?;
        let connectors: BTreeMap<String, Arc<Connector>> = role
            .spec
            .entitlements
            .iter()
            .filter_map(|e| {
                let c = ctx
                    .stores
                    .connectors
                    .get(&ObjectRef::<Connector>::new(&e.connector).within(&ns))?;
                Some((e.connector.clone(), c))
            })
            .collect();
        let ready = role_ready(&role.spec, |name| {
            connectors
                .get(name)
                .map(|c| c.spec.allowed_entitlements.as_slice())
        });
        let current = role.status.clone().unwrap_or_default();
        let generation = role.metadata.generation;
        let desired = RoleStatus {
            observed_generation: generation,
            conditions: conditions::merge(&current.conditions, &[ready], generation, &now()),
            entitlement_count: i32::try_from(role.spec.entitlements.len()).unwrap_or(i32::MAX),
        };
        let api = Api::<Role>::namespaced(ctx.client.clone(), &ns);
        status::apply_if_changed(
            &ctx,
            "Role",
            &api,
            role.as_ref(),
            role.status.as_ref(),
            &desired,
        )
        .await?;
        status::warn_on_ready_change(
            &ctx.recorder,
            role.as_ref(),
            &current.conditions,
            &desired.conditions,
        )
        .await;
        Ok(Action::requeue(RESYNC))
    })
    .await
}

/// The Roles of a Connector's namespace that name it: they are looked at again when it
/// appears, changes or goes.
pub fn roles_naming(connector: &Connector, roles: &[Arc<Role>]) -> Vec<ObjectRef<Role>> {
    let (name, ns) = (connector.name_any(), connector.namespace());
    roles
        .iter()
        .filter(|r| r.namespace() == ns && r.spec.entitlements.iter().any(|e| e.connector == name))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EntitlementRef;

    fn spec(connectors: &[&str]) -> RoleSpec {
        RoleSpec {
            description: None,
            entitlements: connectors
                .iter()
                .map(|c| EntitlementRef {
                    connector: (*c).to_owned(),
                    name: "g".into(),
                    membership: None,
                })
                .collect(),
        }
    }

    const ANY: &[String] = &[];

    #[test]
    fn ready_when_every_connector_exists() {
        let d = role_ready(&spec(&["scim", "ldap"]), |_| Some(ANY));
        assert_eq!(d.status, "True");
    }

    #[test]
    fn names_each_missing_connector_once() {
        let d = role_ready(&spec(&["scim", "gone", "gone", "ldap"]), |c| {
            (c != "gone").then_some(ANY)
        });
        assert_eq!(
            (d.status, d.reason.as_str()),
            ("False", "ConnectorNotFound")
        );
        assert_eq!(d.message, "no Connector named \"gone\" in this namespace");
    }

    #[test]
    fn long_lists_are_bounded() {
        let names: Vec<String> = (0..12).map(|i| format!("c{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let d = role_ready(&spec(&refs), |_| None);
        assert!(
            d.message.ends_with("and 7 more in this namespace"),
            "{}",
            d.message
        );
    }

    #[test]
    fn names_each_entitlement_outside_its_connectors_bounds() {
        let mut role = spec(&["scim", "pg"]);
        role.entitlements[1].name = "app_admin".into();
        let pg_bounds = ["app_read*".to_owned()];
        let d = role_ready(&role, |c| {
            Some(if c == "pg" { &pg_bounds[..] } else { ANY })
        });
        assert_eq!(
            (d.status, d.reason.as_str()),
            ("False", "OutsideConnectorBounds")
        );
        assert!(
            d.message.starts_with("\"pg/app_admin\" outside"),
            "{}",
            d.message
        );
        role.entitlements[1].name = "app_readers".into();
        let d = role_ready(&role, |c| {
            Some(if c == "pg" { &pg_bounds[..] } else { ANY })
        });
        assert_eq!(d.status, "True", "{}", d.message);
    }

    #[test]
    fn roles_naming_stays_in_the_connectors_namespace() {
        let mut conn = Connector::new(
            "scim",
            serde_json::from_value(serde_json::json!({"kubernetes": {}})).unwrap(),
        );
        conn.metadata.namespace = Some("a".into());
        let mut here = Role::new("here", spec(&["scim"]));
        here.metadata.namespace = Some("a".into());
        let mut there = Role::new("there", spec(&["scim"]));
        there.metadata.namespace = Some("b".into());
        let found = roles_naming(&conn, &[Arc::new(here), Arc::new(there)]);
        assert_eq!(found, vec![ObjectRef::new("here").within("a")]);
    }
}
