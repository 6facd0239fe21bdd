//! Reading one key of a Secret named by a Connector. The value goes to the backend and
//! nowhere else: errors name the Secret and key, never the content.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::api::LocalSecretKeyRef;

/// Why a Secret key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No such Secret.
    #[error("Secret {name:?} does not exist")]
    NotFound {
        /// The Secret's name.
        name: String,
    },
    /// The Secret lacks the key.
    #[error("Secret {name:?} has no key {key:?}")]
    KeyMissing {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },
    /// Roster may not read it.
    #[error("Roster may not read Secret {name:?}")]
    Forbidden {
        /// The Secret's name.
        name: String,
    },
    /// The value must be text (a token, a password, a kubeconfig) and is not UTF-8.
    #[error("Secret {name:?} key {key:?} is not UTF-8 text")]
    NotText {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },
    /// The API server failed.
    #[error("cannot read Secret {name:?}: {reason}")]
    Api {
        /// The Secret's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

impl SecretError {
    /// A CamelCase reason for conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "SecretNotFound",
            Self::KeyMissing { .. } => "SecretKeyNotFound",
            Self::Forbidden { .. } => "SecretForbidden",
            Self::NotText { .. } => "SecretInvalid",
            Self::Api { .. } => "SecretUnavailable",
        }
    }
}

/// The bytes under `r.key` in Secret `r.name` of `namespace`.
pub async fn read(
    client: &Client,
    namespace: &str,
    r: &LocalSecretKeyRef,
) -> Result<Vec<u8>, SecretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = r.name.clone();
    match api.get_opt(&r.name).await {
        Ok(None) => Err(SecretError::NotFound { name }),
        // `stringData` is write-only: the server folds it into `data`.
        Ok(Some(secret)) => secret
            .data
            .and_then(|mut d| d.remove(&r.key))
            .map(|v| v.0)
            .ok_or_else(|| SecretError::KeyMissing {
                name,
                key: r.key.clone(),
            }),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(SecretError::Forbidden { name }),
        Err(e) => Err(SecretError::Api {
            name,
            reason: e.to_string(),
        }),
    }
}

/// The text under `r.key` in Secret `r.name` of `namespace`: a token, a password or a
/// kubeconfig, which must be UTF-8.
pub async fn read_text(
    client: &Client,
    namespace: &str,
    r: &LocalSecretKeyRef,
) -> Result<String, SecretError> {
    let bytes = read(client, namespace, r).await?;
    String::from_utf8(bytes).map_err(|_| SecretError::NotText {
        name: r.name.clone(),
        key: r.key.clone(),
    })
}
