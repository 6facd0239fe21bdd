//! The Connector loop: `check()` against the app drives `Ready` and the capabilities in
//! status. Secrets are not watched; a fixed resync picks up a Secret created or rotated
//! after the Connector.

use std::sync::Arc;

use kube::{Api, ResourceExt, runtime::controller::Action};

use super::{Context, Error, instrumented, status};
use crate::{
    api::{
        Connector, ConnectorMode, ConnectorSpec, ConnectorStatus,
        conditions::{self, Desired},
    },
    connector::Capabilities,
    provision::{self, ProvisionError},
    time::now,
};

const RESYNC: std::time::Duration = std::time::Duration::from_secs(60);

/// The backend a spec names, when it names exactly one (the schema enforces that).
pub fn backend(spec: &ConnectorSpec) -> Option<&'static str> {
    let named = [
        ("scim", spec.scim.is_some()),
        ("ldap", spec.ldap.is_some()),
        ("postgres", spec.postgres.is_some()),
        ("kubernetes", spec.kubernetes.is_some()),
    ];
    let mut set = named.iter().filter(|(_, on)| *on).map(|(name, _)| *name);
    match (set.next(), set.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// The Connector's `Ready` condition from the outcome of building and checking its
/// backend. Pure. Messages name Secrets and keys, never their content.
pub fn connector_ready(
    spec: &ConnectorSpec,
    checked: &Result<Capabilities, ProvisionError>,
) -> Desired {
    match checked {
        Ok(_) => {
            let mode = match spec.mode {
                ConnectorMode::Enforce => "enforcing",
                ConnectorMode::Observe => "observing only",
            };
            Desired::true_(
                conditions::READY,
                "Reachable",
                format!(
                    "the {} app answers; {mode}",
                    backend(spec).unwrap_or("downstream")
                ),
            )
        }
        Err(e) => Desired::false_(
            conditions::READY,
            e.reason(),
            status::truncate(&e.to_string(), 1024),
        ),
    }
}

/// Reconciles one Connector: load → build → check → status.
pub async fn reconcile(connector: Arc<Connector>, ctx: Arc<Context>) -> Result<Action, Error> {
    instrumented("Connector", &ctx, async {
        ctx.stores.wait_until_ready().await?;
        let ns = connector
            .namespace()
            .ok_or_else(|| Error::MissingNamespace(connector.name_any()))?;
        let checked = match provision::build(&ctx.client, &connector).await {
            Ok(backend) => backend.check().await.map_err(ProvisionError::from),
            Err(e) => Err(e),
        };
        let ready = connector_ready(&connector.spec, &checked);

        let current = connector.status.clone().unwrap_or_default();
        let generation = connector.metadata.generation;
        let desired = ConnectorStatus {
            observed_generation: generation,
            conditions: conditions::merge(&current.conditions, &[ready], generation, &now()),
            capabilities: match &checked {
                Ok(caps) => caps.features.iter().cloned().collect(),
                Err(_) => current.capabilities.clone(),
            },
            ..current.clone()
        };
        let api = Api::<Connector>::namespaced(ctx.client.clone(), &ns);
        status::apply_if_changed(
            &ctx,
            "Connector",
            &api,
            connector.as_ref(),
            connector.status.as_ref(),
            &desired,
        )
        .await?;
        status::warn_on_ready_change(
            &ctx.recorder,
            connector.as_ref(),
            &current.conditions,
            &desired.conditions,
        )
        .await;
        Ok(Action::requeue(RESYNC))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{connector::ConnectorError, provision::secrets::SecretError};

    fn spec(v: serde_json::Value) -> ConnectorSpec {
        serde_json::from_value(v).unwrap()
    }

    fn scim() -> ConnectorSpec {
        spec(
            serde_json::json!({"scim": {"baseUrl": "http://127.0.0.1:1/v2",
            "tokenSecretRef": {"name": "tok", "key": "token"}}}),
        )
    }

    #[test]
    fn backend_is_the_one_named() {
        assert_eq!(backend(&scim()), Some("scim"));
        assert_eq!(backend(&spec(serde_json::json!({}))), None);
        let two = spec(
            serde_json::json!({"kubernetes": {}, "scim": {"baseUrl": "http://x",
            "tokenSecretRef": {"name": "a", "key": "b"}}}),
        );
        assert_eq!(backend(&two), None);
    }

    #[test]
    fn each_problem_has_its_reason_and_no_secret_content() {
        let s = scim();
        let cases = [
            (
                ProvisionError::Secret {
                    field: "scim.tokenSecretRef",
                    source: SecretError::NotFound { name: "tok".into() },
                },
                "SecretNotFound",
            ),
            (
                ProvisionError::Secret {
                    field: "scim.tokenSecretRef",
                    source: SecretError::KeyMissing {
                        name: "tok".into(),
                        key: "token".into(),
                    },
                },
                "SecretKeyNotFound",
            ),
            (
                ProvisionError::Downstream(ConnectorError::Unauthorized { status: 401 }),
                "Unauthorized",
            ),
            (ProvisionError::Unsupported("ldap"), "BackendUnsupported"),
        ];
        for (err, reason) in cases {
            let d = connector_ready(&s, &Err(err));
            assert_eq!((d.status, d.reason.as_str()), ("False", reason));
        }
        let ok = connector_ready(&s, &Ok(Capabilities::default()));
        assert_eq!((ok.status, ok.reason.as_str()), ("True", "Reachable"));
    }
}
