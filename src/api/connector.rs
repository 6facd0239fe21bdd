//! `Connector`: one downstream app instance and the policies Roster follows on it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalSecretKeyRef;

/// One downstream app instance: a SCIM 2.0 service, an LDAP directory, a PostgreSQL
/// server or a Kubernetes cluster. Exactly one backend is set. Credentials come only from
/// Secrets in this namespace. The policies here bound what Roster may do on the app:
/// `Observe` mode, protected accounts, adoption, the deletion budget and the grace period.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "Connector",
    doc = "One downstream app (SCIM, LDAP, PostgreSQL, Kubernetes RBAC) and the safety policies Roster follows on it.",
    namespaced,
    status = "ConnectorStatus",
    shortname = "conn",
    category = "roster",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
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
        name = "Quarantined",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Quarantined\")].status"
    ),
    printcolumn(
        name = "Managed",
        type_ = "integer",
        json_path = ".status.inventory.managed"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("[has(self.scim), has(self.ldap), has(self.postgres), has(self.kubernetes)].filter(b, b).size() == 1")
    .message("a Connector names exactly one backend: scim, ldap, postgres or kubernetes"))]
#[serde(rename_all = "camelCase")]
pub struct ConnectorSpec {
    /// `Enforce` drives the app to the declared state; `Observe` only reports drift and
    /// makes no downstream write at all.
    #[serde(default)]
    pub mode: ConnectorMode,

    /// A SCIM 2.0 service (RFC 7643/7644).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<ScimBackend>,

    /// An LDAP directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapBackend>,

    /// A PostgreSQL server: identities become LOGIN roles, entitlements group roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresBackend>,

    /// A Kubernetes cluster: entitlements are ClusterRoles and Roles bound to the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesBackend>,

    /// Permit transport that is not encrypted and verified: an `http://` SCIM URL, an
    /// `ldap://` URL without `startTls`, PostgreSQL `sslMode` `Disable` or `Prefer`.
    /// Credentials then cross the network in the clear; for loopback demos and tests
    /// only. Without it such a Connector is not used and says so in `Ready`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plaintext: bool,

    /// How often the whole downstream inventory is listed to find drift and orphans: the
    /// least rest between one scan's end and the next one's start. A slow scan rests
    /// four times its own length if that is longer, so that listing takes at most a fifth
    /// of the app's time. The per-identity fast path does not wait for it.
    #[serde(default = "default_poll_interval")]
    #[schemars(range(min = 10, max = 86400))]
    pub poll_interval_seconds: i32,

    /// The most downstream operations per second Roster makes to this app, shared by
    /// every identity (an operation is one connector call: reading one account, one grant,
    /// one page of a listing; it may take more than one HTTP request).
    #[serde(default)]
    pub rate_limit: RateLimit,

    /// What happens to a leaver's account after it is disabled.
    #[serde(default)]
    pub deprovisioning: DeprovisioningPolicy,

    /// How many accounts a policy change (a Role, RoleBinding, Connector or validity
    /// window; an Identity object deleted) may see disabled or deleted in a time window
    /// before Roster stops and sets `Quarantined`: a bad commit cannot wipe out accounts.
    /// An explicit leaver (its own Identity `Suspended`, `Terminated` or past
    /// `validUntil`) is disabled at once and counts here only when its account is
    /// deleted. Approve held removals with `roster.dev/approve-removals: <RFC 3339 time>`.
    #[serde(default)]
    pub deletion_budget: DeletionBudget,

    /// How many accounts a policy change may strip of entitlements in a time window
    /// before revocations stop too: deleting a Role or a birthright RoleBinding must not
    /// strip everyone's groups at once. An explicit leaver's own revocations do not count.
    #[serde(default)]
    pub revocation_budget: RevocationBudget,

    /// When explicit leavers come in a wave: more in a window than the larger of
    /// `minLeavers` and `maxPercent` of the managed accounts. A wave raises a Warning
    /// Event, a `leaver-wave` exception and the `roster_leaver_waves_total` metric, and
    /// the leavers are still disabled — unless `holdLeaverWaves` is set.
    #[serde(default)]
    pub leaver_wave: LeaverWave,

    /// Hold explicit leavers past a wave until a person approves
    /// (`roster.dev/approve-leavers` or `roster.dev/approve-removals`). The trade-off: a
    /// broken HR feed then cannot disable everyone, but real leavers in the wave keep
    /// their access until someone approves. Off by default: a leaver with access is the
    /// worse failure.
    #[serde(default)]
    pub hold_leaver_waves: bool,

    /// What to do with an account that already exists downstream under an identity's
    /// username but that Roster does not own.
    #[serde(default)]
    pub adoption: AdoptionPolicy,

    /// Who decides the membership of the entitlements Roles name on this app.
    /// `Additive` (the default): Roster grants, and later revokes, only what it granted;
    /// members it did not add stay and are reported in `status.unownedMembers`.
    /// `Authoritative`: members Roster did not add are removed too (through the
    /// revocation budget, each with an Event). A Role entitlement may override this.
    #[serde(default)]
    pub membership: MembershipAuthority,

    /// Usernames Roster never touches on this app (break-glass and admin accounts), even
    /// when an identity or binding would say otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 256)))]
    pub protected_accounts: Vec<String>,

    /// What may be granted through this Connector, as patterns in the app's terms where
    /// `*` matches any run of characters: e.g. `ClusterRole/view`, `Role/team-*/edit`,
    /// `app_*`. Empty (the default): any entitlement the app has. A Role entitlement
    /// outside these bounds is granted to no one, and the Role says so in `Ready`.
    /// Privileged entitlements — on Kubernetes `cluster-admin` or a role whose rules grant
    /// `*`, `escalate`, `bind` or `impersonate`; on PostgreSQL a role with SUPERUSER,
    /// CREATEROLE, REPLICATION or BYPASSRLS, a role that can log in, a predefined `pg_*`
    /// role — are refused even then, unless listed here by their exact name (no `*`).
    /// Roster's own PostgreSQL role is never granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 512)))]
    pub allowed_entitlements: Vec<String>,
}

fn default_poll_interval() -> i32 {
    300
}

/// Whether Roster writes to the app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConnectorMode {
    /// Drive the app to the declared state.
    #[default]
    Enforce,
    /// Read and report only: zero downstream writes.
    Observe,
}

/// A SCIM 2.0 service provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimBackend {
    /// The SCIM base URL, e.g. `https://scim.example.com/v2`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub base_url: String,
    /// The bearer token.
    pub token_secret_ref: LocalSecretKeyRef,
    /// A PEM CA bundle to trust for `https` instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<LocalSecretKeyRef>,
}

/// An LDAP directory: users are `inetOrgPerson` entries directly below `usersDn`,
/// entitlements `groupOfNames` entries directly below `groupsDn`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!(self.startTls && self.url.startsWith('ldaps://'))")
    .message("startTls upgrades an ldap:// connection; an ldaps:// URL is TLS already"))]
#[serde(rename_all = "camelCase")]
pub struct LdapBackend {
    /// `ldap://host:port` or `ldaps://host:port`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^ldaps?://"))]
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub start_tls: bool,
    /// The DN Roster binds as.
    #[schemars(length(min = 1, max = 1024))]
    pub bind_dn: String,
    /// The bind password.
    pub bind_password_secret_ref: LocalSecretKeyRef,
    /// A PEM CA bundle to trust for `ldaps://` and StartTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<LocalSecretKeyRef>,
    /// The DN under which user entries live, e.g. `ou=people,dc=example,dc=com`.
    #[schemars(length(min = 1, max = 1024))]
    pub users_dn: String,
    /// The DN under which group entries live, e.g. `ou=groups,dc=example,dc=com`.
    /// Entitlements name `groupOfNames` entries directly below it by `cn`.
    #[schemars(length(min = 1, max = 1024))]
    pub groups_dn: String,
    /// Where disabled user entries are kept, e.g. `ou=disabled,dc=example,dc=com`.
    /// Disabling an account removes its password and moves it here, out of `usersDn`;
    /// enabling moves it back. It must not lie inside `usersDn`.
    #[schemars(length(min = 1, max = 1024))]
    pub disabled_users_dn: String,
}

/// A PostgreSQL server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresBackend {
    /// Host name or address.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port.
    #[serde(default = "default_postgres_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// The database to connect to (roles are cluster-wide).
    #[serde(default = "default_postgres_database")]
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
    /// The role Roster logs in as; it needs `CREATEROLE`.
    #[schemars(length(min = 1, max = 63))]
    pub username: String,
    /// That role's password.
    pub password_secret_ref: LocalSecretKeyRef,
    /// Whether and how to use TLS.
    #[serde(default)]
    pub ssl_mode: PostgresSslMode,
    /// A PEM CA bundle to verify the server with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<LocalSecretKeyRef>,
}

fn default_postgres_port() -> i32 {
    5432
}

fn default_postgres_database() -> String {
    "postgres".to_owned()
}

/// TLS for PostgreSQL connections, after libpq's `sslmode`. Roster verifies every TLS
/// connection it makes — chain and host name — against `caSecretRef` or else the Mozilla
/// roots; there is no unverified mode. `Disable` and `Prefer` need `allowPlaintext`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PostgresSslMode {
    /// Plain TCP (needs `allowPlaintext`).
    Disable,
    /// TLS (verified) when the server offers it, plain TCP when it does not: a
    /// man in the middle can always choose plain TCP, so it needs `allowPlaintext`.
    Prefer,
    /// TLS always (verified).
    Require,
    /// TLS always (verified); the same as `Require`, for libpq users' habits.
    #[default]
    VerifyFull,
}

impl PostgresSslMode {
    /// Whether a connection in this mode may go unencrypted.
    pub fn may_be_plaintext(self) -> bool {
        matches!(self, Self::Disable | Self::Prefer)
    }
}

/// A Kubernetes cluster whose RBAC Roster manages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesBackend {
    /// A kubeconfig for the target cluster. Absent: the cluster Roster runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<LocalSecretKeyRef>,
    /// The namespace where ServiceAccounts for `Service` identities are created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub service_account_namespace: Option<String>,
}

/// A token bucket bounding downstream requests, and how many may be in flight. Work
/// other than leavers uses at most four fifths of the rate and burst; the last fifth is
/// kept for leavers, however long a backlog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained operations per second.
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: i32,
    /// Operations allowed at once before the sustained rate applies.
    #[schemars(range(min = 1, max = 10000))]
    pub burst: i32,
    /// Operations in flight at once for joiners, movers and scans. A leaver's operations
    /// do not wait for these slots (they still take tokens), so a backlog of other work
    /// never queues at the app in front of a leaver.
    #[serde(default = "default_max_in_flight")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_in_flight: i32,
}

fn default_max_in_flight() -> i32 {
    8
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests_per_second: 20,
            burst: 40,
            max_in_flight: default_max_in_flight(),
        }
    }
}

/// What happens to a leaver's account after it is disabled and stripped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeprovisioningPolicy {
    /// Delete the disabled account this many seconds after it was disabled. Absent: keep
    /// it disabled and never delete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub delete_after_seconds: Option<i64>,
}

/// The most removals Roster makes on one app in a sliding window. Whichever limit is
/// reached first trips the breaker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionBudget {
    /// The most accounts disabled or deleted in one window.
    #[schemars(range(min = 0))]
    pub max_removals: i32,
    /// The most accounts disabled or deleted in one window, as a percentage of the
    /// accounts Roster manages on this app. One removal per window is always allowed.
    #[schemars(range(min = 0, max = 100))]
    pub max_percent: i32,
    /// The window's length.
    #[schemars(range(min = 60))]
    pub window_seconds: i64,
}

// Sized from what identity platforms ship: Entra ID's accidental-deletion threshold is
// 500 operations a cycle, Okta's import safeguard 20 %. Whichever limit comes first
// trips, so a 200-person app trips at 40 policy removals and a large one at 100.
impl Default for DeletionBudget {
    fn default() -> Self {
        Self {
            max_removals: 100,
            max_percent: 20,
            window_seconds: 3600,
        }
    }
}

/// The most accounts a policy change may strip of entitlements in a sliding window.
/// Whichever limit is reached first trips the breaker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationBudget {
    /// The most accounts that lose one or more entitlements in one window.
    #[schemars(range(min = 0))]
    pub max_accounts: i32,
    /// The same as a percentage of the accounts Roster manages on this app. One account
    /// per window is always allowed.
    #[schemars(range(min = 0, max = 100))]
    pub max_percent: i32,
    /// The window's length.
    #[schemars(range(min = 60))]
    pub window_seconds: i64,
}

impl Default for RevocationBudget {
    fn default() -> Self {
        Self {
            max_accounts: 100,
            max_percent: 20,
            window_seconds: 3600,
        }
    }
}

/// What counts as a wave of explicit leavers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaverWave {
    /// A wave is never smaller than this many leavers in one window.
    #[schemars(range(min = 1))]
    pub min_leavers: i32,
    /// A wave is more than this percentage of the managed accounts in one window (when
    /// that is more than `minLeavers`).
    #[schemars(range(min = 0, max = 100))]
    pub max_percent: i32,
    /// The window's length.
    #[schemars(range(min = 60))]
    pub window_seconds: i64,
}

impl Default for LeaverWave {
    fn default() -> Self {
        Self {
            min_leavers: 25,
            max_percent: 5,
            window_seconds: 3600,
        }
    }
}

/// Who decides an entitlement's membership downstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MembershipAuthority {
    /// Roster adds and removes only its own grants; other members stay (and are reported).
    #[default]
    Additive,
    /// The declared members are the only members: Roster removes any other.
    Authoritative,
}

/// How Roster treats an account that already exists under an identity's username.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AdoptionPolicy {
    /// Leave it alone and report a conflict on the identity.
    #[default]
    Never,
    /// Mark it as Roster's and manage it from then on.
    AdoptByUsername,
}

/// What Roster observed about a Connector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Synced`, `Drifted` and `Quarantined`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What the app said it supports, e.g. `patch`, `filter`, `etag`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Counts from the last inventory scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// What the last scan found different from the declared state (bounded; the first
    /// few differences).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub drift: Vec<String>,
    /// When the last inventory scan finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_time: Option<Time>,
    /// Set while removals are stopped because a budget was exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineStatus>,
    /// Set while explicit leavers come faster than `spec.leaverWave` expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaver_wave: Option<LeaverWaveStatus>,
    /// Members of entitlements Roster manages here whose membership Roster did not grant
    /// and, under `Additive` membership, leaves in place: the first few, from the last
    /// scan (`inventory.unownedMembers` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub unowned_members: Vec<UnownedMember>,
}

/// A membership Roster did not grant, in an entitlement it manages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnownedMember {
    /// The member account's username downstream.
    pub username: String,
    /// The entitlement it holds.
    pub entitlement: String,
}

/// Counts of downstream accounts from an inventory scan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// Accounts Roster owns.
    pub managed: i64,
    /// Owned accounts that differ from the declared state.
    pub drifted: i64,
    /// Accounts carrying Roster's mark that no identity claims.
    pub orphaned: i64,
    /// Accounts Roster does not own (left untouched).
    pub unmanaged: i64,
    /// Memberships in managed entitlements that Roster did not grant and leaves in place
    /// (`Additive`).
    #[serde(default)]
    pub unowned_members: i64,
}

/// Why and since when removals on a Connector are stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineStatus {
    /// When the first breaker tripped.
    pub since: Time,
    /// Accounts counted in the window when it tripped, the refused one included.
    pub planned_removals: i32,
    /// Human-readable reason.
    pub message: String,
    /// Every breaker that is tripped: `removals`, `revocations` or `leavers`. A restarted
    /// operator reads them back, so a restart never lifts a quarantine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub trips: Vec<TripStatus>,
    /// Who is waiting, explicit leavers first (the first few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub held: Vec<HeldRemoval>,
    /// How many are waiting in all.
    #[serde(default)]
    pub held_count: i32,
}

/// One tripped breaker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TripStatus {
    /// `removals`, `revocations` or `leavers`.
    pub budget: String,
    /// When it tripped.
    pub since: Time,
    /// Accounts counted in its window when it tripped.
    pub planned: i32,
    /// Why.
    pub message: String,
}

/// A removal waiting for approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldRemoval {
    /// The Identity whose account it is.
    pub identity: String,
    /// `ExplicitLeaver` (the Identity itself left) or `Policy` (a Role, binding,
    /// Connector or window changed, or the Identity object was deleted).
    pub cause: String,
    /// The breakers that hold it: `removals`, `revocations`, `leavers`.
    #[schemars(length(max = 3))]
    pub budgets: Vec<String>,
}

/// A wave of explicit leavers in the current window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaverWaveStatus {
    /// When the wave began to exceed the threshold.
    pub since: Time,
    /// Explicit leavers counted in the window.
    pub leavers: i32,
    /// Human-readable summary.
    pub message: String,
}
