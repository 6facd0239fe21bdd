//! Kubernetes RBAC. An entitlement is a ClusterRole or Role (see [`names::Grant`] for the
//! three string forms); Roster grants it with a RoleBinding or ClusterRoleBinding of its
//! own — labelled, deterministically named, one per Connector, account and entitlement —
//! whose subject is the identity's username as a `User`, or for a `Service` identity its
//! ServiceAccount. Bindings Roster did not create, and those another Connector created,
//! are never read as this Connector's, changed or deleted: every object carries the
//! Connector's label, every listing selects on it, and every change or deletion is
//! conditional on the version that was read as this Connector's.
//!
//! Kubernetes has no user objects, so a person's account is a record Roster keeps: a
//! ConfigMap in the connector's namespace carrying the ownership mark (annotation
//! `roster.dev/identity`) and whether the account is enabled. A service's account is its
//! ServiceAccount, marked the same way. Disable empties the subjects of the account's
//! bindings (the access goes at once, the ledger stays); enable fills them again.

mod access;
pub mod kubeconfig;
pub mod names;
mod objects;

use async_trait::async_trait;
use k8s_openapi::{
    api::{
        core::v1::{ConfigMap, ServiceAccount},
        rbac::v1::{ClusterRoleBinding, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

pub use self::names::Grant;
use self::{
    names::{ACTIVE_ANNOTATION, CONNECTOR_LABEL, ENTITLEMENT_ANNOTATION, RECORD_LABEL},
    objects::{Binding, Stamp, api_error},
};
use super::{Capabilities, Connector, ConnectorError, EntitlementMembers, Page};
use crate::{
    api::IdentityKind,
    lifecycle::{AccountAttributes, DesiredAccount, ObservedAccount},
};

/// Objects per listing page.
const PAGE_SIZE: u32 = 100;

/// A cluster's RBAC, as one Connector drives it.
pub struct KubernetesConnector {
    client: Client,
    /// Where records and ServiceAccounts live.
    namespace: String,
    /// The Connector's key ([`names::connector_key`]), the value of its label.
    key: String,
}

/// An account's record: a person's ConfigMap or a service's ServiceAccount.
struct Record {
    meta: ObjectMeta,
    service: bool,
}

impl KubernetesConnector {
    /// A connector acting through `client` for the Connector object
    /// `connector_namespace/connector_name`, keeping records and ServiceAccounts in
    /// `namespace`.
    pub fn new(
        client: Client,
        namespace: String,
        (connector_namespace, connector_name): (&str, &str),
    ) -> Self {
        Self {
            client,
            namespace,
            key: names::connector_key(connector_namespace, connector_name),
        }
    }

    fn stamp<'a>(&'a self, username: &'a str, identity: &'a str) -> Stamp<'a> {
        Stamp {
            connector: &self.key,
            username,
            identity,
        }
    }
}

fn ignore_not_found(res: Result<(), kube::Error>) -> Result<(), ConnectorError> {
    match res {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other.map_err(api_error),
    }
}

fn another_connectors(username: &str) -> ConnectorError {
    ConnectorError::Conflict(format!(
        "the account {username:?} belongs to another Roster Connector; this one leaves it alone"
    ))
}

fn gone(username: &str) -> ConnectorError {
    ConnectorError::Conflict(format!(
        "the account record for {username:?} disappeared while Roster was changing it"
    ))
}

fn observed(
    username: String,
    record: &Record,
    bindings: &[Binding],
    (listed, key): (bool, &str),
) -> ObservedAccount {
    let record_active = objects::record_active(&record.meta);
    ObservedAccount {
        id: username.clone(),
        username,
        owner: objects::owner(&record.meta, key),
        // A listing does not read bindings; the record says what Roster last set.
        active: if listed {
            record_active
        } else {
            objects::effective_active(record_active, bindings)
        },
        attributes: AccountAttributes::default(),
        entitlements: bindings
            .iter()
            .filter_map(|b| b.entitlement.clone())
            .collect(),
        version: None,
    }
}

/// `phase:continue-token` back into its parts.
fn parse_cursor<'c>(
    cursor: &'c str,
    phases: &[&str],
) -> Result<(&'c str, Option<String>), ConnectorError> {
    let (phase, token) = cursor
        .split_once(':')
        .filter(|(p, _)| phases.contains(p))
        .ok_or_else(|| ConnectorError::Config(format!("invalid listing cursor {cursor:?}")))?;
    Ok((phase, (!token.is_empty()).then(|| token.to_owned())))
}

fn list_params(selector: Option<&str>, token: Option<String>) -> ListParams {
    let mut lp = ListParams::default().limit(PAGE_SIZE);
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    if let Some(t) = token {
        lp = lp.continue_token(&t);
    }
    lp
}

/// The cursor after a page of `phase`: more of it, else the start of `then`.
fn next_cursor(phase: &str, token: Option<String>, then: Option<&str>) -> Option<String> {
    match token.filter(|t| !t.is_empty()) {
        Some(t) => Some(format!("{phase}:{t}")),
        None => then.map(|p| format!("{p}:")),
    }
}

#[async_trait]
impl Connector for KubernetesConnector {
    fn mirrors_attributes(&self) -> bool {
        false
    }

    /// An account is an object named after the username (a ServiceAccount) or after a
    /// hash of it (a person's record), and the apiserver refuses a second object of one
    /// name. A person created while a stranger's ServiceAccount of the same name appeared
    /// since the last scan gets its own record beside it: a User and a ServiceAccount are
    /// different subjects to RBAC, so the stranger's access is untouched.
    fn refuses_duplicates(&self) -> bool {
        true
    }

    async fn check(&self) -> Result<Capabilities, ConnectorError> {
        self.client.apiserver_version().await.map_err(api_error)?;
        let ns = Some(self.namespace.as_str());
        let needs = [
            (
                "create",
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                None,
            ),
            ("create", "rbac.authorization.k8s.io", "rolebindings", None),
            ("create", "", "configmaps", ns),
            ("create", "", "serviceaccounts", ns),
        ];
        let mut missing = Vec::new();
        for (verb, group, resource, namespace) in needs {
            if !self.may(verb, group, resource, namespace).await? {
                missing.push(format!("{verb} {resource}"));
            }
        }
        if !missing.is_empty() {
            return Err(ConnectorError::Config(format!(
                "Roster's credentials for this cluster may not {} (namespace {:?}); see the Kubernetes connector docs",
                missing.join(", "),
                self.namespace
            )));
        }
        Ok(Capabilities {
            features: ["rbac".to_owned()].into(),
        })
    }

    async fn observe(&self, username: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
        let Some(record) = self.record(username).await? else {
            return Ok(None);
        };
        let bindings = self.bindings_of(username).await?;
        Ok(Some(observed(
            username.to_owned(),
            &record,
            &bindings,
            (false, &self.key),
        )))
    }

    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<ObservedAccount>, ConnectorError> {
        // This Connector's person records first, then the ServiceAccounts in the namespace
        // (its own, and strangers' which count as unmanaged accounts; another Connector's
        // are not accounts here at all).
        let (phase, token) = parse_cursor(cursor.unwrap_or("r:"), &["r", "s"])?;
        if phase == "r" {
            let selector = format!("{RECORD_LABEL}=true,{CONNECTOR_LABEL}={}", self.key);
            let list = self
                .records()
                .list(&list_params(Some(&selector), token))
                .await
                .map_err(api_error)?;
            let items = list
                .items
                .into_iter()
                .filter_map(|cm| {
                    let username =
                        objects::annotation(&cm.metadata, names::USERNAME_ANNOTATION)?.to_owned();
                    let record = Record {
                        meta: cm.metadata,
                        service: false,
                    };
                    Some(observed(username, &record, &[], (true, &self.key)))
                })
                .collect();
            return Ok(Page {
                items,
                next: next_cursor("r", list.metadata.continue_, Some("s")),
            });
        }
        let list = self
            .service_accounts()
            .list(&list_params(None, token))
            .await
            .map_err(api_error)?;
        let items = list
            .items
            .into_iter()
            .filter(|sa| !objects::is_another_connectors(&sa.metadata, &self.key))
            .filter_map(|sa| {
                let username = sa.metadata.name.clone()?;
                let record = Record {
                    meta: sa.metadata,
                    service: true,
                };
                Some(observed(username, &record, &[], (true, &self.key)))
            })
            .collect();
        Ok(Page {
            items,
            next: next_cursor("s", list.metadata.continue_, None),
        })
    }

    async fn list_entitlements(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<EntitlementMembers>, ConnectorError> {
        let (phase, token) = parse_cursor(cursor.unwrap_or("c:"), &["c", "n"])?;
        let selector = objects::selector(&self.key, None);
        let lp = list_params(Some(&selector), token);
        let (bindings, token) = self.list_bindings(phase == "c", &lp).await?;
        let then = (phase == "c").then_some("n");
        let items = bindings
            .into_iter()
            .filter_map(|b| {
                Some(EntitlementMembers {
                    name: b.entitlement?,
                    members: vec![b.username?],
                })
            })
            .collect();
        Ok(Page {
            items,
            next: next_cursor(phase, token, then),
        })
    }

    async fn create(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<String, ConnectorError> {
        self.create_answered(identity, desired, active)
            .await
            .map(|(id, _)| id)
    }

    /// The apiserver answers a create with the object as stored, which is this account
    /// as `observe` would read it: a new account has no bindings yet. A joiner then
    /// needs no read after its create and grants; `observe`'s listing of bindings by
    /// label walks every binding in the cluster.
    async fn create_answered(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<(String, Option<ObservedAccount>), ConnectorError> {
        let username = desired.username.as_str();
        let pp = PostParams::default();
        let active_note = [(ACTIVE_ANNOTATION, active.to_string())];
        let service = desired.kind == IdentityKind::Service;
        let res = if service {
            if !names::is_object_name(username) {
                return Err(ConnectorError::Config(format!(
                    "{username:?} cannot name a ServiceAccount: a Service identity's username here must be lower-case letters, digits, '-' and '.'"
                )));
            }
            let sa = ServiceAccount {
                metadata: objects::account_meta(
                    username.to_owned(),
                    Some(self.namespace.clone()),
                    self.stamp(username, identity),
                    &[],
                    &active_note,
                ),
                ..ServiceAccount::default()
            };
            self.service_accounts()
                .create(&pp, &sa)
                .await
                .map(|sa| sa.metadata)
        } else {
            let cm = ConfigMap {
                metadata: objects::account_meta(
                    names::record_name(&self.key, username),
                    Some(self.namespace.clone()),
                    self.stamp(username, identity),
                    &[(RECORD_LABEL, "true")],
                    &active_note,
                ),
                data: Some([("username".to_owned(), username.to_owned())].into()),
                ..ConfigMap::default()
            };
            self.records().create(&pp, &cm).await.map(|cm| cm.metadata)
        };
        match res {
            Ok(meta) => {
                let record = Record { meta, service };
                let answer = observed(username.to_owned(), &record, &[], (false, &self.key));
                Ok((username.to_owned(), Some(answer)))
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(ConnectorError::Conflict(format!(
                "an account object for {username:?} appeared while Roster was creating it"
            ))),
            Err(e) => Err(api_error(e)),
        }
    }

    async fn adopt(&self, account: &ObservedAccount, identity: &str) -> Result<(), ConnectorError> {
        let record = self
            .record(&account.id)
            .await?
            .ok_or_else(|| gone(&account.id))?;
        if objects::is_another_connectors(&record.meta, &self.key) {
            return Err(another_connectors(&account.id));
        }
        let meta = objects::account_meta(
            String::new(),
            None,
            self.stamp(&account.id, identity),
            &[],
            &[],
        );
        // Conditional on the version read: a stranger's account that another Connector
        // adopts meanwhile is not taken from it.
        let patch = Patch::Merge(json!({
            "metadata": {
                "labels": meta.labels,
                "annotations": meta.annotations,
                "resourceVersion": record.meta.resource_version,
            }
        }));
        let pp = PatchParams::default();
        let name = record.meta.name.clone().unwrap_or_default();
        let res = if record.service {
            self.service_accounts()
                .patch(&name, &pp, &patch)
                .await
                .map(drop)
        } else {
            self.records().patch(&name, &pp, &patch).await.map(drop)
        };
        res.map_err(api_error)
    }

    async fn update(
        &self,
        _account: &ObservedAccount,
        _attributes: &AccountAttributes,
    ) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn set_active(
        &self,
        account: &ObservedAccount,
        active: bool,
    ) -> Result<(), ConnectorError> {
        let username = account.id.as_str();
        let record = self.record(username).await?.ok_or_else(|| gone(username))?;
        let subjects = if active {
            vec![self.subject_for(username, &record)]
        } else {
            Vec::new()
        };
        // The bindings first: on disable, access goes before anything else is written.
        for b in self.bindings_of(username).await? {
            if b.bound != active {
                self.bind(&b, &subjects).await?;
            }
        }
        self.mark_active(username, &record, active).await
    }

    async fn delete(&self, account: &ObservedAccount) -> Result<(), ConnectorError> {
        let username = account.id.as_str();
        for b in self.bindings_of(username).await? {
            self.unbind(&b).await?;
        }
        let Some(record) = self.record(username).await? else {
            return Ok(());
        };
        if !objects::is_ours(&record.meta, &self.key) {
            return Err(ConnectorError::Conflict(format!(
                "the ServiceAccount {username:?} is not this Connector's; it is left in place"
            )));
        }
        let dp = objects::unchanged_since(
            record.meta.resource_version.as_ref(),
            record.meta.uid.as_ref(),
        );
        let name = record.meta.name.clone().unwrap_or_default();
        ignore_not_found(if record.service {
            self.service_accounts().delete(&name, &dp).await.map(drop)
        } else {
            self.records().delete(&name, &dp).await.map(drop)
        })
    }

    async fn grant(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        let grant = Grant::parse(entitlement).ok_or_else(|| {
            ConnectorError::Config(format!(
                "{entitlement:?} is not a Kubernetes entitlement; use ClusterRole/NAME, ClusterRole/NAMESPACE/NAME or Role/NAMESPACE/NAME"
            ))
        })?;
        if !self.role_exists(&grant).await? {
            return Err(ConnectorError::EntitlementNotFound(entitlement.to_owned()));
        }
        let record = self
            .record(account_id)
            .await?
            .ok_or_else(|| gone(account_id))?;
        if !objects::is_ours(&record.meta, &self.key) {
            return Err(another_connectors(account_id));
        }
        let name = names::binding_name(&self.key, account_id, entitlement);
        if let Some(meta) = self.binding_meta(&grant, &name).await? {
            if objects::is_ours(&meta, &self.key) {
                return Ok(());
            }
            return Err(ConnectorError::Conflict(format!(
                "a binding {name:?} exists that this Connector did not create; Roster leaves it alone"
            )));
        }
        let active = objects::record_active(&record.meta);
        let subjects = active.then(|| vec![self.subject_for(account_id, &record)]);
        let owner = objects::owner(&record.meta, &self.key).unwrap_or_default();
        let meta = objects::account_meta(
            name,
            grant.binding_namespace().map(str::to_owned),
            self.stamp(account_id, &owner),
            &[],
            &[(ENTITLEMENT_ANNOTATION, entitlement.to_owned())],
        );
        let pp = PostParams::default();
        let res = match grant.binding_namespace() {
            Some(ns) => {
                let b = RoleBinding {
                    metadata: meta,
                    role_ref: objects::role_ref(&grant),
                    subjects,
                };
                self.role_bindings(ns).create(&pp, &b).await.map(drop)
            }
            None => {
                let b = ClusterRoleBinding {
                    metadata: meta,
                    role_ref: objects::role_ref(&grant),
                    subjects,
                };
                self.cluster_role_bindings().create(&pp, &b).await.map(drop)
            }
        };
        res.map_err(api_error)
    }

    fn knows_privilege(&self) -> bool {
        true
    }

    async fn privilege(&self, entitlement: &str) -> Result<Option<String>, ConnectorError> {
        match Grant::parse(entitlement) {
            Some(grant) => self.role_privilege(&grant).await,
            // Not an entitlement string: the grant itself refuses it.
            None => Ok(None),
        }
    }

    async fn revoke(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        // Not an entitlement string: nothing Roster could have granted.
        let Some(grant) = Grant::parse(entitlement) else {
            return Ok(());
        };
        let name = names::binding_name(&self.key, account_id, entitlement);
        match self.binding_meta(&grant, &name).await? {
            Some(meta) if objects::is_ours(&meta, &self.key) => {
                self.unbind(&Binding::read(&meta, None)).await
            }
            _ => Ok(()),
        }
    }
}
