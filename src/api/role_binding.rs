//! `RoleBinding` (`rolebindings.roster.dev`): who gets a Role, by name, label or expression.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Gives a Role of this namespace to a set of Identities. Subjects are chosen by name, by
/// label selector, by a CEL expression over identity attributes, or any mix of the three
/// (an identity matching any of them is a subject). A binding whose expression matches
/// every active person is a birthright role.
///
/// Not to be confused with `rolebindings.rbac.authorization.k8s.io`: write
/// `rolebindings.roster.dev` (short name `rrb`) in kubectl commands and RBAC rules.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "RoleBinding",
    doc = "Gives a Role to Identities chosen by name, label selector or CEL expression (rolebindings.roster.dev).",
    namespaced,
    status = "RoleBindingStatus",
    shortname = "rrb",
    category = "roster",
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.role"),
    printcolumn(
        name = "Subjects",
        type_ = "integer",
        json_path = ".status.subjectCount"
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
#[x_kube(validation = Rule::new("!has(self.validFrom) || !has(self.validUntil) || self.validUntil > self.validFrom")
    .message("spec.validUntil must be after spec.validFrom"))]
#[serde(rename_all = "camelCase")]
pub struct RoleBindingSpec {
    /// Name of the Role (`roles.roster.dev`) in this namespace to give.
    #[schemars(length(min = 1, max = 253))]
    pub role: String,

    /// Who gets the Role.
    pub subjects: Subjects,

    /// The binding grants nothing before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Time>,

    /// The binding grants nothing from this time on (RFC 3339): time-bound access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Time>,

    /// Why this access exists (a ticket, an approval); kept as evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub justification: Option<String>,
}

/// The ways of choosing a binding's subjects. At least one must be given; an identity that
/// any of them matches is a subject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("(has(self.identities) && size(self.identities) > 0) || has(self.selector) || has(self.expression)")
    .message("spec.subjects needs at least one of identities, selector or expression"))]
#[serde(rename_all = "camelCase")]
pub struct Subjects {
    /// Identities chosen by name.
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(min = 1, max = 253)))]
    pub identities: Vec<String>,

    /// Identities chosen by their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Identities chosen by a CEL expression over the identity, e.g.
    /// `identity.attributes.department == "engineering" && identity.kind == "Person"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub expression: Option<String>,
}

/// What Roster observed about a RoleBinding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleBindingStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the Role exists and the subjects can be evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// How many identities the binding currently applies to; absent until evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_count: Option<i32>,
}
