//! Reading people from a directory for an IdentitySource: every entry below a base DN
//! that matches a filter, paged, as attribute → first value. Read only; it shares the
//! Connector's connection, TLS and target policy, not its layout.

use std::collections::BTreeMap;

use ldap3::Scope;

use super::session::{self, OP_TIMEOUT, Settings, first, result_error};
use crate::connector::ConnectorError;

/// The most entries one read takes, and the most pages: past either the read fails
/// rather than loop on a server that never ends its pages (empty ones included).
const MAX_ENTRIES: usize = 500_000;
const MAX_PAGES: usize = 100_000;

/// What to search for.
#[derive(Clone, Debug)]
pub struct PeopleSearch<'a> {
    /// Where the people are (the whole subtree is searched).
    pub base_dn: &'a str,
    /// Which entries are workers.
    pub filter: &'a str,
    /// Which of those are read as absent.
    pub disabled_filter: Option<&'a str>,
    /// The attributes to read.
    pub attributes: &'a [&'a str],
    /// Entries per page.
    pub page_size: i32,
}

impl PeopleSearch<'_> {
    /// The filter sent: the workers, less the disabled ones. Both are the source's own
    /// RFC 4515 text; a malformed one is refused by the parser, not patched up here.
    pub fn effective_filter(&self) -> String {
        match self.disabled_filter {
            Some(disabled) => format!("(&{}(!{disabled}))", self.filter),
            None => self.filter.to_owned(),
        }
    }
}

/// Every matching entry, each as its attributes' first values (names as the search
/// asked for them), in the server's order.
pub async fn people(
    settings: &Settings,
    search: &PeopleSearch<'_>,
) -> Result<Vec<BTreeMap<String, String>>, ConnectorError> {
    let mut ldap = settings.connect().await?;
    let filter = search.effective_filter();
    let mut out = Vec::new();
    let mut cookie = Vec::new();
    for page in 1.. {
        if page > MAX_PAGES {
            return Err(ConnectorError::Malformed(format!(
                "more than {MAX_PAGES} pages below {}: refusing to read on",
                search.base_dn
            )));
        }
        let res = ldap
            .with_controls(session::page_control(search.page_size, cookie))
            .with_timeout(OP_TIMEOUT)
            .search(
                search.base_dn,
                Scope::Subtree,
                &filter,
                search.attributes.to_vec(),
            )
            .await
            .map_err(|e| settings.failed(e))?;
        if res.1.rc != 0 {
            return Err(result_error(&res.1));
        }
        let (raw, result) = (res.0, res.1);
        for entry in session::entries(raw)? {
            let row = search
                .attributes
                .iter()
                .filter_map(|a| {
                    let value = first(&entry, a)?.trim().to_owned();
                    (!value.is_empty()).then(|| ((*a).to_owned(), value))
                })
                .collect();
            out.push(row);
        }
        if out.len() > MAX_ENTRIES {
            return Err(ConnectorError::Malformed(format!(
                "more than {MAX_ENTRIES} entries below {}: refusing to read on",
                search.base_dn
            )));
        }
        cookie = session::next_cookie(&result)?;
        if cookie.is_empty() {
            break;
        }
    }
    let _ = ldap.unbind().await;
    Ok(out)
}
