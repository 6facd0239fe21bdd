//! The directory calls behind the LDAP connector: one shared bound connection, searches
//! (plain and paged), modifications, and finding a person's entry wherever it is.

use std::collections::BTreeSet;

use ldap3::{Ldap, Mod, Scope, SearchEntry};

use super::{
    LdapConnector, Located, PAGE_SIZE, PERSON_ATTRS, dn, missing_container,
    session::{self, OP_TIMEOUT, result_error},
};
use crate::connector::ConnectorError;

impl LdapConnector {
    /// A live, bound connection handle; reconnects when the last one closed.
    pub(super) async fn ldap(&self) -> Result<Ldap, ConnectorError> {
        let mut guard = self.conn.lock().await;
        if let Some(ldap) = guard.as_mut()
            && !ldap.is_closed()
        {
            return Ok(ldap.clone());
        }
        let ldap = self.settings.connect().await?;
        *guard = Some(ldap.clone());
        Ok(ldap)
    }

    /// Searches below `base`; `None` when `base` itself does not exist.
    pub(super) async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Option<Vec<SearchEntry>>, ConnectorError> {
        let mut ldap = self.ldap().await?;
        let res = ldap
            .with_timeout(OP_TIMEOUT)
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| self.settings.failed(e))?;
        match res.1.rc {
            0 => session::entries(res.0).map(Some),
            32 => Ok(None),
            _ => Err(result_error(&res.1)),
        }
    }

    /// One page of a one-level search below `base`, and the next page's cookie.
    pub(super) async fn search_page(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        cookie: Vec<u8>,
    ) -> Result<(Vec<SearchEntry>, Vec<u8>), ConnectorError> {
        let mut ldap = self.ldap().await?;
        let res = ldap
            .with_controls(session::page_control(PAGE_SIZE, cookie))
            .with_timeout(OP_TIMEOUT)
            .search(base, Scope::OneLevel, filter, attrs.to_vec())
            .await
            .map_err(|e| self.settings.failed(e))?;
        if res.1.rc != 0 {
            return Err(result_error(&res.1));
        }
        Ok((session::entries(res.0)?, session::next_cookie(&res.1)?))
    }

    /// Applies `mods` to `dn`, returning the result code; codes other than `ok` and
    /// `allowed` are errors.
    pub(super) async fn modify(
        &self,
        dn: &str,
        mods: Vec<Mod<String>>,
        allowed: &[u32],
    ) -> Result<u32, ConnectorError> {
        let mut ldap = self.ldap().await?;
        let res = ldap
            .with_timeout(OP_TIMEOUT)
            .modify(dn, mods)
            .await
            .map_err(|e| self.settings.failed(e))?;
        if res.rc == 0 || allowed.contains(&res.rc) {
            Ok(res.rc)
        } else {
            Err(result_error(&res))
        }
    }

    /// The user entry for `username`, enabled or disabled.
    pub(super) async fn locate(&self, username: &str) -> Result<Option<Located>, ConnectorError> {
        if username.is_empty() || username.contains('\0') {
            return Ok(None);
        }
        let filter = dn::user_filter(username);
        let mut found = Vec::new();
        for (base, active) in [
            (&self.settings.users_dn, true),
            (&self.settings.disabled_users_dn, false),
        ] {
            let entries = self
                .search(base, Scope::OneLevel, &filter, &PERSON_ATTRS)
                .await?
                .ok_or_else(|| missing_container(base))?;
            found.extend(entries.into_iter().map(|entry| Located {
                dn: entry.dn.clone(),
                active,
                entry,
            }));
        }
        if found.len() > 1 {
            return Err(ConnectorError::Conflict(format!(
                "{} entries have uid {username:?}; Roster will not guess which is the account",
                found.len()
            )));
        }
        Ok(found.pop())
    }

    /// The entitlements (group names) `dn` is a member of.
    pub(super) async fn groups_of(&self, dn: &str) -> Result<BTreeSet<String>, ConnectorError> {
        let groups = self
            .search(
                &self.settings.groups_dn,
                Scope::OneLevel,
                &dn::member_filter(dn),
                &["1.1"],
            )
            .await?
            .ok_or_else(|| missing_container(&self.settings.groups_dn))?;
        Ok(groups
            .iter()
            .filter_map(|g| dn::rdn_value(dn::split_rdn(&g.dn).0, "cn"))
            .collect())
    }

    /// The DN of `username`'s entry, which must exist.
    pub(super) async fn dn_of(&self, username: &str) -> Result<Option<String>, ConnectorError> {
        Ok(self.locate(username).await?.map(|l| l.dn))
    }
}
