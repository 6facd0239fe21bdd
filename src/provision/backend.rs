//! A live backend for a `Connector` object.

use std::sync::Arc;

use kube::{Client, ResourceExt};

use super::secrets::{self, SecretError};
use crate::{
    api::{Connector, LocalSecretKeyRef},
    connector::{
        self, ConnectorError,
        kubernetes::{KubernetesConnector, kubeconfig},
        ldap::{self, LdapConnector},
        postgres::{self, PostgresConnector},
        scim::ScimConnector,
        target::{Network, TargetPolicy},
    },
};

/// Why a Connector cannot be used or a downstream step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    /// A credential Secret is unusable; `field` names the spec field that refers to it.
    #[error("{field}: {source}")]
    Secret {
        /// The spec field, e.g. `scim.tokenSecretRef`.
        field: &'static str,
        /// What is wrong with it.
        source: SecretError,
    },
    /// The downstream app failed.
    #[error(transparent)]
    Downstream(#[from] ConnectorError),
    /// The object names no backend (the schema prevents it; stale objects may).
    #[error("the Connector names no backend")]
    NoBackend,
}

impl ProvisionError {
    /// A CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Secret { source, .. } => source.reason(),
            Self::Downstream(e) => e.reason(),
            Self::NoBackend => "InvalidBackend",
        }
    }
}

/// The bytes of a Secret key (a CA bundle); `field` names the spec field in the error.
async fn secret_bytes(
    client: &Client,
    namespace: &str,
    field: &'static str,
    r: &LocalSecretKeyRef,
) -> Result<Vec<u8>, ProvisionError> {
    secrets::read(client, namespace, r)
        .await
        .map_err(|source| ProvisionError::Secret { field, source })
}

/// A Secret key that must be text (a token, a password, a kubeconfig).
async fn secret_text(
    client: &Client,
    namespace: &str,
    field: &'static str,
    r: &LocalSecretKeyRef,
) -> Result<String, ProvisionError> {
    secrets::read_text(client, namespace, r)
        .await
        .map_err(|source| ProvisionError::Secret { field, source })
}

/// Builds the backend a Connector describes, reading its Secrets; it reaches only the
/// addresses `policy` allows.
pub async fn build(
    client: &Client,
    connector: &Connector,
    policy: &TargetPolicy,
) -> Result<Arc<dyn connector::Connector>, ProvisionError> {
    let ns = connector.namespace().unwrap_or_default();
    let spec = &connector.spec;
    let network = Network {
        policy: policy.clone(),
        allow_plaintext: spec.allow_plaintext,
    };
    if let Some(scim) = &spec.scim {
        let token = secret_text(client, &ns, "scim.tokenSecretRef", &scim.token_secret_ref).await?;
        let ca = match &scim.ca_secret_ref {
            Some(r) => Some(secret_bytes(client, &ns, "scim.caSecretRef", r).await?),
            None => None,
        };
        return Ok(Arc::new(ScimConnector::new(
            &scim.base_url,
            &token,
            ca.as_deref(),
            &network,
        )?));
    }
    if let Some(l) = &spec.ldap {
        let password = secret_text(
            client,
            &ns,
            "ldap.bindPasswordSecretRef",
            &l.bind_password_secret_ref,
        )
        .await?;
        let ca_pem = match &l.ca_secret_ref {
            Some(r) => Some(secret_bytes(client, &ns, "ldap.caSecretRef", r).await?),
            None => None,
        };
        return Ok(Arc::new(LdapConnector::new(ldap::Settings {
            url: l.url.clone(),
            start_tls: l.start_tls,
            bind_dn: l.bind_dn.clone(),
            password,
            ca_pem,
            users_dn: l.users_dn.clone(),
            groups_dn: l.groups_dn.clone(),
            disabled_users_dn: l.disabled_users_dn.clone(),
            network,
        })));
    }
    if let Some(pg) = &spec.postgres {
        let password = secret_text(
            client,
            &ns,
            "postgres.passwordSecretRef",
            &pg.password_secret_ref,
        )
        .await?;
        let ca_pem = match &pg.ca_secret_ref {
            Some(r) => Some(secret_bytes(client, &ns, "postgres.caSecretRef", r).await?),
            None => None,
        };
        let port = u16::try_from(pg.port).map_err(|_| {
            ProvisionError::Downstream(ConnectorError::Config(format!(
                "port {} is out of range",
                pg.port
            )))
        })?;
        return Ok(Arc::new(PostgresConnector::new(postgres::Settings {
            host: pg.host.clone(),
            port,
            database: pg.database.clone(),
            user: pg.username.clone(),
            password,
            ssl_mode: pg.ssl_mode,
            ca_pem,
            network,
        })));
    }
    if let Some(k) = &spec.kubernetes {
        let target = match &k.kubeconfig_secret_ref {
            Some(r) => {
                let yaml = secret_text(client, &ns, "kubernetes.kubeconfigSecretRef", r).await?;
                kubeconfig::client(&yaml, &network).await?
            }
            None => client.clone(),
        };
        let namespace = k.service_account_namespace.clone().unwrap_or(ns);
        let name = connector.name_any();
        return Ok(Arc::new(KubernetesConnector::new(
            target,
            namespace,
            (&connector.namespace().unwrap_or_default(), &name),
        )));
    }
    Err(ProvisionError::NoBackend)
}
