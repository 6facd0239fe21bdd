//! Where an IdentitySource's people come from: an HR export (a ConfigMap, or a download),
//! an LDAP directory, or users pushed over SCIM.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::LocalSecretKeyRef;

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
