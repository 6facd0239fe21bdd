//! The pushed users of one IdentitySource, as `ScimUser` objects in its namespace: the
//! name is the SCIM `id`, the `resourceVersion` the ETag, and two label digests index
//! `userName` and `externalId` so that the lookups a pushing system makes before every
//! write (`userName eq "…"`) ask the apiserver for one object, not the whole source.

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, PostParams, Preconditions},
};
use serde_json::Value;

use crate::{
    api::{ScimUser, ScimUserSpec},
    lifecycle::source::{
        SOURCE_LABEL, label_value,
        plan::digest_str,
        scim::{path, resource::Meta},
    },
};

/// Label holding a digest of the lower-cased `userName` (unique per source).
pub const USERNAME_LABEL: &str = "roster.dev/scim-username";
/// Label holding a digest of the `externalId`.
pub const EXTERNAL_ID_LABEL: &str = "roster.dev/scim-external-id";
/// Annotation holding when the user last changed.
const MODIFIED_ANNOTATION: &str = "roster.dev/scim-modified";

/// One source's store.
pub struct Store {
    api: Api<ScimUser>,
    source: String,
    label: String,
}

/// A pushed user as kept.
pub struct Kept {
    /// The object.
    pub object: ScimUser,
}

impl Kept {
    /// The SCIM id.
    pub fn id(&self) -> String {
        self.object.name_any()
    }

    /// The pushed fields.
    pub fn resource(&self) -> &Value {
        &self.object.spec.resource
    }

    /// Its ETag.
    pub fn version(&self) -> String {
        format!(
            "W/\"{}\"",
            self.object.resource_version().unwrap_or_default()
        )
    }

    /// Its `meta`, at `base`.
    pub fn meta(&self, base: &str) -> Meta {
        let created = self
            .object
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        let last_modified = self
            .object
            .annotations()
            .get(MODIFIED_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| created.clone());
        Meta {
            created,
            last_modified,
            version: self.version(),
            location: format!("{base}/Users/{}", self.id()),
        }
    }
}

impl Store {
    /// The store of the source `name` in `namespace`.
    pub fn new(client: &Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            source: name.to_owned(),
            label: label_value(&format!("{namespace}/{name}")),
        }
    }

    /// The user with SCIM id `id`, if it is this source's.
    pub async fn get(&self, id: &str) -> Result<Option<Kept>, kube::Error> {
        // An id that cannot be an object's name names no user (and never another path).
        let name_like = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if id.is_empty() || id.len() > 253 || !id.chars().all(name_like) {
            return Ok(None);
        }
        let found = self.api.get_opt(id).await?;
        Ok(found
            .filter(|u| u.spec.source == self.source)
            .map(|object| Kept { object }))
    }

    /// The users, oldest first; only those whose `userName` (or `externalId`) digests
    /// to the given one's, when given.
    pub async fn list(
        &self,
        user_name: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<Vec<Kept>, kube::Error> {
        let mut selector = format!("{SOURCE_LABEL}={}", self.label);
        if let Some(u) = user_name {
            selector.push_str(&format!(
                ",{USERNAME_LABEL}={}",
                digest_str(&u.to_lowercase())
            ));
        }
        if let Some(e) = external_id {
            selector.push_str(&format!(",{EXTERNAL_ID_LABEL}={}", digest_str(e)));
        }
        let mut users: Vec<Kept> = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .into_iter()
            .filter(|u| u.spec.source == self.source)
            .map(|object| Kept { object })
            .collect();
        users.sort_by(|a, b| {
            let at = |k: &Kept| k.object.metadata.creation_timestamp.clone().map(|t| t.0);
            at(a).cmp(&at(b)).then_with(|| a.id().cmp(&b.id()))
        });
        Ok(users)
    }

    /// Another user of this source already holding `user_name`, ignoring `except`.
    pub async fn taken(&self, user_name: &str, except: Option<&str>) -> Result<bool, kube::Error> {
        let same = self.list(Some(user_name), None).await?;
        Ok(same.iter().any(|k| {
            Some(k.id().as_str()) != except
                && path::get(k.resource(), "userName")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.eq_ignore_ascii_case(user_name))
        }))
    }

    /// Keeps a new user; the apiserver picks its id.
    pub async fn create(&self, resource: Value) -> Result<Kept, kube::Error> {
        let mut object = ScimUser::new("", self.spec(resource));
        object.metadata.name = None;
        object.metadata.generate_name = Some("u-".into());
        self.mark(&mut object);
        let object = self.api.create(&PostParams::default(), &object).await?;
        Ok(Kept { object })
    }

    /// Replaces `kept`'s fields, if it has not changed since it was read (a conflict
    /// otherwise).
    pub async fn replace(&self, kept: &Kept, resource: Value) -> Result<Kept, kube::Error> {
        let mut object = kept.object.clone();
        object.spec = self.spec(resource);
        self.mark(&mut object);
        let object = self
            .api
            .replace(&kept.id(), &PostParams::default(), &object)
            .await?;
        Ok(Kept { object })
    }

    /// Deletes `kept`, if it has not changed since it was read.
    pub async fn delete(&self, kept: &Kept) -> Result<(), kube::Error> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: kept.object.uid(),
                resource_version: kept.object.resource_version(),
            }),
            ..DeleteParams::default()
        };
        self.api.delete(&kept.id(), &params).await.map(|_| ())
    }

    fn spec(&self, resource: Value) -> ScimUserSpec {
        ScimUserSpec {
            source: self.source.clone(),
            resource,
        }
    }

    /// The labels that index the user, and when it changed.
    fn mark(&self, object: &mut ScimUser) {
        let resource = &object.spec.resource;
        let user_name = path::get(resource, "userName")
            .and_then(Value::as_str)
            .map(|u| digest_str(&u.to_lowercase()));
        let external_id = path::get(resource, "externalId")
            .and_then(Value::as_str)
            .map(digest_str);
        let labels = object.labels_mut();
        labels.insert(SOURCE_LABEL.into(), self.label.clone());
        labels.remove(USERNAME_LABEL);
        labels.remove(EXTERNAL_ID_LABEL);
        if let Some(u) = user_name {
            labels.insert(USERNAME_LABEL.into(), u);
        }
        if let Some(e) = external_id {
            labels.insert(EXTERNAL_ID_LABEL.into(), e);
        }
        object
            .annotations_mut()
            .insert(MODIFIED_ANNOTATION.into(), Timestamp::now().to_string());
    }
}
