//! An LDAP directory: an identity's account is an `inetOrgPerson` entry
//! `uid=<username>` directly below `usersDn`; an entitlement is membership of a
//! `groupOfNames` entry `cn=<name>` directly below `groupsDn`; the ownership mark is a
//! `description` value `roster:<identity>`.
//!
//! Disable works on a plain OpenLDAP (no ppolicy overlay): the entry's `userPassword` is
//! removed, so it can no longer bind, and the entry moves to `disabledUsersDn`, out of
//! the subtree applications search for people. Enable moves it back (the person then
//! needs a new password). Group memberships follow the move where the directory runs
//! the `refint` overlay.
//!
//! An account's id is its username, not its DN, because disabling moves the entry.

mod directory;
pub mod dn;
pub mod people;
mod session;

use std::collections::{BTreeSet, HashSet};

use async_trait::async_trait;
use ldap3::{Ldap, Mod, Scope, SearchEntry};
use tokio::sync::Mutex;

pub use self::session::Settings;
use self::session::{OP_TIMEOUT, first, result_error, values};
use super::{Capabilities, Connector, ConnectorError, EntitlementMembers, Page, truncate_body};
use crate::lifecycle::{AccountAttributes, DesiredAccount, NameCase, ObservedAccount};

/// Prefix of Roster's ownership mark in a `description` value.
pub const MARK_PREFIX: &str = "roster:";
/// `sn` is mandatory for `inetOrgPerson`; this stands in when an identity has no
/// family name, and reads back as none.
pub const NO_FAMILY_NAME: &str = "-";
/// Entries per listing page.
const PAGE_SIZE: i32 = 100;
/// The person attributes Roster reads.
const PERSON_ATTRS: [&str; 7] = [
    "uid",
    "cn",
    "sn",
    "givenName",
    "displayName",
    "mail",
    "description",
];

/// An LDAP directory's people and groups.
pub struct LdapConnector {
    settings: Settings,
    conn: Mutex<Option<Ldap>>,
    /// `usersDn` and `disabledUsersDn`, normalized, to recognise member DNs.
    containers: Vec<String>,
}

/// A user entry as found: where it is and whether that is the enabled container.
struct Located {
    dn: String,
    active: bool,
    entry: SearchEntry,
}

impl LdapConnector {
    /// A connector for the directory `settings` describe; connects on first use.
    pub fn new(settings: Settings) -> Self {
        let containers = vec![
            dn::normalize(&settings.users_dn),
            dn::normalize(&settings.disabled_users_dn),
        ];
        Self {
            settings,
            conn: Mutex::new(None),
            containers,
        }
    }
}

fn missing_container(dn: &str) -> ConnectorError {
    ConnectorError::Config(format!(
        "the container {dn:?} does not exist in the directory"
    ))
}

/// One `Mod` per value, in order: LDAP's value sets are unordered on the wire, so
/// adding the emails one by one is what keeps the primary first.
fn mail_mods(emails: &[String]) -> Vec<Mod<String>> {
    let mut mods = vec![Mod::Replace("mail".to_owned(), HashSet::new())];
    mods.extend(
        emails
            .iter()
            .map(|e| Mod::Add("mail".to_owned(), HashSet::from([e.clone()]))),
    );
    mods
}

/// Refuses attributes LDAP cannot hold before anything is written: a NUL in any value
/// (slapd answers only "other (80)" for one).
fn holdable(a: &AccountAttributes) -> Result<(), ConnectorError> {
    let fields = [
        ("displayName", a.display_name.as_deref()),
        ("givenName", a.given_name.as_deref()),
        ("familyName", a.family_name.as_deref()),
    ];
    let emails = a.emails.iter().map(|e| ("emails", Some(e.as_str())));
    match fields
        .into_iter()
        .chain(emails)
        .find(|(_, v)| v.is_some_and(|v| v.contains('\0')))
    {
        Some((field, _)) => Err(ConnectorError::Config(format!(
            "{field} contains a NUL character, which an LDAP directory cannot hold"
        ))),
        None => Ok(()),
    }
}

/// `attr` set to `value`, or removed when there is none.
fn replace(attr: &str, value: Option<&String>) -> Mod<String> {
    Mod::Replace(attr.to_owned(), value.into_iter().cloned().collect())
}

/// The common name Roster writes: the display name, else the username.
fn common_name(username: &str, attributes: &AccountAttributes) -> String {
    attributes
        .display_name
        .clone()
        .unwrap_or_else(|| username.to_owned())
}

fn account(located: &Located, username: String, entitlements: BTreeSet<String>) -> ObservedAccount {
    let e = &located.entry;
    ObservedAccount {
        id: username.clone(),
        username,
        owner: values(e, "description")
            .iter()
            .find_map(|d| d.strip_prefix(MARK_PREFIX))
            .map(str::to_owned),
        active: located.active,
        attributes: AccountAttributes {
            display_name: first(e, "displayName"),
            given_name: first(e, "givenName"),
            family_name: first(e, "sn").filter(|sn| sn != NO_FAMILY_NAME),
            emails: values(e, "mail").to_vec(),
        },
        entitlements,
        version: None,
    }
}

#[async_trait]
impl Connector for LdapConnector {
    /// `uid` has `caseIgnoreMatch` equality in the core schema (RFC 4519).
    fn name_case(&self) -> NameCase {
        NameCase::Folded
    }
    async fn check(&self) -> Result<Capabilities, ConnectorError> {
        let root = self
            .search("", Scope::Base, "(objectClass=*)", &["supportedControl"])
            .await?
            .unwrap_or_default();
        let controls = root
            .first()
            .map(|e| values(e, "supportedControl"))
            .unwrap_or(&[]);
        if !controls.iter().any(|c| c == session::PAGED_RESULTS_OID) {
            return Err(ConnectorError::Config(
                "the directory does not offer paged results (RFC 2696), which inventory scans need"
                    .into(),
            ));
        }
        for base in [
            &self.settings.users_dn,
            &self.settings.groups_dn,
            &self.settings.disabled_users_dn,
        ] {
            self.search(base, Scope::Base, "(objectClass=*)", &["1.1"])
                .await?
                .ok_or_else(|| missing_container(base))?;
        }
        let mut features: BTreeSet<String> = ["paged-results".to_owned()].into();
        if self.settings.start_tls || self.settings.url.starts_with("ldaps://") {
            features.insert("tls".into());
        }
        Ok(Capabilities { features })
    }

    async fn observe(&self, username: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
        let Some(located) = self.locate(username).await? else {
            return Ok(None);
        };
        let groups = self.groups_of(&located.dn).await?;
        Ok(Some(account(&located, username.to_owned(), groups)))
    }

    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<ObservedAccount>, ConnectorError> {
        // The cursor: which container (`u` enabled, `d` disabled) and the server's
        // paging cookie in hex. Cookies belong to the connection; a reconnect mid-scan
        // fails the scan, and the next one starts over.
        let (phase, cookie) = parse_cursor(cursor.unwrap_or("u:"))?;
        let (base, active) = match phase {
            'u' => (&self.settings.users_dn, true),
            _ => (&self.settings.disabled_users_dn, false),
        };
        let (entries, next) = self
            .search_page(base, "(objectClass=inetOrgPerson)", &PERSON_ATTRS, cookie)
            .await?;
        let items = entries
            .into_iter()
            .filter_map(|entry| {
                let username = first(&entry, "uid")?;
                let located = Located {
                    dn: entry.dn.clone(),
                    active,
                    entry,
                };
                Some(account(&located, username, BTreeSet::new()))
            })
            .collect();
        let next = match (phase, next.is_empty()) {
            (_, false) => Some(format!("{phase}:{}", hex(&next))),
            ('u', true) => Some("d:".to_owned()),
            _ => None,
        };
        Ok(Page { items, next })
    }

    async fn list_entitlements(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<EntitlementMembers>, ConnectorError> {
        let (_, cookie) = parse_cursor(cursor.unwrap_or("g:"))?;
        let (groups, next) = self
            .search_page(
                &self.settings.groups_dn,
                "(objectClass=groupOfNames)",
                &["member"],
                cookie,
            )
            .await?;
        let items = groups
            .iter()
            .filter_map(|g| {
                Some(EntitlementMembers {
                    name: dn::rdn_value(dn::split_rdn(&g.dn).0, "cn")?,
                    members: values(g, "member")
                        .iter()
                        .filter_map(|m| dn::member_username(m, &self.containers))
                        .collect(),
                })
            })
            .collect();
        Ok(Page {
            items,
            next: (!next.is_empty()).then(|| format!("g:{}", hex(&next))),
        })
    }

    async fn create(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<String, ConnectorError> {
        let username = desired.username.as_str();
        if username.is_empty() || username.contains('\0') {
            return Err(ConnectorError::Config(format!(
                "{:?} cannot be an LDAP uid: it is empty or holds a NUL",
                truncate_body(username)
            )));
        }
        holdable(&desired.attributes)?;
        let container = if active {
            &self.settings.users_dn
        } else {
            &self.settings.disabled_users_dn
        };
        let dn = dn::user_dn(username, container);
        let a = &desired.attributes;
        let set = |v: &str| HashSet::from([v.to_owned()]);
        let mut attrs = vec![
            (
                "objectClass".to_owned(),
                ["top", "person", "organizationalPerson", "inetOrgPerson"]
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            ),
            ("uid".to_owned(), set(username)),
            ("cn".to_owned(), set(&common_name(username, a))),
            (
                "sn".to_owned(),
                set(a.family_name.as_deref().unwrap_or(NO_FAMILY_NAME)),
            ),
            (
                "description".to_owned(),
                set(&format!("{MARK_PREFIX}{identity}")),
            ),
        ];
        if let Some(v) = &a.given_name {
            attrs.push(("givenName".to_owned(), set(v)));
        }
        if let Some(v) = &a.display_name {
            attrs.push(("displayName".to_owned(), set(v)));
        }
        let mut ldap = self.ldap().await?;
        let res = ldap
            .with_timeout(OP_TIMEOUT)
            .add(&dn, attrs)
            .await
            .map_err(|e| self.settings.failed(e))?;
        match res.rc {
            0 => {}
            68 => {
                return Err(ConnectorError::Conflict(format!(
                    "an entry {dn:?} appeared while Roster was creating it"
                )));
            }
            // slapd answers a DN longer than it can store or index with a bare "other":
            // say what is the likely cause, since the limit is the server's own.
            80 if res.text.trim().is_empty() => {
                return Err(ConnectorError::Rejected(format!(
                    "other (80) adding an entry whose DN is {} bytes: directories refuse DNs \
                     longer than they can store or index (slapd's back-mdb about 270 bytes); \
                     use a shorter username",
                    dn.len()
                )));
            }
            _ => return Err(result_error(&res)),
        }
        if !a.emails.is_empty()
            && let Err(e) = self.modify(&dn, mail_mods(&a.emails), &[]).await
        {
            // A create is whole or not at all: the entry made a moment ago goes again, so
            // that a refused email (mail is IA5 text only) does not leave an account
            // behind the error. Should that fail too, the next pass finds the entry by its
            // mark and carries on from there.
            let _ = self
                .ldap()
                .await?
                .with_timeout(OP_TIMEOUT)
                .delete(&dn)
                .await;
            return Err(e);
        }
        Ok(username.to_owned())
    }

    async fn adopt(&self, account: &ObservedAccount, identity: &str) -> Result<(), ConnectorError> {
        let dn = self
            .dn_of(&account.id)
            .await?
            .ok_or_else(|| gone(&account.id))?;
        let mark = HashSet::from([format!("{MARK_PREFIX}{identity}")]);
        // attributeOrValueExists (20): the mark is there already.
        self.modify(&dn, vec![Mod::Add("description".to_owned(), mark)], &[20])
            .await
            .map(drop)
    }

    async fn update(
        &self,
        account: &ObservedAccount,
        attributes: &AccountAttributes,
    ) -> Result<(), ConnectorError> {
        holdable(attributes)?;
        let located = self
            .locate(&account.id)
            .await?
            .ok_or_else(|| gone(&account.id))?;
        let family = attributes
            .family_name
            .clone()
            .unwrap_or_else(|| NO_FAMILY_NAME.to_owned());
        let mut mods = vec![
            replace("displayName", attributes.display_name.as_ref()),
            replace("givenName", attributes.given_name.as_ref()),
            replace("sn", Some(&family)),
        ];
        // cn is the RDN of entries adopted from elsewhere; it follows the display name
        // only where Roster named the entry by uid.
        if dn::rdn_value(dn::split_rdn(&located.dn).0, "uid").is_some() {
            mods.push(replace("cn", Some(&common_name(&account.id, attributes))));
        }
        mods.extend(mail_mods(&attributes.emails));
        self.modify(&located.dn, mods, &[]).await.map(drop)
    }

    async fn set_active(
        &self,
        account: &ObservedAccount,
        active: bool,
    ) -> Result<(), ConnectorError> {
        let located = self
            .locate(&account.id)
            .await?
            .ok_or_else(|| gone(&account.id))?;
        if !active {
            // First the password, so that a failure between the two steps still leaves
            // an entry that cannot bind.
            self.modify(
                &located.dn,
                vec![Mod::Replace("userPassword".to_owned(), HashSet::new())],
                &[],
            )
            .await?;
        }
        if located.active == active {
            return Ok(());
        }
        let target = if active {
            &self.settings.users_dn
        } else {
            &self.settings.disabled_users_dn
        };
        let (rdn, _) = dn::split_rdn(&located.dn);
        let mut ldap = self.ldap().await?;
        let res = ldap
            .with_timeout(OP_TIMEOUT)
            .modifydn(&located.dn, rdn, true, Some(target))
            .await
            .map_err(|e| self.settings.failed(e))?;
        match res.rc {
            0 => Ok(()),
            68 => Err(ConnectorError::Conflict(format!(
                "an entry {rdn:?} already exists in {target:?}; remove it to move this account"
            ))),
            _ => Err(result_error(&res)),
        }
    }

    async fn delete(&self, account: &ObservedAccount) -> Result<(), ConnectorError> {
        let Some(dn) = self.dn_of(&account.id).await? else {
            return Ok(());
        };
        let mut ldap = self.ldap().await?;
        let res = ldap
            .with_timeout(OP_TIMEOUT)
            .delete(&dn)
            .await
            .map_err(|e| self.settings.failed(e))?;
        match res.rc {
            0 | 32 => Ok(()),
            _ => Err(result_error(&res)),
        }
    }

    async fn grant(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        if entitlement.is_empty() {
            return Err(ConnectorError::EntitlementNotFound(entitlement.to_owned()));
        }
        let dn = self
            .dn_of(account_id)
            .await?
            .ok_or_else(|| gone(account_id))?;
        let group = dn::group_dn(entitlement, &self.settings.groups_dn);
        let add = Mod::Add("member".to_owned(), HashSet::from([dn]));
        // attributeOrValueExists (20): already a member; noSuchObject (32): no group.
        match self.modify(&group, vec![add], &[20, 32]).await? {
            32 => Err(ConnectorError::EntitlementNotFound(entitlement.to_owned())),
            _ => Ok(()),
        }
    }

    async fn revoke(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        if entitlement.is_empty() {
            return Ok(());
        }
        let Some(dn) = self.dn_of(account_id).await? else {
            return Ok(());
        };
        let group = dn::group_dn(entitlement, &self.settings.groups_dn);
        let delete = Mod::Delete("member".to_owned(), HashSet::from([dn.clone()]));
        // noSuchAttribute (16): not a member; noSuchObject (32): no group.
        match self.modify(&group, vec![delete], &[16, 32, 65]).await? {
            // objectClassViolation: `member` is mandatory and this was the last one.
            // The group keeps the empty DN as a placeholder member, which names no one.
            65 => {
                let swap = vec![
                    Mod::Add("member".to_owned(), HashSet::from([String::new()])),
                    Mod::Delete("member".to_owned(), HashSet::from([dn])),
                ];
                self.modify(&group, swap, &[16]).await.map(drop)
            }
            _ => Ok(()),
        }
    }
}

fn gone(username: &str) -> ConnectorError {
    ConnectorError::Conflict(format!(
        "the entry for {username:?} disappeared while Roster was changing it"
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `phase:hexcookie` back into its parts.
fn parse_cursor(cursor: &str) -> Result<(char, Vec<u8>), ConnectorError> {
    let bad = || ConnectorError::Config(format!("invalid listing cursor {cursor:?}"));
    let (phase, cookie) = cursor.split_once(':').ok_or_else(bad)?;
    let phase = match phase {
        "u" => 'u',
        "d" => 'd',
        "g" => 'g',
        _ => return Err(bad()),
    };
    if cookie.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..cookie.len())
        .step_by(2)
        .map(|i| {
            cookie
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        })
        .collect::<Result<_, _>>()?;
    Ok((phase, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let cookie = vec![0, 1, 0xab, 0xff];
        let c = format!("d:{}", hex(&cookie));
        assert_eq!(parse_cursor(&c).unwrap(), ('d', cookie));
        assert_eq!(parse_cursor("u:").unwrap(), ('u', vec![]));
        for bad in ["", "x:00", "u:0", "u:zz", "u"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_written_one_value_at_a_time_in_order() {
        let mods = mail_mods(&["a@x".into(), "b@x".into()]);
        assert!(matches!(&mods[0], Mod::Replace(a, v) if a == "mail" && v.is_empty()));
        assert!(matches!(&mods[1], Mod::Add(_, v) if v.contains("a@x")));
        assert!(matches!(&mods[2], Mod::Add(_, v) if v.contains("b@x")));
    }
}
