//! The `roster.dev/v1alpha1` API: the six custom resources and the types they share.
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
mod identity_source;
mod prose;
#[allow(clippy::duplicated_attributes)]
mod role;
#[allow(clippy::duplicated_attributes)]
mod role_binding;
#[allow(clippy::duplicated_attributes)]
mod scim_user;

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
pub use identity_source::{
    BasicAuth, ComputedFields, ConfigMapKeyRef, ExportDownload, ExportFormat, FieldMapping,
    HrExport, IdentitySource, IdentitySourceSpec, IdentitySourceStatus, ImportSafeguard,
    LdapDirectory, MissingWorker, OwnedServices, ScimPush, SourceClash, SourcePolicy,
    SourceQuarantine,
};
pub use role::{EntitlementRef, Role, RoleSpec, RoleStatus};
pub use role_binding::{RoleBinding, RoleBindingSpec, RoleBindingStatus, Subjects};
pub use scim_user::{ScimUser, ScimUserSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every Roster resource.
pub const GROUP: &str = "roster.dev";
/// The API version served and stored.
pub const VERSION: &str = "v1alpha1";
/// The category that `kubectl get roster` lists.
pub const CATEGORY: &str = "roster";

/// Every Roster CRD, in a stable order (the order `roster crds` prints them in), its
/// descriptions reflowed as prose for `kubectl explain`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        Identity::crd(),
        Role::crd(),
        RoleBinding::crd(),
        Connector::crd(),
        IdentitySource::crd(),
        ScimUser::crd(),
    ]
    .into_iter()
    .map(as_prose)
    .collect()
}

/// `crd` with every description reflowed. A CRD always round-trips through JSON; were
/// it ever not to, it is returned as generated rather than lost.
fn as_prose(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let Ok(mut json) = serde_json::to_value(&crd) else {
        return crd;
    };
    prose::reflow_descriptions(&mut json);
    serde_json::from_value(json).unwrap_or(crd)
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

    /// `kubectl explain` reads as prose: no description breaks a line inside a
    /// paragraph (rustdoc's source wrapping), but for list items.
    #[test]
    fn crd_descriptions_break_lines_only_between_paragraphs() {
        fn walk(v: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        if let (true, Some(text)) = (k == "description", v.as_str()) {
                            let lines: Vec<&str> =
                                text.split("\n\n").flat_map(str::lines).collect();
                            let paragraphs = text.split("\n\n").count();
                            let listed = lines.iter().filter(|l| l.starts_with("- ")).count();
                            if lines.len() > paragraphs + listed {
                                bad.push(format!("{path}: {text:?}"));
                            }
                        }
                        walk(v, &format!("{path}.{k}"), bad);
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, path, bad)),
                _ => {}
            }
        }
        let mut bad = Vec::new();
        for crd in crds() {
            let json = serde_json::to_value(&crd).expect("JSON");
            walk(
                &json,
                crd.metadata.name.as_deref().unwrap_or_default(),
                &mut bad,
            );
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn every_crd_is_in_the_roster_category_with_a_status_subresource() {
        // Pushed SCIM users are the endpoint's store, not objects a person works with:
        // one per worker, so `kubectl get roster` would drown in them.
        let store = ScimUser::crd_name();
        for crd in crds()
            .into_iter()
            .filter(|c| c.metadata.name.as_deref() != Some(store))
        {
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
