//! The Connector loop. For now it checks that the credential Secrets a Connector names
//! exist and hold their keys; reaching the downstream app comes with each backend.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, runtime::controller::Action};

use super::{Context, Error, instrumented, status};
use crate::{
    api::{
        Connector, ConnectorSpec, ConnectorStatus, LocalSecretKeyRef,
        conditions::{self, Desired},
    },
    time::now,
};

const RESYNC: std::time::Duration = std::time::Duration::from_secs(60);

/// What looking up one referenced Secret found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorCheck {
    /// The Secret exists and holds the key.
    Found,
    /// No such Secret.
    SecretMissing,
    /// The Secret exists without the key.
    KeyMissing,
    /// Roster may not read the Secret.
    Forbidden,
}

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

/// Every Secret key the spec refers to, with the field that names it.
pub fn secret_refs(spec: &ConnectorSpec) -> Vec<(&'static str, &LocalSecretKeyRef)> {
    let mut refs = Vec::new();
    if let Some(s) = &spec.scim {
        refs.push(("scim.tokenSecretRef", &s.token_secret_ref));
        refs.extend(s.ca_secret_ref.as_ref().map(|r| ("scim.caSecretRef", r)));
    }
    if let Some(l) = &spec.ldap {
        refs.push(("ldap.bindPasswordSecretRef", &l.bind_password_secret_ref));
        refs.extend(l.ca_secret_ref.as_ref().map(|r| ("ldap.caSecretRef", r)));
    }
    if let Some(p) = &spec.postgres {
        refs.push(("postgres.passwordSecretRef", &p.password_secret_ref));
        refs.extend(
            p.ca_secret_ref
                .as_ref()
                .map(|r| ("postgres.caSecretRef", r)),
        );
    }
    if let Some(k) = &spec.kubernetes {
        refs.extend(
            k.kubeconfig_secret_ref
                .as_ref()
                .map(|r| ("kubernetes.kubeconfigSecretRef", r)),
        );
    }
    refs
}

/// The Connector's `Ready` condition from its backend and what each Secret lookup found.
/// Pure. Never includes a Secret's content, only its name and key.
pub fn connector_ready(
    spec: &ConnectorSpec,
    checks: &[(&'static str, &LocalSecretKeyRef, ConnectorCheck)],
) -> Desired {
    let Some(backend) = backend(spec) else {
        return Desired::false_(
            conditions::READY,
            "InvalidBackend",
            "a Connector names exactly one backend: scim, ldap, postgres or kubernetes",
        );
    };
    for (field, r, check) in checks {
        let (reason, what) = match check {
            ConnectorCheck::Found => continue,
            ConnectorCheck::SecretMissing => (
                "SecretNotFound",
                format!("Secret {:?} does not exist", r.name),
            ),
            ConnectorCheck::KeyMissing => (
                "SecretKeyNotFound",
                format!("Secret {:?} has no key {:?}", r.name, r.key),
            ),
            ConnectorCheck::Forbidden => (
                "SecretForbidden",
                format!("Roster may not read Secret {:?}", r.name),
            ),
        };
        return Desired::false_(conditions::READY, reason, format!("{field}: {what}"));
    }
    Desired::unknown(
        conditions::READY,
        "NotChecked",
        format!("credentials are in place; this build does not reach {backend} apps yet"),
    )
}

/// Looks one Secret reference up without ever reading the value out.
async fn check_secret(api: &Api<Secret>, r: &LocalSecretKeyRef) -> Result<ConnectorCheck, Error> {
    match api.get_opt(&r.name).await {
        Ok(None) => Ok(ConnectorCheck::SecretMissing),
        Ok(Some(secret)) => {
            // `stringData` is write-only: the server folds it into `data`.
            if secret.data.as_ref().is_some_and(|d| d.contains_key(&r.key)) {
                Ok(ConnectorCheck::Found)
            } else {
                Ok(ConnectorCheck::KeyMissing)
            }
        }
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(ConnectorCheck::Forbidden),
        Err(err) => Err(err.into()),
    }
}

/// Reconciles one Connector: load → check credentials → status.
pub async fn reconcile(connector: Arc<Connector>, ctx: Arc<Context>) -> Result<Action, Error> {
    instrumented("Connector", &ctx, async {
        ctx.stores.wait_until_ready().await?;
        let ns = connector
            .namespace()
            .ok_or_else(|| Error::MissingNamespace(connector.name_any()))?;
        let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
        let mut checks = Vec::new();
        for (field, r) in secret_refs(&connector.spec) {
            checks.push((field, r, check_secret(&secrets, r).await?));
        }
        let ready = connector_ready(&connector.spec, &checks);

        let current = connector.status.clone().unwrap_or_default();
        let generation = connector.metadata.generation;
        let desired = ConnectorStatus {
            observed_generation: generation,
            conditions: conditions::merge(&current.conditions, &[ready], generation, &now()),
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
        // Secrets are not watched: a fixed resync picks up a Secret created after the
        // Connector.
        Ok(Action::requeue(RESYNC))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(connector_ready(&two, &[]).reason, "InvalidBackend");
    }

    #[test]
    fn each_secret_problem_has_its_reason() {
        let s = scim();
        let r = &s.scim.as_ref().unwrap().token_secret_ref;
        for (check, reason) in [
            (ConnectorCheck::SecretMissing, "SecretNotFound"),
            (ConnectorCheck::KeyMissing, "SecretKeyNotFound"),
            (ConnectorCheck::Forbidden, "SecretForbidden"),
        ] {
            let d = connector_ready(&s, &[("scim.tokenSecretRef", r, check)]);
            assert_eq!((d.status, d.reason.as_str()), ("False", reason));
            assert!(
                d.message.starts_with("scim.tokenSecretRef: "),
                "{}",
                d.message
            );
        }
        let ok = connector_ready(&s, &[("scim.tokenSecretRef", r, ConnectorCheck::Found)]);
        assert_eq!((ok.status, ok.reason.as_str()), ("Unknown", "NotChecked"));
    }

    #[test]
    fn secret_refs_lists_optional_ca_refs() {
        let s = spec(
            serde_json::json!({"ldap": {"url": "ldap://127.0.0.1", "bindDn": "cn=admin",
            "bindPasswordSecretRef": {"name": "l", "key": "p"}, "caSecretRef": {"name": "ca", "key": "ca.crt"},
            "usersDn": "ou=people", "groupsDn": "ou=groups"}}),
        );
        let fields: Vec<_> = secret_refs(&s).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["ldap.bindPasswordSecretRef", "ldap.caSecretRef"]);
        assert!(secret_refs(&spec(serde_json::json!({"kubernetes": {}}))).is_empty());
    }
}
