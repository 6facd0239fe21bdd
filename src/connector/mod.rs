//! Downstream apps. Each backend implements [`Connector`], shaped like Crossplane's
//! external client and Baton's syncer: observing never writes; every write is idempotent
//! (what is already absent counts as done); errors say what a person should do.

pub mod kubernetes;
pub mod ldap;
pub mod limit;
pub mod postgres;
pub mod scim;
pub mod target;
#[cfg(test)]
pub mod testing;
pub mod tls;
pub mod transport;
pub mod web;

use std::collections::BTreeSet;

use async_trait::async_trait;

pub use crate::lifecycle::EntitlementMembers;
use crate::lifecycle::{AccountAttributes, DesiredAccount, NameCase, ObservedAccount};

/// What an app said it supports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Feature names, e.g. `patch`, `filter`, `etag`.
    pub features: BTreeSet<String>,
}

/// One page of an inventory listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// A downstream app, as Roster drives it.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Whether accounts here carry names and emails that follow the Identity. Where they
    /// do not (database roles), attributes are neither compared nor written.
    fn mirrors_attributes(&self) -> bool {
        true
    }
    /// How the app compares usernames; protected and conflicting accounts are matched the
    /// same way.
    fn name_case(&self) -> NameCase {
        NameCase::Exact
    }
    /// Reachability, credentials and capabilities.
    async fn check(&self) -> Result<Capabilities, ConnectorError>;
    /// The account with this username, with its entitlements; `None` if there is none.
    async fn observe(&self, username: &str) -> Result<Option<ObservedAccount>, ConnectorError>;
    /// One page of every account. Entitlements are not filled in: they come from
    /// [`Connector::list_entitlements`], so that a full scan costs O(pages) requests.
    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<ObservedAccount>, ConnectorError>;
    /// One page of every entitlement with the ids of the accounts holding it.
    async fn list_entitlements(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<EntitlementMembers>, ConnectorError>;
    /// Creates the account with Roster's mark for `identity`; returns its id.
    async fn create(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<String, ConnectorError>;
    /// [`Connector::create`], and the account as the app's answer to the create describes
    /// it, where that answer is the created resource (SCIM's `201` body). That answer is
    /// the app's own read of the result, so a pass that only creates and grants needs no
    /// second read; `None`: the caller reads the account back.
    async fn create_answered(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<(String, Option<ObservedAccount>), ConnectorError> {
        self.create(identity, desired, active)
            .await
            .map(|id| (id, None))
    }
    /// Puts Roster's mark for `identity` on an existing account.
    async fn adopt(&self, account: &ObservedAccount, identity: &str) -> Result<(), ConnectorError>;
    /// Brings the account's attributes in line.
    async fn update(
        &self,
        account: &ObservedAccount,
        attributes: &AccountAttributes,
    ) -> Result<(), ConnectorError>;
    /// Enables or disables the account.
    async fn set_active(
        &self,
        account: &ObservedAccount,
        active: bool,
    ) -> Result<(), ConnectorError>;
    /// Deletes the account; an absent account is success.
    async fn delete(&self, account: &ObservedAccount) -> Result<(), ConnectorError>;
    /// Gives the account an entitlement; holding it already is success.
    async fn grant(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError>;
    /// Takes an entitlement away; not holding it, or the entitlement not existing, is
    /// success.
    async fn revoke(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError>;
    /// Whether [`Connector::privilege`] asks the app: where it does not, the write path
    /// does not call it (a call would cost a rate-limit token for nothing).
    fn knows_privilege(&self) -> bool {
        false
    }
    /// Whether the app refuses to create a second account under a name it holds, so
    /// that a create needs no read before it: an account someone else made since the
    /// last scan fails the create and touches nothing. SCIM servers must (RFC 7643
    /// §4.1.1: `userName` is unique across the service provider).
    fn refuses_duplicates(&self) -> bool {
        false
    }
    /// Why granting `entitlement` would hand out more than ordinary access — superuser
    /// rights, impersonation, another account's login — if it would; `None` for an
    /// ordinary entitlement, or one that does not exist. The write path refuses a
    /// privileged grant unless the Connector names it exactly in `allowedEntitlements`.
    async fn privilege(&self, _entitlement: &str) -> Result<Option<String>, ConnectorError> {
        Ok(None)
    }
}

/// Longest downstream text carried into an error (design invariant 7: truncated bodies).
pub const BODY_LIMIT: usize = 256;

/// Why a downstream call failed. Messages never contain credentials; downstream bodies are
/// truncated to [`BODY_LIMIT`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The connector's settings or Secret are unusable.
    #[error("{0}")]
    Config(String),
    /// No answer: refused, timed out, DNS, TLS.
    #[error("cannot reach {target}: {reason}")]
    Unreachable {
        /// What was called (no credentials).
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// The app refused the credentials.
    #[error("the app refused Roster's credentials ({detail}); check the Secret")]
    Unauthorized {
        /// What the app said, e.g. `HTTP 401` or `invalidCredentials`.
        detail: String,
    },
    /// The app answered with an error.
    #[error("the app answered HTTP {status}: {body}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The app refused a request it understood: a schema violation, a constraint, an
    /// object in the way. Backends that do not speak HTTP use this instead of `Http`.
    #[error("the app refused the change: {0}")]
    Rejected(String),
    /// The app's answer does not parse or makes no sense.
    #[error("malformed response from the app: {0}")]
    Malformed(String),
    /// An entitlement a Role names does not exist downstream.
    #[error("entitlement {0:?} does not exist in the app")]
    EntitlementNotFound(String),
    /// Someone else changed the same object at the same time; retry.
    #[error("concurrent change in the app: {0}")]
    Conflict(String),
    /// The Connector asks for a transport that is not encrypted and verified, and does
    /// not opt in to plain text.
    #[error("{0}")]
    InsecureTransport(String),
    /// The target's address is one the operator does not connect to (loopback,
    /// link-local, cloud metadata): nothing was sent there.
    #[error("refusing to connect to {target}: {reason}")]
    TargetRefused {
        /// The host as the Connector names it.
        target: String,
        /// Which address, and why.
        reason: String,
    },
}

impl ConnectorError {
    /// A CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Config(_) => "InvalidConfig",
            Self::Unreachable { .. } => "Unreachable",
            Self::Unauthorized { .. } => "Unauthorized",
            Self::Http { .. } => "DownstreamError",
            Self::Rejected(_) => "DownstreamRejected",
            Self::Malformed(_) => "MalformedResponse",
            Self::EntitlementNotFound(_) => "EntitlementNotFound",
            Self::Conflict(_) => "Conflict",
            Self::InsecureTransport(_) => "InsecureTransport",
            Self::TargetRefused { .. } => "TargetRefused",
        }
    }

    /// The same error with every occurrence of `secret` blotted out: a hostile or careless
    /// server may echo the credentials it was sent, and errors end up in status and Events.
    pub fn redacted(self, secret: &str) -> Self {
        if secret.len() < 4 {
            // Too short to tell from ordinary text; blotting it would garble the message.
            return self;
        }
        let r = |s: String| s.replace(secret, "[redacted]");
        match self {
            Self::Config(s) => Self::Config(r(s)),
            Self::Unreachable { target, reason } => Self::Unreachable {
                target: r(target),
                reason: r(reason),
            },
            Self::Unauthorized { detail } => Self::Unauthorized { detail: r(detail) },
            Self::Http { status, body } => Self::Http {
                status,
                body: r(body),
            },
            Self::Rejected(s) => Self::Rejected(r(s)),
            Self::Malformed(s) => Self::Malformed(r(s)),
            Self::EntitlementNotFound(s) => Self::EntitlementNotFound(r(s)),
            Self::Conflict(s) => Self::Conflict(r(s)),
            Self::InsecureTransport(s) => Self::InsecureTransport(r(s)),
            Self::TargetRefused { target, reason } => Self::TargetRefused {
                target: r(target),
                reason: r(reason),
            },
        }
    }
}

/// `s` cut to [`BODY_LIMIT`] bytes on a character boundary.
/// Control characters become spaces: a hostile server's answer must not forge log lines
/// or terminal escapes when shown.
pub fn truncate_body(s: &str) -> String {
    let cut = crate::text::truncate(s.trim(), BODY_LIMIT);
    if cut.chars().any(char::is_control) {
        cut.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        cut
    }
}
