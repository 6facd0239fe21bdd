//! What Roster's SCIM endpoint says about itself (RFC 7643 sections 5–7): the
//! ServiceProviderConfig, the User schema with the attributes an HR system pushes, the
//! enterprise extension, and the one resource type. Pure.

use serde_json::{Value, json};

/// The core User schema.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension (RFC 7643 section 4.3).
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// A list response.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// An error.
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// A PATCH request.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// A search request.
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// The most results one page holds.
pub const MAX_RESULTS: usize = 500;

/// A simple attribute's definition.
fn attr(name: &str, kind: &str, description: &str) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": false, "description": description,
        "required": false, "caseExact": false, "mutability": "readWrite",
        "returned": "default", "uniqueness": "none",
    })
}

/// A complex attribute's definition.
fn complex(name: &str, description: &str, multi: bool, subs: Vec<Value>) -> Value {
    let mut a = attr(name, "complex", description);
    a["multiValued"] = json!(multi);
    a["subAttributes"] = Value::Array(subs);
    a
}

/// `/ServiceProviderConfig`: PATCH, filters and ETags; no bulk, no sort, no password.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "Bearer token", "primary": true,
            "description": "The token in the IdentitySource's spec.scim.tokenSecretRef.",
        }],
        "meta": {"resourceType": "ServiceProviderConfig",
                 "location": format!("{base}/ServiceProviderConfig")},
    })
}

/// The User schema: the attributes a workforce feed carries.
fn user_schema() -> Value {
    let mut user_name = attr("userName", "string", "The login name; unique.");
    user_name["required"] = json!(true);
    user_name["uniqueness"] = json!("server");
    let mut email_type = attr("type", "string", "work, home or other.");
    email_type["canonicalValues"] = json!(["work", "home", "other"]);
    json!({
        "id": USER, "name": "User", "description": "A worker.",
        "attributes": [
            user_name,
            complex("name", "The person's name.", false, vec![
                attr("formatted", "string", "The full name, formatted for display."),
                attr("familyName", "string", "The family name."),
                attr("givenName", "string", "The given name."),
                attr("middleName", "string", "The middle name."),
            ]),
            attr("displayName", "string", "The name to display."),
            attr("title", "string", "The job title."),
            attr("userType", "string", "Employee, Contractor, Intern, ..."),
            attr("active", "boolean", "Whether the worker may have access."),
            complex("emails", "Email addresses.", true, vec![
                attr("value", "string", "The address."),
                email_type,
                attr("primary", "boolean", "The primary address."),
            ]),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/Schemas/{USER}")},
    })
}

/// The enterprise extension's schema.
fn enterprise_schema() -> Value {
    let mut reference = attr("$ref", "reference", "The manager's User resource.");
    reference["referenceTypes"] = json!(["User"]);
    let mut manager_name = attr("displayName", "string", "The manager's display name.");
    manager_name["mutability"] = json!("readOnly");
    json!({
        "id": ENTERPRISE_USER, "name": "EnterpriseUser", "description": "Enterprise User.",
        "attributes": [
            attr("employeeNumber", "string", "The worker's number in HR."),
            attr("costCenter", "string", "The cost centre."),
            attr("organization", "string", "The organisation."),
            attr("division", "string", "The division."),
            attr("department", "string", "The department."),
            complex("manager", "The worker's manager.", false, vec![
                attr("value", "string", "The manager's id."),
                reference,
                manager_name,
            ]),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/Schemas/{ENTERPRISE_USER}")},
    })
}

/// Every schema, by id, with `base` in its location.
pub fn schemas(base: &str) -> Vec<Value> {
    let mut out = vec![user_schema(), enterprise_schema()];
    for s in &mut out {
        s["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
        if let Some(location) = s["meta"]["location"].as_str() {
            s["meta"]["location"] = json!(format!("{base}{location}"));
        }
    }
    out
}

/// The resource types: User, with the enterprise extension.
pub fn resource_types(base: &str) -> Vec<Value> {
    vec![json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User", "name": "User", "endpoint": "/Users", "description": "Workers.",
        "schema": USER,
        "schemaExtensions": [{"schema": ENTERPRISE_USER, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
    })]
}

/// A list response of `resources`, the page starting at `start` (1-based) of `total`.
pub fn list(resources: Vec<Value>, total: usize, start: usize) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}
