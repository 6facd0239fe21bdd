//! Plain data the pipeline passes between its steps.

use std::{collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};

use crate::api::IdentityKind;

/// A Connector, by namespace and name. Displays as `namespace/name`, the form status uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnectorKey {
    /// The Connector's namespace.
    pub namespace: String,
    /// The Connector's name.
    pub name: String,
}

impl ConnectorKey {
    /// The key of Connector `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parses `namespace/name`, as status records it.
    pub fn parse(s: &str) -> Option<Self> {
        let (ns, name) = s.split_once('/')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then(|| Self::new(ns, name))
    }
}

impl fmt::Display for ConnectorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The entitlements Roles name on one connector (the managed set), and those of them
/// whose membership Roster decides alone (`Authoritative`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Managed {
    /// Every entitlement some Role names there.
    pub names: BTreeSet<String>,
    /// The subset whose members Roster did not grant are removed.
    pub authoritative: BTreeSet<String>,
}

/// The attributes of an account that follow the Identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountAttributes {
    /// Display name.
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Email addresses, primary first.
    pub emails: Vec<String>,
}

impl AccountAttributes {
    /// Names of the attributes that differ from `other`, for drift reports.
    pub fn differences(&self, other: &Self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.display_name != other.display_name {
            out.push("displayName");
        }
        if self.given_name != other.given_name {
            out.push("givenName");
        }
        if self.family_name != other.family_name {
            out.push("familyName");
        }
        if self.emails != other.emails {
            out.push("emails");
        }
        out
    }
}

/// What one identity should have on one connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredAccount {
    /// The login name.
    pub username: String,
    /// A person or a service: backends with separate machine accounts (Kubernetes
    /// ServiceAccounts) create those for services.
    pub kind: IdentityKind,
    /// Attributes to keep in step with the Identity.
    pub attributes: AccountAttributes,
    /// `false` while the identity is Suspended: the account exists but is disabled.
    pub active: bool,
    /// Entitlements on this connector, in the connector's own terms.
    pub entitlements: BTreeSet<String>,
}

impl DesiredAccount {
    /// This account as a backend that holds no attributes sees it: attributes blanked, so
    /// that they are neither compared nor written.
    pub fn without_attributes(&self) -> Self {
        Self {
            attributes: AccountAttributes::default(),
            ..self.clone()
        }
    }
}

/// An account as read from the downstream app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedAccount {
    /// The app's id for it.
    pub id: String,
    /// The login name.
    pub username: String,
    /// The ownership mark, when one is present: the name of the Identity Roster manages
    /// it for. `None`: Roster does not own this account.
    pub owner: Option<String>,
    /// Whether the account is enabled.
    pub active: bool,
    /// Its attributes.
    pub attributes: AccountAttributes,
    /// The entitlements it holds, in the connector's own terms.
    pub entitlements: BTreeSet<String>,
    /// The app's version of the account (an ETag), for conditional writes.
    pub version: Option<String>,
}

/// An entitlement and who holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntitlementMembers {
    /// The entitlement, in the connector's own terms.
    pub name: String,
    /// Ids of the accounts holding it.
    pub members: Vec<String>,
}

/// How an app compares usernames. Matching a protected account, an Identity's own
/// account or a stranger must follow the app: where `Alice` and `alice` are one account,
/// protecting one protects both, and neither is a stranger to the other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameCase {
    /// Names differ by case (PostgreSQL roles, Kubernetes RBAC users).
    #[default]
    Exact,
    /// Names compare without case (LDAP `uid`, SCIM `userName`).
    Folded,
}

impl NameCase {
    /// Whether the app sees `a` and `b` as the same name.
    pub fn same(self, a: &str, b: &str) -> bool {
        match self {
            NameCase::Exact => a == b,
            NameCase::Folded => a == b || a.to_lowercase() == b.to_lowercase(),
        }
    }

    /// The form names are looked up by: equal keys exactly when [`NameCase::same`].
    pub fn key(self, name: &str) -> String {
        match self {
            NameCase::Exact => name.to_owned(),
            NameCase::Folded => name.to_lowercase(),
        }
    }
}
