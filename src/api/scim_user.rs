//! `ScimUser` (`scimusers.roster.dev`): one user as an HR system or IdP pushed it to an
//! `IdentitySource`'s SCIM endpoint. Roster's SCIM server is its only writer; the source
//! reads these as it reads export rows. Keeping each push in an object of its own makes
//! it survive a restart, reach every replica, and carry the apiserver's
//! `resourceVersion` as its SCIM ETag.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A user pushed over SCIM 2.0, kept as pushed. Its name is its SCIM `id`. Written by
/// Roster's SCIM endpoint only: to change a person, change them in the pushing system.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "ScimUser",
    doc = "A user an HR system or IdP pushed to an IdentitySource's SCIM endpoint, kept as pushed.",
    namespaced,
    printcolumn(name = "Source", type_ = "string", json_path = ".spec.source"),
    printcolumn(
        name = "UserName",
        type_ = "string",
        json_path = ".spec.resource.userName"
    ),
    printcolumn(
        name = "Active",
        type_ = "boolean",
        json_path = ".spec.resource.active"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ScimUserSpec {
    /// The name of the IdentitySource, in this namespace, it was pushed to.
    #[schemars(length(min = 1, max = 253))]
    pub source: String,
    /// The SCIM User resource as pushed (RFC 7643 section 4.1, with the enterprise
    /// extension), without `id` and `meta`, which Roster keeps.
    #[schemars(schema_with = "any_object")]
    pub resource: serde_json::Value,
}

/// An object whose fields are the pushing system's to choose: the SCIM schema, not the
/// CRD's, says what it holds.
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
