//! SCIM 2.0 resources as they travel (RFC 7643), only the parts Roster reads.

use serde::Deserialize;

/// A list response (RFC 7644 §3.4.2).
#[derive(Debug, Deserialize)]
pub struct ListResponse<T> {
    #[serde(rename = "totalResults")]
    pub total_results: u64,
    #[serde(rename = "Resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Meta {
    pub version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Name {
    #[serde(rename = "givenName")]
    pub given_name: Option<String>,
    #[serde(rename = "familyName")]
    pub family_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Email {
    pub value: String,
    #[serde(default)]
    pub primary: bool,
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(rename = "userName")]
    pub user_name: String,
    #[serde(rename = "externalId")]
    pub external_id: Option<String>,
    /// Absent means active (RFC 7643 leaves the default to the provider; most say true).
    pub active: Option<bool>,
    #[serde(rename = "displayName")]
    pub display_name: Option<String>,
    pub name: Option<Name>,
    #[serde(default)]
    pub emails: Vec<Email>,
    pub meta: Option<Meta>,
}

#[derive(Debug, Deserialize)]
pub struct Member {
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub struct Group {
    pub id: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(default)]
    pub members: Vec<Member>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Supported {
    #[serde(default)]
    pub supported: bool,
}

/// `/ServiceProviderConfig` (RFC 7643 §5).
#[derive(Debug, Default, Deserialize)]
pub struct ServiceProviderConfig {
    #[serde(default)]
    pub patch: Supported,
    #[serde(default)]
    pub filter: Supported,
    #[serde(default)]
    pub etag: Supported,
    #[serde(default)]
    pub bulk: Supported,
    #[serde(default)]
    pub sort: Supported,
}

/// A group's answer when only its name was asked for (`attributes=displayName`).
#[derive(Debug, Deserialize)]
pub struct GroupName {
    #[serde(rename = "displayName")]
    pub display_name: Option<String>,
}
