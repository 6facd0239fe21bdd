//! Group membership, by the group's `displayName`: grants and revocations.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{PATCH_SCHEMA, ScimConnector, filter_value, resource, unexpected, wire};
use crate::connector::ConnectorError;

/// What became of a grant to a group whose id was remembered.
enum Known {
    /// The group, still under its name, holds the member.
    Granted,
    /// No group has that id any more: look the name up.
    Gone,
}

fn add(account_id: &str) -> Value {
    json!([{"op": "add", "path": "members", "value": [{"value": account_id}]}])
}

impl ScimConnector {
    /// The group whose displayName is `name`.
    async fn group(&self, name: &str) -> Result<Option<wire::Group>, ConnectorError> {
        let list = self
            .groups(&[
                ("filter", format!("displayName eq {}", filter_value(name))),
                ("excludedAttributes", "members".into()),
            ])
            .await?;
        Ok(list.resources.into_iter().find(|g| g.display_name == name))
    }

    /// Adds `account_id` to, or removes it from, the group named `entitlement`.
    pub(super) async fn membership_patch(
        &self,
        account_id: &str,
        entitlement: &str,
        grant: bool,
    ) -> Result<(), ConnectorError> {
        if grant && let Some(id) = self.group_ids.fresh(entitlement) {
            match self.grant_known(&id, account_id, entitlement).await? {
                Known::Granted => return Ok(()),
                Known::Gone => self.group_ids.forget(entitlement),
            }
        }
        let Some(group) = self.group(entitlement).await? else {
            return if grant {
                Err(ConnectorError::EntitlementNotFound(entitlement.to_owned()))
            } else {
                Ok(())
            };
        };
        let op = if grant {
            self.group_ids.remember(entitlement, &group.id);
            add(account_id)
        } else {
            json!([{"op": "remove", "path": format!("members[value eq {}]", filter_value(account_id))}])
        };
        // Membership PATCHes add or remove one member and commute with concurrent ones, so
        // they go without If-Match; a stale group version must not block a leaver.
        self.patch(&resource("Groups", &group.id)?, op, None).await
    }

    /// Adds `account_id` to the group remembered as `entitlement` under `id`; the answer
    /// carries the group's name, which confirms the grant went where it should.
    async fn grant_known(
        &self,
        id: &str,
        account_id: &str,
        entitlement: &str,
    ) -> Result<Known, ConnectorError> {
        let path = resource("Groups", id)?;
        let body = json!({"schemas": [PATCH_SCHEMA], "Operations": add(account_id)});
        let query = [("attributes", "displayName".to_owned())];
        let resp = self
            .call(Method::PATCH, &path, &query, Some(&body), None)
            .await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(Known::Gone),
            s if s.is_success() => {
                let named = serde_json::from_slice::<wire::GroupName>(&resp.body)
                    .ok()
                    .and_then(|g| g.display_name);
                match named {
                    Some(name) if name == entitlement => Ok(Known::Granted),
                    Some(other) => {
                        self.group_ids.forget(entitlement);
                        Err(ConnectorError::Conflict(format!(
                            "the group {entitlement:?} (id {id}) was renamed {other:?} a moment before the grant, which added the member to {other:?}; the next attempt looks {entitlement:?} up again"
                        )))
                    }
                    None => {
                        // The grant went to the id found by name moments ago; later ones
                        // look the name up, since this server cannot confirm them.
                        self.group_ids.unconfirmable();
                        Ok(Known::Granted)
                    }
                }
            }
            s => Err(unexpected(s, &resp.body, "PATCH")),
        }
    }
}
