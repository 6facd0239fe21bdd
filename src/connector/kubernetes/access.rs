//! The API calls behind the Kubernetes connector: finding an account's record and
//! bindings, changing them, and asking what Roster's credentials may do.

use k8s_openapi::{
    api::{
        authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        },
        core::v1::{ConfigMap, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::{
    Grant, KubernetesConnector, Record, ignore_not_found,
    names::{self, ACTIVE_ANNOTATION},
    objects::{self, Binding, api_error},
};
use crate::connector::ConnectorError;

impl KubernetesConnector {
    pub(super) fn records(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub(super) fn service_accounts(&self) -> Api<ServiceAccount> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub(super) fn role_bindings(&self, namespace: &str) -> Api<RoleBinding> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub(super) fn cluster_role_bindings(&self) -> Api<ClusterRoleBinding> {
        Api::all(self.client.clone())
    }

    /// The account record for `username`: Roster's person record first, then a
    /// ServiceAccount of that name (Roster's or not).
    pub(super) async fn record(&self, username: &str) -> Result<Option<Record>, ConnectorError> {
        let record = self
            .records()
            .get_opt(&names::record_name(&self.key, username))
            .await
            .map_err(api_error)?;
        if let Some(cm) = record.filter(|cm| {
            objects::is_ours(&cm.metadata, &self.key)
                && objects::annotation(&cm.metadata, names::USERNAME_ANNOTATION) == Some(username)
        }) {
            return Ok(Some(Record {
                meta: cm.metadata,
                service: false,
            }));
        }
        if !names::is_object_name(username) {
            return Ok(None);
        }
        let sa = self
            .service_accounts()
            .get_opt(username)
            .await
            .map_err(api_error)?;
        Ok(sa.map(|sa| Record {
            meta: sa.metadata,
            service: true,
        }))
    }

    /// This Connector's bindings for `username`.
    pub(super) async fn bindings_of(&self, username: &str) -> Result<Vec<Binding>, ConnectorError> {
        let lp = ListParams::default().labels(&objects::selector(&self.key, Some(username)));
        let (mut bindings, _) = self.list_bindings(true, &lp).await?;
        bindings.extend(self.list_bindings(false, &lp).await?.0);
        bindings.retain(|b| b.username.as_deref() == Some(username));
        Ok(bindings)
    }

    /// One listing of ClusterRoleBindings (`cluster`) or of RoleBindings in every
    /// namespace, read as [`Binding`]s, and the continue token.
    pub(super) async fn list_bindings(
        &self,
        cluster: bool,
        lp: &ListParams,
    ) -> Result<(Vec<Binding>, Option<String>), ConnectorError> {
        if cluster {
            let list = self
                .cluster_role_bindings()
                .list(lp)
                .await
                .map_err(api_error)?;
            let read = list
                .items
                .iter()
                .map(|b| Binding::read(&b.metadata, b.subjects.as_ref()));
            Ok((read.collect(), list.metadata.continue_))
        } else {
            let list = Api::<RoleBinding>::all(self.client.clone())
                .list(lp)
                .await
                .map_err(api_error)?;
            let read = list
                .items
                .iter()
                .map(|b| Binding::read(&b.metadata, b.subjects.as_ref()));
            Ok((read.collect(), list.metadata.continue_))
        }
    }

    /// Sets the subjects of one of this Connector's bindings, as it was read.
    pub(super) async fn bind(
        &self,
        b: &Binding,
        subjects: &[Subject],
    ) -> Result<(), ConnectorError> {
        let patch = Patch::Merge(json!({
            "metadata": { "resourceVersion": b.version },
            "subjects": subjects,
        }));
        let pp = PatchParams::default();
        let res = match &b.namespace {
            Some(ns) => self
                .role_bindings(ns)
                .patch(&b.name, &pp, &patch)
                .await
                .map(drop),
            None => self
                .cluster_role_bindings()
                .patch(&b.name, &pp, &patch)
                .await
                .map(drop),
        };
        ignore_not_found(res)
    }

    /// Deletes one of this Connector's bindings, as it was read; an absent one is
    /// success.
    pub(super) async fn unbind(&self, b: &Binding) -> Result<(), ConnectorError> {
        let dp = objects::unchanged_since(b.version.as_ref(), b.uid.as_ref());
        let name = b.name.as_str();
        let res = match b.namespace.as_deref() {
            Some(ns) => self.role_bindings(ns).delete(name, &dp).await.map(drop),
            None => self
                .cluster_role_bindings()
                .delete(name, &dp)
                .await
                .map(drop),
        };
        ignore_not_found(res)
    }

    /// The binding's metadata when it exists.
    pub(super) async fn binding_meta(
        &self,
        grant: &Grant,
        name: &str,
    ) -> Result<Option<ObjectMeta>, ConnectorError> {
        let res = match grant.binding_namespace() {
            Some(ns) => self
                .role_bindings(ns)
                .get_opt(name)
                .await
                .map(|b| b.map(|b| b.metadata)),
            None => self
                .cluster_role_bindings()
                .get_opt(name)
                .await
                .map(|b| b.map(|b| b.metadata)),
        };
        res.map_err(api_error)
    }

    /// Whether the role a grant names exists.
    pub(super) async fn role_exists(&self, grant: &Grant) -> Result<bool, ConnectorError> {
        let res = match grant {
            Grant::Role { namespace, name } => {
                Api::<Role>::namespaced(self.client.clone(), namespace)
                    .get_opt(name)
                    .await
                    .map(|r| r.is_some())
            }
            _ => Api::<ClusterRole>::all(self.client.clone())
                .get_opt(grant.role_name())
                .await
                .map(|r| r.is_some()),
        };
        res.map_err(api_error)
    }

    /// Why binding `grant`'s role hands out more than ordinary access, if it does;
    /// `None` for an ordinary role or one that does not exist.
    pub(super) async fn role_privilege(
        &self,
        grant: &Grant,
    ) -> Result<Option<String>, ConnectorError> {
        let (rules, aggregated) = match grant {
            Grant::Role { namespace, name } => {
                let role = Api::<Role>::namespaced(self.client.clone(), namespace)
                    .get_opt(name)
                    .await
                    .map_err(api_error)?;
                (role.map(|r| r.rules.unwrap_or_default()), false)
            }
            _ => {
                let role = Api::<ClusterRole>::all(self.client.clone())
                    .get_opt(grant.role_name())
                    .await
                    .map_err(api_error)?;
                let aggregated = role.as_ref().is_some_and(|r| r.aggregation_rule.is_some());
                (role.map(|r| r.rules.unwrap_or_default()), aggregated)
            }
        };
        let Some(rules) = rules else {
            return Ok(None);
        };
        Ok(names::privileged(grant, &rules, aggregated))
    }

    pub(super) fn subject_for(&self, username: &str, record: &Record) -> Subject {
        objects::subject(username, record.service.then_some(self.namespace.as_str()))
    }

    /// Marks the record enabled or disabled.
    pub(super) async fn mark_active(
        &self,
        username: &str,
        record: &Record,
        active: bool,
    ) -> Result<(), ConnectorError> {
        let patch = Patch::Merge(json!({
            "metadata": {
                "annotations": { ACTIVE_ANNOTATION: active.to_string() },
                "resourceVersion": record.meta.resource_version,
            }
        }));
        let pp = PatchParams::default();
        let res = if record.service {
            self.service_accounts()
                .patch(username, &pp, &patch)
                .await
                .map(drop)
        } else {
            self.records()
                .patch(&names::record_name(&self.key, username), &pp, &patch)
                .await
                .map(drop)
        };
        res.map_err(api_error)
    }

    /// Whether the caller may `verb` `resource` (in `namespace`, or cluster-wide).
    pub(super) async fn may(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Result<bool, ConnectorError> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    namespace: namespace.map(str::to_owned),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = Api::<SelfSubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(api_error)?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}
