//! `IdentitySource` (`identitysources.roster.dev`): where people come from — an HR export,
//! an LDAP directory or a SCIM push from HR or an IdP — and the safeguard that keeps a broken one from making everyone
//! a leaver.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod backend;
mod mapping;

pub use backend::{
    BasicAuth, ConfigMapKeyRef, ExportDownload, ExportFormat, HrExport, LdapDirectory, ScimPush,
};
pub use mapping::{ComputedFields, FieldMapping};

/// A feed of people from the system of record: an HR export, an LDAP directory, or an
/// HR system or IdP pushing users to Roster's SCIM 2.0 endpoint. Roster reads it every
/// `pollSeconds` (and a SCIM source at once on every push), creates an Identity for each worker, keeps the
/// mapped fields as the source says, and turns workers who leave the source into leavers
/// under `policy`. It only ever changes
/// Identities it created (they carry the label and annotation `roster.dev/source`); an
/// Identity of the same name created by hand or from Git is a clash, reported and left
/// alone. Removals are bounded by `safeguard`: past it, or when the source is empty,
/// nothing is removed until a person approves.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "IdentitySource",
    doc = "A feed of people (an HR export, an LDAP directory, a SCIM push) that Roster turns into Identities, with an import safeguard.",
    namespaced,
    status = "IdentitySourceStatus",
    shortname = "isrc",
    category = "roster",
    printcolumn(name = "Rows", type_ = "integer", json_path = ".status.rows"),
    printcolumn(
        name = "Identities",
        type_ = "integer",
        json_path = ".status.identities"
    ),
    printcolumn(
        name = "Synced",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Synced\")].status"
    ),
    printcolumn(
        name = "Quarantined",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Quarantined\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("[has(self.hrExport), has(self.ldap), has(self.scim)].filter(b, b).size() == 1")
    .message("an IdentitySource reads exactly one of hrExport, ldap or scim"))]
#[serde(rename_all = "camelCase")]
pub struct IdentitySourceSpec {
    /// An export file, one row per worker, as HR systems write them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hr_export: Option<HrExport>,

    /// People below a base DN of an LDAP directory, one entry per worker; the mapping
    /// names attributes (`uid`, `cn`, `mail`, `departmentNumber`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapDirectory>,

    /// Users an HR system or IdP (Entra ID, Okta, Workday) pushes to Roster's SCIM 2.0
    /// endpoint, `/sources/<namespace>/<name>/scim/v2`; the mapping names SCIM attributes
    /// (`userName`, `name.givenName`, `emails`, `department`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<ScimPush>,

    /// How often the source is read.
    #[serde(default = "default_poll_seconds")]
    #[schemars(range(min = 5, max = 86400))]
    pub poll_seconds: i64,

    /// Which column fills which Identity field.
    pub mapping: FieldMapping,

    /// What happens to a worker who leaves the source.
    #[serde(default)]
    pub policy: SourcePolicy,

    /// The most workers the source may turn into leavers in a window.
    #[serde(default)]
    pub safeguard: ImportSafeguard,
}

fn default_poll_seconds() -> i64 {
    60
}

/// What a source does with its workers' departures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourcePolicy {
    /// A worker whose row disappears from the export, whose entry leaves the directory,
    /// or whom the pushing system deletes.
    #[serde(default)]
    pub missing: MissingWorker,
    /// A worker a SCIM push marks `active: false` (Entra ID and Okta deactivate before
    /// they delete).
    #[serde(default = "suspend")]
    pub inactive: MissingWorker,
    /// What becomes of the Service identities a worker owns when the worker leaves.
    #[serde(default)]
    pub owned_services: OwnedServices,
}

impl Default for SourcePolicy {
    fn default() -> Self {
        Self {
            missing: MissingWorker::default(),
            inactive: suspend(),
            owned_services: OwnedServices::default(),
        }
    }
}

/// Who a leaver's Service identities answer to next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OwnedServices {
    /// Each service's status names the leaver's manager as who could take it over; a
    /// person sets the new owner (in Git, where `owner` is kept). The service keeps its
    /// access for the grace period, then is disabled until then.
    #[default]
    Report,
    /// The source sets each service's `owner` to the leaver's manager (the `manager`
    /// attribute), when the manager has an active Person Identity. Done once per service
    /// and owner: put back, it is reported instead, so Roster never fights Git over it.
    ReassignToManager,
}

fn suspend() -> MissingWorker {
    MissingWorker::Suspend
}

/// The state a worker whose row disappeared is put in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MissingWorker {
    /// `Terminated`: every entitlement revoked, accounts deleted after each Connector's
    /// grace period.
    #[default]
    Terminate,
    /// `Suspended`: accounts disabled, nothing deleted, until the row comes back.
    Suspend,
}

/// The most workers a source may turn into leavers (suspended, terminated, or given a
/// termination date) in a sliding window. Past either limit the source stops applying
/// removals, sets `Quarantined=True` and waits for a person to annotate it with
/// `roster.dev/approve-removals: <now, RFC 3339>`. An empty export while the source owns
/// Identities is held the same way, whatever the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportSafeguard {
    /// The most leavers in one window.
    #[schemars(range(min = 0))]
    pub max_removals: i32,
    /// The most leavers in one window, as a percentage of the Identities the source owns.
    /// One leaver per window always fits.
    #[schemars(range(min = 0, max = 100))]
    pub max_percent: i32,
    /// The window's length.
    #[schemars(range(min = 60))]
    pub window_seconds: i64,
}

// Okta's import safeguard holds an import that would unassign more than 20 % of an app's
// users; a day's window catches a drip that no single import shows.
impl Default for ImportSafeguard {
    fn default() -> Self {
        Self {
            max_removals: 50,
            max_percent: 20,
            window_seconds: 86400,
        }
    }
}

/// What the last read of the source found and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySourceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Synced` (the last read was applied), `Quarantined` (removals are held), as
    /// standard Kubernetes conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the source was last read and applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// Rows in the last export read.
    #[serde(default)]
    pub rows: i32,
    /// Identities this source owns.
    #[serde(default)]
    pub identities: i32,
    /// Rows that could not be used (the first few), each left as it was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub row_errors: Vec<String>,
    /// How many rows could not be used in all.
    #[serde(default)]
    pub row_error_count: i32,
    /// Identities the source names but does not own (the first few): left untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub clashes: Vec<SourceClash>,
    /// How many clashes in all.
    #[serde(default)]
    pub clash_count: i32,
    /// Why and since when removals are held, while they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<SourceQuarantine>,
}

/// An Identity the source names that someone else owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceClash {
    /// The Identity's name.
    pub identity: String,
    /// Who owns it instead.
    pub reason: String,
}

/// Removals a source holds for a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceQuarantine {
    /// When removals were first held. An approval at or after this time releases them.
    pub since: Time,
    /// Human-readable reason.
    pub message: String,
    /// How many Identities are held from leaving; an approval releases at most this many.
    pub held_count: i32,
    /// Who is held (the first few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub held: Vec<String>,
}
