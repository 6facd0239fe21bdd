//! SCIM 2.0 (RFC 7643/7644): Users are accounts, Groups are entitlements (by
//! `displayName`), `externalId` = `roster:<identity>` is the ownership mark.
//!
//! Membership is read from Groups (`members[value eq "id"]`), because servers need not
//! fill `User.groups`. Writes are PATCHes; a 204 with no body is as good as a 200. Where
//! the server hands out ETags, account writes carry `If-Match`. A grant reuses a group's
//! id for a few seconds, confirmed by the PATCH's answer (`group_ids`).

mod group_ids;
mod http;
mod membership;
mod wire;

use std::collections::BTreeSet;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use self::http::{Response, send};
use super::{
    Capabilities, Connector, ConnectorError, EntitlementMembers, Page, target::Network, transport,
};
use crate::lifecycle::{AccountAttributes, DesiredAccount, NameCase, ObservedAccount};

/// The accounts Roster reads from one page of a Users listing, and the error detail it
/// would show for `body`: the parsing a hostile server's answers go through, for the
/// fuzz targets and property tests.
pub fn read_answer(body: &[u8]) -> (Result<Vec<ObservedAccount>, ConnectorError>, String) {
    let resp = Response {
        status: StatusCode::OK,
        body: body.to_vec(),
    };
    let accounts = resp.json::<wire::ListResponse<wire::User>>().map(|list| {
        list.resources
            .into_iter()
            .map(|u| ScimConnector::account(u, BTreeSet::new()))
            .collect()
    });
    (accounts, http::scim_detail(body))
}

/// What of a resource id may stay as it is in a URL path: RFC 3986's unreserved
/// characters but `.`, so that no id becomes a `..` segment.
const ID_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// The path of resource `id` of `kind` (`Users`, `Groups`). Ids come from the server;
/// encoded, an id such as `../Groups/admins` or `x?attributes=` names one resource and
/// no other. `.` and `..` are refused: URL parsers resolve them even percent-encoded.
fn resource(kind: &str, id: &str) -> Result<String, ConnectorError> {
    if matches!(id, "" | "." | "..") {
        return Err(ConnectorError::Malformed(format!(
            "the server gave a {kind} resource the id {id:?}"
        )));
    }
    Ok(format!("/{kind}/{}", utf8_percent_encode(id, ID_KEEP)))
}

/// Prefix of Roster's ownership mark in `externalId`.
pub const MARK_PREFIX: &str = "roster:";
/// Page size for inventory listings.
const PAGE_SIZE: u64 = 100;
/// The most pages of one user's groups read: 10,000 groups.
const MAX_GROUP_PAGES: u64 = 100;
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM service provider.
pub struct ScimConnector {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Groups' ids by name, kept a few seconds for grants.
    group_ids: group_ids::GroupIds,
}

impl ScimConnector {
    /// A client for the service at `base_url` (e.g. `https://scim.example.com/v2`),
    /// authenticating with `token`, trusting `ca_pem` in addition to the system roots,
    /// reaching only what `network` allows.
    pub fn new(
        base_url: &str,
        token: &str,
        ca_pem: Option<&[u8]>,
        network: &Network,
    ) -> Result<Self, ConnectorError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ConnectorError::Config("the bearer token is empty".into()));
        }
        let base = transport::scim_url(base_url, network.allow_plaintext)?;
        let http = crate::connector::web::build(&base, ca_pem, &network.policy)?;
        Ok(Self {
            http,
            base: base.as_str().trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            group_ids: group_ids::GroupIds::default(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Response, ConnectorError> {
        let url = format!("{}{path}", self.base);
        send(&self.http, &self.token, method, &url, query, body, if_match)
            .await
            .map_err(|e| e.redacted(&self.token))
    }

    /// Users matching a filter, one page.
    async fn users(
        &self,
        query: &[(&str, String)],
    ) -> Result<wire::ListResponse<wire::User>, ConnectorError> {
        let resp = self.call(Method::GET, "/Users", query, None, None).await?;
        expect_ok(&resp, "list Users")?;
        resp.json()
    }

    /// Every group holding the user `id`, page by page: a leaver in 300 groups must lose
    /// all 300, not the first page of them.
    async fn groups_of(&self, id: &str) -> Result<BTreeSet<String>, ConnectorError> {
        let mut held = BTreeSet::new();
        let mut page = Paging::at(None);
        for _ in 0..MAX_GROUP_PAGES {
            let mut query = vec![
                ("filter", format!("members[value eq {}]", filter_value(id))),
                ("attributes", "displayName".to_owned()),
            ];
            query.extend(page.query());
            let list = self.groups(&query).await?;
            let next = page.next(&list);
            held.extend(list.resources.into_iter().map(|g| g.display_name));
            match next {
                Some(n) => page = Paging::at(Some(&n)),
                None => return Ok(held),
            }
        }
        Err(ConnectorError::Malformed(format!(
            "the server keeps paging the groups of {id:?} past {} groups",
            MAX_GROUP_PAGES * PAGE_SIZE
        )))
    }

    /// Groups matching a filter, one page.
    async fn groups(
        &self,
        query: &[(&str, String)],
    ) -> Result<wire::ListResponse<wire::Group>, ConnectorError> {
        let resp = self.call(Method::GET, "/Groups", query, None, None).await?;
        expect_ok(&resp, "list Groups")?;
        resp.json()
    }

    /// PATCHes `path` with `operations`, with `If-Match` when a version is known; a 412
    /// means someone else changed it first.
    async fn patch(
        &self,
        path: &str,
        operations: Value,
        version: Option<&str>,
    ) -> Result<(), ConnectorError> {
        let body = json!({"schemas": [PATCH_SCHEMA], "Operations": operations});
        let resp = self
            .call(Method::PATCH, path, &[], Some(&body), version)
            .await?;
        match resp.status {
            StatusCode::PRECONDITION_FAILED => Err(ConnectorError::Conflict(format!(
                "{path} changed since it was read"
            ))),
            StatusCode::NOT_FOUND => {
                Err(ConnectorError::Conflict(format!("{path} no longer exists")))
            }
            s if s.is_success() => Ok(()),
            s => Err(unexpected(s, &resp.body, "PATCH")),
        }
    }

    fn account(user: wire::User, entitlements: BTreeSet<String>) -> ObservedAccount {
        let name = user.name.unwrap_or_default();
        let mut emails = user.emails;
        // Primary first, as Identity lists them.
        emails.sort_by_key(|e| !e.primary);
        ObservedAccount {
            owner: user
                .external_id
                .as_deref()
                .and_then(|x| x.strip_prefix(MARK_PREFIX))
                .map(str::to_owned),
            active: user.active.unwrap_or(true),
            attributes: AccountAttributes {
                display_name: user.display_name,
                given_name: name.given_name,
                family_name: name.family_name,
                emails: emails.into_iter().map(|e| e.value).collect(),
            },
            entitlements,
            version: user.meta.and_then(|m| m.version),
            id: user.id,
            username: user.user_name,
        }
    }
}

/// Index-based paging (RFC 7644 §3.4.2.4); the cursor is the next 1-based `startIndex`.
struct Paging {
    start: u64,
}

impl Paging {
    fn at(cursor: Option<&str>) -> Self {
        Self {
            start: cursor.and_then(|c| c.parse().ok()).unwrap_or(1).max(1),
        }
    }

    fn query(&self) -> [(&'static str, String); 2] {
        [
            ("startIndex", self.start.to_string()),
            ("count", PAGE_SIZE.to_string()),
        ]
    }

    /// The cursor after `list`, or `None` when it was the last page (an empty page ends
    /// the listing even if `totalResults` promised more).
    fn next<T>(&self, list: &wire::ListResponse<T>) -> Option<String> {
        let got = list.resources.len() as u64;
        let end = self.start + got;
        (got > 0 && end <= list.total_results).then(|| end.to_string())
    }
}

/// A SCIM filter value: a JSON string literal, so quotes and backslashes are escaped
/// (RFC 7644 §3.4.2.2).
pub fn filter_value(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn expect_ok(resp: &Response, what: &str) -> Result<(), ConnectorError> {
    if resp.status.is_success() {
        Ok(())
    } else {
        Err(unexpected(resp.status, &resp.body, what))
    }
}

fn unexpected(status: StatusCode, body: &[u8], what: &str) -> ConnectorError {
    ConnectorError::Http {
        status: status.as_u16(),
        body: format!("{what}: {}", http::scim_detail(body)),
    }
}

fn attribute_body(attributes: &AccountAttributes) -> Value {
    let emails: Vec<Value> = attributes
        .emails
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"value": e, "type": "work", "primary": i == 0}))
        .collect();
    json!({
        "displayName": attributes.display_name,
        "name": {"givenName": attributes.given_name, "familyName": attributes.family_name},
        "emails": emails,
    })
}

#[async_trait]
impl Connector for ScimConnector {
    /// `userName` is `caseExact: false` (RFC 7643 §4.1.1).
    fn name_case(&self) -> NameCase {
        NameCase::Folded
    }
    async fn check(&self) -> Result<Capabilities, ConnectorError> {
        let resp = self
            .call(Method::GET, "/ServiceProviderConfig", &[], None, None)
            .await?;
        expect_ok(&resp, "read ServiceProviderConfig")?;
        let config: wire::ServiceProviderConfig = resp.json()?;
        // The config may be public; listing one user proves the token works.
        self.users(&[("count", "1".into())]).await?;
        let features = [
            ("patch", config.patch.supported),
            ("filter", config.filter.supported),
            ("etag", config.etag.supported),
            ("bulk", config.bulk.supported),
            ("sort", config.sort.supported),
        ];
        if !config.patch.supported || !config.filter.supported {
            return Err(ConnectorError::Config(
                "the SCIM service does not announce PATCH and filter support, which Roster needs"
                    .into(),
            ));
        }
        Ok(Capabilities {
            features: features
                .iter()
                .filter(|(_, on)| *on)
                .map(|(n, _)| (*n).to_owned())
                .collect(),
        })
    }

    fn refuses_duplicates(&self) -> bool {
        true
    }

    async fn observe(&self, username: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
        let list = self
            .users(&[("filter", format!("userName eq {}", filter_value(username)))])
            .await?;
        // Servers compare userName case-insensitively (RFC 7643 §4.1.1); take the exact one
        // when there is a choice.
        let mut found = list.resources;
        let Some(pos) = found
            .iter()
            .position(|u| u.user_name == username)
            .or((!found.is_empty()).then_some(0))
        else {
            return Ok(None);
        };
        let user = found.swap_remove(pos);
        let entitlements = self.groups_of(&user.id).await?;
        Ok(Some(Self::account(user, entitlements)))
    }

    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<ObservedAccount>, ConnectorError> {
        let page = Paging::at(cursor);
        let list = self.users(&page.query()).await?;
        let next = page.next(&list);
        Ok(Page {
            items: list
                .resources
                .into_iter()
                .map(|u| Self::account(u, BTreeSet::new()))
                .collect(),
            next,
        })
    }

    async fn list_entitlements(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<EntitlementMembers>, ConnectorError> {
        let page = Paging::at(cursor);
        let list = self.groups(&page.query()).await?;
        let next = page.next(&list);
        Ok(Page {
            items: list
                .resources
                .into_iter()
                .map(|g| EntitlementMembers {
                    name: g.display_name,
                    members: g.members.into_iter().map(|m| m.value).collect(),
                })
                .collect(),
            next,
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

    /// The `201` body is the created User (RFC 7644 §3.3): the account as the app holds
    /// it, mark included, in no group yet.
    async fn create_answered(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<(String, Option<ObservedAccount>), ConnectorError> {
        let mut body = attribute_body(&desired.attributes);
        body["schemas"] = json!([USER_SCHEMA]);
        body["userName"] = json!(desired.username);
        body["externalId"] = json!(format!("{MARK_PREFIX}{identity}"));
        body["active"] = json!(active);
        let resp = self
            .call(Method::POST, "/Users", &[], Some(&body), None)
            .await?;
        match resp.status {
            StatusCode::CONFLICT => Err(ConnectorError::Conflict(format!(
                "an account {:?} appeared while Roster was creating it",
                desired.username
            ))),
            s if s.is_success() => {
                let user: wire::User = resp.json()?;
                let id = user.id.clone();
                Ok((id, Some(Self::account(user, BTreeSet::new()))))
            }
            s => Err(unexpected(s, &resp.body, "create User")),
        }
    }

    async fn adopt(&self, account: &ObservedAccount, identity: &str) -> Result<(), ConnectorError> {
        let ops = json!([{"op": "replace", "path": "externalId", "value": format!("{MARK_PREFIX}{identity}")}]);
        self.patch(
            &resource("Users", &account.id)?,
            ops,
            account.version.as_deref(),
        )
        .await
    }

    async fn update(
        &self,
        account: &ObservedAccount,
        attributes: &AccountAttributes,
    ) -> Result<(), ConnectorError> {
        let value = attribute_body(attributes);
        let ops = json!([{"op": "replace", "value": value}]);
        self.patch(
            &resource("Users", &account.id)?,
            ops,
            account.version.as_deref(),
        )
        .await
    }

    async fn set_active(
        &self,
        account: &ObservedAccount,
        active: bool,
    ) -> Result<(), ConnectorError> {
        let ops = json!([{"op": "replace", "path": "active", "value": active}]);
        // Disabling must not lose a race to an unrelated attribute change: no If-Match.
        self.patch(&resource("Users", &account.id)?, ops, None)
            .await
    }

    async fn delete(&self, account: &ObservedAccount) -> Result<(), ConnectorError> {
        let resp = self
            .call(
                Method::DELETE,
                &resource("Users", &account.id)?,
                &[],
                None,
                None,
            )
            .await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(()),
            s if s.is_success() => Ok(()),
            s => Err(unexpected(s, &resp.body, "delete User")),
        }
    }

    async fn grant(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        self.membership_patch(account_id, entitlement, true).await
    }

    async fn revoke(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        self.membership_patch(account_id, entitlement, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Network {
        Network::loopback_plaintext()
    }

    #[test]
    fn paging_stops_at_the_total_and_on_an_empty_page() {
        let list = |n: usize, total: u64| wire::ListResponse::<u8> {
            total_results: total,
            resources: vec![0; n],
        };
        assert_eq!(
            Paging::at(None).next(&list(100, 250)).as_deref(),
            Some("101")
        );
        assert_eq!(Paging::at(Some("201")).next(&list(50, 250)), None);
        assert_eq!(
            Paging::at(Some("101")).next(&list(0, 250)),
            None,
            "an empty page ends it"
        );
        assert_eq!(Paging::at(Some("0")).start, 1);
    }

    #[test]
    fn ids_name_one_resource_in_the_path() {
        assert_eq!(
            resource("Users", "2819c223-7f76-453a-919d-413861904646").unwrap(),
            "/Users/2819c223-7f76-453a-919d-413861904646"
        );
        assert_eq!(
            resource("Users", "../Groups/admins").unwrap(),
            "/Users/%2E%2E%2FGroups%2Fadmins"
        );
        assert_eq!(
            resource("Groups", "a?b#c d%").unwrap(),
            "/Groups/a%3Fb%23c%20d%25"
        );
        for bad in ["", ".", ".."] {
            assert!(resource("Users", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn filter_values_are_escaped_json_strings() {
        assert_eq!(filter_value("ada"), r#""ada""#);
        assert_eq!(
            filter_value(r#"a" or userName pr or "x"#),
            r#""a\" or userName pr or \"x""#
        );
        assert_eq!(filter_value(r"back\slash"), r#""back\\slash""#);
    }

    #[test]
    fn an_empty_token_is_a_config_error() {
        assert!(matches!(
            ScimConnector::new("http://127.0.0.1:1/v2", " \n", None, &loopback()),
            Err(ConnectorError::Config(_))
        ));
        assert!(matches!(
            ScimConnector::new("http://127.0.0.1:1/v2", "t", Some(b"not pem"), &loopback()),
            Err(ConnectorError::Config(_))
        ));
    }

    #[test]
    fn the_mark_and_primary_email_are_read_back() {
        let user: wire::User = serde_json::from_value(json!({
            "id": "1", "userName": "ada", "externalId": "roster:ada", "active": false,
            "emails": [{"value": "b@x"}, {"value": "a@x", "primary": true}],
            "meta": {"version": "W/\"3\""}
        }))
        .unwrap();
        let a = ScimConnector::account(user, BTreeSet::new());
        assert_eq!(a.owner.as_deref(), Some("ada"));
        assert!(!a.active);
        assert_eq!(a.attributes.emails, ["a@x", "b@x"]);
        assert_eq!(a.version.as_deref(), Some("W/\"3\""));
        let theirs: wire::User =
            serde_json::from_value(json!({"id": "2", "userName": "x", "externalId": "hr-42"}))
                .unwrap();
        assert_eq!(ScimConnector::account(theirs, BTreeSet::new()).owner, None);
    }
}
