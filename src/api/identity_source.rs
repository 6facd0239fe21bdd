//! `IdentitySource` (`identitysources.roster.dev`): where people come from — an HR export,
//! an LDAP directory or a SCIM push from HR or an IdP — and the safeguard that keeps a broken one from making everyone
//! a leaver.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalSecretKeyRef;

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

/// An HR export: a file held in a ConfigMap of the source's namespace, or one fetched
/// from the HR system over HTTPS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.configMap) != has(self.http)")
    .message("an hrExport reads exactly one of configMap or http"))]
#[serde(rename_all = "camelCase")]
pub struct HrExport {
    /// The ConfigMap and key holding the file, written by whatever job fetches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapKeyRef>,

    /// The URL the file is fetched from on every read (a Workday report-as-a-service URL,
    /// a file an HR job publishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<ExportDownload>,

    /// `Csv` (a header row, then one row per worker) or `Json` (an array of objects, one
    /// per worker, or an object whose `workers` field is that array).
    #[serde(default)]
    pub format: ExportFormat,
}

/// Where an export is downloaded from, and how Roster proves who it is. The address is
/// checked against the operator's target policy (`--allow-target-network`) like every
/// Connector's, and redirects stay on the same origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!(has(self.tokenSecretRef) && has(self.basicAuth))")
    .message("an export download authenticates with tokenSecretRef or basicAuth, not both"))]
#[serde(rename_all = "camelCase")]
pub struct ExportDownload {
    /// `https://host/path?query`; `http://` only with `allowPlaintext`. Credentials do not
    /// belong in it: name a Secret instead.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub url: String,
    /// A bearer token sent as `Authorization: Bearer`, in a Secret of the source's
    /// namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<LocalSecretKeyRef>,
    /// HTTP basic authentication (Workday's integration system users sign in this way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// A PEM CA bundle to trust besides the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<LocalSecretKeyRef>,
    /// Allow `http://`: the export (and any credentials) then cross the network in the
    /// clear. For loopback demos only.
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// A user name and the Secret holding its password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The user name.
    #[schemars(length(min = 1, max = 256))]
    pub username: String,
    /// The password, in a Secret of the source's namespace.
    pub password_secret_ref: LocalSecretKeyRef,
}

/// People in an LDAP directory (pull). Entries below `baseDn` matching `filter` are the
/// workers; an entry that disappears, or starts matching `disabledFilter`, is read as
/// absent, a leaver under the source's policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LdapDirectory {
    /// `ldap://host:port` or `ldaps://host:port`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^ldaps?://"))]
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub start_tls: bool,
    /// Allow `ldap://` without StartTLS: the bind password then crosses the network in
    /// the clear. For loopback demos only.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// The DN Roster binds as; it needs only read access to the people.
    #[schemars(length(min = 1, max = 1024))]
    pub bind_dn: String,
    /// The bind password, in a Secret of the source's namespace.
    pub bind_password_secret_ref: LocalSecretKeyRef,
    /// A PEM CA bundle to trust for `ldaps://` and StartTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<LocalSecretKeyRef>,
    /// Where the people are, searched with its whole subtree, e.g.
    /// `ou=people,dc=example,dc=com`.
    #[schemars(length(min = 1, max = 1024))]
    pub base_dn: String,
    /// Which entries are workers (RFC 4515).
    #[serde(default = "default_people_filter")]
    #[schemars(length(min = 2, max = 4096))]
    pub filter: String,
    /// Which of them have left or are disabled (RFC 4515), e.g.
    /// `(employeeType=terminated)` or Active Directory's
    /// `(userAccountControl:1.2.840.113556.1.4.803:=2)`: read as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 4096))]
    pub disabled_filter: Option<String>,
    /// Entries asked for per page (RFC 2696 paged results).
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 10000))]
    pub page_size: i32,
}

fn default_people_filter() -> String {
    "(objectClass=inetOrgPerson)".into()
}

fn default_page_size() -> i32 {
    500
}

/// Users pushed to Roster over SCIM 2.0 (RFC 7644). Each is kept as a `ScimUser` object in
/// the source's namespace, exactly as pushed; the source maps them like export rows. A
/// user deleted over SCIM is a worker gone from the source (`policy.missing`); one set
/// `active: false` is `policy.inactive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimPush {
    /// The bearer token the pushing system presents, in a Secret of the source's
    /// namespace. A request with any other token is refused.
    pub token_secret_ref: LocalSecretKeyRef,
}

/// A key of a ConfigMap in the object's own namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within its `data`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The format of an export file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExportFormat {
    /// Comma-separated values with a header row (RFC 4180).
    #[default]
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Source columns (JSON fields, LDAP attributes) for each Identity field. Only mapped fields are set by
/// the source; the others are left to whoever else writes the Identity (Git, a person),
/// as server-side apply field managers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new(COMPUTED_APART)
    .message("a field is either mapped from a column or computed, not both"))]
#[serde(rename_all = "camelCase")]
pub struct FieldMapping {
    /// The column holding the login name. Required: it names the Identity.
    #[schemars(length(min = 1, max = 128))]
    pub username: String,
    /// The column holding the display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The column holding the given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// The column holding the family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// The column holding the primary email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The column holding the hire date (`2027-01-04`, midnight UTC, or an RFC 3339
    /// time): it becomes `validFrom`, so the accounts are ready on day one and unusable
    /// before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hire_date: Option<String>,
    /// The column holding the termination date: it becomes `validUntil`. A bare date is
    /// the last day worked, so access ends at the following midnight UTC; an RFC 3339
    /// time is taken as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_date: Option<String>,
    /// The column holding the manager's username: it becomes the `manager` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// The column holding the worker's status: `Active`, `Suspended` or `Terminated`, or
    /// as HR systems write them (`active`/`true`; `inactive`/`leave`/`suspended`;
    /// `terminated`/`false`/`left`), in any case. Without it every row is `Active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Attributes, by name, and the column each comes from (e.g. `department:
    /// Department`). An empty cell leaves the attribute unset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Fields no single column holds, each computed from the row by a CEL expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed: Option<ComputedFields>,
}

/// The CEL rule that keeps a field from being both mapped and computed: which of the two
/// a person meant cannot be known.
const COMPUTED_APART: &str = "!has(self.computed) || (\
    !(has(self.displayName) && has(self.computed.displayName)) && \
    !(has(self.givenName) && has(self.computed.givenName)) && \
    !(has(self.familyName) && has(self.computed.familyName)) && \
    !(has(self.email) && has(self.computed.email)) && \
    !(has(self.hireDate) && has(self.computed.hireDate)) && \
    !(has(self.terminationDate) && has(self.computed.terminationDate)) && \
    !(has(self.manager) && has(self.computed.manager)) && \
    !(has(self.state) && has(self.computed.state)) && \
    (!has(self.attributes) || !has(self.computed.attributes) || \
     self.computed.attributes.all(k, !(k in self.attributes))))";

/// CEL expressions over the row, one per field, for values no single column holds: a
/// display name from two columns, a department from a code, an email in lower case. The
/// row is `row`, a map of column to cell, with empty cells absent (`has(row.Nickname)`,
/// `row['Cost Center']`). The standard library and the strings extension
/// (`lowerAscii`, `upperAscii`, `trim`, `split`, `substring`, `indexOf`, `charAt`) are
/// there; `replace`, `join`, `format` and `quote` are not, because their results can grow
/// without bound. A string is the value (empty: unset); a bool or number is written as
/// text; `null` leaves the field unset. An expression that fails for a row makes that row
/// unusable, never a guess.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputedFields {
    /// The display name, e.g. `row['First Name'] + ' ' + row['Last Name']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub display_name: Option<String>,
    /// The given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub given_name: Option<String>,
    /// The family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub family_name: Option<String>,
    /// The primary email address, e.g. `row.Email.lowerAscii()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub email: Option<String>,
    /// The hire date, as `hireDate` reads a column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub hire_date: Option<String>,
    /// The termination date, as `terminationDate` reads a column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub termination_date: Option<String>,
    /// The manager's username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub manager: Option<String>,
    /// The worker's status, as `state` reads a column, e.g.
    /// `row['Leave Type'] == 'Sabbatical' ? 'Suspended' : 'Active'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub state: Option<String>,
    /// Attributes, by name, each with its expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub attributes: BTreeMap<String, String>,
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
