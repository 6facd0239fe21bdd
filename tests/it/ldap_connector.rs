//! The LDAP connector against a real OpenLDAP slapd: the conformance suite, and what is
//! particular to a directory (DN and filter escaping, disable by move and password
//! removal, group membership following the move, the last member of a group, TLS, and
//! the server's own errors).

use std::collections::HashSet;

use ldap3::{LdapConnAsync, Mod, Scope, SearchEntry};
use roster::{
    connector::{
        Connector, ConnectorError,
        ldap::{LdapConnector, Settings},
        target::Network,
    },
    lifecycle::{AccountAttributes, DesiredAccount},
};

use crate::{
    conformance::{self, Fixture},
    harness::{
        ldap::{self, make_group},
        process,
    },
};

fn settings(url: String, password: &str) -> Settings {
    Settings {
        url,
        start_tls: false,
        bind_dn: ldap::ROSTER_DN.into(),
        password: password.into(),
        ca_pem: None,
        users_dn: ldap::PEOPLE.into(),
        groups_dn: ldap::GROUPS.into(),
        disabled_users_dn: ldap::DISABLED.into(),
        network: Network::loopback_plaintext(),
    }
}

fn connector() -> LdapConnector {
    LdapConnector::new(settings(ldap::server().url(), ldap::ROSTER_PASSWORD))
}

fn set(values: &[&str]) -> HashSet<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

struct LdapFixture;

#[async_trait::async_trait]
impl Fixture for LdapFixture {
    async fn make_entitlement(&self, name: &str) {
        make_group(name).await;
    }
    async fn make_unowned_account(&self, username: &str) {
        let mut admin = ldap::server().admin().await;
        admin
            .add(
                &format!("uid={username},{}", ldap::PEOPLE),
                vec![
                    ("objectClass".to_owned(), set(&["inetOrgPerson"])),
                    ("uid".to_owned(), set(&[username])),
                    ("cn".to_owned(), set(&["Someone Else"])),
                    ("sn".to_owned(), set(&["Else"])),
                    ("description".to_owned(), set(&["made by hand"])),
                ],
            )
            .await
            .expect("add person")
            .success()
            .expect("person created");
    }
}

#[tokio::test]
async fn ldap_passes_the_conformance_suite() {
    conformance::run(&connector(), &LdapFixture, "ldapconf").await;
}

fn desired(username: &str) -> DesiredAccount {
    DesiredAccount {
        username: username.into(),
        kind: Default::default(),
        attributes: AccountAttributes {
            display_name: Some("Grace Hopper".into()),
            given_name: Some("Grace".into()),
            family_name: None,
            emails: vec![format!("{}@example.com", username.len())],
        },
        active: true,
        entitlements: Default::default(),
    }
}

/// The entry at `dn` as the root DN sees it, or `None`.
async fn read(dn: &str) -> Option<SearchEntry> {
    let mut admin = ldap::server().admin().await;
    let res = admin
        .search(dn, Scope::Base, "(objectClass=*)", vec!["*", "memberOf"])
        .await
        .expect("search");
    match res.1.rc {
        0 => res.0.into_iter().next().map(SearchEntry::construct),
        32 => None,
        rc => panic!("reading {dn}: result code {rc}"),
    }
}

#[tokio::test]
async fn dns_and_filters_are_escaped() {
    let c = connector();
    // Each character here means something in a DN (RFC 4514) or a filter (RFC 4515).
    let odd = r#" ldap,odd+name="x"<y>;\*(uid=*)#"#;
    c.create("ldap-odd", &desired(odd), true)
        .await
        .expect("create an odd name");
    let seen = c.observe(odd).await.expect("observe").expect("exists");
    assert_eq!(
        (seen.username.as_str(), seen.owner.as_deref()),
        (odd, Some("ldap-odd"))
    );
    assert_eq!(
        seen.attributes.family_name, None,
        "the sn placeholder reads as none"
    );
    // A group whose name needs escaping in a DN.
    let group = "ops, west+1";
    make_group(group).await;
    c.grant(odd, group).await.expect("grant");
    let seen = c.observe(odd).await.expect("observe").expect("exists");
    assert_eq!(seen.entitlements, [group.to_owned()].into());
    c.revoke(odd, group).await.expect("revoke");
    // A wildcard-shaped username matches nothing rather than everything.
    assert_eq!(c.observe("*").await.expect("observe"), None);
    assert_eq!(c.observe("ldap*").await.expect("observe"), None);
    c.delete(&seen).await.expect("delete");
    assert_eq!(c.observe(odd).await.expect("observe"), None);
}

#[tokio::test]
async fn disable_removes_the_password_and_moves_the_entry() {
    let c = connector();
    let name = "ldap-leaver";
    c.create(name, &desired(name), true).await.expect("create");
    let people_dn = format!("uid={name},{}", ldap::PEOPLE);
    let disabled_dn = format!("uid={name},{}", ldap::DISABLED);
    // The person sets a password and can bind with it.
    let mut admin = ldap::server().admin().await;
    admin
        .modify(
            &people_dn,
            vec![Mod::Replace(
                "userPassword",
                set(&["hunter2"]).iter().map(String::as_str).collect(),
            )],
        )
        .await
        .expect("modify")
        .success()
        .expect("password set");
    assert!(can_bind(&people_dn, "hunter2").await);
    make_group("ldap-leaver-eng").await;
    c.grant(name, "ldap-leaver-eng").await.expect("grant");

    let seen = c.observe(name).await.expect("observe").expect("exists");
    c.set_active(&seen, false).await.expect("disable");
    assert!(
        read(&people_dn).await.is_none(),
        "moved out of the people container"
    );
    let moved = read(&disabled_dn).await.expect("in the disabled container");
    assert!(
        !moved.attrs.contains_key("userPassword"),
        "{:?}",
        moved.attrs
    );
    assert!(!can_bind(&disabled_dn, "hunter2").await);
    // refint rewrote the membership to the new DN, and the connector still reads it.
    let seen = c.observe(name).await.expect("observe").expect("exists");
    assert!(!seen.active);
    assert!(seen.entitlements.contains("ldap-leaver-eng"), "{seen:?}");

    // A leaver is stripped too: revoking the last real member leaves the placeholder.
    c.revoke(name, "ldap-leaver-eng").await.expect("revoke");
    let group = read(&format!("cn=ldap-leaver-eng,{}", ldap::GROUPS))
        .await
        .expect("group");
    assert_eq!(group.attrs.get("member"), Some(&vec![String::new()]));
    c.set_active(&seen, true).await.expect("enable");
    assert!(read(&people_dn).await.is_some(), "moved back");
    assert!(
        c.observe(name)
            .await
            .expect("observe")
            .expect("exists")
            .active
    );
}

async fn can_bind(dn: &str, password: &str) -> bool {
    let (conn, mut l) = LdapConnAsync::new(&ldap::server().url())
        .await
        .expect("connect");
    tokio::spawn(conn.drive());
    l.simple_bind(dn, password).await.is_ok_and(|r| r.rc == 0)
}

#[tokio::test]
async fn revoking_the_only_member_keeps_the_group_valid() {
    let c = connector();
    let name = "ldap-only-member";
    c.create(name, &desired(name), true).await.expect("create");
    // A group whose one member is this person: removing it would violate the schema.
    let mut admin = ldap::server().admin().await;
    let group = format!("cn=ldap-solo,{}", ldap::GROUPS);
    admin
        .add(
            &group,
            vec![
                ("objectClass".to_owned(), set(&["groupOfNames"])),
                ("cn".to_owned(), set(&["ldap-solo"])),
                (
                    "member".to_owned(),
                    set(&[&format!("uid={name},{}", ldap::PEOPLE)]),
                ),
            ],
        )
        .await
        .expect("add")
        .success()
        .expect("group");
    c.revoke(name, "ldap-solo").await.expect("revoke");
    c.revoke(name, "ldap-solo").await.expect("revoke again");
    let seen = c.observe(name).await.expect("observe").expect("exists");
    assert!(seen.entitlements.is_empty(), "{seen:?}");
    assert_eq!(
        read(&group).await.expect("group").attrs.get("member"),
        Some(&vec![String::new()])
    );
}

#[tokio::test]
async fn server_errors_are_clear() {
    let c = connector();
    // Schema violation reported by the server: `mail` is IA5 (ASCII) text.
    let mut d = desired("ldap-schema");
    d.attributes.emails = vec!["grâce@example.com".into()];
    let err = c
        .create("ldap-schema", &d, true)
        .await
        .expect_err("schema violation");
    assert!(
        matches!(&err, ConnectorError::Rejected(m) if m.contains("invalidAttributeSyntax")),
        "{err:?}"
    );
    // A group that does not exist downstream.
    c.create("ldap-nogroup", &desired("ldap-nogroup"), true)
        .await
        .expect("create");
    assert!(matches!(
        c.grant("ldap-nogroup", "ldap-no-such-group").await,
        Err(ConnectorError::EntitlementNotFound(_))
    ));
    // Wrong credentials.
    let wrong = LdapConnector::new(settings(ldap::server().url(), "not-the-password"));
    let err = wrong.check().await.expect_err("wrong password");
    assert!(
        matches!(err, ConnectorError::Unauthorized { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-the-password"));
    // Nothing listening.
    let nowhere = LdapConnector::new(settings(
        format!("ldap://127.0.0.1:{}", process::free_port()),
        "x",
    ));
    let err = nowhere.check().await.expect_err("unreachable");
    assert!(matches!(err, ConnectorError::Unreachable { .. }), "{err:?}");
    // A container that does not exist.
    let mut s = settings(ldap::server().url(), ldap::ROSTER_PASSWORD);
    s.disabled_users_dn = format!("ou=missing,{}", ldap::SUFFIX);
    let err = LdapConnector::new(s).check().await.expect_err("missing OU");
    assert!(err.to_string().contains("ou=missing"), "{err}");
}

#[tokio::test]
async fn ldaps_and_start_tls_verify_the_server() {
    let server = ldap::server();
    let mut ldaps = settings(
        format!("ldaps://127.0.0.1:{}", server.tls_port),
        ldap::ROSTER_PASSWORD,
    );
    ldaps.ca_pem = Some(server.ca_pem.clone().into_bytes());
    let caps = LdapConnector::new(ldaps.clone())
        .check()
        .await
        .expect("ldaps");
    assert!(caps.features.contains("tls"));

    let mut start_tls = settings(server.url(), ldap::ROSTER_PASSWORD);
    start_tls.start_tls = true;
    start_tls.ca_pem = Some(server.ca_pem.clone().into_bytes());
    let c = LdapConnector::new(start_tls.clone());
    c.check().await.expect("StartTLS");
    c.create("ldap-tls", &desired("ldap-tls"), true)
        .await
        .expect("a write over StartTLS");

    // Without the test CA the server's certificate is not trusted: no silent fallback.
    for mut s in [ldaps, start_tls] {
        s.ca_pem = None;
        let err = LdapConnector::new(s).check().await.expect_err("untrusted");
        assert!(matches!(err, ConnectorError::Unreachable { .. }), "{err:?}");
    }
}
