//! `Identity`: a person or a non-human identity, once in the organisation (cluster-scoped).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An identity of the organisation: a person (`Person`) or a non-human identity
/// (`Service`). Roster gives it an account on a connector exactly when some active
/// RoleBinding grants it an entitlement there, and takes that account away when the
/// identity leaves.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "Identity",
    doc = "A person or non-human identity of the organisation, and the accounts Roster keeps for it downstream.",
    plural = "identities",
    status = "IdentityStatus",
    shortname = "ident",
    category = "roster",
    printcolumn(name = "Username", type_ = "string", json_path = ".spec.username"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "State", type_ = "string", json_path = ".spec.state"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Synced",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Synced\")].status"
    ),
    printcolumn(
        name = "Drifted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Drifted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.kind != 'Service' || has(self.owner)")
    .message("a Service identity needs spec.owner: the Identity accountable for it"))]
#[x_kube(validation = Rule::new("!has(self.validFrom) || !has(self.validUntil) || self.validUntil > self.validFrom")
    .message("spec.validUntil must be after spec.validFrom"))]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// `Person` for a human, `Service` for a non-human identity (a bot, a CI job, an
    /// integration). A `Service` must name an `owner`.
    #[serde(default)]
    pub kind: IdentityKind,

    /// The login name downstream apps know this identity by. Immutable: renaming an account
    /// is a leaver plus a joiner, not an edit.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.username is immutable"))]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
    )]
    pub username: String,

    /// Name of the Identity accountable for this one. Required for `Service` identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub owner: Option<String>,

    /// The name shown in downstream apps, e.g. "Ada Lovelace".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// Given (first) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub given_name: Option<String>,

    /// Family (last) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub family_name: Option<String>,

    /// Email addresses; the first is the primary one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 3, max = 254)))]
    pub emails: Vec<String>,

    /// Free attributes that RoleBinding expressions select on, e.g. `department`, `title`,
    /// `location`, `costCenter`, `manager`, `employmentType`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,

    /// Lifecycle state. `Active` identities get their accounts; `Suspended` ones keep them
    /// disabled; `Terminated` ones lose every entitlement at once and their accounts are
    /// deleted after each Connector's grace period.
    #[serde(default)]
    pub state: LifecycleState,

    /// The identity is treated as not yet started before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Time>,

    /// The identity is treated as `Terminated` from this time on (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Time>,
}

/// Whether an identity is a person or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IdentityKind {
    /// A human member of the organisation.
    #[default]
    Person,
    /// A non-human identity: a bot, a CI job, an integration. Needs an owner.
    Service,
}

/// Where an identity is in its lifecycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LifecycleState {
    /// Joined and working: gets every entitlement its bindings give.
    #[default]
    Active,
    /// Temporarily out (leave, investigation): accounts are disabled, nothing is deleted.
    Suspended,
    /// Left: every entitlement is revoked, accounts disabled, then deleted after the grace
    /// period.
    Terminated,
}

/// What Roster observed and did for an identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Synced` and `Drifted`, as standard Kubernetes conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// One entry per connector on which this identity has, or had, an account. The
    /// entitlements listed are the ones Roster granted: the ownership ledger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountStatus>,

    /// Evidence of deprovisioning, once the identity is leaving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprovisioning: Option<DeprovisioningReceipt>,

    /// For a `Service`: when Roster first found its owner gone or left. Its accounts are
    /// disabled the operator's owner grace period (`--owner-grace-seconds`) after this,
    /// until a new owner is set, which clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_lost_at: Option<Time>,
}

/// The identity's account on one connector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The Connector, as `namespace/name`.
    pub connector: String,
    /// The account's id in the downstream app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The account's state downstream.
    pub state: AccountState,
    /// Entitlements Roster granted on this connector. Roster only ever revokes what is
    /// listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
    /// When the account was last read back and found as declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified: Option<Time>,
    /// How the account differs from what is declared (bounded; the first few differences).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub drift: Vec<String>,
    /// When Roster found the account disabled after the identity lost access here: the
    /// start of the Connector's grace period before deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Time>,
    /// The last downstream error on this connector, if the last pass failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When each of the Connector's breakers last counted a removal on this account: a
    /// restarted operator seeds its budgets from these, so a restart never grants a
    /// fresh budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgeted_at: Option<BudgetedAt>,
}

/// When each breaker last counted a removal on one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetedAt {
    /// The removal budget: a disable by policy, or any deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removals: Option<Time>,
    /// The revocation budget: entitlements revoked by policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocations: Option<Time>,
    /// The leaver wave: an explicit leaver's disable (Suspended, Terminated, expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leavers: Option<Time>,
}

/// The state of an account downstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AccountState {
    /// Not yet created.
    #[default]
    Pending,
    /// Exists and is enabled.
    Active,
    /// Exists and is disabled.
    Disabled,
    /// Deleted by Roster.
    Deleted,
    /// An account with this username exists downstream but Roster does not own it; it is
    /// left untouched.
    Conflict,
    /// The username is a protected account on this connector; Roster never touches it.
    Protected,
}

/// Evidence that an identity's access was taken away.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeprovisioningReceipt {
    /// When Roster saw that the identity is leaving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Time>,
    /// One entry per connector the identity had an account on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<ConnectorReceipt>,
}

/// Deprovisioning evidence for one connector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorReceipt {
    /// The Connector, as `namespace/name`.
    pub connector: String,
    /// When the account was disabled and every entitlement revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
    /// When reading back confirmed the account disabled and holding no entitlement of ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Time>,
    /// When the account was deleted, after the Connector's grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Time>,
    /// Why access is not verified gone when a person must act: access remains through an
    /// account Roster does not own (its mark removed or changed downstream). Cleared once
    /// read-back finds no access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
}
