//! The `roster.dev/v1alpha1` API: the four custom resources and the types they share.
//!
//! Every field carries rustdoc because the generated CRD turns it into `kubectl explain`
//! text. `crds/` is generated from these types with `roster crds`; a test fails when the
//! checked-in copy is stale.

pub mod admission;
// kube's `printcolumn(...)` repeats `type_ = "string"` once per column, which clippy
// mistakes for a duplicated attribute.
mod common;
#[allow(clippy::duplicated_attributes)]
mod connector;
#[allow(clippy::duplicated_attributes)]
mod identity;
#[allow(clippy::duplicated_attributes)]
mod role;
#[allow(clippy::duplicated_attributes)]
mod role_binding;

pub use common::{LocalSecretKeyRef, conditions};
pub use connector::{
    AdoptionPolicy, Connector, ConnectorMode, ConnectorSpec, ConnectorStatus, DeletionBudget,
    DeprovisioningPolicy, HeldRemoval, Inventory, KubernetesBackend, LdapBackend, LeaverWave,
    LeaverWaveStatus, MembershipAuthority, PostgresBackend, PostgresSslMode, QuarantineStatus,
    RateLimit, RevocationBudget, ScimBackend, TripStatus, UnownedMember,
};
pub use identity::{
    AccountState, AccountStatus, BudgetedAt, ConnectorReceipt, DeprovisioningReceipt, Identity,
    IdentityKind, IdentitySpec, IdentityStatus, LifecycleState,
};
pub use role::{EntitlementRef, Role, RoleSpec, RoleStatus};
pub use role_binding::{RoleBinding, RoleBindingSpec, RoleBindingStatus, Subjects};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every Roster resource.
pub const GROUP: &str = "roster.dev";
/// The API version served and stored.
pub const VERSION: &str = "v1alpha1";
/// The category that `kubectl get roster` lists.
pub const CATEGORY: &str = "roster";

/// Every Roster CRD, in a stable order (the order `roster crds` prints them in).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Identity::crd(),
        Role::crd(),
        RoleBinding::crd(),
        Connector::crd(),
    ]
}

/// Errors while rendering the CRDs.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A CRD or an admission policy could not be serialised to YAML.
    #[error("cannot serialise {name} to YAML: {source}")]
    Yaml {
        /// The object's name.
        name: String,
        /// The serialiser's error.
        source: serde_yaml_ng::Error,
    },
}

/// Every CRD as one multi-document YAML stream, each document starting with `---`.
pub fn crds_yaml() -> Result<String, RenderError> {
    let mut out = String::new();
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let doc =
            serde_yaml_ng::to_string(&crd).map_err(|source| RenderError::Yaml { name, source })?;
        out.push_str("---\n");
        out.push_str(&doc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails unless every file in `paths` (from the repository root) holds `generated`,
    /// naming the command that writes it.
    fn assert_current(paths: &[&str], generated: &str, command: &str) {
        for path in paths {
            let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
            let on_disk = std::fs::read_to_string(&full).unwrap_or_default();
            assert!(
                on_disk == generated,
                "{path} is stale; regenerate it with: cargo run -- {command} > {path}"
            );
        }
    }

    /// `crds/` is what users install, and the chart's copy what Helm installs; both must
    /// be what the types say.
    #[test]
    fn checked_in_crds_are_current() {
        let generated = crds_yaml().expect("render CRDs");
        let paths = ["crds/roster.dev.yaml", "charts/roster/crds/roster.dev.yaml"];
        assert_current(&paths, &generated, "crds");
    }

    /// The admission policies are installed beside the CRDs, and by the chart; both
    /// copies must be what the code says.
    #[test]
    fn checked_in_admission_policy_is_current() {
        let generated = admission::admission_yaml().expect("render the policies");
        let paths = ["crds/admission.yaml", "charts/roster/files/admission.yaml"];
        assert_current(&paths, &generated, "admission-policy");
    }

    #[test]
    fn every_crd_is_in_the_roster_category_with_a_status_subresource() {
        for crd in crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&[CATEGORY.to_owned()][..]),
                "{name}"
            );
            assert!(
                crd.spec
                    .names
                    .short_names
                    .as_ref()
                    .is_some_and(|s| !s.is_empty()),
                "{name}"
            );
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, VERSION);
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{name}"
            );
            assert!(
                version
                    .additional_printer_columns
                    .as_ref()
                    .is_some_and(|c| c.len() >= 3),
                "{name}"
            );
        }
    }
}
