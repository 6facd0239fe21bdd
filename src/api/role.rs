//! `Role`: a named bundle of entitlements on the connectors of its namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A bundle of entitlements on connectors of this namespace, e.g. `engineering` = SCIM
/// group `engineers` + PostgreSQL role `readonly` + Kubernetes ClusterRole `view`.
/// Identities get a Role through a RoleBinding (`rolebindings.roster.dev`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "Role",
    doc = "A bundle of entitlements on the Connectors of its namespace (roles.roster.dev).",
    namespaced,
    status = "RoleStatus",
    shortname = "rrole",
    category = "roster",
    printcolumn(
        name = "Entitlements",
        type_ = "integer",
        json_path = ".status.entitlementCount"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    /// What this role is for, in a sentence; shown to reviewers and auditors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// The entitlements this role grants.
    // A list-map keyed by (connector, name): the apiserver itself rejects duplicates, and
    // server-side apply merges entries instead of replacing the list.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["connector".into(), "name".into()]))]
    #[schemars(length(min = 1, max = 256))]
    pub entitlements: Vec<EntitlementRef>,
}

/// One entitlement on one connector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntitlementRef {
    /// Name of a Connector in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub connector: String,
    /// The entitlement, in the connector's own terms: a SCIM group's displayName, an LDAP
    /// group's cn, a PostgreSQL group role, or `ClusterRole/NAME` / `Role/NAMESPACE/NAME`
    /// for Kubernetes RBAC. Each connector's reference page in docs/ says more.
    #[schemars(length(min = 1, max = 512))]
    pub name: String,
    /// Overrides the Connector's `membership` for this entitlement. When Roles disagree
    /// on one entitlement, `Additive` wins: removing members Roster did not add needs
    /// every Role that names it to agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<super::MembershipAuthority>,
}

/// What Roster observed about a Role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: every entitlement names a Connector that exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// How many entitlements the role grants.
    #[serde(default)]
    pub entitlement_count: i32,
}
